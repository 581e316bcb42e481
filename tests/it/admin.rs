//! The admin API under `/admin`: credentials (bearer token, API Gateway IAM context only when
//! configured), clients (RFC 7591 metadata), resource servers, token listings, counts and
//! revocation.
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse::clock::Clock;
use gatehouse::keys::LocalSigner;
use gatehouse::model::{AuthMethod, GrantType, TokenKind};
use gatehouse::store::TokenQuery;
use gatehouse::{AppState, Config};
use lambda_http::aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerIamDescription, ApiGatewayV2httpRequestContext,
};
use lambda_http::request::RequestContext;
use serde_json::{Value, json};

use crate::common::{self, ADMIN, T0, TestClient, admin, assert_error, cc_client, cc_token, form, register, send};

const BEARER_CHALLENGE: &str = "Bearer realm=\"gatehouse\"";
/// RFC 6750 §3.1: a credential was presented, and it is wrong (or expired, revoked, ...).
const INVALID_TOKEN_CHALLENGE: &str = "Bearer realm=\"gatehouse\", error=\"invalid_token\"";

fn jti(token: &str) -> String {
    let p = token.split('.').nth(1).unwrap();
    let v: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap();
    v["jti"].as_str().unwrap().to_owned()
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A state whose configuration is built from `pairs` (issuer and tenant added).
fn state_with_config(pairs: &[(&str, &str)]) -> (AppState, tempfile::TempDir) {
    let mut all: Vec<(String, String)> = vec![
        ("GATEHOUSE_ISSUER".into(), "https://auth.test.example".into()),
        ("GATEHOUSE_TENANT".into(), "test".into()),
    ];
    all.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let config = Config::from_lookup(|k| all.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())).unwrap();
    let (store, dir) = common::embedded();
    (AppState::new(config, store, Arc::new(LocalSigner::ephemeral()), Clock::manual(T0)), dir)
}

/// A request with an arbitrary Authorization header (or none) and an optional JSON body.
fn admin_with(method: &str, path: &str, auth: Option<&str>, body: Option<Value>) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(path);
    if let Some(a) = auth {
        b = b.header(header::AUTHORIZATION, a);
    }
    match body {
        Some(v) => b.header(header::CONTENT_TYPE, "application/json").body(Body::from(v.to_string())).unwrap(),
        None => b.body(Body::empty()).unwrap(),
    }
}

/// Every admin route, with a body where one is expected.
fn every_admin_call() -> Vec<(&'static str, String, Option<Value>)> {
    vec![
        ("POST", "/admin/clients".into(), Some(json!({"grant_types": ["client_credentials"]}))),
        ("GET", "/admin/clients".into(), None),
        ("GET", "/admin/clients/some-client".into(), None),
        ("PATCH", "/admin/clients/some-client".into(), Some(json!({"client_name": "x"}))),
        ("DELETE", "/admin/clients/some-client".into(), None),
        ("POST", "/admin/clients/some-client/secret".into(), None),
        ("POST", "/admin/resource-servers".into(), Some(json!({"identifier": "https://api.example.com"}))),
        ("GET", "/admin/resource-servers".into(), None),
        ("GET", "/admin/resource-servers/https%3A%2F%2Fapi.example.com".into(), None),
        ("PATCH", "/admin/resource-servers/https%3A%2F%2Fapi.example.com".into(), Some(json!({"name": "x"}))),
        ("DELETE", "/admin/resource-servers/https%3A%2F%2Fapi.example.com".into(), None),
        ("GET", "/admin/users".into(), None),
        ("GET", "/admin/users/alice/groups".into(), None),
        ("POST", "/admin/groups".into(), Some(json!({"name": "staff"}))),
        ("GET", "/admin/groups".into(), None),
        ("GET", "/admin/groups/staff".into(), None),
        ("PATCH", "/admin/groups/staff".into(), Some(json!({"description": "x"}))),
        ("DELETE", "/admin/groups/staff".into(), None),
        ("GET", "/admin/groups/staff/members".into(), None),
        ("PUT", "/admin/groups/staff/members/alice".into(), None),
        ("DELETE", "/admin/groups/staff/members/alice".into(), None),
        ("GET", "/admin/tokens?type=access&client_id=x".into(), None),
        ("GET", "/admin/tokens/count?type=access&client_id=x".into(), None),
        ("POST", "/admin/tokens/revoke".into(), Some(json!({"jti": "x"}))),
        ("POST", "/admin/tokens/revoke-all".into(), Some(json!({"client_id": "x"}))),
        ("GET", "/admin/openapi.json".into(), None),
    ]
}

/// 401 `unauthorized`: without a bearer credential, a bare challenge; with a wrong one,
/// `error="invalid_token"`.
fn assert_admin_refused(r: &common::Resp, presented: bool) {
    assert_error(r, StatusCode::UNAUTHORIZED, "unauthorized");
    let challenge = if presented { INVALID_TOKEN_CHALLENGE } else { BEARER_CHALLENGE };
    assert_eq!(r.header("www-authenticate"), Some(challenge));
}

fn assert_no_store(r: &common::Resp) {
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("pragma"), Some("no-cache"));
}

async fn access_count(state: &AppState, client_id: &str) -> u64 {
    let q = TokenQuery { kind: TokenKind::Access, client_id: Some(client_id.to_owned()), end_user: None };
    state.store.count_tokens(&q, state.clock.now()).await.unwrap()
}

// ---------------------------------------------------------------- credentials

#[tokio::test]
async fn missing_or_wrong_credentials_are_refused_everywhere() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let wrong_bearer = format!("Bearer {ADMIN}x");
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("admin:{ADMIN}")));
    let token_scheme = format!("Token {ADMIN}");
    let auths: [Option<&str>; 6] =
        [None, Some(&wrong_bearer), Some("Bearer "), Some("Bearer"), Some(&basic), Some(&token_scheme)];
    for (method, path, body) in every_admin_call() {
        for auth in auths {
            let r = send(&app, admin_with(method, &path, auth, body.clone())).await;
            assert_admin_refused(&r, auth == Some(wrong_bearer.as_str()));
            assert!(!r.text.contains(ADMIN), "the admin token is never echoed");
        }
    }
    // Nothing was created.
    let r = send(&app, admin("GET", "/admin/resource-servers", None)).await;
    assert_eq!(r.body, json!({"resource_servers": [], "next": null}));
    let r = send(&app, admin("GET", "/admin/groups", None)).await;
    assert_eq!(r.body, json!({"groups": [], "next": null}));
    // The scheme is case-insensitive (RFC 9110 §11.1).
    let r = send(&app, admin_with("GET", "/admin/resource-servers", Some(&format!("bearer {ADMIN}")), None)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn no_configured_admin_credential_refuses_everything() {
    let (state, _dir) = state_with_config(&[]);
    assert!(state.config.admin_token.is_none() && !state.config.admin_iam);
    let app = common::app(&state);
    for (method, path, body) in every_admin_call() {
        for auth in [None, Some(format!("Bearer {ADMIN}")), Some("Bearer ".to_owned())] {
            let r = send(&app, admin_with(method, &path, auth.as_deref(), body.clone())).await;
            assert_admin_refused(&r, auth.as_deref() == Some(&format!("Bearer {ADMIN}")));
        }
        // Even with an IAM context: it is not trusted unless configured.
        let mut req = admin_with(method, &path, None, body.clone());
        req.extensions_mut().insert(iam_context(Some("arn:aws:iam::123456789012:user/ops")));
        assert_admin_refused(&send(&app, req).await, false);
    }
    assert!(state.store.list_resource_servers().await.unwrap().is_empty());
}

/// An API Gateway HTTP API request context carrying an IAM identity (or an authorizer without one).
fn iam_context(user_arn: Option<&str>) -> RequestContext {
    let mut ctx = ApiGatewayV2httpRequestContext::default();
    let mut authorizer = ApiGatewayRequestAuthorizer::default();
    if let Some(arn) = user_arn {
        let mut iam = ApiGatewayRequestAuthorizerIamDescription::default();
        iam.user_arn = Some(arn.to_owned());
        iam.account_id = Some("123456789012".into());
        authorizer.iam = Some(iam);
    }
    ctx.authorizer = Some(authorizer);
    RequestContext::ApiGatewayV2(ctx)
}

#[tokio::test]
async fn iam_context_is_accepted_only_when_configured() {
    let metadata = json!({"grant_types": ["client_credentials"], "scope": "read"});

    // GATEHOUSE_ADMIN_IAM=true, no admin token: the IAM identity authorizes without a bearer.
    let (state, _dir) = state_with_config(&[("GATEHOUSE_ADMIN_IAM", "true")]);
    assert!(state.config.admin_iam && state.config.admin_token.is_none());
    let app = common::app(&state);
    let mut req = admin_with("POST", "/admin/clients", None, Some(metadata.clone()));
    req.extensions_mut().insert(iam_context(Some("arn:aws:iam::123456789012:user/ops")));
    let r = send(&app, req).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.body["client_id"].as_str().unwrap().to_owned();
    assert!(state.store.get_client(&id).await.unwrap().is_some());
    let mut req = admin_with("GET", &format!("/admin/clients/{id}"), None, None);
    req.extensions_mut().insert(iam_context(Some("arn:aws:iam::123456789012:user/ops")));
    assert_eq!(send(&app, req).await.status, StatusCode::OK);

    // Without the context, or with an authorizer that carries no IAM identity: refused.
    let r = send(&app, admin_with("POST", "/admin/clients", None, Some(metadata.clone()))).await;
    assert_admin_refused(&r, false);
    let mut req = admin_with("POST", "/admin/clients", None, Some(metadata.clone()));
    req.extensions_mut().insert(iam_context(None));
    assert_admin_refused(&send(&app, req).await, false);
    // A bearer is no substitute when no admin token is configured.
    let r = send(&app, admin("GET", &format!("/admin/clients/{id}"), None)).await;
    assert_admin_refused(&r, true);

    // GATEHOUSE_ADMIN_IAM=true with an admin token too: both credentials work.
    let (state, _dir2) = state_with_config(&[("GATEHOUSE_ADMIN_IAM", "true"), ("GATEHOUSE_ADMIN_TOKEN", ADMIN)]);
    let app = common::app(&state);
    assert_eq!(send(&app, admin("POST", "/admin/clients", Some(metadata.clone()))).await.status, StatusCode::CREATED);
    let mut req = admin_with("POST", "/admin/clients", None, Some(metadata.clone()));
    req.extensions_mut().insert(iam_context(Some("arn:aws:iam::123456789012:role/ops")));
    assert_eq!(send(&app, req).await.status, StatusCode::CREATED);

    // GATEHOUSE_ADMIN_IAM=false (the test default): the same IAM context is refused.
    let (state, _dir3) = common::embedded_state();
    assert!(!state.config.admin_iam);
    let app = common::app(&state);
    let mut req = admin_with("POST", "/admin/clients", None, Some(metadata.clone()));
    req.extensions_mut().insert(iam_context(Some("arn:aws:iam::123456789012:user/ops")));
    assert_admin_refused(&send(&app, req).await, false);
    // ... and with a wrong bearer as well.
    let mut req = admin_with("POST", "/admin/clients", Some("Bearer wrong"), Some(metadata));
    req.extensions_mut().insert(iam_context(Some("arn:aws:iam::123456789012:user/ops")));
    assert_admin_refused(&send(&app, req).await, true);
}

// ---------------------------------------------------------------- clients

#[tokio::test]
async fn create_confidential_client() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let r = send(
        &app,
        admin(
            "POST",
            "/admin/clients",
            Some(json!({
                "client_name": "Billing",
                "grant_types": ["client_credentials", "client_credentials"],
                "scope": "write read",
                "access_token_lifetime": 600,
            })),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_no_store(&r);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let id = r.body["client_id"].as_str().unwrap().to_owned();
    let secret = r.body["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 22);
    assert_eq!(secret.len(), 43);
    assert!(secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert_eq!(
        r.body,
        json!({
            "client_id": id,
            "client_id_issued_at": T0,
            "client_name": "Billing",
            "redirect_uris": [],
            "grant_types": ["client_credentials"],
            "token_endpoint_auth_method": "client_secret_basic",
            "scope": "read write",
            "access_token_lifetime": 600,
            "client_secret": secret,
            "client_secret_expires_at": 0,
        })
    );

    let stored = state.store.get_client(&id).await.unwrap().expect("stored");
    let digest = stored.secret_digest.clone().unwrap();
    assert_ne!(digest, secret);
    assert!(!digest.contains(&secret));
    assert_eq!(digest, gatehouse::crypto::digest(&secret));
    assert_eq!(stored.token_endpoint_auth_method, AuthMethod::ClientSecretBasic);
    assert_eq!(stored.grant_types, vec![GrantType::ClientCredentials]);
    assert_eq!(stored.access_token_lifetime, Some(600));
    assert_eq!(stored.client_name.as_deref(), Some("Billing"));

    // GET: the same metadata, never the secret.
    let g = send(&app, admin("GET", &format!("/admin/clients/{id}"), None)).await;
    assert_eq!(g.status, StatusCode::OK, "{}", g.text);
    assert_no_store(&g);
    let mut expected = r.body.clone();
    expected.as_object_mut().unwrap().remove("client_secret");
    expected.as_object_mut().unwrap().remove("client_secret_expires_at");
    assert_eq!(g.body, expected);
    assert!(!g.text.contains(&secret));

    // Two registrations never share an id or a secret.
    let other = cc_client(&app).await;
    assert_ne!(other.id, id);
    assert_ne!(other.secret.as_deref(), Some(secret.as_str()));
}

#[tokio::test]
async fn create_public_and_post_clients() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let r = send(
        &app,
        admin(
            "POST",
            "/admin/clients",
            Some(json!({"token_endpoint_auth_method": "none",
                        "redirect_uris": ["https://app.example.com/cb", "http://127.0.0.1:8765/cb", "com.example.app:/cb"]})),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.body["client_id"].as_str().unwrap();
    assert_eq!(
        r.body,
        json!({
            "client_id": id,
            "client_id_issued_at": T0,
            "redirect_uris": ["https://app.example.com/cb", "http://127.0.0.1:8765/cb", "com.example.app:/cb"],
            "grant_types": ["authorization_code"],
            "token_endpoint_auth_method": "none",
            "scope": "",
        })
    );
    let stored = state.store.get_client(id).await.unwrap().unwrap();
    assert_eq!(stored.secret_digest, None);
    assert!(stored.is_public());

    let p = register(
        &app,
        json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_post"}),
    )
    .await;
    assert_eq!(p.secret.as_ref().map(String::len), Some(43));
    assert_eq!(
        state.store.get_client(&p.id).await.unwrap().unwrap().token_endpoint_auth_method,
        AuthMethod::ClientSecretPost
    );
}

#[tokio::test]
async fn delete_client_revokes_its_tokens() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = cc_client(&app).await;
    let bystander = cc_client(&app).await;
    let tokens = [cc_token(&app, &c, "").await, cc_token(&app, &c, "&scope=read").await];
    let kept = cc_token(&app, &bystander, "").await;
    assert_eq!(access_count(&state, &c.id).await, 2);

    state.clock.advance(7);
    let r = send(&app, admin("DELETE", &format!("/admin/clients/{}", c.id), None)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(r.text, "");
    assert_no_store(&r);

    let g = send(&app, admin("GET", &format!("/admin/clients/{}", c.id), None)).await;
    assert_error(&g, StatusCode::NOT_FOUND, "not_found");
    assert!(state.store.get_client(&c.id).await.unwrap().is_none());
    let d = send(&app, admin("DELETE", &format!("/admin/clients/{}", c.id), None)).await;
    assert_error(&d, StatusCode::NOT_FOUND, "not_found");

    // Every token of the deleted client is revoked; introspection says inactive.
    for t in &tokens {
        let rec = state.store.get_token(&jti(t), state.clock.now()).await.unwrap().unwrap();
        assert_eq!(rec.revoked_at, Some(T0 + 7));
        let r = send(&app, form("/introspect", Some(&bystander.basic()), &format!("token={}", enc(t)))).await;
        assert_eq!(r.body, json!({"active": false}), "{}", r.text);
    }
    assert_eq!(access_count(&state, &c.id).await, 0);
    // The deleted client can no longer get tokens (nor revoke or introspect).
    let r = send(&app, form("/token", Some(&c.basic()), "grant_type=client_credentials")).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_client");
    assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"gatehouse\""));
    let r = send(&app, form("/introspect", Some(&c.basic()), &format!("token={}", enc(&kept)))).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_client");
    // Another client's tokens are untouched.
    let r = send(&app, form("/introspect", Some(&bystander.basic()), &format!("token={}", enc(&kept)))).await;
    assert_eq!(r.body["active"], true, "{}", r.text);
    assert_eq!(access_count(&state, &bystander.id).await, 1);
}

#[tokio::test]
async fn unknown_client_is_404() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    for method in ["GET", "DELETE"] {
        let r = send(&app, admin(method, "/admin/clients/no-such-client", None)).await;
        assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    }
    let r = send(&app, admin("PUT", "/admin/clients/x", None)).await;
    assert_error(&r, StatusCode::METHOD_NOT_ALLOWED, "invalid_request");
    assert_eq!(r.header("allow"), Some("GET, PATCH, DELETE"));
    let r = send(&app, admin("DELETE", "/admin/clients", None)).await;
    assert_error(&r, StatusCode::METHOD_NOT_ALLOWED, "invalid_request");
    assert_eq!(r.header("allow"), Some("GET, POST"));
    let r = send(&app, admin("GET", "/admin/nothing-here", None)).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
}

async fn create_error(app: &axum::Router, metadata: Value) -> common::Resp {
    send(app, admin("POST", "/admin/clients", Some(metadata))).await
}

#[tokio::test]
async fn unknown_field_is_named() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let r = create_error(&app, json!({"grant_types": ["client_credentials"], "scopes": "read"})).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_client_metadata");
    assert!(r.body["error_description"].as_str().unwrap().contains("scopes"), "{}", r.text);
    // Not JSON, wrong types.
    let r = send(
        &app,
        Request::post("/admin/clients")
            .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{not json"))
            .unwrap(),
    )
    .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_client_metadata");
    let r = create_error(&app, json!({"grant_types": "client_credentials"})).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_client_metadata");
}

#[tokio::test]
async fn bad_redirect_uris_are_invalid_redirect_uri() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    for uri in [
        "http://evil.example/cb",
        "javascript:alert(1)",
        "https://app.example.com/cb#frag",
        "https://app.example.com/cb#",
        "/cb",
        "cb",
        "",
        "http://localhost.evil.example/cb",
        "data:text/html,hi",
        "file:///etc/passwd",
    ] {
        let r = create_error(&app, json!({"redirect_uris": [uri]})).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_redirect_uri");
        // A bad URI next to a good one is still refused.
        let r = create_error(&app, json!({"redirect_uris": ["https://app.example.com/cb", uri]})).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_redirect_uri");
    }
    // More than 20.
    let many: Vec<String> = (0..21).map(|i| format!("https://app.example.com/cb{i}")).collect();
    let r = create_error(&app, json!({"redirect_uris": many})).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_redirect_uri");
    // Too long.
    let long = format!("https://app.example.com/{}", "a".repeat(2000));
    let r = create_error(&app, json!({"redirect_uris": [long]})).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_redirect_uri");
    // authorization_code (explicit or by default) without redirect URIs.
    for m in [json!({"grant_types": ["authorization_code"]}), json!({}), json!({"redirect_uris": []})] {
        let r = create_error(&app, m).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_redirect_uri");
    }
}

#[tokio::test]
async fn invalid_metadata_is_refused() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let cases = [
        // A public client cannot use client_credentials.
        (json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"}), "grant_types"),
        (
            json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt"}),
            "token_endpoint_auth_method",
        ),
        (json!({"grant_types": ["implicit"]}), "grant_types"),
        (json!({"grant_types": []}), "grant_types"),
        (json!({"grant_types": ["client_credentials"], "scope": "a  b"}), "scope"),
        (json!({"grant_types": ["client_credentials"], "client_name": ""}), "client_name"),
        (json!({"grant_types": ["client_credentials"], "client_name": "x".repeat(201)}), "client_name"),
        (json!({"grant_types": ["client_credentials"], "access_token_lifetime": 59}), "access_token_lifetime"),
        (json!({"grant_types": ["client_credentials"], "access_token_lifetime": 86_401}), "access_token_lifetime"),
        (json!({"grant_types": ["client_credentials"], "access_token_lifetime": 0}), "access_token_lifetime"),
    ];
    for (m, field) in cases {
        let r = create_error(&app, m.clone()).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_client_metadata");
        assert!(r.body["error_description"].as_str().unwrap().contains(field), "{m}: {}", r.text);
    }
    // Wrong JSON types are refused too (serde's message gives the position, not the field).
    for m in [
        json!({"grant_types": ["client_credentials"], "access_token_lifetime": -5}),
        json!({"grant_types": ["client_credentials"], "access_token_lifetime": "600"}),
        json!({"grant_types": "client_credentials"}),
        json!({"grant_types": ["client_credentials"], "scope": ["read"]}),
        json!(["not", "an", "object"]),
    ] {
        let r = create_error(&app, m).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_client_metadata");
    }
    // The bounds themselves are accepted.
    for l in [60, 86_400] {
        register(&app, json!({"grant_types": ["client_credentials"], "access_token_lifetime": l})).await;
    }
}

#[tokio::test]
async fn oversized_admin_body_is_413() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let r =
        create_error(&app, json!({"grant_types": ["client_credentials"], "client_name": "x".repeat(17 * 1024)})).await;
    assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "invalid_request");
}

// ---------------------------------------------------------------- resource servers

#[tokio::test]
async fn resource_servers_create_conflict_and_list() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let rs = json!({"identifier": "https://b.example.com/api", "name": "B",
                    "scopes": ["read", {"name": "write", "description": "Write things"}]});
    let r = send(&app, admin("POST", "/admin/resource-servers", Some(rs.clone()))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_no_store(&r);
    let b = json!({
        "identifier": "https://b.example.com/api",
        "name": "B",
        "scopes": [{"name": "read", "description": null}, {"name": "write", "description": "Write things"}],
        "created_at": T0,
    });
    assert_eq!(r.body, b);

    state.clock.advance(1);
    let r = send(&app, admin("POST", "/admin/resource-servers", Some(rs))).await;
    assert_error(&r, StatusCode::CONFLICT, "conflict");
    // The original stands.
    assert_eq!(state.store.get_resource_server("https://b.example.com/api").await.unwrap().unwrap().created_at, T0);

    let r = send(&app, admin("POST", "/admin/resource-servers", Some(json!({"identifier": "https://a.example.com"}))))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let a = json!({"identifier": "https://a.example.com", "name": null, "scopes": [], "created_at": T0 + 1});
    assert_eq!(r.body, a);

    let r = send(&app, admin("GET", "/admin/resource-servers", None)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_no_store(&r);
    assert_eq!(r.body, json!({"resource_servers": [a, b], "next": null}), "ordered by identifier");

    // Invalid definitions.
    for bad in [
        json!({"identifier": "not a uri"}),
        json!({"identifier": "https://c.example.com/#frag"}),
        json!({"identifier": "https://c.example.com", "scopes": ["a b"]}),
        json!({"identifier": "https://c.example.com", "scopes": ["a", "a"]}),
        json!({"identifier": "https://c.example.com", "unknown": 1}),
        json!({"name": "no identifier"}),
    ] {
        let r = send(&app, admin("POST", "/admin/resource-servers", Some(bad.clone()))).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    }
    assert_eq!(state.store.list_resource_servers().await.unwrap().len(), 2);
}

// ---------------------------------------------------------------- token listings and counts

/// Issues `n` tokens to `c`, one second apart; returns their jtis in issue order.
async fn issue_spaced(state: &AppState, app: &axum::Router, c: &TestClient, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(jti(&cc_token(app, c, "").await));
        state.clock.advance(1);
    }
    out
}

fn jtis(r: &common::Resp) -> Vec<String> {
    r.body["tokens"].as_array().unwrap().iter().map(|t| t["jti"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn list_tokens_pages_in_issue_order() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = cc_client(&app).await;
    let other = cc_client(&app).await;
    let ids = issue_spaced(&state, &app, &c, 5).await;
    cc_token(&app, &other, "").await; // another client's token is not listed

    let list = |q: String| {
        let app = app.clone();
        async move { send(&app, admin("GET", &format!("/admin/tokens?{q}"), None)).await }
    };

    // Default page: everything, exact metadata, never a token.
    let r = list(format!("type=access&client_id={}", c.id)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_no_store(&r);
    assert_eq!(jtis(&r), ids);
    assert_eq!(
        (r.body["offset"].clone(), r.body["limit"].clone(), r.body["next_offset"].clone()),
        (json!(0), json!(100), Value::Null)
    );
    assert_eq!(
        r.body["tokens"][0],
        json!({
            "jti": ids[0], "type": "access", "client_id": c.id, "sub": c.id, "end_user": null,
            "scope": "read write", "aud": "https://auth.test.example", "grant_type": "client_credentials",
            "iat": T0, "exp": T0 + 3600,
        })
    );
    assert_eq!(r.body["tokens"][4]["iat"], T0 + 4);
    assert!(!r.text.contains("eyJ"), "no JWT in a listing: {}", r.text);

    // Pages.
    let r = list(format!("type=access&client_id={}&offset=0&limit=2", c.id)).await;
    assert_eq!(jtis(&r), ids[0..2]);
    assert_eq!(r.body["next_offset"], 2);
    let r = list(format!("type=access&client_id={}&offset=2&limit=2", c.id)).await;
    assert_eq!(jtis(&r), ids[2..4]);
    assert_eq!(r.body["next_offset"], 4);
    let r = list(format!("type=access&client_id={}&offset=4&limit=2", c.id)).await;
    assert_eq!(jtis(&r), ids[4..5]);
    assert_eq!(r.body["next_offset"], Value::Null);
    let r = list(format!("type=access&client_id={}&offset=5&limit=2", c.id)).await;
    assert_eq!(r.body["tokens"], json!([]));
    assert_eq!(r.body["next_offset"], Value::Null);
    let r = list(format!("type=access&client_id={}&offset=100", c.id)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["tokens"], json!([]));
    assert_eq!(r.body["next_offset"], Value::Null);

    // Following next_offset visits every token exactly once.
    let (mut seen, mut offset) = (Vec::new(), 0u64);
    loop {
        let r = list(format!("type=access&client_id={}&offset={offset}&limit=3", c.id)).await;
        seen.extend(jtis(&r));
        match r.body["next_offset"].as_u64() {
            Some(n) => offset = n,
            None => break,
        }
    }
    assert_eq!(seen, ids);

    // The largest offset a store can hold is an empty page; beyond it, invalid_request (it
    // once wrapped to a negative SQLite OFFSET and answered the first page again, or overflowed).
    let r = list(format!("type=access&client_id={}&offset=9223372036854775807&limit=1", c.id)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["tokens"], json!([]), "{}", r.text);
    assert_eq!(r.body["next_offset"], Value::Null);
    for huge in ["9223372036854775808", "18446744073709551615", "18446744073709551616"] {
        let r = list(format!("type=access&client_id={}&offset={huge}&limit=1", c.id)).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    }

    // Count.
    let r = send(&app, admin("GET", &format!("/admin/tokens/count?type=access&client_id={}", c.id), None)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_no_store(&r);
    assert_eq!(r.body, json!({"count": 5}));
    let r = send(&app, admin("GET", &format!("/admin/tokens/count?type=refresh&client_id={}", c.id), None)).await;
    assert_eq!(r.body, json!({"count": 0}));
    let r = list(format!("type=refresh&client_id={}", c.id)).await;
    assert_eq!(r.body["tokens"], json!([]));
    // By end user: client-credentials tokens have none.
    let r = send(&app, admin("GET", "/admin/tokens/count?type=access&end_user=alice", None)).await;
    assert_eq!(r.body, json!({"count": 0}));
    let r = list(format!("type=access&client_id={}&end_user=alice", c.id)).await;
    assert_eq!(r.body["tokens"], json!([]));

    // The largest page is allowed.
    let r = list(format!("type=access&client_id={}&limit=1000", c.id)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(jtis(&r), ids);
}

#[tokio::test]
async fn tokens_issued_in_the_same_second_are_ordered_by_id() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = cc_client(&app).await;
    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(jti(&cc_token(&app, &c, "").await));
    }
    ids.sort();
    let mut paged = Vec::new();
    for offset in [0, 2, 4] {
        let r = send(
            &app,
            admin("GET", &format!("/admin/tokens?type=access&client_id={}&offset={offset}&limit=2", c.id), None),
        )
        .await;
        paged.extend(jtis(&r));
    }
    assert_eq!(paged, ids, "stable order: issue time, then id");
}

#[tokio::test]
async fn list_and_count_validate_their_query() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = cc_client(&app).await;
    for path in ["/admin/tokens", "/admin/tokens/count"] {
        for q in [
            format!("client_id={}", c.id),                         // missing type
            format!("type=bearer&client_id={}", c.id),             // unknown type
            "type=access".to_owned(),                              // neither client_id nor end_user
            "type=access&client_id=".to_owned(),                   // empty counts as absent
            format!("type=access&type=access&client_id={}", c.id), // repeated
        ] {
            let r = send(&app, admin("GET", &format!("{path}?{q}"), None)).await;
            assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
        }
    }
    for q in ["limit=1001", "limit=-1", "limit=x", "offset=-1", "offset=1.5"] {
        let r = send(&app, admin("GET", &format!("/admin/tokens?type=access&client_id={}&{q}", c.id), None)).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    }
    let r = send(&app, admin("POST", "/admin/tokens", None)).await;
    assert_error(&r, StatusCode::METHOD_NOT_ALLOWED, "invalid_request");
    assert_eq!(r.header("allow"), Some("GET"));
}

#[tokio::test]
async fn revoked_and_expired_tokens_are_not_listed_or_counted() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = cc_client(&app).await;
    let ids = issue_spaced(&state, &app, &c, 3).await; // iat T0, T0+1, T0+2
    let count = || {
        let app = app.clone();
        let id = c.id.clone();
        async move {
            let r = send(&app, admin("GET", &format!("/admin/tokens/count?type=access&client_id={id}"), None)).await;
            r.body["count"].as_u64().unwrap()
        }
    };
    let listed = || {
        let app = app.clone();
        let id = c.id.clone();
        async move { jtis(&send(&app, admin("GET", &format!("/admin/tokens?type=access&client_id={id}"), None)).await) }
    };
    assert_eq!(count().await, 3);

    let r = send(&app, admin("POST", "/admin/tokens/revoke", Some(json!({"jti": ids[1]})))).await;
    assert_eq!(r.body, json!({"revoked": true}));
    assert_eq!(count().await, 2);
    assert_eq!(listed().await, vec![ids[0].clone(), ids[2].clone()]);

    // A later token (exp T0+6600), then time passes.
    state.clock.advance(3000 - 3);
    let late = jti(&cc_token(&app, &c, "").await);
    state.clock.advance(600);
    assert_eq!(state.clock.now(), T0 + 3600);
    // The first token expires exactly at T0+3600; the third (exp T0+3602) not yet.
    assert_eq!(count().await, 2);
    assert_eq!(listed().await, vec![ids[2].clone(), late.clone()]);
    state.clock.advance(2);
    assert_eq!(count().await, 1);
    assert_eq!(listed().await, vec![late.clone()]);
    state.clock.advance(3000);
    assert_eq!(count().await, 0);
    assert_eq!(listed().await, Vec::<String>::new());
}

// ---------------------------------------------------------------- admin revocation

#[tokio::test]
async fn admin_revoke_by_token_and_by_jti() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = cc_client(&app).await;
    let t1 = cc_token(&app, &c, "").await;
    let t2 = cc_token(&app, &c, "").await;
    let rs = cc_client(&app).await;
    let revoke = |body: Value| {
        let app = app.clone();
        async move { send(&app, admin("POST", "/admin/tokens/revoke", Some(body))).await }
    };

    let r = revoke(json!({"token": t1})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_no_store(&r);
    assert_eq!(r.body, json!({"revoked": true}));
    assert!(!r.text.contains(&t1));
    assert_eq!(revoke(json!({"token": t1})).await.body, json!({"revoked": false}));
    assert_eq!(state.store.get_token(&jti(&t1), T0).await.unwrap().unwrap().revoked_at, Some(T0));

    let r = revoke(json!({"jti": jti(&t2)})).await;
    assert_eq!(r.body, json!({"revoked": true}));
    assert_eq!(revoke(json!({"jti": jti(&t2)})).await.body, json!({"revoked": false}));
    assert_eq!(state.store.get_token(&jti(&t2), T0).await.unwrap().unwrap().revoked_at, Some(T0));

    for t in [&t1, &t2] {
        let r = send(&app, form("/introspect", Some(&rs.basic()), &format!("token={}", enc(t)))).await;
        assert_eq!(r.body, json!({"active": false}));
    }
    assert_eq!(access_count(&state, &c.id).await, 0);

    // Unknown tokens and jtis: nothing to revoke.
    assert_eq!(revoke(json!({"token": "garbage"})).await.body, json!({"revoked": false}));
    assert_eq!(revoke(json!({"jti": "no-such-jti"})).await.body, json!({"revoked": false}));

    // Exactly one of token or jti.
    for bad in [
        json!({"token": t1, "jti": jti(&t1)}),
        json!({}),
        json!({"jti": "x".repeat(129)}),
        json!({"token": t1, "extra": 1}),
    ] {
        let r = revoke(bad).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
        assert!(!r.text.contains(&t1), "{}", r.text);
    }
    let r = send(&app, admin("GET", "/admin/tokens/revoke", None)).await;
    assert_error(&r, StatusCode::METHOD_NOT_ALLOWED, "invalid_request");
    assert_eq!(r.header("allow"), Some("POST"));
}
