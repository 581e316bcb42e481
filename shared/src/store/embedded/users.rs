//! Users, consents and sign-in failure counters.
use async_trait::async_trait;
use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::*;

#[async_trait]
impl UserStore for EmbeddedStore {
    async fn create_user(&self, user: &User) -> StoreResult<()> {
        let (name, body) = (user.username.clone(), to_json(user)?);
        self.with(move |c| {
            c.execute("INSERT INTO users (username, body) VALUES (?1, ?2)", params![name, body]).map_err(err)?;
            Ok(())
        })
        .await
    }

    async fn get_user(&self, username: &str) -> StoreResult<Option<User>> {
        self.read(|c| {
            let body: Option<String> = c
                .prepare_cached("SELECT body FROM users WHERE username = ?1")
                .and_then(|mut st| st.query_row([username], |r| r.get(0)).optional())
                .map_err(err)?;
            body.map(|b| from_json(&b)).transpose()
        })
    }

    async fn update_user(&self, user: &User, read_version: u64) -> StoreResult<bool> {
        let (name, body, version) = (user.username.clone(), to_json(user)?, read_version as i64);
        self.with(move |c| super::update_versioned(c, "users", "username", &name, &body, version)).await
    }

    async fn delete_user(&self, username: &str, version: Option<u64>) -> StoreResult<bool> {
        let name = username.to_owned();
        self.with(move |c| super::delete_versioned(c, "users", "username", &name, version)).await
    }

    async fn list_users(&self, after: Option<&str>, limit: usize) -> StoreResult<(Vec<User>, Option<String>)> {
        if limit == 0 {
            return Ok((Vec::new(), None));
        }
        let after = after.map(str::to_owned);
        self.read_off(move |c| {
            let sql = "SELECT username, body FROM users WHERE username > ?1 ORDER BY username LIMIT ?2";
            let rows = super::groups::keyset_rows(c, sql, None, after.as_deref(), limit)?;
            let rows = rows.into_iter().map(|(k, b)| Ok((k, from_json(&b)?))).collect::<StoreResult<Vec<_>>>()?;
            Ok(super::groups::keyset_page(rows, limit))
        })
        .await
    }
}

#[async_trait]
impl ConsentStore for EmbeddedStore {
    async fn put_consent(&self, consent: &Consent) -> StoreResult<()> {
        let (user, client, body) = (consent.username.clone(), consent.client_id.clone(), to_json(consent)?);
        self.with(move |c| {
            c.execute(
                "INSERT INTO consents (username, client_id, body) VALUES (?1, ?2, ?3)
                 ON CONFLICT (username, client_id) DO UPDATE SET body = excluded.body",
                params![user, client, body],
            )
            .map_err(err)?;
            Ok(())
        })
        .await
    }

    async fn get_consent(&self, username: &str, client_id: &str) -> StoreResult<Option<Consent>> {
        let (user, client) = (username.to_owned(), client_id.to_owned());
        self.read(move |c| {
            let body: Option<String> = c
                .query_row(
                    "SELECT body FROM consents WHERE username = ?1 AND client_id = ?2",
                    params![user, client],
                    |r| r.get(0),
                )
                .optional()
                .map_err(err)?;
            body.map(|b| from_json(&b)).transpose()
        })
    }

    async fn list_consents(&self, username: &str) -> StoreResult<Vec<Consent>> {
        let user = username.to_owned();
        self.read_off(move |c| {
            let mut st = c.prepare("SELECT body FROM consents WHERE username = ?1 ORDER BY client_id").map_err(err)?;
            let rows = st.query_map([user], |r| r.get::<_, String>(0)).map_err(err)?;
            rows.map(|r| from_json(&r.map_err(err)?)).collect()
        })
        .await
    }

    async fn delete_consent(&self, username: &str, client_id: &str) -> StoreResult<bool> {
        let (user, client) = (username.to_owned(), client_id.to_owned());
        self.with(move |c| {
            let n = c
                .execute("DELETE FROM consents WHERE username = ?1 AND client_id = ?2", params![user, client])
                .map_err(err)?;
            Ok(n > 0)
        })
        .await
    }
}

fn counter(r: &rusqlite::Row<'_>) -> rusqlite::Result<FailureCounter> {
    Ok(FailureCounter { count: r.get(0)?, expires_at: r.get(1)?, locked_until: r.get(2)? })
}

#[async_trait]
impl CounterStore for EmbeddedStore {
    async fn get_counter(&self, key: &str, now: i64) -> StoreResult<Option<FailureCounter>> {
        let key = key.to_owned();
        self.read(move |c| {
            c.query_row(
                "SELECT count, expires_at, locked_until FROM counters WHERE counter_key = ?1 AND expires_at > ?2",
                params![key, now],
                counter,
            )
            .optional()
            .map_err(err)
        })
    }

    async fn increment_counter(&self, key: &str, now: i64, window: i64) -> StoreResult<FailureCounter> {
        let key = key.to_owned();
        let due = self.purge_due(Purge::Counters, now);
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(err)?;
            let live = tx
                .query_row(
                    "SELECT count, expires_at, locked_until FROM counters WHERE counter_key = ?1 AND expires_at > ?2",
                    params![key, now],
                    counter,
                )
                .optional()
                .map_err(err)?;
            let next = match live {
                Some(c) => FailureCounter { count: c.count.saturating_add(1), ..c },
                None => FailureCounter { count: 1, expires_at: now + window, locked_until: None },
            };
            tx.execute(
                "INSERT INTO counters (counter_key, count, expires_at, locked_until) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (counter_key) DO UPDATE
                 SET count = excluded.count, expires_at = excluded.expires_at, locked_until = excluded.locked_until",
                params![key, next.count, next.expires_at, next.locked_until],
            )
            .map_err(err)?;
            purge(&tx, due)?;
            tx.commit().map_err(err)?;
            Ok(next)
        })
        .await
    }

    async fn lock_counter(&self, key: &str, until: i64) -> StoreResult<()> {
        let key = key.to_owned();
        self.with(move |c| {
            c.execute(
                "INSERT INTO counters (counter_key, count, expires_at, locked_until) VALUES (?1, 0, ?2, ?2)
                 ON CONFLICT (counter_key) DO UPDATE SET locked_until = ?2, expires_at = MAX(expires_at, ?2), count = 0",
                params![key, until],
            )
            .map_err(err)?;
            Ok(())
        })
        .await
    }

    async fn clear_counter(&self, key: &str) -> StoreResult<()> {
        let key = key.to_owned();
        self.with(move |c| {
            c.execute("DELETE FROM counters WHERE counter_key = ?1", [key]).map_err(err)?;
            Ok(())
        })
        .await
    }
}
