//! Random values, digests and constant-time comparison for secrets (DESIGN.md "Storage").
use base64::Engine;
use base64::alphabet::Alphabet;
use base64::engine::general_purpose::{GeneralPurpose, NO_PAD, URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// `n` bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("the operating system random number generator failed");
    b
}

/// A URL-safe random token with 256 bits of entropy (43 characters): client secrets, CSRF
/// tokens, and the random part of [`opaque_token`] (authorization codes, refresh tokens;
/// RFC 6749 §10.10).
pub fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// A shorter random identifier with 128 bits of entropy (22 characters): client ids, jti.
pub fn random_id() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<16>())
}

/// The 64 base64url characters in ASCII order: an encoding with this alphabet sorts (bytewise,
/// as SQLite's default collation compares text) in the order of the bytes it encodes.
const SORTABLE: GeneralPurpose = GeneralPurpose::new(
    &match Alphabet::new("-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz") {
        Ok(a) => a,
        Err(_) => panic!("the sortable alphabet is 64 distinct characters"),
    },
    NO_PAD,
);

/// An identifier for a record of the store's fastest-growing table, access-token ids (`jti`),
/// and for token families: 48 bits of the system clock in milliseconds, then 80 random bits,
/// as 22 base64url characters that sort by issue time.
///
/// With random ids every new token lands on another leaf page of the primary-key index, so a
/// group commit of n tokens wrote n index pages to the embedded store's WAL, and the
/// checkpoint wrote them again; ids that grow with time are appended to the same page. The id
/// is unique (80 random bits per millisecond), not secret: the signed token carries it and
/// `iat` already tells the issue time.
pub fn time_ordered_id() -> String {
    // 6 clock bytes are 8 characters: the 10 random bytes after them encode on their own.
    time_prefix() + &SORTABLE.encode(random_bytes::<10>())
}

/// The 48-bit system clock in milliseconds, as 8 [`SORTABLE`] characters.
fn time_prefix() -> String {
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    SORTABLE.encode(&ms.to_be_bytes()[2..])
}

/// The length of an [`opaque_token`]: an 8-character time prefix, then 43 random characters.
pub const OPAQUE_TOKEN_LEN: usize = 8 + 43;

/// A new refresh token or authorization code (RFC 6749 §10.10: 256 random bits): the issue
/// time in milliseconds as 8 characters that sort by time, then [`random_token`].
///
/// The store keeps it by [`opaque_token_id`], which starts with the same 8 characters: new
/// records sort by issue time in every index that orders by id (the primary key; the client
/// and end-user listings after the expiry, which for one lifetime grows with issue time too;
/// the family listing), so the embedded store appends them to the indexes' last leaves instead
/// of dirtying a random leaf of each per token. The prefix tells only the issue
/// time, which the token's holder knows; the 256 bits after it are the secret.
pub fn opaque_token() -> String {
    time_prefix() + &random_token()
}

/// The store's key of an opaque token (refresh token, authorization code): never the token
/// itself (DESIGN.md "Storage"). For an [`opaque_token`], its 8-character time prefix then the
/// [`digest`] of the whole token; for any other string (the 43-character tokens issued before
/// the prefix existed), its digest alone, so those tokens keep working until they expire.
pub fn opaque_token_id(token: &str) -> String {
    match token.get(..8) {
        Some(prefix) if token.len() == OPAQUE_TOKEN_LEN => prefix.to_owned() + &digest(token),
        _ => digest(token),
    }
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

    /// Time-ordered ids are 22 base64url characters, distinct, and sort as their clock did.
    #[test]
    fn time_ordered_ids_sort_by_time() {
        let first = time_ordered_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let mut later: Vec<String> = (0..1000).map(|_| time_ordered_id()).collect();
        assert!(
            later
                .iter()
                .all(|id| id.len() == 22 && id.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'))
        );
        assert!(later.iter().all(|id| *id > first), "{first} then {later:?}");
        later.sort();
        later.dedup();
        assert_eq!(later.len(), 1000);
        // The encoding preserves byte order: 0x00… encodes below 0xff….
        assert!(SORTABLE.encode([0u8; 16]) < SORTABLE.encode([0xffu8; 16]));
        assert_eq!(SORTABLE.encode([0u8; 3]), "----");
        assert_eq!(SORTABLE.encode([0xffu8; 3]), "zzzz");
    }

    /// Opaque tokens: 51 URL-safe characters, distinct; their store ids keep the time prefix
    /// (so they sort by issue time) and are not the token; a token without the prefix (issued
    /// before it existed) is kept by its digest alone.
    #[test]
    fn opaque_tokens_and_their_ids_sort_by_time() {
        let first = opaque_token();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let later = opaque_token();
        for t in [&first, &later] {
            assert_eq!(t.len(), OPAQUE_TOKEN_LEN);
            assert!(t.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'), "{t}");
        }
        assert_ne!(first[8..], later[8..]);
        let (a, b) = (opaque_token_id(&first), opaque_token_id(&later));
        assert!(a < b, "{a} then {b}");
        assert_eq!(a, format!("{}{}", &first[..8], digest(&first)));
        assert_ne!(opaque_token_id(&first), opaque_token_id(&(first[..50].to_owned() + "x")));
        // Earlier tokens (43 characters) and anything else: the digest alone.
        let old = random_token();
        assert_eq!(opaque_token_id(&old), digest(&old));
        assert_eq!(opaque_token_id("short"), digest("short"));
        // 51 bytes whose byte 8 falls inside a character: no prefix (and no panic).
        let split = "a".to_owned() + &"é".repeat(25);
        assert_eq!(opaque_token_id(&split), digest(&split));
    }

    #[test]
    fn digest_is_stable_and_compares() {
        assert_eq!(digest("abc"), digest("abc"));
        assert!(ct_eq(&digest("abc"), &digest("abc")));
        assert!(!ct_eq(&digest("abc"), &digest("abd")));
    }
}
