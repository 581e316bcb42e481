//! Single-use identifiers (JWT `jti`s of assertions and DPoP proofs), kept until they expire.
use async_trait::async_trait;
use rusqlite::params;

use super::*;

/// The table, created on open.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS replay (key TEXT PRIMARY KEY, expires_at INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS replay_expiry ON replay (expires_at);
";

#[async_trait]
impl ReplayStore for EmbeddedStore {
    async fn first_use(&self, key: &str, now: i64, expires_at: i64) -> StoreResult<bool> {
        let key = key.to_owned();
        let due = self.purge_due(Purge::Replay, now);
        self.with(move |c| {
            // One statement, one commit: an expired entry may be reused (and is replaced), a
            // live one may not. Expired rows are swept like every other table's (an index on
            // the expiry), not scanned for on every call.
            let n = c
                .prepare_cached(
                    "INSERT INTO replay (key, expires_at) VALUES (?1, ?2)
                     ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at WHERE replay.expires_at <= ?3",
                )
                .and_then(|mut st| st.execute(params![key, expires_at, now]))
                .map_err(err)?;
            // The id is recorded: a failed sweep (another process holds the write lock) must not
            // fail the call, whose retry would then be refused as a replay.
            if let Err(e) = purge(c, due) {
                tracing::warn!(error = %e, "sweeping expired single-use ids failed; the next sweep retries");
            }
            Ok(n == 1)
        })
        .await
    }
}
