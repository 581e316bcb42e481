//! `DynamoStore`: one DynamoDB table per tenant stack, single-table design.
//!
//! | item | pk | sk | extra attributes |
//! |---|---|---|---|
//! | client | `CLIENT#<client_id>` | `CLIENT` | `client_pk` = `CLIENTS`, `issued_sk` = client id, `version` |
//! | resource server | `RESOURCE_SERVERS` | `<identifier>` | `version` |
//! | token record | `TOKEN#<id>` | `TOKEN` | `client_pk`, `user_pk`, `client_user_pk`, `family_pk` (while active), `issued_sk` = `E<expiry>#<id>`, `ttl` |
//! | signing key | `SIGNING_KEYS` | `KEY#<generation>` | |
//! | a signing key's `kid`, stored once | `SIGNING_KEY_IDS` | `<kid>` | |
//! | user | `USER#<username>` | `USER` | `user_pk` = `USERS`, `issued_sk` = username, `version` |
//! | consent | `CONSENT#<username>` | `CONSENT#<client_id>` | |
//! | group, membership, its mirror | `GROUPS`, `GROUP#<name>`, `USER#<username>` | `<name>`, `MEMBER#<username>`, `GROUP#<name>` | see `groups.rs` |
//! | failure counter | `COUNTER#<key>` | `COUNTER` | `ttl` |
//! | pending request | `PENDING#<id>` | `PENDING` | `ttl` |
//! | authorization code | `CODE#<id>` | `CODE` | `ttl` |
//!
//! GSIs `by_client`, `by_end_user` and `by_client_end_user` (all keyed on `issued_sk`, projecting
//! everything) serve the admin listings as Queries, never Scans (the one Scan is the operator's
//! one-off [`upgrade_table`]); `by_family` (`family_pk` =
//! `F#<family>`, same sort key) serves family revocation; the `CLIENTS` partition of `by_client`
//! lists the clients. Cursors are sort keys (a key condition `issued_sk >` the cursor). A
//! token's `issued_sk` is its expiry and id, and revocation and rotation remove its index
//! partition keys, so token listings read only active tokens (`tokens.rs`). `ttl`
//! holds the expiry, and expired items are filtered on every read because TTL deletion can lag
//! two days.
//! Creation is `attribute_not_exists(pk)` (with a random `wid` on the item, so that a retried
//! put recognises its own first attempt: `put_once`); updates of clients, users and resource
//! servers are conditional on the `version` read (`put_versioned`);
//! revocation and a failure counter's increment are conditional updates that set a `wid` the
//! same way (`update_once`); a deletion that answers whether it deleted (`delete_existing`) is a
//! one-action transaction, whose idempotency token makes the SDK's retry answer as the first
//! attempt; code redemption
//! and refresh rotation are single `TransactWriteItems` (a conditional update of the code or old
//! token plus conditional puts of the new tokens). Items an earlier version wrote without a key
//! this one needs are brought up to date by [`upgrade_table`] (`gatehouse upgrade-table`).
mod authorization;
mod clients;
mod groups;
mod replay;
mod schema;
mod settings;
mod tokens;
mod upgrade;
mod users;

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client as Ddb;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use serde_dynamo::aws_sdk_dynamodb_1::{from_item, to_item};

pub use schema::{INDEXES, create_table, create_table_from_env};
pub use upgrade::{SCAN_PAGE, UpgradeError, Upgraded, upgrade_table, upgrade_table_from_env};

use super::*;

type Item = HashMap<String, AttributeValue>;

/// The DynamoDB backend.
#[derive(Clone, Debug)]
pub struct DynamoStore {
    ddb: Ddb,
    table: String,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// Maps an SDK error: throttling, timeouts and 5xx are `Unavailable` (retry later), a failed
/// condition is `Conflict`, everything else `Backend`. A 5xx is `Unavailable` whatever its body
/// says: one without a known error code (an empty body from a failing front end) too.
/// Whether a key (a partition key and a sort key, or a Query's partition key and its sort-key
/// bound) is within DynamoDB's limits: 2048 bytes for a partition key, 1024 for a sort key.
/// A longer one names no item (nothing could have written it), so a read with it finds nothing,
/// where DynamoDB would answer a `ValidationException` (a 500) to the caller's long id.
pub(super) fn key_fits(pk: &str, sk: &str) -> bool {
    pk.len() <= 2048 && sk.len() <= 1024
}

fn classify<E: ProvideErrorMetadata + std::error::Error + 'static>(e: SdkError<E, HttpResponse>) -> StoreError {
    const RETRYABLE: &[&str] = &[
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionInProgressException",
        "TransactionConflictException",
        "TransactionConflict",
    ];
    match &e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            StoreError::Unavailable(format!("dynamodb: {}", aws_sdk_dynamodb::error::DisplayErrorContext(&e)))
        }
        _ if e.raw_response().is_some_and(|r| r.status().is_server_error()) => {
            StoreError::Unavailable(format!("dynamodb: {}", aws_sdk_dynamodb::error::DisplayErrorContext(&e)))
        }
        _ => match e.code() {
            Some("ConditionalCheckFailedException") => StoreError::Conflict,
            Some(c) if RETRYABLE.contains(&c) => StoreError::Unavailable(format!("dynamodb: {c}")),
            code => {
                StoreError::Backend(format!("dynamodb: {} {}", code.unwrap_or("unknown"), e.message().unwrap_or("")))
            }
        },
    }
}

/// How often a single-use transaction is tried when concurrent transactions cancel it.
const TRANSACT_ATTEMPTS: u32 = 5;

/// Why a single-use transaction (its first action carrying the single-use condition) was
/// cancelled, from its cancellation reason codes, one per action.
#[derive(Debug, PartialEq, Eq)]
enum Cancelled {
    /// The first action's condition failed: used already (or expired, or unknown).
    FirstCondition,
    /// Another action's condition failed: an item to create exists.
    OtherCondition,
    /// A concurrent transaction on one of the items: nothing written, try again.
    Contention,
    /// Capacity exceeded: retry later.
    Throttled,
    /// Anything else (a validation error, an item too large).
    Other,
}

fn cancelled(codes: &[&str]) -> Cancelled {
    let any = |c: &str| codes.contains(&c);
    if codes.first() == Some(&"ConditionalCheckFailed") {
        Cancelled::FirstCondition
    } else if any("ConditionalCheckFailed") {
        Cancelled::OtherCondition
    } else if any("TransactionConflict") {
        Cancelled::Contention
    } else if any("ThrottlingError") || any("ProvisionedThroughputExceeded") || any("RequestLimitExceeded") {
        Cancelled::Throttled
    } else {
        Cancelled::Other
    }
}

/// A conditional write's outcome as "did this call write": a failed condition is `false`.
fn condition_met(r: StoreResult<()>) -> StoreResult<bool> {
    match r {
        Ok(()) => Ok(true),
        Err(StoreError::Conflict) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Builds an SDK value whose required fields the caller set.
fn built<T>(r: Result<T, aws_sdk_dynamodb::error::BuildError>) -> StoreResult<T> {
    r.map_err(|e| StoreError::Backend(format!("dynamodb request: {e}")))
}

fn decode<T: serde::de::DeserializeOwned>(item: Item) -> StoreResult<T> {
    from_item(item).map_err(|e| StoreError::Backend(format!("corrupt item: {e}")))
}

fn encode<T: serde::Serialize>(v: &T) -> StoreResult<Item> {
    to_item(v).map_err(|e| StoreError::Backend(format!("cannot encode item: {e}")))
}

impl DynamoStore {
    /// A store on `table`, using an SDK client built by the host.
    pub fn new(ddb: Ddb, table: impl Into<String>) -> Self {
        Self { ddb, table: table.into() }
    }

    async fn put_new(&self, item: Item) -> StoreResult<()> {
        let put = self.ddb.put_item().condition_expression("attribute_not_exists(pk)");
        self.put_once(put, item).await
    }

    /// Sends a conditional PutItem of `item`, recognising its own earlier attempt: the item
    /// carries a random write id (`wid`), and a failed condition returns the item in the way
    /// (`ALL_OLD`). The SDK retries an attempt whose reply was lost or late (a timeout, a
    /// dropped connection) although DynamoDB may have written it; the retry then fails the
    /// condition on the item its first attempt wrote. With the same `wid` that is this
    /// write's success, not a conflict (a create answered 409, a first use taken for a replay).
    /// `Conflict` only when another write's item is in the way.
    /// Replaces an existing item that is still at `read_version` (its `version` attribute; an
    /// item written before versions existed has none: version 0). `true` when written; when
    /// the condition fails, `false` if the item is gone (`exists` reads it, consistently) and
    /// `Conflict` if it changed since it was read. Through [`Self::put_once`]: a retry of an
    /// attempt whose reply was lost meets the version it wrote, and succeeds.
    async fn put_versioned<F, Fut>(&self, item: Item, read_version: u64, exists: F) -> StoreResult<bool>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = StoreResult<bool>>,
    {
        let condition = if read_version == 0 {
            "attribute_exists(pk) AND (attribute_not_exists(#v) OR #v = :v)"
        } else {
            "attribute_exists(pk) AND #v = :v"
        };
        let put = self
            .ddb
            .put_item()
            .condition_expression(condition)
            .expression_attribute_names("#v", "version")
            .expression_attribute_values(":v", AttributeValue::N(read_version.to_string()));
        match self.put_once(put, item).await {
            Ok(()) => Ok(true),
            Err(StoreError::Conflict) => {
                if exists().await? {
                    Err(StoreError::Conflict)
                } else {
                    Ok(false)
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn put_once(
        &self,
        put: aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder,
        mut item: Item,
    ) -> StoreResult<()> {
        use aws_sdk_dynamodb::operation::put_item::PutItemError;
        use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;

        let wid = s(crate::crypto::random_id());
        item.insert("wid".into(), wid.clone());
        let r = put
            .table_name(&self.table)
            .set_item(Some(item))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) => {
                if let Some(PutItemError::ConditionalCheckFailedException(c)) = e.as_service_error()
                    && c.item().and_then(|old| old.get("wid")) == Some(&wid)
                {
                    return Ok(()); // our own earlier attempt wrote it
                }
                Err(classify(e))
            }
        }
    }

    /// Sends a conditional UpdateItem whose update expression also sets `wid = :wid`, and whose
    /// condition fails on an item with that `wid` (as [`Self::put_once`] does for puts): the item after the update (`ReturnValues` as the
    /// caller asked, else empty) when it applied, including when a retry of an attempt whose
    /// reply was lost finds its own `wid` (then the item as that attempt left it); `None` when
    /// the condition failed on another write's item.
    async fn update_once(
        &self,
        update: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
    ) -> StoreResult<Option<Item>> {
        use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
        use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;

        let wid = s(crate::crypto::random_id());
        let r = update
            .table_name(&self.table)
            .expression_attribute_values(":wid", wid.clone())
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match r {
            Ok(out) => Ok(Some(out.attributes.unwrap_or_default())),
            Err(e) => {
                if let Some(UpdateItemError::ConditionalCheckFailedException(c)) = e.as_service_error()
                    && let Some(old) = c.item()
                    && old.get("wid") == Some(&wid)
                {
                    return Ok(Some(old.clone())); // our own earlier attempt applied it
                }
                match classify(e) {
                    StoreError::Conflict => Ok(None),
                    other => Err(other),
                }
            }
        }
    }

    async fn get(&self, pk: String, sk: &str) -> StoreResult<Option<Item>> {
        if !key_fits(&pk, sk) {
            return Ok(None); // no item has such a key: DynamoDB would refuse the request
        }
        let out = self
            .ddb
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        Ok(out.item)
    }

    /// Replaces an existing item; `false` (nothing written) if there is none.
    async fn put_existing(&self, item: Item) -> StoreResult<bool> {
        let r = self
            .ddb
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_exists(pk)")
            .send()
            .await;
        condition_met(r.map(drop).map_err(classify))
    }

    /// Deletes an item; `true` only for the call that deleted it.
    async fn delete_existing(&self, pk: String, sk: &str) -> StoreResult<bool> {
        self.delete_where(pk, sk, "attribute_exists(pk)", None, None).await
    }

    /// Deletes an existing versioned item (a client, user or resource server); with `version`,
    /// only if its `version` is still that one (items written before versions existed are
    /// version 0): `Conflict`, nothing deleted, when it exists at another.
    async fn delete_versioned(&self, pk: String, sk: &str, version: Option<u64>) -> StoreResult<bool> {
        let Some(v) = version else { return self.delete_existing(pk, sk).await };
        let condition = if v == 0 {
            "attribute_exists(pk) AND (attribute_not_exists(#n) OR #n = :v)"
        } else {
            "attribute_exists(pk) AND #n = :v"
        };
        if self.delete_where(pk.clone(), sk, condition, Some("version"), Some(AttributeValue::N(v.to_string()))).await?
        {
            return Ok(true);
        }
        if key_fits(&pk, sk) && self.get(pk, sk).await?.is_some() { Err(StoreError::Conflict) } else { Ok(false) }
    }

    /// Deletes an item if `condition` (with the attribute name `#n` bound to `name` and the
    /// value `:v` to `value`, if any) holds; `true` only for the call that deleted it. A transaction, for its idempotency
    /// token: the SDK's retry of an attempt whose reply was lost is answered as that attempt
    /// (deleted: `true`), where a retried DeleteItem would find nothing and answer `false`.
    async fn delete_where(
        &self,
        pk: String,
        sk: &str,
        condition: &str,
        name: Option<&str>,
        value: Option<AttributeValue>,
    ) -> StoreResult<bool> {
        if !key_fits(&pk, sk) {
            return Ok(false); // no item has such a key
        }
        let delete = aws_sdk_dynamodb::types::Delete::builder()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .condition_expression(condition)
            .set_expression_attribute_names(name.map(|n| HashMap::from([("#n".to_owned(), n.to_owned())])))
            .set_expression_attribute_values(value.map(|v| HashMap::from([(":v".to_owned(), v)])))
            .build();
        self.transact_single_use(vec![TransactWriteItem::builder().delete(built(delete)?).build()]).await
    }

    /// Runs one `TransactWriteItems` whose first action carries a single-use condition: `true`
    /// when it committed; `false`, nothing written, when that first condition failed. A failed
    /// condition on another action (a new item whose key exists) is `Conflict`. A cancellation
    /// by a concurrent transaction on the same item is retried a few times (nothing was
    /// written), then is `Unavailable`, as throttling is. (The SDK sets a fresh idempotency
    /// token per call and keeps it across its own retries, so a retried commit is not replayed
    /// into a spurious `false`.)
    async fn transact_single_use(&self, actions: Vec<TransactWriteItem>) -> StoreResult<bool> {
        let mut attempt = 0;
        loop {
            let r = self.ddb.transact_write_items().set_transact_items(Some(actions.clone())).send().await;
            let e = match r {
                Ok(_) => return Ok(true),
                Err(e) => e,
            };
            let reasons = match e.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(c))
                    if !c.cancellation_reasons().is_empty() =>
                {
                    c.cancellation_reasons()
                }
                _ => return Err(classify(e)),
            };
            let codes: Vec<&str> = reasons.iter().map(|r| r.code().unwrap_or("None")).collect();
            let described = || format!("dynamodb: transaction cancelled: {}", codes.join(","));
            match cancelled(&codes) {
                Cancelled::FirstCondition => return Ok(false),
                Cancelled::OtherCondition => return Err(StoreError::Conflict),
                Cancelled::Contention if attempt + 1 < TRANSACT_ATTEMPTS => {}
                Cancelled::Contention | Cancelled::Throttled => return Err(StoreError::Unavailable(described())),
                Cancelled::Other => return Err(StoreError::Backend(described())),
            }
            attempt += 1;
            let jitter = u64::from(crate::crypto::random_bytes::<1>()[0] % 16);
            tokio::time::sleep(std::time::Duration::from_millis((8 << attempt) + jitter)).await;
        }
    }

    /// Queries one partition (of the table or an index; of the table, optionally only the sort
    /// keys starting with `sk_prefix`) with an optional filter, page by page, calling `each` per
    /// matching item until it returns `false`.
    async fn query_pages(
        &self,
        index: Option<&str>,
        key_attr: &str,
        key: String,
        sk_prefix: Option<&str>,
        filter: Option<(&str, Item)>,
        each: impl FnMut(Item) -> bool,
    ) -> StoreResult<()> {
        let range = sk_prefix.map(|p| ("#k = :k AND begins_with(sk, :range)", p));
        self.query_loop(index, key_attr, &key, range, filter, None, each).await
    }

    /// Keyset pagination: queries one partition of an index in `issued_sk` order, strictly
    /// after the sort key `after` (a key condition: what lies before is never read), `page`
    /// items per request, with an optional filter (applied after the request's Limit, hence the
    /// loop over pages), calling `each` per matching item until it returns `false`.
    #[allow(clippy::too_many_arguments)]
    async fn query_after(
        &self,
        index: &str,
        key_attr: &str,
        key: &str,
        after: Option<&str>,
        filter: Option<(&str, Item)>,
        page: usize,
        each: impl FnMut(Item) -> bool,
    ) -> StoreResult<()> {
        let range = after.map(|a| ("#k = :k AND issued_sk > :range", a));
        let limit = Some(page.clamp(1, 1000) as i32);
        self.query_loop(Some(index), key_attr, key, range, filter, limit, each).await
    }

    /// The Query loop of [`Self::query_pages`] and [`Self::query_after`]: partition `#k = :k`,
    /// or `range`'s key condition with its `:range` value; `filter` and its values; `limit`
    /// items per request; follows `LastEvaluatedKey` until `each` returns `false` or the
    /// partition ends. A Query of the table itself is strongly consistent: the signing keys,
    /// resource servers and consents it serves are read right after an admin changed them (a
    /// key retired, a consent to delete with its user). An index cannot be.
    #[allow(clippy::too_many_arguments)]
    async fn query_loop(
        &self,
        index: Option<&str>,
        key_attr: &str,
        key: &str,
        range: Option<(&str, &str)>,
        filter: Option<(&str, Item)>,
        limit: Option<i32>,
        mut each: impl FnMut(Item) -> bool,
    ) -> StoreResult<()> {
        if !key_fits(key, range.map_or("", |(_, v)| v)) {
            return Ok(()); // no item has such a key: DynamoDB would refuse the request
        }
        let mut start: Option<Item> = None;
        loop {
            let mut q = self
                .ddb
                .query()
                .table_name(&self.table)
                .set_index_name(index.map(str::to_owned))
                .consistent_read(index.is_none())
                .key_condition_expression("#k = :k")
                .expression_attribute_names("#k", key_attr)
                .expression_attribute_values(":k", s(key))
                .set_limit(limit)
                .set_exclusive_start_key(start.take());
            if let Some((condition, value)) = range {
                q = q.key_condition_expression(condition).expression_attribute_values(":range", s(value));
            }
            if let Some((expr, values)) = &filter {
                q = q.filter_expression(*expr);
                for (k, v) in values {
                    q = q.expression_attribute_values(k, v.clone());
                }
            }
            let out = q.send().await.map_err(classify)?;
            for item in out.items.unwrap_or_default() {
                if !each(item) {
                    return Ok(());
                }
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(()),
            }
        }
    }
}

#[async_trait]
impl ResourceServerStore for DynamoStore {
    async fn create_resource_server(&self, rs: &ResourceServer) -> StoreResult<()> {
        let mut item = encode(rs)?;
        item.insert("pk".into(), s("RESOURCE_SERVERS"));
        item.insert("sk".into(), s(rs.identifier.clone()));
        self.put_new(item).await
    }

    async fn get_resource_server(&self, identifier: &str) -> StoreResult<Option<ResourceServer>> {
        self.get("RESOURCE_SERVERS".into(), identifier).await?.map(decode).transpose()
    }

    async fn list_resource_servers(&self) -> StoreResult<Vec<ResourceServer>> {
        let mut items = Vec::new();
        self.query_pages(None, "pk", "RESOURCE_SERVERS".into(), None, None, |i| {
            items.push(i);
            true
        })
        .await?;
        items.into_iter().map(decode).collect()
    }

    async fn list_resource_servers_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<(Vec<ResourceServer>, Option<String>)> {
        let (items, next) = self.sk_page("RESOURCE_SERVERS".into(), "", after, false, limit).await?;
        Ok((items.into_iter().map(decode).collect::<StoreResult<_>>()?, next))
    }

    async fn update_resource_server(&self, rs: &ResourceServer, read_version: u64) -> StoreResult<bool> {
        let mut item = encode(rs)?;
        item.insert("pk".into(), s("RESOURCE_SERVERS"));
        item.insert("sk".into(), s(rs.identifier.clone()));
        let exists = || async { Ok(self.get_resource_server(&rs.identifier).await?.is_some()) };
        self.put_versioned(item, read_version, exists).await
    }

    async fn delete_resource_server(&self, identifier: &str, version: Option<u64>) -> StoreResult<bool> {
        self.delete_versioned("RESOURCE_SERVERS".into(), identifier, version).await
    }
}

#[async_trait]
impl KeyStore for DynamoStore {
    /// The key's slot and, in the same transaction, a `SIGNING_KEY_IDS` / `<kid>` item: both
    /// must be new, so a generation or a `kid` is never stored twice (as SQLite's unique
    /// columns ensure). Keys stored before the marker existed have none.
    async fn put_signing_key(&self, key: &StoredSigningKey) -> StoreResult<()> {
        use aws_sdk_dynamodb::types::Put;

        let mut item = encode(key)?;
        item.insert("pk".into(), s("SIGNING_KEYS"));
        item.insert("sk".into(), s(format!("KEY#{:010}", key.generation)));
        let marker = Item::from([("pk".into(), s("SIGNING_KEY_IDS")), ("sk".into(), s(&key.kid))]);
        let mut actions = Vec::new();
        for item in [item, marker] {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)")
                .build();
            actions.push(TransactWriteItem::builder().put(built(put)?).build());
        }
        match self.transact_single_use(actions).await? {
            true => Ok(()),
            false => Err(StoreError::Conflict), // the generation exists
        }
    }

    async fn replace_signing_key(&self, key: &StoredSigningKey, read: &StoredSigningKey) -> StoreResult<bool> {
        let mut item = encode(key)?;
        item.insert("pk".into(), s("SIGNING_KEYS"));
        item.insert("sk".into(), s(format!("KEY#{:010}", key.generation)));
        let mut condition = "attribute_exists(pk) AND kid = :kid".to_owned();
        let mut put = self.ddb.put_item().expression_attribute_values(":kid", s(&key.kid));
        for (attr, value) in [("active_from", read.active_from), ("retired_at", read.retired_at)] {
            match value {
                Some(v) => {
                    condition.push_str(&format!(" AND {attr} = :{attr}"));
                    put = put.expression_attribute_values(format!(":{attr}"), n(v));
                }
                None => condition.push_str(&format!(" AND attribute_not_exists({attr})")),
            }
        }
        // Through `put_once`: a retry of an attempt whose reply was lost meets the schedule it
        // wrote, which no longer matches `read`, and must still answer that it was written.
        condition_met(self.put_once(put.condition_expression(condition), item).await)
    }

    async fn list_signing_keys(&self) -> StoreResult<Vec<StoredSigningKey>> {
        let mut items = Vec::new();
        self.query_pages(None, "pk", "SIGNING_KEYS".into(), None, None, |i| {
            items.push(i);
            true
        })
        .await?;
        let mut keys: Vec<StoredSigningKey> = items.into_iter().map(decode).collect::<StoreResult<_>>()?;
        keys.sort_by_key(|k| k.generation);
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::{Cancelled, cancelled};

    #[test]
    fn cancellation_reasons() {
        assert_eq!(cancelled(&["ConditionalCheckFailed", "None", "None"]), Cancelled::FirstCondition);
        assert_eq!(cancelled(&["ConditionalCheckFailed", "ConditionalCheckFailed"]), Cancelled::FirstCondition);
        assert_eq!(cancelled(&["None", "None", "ConditionalCheckFailed"]), Cancelled::OtherCondition);
        assert_eq!(cancelled(&["TransactionConflict", "None"]), Cancelled::Contention);
        assert_eq!(cancelled(&["None", "ThrottlingError"]), Cancelled::Throttled);
        assert_eq!(cancelled(&["ProvisionedThroughputExceeded"]), Cancelled::Throttled);
        assert_eq!(cancelled(&["ValidationError", "None"]), Cancelled::Other);
        assert_eq!(cancelled(&[]), Cancelled::Other);
    }
}
