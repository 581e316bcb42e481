//! The authorization-code flow's state: pending requests and codes.
use async_trait::async_trait;
use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::*;

#[async_trait]
impl AuthorizationStore for EmbeddedStore {
    async fn put_pending(&self, p: &PendingAuthorization) -> StoreResult<()> {
        let (id, expires_at, body) = (p.id.0.clone(), p.expires_at, to_json(p)?);
        let due = self.purge_due(Purge::Pending, p.created_at);
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(err)?;
            tx.execute("INSERT INTO pending (id, expires_at, body) VALUES (?1, ?2, ?3)", params![id, expires_at, body])
                .map_err(err)?;
            purge(&tx, due)?;
            tx.commit().map_err(err)
        })
        .await
    }

    async fn get_pending(&self, id: &str, now: i64) -> StoreResult<Option<PendingAuthorization>> {
        let id = id.to_owned();
        self.read(move |c| {
            let body: Option<String> = c
                .query_row("SELECT body FROM pending WHERE id = ?1 AND expires_at > ?2", params![id, now], |r| r.get(0))
                .optional()
                .map_err(err)?;
            body.map(|b| from_json(&b)).transpose()
        })
    }

    async fn update_pending(&self, p: &PendingAuthorization) -> StoreResult<bool> {
        let (id, expires_at, body) = (p.id.0.clone(), p.expires_at, to_json(p)?);
        self.with(move |c| {
            let n = c
                .execute("UPDATE pending SET expires_at = ?2, body = ?3 WHERE id = ?1", params![id, expires_at, body])
                .map_err(err)?;
            Ok(n > 0)
        })
        .await
    }

    async fn delete_pending(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_owned();
        self.with(move |c| Ok(c.execute("DELETE FROM pending WHERE id = ?1", [id]).map_err(err)? > 0)).await
    }

    async fn put_code(&self, code: &AuthorizationCode) -> StoreResult<()> {
        let (id, expires_at, body) = (code.id.clone(), code.expires_at, to_json(code)?);
        let due = self.purge_due(Purge::Codes, code.issued_at);
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(err)?;
            tx.execute(
                "INSERT INTO codes (id, expires_at, consumed_at, body) VALUES (?1, ?2, NULL, ?3)",
                params![id, expires_at, body],
            )
            .map_err(err)?;
            purge(&tx, due)?;
            tx.commit().map_err(err)
        })
        .await
    }

    async fn get_code(&self, id: &str, now: i64) -> StoreResult<Option<AuthorizationCode>> {
        self.read(|c| {
            let row: Option<(String, Option<i64>)> = c
                .prepare_cached("SELECT body, consumed_at FROM codes WHERE id = ?1 AND expires_at > ?2")
                .and_then(|mut st| st.query_row(params![id, now], |r| Ok((r.get(0)?, r.get(1)?))).optional())
                .map_err(err)?;
            row.map(|(body, consumed_at)| {
                let mut code: AuthorizationCode = from_json(&body)?;
                code.consumed_at = consumed_at;
                Ok(code)
            })
            .transpose()
        })
    }

    async fn redeem_code(&self, id: &str, now: i64, tokens: &[TokenRecord]) -> StoreResult<bool> {
        let (id, tokens) = (id.to_owned(), tokens.to_vec());
        self.tokens.run(TokenWrite::Redeem { id, now, tokens }).await
    }
}
