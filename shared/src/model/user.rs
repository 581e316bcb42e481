//! Resource owners (end users), their consents and sign-in failure counters.
use serde::{Deserialize, Serialize};

use super::Scope;

/// An end user who can sign in (OAM seed: resource owner). Its groups are memberships
/// ([`crate::store::GroupStore`]), not part of the record: a `groups` member left in an item
/// written by an older version is ignored when read and dropped at the next update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub username: String,
    /// Argon2id PHC string (`$argon2id$v=19$...`). Never leaves the server.
    pub password_hash: String,
    /// Profile attributes (used for dynamic claims).
    #[serde(default)]
    pub attributes: serde_json::Map<String, serde_json::Value>,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
    /// Counts the record's updates, for optimistic concurrency ([`crate::store::UserStore::update_user`]);
    /// records written before versions existed are version 0.
    #[serde(default)]
    pub version: u64,
}

/// A persisted consent: `username` approved scopes for `client_id` (OAM seed: consent
/// management). A later request for the same or fewer scopes of the same resource skips the
/// consent page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Consent {
    pub username: String,
    pub client_id: String,
    /// Every scope approved, for any resource.
    pub scope: Scope,
    /// The scopes approved for each resource (the audience of the tokens). A scope name means
    /// something only at the resource server that defines it, so an approval for one resource
    /// never covers another that uses the same name (RFC 8707 §2; RFC 9700 §2.3, least
    /// privilege). A consent recorded before resources were kept has none: it covers nothing,
    /// and the user is asked once more.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub resources: std::collections::BTreeMap<String, Scope>,
    pub granted_at: i64,
}

/// Failed sign-ins for one key (a username) within a window; a lock once the threshold is hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureCounter {
    pub count: u32,
    /// The counter (and any lock) is forgotten after this time.
    pub expires_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked_until: Option<i64>,
}

impl FailureCounter {
    /// Whether sign-in is refused at `now`.
    pub fn is_locked(&self, now: i64) -> bool {
        self.locked_until.is_some_and(|t| t > now)
    }
}
