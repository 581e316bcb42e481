//! KMS mode: every JWT signed by KMS `Sign` with an asymmetric key (ECC_NIST_P256 → ES256,
//! RSA_2048/3072/4096 → RS256), `MessageType=RAW`. ECDSA signatures come back DER-encoded and
//! are converted to the 64-byte JOSE form (RFC 7518 §3.4). The public key comes from
//! `GetPublicKey` when the key joins the tenant's key ring (`ring.rs`).
use async_trait::async_trait;
use aws_sdk_kms::Client as Kms;
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeyUsageType, MessageType, SigningAlgorithmSpec};

use super::{Alg, KeyError, PublicJwk, SigningKey};

/// A KMS asymmetric key that signs.
pub(crate) struct KmsKey {
    pub(crate) kms: Kms,
    /// The key's id or ARN (never an alias: an alias may move to another key).
    pub(crate) key_id: String,
    pub(crate) alg: Alg,
    pub(crate) kid: String,
}

/// Maps a KMS SDK error: throttling, timeouts and 5xx are retryable (`Unavailable`); a 5xx
/// whatever its body says (one without a known error code too).
pub(crate) fn classify<E: ProvideErrorMetadata + std::error::Error + 'static>(
    e: SdkError<E, aws_sdk_kms::config::http::HttpResponse>,
) -> KeyError {
    const RETRYABLE: &[&str] =
        &["ThrottlingException", "KMSInternalException", "DependencyTimeoutException", "KeyUnavailableException"];
    match &e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            KeyError::Unavailable(format!("kms: {}", aws_sdk_kms::error::DisplayErrorContext(&e)))
        }
        _ if e.raw_response().is_some_and(|r| r.status().is_server_error()) => {
            KeyError::Unavailable(format!("kms: {}", aws_sdk_kms::error::DisplayErrorContext(&e)))
        }
        _ => match e.code() {
            Some(c) if RETRYABLE.contains(&c) => KeyError::Unavailable(format!("kms: {c}")),
            code => KeyError::Invalid(format!("kms: {} {}", code.unwrap_or("unknown"), e.message().unwrap_or(""))),
        },
    }
}

/// The public half of a KMS key (or of the key an alias names): the key's ARN, algorithm and
/// JWK. Refuses keys that are not asymmetric signing keys Gatehouse supports.
pub(crate) async fn describe(kms: &Kms, key_id: &str) -> Result<(String, Alg, PublicJwk), KeyError> {
    let out = kms.get_public_key().key_id(key_id).send().await.map_err(classify)?;
    if out.key_usage != Some(KeyUsageType::SignVerify) {
        return Err(KeyError::Invalid(format!("KMS key {key_id} is not a SIGN_VERIFY key")));
    }
    let arn = out.key_id.clone().ok_or_else(|| KeyError::Invalid("GetPublicKey returned no key id".into()))?;
    let der = out.public_key.ok_or_else(|| KeyError::Invalid("GetPublicKey returned no key".into()))?;
    let (alg, jwk) = public_jwk(der.as_ref())?;
    Ok((arn, alg, jwk))
}

/// The algorithm and JWK of a SubjectPublicKeyInfo (the `GetPublicKey` result), decided by the
/// key's own algorithm identifier rather than the response's `KeySpec` field (which some KMS
/// implementations omit): P-256 → ES256, RSA (2048 bits or more) → RS256.
fn public_jwk(der: &[u8]) -> Result<(Alg, PublicJwk), KeyError> {
    use pkcs1::der::Decode;
    const EC: spki::ObjectIdentifier = spki::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
    const RSA: spki::ObjectIdentifier = spki::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
    let bad = |e: String| KeyError::Invalid(format!("KMS public key: {e}"));
    let spki = spki::SubjectPublicKeyInfoRef::from_der(der).map_err(|e| bad(e.to_string()))?;
    if spki.algorithm.oid == EC {
        use p256::pkcs8::DecodePublicKey;
        let pk = p256::ecdsa::VerifyingKey::from_public_key_der(der)
            .map_err(|e| bad(format!("{e} (only ECC_NIST_P256 is supported)")))?;
        return Ok((Alg::ES256, PublicJwk::from_p256(&pk, Alg::ES256)));
    }
    if spki.algorithm.oid != RSA {
        return Err(bad("unsupported key type (use ECC_NIST_P256 or RSA_2048)".into()));
    }
    let bits = spki.subject_public_key.as_bytes().ok_or_else(|| bad("unaligned bit string".into()))?;
    let rsa = pkcs1::RsaPublicKey::from_der(bits).map_err(|e| bad(e.to_string()))?;
    if rsa.modulus.as_bytes().len() < 256 {
        return Err(bad("RSA keys must have at least 2048 bits".into()));
    }
    Ok((Alg::RS256, PublicJwk::from_rsa(rsa.modulus.as_bytes(), rsa.public_exponent.as_bytes())))
}

#[async_trait]
impl SigningKey for KmsKey {
    fn kid(&self) -> &str {
        &self.kid
    }

    fn alg(&self) -> Alg {
        self.alg
    }

    async fn sign_input(&self, input: &[u8]) -> Result<Vec<u8>, KeyError> {
        let algorithm = match self.alg {
            Alg::ES256 => SigningAlgorithmSpec::EcdsaSha256,
            Alg::RS256 => SigningAlgorithmSpec::RsassaPkcs1V15Sha256,
        };
        let out = self
            .kms
            .sign()
            .key_id(&self.key_id)
            .message(Blob::new(input))
            .message_type(MessageType::Raw)
            .signing_algorithm(algorithm)
            .send()
            .await
            .map_err(classify)?;
        let sig = out.signature.ok_or_else(|| KeyError::Invalid("KMS Sign returned no signature".into()))?;
        match self.alg {
            Alg::ES256 => {
                let s = p256::ecdsa::Signature::from_der(sig.as_ref())
                    .map_err(|e| KeyError::Invalid(format!("KMS signature: {e}")))?;
                Ok(s.to_bytes().to_vec())
            }
            Alg::RS256 => Ok(sig.into_inner()),
        }
    }
}
