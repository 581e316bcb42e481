//! `EmbeddedStore`: SQLite in the data directory, for the local server.
//!
//! Durable (WAL journal, `synchronous=FULL`) and safe with several processes on one data
//! directory: every write is a single statement or an `IMMEDIATE` transaction, and a busy
//! database is waited for (`busy_timeout`). Writes run on tokio's blocking pool, except the
//! writes that issue tokens (new token records, code redemptions, refresh rotations), which go
//! through a group-commit writer ([`TokenWriter`]); point reads run inline on a per-thread read
//! connection ([`EmbeddedStore::read`]).
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, ErrorCode, OptionalExtension, params};

use super::*;

mod authorization;
mod clients;
mod groups;
mod replay;
mod settings;
mod tokens;
mod users;

/// The embedded backend.
#[derive(Clone)]
pub struct EmbeddedStore {
    conn: Arc<Mutex<Connection>>,
    /// The database file: [`EmbeddedStore::read`] opens its read connections on it.
    path: Arc<PathBuf>,
    tokens: TokenWriter,
    /// When each [`Purge`] table was last swept of expired rows (seconds).
    last_purge: Arc<[AtomicI64; 5]>,
}

/// Tables whose expired rows are deleted by the writes that add to them (what TTL does for
/// DynamoDB), at most once per [`PURGE_EVERY_SECS`]: a sweep per write cost a second statement
/// on every token issued.
#[derive(Clone, Copy)]
enum Purge {
    Tokens = 0,
    Codes = 1,
    Pending = 2,
    Counters = 3,
    Replay = 4,
}

const PURGE_EVERY_SECS: i64 = 60;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS clients (client_id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS resource_servers (identifier TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (
  id TEXT PRIMARY KEY, kind TEXT NOT NULL, client_id TEXT NOT NULL, end_user TEXT,
  issued_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, revoked_at INTEGER, body TEXT NOT NULL,
  family TEXT, rotated_at INTEGER, successor_response TEXT);
CREATE TABLE IF NOT EXISTS signing_keys (generation INTEGER PRIMARY KEY, kid TEXT NOT NULL UNIQUE, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users (username TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS consents (
  username TEXT NOT NULL, client_id TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (username, client_id));
CREATE TABLE IF NOT EXISTS counters (
  counter_key TEXT PRIMARY KEY, count INTEGER NOT NULL, expires_at INTEGER NOT NULL, locked_until INTEGER);
CREATE TABLE IF NOT EXISTS pending (id TEXT PRIMARY KEY, expires_at INTEGER NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS codes (
  id TEXT PRIMARY KEY, expires_at INTEGER NOT NULL, consumed_at INTEGER, body TEXT NOT NULL);
";

/// Indexes, created after [`TOKEN_COLUMNS_ADDED`] exist on a database of the previous schema.
///
/// The client and end-user indexes order a client's or user's tokens of one kind by expiry,
/// the listings' order ([`token_sort_key`]), so a listing starts at the first unexpired token.
/// Earlier versions' indexes in issue order are dropped, and these built, on the first open.
///
/// The end-user and family indexes are partial (`WHERE … IS NOT NULL`): a client-credentials
/// token has neither, so its insert writes two index B-trees fewer. Their queries
/// (`end_user = ?`, `family = ?`) imply the index's condition, so SQLite still uses them. An
/// older database's full indexes of the same columns are dropped and rebuilt partial once.
const INDEXES: &str = "
DROP INDEX IF EXISTS tokens_by_client;
CREATE INDEX IF NOT EXISTS tokens_of_client ON tokens (client_id, kind, expires_at, id);
DROP INDEX IF EXISTS tokens_by_user;
DROP INDEX IF EXISTS tokens_by_end_user;
CREATE INDEX IF NOT EXISTS tokens_of_end_user ON tokens (end_user, kind, expires_at, id) WHERE end_user IS NOT NULL;
CREATE INDEX IF NOT EXISTS tokens_by_expiry ON tokens (expires_at);
DROP INDEX IF EXISTS tokens_by_family;
CREATE INDEX IF NOT EXISTS tokens_in_family ON tokens (family, issued_at, id) WHERE family IS NOT NULL;
CREATE INDEX IF NOT EXISTS counters_by_expiry ON counters (expires_at);
CREATE INDEX IF NOT EXISTS pending_by_expiry ON pending (expires_at);
CREATE INDEX IF NOT EXISTS codes_by_expiry ON codes (expires_at);
";

/// Token columns newer than the first schema: added in place to an existing `tokens` table.
const TOKEN_COLUMNS_ADDED: [(&str, &str); 3] =
    [("family", "TEXT"), ("rotated_at", "INTEGER"), ("successor_response", "TEXT")];

/// Expired tokens and codes are deleted this long after expiry (they are filtered on read
/// before; a used code is kept so that a late replay still revokes its tokens, RFC 6749
/// §4.1.2). Pending requests, failure counters and single-use ids are deleted once expired:
/// nothing reads them after, and an unauthenticated caller can add them (`/authorize`, DPoP
/// proofs, sign-in attempts).
const PURGE_AFTER_SECS: i64 = 86_400;

thread_local! {
    /// [`EmbeddedStore::read`]'s connections, by database.
    static READERS: RefCell<Vec<(Arc<PathBuf>, Connection)>> = const { RefCell::new(Vec::new()) };
}
const READERS_PER_THREAD: usize = 4;

/// A read connection to the database `open` prepared. In WAL mode a reader waits only in rare
/// cases (a WAL being recovered or reset); it runs on an async worker, so it waits 1 s at most
/// (then the read is `Unavailable`: 503).
fn read_connection(path: &Path) -> StoreResult<Connection> {
    let c = Connection::open(path).map_err(err)?;
    c.busy_timeout(std::time::Duration::from_secs(1)).map_err(err)?;
    c.pragma_update(None, "query_only", true).map_err(err)?;
    Ok(c)
}

/// Group commit for the writes that issue tokens, the store's most frequent writes: new token
/// records (`put_token`, one per token issued), code redemptions and refresh rotations.
///
/// One thread takes the store's write connection and runs every write queued while it was busy
/// in one `IMMEDIATE` transaction (a write that fails is undone alone, or if that cannot be
/// done, the whole batch), then commits once (one
/// WAL sync for the batch) and answers each caller. Callers get their answer only after the
/// commit: as durable as a transaction per write, with the page writes and the fsync shared
/// under concurrent load. Idle, a batch is one write. The thread ends when the last handle to
/// the store is dropped.
#[derive(Clone)]
struct TokenWriter {
    queue: std::sync::mpsc::Sender<(TokenWrite, tokio::sync::oneshot::Sender<StoreResult<bool>>)>,
}

/// A write [`TokenWriter`] runs inside its batch's transaction.
#[derive(Debug)]
enum TokenWrite {
    /// `put_token`: a new record (`Conflict` if its id exists). Answers `true`.
    Insert(Box<TokenRecord>),
    /// `redeem_code`: consumes the code `id` if it is unconsumed and unexpired at `now`, and
    /// inserts `tokens`; `false` (and nothing written) if the code was not redeemable.
    Redeem { id: String, now: i64, tokens: Vec<TokenRecord> },
    /// `rotate_refresh`: marks the refresh token `id` rotated (with the response a replay
    /// within the grace period gets) if it is active at `now`, and inserts `tokens`; `false`
    /// (and nothing written) if it was not active.
    Rotate { id: String, now: i64, successor: String, tokens: Vec<TokenRecord> },
}

impl TokenWrite {
    /// Runs the write in the batch's transaction: the write's own result. If an insert of a
    /// conditional write fails, its update and earlier inserts are undone
    /// ([`TokenWrite::undo`]), and the rest of the batch stands. The outer `Err` (the undo
    /// failed) means the transaction holds a half-undone write and must not be committed.
    fn run(&self, tx: &mut rusqlite::Transaction<'_>) -> Result<StoreResult<bool>, StoreError> {
        // An INSERT is atomic on its own (SQLite undoes a failed statement, e.g. a duplicate
        // id, and the transaction goes on without it): no savepoint.
        let issued = match self {
            // The code's `issued`: the ids of its tokens, a JSON array.
            Self::Redeem { tokens, .. } => {
                serde_json::Value::from_iter(tokens.iter().map(|t| t.id.as_str())).to_string()
            }
            _ => String::new(),
        };
        let (sql, update_params, tokens): (&str, Vec<&dyn rusqlite::ToSql>, &[TokenRecord]) = match self {
            Self::Insert(t) => return Ok(tokens::insert_token(tx, t).map(|()| true)),
            Self::Redeem { id, now, tokens } => (
                "UPDATE codes SET consumed_at = ?2, body = json_set(body, '$.issued', json(?3))
                 WHERE id = ?1 AND consumed_at IS NULL AND expires_at > ?2",
                vec![id, now, &issued],
                tokens,
            ),
            Self::Rotate { id, now, successor, tokens } => (
                "UPDATE tokens SET rotated_at = ?2, successor_response = ?3
                 WHERE id = ?1 AND rotated_at IS NULL AND revoked_at IS NULL AND expires_at > ?2",
                vec![id, now, successor],
                tokens,
            ),
        };
        let n = match tx.prepare_cached(sql).and_then(|mut st| st.execute(update_params.as_slice())) {
            Ok(n) => n,
            Err(e) => return Ok(Err(err(e))), // SQLite undid the statement (or the whole batch)
        };
        if n == 0 {
            return Ok(Ok(false)); // not redeemable (or rotatable): nothing written
        }
        for (i, t) in tokens.iter().enumerate() {
            if let Err(e) = tokens::insert_token(tx, t) {
                // Some errors (a full disk, I/O) make SQLite roll the whole transaction back:
                // then this write is gone with the batch ([`TokenWriter::run_all`] reports it),
                // and an undo would run outside any transaction. Otherwise undo this write
                // alone; if the undo fails, the batch must not commit.
                if !tx.is_autocommit() {
                    self.undo(tx, &tokens[..i])?;
                }
                return Ok(Err(e));
            }
        }
        Ok(Ok(true))
    }

    /// Undoes a conditional write whose insert failed part-way, inside the batch's transaction:
    /// deletes the tokens it inserted and takes back its update, whose condition guaranteed
    /// the previous state (an unconsumed code; an unrotated token without a successor).
    ///
    /// This replaced a savepoint per write: a savepoint copies every page the write touches
    /// into its sub-journal, 12–15% of the CPU of a code exchange or refresh for an undo that
    /// runs only when an insert fails (a clashing id).
    fn undo(&self, tx: &rusqlite::Transaction<'_>, inserted: &[TokenRecord]) -> StoreResult<()> {
        for t in inserted {
            tx.prepare_cached("DELETE FROM tokens WHERE id = ?1")
                .and_then(|mut st| st.execute([&t.id]))
                .map_err(err)?;
        }
        let (sql, id) = match self {
            Self::Insert(_) => return Ok(()),
            Self::Redeem { id, .. } => {
                ("UPDATE codes SET consumed_at = NULL, body = json_remove(body, '$.issued') WHERE id = ?1", id)
            }
            Self::Rotate { id, .. } => {
                ("UPDATE tokens SET rotated_at = NULL, successor_response = NULL WHERE id = ?1", id)
            }
        };
        tx.prepare_cached(sql).and_then(|mut st| st.execute([id])).map_err(err)?;
        Ok(())
    }
}

/// At most this many writes per transaction.
const TOKEN_BATCH: usize = 128;

impl TokenWriter {
    /// Starts the writer on the store's own write connection: every write of the process takes
    /// the same mutex (a second connection would compete for SQLite's write lock through the
    /// busy handler's sleeps, starving the other writes under steady token traffic).
    fn start(conn: Arc<Mutex<Connection>>) -> StoreResult<Self> {
        let (queue, rx) = std::sync::mpsc::channel::<(TokenWrite, tokio::sync::oneshot::Sender<StoreResult<bool>>)>();
        std::thread::Builder::new()
            .name("gatehouse-token-writer".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut batch = vec![first];
                    while batch.len() < TOKEN_BATCH {
                        match rx.try_recv() {
                            Ok(next) => batch.push(next),
                            Err(_) => break,
                        }
                    }
                    let results = {
                        let mut c = conn.lock().unwrap_or_else(|p| p.into_inner());
                        Self::run_all(&mut c, batch.iter().map(|(w, _)| w))
                    };
                    for ((_, reply), result) in batch.into_iter().zip(results) {
                        let _ = reply.send(result);
                    }
                }
            })
            .map_err(|e| StoreError::Backend(format!("token writer thread: {e}")))?;
        Ok(Self { queue })
    }

    /// Runs the writes in one transaction: each write's own result, or the commit's failure for
    /// all of them.
    fn run_all<'a>(conn: &mut Connection, writes: impl Iterator<Item = &'a TokenWrite>) -> Vec<StoreResult<bool>> {
        let writes: Vec<&TokenWrite> = writes.collect();
        let mut tx = match conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate) {
            Ok(tx) => tx,
            Err(e) => return writes.iter().map(|_| Err(err_ref(&e))).collect(),
        };
        let mut results = Vec::with_capacity(writes.len());
        for w in &writes {
            let result = match w.run(&mut tx) {
                Ok(result) => result,
                Err(e) => {
                    // A write could not be undone: nothing of the batch may commit. Dropping
                    // `tx` rolls the transaction back.
                    return writes.iter().map(|_| Err(rolled_back(&e))).collect();
                }
            };
            if let Err(e) = &result {
                // Some errors (a full disk, I/O, memory) make SQLite roll the whole transaction
                // back: then nothing of the batch is written, and the rest must not run outside it.
                if tx.is_autocommit() {
                    return writes.iter().map(|_| Err(rolled_back(e))).collect();
                }
            }
            results.push(result);
        }
        match tx.commit() {
            Ok(()) => results,
            Err(e) => writes.iter().map(|_| Err(err_ref(&e))).collect(),
        }
    }

    /// Queues `w` and waits for its batch's commit.
    async fn run(&self, w: TokenWrite) -> StoreResult<bool> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.queue.send((w, reply)).map_err(|_| StoreError::Backend("the token writer has stopped".into()))?;
        answer.await.map_err(|_| StoreError::Backend("the token writer has stopped".into()))?
    }
}

/// [`err`] for an error that several callers get.
///
/// A full disk (`SQLITE_FULL`) is `Unavailable`, as a busy database is: SQLite undid the
/// statement (or the transaction), so nothing was written, and the same request succeeds once
/// there is space again. Callers answer 503 `temporarily_unavailable` with `Retry-After`
/// instead of a 500.
fn err_ref(e: &rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::ConstraintViolation) => StoreError::Conflict,
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Unavailable(e.to_string()),
        Some(ErrorCode::DiskFull) => {
            // Unlike a busy database, this lasts until an operator acts: an error line.
            tracing::error!(error = %e, "the database cannot grow: writes fail until there is space");
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Backend(e.to_string()),
    }
}

/// The error every write of a batch gets when the batch is rolled back because of `e` (a
/// write's error, or its undo's): of the same kind, so a full disk stays `Unavailable`.
fn rolled_back(e: &StoreError) -> StoreError {
    let msg = format!("the batch was rolled back: {e}");
    match e {
        StoreError::Unavailable(_) => StoreError::Unavailable(msg),
        _ => StoreError::Backend(msg),
    }
}

/// The database (password hashes, the DPoP nonce key, pending sign-ins) readable by its owner
/// only: its files are made 0600 whatever mode they were created with (a data directory made
/// beforehand, by a service manager or a container volume, keeps its own mode, which a warning
/// names when others may enter it).
fn make_private(dir: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for name in ["gatehouse.db", "gatehouse.db-wal", "gatehouse.db-shm"] {
            let path = dir.join(name);
            match std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(error = %e, path = %path.display(), "could not make the database file private")
                }
            }
        }
        if let Ok(meta) = std::fs::metadata(dir)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                dir = %dir.display(),
                mode = format!("{:o}", meta.permissions().mode() & 0o777),
                "the data directory is open to other users; its files are private, but consider chmod 700"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// Most rows one sweep deletes. A backlog (the expired rows of a server stopped for days, or a
/// flood of sign-in attempts) goes in batches, one per write while rows remain, so that no
/// write's transaction grows with it and the token writer is never held up long.
const PURGE_BATCH: i64 = 1000;

/// A sweep that is due ([`EmbeddedStore::purge_due`]): its `DELETE` of up to [`PURGE_BATCH`]
/// rows expired before `before`, and the table's last-sweep time, reset when the batch was
/// full so that the next write sweeps again.
struct Sweep {
    sql: &'static str,
    before: i64,
    last: Arc<[AtomicI64; 5]>,
    table: usize,
}

/// The `DELETE` of a table's sweep: up to `?2` rows expired before `?1`, through the expiry
/// index (the replay table has no rowid: by its key).
fn sweep_sql(table: Purge) -> &'static str {
    match table {
        Purge::Tokens => "DELETE FROM tokens WHERE rowid IN (SELECT rowid FROM tokens WHERE expires_at < ?1 LIMIT ?2)",
        Purge::Codes => "DELETE FROM codes WHERE rowid IN (SELECT rowid FROM codes WHERE expires_at < ?1 LIMIT ?2)",
        Purge::Pending => {
            "DELETE FROM pending WHERE rowid IN (SELECT rowid FROM pending WHERE expires_at < ?1 LIMIT ?2)"
        }
        Purge::Counters => {
            "DELETE FROM counters WHERE rowid IN (SELECT rowid FROM counters WHERE expires_at < ?1 LIMIT ?2)"
        }
        Purge::Replay => "DELETE FROM replay WHERE key IN (SELECT key FROM replay WHERE expires_at < ?1 LIMIT ?2)",
    }
}

/// Runs a sweep [`EmbeddedStore::purge_due`] returned.
fn purge(c: &Connection, due: Option<Sweep>) -> StoreResult<()> {
    if let Some(s) = due {
        let n = c.prepare_cached(s.sql).and_then(|mut st| st.execute(params![s.before, PURGE_BATCH])).map_err(err)?;
        if n as i64 >= PURGE_BATCH {
            s.last[s.table].store(0, Ordering::Relaxed); // more are left: due again at once
        }
    }
    Ok(())
}

/// Replaces the row of `table` whose `key_col` is `key` with `body` if it is still at
/// `read_version` (its body's `version`; rows written before versions existed have none: they
/// are version 0). `true` when written; `false` if there is no such row; `Conflict` if it
/// changed since it was read. `table` and `key_col` are the store's constants, never input.
fn update_versioned(
    c: &rusqlite::Connection,
    table: &'static str,
    key_col: &'static str,
    key: &str,
    body: &str,
    read_version: i64,
) -> StoreResult<bool> {
    let sql = format!(
        "UPDATE {table} SET body = ?2 WHERE {key_col} = ?1 AND COALESCE(json_extract(body, '$.version'), 0) = ?3"
    );
    if c.execute(&sql, params![key, body, read_version]).map_err(err)? == 1 {
        return Ok(true);
    }
    missed_version(c, table, key_col, key)
}

/// Deletes the row `key` of a versioned table; with `version`, only if its body's `version` is
/// still that one (0 for bodies written before versions existed): `Conflict`, nothing deleted,
/// when the row is at another. `false` when there is no such row.
fn delete_versioned(
    c: &rusqlite::Connection,
    table: &'static str,
    key_col: &'static str,
    key: &str,
    version: Option<u64>,
) -> StoreResult<bool> {
    let Some(v) = version else {
        let sql = format!("DELETE FROM {table} WHERE {key_col} = ?1");
        return Ok(c.execute(&sql, [key]).map_err(err)? > 0);
    };
    let sql = format!("DELETE FROM {table} WHERE {key_col} = ?1 AND COALESCE(json_extract(body, '$.version'), 0) = ?2");
    if c.execute(&sql, params![key, v as i64]).map_err(err)? > 0 {
        return Ok(true);
    }
    missed_version(c, table, key_col, key)
}

/// After a versioned write that matched no row: `Conflict` if the row exists (at another
/// version), `false` if there is none.
fn missed_version(c: &rusqlite::Connection, table: &str, key_col: &str, key: &str) -> StoreResult<bool> {
    let exists = c
        .query_row(&format!("SELECT 1 FROM {table} WHERE {key_col} = ?1"), [key], |_| Ok(()))
        .optional()
        .map_err(err)?
        .is_some();
    if exists { Err(StoreError::Conflict) } else { Ok(false) }
}

fn err(e: rusqlite::Error) -> StoreError {
    err_ref(&e)
}

fn to_json<T: serde::Serialize>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Backend(e.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> StoreResult<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Backend(format!("corrupt row: {e}")))
}

/// Brings a `tokens` table of the previous schema up to date (idempotent). One write
/// transaction, so that processes starting together on an old database do not both add a column
/// (the second would fail on the duplicate).
fn add_token_columns(conn: &mut Connection) -> StoreResult<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(err)?;
    let have: Vec<String> = {
        let mut st = tx.prepare("SELECT name FROM pragma_table_info('tokens')").map_err(err)?;
        st.query_map([], |r| r.get(0)).map_err(err)?.collect::<Result<_, _>>().map_err(err)?
    };
    for (name, ty) in TOKEN_COLUMNS_ADDED {
        if !have.iter().any(|h| h == name) {
            tx.execute_batch(&format!("ALTER TABLE tokens ADD COLUMN {name} {ty}")).map_err(err)?;
        }
    }
    tx.commit().map_err(err)
}

impl EmbeddedStore {
    /// Opens (or creates) `gatehouse.db` in `dir`.
    pub fn open(dir: &Path) -> StoreResult<Self> {
        crate::store::create_private_dir(dir).map_err(|e| StoreError::Backend(format!("data dir: {e}")))?;
        let mut conn = Connection::open(dir.join("gatehouse.db")).map_err(err)?;
        // SQLite creates the `-wal` and `-shm` files with the database file's mode.
        make_private(dir);
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(err)?;
        // Processes (or stores) opening one database together contend for its locks, and SQLite
        // answers some of those contentions busy without waiting (the switch to WAL, a read lock
        // that would have to become a write lock): every step below is idempotent, so a busy
        // answer starts them again, for up to 10 s.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match Self::prepare(&mut conn, dir) {
                Err(StoreError::Unavailable(e)) if std::time::Instant::now() < deadline => {
                    tracing::debug!(error = %e, "database busy while opening; retrying");
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                r => break r?,
            }
        }
        let path = dir.join("gatehouse.db");
        let conn = Arc::new(Mutex::new(conn));
        let tokens = TokenWriter::start(conn.clone())?;
        Ok(Self { conn, path: Arc::new(path), tokens, last_purge: Arc::new(Default::default()) })
    }

    /// Brings the database's settings and schema up to date (idempotent).
    fn prepare(conn: &mut Connection, dir: &Path) -> StoreResult<()> {
        let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0)).map_err(err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            // A filesystem without shared memory (some network mounts): still correct, but
            // readers wait for writers, and several processes contend (busy: 503).
            tracing::warn!(journal_mode = %mode, dir = %dir.display(), "SQLite cannot use WAL mode in the data directory");
        }
        conn.pragma_update(None, "synchronous", "FULL").map_err(err)?;
        // Statement journals (SQLite's copy of the pages a statement changes inside a larger
        // transaction, to undo that statement alone if it fails) go to a temporary file past
        // 64 KiB: a `pwrite` per page. In memory they are a copy; a token writer's batch is at
        // most `TOKEN_BATCH` writes, so they stay small.
        conn.pragma_update(None, "temp_store", "MEMORY").map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        add_token_columns(conn)?;
        conn.execute_batch(INDEXES).map_err(err)?;
        conn.execute_batch(groups::SCHEMA).map_err(err)?;
        conn.execute_batch(settings::SCHEMA).map_err(err)?;
        conn.execute_batch(replay::SCHEMA).map_err(err)
    }

    /// Runs the read-only `f` inline, on this thread's own read connection to the database.
    ///
    /// A point read by key takes microseconds and, in WAL mode, never waits for a writer: handing
    /// it to the blocking pool (two thread wake-ups) cost more CPU than the read. Each thread
    /// keeps one connection per database it has read (a few at most; the oldest is closed
    /// beyond [`READERS_PER_THREAD`]). A read sees every write that completed before it began.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        READERS.with(|readers| {
            let mut readers = readers.borrow_mut();
            let i = match readers.iter().position(|(p, _)| Arc::ptr_eq(p, &self.path)) {
                Some(i) => i,
                None => {
                    let c = read_connection(&self.path)?;
                    if readers.len() >= READERS_PER_THREAD {
                        readers.remove(0);
                    }
                    readers.push((self.path.clone(), c));
                    readers.len() - 1
                }
            };
            f(&readers[i].1)
        })
    }

    /// The `DELETE` that sweeps `table` of rows expired at `now` (tokens and codes: for over
    /// [`PURGE_AFTER_SECS`]),
    /// when a sweep is due (at most one per [`PURGE_EVERY_SECS`] and table); run it in the
    /// write's transaction.
    fn purge_due(&self, table: Purge, now: i64) -> Option<Sweep> {
        let last = &self.last_purge[table as usize];
        let prev = last.load(Ordering::Relaxed);
        if now.saturating_sub(prev) < PURGE_EVERY_SECS
            || last.compare_exchange(prev, now, Ordering::Relaxed, Ordering::Relaxed).is_err()
        {
            return None;
        }
        let sql = sweep_sql(table);
        let grace = match table {
            Purge::Tokens | Purge::Codes => PURGE_AFTER_SECS,
            Purge::Pending | Purge::Counters | Purge::Replay => 0,
        };
        Some(Sweep { sql, before: now - grace, last: self.last_purge.clone(), table: table as usize })
    }

    /// Runs the read-only `f` on the blocking pool, on that thread's read connection: reads that
    /// may take long (listings, counts) neither hold up the async runtime nor wait for, or hold
    /// up, the write connection the token writer commits on.
    async fn read_off<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.read(f))
            .await
            .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?
    }

    /// Runs `f` with the connection on the blocking pool.
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut c)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?
    }
}

#[async_trait]
impl ResourceServerStore for EmbeddedStore {
    async fn create_resource_server(&self, rs: &ResourceServer) -> StoreResult<()> {
        let (id, body) = (rs.identifier.clone(), to_json(rs)?);
        self.with(move |c| {
            c.execute("INSERT INTO resource_servers (identifier, body) VALUES (?1, ?2)", params![id, body])
                .map_err(err)?;
            Ok(())
        })
        .await
    }

    async fn get_resource_server(&self, identifier: &str) -> StoreResult<Option<ResourceServer>> {
        let id = identifier.to_owned();
        self.read(move |c| {
            let body: Option<String> = c
                .query_row("SELECT body FROM resource_servers WHERE identifier = ?1", [id], |r| r.get(0))
                .optional()
                .map_err(err)?;
            body.map(|b| from_json(&b)).transpose()
        })
    }

    async fn list_resource_servers(&self) -> StoreResult<Vec<ResourceServer>> {
        self.read_off(|c| {
            let mut st = c.prepare("SELECT body FROM resource_servers ORDER BY identifier").map_err(err)?;
            let rows = st.query_map([], |r| r.get::<_, String>(0)).map_err(err)?;
            rows.map(|r| from_json(&r.map_err(err)?)).collect()
        })
        .await
    }

    async fn list_resource_servers_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<(Vec<ResourceServer>, Option<String>)> {
        if limit == 0 {
            return Ok((Vec::new(), None));
        }
        let after = after.map(str::to_owned);
        self.read_off(move |c| {
            let sql =
                "SELECT identifier, body FROM resource_servers WHERE identifier > ?1 ORDER BY identifier LIMIT ?2";
            let rows = groups::keyset_rows(c, sql, None, after.as_deref(), limit)?;
            let rows = rows.into_iter().map(|(k, b)| Ok((k, from_json(&b)?))).collect::<StoreResult<Vec<_>>>()?;
            Ok(groups::keyset_page(rows, limit))
        })
        .await
    }

    async fn update_resource_server(&self, rs: &ResourceServer, read_version: u64) -> StoreResult<bool> {
        let (id, body, version) = (rs.identifier.clone(), to_json(rs)?, read_version as i64);
        self.with(move |c| update_versioned(c, "resource_servers", "identifier", &id, &body, version)).await
    }

    async fn delete_resource_server(&self, identifier: &str, version: Option<u64>) -> StoreResult<bool> {
        let id = identifier.to_owned();
        self.with(move |c| delete_versioned(c, "resource_servers", "identifier", &id, version)).await
    }
}

#[async_trait]
impl KeyStore for EmbeddedStore {
    async fn put_signing_key(&self, key: &StoredSigningKey) -> StoreResult<()> {
        let (generation, kid, body) = (key.generation, key.kid.clone(), to_json(key)?);
        self.with(move |c| {
            c.execute(
                "INSERT INTO signing_keys (generation, kid, body) VALUES (?1, ?2, ?3)",
                params![generation, kid, body],
            )
            .map_err(err)?;
            Ok(())
        })
        .await
    }

    async fn replace_signing_key(&self, key: &StoredSigningKey, read: &StoredSigningKey) -> StoreResult<bool> {
        let (generation, kid, body) = (key.generation, key.kid.clone(), to_json(key)?);
        let (active_from, retired_at) = (read.active_from, read.retired_at);
        self.with(move |c| {
            let n = c
                .execute(
                    "UPDATE signing_keys SET body = ?3 WHERE generation = ?1 AND kid = ?2 \
                     AND json_extract(body, '$.active_from') IS ?4 AND json_extract(body, '$.retired_at') IS ?5",
                    params![generation, kid, body, active_from, retired_at],
                )
                .map_err(err)?;
            Ok(n == 1)
        })
        .await
    }

    async fn list_signing_keys(&self) -> StoreResult<Vec<StoredSigningKey>> {
        self.read_off(|c| {
            let mut st = c.prepare("SELECT body FROM signing_keys ORDER BY generation").map_err(err)?;
            let rows = st.query_map([], |r| r.get::<_, String>(0)).map_err(err)?;
            rows.map(|r| from_json(&r.map_err(err)?)).collect()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A data directory written by the first schema (tokens without the family and rotation
    /// columns) opens, keeps its rows and takes the new columns, also when two processes (here:
    /// threads) open it at once.
    #[tokio::test]
    async fn opens_a_database_of_the_previous_schema() {
        let dir = std::env::temp_dir().join(format!("gatehouse-schema-{}", crate::crypto::random_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let old = Connection::open(dir.join("gatehouse.db")).unwrap();
        old.execute_batch(
            "CREATE TABLE tokens (
               id TEXT PRIMARY KEY, kind TEXT NOT NULL, client_id TEXT NOT NULL, end_user TEXT,
               issued_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, revoked_at INTEGER, body TEXT NOT NULL);
             CREATE INDEX tokens_by_client ON tokens (client_id, kind, issued_at, id);",
        )
        .unwrap();
        let t = conformance::token("kept", TokenKind::Access, "c1", None, conformance::NOW);
        old.execute(
            "INSERT INTO tokens VALUES (?1, 'access', 'c1', NULL, ?2, ?3, NULL, ?4)",
            params![t.id, t.issued_at, t.expires_at, to_json(&t).unwrap()],
        )
        .unwrap();
        drop(old);
        std::thread::scope(|scope| {
            let opening = [(); 2].map(|()| scope.spawn(|| EmbeddedStore::open(&dir).map(drop)));
            for o in opening {
                o.join().unwrap().unwrap();
            }
        });
        let s = EmbeddedStore::open(&dir).unwrap(); // idempotent
        assert_eq!(s.get_token("kept", conformance::NOW).await.unwrap(), Some(t));
        let next = conformance::family_token("next", TokenKind::Refresh, "f1", conformance::NOW);
        assert!(s.rotate_refresh("kept", conformance::NOW, "r", std::slice::from_ref(&next)).await.unwrap());
        assert_eq!(s.list_family("f1", conformance::NOW).await.unwrap(), [next]);
        assert_eq!(
            s.get_token("kept", conformance::NOW).await.unwrap().unwrap().successor_response.as_deref(),
            Some("r")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The database's files are private even in a data directory made beforehand with a
    /// looser mode (and in one whose files were made so by an earlier version).
    #[cfg(unix)]
    #[tokio::test]
    async fn the_database_files_are_private_in_an_open_directory() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("gatehouse-open-dir-{}", crate::crypto::random_id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.join("gatehouse.db-wal"), b"").unwrap();
        std::fs::set_permissions(dir.join("gatehouse.db-wal"), std::fs::Permissions::from_mode(0o644)).unwrap();
        let s = EmbeddedStore::open(&dir).unwrap();
        s.put_token(&conformance::token("t", TokenKind::Access, "c1", None, conformance::NOW)).await.unwrap();
        for name in ["gatehouse.db", "gatehouse.db-wal", "gatehouse.db-shm"] {
            let mode = std::fs::metadata(dir.join(name)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{name}: {mode:o}");
        }
        drop(s);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Reads never wait for the write connection, which the token writer holds for a batch's
    /// statements and fsync: the point reads of sign-in and token use, and listings and counts
    /// however long they take.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_do_not_wait_for_the_write_connection() {
        let (dir, s) = temp_store();
        let t = conformance::token("t", TokenKind::Access, "c1", None, conformance::NOW);
        s.put_token(&t).await.unwrap();
        let (locked_tx, locked_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let conn = s.conn.clone();
        let holder = std::thread::spawn(move || {
            let _held = conn.lock().unwrap();
            locked_tx.send(()).unwrap();
            release_rx.recv().unwrap();
        });
        locked_rx.recv().unwrap();
        let q = TokenQuery { kind: TokenKind::Access, client_id: Some("c1".into()), end_user: None };
        let reads = async {
            assert_eq!(s.get_token("t", conformance::NOW).await.unwrap(), Some(t.clone()));
            assert_eq!(s.get_counter("k", conformance::NOW).await.unwrap(), None);
            assert_eq!(s.get_pending("p", conformance::NOW).await.unwrap(), None);
            assert_eq!(s.get_consent("u", "c1").await.unwrap(), None);
            assert!(!s.is_member("g", "u").await.unwrap());
            assert_eq!(s.get_settings().await.unwrap(), None);
            assert_eq!(s.get_resource_server("urn:x").await.unwrap(), None);
            assert_eq!(s.list_tokens(&q, conformance::NOW, 0, 10).await.unwrap().0, vec![t.clone()]);
            assert_eq!(s.count_tokens(&q, conformance::NOW).await.unwrap(), 1);
            assert_eq!(s.list_users(None, 10).await.unwrap(), (vec![], None));
        };
        let done = tokio::time::timeout(std::time::Duration::from_secs(10), reads).await;
        release_tx.send(()).unwrap();
        holder.join().unwrap();
        done.expect("a read waited for the write connection");
        drop(s);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The query plan of `table`'s sweep, every step.
    fn sweep_plan(s: &EmbeddedStore, table: Purge) -> String {
        let conn = s.conn.lock().unwrap();
        let sql = format!("EXPLAIN QUERY PLAN {}", sweep_sql(table));
        let mut st = conn.prepare(&sql).unwrap();
        let rows = st.query_map(params![0, 1], |r| r.get::<_, String>(3)).unwrap();
        rows.map(Result::unwrap).collect::<Vec<_>>().join("; ")
    }

    fn temp_store() -> (PathBuf, EmbeddedStore) {
        let dir = std::env::temp_dir().join(format!("gatehouse-store-{}", crate::crypto::random_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let s = EmbeddedStore::open(&dir).unwrap();
        (dir, s)
    }

    /// Runs `writes` as one batch on the store's write connection, with the connection set up by
    /// the SQL `before` (undone by `after`) for that batch alone.
    fn run_batch(s: &EmbeddedStore, before: &str, writes: &[TokenWrite], after: &str) -> Vec<StoreResult<bool>> {
        let mut conn = s.conn.lock().unwrap();
        conn.execute_batch(before).unwrap();
        let results = TokenWriter::run_all(&mut conn, writes.iter());
        conn.execute_batch(after).unwrap();
        results
    }

    /// Single-use ids: an expired id reused; expired rows swept through an index on the expiry
    /// at most once a minute, instead of a scan of the whole table (which an unauthenticated
    /// caller can fill with DPoP proofs) on every call.
    #[tokio::test]
    async fn replay_ids_are_swept_not_scanned() {
        use crate::store::ReplayStore;
        let (dir, s) = temp_store();
        let now = conformance::NOW;
        assert!(s.first_use("a", now, now + 60).await.unwrap());
        assert!(!s.first_use("a", now + 59, now + 120).await.unwrap(), "live");
        assert!(s.first_use("a", now + 60, now + 120).await.unwrap(), "expired: used again");
        assert!(s.first_use("b", now, now + 60).await.unwrap());
        let rows = |s: &EmbeddedStore| {
            s.conn.lock().unwrap().query_row("SELECT count(*) FROM replay", [], |r| r.get::<_, i64>(0)).unwrap()
        };
        assert_eq!(rows(&s), 2);
        // The first call a minute after both expired sweeps them (`a` expired at now + 120).
        assert!(s.first_use("c", now + 120 + PURGE_EVERY_SECS, i64::MAX).await.unwrap());
        assert_eq!(rows(&s), 1);
        let sweep = sweep_plan(&s, Purge::Replay);
        assert!(sweep.contains("USING COVERING INDEX replay_expiry"), "{sweep}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A backlog of expired rows is swept in batches of [`PURGE_BATCH`], one per write while
    /// rows remain (not all in one transaction), through the expiry index; then once a minute
    /// again.
    #[tokio::test]
    async fn a_backlog_is_swept_in_batches() {
        let (dir, s) = temp_store();
        let now = conformance::NOW;
        {
            let mut c = s.conn.lock().unwrap();
            let tx = c.transaction().unwrap();
            for i in 0..2500 {
                let t = conformance::token(&format!("old{i:04}"), TokenKind::Access, "c1", None, now - 10 * 86_400);
                tx.execute(
                    "INSERT INTO tokens (id, kind, client_id, issued_at, expires_at, body) VALUES (?1, 'access', 'c1', ?2, ?3, ?4)",
                    params![t.id, t.issued_at, t.expires_at, to_json(&t).unwrap()],
                )
                .unwrap();
            }
            tx.commit().unwrap();
        }
        let rows = |s: &EmbeddedStore| {
            s.conn.lock().unwrap().query_row("SELECT count(*) FROM tokens", [], |r| r.get::<_, i64>(0)).unwrap()
        };
        let mut left = Vec::new();
        for issued in 1..=3 {
            s.put_token(&conformance::token(&format!("new{issued}"), TokenKind::Access, "c1", None, now))
                .await
                .unwrap();
            left.push(rows(&s) - issued);
        }
        assert_eq!(left, [1500, 500, 0], "1000 a write while a batch comes back full");
        // The last batch was not full: the next sweep is a minute after it.
        let expired = conformance::token("late", TokenKind::Access, "c1", None, now - 10 * 86_400);
        s.conn
            .lock()
            .unwrap()
            .execute(
                "INSERT INTO tokens (id, kind, client_id, issued_at, expires_at, body) VALUES ('late', 'access', 'c1', ?1, ?2, ?3)",
                params![expired.issued_at, expired.expires_at, to_json(&expired).unwrap()],
            )
            .unwrap();
        s.put_token(&conformance::token("new4", TokenKind::Access, "c1", None, now + PURGE_EVERY_SECS - 1))
            .await
            .unwrap();
        assert_eq!(rows(&s), 5, "within the minute: not swept");
        s.put_token(&conformance::token("new5", TokenKind::Access, "c1", None, now + PURGE_EVERY_SECS)).await.unwrap();
        assert_eq!(rows(&s), 5, "a minute later: swept (and one more token)");
        let plan = sweep_plan(&s, Purge::Tokens);
        assert!(plan.contains("tokens_by_expiry"), "{plan}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A batch in which one record's id exists: that record alone fails (`Conflict`), the others
    /// are committed, and the existing row is untouched.
    #[tokio::test]
    async fn a_duplicate_in_a_batch_fails_alone() {
        let (dir, s) = temp_store();
        let first = conformance::token("a", TokenKind::Access, "c1", None, conformance::NOW);
        s.put_token(&first).await.unwrap();
        let mut dup = conformance::token("a", TokenKind::Access, "c2", None, conformance::NOW);
        dup.scope = crate::model::Scope::parse("other").unwrap();
        let b = conformance::token("b", TokenKind::Access, "c1", None, conformance::NOW);
        let c = conformance::token("c", TokenKind::Access, "c1", Some("alice"), conformance::NOW);
        let results = run_batch(&s, "", &[b.clone(), dup, c.clone()].map(|t| TokenWrite::Insert(Box::new(t))), "");
        assert!(matches!(results[..], [Ok(true), Err(StoreError::Conflict), Ok(true)]), "{results:?}");
        for t in [&first, &b, &c] {
            assert_eq!(s.get_token(&t.id, conformance::NOW).await.unwrap().as_ref(), Some(t));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Conditional writes in one batch: the second redemption of a code sees the first's
    /// (single use holds inside a batch); a rotation whose insert clashes is undone alone (its
    /// refresh token stays active, nothing of it is stored), and so is a redemption whose second
    /// insert clashes (the code stays redeemable), while the writes around them commit.
    #[tokio::test]
    async fn conditional_writes_in_a_batch_fail_alone() {
        use conformance::{NOW, code, family_token};
        let (dir, s) = temp_store();
        s.put_code(&code("k1")).await.unwrap();
        s.put_code(&code("k2")).await.unwrap();
        let old = family_token("r0", TokenKind::Refresh, "f1", NOW);
        let taken = conformance::token("taken", TokenKind::Access, "c1", None, NOW);
        s.put_token(&old).await.unwrap();
        s.put_token(&taken).await.unwrap();
        let issued = |id: &str| vec![family_token(id, TokenKind::Access, "fam-k1", NOW + 1)];
        let successor = family_token("r1", TokenKind::Refresh, "f1", NOW + 1);
        let writes = [
            TokenWrite::Redeem { id: "k1".into(), now: NOW + 1, tokens: issued("a1") },
            TokenWrite::Redeem { id: "k1".into(), now: NOW + 1, tokens: issued("a2") },
            TokenWrite::Rotate {
                id: "r0".into(),
                now: NOW + 1,
                successor: "response".into(),
                tokens: vec![successor.clone(), taken.clone()],
            },
            TokenWrite::Redeem { id: "k2".into(), now: NOW + 1, tokens: vec![issued("b1").remove(0), taken.clone()] },
            TokenWrite::Insert(Box::new(conformance::token("after", TokenKind::Access, "c1", None, NOW + 1))),
        ];
        let results = run_batch(&s, "", &writes, "");
        assert!(
            matches!(
                results[..],
                [Ok(true), Ok(false), Err(StoreError::Conflict), Err(StoreError::Conflict), Ok(true)]
            ),
            "{results:?}"
        );
        assert_eq!(s.get_code("k2", NOW + 1).await.unwrap(), Some(code("k2")), "the failed redemption is undone");
        assert_eq!(s.get_token("b1", NOW + 1).await.unwrap(), None);
        assert!(s.get_code("k1", NOW + 1).await.unwrap().unwrap().consumed_at.is_some());
        assert!(s.get_token("a1", NOW + 1).await.unwrap().is_some());
        assert_eq!(s.get_token("a2", NOW + 1).await.unwrap(), None, "the losing redemption stored nothing");
        assert_eq!(s.get_token("r0", NOW + 1).await.unwrap(), Some(old), "the failed rotation is undone");
        assert_eq!(s.get_token("r1", NOW + 1).await.unwrap(), None);
        assert_eq!(s.get_token("taken", NOW + 1).await.unwrap(), Some(taken));
        assert!(s.get_token("after", NOW + 1).await.unwrap().is_some());
        assert!(s.rotate_refresh("r0", NOW + 2, "response", &[successor]).await.unwrap(), "still rotatable");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A redemption or rotation whose insert fails for want of space (`SQLITE_FULL`, forced
    /// with `max_page_count`) leaves nothing behind: the code stays redeemable, the refresh
    /// token rotatable, and no token of theirs is stored, whether SQLite undid the statement
    /// or the whole transaction. Each write's error is `Unavailable` (a 503 with
    /// `Retry-After`): the same request succeeds once there is space.
    #[tokio::test]
    async fn a_write_that_runs_out_of_space_leaves_nothing() {
        use conformance::{NOW, code, family_token};
        let (dir, s) = temp_store();
        s.put_code(&code("k1")).await.unwrap();
        let old = family_token("r0", TokenKind::Refresh, "f1", NOW);
        s.put_token(&old).await.unwrap();
        let big = |id: &str| {
            let mut t = family_token(id, TokenKind::Access, "f1", NOW + 1);
            t.subject = "x".repeat(64 * 1024); // overflow pages the full database cannot add
            t
        };
        let small = family_token("a0", TokenKind::Access, "f1", NOW + 1);
        let writes = [
            TokenWrite::Redeem { id: "k1".into(), now: NOW + 1, tokens: vec![small.clone(), big("a1")] },
            TokenWrite::Rotate { id: "r0".into(), now: NOW + 1, successor: "response".into(), tokens: vec![big("a2")] },
        ];
        let pages: i64 = s.conn.lock().unwrap().query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap();
        let full = format!("PRAGMA max_page_count = {}", pages + 1);
        let results = run_batch(&s, &full, &writes, "PRAGMA max_page_count = 1073741823");
        assert!(results.iter().all(|r| matches!(r, Err(StoreError::Unavailable(_)))), "{results:?}");
        assert_eq!(s.get_code("k1", NOW + 1).await.unwrap(), Some(code("k1")), "still redeemable");
        assert_eq!(s.get_token("r0", NOW + 1).await.unwrap(), Some(old), "still rotatable");
        for id in ["a0", "a1", "a2"] {
            assert_eq!(s.get_token(id, NOW + 1).await.unwrap(), None, "{id}");
        }
        // A write on its own, through the same writer, and one on the store's connection.
        s.conn.lock().unwrap().execute_batch(&full).unwrap();
        assert!(matches!(s.put_token(&big("a3")).await, Err(StoreError::Unavailable(_))));
        let mut pending = code("k2");
        pending.client_id = "x".repeat(64 * 1024);
        assert!(matches!(s.put_code(&pending).await, Err(StoreError::Unavailable(_))));
        s.conn.lock().unwrap().execute_batch("PRAGMA max_page_count = 1073741823").unwrap();
        assert_eq!(s.get_token("a3", NOW + 1).await.unwrap(), None);
        assert_eq!(s.get_code("k2", NOW + 1).await.unwrap(), None);
        assert!(s.redeem_code("k1", NOW + 1, &[small]).await.unwrap(), "redeemable once space is back");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A write that cannot be undone (its undo's DELETE refused, by a trigger here) fails the
    /// whole batch: nothing of it is committed, not even the writes before and after it, and
    /// the connection is usable again afterwards.
    #[tokio::test]
    async fn a_write_that_cannot_be_undone_fails_the_whole_batch() {
        use conformance::{NOW, code, family_token};
        let (dir, s) = temp_store();
        s.put_code(&code("k1")).await.unwrap();
        let taken = conformance::token("taken", TokenKind::Access, "c1", None, NOW);
        s.put_token(&taken).await.unwrap();
        let a1 = family_token("a1", TokenKind::Access, "fam-k1", NOW + 1);
        let writes = [
            TokenWrite::Insert(Box::new(conformance::token("before", TokenKind::Access, "c1", None, NOW + 1))),
            TokenWrite::Redeem { id: "k1".into(), now: NOW + 1, tokens: vec![a1.clone(), taken.clone()] },
            TokenWrite::Insert(Box::new(conformance::token("after", TokenKind::Access, "c1", None, NOW + 1))),
        ];
        let refuse =
            "CREATE TEMP TRIGGER refuse_undo BEFORE DELETE ON tokens BEGIN SELECT RAISE(ABORT, 'refused'); END;";
        let results = run_batch(&s, refuse, &writes, "DROP TRIGGER refuse_undo");
        assert!(
            results.iter().all(|r| matches!(r, Err(StoreError::Backend(m)) if m.contains("rolled back"))),
            "{results:?}"
        );
        assert_eq!(s.get_code("k1", NOW + 1).await.unwrap(), Some(code("k1")), "not consumed");
        for id in ["before", "a1", "after"] {
            assert_eq!(s.get_token(id, NOW + 1).await.unwrap(), None, "{id}");
        }
        assert!(s.redeem_code("k1", NOW + 1, &[a1]).await.unwrap(), "the writer works again");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The listing queries use the expiry-ordered client and end-user indexes and the partial
    /// family index, and a database with earlier versions' indexes (issue-ordered, full) has
    /// them replaced, its tokens listed in the new order.
    #[tokio::test]
    async fn listings_use_the_expiry_ordered_and_partial_indexes() {
        let (dir, s) = temp_store();
        let (short, long) = (
            conformance::token("short", TokenKind::Access, "c1", Some("alice"), conformance::NOW),
            conformance::token("long", TokenKind::Access, "c1", Some("alice"), conformance::NOW - 1),
        );
        let long = TokenRecord { expires_at: short.expires_at + 60, ..long };
        for t in [&short, &long] {
            s.put_token(t).await.unwrap();
        }
        drop(s);
        let old = Connection::open(dir.join("gatehouse.db")).unwrap();
        old.execute_batch(
            "DROP INDEX tokens_of_end_user; DROP INDEX tokens_in_family; DROP INDEX tokens_of_client;
             CREATE INDEX tokens_by_client ON tokens (client_id, kind, issued_at, id);
             CREATE INDEX tokens_by_user ON tokens (end_user, kind, issued_at, id);
             CREATE INDEX tokens_by_family ON tokens (family, issued_at, id);",
        )
        .unwrap();
        drop(old);
        let s = EmbeddedStore::open(&dir).unwrap();
        let alice = TokenQuery { kind: TokenKind::Access, client_id: None, end_user: Some("alice".into()) };
        let (page, next) = s.list_tokens(&alice, conformance::NOW, 0, 2).await.unwrap();
        assert_eq!(page, [short.clone(), long.clone()], "the sooner to expire first, though issued later");
        assert_eq!(next, Some(token_sort_key(long.expires_at, "long")));
        let conn = s.conn.lock().unwrap();
        let plan = |sql: &str| -> String {
            let mut st = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let rows = st.query_map([], |r| r.get::<_, String>(3)).unwrap();
            rows.map(Result::unwrap).collect::<Vec<_>>().join("; ")
        };
        let by_user = plan(
            "SELECT body FROM tokens WHERE kind = 'refresh' AND expires_at > 0 AND revoked_at IS NULL \
             AND rotated_at IS NULL AND end_user = 'alice' ORDER BY expires_at, id",
        );
        assert!(by_user.contains("tokens_of_end_user") && !by_user.contains("TEMP B-TREE"), "{by_user}");
        let by_client = plan(
            "SELECT body FROM tokens WHERE kind = 'access' AND expires_at > 0 AND revoked_at IS NULL \
             AND rotated_at IS NULL AND client_id = 'c1' AND (expires_at, id) > (5, 'x') ORDER BY expires_at, id",
        );
        assert!(by_client.contains("tokens_of_client") && !by_client.contains("TEMP B-TREE"), "{by_client}");
        let family = plan("SELECT body FROM tokens WHERE family = 'f1' AND expires_at > 0 ORDER BY issued_at, id");
        assert!(family.contains("tokens_in_family"), "{family}");
        let names: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'tokens' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            names,
            [
                "sqlite_autoindex_tokens_1",
                "tokens_by_expiry",
                "tokens_in_family",
                "tokens_of_client",
                "tokens_of_end_user"
            ]
        );
        drop(conn);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
