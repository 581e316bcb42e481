//! Token records: `TOKEN#<id>` items, listed through the GSIs.
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Put, Select, TransactWriteItem, Update};

use super::*;

/// Active: unexpired at `:now`, unrevoked and unrotated.
const ACTIVE_FILTER: &str =
    "expires_at > :now AND attribute_not_exists(revoked_at) AND attribute_not_exists(rotated_at)";

/// The index, partition key attribute and value that select a token query.
fn token_index(q: &TokenQuery) -> StoreResult<(&'static str, &'static str, String)> {
    let k = q.kind.as_str();
    match (&q.client_id, &q.end_user) {
        (Some(c), Some(u)) => Ok(("by_client_end_user", "client_user_pk", client_user_key(c, u, k))),
        (Some(c), None) => Ok(("by_client", "client_pk", format!("C#{c}#{k}"))),
        (None, Some(u)) => Ok(("by_end_user", "user_pk", format!("U#{u}#{k}"))),
        (None, None) => Err(StoreError::Backend("a token query needs a client or an end user".into())),
    }
}

/// Length-prefixed so that no client id / user pair can collide with another.
fn client_user_key(client: &str, user: &str, kind: &str) -> String {
    format!("CU#{}#{client}#{user}#{kind}", client.len())
}

/// A token record's item, with its keys, index keys and `ttl`.
fn token_item(t: &TokenRecord) -> StoreResult<Item> {
    let kind = t.kind.as_str();
    let mut item = encode(t)?;
    item.insert("pk".into(), s(format!("TOKEN#{}", t.id)));
    item.insert("sk".into(), s("TOKEN"));
    item.insert("ttl".into(), n(t.expires_at));
    item.insert("issued_sk".into(), s(token_sort_key(t.issued_at, &t.id)));
    item.insert("client_pk".into(), s(format!("C#{}#{kind}", t.client_id)));
    if let Some(u) = &t.end_user {
        item.insert("user_pk".into(), s(format!("U#{u}#{kind}")));
        item.insert("client_user_pk".into(), s(client_user_key(&t.client_id, u, kind)));
    }
    if let Some(f) = &t.family {
        item.insert("family_pk".into(), s(format!("F#{f}")));
    }
    Ok(item)
}

impl DynamoStore {
    /// The transaction actions creating `tokens` (each conditional on a new id), for the
    /// transactions that issue tokens (code redemption, refresh rotation).
    pub(super) fn put_token_actions(&self, tokens: &[TokenRecord]) -> StoreResult<Vec<TransactWriteItem>> {
        tokens
            .iter()
            .map(|t| {
                let put = Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(token_item(t)?))
                    .condition_expression("attribute_not_exists(pk)")
                    .build();
                Ok(TransactWriteItem::builder().put(built(put)?).build())
            })
            .collect()
    }
}

#[async_trait]
impl TokenStore for DynamoStore {
    async fn put_token(&self, t: &TokenRecord) -> StoreResult<()> {
        self.put_new(token_item(t)?).await
    }

    async fn get_token(&self, id: &str, now: i64) -> StoreResult<Option<TokenRecord>> {
        let Some(item) = self.get(format!("TOKEN#{id}"), "TOKEN").await? else {
            return Ok(None);
        };
        let t: TokenRecord = decode(item)?;
        Ok((t.expires_at > now).then_some(t))
    }

    async fn revoke_token(&self, id: &str, at: i64) -> StoreResult<bool> {
        let update = self
            .ddb
            .update_item()
            .key("pk", s(format!("TOKEN#{id}")))
            .key("sk", s("TOKEN"))
            .update_expression("SET revoked_at = :at, wid = :wid")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(revoked_at)")
            .expression_attribute_values(":at", n(at));
        Ok(self.update_once(update).await?.is_some())
    }

    async fn rotate_refresh(
        &self,
        old_id: &str,
        now: i64,
        successor_response: &str,
        new_tokens: &[TokenRecord],
    ) -> StoreResult<bool> {
        let rotate = Update::builder()
            .table_name(&self.table)
            .key("pk", s(format!("TOKEN#{old_id}")))
            .key("sk", s("TOKEN"))
            .update_expression("SET rotated_at = :now, successor_response = :successor")
            .condition_expression(
                "attribute_exists(pk) AND attribute_not_exists(rotated_at) AND attribute_not_exists(revoked_at) \
                 AND expires_at > :now",
            )
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":successor", s(successor_response))
            .build();
        let mut actions = vec![TransactWriteItem::builder().update(built(rotate)?).build()];
        actions.extend(self.put_token_actions(new_tokens)?);
        self.transact_single_use(actions).await
    }

    async fn list_family(&self, family: &str, now: i64) -> StoreResult<Vec<TokenRecord>> {
        let mut items = Vec::new();
        let values = HashMap::from([(":now".to_owned(), n(now))]);
        let key = format!("F#{family}");
        self.query_pages(Some("by_family"), "family_pk", key, None, Some((ACTIVE_FILTER, values)), |i| {
            items.push(i);
            true
        })
        .await?;
        items.into_iter().map(decode).collect()
    }

    async fn list_tokens(
        &self,
        q: &TokenQuery,
        now: i64,
        offset: usize,
        limit: usize,
    ) -> StoreResult<Vec<TokenRecord>> {
        let (index, attr, key) = token_index(q)?;
        let (mut skipped, mut items): (usize, Vec<Item>) = (0, Vec::new());
        if limit == 0 {
            return Ok(Vec::new());
        }
        let values = HashMap::from([(":now".to_owned(), n(now))]);
        self.query_pages(Some(index), attr, key, None, Some((ACTIVE_FILTER, values)), |i| {
            if skipped < offset {
                skipped += 1;
            } else {
                items.push(i);
            }
            items.len() < limit
        })
        .await?;
        items.into_iter().map(decode).collect()
    }

    async fn list_tokens_after(
        &self,
        q: &TokenQuery,
        now: i64,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<(Vec<TokenRecord>, Option<String>)> {
        let (index, attr, key) = token_index(q)?;
        if limit == 0 {
            return Ok((Vec::new(), None));
        }
        let mut items = Vec::new();
        let values = HashMap::from([(":now".to_owned(), n(now))]);
        // One more than the page, to know whether more follow.
        self.query_after(index, attr, &key, after, Some((ACTIVE_FILTER, values)), limit + 1, |i| {
            items.push(i);
            items.len() <= limit
        })
        .await?;
        let more = items.len() > limit;
        items.truncate(limit);
        let page: Vec<TokenRecord> = items.into_iter().map(decode).collect::<StoreResult<_>>()?;
        let next = if more { page.last().map(|t| token_sort_key(t.issued_at, &t.id)) } else { None };
        Ok((page, next))
    }

    async fn count_tokens(&self, q: &TokenQuery, now: i64) -> StoreResult<u64> {
        let (index, attr, key) = token_index(q)?;
        if !key_fits(&key, "") {
            return Ok(0); // no item has such a key
        }
        let mut total = 0u64;
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .ddb
                .query()
                .table_name(&self.table)
                .index_name(index)
                .select(Select::Count)
                .key_condition_expression("#k = :k")
                .filter_expression(ACTIVE_FILTER)
                .expression_attribute_names("#k", attr)
                .expression_attribute_values(":k", s(key.clone()))
                .expression_attribute_values(":now", n(now))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(classify)?;
            total += out.count.max(0) as u64;
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(total),
            }
        }
    }
}
