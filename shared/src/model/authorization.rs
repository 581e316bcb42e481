//! The authorization-code flow's server-side state (RFC 6749 §4.1): the pending request the
//! sign-in pages refer to by an opaque id, and issued authorization codes.
use serde::{Deserialize, Serialize};

use super::Scope;

/// An authorization request between `GET /authorize` and the code: kept server-side with a
/// short TTL; the pages' forms carry only its id and CSRF secret, and it answers only the
/// browser whose nonce (cookie) opened it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingAuthorization {
    /// Random, 256 bits; named by the pages' forms with the CSRF secret (`Debug` shows it
    /// redacted).
    pub id: crate::model::Redacted<String>,
    /// SHA-256 digest of the CSRF secret embedded in the pages.
    pub csrf_digest: String,
    /// SHA-256 digest of the nonce of the browser that opened the request (its cookie). Records
    /// written before it existed have none and match no browser: those sign-ins start again.
    /// (Empty is stored as absent, so that tests of an empty one cover those records.)
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub browser_digest: String,
    pub client_id: String,
    /// The redirect URI the code will be sent to (validated).
    pub redirect_uri: String,
    /// Whether `redirect_uri` was in the request (then the token request must repeat it).
    pub redirect_uri_in_request: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    pub scope: Scope,
    pub audience: String,
    /// RFC 7636 S256 challenge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_challenge: Option<String>,
    /// RFC 9449 §10: the JWK SHA-256 thumbprint (RFC 7638) of the DPoP key the client bound
    /// the code to (`dpop_jkt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_jkt: Option<String>,
    /// Set once the user signed in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// When the user signed in (a request of an earlier version has none: its creation time
    /// stands for it). A revocation of every token of the user after it ends this sign-in too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_in_at: Option<i64>,
    pub created_at: i64,
    pub expires_at: i64,
}

/// An issued authorization code, stored by `crypto::opaque_token_id` of the code: its time
/// prefix and SHA-256 digest, never the code (RFC 6749 §4.1.2, §10.5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthorizationCode {
    /// `crypto::opaque_token_id` of the code.
    pub id: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub redirect_uri_in_request: bool,
    pub username: String,
    pub scope: Scope,
    pub audience: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_challenge: Option<String>,
    /// RFC 9449 §10: the token request must carry a DPoP proof by the key of this thumbprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_jkt: Option<String>,
    /// The token family the code's tokens belong to: revoked whole on code replay
    /// (RFC 6749 §4.1.2, RFC 9700 §4.5).
    pub family: String,
    pub issued_at: i64,
    /// When its user signed in (codes of earlier versions have none: their issue time stands
    /// for it). A revocation of every token of the user made after the sign-in but before the
    /// code was issued covers the code too (a client's covers the codes issued until then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_in_at: Option<i64>,
    pub expires_at: i64,
    /// Set by the one successful redemption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumed_at: Option<i64>,
    /// The ids of the tokens the redemption issued, set with `consumed_at`: a replay revokes
    /// them by id, read with the code, where the family's listing may lag (a DynamoDB index).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub issued: Vec<String>,
}

impl AuthorizationCode {
    /// When its grant was made: the sign-in ([`Self::signed_in_at`]), or its issue.
    pub fn grant_time(&self) -> i64 {
        self.signed_in_at.unwrap_or(self.issued_at)
    }
}
