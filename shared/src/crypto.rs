//! Random values, digests and constant-time comparison for secrets (DESIGN.md "Storage").
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// `n` bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("the operating system random number generator failed");
    b
}

/// A URL-safe random token with 256 bits of entropy (43 characters): client secrets,
/// authorization codes, refresh tokens (RFC 6749 §10.10).
pub fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// A shorter random identifier with 128 bits of entropy (22 characters): client ids, jti.
pub fn random_id() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<16>())
}

/// SHA-256 digest of a high-entropy secret, base64url: what the store keeps instead of the secret.
pub fn digest(secret: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(secret.as_bytes()))
}

/// Constant-time equality of two digests (or any two strings of public length).
pub fn ct_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// base64url without padding (RFC 7515 §2).
pub fn b64url(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url without padding.
pub fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s).ok()
}

/// Warms the CSPRNGs once during init (TOOLCHAIN.md: aws-lc's first random call costs 40-66 ms
/// and must be paid in the Lambda init phase, not in the first request).
pub fn warm_up() {
    let _ = random_bytes::<16>();
    let mut b = [0u8; 16];
    let _ = aws_lc_rs::rand::fill(&mut b);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_and_distinct() {
        let a = random_token();
        assert_eq!(a.len(), 43);
        assert_ne!(a, random_token());
        assert_eq!(random_id().len(), 22);
    }

    #[test]
    fn digest_is_stable_and_compares() {
        assert_eq!(digest("abc"), digest("abc"));
        assert!(ct_eq(&digest("abc"), &digest("abc")));
        assert!(!ct_eq(&digest("abc"), &digest("abd")));
    }
}
