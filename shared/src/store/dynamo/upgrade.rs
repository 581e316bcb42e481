//! `gatehouse upgrade-table`: brings items that earlier versions wrote up to date, in place.
//!
//! Clients and users written before their listings existed lack the listing keys (`client_pk`
//! = `CLIENTS` or `user_pk` = `USERS`, and `issued_sk`), so the admin listings, which are
//! Queries of those index partitions, do not show them until their next write. The upgrade adds
//! the keys. Its Scan reads the whole table once (a one-off cost proportional to the table's
//! size; expired tokens included). Each key is added by an update conditional on the item
//! still existing without the key: it can run while the tenant serves traffic, runs again
//! without changing anything, and never recreates an item deleted meanwhile.
use super::*;

/// What [`upgrade_table`] changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Upgraded {
    /// Clients that got their listing keys.
    pub clients: usize,
    /// Users that got their listing keys.
    pub users: usize,
}

impl std::fmt::Display for Upgraded {
    /// "1 client and 2 users".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        write!(f, "{} client{} and {} user{}", self.clients, plural(self.clients), self.users, plural(self.users))
    }
}

/// An [`upgrade_table`] run that stopped on a store error, with what it had changed by then.
/// Running it again is safe and finishes the job: the items already upgraded are skipped.
#[derive(Debug, thiserror::Error)]
#[error("{error} (listing keys were added to {done} before it; run it again to finish: upgraded items are skipped)")]
pub struct UpgradeError {
    /// What the run changed before the error.
    pub done: Upgraded,
    /// The error that stopped it.
    pub error: StoreError,
}

/// Items a Scan request reads for [`upgrade_table_from_env`] (DynamoDB also ends a page at 1 MB).
pub const SCAN_PAGE: i32 = 1000;

/// [`upgrade_table`] with a client from the standard AWS chain, as `create_table_from_env`.
pub async fn upgrade_table_from_env(table: &str) -> Result<Upgraded, UpgradeError> {
    upgrade_table(&Ddb::new(&crate::state::aws_sdk_config().await), table, SCAN_PAGE).await
}

/// Adds the listing keys to every client and user item of `table` that lacks them, reading
/// the table `scan_page` items per request. On a store error, says how far it got.
pub async fn upgrade_table(ddb: &Ddb, table: &str, scan_page: i32) -> Result<Upgraded, UpgradeError> {
    let mut done = Upgraded::default();
    match upgrade_items(ddb, table, scan_page, &mut done).await {
        Ok(()) => Ok(done),
        Err(error) => Err(UpgradeError { done, error }),
    }
}

/// [`upgrade_table`]'s work, counting into `done` as it goes.
async fn upgrade_items(ddb: &Ddb, table: &str, scan_page: i32, done: &mut Upgraded) -> StoreResult<()> {
    let mut start: Option<Item> = None;
    loop {
        let page = ddb
            .scan()
            .table_name(table)
            .filter_expression(
                "(sk = :client AND attribute_not_exists(client_pk)) OR (sk = :user AND attribute_not_exists(user_pk))",
            )
            .projection_expression("pk, sk")
            .limit(scan_page)
            .expression_attribute_values(":client", s("CLIENT"))
            .expression_attribute_values(":user", s("USER"))
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(classify)?;
        for item in page.items() {
            let (Some(AttributeValue::S(pk)), Some(AttributeValue::S(sk))) = (item.get("pk"), item.get("sk")) else {
                continue;
            };
            let (list_attr, list, id) = match (sk.as_str(), pk.split_once('#')) {
                ("CLIENT", Some(("CLIENT", id))) => ("client_pk", clients::CLIENT_LIST, id),
                ("USER", Some(("USER", id))) => ("user_pk", users::USER_LIST, id),
                _ => continue, // not a client or user item (a key this version does not write)
            };
            let r = ddb
                .update_item()
                .table_name(table)
                .key("pk", s(pk))
                .key("sk", s(sk))
                .update_expression("SET #list = :list, issued_sk = :id")
                .condition_expression("attribute_exists(pk) AND attribute_not_exists(#list)")
                .expression_attribute_names("#list", list_attr)
                .expression_attribute_values(":list", s(list))
                .expression_attribute_values(":id", s(id))
                .send()
                .await
                .map_err(classify);
            // A failed condition: deleted, or written by a current version, since the Scan.
            if condition_met(r.map(|_| ()))? {
                match list_attr {
                    "client_pk" => done.clients += 1,
                    _ => done.users += 1,
                }
            }
        }
        match page.last_evaluated_key {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => return Ok(()),
        }
    }
}
