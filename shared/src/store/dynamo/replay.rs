//! Single-use identifiers (JWT `jti`s of assertions and DPoP proofs): one item per identifier,
//! `REPLAY#<key>` / `REPLAY`, written with a condition that admits it only if absent or expired,
//! and deleted by TTL afterwards.
use async_trait::async_trait;

use super::*;

#[async_trait]
impl ReplayStore for DynamoStore {
    async fn first_use(&self, key: &str, now: i64, expires_at: i64) -> StoreResult<bool> {
        let item = Item::from([
            ("pk".into(), s(format!("REPLAY#{key}"))),
            ("sk".into(), s("REPLAY")),
            ("expires_at".into(), n(expires_at)),
            ("ttl".into(), n(expires_at)),
        ]);
        let put = self
            .ddb
            .put_item()
            .condition_expression("attribute_not_exists(pk) OR expires_at <= :now")
            .expression_attribute_values(":now", n(now));
        // A retried attempt whose first one was written is this use, not a replay.
        condition_met(self.put_once(put, item).await)
    }
}
