//! Token records: `TOKEN#<id>` items, listed through the GSIs.
//!
//! The index sort key `issued_sk` of a token is its [`token_sort_key`] (`E`, expiry, `#`, id),
//! so a listing of active tokens is a Query from the first unexpired key: expired records,
//! which TTL deletion leaves in place for up to two days, are never read. A token revoked or
//! rotated loses its index partition keys (`REMOVE`), leaving the indexes (sparse indexes), so
//! those are never read either: a listing or count reads the active tokens and nothing else,
//! however many a client has issued.
//!
//! Items earlier versions wrote carry an issue-time sort key (12 digits, `#`, id) and keep
//! their index keys when revoked or rotated. They sort before every `E` key, and each listing
//! reads their range first, filtered as before, until TTL deletion has removed them (an empty
//! range costs one Query request).
use async_trait::async_trait;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::{Put, Select, TransactWriteItem, Update};

use super::*;

/// Active: unexpired at `:now`, unrevoked and unrotated. The key conditions below leave out
/// what a current version expired, revoked or rotated; the filter is for earlier versions'
/// items.
const ACTIVE_FILTER: &str =
    "expires_at > :now AND attribute_not_exists(revoked_at) AND attribute_not_exists(rotated_at)";

/// What revocation and rotation remove: the index partition keys, so the token leaves every
/// listing index.
const UNLIST: &str = "REMOVE client_pk, user_pk, client_user_pk, family_pk";

/// The bounds of earlier versions' sort keys (12 digits, `#`, id), inclusive.
const ISSUED_FIRST: &str = "0";
const ISSUED_LAST: &str = "9~";

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

/// One key range of a token partition a listing reads, in listing order.
#[derive(Debug, PartialEq, Eq)]
struct KeyRange {
    /// The sort-key condition, on `:lo` (and `:hi`).
    condition: &'static str,
    lo: String,
    hi: Option<&'static str>,
    /// A key the range includes but the listing has shown already (BETWEEN is inclusive).
    skip: Option<String>,
}

/// The ranges a listing reads at `now` after the sort key `after`: earlier versions' keys
/// (from `after` if it is one of them), then the keys of tokens unexpired at `now` (from
/// `after` if it is one of them and later).
fn key_ranges(after: Option<&str>, now: i64) -> StoreResult<Vec<KeyRange>> {
    const BETWEEN: &str = "#k = :k AND issued_sk BETWEEN :lo AND :hi";
    let position = match after {
        None => None,
        Some(a) => {
            Some(parse_token_sort_key(a).ok_or_else(|| StoreError::Backend(format!("not a token sort key: {a:?}")))?)
        }
    };
    let first_active = format!("E{:012}", now.saturating_add(1).max(0));
    let issued = |from: Option<&str>| KeyRange {
        condition: BETWEEN,
        lo: from.unwrap_or(ISSUED_FIRST).to_owned(),
        hi: Some(ISSUED_LAST),
        skip: from.map(str::to_owned),
    };
    let active = |from: Option<&str>| match from {
        Some(k) if k >= first_active.as_str() => {
            KeyRange { condition: "#k = :k AND issued_sk > :lo", lo: k.to_owned(), hi: None, skip: None }
        }
        _ => KeyRange { condition: "#k = :k AND issued_sk >= :lo", lo: first_active.clone(), hi: None, skip: None },
    };
    Ok(match position {
        None => vec![issued(None), active(None)],
        Some(TokenPosition::Issued(..)) => vec![issued(after), active(None)],
        Some(TokenPosition::Expiring(..)) => vec![active(after)],
    })
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
    item.insert("issued_sk".into(), s(token_sort_key(t.expires_at, &t.id)));
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
            .update_expression(format!("SET revoked_at = :at, wid = :wid {UNLIST}"))
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
            .update_expression(format!("SET rotated_at = :now, successor_response = :successor {UNLIST}"))
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
        // One Query of the whole partition, filtered: a family's index entries are few (its
        // active tokens and the access tokens that expired since TTL deletion last ran), and
        // family revocation, on the path of `/revoke`, stays one round trip.
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
    ) -> StoreResult<(Vec<TokenRecord>, Option<String>)> {
        let (index, attr, key) = token_index(q)?;
        if limit == 0 {
            return Ok((Vec::new(), None));
        }
        let (mut skipped, mut items): (usize, Vec<Item>) = (0, Vec::new());
        let page = offset.saturating_add(limit);
        self.query_tokens(index, attr, &key, now, None, Some(page), |i| {
            if skipped < offset {
                skipped += 1;
            } else {
                items.push(i);
            }
            items.len() < limit
        })
        .await?;
        let next = items.last().filter(|_| items.len() == limit).map(sort_key_of).transpose()?;
        Ok((items.into_iter().map(decode).collect::<StoreResult<_>>()?, next))
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
        // One more than the page, to know whether more follow.
        self.query_tokens(index, attr, &key, now, after, Some(limit + 1), |i| {
            items.push(i);
            items.len() <= limit
        })
        .await?;
        let more = items.len() > limit;
        items.truncate(limit);
        let next = items.last().filter(|_| more).map(sort_key_of).transpose()?;
        Ok((items.into_iter().map(decode).collect::<StoreResult<_>>()?, next))
    }

    async fn count_tokens(&self, q: &TokenQuery, now: i64) -> StoreResult<u64> {
        let (index, attr, key) = token_index(q)?;
        let mut total = 0u64;
        for range in key_ranges(None, now)? {
            if !key_fits(&key, &range.lo) {
                return Ok(0); // no item has such a key
            }
            let mut start: Option<Item> = None;
            loop {
                let out = self
                    .token_range_query(index, attr, &key, &range, now)
                    .select(Select::Count)
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map_err(classify)?;
                total += out.count.max(0) as u64;
                match out.last_evaluated_key {
                    Some(k) if !k.is_empty() => start = Some(k),
                    _ => break,
                }
            }
        }
        Ok(total)
    }
}

/// The listing position of an item a token Query returned: its index sort key.
fn sort_key_of(item: &Item) -> StoreResult<String> {
    match item.get("issued_sk") {
        Some(AttributeValue::S(k)) => Ok(k.clone()),
        _ => Err(StoreError::Backend("a listed token item has no sort key".into())),
    }
}

impl DynamoStore {
    /// A Query of one key range of a token partition (`key` of `attr` in `index`), active
    /// tokens at `now` only.
    fn token_range_query(&self, index: &str, attr: &str, key: &str, range: &KeyRange, now: i64) -> QueryFluentBuilder {
        let mut q = self
            .ddb
            .query()
            .table_name(&self.table)
            .index_name(index)
            .key_condition_expression(range.condition)
            .filter_expression(ACTIVE_FILTER)
            .expression_attribute_names("#k", attr)
            .expression_attribute_values(":k", s(key))
            .expression_attribute_values(":lo", s(range.lo.clone()))
            .expression_attribute_values(":now", n(now));
        if let Some(hi) = range.hi {
            q = q.expression_attribute_values(":hi", s(hi));
        }
        q
    }

    /// The active tokens of a partition at `now` in listing order, after the sort key `after`
    /// ([`key_ranges`]), `page` items per request at most (DynamoDB's 1 MB otherwise), calling
    /// `each` per item until it returns `false`.
    #[allow(clippy::too_many_arguments)]
    async fn query_tokens(
        &self,
        index: &str,
        attr: &str,
        key: &str,
        now: i64,
        after: Option<&str>,
        page: Option<usize>,
        mut each: impl FnMut(Item) -> bool,
    ) -> StoreResult<()> {
        for range in key_ranges(after, now)? {
            if !key_fits(key, &range.lo) {
                return Ok(()); // no item has such a key: DynamoDB would refuse the request
            }
            let mut start: Option<Item> = None;
            loop {
                let out = self
                    .token_range_query(index, attr, key, &range, now)
                    .set_limit(page.map(|p| p.clamp(1, 1000) as i32))
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map_err(classify)?;
                for item in out.items.unwrap_or_default() {
                    if range.skip.is_some() && range.skip.as_deref() == sort_key_of(&item).ok().as_deref() {
                        continue;
                    }
                    if !each(item) {
                        return Ok(());
                    }
                }
                match out.last_evaluated_key {
                    Some(k) if !k.is_empty() => start = Some(k),
                    _ => break,
                }
            }
        }
        Ok(())
    }
}
