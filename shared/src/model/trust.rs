//! Keys a client registers for JWT assertions (RFC 7523): its own JWK Set for `private_key_jwt`
//! client authentication (RFC 7591 §2 `jwks`, RFC 7523 §2.2) and the issuers whose JWT bearer
//! assertions it may exchange for access tokens (RFC 7523 §2.1, §3 item 1). Keys are inline:
//! Gatehouse never fetches a `jwks_uri` (no outbound calls from the Lambda functions).
//! `crate::assertion::registration` validates them; these are the stored, normalized forms.
use serde::{Deserialize, Serialize};

use crate::keys::PublicJwk;

/// A JWK Set (RFC 7517 §5) of public signing keys: each has a unique `kid` and an `alg` of
/// `ES256` (EC P-256) or `RS256` (RSA, 2048 to 4096 bits), `use` is `sig`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct JwkSet {
    pub keys: Vec<PublicJwk>,
}

impl JwkSet {
    /// The key a JWS header selects (RFC 7515 §4.1.4): by `kid`, or, without one, the only key.
    pub fn select(&self, kid: Option<&str>) -> Option<&PublicJwk> {
        match kid {
            Some(kid) => self.keys.iter().find(|k| k.kid == kid),
            None if self.keys.len() == 1 => self.keys.first(),
            None => None,
        }
    }
}

/// An issuer of JWT bearer assertions a client trusts (RFC 7523 §3: the assertion's `iss`),
/// with the keys its assertions are signed with. A disabled issuer's assertions are refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustedIssuer {
    pub issuer: String,
    pub jwks: JwkSet,
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
}

fn enabled_by_default() -> bool {
    true
}
