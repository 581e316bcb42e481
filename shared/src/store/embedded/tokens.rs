//! Token records: the `tokens` table. The JSON `body` is the record as issued; the columns that
//! change later (`revoked_at`, `rotated_at`, `successor_response`) are read from their own
//! columns into every returned record.
use async_trait::async_trait;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params};

use super::*;

/// The columns [`record`] reads, in its order.
const RECORD_COLUMNS: &str = "body, revoked_at, rotated_at, successor_response";

/// Active: unexpired at the `?` that follows, unrevoked and unrotated.
/// One token by id (hot: every introspection).
const GET_TOKEN: &str =
    "SELECT body, revoked_at, rotated_at, successor_response FROM tokens WHERE id = ?1 AND expires_at > ?2";
const ACTIVE: &str = "expires_at > ? AND revoked_at IS NULL AND rotated_at IS NULL";

/// A row selected with [`RECORD_COLUMNS`].
type Row = (String, Option<i64>, Option<i64>, Option<String>);

fn record(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn decode((body, revoked_at, rotated_at, successor_response): Row) -> StoreResult<TokenRecord> {
    let mut t: TokenRecord = from_json(&body)?;
    (t.revoked_at, t.rotated_at, t.successor_response) = (revoked_at, rotated_at, successor_response);
    Ok(t)
}

/// Inserts a new token row (`Conflict` if the id exists): shared by `put_token` and the
/// transactions that issue tokens (code redemption, refresh rotation).
pub(super) fn insert_token(c: &Connection, t: &TokenRecord) -> StoreResult<()> {
    let body = to_json(t)?;
    // Cached statements (here and on the other hot paths): parsing the SQL again on every call
    // cost more CPU than running it.
    let mut st = c
        .prepare_cached(
            "INSERT INTO tokens (id, kind, client_id, end_user, issued_at, expires_at, revoked_at, body,
                                 family, rotated_at, successor_response)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )
        .map_err(err)?;
    st.execute(params![
        t.id,
        t.kind.as_str(),
        t.client_id,
        t.end_user,
        t.issued_at,
        t.expires_at,
        t.revoked_at,
        body,
        t.family,
        t.rotated_at,
        t.successor_response
    ])
    .map_err(err)?;
    Ok(())
}

/// The WHERE clause and parameters selecting active tokens of a query.
fn token_filter(q: &TokenQuery, now: i64) -> (String, Vec<Value>) {
    let mut sql = format!("kind = ? AND {ACTIVE}");
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

/// Every record selected by `WHERE {filter}` with `p` (the filter ends with its `ORDER BY`).
fn select(c: &Connection, filter: &str, p: Vec<Value>) -> StoreResult<Vec<TokenRecord>> {
    let sql = format!("SELECT {RECORD_COLUMNS} FROM tokens WHERE {filter}");
    let mut st = c.prepare(&sql).map_err(err)?;
    let rows = st.query_map(rusqlite::params_from_iter(p), record).map_err(err)?;
    rows.map(|r| decode(r.map_err(err)?)).collect()
}

#[async_trait]
impl TokenStore for EmbeddedStore {
    async fn put_token(&self, t: &TokenRecord) -> StoreResult<()> {
        let due = self.purge_due(Purge::Tokens, t.issued_at);
        self.tokens.run(TokenWrite::Insert(Box::new(t.clone()))).await?;
        if due.is_some() {
            // Housekeeping after the insert, on the ordinary write path (its own transaction).
            // The token is stored: a failed sweep must not fail the request (the next is due in
            // a minute).
            if let Err(e) = self.with(move |c| purge(c, due)).await {
                tracing::warn!(error = %e, "expired-token sweep failed");
            }
        }
        Ok(())
    }

    async fn get_token(&self, id: &str, now: i64) -> StoreResult<Option<TokenRecord>> {
        self.read(|c| {
            c.prepare_cached(GET_TOKEN)
                .and_then(|mut st| st.query_row(params![id, now], record).optional())
                .map_err(err)?
                .map(decode)
                .transpose()
        })
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

    async fn rotate_refresh(
        &self,
        old_id: &str,
        now: i64,
        successor_response: &str,
        new_tokens: &[TokenRecord],
    ) -> StoreResult<bool> {
        let (id, successor, tokens) = (old_id.to_owned(), successor_response.to_owned(), new_tokens.to_vec());
        self.tokens.run(TokenWrite::Rotate { id, now, successor, tokens }).await
    }

    async fn list_family(&self, family: &str, now: i64) -> StoreResult<Vec<TokenRecord>> {
        let p = vec![Value::Text(family.to_owned()), Value::Integer(now)];
        self.read_off(move |c| select(c, &format!("family = ? AND {ACTIVE} ORDER BY issued_at, id"), p)).await
    }

    async fn list_tokens(
        &self,
        q: &TokenQuery,
        now: i64,
        offset: usize,
        limit: usize,
    ) -> StoreResult<(Vec<TokenRecord>, Option<String>)> {
        let (filter, mut p) = token_filter(q, now);
        p.push(Value::Integer(limit as i64));
        p.push(Value::Integer(offset as i64));
        let page =
            self.read_off(move |c| select(c, &format!("{filter} ORDER BY expires_at, id LIMIT ? OFFSET ?"), p)).await?;
        let next = page.last().filter(|_| page.len() == limit).map(|t| token_sort_key(t.expires_at, &t.id));
        Ok((page, next))
    }

    async fn list_tokens_after(
        &self,
        q: &TokenQuery,
        now: i64,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<(Vec<TokenRecord>, Option<String>)> {
        let (mut filter, mut p) = token_filter(q, now);
        if let Some(after) = after {
            // An earlier version's cursor (an issue time) is read as an expiry: a token issued
            // after it expires after it too, so none is skipped (`TokenPosition::Issued`).
            let (at, id) = parse_token_sort_key(after)
                .ok_or_else(|| StoreError::Backend(format!("not a token sort key: {after:?}")))?
                .at_and_id();
            filter.push_str(" AND (expires_at, id) > (?, ?)");
            p.extend([Value::Integer(at), Value::Text(id.to_owned())]);
        }
        // One more than the page, to know whether more follow.
        p.push(Value::Integer(limit as i64 + 1));
        let mut page =
            self.read_off(move |c| select(c, &format!("{filter} ORDER BY expires_at, id LIMIT ?"), p)).await?;
        let more = page.len() > limit;
        page.truncate(limit);
        let next = if more { page.last().map(|t| token_sort_key(t.expires_at, &t.id)) } else { None };
        Ok((page, next))
    }

    async fn count_tokens(&self, q: &TokenQuery, now: i64) -> StoreResult<u64> {
        let (filter, p) = token_filter(q, now);
        self.read_off(move |c| {
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

#[cfg(test)]
mod tests {
    #[test]
    fn the_hot_token_read_selects_the_record_columns() {
        assert!(super::GET_TOKEN.starts_with(&format!("SELECT {} FROM tokens ", super::RECORD_COLUMNS)));
    }
}
