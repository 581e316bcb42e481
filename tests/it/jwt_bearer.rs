//! `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` (RFC 7523 §2.1, §3): trusted issuers
//! registered on the client (admin API), every check of the assertion with its exact
//! `invalid_grant` description, single-use `jti` on both backends, and the issued token.
//! Also the key helpers `private_key_jwt.rs` signs its client assertions with.
use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use gatehouse::AppState;
use gatehouse::model::{GrantType, TokenKind};
use gatehouse::store::{Store, TokenQuery};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::pkcs8::EncodePrivateKey;
use serde_json::{Value, json};

use crate::common::{self, Resp, T0, TestClient, admin, assert_error, form, register, send};

pub(crate) const ISSUER: &str = "https://auth.test.example";
pub(crate) const TOKEN_URL: &str = "https://auth.test.example/token";
const GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const IDP: &str = "https://idp.partner.example";
const IDP_OFF: &str = "https://old-idp.partner.example";

/// A fixed RSA-2048 test key (PKCS#1 DER): generating RSA keys per test would be slow.
const RSA_DER: &str = "MIIEpAIBAAKCAQEApom99j0HOdIIcGB2zNGkOMsy8woLAhDLMatf9wX5kk3y1oS0UOuLVqiCWTwpD3QeBaI8pPFba0yGvM7SHuCFsKyjwXCWE7qCoOfJAqMZLRit134Y5hkehEOGG3pIZFwaNwkAeS6/pB+xgbAfbtXfepWtZOWfaUXqpweKyfcjzbZ5ZoPL87g7DGdoTRN+SQUhQ273d4zGNOc+lkdPJwvVghcbKTxhYb4EPT7YZZkah1DEqdnYN0RqG6jO9iJnN4D3HWl2/jurIqwWOfwjFszRrUFqXpkYjmQK8mc6mJaU9BmntYHtMVxht/2+JmQb13SXU1rB0ADcqCL3GSICdAz/BQIDAQABAoIBAAUGvz8BVIiAOFT79Fn2Mdis+VqwgOiNDTTwkTLpcUDjLWMgGjkfAtOYvmZnFG4s+QL+hIoN5s50PtTQATOBX0eXzlF2TnFF/c9Rb5WuyoG77vNEEQhQ1cT0LMYDiM/On9PtZ6BAsvQHKNpbMHet6NLQVa1n6MnKnGxyI9Q4q1H4FW15buecnem976QVFnAyCJlokC5IigayPPbeVXjtBASa9gyyQFMQLs7890ju6WLkRL+vrQg5OvS172MzFgpzrdV56xNKwKmx3zwOT0v+1BYcsXSS9W9Mt4YnQxGq2l6Mbr3u5kt8RXK4HCDliTJ+tpNRvl891+jDkXAgd1pb57kCgYEA3zfGEqNWhKRPWZgMQ9xFvEaCl26gSbz412UyIySoWEsAcpLOJQS3c86NqENbBV/sEzfE93TCXPAXtR8VSccspb/U4o2bBWcMjCCH5Bsnk87nmvr2IbQVu43Ej1EF7Q+Nawnl/us10SwAxTnrr2pZo0GM5cSjCD5mgJdAQFlVPF8CgYEAvv8AdRoV7oexX/uZaNnrjfVELXM3gwnjDsgU3nNxFfvx0UVfWXForxVrQ49zXSOOJ76lOMfo64cVW/VGayccoPDlhxUEkXwi6eHcYuxbdaho4RXtxR7hfNZtMDTwKm3kVj+3VsxrTBU8BXoacyb4IRrSjwoLXgqMSor0NCYz/xsCgYEAud8LhIGWjaT0njpKHEfTmc9s9wQbXMuKunF9ql3gAIWTvdQY7CJdUIVy1+YeaP9S6T3LOfNz1Ufntd5IL8M2nl56upwHthv1Csob3gnujtn/acIIKlB2uFJ4lo51TM1iiPsZFYhuq9rkWVa9trfsJFF1Le7rgvXTDMjlq6+3likCgYEArcT/u4ryLUTTgko8twKdp1hgoSFUfio+pLIxGnrZhnDk/8soBw6Bedn470zSXwj8SvjPBawMJE2Qh0vOt6qsB1lk2tOqhlr0wOm3Q2FbjN6eHTuASnngGV5VlSh04YV922K5AYWWkXA4XZtL+TyZQDVRIMa4tOTP4votWEzxvcUCgYBWK6UTlMz91/TL9+aLUVPa6sMHEGosh4KcN1y9UXGRJtCTnHeOlEPrUK5mFCvqZT4pOd4xT7weabzGqcHEcBFmVED8W1Fb6OWfRFTybV1s+HSvR/G4gZ5mwhnFqFSeCFE3D2aDpvNVcpRcEW7WjsKMg8+TaGT010QCKx8gPMlEyw==";
/// Its modulus, base64url; the exponent is 65537.
const RSA_N: &str = "pom99j0HOdIIcGB2zNGkOMsy8woLAhDLMatf9wX5kk3y1oS0UOuLVqiCWTwpD3QeBaI8pPFba0yGvM7SHuCFsKyjwXCWE7qCoOfJAqMZLRit134Y5hkehEOGG3pIZFwaNwkAeS6_pB-xgbAfbtXfepWtZOWfaUXqpweKyfcjzbZ5ZoPL87g7DGdoTRN-SQUhQ273d4zGNOc-lkdPJwvVghcbKTxhYb4EPT7YZZkah1DEqdnYN0RqG6jO9iJnN4D3HWl2_jurIqwWOfwjFszRrUFqXpkYjmQK8mc6mJaU9BmntYHtMVxht_2-JmQb13SXU1rB0ADcqCL3GSICdAz_BQ";

/// A signing key for tests: ES256 (fresh P-256 key) or RS256 (the fixed RSA key).
pub(crate) struct TestKey {
    pub kid: String,
    alg: Algorithm,
    key: EncodingKey,
    /// The public JWK, as registered.
    pub jwk: Value,
}

impl TestKey {
    /// A fresh P-256 key.
    pub(crate) fn ec(kid: &str) -> Self {
        let sk = loop {
            if let Ok(k) = p256::ecdsa::SigningKey::from_slice(&gatehouse::crypto::random_bytes::<32>()) {
                break k;
            }
        };
        let der = sk.to_pkcs8_der().unwrap();
        let point = sk.verifying_key().to_encoded_point(false);
        let jwk = json!({"kty": "EC", "crv": "P-256", "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
                         "y": URL_SAFE_NO_PAD.encode(point.y().unwrap()), "kid": kid});
        Self { kid: kid.into(), alg: Algorithm::ES256, key: EncodingKey::from_ec_der(der.as_bytes()), jwk }
    }

    /// The fixed RSA-2048 key.
    pub(crate) fn rsa(kid: &str) -> Self {
        let jwk = json!({"kty": "RSA", "n": RSA_N, "e": "AQAB", "kid": kid, "alg": "RS256", "use": "sig"});
        let key = EncodingKey::from_rsa_der(&STANDARD.decode(RSA_DER).unwrap());
        Self { kid: kid.into(), alg: Algorithm::RS256, key, jwk }
    }

    /// The JWK as Gatehouse stores and shows it (`alg` and `use` filled in).
    pub(crate) fn normalized(&self) -> Value {
        let mut jwk = self.jwk.clone();
        jwk["alg"] = json!(if self.alg == Algorithm::ES256 { "ES256" } else { "RS256" });
        jwk["use"] = json!("sig");
        jwk
    }

    /// A JWT with this key's `kid`.
    pub(crate) fn sign(&self, claims: &Value) -> String {
        self.sign_with_kid(Some(&self.kid), claims)
    }

    /// A JWT whose header names `kid` (or none).
    pub(crate) fn sign_with_kid(&self, kid: Option<&str>, claims: &Value) -> String {
        let mut h = Header::new(self.alg);
        h.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&h, claims, &self.key).unwrap()
    }

    /// A JWT with this key's `kid` whose header's `typ` is `typ` (or none; `sign` sends `JWT`).
    pub(crate) fn sign_with_typ(&self, typ: Option<&str>, claims: &Value) -> String {
        let mut h = Header::new(self.alg);
        (h.kid, h.typ) = (Some(self.kid.clone()), typ.map(str::to_owned));
        jsonwebtoken::encode(&h, claims, &self.key).unwrap()
    }
}

/// An unsigned JWT (`alg: none`, RFC 7519 §6).
pub(crate) fn unsigned(kid: &str, claims: &Value) -> String {
    let seg = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.", seg(json!({"alg": "none", "kid": kid})), seg(claims.clone()))
}

/// An HS256 JWT whose HMAC secret is the registered public key's JSON (the algorithm-confusion
/// attack: a verifier that trusts `alg` would check it with the public key as secret).
pub(crate) fn hs256_with_public_key(key: &TestKey, claims: &Value) -> String {
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some(key.kid.clone());
    let secret = key.jwk.to_string();
    jsonwebtoken::encode(&h, claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

/// Form-encodes one value.
pub(crate) fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A fresh `jti`.
pub(crate) fn jti() -> String {
    gatehouse::crypto::random_id()
}

/// Creates a user through the admin API.
pub(crate) async fn user(app: &Router, name: &str, enabled: bool) {
    let body = json!({"username": name, "password": "correct horse battery staple", "enabled": enabled});
    let r = send(app, admin("POST", "/admin/users", Some(body))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

/// A tenant with users `alice` (enabled) and `bob` (disabled) and a client trusting `IDP`
/// (enabled, `key`) and `IDP_OFF` (disabled).
struct Fixture {
    state: AppState,
    app: Router,
    client: TestClient,
    key: TestKey,
    _dir: Option<tempfile::TempDir>,
}

fn issuers(key: &TestKey, rsa: &TestKey) -> Value {
    json!([
        {"issuer": IDP, "jwks": {"keys": [key.jwk, rsa.jwk]}},
        {"issuer": IDP_OFF, "jwks": {"keys": [key.jwk]}, "enabled": false},
    ])
}

async fn fixture_on(store: Arc<dyn Store>, dir: Option<tempfile::TempDir>) -> Fixture {
    let state = common::state_on(store);
    let app = common::app(&state);
    let key = TestKey::ec("idp-1");
    user(&app, "alice", true).await;
    user(&app, "bob", false).await;
    let client = register(
        &app,
        json!({"grant_types": [GRANT, "refresh_token"], "scope": "read write",
               "jwt_bearer_issuers": issuers(&key, &TestKey::rsa("idp-rsa"))}),
    )
    .await;
    Fixture { state, app, client, key, _dir: dir }
}

async fn fixture() -> Fixture {
    let (store, dir) = common::embedded();
    fixture_on(store, Some(dir)).await
}

/// Claims of a good assertion for `alice`, valid for five minutes.
fn claims() -> Value {
    json!({"iss": IDP, "sub": "alice", "aud": TOKEN_URL, "exp": T0 + 300, "iat": T0, "jti": jti()})
}

/// `claims()` with `changes` merged in (`null` removes a claim).
fn claims_with(changes: Value) -> Value {
    let mut c = claims();
    for (k, v) in changes.as_object().unwrap() {
        match v {
            Value::Null => c.as_object_mut().unwrap().remove(k),
            v => c.as_object_mut().unwrap().insert(k.clone(), v.clone()),
        };
    }
    c
}

async fn exchange(f: &Fixture, assertion: &str, extra: &str) -> Resp {
    let body = format!("grant_type={}&assertion={}{extra}", enc(GRANT), enc(assertion));
    send(&f.app, form("/token", Some(&f.client.basic()), &body)).await
}

async fn active_count(state: &AppState, client_id: &str) -> u64 {
    let q = TokenQuery { kind: TokenKind::Access, client_id: Some(client_id.to_owned()), end_user: None };
    state.store.count_tokens(&q, state.clock.now()).await.unwrap()
}

/// `invalid_grant` with exactly `description`, which never repeats the assertion.
fn assert_refused(r: &Resp, description: &str, assertion: &str) {
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_grant");
    assert_eq!(r.body["error_description"], description, "{}", r.text);
    assert!(!r.text.contains(assertion), "the assertion is echoed: {}", r.text);
}

fn jwt_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn an_assertion_becomes_an_access_token_for_its_subject() {
    gatehouse::audit::start_capture();
    let f = fixture().await;
    let c = claims();
    let assertion = f.key.sign(&c);
    let r = exchange(&f, &assertion, "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let token = r.body["access_token"].as_str().unwrap().to_owned();
    // No refresh token although the client registered the refresh_token grant.
    assert_eq!(
        r.body,
        json!({"access_token": token, "token_type": "Bearer", "expires_in": 3600, "scope": "read write"})
    );
    let at = jwt_claims(&token);
    let jti = at["jti"].as_str().unwrap().to_owned();
    assert_eq!(
        at,
        json!({"iss": ISSUER, "sub": "alice", "aud": ISSUER, "client_id": f.client.id, "scope": "read write",
               "iat": T0, "exp": T0 + 3600, "jti": jti})
    );
    let record = f.state.store.get_token(&jti, T0).await.unwrap().unwrap();
    assert_eq!(record.grant_type, GrantType::JwtBearer);
    assert_eq!((record.subject.as_str(), record.end_user.as_deref()), ("alice", Some("alice")));

    // EDR 20004 with the grant type; the assertion is not in the audit trail.
    let lines = gatehouse::audit::captured();
    let issued = lines.iter().find(|l| l["event"] == "token_issued" && l["jti"] == jti.as_str()).unwrap();
    assert_eq!((issued["event_id"].as_u64(), issued["grant_type"].as_str()), (Some(20004), Some(GRANT)));
    assert_eq!(issued["subject"], "alice");
    assert!(lines.iter().all(|l| !l.to_string().contains(&assertion)));

    // The token works at introspection like any other.
    let rs = register(&f.app, json!({"grant_types": ["client_credentials"]})).await;
    let r = send(&f.app, form("/introspect", Some(&rs.basic()), &format!("token={token}"))).await;
    assert_eq!((r.body["active"].as_bool(), r.body["sub"].as_str()), (Some(true), Some("alice")), "{}", r.text);
}

#[tokio::test]
async fn scope_audience_forms_rsa_keys_and_skew_are_accepted() {
    let f = fixture().await;
    let rsa = TestKey::rsa("idp-rsa");
    let cases = [
        // RS256, `aud` an array naming the issuer identifier, a narrower scope.
        (rsa.sign(&claims_with(json!({"aud": ["https://other.example", ISSUER]}))), "&scope=read", "read"),
        // Expired 59 s ago and issued 59 s in the future: within the 60 s skew.
        (f.key.sign(&claims_with(json!({"exp": T0 - 59, "iat": T0 + 59, "nbf": T0 + 59}))), "", "read write"),
        // Valid for exactly one hour; fractional NumericDates.
        (f.key.sign(&claims_with(json!({"exp": T0 + 3600, "iat": T0 as f64 + 0.5}))), "", "read write"),
    ];
    for (assertion, extra, scope) in cases {
        let r = exchange(&f, &assertion, extra).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body["scope"], scope);
    }
    // A scope beyond the client's is invalid_scope, and the jti stays unused.
    let c = claims();
    let r = exchange(&f, &f.key.sign(&c), "&scope=admin").await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_scope");
    assert_eq!(exchange(&f, &f.key.sign(&c), "").await.status, StatusCode::OK);
}

const OTHER_KIND: &str =
    "the assertion's typ names another kind of JWT (a client assertion, a DPoP proof or an access token)";

#[tokio::test]
async fn every_failed_check_is_invalid_grant_with_its_reason() {
    let f = fixture().await;
    let other = TestKey::ec("idp-1"); // same kid, another key
    let rsa = TestKey::rsa("idp-rsa");
    let c = claims();
    let cases: Vec<(String, &str)> = vec![
        ("not-a-jwt".into(), "the assertion is not a well-formed signed JWT"),
        (other.sign(&c), "the assertion's signature is invalid"),
        (f.key.sign_with_kid(Some("idp-9"), &c), "the assertion's kid names no registered key"),
        // Two keys registered: the header must say which.
        (f.key.sign_with_kid(None, &c), "the assertion's kid names no registered key"),
        (unsigned("idp-1", &c), "the assertion must be signed with ES256 or RS256"),
        (hs256_with_public_key(&f.key, &c), "the assertion must be signed with ES256 or RS256"),
        // An RS256 signature presented under the EC key's kid.
        (rsa.sign_with_kid(Some("idp-1"), &c), "the assertion's alg does not match the registered key"),
        (
            f.key.sign(&claims_with(json!({"iss": "https://evil.example"}))),
            "the assertion's issuer is not trusted by this client",
        ),
        (f.key.sign(&claims_with(json!({"iss": IDP_OFF}))), "the assertion's issuer is disabled for this client"),
        (f.key.sign(&claims_with(json!({"iss": null}))), "the assertion has no iss claim"),
        (f.key.sign(&claims_with(json!({"sub": "mallory"}))), "the assertion's subject is not a user of this tenant"),
        (f.key.sign(&claims_with(json!({"sub": "bob"}))), "the assertion's subject is a disabled user"),
        (f.key.sign(&claims_with(json!({"sub": null}))), "the assertion has no sub claim"),
        (
            f.key.sign(&claims_with(json!({"aud": "https://auth.other.example/token"}))),
            "the assertion's aud must contain the token endpoint URL or the issuer identifier",
        ),
        (f.key.sign(&claims_with(json!({"aud": null}))), "the assertion has no aud claim"),
        // RFC 8725 §3.11: a JWT typed as another kind is never a grant, whatever its claims.
        (f.key.sign_with_typ(Some("client-authentication+jwt"), &c), OTHER_KIND),
        (f.key.sign_with_typ(Some("application/DPoP+JWT"), &c), OTHER_KIND),
        (f.key.sign_with_typ(Some("at+jwt"), &c), OTHER_KIND),
        (f.key.sign(&claims_with(json!({"aud": 7}))), "the assertion's aud claim is malformed"),
        (f.key.sign(&claims_with(json!({"exp": T0 - 60}))), "the assertion has expired"),
        (f.key.sign(&claims_with(json!({"exp": null}))), "the assertion has no exp claim"),
        (f.key.sign(&claims_with(json!({"exp": "soon"}))), "the assertion's exp claim is malformed"),
        (f.key.sign(&claims_with(json!({"nbf": T0 + 61}))), "the assertion is not valid yet (nbf)"),
        (f.key.sign(&claims_with(json!({"iat": T0 + 61}))), "the assertion is issued in the future (iat)"),
        (f.key.sign(&claims_with(json!({"exp": T0 + 3601}))), "the assertion is valid for more than 3600 seconds"),
        // Issued 50 minutes ago, expiring in 20: valid for 70 minutes in all.
        (
            f.key.sign(&claims_with(json!({"iat": T0 - 3000, "exp": T0 + 1200}))),
            "the assertion is valid for more than 3600 seconds",
        ),
        (f.key.sign(&claims_with(json!({"jti": null}))), "the assertion has no jti claim"),
        (f.key.sign(&claims_with(json!({"jti": "j".repeat(257)}))), "the assertion's jti claim is malformed"),
    ];
    for (assertion, description) in &cases {
        let r = exchange(&f, assertion, "").await;
        assert_refused(&r, description, assertion);
    }
    assert_eq!(active_count(&f.state, &f.client.id).await, 0);

    // Missing parameter: invalid_request.
    let body = format!("grant_type={}", enc(GRANT));
    let r = send(&f.app, form("/token", Some(&f.client.basic()), &body)).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(r.body["error_description"], "missing parameter `assertion`");
}

#[tokio::test]
async fn a_client_without_the_grant_is_unauthorized() {
    let f = fixture().await;
    let cc = common::cc_client(&f.app).await;
    let body = format!("grant_type={}&assertion={}", enc(GRANT), enc(&f.key.sign(&claims())));
    let r = send(&f.app, form("/token", Some(&cc.basic()), &body)).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "unauthorized_client");
    assert_eq!(r.body["error_description"], format!("the client is not allowed to use {GRANT}"));

    // A client with the grant but without issuers trusts nobody.
    let bare = register(&f.app, json!({"grant_types": [GRANT], "scope": "read"})).await;
    let assertion = f.key.sign(&claims());
    let body = format!("grant_type={}&assertion={}", enc(GRANT), enc(&assertion));
    let r = send(&f.app, form("/token", Some(&bare.basic()), &body)).await;
    assert_refused(&r, "the assertion's issuer is not trusted by this client", &assertion);
}

/// A replayed `jti` is refused, and of 20 concurrent uses exactly one succeeds.
async fn replay_is_refused(f: Fixture) {
    let assertion = f.key.sign(&claims());
    assert_eq!(exchange(&f, &assertion, "").await.status, StatusCode::OK);
    let r = exchange(&f, &assertion, "").await;
    assert_refused(&r, "the assertion was used already (jti)", &assertion);
    // Even re-signed with a later expiry: the jti is the issuer's, once.
    let mut again = jwt_claims(&assertion);
    again["exp"] = json!(T0 + 600);
    let r = exchange(&f, &f.key.sign(&again), "").await;
    assert_eq!(r.body["error_description"], "the assertion was used already (jti)", "{}", r.text);

    let assertion = f.key.sign(&claims());
    let runs = (0..20).map(|_| exchange(&f, &assertion, ""));
    let results = futures::future::join_all(runs).await;
    let ok = results.iter().filter(|r| r.status == StatusCode::OK).count();
    assert_eq!(ok, 1, "{:?}", results.iter().map(|r| &r.text).collect::<Vec<_>>());
    for r in results.iter().filter(|r| r.status != StatusCode::OK) {
        assert_refused(r, "the assertion was used already (jti)", &assertion);
    }
    assert_eq!(active_count(&f.state, &f.client.id).await, 2);
}

#[tokio::test]
async fn replayed_jti_is_refused_embedded() {
    replay_is_refused(fixture().await).await;
}

#[tokio::test]
async fn replayed_jti_is_refused_dynamodb() {
    let Some((store, _, _)) = common::dynamo().await else { return };
    replay_is_refused(fixture_on(store, None).await).await;
}

#[tokio::test]
async fn issuers_are_validated_shown_and_patched() {
    let f = fixture().await;
    let rsa = TestKey::rsa("idp-rsa");
    let r = send(&f.app, admin("GET", &format!("/admin/clients/{}", f.client.id), None)).await;
    assert_eq!(
        r.body["jwt_bearer_issuers"],
        json!([
            {"issuer": IDP, "jwks": {"keys": [f.key.normalized(), rsa.normalized()]}, "enabled": true},
            {"issuer": IDP_OFF, "jwks": {"keys": [f.key.normalized()]}, "enabled": false},
        ])
    );

    // Disable the issuer: its assertions are refused at once.
    let mut list = r.body["jwt_bearer_issuers"].clone();
    list[0]["enabled"] = json!(false);
    let path = format!("/admin/clients/{}", f.client.id);
    let r = send(&f.app, admin("PATCH", &path, Some(json!({"jwt_bearer_issuers": list})))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let assertion = f.key.sign(&claims());
    assert_refused(
        &exchange(&f, &assertion, "").await,
        "the assertion's issuer is disabled for this client",
        &assertion,
    );

    let mut private = f.key.jwk.clone();
    private["d"] = json!(URL_SAFE_NO_PAD.encode([1u8; 32]));
    let mut hs = f.key.jwk.clone();
    hs["alg"] = json!("HS256");
    let one = |jwks: Value| json!([{"issuer": IDP, "jwks": jwks}]);
    let cases = [
        (
            one(json!({"keys": [private]})),
            "jwt_bearer_issuers[0].jwks: keys[0]: contains the private key member `d`; register public keys only",
        ),
        (
            one(json!({"keys": [hs]})),
            "jwt_bearer_issuers[0].jwks: keys[0]: alg must be ES256 for kty EC (ES256 and RS256 are accepted)",
        ),
        (one(json!({"keys": [f.key.jwk, f.key.jwk]})), "jwt_bearer_issuers[0].jwks: keys[1]: kid is not unique"),
        (
            one(json!({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}]})),
            "jwt_bearer_issuers[0].jwks: keys[0]: contains the private key member `k`; register public keys only",
        ),
        (json!([{"issuer": IDP}]), "jwt_bearer_issuers[0].jwks: required"),
        (
            json!([{"issuer": IDP, "jwks": {"keys": [f.key.jwk]}, "jwks_uri": "https://idp/jwks"}]),
            "jwt_bearer_issuers[0].jwks_uri: unknown member, expected issuer, jwks, enabled",
        ),
        (
            json!([{"issuer": IDP, "jwks": {"keys": [f.key.jwk]}}, {"issuer": IDP, "jwks": {"keys": [f.key.jwk]}}]),
            "jwt_bearer_issuers[1].issuer: listed twice",
        ),
        (
            json!(
                (0..6)
                    .map(|i| json!({"issuer": format!("https://idp{i}.example"), "jwks": {"keys": [f.key.jwk]}}))
                    .collect::<Vec<_>>()
            ),
            "jwt_bearer_issuers: at most 5 issuers",
        ),
        (json!({"issuer": IDP}), "jwt_bearer_issuers: must be an array of {issuer, jwks, enabled}"),
    ];
    for (issuers, description) in cases {
        let m = json!({"grant_types": [GRANT], "jwt_bearer_issuers": issuers.clone()});
        let r = send(&f.app, admin("POST", "/admin/clients", Some(m))).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_client_metadata");
        assert_eq!(r.body["error_description"], description);
        let r = send(&f.app, admin("PATCH", &path, Some(json!({"jwt_bearer_issuers": issuers})))).await;
        assert_eq!(r.body["error_description"], description);
    }
    // Issuers without the grant type.
    let m = json!({"grant_types": ["client_credentials"], "jwt_bearer_issuers": one(json!({"keys": [f.key.jwk]}))});
    let r = send(&f.app, admin("POST", "/admin/clients", Some(m))).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_client_metadata");
    assert_eq!(
        r.body["error_description"],
        format!("jwt_bearer_issuers: requires the grant type {GRANT} in grant_types")
    );
}

#[tokio::test]
async fn metadata_advertises_the_grant() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let r = send(
        &app,
        axum::http::Request::get("/.well-known/oauth-authorization-server").body(axum::body::Body::empty()).unwrap(),
    )
    .await;
    let grants = r.body["grant_types_supported"].as_array().unwrap();
    assert!(grants.contains(&json!(GRANT)), "{}", r.text);
}
