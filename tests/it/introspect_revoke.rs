//! `POST /introspect` (RFC 7662) and `POST /revoke` (RFC 7009): what is active, what is not,
//! who may ask, and what revocation changes in the store.
use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse::keys::{LocalSigner, Signer};
use gatehouse::model::TokenKind;
use gatehouse::store::TokenQuery;
use serde_json::{Value, json};

use crate::common::{self, T0, TestClient, assert_error, cc_client, cc_token, form, register, send};

const BASIC_CHALLENGE: &str = "Basic realm=\"gatehouse\"";
const ISSUER: &str = "https://auth.test.example";

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn payload(token: &str) -> Value {
    let p = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap()
}

fn jti(token: &str) -> String {
    payload(token)["jti"].as_str().unwrap().to_owned()
}

async fn introspect(app: &axum::Router, caller: &TestClient, token: &str) -> common::Resp {
    send(app, form("/introspect", Some(&caller.basic()), &format!("token={}", enc(token)))).await
}

async fn revoke(app: &axum::Router, caller: &TestClient, body: &str) -> common::Resp {
    send(app, form("/revoke", Some(&caller.basic()), body)).await
}

/// Asserts the exact inactive answer: 200, `{"active":false}`, not cached.
fn assert_inactive(r: &common::Resp) {
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body, json!({"active": false}), "{}", r.text);
    assert_eq!(r.text, r#"{"active":false}"#);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("pragma"), Some("no-cache"));
}

async fn active_count(state: &gatehouse::AppState, client_id: &str) -> u64 {
    let q = TokenQuery { kind: TokenKind::Access, client_id: Some(client_id.to_owned()), end_user: None };
    state.store.count_tokens(&q, state.clock.now()).await.unwrap()
}

/// A resource server's confidential client that introspects (it has no grant of its own use here).
async fn rs_client(app: &axum::Router) -> TestClient {
    register(app, json!({"grant_types": ["client_credentials"], "client_name": "resource server"})).await
}

// ---------------------------------------------------------------- RFC 7662 introspection

#[tokio::test]
async fn active_token_has_exactly_the_rfc7662_members() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = cc_client(&app).await;
    let rs = rs_client(&app).await;
    let token = cc_token(&app, &c, "").await;
    let id = jti(&token);

    let r = introspect(&app, &rs, &token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("pragma"), Some("no-cache"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.body,
        json!({
            "active": true,
            "client_id": c.id,
            "sub": c.id,
            "aud": ISSUER,
            "iss": ISSUER,
            "exp": T0 + 3600,
            "iat": T0,
            "jti": id,
            "token_type": "Bearer",
            "scope": "read write",
        })
    );
    assert!(!r.text.contains(&token), "the token itself is never echoed");

    // The token's own client may introspect it too, and with client_secret_post.
    let r = introspect(&app, &c, &token).await;
    assert_eq!(r.body["active"], true, "{}", r.text);
    let p = register(
        &app,
        json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_post"}),
    )
    .await;
    let body = format!("token={}&client_id={}&client_secret={}", enc(&token), p.id, p.secret.as_deref().unwrap());
    let r = send(&app, form("/introspect", None, &body)).await;
    assert_eq!(r.body["active"], true, "{}", r.text);
    // A token_type_hint does not change the answer.
    let r = send(
        &app,
        form("/introspect", Some(&rs.basic()), &format!("token={}&token_type_hint=refresh_token", enc(&token))),
    )
    .await;
    assert_eq!(r.body["active"], true, "{}", r.text);
}

#[tokio::test]
async fn revoked_token_is_inactive() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = cc_client(&app).await;
    let rs = rs_client(&app).await;
    let token = cc_token(&app, &c, "").await;
    let r = revoke(&app, &c, &format!("token={}", enc(&token))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_inactive(&introspect(&app, &rs, &token).await);
}

#[tokio::test]
async fn expired_token_is_inactive() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = cc_client(&app).await;
    let rs = rs_client(&app).await;
    let token = cc_token(&app, &c, "").await;
    state.clock.advance(3599);
    assert_eq!(introspect(&app, &rs, &token).await.body["active"], true);
    state.clock.advance(1); // now == exp: no longer active (RFC 7519 §4.1.4 "on or after")
    assert_inactive(&introspect(&app, &rs, &token).await);
    state.clock.advance(3601);
    assert_inactive(&introspect(&app, &rs, &token).await);
}

#[tokio::test]
async fn garbage_tampered_and_foreign_tokens_are_inactive() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = cc_client(&app).await;
    let rs = rs_client(&app).await;
    let token = cc_token(&app, &c, "").await;
    let parts: Vec<&str> = token.split('.').collect();

    // One signature byte flipped.
    let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    assert_eq!(sig.len(), 64, "ES256 JOSE signature");
    sig[10] ^= 0x01;
    let flipped = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(&sig));

    // The same claims (same jti: the record exists), signed by another key, under its kid ...
    let other = LocalSigner::ephemeral();
    let foreign = other.sign("at+jwt", &payload(&token)).await.unwrap();
    // ... and under our kid (a forgery that names our key).
    let input = format!("{}.{}", parts[0], parts[1]);
    let forged = format!("{input}.{}", URL_SAFE_NO_PAD.encode(other.sign_input(input.as_bytes()).await.unwrap()));

    // Payload changed (scope widened), original signature kept.
    let mut claims = payload(&token);
    claims["scope"] = json!("read write admin");
    let widened = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(claims.to_string()), parts[2]);

    // Unsigned (alg none) with the same claims.
    let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"at+jwt"}"#);
    let unsigned = format!("{none_header}.{}.", parts[1]);

    // A valid signature but the wrong typ (an ID token, say).
    let wrong_typ = state.signer.sign("JWT", &payload(&token)).await.unwrap();

    // A valid signature but another issuer.
    let mut other_iss = payload(&token);
    other_iss["iss"] = json!("https://evil.example");
    let other_iss = state.signer.sign("at+jwt", &other_iss).await.unwrap();

    // Validly signed by us but with no stored record (unknown jti).
    let mut unknown = payload(&token);
    unknown["jti"] = json!("never-issued-jti-000000");
    let unknown = state.signer.sign("at+jwt", &unknown).await.unwrap();

    for bad in [
        "garbage".to_owned(),
        "a.b.c".to_owned(),
        "x".repeat(9000),
        flipped,
        foreign,
        forged,
        widened,
        unsigned,
        wrong_typ,
        other_iss,
        unknown,
    ] {
        let r = introspect(&app, &rs, &bad).await;
        assert_inactive(&r);
    }
    // The genuine token is still active.
    assert_eq!(introspect(&app, &rs, &token).await.body["active"], true);
}

#[tokio::test]
async fn token_of_a_record_from_another_client_is_inactive() {
    // A validly signed token whose claims name a different client than its record.
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = cc_client(&app).await;
    let other = cc_client(&app).await;
    let rs = rs_client(&app).await;
    let token = cc_token(&app, &c, "").await;
    let mut claims = payload(&token);
    claims["client_id"] = json!(other.id);
    claims["sub"] = json!(other.id);
    let mismatched = state.signer.sign("at+jwt", &claims).await.unwrap();
    assert_inactive(&introspect(&app, &rs, &mismatched).await);
}

#[tokio::test]
async fn introspect_requires_token_and_confidential_client_auth() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = cc_client(&app).await;
    let rs = rs_client(&app).await;
    let token = cc_token(&app, &c, "").await;

    // Missing token.
    for body in ["", "token=", "token_type_hint=access_token"] {
        let r = send(&app, form("/introspect", Some(&rs.basic()), body)).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    }
    // Repeated token.
    let r = send(&app, form("/introspect", Some(&rs.basic()), &format!("token={0}&token={0}", enc(&token)))).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    assert!(!r.text.contains(&token));

    // No client authentication: 401 + Basic challenge, token not echoed.
    let r = send(&app, form("/introspect", None, &format!("token={}", enc(&token)))).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_client");
    assert_eq!(r.header("www-authenticate"), Some(BASIC_CHALLENGE));
    assert!(!r.text.contains(&token));

    // Wrong secret via Basic: 401 + challenge; secret and token not echoed.
    let wrong = "WrongIntrospectionSecret-0123456789abcdefgh";
    let r =
        send(&app, form("/introspect", Some(&common::basic(&rs.id, wrong)), &format!("token={}", enc(&token)))).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_client");
    assert_eq!(r.header("www-authenticate"), Some(BASIC_CHALLENGE));
    assert!(!r.text.contains(wrong) && !r.text.contains(&token));

    // A public client cannot introspect (it cannot authenticate).
    let public = register(
        &app,
        json!({"grant_types": ["authorization_code"], "token_endpoint_auth_method": "none",
               "redirect_uris": ["https://app.example.com/cb"]}),
    )
    .await;
    let r = send(&app, form("/introspect", None, &format!("token={}&client_id={}", enc(&token), public.id))).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_client");
    assert_eq!(r.header("www-authenticate"), None);
    assert!(!r.text.contains(&token));

    // Wrong method and content type.
    let r = send(&app, Request::get("/introspect").body(Body::empty()).unwrap()).await;
    assert_error(&r, StatusCode::METHOD_NOT_ALLOWED, "invalid_request");
    assert_eq!(r.header("allow"), Some("POST"));
    let r = send(
        &app,
        Request::post("/introspect")
            .header("authorization", rs.basic())
            .header("content-type", "application/json")
            .body(Body::from(json!({"token": token}).to_string()))
            .unwrap(),
    )
    .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    assert!(!r.text.contains(&token));

    // Nothing above changed the token.
    assert_eq!(introspect(&app, &rs, &token).await.body["active"], true);
}

// ---------------------------------------------------------------- RFC 7009 revocation

#[tokio::test]
async fn revoke_own_token() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = cc_client(&app).await;
    let token = cc_token(&app, &c, "").await;
    let keep = cc_token(&app, &c, "").await;
    let id = jti(&token);
    assert_eq!(active_count(&state, &c.id).await, 2);

    state.clock.advance(10);
    let r = revoke(&app, &c, &format!("token={}", enc(&token))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.text, "");
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("pragma"), Some("no-cache"));

    let rec = state.store.get_token(&id, state.clock.now()).await.unwrap().expect("the record stays");
    assert_eq!(rec.revoked_at, Some(T0 + 10));
    assert!(!rec.is_active(state.clock.now()));
    assert_eq!(active_count(&state, &c.id).await, 1);
    // The other token is untouched.
    let other = state.store.get_token(&jti(&keep), state.clock.now()).await.unwrap().unwrap();
    assert_eq!(other.revoked_at, None);
    assert_eq!(introspect(&app, &c, &keep).await.body["active"], true);
}

#[tokio::test]
async fn revoke_with_client_secret_post() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = register(
        &app,
        json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_post"}),
    )
    .await;
    let body =
        format!("grant_type=client_credentials&client_id={}&client_secret={}", c.id, c.secret.as_deref().unwrap());
    let r = send(&app, form("/token", None, &body)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let token = r.body["access_token"].as_str().unwrap().to_owned();
    let body = format!("token={}&client_id={}&client_secret={}", enc(&token), c.id, c.secret.as_deref().unwrap());
    let r = send(&app, form("/revoke", None, &body)).await;
    assert_eq!((r.status, r.text.as_str()), (StatusCode::OK, ""));
    assert_eq!(active_count(&state, &c.id).await, 0);
}

#[tokio::test]
async fn revoke_unknown_or_garbage_token_is_200() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = cc_client(&app).await;
    let token = cc_token(&app, &c, "").await;
    for bad in ["garbage", "a.b.c", "never-issued"] {
        let r = revoke(&app, &c, &format!("token={}", enc(bad))).await;
        assert_eq!(r.status, StatusCode::OK, "{bad}: {}", r.text);
        assert_eq!(r.text, "");
        assert_eq!(r.header("cache-control"), Some("no-store"));
    }
    // An expired token: 200 too.
    let short = register(&app, json!({"grant_types": ["client_credentials"], "access_token_lifetime": 60})).await;
    let expired = cc_token(&app, &short, "").await;
    state.clock.advance(61);
    let r = revoke(&app, &short, &format!("token={}", enc(&expired))).await;
    assert_eq!((r.status, r.text.as_str()), (StatusCode::OK, ""));
    assert_eq!(active_count(&state, &c.id).await, 1, "the real token is untouched");
    assert_eq!(state.store.get_token(&jti(&token), state.clock.now()).await.unwrap().unwrap().revoked_at, None);
}

#[tokio::test]
async fn revoke_another_clients_token_is_refused() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let owner = cc_client(&app).await;
    let thief = cc_client(&app).await;
    let token = cc_token(&app, &owner, "").await;

    let r = revoke(&app, &thief, &format!("token={}", enc(&token))).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "unauthorized_client");
    assert_eq!(r.header("www-authenticate"), None);
    assert!(!r.text.contains(&token));

    let rec = state.store.get_token(&jti(&token), T0).await.unwrap().unwrap();
    assert_eq!(rec.revoked_at, None);
    assert_eq!(active_count(&state, &owner.id).await, 1);
    assert_eq!(introspect(&app, &thief, &token).await.body["active"], true);
}

#[tokio::test]
async fn revoking_twice_is_200_both_times() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = cc_client(&app).await;
    let token = cc_token(&app, &c, "").await;
    let body = format!("token={}", enc(&token));
    let first = revoke(&app, &c, &body).await;
    state.clock.advance(5);
    let second = revoke(&app, &c, &body).await;
    for r in [&first, &second] {
        assert_eq!((r.status, r.text.as_str()), (StatusCode::OK, ""));
        assert_eq!(r.header("cache-control"), Some("no-store"));
    }
    // The first revocation time stands.
    assert_eq!(state.store.get_token(&jti(&token), state.clock.now()).await.unwrap().unwrap().revoked_at, Some(T0));
    assert_eq!(active_count(&state, &c.id).await, 0);
}

#[tokio::test]
async fn token_type_hint_is_only_a_hint() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = cc_client(&app).await;
    for hint in ["refresh_token", "access_token", "something_else"] {
        let token = cc_token(&app, &c, "").await;
        let r = revoke(&app, &c, &format!("token={}&token_type_hint={hint}", enc(&token))).await;
        assert_eq!((r.status, r.text.as_str()), (StatusCode::OK, ""), "{hint}");
        let rec = state.store.get_token(&jti(&token), T0).await.unwrap().unwrap();
        assert_eq!(rec.revoked_at, Some(T0), "{hint}");
        assert_inactive(&introspect(&app, &c, &token).await);
    }
    assert_eq!(active_count(&state, &c.id).await, 0);
}

#[tokio::test]
async fn revoke_requires_token_and_client_auth() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = cc_client(&app).await;
    let token = cc_token(&app, &c, "").await;

    let r = revoke(&app, &c, "token_type_hint=access_token").await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");

    let r = send(&app, form("/revoke", None, &format!("token={}", enc(&token)))).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_client");
    assert_eq!(r.header("www-authenticate"), Some(BASIC_CHALLENGE));
    assert!(!r.text.contains(&token));

    let wrong = "WrongRevocationSecret-0123456789abcdefghijk";
    let r = send(&app, form("/revoke", Some(&common::basic(&c.id, wrong)), &format!("token={}", enc(&token)))).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_client");
    assert_eq!(r.header("www-authenticate"), Some(BASIC_CHALLENGE));
    assert!(!r.text.contains(wrong) && !r.text.contains(&token));

    let r = send(&app, Request::get("/revoke").body(Body::empty()).unwrap()).await;
    assert_error(&r, StatusCode::METHOD_NOT_ALLOWED, "invalid_request");
    assert_eq!(r.header("allow"), Some("POST"));

    // None of these revoked anything.
    assert_eq!(active_count(&state, &c.id).await, 1);
}
