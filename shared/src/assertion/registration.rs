//! Validation of the keys a client registers (admin API, RFC 7591 §2 `jwks`; Gatehouse's
//! `jwt_bearer_issuers`): public `ES256` (EC P-256) and `RS256` (RSA 2048-4096 bits) signing
//! keys only, each with a unique `kid`; any private or symmetric key member is refused; at most
//! [`MAX_KEYS`] keys per set and [`MAX_ISSUERS`] issuers per client. The keys are stored
//! normalized (`kty`, `crv`/`x`/`y` or `n`/`e`, `kid`, `alg`, `use: sig`).
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use crate::keys::PublicJwk;
use crate::model::{JwkSet, TrustedIssuer};

/// Most keys in one JWK Set.
pub const MAX_KEYS: usize = 5;
/// Most trusted issuers per client.
pub const MAX_ISSUERS: usize = 5;
/// Longest `kid` (characters).
const MAX_KID: usize = 128;
/// Longest issuer identifier (bytes: it is part of the replay key of its assertions).
const MAX_ISSUER: usize = 512;

/// JWK members that hold private or secret key material (RFC 7518 §6.2.2, §6.3.2, §6.4.1).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

fn string<'a>(m: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, String> {
    match m.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("{name} must be a string")),
    }
}

fn b64(m: &Map<String, Value>, name: &str) -> Result<Vec<u8>, String> {
    let s = string(m, name)?.ok_or_else(|| format!("{name} is required"))?;
    URL_SAFE_NO_PAD.decode(s).map_err(|_| format!("{name} must be base64url without padding"))
}

/// One public key (RFC 7517 §4), normalized.
fn jwk(v: &Value) -> Result<PublicJwk, String> {
    let m = v.as_object().ok_or("a key must be a JSON object")?;
    if let Some(p) = PRIVATE_MEMBERS.iter().find(|p| m.contains_key(**p)) {
        return Err(format!("contains the private key member `{p}`; register public keys only"));
    }
    let kid = string(m, "kid")?.ok_or("kid is required")?;
    if kid.is_empty() || kid.chars().count() > MAX_KID {
        return Err(format!("kid must have 1 to {MAX_KID} characters"));
    }
    if string(m, "use")?.is_some_and(|u| u != "sig") {
        return Err("use must be sig".into());
    }
    let kty = string(m, "kty")?.ok_or("kty is required")?;
    let alg = string(m, "alg")?;
    let (expected_alg, mut key) = match kty {
        "EC" => ("ES256", ec_key(m)?),
        "RSA" => ("RS256", rsa_key(m)?),
        _ => return Err("kty must be EC (P-256, ES256) or RSA (RS256)".into()),
    };
    if alg.is_some_and(|a| a != expected_alg) {
        return Err(format!("alg must be {expected_alg} for kty {kty} (ES256 and RS256 are accepted)"));
    }
    key.kid = kid.to_owned();
    Ok(key)
}

fn ec_key(m: &Map<String, Value>) -> Result<PublicJwk, String> {
    if string(m, "crv")? != Some("P-256") {
        return Err("crv must be P-256".into());
    }
    let (x, y) = (b64(m, "x")?, b64(m, "y")?);
    if x.len() != 32 || y.len() != 32 {
        return Err("x and y must be 32 bytes each".into());
    }
    let point = [&[4u8][..], &x, &y].concat();
    let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&point).map_err(|_| "x, y is not a point of P-256")?;
    Ok(PublicJwk::from_p256(&key, crate::keys::Alg::ES256))
}

fn rsa_key(m: &Map<String, Value>) -> Result<PublicJwk, String> {
    let (n, e) = (b64(m, "n")?, b64(m, "e")?);
    let n: Vec<u8> = n.into_iter().skip_while(|b| *b == 0).collect();
    let e: Vec<u8> = e.into_iter().skip_while(|b| *b == 0).collect();
    // An empty (or all-zero) modulus has no bits (not `0 - 8`: an overflow, a panic in debug builds).
    let bits = n.first().map_or(0, |b| n.len() * 8 - b.leading_zeros() as usize);
    if !(2048..=4096).contains(&bits) || n.last().is_none_or(|b| b % 2 == 0) {
        return Err("n must be an odd modulus of 2048 to 4096 bits".into());
    }
    if e.is_empty() || e.len() > 4 || e.last().is_none_or(|b| b % 2 == 0) || e == [1] {
        return Err("e must be an odd exponent above 1 of at most 32 bits".into());
    }
    Ok(PublicJwk::from_rsa(&n, &e))
}

/// A JWK Set (RFC 7517 §5): `{"keys": [...]}` with 1 to [`MAX_KEYS`] public keys, unique kids.
/// Errors name the member (`keys[1]: ...`); the caller prefixes the field.
pub fn jwk_set(v: &Value) -> Result<JwkSet, String> {
    let keys = v
        .as_object()
        .and_then(|m| m.get("keys"))
        .and_then(Value::as_array)
        .ok_or("must be a JWK Set: {\"keys\": [...]}")?;
    if keys.is_empty() || keys.len() > MAX_KEYS {
        return Err(format!("keys: 1 to {MAX_KEYS} keys"));
    }
    let mut set = JwkSet::default();
    for (i, k) in keys.iter().enumerate() {
        let key = jwk(k).map_err(|e| format!("keys[{i}]: {e}"))?;
        if set.keys.iter().any(|other| other.kid == key.kid) {
            return Err(format!("keys[{i}]: kid is not unique"));
        }
        set.keys.push(key);
    }
    Ok(set)
}

/// `jwt_bearer_issuers`: an array of up to [`MAX_ISSUERS`] objects
/// `{"issuer": "...", "jwks": {"keys": [...]}, "enabled": true}` with unique issuers. Errors
/// start with the member's path (`jwt_bearer_issuers[0].jwks: keys[1]: ...`).
pub fn trusted_issuers(v: &Value) -> Result<Vec<TrustedIssuer>, String> {
    let list = v.as_array().ok_or("jwt_bearer_issuers: must be an array of {issuer, jwks, enabled}")?;
    if list.len() > MAX_ISSUERS {
        return Err(format!("jwt_bearer_issuers: at most {MAX_ISSUERS} issuers"));
    }
    let mut issuers: Vec<TrustedIssuer> = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let item = item.as_object().ok_or_else(|| format!("jwt_bearer_issuers[{i}]: must be an object"))?;
        let issuer = trusted_issuer(item).map_err(|e| format!("jwt_bearer_issuers[{i}].{e}"))?;
        if issuers.iter().any(|other| other.issuer == issuer.issuer) {
            return Err(format!("jwt_bearer_issuers[{i}].issuer: listed twice"));
        }
        issuers.push(issuer);
    }
    Ok(issuers)
}

fn trusted_issuer(m: &Map<String, Value>) -> Result<TrustedIssuer, String> {
    if let Some(other) = m.keys().find(|k| !["issuer", "jwks", "enabled"].contains(&k.as_str())) {
        let other: String = other.chars().take(64).collect();
        return Err(format!("{other}: unknown member, expected issuer, jwks, enabled"));
    }
    let issuer = string(m, "issuer").map_err(|e| format!("issuer: {e}"))?.ok_or("issuer: required")?;
    if issuer.trim().is_empty() || issuer.trim() != issuer || issuer.len() > MAX_ISSUER {
        return Err(format!("issuer: 1 to {MAX_ISSUER} bytes, no surrounding spaces"));
    }
    let jwks = jwk_set(m.get("jwks").ok_or("jwks: required")?).map_err(|e| format!("jwks: {e}"))?;
    let enabled = match m.get("enabled") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err("enabled: must be true or false".into()),
    };
    Ok(TrustedIssuer { issuer: issuer.to_owned(), jwks, enabled })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ec() -> Value {
        let key = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
        let jwk = PublicJwk::from_p256(key.verifying_key(), crate::keys::Alg::ES256);
        json!({"kty": "EC", "crv": "P-256", "x": jwk.x, "y": jwk.y, "kid": "k1"})
    }

    #[test]
    fn a_public_ec_key_is_normalized() {
        let set = jwk_set(&json!({"keys": [ec()]})).unwrap();
        let k = &set.keys[0];
        assert_eq!((k.kid.as_str(), k.alg.as_str(), k.use_.as_str()), ("k1", "ES256", "sig"));
        // The stored form is accepted again (PATCH merges the stored metadata).
        assert_eq!(jwk_set(&serde_json::to_value(&set).unwrap()).unwrap(), set);
    }

    #[test]
    fn refusals_name_the_member() {
        let mut private = ec();
        private["d"] = json!("AAAA");
        let cases = [
            (json!({"keys": [private]}), "keys[0]: contains the private key member `d`; register public keys only"),
            (
                json!({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}]}),
                "keys[0]: contains the private key member `k`; register public keys only",
            ),
            (json!({"keys": [ec(), ec()]}), "keys[1]: kid is not unique"),
            (json!({"keys": []}), "keys: 1 to 5 keys"),
            (json!([]), "must be a JWK Set: {\"keys\": [...]}"),
        ];
        for (v, msg) in cases {
            assert_eq!(jwk_set(&v).unwrap_err(), msg);
        }
        let mut hs = ec();
        hs["alg"] = json!("HS256");
        assert_eq!(
            jwk_set(&json!({"keys": [hs]})).unwrap_err(),
            "keys[0]: alg must be ES256 for kty EC (ES256 and RS256 are accepted)"
        );
        let mut off = ec();
        off["y"] = off["x"].clone();
        assert_eq!(jwk_set(&json!({"keys": [off]})).unwrap_err(), "keys[0]: x, y is not a point of P-256");
    }

    #[test]
    fn small_rsa_keys_are_refused() {
        let n = URL_SAFE_NO_PAD.encode([0xC3u8; 128]);
        // Also an empty and an all-zero modulus (no bits at all: this once overflowed).
        for n in [n.as_str(), "", "AAAA"] {
            let v = json!({"keys": [{"kty": "RSA", "n": n, "e": "AQAB", "kid": "r"}]});
            assert_eq!(jwk_set(&v).unwrap_err(), "keys[0]: n must be an odd modulus of 2048 to 4096 bits", "{n:?}");
        }
    }
}
