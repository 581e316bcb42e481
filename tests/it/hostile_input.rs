//! Hostile input (issue 7 item 6): oversized bodies, headers, query strings and parameters are
//! refused early with exact answers and bounded memory, on the in-process routers and over TCP
//! through the same HTTP server the local all-in-one server runs (`axum::serve`). The fuzz
//! targets in `fuzz/` (`scripts/fuzz.sh`) cover the parsers themselves.
//!
//! The rules (README "Hostile input"): a body over 16 KiB is 413 `invalid_request` at every
//! endpoint that reads one (an HTML error page at the sign-in and consent forms), refused before
//! it is read when its declared length is over, cut off at the limit otherwise (chunked, endless);
//! a query string over 16 KiB is 400 `invalid_request`; form parameters that are not UTF-8, or
//! repeated (RFC 6749 §3.1), are 400 `invalid_request`; JSON that is not UTF-8 or nested deeper
//! than serde_json's limit (128) is a 400 naming the admin call's error code; oversized tokens,
//! assertions and proofs are refused by their own length checks before any parsing.
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{self, Resp, TestClient, assert_error, cc_client, cc_token, form, send};

const LIMIT: usize = 16 * 1024;
const FORM: &str = "application/x-www-form-urlencoded";

/// The form endpoints, each with a body that is valid apart from its size.
const FORM_ENDPOINTS: [&str; 5] = ["/token", "/introspect", "/revoke", "/authorize/login", "/authorize/consent"];

/// The admin calls that read a JSON body (`{client}`: a registered client's id).
const ADMIN_JSON: [(&str, &str); 14] = [
    ("POST", "/admin/clients"),
    ("PATCH", "/admin/clients/{client}"),
    ("POST", "/admin/clients/{client}/secret"),
    ("POST", "/admin/resource-servers"),
    ("PATCH", "/admin/resource-servers/https%3A%2F%2Fapi.example.com"),
    ("POST", "/admin/users"),
    ("PATCH", "/admin/users/alice"),
    ("POST", "/admin/groups"),
    ("PATCH", "/admin/groups/staff"),
    ("POST", "/admin/tokens/revoke"),
    ("POST", "/admin/tokens/revoke-all"),
    ("POST", "/admin/keys/rotate"),
    ("POST", "/admin/keys/k/retire"),
    ("PATCH", "/admin/settings"),
];

/// A state with a client-credentials client, a resource server, a user and a group.
async fn fixture() -> (gatehouse::AppState, tempfile::TempDir, axum::Router, TestClient) {
    let (state, dir) = common::embedded_state();
    let app = common::app(&state);
    for (path, body) in [
        ("/admin/resource-servers", json!({"identifier": "https://api.example.com", "scopes": ["read"]})),
        ("/admin/users", json!({"username": "alice", "password": "correct horse battery"})),
        ("/admin/groups", json!({"name": "staff"})),
    ] {
        let r = send(&app, common::admin("POST", path, Some(body))).await;
        assert_eq!(r.status, StatusCode::CREATED, "{path}: {}", r.text);
    }
    let c = cc_client(&app).await;
    (state, dir, app, c)
}

fn raw_request(method: &str, path: &str, content_type: &str, auth: Option<&str>, body: Body) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(path).header(header::CONTENT_TYPE, content_type);
    if let Some(a) = auth {
        b = b.header(header::AUTHORIZATION, a);
    }
    b.body(body).unwrap()
}

fn admin_raw(method: &str, path: &str, body: impl Into<Body>) -> Request<Body> {
    raw_request(method, path, "application/json", Some(&format!("Bearer {}", common::ADMIN)), body.into())
}

/// The HTML error page of the authorization endpoint with this status.
fn assert_error_page(r: &Resp, status: StatusCode, needle: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    assert!(r.header("content-type").is_some_and(|c| c.starts_with("text/html")), "{:?}", r.headers);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert!(r.text.contains(needle), "{needle:?} in {}", r.text);
}

/// An endless chunked body: 1 KiB chunks, forever.
fn endless() -> Body {
    Body::from_stream(futures::stream::repeat_with(|| Ok::<_, std::io::Error>(Bytes::from(vec![b'a'; 1024]))))
}

#[tokio::test]
async fn bodies_over_16_kib_are_413_at_every_endpoint() {
    let (_state, _dir, app, c) = fixture().await;
    let big = format!("grant_type=client_credentials&pad={}", "x".repeat(LIMIT));
    for path in FORM_ENDPOINTS {
        let r = send(&app, form(path, Some(&c.basic()), &big)).await;
        if path.starts_with("/authorize") {
            assert_error_page(&r, StatusCode::PAYLOAD_TOO_LARGE, "invalid_request");
        } else {
            assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "invalid_request");
        }
    }
    let big_json = format!(r#"{{"client_name": "{}"}}"#, "x".repeat(LIMIT));
    for (method, path) in ADMIN_JSON {
        let path = path.replace("{client}", &c.id);
        let r = send(&app, admin_raw(method, &path, big_json.clone())).await;
        assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "invalid_request");
    }
    // GET /validate never reads a body: a large one changes nothing (401, no bearer token).
    let r = send(&app, raw_request("GET", "/validate", FORM, None, Body::from(vec![b'a'; 1 << 20]))).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");

    // Exactly 16 KiB is read (the unknown parameter ignored, RFC 6749 §3.2).
    let base = "grant_type=client_credentials&pad=";
    let exact = format!("{base}{}", "x".repeat(LIMIT - base.len()));
    let r = send(&app, form("/token", Some(&c.basic()), &exact)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn an_endless_chunked_body_is_cut_off_at_the_limit() {
    let (_state, _dir, app, c) = fixture().await;
    let within = |req| tokio::time::timeout(Duration::from_secs(10), send(&app, req));
    for path in FORM_ENDPOINTS {
        let r = within(raw_request("POST", path, FORM, Some(&c.basic()), endless())).await.expect(path);
        assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{path}: {}", r.text);
    }
    for (method, path) in ADMIN_JSON {
        let path = path.replace("{client}", &c.id);
        let r = within(admin_raw(method, &path, endless())).await.expect(method);
        assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "invalid_request");
    }
}

#[tokio::test]
async fn huge_authorization_headers_are_refused_by_their_length() {
    let (_state, _dir, app, c) = fixture().await;
    let huge = "A".repeat(64 * 1024);
    // Basic credentials are at most 4096 base64 characters.
    let r = send(&app, form("/token", Some(&format!("Basic {huge}")), "grant_type=client_credentials")).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_client");
    // An access token of 64 KiB (or of 1 MB) is longer than any of ours: invalid_token.
    for len in [64 * 1024, 1 << 20] {
        let jwt = format!("eyJhbGciOiJFUzI1NiJ9.{}.sig", "A".repeat(len));
        let req = Request::get("/validate").header(header::AUTHORIZATION, format!("Bearer {jwt}"));
        let r = send(&app, req.body(Body::empty()).unwrap()).await;
        assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_token");
        let req = Request::get("/admin/clients").header(header::AUTHORIZATION, format!("Bearer {jwt}"));
        let r = send(&app, req.body(Body::empty()).unwrap()).await;
        assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    }
    // A client still authenticates normally next to that.
    cc_token(&app, &c, "").await;
}

#[tokio::test]
async fn a_one_megabyte_jwt_is_refused_everywhere() {
    let (_state, _dir, app, c) = fixture().await;
    let jwt = format!("eyJhbGciOiJFUzI1NiJ9.{}.sig", "A".repeat(1 << 20));
    // In a form it is over the body limit.
    for (path, body) in [
        ("/introspect", format!("token={jwt}")),
        ("/revoke", format!("token={jwt}")),
        ("/token", format!("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={jwt}")),
    ] {
        let r = send(&app, form(path, Some(&c.basic()), &body)).await;
        assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "invalid_request");
    }
    // Within the body limit, a 15 KiB token is simply not one of ours.
    let jwt = format!("eyJhbGciOiJFUzI1NiJ9.{}.sig", "A".repeat(15 * 1024));
    let r = send(&app, form("/introspect", Some(&c.basic()), &format!("token={jwt}"))).await;
    assert_eq!((r.status, &r.body), (StatusCode::OK, &json!({"active": false})), "{}", r.text);
    let r = send(&app, common::admin("POST", "/admin/tokens/revoke", Some(json!({"token": jwt})))).await;
    assert_eq!((r.status, &r.body), (StatusCode::OK, &json!({"revoked": false})), "{}", r.text);
    // A client assertion over 8 KiB is refused by its length, before any key is looked up.
    let kind = "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer";
    let body =
        format!("grant_type=client_credentials&client_assertion_type={kind}&client_id={}&client_assertion={jwt}", c.id);
    let r = send(&app, form("/token", None, &body)).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_client");
    assert_eq!(r.body["error_description"], "the client assertion is not a well-formed signed JWT");
}

#[tokio::test]
async fn a_dpop_header_over_4_kib_is_refused() {
    let (_state, _dir, app, c) = fixture().await;
    let proof = format!("eyJ0eXAiOiJkcG9wK2p3dCJ9.{}.sig", "A".repeat(4096));
    let req = Request::post("/token")
        .header(header::CONTENT_TYPE, FORM)
        .header(header::AUTHORIZATION, c.basic())
        .header("dpop", &proof)
        .body(Body::from("grant_type=client_credentials"))
        .unwrap();
    let r = send(&app, req).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_dpop_proof");
    assert_eq!(r.body["error_description"], "the DPoP proof is longer than 4096 bytes");
}

#[tokio::test]
async fn query_strings_over_16_kib_are_400() {
    let (_state, _dir, app, c) = fixture().await;
    let long = "x".repeat(LIMIT);
    let r = send(&app, Request::get(format!("/validate?pad={long}")).body(Body::empty()).unwrap()).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(r.body["error_description"], "the query string is longer than 16384 bytes");
    let uri = format!("/authorize?response_type=code&client_id={}&state={long}", c.id);
    let r = send(&app, Request::get(uri).body(Body::empty()).unwrap()).await;
    assert_error_page(&r, StatusCode::BAD_REQUEST, "the query string is longer than 16384 bytes");
    let r = send(&app, common::admin("GET", &format!("/admin/clients?cursor={long}"), None)).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");

    // Exactly 16 KiB is read: the answer is the usual one (no bearer token: 401).
    let exact = format!("/validate?pad={}", "x".repeat(LIMIT - "pad=".len()));
    let r = send(&app, Request::get(exact).body(Body::empty()).unwrap()).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn thousands_of_parameters_are_read_in_bounded_time() {
    let (_state, _dir, app, c) = fixture().await;
    // 2,000 distinct unknown parameters (RFC 6749 §3.2: ignored) within 16 KiB.
    let many: String = (0..2000).map(|i| format!("{i:x}=1&")).collect();
    assert!(many.len() < LIMIT - 64);
    let started = std::time::Instant::now();
    let r = send(&app, form("/token", Some(&c.basic()), &format!("{many}grant_type=client_credentials"))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let token = r.body["access_token"].as_str().unwrap().to_owned();
    let r = send(&app, form("/introspect", Some(&c.basic()), &format!("{many}token={token}"))).await;
    assert_eq!(r.body["active"], true, "{}", r.text);
    // 5,000 empty pairs and empty values: nothing, as if omitted (RFC 6749 §3.1).
    let empty = format!("{}{}grant_type=client_credentials", "&".repeat(5000), "scope=&".repeat(1000));
    let r = send(&app, form("/token", Some(&c.basic()), &empty)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // 2,000 query parameters at /validate.
    let uri = format!("/validate?{}", many.trim_end_matches('&'));
    let req = Request::get(uri).header(header::AUTHORIZATION, format!("Bearer {token}"));
    let r = send(&app, req.body(Body::empty()).unwrap()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
}

#[tokio::test]
async fn repeated_parameters_are_invalid_request() {
    let (_state, _dir, app, c) = fixture().await;
    let token = cc_token(&app, &c, "").await;
    for (path, body) in [
        ("/token", "grant_type=client_credentials&grant_type=client_credentials".to_owned()),
        ("/token", "grant_type=client_credentials&scope=read&scope=write".to_owned()),
        ("/introspect", format!("token={token}&token={token}")),
        ("/revoke", format!("token={token}&token=other")),
    ] {
        let r = send(&app, form(path, Some(&c.basic()), &body)).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
        assert!(r.body["error_description"].as_str().unwrap().contains("is repeated"), "{}", r.text);
    }
    // Body credentials given twice.
    let body = format!("grant_type=client_credentials&client_id={0}&client_id={0}", c.id);
    assert_error(&send(&app, form("/token", None, &body)).await, StatusCode::BAD_REQUEST, "invalid_request");
    // In a query string.
    let req = Request::get("/validate?required_scope=read&required_scope=write")
        .header(header::AUTHORIZATION, format!("Bearer {token}"));
    assert_error(&send(&app, req.body(Body::empty()).unwrap()).await, StatusCode::BAD_REQUEST, "invalid_request");
    let uri = format!("/authorize?response_type=code&client_id={0}&client_id={0}", c.id);
    let r = send(&app, Request::get(uri).body(Body::empty()).unwrap()).await;
    assert_error_page(&r, StatusCode::BAD_REQUEST, "is repeated");
    let r = send(&app, form("/authorize/login", None, "csrf=a&csrf=b&username=alice")).await;
    assert_error_page(&r, StatusCode::BAD_REQUEST, "is repeated");
    // A parameter sent without a value counts as omitted, so it is not a repetition.
    let r = send(&app, form("/token", Some(&c.basic()), "grant_type=client_credentials&scope=&scope=read")).await;
    assert_eq!((r.status, &r.body["scope"]), (StatusCode::OK, &json!("read")), "{}", r.text);
    // The revoked... nothing: the token above is still active.
    let r = send(&app, form("/introspect", Some(&c.basic()), &format!("token={token}"))).await;
    assert_eq!(r.body["active"], true);
}

#[tokio::test]
async fn invalid_utf8_is_refused_in_forms_queries_and_json() {
    let (_state, _dir, app, c) = fixture().await;
    for body in [&b"grant_type=client_credentials&scope=%FF"[..], b"grant_type=client_credentials&scope=\xff", b"%C3=1"]
    {
        let req = raw_request("POST", "/token", FORM, Some(&c.basic()), Body::from(body.to_vec()));
        let r = send(&app, req).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
        assert_eq!(r.body["error_description"], "the parameters are not UTF-8 (RFC 6749 Appendix B)");
    }
    let r = send(&app, Request::get("/validate?expected_end_user=%FF").body(Body::empty()).unwrap()).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    let r = send(&app, Request::get(format!("/authorize?client_id={}%FF", c.id)).body(Body::empty()).unwrap()).await;
    assert_error_page(&r, StatusCode::BAD_REQUEST, "not UTF-8");
    // Basic credentials whose form-decoded id is not UTF-8.
    let basic = format!("Basic {}", base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "a%FF:b"));
    let r = send(&app, form("/token", Some(&basic), "grant_type=client_credentials")).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_client");
    // JSON bodies: the admin call's own error code.
    let r = send(&app, admin_raw("POST", "/admin/clients", &b"{\"client_name\": \"\xff\"}"[..])).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_client_metadata");
    let r = send(&app, admin_raw("PATCH", "/admin/settings", &b"{\"x\xff\": 1}"[..])).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    let r = send(&app, admin_raw("POST", "/admin/users", &b"{\"username\": \"\xc3\"}"[..])).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
}

/// A JSON object with a member name twice, at any depth, is refused with the admin call's own
/// error code, and nothing changes (serde_json alone would keep the last one).
#[tokio::test]
async fn duplicate_member_names_in_admin_json_are_400() {
    let (_state, _dir, app, _c) = fixture().await;
    let cases = [
        (
            "POST",
            "/admin/clients",
            r#"{"client_name": "a", "grant_types": ["client_credentials"], "client_name": "b"}"#,
            "invalid_client_metadata",
            "client_name",
        ),
        (
            "PATCH",
            "/admin/settings",
            r#"{"access_token_ttl": 60, "access_token_ttl": 7200}"#,
            "invalid_request",
            "access_token_ttl",
        ),
        (
            "POST",
            "/admin/users",
            r#"{"username": "bob", "password": "correct horse battery", "attributes": {"d": {"x": 1, "x": 2}}}"#,
            "invalid_request",
            "x",
        ),
    ];
    for (method, path, body, error, name) in cases {
        let r = send(&app, admin_raw(method, path, body)).await;
        assert_error(&r, StatusCode::BAD_REQUEST, error);
        let description = r.body["error_description"].as_str().unwrap();
        assert!(description.starts_with(&format!("duplicate member name `{name}`")), "{path}: {description}");
    }
    let r = send(&app, admin_raw("GET", "/admin/settings", "")).await;
    assert_eq!((r.status, &r.body["version"]), (StatusCode::OK, &json!(0)), "{}", r.text);
    let r = send(&app, admin_raw("GET", "/admin/users/bob", "")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = send(&app, admin_raw("GET", "/admin/clients", "")).await;
    assert_eq!(r.body["clients"].as_array().map(|c| c.iter().filter(|c| c["client_name"] == "b").count()), Some(0));
}

/// `{"member": [[[[…]]]]}` (or `[[[…` with no member) nested `depth` deep; `closed`: with
/// the closing brackets (else it ends inside the nesting).
fn nested(member: Option<&str>, depth: usize, closed: bool) -> String {
    let close = if closed { "]".repeat(depth) + "}" } else { String::new() };
    let inner = format!("{}{close}", "[".repeat(depth));
    match member {
        Some(m) => format!(r#"{{"{m}": {inner}"#),
        None => inner.trim_end_matches('}').to_owned(),
    }
}

#[test]
fn deeply_nested_json_is_400_without_exhausting_the_stack() {
    // On a thread with a quarter of tokio's default worker stack: the depth is bounded by the
    // parser (serde_json stops at 128 levels), not by the stack.
    let run = std::thread::Builder::new().stack_size(512 * 1024).spawn(|| {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
            let (_state, _dir, app, c) = fixture().await;
            for (method, path) in ADMIN_JSON {
                let path = path.replace("{client}", &c.id);
                let members = [None, Some("jwks"), Some("attributes"), Some("scopes"), Some("access_token_ttl")];
                let cases = members.into_iter().flat_map(|m| [(m, 10_000, false), (m, 5_000, true)]);
                for (member, depth, closed) in cases {
                    let r = send(&app, admin_raw(method, &path, nested(member, depth, closed))).await;
                    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{method} {path} {member:?} {depth}: {}", r.text);
                    assert!(r.body["error"].is_string(), "{}", r.text);
                }
            }
            // Within the limit the body is parsed and refused for what it says.
            let body = format!(
                r#"{{"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt",
                    "jwks": {}}}"#,
                nested(None, 100, true)
            );
            let r = send(&app, admin_raw("POST", "/admin/clients", body)).await;
            assert_error(&r, StatusCode::BAD_REQUEST, "invalid_client_metadata");
            assert!(r.body["error_description"].as_str().unwrap().starts_with("jwks:"), "{}", r.text);
        })
    });
    run.unwrap().join().expect("no stack overflow");
}

// ---- Over TCP, through the local server's HTTP stack (`gatehouse::server`, hyper) ----

/// Serves every endpoint on a loopback port, as `src/main.rs` does.
async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(gatehouse::server::serve(listener, app, std::future::pending()));
    addr
}

/// Writes `head` (and whatever `body` chunks), then reads the response until the server closes:
/// status and body.
async fn exchange(addr: &str, head: &str, body: &[&[u8]]) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    for chunk in body {
        if s.write_all(chunk).await.is_err() {
            break;
        }
    }
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut out))
        .await
        .expect("the server answered")
        .expect("read the answer");
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("a status line: {text:?}"));
    (status, text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default())
}

fn post_head(path: &str, extra: &str) -> String {
    format!("POST {path} HTTP/1.1\r\nHost: gatehouse\r\nConnection: close\r\nContent-Type: {FORM}\r\n{extra}\r\n")
}

#[tokio::test]
async fn over_tcp_oversized_requests_are_refused_early() {
    let (_state, _dir, app, c) = fixture().await;
    let addr = serve(app).await;
    let auth = format!("Authorization: {}\r\n", c.basic());

    // A declared 100 MB body: answered at once, without sending any of it.
    let (status, body) =
        exchange(&addr, &post_head("/token", &format!("{auth}Content-Length: 100000000\r\n")), &[]).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["error"], "invalid_request");

    // A chunked body that never ends (17 KiB sent, no last chunk): answered at the limit.
    let chunk = format!("400\r\n{}\r\n", "a".repeat(1024));
    let chunks = vec![chunk.as_bytes(); 17];
    let (status, body) =
        exchange(&addr, &post_head("/token", &format!("{auth}Transfer-Encoding: chunked\r\n")), &chunks).await;
    assert_eq!(status, 413, "{body}");

    // A 64 KiB Authorization header reaches Gatehouse, which refuses it by its length.
    let head = format!(
        "GET /validate HTTP/1.1\r\nHost: gatehouse\r\nConnection: close\r\nAuthorization: Bearer {}\r\n\r\n",
        "A".repeat(64 * 1024)
    );
    let (status, body) = exchange(&addr, &head, &[]).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["error"], "invalid_token");

    // A 20 KiB query string: Gatehouse's 400. Beyond 64 KiB, the HTTP layer answers 414 itself,
    // and a request head over ~400 KiB (one huge header) 431, before any Gatehouse code runs.
    for (len, expected) in [(20 * 1024, 400), (100 * 1024, 414)] {
        let head =
            format!("GET /validate?pad={} HTTP/1.1\r\nHost: gatehouse\r\nConnection: close\r\n\r\n", "x".repeat(len));
        let (status, body) = exchange(&addr, &head, &[]).await;
        assert_eq!(status, expected, "{len}: {body}");
    }
    let head = format!(
        "GET /validate HTTP/1.1\r\nHost: gatehouse\r\nConnection: close\r\nX-Big: {}\r\n\r\n",
        "a".repeat(1 << 20)
    );
    let (status, _) = exchange(&addr, &head, &[]).await;
    assert_eq!(status, 431);
}

/// A body that stops arriving (10 of a declared 100 bytes, the connection left open) is answered
/// 408 once `http::BODY_READ_TIMEOUT` has passed, and the connection closed: it holds the server
/// no longer.
#[tokio::test]
async fn over_tcp_a_stalled_body_is_408_after_the_timeout() {
    let (_state, _dir, app, c) = fixture().await;
    let addr = serve(app).await;
    let head = post_head("/token", &format!("Authorization: {}\r\nContent-Length: 100\r\n", c.basic()));
    let started = std::time::Instant::now();
    let (status, body) = exchange(&addr, &head, &[b"grant_type"]).await;
    assert_eq!(status, 408, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"error": "invalid_request", "error_description": "the request body did not arrive in time"})
    );
    assert!(started.elapsed() >= gatehouse::http::BODY_READ_TIMEOUT);
}

/// A client that sends requests and never reads the answers: once an answer has waited
/// `server::WRITE_STALL_TIMEOUT` for room, the server closes the connection (the client's
/// next write fails), instead of holding it, and a shutdown waiting for it, for ever.
#[tokio::test]
async fn over_tcp_a_client_that_never_reads_is_closed_after_the_timeout() {
    let (_state, _dir, app, _c) = fixture().await;
    let addr = serve(app).await;
    let timeout = gatehouse::server::WRITE_STALL_TIMEOUT;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut s = socket.connect(addr.parse().unwrap()).await.unwrap();
    let started = std::time::Instant::now();
    let metadata = "GET /.well-known/oauth-authorization-server HTTP/1.1\r\nHost: gatehouse\r\n\r\n".repeat(64);
    let written = tokio::time::timeout(timeout * 3, async {
        let mut n = 0usize;
        while s.write_all(metadata.as_bytes()).await.is_ok() {
            n += 64;
        }
        n
    });
    let n = written.await.expect("the server closed the connection");
    let elapsed = started.elapsed();
    assert!(elapsed >= timeout, "closed after {elapsed:?}, {n} requests sent");
}

/// A request head that stops arriving, a connection that sends nothing, and a keep-alive
/// connection left idle after its answer are all closed once `server::HEADER_READ_TIMEOUT`
/// has passed (slowloris); a second request on a keep-alive connection within it is served.
#[tokio::test]
async fn over_tcp_stalled_heads_and_idle_connections_are_closed_after_the_timeout() {
    let (_state, _dir, app, _c) = fixture().await;
    let addr = serve(app).await;
    let timeout = gatehouse::server::HEADER_READ_TIMEOUT;
    let metadata = "GET /.well-known/oauth-authorization-server HTTP/1.1\r\nHost: gatehouse\r\n\r\n";
    // Reads until the server closes (or an error), within twice the timeout: what arrived.
    async fn until_closed(s: &mut tokio::net::TcpStream, timeout: Duration) -> Vec<u8> {
        let mut out = Vec::new();
        let read = tokio::time::timeout(timeout * 2, async {
            let mut buf = [0u8; 4096];
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => out.extend_from_slice(&buf[..n]),
                }
            }
        });
        read.await.expect("the server closed the connection");
        out
    }
    let cases: [(&str, &[u8]); 3] = [
        ("half a head", b"GET /.well-known/jwks.json HTTP/1.1\r\nHost: gate"),
        ("nothing", b""),
        ("a request, then idle", metadata.as_bytes()),
    ];
    let runs = cases.map(|(what, sent)| {
        let addr = addr.clone();
        tokio::spawn(async move {
            // Before the connect: the server's timer starts at its accept, after this.
            let started = std::time::Instant::now();
            let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
            s.write_all(sent).await.unwrap();
            let got = String::from_utf8_lossy(&until_closed(&mut s, timeout).await).into_owned();
            let elapsed = started.elapsed();
            assert!(elapsed >= timeout, "{what}: closed after {elapsed:?}");
            if sent.ends_with(b"\r\n\r\n") {
                assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{what}: {got}");
                assert_eq!(got.matches("HTTP/1.1 ").count(), 1, "{what}: one answer: {got}");
            } else {
                // hyper answers a head that timed out with nothing, or a bare 408.
                assert!(got.is_empty() || got.starts_with("HTTP/1.1 408"), "{what}: {got}");
            }
        })
    });
    // Two requests on one keep-alive connection, the second well within the timeout.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    for _ in 0..2 {
        s.write_all(metadata.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 16 * 1024];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await.unwrap().unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200 OK\r\n"));
        tokio::time::sleep(timeout / 4).await;
    }
    for run in runs {
        run.await.unwrap();
    }
}

// ---- Free-form JSON the store must hold: user attributes, static claim values. DynamoDB holds
// at most 32 levels of nesting per item, no empty map keys, numbers of magnitude 1e-130 to
// below 1e126: beyond that its write fails, which was a 500. ----

/// `{"a": {"a": … "v"}}`: `depth` levels of objects.
fn deep(depth: usize) -> Value {
    (0..depth).fold(json!("v"), |v, _| json!({"a": v}))
}

async fn free_form_json_beyond_what_the_store_holds_is_400(store: std::sync::Arc<dyn gatehouse::store::Store>) {
    let state = common::state_on(store);
    let app = common::app(&state);
    // At the limits (the attributes object is a level: 1 + 15 = 16).
    let within = [
        json!({"x": deep(15)}),
        json!({"x": [1e125, -1e125, 1e-130, 0.0, u64::MAX, i64::MIN]}),
        json!({"x": {"y": ""}}),
    ];
    for (i, attributes) in within.into_iter().enumerate() {
        let body = json!({"username": format!("ok{i}"), "password": "correct horse battery", "attributes": attributes});
        let r = send(&app, common::admin("POST", "/admin/users", Some(body))).await;
        assert_eq!(r.status, StatusCode::CREATED, "{i}: {}", r.text);
    }
    let beyond = [
        (json!({"x": deep(16)}), "nested more than 16 levels deep"),
        (json!({"x": [deep(15)]}), "nested more than 16 levels deep"),
        (json!({"": 1}), "an object member has an empty name"),
        (json!({"x": {"": 1}}), "an object member has an empty name"),
        (json!({"x": 1e126}), "a number is outside 1e-130 to 1e125 in magnitude"),
        (json!({"x": -1e-131}), "a number is outside 1e-130 to 1e125 in magnitude"),
        (json!({"x": f64::MAX}), "a number is outside 1e-130 to 1e125 in magnitude"),
    ];
    for (attributes, why) in &beyond {
        let body = json!({"username": "bad", "password": "correct horse battery", "attributes": attributes});
        let r = send(&app, common::admin("POST", "/admin/users", Some(body))).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
        assert_eq!(r.body["error_description"], format!("attributes: {why}"));
        let patch = json!({"attributes": attributes});
        let r = send(&app, common::admin("PATCH", "/admin/users/ok0", Some(patch))).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    }
    // Static claim values (16 levels of their own), on a client and a resource server and its scopes.
    for value in [deep(17), json!(1e200), json!({"": true})] {
        let claims = json!([{"name": "c", "value": value}]);
        let body = json!({"grant_types": ["client_credentials"], "custom_claims": claims});
        let r = send(&app, common::admin("POST", "/admin/clients", Some(body))).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_client_metadata");
        let body = json!({"identifier": "https://api.example.com", "custom_claims": claims});
        let r = send(&app, common::admin("POST", "/admin/resource-servers", Some(body))).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
        let body = json!({"identifier": "https://api.example.com", "scopes": [{"name": "read", "claims": claims}]});
        let r = send(&app, common::admin("POST", "/admin/resource-servers", Some(body))).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    }
    let body = json!({"grant_types": ["client_credentials"], "custom_claims": [{"name": "c", "value": deep(16)}]});
    let r = send(&app, common::admin("POST", "/admin/clients", Some(body))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

#[tokio::test]
async fn free_form_json_beyond_what_the_store_holds_is_400_embedded() {
    let (store, _dir) = common::embedded();
    free_form_json_beyond_what_the_store_holds_is_400(store).await;
}

#[tokio::test]
async fn free_form_json_beyond_what_the_store_holds_is_400_dynamodb() {
    let Some((store, _, _)) = common::dynamo().await else { return };
    free_form_json_beyond_what_the_store_holds_is_400(store).await;
}

/// Ids, names and resources longer than any key can be: unknown, never a store error. On
/// DynamoDB a partition key holds at most 2048 bytes and a sort key 1024, and a request with a
/// longer one fails as a whole (it was a 500): a `client_id` over 256 bytes is an unknown
/// client, a `resource` over 1024 bytes `invalid_target` (and no resource server is registered
/// with a longer identifier), an admin path segment over 1024 bytes names no object (404), and
/// the DynamoDB store's reads find nothing under such keys.
async fn over_long_keys(store: std::sync::Arc<dyn gatehouse::store::Store>) {
    let state = common::state_on(store.clone());
    let app = common::app(&state);
    let c = cc_client(&app).await;
    let long = "a".repeat(3000);

    let r = send(
        &app,
        Request::get(format!("/authorize?client_id={long}&response_type=code")).body(Body::empty()).unwrap(),
    )
    .await;
    assert_error_page(&r, StatusCode::BAD_REQUEST, "unknown client_id");
    let r = send(&app, form("/token", None, &format!("grant_type=client_credentials&client_id={long}"))).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_client"); // no Authorization header: 400

    let identifier = |n: usize| format!("https://x.example/{}", "b".repeat(n - "https://x.example/".len()));
    let encoded = |i: &str| i.replace(':', "%3A").replace('/', "%2F");
    let rs = |i: String| common::admin("POST", "/admin/resource-servers", Some(json!({"identifier": i})));
    assert_eq!(send(&app, rs(identifier(1024))).await.status, StatusCode::CREATED, "the longest identifier");
    assert_error(&send(&app, rs(identifier(1025))).await, StatusCode::BAD_REQUEST, "invalid_request");
    let token =
        |i: &str| form("/token", Some(&c.basic()), &format!("grant_type=client_credentials&resource={}", encoded(i)));
    let r = send(&app, token(&identifier(1024))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_error(&send(&app, token(&identifier(1025))).await, StatusCode::BAD_REQUEST, "invalid_target");
    assert_error(&send(&app, token(&identifier(3000))).await, StatusCode::BAD_REQUEST, "invalid_target");

    // Keys built from a segment and a prefix: past DynamoDB's limits although the segment is not.
    create_user_and_group(&app).await;
    let near = "a".repeat(1020);
    for path in [format!("/admin/users/alice/consents/{near}"), format!("/admin/groups/staff/members/{near}")] {
        let r = send(&app, common::admin("DELETE", &path, None)).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}: {}", &path[..30], r.text);
    }
    let r = send(&app, common::admin("GET", &format!("/admin/tokens/count?type=access&client_id={long}"), None)).await;
    assert_eq!((r.status, &r.body), (StatusCode::OK, &json!({"count": 0})), "{}", r.text);
    let r = send(&app, common::admin("GET", &format!("/admin/tokens?type=access&end_user={long}"), None)).await;
    assert_eq!((r.status, &r.body["tokens"]), (StatusCode::OK, &json!([])), "{}", r.text);

    let rs_path = format!("/admin/resource-servers/{}", encoded(&identifier(1024)));
    assert_eq!(send(&app, common::admin("GET", &rs_path, None)).await.status, StatusCode::OK);
    for (method, path) in [
        ("GET", format!("/admin/users/{long}")),
        ("DELETE", format!("/admin/users/{long}")),
        ("GET", format!("/admin/users/{long}/groups")),
        ("GET", format!("/admin/users/{long}/consents")),
        ("GET", format!("/admin/clients/{long}")),
        ("DELETE", format!("/admin/clients/{long}")),
        ("GET", format!("/admin/groups/{long}")),
        ("GET", format!("/admin/groups/{long}/members")),
        ("GET", format!("/admin/resource-servers/{}", encoded(&identifier(1025)))),
        ("DELETE", format!("/admin/resource-servers/{}", encoded(&identifier(3000)))),
        ("POST", format!("/admin/keys/{long}/retire")),
    ] {
        let r = send(&app, common::admin(method, &path, None)).await;
        assert_eq!(
            (r.status, &r.body),
            (StatusCode::NOT_FOUND, &json!({"error": "not_found", "error_description": "no such object"})),
            "{method} {}",
            &path[..40]
        );
    }

    // The store itself, below those checks.
    assert_eq!(store.get_user(&long).await.unwrap(), None);
    assert_eq!(store.get_client(&long).await.unwrap(), None);
    assert_eq!(store.get_group(&long).await.unwrap(), None);
    assert_eq!(store.get_resource_server(&identifier(1025)).await.unwrap(), None);
    assert_eq!(store.get_token(&long, common::T0).await.unwrap(), None);
    assert_eq!(store.list_consents(&long).await.unwrap(), vec![]);
    assert_eq!(store.groups_of(&long).await.unwrap(), Vec::<String>::new());
}

async fn create_user_and_group(app: &axum::Router) {
    for (path, body) in [
        ("/admin/users", json!({"username": "alice", "password": "correct horse battery"})),
        ("/admin/groups", json!({"name": "staff"})),
    ] {
        let r = send(app, common::admin("POST", path, Some(body))).await;
        assert_eq!(r.status, StatusCode::CREATED, "{path}: {}", r.text);
    }
}

#[tokio::test]
async fn over_long_keys_embedded() {
    let (store, _dir) = common::embedded();
    over_long_keys(store).await;
}

#[tokio::test]
async fn over_long_keys_dynamodb() {
    let Some((store, _, _)) = common::dynamo().await else { return };
    over_long_keys(store).await;
}
