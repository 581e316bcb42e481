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
    /// Every grant the user made at or before this time, at every client, is revoked
    /// (`POST /admin/tokens/revoke-all` for the user: "sign out everywhere"): its codes and
    /// refresh tokens are refused when redeemed ([`crate::grants::active_user`], which reads
    /// the record anyway), and so is a sign-in still on its consent page, whatever the per-token
    /// sweep that follows misses (cut short, or a DynamoDB index that lags a write by a
    /// moment). Introspection reads no user record: a token the sweep missed is shown active
    /// there until it expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_revoked_at: Option<i64>,
    /// The same, for the user's tokens at one client (`revoke-all` for the user at a client, and
    /// a withdrawn consent): client id → time. It withdraws the user's consent there too: the
    /// revocation deletes it, and a consent given until then that an approval racing with it
    /// recorded again is ignored. An entry is dropped once every token it could cover has
    /// expired ([`Self::with_tokens_revoked`]), so the map stays small.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub client_tokens_revoked_at: std::collections::BTreeMap<String, i64>,
}

/// Longest a token, code or sign-in made at some time can stay usable after it: a refresh
/// token's longest lifetime plus a day, more than an access token's (a day at most), a code's
/// or a sign-in page's. (A rotation renews a refresh token's lifetime, but after a cutoff no
/// token granted before it is rotated any more, so what was issued until then has expired a
/// lifetime later.)
const REVOCATION_MEMORY: i64 = crate::config::MAX_REFRESH_TOKEN_TTL as i64 + 86_400;

impl User {
    /// Whether a code or token of this user at `client_id`, whose grant was made at
    /// `granted_at`, was revoked with all of the user's tokens (at every client, or at this
    /// one; one granted in the same second too).
    pub fn revoked_with_all(&self, client_id: &str, granted_at: i64) -> bool {
        let covers = |at: &i64| granted_at <= *at;
        self.tokens_revoked_at.as_ref().is_some_and(covers)
            || self.client_tokens_revoked_at.get(client_id).is_some_and(covers)
    }

    /// Whether `consent` (recorded for this user's name) is this user's and stands: one given
    /// before the user was created belongs to an earlier user of the same name (a deletion cut
    /// short), and one given at or before a revocation of the user's tokens at its client (a
    /// withdrawn consent records one) was withdrawn, even if an approval racing with the
    /// withdrawal recorded it again. ("Sign out everywhere" ends tokens, not consents.)
    pub fn consent_stands(&self, consent: &Consent) -> bool {
        consent.granted_at >= self.created_at
            && self.client_tokens_revoked_at.get(&consent.client_id).is_none_or(|at| consent.granted_at > *at)
    }

    /// This user with every token and code issued until `now` revoked: at `client_id`, or at
    /// every client (`None`). A cutoff never moves back. Cutoffs that no live token can predate
    /// any more are dropped.
    pub fn with_tokens_revoked(&self, client_id: Option<&str>, now: i64) -> Self {
        let mut next = self.clone();
        let forget_before = now.saturating_sub(REVOCATION_MEMORY);
        next.client_tokens_revoked_at.retain(|_, at| *at >= forget_before);
        if next.tokens_revoked_at.is_some_and(|at| at < forget_before) {
            next.tokens_revoked_at = None;
        }
        let slot = match client_id {
            Some(c) => next.client_tokens_revoked_at.entry(c.to_owned()).or_insert(now),
            None => next.tokens_revoked_at.get_or_insert(now),
        };
        *slot = (*slot).max(now);
        next
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoffs_cover_earlier_grants_never_move_back_and_are_forgotten_when_nothing_predates_them() {
        let mut u = crate::store::conformance::user("alice");
        assert!(!u.revoked_with_all("app", 100));
        u = u.with_tokens_revoked(Some("app"), 100);
        assert!(u.revoked_with_all("app", 100) && u.revoked_with_all("app", 99));
        assert!(!u.revoked_with_all("app", 101) && !u.revoked_with_all("other", 50));
        // A retry with an earlier clock (another instance) keeps the later cutoff.
        u = u.with_tokens_revoked(Some("app"), 90);
        assert_eq!(u.client_tokens_revoked_at.get("app"), Some(&100));
        u = u.with_tokens_revoked(None, 200);
        assert!(u.revoked_with_all("other", 200) && !u.revoked_with_all("other", 201));
        // Once no token issued before a cutoff can be alive, the cutoff goes with the next change.
        let later = 100 + REVOCATION_MEMORY + 1;
        u = u.with_tokens_revoked(Some("new"), later);
        assert_eq!(u.client_tokens_revoked_at.keys().collect::<Vec<_>>(), ["new"]);
        assert_eq!(u.tokens_revoked_at, Some(200));
        u = u.with_tokens_revoked(Some("new"), 200 + REVOCATION_MEMORY + 1);
        assert_eq!(u.tokens_revoked_at, None);
    }
}
