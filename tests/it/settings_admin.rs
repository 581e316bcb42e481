//! Identity-domain settings (`GET`/`PATCH /admin/settings`) and their effect on the flows, on
//! both backends; admin authentication with `gatehouse:admin` access tokens; the admin-call audit.
use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use gatehouse::AppState;
use gatehouse::clock::Clock;
use gatehouse::keys::LocalSigner;
use gatehouse::store::Store;
use serde_json::{Value, json};

use crate::code_flow::{PASSWORD, claims, create_user, enc, open, pkce_query, public_client, sign_in, tokens_for};
use crate::common::{self, ADMIN, T0, admin, assert_error, cc_client, cc_token, form, register, send};

const DEFAULTS: &str = r#"{"access_token_ttl": 3600, "refresh_token_ttl": 2592000, "code_ttl": 60,
    "refresh_tokens_enabled": true, "refresh_grace": 10, "consent_enabled": true, "group_uri_enabled": false,
    "lockout_threshold": 5, "lockout_window": 900, "lockout_cooldown": 900, "default_resource": null,
    "dpop_nonce_required": false, "legacy_client_assertion_audience": false}"#;

fn defaults() -> Value {
    serde_json::from_str(DEFAULTS).unwrap()
}

fn merged(over: Value) -> Value {
    let mut d = defaults();
    for (k, v) in over.as_object().unwrap() {
        d[k] = v.clone();
    }
    d
}

async fn patch(app: &Router, body: Value) -> common::Resp {
    send(app, admin("PATCH", "/admin/settings", Some(body))).await
}

async fn settings_case(store: Arc<dyn Store>) {
    let state = common::state_on(store.clone());
    let app = common::app(&state);
    // A second warm instance of the same tenant (another function), same clock.
    let other = AppState::new(common::config(), store.clone(), state.signer.clone(), state.clock.clone());

    let r = send(&app, admin("GET", "/admin/settings", None)).await;
    assert_eq!((r.status, r.header("cache-control")), (StatusCode::OK, Some("no-store")));
    assert_eq!(
        r.body,
        json!({"settings": defaults(), "overrides": {}, "defaults": defaults(), "version": 0, "updated_at": null,
               "updated_by": null, "propagation_seconds": 30})
    );
    assert_eq!(other.settings().await.unwrap().access_token_ttl, 3600, "the other instance caches the defaults");

    // Refusals change nothing.
    for (body, why) in [
        (json!({"access_token_ttl": 59}), "access_token_ttl: expected a whole number from 60 to 86400, or null"),
        (json!({"consent_enabled": "no"}), "consent_enabled: expected true, false or null"),
        (json!({"access_token_ttl": 600, "colour": "red"}), "unknown field `colour`"),
        (json!(["access_token_ttl"]), "the body must be a JSON object (RFC 7396 merge patch)"),
    ] {
        let r = patch(&app, body).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
        assert!(r.body["error_description"].as_str().unwrap().starts_with(why), "{}", r.text);
    }
    assert_eq!(store.get_settings().await.unwrap(), None);

    let over = json!({"access_token_ttl": 600, "refresh_tokens_enabled": false, "consent_enabled": false});
    let r = patch(&app, over.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body,
        json!({"settings": merged(over.clone()), "overrides": over, "defaults": defaults(), "version": 1,
               "updated_at": T0, "updated_by": "admin-token", "propagation_seconds": 30})
    );

    // This instance applies the change at once: 600 s tokens, no refresh token, no consent page.
    let c = public_client(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    let s = open(&app, &pkce_query(&c.id, "")).await;
    let r = sign_in(&app, &s, "alice", PASSWORD).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "consent is off: straight back to the client");
    let body = tokens_for(&app, &c, "alice", "").await;
    assert_eq!(body["expires_in"], 600);
    assert!(body.get("refresh_token").is_none(), "{body}");
    let at = claims(body["access_token"].as_str().unwrap());
    assert_eq!(at["exp"].as_i64().unwrap() - at["iat"].as_i64().unwrap(), 600);

    // The other instance keeps its copy for 30 s, then reads the change.
    assert_eq!(other.settings().await.unwrap().access_token_ttl, 3600);
    state.clock.advance(29);
    assert_eq!(other.settings().await.unwrap().access_token_ttl, 3600);
    state.clock.advance(1);
    assert_eq!(other.settings().await.unwrap().access_token_ttl, 600);

    // null returns a setting to its default; versions count up.
    let r = patch(&app, json!({"access_token_ttl": null, "refresh_tokens_enabled": true})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let expected = json!({"consent_enabled": false, "refresh_tokens_enabled": true});
    assert_eq!((r.body["version"].as_u64(), &r.body["overrides"]), (Some(2), &expected));
    let body = tokens_for(&app, &c, "alice", "").await;
    assert_eq!(body["expires_in"], 3600);
    let refresh_token = body["refresh_token"].as_str().expect("refresh tokens are on again").to_owned();

    // Refresh tokens off: the grant is refused and the stored token left alone.
    patch(&app, json!({"refresh_tokens_enabled": false})).await;
    let refresh = format!("grant_type=refresh_token&refresh_token={}&client_id={}", enc(&refresh_token), enc(&c.id));
    let r = send(&app, form("/token", None, &refresh)).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "unsupported_grant_type");
    patch(&app, json!({"refresh_tokens_enabled": null})).await;
    let r = send(&app, form("/token", None, &refresh)).await;
    assert_eq!(r.status, StatusCode::OK, "the token was not touched while refresh was off: {}", r.text);

    // Lockout threshold 2: the second failure locks.
    patch(&app, json!({"lockout_threshold": 2})).await;
    let pw = register(&app, json!({"grant_types": ["password"], "scope": "read"})).await;
    let attempt = |p: &str| format!("grant_type=password&username=alice&password={}", enc(p));
    for _ in 0..2 {
        let r = send(&app, form("/token", Some(&pw.basic()), &attempt("wrong"))).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");
    }
    let r = send(&app, form("/token", Some(&pw.basic()), &attempt(PASSWORD))).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");
    assert_eq!(r.body["error_description"], "too many failed sign-in attempts; try again later");

    // 10 concurrent patches of different settings: every one lands (conditional writes, retried).
    let fields = ["code_ttl", "refresh_grace", "lockout_window", "lockout_cooldown", "access_token_ttl"];
    let jobs = fields.iter().enumerate().flat_map(|(i, f)| {
        let app = app.clone();
        let values = [json!({*f: 100 + i as u64 * 10}), json!({"group_uri_enabled": i % 2 == 0})];
        values.map(|v| {
            let app = app.clone();
            tokio::spawn(async move { send(&app, admin("PATCH", "/admin/settings", Some(v))).await.status })
        })
    });
    for j in jobs.collect::<Vec<_>>() {
        assert_eq!(j.await.unwrap(), StatusCode::OK);
    }
    let stored = store.get_settings().await.unwrap().unwrap();
    assert_eq!(stored.version, 5 + 10);
    assert_eq!(
        (stored.overrides.code_ttl, stored.overrides.refresh_grace, stored.overrides.lockout_window),
        (Some(100), Some(110), Some(120))
    );
    assert_eq!((stored.overrides.lockout_cooldown, stored.overrides.access_token_ttl), (Some(130), Some(140)));
}

/// `default_resource`: tokens requested without `resource` are for that resource server (RFC 8707
/// §2): its identifier as `aud`, scopes limited to its own; unregistered identifiers are refused;
/// a deleted default falls back to the issuer audience.
#[tokio::test]
async fn default_resource_server() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let api = "https://api.example.com/orders";
    let r = patch(&app, json!({"default_resource": api})).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(r.body["error_description"], "default_resource: not a registered resource server");
    let r = patch(&app, json!({"default_resource": "not a uri"})).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    let r = send(&app, admin("POST", "/admin/resource-servers", Some(json!({"identifier": api, "scopes": ["read"]}))))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = patch(&app, json!({"default_resource": api})).await;
    assert_eq!((r.status, &r.body["settings"]["default_resource"]), (StatusCode::OK, &json!(api)), "{}", r.text);

    let c = cc_client(&app).await; // allowed scopes: read write
    let at = claims(&cc_token(&app, &c, "").await);
    assert_eq!((at["aud"].as_str(), at["scope"].as_str()), (Some(api), Some("read")));
    let r = send(&app, form("/token", Some(&c.basic()), "grant_type=client_credentials&scope=write")).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_scope");

    let path = format!("/admin/resource-servers/{}", enc(api));
    assert_eq!(send(&app, admin("DELETE", &path, None)).await.status, StatusCode::NO_CONTENT);
    let at = claims(&cc_token(&app, &c, "").await);
    assert_eq!((at["aud"].as_str(), at["scope"].as_str()), (Some("https://auth.test.example"), Some("read write")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn settings_embedded() {
    let (store, _dir) = common::embedded();
    settings_case(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn settings_dynamodb() {
    let Some((store, _, _)) = common::dynamo().await else { return };
    settings_case(store).await;
}

/// Automation administers a tenant with a client-credentials token carrying `gatehouse:admin`;
/// a token without it is 403 insufficient_scope, a user's token never administers, and every
/// admitted call is audited with the actor.
#[tokio::test]
async fn gatehouse_admin_access_tokens() {
    gatehouse::audit::start_capture();
    // No static admin token configured: only tokens (and IAM) can administer.
    let mut config = common::config();
    config.admin_token = None;
    let (store, _dir) = common::embedded();
    let bootstrap = common::state_on(store.clone());
    let boot = common::app(&bootstrap);
    let robot = register(&boot, json!({"grant_types": ["client_credentials"], "scope": "gatehouse:admin read"})).await;
    let plain = cc_client(&boot).await;
    let users = register(&boot, json!({"grant_types": ["password"], "scope": "gatehouse:admin"})).await;
    create_user(&boot, "root", PASSWORD).await;

    let state = AppState::new(config, store, Arc::new(LocalSigner::ephemeral()), Clock::manual(T0));
    let app = common::app(&state);
    let bearer = |t: &str| {
        axum::http::Request::get("/admin/settings")
            .header("authorization", format!("Bearer {t}"))
            .body(axum::body::Body::empty())
            .unwrap()
    };
    let r = send(&app, bearer(ADMIN)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "the static token is not configured here");

    let token = cc_token(&app, &robot, "&scope=gatehouse:admin").await;
    let r = send(&app, bearer(&token)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let jti = claims(&token)["jti"].as_str().unwrap().to_owned();
    let line = gatehouse::audit::captured()
        .into_iter()
        .rev()
        .find(|l| l["event"] == "admin_call" && l["actor"] == format!("client:{}", robot.id))
        .expect("the admin call is audited with its actor");
    assert_eq!((line["event_id"].as_u64(), line["method"].as_str()), (Some(21012), Some("GET")));
    assert_eq!(line["path"], "/admin/settings");
    assert!(!line.to_string().contains(&token), "never the token");

    // A token of this tenant without the scope: 403 insufficient_scope (RFC 6750 §3.1).
    for t in [cc_token(&app, &robot, "&scope=read").await, cc_token(&app, &plain, "").await] {
        let r = send(&app, bearer(&t)).await;
        assert_error(&r, StatusCode::FORBIDDEN, "insufficient_scope");
        assert!(r.header("www-authenticate").unwrap().contains("error=\"insufficient_scope\""));
    }
    // A user's token with the scope (password grant) never administers.
    let body = format!("grant_type=password&username=root&password={}&scope=gatehouse:admin", enc(PASSWORD));
    let r = send(&app, form("/token", Some(&users.basic()), &body)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = send(&app, bearer(r.body["access_token"].as_str().unwrap())).await;
    assert_error(&r, StatusCode::FORBIDDEN, "insufficient_scope");

    // A revoked or tampered token is 401.
    let r = send(&app, form("/revoke", Some(&robot.basic()), &format!("token={token}"))).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = send(&app, bearer(&token)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let invalid = "Bearer realm=\"gatehouse\", error=\"invalid_token\"";
    assert_eq!(r.header("www-authenticate"), Some(invalid), "RFC 6750 §3.1");
    let r = send(&app, bearer(&format!("{token}x"))).await;
    assert_eq!((r.status, r.header("www-authenticate")), (StatusCode::UNAUTHORIZED, Some(invalid)));
    assert!(
        gatehouse::audit::captured().iter().any(|l| l["event"] == "admin_refused" && !l.to_string().contains(&jti))
    );

    // A deleted client's token never administers, even one that escaped the deletion's
    // revocation: issued by an instance (`app`) from its cached copy of the client after
    // another (`boot`) deleted it.
    let gone = register(&boot, json!({"grant_types": ["client_credentials"], "scope": "gatehouse:admin"})).await;
    let warm = cc_token(&app, &gone, "&scope=gatehouse:admin").await;
    assert_eq!(send(&app, bearer(&warm)).await.status, StatusCode::OK);
    let r = send(&boot, common::admin("DELETE", &format!("/admin/clients/{}", gone.id), None)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let late = cc_token(&app, &gone, "&scope=gatehouse:admin").await;
    for t in [&warm, &late] {
        let r = send(&app, bearer(t)).await;
        assert_eq!((r.status, r.header("www-authenticate")), (StatusCode::UNAUTHORIZED, Some(invalid)), "{}", r.text);
    }
    assert!(gatehouse::audit::captured().iter().any(|l| l["reason"] == "access token of a deleted client"));
}
