//! The authorization endpoint (RFC 6749 §3.1, §4.1.1-4.1.2) with PKCE (RFC 7636) and the
//! issuer in responses (RFC 9207): `GET /authorize` validates the request and shows the
//! sign-in page; `POST /authorize/login` signs the user in; `POST /authorize/consent` records
//! the decision. The request is kept server-side (a pending record with a short TTL); its
//! forms carry only its opaque id and a CSRF secret, and a cookie binds it to the browser that
//! opened it (one per browser, so that several tabs can each sign in: `flow::cookie_name`).
//!
//! Until the client and redirect URI are validated nothing redirects: an error page (400) is
//! shown. After that, errors go back to the client with `error`, `error_description`, `state`
//! and `iss`.
mod flow;
mod pages;
mod request;

use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};

use crate::endpoints::method_not_allowed;
use crate::{AppState, OAuthError};

pub use pages::error as error_page;

/// The authorize function's router.
pub fn router(state: AppState) -> Router {
    routes().fallback(super::not_found).with_state(state)
}

/// The `/authorize` routes, for merging.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/authorize", get(request::handle).fallback(method_not_allowed("GET")))
        .route("/authorize/login", post(flow::login).fallback(method_not_allowed("POST")))
        .route("/authorize/consent", post(flow::consent).fallback(method_not_allowed("POST")))
}

/// An error that cannot be redirected: the page, with 503/500 kept for outages and 413/408 for a
/// body over the limit or too slow (as at every other endpoint).
fn page_for(e: OAuthError) -> Response {
    let status = match &e {
        OAuthError::TemporarilyUnavailable(_)
        | OAuthError::Server(_)
        | OAuthError::PayloadTooLarge
        | OAuthError::RequestTimeout => e.status(),
        _ => StatusCode::BAD_REQUEST,
    };
    if let OAuthError::Server(detail) = &e {
        tracing::error!(error = %detail, "server_error on the authorization endpoint");
    }
    let mut page = pages::error(status, e.code(), &e.description());
    if status == StatusCode::SERVICE_UNAVAILABLE {
        page.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("1"));
    }
    page
}
