//! Storage: narrow traits by capability (DESIGN.md "Storage"), implemented by the DynamoDB and
//! embedded (SQLite) backends. `conformance` holds the contract as tests run on every backend.
//!
//! Rules every backend keeps:
//! - creation is conditional: an existing client, resource server, token id or key is never
//!   overwritten (`StoreError::Conflict`);
//! - expired tokens are filtered on read (DynamoDB's TTL deletes up to two days late);
//! - listings and counts exclude expired and revoked tokens and are ordered by issue time, then
//!   id, so offsets are stable.
pub mod conformance;
pub mod dynamo;
pub mod embedded;

use async_trait::async_trait;

use crate::model::{Client, ResourceServer, StoredSigningKey, TokenKind, TokenRecord};

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
    /// Active tokens matching `q` at `now`, ordered by issue time then id, from `offset`.
    async fn list_tokens(&self, q: &TokenQuery, now: i64, offset: usize, limit: usize)
    -> StoreResult<Vec<TokenRecord>>;
    /// How many active tokens match `q` at `now`.
    async fn count_tokens(&self, q: &TokenQuery, now: i64) -> StoreResult<u64>;
}

/// Signing keys kept by the sealed signer.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Stores a key; `Conflict` if its generation (or kid) exists.
    async fn put_signing_key(&self, key: &StoredSigningKey) -> StoreResult<()>;
    /// Every stored key, by generation.
    async fn list_signing_keys(&self) -> StoreResult<Vec<StoredSigningKey>>;
}

/// Everything a tenant stores. Functions depend on the narrow traits they use.
pub trait Store: ClientStore + ResourceServerStore + TokenStore + KeyStore {}
impl<T: ClientStore + ResourceServerStore + TokenStore + KeyStore> Store for T {}
