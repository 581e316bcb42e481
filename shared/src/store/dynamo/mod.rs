//! `DynamoStore`: one DynamoDB table per tenant stack, single-table design.
//!
//! | item | pk | sk | extra keys |
//! |---|---|---|---|
//! | client | `CLIENT#<client_id>` | `CLIENT` | |
//! | resource server | `RESOURCE_SERVERS` | `<identifier>` | |
//! | token record | `TOKEN#<id>` | `TOKEN` | `client_pk`, `user_pk`, `client_user_pk`, `issued_sk`, `ttl` |
//! | signing key | `SIGNING_KEYS` | `KEY#<generation>` | |
//!
//! GSIs `by_client`, `by_end_user` and `by_client_end_user` (all keyed on `issued_sk`, projecting
//! everything) serve the admin listings as Queries, never Scans. `ttl` holds the expiry, and
//! expired items are filtered on every read because TTL deletion can lag two days.
//! Creation is `attribute_not_exists(pk)`; revocation is a conditional update.
mod schema;

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client as Ddb;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, Select};
use serde_dynamo::aws_sdk_dynamodb_1::{from_item, to_item};

pub use schema::create_table;

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
/// condition is `Conflict`, everything else `Backend`.
fn classify<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
    e: SdkError<E, R>,
) -> StoreError {
    const RETRYABLE: &[&str] = &[
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionInProgressException",
    ];
    match &e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
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

fn decode<T: serde::de::DeserializeOwned>(item: Item) -> StoreResult<T> {
    from_item(item).map_err(|e| StoreError::Backend(format!("corrupt item: {e}")))
}

fn encode<T: serde::Serialize>(v: &T) -> StoreResult<Item> {
    to_item(v).map_err(|e| StoreError::Backend(format!("cannot encode item: {e}")))
}

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

impl DynamoStore {
    /// A store on `table`, using an SDK client built by the host.
    pub fn new(ddb: Ddb, table: impl Into<String>) -> Self {
        Self { ddb, table: table.into() }
    }

    async fn put_new(&self, item: Item) -> StoreResult<()> {
        self.ddb
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn get(&self, pk: String, sk: &str) -> StoreResult<Option<Item>> {
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

    /// Queries one partition (of the table or an index) with an optional filter, page by page,
    /// calling `each` per matching item until it returns `false`.
    async fn query_pages(
        &self,
        index: Option<&str>,
        key_attr: &str,
        key: String,
        filter: Option<(&str, Item)>,
        mut each: impl FnMut(Item) -> bool,
    ) -> StoreResult<()> {
        let mut start: Option<Item> = None;
        loop {
            let mut q = self
                .ddb
                .query()
                .table_name(&self.table)
                .set_index_name(index.map(str::to_owned))
                .key_condition_expression("#k = :k")
                .expression_attribute_names("#k", key_attr)
                .expression_attribute_values(":k", s(key.clone()))
                .set_exclusive_start_key(start.take());
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

const ACTIVE_FILTER: &str = "expires_at > :now AND attribute_not_exists(revoked_at)";

#[async_trait]
impl ClientStore for DynamoStore {
    async fn create_client(&self, client: &Client) -> StoreResult<()> {
        let mut item = encode(client)?;
        item.insert("pk".into(), s(format!("CLIENT#{}", client.client_id)));
        item.insert("sk".into(), s("CLIENT"));
        self.put_new(item).await
    }

    async fn get_client(&self, client_id: &str) -> StoreResult<Option<Client>> {
        self.get(format!("CLIENT#{client_id}"), "CLIENT").await?.map(decode).transpose()
    }

    async fn delete_client(&self, client_id: &str) -> StoreResult<bool> {
        let out = self
            .ddb
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(format!("CLIENT#{client_id}")))
            .key("sk", s("CLIENT"))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(classify)?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
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
        self.query_pages(None, "pk", "RESOURCE_SERVERS".into(), None, |i| {
            items.push(i);
            true
        })
        .await?;
        items.into_iter().map(decode).collect()
    }
}

#[async_trait]
impl TokenStore for DynamoStore {
    async fn put_token(&self, t: &TokenRecord) -> StoreResult<()> {
        let kind = t.kind.as_str();
        let mut item = encode(t)?;
        item.insert("pk".into(), s(format!("TOKEN#{}", t.id)));
        item.insert("sk".into(), s("TOKEN"));
        item.insert("ttl".into(), n(t.expires_at));
        item.insert("issued_sk".into(), s(format!("{:012}#{}", t.issued_at, t.id)));
        item.insert("client_pk".into(), s(format!("C#{}#{kind}", t.client_id)));
        if let Some(u) = &t.end_user {
            item.insert("user_pk".into(), s(format!("U#{u}#{kind}")));
            item.insert("client_user_pk".into(), s(client_user_key(&t.client_id, u, kind)));
        }
        self.put_new(item).await
    }

    async fn get_token(&self, id: &str, now: i64) -> StoreResult<Option<TokenRecord>> {
        let Some(item) = self.get(format!("TOKEN#{id}"), "TOKEN").await? else {
            return Ok(None);
        };
        let t: TokenRecord = decode(item)?;
        Ok((t.expires_at > now).then_some(t))
    }

    async fn revoke_token(&self, id: &str, at: i64) -> StoreResult<bool> {
        let r = self
            .ddb
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("TOKEN#{id}")))
            .key("sk", s("TOKEN"))
            .update_expression("SET revoked_at = :at")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(revoked_at)")
            .expression_attribute_values(":at", n(at))
            .send()
            .await;
        match r.map_err(classify) {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict) => Ok(false),
            Err(e) => Err(e),
        }
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
        self.query_pages(Some(index), attr, key, Some((ACTIVE_FILTER, values)), |i| {
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

    async fn count_tokens(&self, q: &TokenQuery, now: i64) -> StoreResult<u64> {
        let (index, attr, key) = token_index(q)?;
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

#[async_trait]
impl KeyStore for DynamoStore {
    async fn put_signing_key(&self, key: &StoredSigningKey) -> StoreResult<()> {
        let mut item = encode(key)?;
        item.insert("pk".into(), s("SIGNING_KEYS"));
        item.insert("sk".into(), s(format!("KEY#{:010}", key.generation)));
        self.put_new(item).await
    }

    async fn list_signing_keys(&self) -> StoreResult<Vec<StoredSigningKey>> {
        let mut items = Vec::new();
        self.query_pages(None, "pk", "SIGNING_KEYS".into(), None, |i| {
            items.push(i);
            true
        })
        .await?;
        let mut keys: Vec<StoredSigningKey> = items.into_iter().map(decode).collect::<StoreResult<_>>()?;
        keys.sort_by_key(|k| k.generation);
        Ok(keys)
    }
}
