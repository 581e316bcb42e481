//! `EmbeddedStore`: SQLite in the data directory, for the local server.
//!
//! Durable (WAL journal, `synchronous=FULL`) and safe with several processes on one data
//! directory: every write is a single statement or an `IMMEDIATE` transaction, and a busy
//! database is waited for (`busy_timeout`). Calls run on tokio's blocking pool.
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, ErrorCode, OptionalExtension, params};

use super::*;

/// The embedded backend.
#[derive(Clone)]
pub struct EmbeddedStore {
    conn: Arc<Mutex<Connection>>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS clients (client_id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS resource_servers (identifier TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (
  id TEXT PRIMARY KEY, kind TEXT NOT NULL, client_id TEXT NOT NULL, end_user TEXT,
  issued_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, revoked_at INTEGER, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS tokens_by_client ON tokens (client_id, kind, issued_at, id);
CREATE INDEX IF NOT EXISTS tokens_by_user ON tokens (end_user, kind, issued_at, id);
CREATE INDEX IF NOT EXISTS tokens_by_expiry ON tokens (expires_at);
CREATE TABLE IF NOT EXISTS signing_keys (generation INTEGER PRIMARY KEY, kid TEXT NOT NULL UNIQUE, body TEXT NOT NULL);
";

/// Expired token rows are deleted this long after expiry (they are filtered on read before).
const PURGE_AFTER_SECS: i64 = 86_400;

fn err(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::ConstraintViolation) => StoreError::Conflict,
        Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => StoreError::Unavailable(e.to_string()),
        _ => StoreError::Backend(e.to_string()),
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Backend(e.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> StoreResult<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Backend(format!("corrupt row: {e}")))
}

impl EmbeddedStore {
    /// Opens (or creates) `gatehouse.db` in `dir`.
    pub fn open(dir: &Path) -> StoreResult<Self> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Backend(format!("data dir: {e}")))?;
        let conn = Connection::open(dir.join("gatehouse.db")).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        Ok(Self { conn: Arc::new(Mutex::new(conn)) })
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

/// The WHERE clause and parameters selecting active tokens of a query.
fn token_filter(q: &TokenQuery, now: i64) -> (String, Vec<rusqlite::types::Value>) {
    use rusqlite::types::Value;
    let mut sql = String::from("kind = ? AND expires_at > ? AND revoked_at IS NULL");
    let mut p: Vec<Value> = vec![Value::Text(q.kind.as_str().into()), Value::Integer(now)];
    if let Some(c) = &q.client_id {
        sql.push_str(" AND client_id = ?");
        p.push(Value::Text(c.clone()));
    }
    if let Some(u) = &q.end_user {
        sql.push_str(" AND end_user = ?");
        p.push(Value::Text(u.clone()));
    }
    (sql, p)
}

#[async_trait]
impl ClientStore for EmbeddedStore {
    async fn create_client(&self, client: &Client) -> StoreResult<()> {
        let (id, body) = (client.client_id.clone(), to_json(client)?);
        self.with(move |c| {
            c.execute("INSERT INTO clients (client_id, body) VALUES (?1, ?2)", params![id, body]).map_err(err)?;
            Ok(())
        })
        .await
    }

    async fn get_client(&self, client_id: &str) -> StoreResult<Option<Client>> {
        let id = client_id.to_owned();
        self.with(move |c| {
            let body: Option<String> = c
                .query_row("SELECT body FROM clients WHERE client_id = ?1", [id], |r| r.get(0))
                .optional()
                .map_err(err)?;
            body.map(|b| from_json(&b)).transpose()
        })
        .await
    }

    async fn delete_client(&self, client_id: &str) -> StoreResult<bool> {
        let id = client_id.to_owned();
        self.with(move |c| Ok(c.execute("DELETE FROM clients WHERE client_id = ?1", [id]).map_err(err)? > 0)).await
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
        self.with(move |c| {
            let body: Option<String> = c
                .query_row("SELECT body FROM resource_servers WHERE identifier = ?1", [id], |r| r.get(0))
                .optional()
                .map_err(err)?;
            body.map(|b| from_json(&b)).transpose()
        })
        .await
    }

    async fn list_resource_servers(&self) -> StoreResult<Vec<ResourceServer>> {
        self.with(|c| {
            let mut st = c.prepare("SELECT body FROM resource_servers ORDER BY identifier").map_err(err)?;
            let rows = st.query_map([], |r| r.get::<_, String>(0)).map_err(err)?;
            rows.map(|r| from_json(&r.map_err(err)?)).collect()
        })
        .await
    }
}

#[async_trait]
impl TokenStore for EmbeddedStore {
    async fn put_token(&self, t: &TokenRecord) -> StoreResult<()> {
        let t = t.clone();
        let body = to_json(&t)?;
        self.with(move |c| {
            c.execute(
                "INSERT INTO tokens (id, kind, client_id, end_user, issued_at, expires_at, revoked_at, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![t.id, t.kind.as_str(), t.client_id, t.end_user, t.issued_at, t.expires_at, t.revoked_at, body],
            )
            .map_err(err)?;
            // Housekeeping in the same call: what TTL does for DynamoDB.
            c.execute("DELETE FROM tokens WHERE expires_at < ?1", [t.issued_at - PURGE_AFTER_SECS]).map_err(err)?;
            Ok(())
        })
        .await
    }

    async fn get_token(&self, id: &str, now: i64) -> StoreResult<Option<TokenRecord>> {
        let id = id.to_owned();
        self.with(move |c| {
            let row: Option<(String, Option<i64>)> = c
                .query_row(
                    "SELECT body, revoked_at FROM tokens WHERE id = ?1 AND expires_at > ?2",
                    params![id, now],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(err)?;
            row.map(|(b, revoked_at)| {
                let mut t: TokenRecord = from_json(&b)?;
                t.revoked_at = revoked_at;
                Ok(t)
            })
            .transpose()
        })
        .await
    }

    async fn revoke_token(&self, id: &str, at: i64) -> StoreResult<bool> {
        let id = id.to_owned();
        self.with(move |c| {
            let n = c
                .execute("UPDATE tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL", params![id, at])
                .map_err(err)?;
            Ok(n > 0)
        })
        .await
    }

    async fn list_tokens(
        &self,
        q: &TokenQuery,
        now: i64,
        offset: usize,
        limit: usize,
    ) -> StoreResult<Vec<TokenRecord>> {
        let (filter, mut p) = token_filter(q, now);
        p.push(rusqlite::types::Value::Integer(limit as i64));
        p.push(rusqlite::types::Value::Integer(offset as i64));
        self.with(move |c| {
            let sql = format!("SELECT body FROM tokens WHERE {filter} ORDER BY issued_at, id LIMIT ? OFFSET ?");
            let mut st = c.prepare(&sql).map_err(err)?;
            let rows = st.query_map(rusqlite::params_from_iter(p), |r| r.get::<_, String>(0)).map_err(err)?;
            rows.map(|r| from_json(&r.map_err(err)?)).collect()
        })
        .await
    }

    async fn count_tokens(&self, q: &TokenQuery, now: i64) -> StoreResult<u64> {
        let (filter, p) = token_filter(q, now);
        self.with(move |c| {
            let n: i64 = c
                .query_row(&format!("SELECT COUNT(*) FROM tokens WHERE {filter}"), rusqlite::params_from_iter(p), |r| {
                    r.get(0)
                })
                .map_err(err)?;
            Ok(n as u64)
        })
        .await
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

    async fn list_signing_keys(&self) -> StoreResult<Vec<StoredSigningKey>> {
        self.with(|c| {
            let mut st = c.prepare("SELECT body FROM signing_keys ORDER BY generation").map_err(err)?;
            let rows = st.query_map([], |r| r.get::<_, String>(0)).map_err(err)?;
            rows.map(|r| from_json(&r.map_err(err)?)).collect()
        })
        .await
    }
}
