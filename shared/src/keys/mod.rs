//! Signing keys (DESIGN.md "Keys and signing"): the `Signer` trait, its three implementations,
//! the published key set (RFC 7517 JWKS) and JWT access-token verification (RFC 9068 §4).
pub mod conformance;
mod jwks;
mod kms;
mod local;
mod ring;
mod sealed;

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;

pub use jwks::{AccessClaims, KeySet, MAX_TOKEN_LEN, PublicJwk, VerificationKey};
pub use local::LocalSigner;
pub use ring::{
    DEFAULT_ACTIVATION_DELAY, FORCED_RELOAD_INTERVAL, KeyRing, KeyStatus, KeyUse, RELOAD_INTERVAL, signing_record,
    superseded_at,
};

/// JWS algorithms Gatehouse signs with (RFC 7518 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    /// ECDSA P-256 with SHA-256.
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
}

impl Alg {
    /// The JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ES256 => "ES256",
            Self::RS256 => "RS256",
        }
    }
}

/// Why signing or key loading failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// KMS (or the key store) is unreachable or throttled: retry later.
    #[error("key service unavailable: {0}")]
    Unavailable(String),
    /// A misconfigured key, a corrupt stored key, or a KMS refusal.
    #[error("key error: {0}")]
    Invalid(String),
    /// A key-ring change that conflicts with the ring's state (a concurrent rotation, a KMS
    /// alias that still names a key of the ring).
    #[error("{0}")]
    Conflict(String),
}

impl From<KeyError> for crate::OAuthError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::Unavailable(_) => {
                tracing::warn!(error = %e, "signer unavailable");
                Self::TemporarilyUnavailable("the signing service is unavailable, retry shortly".into())
            }
            KeyError::Invalid(m) => Self::Server(m),
            KeyError::Conflict(m) => Self::Conflict(m.into()),
        }
    }
}

impl From<crate::store::StoreError> for KeyError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::Unavailable(m) => Self::Unavailable(m),
            other => Self::Invalid(other.to_string()),
        }
    }
}

/// One key that can sign now.
#[async_trait]
pub trait SigningKey: Send + Sync {
    /// Its `kid` (the RFC 7638 thumbprint of its public key).
    fn kid(&self) -> &str;
    /// Its JWS algorithm.
    fn alg(&self) -> Alg;
    /// The JWS signature (JOSE form: 64 bytes `r||s` for ES256) over `input`.
    async fn sign_input(&self, input: &[u8]) -> Result<Vec<u8>, KeyError>;
}

/// Signs JWTs with the tenant's current key and publishes the verification keys.
#[async_trait]
pub trait Signer: Send + Sync {
    /// The key that signs now. A verify-only signer (a function that never issues tokens)
    /// answers `Invalid`.
    fn current(&self) -> Result<Arc<dyn SigningKey>, KeyError>;
    /// The keys tokens may be verified with: the signing key, keys about to sign (published
    /// first) and older keys whose tokens may still be live (RFC 7517 key set).
    fn keys(&self) -> Arc<KeySet>;
    /// Keeps a key ring fresh: reloads it when [`RELOAD_INTERVAL`] has passed since the last
    /// load, or at once (at most every [`FORCED_RELOAD_INTERVAL`]) when `unknown_kid` names a
    /// key this instance has not loaded. Never fails: on an error the loaded keys stay in use.
    async fn refresh(&self, _now: i64, _unknown_kid: Option<&str>) {}
    /// The key ring behind this signer, for rotation (kms and sealed modes).
    fn ring(&self) -> Option<&KeyRing> {
        None
    }

    /// The `kid` of the key that signs now (empty for a verify-only signer).
    fn kid(&self) -> String {
        self.current().map(|k| k.kid().to_owned()).unwrap_or_default()
    }
    /// The algorithm of the key that signs now.
    fn alg(&self) -> Alg {
        self.current().map(|k| k.alg()).unwrap_or(Alg::ES256)
    }
    /// A signature by the key that signs now.
    async fn sign_input(&self, input: &[u8]) -> Result<Vec<u8>, KeyError> {
        self.current()?.sign_input(input).await
    }

    /// Signs `claims` as a compact JWS with header `{alg, typ, kid}` (RFC 7515 §7.1); header and
    /// signature always come from one key, even while a reload swaps the current key.
    async fn sign(&self, typ: &str, claims: &serde_json::Value) -> Result<String, KeyError> {
        #[derive(Serialize)]
        struct Header<'a> {
            alg: &'a str,
            typ: &'a str,
            kid: &'a str,
        }
        let key = self.current()?;
        let header = serde_json::to_vec(&Header { alg: key.alg().as_str(), typ, kid: key.kid() })
            .map_err(|e| KeyError::Invalid(e.to_string()))?;
        let payload = serde_json::to_vec(claims).map_err(|e| KeyError::Invalid(e.to_string()))?;
        let mut jws = format!("{}.{}", crate::crypto::b64url(header), crate::crypto::b64url(payload));
        let sig = key.sign_input(jws.as_bytes()).await?;
        jws.push('.');
        jws.push_str(&crate::crypto::b64url(sig));
        Ok(jws)
    }
}

/// Verifies one of this tenant's access tokens (RFC 9068 §4). The key ring is reloaded when
/// due ([`RELOAD_INTERVAL`]), and a token signed by a key this instance has not loaded yet (another instance picked up a rotation first) makes the signer
/// reload its key ring once, rate-limited, before the token is refused.
pub async fn verify_access_token(signer: &dyn Signer, token: &str, issuer: &str, now: i64) -> Option<AccessClaims> {
    verify_access_token_signature(signer, token, issuer, now).await.filter(|c| c.exp > now)
}

/// [`verify_access_token`] without the expiry check: the claims of one of this tenant's access
/// tokens, expired or not (validation reports `expired` apart from `invalid`). `now` only
/// decides when the key ring is due for a reload.
pub async fn verify_access_token_signature(
    signer: &dyn Signer,
    token: &str,
    issuer: &str,
    now: i64,
) -> Option<AccessClaims> {
    // The periodic reload also drops retired keys (a forced retirement after a compromise).
    signer.refresh(now, None).await;
    let keys = signer.keys();
    if let Some(claims) = keys.verify_access_token_signature(token, issuer) {
        return Some(claims);
    }
    if token.len() > jwks::MAX_TOKEN_LEN {
        return None;
    }
    let kid = jsonwebtoken::decode_header(token).ok()?.kid?;
    if kid.len() > 128 || keys.contains(&kid) {
        return None;
    }
    signer.refresh(now, Some(&kid)).await;
    signer.keys().verify_access_token_signature(token, issuer)
}

/// An ES256 key held in memory (local and sealed signers). Signing uses aws-lc (about 10x
/// faster than the pure-Rust `p256` crate, which keeps the key for export and its JWK).
pub(crate) struct EcKey {
    key: p256::ecdsa::SigningKey,
    fast: Option<aws_lc_rs::signature::EcdsaKeyPair>,
    pub(crate) jwk: PublicJwk,
}

impl EcKey {
    /// A new random P-256 key.
    pub(crate) fn generate() -> Self {
        loop {
            let bytes = crate::crypto::random_bytes::<32>();
            if let Ok(key) = p256::ecdsa::SigningKey::from_bytes(&bytes.into()) {
                return Self::from_key(key);
            }
        }
    }

    pub(crate) fn from_key(key: p256::ecdsa::SigningKey) -> Self {
        use p256::pkcs8::EncodePrivateKey;
        let jwk = PublicJwk::from_p256(key.verifying_key(), Alg::ES256);
        let fast = key.to_pkcs8_der().ok().and_then(|der| {
            let alg = &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
            aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(alg, der.as_bytes()).ok()
        });
        Self { key, fast, jwk }
    }

    /// From a PKCS#8 DER private key.
    pub(crate) fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        use p256::pkcs8::DecodePrivateKey;
        let key =
            p256::ecdsa::SigningKey::from_pkcs8_der(der).map_err(|e| KeyError::Invalid(format!("private key: {e}")))?;
        Ok(Self::from_key(key))
    }

    /// The PKCS#8 DER private key (zeroized on drop by the `pkcs8` crate).
    pub(crate) fn to_pkcs8_der(&self) -> Result<p256::pkcs8::SecretDocument, KeyError> {
        use p256::pkcs8::EncodePrivateKey;
        self.key.to_pkcs8_der().map_err(|e| KeyError::Invalid(e.to_string()))
    }

    /// The JOSE ES256 signature (64 bytes `r||s`, RFC 7518 §3.4).
    pub(crate) fn sign(&self, input: &[u8]) -> Vec<u8> {
        if let Some(pair) = &self.fast
            && let Ok(sig) = pair.sign(&aws_lc_rs::rand::SystemRandom::new(), input)
        {
            return sig.as_ref().to_vec();
        }
        use p256::ecdsa::signature::Signer as _;
        let sig: p256::ecdsa::Signature = self.key.sign(input);
        sig.to_bytes().to_vec()
    }
}

#[async_trait]
impl SigningKey for EcKey {
    fn kid(&self) -> &str {
        &self.jwk.kid
    }

    fn alg(&self) -> Alg {
        Alg::ES256
    }

    async fn sign_input(&self, input: &[u8]) -> Result<Vec<u8>, KeyError> {
        Ok(self.sign(input))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// aws-lc signs (the fast path is taken) and the signature verifies with the p256 public key.
    #[test]
    fn ec_keys_sign_with_aws_lc_in_jose_form() {
        use p256::ecdsa::signature::Verifier as _;
        let key = EcKey::generate();
        assert!(key.fast.is_some(), "aws-lc accepts the PKCS#8 key");
        let sig = key.sign(b"header.payload");
        assert_eq!(sig.len(), 64);
        let sig = p256::ecdsa::Signature::from_slice(&sig).unwrap();
        key.key.verifying_key().verify(b"header.payload", &sig).unwrap();
        let again = EcKey::from_pkcs8_der(key.to_pkcs8_der().unwrap().as_bytes()).unwrap();
        assert!(again.fast.is_some());
        assert_eq!(again.jwk, key.jwk);
    }
}
