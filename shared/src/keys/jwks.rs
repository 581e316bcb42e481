//! Public keys as JWKs (RFC 7517), the JWKS document, RFC 7638 thumbprints as `kid`, and
//! verification of Gatehouse's own JWT access tokens (RFC 9068 §4).
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Alg, KeyError};
use crate::crypto::b64url;

/// A public key as published in the JWKS (RFC 7517 §4, RFC 7518 §6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicJwk {
    pub kty: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub crv: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub x: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub y: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub n: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub e: Option<String>,
    pub kid: String,
    pub alg: String,
    #[serde(rename = "use")]
    pub use_: String,
}

impl PublicJwk {
    /// An EC P-256 public key; `kid` is its RFC 7638 thumbprint.
    pub fn from_p256(key: &p256::ecdsa::VerifyingKey, alg: Alg) -> Self {
        let point = key.to_encoded_point(false);
        let (x, y) = (b64url(point.x().expect("uncompressed")), b64url(point.y().expect("uncompressed")));
        let kid = thumbprint(&format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#));
        Self {
            kty: "EC".into(),
            crv: Some("P-256".into()),
            x: Some(x),
            y: Some(y),
            n: None,
            e: None,
            kid,
            alg: alg.as_str().into(),
            use_: "sig".into(),
        }
    }

    /// An RSA public key from its big-endian modulus and exponent; `kid` is the thumbprint.
    pub fn from_rsa(modulus: &[u8], exponent: &[u8]) -> Self {
        let strip = |b: &[u8]| -> Vec<u8> { b.iter().skip_while(|x| **x == 0).copied().collect() };
        let (n, e) = (b64url(strip(modulus)), b64url(strip(exponent)));
        let kid = thumbprint(&format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#));
        Self {
            kty: "RSA".into(),
            crv: None,
            x: None,
            y: None,
            n: Some(n),
            e: Some(e),
            kid,
            alg: "RS256".into(),
            use_: "sig".into(),
        }
    }

    fn decoding_key(&self) -> Result<(Algorithm, DecodingKey), KeyError> {
        let bad = |e: jsonwebtoken::errors::Error| KeyError::Invalid(format!("public key {}: {e}", self.kid));
        match (self.kty.as_str(), self.alg.as_str(), &self.x, &self.y, &self.n, &self.e) {
            ("EC", "ES256", Some(x), Some(y), _, _) => {
                Ok((Algorithm::ES256, DecodingKey::from_ec_components(x, y).map_err(bad)?))
            }
            ("RSA", "RS256", _, _, Some(n), Some(e)) => {
                Ok((Algorithm::RS256, DecodingKey::from_rsa_components(n, e).map_err(bad)?))
            }
            _ => Err(KeyError::Invalid(format!("unsupported public key {}", self.kid))),
        }
    }
}

/// RFC 7638 §3: base64url(SHA-256(canonical JWK members in lexicographic order)).
fn thumbprint(canonical: &str) -> String {
    b64url(Sha256::digest(canonical.as_bytes()))
}

/// Longest access token Gatehouse parses, and so the longest it issues (`grants::sign_access_token`;
/// its own tokens are far shorter unless custom claims are large).
pub const MAX_TOKEN_LEN: usize = 8192;

/// One verification key: its JWK and the parsed key.
pub struct VerificationKey {
    pub jwk: PublicJwk,
    alg: Algorithm,
    key: DecodingKey,
}

/// The keys tokens may be verified with, parsed once (per cold start).
#[derive(Default)]
pub struct KeySet {
    keys: Vec<VerificationKey>,
    /// Tokens this set has verified: the token's SHA-256 → the issuer it was checked for and its
    /// claims. A resource server introspects the same token on every call it serves; the ECDSA
    /// verification (about 80 µs of CPU here) is then done once per token and warm instance.
    /// Only tokens that verified enter; a key-set change (rotation, retirement) makes a new set
    /// and so drops the cache; expiry and revocation are still checked on every call (by
    /// [`Self::verify_access_token`] and the token record). Cleared when full.
    verified: std::sync::Mutex<std::collections::HashMap<[u8; 32], (String, AccessClaims)>>,
}

/// Most tokens [`KeySet::verified`] remembers.
const VERIFIED_CACHE: usize = 4096;

/// The claims of a Gatehouse access token (RFC 9068 §2.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

impl KeySet {
    /// Parses every JWK once.
    pub fn new(jwks: impl IntoIterator<Item = PublicJwk>) -> Result<Self, KeyError> {
        let keys = jwks
            .into_iter()
            .map(|jwk| jwk.decoding_key().map(|(alg, key)| VerificationKey { jwk, alg, key }))
            .collect::<Result<_, _>>()?;
        Ok(Self { keys, verified: Default::default() })
    }

    /// The JWKS document (RFC 7517 §5).
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({ "keys": self.keys.iter().map(|k| &k.jwk).collect::<Vec<_>>() })
    }

    /// Whether a key with this `kid` is in the set.
    pub fn contains(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.jwk.kid == kid)
    }

    /// The published JWKs.
    pub fn jwk_list(&self) -> impl Iterator<Item = &PublicJwk> {
        self.keys.iter().map(|k| &k.jwk)
    }

    /// Verifies a Gatehouse access token (RFC 9068 §4): `typ` is `at+jwt`, the `kid` names one
    /// of our keys and its algorithm matches, the signature holds, `iss` is ours, and `exp`
    /// is after `now`. Returns `None` for anything else; the caller must still check the
    /// stored record (revocation).
    pub fn verify_access_token(&self, token: &str, issuer: &str, now: i64) -> Option<AccessClaims> {
        self.verify_access_token_signature(token, issuer).filter(|c| c.exp > now)
    }

    /// The checks of [`Self::verify_access_token`] except expiry: the claims of a token that is
    /// ours, expired or not (so validation can tell an expired token from a forged one).
    pub fn verify_access_token_signature(&self, token: &str, issuer: &str) -> Option<AccessClaims> {
        if token.len() > MAX_TOKEN_LEN {
            return None;
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let cached = |v: &Self| {
            let cache = v.verified.lock().unwrap_or_else(|p| p.into_inner());
            cache.get(&digest).filter(|(iss, _)| iss == issuer).map(|(_, c)| c.clone())
        };
        if let Some(claims) = cached(self) {
            return Some(claims);
        }
        let claims = self.verify_uncached(token, issuer)?;
        let mut cache = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= VERIFIED_CACHE {
            cache.clear();
        }
        cache.insert(digest, (issuer.to_owned(), claims.clone()));
        Some(claims)
    }

    fn verify_uncached(&self, token: &str, issuer: &str) -> Option<AccessClaims> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        if !header.typ.as_deref().is_some_and(|t| t.eq_ignore_ascii_case("at+jwt")) {
            return None;
        }
        let kid = header.kid?;
        let key = self.keys.iter().find(|k| k.jwk.kid == kid)?;
        if header.alg != key.alg {
            return None;
        }
        let mut v = Validation::new(key.alg);
        v.validate_exp = false; // checked below against our clock
        v.validate_aud = false; // any audience we issued is ours to introspect
        v.required_spec_claims = ["iss", "sub", "exp", "iat", "jti"].into_iter().map(String::from).collect();
        v.set_issuer(&[issuer]);
        Some(jsonwebtoken::decode::<AccessClaims>(token, &key.key, &v).ok()?.claims)
    }
}
