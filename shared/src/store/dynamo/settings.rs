//! The tenant's settings: one item (`pk` = `sk` = `SETTINGS`), replaced only by a conditional
//! put that names the version it read.
use async_trait::async_trait;

use super::*;
use crate::settings::StoredSettings;

const SETTINGS: &str = "SETTINGS";

#[async_trait]
impl SettingsStore for DynamoStore {
    async fn get_settings(&self) -> StoreResult<Option<StoredSettings>> {
        self.get(SETTINGS.into(), SETTINGS).await?.map(decode).transpose()
    }

    async fn put_settings(&self, s: &StoredSettings) -> StoreResult<bool> {
        let mut item = encode(s)?;
        item.insert("pk".into(), AttributeValue::S(SETTINGS.into()));
        item.insert("sk".into(), AttributeValue::S(SETTINGS.into()));
        let put = self.ddb.put_item().table_name(&self.table).set_item(Some(item));
        let put = if s.version == 1 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("#version = :previous")
                .expression_attribute_names("#version", "version")
                .expression_attribute_values(":previous", n(i64::try_from(s.version - 1).unwrap_or(i64::MAX)))
        };
        condition_met(put.send().await.map(drop).map_err(classify))
    }
}
