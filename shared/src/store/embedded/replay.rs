//! Single-use identifiers (JWT `jti`s of assertions and DPoP proofs), kept until they expire.
use async_trait::async_trait;
use rusqlite::params;

use super::*;

/// The table, created on open.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS replay (key TEXT PRIMARY KEY, expires_at INTEGER NOT NULL) WITHOUT ROWID;
";

#[async_trait]
impl ReplayStore for EmbeddedStore {
    async fn first_use(&self, key: &str, now: i64, expires_at: i64) -> StoreResult<bool> {
        let key = key.to_owned();
        self.with(move |c| {
            // An expired entry may be reused (and is replaced); a live one may not.
            c.execute("DELETE FROM replay WHERE expires_at <= ?1", params![now]).map_err(err)?;
            let n = c
                .execute(
                    "INSERT INTO replay (key, expires_at) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
                    params![key, expires_at],
                )
                .map_err(err)?;
            Ok(n == 1)
        })
        .await
    }
}
