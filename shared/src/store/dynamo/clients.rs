//! Clients: `CLIENT#<client_id>` items. They are listed through the `by_client` index, in a
//! partition of their own (`client_pk` = `CLIENTS`, sort key `issued_sk` = the client id; the
//! token partitions of that index are `C#<client_id>#<kind>`), so the listing is a Query. (Items
//! written before the listing existed lack these attributes until `gatehouse upgrade-table`
//! adds them, or their next write: an update or a secret rotation.)
use async_trait::async_trait;

use super::*;

/// The `by_client` partition that lists every client.
pub(super) const CLIENT_LIST: &str = "CLIENTS";

/// A client's item, with its keys and listing keys.
fn client_item(c: &Client) -> StoreResult<Item> {
    let mut item = encode(c)?;
    item.insert("pk".into(), s(format!("CLIENT#{}", c.client_id)));
    item.insert("sk".into(), s("CLIENT"));
    item.insert("client_pk".into(), s(CLIENT_LIST));
    item.insert("issued_sk".into(), s(c.client_id.clone()));
    Ok(item)
}

#[async_trait]
impl ClientStore for DynamoStore {
    async fn create_client(&self, client: &Client) -> StoreResult<()> {
        self.put_new(client_item(client)?).await
    }

    async fn get_client(&self, client_id: &str) -> StoreResult<Option<Client>> {
        self.get(format!("CLIENT#{client_id}"), "CLIENT").await?.map(decode).transpose()
    }

    async fn delete_client(&self, client_id: &str, version: Option<u64>) -> StoreResult<bool> {
        self.delete_versioned(format!("CLIENT#{client_id}"), "CLIENT", version).await
    }

    async fn update_client(&self, client: &Client, read_version: u64) -> StoreResult<bool> {
        let exists = || async { Ok(self.get_client(&client.client_id).await?.is_some()) };
        self.put_versioned(client_item(client)?, read_version, exists).await
    }

    async fn list_clients(&self, after: Option<&str>, limit: usize) -> StoreResult<(Vec<Client>, Option<String>)> {
        if limit == 0 {
            return Ok((Vec::new(), None));
        }
        let mut items = Vec::new();
        self.query_after("by_client", "client_pk", CLIENT_LIST, after, None, limit + 1, |i| {
            items.push(i);
            items.len() <= limit
        })
        .await?;
        let more = items.len() > limit;
        items.truncate(limit);
        let clients: Vec<Client> = items.into_iter().map(decode).collect::<StoreResult<_>>()?;
        let next = if more { clients.last().map(|c| c.client_id.clone()) } else { None };
        Ok((clients, next))
    }
}
