//! Clients: the `clients` table (the JSON `body` is the record; updates are conditional on the
//! `version` it holds, listings page by client id).
use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::*;

#[async_trait]
impl ClientStore for EmbeddedStore {
    async fn create_client(&self, client: &Client) -> StoreResult<()> {
        let (id, body) = (client.client_id.clone(), to_json(client)?);
        self.with(move |c| {
            c.execute("INSERT INTO clients (client_id, body) VALUES (?1, ?2)", params![id, body]).map_err(err)?;
            Ok(())
        })
        .await
    }

    async fn get_client(&self, client_id: &str) -> StoreResult<Option<Client>> {
        self.read(|c| {
            let body: Option<String> = c
                .prepare_cached("SELECT body FROM clients WHERE client_id = ?1")
                .and_then(|mut st| st.query_row([client_id], |r| r.get(0)).optional())
                .map_err(err)?;
            body.map(|b| from_json(&b)).transpose()
        })
    }

    async fn delete_client(&self, client_id: &str, version: Option<u64>) -> StoreResult<bool> {
        let id = client_id.to_owned();
        self.with(move |c| super::delete_versioned(c, "clients", "client_id", &id, version)).await
    }

    async fn update_client(&self, client: &Client, read_version: u64) -> StoreResult<bool> {
        let (id, body, version) = (client.client_id.clone(), to_json(client)?, read_version as i64);
        self.with(move |c| super::update_versioned(c, "clients", "client_id", &id, &body, version)).await
    }

    async fn list_clients(&self, after: Option<&str>, limit: usize) -> StoreResult<(Vec<Client>, Option<String>)> {
        let after = after.map(str::to_owned);
        self.read_off(move |c| {
            // One more than the page, to know whether more follow.
            let mut st = c
                .prepare("SELECT body FROM clients WHERE ?1 IS NULL OR client_id > ?1 ORDER BY client_id LIMIT ?2")
                .map_err(err)?;
            let rows = st.query_map(params![after, limit as i64 + 1], |r| r.get::<_, String>(0)).map_err(err)?;
            let mut clients: Vec<Client> = rows.map(|r| from_json(&r.map_err(err)?)).collect::<StoreResult<_>>()?;
            let more = clients.len() > limit;
            clients.truncate(limit);
            let next = if more { clients.last().map(|c| c.client_id.clone()) } else { None };
            Ok((clients, next))
        })
        .await
    }
}
