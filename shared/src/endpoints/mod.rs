//! The HTTP endpoints. Each module exposes `router(state)`; a Lambda function serves one of
//! them, the local server merges them all ([`all`]).
pub mod authorize;
pub mod cors;
pub mod introspect;
pub mod metadata;
pub mod revoke;
pub mod token;
pub mod token_admin;
pub mod validate;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::{AppState, OAuthError};

/// A JSON response with `Cache-Control: no-store` and `Pragma: no-cache`.
pub fn json_no_store(status: StatusCode, body: serde_json::Value) -> Response {
    let mut r = (status, axum::Json(body)).into_response();
    crate::error::no_store(&mut r);
    r
}

/// Unknown paths: a JSON 404 (never an HTML page or a panic).
pub async fn not_found() -> OAuthError {
    OAuthError::NotFound("no such endpoint".into())
}

/// A `MethodRouter` fallback naming the allowed method.
pub fn method_not_allowed(allow: &'static str) -> impl Fn() -> std::future::Ready<OAuthError> + Clone {
    move || std::future::ready(OAuthError::MethodNotAllowed(allow))
}

/// Every endpoint on one router: the local all-in-one server.
pub fn all(state: AppState) -> Router {
    Router::new()
        .merge(authorize::routes())
        .merge(token::routes())
        .merge(metadata::routes())
        .merge(introspect::routes())
        .merge(revoke::routes())
        .merge(token_admin::routes())
        .fallback(not_found)
        .with_state(state)
}
