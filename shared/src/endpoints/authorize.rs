//! `GET /authorize` (RFC 6749 §3.1, §4.1.2.1). The authorization-code flow is not served yet:
//! after the client and redirect URI are validated, the request is answered with
//! `unsupported_response_type` by redirect (with `state` and RFC 9207 `iss`). Before that
//! validation nothing redirects: an error page (400) is shown instead.
use axum::Router;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use crate::endpoints::method_not_allowed;
use crate::error::no_store;
use crate::{AppState, OAuthError, Result, http};

/// The authorize function's router.
pub fn router(state: AppState) -> Router {
    routes().fallback(super::not_found).with_state(state)
}

/// The `/authorize` route, for merging.
pub fn routes() -> Router<AppState> {
    Router::new().route("/authorize", get(handle).fallback(method_not_allowed("GET")))
}

async fn handle(State(state): State<AppState>, parts: Parts) -> Response {
    match authorize(&state, &parts).await {
        Ok(r) => r,
        Err(e @ (OAuthError::TemporarilyUnavailable(_) | OAuthError::Server(_))) => {
            error_page(e.status(), e.code(), &e.description())
        }
        Err(e) => error_page(StatusCode::BAD_REQUEST, e.code(), &e.description()),
    }
}

async fn authorize(state: &AppState, parts: &Parts) -> Result<Response> {
    let q = http::query(parts)?;
    let client_id = q.require("client_id")?;
    let client =
        state.store.get_client(client_id).await?.ok_or_else(|| OAuthError::invalid_request("unknown client_id"))?;
    // RFC 6749 §3.1.2.3: exact match with a registered URI; one registered URI may be implied.
    let redirect_uri = match (q.get("redirect_uri"), client.redirect_uris.as_slice()) {
        (Some(r), uris) if uris.iter().any(|u| u == r) => r.to_owned(),
        (None, [only]) => only.clone(),
        _ => return Err(OAuthError::invalid_request("redirect_uri is missing or not registered for this client")),
    };
    let mut target = url::Url::parse(&redirect_uri).map_err(OAuthError::server)?;
    {
        let mut pairs = target.query_pairs_mut();
        pairs.append_pair("error", "unsupported_response_type");
        pairs.append_pair("error_description", "this server does not issue authorization codes yet");
        if let Some(s) = q.get("state") {
            pairs.append_pair("state", s);
        }
        pairs.append_pair("iss", &state.config.issuer);
    }
    let mut resp = StatusCode::FOUND.into_response();
    resp.headers_mut().insert(header::LOCATION, HeaderValue::from_str(target.as_str()).map_err(OAuthError::server)?);
    no_store(&mut resp);
    Ok(resp)
}

/// Escapes text for HTML element content and attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

/// A plain error page: shown when the client cannot safely be redirected to.
fn error_page(status: StatusCode, code: &str, description: &str) -> Response {
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign-in error</title></head>\
         <body><main><h1>This sign-in request cannot be completed</h1><p>{}</p><p><code>{}</code></p></main></body></html>",
        escape_html(description),
        escape_html(code)
    );
    let mut r = (status, Html(body)).into_response();
    no_store(&mut r);
    let h = r.headers_mut();
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"));
    r
}
