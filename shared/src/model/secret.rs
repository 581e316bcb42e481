//! Secrets that never print (oauth2-rs style): `Debug` and `Display` show `[redacted]`.
use std::fmt;

/// A client secret in clear: exists only between generation and the 201 response, and between
/// parsing a request and hashing it.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecret(String);

impl ClientSecret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// A new server-generated secret with 256 bits of entropy (RFC 6749 §10.10).
    pub fn generate() -> Self {
        Self(crate::crypto::random_token())
    }

    /// The secret itself: call only to hash it or to show it once at creation.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The digest the store keeps.
    pub fn digest(&self) -> String {
        crate::crypto::digest(&self.0)
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret([redacted])")
    }
}

impl fmt::Display for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Any secret value (a bearer token, a cookie value) that `Debug` must never show; stored and
/// serialized as the value itself.
#[derive(Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Redacted<T>(pub T);

impl<T> fmt::Debug for Redacted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T> std::ops::Deref for Redacted<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl From<String> for Redacted<String> {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<&str> for Redacted<String> {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn never_prints() {
        let s = super::ClientSecret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "ClientSecret([redacted]) [redacted]");
        assert_eq!(format!("{:?}", Some(super::Redacted("hunter2"))), "Some([redacted])");
    }
}
