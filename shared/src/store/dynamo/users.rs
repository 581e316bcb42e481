//! Users (`USER#<username>` / `USER`), their consents (`CONSENT#<username>` /
//! `CONSENT#<client_id>`: a partition of their own, so that the authorize function, which
//! records consents, may write those items and never a user record; IAM `dynamodb:LeadingKeys`)
//! and sign-in failure counters (`COUNTER#<key>` / `COUNTER`, with `ttl`). Users are listed
//! through the `by_end_user` index, in a partition of their own (`user_pk` = `USERS`, sort key
//! `issued_sk` = the username; the token partitions of that index are `U#<user>#<kind>`).
use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnValue;

use super::*;

/// The `by_end_user` partition that lists every user.
pub(super) const USER_LIST: &str = "USERS";

/// Rounds of [`CounterStore`] updates racing with creations and deletions before giving up.
const COUNTER_ATTEMPTS: usize = 3;

fn user_item(user: &User) -> StoreResult<Item> {
    let mut item = encode(user)?;
    item.insert("pk".into(), s(format!("USER#{}", user.username)));
    item.insert("sk".into(), s("USER"));
    item.insert("user_pk".into(), s(USER_LIST));
    item.insert("issued_sk".into(), s(user.username.clone()));
    Ok(item)
}

#[async_trait]
impl UserStore for DynamoStore {
    async fn create_user(&self, user: &User) -> StoreResult<()> {
        self.put_new(user_item(user)?).await
    }

    async fn get_user(&self, username: &str) -> StoreResult<Option<User>> {
        self.get(format!("USER#{username}"), "USER").await?.map(decode).transpose()
    }

    async fn update_user(&self, user: &User, read_version: u64) -> StoreResult<bool> {
        let exists = || async { Ok(self.get_user(&user.username).await?.is_some()) };
        self.put_versioned(user_item(user)?, read_version, exists).await
    }

    async fn delete_user(&self, username: &str, version: Option<u64>) -> StoreResult<bool> {
        self.delete_versioned(format!("USER#{username}"), "USER", version).await
    }

    async fn list_users(&self, after: Option<&str>, limit: usize) -> StoreResult<(Vec<User>, Option<String>)> {
        if limit == 0 {
            return Ok((Vec::new(), None));
        }
        let mut items = Vec::new();
        self.query_after("by_end_user", "user_pk", USER_LIST, after, None, limit + 1, |i| {
            items.push(i);
            items.len() <= limit
        })
        .await?;
        let more = items.len() > limit;
        items.truncate(limit);
        let users: Vec<User> = items.into_iter().map(decode).collect::<StoreResult<_>>()?;
        let next = if more { users.last().map(|u| u.username.clone()) } else { None };
        Ok((users, next))
    }
}

/// The partition of a user's consents.
fn consent_pk(username: &str) -> String {
    format!("CONSENT#{username}")
}

/// Where versions before the consent partition kept a user's consents: in the user's own
/// partition. Those are listed and deleted still, never read for a decision (their user is
/// asked once more, as for any consent recorded before consents named their resources).
fn legacy_consent_pk(username: &str) -> String {
    format!("USER#{username}")
}

#[async_trait]
impl ConsentStore for DynamoStore {
    async fn put_consent(&self, consent: &Consent) -> StoreResult<()> {
        let mut item = encode(consent)?;
        item.insert("pk".into(), s(consent_pk(&consent.username)));
        item.insert("sk".into(), s(format!("CONSENT#{}", consent.client_id)));
        self.ddb.put_item().table_name(&self.table).set_item(Some(item)).send().await.map_err(classify)?;
        Ok(())
    }

    async fn get_consent(&self, username: &str, client_id: &str) -> StoreResult<Option<Consent>> {
        self.get(consent_pk(username), &format!("CONSENT#{client_id}")).await?.map(decode).transpose()
    }

    async fn list_consents(&self, username: &str) -> StoreResult<Vec<Consent>> {
        let mut items = Vec::new();
        for pk in [consent_pk(username), legacy_consent_pk(username)] {
            self.query_pages(None, "pk", pk, Some("CONSENT#"), None, |i| {
                items.push(i);
                true
            })
            .await?;
        }
        let mut consents: Vec<Consent> = items.into_iter().map(decode).collect::<StoreResult<_>>()?;
        // One per client: the current one over an earlier version's (listed second).
        let mut seen = std::collections::HashSet::new();
        consents.retain(|c| seen.insert(c.client_id.clone()));
        Ok(consents)
    }

    async fn delete_consent(&self, username: &str, client_id: &str) -> StoreResult<bool> {
        let sk = format!("CONSENT#{client_id}");
        let current = self.delete_existing(consent_pk(username), &sk).await?;
        let legacy = self.delete_existing(legacy_consent_pk(username), &sk).await?;
        Ok(current || legacy)
    }
}

fn counter_pk(key: &str) -> AttributeValue {
    s(format!("COUNTER#{key}"))
}

impl DynamoStore {
    /// Adds one to the live counter of `key`; `None` when there is no live counter.
    async fn add_to_live_counter(&self, key: &str, now: i64) -> StoreResult<Option<FailureCounter>> {
        // `wid`: the SDK's retry of an attempt whose reply was lost does not count twice.
        let update = self
            .ddb
            .update_item()
            .key("pk", counter_pk(key))
            .key("sk", s("COUNTER"))
            .update_expression("ADD #count :one SET wid = :wid")
            .condition_expression("expires_at > :now AND (attribute_not_exists(wid) OR wid <> :wid)")
            .expression_attribute_names("#count", "count")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now", n(now))
            .return_values(ReturnValue::AllNew);
        self.update_once(update).await?.map(decode).transpose()
    }

    /// Writes `fresh` where there is no live counter of `key`; `false` if one appeared.
    async fn start_counter(&self, key: &str, now: i64, fresh: &FailureCounter) -> StoreResult<bool> {
        let mut item = encode(fresh)?;
        item.insert("pk".into(), counter_pk(key));
        item.insert("sk".into(), s("COUNTER"));
        item.insert("ttl".into(), n(fresh.expires_at));
        let put = self
            .ddb
            .put_item()
            .condition_expression("attribute_not_exists(pk) OR expires_at <= :now")
            .expression_attribute_values(":now", n(now));
        condition_met(self.put_once(put, item).await)
    }
}

#[async_trait]
impl CounterStore for DynamoStore {
    async fn get_counter(&self, key: &str, now: i64) -> StoreResult<Option<FailureCounter>> {
        let Some(item) = self.get(format!("COUNTER#{key}"), "COUNTER").await? else {
            return Ok(None);
        };
        let c: FailureCounter = decode(item)?;
        Ok((c.expires_at > now).then_some(c))
    }

    async fn increment_counter(&self, key: &str, now: i64, window: i64) -> StoreResult<FailureCounter> {
        let fresh = FailureCounter { count: 1, expires_at: now + window, locked_until: None };
        for _ in 0..COUNTER_ATTEMPTS {
            if let Some(c) = self.add_to_live_counter(key, now).await? {
                return Ok(c);
            }
            if self.start_counter(key, now, &fresh).await? {
                return Ok(fresh);
            }
            // Another call started the counter in between: add to it.
        }
        Err(StoreError::Unavailable(format!("dynamodb: counter {key} keeps changing")))
    }

    async fn lock_counter(&self, key: &str, until: i64) -> StoreResult<()> {
        for _ in 0..COUNTER_ATTEMPTS {
            // Raise the expiry to `until` (creating the counter if there is none) ...
            let r = self
                .ddb
                .update_item()
                .table_name(&self.table)
                .key("pk", counter_pk(key))
                .key("sk", s("COUNTER"))
                .update_expression("SET locked_until = :until, expires_at = :until, #ttl = :until, #count = :zero")
                .condition_expression("attribute_not_exists(pk) OR expires_at < :until")
                .expression_attribute_names("#ttl", "ttl")
                .expression_attribute_names("#count", "count")
                .expression_attribute_values(":until", n(until))
                .expression_attribute_values(":zero", n(0))
                .send()
                .await;
            if condition_met(r.map(drop).map_err(classify))? {
                return Ok(());
            }
            // ... or, when the counter lives long enough already, only set the lock.
            let r = self
                .ddb
                .update_item()
                .table_name(&self.table)
                .key("pk", counter_pk(key))
                .key("sk", s("COUNTER"))
                .update_expression("SET locked_until = :until, #count = :zero")
                .condition_expression("expires_at >= :until")
                .expression_attribute_names("#count", "count")
                .expression_attribute_values(":until", n(until))
                .expression_attribute_values(":zero", n(0))
                .send()
                .await;
            if condition_met(r.map(drop).map_err(classify))? {
                return Ok(());
            }
        }
        Err(StoreError::Unavailable(format!("dynamodb: counter {key} keeps changing")))
    }

    async fn clear_counter(&self, key: &str) -> StoreResult<()> {
        self.ddb
            .delete_item()
            .table_name(&self.table)
            .key("pk", counter_pk(key))
            .key("sk", s("COUNTER"))
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }
}
