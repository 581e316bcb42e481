//! `grant_type=refresh_token` (RFC 6749 §6) with rotation, reuse detection and the grace window
//! (RFC 9700 §4.14.2), on both backends under 20 concurrent refreshes; and `grant_type=password`
//! (RFC 6749 §4.3) with the sign-in page's lockout.
use axum::Router;
use axum::http::StatusCode;
use gatehouse::AppState;
use gatehouse::model::{GrantType, TokenKind};
use serde_json::{Value, json};

use crate::code_flow::{
    ISSUER, LOCKED, PASSWORD, assert_active, assert_inactive, assert_sign_in_refused, audit_lines, claims,
    confidential_client, create_user, enc, introspect, introspector, open, pkce_query, public_client, sign_in,
    tokens_for,
};
use crate::common::{self, T0, TestClient, admin, assert_error, form, register, send};

/// A public client's refresh request.
pub(crate) async fn refresh(app: &Router, c: &TestClient, token: &str, extra: &str) -> common::Resp {
    let body = format!("grant_type=refresh_token&refresh_token={}&client_id={}{extra}", enc(token), enc(&c.id));
    send(app, form("/token", None, &body)).await
}

pub(crate) fn s(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or_else(|| panic!("no {k} in {v}")).to_owned()
}

fn assert_invalid_grant(r: &common::Resp, description: &str) {
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_grant");
    assert_eq!(r.body["error_description"], description);
}

// ---------------------------------------------------------------- refresh tokens

#[tokio::test]
async fn refresh_rotates_the_refresh_token() {
    gatehouse::audit::start_capture();
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = public_client(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    let first = tokens_for(&app, &c, "alice", "").await;
    let rt1 = s(&first, "refresh_token");

    state.clock.advance(100);
    let r = refresh(&app, &c, &rt1, "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("pragma"), Some("no-cache"));
    let (at2, rt2) = (s(&r.body, "access_token"), s(&r.body, "refresh_token"));
    assert_ne!(rt2, rt1, "rotated");
    assert_ne!(at2, s(&first, "access_token"));
    assert_eq!(rt2.len(), gatehouse::crypto::OPAQUE_TOKEN_LEN);
    assert_eq!(
        r.body,
        json!({"access_token": at2, "token_type": "Bearer", "expires_in": 3600, "refresh_token": rt2, "scope": "read write"})
    );
    let cl = claims(&at2);
    let jti = s(&cl, "jti");
    assert_eq!(
        cl,
        json!({"iss": ISSUER, "sub": "alice", "aud": ISSUER, "client_id": c.id, "scope": "read write",
               "iat": T0 + 100, "exp": T0 + 3700, "jti": jti})
    );

    let now = state.clock.now();
    let old = state.store.get_token(&gatehouse::crypto::opaque_token_id(&rt1), now).await.unwrap().unwrap();
    assert_eq!((old.rotated_at, old.revoked_at), (Some(T0 + 100), None));
    assert!(!old.is_active(now));
    let sealed = old.successor_response.clone().expect("the successor response is kept, sealed");
    assert!(!sealed.contains(&rt2) && !sealed.contains(&at2), "sealed, not in clear");
    let new = state.store.get_token(&gatehouse::crypto::opaque_token_id(&rt2), now).await.unwrap().unwrap();
    assert_eq!(new.kind, TokenKind::Refresh);
    assert_eq!(new.family, old.family, "same family");
    assert_eq!(new.grant_type, GrantType::AuthorizationCode, "the grant the family came from");
    assert_eq!((new.issued_at, new.expires_at), (T0 + 100, T0 + 100 + 2_592_000), "lifetime renewed");
    assert_eq!(new.scope.to_string(), "read write");
    let access = state.store.get_token(&jti, now).await.unwrap().unwrap();
    assert_eq!(access.grant_type, GrantType::RefreshToken);
    assert_eq!(access.family, old.family);
    assert_eq!(access.end_user.as_deref(), Some("alice"));

    // The new one rotates in turn.
    let r = refresh(&app, &c, &rt2, "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    let refreshed: Vec<Value> = audit_lines(&c.id).into_iter().filter(|l| l["event_id"] == 20005).collect();
    assert_eq!(refreshed.len(), 2, "{refreshed:?}");
    assert_eq!(refreshed[0]["username"], "alice");
    assert_eq!(refreshed[0]["jti"], jti.as_str());
    let issued = audit_lines(&jti);
    assert!(issued.iter().any(|l| l["event_id"] == 20004 && l["grant_type"] == "refresh_token"), "{issued:?}");
    for l in audit_lines(&c.id) {
        let t = l.to_string();
        assert!(!t.contains(&rt1) && !t.contains(&rt2), "a refresh token leaked: {t}");
    }
}

/// Refresh tokens issued before the time prefix (`crypto::opaque_token`): 43 characters, stored
/// by their digest alone. They keep working until they expire: introspection, rotation (to a
/// token of the new form), the grace-window replay and revocation.
#[tokio::test]
async fn refresh_tokens_of_the_earlier_form_keep_working() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = public_client(&app).await;
    let rs = introspector(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    let first = tokens_for(&app, &c, "alice", "").await;
    let now = state.clock.now();
    let issued = state.store.get_token(&gatehouse::crypto::opaque_token_id(&s(&first, "refresh_token")), now).await;
    let template = issued.unwrap().unwrap();
    // Two tokens of the earlier form, as that version stored them.
    let earlier = |family: &str| {
        let token = gatehouse::crypto::random_token();
        let id = gatehouse::crypto::digest(&token);
        (token, gatehouse::model::TokenRecord { id, family: Some(family.to_owned()), ..template.clone() })
    };
    let (old, old_rec) = earlier("earlier-family-1");
    let (other, other_rec) = earlier("earlier-family-2");
    assert_eq!(old.len(), 43);
    state.store.put_token(&old_rec).await.unwrap();
    state.store.put_token(&other_rec).await.unwrap();
    assert_active(&app, &rs, &old).await;

    state.clock.advance(10);
    let r = refresh(&app, &c, &old, "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let next = s(&r.body, "refresh_token");
    assert_eq!(next.len(), gatehouse::crypto::OPAQUE_TOKEN_LEN, "the successor has the new form");
    let rotated = state.store.get_token(&old_rec.id, state.clock.now()).await.unwrap().unwrap();
    assert_eq!(rotated.rotated_at, Some(T0 + 10));
    let successor = state.store.get_token(&gatehouse::crypto::opaque_token_id(&next), state.clock.now()).await;
    assert_eq!(successor.unwrap().unwrap().family.as_deref(), Some("earlier-family-1"));
    assert_inactive(&app, &rs, &old).await;
    assert_active(&app, &rs, &next).await;
    // A retry within the grace window gets the same successor.
    let again = refresh(&app, &c, &old, "").await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(again.body, r.body);

    let r = send(&app, form("/revoke", None, &format!("token={other}&client_id={}", c.id))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let revoked = state.store.get_token(&other_rec.id, state.clock.now()).await.unwrap().unwrap();
    assert!(revoked.revoked_at.is_some());
    assert_inactive(&app, &rs, &other).await;
    assert_invalid_grant(&refresh(&app, &c, &other, "").await, "the refresh token was revoked");
}

#[tokio::test]
async fn narrower_scope_is_granted_and_broader_is_invalid_scope() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = public_client(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    let first = tokens_for(&app, &c, "alice", "").await;

    let r = refresh(&app, &c, &s(&first, "refresh_token"), "&scope=read%20write%20admin").await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_scope");
    assert_eq!(r.body["error_description"], "the requested scope exceeds the refresh token's scope");

    let r = refresh(&app, &c, &s(&first, "refresh_token"), "&scope=read").await;
    assert_eq!(r.status, StatusCode::OK, "a refused request did not consume the token: {}", r.text);
    assert_eq!(r.body["scope"], "read");
    assert_eq!(claims(&s(&r.body, "access_token"))["scope"], "read");
    // The new refresh token keeps the original scope.
    let r = refresh(&app, &c, &s(&r.body, "refresh_token"), "&scope=write%20read").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["scope"], "read write");

    // A token issued for `read` only cannot widen to `write`.
    let narrow = tokens_for(&app, &c, "alice", "&scope=read").await;
    let r = refresh(&app, &c, &s(&narrow, "refresh_token"), "&scope=write").await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_scope");
}

#[tokio::test]
async fn a_rotated_token_gets_the_same_tokens_within_the_grace_window_then_revokes_the_family() {
    gatehouse::audit::start_capture();
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = public_client(&app).await;
    let rs = introspector(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    let first = tokens_for(&app, &c, "alice", "").await;
    let rt1 = s(&first, "refresh_token");
    let second = refresh(&app, &c, &rt1, "").await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.text);

    // Within GATEHOUSE_REFRESH_GRACE (10 s): the same new tokens, again and again.
    for step in [0, 5, 5] {
        state.clock.advance(step);
        let again = refresh(&app, &c, &rt1, "").await;
        assert_eq!(again.status, StatusCode::OK, "{}", again.text);
        assert_eq!(again.body, second.body, "the same tokens");
        assert_eq!(again.header("cache-control"), Some("no-store"));
    }
    let rt2 = s(&second.body, "refresh_token");
    let at2 = s(&second.body, "access_token");
    assert_active(&app, &rs, &rt2).await;
    assert_active(&app, &rs, &at2).await;

    // After the grace: reuse. invalid_grant, and the whole family goes, newest tokens included.
    state.clock.advance(1);
    let r = refresh(&app, &c, &rt1, "").await;
    assert_invalid_grant(&r, "the refresh token was already used");
    for t in [&rt2, &at2, &s(&first, "access_token")] {
        assert_inactive(&app, &rs, t).await;
    }
    assert_invalid_grant(&refresh(&app, &c, &rt2, "").await, "the refresh token was revoked");
    assert_invalid_grant(&refresh(&app, &c, &rt1, "").await, "the refresh token was already used");
    let reuse: Vec<Value> = audit_lines(&c.id).into_iter().filter(|l| l["event_id"] == 21010).collect();
    assert!(!reuse.is_empty(), "audited");
    assert_eq!(reuse[0]["event"], "refresh_reuse_detected");
    assert_eq!(reuse[0]["revoked"], 3, "the code's access token, the newest access and refresh tokens");
    let family =
        state.store.get_token(&gatehouse::crypto::opaque_token_id(&rt2), state.clock.now()).await.unwrap().unwrap();
    assert_eq!(family.revoked_at, Some(T0 + 11));
    assert_eq!(reuse[0]["family"], family.family.unwrap().as_str());
}

#[tokio::test]
async fn the_grace_window_never_hands_out_revoked_tokens() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = public_client(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    create_user(&app, "bob", PASSWORD).await;

    // The family was revoked (here by the admin) after the rotation: a retry within the
    // window is refused, not answered with the revoked tokens.
    let rt1 = s(&tokens_for(&app, &c, "alice", "").await, "refresh_token");
    let second = refresh(&app, &c, &rt1, "").await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.text);
    let r = send(&app, admin("POST", "/admin/tokens/revoke", Some(json!({"token": s(&second.body, "refresh_token")}))))
        .await;
    assert_eq!(r.body, json!({"revoked": true}));
    state.clock.advance(2);
    assert_invalid_grant(&refresh(&app, &c, &rt1, "").await, "the refresh token was revoked");

    // The user was disabled after the rotation: likewise.
    let rt1 = s(&tokens_for(&app, &c, "bob", "").await, "refresh_token");
    assert_eq!(refresh(&app, &c, &rt1, "").await.status, StatusCode::OK);
    let r = send(&app, admin("PATCH", "/admin/users/bob", Some(json!({"enabled": false})))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_invalid_grant(&refresh(&app, &c, &rt1, "").await, "the resource owner is unknown or disabled");
}

#[tokio::test]
async fn a_zero_grace_window_revokes_on_the_first_reuse() {
    let config = gatehouse::Config::from_lookup(|k| match k {
        "GATEHOUSE_ISSUER" => Some(ISSUER.into()),
        "GATEHOUSE_ADMIN_TOKEN" => Some(common::ADMIN.into()),
        "GATEHOUSE_REFRESH_GRACE" => Some("0".into()),
        _ => None,
    })
    .unwrap();
    let (store, _dir) = common::embedded();
    let state = AppState::new(
        config,
        store,
        std::sync::Arc::new(gatehouse::keys::LocalSigner::ephemeral()),
        gatehouse::clock::Clock::manual(T0),
    );
    let app = common::app(&state);
    let c = public_client(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    let first = tokens_for(&app, &c, "alice", "").await;
    let rt1 = s(&first, "refresh_token");
    assert_eq!(refresh(&app, &c, &rt1, "").await.status, StatusCode::OK);
    // Same second: `now - rotated_at = 0 <= 0` is still the window.
    assert_eq!(refresh(&app, &c, &rt1, "").await.status, StatusCode::OK);
    state.clock.advance(1);
    assert_invalid_grant(&refresh(&app, &c, &rt1, "").await, "the refresh token was already used");
}

#[tokio::test]
async fn another_clients_refresh_token_is_invalid_grant() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = public_client(&app).await;
    let other = public_client(&app).await;
    let conf = confidential_client(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    let rt = s(&tokens_for(&app, &c, "alice", "").await, "refresh_token");

    assert_invalid_grant(&refresh(&app, &other, &rt, "").await, "the refresh token was issued to another client");
    let body = format!("grant_type=refresh_token&refresh_token={rt}");
    let r = send(&app, form("/token", Some(&conf.basic()), &body)).await;
    assert_invalid_grant(&r, "the refresh token was issued to another client");
    // Unknown, an access token in its place, missing.
    assert_invalid_grant(
        &refresh(&app, &c, "not-a-refresh-token", "").await,
        "the refresh token is invalid or expired",
    );
    let at = s(&tokens_for(&app, &c, "alice", "").await, "access_token");
    assert_invalid_grant(&refresh(&app, &c, &at, "").await, "the refresh token is invalid or expired");
    let r = send(&app, form("/token", None, &format!("grant_type=refresh_token&client_id={}", c.id))).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(r.body["error_description"], "missing parameter `refresh_token`");
    // The owner's token still works.
    assert_eq!(refresh(&app, &c, &rt, "").await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_client_without_the_refresh_grant_is_unauthorized_client() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = public_client(&app).await;
    let code_only = register(
        &app,
        json!({"grant_types": ["authorization_code"], "token_endpoint_auth_method": "none",
               "redirect_uris": [crate::code_flow::REDIRECT], "scope": "read write"}),
    )
    .await;
    create_user(&app, "alice", PASSWORD).await;
    let rt = s(&tokens_for(&app, &c, "alice", "").await, "refresh_token");
    let own = tokens_for(&app, &code_only, "alice", "").await;
    assert_eq!(own.get("refresh_token"), None, "no refresh token without the grant: {own}");
    let r = refresh(&app, &code_only, &rt, "").await;
    assert_error(&r, StatusCode::BAD_REQUEST, "unauthorized_client");
    assert_eq!(r.body["error_description"], "the client is not allowed to use refresh_token");
}

#[tokio::test]
async fn revoking_a_refresh_token_at_the_revocation_endpoint_revokes_its_family() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = public_client(&app).await;
    let rs = introspector(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    let first = tokens_for(&app, &c, "alice", "").await;
    let second = refresh(&app, &c, &s(&first, "refresh_token"), "").await;
    assert_eq!(second.status, StatusCode::OK);
    let other_family = tokens_for(&app, &c, "alice", "").await;
    let rt2 = s(&second.body, "refresh_token");

    let r = send(&app, form("/revoke", None, &format!("token={rt2}&token_type_hint=refresh_token&client_id={}", c.id)))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.text, "");
    assert_eq!(r.header("cache-control"), Some("no-store"));
    for t in [&rt2, &s(&second.body, "access_token"), &s(&first, "access_token")] {
        assert_inactive(&app, &rs, t).await;
    }
    assert_invalid_grant(&refresh(&app, &c, &rt2, "").await, "the refresh token was revoked");
    // Another grant of the same user is untouched.
    assert_active(&app, &rs, &s(&other_family, "access_token")).await;
    assert_active(&app, &rs, &s(&other_family, "refresh_token")).await;
    // Revoking again, or an unknown token: 200.
    let r = send(&app, form("/revoke", None, &format!("token={rt2}&client_id={}", c.id))).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn introspecting_a_refresh_token() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = public_client(&app).await;
    let rs = introspector(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    let rt = s(&tokens_for(&app, &c, "alice", "").await, "refresh_token");
    let r = introspect(&app, &rs, &rt).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(
        r.body,
        json!({"active": true, "client_id": c.id, "sub": "alice", "aud": ISSUER, "iss": ISSUER,
               "exp": T0 + 2_592_000, "iat": T0, "scope": "read write", "username": "alice"})
    );
    state.clock.advance(1);
    let next = refresh(&app, &c, &rt, "").await;
    assert_eq!(next.status, StatusCode::OK);
    assert_inactive(&app, &rs, &rt).await;
    assert_active(&app, &rs, &s(&next.body, "refresh_token")).await;
}

#[tokio::test]
async fn a_clients_refresh_token_lifetime_applies() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = register(
        &app,
        json!({"grant_types": ["authorization_code", "refresh_token"], "token_endpoint_auth_method": "none",
               "redirect_uris": [crate::code_flow::REDIRECT], "scope": "read", "refresh_token_lifetime": 600}),
    )
    .await;
    let rs = introspector(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    let rt = s(&tokens_for(&app, &c, "alice", "").await, "refresh_token");
    assert_eq!(introspect(&app, &rs, &rt).await.body["exp"], T0 + 600);
    state.clock.advance(600);
    assert_inactive(&app, &rs, &rt).await;
    assert_invalid_grant(&refresh(&app, &c, &rt, "").await, "the refresh token is invalid or expired");
}

#[tokio::test]
async fn a_disabled_or_deleted_user_cannot_refresh() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = public_client(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    let rt = s(&tokens_for(&app, &c, "alice", "").await, "refresh_token");
    let r = send(&app, admin("PATCH", "/admin/users/alice", Some(json!({"enabled": false})))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_invalid_grant(&refresh(&app, &c, &rt, "").await, "the resource owner is unknown or disabled");
    // Refused without rotating: enabled again, the token works.
    let r = send(&app, admin("PATCH", "/admin/users/alice", Some(json!({"enabled": true})))).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = refresh(&app, &c, &rt, "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

/// 20 concurrent refreshes of one token: all answer 200 with the same new tokens (the grace
/// rule), and exactly one rotation is stored.
async fn concurrent_refreshes(state: AppState) {
    gatehouse::audit::start_capture();
    let app = common::app(&state);
    let c = public_client(&app).await;
    let rs = introspector(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    let first = tokens_for(&app, &c, "alice", "").await;
    let rt1 = s(&first, "refresh_token");
    let body = format!("grant_type=refresh_token&refresh_token={rt1}&client_id={}", c.id);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (app, body) = (app.clone(), body.clone());
            tokio::spawn(async move { send(&app, form("/token", None, &body)).await })
        })
        .collect();
    let mut bodies = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        bodies.push(r.body);
    }
    let winner = bodies[0].clone();
    assert!(bodies.iter().all(|b| *b == winner), "every answer carries the same new tokens");
    let rt2 = s(&winner, "refresh_token");
    assert_ne!(rt2, rt1);

    let now = state.clock.now();
    let old = state.store.get_token(&gatehouse::crypto::opaque_token_id(&rt1), now).await.unwrap().unwrap();
    assert_eq!((old.rotated_at, old.revoked_at), (Some(T0), None));
    let family = old.family.clone().unwrap();
    // Active in the family: the code's access token, one new access token, one new refresh token.
    let active = state.store.list_family(&family, now).await.unwrap();
    let kinds: Vec<TokenKind> = active.iter().map(|t| t.kind).collect();
    assert_eq!(kinds.iter().filter(|k| **k == TokenKind::Refresh).count(), 1, "{active:?}");
    assert_eq!(kinds.iter().filter(|k| **k == TokenKind::Access).count(), 2, "{active:?}");
    assert!(active.iter().any(|t| t.id == gatehouse::crypto::opaque_token_id(&rt2)));
    let counts = send(&app, admin("GET", "/admin/tokens/count?type=refresh&end_user=alice", None)).await;
    assert_eq!(counts.body, json!({"count": 1}));
    let refreshed = audit_lines(&family).into_iter().filter(|l| l["event_id"] == 20005).count();
    assert_eq!(refreshed, 1, "one rotation");
    assert_active(&app, &rs, &rt2).await;
    assert_active(&app, &rs, &s(&winner, "access_token")).await;
    assert_inactive(&app, &rs, &rt1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_refreshes_embedded() {
    let (state, _dir) = common::embedded_state();
    concurrent_refreshes(state).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_refreshes_dynamodb() {
    let Some((store, _, _)) = common::dynamo().await else { return };
    concurrent_refreshes(common::state_on(store)).await;
}

/// Rotation, grace and reuse detection on DynamoDB.
#[tokio::test]
async fn rotation_grace_and_reuse_on_dynamodb() {
    let Some((store, _, _)) = common::dynamo().await else { return };
    let state = common::state_on(store);
    let app = common::app(&state);
    let c = public_client(&app).await;
    let rs = introspector(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    let first = tokens_for(&app, &c, "alice", "").await;
    let rt1 = s(&first, "refresh_token");
    let second = refresh(&app, &c, &rt1, "").await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.text);
    state.clock.advance(10);
    assert_eq!(refresh(&app, &c, &rt1, "").await.body, second.body);
    state.clock.advance(1);
    assert_invalid_grant(&refresh(&app, &c, &rt1, "").await, "the refresh token was already used");
    assert_inactive(&app, &rs, &s(&second.body, "refresh_token")).await;
    assert_inactive(&app, &rs, &s(&second.body, "access_token")).await;
    assert_inactive(&app, &rs, &s(&first, "access_token")).await;
}

// ---------------------------------------------------------------- the password grant

pub(crate) async fn password_client(app: &Router) -> TestClient {
    register(app, json!({"grant_types": ["password", "refresh_token"], "scope": "read write"})).await
}

pub(crate) async fn password_grant(app: &Router, c: &TestClient, body: &str) -> common::Resp {
    send(app, form("/token", Some(&c.basic()), &format!("grant_type=password&{body}"))).await
}

pub(crate) fn credentials(username: &str, password: &str) -> String {
    format!("username={}&password={}", enc(username), enc(password))
}

#[tokio::test]
async fn password_grant_issues_access_and_refresh_tokens() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = password_client(&app).await;
    let access_only = register(&app, json!({"grant_types": ["password"], "scope": "read write"})).await;
    create_user(&app, "alice", PASSWORD).await;
    let r = password_grant(&app, &c, &format!("{}&scope=read", credentials("alice", PASSWORD))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let (at, rt) = (s(&r.body, "access_token"), s(&r.body, "refresh_token"));
    assert_eq!(
        r.body,
        json!({"access_token": at, "token_type": "Bearer", "expires_in": 3600, "refresh_token": rt, "scope": "read"})
    );
    let cl = claims(&at);
    assert_eq!((cl["sub"].as_str(), cl["client_id"].as_str()), (Some("alice"), Some(c.id.as_str())));
    let rec = state.store.get_token(cl["jti"].as_str().unwrap(), T0).await.unwrap().unwrap();
    assert_eq!(rec.grant_type, GrantType::Password);
    assert_eq!(rec.end_user.as_deref(), Some("alice"));
    let refresh_rec = state.store.get_token(&gatehouse::crypto::opaque_token_id(&rt), T0).await.unwrap().unwrap();
    assert_eq!(refresh_rec.grant_type, GrantType::Password);
    assert_eq!(refresh_rec.family, rec.family);
    // The refresh token works.
    let r = send(&app, form("/token", Some(&c.basic()), &format!("grant_type=refresh_token&refresh_token={rt}"))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["scope"], "read");
    // Without the refresh_token grant: the access token only.
    let r = password_grant(&app, &access_only, &credentials("alice", PASSWORD)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let at = s(&r.body, "access_token");
    assert_eq!(r.body, json!({"access_token": at, "token_type": "Bearer", "expires_in": 3600, "scope": "read write"}));
}

#[tokio::test]
async fn password_grant_errors_are_exact() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = password_client(&app).await;
    let no_grant = register(&app, json!({"grant_types": ["client_credentials"], "scope": "read write"})).await;
    create_user(&app, "alice", PASSWORD).await;

    let r = password_grant(&app, &no_grant, &credentials("alice", PASSWORD)).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "unauthorized_client");
    assert_eq!(r.body["error_description"], "the client is not allowed to use password");

    for who in ["alice", "nobody"] {
        let r = password_grant(&app, &c, &credentials(who, "wrong password")).await;
        assert_invalid_grant(&r, "the resource owner credentials are invalid");
    }
    let r = password_grant(&app, &c, &format!("password={}", enc(PASSWORD))).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(r.body["error_description"], "missing parameter `username`");
    let r = password_grant(&app, &c, "username=alice").await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(r.body["error_description"], "missing parameter `password`");
    let r = password_grant(&app, &c, &format!("{}&scope=admin", credentials("alice", PASSWORD))).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_scope");
    // A wrong client secret is invalid_client, whatever the user's credentials.
    let bad = TestClient { id: c.id.clone(), secret: Some("wrong".into()) };
    let r = send(
        &app,
        form("/token", Some(&bad.basic()), &format!("grant_type=password&{}", credentials("alice", PASSWORD))),
    )
    .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_client");
    // No token was issued by any of these.
    let r = send(&app, admin("GET", "/admin/tokens/count?type=access&end_user=alice", None)).await;
    assert_eq!(r.body, json!({"count": 0}));
}

#[tokio::test]
async fn password_grant_and_sign_in_page_share_the_lockout() {
    gatehouse::audit::start_capture();
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = password_client(&app).await;
    let web = public_client(&app).await;
    let user = format!("pw-{}", gatehouse::crypto::random_id());
    create_user(&app, &user, PASSWORD).await;
    let page = open(&app, &pkce_query(&web.id, "")).await;

    for _ in 0..3 {
        assert_sign_in_refused(
            &sign_in(&app, &page, &user, "wrong password").await,
            crate::code_flow::INVALID_CREDENTIALS,
        );
    }
    assert_invalid_grant(
        &password_grant(&app, &c, &credentials(&user, "wrong password")).await,
        "the resource owner credentials are invalid",
    );
    // The fifth failure, counted across both, locks.
    let locked = "too many failed sign-in attempts; try again later";
    assert_invalid_grant(&password_grant(&app, &c, &credentials(&user, "wrong password")).await, locked);
    assert_invalid_grant(&password_grant(&app, &c, &credentials(&user, PASSWORD)).await, locked);
    assert_sign_in_refused(&sign_in(&app, &page, &user, PASSWORD).await, LOCKED);
    assert!(audit_lines(&user).iter().any(|l| l["event_id"] == 21006));

    state.clock.advance(901);
    let r = password_grant(&app, &c, &credentials(&user, PASSWORD)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // A success clears the count: four more failures do not lock.
    for _ in 0..4 {
        assert_invalid_grant(
            &password_grant(&app, &c, &credentials(&user, "wrong password")).await,
            "the resource owner credentials are invalid",
        );
    }
    assert_eq!(password_grant(&app, &c, &credentials(&user, PASSWORD)).await.status, StatusCode::OK);
}

/// Failures counted concurrently are all counted (atomic increments): 4 parallel failures,
/// then the fifth locks.
async fn concurrent_failures_are_all_counted(state: AppState) {
    let app = common::app(&state);
    let c = password_client(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    let body = format!("grant_type=password&{}", credentials("alice", "wrong password"));
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (app, body, auth) = (app.clone(), body.clone(), c.basic());
            tokio::spawn(async move { send(&app, form("/token", Some(&auth), &body)).await })
        })
        .collect();
    for t in tasks {
        assert_invalid_grant(&t.await.unwrap(), "the resource owner credentials are invalid");
    }
    let locked = "too many failed sign-in attempts; try again later";
    assert_invalid_grant(&password_grant(&app, &c, &credentials("alice", "wrong password")).await, locked);
    assert_invalid_grant(&password_grant(&app, &c, &credentials("alice", PASSWORD)).await, locked);
    state.clock.advance(901);
    assert_eq!(password_grant(&app, &c, &credentials("alice", PASSWORD)).await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_failures_are_all_counted_embedded() {
    let (state, _dir) = common::embedded_state();
    concurrent_failures_are_all_counted(state).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_failures_are_all_counted_dynamodb() {
    let Some((store, _, _)) = common::dynamo().await else { return };
    concurrent_failures_are_all_counted(common::state_on(store)).await;
}

/// A burst of guesses gets no more password checks than sequential guesses would: 20 at once,
/// and only the first five counted are checked (the fifth locks); the other 15 are refused
/// unchecked, and even the right password is refused until the cool-down ends.
async fn a_burst_of_guesses_gets_only_the_thresholds_checks(state: AppState) {
    gatehouse::audit::start_capture();
    let app = common::app(&state);
    let c = password_client(&app).await;
    let user = format!("burst-{}", gatehouse::crypto::random_id());
    create_user(&app, &user, PASSWORD).await;
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let body = format!("grant_type=password&{}", credentials(&user, &format!("guess number {i}")));
            let (app, auth) = (app.clone(), c.basic());
            tokio::spawn(async move { send(&app, form("/token", Some(&auth), &body)).await })
        })
        .collect();
    let invalid = "the resource owner credentials are invalid";
    let locked = "too many failed sign-in attempts; try again later";
    let mut answers = std::collections::BTreeMap::new();
    for t in tasks {
        let r = t.await.unwrap();
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");
        *answers.entry(r.body["error_description"].as_str().unwrap().to_owned()).or_insert(0) += 1;
    }
    assert_eq!(answers, [(invalid.to_owned(), 4), (locked.to_owned(), 16)].into_iter().collect());
    let reasons: Vec<String> = audit_lines(&user)
        .iter()
        .filter(|l| l["event"] == "sign_in_failed")
        .map(|l| l["reason"].as_str().unwrap().to_owned())
        .collect();
    let checked = reasons.iter().filter(|r| *r == "invalid credentials").count();
    assert_eq!(checked, 5, "five passwords checked: {reasons:?}");
    assert_eq!(reasons.iter().filter(|r| *r == "locked").count(), 15, "{reasons:?}");
    assert_invalid_grant(&password_grant(&app, &c, &credentials(&user, PASSWORD)).await, locked);
    state.clock.advance(901);
    assert_eq!(password_grant(&app, &c, &credentials(&user, PASSWORD)).await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_guesses_gets_only_the_thresholds_checks_embedded() {
    let (state, _dir) = common::embedded_state();
    a_burst_of_guesses_gets_only_the_thresholds_checks(state).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_guesses_gets_only_the_thresholds_checks_dynamodb() {
    let Some((store, _, _)) = common::dynamo().await else { return };
    a_burst_of_guesses_gets_only_the_thresholds_checks(common::state_on(store)).await;
}

/// A flood of sign-ins, each with another username (which the lockout does not bound): at most
/// `hashing_limit` Argon2 checks run at once in the process (19 MiB and a CPU each), the others
/// wait their turn, and every one is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_sign_ins_runs_a_bounded_number_of_argon2_checks_at_once() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = password_client(&app).await;
    let limit = gatehouse::users::hashing_limit();
    let tasks: Vec<_> = (0..3 * limit + 2)
        .map(|i| {
            let body = format!("grant_type=password&{}", credentials(&format!("flood-{i}"), "a wrong password"));
            let (app, auth) = (app.clone(), c.basic());
            tokio::spawn(async move { send(&app, form("/token", Some(&auth), &body)).await })
        })
        .collect();
    for t in tasks {
        assert_invalid_grant(&t.await.unwrap(), "the resource owner credentials are invalid");
    }
    let peak = gatehouse::users::hashing_peak();
    assert!((1..=limit).contains(&peak), "{peak} checks at once (limit {limit})");
}

/// On DynamoDB a family is listed through an index, which is eventually consistent: a token
/// issued a moment ago may not be in it yet. Here the index never catches up (the tokens'
/// `family_pk` removed in the table), and every revocation still takes them: a replayed code
/// the tokens its redemption issued (recorded on the code), a reused refresh token the access
/// token issued with it (recorded on it) and its successors (from the sealed successor
/// responses), a revoked refresh token itself and the access token issued with it.
#[tokio::test]
async fn revocations_do_not_wait_for_the_family_index_dynamodb() {
    use aws_sdk_dynamodb::types::AttributeValue;

    let Some((store, ddb, table)) = common::dynamo().await else { return };
    let state = common::state_on(store);
    let app = common::app(&state);
    let c = public_client(&app).await;
    let rs = introspector(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    let unlisted = |ids: Vec<String>| {
        let (ddb, table) = (ddb.clone(), table.clone());
        async move {
            for id in ids {
                ddb.update_item()
                    .table_name(&table)
                    .key("pk", AttributeValue::S(format!("TOKEN#{id}")))
                    .key("sk", AttributeValue::S("TOKEN".into()))
                    .update_expression("REMOVE family_pk")
                    .send()
                    .await
                    .unwrap();
            }
        }
    };
    let ids = |body: &Value| {
        let at = s(body, "access_token");
        vec![
            claims(&at)["jti"].as_str().unwrap().to_owned(),
            gatehouse::crypto::opaque_token_id(&s(body, "refresh_token")),
        ]
    };

    // A replayed code.
    let code = crate::code_flow::code_for(&app, &pkce_query(&c.id, ""), "alice", PASSWORD).await;
    let first = crate::code_flow::exchange_public(&app, &c, &code).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    unlisted(ids(&first.body)).await;
    assert_invalid_grant(
        &crate::code_flow::exchange_public(&app, &c, &code).await,
        "the authorization code was already used",
    );
    assert_inactive(&app, &rs, &s(&first.body, "access_token")).await;
    assert_inactive(&app, &rs, &s(&first.body, "refresh_token")).await;

    // A reused refresh token, two rotations later.
    let tokens = tokens_for(&app, &c, "alice", "").await;
    let rt1 = s(&tokens, "refresh_token");
    let second = refresh(&app, &c, &rt1, "").await.body;
    let third = refresh(&app, &c, &s(&second, "refresh_token"), "").await.body;
    assert_active(&app, &rs, &s(&third, "refresh_token")).await;
    unlisted([ids(&tokens), ids(&second), ids(&third)].concat()).await;
    state.clock.advance(11); // past the grace window
    assert_invalid_grant(&refresh(&app, &c, &rt1, "").await, "the refresh token was already used");
    assert_inactive(&app, &rs, &s(&tokens, "access_token")).await;
    for t in ["access_token", "refresh_token"] {
        assert_inactive(&app, &rs, &s(&second, t)).await;
        assert_inactive(&app, &rs, &s(&third, t)).await;
    }

    // A revoked refresh token.
    let tokens = tokens_for(&app, &c, "alice", "").await;
    let rt = s(&tokens, "refresh_token");
    unlisted(ids(&tokens)).await;
    let r = send(&app, form("/revoke", None, &format!("token={}&client_id={}", enc(&rt), enc(&c.id)))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_inactive(&app, &rs, &rt).await;
    assert_inactive(&app, &rs, &s(&tokens, "access_token")).await;
}

/// A cool-down shorter than the counting window: after it, the right password works, and the
/// next failures are counted afresh (the lock restarts the count) until they lock again.
#[tokio::test]
async fn after_the_cool_down_the_right_password_works_even_within_the_window() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let settings = json!({"lockout_window": 86_400, "lockout_cooldown": 300});
    let r = send(&app, admin("PATCH", "/admin/settings", Some(settings))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let c = password_client(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    let (invalid, locked) =
        ("the resource owner credentials are invalid", "too many failed sign-in attempts; try again later");
    let bad = credentials("alice", "wrong password");
    let wrong = || password_grant(&app, &c, &bad);
    for _ in 0..4 {
        assert_invalid_grant(&wrong().await, invalid);
    }
    assert_invalid_grant(&wrong().await, locked);
    state.clock.advance(299);
    assert_invalid_grant(&password_grant(&app, &c, &credentials("alice", PASSWORD)).await, locked);
    state.clock.advance(2);
    let r = password_grant(&app, &c, &credentials("alice", PASSWORD)).await;
    assert_eq!(r.status, StatusCode::OK, "after the cool-down: {}", r.text);
    for _ in 0..4 {
        assert_invalid_grant(&wrong().await, invalid);
    }
    assert_invalid_grant(&wrong().await, locked);
}
