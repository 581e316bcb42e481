//! `private_key_jwt` client authentication (RFC 7523 §2.2, §3; OIDC Core §9): registration with
//! an inline JWKS (validated, no secret), client assertions at `/token`, `/introspect` and
//! `/revoke`, every refusal with its exact status and description, single-use `jti` on both
//! backends, method mixing, and the metadata document.
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse::AppState;
use gatehouse::model::AuthMethod;
use gatehouse::store::Store;
use serde_json::{Value, json};

use crate::common::{self, Resp, T0, TestClient, admin, assert_error, basic, form, send};
use crate::jwt_bearer::{ISSUER, TOKEN_URL, TestKey, enc, hs256_with_public_key, jti, unsigned};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const GENERIC: &str = "client authentication failed";

struct Fixture {
    state: AppState,
    app: Router,
    id: String,
    ec: TestKey,
    rsa: TestKey,
    _dir: Option<tempfile::TempDir>,
}

/// Registers a private_key_jwt client with an EC and an RSA key.
async fn fixture_on(store: Arc<dyn Store>, dir: Option<tempfile::TempDir>) -> Fixture {
    let state = common::state_on(store);
    let app = common::app(&state);
    let (ec, rsa) = (TestKey::ec("ec-1"), TestKey::rsa("rsa-1"));
    let metadata = json!({"grant_types": ["client_credentials"], "scope": "read write",
                          "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [ec.jwk, rsa.jwk]}});
    let r = send(&app, admin("POST", "/admin/clients", Some(metadata))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body.get("client_secret"), None, "no secret for private_key_jwt: {}", r.text);
    assert_eq!(r.body["token_endpoint_auth_method"], "private_key_jwt");
    assert_eq!(r.body["jwks"], json!({"keys": [ec.normalized(), rsa.normalized()]}));
    let id = r.body["client_id"].as_str().unwrap().to_owned();
    let stored = state.store.get_client(&id).await.unwrap().unwrap();
    assert_eq!((stored.secret_digest, stored.token_endpoint_auth_method), (None, AuthMethod::PrivateKeyJwt));
    Fixture { state, app, id, ec, rsa, _dir: dir }
}

async fn fixture() -> Fixture {
    let (store, dir) = common::embedded();
    fixture_on(store, Some(dir)).await
}

impl Fixture {
    /// Claims of a good client assertion, valid for two minutes.
    fn claims(&self) -> Value {
        json!({"iss": self.id, "sub": self.id, "aud": ISSUER, "exp": T0 + 120, "iat": T0, "jti": jti()})
    }

    fn claims_with(&self, changes: Value) -> Value {
        let mut c = self.claims();
        for (k, v) in changes.as_object().unwrap() {
            match v {
                Value::Null => c.as_object_mut().unwrap().remove(k),
                v => c.as_object_mut().unwrap().insert(k.clone(), v.clone()),
            };
        }
        c
    }

    fn assertion(&self) -> String {
        self.ec.sign(&self.claims())
    }
}

fn with_assertion(assertion: &str, rest: &str) -> String {
    format!("client_assertion_type={}&client_assertion={}{rest}", enc(ASSERTION_TYPE), enc(assertion))
}

async fn token(app: &Router, assertion: &str) -> Resp {
    send(app, form("/token", None, &with_assertion(assertion, "&grant_type=client_credentials"))).await
}

/// `invalid_client` for body credentials: 400, no challenge, exactly `description`.
fn assert_invalid_client(r: &Resp, description: &str) {
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_client");
    assert_eq!(r.header("www-authenticate"), None);
    assert_eq!(r.body["error_description"], description, "{}", r.text);
}

#[tokio::test]
async fn assertions_authenticate_at_token_introspect_and_revoke() {
    let f = fixture().await;
    // ES256 at the token endpoint.
    let r = token(&f.app, &f.assertion()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["scope"], "read write");
    let at = r.body["access_token"].as_str().unwrap().to_owned();
    // RS256, `client_id` in the body too.
    let rsa = f.rsa.sign(&f.claims());
    let body = with_assertion(&rsa, &format!("&grant_type=client_credentials&client_id={}", f.id));
    let r = send(&f.app, form("/token", None, &body)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // Introspection and revocation accept a fresh assertion each.
    let r = send(&f.app, form("/introspect", None, &with_assertion(&f.assertion(), &format!("&token={at}")))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!((r.body["active"].as_bool(), r.body["client_id"].as_str()), (Some(true), Some(f.id.as_str())));
    let r = send(&f.app, form("/revoke", None, &with_assertion(&f.assertion(), &format!("&token={at}")))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = send(&f.app, form("/introspect", None, &with_assertion(&f.assertion(), &format!("&token={at}")))).await;
    assert_eq!(r.body, json!({"active": false}));
}

#[tokio::test]
async fn refusals_name_the_check_once_the_signature_holds() {
    let f = fixture().await;
    let stranger = TestKey::ec("ec-1"); // the registered kid, another key
    let c = f.claims();
    let precise: Vec<(String, String)> = vec![
        (f.ec.sign(&f.claims_with(json!({"sub": "someone-else"}))), String::new()),
        (f.ec.sign(&f.claims_with(json!({"iss": "https://evil.example"}))), String::new()),
        (
            f.ec.sign(&f.claims_with(json!({"aud": "https://elsewhere.example/token"}))),
            "the client assertion's aud must be the issuer identifier, as a single string".into(),
        ),
        (f.ec.sign(&f.claims_with(json!({"exp": T0 - 60}))), "the client assertion has expired".into()),
        (
            f.ec.sign(&f.claims_with(json!({"exp": T0 + 3601}))),
            "the client assertion is valid for more than 3600 seconds".into(),
        ),
        (f.ec.sign(&f.claims_with(json!({"nbf": T0 + 61}))), "the client assertion is not valid yet (nbf)".into()),
        (f.ec.sign(&f.claims_with(json!({"jti": null}))), "the client assertion has no jti claim".into()),
        (f.ec.sign(&f.claims_with(json!({"exp": null}))), "the client assertion has no exp claim".into()),
        (unsigned("ec-1", &c), "the client assertion must be signed with ES256 or RS256".into()),
        (hs256_with_public_key(&f.ec, &c), "the client assertion must be signed with ES256 or RS256".into()),
    ];
    for (assertion, description) in &precise {
        // Without client_id in the body the client is the assertion's sub; name it explicitly
        // so that a wrong sub or iss is checked against the right client.
        let body = with_assertion(assertion, &format!("&grant_type=client_credentials&client_id={}", f.id));
        let r = send(&f.app, form("/token", None, &body)).await;
        let expected = if description.is_empty() {
            "the client assertion's iss and sub must be the client_id"
        } else {
            description
        };
        assert_invalid_client(&r, expected);
        assert!(!r.text.contains(assertion.as_str()));
    }

    // Before the signature is verified every cause reads the same.
    let secret_client = common::cc_client(&f.app).await;
    let generic = vec![
        stranger.sign(&c),
        f.ec.sign_with_kid(Some("ec-9"), &c),
        f.ec.sign_with_kid(None, &c), // two keys registered: kid required
        f.rsa.sign_with_kid(Some("ec-1"), &c),
        f.ec.sign(&json!({"iss": "nobody", "sub": "nobody", "aud": TOKEN_URL, "exp": T0 + 60, "jti": jti()})),
        // A client registered for client_secret_basic cannot use an assertion.
        f.ec.sign(
            &json!({"iss": secret_client.id, "sub": secret_client.id, "aud": TOKEN_URL, "exp": T0 + 60, "jti": jti()}),
        ),
    ];
    for assertion in &generic {
        assert_invalid_client(&token(&f.app, assertion).await, GENERIC);
    }
    assert_invalid_client(&token(&f.app, "garbage").await, "the client assertion is not a well-formed signed JWT");
    // Without client_id in the body, the assertion's sub names the client.
    let no_sub = f.ec.sign(&f.claims_with(json!({"sub": null})));
    assert_invalid_client(&token(&f.app, &no_sub).await, "the client assertion has no sub claim");

    // A private_key_jwt client cannot fall back to sending only its id, or a secret.
    let r = send(&f.app, form("/token", None, &format!("grant_type=client_credentials&client_id={}", f.id))).await;
    assert_invalid_client(&r, GENERIC);
    let r = send(&f.app, form("/token", Some(&basic(&f.id, "guess")), "grant_type=client_credentials")).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_client");
    assert_eq!(count_tokens(&f).await, 0);
}

/// The header's `typ` (RFC 8725 §3.11): none, `JWT` or `client-authentication+jwt` (any case,
/// with or without `application/`) authenticate; another kind of JWT signed with the client's key,
/// such as a DPoP proof or an access token, does not, and issues nothing.
#[tokio::test]
async fn a_typ_of_another_kind_of_jwt_is_refused() {
    let f = fixture().await;
    for typ in [None, Some("JWT"), Some("jwt"), Some("application/jwt")] {
        let r = token(&f.app, &f.ec.sign_with_typ(typ, &f.claims())).await;
        assert_eq!(r.status, StatusCode::OK, "{typ:?}: {}", r.text);
    }
    for typ in ["client-authentication+jwt", "Application/Client-Authentication+JWT"] {
        let r = token(&f.app, &f.ec.sign_with_typ(Some(typ), &f.claims())).await;
        assert_eq!(r.status, StatusCode::OK, "{typ:?}: {}", r.text);
    }
    let issued = count_tokens(&f).await;
    for typ in ["dpop+jwt", "at+jwt", "application/at+jwt", "secevent+jwt", "JOSE", "jwt+client-authentication", ""] {
        let r = token(&f.app, &f.rsa.sign_with_typ(Some(typ), &f.claims())).await;
        assert_invalid_client(
            &r,
            "the client assertion's typ names another kind of JWT (use JWT or client-authentication+jwt)",
        );
    }
    assert_eq!(count_tokens(&f).await, issued, "nothing issued");
}

/// RFC 10070: a client assertion names the issuer identifier alone, as a single string. The
/// tenant setting `legacy_client_assertion_audience` also accepts RFC 7523's audiences (the
/// token endpoint URL, arrays) from untyped assertions, never from one typed
/// `client-authentication+jwt`. A refused assertion issues nothing and does not spend its `jti`.
#[tokio::test]
async fn the_audience_is_the_issuer_alone_unless_the_tenant_accepts_rfc_7523s() {
    let f = fixture().await;
    const NOT_ISSUER: &str = "the client assertion's aud must be the issuer identifier, as a single string";
    let untyped = |aud: &Value| f.ec.sign(&f.claims_with(json!({"aud": aud})));
    let typed =
        |aud: &Value| f.ec.sign_with_typ(Some("client-authentication+jwt"), &f.claims_with(json!({"aud": aud})));
    let legacy = [json!(TOKEN_URL), json!([ISSUER]), json!([TOKEN_URL, "https://elsewhere.example"])];
    let refused: Vec<String> = legacy.iter().map(untyped).collect();
    for a in refused.iter().chain(&legacy.iter().map(typed).collect::<Vec<_>>()) {
        assert_invalid_client(&token(&f.app, a).await, NOT_ISSUER);
    }
    // At every endpoint that authenticates clients.
    for endpoint in ["/introspect", "/revoke"] {
        let body = with_assertion(&untyped(&json!(TOKEN_URL)), "&token=x");
        assert_invalid_client(&send(&f.app, form(endpoint, None, &body)).await, NOT_ISSUER);
    }
    assert_eq!(count_tokens(&f).await, 0, "nothing issued");
    for a in [untyped(&json!(ISSUER)), typed(&json!(ISSUER))] {
        assert_eq!(token(&f.app, &a).await.status, StatusCode::OK);
    }

    // Legacy audiences accepted: the assertions refused above were never spent; typed ones are
    // still held to RFC 10070, and an audience naming neither is refused as RFC 7523 has it.
    let r =
        send(&f.app, admin("PATCH", "/admin/settings", Some(json!({"legacy_client_assertion_audience": true})))).await;
    assert_eq!(
        (r.status, &r.body["settings"]["legacy_client_assertion_audience"]),
        (StatusCode::OK, &json!(true)),
        "{}",
        r.text
    );
    for a in &refused {
        assert_eq!(token(&f.app, a).await.status, StatusCode::OK);
    }
    for aud in &legacy {
        assert_invalid_client(&token(&f.app, &typed(aud)).await, NOT_ISSUER);
    }
    assert_invalid_client(
        &token(&f.app, &untyped(&json!("https://elsewhere.example"))).await,
        "the client assertion's aud must contain the token endpoint URL or the issuer identifier",
    );
    assert_eq!(count_tokens(&f).await, 2 + 3);
}

async fn count_tokens(f: &Fixture) -> u64 {
    let q = gatehouse::store::TokenQuery {
        kind: gatehouse::model::TokenKind::Access,
        client_id: Some(f.id.clone()),
        end_user: None,
    };
    f.state.store.count_tokens(&q, T0).await.unwrap()
}

#[tokio::test]
async fn mixing_methods_or_malformed_parameters_is_invalid_request() {
    let f = fixture().await;
    let secret_client = common::cc_client(&f.app).await;
    let a = f.assertion();
    let cases = [
        (
            None,
            with_assertion(&a, "&grant_type=client_credentials&client_secret=x"),
            "more than one client authentication method: send the client assertion alone",
        ),
        (
            Some(secret_client.basic()),
            with_assertion(&a, "&grant_type=client_credentials"),
            "more than one client authentication method: send the client assertion alone",
        ),
        (
            None,
            format!("grant_type=client_credentials&client_assertion={}", enc(&a)),
            "missing parameter `client_assertion_type`",
        ),
        (
            None,
            format!("grant_type=client_credentials&client_assertion_type={}", enc(ASSERTION_TYPE)),
            "missing parameter `client_assertion`",
        ),
        (
            None,
            format!("grant_type=client_credentials&client_assertion_type=urn%3Aother&client_assertion={}", enc(&a)),
            "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
    ];
    for (auth, body, description) in cases {
        let r = send(&f.app, form("/token", auth.as_deref(), &body)).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
        assert_eq!(r.body["error_description"], description);
    }
    // None of these used the assertion up.
    assert_eq!(token(&f.app, &a).await.status, StatusCode::OK);
}

/// A client assertion is single use, and of 20 concurrent uses exactly one authenticates.
async fn replay_is_refused(f: Fixture) {
    let a = f.assertion();
    assert_eq!(token(&f.app, &a).await.status, StatusCode::OK);
    assert_invalid_client(&token(&f.app, &a).await, "the client assertion was used already (jti)");
    // At another endpoint too.
    let r = send(&f.app, form("/introspect", None, &with_assertion(&a, "&token=x"))).await;
    assert_invalid_client(&r, "the client assertion was used already (jti)");

    let a = f.assertion();
    let results = futures::future::join_all((0..20).map(|_| token(&f.app, &a))).await;
    assert_eq!(results.iter().filter(|r| r.status == StatusCode::OK).count(), 1);
    for r in results.iter().filter(|r| r.status != StatusCode::OK) {
        assert_invalid_client(r, "the client assertion was used already (jti)");
    }
    assert_eq!(count_tokens(&f).await, 2);
}

#[tokio::test]
async fn replayed_assertion_is_refused_embedded() {
    replay_is_refused(fixture().await).await;
}

#[tokio::test]
async fn replayed_assertion_is_refused_dynamodb() {
    let Some((store, _, _)) = common::dynamo().await else { return };
    replay_is_refused(fixture_on(store, None).await).await;
}

#[tokio::test]
async fn registration_validates_the_jwks() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let ec = TestKey::ec("k1");
    let mut private = ec.jwk.clone();
    private["d"] = json!("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let mut es384 = ec.jwk.clone();
    es384["alg"] = json!("ES384");
    let mut rsa = TestKey::rsa("r").jwk;
    rsa["alg"] = json!("PS256");
    let mut small = TestKey::rsa("r").jwk;
    small["n"] = json!(URL_SAFE_NO_PAD.encode([0xC3u8; 128])); // 1024 bits
    let mut enc_use = ec.jwk.clone();
    enc_use["use"] = json!("enc");
    let m = |jwks: Value| json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt", "jwks": jwks});
    let cases = [
        (
            m(json!({"keys": [private]})),
            "jwks: keys[0]: contains the private key member `d`; register public keys only",
        ),
        (m(json!({"keys": [es384]})), "jwks: keys[0]: alg must be ES256 for kty EC (ES256 and RS256 are accepted)"),
        (m(json!({"keys": [rsa]})), "jwks: keys[0]: alg must be RS256 for kty RSA (ES256 and RS256 are accepted)"),
        (m(json!({"keys": [small]})), "jwks: keys[0]: n must be an odd modulus of 2048 to 4096 bits"),
        (m(json!({"keys": [enc_use]})), "jwks: keys[0]: use must be sig"),
        (
            m(json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "AA", "kid": "o"}]})),
            "jwks: keys[0]: kty must be EC (P-256, ES256) or RSA (RS256)",
        ),
        (
            m(json!({"keys": [{"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA", "kid": "p"}]})),
            "jwks: keys[0]: crv must be P-256",
        ),
        (m(json!({"keys": [ec.jwk, ec.jwk]})), "jwks: keys[1]: kid is not unique"),
        (
            m(
                json!({"keys": (0..6).map(|i| { let mut k = ec.jwk.clone(); k["kid"] = json!(i.to_string()); k }).collect::<Vec<_>>()}),
            ),
            "jwks: keys: 1 to 5 keys",
        ),
        (
            m(json!({"keys": [{"kty": "EC", "crv": "P-256", "x": ec.jwk["x"], "y": ec.jwk["y"]}]})),
            "jwks: keys[0]: kid is required",
        ),
        (
            json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt"}),
            "jwks: required for token_endpoint_auth_method private_key_jwt (inline keys only)",
        ),
        (
            json!({"grant_types": ["client_credentials"], "jwks": {"keys": [ec.jwk]}}),
            "jwks: only used with token_endpoint_auth_method private_key_jwt",
        ),
    ];
    for (metadata, description) in cases {
        let r = send(&app, admin("POST", "/admin/clients", Some(metadata))).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_client_metadata");
        assert_eq!(r.body["error_description"], description);
    }
    // No jwks_uri: keys are inline (no outbound fetch from Lambda).
    let r = send(&app, admin("POST", "/admin/clients", Some(json!({"jwks_uri": "https://app.example/jwks"})))).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_client_metadata");
}

#[tokio::test]
async fn a_secret_client_switches_to_private_key_jwt_by_patch() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c: TestClient = common::cc_client(&app).await;
    let key = TestKey::ec("k1");
    let path = format!("/admin/clients/{}", c.id);
    let patch = json!({"token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [key.jwk]}});
    let r = send(&app, admin("PATCH", &path, Some(patch))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["jwks"], json!({"keys": [key.normalized()]}));
    assert_eq!(state.store.get_client(&c.id).await.unwrap().unwrap().secret_digest, None, "the secret is gone");

    // The old secret no longer works; an assertion does (one key: the kid may be omitted).
    let r = send(&app, form("/token", Some(&c.basic()), "grant_type=client_credentials")).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_client");
    let claims = json!({"iss": c.id, "sub": c.id, "aud": ISSUER, "exp": T0 + 60, "jti": jti()});
    let r = token(&app, &key.sign_with_kid(None, &claims)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // No secret to rotate; back to a secret method needs the keys removed, then a new secret.
    let r = send(&app, admin("POST", &format!("{path}/secret"), None)).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_client_metadata");
    let r = send(&app, admin("PATCH", &path, Some(json!({"token_endpoint_auth_method": "client_secret_basic"})))).await;
    assert_eq!(r.body["error_description"], "jwks: only used with token_endpoint_auth_method private_key_jwt");
    let back = json!({"token_endpoint_auth_method": "client_secret_basic", "jwks": null});
    assert_eq!(send(&app, admin("PATCH", &path, Some(back))).await.status, StatusCode::OK);
    let r = send(&app, admin("POST", &format!("{path}/secret"), None)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let secret = r.body["client_secret"].as_str().unwrap();
    let r = send(&app, form("/token", Some(&basic(&c.id, secret)), "grant_type=client_credentials")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn metadata_advertises_private_key_jwt() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let r = send(&app, Request::get("/.well-known/oauth-authorization-server").body(Body::empty()).unwrap()).await;
    assert_eq!(
        r.body["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post", "private_key_jwt", "none"])
    );
    assert_eq!(r.body["token_endpoint_auth_signing_alg_values_supported"], json!(["ES256", "RS256"]));
    assert_eq!(
        r.body["introspection_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post", "private_key_jwt"])
    );
    assert_eq!(r.body["introspection_endpoint_auth_signing_alg_values_supported"], json!(["ES256", "RS256"]));
    assert_eq!(r.body["revocation_endpoint_auth_signing_alg_values_supported"], json!(["ES256", "RS256"]));
}

/// `shared/openapi.json` describes the new metadata and parameters: real requests and answers
/// match the documented schemas, and a key with private material does not.
#[tokio::test]
async fn the_openapi_document_describes_keys_issuers_and_assertions() {
    let doc: Value = serde_json::from_str(include_str!("../../shared/openapi.json")).unwrap();
    let valid = |schema: &str, instance: &Value| {
        let mut root = doc.clone();
        root["allOf"] = json!([{"$ref": format!("#/components/schemas/{schema}")}]);
        let v = jsonschema::draft202012::new(&root).unwrap();
        let errors: Vec<String> = v.iter_errors(instance).map(|e| e.to_string()).collect();
        errors.is_empty().then_some(()).ok_or_else(|| format!("{schema}: {instance}: {}", errors.join("; ")))
    };
    let f = fixture().await;
    let (ec, rsa) = (&f.ec, &f.rsa);
    let issuers = json!([{"issuer": "https://idp.example", "jwks": {"keys": [rsa.jwk]}, "enabled": false}]);
    let metadata = json!({"grant_types": ["urn:ietf:params:oauth:grant-type:jwt-bearer", "client_credentials"],
                          "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [ec.jwk]},
                          "jwt_bearer_issuers": issuers});
    valid("ClientMetadata", &metadata).unwrap();
    let r = send(&f.app, admin("POST", "/admin/clients", Some(metadata))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    valid("ClientRegistration", &r.body).unwrap();
    let path = format!("/admin/clients/{}", r.body["client_id"].as_str().unwrap());
    valid("Client", &send(&f.app, admin("GET", &path, None)).await.body).unwrap();
    let patch = json!({"jwt_bearer_issuers": null, "grant_types": ["client_credentials"]});
    valid("ClientMetadataPatch", &patch).unwrap();
    valid("Client", &send(&f.app, admin("PATCH", &path, Some(patch))).await.body).unwrap();

    let mut private = ec.jwk.clone();
    private["d"] = json!("AAAA");
    let refused = json!({"token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [private]}});
    assert!(valid("ClientMetadata", &refused).is_err(), "a private key member is documented as refused");

    let assertion = f.assertion();
    valid(
        "TokenRequest",
        &json!({"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}),
    )
    .unwrap();
    valid(
        "TokenRequest",
        &json!({"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion,
                "scope": "read", "client_id": f.id, "client_secret": "s"}),
    )
    .unwrap();
    let r = send(&f.app, Request::get("/.well-known/oauth-authorization-server").body(Body::empty()).unwrap()).await;
    valid("ServerMetadata", &r.body).unwrap();
}
