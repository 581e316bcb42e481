//! CORS (the Fetch standard's CORS protocol) for the endpoints a browser-based client calls
//! itself: `POST /token` and `POST /revoke` (a single-page app, a public client with PKCE), and
//! the metadata and JWKS documents. Any origin may read their answers, never with credentials
//! (no cookies: `Access-Control-Allow-Origin: *`), which gives a web page nothing it could not
//! get by calling them from a server: each answer depends only on what the request carries (a
//! code with its PKCE verifier, a refresh token, client credentials), never on the browser's
//! state. The sign-in pages and the admin API are not offered to other origins; neither are
//! introspection and validation, which resource servers call.
//!
//! A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`: a request with an
//! `Authorization` or `DPoP` header) is answered 204 here, before the endpoint; any other
//! request passes through, and its answer gets `Access-Control-Allow-Origin` and the headers a
//! client reads (`DPoP-Nonce`, RFC 9449 §8; `WWW-Authenticate`; `Retry-After`) exposed, with or
//! without `Origin`: the metadata and the JWKS may be cached (`max-age=300`), and a copy
//! fetched without `Origin` must serve a browser too (the Fetch standard's advice for `*`).
use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Seconds a browser may cache a preflight's answer.
const MAX_AGE: &str = "86400";
/// The request headers a client may send (besides the CORS-safelisted ones).
const ALLOW_HEADERS: &str = "authorization, content-type, dpop";
/// The response headers a client may read (besides the CORS-safelisted ones).
const EXPOSE_HEADERS: &str = "dpop-nonce, www-authenticate, retry-after";

/// `routes` answering CORS for `methods` (the value of `Access-Control-Allow-Methods`).
pub fn allow<S: Clone + Send + Sync + 'static>(routes: Router<S>, methods: &'static str) -> Router<S> {
    routes.layer(axum::middleware::from_fn(move |req: Request, next: Next| cors(methods, req, next)))
}

async fn cors(methods: &'static str, req: Request, next: Next) -> Response {
    let h = req.headers();
    let from_browser = h.contains_key(header::ORIGIN);
    if from_browser && req.method() == Method::OPTIONS && h.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD) {
        let mut r = StatusCode::NO_CONTENT.into_response();
        let h = r.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(methods));
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static(ALLOW_HEADERS));
        h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static(MAX_AGE));
        return r;
    }
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSE_HEADERS));
    r
}
