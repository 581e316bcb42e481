//! The tenant's settings: one row, replaced only by a write that names the version it read.
use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::*;
use crate::settings::StoredSettings;

/// The table, created on open.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS settings (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL, body TEXT NOT NULL);
";

#[async_trait]
impl SettingsStore for EmbeddedStore {
    async fn get_settings(&self) -> StoreResult<Option<StoredSettings>> {
        self.read(|c| {
            let body: Option<String> =
                c.query_row("SELECT body FROM settings WHERE id = 1", [], |r| r.get(0)).optional().map_err(err)?;
            body.map(|b| from_json(&b)).transpose()
        })
    }

    async fn put_settings(&self, s: &StoredSettings) -> StoreResult<bool> {
        let (version, body) = (s.version, to_json(s)?);
        let version = i64::try_from(version).map_err(|_| StoreError::Backend("settings version overflow".into()))?;
        self.with(move |c| {
            let n = if version == 1 {
                c.execute(
                    "INSERT INTO settings (id, version, body) VALUES (1, ?1, ?2) ON CONFLICT (id) DO NOTHING",
                    params![version, body],
                )
            } else {
                c.execute(
                    "UPDATE settings SET version = ?1, body = ?2 WHERE id = 1 AND version = ?1 - 1",
                    params![version, body],
                )
            }
            .map_err(err)?;
            Ok(n == 1)
        })
        .await
    }
}
