//! Groups and memberships: one row per membership, keyed (group, user) so `is_member` is one
//! primary-key lookup, with an index by user for `groups_of`. Deleting a group deletes its
//! memberships in the same transaction; `add_member` checks the group and the user exist in its.
use async_trait::async_trait;
use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::*;

/// The tables, created on open (`IF NOT EXISTS`: a data directory of an older schema gains them).
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS named_groups (name TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS group_members (
  group_name TEXT NOT NULL, username TEXT NOT NULL, PRIMARY KEY (group_name, username)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS group_members_by_user ON group_members (username, group_name);
";

/// Up to `limit + 1` rows in key order (a bound `after` key or none), cut to `limit`, with the
/// key of the last one when more follow.
pub(super) fn keyset_page<T>(mut rows: Vec<(String, T)>, limit: usize) -> (Vec<T>, Option<String>) {
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = if more { rows.last().map(|(k, _)| k.clone()) } else { None };
    (rows.into_iter().map(|(_, v)| v).collect(), next)
}

/// Runs a keyset query selecting (key, value) pairs, whose parameters are `?1`, the key after
/// which to start (`''` for the first page: every key is non-empty), `?2`, how many rows
/// (`limit + 1`), and `?3`, `extra` if any.
pub(super) fn keyset_rows(
    c: &Connection,
    sql: &str,
    extra: Option<&str>,
    after: Option<&str>,
    limit: usize,
) -> StoreResult<Vec<(String, String)>> {
    let mut st = c.prepare(sql).map_err(err)?;
    let n = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
    let map = |r: &rusqlite::Row<'_>| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?));
    let after = after.unwrap_or("");
    let rows = match extra {
        Some(x) => st.query_map(params![after, n, x], map),
        None => st.query_map(params![after, n], map),
    }
    .map_err(err)?;
    rows.map(|r| r.map_err(err)).collect()
}

#[async_trait]
impl GroupStore for EmbeddedStore {
    async fn create_group(&self, group: &Group) -> StoreResult<()> {
        let (name, body) = (group.name.clone(), to_json(group)?);
        self.with(move |c| {
            c.execute("INSERT INTO named_groups (name, body) VALUES (?1, ?2)", params![name, body]).map_err(err)?;
            Ok(())
        })
        .await
    }

    async fn get_group(&self, name: &str) -> StoreResult<Option<Group>> {
        let name = name.to_owned();
        self.read(move |c| {
            let body: Option<String> = c
                .query_row("SELECT body FROM named_groups WHERE name = ?1", [name], |r| r.get(0))
                .optional()
                .map_err(err)?;
            body.map(|b| from_json(&b)).transpose()
        })
    }

    async fn list_groups(&self, after: Option<&str>, limit: usize) -> StoreResult<(Vec<Group>, Option<String>)> {
        if limit == 0 {
            return Ok((Vec::new(), None));
        }
        let after = after.map(str::to_owned);
        self.read_off(move |c| {
            let rows = keyset_rows(
                c,
                "SELECT name, body FROM named_groups WHERE name > ?1 ORDER BY name LIMIT ?2",
                None,
                after.as_deref(),
                limit,
            )?;
            let rows = rows.into_iter().map(|(k, b)| Ok((k, from_json(&b)?))).collect::<StoreResult<Vec<_>>>()?;
            Ok(keyset_page(rows, limit))
        })
        .await
    }

    async fn update_group(&self, group: &Group) -> StoreResult<bool> {
        let (name, body) = (group.name.clone(), to_json(group)?);
        self.with(move |c| {
            Ok(c.execute("UPDATE named_groups SET body = ?2 WHERE name = ?1", params![name, body]).map_err(err)? > 0)
        })
        .await
    }

    async fn delete_group(&self, name: &str) -> StoreResult<bool> {
        let name = name.to_owned();
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(err)?;
            tx.execute("DELETE FROM group_members WHERE group_name = ?1", [&name]).map_err(err)?;
            let n = tx.execute("DELETE FROM named_groups WHERE name = ?1", [&name]).map_err(err)?;
            tx.commit().map_err(err)?;
            Ok(n > 0)
        })
        .await
    }

    async fn add_member(&self, group: &str, username: &str) -> StoreResult<bool> {
        let (group, user) = (group.to_owned(), username.to_owned());
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(err)?;
            let both: bool = tx
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM named_groups WHERE name = ?1)
                        AND EXISTS (SELECT 1 FROM users WHERE username = ?2)",
                    params![group, user],
                    |r| r.get(0),
                )
                .map_err(err)?;
            if both {
                tx.execute(
                    "INSERT OR IGNORE INTO group_members (group_name, username) VALUES (?1, ?2)",
                    params![group, user],
                )
                .map_err(err)?;
            }
            tx.commit().map_err(err)?;
            Ok(both)
        })
        .await
    }

    async fn remove_member(&self, group: &str, username: &str) -> StoreResult<bool> {
        let (group, user) = (group.to_owned(), username.to_owned());
        self.with(move |c| {
            let n = c
                .execute("DELETE FROM group_members WHERE group_name = ?1 AND username = ?2", params![group, user])
                .map_err(err)?;
            Ok(n > 0)
        })
        .await
    }

    async fn is_member(&self, group: &str, username: &str) -> StoreResult<bool> {
        let (group, user) = (group.to_owned(), username.to_owned());
        self.read(move |c| {
            c.query_row(
                "SELECT 1 FROM group_members WHERE group_name = ?1 AND username = ?2",
                params![group, user],
                |_| Ok(()),
            )
            .optional()
            .map(|r| r.is_some())
            .map_err(err)
        })
    }

    async fn list_members(
        &self,
        group: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<(Vec<String>, Option<String>)> {
        if limit == 0 {
            return Ok((Vec::new(), None));
        }
        let (group, after) = (group.to_owned(), after.map(str::to_owned));
        self.read_off(move |c| {
            let rows = keyset_rows(
                c,
                "SELECT username, username FROM group_members
                 WHERE group_name = ?3 AND username > ?1 ORDER BY username LIMIT ?2",
                Some(&group),
                after.as_deref(),
                limit,
            )?;
            Ok(keyset_page(rows, limit))
        })
        .await
    }

    async fn groups_of(&self, username: &str) -> StoreResult<Vec<String>> {
        let user = username.to_owned();
        self.read(move |c| {
            let mut st = c
                .prepare("SELECT group_name FROM group_members WHERE username = ?1 ORDER BY group_name")
                .map_err(err)?;
            let rows = st.query_map([user], |r| r.get::<_, String>(0)).map_err(err)?;
            rows.map(|r| r.map_err(err)).collect()
        })
    }

    async fn remove_user_from_groups(&self, username: &str) -> StoreResult<u64> {
        let user = username.to_owned();
        self.with(move |c| Ok(c.execute("DELETE FROM group_members WHERE username = ?1", [user]).map_err(err)? as u64))
            .await
    }
}
