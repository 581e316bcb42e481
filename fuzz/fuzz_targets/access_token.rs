//! Gatehouse's own JWT access tokens (RFC 9068 §4) verified against a fixed key set
//! (`keys::KeySet::verify_access_token`): what `/introspect`, `/validate` and the admin API run
//! on every presented token.
//! Invariants: no panic; deterministic; a token is accepted only with `typ` `at+jwt`, the key's
//! `kid` and algorithm (`ES256`; never `none` or an HMAC), our issuer; expiry decides between
//! the two entry points exactly.
#![no_main]
use gatehouse::keys::KeySet;
use gatehouse_fuzz::{ISSUER, NOW, jose_header, public_jwk};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn keys() -> &'static KeySet {
    static KEYS: OnceLock<KeySet> = OnceLock::new();
    KEYS.get_or_init(|| KeySet::new([public_jwk()]).expect("the fixed key"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else { return };
    let keys = keys();
    let claims = keys.verify_access_token_signature(token, ISSUER);
    assert_eq!(claims, keys.verify_access_token_signature(token, ISSUER), "deterministic");
    let active = keys.verify_access_token(token, ISSUER, NOW);
    assert_eq!(active.is_some(), claims.as_ref().is_some_and(|c| c.exp > NOW), "expiry");
    let Some(claims) = claims else { return };
    let header = jose_header(token).expect("an accepted token has a JSON header");
    assert_eq!(header.get("alg").and_then(|v| v.as_str()), Some("ES256"), "accepted alg {header:?}");
    assert_eq!(header.get("kid").and_then(|v| v.as_str()), Some(public_jwk().kid.as_str()));
    assert!(header.get("typ").and_then(|v| v.as_str()).is_some_and(|t| t.eq_ignore_ascii_case("at+jwt")));
    assert_eq!(claims.iss, ISSUER);
    assert!(token.len() <= 8192);
});
