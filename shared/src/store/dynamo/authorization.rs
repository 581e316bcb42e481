//! The authorization-code flow's state: pending requests (`PENDING#<id>` / `PENDING`) and codes
//! (`CODE#<id>` / `CODE`), both with `ttl`.
use async_trait::async_trait;
use aws_sdk_dynamodb::types::Update;

use super::*;

fn pending_item(p: &PendingAuthorization) -> StoreResult<Item> {
    let mut item = encode(p)?;
    item.insert("pk".into(), s(format!("PENDING#{}", p.id.as_str())));
    item.insert("sk".into(), s("PENDING"));
    item.insert("ttl".into(), n(p.expires_at));
    Ok(item)
}

#[async_trait]
impl AuthorizationStore for DynamoStore {
    async fn put_pending(&self, p: &PendingAuthorization) -> StoreResult<()> {
        self.put_new(pending_item(p)?).await
    }

    async fn get_pending(&self, id: &str, now: i64) -> StoreResult<Option<PendingAuthorization>> {
        let Some(item) = self.get(format!("PENDING#{id}"), "PENDING").await? else {
            return Ok(None);
        };
        let p: PendingAuthorization = decode(item)?;
        Ok((p.expires_at > now).then_some(p))
    }

    async fn update_pending(&self, p: &PendingAuthorization) -> StoreResult<bool> {
        self.put_existing(pending_item(p)?).await
    }

    async fn delete_pending(&self, id: &str) -> StoreResult<bool> {
        self.delete_existing(format!("PENDING#{id}"), "PENDING").await
    }

    async fn put_code(&self, code: &AuthorizationCode) -> StoreResult<()> {
        let mut item = encode(code)?;
        item.insert("pk".into(), s(format!("CODE#{}", code.id)));
        item.insert("sk".into(), s("CODE"));
        item.insert("ttl".into(), n(code.expires_at));
        self.put_new(item).await
    }

    async fn get_code(&self, id: &str, now: i64) -> StoreResult<Option<AuthorizationCode>> {
        let Some(item) = self.get(format!("CODE#{id}"), "CODE").await? else {
            return Ok(None);
        };
        let code: AuthorizationCode = decode(item)?;
        Ok((code.expires_at > now).then_some(code))
    }

    async fn redeem_code(&self, id: &str, now: i64, tokens: &[TokenRecord]) -> StoreResult<bool> {
        let consume = Update::builder()
            .table_name(&self.table)
            .key("pk", s(format!("CODE#{id}")))
            .key("sk", s("CODE"))
            .update_expression("SET consumed_at = :now, issued = :issued")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(consumed_at) AND expires_at > :now")
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":issued", AttributeValue::L(tokens.iter().map(|t| s(&t.id)).collect()))
            .build();
        let mut actions = vec![TransactWriteItem::builder().update(built(consume)?).build()];
        actions.extend(self.put_token_actions(tokens)?);
        self.transact_single_use(actions).await
    }
}
