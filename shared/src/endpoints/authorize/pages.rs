//! The sign-in, consent and error pages (compile-time, auto-escaping templates), and the
//! headers every page carries: no caching, no framing, a strict CSP, no referrer.
use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::error::no_store;

#[derive(Template)]
#[template(path = "login.html")]
pub struct Login<'a> {
    /// The issuer's path, before the form's `/authorize/login` (`Config::issuer_path`).
    pub base: &'a str,
    pub client_name: &'a str,
    pub csrf: &'a str,
    pub username: &'a str,
    pub error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "consent.html")]
pub struct Consent<'a> {
    /// The issuer's path, before the form's `/authorize/consent` (`Config::issuer_path`).
    pub base: &'a str,
    pub client_name: &'a str,
    pub username: &'a str,
    pub csrf: &'a str,
    /// (scope, description)
    pub scopes: Vec<(String, Option<String>)>,
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    pub code: &'a str,
    pub description: &'a str,
}

/// Renders a page with the security headers.
pub fn page(status: StatusCode, t: &impl Template) -> Response {
    let body = t.render().unwrap_or_else(|_| "<!doctype html><title>Error</title><p>Rendering failed.</p>".into());
    let mut r = (status, Html(body)).into_response();
    no_store(&mut r);
    let h = r.headers_mut();
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    r
}

/// The error page: shown when the client cannot safely be redirected to.
pub fn error(status: StatusCode, code: &str, description: &str) -> Response {
    page(status, &ErrorPage { code, description })
}
