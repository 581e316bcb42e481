//! Single-use identifiers (JWT `jti`s of assertions and DPoP proofs): one item per identifier,
//! `REPLAY#<key>` / `REPLAY`, written with a condition that admits it only if absent or expired,
//! and deleted by TTL afterwards.
use async_trait::async_trait;

use super::*;

#[async_trait]
impl ReplayStore for DynamoStore {
    async fn first_use(&self, key: &str, now: i64, expires_at: i64) -> StoreResult<bool> {
        let r = self
            .ddb
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("REPLAY#{key}")))
            .item("sk", s("REPLAY"))
            .item("expires_at", n(expires_at))
            .item("ttl", n(expires_at))
            .condition_expression("attribute_not_exists(pk) OR expires_at <= :now")
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        condition_met(r.map(drop).map_err(classify))
    }
}
