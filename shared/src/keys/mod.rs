//! Signing keys (DESIGN.md "Keys and signing"): the `Signer` trait, its three implementations,
//! the published key set (RFC 7517 JWKS) and JWT access-token verification (RFC 9068 §4).
pub mod conformance;
mod jwks;
mod kms;
mod local;
mod sealed;

use async_trait::async_trait;
use serde::Serialize;

pub use jwks::{AccessClaims, KeySet, PublicJwk, VerificationKey};
pub use kms::KmsSigner;
pub use local::LocalSigner;
pub use sealed::SealedSigner;

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
}

impl From<KeyError> for crate::OAuthError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::Unavailable(_) => {
                tracing::warn!(error = %e, "signer unavailable");
                Self::TemporarilyUnavailable("the signing service is unavailable, retry shortly".into())
            }
            KeyError::Invalid(m) => Self::Server(m),
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

/// Signs JWTs with the tenant's current key and publishes the verification keys.
#[async_trait]
pub trait Signer: Send + Sync {
    /// The `kid` of the key that signs now.
    fn kid(&self) -> &str;
    /// The algorithm of the key that signs now.
    fn alg(&self) -> Alg;
    /// The JWS signature (JOSE form: 64 bytes `r||s` for ES256) over `input`.
    async fn sign_input(&self, input: &[u8]) -> Result<Vec<u8>, KeyError>;
    /// The keys tokens may be verified with: the current key and still-published older ones.
    fn keys(&self) -> &KeySet;

    /// Signs `claims` as a compact JWS with header `{alg, typ, kid}` (RFC 7515 §7.1).
    async fn sign(&self, typ: &str, claims: &serde_json::Value) -> Result<String, KeyError> {
        #[derive(Serialize)]
        struct Header<'a> {
            alg: &'a str,
            typ: &'a str,
            kid: &'a str,
        }
        let header = serde_json::to_vec(&Header { alg: self.alg().as_str(), typ, kid: self.kid() })
            .map_err(|e| KeyError::Invalid(e.to_string()))?;
        let payload = serde_json::to_vec(claims).map_err(|e| KeyError::Invalid(e.to_string()))?;
        let mut jws = format!("{}.{}", crate::crypto::b64url(header), crate::crypto::b64url(payload));
        let sig = self.sign_input(jws.as_bytes()).await?;
        jws.push('.');
        jws.push_str(&crate::crypto::b64url(sig));
        Ok(jws)
    }
}

/// An ES256 key held in memory (local and sealed signers).
pub(crate) struct EcKey {
    key: p256::ecdsa::SigningKey,
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
        let jwk = PublicJwk::from_p256(key.verifying_key(), Alg::ES256);
        Self { key, jwk }
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

    pub(crate) fn sign(&self, input: &[u8]) -> Vec<u8> {
        use p256::ecdsa::signature::Signer as _;
        let sig: p256::ecdsa::Signature = self.key.sign(input);
        sig.to_bytes().to_vec()
    }
}
