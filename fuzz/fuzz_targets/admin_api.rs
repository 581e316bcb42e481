//! The admin API end to end: JSON bodies sent through the token-admin router (as the
//! token-admin function serves it) to the endpoints that parse one, on an embedded store with a
//! client, a resource server, a user and a group to change. The first input byte picks the
//! endpoint (its low 7 bits) and whether the input's first line is sent as `If-Match` (its high
//! bit; the body is then what follows that line); the rest is the body.
//! Invariants: no panic and no stack overflow (deeply nested JSON included); never a 500
//! (`server_error`: malformed input must be the caller's error); every answer is JSON; bodies
//! over 16 KiB are 413.
#![no_main]
use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, StatusCode, header};
use gatehouse_fuzz::{ADMIN_TOKEN, runtime, state};
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use tower::ServiceExt;

/// Endpoints that read a JSON body; `{client}` is the fixture client's id.
const ROUTES: [(&str, &str); 14] = [
    ("POST", "/admin/clients"),
    ("PATCH", "/admin/clients/{client}"),
    ("POST", "/admin/clients/{client}/secret"),
    ("POST", "/admin/resource-servers"),
    ("PATCH", "/admin/resource-servers/https%3A%2F%2Fapi.fuzz.example"),
    ("POST", "/admin/users"),
    ("PATCH", "/admin/users/alice"),
    ("POST", "/admin/groups"),
    ("PATCH", "/admin/groups/staff"),
    ("POST", "/admin/tokens/revoke"),
    ("POST", "/admin/tokens/revoke-all"),
    ("POST", "/admin/keys/rotate"),
    ("POST", "/admin/keys/fuzz-key/retire"),
    ("PATCH", "/admin/settings"),
];

async fn call(router: &Router, method: &str, path: &str, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
    call_if(router, method, path, None, body).await
}

async fn call_if(
    router: &Router,
    method: &str,
    path: &str,
    if_match: Option<HeaderValue>,
    body: Vec<u8>,
) -> (StatusCode, Vec<u8>) {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN_TOKEN}"))
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(v) = if_match {
        req = req.header(header::IF_MATCH, v);
    }
    let req = req.body(Body::from(body)).unwrap();
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    (status, resp.into_body().collect().await.unwrap().to_bytes().to_vec())
}

/// The router and the fixture client's id, made once.
fn fixture() -> &'static (Router, String) {
    static FIXTURE: OnceLock<(Router, String)> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let router = gatehouse::endpoints::token_admin::router(state().clone());
        runtime().block_on(async {
            let setup = [
                ("/admin/resource-servers", json!({"identifier": "https://api.fuzz.example", "scopes": ["read"]})),
                ("/admin/users", json!({"username": "alice", "password": "correct horse battery"})),
                ("/admin/groups", json!({"name": "staff"})),
                ("/admin/clients", json!({"grant_types": ["client_credentials"], "scope": "read"})),
            ];
            let mut client = String::new();
            for (path, body) in setup {
                let (status, out) = call(&router, "POST", path, body.to_string().into_bytes()).await;
                assert_eq!(status, StatusCode::CREATED, "{path}: {}", String::from_utf8_lossy(&out));
                if let Some(id) = serde_json::from_slice::<Value>(&out).unwrap()["client_id"].as_str() {
                    client = id.to_owned();
                }
            }
            (router, client)
        })
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else { return };
    let (router, client) = fixture();
    let (method, path) = ROUTES[usize::from(pick & 0x7f) % ROUTES.len()];
    let path = path.replace("{client}", client);
    let (if_match, body) = match body.iter().position(|&b| b == b'\n') {
        Some(end) if pick & 0x80 != 0 => (HeaderValue::from_bytes(&body[..end]).ok(), &body[end + 1..]),
        _ => (None, body),
    };
    let (status, out) = runtime().block_on(call_if(router, method, &path, if_match, body.to_vec()));
    let text = String::from_utf8_lossy(&out);
    assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "{method} {path}: {text}");
    if !out.is_empty() {
        let v: Value = serde_json::from_slice(&out).unwrap_or_else(|_| panic!("{method} {path}: not JSON: {text}"));
        assert!(status.is_success() || v["error"].is_string(), "{method} {path}: {text}");
    }
    if body.len() > gatehouse::http::MAX_BODY {
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    }
});
