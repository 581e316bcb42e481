//! Groups and memberships.
//!
//! | item | pk | sk |
//! |---|---|---|
//! | group | `GROUPS` | `<name>` (plus `deleting` while it is being deleted) |
//! | membership | `GROUP#<name>` | `MEMBER#<username>` |
//! | its mirror | `USER#<username>` | `GROUP#<name>` |
//!
//! Groups share one partition, so listing them is a Query (as for resource servers);
//! `is_member` is a GetItem of the membership, then (for a member) of the group, which must not be
//! marked for deletion; `groups_of` is one Query of the user's partition.
//! A membership and its mirror are written and deleted together, in one transaction.
//!
//! `add_member` is a transaction that checks the group (not being deleted) and the user exist.
//! Deleting a group first marks it `deleting` (from then on it is hidden and takes no members),
//! then deletes its memberships, then the group item: a membership never outlives its group, and
//! a deletion cut short (a crash, a timeout) is finished by deleting the group again. Every step
//! after the mark is conditional on it, so a deletion delayed past another's end (the group gone,
//! perhaps created again with new members) changes nothing.
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{ConditionCheck, Delete, Put, TransactWriteItem};

use super::*;

/// The partition holding every group.
const GROUP_LIST: &str = "GROUPS";
/// Memberships deleted per transaction (two items each, plus the group's check; well under the
/// 100-item limit).
const DELETE_CHUNK: usize = 25;
/// Set on a group while it is being deleted.
const DELETING: &str = "deleting";
const MEMBER: &str = "MEMBER#";
const MIRROR: &str = "GROUP#";

fn group_pk(name: &str) -> String {
    format!("GROUP#{name}")
}

fn user_pk(username: &str) -> String {
    format!("USER#{username}")
}

fn group_item(g: &Group) -> StoreResult<Item> {
    let mut item = encode(g)?;
    item.insert("pk".into(), s(GROUP_LIST));
    item.insert("sk".into(), s(g.name.clone()));
    Ok(item)
}

/// The membership item and its mirror in the user's partition.
fn membership_items(group: &str, username: &str) -> [Item; 2] {
    let item = |pk: String, sk: String| {
        Item::from([
            ("pk".to_owned(), s(pk)),
            ("sk".to_owned(), s(sk)),
            ("group".to_owned(), s(group)),
            ("username".to_owned(), s(username)),
        ])
    };
    [item(group_pk(group), format!("{MEMBER}{username}")), item(user_pk(username), format!("{MIRROR}{group}"))]
}

fn text<'a>(item: &'a Item, name: &str) -> StoreResult<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .ok_or_else(|| StoreError::Backend(format!("corrupt item: no text `{name}`")))
}

impl DynamoStore {
    /// Queries the table partition `pk` (consistent reads) in `sk` order: the items whose `sk`
    /// starts with `prefix`, strictly after `prefix + after` (a key condition: what lies before
    /// is never read), `page` items per request, optionally skipping groups being deleted,
    /// calling `each` per item until it returns `false`.
    async fn query_sk_after(
        &self,
        pk: String,
        prefix: &str,
        after: Option<&str>,
        skip_deleting: bool,
        page: usize,
        mut each: impl FnMut(Item) -> bool,
    ) -> StoreResult<()> {
        if !key_fits(&pk, &format!("{prefix}{}", after.unwrap_or_default())) {
            return Ok(()); // no item has such a key
        }
        let mut start: Option<Item> = None;
        loop {
            let mut q = self
                .ddb
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .expression_attribute_values(":pk", s(pk.clone()))
                .limit(page.clamp(1, 1000) as i32)
                .set_exclusive_start_key(start.take());
            q = match after {
                Some(a) => q
                    .key_condition_expression("pk = :pk AND sk > :from")
                    .expression_attribute_values(":from", s(format!("{prefix}{a}"))),
                None if !prefix.is_empty() => q
                    .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                    .expression_attribute_values(":prefix", s(prefix)),
                None => q.key_condition_expression("pk = :pk"),
            };
            if skip_deleting {
                q = q
                    .filter_expression("attribute_not_exists(#deleting)")
                    .expression_attribute_names("#deleting", DELETING);
            }
            let out = q.send().await.map_err(classify)?;
            for item in out.items.unwrap_or_default() {
                // Sort keys past the prefix's range end the listing.
                if !text(&item, "sk")?.starts_with(prefix) || !each(item) {
                    return Ok(());
                }
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(()),
            }
        }
    }

    /// Up to `limit` items listed as by [`Self::query_sk_after`], with the key (the sort key
    /// after `prefix`) of the last one when more follow.
    pub(super) async fn sk_page(
        &self,
        pk: String,
        prefix: &str,
        after: Option<&str>,
        skip_deleting: bool,
        limit: usize,
    ) -> StoreResult<(Vec<Item>, Option<String>)> {
        if limit == 0 {
            return Ok((Vec::new(), None));
        }
        let mut items = Vec::new();
        self.query_sk_after(pk, prefix, after, skip_deleting, limit + 1, |i| {
            items.push(i);
            items.len() <= limit
        })
        .await?;
        let more = items.len() > limit;
        items.truncate(limit);
        let next = match items.last() {
            Some(last) if more => Some(text(last, "sk")?[prefix.len()..].to_owned()),
            _ => None,
        };
        Ok((items, next))
    }

    /// Every membership (group, username) of the partition `pk` whose sort keys start with
    /// `prefix`: a group's (`MEMBER#`) or a user's (`GROUP#`).
    async fn memberships_in(&self, pk: String, prefix: &str) -> StoreResult<Vec<(String, String)>> {
        let mut items = Vec::new();
        self.query_sk_after(pk, prefix, None, false, 1000, |i| {
            items.push(i);
            true
        })
        .await?;
        items.iter().map(|i| Ok((text(i, "group")?.to_owned(), text(i, "username")?.to_owned()))).collect()
    }

    /// The condition that `group` is marked for deletion (`delete_group`'s later steps).
    fn being_deleted(&self, group: &str) -> StoreResult<TransactWriteItem> {
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .key("pk", s(GROUP_LIST))
            .key("sk", s(group))
            .condition_expression("attribute_exists(#deleting)")
            .expression_attribute_names("#deleting", DELETING)
            .build();
        Ok(TransactWriteItem::builder().condition_check(built(check)?).build())
    }

    /// Deletes memberships, each with its mirror, a few per transaction. With `deleting`, each
    /// transaction is conditional on that group's deletion mark: `false` (the rest kept) once
    /// the group is no longer marked (another deletion finished it; it may exist again since).
    async fn delete_memberships(&self, deleting: Option<&str>, memberships: &[(String, String)]) -> StoreResult<bool> {
        for chunk in memberships.chunks(DELETE_CHUNK) {
            let mut actions = Vec::with_capacity(chunk.len() * 2 + 1);
            if let Some(group) = deleting {
                actions.push(self.being_deleted(group)?);
            }
            for (group, username) in chunk {
                for item in membership_items(group, username) {
                    let d = Delete::builder()
                        .table_name(&self.table)
                        .key("pk", item["pk"].clone())
                        .key("sk", item["sk"].clone())
                        .build();
                    actions.push(TransactWriteItem::builder().delete(built(d)?).build());
                }
            }
            if !self.transact_single_use(actions).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

#[async_trait]
impl GroupStore for DynamoStore {
    async fn create_group(&self, group: &Group) -> StoreResult<()> {
        self.put_new(group_item(group)?).await
    }

    async fn get_group(&self, name: &str) -> StoreResult<Option<Group>> {
        match self.get(GROUP_LIST.into(), name).await? {
            Some(item) if !item.contains_key(DELETING) => Ok(Some(decode(item)?)),
            _ => Ok(None),
        }
    }

    async fn list_groups(&self, after: Option<&str>, limit: usize) -> StoreResult<(Vec<Group>, Option<String>)> {
        let (items, next) = self.sk_page(GROUP_LIST.into(), "", after, true, limit).await?;
        Ok((items.into_iter().map(decode).collect::<StoreResult<_>>()?, next))
    }

    async fn update_group(&self, group: &Group) -> StoreResult<bool> {
        let r = self
            .ddb
            .put_item()
            .table_name(&self.table)
            .set_item(Some(group_item(group)?))
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(#deleting)")
            .expression_attribute_names("#deleting", DELETING)
            .send()
            .await;
        condition_met(r.map(drop).map_err(classify))
    }

    async fn delete_group(&self, name: &str) -> StoreResult<bool> {
        // 1. Mark it: hidden from now on, and `add_member` refuses it.
        let r = self
            .ddb
            .update_item()
            .table_name(&self.table)
            .key("pk", s(GROUP_LIST))
            .key("sk", s(name))
            .update_expression("SET #deleting = :yes")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#deleting", DELETING)
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .send()
            .await;
        if !condition_met(r.map(drop).map_err(classify))? {
            return Ok(false);
        }
        // 2. Its memberships: every one committed before the mark is seen (consistent Query).
        let members = self.memberships_in(group_pk(name), MEMBER).await?;
        if !self.delete_memberships(Some(name), &members).await? {
            return Ok(false);
        }
        // 3. The group itself, still marked; `true` for the one call that deleted it.
        self.delete_where(GROUP_LIST.into(), name, "attribute_exists(#n)", Some(DELETING), None).await
    }

    async fn add_member(&self, group: &str, username: &str) -> StoreResult<bool> {
        let group_exists = ConditionCheck::builder()
            .table_name(&self.table)
            .key("pk", s(GROUP_LIST))
            .key("sk", s(group))
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(#deleting)")
            .expression_attribute_names("#deleting", DELETING)
            .build();
        let user_exists = ConditionCheck::builder()
            .table_name(&self.table)
            .key("pk", s(user_pk(username)))
            .key("sk", s("USER"))
            .condition_expression("attribute_exists(pk)")
            .build();
        let mut actions = vec![
            TransactWriteItem::builder().condition_check(built(group_exists)?).build(),
            TransactWriteItem::builder().condition_check(built(user_exists)?).build(),
        ];
        for item in membership_items(group, username) {
            let put = Put::builder().table_name(&self.table).set_item(Some(item)).build();
            actions.push(TransactWriteItem::builder().put(built(put)?).build());
        }
        match self.transact_single_use(actions).await {
            // The group's condition failed (false), or the user's (Conflict).
            Err(StoreError::Conflict) => Ok(false),
            r => r,
        }
    }

    async fn remove_member(&self, group: &str, username: &str) -> StoreResult<bool> {
        let [member, mirror] = membership_items(group, username);
        let fits = |i: &Item| key_fits(i["pk"].as_s().map_or("", |v| v), i["sk"].as_s().map_or("", |v| v));
        if !fits(&member) || !fits(&mirror) {
            return Ok(false); // no such membership can exist
        }
        let first = Delete::builder()
            .table_name(&self.table)
            .key("pk", member["pk"].clone())
            .key("sk", member["sk"].clone())
            .condition_expression("attribute_exists(pk)")
            .build();
        let second = Delete::builder()
            .table_name(&self.table)
            .key("pk", mirror["pk"].clone())
            .key("sk", mirror["sk"].clone())
            .build();
        self.transact_single_use(vec![
            TransactWriteItem::builder().delete(built(first)?).build(),
            TransactWriteItem::builder().delete(built(second)?).build(),
        ])
        .await
    }

    /// The membership, and then the group: a group marked for deletion grants nothing, also
    /// while a deletion that stopped part-way (a 503, to be retried) has left memberships.
    async fn is_member(&self, group: &str, username: &str) -> StoreResult<bool> {
        if self.get(group_pk(group), &format!("{MEMBER}{username}")).await?.is_none() {
            return Ok(false);
        }
        Ok(self.get(GROUP_LIST.into(), group).await?.is_some_and(|g| !g.contains_key(DELETING)))
    }

    async fn list_members(
        &self,
        group: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<(Vec<String>, Option<String>)> {
        let (items, next) = self.sk_page(group_pk(group), MEMBER, after, false, limit).await?;
        let names = items.iter().map(|i| text(i, "username").map(str::to_owned)).collect::<StoreResult<_>>()?;
        Ok((names, next))
    }

    /// The user's memberships, without groups marked for deletion (hidden from the mark on, as
    /// everywhere: a deletion cut short leaves memberships until it is retried). One GetItem per
    /// membership found (the admin API's reads only).
    async fn groups_of(&self, username: &str) -> StoreResult<Vec<String>> {
        let mut live = Vec::new();
        for (group, _) in self.memberships_in(user_pk(username), MIRROR).await? {
            if self.get(GROUP_LIST.into(), &group).await?.is_some_and(|g| !g.contains_key(DELETING)) {
                live.push(group);
            }
        }
        Ok(live)
    }

    async fn remove_user_from_groups(&self, username: &str) -> StoreResult<u64> {
        let memberships = self.memberships_in(user_pk(username), MIRROR).await?;
        self.delete_memberships(None, &memberships).await?;
        Ok(memberships.len() as u64)
    }
}
