//! JWT assertions (RFC 7523): the JWT bearer grant's `assertion` and `private_key_jwt`'s
//! `client_assertion` share `assertion::parse`, key selection in a registered JWK Set,
//! `verify_signature` and `check_claims` (fixed clock and audiences); `client_auth::presented`
//! reads a client assertion from a form.
//! Invariants: no panic; deterministic; only `ES256` and `RS256` headers parse (never `none`,
//! an HMAC or a `crit` header); claims that pass `check_claims` are inside the time window, the
//! lifetime bound and the audience; a presented client assertion names the assertion's `sub`
//! (or is refused as `invalid_client` / `invalid_request`).
#![no_main]
use std::sync::OnceLock;

use axum::http::HeaderMap;
use gatehouse::assertion::{self, MAX_LIFETIME, SKEW, client_auth};
use gatehouse::http::{Params, Presented};
use gatehouse::model::JwkSet;
use gatehouse_fuzz::{ISSUER, NOW, TOKEN_ENDPOINT, jose_header, registered_jwks};
use libfuzzer_sys::fuzz_target;

fn jwks() -> &'static JwkSet {
    static SET: OnceLock<JwkSet> = OnceLock::new();
    SET.get_or_init(|| assertion::registration::jwk_set(&registered_jwks()).expect("the fixed key set"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else { return };
    let parsed = assertion::parse(token);
    assert_eq!(gatehouse_fuzz::outcome(&parsed), gatehouse_fuzz::outcome(&assertion::parse(token)), "deterministic");
    if let Ok(p) = &parsed {
        let h = jose_header(token).expect("a parsed assertion has a JSON header");
        let alg = h.get("alg").and_then(|v| v.as_str());
        assert!(matches!(alg, Some("ES256" | "RS256")), "accepted alg {alg:?}");
        assert!(!h.contains_key("crit"));
        if let Some(key) = jwks().select(p.header.kid.as_deref()) {
            let verified = assertion::verify_signature(p, key);
            assert_eq!(verified, assertion::verify_signature(p, key), "deterministic");
            if verified.is_ok() {
                assert_eq!(alg, Some("ES256"), "verified with the ES256 key");
            }
        }
        assertion::verify_against_nobody(p);
        if let Ok(v) = assertion::check_claims(&p.claims, &[TOKEN_ENDPOINT, ISSUER], NOW) {
            let (exp, now) = (i128::from(v.exp), i128::from(NOW));
            assert!(exp + i128::from(SKEW) > now, "expired accepted");
            let start = p.claims.iat.map_or(now, |iat| i128::from(iat).min(now));
            assert!(exp - start <= i128::from(MAX_LIFETIME), "too long-lived accepted");
            assert!(p.claims.nbf.is_none_or(|nbf| i128::from(nbf) <= now + i128::from(SKEW)));
            assert!(p.claims.iat.is_none_or(|iat| i128::from(iat) <= now + i128::from(SKEW)));
            assert!(p.claims.aud.iter().any(|a| a == TOKEN_ENDPOINT || a == ISSUER));
            assert!(!v.iss.is_empty() && !v.sub.is_empty() && !v.jti.is_empty() && v.jti.len() <= 256);
        }
    }

    // As `private_key_jwt` presents it.
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("client_assertion_type", client_auth::CLIENT_ASSERTION_TYPE)
        .append_pair("client_assertion", token)
        .finish();
    let Ok(form) = Params::parse(body.as_bytes()) else { return };
    match client_auth::presented(&HeaderMap::new(), &form) {
        Ok(Some(Presented::Assertion { client_id, assertion })) => {
            assert_eq!(assertion.expose(), token);
            assert_eq!(Some(client_id), parsed.ok().and_then(|p| p.claims.sub));
        }
        Ok(other) => assert!(token.is_empty() && other.is_none(), "{other:?}"),
        Err(e) => assert!(["invalid_client", "invalid_request"].contains(&e.code()), "{e:?}"),
    }
});
