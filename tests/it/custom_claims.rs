//! Custom claims (OAM seed 38.4.1; issue 6 item 6): static and dynamic claims on a client, a
//! resource server and a scope; the scope level wins, then the resource server, then the
//! client; reserved names refused at configuration time. On both backends.
use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use gatehouse::store::Store;
use serde_json::{Value, json};

use crate::code_flow::{PASSWORD, claims, enc};
use crate::common::{self, TestClient, admin, assert_error, form, register, send};

const API: &str = "https://api.example.com/orders";

async fn token(app: &Router, c: &TestClient, body: &str) -> Value {
    let r = send(app, form("/token", Some(&c.basic()), body)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    claims(r.body["access_token"].as_str().unwrap())
}

/// The claims Gatehouse sets itself are left out: only the custom ones remain.
fn custom(mut c: Value) -> Value {
    for k in ["iss", "sub", "aud", "client_id", "iat", "exp", "jti", "scope", "cnf"] {
        c.as_object_mut().unwrap().remove(k);
    }
    c
}

async fn case(store: Arc<dyn Store>) {
    let state = common::state_on(store);
    let app = common::app(&state);
    let rs = json!({"identifier": API, "scopes": [
        {"name": "read", "claims": [{"name": "tier", "value": "scope-read"}, {"name": "nested", "value": {"a": [1, 2.5, "x"]}}]},
        {"name": "write"}
    ], "custom_claims": [{"name": "tier", "value": "rs"}, {"name": "region", "value": "eu"}]});
    let r = send(&app, admin("POST", "/admin/resource-servers", Some(rs))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["scopes"][0]["claims"][0], json!({"name": "tier", "value": "scope-read"}));
    let c = register(
        &app,
        json!({"grant_types": ["password", "client_credentials"], "scope": "read write", "custom_claims": [
            {"name": "tier", "value": "client"},
            {"name": "dept", "attribute": "department"},
            {"name": "cost_center", "attribute": "cost_center"},
            {"name": "app", "value": 7}
        ]}),
    )
    .await;
    let r = send(
        &app,
        admin(
            "POST",
            "/admin/users",
            Some(json!({"username": "alice", "password": PASSWORD,
            "attributes": {"department": "ops"}})),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let password = |scope: &str| {
        format!("grant_type=password&username=alice&password={}&resource={}&scope={scope}", enc(PASSWORD), enc(API))
    };

    // Scope level wins, then the resource server, then the client; a dynamic claim needs the
    // user's attribute (`cost_center` is missing, so left out).
    let t = token(&app, &c, &password("read")).await;
    assert_eq!(
        custom(t),
        json!({"tier": "scope-read", "nested": {"a": [1, 2.5, "x"]}, "region": "eu", "dept": "ops", "app": 7})
    );
    let t = token(&app, &c, &password("write")).await;
    assert_eq!(custom(t), json!({"tier": "rs", "region": "eu", "dept": "ops", "app": 7}));
    // No user: no dynamic claims. No resource server: only the client's.
    let t = token(&app, &c, &format!("grant_type=client_credentials&scope=write&resource={}", enc(API))).await;
    assert_eq!(custom(t), json!({"tier": "rs", "region": "eu", "app": 7}));
    let t = token(&app, &c, "grant_type=client_credentials").await;
    assert_eq!(custom(t), json!({"tier": "client", "app": 7}));

    // A profile change shows in the next token; removing the client's claims removes them.
    let r = send(
        &app,
        admin("PATCH", "/admin/users/alice", Some(json!({"attributes": {"department": "sales", "cost_center": "C9"}}))),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let t = token(&app, &c, &password("write")).await;
    assert_eq!((&t["dept"], &t["cost_center"]), (&json!("sales"), &json!("C9")));
    let r = send(&app, admin("PATCH", &format!("/admin/clients/{}", c.id), Some(json!({"custom_claims": null})))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.body.get("custom_claims").is_none());
    let r = send(
        &app,
        admin("PATCH", &format!("/admin/resource-servers/{}", enc(API)), Some(json!({"custom_claims": []}))),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let t = token(&app, &c, &password("write")).await;
    assert_eq!(custom(t), json!({}));
}

#[tokio::test]
async fn custom_claims_embedded() {
    let (store, _dir) = common::embedded();
    case(store).await;
}

#[tokio::test]
async fn custom_claims_dynamodb() {
    let Some((store, _, _)) = common::dynamo().await else { return };
    case(store).await;
}

/// Reserved names, malformed rules and limits are refused when configured; nothing is stored.
#[tokio::test]
async fn reserved_and_malformed_claims_are_refused() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    for (rules, why) in [
        (json!([{"name": "sub", "value": "x"}]), "custom_claims: `sub` is a registered JWT or Gatehouse claim"),
        (json!([{"name": "cnf", "value": 1}]), "custom_claims: `cnf` is a registered JWT or Gatehouse claim"),
        (
            json!([{"name": "gatehouse_tier", "value": 1}]),
            "custom_claims: claim names starting with `gatehouse` are reserved",
        ),
        (
            json!([{"name": "Oracle.oauth.x", "value": 1}]),
            "custom_claims: claim names starting with `oracle` are reserved",
        ),
        (
            json!([{"name": "a b", "value": 1}]),
            "custom_claims: claim name `a b` must be 1 to 64 characters of A-Za-z0-9_.:-",
        ),
        (
            json!([{"name": "x", "value": 1}, {"name": "x", "attribute": "y"}]),
            "custom_claims: claim `x` is defined twice",
        ),
        (
            json!([{"name": "x", "value": 1, "attribute": "y"}]),
            "custom_claims: claim `x`: give exactly one of `value` (static) or `attribute` (dynamic)",
        ),
        (json!([{"name": "x", "values": 1}]), "unknown field `values`"),
    ] {
        let body = json!({"grant_types": ["client_credentials"], "scope": "read", "custom_claims": rules});
        let r = send(&app, admin("POST", "/admin/clients", Some(body))).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_client_metadata");
        assert!(r.body["error_description"].as_str().unwrap().contains(why), "{} / {why}", r.text);
    }
    let rs = json!({"identifier": API, "custom_claims": [{"name": "exp", "value": 1}]});
    let r = send(&app, admin("POST", "/admin/resource-servers", Some(rs))).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(r.body["error_description"], "custom_claims: `exp` is a registered JWT or Gatehouse claim");
    let rs = json!({"identifier": API, "scopes": [{"name": "read", "claims": [{"name": "iss", "value": 1}]}]});
    let r = send(&app, admin("POST", "/admin/resource-servers", Some(rs))).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(r.body["error_description"], "scopes[0].claims: `iss` is a registered JWT or Gatehouse claim");
    let r = send(&app, admin("GET", "/admin/resource-servers", None)).await;
    assert_eq!(r.body["resource_servers"], json!([]), "nothing stored");
    let r = send(&app, admin("GET", "/admin/clients", None)).await;
    assert_eq!(r.body["clients"], json!([]), "nothing stored");
}

/// Claims that would make an access token longer than Gatehouse verifies (8192 bytes): the
/// token is refused with 500 `server_error` before anything is stored, so no token exists that
/// its client could neither introspect nor revoke; the same client gets tokens again once the
/// claims fit.
#[tokio::test]
async fn a_token_too_long_to_verify_is_never_issued() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let big = |i: usize| json!({"name": format!("c{i}"), "value": "x".repeat(1000)});
    let c = register(
        &app,
        json!({"grant_types": ["password", "client_credentials", "refresh_token"], "scope": "read",
               "custom_claims": [{"name": "bio", "attribute": "bio"}]}),
    )
    .await;
    let user = json!({"username": "alice", "password": PASSWORD, "attributes": {"bio": "y".repeat(7000)}});
    let r = send(&app, admin("POST", "/admin/users", Some(user))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let password = format!("grant_type=password&username=alice&password={}", enc(PASSWORD));
    let refused = |r: &common::Resp| {
        assert_error(r, StatusCode::INTERNAL_SERVER_ERROR, "server_error");
        assert_eq!(r.body["error_description"], "the server encountered an unexpected condition");
    };
    // A dynamic claim from a long profile attribute.
    refused(&send(&app, form("/token", Some(&c.basic()), &password)).await);
    // Static claims (eight of 1000 bytes each fit their limits one by one).
    let claims: Vec<Value> = (0..8).map(big).collect();
    let r =
        send(&app, admin("PATCH", &format!("/admin/clients/{}", c.id), Some(json!({"custom_claims": claims})))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    refused(&send(&app, form("/token", Some(&c.basic()), "grant_type=client_credentials")).await);
    let now = state.clock.now();
    for kind in [gatehouse::model::TokenKind::Access, gatehouse::model::TokenKind::Refresh] {
        let q = gatehouse::store::TokenQuery { kind, client_id: Some(c.id.clone()), end_user: None };
        assert_eq!(state.store.count_tokens(&q, now).await.unwrap(), 0, "nothing stored");
    }
    // Fewer claims: tokens again, and they introspect.
    let claims: Vec<Value> = (0..4).map(big).collect();
    let r =
        send(&app, admin("PATCH", &format!("/admin/clients/{}", c.id), Some(json!({"custom_claims": claims})))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = send(&app, form("/token", Some(&c.basic()), "grant_type=client_credentials")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let at = r.body["access_token"].as_str().unwrap();
    assert!(at.len() > 5000, "{}", at.len());
    let r = send(&app, form("/introspect", Some(&c.basic()), &format!("token={at}"))).await;
    assert_eq!(r.body["active"], true, "{}", r.text);
}
