//! One DPoP proof JWT read and its signature checked on its own (RFC 9449 §4.2, §4.3 items 2-7):
//! a compact JWS with `typ: dpop+jwt`, an asymmetric `alg`, the public key in `jwk`, and the
//! `jti`, `htm`, `htu` and `iat` claims (`nonce` and `ath` when present). What the proof must
//! match in the request (method, URI, time, nonce, access token, single use) is checked by the
//! caller (`super::check`).
use std::borrow::Cow;

use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::crypto::{b64url, b64url_decode};

/// The algorithms accepted for proofs (RFC 9449 §5.1 `dpop_signing_alg_values_supported`):
/// asymmetric signatures only, never `none` or an HMAC (§4.3 item 5).
pub const SIGNING_ALGS: [&str; 3] = ["ES256", "PS256", "RS256"];

/// Longest `DPoP` header value accepted, bytes: an ES256 proof is about 600, an RS256 proof
/// with a 4096-bit key about 2,600.
pub const MAX_PROOF_LEN: usize = 4096;

/// Longest `jti`, `nonce` and `ath` accepted, characters.
const MAX_CLAIM_LEN: usize = 256;

/// Longest `htu` accepted, characters.
const MAX_HTU_LEN: usize = 2048;

/// Longest `htm` accepted (an HTTP method token).
const MAX_HTM_LEN: usize = 32;

/// JWK members that carry private key material (RFC 7518 §6.2.2, §6.3.2, §6.4.1): a proof's
/// `jwk` must contain none of them (RFC 9449 §4.2).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Why a proof is refused: the `error_description` of `invalid_dpop_proof`.
pub type Refusal = Cow<'static, str>;

/// A proof whose form and signature are valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedProof {
    /// The RFC 7638 SHA-256 thumbprint of the proof's `jwk` (the `cnf.jkt` it binds to).
    pub jkt: String,
    pub jti: String,
    pub htm: String,
    pub htu: String,
    /// `iat`, whole seconds (a fractional NumericDate is truncated).
    pub iat: i64,
    pub nonce: Option<String>,
    pub ath: Option<String>,
}

/// Reads one proof and verifies its signature with the key it carries.
pub fn read(proof: &str) -> Result<SignedProof, Refusal> {
    if proof.len() > MAX_PROOF_LEN {
        return Err(format!("the DPoP proof is longer than {MAX_PROOF_LEN} bytes").into());
    }
    let mut parts = proof.split('.');
    let (Some(h), Some(c), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err("the DPoP proof is not a compact JWS of three base64url parts".into());
    };
    let header = json_object(h).ok_or("the DPoP proof's header is not base64url-encoded JSON object")?;
    let claims = json_object(c).ok_or("the DPoP proof's payload is not a base64url-encoded JSON object")?;
    let typ = header.get("typ").and_then(Value::as_str);
    if !typ.is_some_and(|t| t.eq_ignore_ascii_case("dpop+jwt")) {
        return Err("the DPoP proof's typ header must be dpop+jwt (RFC 9449 §4.2)".into());
    }
    if header.contains_key("crit") {
        return Err("the DPoP proof names critical header parameters (crit) that are not supported".into());
    }
    let alg = algorithm(header.get("alg"))?;
    let jwk = header.get("jwk").and_then(Value::as_object).ok_or("the DPoP proof has no jwk header (RFC 9449 §4.2)")?;
    let (key, jkt) = public_key(jwk, alg)?;
    let signed = &proof[..h.len() + 1 + c.len()];
    if !jsonwebtoken::crypto::verify(s, signed.as_bytes(), &key, alg).unwrap_or(false) {
        return Err("the DPoP proof's signature does not verify with its jwk".into());
    }
    Ok(SignedProof {
        jkt,
        jti: text_claim(&claims, "jti", MAX_CLAIM_LEN)?.ok_or_else(|| missing("jti"))?,
        htm: text_claim(&claims, "htm", MAX_HTM_LEN)?.ok_or_else(|| missing("htm"))?,
        htu: text_claim(&claims, "htu", MAX_HTU_LEN)?.ok_or_else(|| missing("htu"))?,
        iat: numeric_date(claims.get("iat"))?,
        nonce: text_claim(&claims, "nonce", MAX_CLAIM_LEN)?,
        ath: text_claim(&claims, "ath", MAX_CLAIM_LEN)?,
    })
}

fn json_object(part: &str) -> Option<Map<String, Value>> {
    serde_json::from_slice(&b64url_decode(part)?).ok()
}

fn missing(claim: &str) -> Refusal {
    format!("the DPoP proof has no {claim} claim (RFC 9449 §4.2)").into()
}

/// A string claim of 1 to `max` characters, or absent.
fn text_claim(claims: &Map<String, Value>, name: &str, max: usize) -> Result<Option<String>, Refusal> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= max => Ok(Some(s.clone())),
        Some(_) => Err(format!("the DPoP proof's {name} claim must be a string of 1 to {max} characters").into()),
    }
}

/// `iat`: a NumericDate (RFC 7519 §2), whole or fractional seconds.
fn numeric_date(v: Option<&Value>) -> Result<i64, Refusal> {
    let v = v.ok_or_else(|| missing("iat"))?;
    if let Some(i) = v.as_i64() {
        return Ok(i);
    }
    match v.as_f64() {
        Some(f) if f.is_finite() && f.abs() < 1e15 => Ok(f.trunc() as i64),
        _ => Err("the DPoP proof's iat claim must be a NumericDate".into()),
    }
}

/// RFC 9449 §4.3 item 5: a supported asymmetric algorithm.
fn algorithm(alg: Option<&Value>) -> Result<Algorithm, Refusal> {
    match alg.and_then(Value::as_str) {
        Some("ES256") => Ok(Algorithm::ES256),
        Some("RS256") => Ok(Algorithm::RS256),
        Some("PS256") => Ok(Algorithm::PS256),
        Some(a) if a.eq_ignore_ascii_case("none") => {
            Err("the DPoP proof must be signed: alg none is refused (RFC 9449 §4.3)".into())
        }
        Some(a) if a.starts_with("HS") => {
            Err("the DPoP proof must use an asymmetric algorithm: HMAC is refused (RFC 9449 §4.3)".into())
        }
        Some(_) => Err(format!("the DPoP proof's alg is not supported; use one of {}", SIGNING_ALGS.join(", ")).into()),
        None => Err("the DPoP proof has no alg header".into()),
    }
}

/// The proof's public key and its RFC 7638 thumbprint. The key type must fit `alg` (P-256 for
/// ES256, RSA of 2048 to 4096 bits for RS256 and PS256), and no private member may be present.
fn public_key(jwk: &Map<String, Value>, alg: Algorithm) -> Result<(DecodingKey, String), Refusal> {
    if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
        return Err("the DPoP proof's jwk contains a private key (RFC 9449 §4.2)".into());
    }
    let member = |name: &str| jwk.get(name).and_then(Value::as_str);
    let decoded = |name: &str| member(name).and_then(b64url_decode);
    let bad =
        |why: &'static str| -> Refusal { format!("the DPoP proof's jwk is not a valid public key: {why}").into() };
    match alg {
        Algorithm::ES256 => {
            if member("kty") != Some("EC") || member("crv") != Some("P-256") {
                return Err(bad("ES256 needs kty EC and crv P-256"));
            }
            let (Some(x), Some(y)) = (member("x"), member("y")) else {
                return Err(bad("x and y are required"));
            };
            if decoded("x").is_none_or(|b| b.len() != 32) || decoded("y").is_none_or(|b| b.len() != 32) {
                return Err(bad("x and y must be 32 bytes, base64url"));
            }
            let key = DecodingKey::from_ec_components(x, y).map_err(|_| bad("x and y"))?;
            Ok((key, thumbprint(&format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#))))
        }
        _ => {
            if member("kty") != Some("RSA") {
                return Err(bad("RS256 and PS256 need kty RSA"));
            }
            let (Some(n), Some(e)) = (member("n"), member("e")) else {
                return Err(bad("n and e are required"));
            };
            let n_ok = decoded("n").is_some_and(|b| (256..=512).contains(&b.len()) && b[0] != 0);
            if !n_ok || decoded("e").is_none_or(|b| b.is_empty() || b.len() > 8) {
                return Err(bad("n must be a 2048- to 4096-bit modulus and e an exponent, base64url"));
            }
            let key = DecodingKey::from_rsa_components(n, e).map_err(|_| bad("n and e"))?;
            Ok((key, thumbprint(&format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#))))
        }
    }
}

/// RFC 7638 §3: base64url(SHA-256) of the required members, in lexicographic order, without
/// whitespace.
fn thumbprint(canonical: &str) -> String {
    b64url(Sha256::digest(canonical.as_bytes()))
}

/// The `ath` of an access token (RFC 9449 §4.2): base64url(SHA-256(ASCII token)).
pub fn access_token_hash(token: &str) -> String {
    b64url(Sha256::digest(token.as_bytes()))
}

/// RFC 9449 §4.3 item 9: the URI as compared, without query and fragment, after syntax- and
/// scheme-based normalisation (RFC 3986 §6.2.2, §6.2.3): scheme and host in lower case, the
/// default port dropped, an empty path as `/`, dot segments removed, percent-encodings in upper
/// case and those of unreserved characters decoded. `None` unless an absolute http(s) URI
/// without user information whose path has no `%` outside a percent-encoding (RFC 3986 §2.1;
/// such a `%` could pair with a decoded character into a new encoding, found by
/// `fuzz/dpop_proof`: the normalised form must stay normal).
pub fn normalize_htu(raw: &str) -> Option<String> {
    let u = url::Url::parse(raw).ok()?;
    if !matches!(u.scheme(), "http" | "https") || !u.username().is_empty() || u.password().is_some() {
        return None;
    }
    let host = u.host_str()?;
    let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
    Some(format!("{}://{host}{port}{}", u.scheme(), normalize_percent(u.path())?))
}

/// Upper-case hex in percent-encodings; unreserved characters (RFC 3986 §2.3) decoded; `None`
/// for a `%` that does not start a percent-encoding.
fn normalize_percent(path: &str) -> Option<String> {
    let b = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (b.get(i + 1).and_then(|c| hex(*c)), b.get(i + 2).and_then(|c| hex(*c)))
        {
            let c = (h * 16 + l) as u8;
            if c.is_ascii_alphanumeric() || b"-._~".contains(&c) {
                out.push(c as char);
            } else {
                out.push_str(&format!("%{c:02X}"));
            }
            i += 3;
        } else if b[i] == b'%' {
            return None;
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn htu_is_normalised_before_comparison() {
        let n = |s: &str| normalize_htu(s);
        let token = Some("https://auth.example.com/token".to_owned());
        for same in [
            "https://auth.example.com/token",
            "HTTPS://Auth.Example.COM/token",
            "https://auth.example.com:443/token",
            "https://auth.example.com/token?x=1#frag",
            "https://auth.example.com/a/../token",
            "https://auth.example.com/%74oken",
        ] {
            assert_eq!(n(same), token, "{same}");
        }
        assert_eq!(n("https://auth.example.com"), Some("https://auth.example.com/".into()));
        assert_eq!(n("https://auth.example.com/a%2fb"), Some("https://auth.example.com/a%2Fb".into()));
        assert_eq!(n("http://localhost:8080/token"), Some("http://localhost:8080/token".into()));
        for other in
            ["https://auth.example.com/Token", "https://auth.example.com:8443/token", "http://auth.example.com/token"]
        {
            assert_ne!(n(other), token, "{other}");
        }
        for refused in ["/token", "ftp://auth.example.com/token", "https://user:pw@auth.example.com/token", ""] {
            assert_eq!(n(refused), None, "{refused}");
        }
        // A `%` that starts no percent-encoding (RFC 3986 §2.1): refused, not kept, since
        // `%%66` would normalise to `%f`+`6`, a new encoding (found by fuzz/dpop_proof).
        for stray in ["https://auth.example.com/%%666", "https://auth.example.com/a%zz", "https://auth.example.com/a%"]
        {
            assert_eq!(n(stray), None, "{stray}");
        }
    }

    fn b64json(v: serde_json::Value) -> String {
        b64url(v.to_string())
    }

    /// An RS256 or PS256 proof from a fresh 2048-bit key (aws-lc), verified and thumbprinted.
    #[test]
    fn rsa_proofs_verify() {
        use aws_lc_rs::rsa::{KeyPair, KeySize};
        use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256, RSA_PSS_SHA256};
        let key = KeyPair::generate(KeySize::Rsa2048).unwrap();
        let public = key.public_key();
        let (n, e) = (
            b64url(public.modulus().big_endian_without_leading_zero()),
            b64url(public.exponent().big_endian_without_leading_zero()),
        );
        for (alg, padding) in [("RS256", &RSA_PKCS1_SHA256), ("PS256", &RSA_PSS_SHA256)] {
            let header =
                b64json(serde_json::json!({"typ": "dpop+jwt", "alg": alg, "jwk": {"kty": "RSA", "n": n, "e": e}}));
            let claims =
                b64json(serde_json::json!({"jti": "j", "htm": "POST", "htu": "https://a.example/token", "iat": 1}));
            let input = format!("{header}.{claims}");
            let mut sig = vec![0; key.public_modulus_len()];
            key.sign(padding, &aws_lc_rs::rand::SystemRandom::new(), input.as_bytes(), &mut sig).unwrap();
            let p = read(&format!("{input}.{}", b64url(&sig))).unwrap();
            assert_eq!(p.jkt, thumbprint(&format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#)));
            assert_eq!((p.htm.as_str(), p.iat), ("POST", 1));
            // The same signature under the other algorithm does not verify.
            let other = if alg == "RS256" { "PS256" } else { "RS256" };
            let swapped =
                b64json(serde_json::json!({"typ": "dpop+jwt", "alg": other, "jwk": {"kty": "RSA", "n": n, "e": e}}));
            assert!(read(&format!("{swapped}.{claims}.{}", b64url(&sig))).is_err());
        }
    }

    /// The RFC 7638 §3.1 example thumbprint.
    #[test]
    fn thumbprint_matches_rfc_7638() {
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        assert_eq!(
            thumbprint(&format!(r#"{{"e":"AQAB","kty":"RSA","n":"{n}"}}"#)),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }
}
