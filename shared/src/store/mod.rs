//! Storage: narrow traits by capability (DESIGN.md "Storage"), implemented by the DynamoDB and
//! embedded (SQLite) backends. `conformance` holds the contract as tests run on every backend.
//!
//! Rules every backend keeps:
//! - creation is conditional: an existing client, resource server, token id or key is never
//!   overwritten (`StoreError::Conflict`);
//! - expired tokens are filtered on read (DynamoDB's TTL deletes up to two days late);
//! - listings and counts exclude expired, revoked and rotated tokens and are ordered by issue
//!   time, then id, so offsets are stable;
//! - single use is a conditional write or a transaction, never read-then-write: code
//!   redemption, refresh rotation, pending-request consumption.
pub mod conformance;
pub mod dynamo;
pub mod embedded;

use async_trait::async_trait;

use crate::model::{
    AuthorizationCode, Client, Consent, FailureCounter, PendingAuthorization, ResourceServer, StoredSigningKey,
    TokenKind, TokenRecord, User,
};

pub use dynamo::DynamoStore;
pub use embedded::EmbeddedStore;

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A conditional write found the item already there.
    #[error("the item exists already")]
    Conflict,
    /// The backend is unreachable, throttled or timed out: retry later. Nothing was written.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Anything else (a bug, a corrupt item, a permissions error).
    #[error("store error: {0}")]
    Backend(String),
}

/// Result of a store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// Which tokens a listing or count selects. At least one of `client_id` / `end_user` is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenQuery {
    pub kind: TokenKind,
    pub client_id: Option<String>,
    pub end_user: Option<String>,
}

/// Registered clients.
#[async_trait]
pub trait ClientStore: Send + Sync {
    /// Creates a client; `Conflict` if the id exists.
    async fn create_client(&self, client: &Client) -> StoreResult<()>;
    /// Reads a client.
    async fn get_client(&self, client_id: &str) -> StoreResult<Option<Client>>;
    /// Deletes a client; `false` if there was none.
    async fn delete_client(&self, client_id: &str) -> StoreResult<bool>;
}

/// Resource servers (audiences and their scopes).
#[async_trait]
pub trait ResourceServerStore: Send + Sync {
    /// Creates a resource server; `Conflict` if the identifier exists.
    async fn create_resource_server(&self, rs: &ResourceServer) -> StoreResult<()>;
    /// Reads a resource server by identifier.
    async fn get_resource_server(&self, identifier: &str) -> StoreResult<Option<ResourceServer>>;
    /// Every resource server, ordered by identifier.
    async fn list_resource_servers(&self) -> StoreResult<Vec<ResourceServer>>;
}

/// Issued tokens' records.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Stores a new token record; `Conflict` if the id exists.
    async fn put_token(&self, token: &TokenRecord) -> StoreResult<()>;
    /// Reads a token record; `None` if unknown or expired at `now` (revoked ones are returned).
    async fn get_token(&self, id: &str, now: i64) -> StoreResult<Option<TokenRecord>>;
    /// Marks a token revoked at `at`; `true` if this call revoked it, `false` if it was unknown
    /// or revoked already. Conditional: never creates a record.
    async fn revoke_token(&self, id: &str, at: i64) -> StoreResult<bool>;
    /// Refresh rotation (RFC 9700 §4.14.2), atomically: marks `old_id` rotated at `now` with
    /// `successor_response`, and stores `new_tokens` (the successor refresh token and the new
    /// access token). `false` and nothing written when `old_id` is unknown, expired, revoked or
    /// rotated already.
    async fn rotate_refresh(
        &self,
        old_id: &str,
        now: i64,
        successor_response: &str,
        new_tokens: &[TokenRecord],
    ) -> StoreResult<bool>;
    /// Every active (unexpired, unrevoked, unrotated) token of a family, any kind.
    async fn list_family(&self, family: &str, now: i64) -> StoreResult<Vec<TokenRecord>>;
    /// Active tokens matching `q` at `now`, ordered by issue time then id, from `offset`.
    async fn list_tokens(&self, q: &TokenQuery, now: i64, offset: usize, limit: usize)
    -> StoreResult<Vec<TokenRecord>>;
    /// How many active tokens match `q` at `now`.
    async fn count_tokens(&self, q: &TokenQuery, now: i64) -> StoreResult<u64>;
}

/// The tenant's key ring (kms and sealed signers).
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Stores a key; `Conflict` if its generation (or kid) exists.
    async fn put_signing_key(&self, key: &StoredSigningKey) -> StoreResult<()>;
    /// Replaces the stored key of the same generation and kid (retiring it); `false` if there
    /// is none.
    async fn replace_signing_key(&self, key: &StoredSigningKey) -> StoreResult<bool>;
    /// Every stored key, by generation.
    async fn list_signing_keys(&self) -> StoreResult<Vec<StoredSigningKey>>;
}

/// Resource owners.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Creates a user; `Conflict` if the username exists.
    async fn create_user(&self, user: &User) -> StoreResult<()>;
    /// Reads a user.
    async fn get_user(&self, username: &str) -> StoreResult<Option<User>>;
    /// Replaces an existing user; `false` (nothing written) if there is none.
    async fn update_user(&self, user: &User) -> StoreResult<bool>;
    /// Deletes a user; `false` if there was none. Consents are deleted by the caller.
    async fn delete_user(&self, username: &str) -> StoreResult<bool>;
}

/// Persisted consents, per user and client.
#[async_trait]
pub trait ConsentStore: Send + Sync {
    /// Creates or replaces the consent of `username` for `client_id`.
    async fn put_consent(&self, consent: &Consent) -> StoreResult<()>;
    /// Reads one consent.
    async fn get_consent(&self, username: &str, client_id: &str) -> StoreResult<Option<Consent>>;
    /// A user's consents, ordered by client id.
    async fn list_consents(&self, username: &str) -> StoreResult<Vec<Consent>>;
    /// Deletes one consent; `false` if there was none.
    async fn delete_consent(&self, username: &str, client_id: &str) -> StoreResult<bool>;
}

/// Sign-in failure counters for lockout, updated atomically, forgotten after `expires_at`.
#[async_trait]
pub trait CounterStore: Send + Sync {
    /// The live counter of `key` at `now` (`None` when absent or expired).
    async fn get_counter(&self, key: &str, now: i64) -> StoreResult<Option<FailureCounter>>;
    /// Atomically adds one failure: to the live counter, or to a new one that expires at
    /// `now + window` (an expired counter starts over). Returns the counter after the change.
    async fn increment_counter(&self, key: &str, now: i64, window: i64) -> StoreResult<FailureCounter>;
    /// Locks `key` until `until` (the counter lives at least that long; its count is kept, or is
    /// 0 when there was no counter).
    async fn lock_counter(&self, key: &str, until: i64) -> StoreResult<()>;
    /// Forgets the counter (a successful sign-in).
    async fn clear_counter(&self, key: &str) -> StoreResult<()>;
}

/// The authorization-code flow's state: pending requests and codes.
#[async_trait]
pub trait AuthorizationStore: Send + Sync {
    /// Stores a pending request; `Conflict` if the id exists.
    async fn put_pending(&self, p: &PendingAuthorization) -> StoreResult<()>;
    /// Reads a pending request; `None` when unknown or expired at `now`.
    async fn get_pending(&self, id: &str, now: i64) -> StoreResult<Option<PendingAuthorization>>;
    /// Replaces an existing pending request (e.g. after sign-in); `false` if it is gone.
    async fn update_pending(&self, p: &PendingAuthorization) -> StoreResult<bool>;
    /// Deletes a pending request; `true` only for the one call that deleted it (single use).
    async fn delete_pending(&self, id: &str) -> StoreResult<bool>;
    /// Stores a new code; `Conflict` if the id exists.
    async fn put_code(&self, code: &AuthorizationCode) -> StoreResult<()>;
    /// Reads a code, consumed or not; `None` when unknown or expired at `now`.
    async fn get_code(&self, id: &str, now: i64) -> StoreResult<Option<AuthorizationCode>>;
    /// Redeems a code exactly once, atomically with storing the tokens issued for it: `true`
    /// when this call consumed it; `false`, with nothing written, when it was consumed already,
    /// expired at `now` or unknown.
    async fn redeem_code(&self, id: &str, now: i64, tokens: &[TokenRecord]) -> StoreResult<bool>;
}

/// Everything a tenant stores. Functions depend on the narrow traits they use.
pub trait Store:
    ClientStore + ResourceServerStore + TokenStore + KeyStore + UserStore + ConsentStore + CounterStore + AuthorizationStore
{
}
impl<T> Store for T where
    T: ClientStore
        + ResourceServerStore
        + TokenStore
        + KeyStore
        + UserStore
        + ConsentStore
        + CounterStore
        + AuthorizationStore
{
}
