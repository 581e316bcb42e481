//! DPoP (RFC 9449) at the token endpoint, in introspection and at `GET /validate`: bound tokens
//! (`cnf.jkt`, `token_type: DPoP`), every proof check and every refusal, server nonces, bound
//! refresh tokens of public clients, clients that require DPoP. Replay and nonces on both
//! backends.
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse::AppState;
use gatehouse::store::Store;
use p256::ecdsa::signature::Signer as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::code_flow::{PASSWORD, REDIRECT, VERIFIER, claims, code_for, create_user, enc, pkce_query};
use crate::common::{self, Resp, TestClient, admin, assert_error, cc_client, register, send};

pub(crate) const TOKEN_URL: &str = "https://auth.test.example/token";

/// A client's DPoP key: a fresh P-256 key, its public JWK and its RFC 7638 thumbprint.
pub(crate) struct DpopKey {
    key: p256::ecdsa::SigningKey,
    jwk: Value,
    pub jkt: String,
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn b64json(v: &Value) -> String {
    b64(v.to_string())
}

impl DpopKey {
    pub(crate) fn new() -> Self {
        let key = loop {
            if let Ok(k) = p256::ecdsa::SigningKey::from_slice(&gatehouse::crypto::random_bytes::<32>()) {
                break k;
            }
        };
        let point = key.verifying_key().to_encoded_point(false);
        let (x, y) = (b64(point.x().unwrap()), b64(point.y().unwrap()));
        // RFC 7638 §3.2: the required members in lexicographic order, no whitespace.
        let jkt = b64(Sha256::digest(format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#)));
        Self { key, jwk: json!({"kty": "EC", "crv": "P-256", "x": x, "y": y}), jkt }
    }

    /// The standard header: `typ: dpop+jwt`, `alg: ES256`, this key's JWK.
    fn header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk})
    }

    /// Signs `header` and `claims` as given.
    fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", b64json(header), b64json(claims));
        let sig: p256::ecdsa::Signature = self.key.sign(input.as_bytes());
        format!("{input}.{}", b64(sig.to_bytes()))
    }

    /// A proof for `htm` `htu` at `iat`, with `extra` claims merged in (a `null` removes one).
    pub(crate) fn proof_at(&self, htm: &str, htu: &str, iat: i64, extra: Value) -> String {
        let mut c = json!({"jti": gatehouse::crypto::random_id(), "htm": htm, "htu": htu, "iat": iat});
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        self.sign(&self.header(), &c)
    }

    /// A proof for `POST /token` now.
    pub(crate) fn token_proof(&self, state: &AppState) -> String {
        self.proof_at("POST", TOKEN_URL, state.clock.now(), json!({}))
    }
}

/// `POST /token` with a form body, optional Authorization, and the `DPoP` headers given.
pub(crate) fn token_request(auth: Option<&str>, body: &str, proofs: &[&str]) -> Request<Body> {
    let mut b = Request::post("/token").header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(a) = auth {
        b = b.header(header::AUTHORIZATION, a);
    }
    for p in proofs {
        b = b.header("DPoP", *p);
    }
    b.body(Body::from(body.to_owned())).unwrap()
}

async fn cc_with(app: &Router, c: &TestClient, proofs: &[&str]) -> Resp {
    send(app, token_request(Some(&c.basic()), "grant_type=client_credentials", proofs)).await
}

fn s(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or_else(|| panic!("no {k} in {v}")).to_owned()
}

/// An exact `invalid_dpop_proof` (RFC 9449 §5) at the token endpoint.
fn assert_invalid_proof(r: &Resp, why: &str) {
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_dpop_proof");
    assert_eq!(r.body["error_description"], why, "{}", r.text);
    assert_eq!(r.header("dpop-nonce"), None);
}

async fn introspect(app: &Router, rs: &TestClient, token: &str) -> Value {
    let r = send(app, common::form("/introspect", Some(&rs.basic()), &format!("token={}", enc(token)))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body
}

// ---------------------------------------------------------------- binding

async fn binding_case(store: Arc<dyn Store>) {
    let state = common::state_on(store);
    let app = common::app(&state);
    let (c, rs) = (cc_client(&app).await, crate::code_flow::introspector(&app).await);
    let key = DpopKey::new();
    let r = cc_with(&app, &c, &[&key.token_proof(&state)]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("dpop-nonce"), None, "nonces are off by default");
    let at = s(&r.body, "access_token");
    assert_eq!(r.body, json!({"access_token": at, "token_type": "DPoP", "expires_in": 3600, "scope": "read write"}));
    let cl = claims(&at);
    assert_eq!(cl["cnf"], json!({"jkt": key.jkt}), "RFC 9449 §6.1");
    let i = introspect(&app, &rs, &at).await;
    assert_eq!((&i["active"], &i["token_type"], &i["cnf"]), (&json!(true), &json!("DPoP"), &json!({"jkt": key.jkt})));
    assert_eq!(i["jti"], cl["jti"]);

    // Without a proof: a Bearer token, as before.
    let r = cc_with(&app, &c, &[]).await;
    assert_eq!(r.body["token_type"], "Bearer", "{}", r.text);
    let bearer = s(&r.body, "access_token");
    assert_eq!(claims(&bearer).get("cnf"), None);
    let i = introspect(&app, &rs, &bearer).await;
    assert_eq!((&i["token_type"], i.get("cnf")), (&json!("Bearer"), None));
}

#[tokio::test]
async fn a_proof_binds_the_access_token_embedded() {
    let (store, _dir) = common::embedded();
    binding_case(store).await;
}

#[tokio::test]
async fn a_proof_binds_the_access_token_dynamodb() {
    let Some((store, _, _)) = common::dynamo().await else { return };
    binding_case(store).await;
}

#[tokio::test]
async fn metadata_lists_the_proof_algorithms() {
    let (state, _dir) = common::embedded_state();
    let r = send(&common::app(&state), crate::code_flow::get("/.well-known/oauth-authorization-server")).await;
    assert_eq!(r.body["dpop_signing_alg_values_supported"], json!(["ES256", "PS256", "RS256"]));
}

// ---------------------------------------------------------------- every refusal

#[tokio::test]
async fn proofs_are_checked_and_refused_exactly() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = cc_client(&app).await;
    let (key, other) = (DpopKey::new(), DpopKey::new());
    let now = state.clock.now();
    let claims_now = json!({"jti": "j-1", "htm": "POST", "htu": TOKEN_URL, "iat": now});
    let with = |h: Value| key.sign(&h, &claims_now);
    let header_with = |k: &str, v: Value| {
        let mut h = key.header();
        h[k] = v;
        h
    };
    let mut jwk_with_d = key.jwk.clone();
    jwk_with_d["d"] = json!(b64([7u8; 32]));
    let unsigned = format!("{}.{}.", b64json(&header_with("alg", json!("none"))), b64json(&claims_now));
    let foreign_signature = {
        let p = other.sign(&key.header(), &claims_now);
        p.clone()
    };
    let proof = |htm: &str, htu: &str, iat: i64, extra: Value| key.proof_at(htm, htu, iat, extra);
    let cases: Vec<(String, &str)> = vec![
        (proof("GET", TOKEN_URL, now, json!({})), "the DPoP proof's htm does not match the request method"),
        (proof("post", TOKEN_URL, now, json!({})), "the DPoP proof's htm does not match the request method"),
        (
            proof("POST", "https://auth.test.example/introspect", now, json!({})),
            "the DPoP proof's htu does not match the request URI",
        ),
        (
            proof("POST", "https://evil.example/token", now, json!({})),
            "the DPoP proof's htu does not match the request URI",
        ),
        (
            proof("POST", "http://auth.test.example/token", now, json!({})),
            "the DPoP proof's htu does not match the request URI",
        ),
        (proof("POST", "/token", now, json!({})), "the DPoP proof's htu does not match the request URI"),
        (proof("POST", TOKEN_URL, now - 61, json!({})), "the DPoP proof is too old (iat)"),
        (proof("POST", TOKEN_URL, now + 61, json!({})), "the DPoP proof's iat is in the future"),
        (proof("POST", TOKEN_URL, now, json!({"jti": null})), "the DPoP proof has no jti claim (RFC 9449 §4.2)"),
        (proof("POST", TOKEN_URL, now, json!({"htm": null})), "the DPoP proof has no htm claim (RFC 9449 §4.2)"),
        (proof("POST", TOKEN_URL, now, json!({"htu": null})), "the DPoP proof has no htu claim (RFC 9449 §4.2)"),
        (proof("POST", TOKEN_URL, now, json!({"iat": null})), "the DPoP proof has no iat claim (RFC 9449 §4.2)"),
        (proof("POST", TOKEN_URL, now, json!({"iat": "now"})), "the DPoP proof's iat claim must be a NumericDate"),
        (
            proof("POST", TOKEN_URL, now, json!({"jti": ""})),
            "the DPoP proof's jti claim must be a string of 1 to 256 characters",
        ),
        (
            proof("POST", TOKEN_URL, now, json!({"jti": "x".repeat(257)})),
            "the DPoP proof's jti claim must be a string of 1 to 256 characters",
        ),
        (with(header_with("typ", json!("JWT"))), "the DPoP proof's typ header must be dpop+jwt (RFC 9449 §4.2)"),
        (with(header_with("typ", json!("at+jwt"))), "the DPoP proof's typ header must be dpop+jwt (RFC 9449 §4.2)"),
        (with(json!({"alg": "ES256", "jwk": key.jwk})), "the DPoP proof's typ header must be dpop+jwt (RFC 9449 §4.2)"),
        (unsigned, "the DPoP proof must be signed: alg none is refused (RFC 9449 §4.3)"),
        (
            with(header_with("alg", json!("HS256"))),
            "the DPoP proof must use an asymmetric algorithm: HMAC is refused (RFC 9449 §4.3)",
        ),
        (
            with(header_with("alg", json!("ES512"))),
            "the DPoP proof's alg is not supported; use one of ES256, PS256, RS256",
        ),
        (with(json!({"typ": "dpop+jwt", "jwk": key.jwk})), "the DPoP proof has no alg header"),
        (with(json!({"typ": "dpop+jwt", "alg": "ES256"})), "the DPoP proof has no jwk header (RFC 9449 §4.2)"),
        (with(header_with("jwk", jwk_with_d)), "the DPoP proof's jwk contains a private key (RFC 9449 §4.2)"),
        (
            with(header_with("jwk", json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"}))),
            "the DPoP proof's jwk is not a valid public key: ES256 needs kty EC and crv P-256",
        ),
        (
            with(header_with("jwk", json!({"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"}))),
            "the DPoP proof's jwk is not a valid public key: x and y must be 32 bytes, base64url",
        ),
        (
            with(header_with("crit", json!(["exp"]))),
            "the DPoP proof names critical header parameters (crit) that are not supported",
        ),
        (foreign_signature, "the DPoP proof's signature does not verify with its jwk"),
        ("not-a-jwt".into(), "the DPoP proof is not a compact JWS of three base64url parts"),
        ("a.b.c.d".into(), "the DPoP proof is not a compact JWS of three base64url parts"),
        ("e30.e30.e30".into(), "the DPoP proof's typ header must be dpop+jwt (RFC 9449 §4.2)"),
        ("!!.e30.e30".into(), "the DPoP proof's header is not base64url-encoded JSON object"),
        ("x".repeat(4097), "the DPoP proof is longer than 4096 bytes"),
    ];
    for (p, why) in &cases {
        let r = cc_with(&app, &c, &[p]).await;
        assert_invalid_proof(&r, why);
    }
    // Two headers, or two joined into one (API Gateway joins repeated headers with commas).
    let (a, b) = (key.token_proof(&state), key.token_proof(&state));
    assert_invalid_proof(&cc_with(&app, &c, &[&a, &b]).await, "send exactly one DPoP header (RFC 9449 §4.3)");
    assert_invalid_proof(
        &cc_with(&app, &c, &[&format!("{a},{b}")]).await,
        "send exactly one DPoP header (RFC 9449 §4.3)",
    );

    // The edges of the window pass; the htu is compared after normalisation (RFC 3986 §6.2.2-3)
    // and without its query and fragment; `typ` is a media type (case-insensitive).
    for p in [
        proof("POST", TOKEN_URL, now - 60, json!({})),
        proof("POST", TOKEN_URL, now + 60, json!({})),
        proof("POST", "HTTPS://Auth.Test.Example:443/a/../%74oken?x=1#f", now, json!({})),
        key.sign(
            &header_with("typ", json!("DPoP+JWT")),
            &json!({"jti": "j-2", "htm": "POST", "htu": TOKEN_URL, "iat": now}),
        ),
        proof("POST", TOKEN_URL, now, json!({"iat": now as f64 + 0.5})),
    ] {
        let r = cc_with(&app, &c, &[&p]).await;
        assert_eq!((r.status, &r.body["token_type"]), (StatusCode::OK, &json!("DPoP")), "{}", r.text);
    }

    // Single use: the same proof again is refused.
    let p = key.token_proof(&state);
    assert_eq!(cc_with(&app, &c, &[&p]).await.status, StatusCode::OK);
    assert_invalid_proof(&cc_with(&app, &c, &[&p]).await, "the DPoP proof was already used (jti)");
    // The same jti from another key is another proof (the replay key names the key).
    let mine = key.proof_at("POST", TOKEN_URL, now, json!({"jti": "shared-jti"}));
    let theirs = other.proof_at("POST", TOKEN_URL, now, json!({"jti": "shared-jti"}));
    assert_eq!(cc_with(&app, &c, &[&mine]).await.status, StatusCode::OK);
    assert_eq!(cc_with(&app, &c, &[&theirs]).await.status, StatusCode::OK);
    // Still refused while its iat is in the window; by the window once it is not.
    state.clock.advance(60);
    assert_invalid_proof(&cc_with(&app, &c, &[&p]).await, "the DPoP proof was already used (jti)");
    state.clock.advance(1);
    assert_invalid_proof(&cc_with(&app, &c, &[&p]).await, "the DPoP proof is too old (iat)");
}

// ---------------------------------------------------------------- replay on both backends

async fn replay_case(store: Arc<dyn Store>) {
    let state = common::state_on(store.clone());
    let app = common::app(&state);
    let c = cc_client(&app).await;
    let key = DpopKey::new();
    let p = key.token_proof(&state);
    let jobs = (0..20).map(|_| {
        let (app, c, p) = (app.clone(), c.clone(), p.clone());
        tokio::spawn(async move { cc_with(&app, &c, &[&p]).await })
    });
    let mut ok = 0;
    for j in jobs {
        let r = j.await.unwrap();
        if r.status == StatusCode::OK {
            ok += 1;
        } else {
            assert_invalid_proof(&r, "the DPoP proof was already used (jti)");
        }
    }
    assert_eq!(ok, 1, "of 20 concurrent uses exactly one is admitted");
    // Another instance of the tenant (another function, same table) refuses it too.
    let other = AppState::new(common::config(), store, state.signer.clone(), state.clock.clone());
    let r = cc_with(&common::app(&other), &c, &[&p]).await;
    assert_invalid_proof(&r, "the DPoP proof was already used (jti)");
}

#[tokio::test]
async fn a_proof_is_single_use_under_concurrency_embedded() {
    let (store, _dir) = common::embedded();
    replay_case(store).await;
}

#[tokio::test]
async fn a_proof_is_single_use_under_concurrency_dynamodb() {
    let Some((store, _, _)) = common::dynamo().await else { return };
    replay_case(store).await;
}

// ---------------------------------------------------------------- server nonces

async fn nonce_case(store: Arc<dyn Store>) {
    let state = common::state_on(store.clone());
    let app = common::app(&state);
    let c = cc_client(&app).await;
    let key = DpopKey::new();
    let r = send(&app, admin("PATCH", "/admin/settings", Some(json!({"dpop_nonce_required": true})))).await;
    assert_eq!((r.status, &r.body["settings"]["dpop_nonce_required"]), (StatusCode::OK, &json!(true)), "{}", r.text);
    assert!(!r.text.contains("nonce_key"), "the key is never shown: {}", r.text);

    // RFC 9449 §8: no nonce → use_dpop_nonce with the nonce to use.
    let r = cc_with(&app, &c, &[&key.token_proof(&state)]).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "use_dpop_nonce");
    assert_eq!(r.body["error_description"], "the authorization server requires a nonce in the DPoP proof");
    let nonce = r.header("dpop-nonce").expect("DPoP-Nonce").to_owned();
    assert_eq!(nonce.len(), 22);
    // A wrong nonce: the same answer.
    let wrong = key.proof_at("POST", TOKEN_URL, state.clock.now(), json!({"nonce": "not-the-nonce"}));
    let r = cc_with(&app, &c, &[&wrong]).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "use_dpop_nonce");
    assert_eq!(r.header("dpop-nonce"), Some(nonce.as_str()));
    // With the nonce: a bound token, and the current nonce for the next request (§8.2).
    let p = key.proof_at("POST", TOKEN_URL, state.clock.now(), json!({"nonce": nonce}));
    let r = cc_with(&app, &c, &[&p]).await;
    assert_eq!((r.status, &r.body["token_type"]), (StatusCode::OK, &json!("DPoP")), "{}", r.text);
    assert_eq!(r.header("dpop-nonce"), Some(nonce.as_str()));
    // Another instance of the tenant (a cold start reading the settings) accepts it: stateless.
    let other = AppState::new(common::config(), store, state.signer.clone(), state.clock.clone());
    let p = key.proof_at("POST", TOKEN_URL, state.clock.now(), json!({"nonce": nonce}));
    assert_eq!(cc_with(&common::app(&other), &c, &[&p]).await.status, StatusCode::OK);
    // Valid for its period and the next one (120-240 s), then stale: use_dpop_nonce again.
    let period = gatehouse::dpop::NONCE_PERIOD;
    let into_period = state.clock.now().rem_euclid(period);
    state.clock.advance(2 * period - into_period - 1);
    let p = key.proof_at("POST", TOKEN_URL, state.clock.now(), json!({"nonce": nonce}));
    let r = cc_with(&app, &c, &[&p]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let newer = r.header("dpop-nonce").unwrap().to_owned();
    assert_ne!(newer, nonce);
    state.clock.advance(1);
    let p = key.proof_at("POST", TOKEN_URL, state.clock.now(), json!({"nonce": nonce}));
    let r = cc_with(&app, &c, &[&p]).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "use_dpop_nonce");
    let newest = r.header("dpop-nonce").unwrap().to_owned();
    assert!(newest != nonce && newest != newer, "a new period, a new nonce");
    let p = key.proof_at("POST", TOKEN_URL, state.clock.now(), json!({"nonce": newest}));
    assert_eq!(cc_with(&app, &c, &[&p]).await.status, StatusCode::OK);
    // Requests without DPoP are not affected.
    assert_eq!(cc_with(&app, &c, &[]).await.body["token_type"], "Bearer");
    // Off again: no nonce needed.
    send(&app, admin("PATCH", "/admin/settings", Some(json!({"dpop_nonce_required": null})))).await;
    let r = cc_with(&app, &c, &[&key.token_proof(&state)]).await;
    assert_eq!((r.status, r.header("dpop-nonce")), (StatusCode::OK, None), "{}", r.text);
}

#[tokio::test]
async fn server_nonces_embedded() {
    let (store, _dir) = common::embedded();
    nonce_case(store).await;
}

#[tokio::test]
async fn server_nonces_dynamodb() {
    let Some((store, _, _)) = common::dynamo().await else { return };
    nonce_case(store).await;
}

// ---------------------------------------------------------------- refresh tokens

/// Exchanges a code as the public client `c` with `proofs`.
async fn exchange(app: &Router, c: &TestClient, code: &str, proofs: &[&str]) -> Resp {
    let body = format!(
        "grant_type=authorization_code&code={}&redirect_uri={}&client_id={}&code_verifier={VERIFIER}",
        enc(code),
        enc(REDIRECT),
        enc(&c.id)
    );
    send(app, token_request(None, &body, proofs)).await
}

async fn refresh(app: &Router, c: &TestClient, rt: &str, proofs: &[&str]) -> Resp {
    let (auth, id) = match &c.secret {
        Some(_) => (Some(c.basic()), String::new()),
        None => (None, format!("&client_id={}", enc(&c.id))),
    };
    let body = format!("grant_type=refresh_token&refresh_token={}{id}", enc(rt));
    send(app, token_request(auth.as_deref(), &body, proofs)).await
}

fn assert_bound_refusal(r: &Resp) {
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_grant");
    assert_eq!(
        r.body["error_description"],
        "the refresh token is bound to a DPoP key: send a DPoP proof made with that key"
    );
}

#[tokio::test]
async fn a_public_clients_refresh_token_is_bound_to_the_key() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = crate::code_flow::public_client(&app).await;
    let rs = crate::code_flow::introspector(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    let (key, other) = (DpopKey::new(), DpopKey::new());
    let code = code_for(&app, &pkce_query(&c.id, ""), "alice", PASSWORD).await;
    let r = exchange(&app, &c, &code, &[&key.token_proof(&state)]).await;
    assert_eq!((r.status, &r.body["token_type"]), (StatusCode::OK, &json!("DPoP")), "{}", r.text);
    assert_eq!(claims(&s(&r.body, "access_token"))["cnf"]["jkt"], key.jkt);
    let rt = s(&r.body, "refresh_token");
    assert_eq!(introspect(&app, &rs, &rt).await["cnf"], json!({"jkt": key.jkt}));

    // Another key, or no proof: invalid_grant, and the token stays usable by its key.
    assert_bound_refusal(&refresh(&app, &c, &rt, &[&other.token_proof(&state)]).await);
    assert_bound_refusal(&refresh(&app, &c, &rt, &[]).await);
    // The same key: rotated, and the new refresh token is bound to the same key.
    let r = refresh(&app, &c, &rt, &[&key.token_proof(&state)]).await;
    assert_eq!((r.status, &r.body["token_type"]), (StatusCode::OK, &json!("DPoP")), "{}", r.text);
    assert_eq!(claims(&s(&r.body, "access_token"))["cnf"]["jkt"], key.jkt);
    let rt2 = s(&r.body, "refresh_token");
    assert_bound_refusal(&refresh(&app, &c, &rt2, &[&other.token_proof(&state)]).await);
    // A retry of the rotated token within the grace window needs the key too.
    assert_bound_refusal(&refresh(&app, &c, &rt, &[&other.token_proof(&state)]).await);
    let again = refresh(&app, &c, &rt, &[&key.token_proof(&state)]).await;
    assert_eq!(again.body, r.body, "the grace window returns the same tokens to the key holder");
    assert_eq!(refresh(&app, &c, &rt2, &[&key.token_proof(&state)]).await.status, StatusCode::OK);

    // A refresh token issued without a proof is not bound: any proof, or none.
    let code = code_for(&app, &pkce_query(&c.id, ""), "alice", PASSWORD).await;
    let r = exchange(&app, &c, &code, &[]).await;
    assert_eq!(r.body["token_type"], "Bearer", "{}", r.text);
    let rt = s(&r.body, "refresh_token");
    assert_eq!(introspect(&app, &rs, &rt).await.get("cnf"), None);
    let r = refresh(&app, &c, &rt, &[]).await;
    assert_eq!(r.body["token_type"], "Bearer", "{}", r.text);
}

/// RFC 9449 §10: `dpop_jkt` at `/authorize` binds the code to a DPoP key; the code exchange needs
/// a proof by that key (`invalid_grant` otherwise, the code still unused), and its tokens are
/// bound to the key. On both stores: the binding is stored with the pending request and the code.
async fn code_binding_case(store: Arc<dyn Store>) {
    let state = common::state_on(store);
    let app = common::app(&state);
    let c = crate::code_flow::public_client(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    let (key, other) = (DpopKey::new(), DpopKey::new());
    let code = code_for(&app, &pkce_query(&c.id, &format!("&dpop_jkt={}", key.jkt)), "alice", PASSWORD).await;
    for (proofs, why) in [
        (vec![], "the authorization code is bound to a DPoP key: a DPoP proof is required"),
        (vec![other.token_proof(&state)], "the DPoP proof's key is not the one the authorization code is bound to"),
    ] {
        let proofs: Vec<&str> = proofs.iter().map(String::as_str).collect();
        let r = exchange(&app, &c, &code, &proofs).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");
        assert_eq!(r.body["error_description"], why);
    }
    let r = exchange(&app, &c, &code, &[&key.token_proof(&state)]).await;
    assert_eq!((r.status, &r.body["token_type"]), (StatusCode::OK, &json!("DPoP")), "{}", r.text);
    assert_eq!(claims(&s(&r.body, "access_token"))["cnf"]["jkt"], key.jkt);
    let again = exchange(&app, &c, &code, &[&key.token_proof(&state)]).await;
    assert_error(&again, StatusCode::BAD_REQUEST, "invalid_grant");
    assert_eq!(again.body["error_description"], "the authorization code was already used");
}

#[tokio::test]
async fn dpop_jkt_binds_the_authorization_code_embedded() {
    let (store, _dir) = common::embedded();
    code_binding_case(store).await;
}

#[tokio::test]
async fn dpop_jkt_binds_the_authorization_code_dynamodb() {
    let Some((store, _, _)) = common::dynamo().await else { return };
    code_binding_case(store).await;
}

#[tokio::test]
async fn a_confidential_clients_refresh_token_is_not_bound() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = crate::code_flow::confidential_client(&app).await;
    let rs = crate::code_flow::introspector(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    let (key, other) = (DpopKey::new(), DpopKey::new());
    let code = code_for(&app, &pkce_query(&c.id, ""), "alice", PASSWORD).await;
    let body = format!(
        "grant_type=authorization_code&code={}&redirect_uri={}&code_verifier={VERIFIER}",
        enc(&code),
        enc(REDIRECT)
    );
    let r = send(&app, token_request(Some(&c.basic()), &body, &[&key.token_proof(&state)])).await;
    assert_eq!((r.status, &r.body["token_type"]), (StatusCode::OK, &json!("DPoP")), "{}", r.text);
    let rt = s(&r.body, "refresh_token");
    assert_eq!(introspect(&app, &rs, &rt).await.get("cnf"), None, "RFC 9449 §5: bound by the client's credentials");
    // Another key: a token bound to that key.
    let r = refresh(&app, &c, &rt, &[&other.token_proof(&state)]).await;
    assert_eq!(claims(&s(&r.body, "access_token"))["cnf"]["jkt"], other.jkt, "{}", r.text);
}

// ---------------------------------------------------------------- clients that require DPoP

#[tokio::test]
async fn a_client_may_require_dpop() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = register(
        &app,
        json!({"grant_types": ["client_credentials"], "scope": "read", "dpop_bound_access_tokens": true}),
    )
    .await;
    let r = send(&app, admin("GET", &format!("/admin/clients/{}", c.id), None)).await;
    assert_eq!(r.body["dpop_bound_access_tokens"], true, "{}", r.text);
    // RFC 9449 §5.2: a token request without a proof is rejected; the missing header makes it
    // invalid_request (RFC 6749 §5.2).
    let r = cc_with(&app, &c, &[]).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(
        r.body["error_description"],
        "this client must send a DPoP proof (dpop_bound_access_tokens, RFC 9449 §5.2)"
    );
    let key = DpopKey::new();
    assert_eq!(cc_with(&app, &c, &[&key.token_proof(&state)]).await.body["token_type"], "DPoP");
    // A bad proof is still invalid_dpop_proof.
    let stale = key.proof_at("POST", TOKEN_URL, state.clock.now() - 100, json!({}));
    assert_invalid_proof(&cc_with(&app, &c, &[&stale]).await, "the DPoP proof is too old (iat)");

    // PATCH: a boolean, off again by false or null.
    let path = format!("/admin/clients/{}", c.id);
    let r = send(&app, admin("PATCH", &path, Some(json!({"dpop_bound_access_tokens": "yes"})))).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_client_metadata");
    let r = send(&app, admin("PATCH", &path, Some(json!({"dpop_bound_access_tokens": false})))).await;
    assert_eq!((r.status, r.body.get("dpop_bound_access_tokens")), (StatusCode::OK, None), "{}", r.text);
    assert_eq!(cc_with(&app, &c, &[]).await.body["token_type"], "Bearer");
    let r = send(&app, admin("PATCH", &path, Some(json!({"dpop_bound_access_tokens": true})))).await;
    assert_eq!(r.body["dpop_bound_access_tokens"], true, "{}", r.text);
    let r = send(&app, admin("PATCH", &path, Some(json!({"dpop_bound_access_tokens": null})))).await;
    assert_eq!(r.body.get("dpop_bound_access_tokens"), None, "{}", r.text);
}

// ---------------------------------------------------------------- at a resource server

const RS_URL: &str = "https://api.example.com/photos";

/// `GET /validate` as a resource server forwarding the client's `authorization` and `proofs`,
/// naming the client's request with `htm`/`htu` (`query`).
async fn validate(app: &Router, authorization: &str, proofs: &[&str], query: &str) -> Resp {
    let mut b = Request::get(format!("/validate{query}")).header(header::AUTHORIZATION, authorization);
    for p in proofs {
        b = b.header("DPoP", *p);
    }
    send(app, b.body(Body::empty()).unwrap()).await
}

fn rs_query() -> String {
    format!("?htm=GET&htu={}", enc(RS_URL))
}

/// An exact 401 under the DPoP scheme (RFC 9449 §7.1).
fn assert_dpop_401(r: &Resp, code: &str, why: &str) {
    assert_error(r, StatusCode::UNAUTHORIZED, code);
    assert_eq!(r.body["error_description"], why, "{}", r.text);
    let challenge = format!(
        "DPoP realm=\"gatehouse\", error=\"{code}\", error_description=\"{}\", algs=\"ES256 PS256 RS256\"",
        why.replace('"', "'").replace('§', "Section ")
    );
    assert_eq!(r.header("www-authenticate"), Some(challenge.as_str()));
}

async fn resource_case(store: Arc<dyn Store>) {
    let state = common::state_on(store);
    let app = common::app(&state);
    let c = cc_client(&app).await;
    let (key, other) = (DpopKey::new(), DpopKey::new());
    let at = s(&cc_with(&app, &c, &[&key.token_proof(&state)]).await.body, "access_token");
    let bearer_at = s(&cc_with(&app, &c, &[]).await.body, "access_token");
    let ath = |t: &str| b64(Sha256::digest(t.as_bytes()));
    let now = state.clock.now();
    let rs_proof = |k: &DpopKey, extra: Value| {
        let mut e = json!({"ath": ath(&at)});
        for (n, v) in extra.as_object().unwrap() {
            e[n] = v.clone();
        }
        k.proof_at("GET", RS_URL, now, e)
    };
    let dpop_auth = format!("DPoP {at}");

    // The bound token with a proof for the resource server's request: 200, DPoP and cnf.
    let r = validate(&app, &dpop_auth, &[&rs_proof(&key, json!({}))], &rs_query()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!((&r.body["token_type"], &r.body["cnf"]), (&json!("DPoP"), &json!({"jkt": key.jkt})));
    assert_eq!(r.header("www-authenticate"), None);

    // The same checks at POST /introspect, for a resource server that forwards the proof.
    let rs = crate::code_flow::introspector(&app).await;
    let with_proof = |proof: String, htu: &str| {
        format!("token={}&include_reason=true&dpop_proof={}&htm=GET&htu={}", enc(&at), enc(&proof), enc(htu))
    };
    let r = send(&app, common::form("/introspect", Some(&rs.basic()), &with_proof(rs_proof(&key, json!({})), RS_URL)))
        .await;
    assert_eq!((&r.body["active"], &r.body["cnf"]), (&json!(true), &json!({"jkt": key.jkt})), "{}", r.text);
    let r =
        send(&app, common::form("/introspect", Some(&rs.basic()), &with_proof(rs_proof(&other, json!({})), RS_URL)))
            .await;
    assert_eq!(r.body, json!({"active": false, "reason": "invalid_token"}), "another key");
    let r = send(
        &app,
        common::form(
            "/introspect",
            Some(&rs.basic()),
            &with_proof(rs_proof(&key, json!({})), "https://evil.example/x"),
        ),
    )
    .await;
    assert_eq!(r.body, json!({"active": false, "reason": "invalid_dpop_proof"}), "wrong htu");
    let partial = format!("token={}&dpop_proof=x", enc(&at));
    let r = send(&app, common::form("/introspect", Some(&rs.basic()), &partial)).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");

    // A bound token presented as a Bearer token is refused, proof or not (RFC 9449 §7.1-7.2).
    let bound_as_bearer =
        "the access token is DPoP-bound: present it with the DPoP scheme and a DPoP proof (RFC 9449 §7.1)";
    let bearer = format!("Bearer {at}");
    assert_dpop_401(&validate(&app, &bearer, &[], "").await, "invalid_token", bound_as_bearer);
    assert_dpop_401(
        &validate(&app, &bearer, &[&rs_proof(&key, json!({}))], &rs_query()).await,
        "invalid_token",
        bound_as_bearer,
    );
    // An unbound token presented as DPoP is refused; as Bearer it is fine.
    let r = validate(&app, &format!("DPoP {bearer_at}"), &[&rs_proof(&key, json!({}))], &rs_query()).await;
    assert_dpop_401(&r, "invalid_token", "the access token is not DPoP-bound: present it as a Bearer token");
    let r = validate(&app, &format!("Bearer {bearer_at}"), &[], "").await;
    assert_eq!((r.status, &r.body["token_type"]), (StatusCode::OK, &json!("Bearer")), "{}", r.text);

    // The proof's checks, with the resource server's method and URI and the token's hash.
    let cases = [
        (rs_proof(&key, json!({"ath": null})), "the DPoP proof has no ath claim for the access token"),
        (rs_proof(&key, json!({"ath": ath(&bearer_at)})), "the DPoP proof's ath does not match the access token"),
        (rs_proof(&key, json!({"htm": "POST"})), "the DPoP proof's htm does not match the request method"),
        (rs_proof(&key, json!({"htu": TOKEN_URL})), "the DPoP proof's htu does not match the request URI"),
        (rs_proof(&key, json!({"iat": now - 61})), "the DPoP proof is too old (iat)"),
        (rs_proof(&key, json!({"iat": now + 61})), "the DPoP proof's iat is in the future"),
    ];
    for (p, why) in &cases {
        assert_dpop_401(&validate(&app, &dpop_auth, &[p], &rs_query()).await, "invalid_dpop_proof", why);
    }
    let r = validate(&app, &dpop_auth, &[], &rs_query()).await;
    assert_dpop_401(&r, "invalid_dpop_proof", "a DPoP proof is required with a DPoP-bound access token");
    // Another key's proof: the token is not bound to it (RFC 9449 §7.1 "invalid_token").
    let r = validate(&app, &dpop_auth, &[&rs_proof(&other, json!({}))], &rs_query()).await;
    assert_dpop_401(&r, "invalid_token", "the DPoP proof's key is not the key the access token is bound to");
    // Replay.
    let p = rs_proof(&key, json!({}));
    assert_eq!(validate(&app, &dpop_auth, &[&p], &rs_query()).await.status, StatusCode::OK);
    assert_dpop_401(
        &validate(&app, &dpop_auth, &[&p], &rs_query()).await,
        "invalid_dpop_proof",
        "the DPoP proof was already used (jti)",
    );
    // The resource server must name the client's request.
    for query in ["", "?htm=GET", &format!("?htu={}", enc(RS_URL))] {
        let r = validate(&app, &dpop_auth, &[&rs_proof(&key, json!({}))], query).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
        assert_eq!(
            r.body["error_description"],
            "`htm` and `htu` (the method and URI of the request to the resource server) are required with a DPoP-bound token"
        );
    }

    // Nonces (RFC 9449 §9): use_dpop_nonce with the nonce; then accepted.
    send(&app, admin("PATCH", "/admin/settings", Some(json!({"dpop_nonce_required": true})))).await;
    let r = validate(&app, &dpop_auth, &[&rs_proof(&key, json!({}))], &rs_query()).await;
    assert_dpop_401(&r, "use_dpop_nonce", "the resource server requires a nonce in the DPoP proof");
    let nonce = r.header("dpop-nonce").expect("DPoP-Nonce").to_owned();
    let r = validate(&app, &dpop_auth, &[&rs_proof(&key, json!({"nonce": nonce}))], &rs_query()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn a_bound_token_at_a_resource_server_embedded() {
    let (store, _dir) = common::embedded();
    resource_case(store).await;
}

#[tokio::test]
async fn a_bound_token_at_a_resource_server_dynamodb() {
    let Some((store, _, _)) = common::dynamo().await else { return };
    resource_case(store).await;
}

// ---------------------------------------------------------------- the admin API

const ADMIN_URL: &str = "https://auth.test.example/admin/settings";

/// `GET /admin/settings` with `authorization` and the `DPoP` headers given.
async fn admin_get(app: &Router, authorization: &str, proofs: &[&str]) -> Resp {
    let mut b = Request::get("/admin/settings").header(header::AUTHORIZATION, authorization);
    for p in proofs {
        b = b.header("DPoP", *p);
    }
    send(app, b.body(Body::empty()).unwrap()).await
}

/// A DPoP-bound `gatehouse:admin` token administers only with the DPoP scheme and a proof by
/// its key for the admin request (RFC 9449 §7.1), never as a Bearer token; an unbound one only
/// as Bearer; and a token for a registered resource server never administers (RFC 9068 §4: that
/// server could replay it).
#[tokio::test]
async fn the_admin_api_holds_a_bound_token_to_its_key_and_a_token_to_its_audience() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let robot = register(&app, json!({"grant_types": ["client_credentials"], "scope": "gatehouse:admin"})).await;
    let (key, other) = (DpopKey::new(), DpopKey::new());
    let r = cc_with(&app, &robot, &[&key.token_proof(&state)]).await;
    assert_eq!(r.body["token_type"], "DPoP", "{}", r.text);
    let at = s(&r.body, "access_token");
    let now = state.clock.now();
    let ath = b64(Sha256::digest(at.as_bytes()));
    let proof = |k: &DpopKey, htm: &str, htu: &str| k.proof_at(htm, htu, now, json!({"ath": ath}));
    let dpop_auth = format!("DPoP {at}");

    let r = admin_get(&app, &format!("Bearer {at}"), &[&proof(&key, "GET", ADMIN_URL)]).await;
    assert_dpop_401(
        &r,
        "invalid_token",
        "the access token is DPoP-bound: present it with the DPoP scheme and a DPoP proof (RFC 9449 §7.1)",
    );
    let r = admin_get(&app, &dpop_auth, &[]).await;
    assert_dpop_401(&r, "invalid_dpop_proof", "a DPoP proof is required with a DPoP-bound access token");
    let r = admin_get(&app, &dpop_auth, &[&proof(&other, "GET", ADMIN_URL)]).await;
    assert_dpop_401(&r, "invalid_token", "the DPoP proof's key is not the key the access token is bound to");
    for (htm, htu) in [("POST", ADMIN_URL), ("GET", "https://auth.test.example/admin/clients")] {
        let r = admin_get(&app, &dpop_auth, &[&proof(&key, htm, htu)]).await;
        assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_dpop_proof");
    }
    let good = proof(&key, "GET", ADMIN_URL);
    let r = admin_get(&app, &dpop_auth, &[&good]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.body["settings"]["access_token_ttl"].is_number(), "{}", r.text);
    let r = admin_get(&app, &dpop_auth, &[&good]).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_dpop_proof");

    // An unbound admin token: Bearer only.
    let bearer_at = s(&cc_with(&app, &robot, &[]).await.body, "access_token");
    let r = admin_get(&app, &format!("Bearer {bearer_at}"), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = admin_get(&app, &format!("DPoP {bearer_at}"), &[&key.proof_at("GET", ADMIN_URL, now, json!({}))]).await;
    assert_dpop_401(&r, "invalid_token", "the access token is not DPoP-bound: present it as a Bearer token");

    // A token whose audience is a registered resource server that offers the scope: 401.
    let rs = json!({"identifier": "https://api.example.com", "scopes": ["gatehouse:admin"]});
    let r = send(&app, admin("POST", "/admin/resource-servers", Some(rs))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = send(
        &app,
        token_request(
            Some(&robot.basic()),
            "grant_type=client_credentials&resource=https%3A%2F%2Fapi.example.com",
            &[],
        ),
    )
    .await;
    let for_api = s(&r.body, "access_token");
    assert_eq!(claims(&for_api)["aud"], "https://api.example.com");
    assert_eq!(claims(&for_api)["scope"], "gatehouse:admin");
    let r = admin_get(&app, &format!("Bearer {for_api}"), &[]).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");
}
