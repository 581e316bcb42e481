//! `POST /token` with `grant_type=client_credentials` (RFC 6749 §4.4, §5; RFC 9068; RFC 8707):
//! success bodies and JWTs, scope and resource decisions, request validation, and client
//! authentication (RFC 6749 §2.3, §5.2: 401 + `WWW-Authenticate` only for the header).
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse::model::{GrantType, TokenKind};
use gatehouse::store::TokenQuery;
use serde_json::{Value, json};

use crate::common::{self, T0, TestClient, assert_error, basic, cc_client, cc_token, form, register, send};

const BASIC_CHALLENGE: &str = "Basic realm=\"gatehouse\"";
const ISSUER: &str = "https://auth.test.example";

/// Form-encodes one value.
fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A JWT's three parts: decoded header, decoded payload, raw signature segment.
fn jwt_parts(token: &str) -> (Value, Value, String) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a compact JWS: {token}");
    let dec = |s: &str| -> Value { serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s).unwrap()).unwrap() };
    (dec(parts[0]), dec(parts[1]), parts[2].to_owned())
}

/// How many active access tokens `client_id` holds now.
async fn active_count(state: &gatehouse::AppState, client_id: &str) -> u64 {
    let q = TokenQuery { kind: TokenKind::Access, client_id: Some(client_id.to_owned()), end_user: None };
    state.store.count_tokens(&q, state.clock.now()).await.unwrap()
}

/// A confidential client that authenticates with `client_secret_post`.
async fn post_client(router: &axum::Router) -> TestClient {
    register(
        router,
        json!({"grant_types": ["client_credentials"], "scope": "read write", "token_endpoint_auth_method": "client_secret_post"}),
    )
    .await
}

/// A public client (no secret) registered for the authorization code grant only.
async fn public_client(router: &axum::Router) -> TestClient {
    register(
        router,
        json!({"grant_types": ["authorization_code"], "token_endpoint_auth_method": "none",
               "redirect_uris": ["https://app.example.com/cb"], "scope": "read"}),
    )
    .await
}

fn assert_no_store(r: &common::Resp) {
    assert_eq!(r.header("cache-control"), Some("no-store"), "{:?}", r.headers);
    assert_eq!(r.header("pragma"), Some("no-cache"), "{:?}", r.headers);
}

/// `invalid_client` answered to an Authorization-header attempt (or none): 401 + Basic challenge.
fn assert_invalid_client_401(r: &common::Resp) {
    assert_error(r, StatusCode::UNAUTHORIZED, "invalid_client");
    assert_eq!(r.header("www-authenticate"), Some(BASIC_CHALLENGE));
}

/// `invalid_client` answered to body credentials: 400, no challenge.
fn assert_invalid_client_400(r: &common::Resp) {
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_client");
    assert_eq!(r.header("www-authenticate"), None);
}

#[tokio::test]
async fn success_body_headers_jwt_and_record() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = cc_client(&app).await;

    let r = send(&app, form("/token", Some(&c.basic()), "grant_type=client_credentials")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_no_store(&r);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("www-authenticate"), None);
    let token = r.body["access_token"].as_str().expect("access_token is a string").to_owned();
    assert_eq!(
        r.body,
        json!({"access_token": token, "token_type": "Bearer", "expires_in": 3600, "scope": "read write"})
    );

    // RFC 9068 §2.1 header: typ at+jwt, ES256, kid of the published key.
    let jwks = send(&app, Request::get("/.well-known/jwks.json").body(Body::empty()).unwrap()).await;
    assert_eq!(jwks.status, StatusCode::OK);
    let keys = jwks.body["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{}", jwks.text);
    let (h, claims, _) = jwt_parts(&token);
    assert_eq!(h, json!({"alg": "ES256", "typ": "at+jwt", "kid": keys[0]["kid"]}));
    assert_eq!(keys[0]["alg"], "ES256");

    // RFC 9068 §2.2 claims.
    let jti = claims["jti"].as_str().unwrap().to_owned();
    assert_eq!(jti.len(), 22);
    assert_eq!(
        claims,
        json!({"iss": ISSUER, "sub": c.id, "aud": ISSUER, "client_id": c.id, "scope": "read write",
               "iat": T0, "exp": T0 + 3600, "jti": jti})
    );

    // The signature verifies with the published key (independently of Gatehouse's verifier).
    let key =
        jsonwebtoken::DecodingKey::from_ec_components(keys[0]["x"].as_str().unwrap(), keys[0]["y"].as_str().unwrap())
            .unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    v.validate_exp = false; // the manual clock is not the wall clock
    v.set_issuer(&[ISSUER]);
    v.set_audience(&[ISSUER]);
    let verified = jsonwebtoken::decode::<Value>(&token, &key, &v).expect("signature verifies with the JWKS key");
    assert_eq!(verified.claims, claims);

    // The stored record, which never holds the token itself.
    let rec = state.store.get_token(&jti, T0).await.unwrap().expect("record stored");
    assert_eq!(rec.id, jti);
    assert_eq!(rec.kind, TokenKind::Access);
    assert_eq!(rec.client_id, c.id);
    assert_eq!(rec.subject, c.id);
    assert_eq!(rec.end_user, None);
    assert_eq!(rec.scope.to_string(), "read write");
    assert_eq!(rec.audience, ISSUER);
    assert_eq!(rec.grant_type, GrantType::ClientCredentials);
    assert_eq!((rec.issued_at, rec.expires_at, rec.revoked_at), (T0, T0 + 3600, None));
    assert_eq!(active_count(&state, &c.id).await, 1);
}

#[tokio::test]
async fn default_scope_is_every_allowed_scope_and_subsets_are_granted() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = register(&app, json!({"grant_types": ["client_credentials"], "scope": "c b a"})).await;

    let t = cc_token(&app, &c, "").await;
    assert_eq!(jwt_parts(&t).1["scope"], "a b c");

    let r = send(&app, form("/token", Some(&c.basic()), "grant_type=client_credentials&scope=c+a")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["scope"], "a c");
    let (_, claims, _) = jwt_parts(r.body["access_token"].as_str().unwrap());
    assert_eq!(claims["scope"], "a c");
    let rec = state.store.get_token(claims["jti"].as_str().unwrap(), T0).await.unwrap().unwrap();
    assert_eq!(rec.scope.to_string(), "a c");
    assert_eq!(active_count(&state, &c.id).await, 2);
}

#[tokio::test]
async fn client_without_scopes_gets_a_token_without_scope() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = register(&app, json!({"grant_types": ["client_credentials"]})).await;
    let r = send(&app, form("/token", Some(&c.basic()), "grant_type=client_credentials")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let token = r.body["access_token"].as_str().unwrap();
    assert_eq!(r.body, json!({"access_token": token, "token_type": "Bearer", "expires_in": 3600}));
    assert!(jwt_parts(token).1.get("scope").is_none());
}

#[tokio::test]
async fn scope_outside_the_allowed_set_or_malformed_is_invalid_scope() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = cc_client(&app).await;
    for scope in ["admin", "read admin", "a  b", " read", "read ", "re\"ad", "READ"] {
        let body = format!("grant_type=client_credentials&scope={}", enc(scope));
        let r = send(&app, form("/token", Some(&c.basic()), &body)).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_scope");
        assert_eq!(r.header("www-authenticate"), None);
    }
    assert_eq!(active_count(&state, &c.id).await, 0, "no token was issued");
}

#[tokio::test]
async fn resource_must_be_a_registered_absolute_uri_without_fragment() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = cc_client(&app).await;
    for resource in ["https://unknown.example.com/api", "https://api.example.com/#frag", "/relative", "not a uri"] {
        let body = format!("grant_type=client_credentials&resource={}", enc(resource));
        let r = send(&app, form("/token", Some(&c.basic()), &body)).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_target");
    }
    assert_eq!(active_count(&state, &c.id).await, 0);
}

#[tokio::test]
async fn registered_resource_sets_audience_and_limits_scope() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let rs = "https://api.example.com/v1";
    let r = send(
        &app,
        common::admin(
            "POST",
            "/admin/resource-servers",
            Some(json!({"identifier": rs, "name": "API", "scopes": ["read", {"name": "other", "description": "x"}]})),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let c = cc_client(&app).await; // allowed: read write

    // No scope: the client's scopes offered by the resource.
    let r =
        send(&app, form("/token", Some(&c.basic()), &format!("grant_type=client_credentials&resource={}", enc(rs))))
            .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["scope"], "read");
    let (_, claims, _) = jwt_parts(r.body["access_token"].as_str().unwrap());
    assert_eq!(claims["aud"], rs);
    assert_eq!(claims["scope"], "read");
    let rec = state.store.get_token(claims["jti"].as_str().unwrap(), T0).await.unwrap().unwrap();
    assert_eq!(rec.audience, rs);
    assert_eq!(rec.scope.to_string(), "read");

    // A scope the client may use but the resource does not offer.
    let body = format!("grant_type=client_credentials&resource={}&scope=write", enc(rs));
    let r = send(&app, form("/token", Some(&c.basic()), &body)).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_scope");
    // A scope the resource offers but the client may not use.
    let body = format!("grant_type=client_credentials&resource={}&scope=other", enc(rs));
    let r = send(&app, form("/token", Some(&c.basic()), &body)).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_scope");
    assert_eq!(active_count(&state, &c.id).await, 1);
}

#[tokio::test]
async fn grant_type_missing_unknown_or_not_served() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = cc_client(&app).await;

    for body in ["", "scope=read", "grant_type="] {
        let r = send(&app, form("/token", Some(&c.basic()), body)).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    }
    for grant in ["bogus", "urn:ietf:params:oauth:grant-type:saml2-bearer", "CLIENT_CREDENTIALS"] {
        let r = send(&app, form("/token", Some(&c.basic()), &format!("grant_type={}", enc(grant)))).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    // Served grants the client did not register: unauthorized_client, before their parameters.
    for grant in ["authorization_code", "refresh_token", "password", "urn:ietf:params:oauth:grant-type:jwt-bearer"] {
        let r = send(&app, form("/token", Some(&c.basic()), &format!("grant_type={}", enc(grant)))).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "unauthorized_client");
    }
    assert_eq!(active_count(&state, &c.id).await, 0);
}

#[tokio::test]
async fn repeated_parameter_is_invalid_request() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = cc_client(&app).await;
    for body in [
        "grant_type=client_credentials&grant_type=client_credentials",
        "grant_type=client_credentials&scope=read&scope=write",
    ] {
        let r = send(&app, form("/token", Some(&c.basic()), body)).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    }
    assert_eq!(active_count(&state, &c.id).await, 0);
}

#[tokio::test]
async fn wrong_content_type_is_invalid_request() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = cc_client(&app).await;
    for ct in [Some("application/json"), Some("text/plain"), Some("multipart/form-data; boundary=x"), None] {
        let mut b = Request::post("/token").header(header::AUTHORIZATION, c.basic());
        if let Some(ct) = ct {
            b = b.header(header::CONTENT_TYPE, ct);
        }
        let r = send(&app, b.body(Body::from("grant_type=client_credentials")).unwrap()).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    }
    // A charset parameter and other casing are still a form.
    let r = send(
        &app,
        Request::post("/token")
            .header(header::AUTHORIZATION, c.basic())
            .header(header::CONTENT_TYPE, "Application/X-WWW-Form-Urlencoded; charset=UTF-8")
            .body(Body::from("grant_type=client_credentials"))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn other_methods_are_405_with_allow() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    for method in ["GET", "PUT", "DELETE", "PATCH"] {
        let r = send(&app, Request::builder().method(method).uri("/token").body(Body::empty()).unwrap()).await;
        assert_error(&r, StatusCode::METHOD_NOT_ALLOWED, "invalid_request");
        assert_eq!(r.header("allow"), Some("POST"), "{method}");
    }
}

#[tokio::test]
async fn oversized_body_is_413() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = cc_client(&app).await;
    let body = format!("grant_type=client_credentials&scope=read&pad={}", "x".repeat(16 * 1024));
    let r = send(&app, form("/token", Some(&c.basic()), &body)).await;
    assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "invalid_request");
    assert_eq!(active_count(&state, &c.id).await, 0);

    // Just under the limit is read (and the unknown parameter ignored, RFC 6749 §3.2).
    let base = "grant_type=client_credentials&pad=";
    let body = format!("{base}{}", "x".repeat(16 * 1024 - base.len()));
    assert_eq!(body.len(), 16 * 1024);
    let r = send(&app, form("/token", Some(&c.basic()), &body)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn no_credentials_is_401_with_basic_challenge() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let r = send(&app, form("/token", None, "grant_type=client_credentials")).await;
    assert_invalid_client_401(&r);
}

#[tokio::test]
async fn wrong_secret_via_basic_is_401_with_challenge_and_no_echo() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = cc_client(&app).await;
    let wrong = "Wr0ngSecretValue-9f8e7d6c5b4a3210zyxwvutsrq";
    let r = send(&app, form("/token", Some(&basic(&c.id, wrong)), "grant_type=client_credentials")).await;
    assert_invalid_client_401(&r);
    assert!(!r.text.contains(wrong), "{}", r.text);
    // The right secret, one character short, is still wrong.
    let secret = c.secret.clone().unwrap();
    let r = send(&app, form("/token", Some(&basic(&c.id, &secret[..42])), "grant_type=client_credentials")).await;
    assert_invalid_client_401(&r);
    assert!(!r.text.contains(&secret[..42]), "{}", r.text);
    // An empty secret.
    let r = send(&app, form("/token", Some(&basic(&c.id, "")), "grant_type=client_credentials")).await;
    assert_invalid_client_401(&r);
    // A malformed Basic header and another scheme.
    for auth in [
        "Basic !!!notbase64",
        "Bearer abc",
        "Basic",
        &format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("no-colon")),
    ] {
        let r = send(&app, form("/token", Some(auth), "grant_type=client_credentials")).await;
        assert_invalid_client_401(&r);
    }
    assert_eq!(active_count(&state, &c.id).await, 0);
}

#[tokio::test]
async fn client_secret_post_success_and_wrong_secret_is_400_without_challenge() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = post_client(&app).await;
    let secret = c.secret.clone().unwrap();

    let body = format!("grant_type=client_credentials&client_id={}&client_secret={}", enc(&c.id), enc(&secret));
    let r = send(&app, form("/token", None, &body)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_no_store(&r);

    let wrong = "Wr0ngSecretValue-0123456789abcdefghijklmnop";
    let body = format!("grant_type=client_credentials&client_id={}&client_secret={wrong}", enc(&c.id));
    let r = send(&app, form("/token", None, &body)).await;
    assert_invalid_client_400(&r);
    assert!(!r.text.contains(wrong), "{}", r.text);
    assert_eq!(active_count(&state, &c.id).await, 1);
}

#[tokio::test]
async fn unknown_client_is_answered_like_a_wrong_secret() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let known = cc_client(&app).await;
    let known_post = post_client(&app).await;
    let secret = "Unkn0wnClientSecret-abcdefghijklmnopqrstuvw";

    // Header: 401 + challenge, same body as a wrong secret for a known client.
    let unknown =
        send(&app, form("/token", Some(&basic("no-such-client", secret)), "grant_type=client_credentials")).await;
    let wrong = send(&app, form("/token", Some(&basic(&known.id, secret)), "grant_type=client_credentials")).await;
    assert_invalid_client_401(&unknown);
    assert_invalid_client_401(&wrong);
    assert_eq!(unknown.body, wrong.body);
    assert!(!unknown.text.contains(secret) && !wrong.text.contains(secret));

    // Body: 400, no challenge, same body.
    let unknown = send(
        &app,
        form("/token", None, &format!("grant_type=client_credentials&client_id=no-such-client&client_secret={secret}")),
    )
    .await;
    let wrong = send(
        &app,
        form(
            "/token",
            None,
            &format!("grant_type=client_credentials&client_id={}&client_secret={secret}", known_post.id),
        ),
    )
    .await;
    assert_invalid_client_400(&unknown);
    assert_invalid_client_400(&wrong);
    assert_eq!(unknown.body, wrong.body);
    assert!(!unknown.text.contains(secret) && !wrong.text.contains(secret));

    // An unknown client_id alone (a would-be public client).
    let r = send(&app, form("/token", None, "grant_type=client_credentials&client_id=no-such-client")).await;
    assert_invalid_client_400(&r);
}

#[tokio::test]
async fn credentials_in_header_and_body_is_invalid_request() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = cc_client(&app).await;
    let secret = c.secret.clone().unwrap();
    let body = format!("grant_type=client_credentials&client_id={}&client_secret={}", enc(&c.id), enc(&secret));
    let r = send(&app, form("/token", Some(&c.basic()), &body)).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    assert!(!r.text.contains(&secret));
    // A secret in the body next to the header, even without client_id.
    let r =
        send(&app, form("/token", Some(&c.basic()), &format!("grant_type=client_credentials&client_secret={secret}")))
            .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    // A body client_id that differs from the header's.
    let r = send(&app, form("/token", Some(&c.basic()), "grant_type=client_credentials&client_id=someone-else")).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    // A secret in the body without any client_id.
    let r = send(&app, form("/token", None, &format!("grant_type=client_credentials&client_secret={secret}"))).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    assert!(!r.text.contains(&secret));
    // Credentials in the query string are not credentials (RFC 6749 §2.3.1: body or header only).
    let uri = format!("/token?client_id={}&client_secret={}", c.id, secret);
    let r = send(
        &app,
        Request::post(uri.as_str())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from("grant_type=client_credentials"))
            .unwrap(),
    )
    .await;
    assert_invalid_client_401(&r);
    assert!(!r.text.contains(&secret));
    // The same client_id in the body as in the header is allowed (RFC 6749 §3.2.1).
    let r = send(&app, form("/token", Some(&c.basic()), &format!("grant_type=client_credentials&client_id={}", c.id)))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(active_count(&state, &c.id).await, 1);
}

#[tokio::test]
async fn registered_auth_method_is_enforced() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);

    // client_secret_post client using Basic (right secret): 401 with the Basic challenge.
    let p = post_client(&app).await;
    let r = send(&app, form("/token", Some(&p.basic()), "grant_type=client_credentials")).await;
    assert_invalid_client_401(&r);
    assert!(!r.text.contains(p.secret.as_deref().unwrap()));

    // client_secret_basic client using the body (right secret): 400 without a challenge.
    let b = cc_client(&app).await;
    let body =
        format!("grant_type=client_credentials&client_id={}&client_secret={}", b.id, b.secret.as_deref().unwrap());
    let r = send(&app, form("/token", None, &body)).await;
    assert_invalid_client_400(&r);
    assert!(!r.text.contains(b.secret.as_deref().unwrap()));

    // A confidential client sending its client_id alone, as if public.
    let r = send(&app, form("/token", None, &format!("grant_type=client_credentials&client_id={}", b.id))).await;
    assert_invalid_client_400(&r);

    assert_eq!(active_count(&state, &p.id).await + active_count(&state, &b.id).await, 0);
}

#[tokio::test]
async fn public_client_cannot_use_client_credentials() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let p = public_client(&app).await;
    assert_eq!(p.secret, None);
    let r = send(&app, form("/token", None, &format!("grant_type=client_credentials&client_id={}", enc(&p.id)))).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "unauthorized_client");
    assert_eq!(r.header("www-authenticate"), None);
    assert_eq!(active_count(&state, &p.id).await, 0);

    // A public client presenting a made-up secret is refused at authentication.
    let r = send(&app, form("/token", Some(&basic(&p.id, "made-up")), "grant_type=client_credentials")).await;
    assert_invalid_client_401(&r);
}

#[tokio::test]
async fn confidential_client_without_the_grant_is_unauthorized_client() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = register(&app, json!({"grant_types": ["authorization_code"], "redirect_uris": ["https://app.example.com/cb"], "scope": "read"}))
        .await;
    assert!(c.secret.is_some());
    let r = send(&app, form("/token", Some(&c.basic()), "grant_type=client_credentials")).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "unauthorized_client");
    assert_eq!(active_count(&state, &c.id).await, 0);
}

#[tokio::test]
async fn per_client_lifetime_is_honoured() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c =
        register(&app, json!({"grant_types": ["client_credentials"], "scope": "read", "access_token_lifetime": 120}))
            .await;
    let r = send(&app, form("/token", Some(&c.basic()), "grant_type=client_credentials")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["expires_in"], 120);
    let (_, claims, _) = jwt_parts(r.body["access_token"].as_str().unwrap());
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 120);
    assert_eq!(claims["iat"], T0);
    let rec = state.store.get_token(claims["jti"].as_str().unwrap(), T0).await.unwrap().unwrap();
    assert_eq!(rec.expires_at, T0 + 120);

    // Expired after 120 s: gone from the store's active view.
    state.clock.advance(120);
    assert_eq!(active_count(&state, &c.id).await, 0);
}

#[tokio::test]
async fn each_token_is_distinct_and_recorded() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = cc_client(&app).await;
    let a = cc_token(&app, &c, "").await;
    let b = cc_token(&app, &c, "").await;
    assert_ne!(a, b);
    assert_ne!(jwt_parts(&a).1["jti"], jwt_parts(&b).1["jti"]);
    assert_eq!(active_count(&state, &c.id).await, 2);
}

/// CORS for browser-based clients (a single-page app with PKCE): `/token`, `/revoke`, the
/// metadata and the JWKS answer any origin without credentials, a preflight is answered before
/// the endpoint, and the headers a client reads are exposed. Introspection, the sign-in pages
/// and the admin API are not offered to other origins; requests without `Origin` are as before.
#[tokio::test]
async fn cors_for_browser_based_clients() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let origin = "https://spa.example";
    let preflight = |path: &str, method: &str| {
        Request::builder()
            .method("OPTIONS")
            .uri(path)
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, method)
            .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "dpop, content-type")
            .body(Body::empty())
            .unwrap()
    };
    for (path, methods) in [("/token", "POST"), ("/revoke", "POST"), ("/.well-known/jwks.json", "GET")] {
        let r = send(&app, preflight(path, methods)).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{path}");
        assert_eq!(r.text, "", "{path}");
        assert_eq!(r.header("access-control-allow-origin"), Some("*"), "{path}");
        assert_eq!(r.header("access-control-allow-methods"), Some(methods), "{path}");
        assert_eq!(r.header("access-control-allow-headers"), Some("authorization, content-type, dpop"), "{path}");
        assert_eq!(r.header("access-control-max-age"), Some("86400"), "{path}");
        assert_eq!(r.header("access-control-allow-credentials"), None, "{path}: never with credentials");
    }
    // The answers themselves, successes and errors.
    let c = cc_client(&app).await;
    let mut req = form("/token", Some(&c.basic()), "grant_type=client_credentials");
    req.headers_mut().insert(header::ORIGIN, origin.parse().unwrap());
    let r = send(&app, req).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(r.header("access-control-expose-headers"), Some("dpop-nonce, www-authenticate, retry-after"));
    let mut req = form("/token", Some(&basic(&c.id, "wrong")), "grant_type=client_credentials");
    req.headers_mut().insert(header::ORIGIN, origin.parse().unwrap());
    let r = send(&app, req).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_client");
    assert_eq!(r.header("access-control-allow-origin"), Some("*"), "a browser client reads its errors too");
    let get = |path: &str| Request::get(path).header(header::ORIGIN, origin).body(Body::empty()).unwrap();
    for path in ["/.well-known/oauth-authorization-server", "/.well-known/jwks.json"] {
        let r = send(&app, get(path)).await;
        assert_eq!((r.status, r.header("access-control-allow-origin")), (StatusCode::OK, Some("*")), "{path}");
    }
    // Without `Origin` the same headers (a cached copy of the metadata or the JWKS serves
    // browsers too); OPTIONS without it is the method it always was (405).
    let r = send(&app, form("/token", Some(&c.basic()), "grant_type=client_credentials")).await;
    assert_eq!((r.status, r.header("access-control-allow-origin")), (StatusCode::OK, Some("*")));
    for path in ["/.well-known/oauth-authorization-server", "/.well-known/jwks.json"] {
        let r = send(&app, Request::get(path).body(Body::empty()).unwrap()).await;
        assert_eq!(r.header("access-control-allow-origin"), Some("*"), "{path}");
        assert_eq!(r.header("cache-control"), Some("public, max-age=300"), "{path}");
    }
    let r = send(&app, Request::builder().method("OPTIONS").uri("/token").body(Body::empty()).unwrap()).await;
    assert_error(&r, StatusCode::METHOD_NOT_ALLOWED, "invalid_request");
    // Not offered: introspection, validation, the sign-in pages, the admin API.
    for (path, method) in
        [("/introspect", "POST"), ("/validate", "GET"), ("/authorize/login", "POST"), ("/admin/clients", "POST")]
    {
        let r = send(&app, preflight(path, method)).await;
        assert_ne!(r.status, StatusCode::NO_CONTENT, "{path}");
        assert_eq!(r.header("access-control-allow-origin"), None, "{path}");
    }
    let r = send(&app, get("/authorize?client_id=x")).await;
    assert_eq!(r.header("access-control-allow-origin"), None);
}
