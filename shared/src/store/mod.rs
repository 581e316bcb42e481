//! Storage: narrow traits by capability (DESIGN.md "Storage"), implemented by the DynamoDB and
//! embedded (SQLite) backends. `conformance` holds the contract as tests run on every backend.
//!
//! Rules every backend keeps:
//! - creation is conditional: an existing client, resource server, token id or key is never
//!   overwritten (`StoreError::Conflict`);
//! - expired tokens are filtered on read (DynamoDB's TTL deletes up to two days late);
//! - listings and counts exclude expired, revoked and rotated tokens and are ordered by expiry,
//!   then id ([`token_sort_key`]), so offsets and cursors are stable;
//! - single use is a conditional write or a transaction, never read-then-write: code
//!   redemption, refresh rotation, pending-request consumption.
pub mod conformance;
pub mod dynamo;
/// SQLite: the local server's store. Left out of the Lambda functions (feature `embedded`).
#[cfg(feature = "embedded")]
pub mod embedded;

use async_trait::async_trait;

use crate::model::{
    AuthorizationCode, Client, Consent, FailureCounter, Group, PendingAuthorization, ResourceServer, StoredSigningKey,
    TokenKind, TokenRecord, User,
};

pub use dynamo::DynamoStore;
#[cfg(feature = "embedded")]
pub use embedded::EmbeddedStore;

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A conditional write found the item already there.
    #[error("the item exists already")]
    Conflict,
    /// The backend is unreachable, throttled or timed out: retry later. Unreachable or
    /// throttled, nothing was written. After a timeout or a lost reply the write may have
    /// happened, and the SDK's own retry meets it: transactions (and the deletions that answer
    /// whether they deleted) carry an idempotency token, and conditional puts and updates
    /// recognise their own earlier attempt by its `wid` (DynamoDB's `put_once`, `update_once`),
    /// so the retry answers as the first attempt would have (a revocation `true`, a counter's
    /// increment counted once, a client's versioned update no conflict with itself). Writes
    /// without a condition (or whose condition the retry meets again) are simply repeated.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Anything else (a bug, a corrupt item, a permissions error).
    #[error("store error: {0}")]
    Backend(String),
}

/// Creates `dir` (and its missing parents) readable by its owner only (0700 on Unix): the local
/// server's data directory holds the database (password hashes, the DPoP nonce key, pending
/// sign-ins) and the admin token. A directory that exists keeps its mode.
pub fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

/// Creates `path` holding `bytes`, readable by its owner only (0600 on Unix), whole or not at
/// all, and never over a file that exists: the bytes go to a temporary file in the same
/// directory, synced, which is then linked at `path` (no-clobber) and the directory synced, so
/// a process that reads `path` never sees it partly written. `Ok(false)` when `path` existed
/// (another process won a race to create it: its file stands). On a filesystem without hard
/// links, `path` is created exclusively and written in place: a reader may then find it empty
/// for a moment (readers here read again), and a crash mid-write leaves it short.
pub fn create_private_file(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<bool> {
    use std::io::ErrorKind;
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    let tmp = temporary_in(dir);
    write_private(&tmp, bytes)?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    let created = match linked {
        Ok(()) => true,
        Err(e) if e.kind() == ErrorKind::AlreadyExists => false,
        Err(_) => match write_private(path, bytes) {
            Ok(()) => true,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => false,
            Err(e) => return Err(e),
        },
    };
    sync_dir(dir);
    Ok(created)
}

/// Prefix of [`create_private_file`]'s temporary files (which hold secrets: mode 0600).
const TEMPORARY_PREFIX: &str = ".gatehouse-";

fn temporary_in(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join(format!("{TEMPORARY_PREFIX}{}.tmp", crate::crypto::random_id()))
}

/// Deletes temporary files a crash left behind in `dir` (over a minute old: never one being
/// written; also those of earlier versions, `.signing-key.*.tmp`). Run whenever the local
/// server loads its admin token or signing key.
pub(crate) fn remove_stale_temporaries(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        let old = e.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
        if (name.starts_with(TEMPORARY_PREFIX) || name.starts_with(".signing-key."))
            && name.ends_with(".tmp")
            && old.is_some_and(|age| age > std::time::Duration::from_secs(60))
        {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// A new file (`create_new`, 0600 on Unix) holding `bytes`, synced.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Makes a directory entry just created durable (Unix; best effort elsewhere).
fn sync_dir(dir: &std::path::Path) {
    #[cfg(unix)]
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Reads a file [`create_private_file`] made, reading it again for up to 2 s while `complete`
/// refuses its content: on a filesystem without hard links another process may be writing it.
pub fn read_private_file<T>(
    path: &std::path::Path,
    complete: impl Fn(&str) -> Option<T>,
    refused: impl FnOnce(&str) -> String,
) -> std::io::Result<T> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let text = zeroize::Zeroizing::new(std::fs::read_to_string(path)?);
        if let Some(v) = complete(&text) {
            return Ok(v);
        }
        if std::time::Instant::now() >= deadline {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, refused(&text)));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Shortest admin token the local server accepts from its data directory's `admin-token` file.
pub const MIN_ADMIN_TOKEN: usize = 32;

/// The local server's admin token, kept in `dir`'s `admin-token` file (mode 0600), made on
/// first start. Several processes starting at once on one data directory agree on one token
/// ([`create_private_file`]). A file put there by hand is kept and made private; one shorter
/// than [`MIN_ADMIN_TOKEN`] characters (after trimming) is refused, not replaced.
pub fn load_or_create_admin_token(dir: &std::path::Path) -> std::io::Result<String> {
    create_private_dir(dir)?;
    remove_stale_temporaries(dir);
    let path = dir.join("admin-token");
    if !path.exists() {
        create_private_file(&path, crate::crypto::random_token().as_bytes())?;
    }
    let token = read_private_file(
        &path,
        |t| (t.trim().chars().count() >= MIN_ADMIN_TOKEN).then(|| t.trim().to_owned()),
        |_| {
            format!(
                "{} holds fewer than {MIN_ADMIN_TOKEN} characters: put a longer token there, or delete the file to \
                 have one generated",
                path.display()
            )
        },
    )?;
    // Kept, and made private if it was not (a file put there by hand).
    #[cfg(unix)]
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    Ok(token)
}

/// Result of a store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// Most levels of arrays and objects in a free-form JSON value Gatehouse stores (user
/// attributes, static claim values): well inside DynamoDB's 32 levels per item.
pub const MAX_JSON_DEPTH: usize = 16;

/// Whether every backend can hold a free-form JSON value (user attributes, a static claim
/// value): at most [`MAX_JSON_DEPTH`] levels, no empty object key, and numbers 0 or of magnitude
/// 1e-130 to below 1e126 (DynamoDB's limits, the strictest; beyond them its write fails, which
/// must be the admin's 400 rather than a 500). `Err` names the rule.
pub fn storable_json(v: &serde_json::Value) -> Result<(), &'static str> {
    use serde_json::Value;
    fn walk(v: &Value, depth: usize) -> Result<(), &'static str> {
        let nested = |depth: usize| {
            if depth < MAX_JSON_DEPTH { Ok(depth + 1) } else { Err("nested more than 16 levels deep") }
        };
        match v {
            Value::Array(a) => {
                let d = nested(depth)?;
                a.iter().try_for_each(|x| walk(x, d))
            }
            Value::Object(m) => {
                let d = nested(depth)?;
                if m.keys().any(String::is_empty) {
                    return Err("an object member has an empty name");
                }
                m.values().try_for_each(|x| walk(x, d))
            }
            Value::Number(n) if !n.as_f64().is_some_and(|f| f == 0.0 || (1e-130..1e126).contains(&f.abs())) => {
                Err("a number is outside 1e-130 to 1e125 in magnitude")
            }
            _ => Ok(()),
        }
    }
    walk(v, 0)
}

/// Which tokens a listing or count selects. At least one of `client_id` / `end_user` is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenQuery {
    pub kind: TokenKind,
    pub client_id: Option<String>,
    pub end_user: Option<String>,
}

/// A token's place in the listings, whose order is expiry time, then id (the soonest to expire
/// first): `E`, the expiry (12 digits), `#`, the id. Its byte order is the listings' order;
/// `list_tokens_after` continues after one. Ordered by expiry, a listing of active tokens starts
/// at the first unexpired one: on DynamoDB that is a key condition, so expired records waiting
/// for TTL deletion (up to two days) are never read.
pub fn token_sort_key(expires_at: i64, id: &str) -> String {
    format!("E{expires_at:012}#{id}")
}

/// A listing position parsed from a sort key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPosition<'a> {
    /// A [`token_sort_key`]: (expiry, id).
    Expiring(i64, &'a str),
    /// The sort key earlier versions gave tokens (issue time in 12 digits, `#`, id), which the
    /// DynamoDB items they wrote keep until they expire: (issue time, id). On DynamoDB such
    /// items are listed first, in their own order (see `dynamo::tokens`); a cursor among them
    /// goes on with them. The embedded store has none (its index is rebuilt on open) and reads such a
    /// cursor as an expiry: every token issued after that time is listed again, none is skipped.
    Issued(i64, &'a str),
}

impl<'a> TokenPosition<'a> {
    /// The time and id, whichever the form.
    pub fn at_and_id(self) -> (i64, &'a str) {
        match self {
            Self::Expiring(at, id) | Self::Issued(at, id) => (at, id),
        }
    }
}

/// Whether `key` has the form of a [`token_sort_key`] (or of the earlier versions' key, 12
/// digits, `#`, a non-empty id), and which.
pub fn parse_token_sort_key(key: &str) -> Option<TokenPosition<'_>> {
    let (expiring, rest) = match key.strip_prefix('E') {
        Some(rest) => (true, rest),
        None => (false, key),
    };
    let (at, id) = rest.split_once('#')?;
    if at.len() != 12 || !at.bytes().all(|b| b.is_ascii_digit()) || id.is_empty() {
        return None;
    }
    let at = at.parse().ok()?;
    Some(if expiring { TokenPosition::Expiring(at, id) } else { TokenPosition::Issued(at, id) })
}

/// Registered clients.
#[async_trait]
pub trait ClientStore: Send + Sync {
    /// Creates a client; `Conflict` if the id exists.
    async fn create_client(&self, client: &Client) -> StoreResult<()>;
    /// Reads a client.
    async fn get_client(&self, client_id: &str) -> StoreResult<Option<Client>>;
    /// Deletes a client; `false` if there was none. With `version`, only if the client is still
    /// at that version (`Conflict`, nothing deleted, if it is at another): a conditional
    /// `DELETE` (`If-Match`) of the state the caller checked.
    async fn delete_client(&self, client_id: &str, version: Option<u64>) -> StoreResult<bool>;
    /// Replaces an existing client if its stored `version` is still `read_version` (optimistic
    /// concurrency: the caller read that version and writes `client` with the next one).
    /// `false`, nothing written, if there is no such client; `Conflict`, nothing written, if it
    /// changed since.
    async fn update_client(&self, client: &Client, read_version: u64) -> StoreResult<bool>;
    /// Up to `limit` clients ordered by client id, after the id `after`; with the id of the last
    /// one when more follow.
    async fn list_clients(&self, after: Option<&str>, limit: usize) -> StoreResult<(Vec<Client>, Option<String>)>;
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
    /// Up to `limit` (at least 1) resource servers ordered by identifier, after the identifier
    /// `after`; with the identifier of the last one when more follow.
    async fn list_resource_servers_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<(Vec<ResourceServer>, Option<String>)>;
    /// Replaces an existing resource server (same identifier) that is still at `read_version`
    /// (`rs.version` is the next one); `false`, nothing written, if there is none; `Conflict`,
    /// nothing written, if another update came first.
    async fn update_resource_server(&self, rs: &ResourceServer, read_version: u64) -> StoreResult<bool>;
    /// Deletes a resource server; `false` if there was none. With `version`, only if it is still
    /// at that version (`Conflict`, nothing deleted, if it is at another).
    async fn delete_resource_server(&self, identifier: &str, version: Option<u64>) -> StoreResult<bool>;
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
    /// Active tokens matching `q` at `now`, ordered by expiry then id ([`token_sort_key`]), from
    /// `offset`; with the sort key of the last one when the page is full (`limit` > 0 tokens),
    /// for [`Self::list_tokens_after`].
    async fn list_tokens(
        &self,
        q: &TokenQuery,
        now: i64,
        offset: usize,
        limit: usize,
    ) -> StoreResult<(Vec<TokenRecord>, Option<String>)>;
    /// Keyset pagination of the same listing: up to `limit` active tokens matching `q` at `now`
    /// whose [`token_sort_key`] is after `after`, in the same order; with the sort key of the
    /// last one when more follow.
    async fn list_tokens_after(
        &self,
        q: &TokenQuery,
        now: i64,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<(Vec<TokenRecord>, Option<String>)>;
    /// How many active tokens match `q` at `now`.
    async fn count_tokens(&self, q: &TokenQuery, now: i64) -> StoreResult<u64>;
}

/// Single-use identifiers: the `jti` of a JWT bearer assertion or client assertion (RFC 7523
/// §3), of a DPoP proof (RFC 9449 §11.1).
#[async_trait]
pub trait ReplayStore: Send + Sync {
    /// Records `key` as used until `expires_at`; `false` if it is already recorded and not
    /// expired at `now` (a replay). Atomic: of concurrent first uses exactly one is admitted.
    async fn first_use(&self, key: &str, now: i64, expires_at: i64) -> StoreResult<bool>;
}

/// The tenant's identity-domain settings (`crate::settings`).
#[async_trait]
pub trait SettingsStore: Send + Sync {
    /// The stored settings, if any were ever changed.
    async fn get_settings(&self) -> StoreResult<Option<crate::settings::StoredSettings>>;
    /// Stores `s` if the stored version is `s.version - 1` (none stored for version 1); `false`
    /// (nothing written) if another change came first.
    async fn put_settings(&self, s: &crate::settings::StoredSettings) -> StoreResult<bool>;
}

/// The tenant's key ring (kms and sealed signers).
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Stores a key; `Conflict` if its generation (or kid) exists.
    async fn put_signing_key(&self, key: &StoredSigningKey) -> StoreResult<()>;
    /// Replaces the stored key of the same generation and kid (retiring it, or bringing its
    /// activation forward) if its schedule (`active_from`, `retired_at`) is still that of
    /// `read`, the record the caller read; `false`, nothing written, if there is no such key or
    /// it changed since (two admins, one cancelling a rotation as the other hastens it).
    async fn replace_signing_key(&self, key: &StoredSigningKey, read: &StoredSigningKey) -> StoreResult<bool>;
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
    /// Replaces an existing user that is still at `read_version` (optimistic concurrency: the
    /// caller read that version and writes `user` with the next one). `false`, nothing written,
    /// if there is no such user; `Conflict`, nothing written, if it changed since.
    async fn update_user(&self, user: &User, read_version: u64) -> StoreResult<bool>;
    /// Deletes a user; `false` if there was none. With `version`, only if the user is still at
    /// that version (`Conflict`, nothing deleted, if it is at another). Consents and group
    /// memberships ([`GroupStore::remove_user_from_groups`]) are deleted by the caller.
    async fn delete_user(&self, username: &str, version: Option<u64>) -> StoreResult<bool>;
    /// Up to `limit` (at least 1) users ordered by username, after the username `after`; with
    /// the username of the last one when more follow.
    async fn list_users(&self, after: Option<&str>, limit: usize) -> StoreResult<(Vec<User>, Option<String>)>;
}

/// Groups of users and their memberships (the OCSG seed's group URIs: a token issued to a group's
/// owner may act for any member, checked when the token is used, so [`GroupStore::is_member`] is
/// one point read).
///
/// A membership exists only while its group and its user do: `add_member` checks both in the
/// same write, `delete_group` removes the group's memberships, and deleting a user is followed
/// by `remove_user_from_groups`.
#[async_trait]
pub trait GroupStore: Send + Sync {
    /// Creates a group; `Conflict` if the name exists.
    async fn create_group(&self, group: &Group) -> StoreResult<()>;
    /// Reads a group.
    async fn get_group(&self, name: &str) -> StoreResult<Option<Group>>;
    /// Up to `limit` (at least 1) groups ordered by name, after the name `after`; with the name
    /// of the last one when more follow.
    async fn list_groups(&self, after: Option<&str>, limit: usize) -> StoreResult<(Vec<Group>, Option<String>)>;
    /// Replaces an existing group (same name); `false`, nothing written, if there is none.
    async fn update_group(&self, group: &Group) -> StoreResult<bool>;
    /// Deletes a group and every membership in it; `true` only for the call that deleted it.
    async fn delete_group(&self, name: &str) -> StoreResult<bool>;
    /// Makes `username` a member of `group` (idempotent); `false`, nothing written, when the
    /// group or the user does not exist.
    async fn add_member(&self, group: &str, username: &str) -> StoreResult<bool>;
    /// Ends a membership; `false` if `username` was not a member.
    async fn remove_member(&self, group: &str, username: &str) -> StoreResult<bool>;
    /// Whether `username` is a member of `group`: one point read.
    async fn is_member(&self, group: &str, username: &str) -> StoreResult<bool>;
    /// Up to `limit` (at least 1) members of `group` ordered by username, after the username
    /// `after`; with the username of the last one when more follow.
    async fn list_members(
        &self,
        group: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<(Vec<String>, Option<String>)>;
    /// The names of the groups `username` is a member of, ordered by name (not groups marked
    /// for deletion, whose memberships a deletion cut short leaves until it is retried).
    async fn groups_of(&self, username: &str) -> StoreResult<Vec<String>>;
    /// Ends every membership of `username` (after the user was deleted); how many there were.
    async fn remove_user_from_groups(&self, username: &str) -> StoreResult<u64>;
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
    /// Locks `key` until `until` (the counter lives at least that long) and sets its count to 0:
    /// after the cool-down, the next attempts of the window are counted (and checked) afresh.
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
    /// Redeems a code exactly once, atomically with storing the tokens issued for it and
    /// recording their ids on the code (`AuthorizationCode::issued`): `true` when this call
    /// consumed it; `false`, with nothing written, when it was consumed already, expired at
    /// `now` or unknown.
    async fn redeem_code(&self, id: &str, now: i64, tokens: &[TokenRecord]) -> StoreResult<bool>;
}

/// Everything a tenant stores. Functions depend on the narrow traits they use.
pub trait Store:
    ReplayStore
    + SettingsStore
    + ClientStore
    + ResourceServerStore
    + TokenStore
    + KeyStore
    + UserStore
    + GroupStore
    + ConsentStore
    + CounterStore
    + AuthorizationStore
{
}
impl<T> Store for T where
    T: ReplayStore
        + SettingsStore
        + ClientStore
        + ResourceServerStore
        + TokenStore
        + KeyStore
        + UserStore
        + GroupStore
        + ConsentStore
        + CounterStore
        + AuthorizationStore
{
}
