//! The API Gateway sample events in `events/<function>/<case>.json`, run through that function's
//! router the way `lambda_http::run` hands them over: the HTTP API payload v2.0 JSON is parsed
//! by `lambda_http::request::from_str` (which decodes base64 bodies and puts the
//! `RequestContext` in the request's extensions), the body becomes an `axum::body::Body`, and
//! the request goes through `gatehouse::endpoints::<function>::router`. Every event has exactly
//! one test asserting its response; `{{ACCESS_TOKEN}}` in a body is replaced by a live token.
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::http::{Request, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use gatehouse::clock::Clock;
use gatehouse::keys::LocalSigner;
use gatehouse::model::{AuthMethod, Client, GrantType, Scope};
use gatehouse::store::Store;
use gatehouse::{AppState, Config};
use lambda_http::request::RequestContext;
use serde_json::{Value, json};

use crate::common::{self, Resp, T0};

/// The Lambda functions (`functions/<name>`): the only directories `events/` may hold.
const FUNCTIONS: [&str; 5] = ["authorize", "introspect", "revoke", "token", "token-admin"];
/// Every event file, each asserted by a test below.
const CASES: [(&str, &str); 12] = [
    ("authorize", "unknown-client"),
    ("introspect", "active"),
    ("introspect", "inactive"),
    ("introspect", "validate"),
    ("revoke", "revoke"),
    ("token", "bad-client"),
    ("token", "client-credentials"),
    ("token", "jwks"),
    ("token", "metadata"),
    ("token-admin", "count-tokens"),
    ("token-admin", "create-client"),
    ("token-admin", "create-client-iam"),
];

/// The fixed test credentials the events carry (never real ones).
const CLIENT_ID: &str = "events-client";
const CLIENT_SECRET: &str = "events-secret-0123456789abcdef0123456789abcdef";
const ADMIN_TOKEN: &str = "events-admin-token-0123456789abcdef0123456789";
/// The events' `requestContext.domainName`, as the issuer a deployment would configure.
const DOMAIN: &str = "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com";
const ISSUER: &str = "https://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com";
/// The placeholder for a live access token in an event body.
const ACCESS_TOKEN: &str = "{{ACCESS_TOKEN}}";
/// The IAM principal of `token-admin/create-client-iam.json`.
const IAM_USER_ARN: &str = "arn:aws:sts::123456789012:assumed-role/gatehouse-admin/events-operator";

// ---------------------------------------------------------------------------------------------
// Harness

fn events_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("events")
}

/// An event file as JSON.
fn raw_event(function: &str, case: &str) -> Value {
    let path = events_dir().join(function).join(format!("{case}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()))
}

/// An event's body as sent by the client (base64 decoded when `isBase64Encoded`).
fn decoded_body(event: &Value) -> Option<String> {
    let body = event["body"].as_str()?;
    if event["isBase64Encoded"] == true {
        Some(String::from_utf8(STANDARD.decode(body).expect("base64 body")).expect("UTF-8 body"))
    } else {
        Some(body.to_owned())
    }
}

/// Replaces placeholders in the event's body (re-encoding a base64 body) and its
/// `authorization` header, and returns the event as JSON text. Panics if a placeholder is left
/// over anywhere.
fn substitute(mut event: Value, subs: &[(&str, &str)]) -> String {
    if let Some(auth) = event["headers"]["authorization"].as_str() {
        let auth = subs.iter().fold(auth.to_owned(), |a, (from, to)| a.replace(from, to));
        event["headers"]["authorization"] = json!(auth);
    }
    if let Some(mut body) = decoded_body(&event) {
        for (from, to) in subs {
            body = body.replace(from, to);
        }
        event["body"] = if event["isBase64Encoded"] == true { json!(STANDARD.encode(&body)) } else { json!(body) };
        assert!(!body.contains("{{"), "a placeholder is left in the body: {body}");
    }
    let text = event.to_string();
    assert!(!text.contains("{{"), "a placeholder is left in the event: {text}");
    text
}

/// The request `lambda_http::run` would hand to the router, with an axum body. The
/// extensions (`RequestContext`, `RawHttpPath`, ...) are kept.
fn to_request(json: &str) -> Request<axum::body::Body> {
    let req: lambda_http::Request = lambda_http::request::from_str(json).expect("an API Gateway HTTP API v2.0 event");
    req.map(|b| axum::body::Body::from(b.to_vec()))
}

/// The router the Lambda function `function` serves (see `functions/*/src/main.rs`).
fn function_router(function: &str, state: &AppState) -> Router {
    let state = state.clone();
    match function {
        "authorize" => gatehouse::endpoints::authorize::router(state),
        "introspect" => gatehouse::endpoints::introspect::router(state),
        "revoke" => gatehouse::endpoints::revoke::router(state),
        "token" => gatehouse::endpoints::token::router(state),
        "token-admin" => gatehouse::endpoints::token_admin::router(state),
        other => panic!("no Lambda function `{other}`"),
    }
}

/// Sends `events/<function>/<case>.json` through `function`'s router.
async fn invoke(state: &AppState, function: &str, case: &str, subs: &[(&str, &str)]) -> Resp {
    let json = substitute(raw_event(function, case), subs);
    common::send(&function_router(function, state), to_request(&json)).await
}

/// The configuration the events are written for: issuer on the events' domain, the events'
/// admin token, and IAM admin authorization when `admin_iam`.
fn events_config(admin_iam: bool) -> Config {
    Config::from_lookup(|k| match k {
        "GATEHOUSE_ISSUER" => Some(ISSUER.into()),
        "GATEHOUSE_ADMIN_TOKEN" => Some(ADMIN_TOKEN.into()),
        "GATEHOUSE_TENANT" => Some("test".into()),
        "GATEHOUSE_ADMIN_IAM" if admin_iam => Some("true".into()),
        _ => None,
    })
    .expect("events config is valid")
}

/// The fixed client the events authenticate as: confidential (Basic), client credentials,
/// scopes `read write`.
fn events_client() -> Client {
    Client {
        client_id: CLIENT_ID.into(),
        client_name: Some("Events sample client".into()),
        secret_digest: Some(gatehouse::crypto::digest(CLIENT_SECRET)),
        redirect_uris: vec![],
        grant_types: vec![GrantType::ClientCredentials],
        token_endpoint_auth_method: AuthMethod::ClientSecretBasic,
        scope: Scope::parse("read write").unwrap(),
        pre_approved_scopes: Scope::default(),
        access_token_lifetime: None,
        refresh_token_lifetime: None,
        created_at: T0,
        previous_secret_digest: None,
        previous_secret_expires_at: None,
        version: 0,
        jwks: None,
        jwt_bearer_issuers: Vec::new(),
        dpop_bound_access_tokens: false,
        custom_claims: vec![],
        tokens_revoked_at: None,
    }
}

/// A state on `store` (local in-memory key, manual clock at T0) holding the events' client.
async fn events_state_on(store: Arc<dyn Store>, admin_iam: bool) -> AppState {
    let state = AppState::new(events_config(admin_iam), store, Arc::new(LocalSigner::ephemeral()), Clock::manual(T0));
    state.store.create_client(&events_client()).await.expect("insert the events client");
    state
}

/// A state on a fresh embedded store (the guard keeps its directory alive).
async fn events_state(admin_iam: bool) -> (AppState, tempfile::TempDir) {
    let (store, dir) = common::embedded();
    (events_state_on(store, admin_iam).await, dir)
}

/// The claims of a JWT, decoded without verification (the test checks them exactly).
fn jwt_part(token: &str, i: usize) -> Value {
    let part = token.split('.').nth(i).expect("a compact JWS");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

fn assert_no_store_json(r: &Resp) {
    assert_eq!(r.header("cache-control"), Some("no-store"), "{r:?}");
    assert_eq!(r.header("pragma"), Some("no-cache"), "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/json"), "{r:?}");
}

/// `token/client-credentials.json` (base64 body): 200 with exactly the RFC 6749 §5.1 members
/// and a verifiable RFC 9068 token. Returns the access token.
async fn client_credentials(state: &AppState) -> String {
    let r = invoke(state, "token", "client-credentials", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_no_store_json(&r);
    assert_eq!(r.headers.get("www-authenticate"), None);
    let token = r.body["access_token"].as_str().expect("access_token").to_owned();
    assert_eq!(r.body, json!({"access_token": token, "token_type": "Bearer", "expires_in": 3600, "scope": "read"}));
    assert_eq!(jwt_part(&token, 0), json!({"alg": "ES256", "typ": "at+jwt", "kid": state.signer.kid()}));
    let claims = jwt_part(&token, 1);
    let jti = claims["jti"].as_str().expect("jti").to_owned();
    assert_eq!(jti.len(), 22);
    assert_eq!(
        claims,
        json!({"iss": ISSUER, "sub": CLIENT_ID, "aud": ISSUER, "client_id": CLIENT_ID, "scope": "read",
               "iat": T0, "exp": T0 + 3600, "jti": jti})
    );
    let verified = state.signer.keys().verify_access_token(&token, ISSUER, T0).expect("the signature verifies");
    assert_eq!(verified.jti, jti);
    token
}

/// `introspect/active.json` with `token`: the exact RFC 7662 §2.2 response.
async fn introspect_active(state: &AppState, token: &str) {
    let jti = jwt_part(token, 1)["jti"].clone();
    let r = invoke(state, "introspect", "active", &[(ACCESS_TOKEN, token)]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_no_store_json(&r);
    assert_eq!(
        r.body,
        json!({"active": true, "client_id": CLIENT_ID, "sub": CLIENT_ID, "aud": ISSUER, "iss": ISSUER,
               "exp": T0 + 3600, "iat": T0, "jti": jti, "token_type": "Bearer", "scope": "read"})
    );
}

/// An introspection answered exactly `{"active": false}` (RFC 7662 §2.2).
fn assert_inactive(r: &Resp) {
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_no_store_json(r);
    assert_eq!(r.body, json!({"active": false}));
}

/// `revoke/revoke.json` with `token`: 200, empty body, no-store (RFC 7009 §2.2).
async fn revoke(state: &AppState, token: &str) {
    let r = invoke(state, "revoke", "revoke", &[(ACCESS_TOKEN, token)]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.text, "");
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("pragma"), Some("no-cache"));
}

/// Issue by client credentials, introspect (active), revoke, introspect (inactive), revoke
/// again (still 200: RFC 7009 §2.2), on any backend.
async fn token_lifecycle(state: &AppState) {
    let token = client_credentials(state).await;
    introspect_active(state, &token).await;
    revoke(state, &token).await;
    assert_inactive(&invoke(state, "introspect", "active", &[(ACCESS_TOKEN, &token)]).await);
    revoke(state, &token).await;
    assert_inactive(&invoke(state, "introspect", "inactive", &[]).await);
}

// ---------------------------------------------------------------------------------------------
// The events directory and the events' shape

#[test]
fn event_directories_are_the_functions() {
    let mut found = BTreeSet::new();
    for entry in std::fs::read_dir(events_dir()).expect("events/ exists") {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if entry.file_type().unwrap().is_file() {
            assert_eq!(name, "README.md", "events/ holds only README.md and one directory per function");
            continue;
        }
        assert!(FUNCTIONS.contains(&name.as_str()), "events/{name} is not a Lambda function ({FUNCTIONS:?})");
        for file in std::fs::read_dir(entry.path()).unwrap() {
            let file = file.unwrap().file_name().into_string().unwrap();
            let case = file.strip_suffix(".json").unwrap_or_else(|| panic!("events/{name}/{file} is not .json"));
            found.insert((name.clone(), case.to_owned()));
        }
    }
    for f in FUNCTIONS {
        assert!(found.iter().any(|(d, _)| d == f), "function {f} has no event in events/{f}/");
        assert!(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("functions").join(f).is_dir(), "functions/{f}");
    }
    let expected: BTreeSet<_> = CASES.iter().map(|(f, c)| (f.to_string(), c.to_string())).collect();
    assert_eq!(found, expected, "every event file has a test in tests/it/events.rs (CASES)");
    assert!(events_dir().join("README.md").is_file(), "events/README.md documents the events");
}

#[tokio::test]
async fn events_are_api_gateway_http_v2_payloads() {
    let mut request_ids = BTreeSet::new();
    let mut base64_forms = 0;
    for (function, case) in CASES {
        let ev = raw_event(function, case);
        let at = format!("events/{function}/{case}.json");
        let ctx = &ev["requestContext"];
        let method = ctx["http"]["method"].as_str().unwrap_or_else(|| panic!("{at}: requestContext.http.method"));
        let path = ev["rawPath"].as_str().unwrap_or_else(|| panic!("{at}: rawPath"));
        let query = ev["rawQueryString"].as_str().unwrap_or_else(|| panic!("{at}: rawQueryString"));
        let route = format!("{method} {path}");
        assert_eq!(ev["version"], "2.0", "{at}");
        assert_eq!(ev["routeKey"], route.as_str(), "{at}");
        assert_eq!(ctx["routeKey"], route.as_str(), "{at}");
        assert_eq!(ctx["http"]["path"], path, "{at}");
        assert_eq!(ctx["http"]["protocol"], "HTTP/1.1", "{at}");
        assert_eq!(ctx["stage"], "$default", "{at}");
        assert_eq!(ctx["accountId"], "123456789012", "{at}");
        assert_eq!(ctx["apiId"], "a1b2c3d4e5", "{at}");
        assert_eq!(ctx["domainName"], DOMAIN, "{at}");
        for k in ["sourceIp", "userAgent"] {
            assert!(ctx["http"][k].is_string(), "{at}: requestContext.http.{k}");
        }
        for k in ["requestId", "time"] {
            assert!(ctx[k].is_string(), "{at}: requestContext.{k}");
        }
        assert!(ctx["timeEpoch"].as_i64().is_some_and(|t| t >= 1_700_000_000_000), "{at}: timeEpoch in milliseconds");
        assert!(request_ids.insert(ctx["requestId"].as_str().unwrap().to_owned()), "{at}: requestId is unique");
        assert!(ev["isBase64Encoded"].is_boolean(), "{at}: isBase64Encoded");

        let headers = ev["headers"].as_object().unwrap_or_else(|| panic!("{at}: headers"));
        for (name, value) in headers {
            assert_eq!(name, &name.to_ascii_lowercase(), "{at}: header names are lower-case");
            assert!(value.is_string(), "{at}: header {name}");
        }
        assert_eq!(headers["host"], DOMAIN, "{at}");
        assert_eq!(headers["user-agent"], ctx["http"]["userAgent"], "{at}");
        assert_eq!(headers["x-forwarded-proto"], "https", "{at}");
        // Only the fixed test credentials, never a real one.
        match headers.get("authorization").and_then(Value::as_str) {
            Some(a) if a.starts_with("Basic ") => {
                let pair = String::from_utf8(STANDARD.decode(&a["Basic ".len()..]).unwrap()).unwrap();
                let (id, secret) = pair.split_once(':').unwrap();
                assert_eq!(id, CLIENT_ID, "{at}");
                let wrong = case == "bad-client";
                assert_eq!(secret == CLIENT_SECRET, !wrong, "{at}: the client secret");
                assert!(secret.starts_with("events-secret-"), "{at}");
            }
            Some(a) if a.starts_with("Bearer ") && function == "introspect" => {
                assert_eq!(a, format!("Bearer {ACCESS_TOKEN}"), "{at}: a live access token")
            }
            Some(a) if a.starts_with("Bearer ") => assert_eq!(a, format!("Bearer {ADMIN_TOKEN}"), "{at}"),
            Some(a) => assert!(a.starts_with("AWS4-HMAC-SHA256 "), "{at}: unexpected authorization {a}"),
            None => {}
        }

        let body = decoded_body(&ev);
        match method {
            "GET" => assert_eq!(body, None, "{at}: a GET has no body"),
            _ => {
                let body = body.unwrap_or_else(|| panic!("{at}: a {method} has a body"));
                let ct = headers["content-type"].as_str().unwrap();
                if ct == "application/x-www-form-urlencoded" && ev["isBase64Encoded"] == true {
                    base64_forms += 1;
                }
                if ct == "application/json" {
                    serde_json::from_str::<Value>(&body).unwrap_or_else(|e| panic!("{at}: JSON body: {e}"));
                }
                match headers.get("content-length") {
                    Some(len) => assert_eq!(len.as_str(), Some(body.len().to_string().as_str()), "{at}"),
                    None => assert!(body.contains(ACCESS_TOKEN), "{at}: content-length is missing"),
                }
            }
        }

        // What lambda_http makes of it: method, URI, headers, body and the request context.
        let req = to_request(&substitute(ev.clone(), &[(ACCESS_TOKEN, "live-token")]));
        assert_eq!(req.method().as_str(), method, "{at}");
        assert_eq!(req.uri().path(), path, "{at}");
        assert_eq!(req.uri().query().unwrap_or(""), query, "{at}");
        assert_eq!(req.uri().host(), Some(DOMAIN), "{at}");
        assert_eq!(req.headers().len(), headers.len(), "{at}");
        let Some(RequestContext::ApiGatewayV2(rc)) = req.extensions().get::<RequestContext>() else {
            panic!("{at}: no API Gateway v2 request context");
        };
        assert_eq!(rc.request_id.as_deref(), ctx["requestId"].as_str(), "{at}");
        assert_eq!(rc.stage.as_deref(), Some("$default"), "{at}");
        let iam = rc.authorizer.as_ref().and_then(|a| a.iam.as_ref());
        assert_eq!(iam.is_some(), case == "create-client-iam", "{at}: requestContext.authorizer.iam");
        let sent = decoded_body(&ev).unwrap_or_default().replace(ACCESS_TOKEN, "live-token");
        let got = axum::body::to_bytes(req.into_body(), usize::MAX).await.unwrap();
        assert_eq!(got, sent.as_bytes(), "{at}: the body reaches the router decoded");
    }
    assert!(base64_forms >= 1, "at least one form body is base64-encoded, as API Gateway often sends them");
}

#[tokio::test]
async fn events_are_served_only_by_their_function() {
    let (state, _dir) = events_state(false).await;
    for (function, case) in CASES {
        for other in FUNCTIONS.into_iter().filter(|f| *f != function) {
            let json = substitute(raw_event(function, case), &[(ACCESS_TOKEN, "live-token")]);
            let r = common::send(&function_router(other, &state), to_request(&json)).await;
            common::assert_error(&r, StatusCode::NOT_FOUND, "not_found");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// One test per function's events

#[tokio::test]
async fn token_client_credentials() {
    let (state, _dir) = events_state(false).await;
    let token = client_credentials(&state).await;
    let jti = jwt_part(&token, 1)["jti"].as_str().unwrap().to_owned();
    let record = state.store.get_token(&jti, T0).await.unwrap().expect("the token's record is stored");
    assert_eq!((record.client_id.as_str(), record.scope.to_string().as_str()), (CLIENT_ID, "read"));
}

#[tokio::test]
async fn token_bad_client() {
    let (state, _dir) = events_state(false).await;
    let r = invoke(&state, "token", "bad-client", &[]).await;
    common::assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_client");
    assert_eq!(r.body["error_description"], "client authentication failed");
    assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"gatehouse\""));
}

#[tokio::test]
async fn token_metadata() {
    let (state, _dir) = events_state(false).await;
    let r = invoke(&state, "token", "metadata", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("cache-control"), Some("public, max-age=300"));
    assert_eq!(r.header("pragma"), None);
    assert_eq!(
        r.body,
        json!({
            "issuer": ISSUER,
            "authorization_endpoint": format!("{ISSUER}/authorize"),
            "token_endpoint": format!("{ISSUER}/token"),
            "jwks_uri": format!("{ISSUER}/.well-known/jwks.json"),
            "revocation_endpoint": format!("{ISSUER}/revoke"),
            "introspection_endpoint": format!("{ISSUER}/introspect"),
            "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token", "password",
                                      "urn:ietf:params:oauth:grant-type:jwt-bearer"],
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported":
                ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
            "revocation_endpoint_auth_methods_supported":
                ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["ES256", "RS256"],
            "revocation_endpoint_auth_signing_alg_values_supported": ["ES256", "RS256"],
            "introspection_endpoint_auth_signing_alg_values_supported": ["ES256", "RS256"],
            "authorization_response_iss_parameter_supported": true,
            "dpop_signing_alg_values_supported": ["ES256", "PS256", "RS256"],
        })
    );
}

#[tokio::test]
async fn token_jwks() {
    let (state, _dir) = events_state(false).await;
    let r = invoke(&state, "token", "jwks", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("cache-control"), Some("public, max-age=300"));
    assert_eq!(r.body, state.signer.keys().jwks());
    let keys = r.body["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{}", r.text);
    let k = keys[0].as_object().unwrap();
    assert_eq!(
        k.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        BTreeSet::from(["kty", "crv", "x", "y", "kid", "alg", "use"])
    );
    assert_eq!(
        (&k["kty"], &k["crv"], &k["alg"], &k["use"]),
        (&json!("EC"), &json!("P-256"), &json!("ES256"), &json!("sig"))
    );
    assert_eq!(k["kid"], state.signer.kid());
}

#[tokio::test]
async fn introspect_active_and_inactive() {
    let (state, _dir) = events_state(false).await;
    let token = client_credentials(&state).await;
    introspect_active(&state, &token).await;
    assert_inactive(&invoke(&state, "introspect", "inactive", &[]).await);
    // Still active when the clock reaches one second before expiry; inactive at expiry.
    state.clock.advance(3599);
    introspect_active(&state, &token).await;
    state.clock.advance(1);
    assert_inactive(&invoke(&state, "introspect", "active", &[(ACCESS_TOKEN, &token)]).await);
}

/// `introspect/validate.json` (`GET /validate?required_scope=read`, the live token as bearer):
/// 200 with the token's members; once revoked, 401 `invalid_token` (RFC 6750 §3.1).
#[tokio::test]
async fn introspect_validate() {
    let (state, _dir) = events_state(false).await;
    let token = client_credentials(&state).await;
    let jti = jwt_part(&token, 1)["jti"].clone();
    let r = invoke(&state, "introspect", "validate", &[(ACCESS_TOKEN, &token)]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_no_store_json(&r);
    assert_eq!(r.headers.get("www-authenticate"), None);
    assert_eq!(
        r.body,
        json!({"active": true, "client_id": CLIENT_ID, "sub": CLIENT_ID, "aud": ISSUER, "iss": ISSUER,
               "exp": T0 + 3600, "iat": T0, "jti": jti, "token_type": "Bearer", "scope": "read"})
    );
    revoke(&state, &token).await;
    let r = invoke(&state, "introspect", "validate", &[(ACCESS_TOKEN, &token)]).await;
    common::assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_token");
    assert_eq!(
        r.header("www-authenticate"),
        Some(r#"Bearer realm="gatehouse", error="invalid_token", error_description="the access token was revoked""#)
    );
}

#[tokio::test]
async fn revoke_revokes_the_live_token() {
    let (state, _dir) = events_state(false).await;
    token_lifecycle(&state).await;
    let r = invoke(&state, "token-admin", "count-tokens", &[]).await;
    assert_eq!(r.body, json!({"count": 0}), "a revoked token is not counted");
}

#[tokio::test]
async fn authorize_unknown_client() {
    let (state, _dir) = events_state(false).await;
    let r = invoke(&state, "authorize", "unknown-client", &[]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("pragma"), Some("no-cache"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert_eq!(
        r.header("content-security-policy"),
        Some("default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'")
    );
    assert_eq!(r.header("location"), None, "an unknown client is never redirected to");
    assert!(r.text.starts_with("<!doctype html>"), "{}", r.text);
    assert!(r.text.contains(r#"<p class="error" role="alert">unknown client_id</p>"#), "{}", r.text);
    assert!(r.text.contains("<code>invalid_request</code>"), "{}", r.text);
    assert!(!r.text.contains("app.example.com"), "the unverified redirect_uri is not echoed: {}", r.text);
}

/// Asserts a 201 client registration of `name` with `scope`; returns the new client.
fn assert_created(r: &Resp, name: &str, scope: &str) -> common::TestClient {
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_no_store_json(r);
    let id = r.body["client_id"].as_str().expect("client_id").to_owned();
    let secret = r.body["client_secret"].as_str().expect("client_secret").to_owned();
    assert_eq!((id.len(), secret.len()), (22, 43), "{}", r.text);
    assert_eq!(
        r.body,
        json!({
            "client_id": id,
            "client_id_issued_at": T0,
            "client_name": name,
            "redirect_uris": [],
            "grant_types": ["client_credentials"],
            "token_endpoint_auth_method": "client_secret_basic",
            "scope": scope,
            "client_secret": secret,
            "client_secret_expires_at": 0,
        })
    );
    common::TestClient { id, secret: Some(secret) }
}

#[tokio::test]
async fn token_admin_create_client() {
    let (state, _dir) = events_state(false).await;
    let r = invoke(&state, "token-admin", "create-client", &[]).await;
    let created = assert_created(&r, "Events reporting service", "read");
    // The new client's credentials work at the token function.
    let token_router = function_router("token", &state);
    let t = common::cc_token(&token_router, &created, "").await;
    assert_eq!(jwt_part(&t, 1)["client_id"], created.id.as_str());
}

#[tokio::test]
async fn token_admin_create_client_iam() {
    // GATEHOUSE_ADMIN_IAM=true: API Gateway's IAM authorizer identity is the credential.
    gatehouse::audit::start_capture();
    let (state, _dir) = events_state(true).await;
    let r = invoke(&state, "token-admin", "create-client-iam", &[]).await;
    let created = assert_created(&r, "Events billing service", "read write");
    let audited = gatehouse::audit::captured()
        .into_iter()
        .find(|l| l["event"] == "admin_change" && l["object"] == created.id.as_str())
        .expect("the creation is audited");
    assert_eq!(audited["actor"], format!("iam:{IAM_USER_ARN}"));
    assert_eq!(audited["action"], "client_created");

    // Without GATEHOUSE_ADMIN_IAM the IAM context is not trusted and there is no bearer token.
    let (state, _dir) = events_state(false).await;
    let r = invoke(&state, "token-admin", "create-client-iam", &[]).await;
    common::assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"gatehouse\""));
}

#[tokio::test]
async fn token_admin_count_tokens() {
    let (state, _dir) = events_state(false).await;
    let r = invoke(&state, "token-admin", "count-tokens", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_no_store_json(&r);
    assert_eq!(r.body, json!({"count": 0}));
    for _ in 0..2 {
        client_credentials(&state).await;
    }
    let r = invoke(&state, "token-admin", "count-tokens", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_no_store_json(&r);
    assert_eq!(r.body, json!({"count": 2}));
}

#[tokio::test]
async fn dynamo_token_lifecycle() {
    let Some((store, ddb, table)) = common::dynamo().await else { return };
    let state = events_state_on(store, false).await;
    token_lifecycle(&state).await;
    ddb.delete_table().table_name(&table).send().await.expect("delete the test table");
}
