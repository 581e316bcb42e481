//! Cases for groups and memberships, the user listing, and resource-server updates, deletion
//! and pages.
use std::future::Future;
use std::sync::Arc;

use super::users::user;
use super::*;
use crate::model::{Group, User};
use crate::store::StoreResult;

fn group(name: &str, description: Option<&str>) -> Group {
    Group { name: name.into(), description: description.map(Into::into), created_at: NOW }
}

fn names(v: &[Group]) -> Vec<&str> {
    v.iter().map(|g| g.name.as_str()).collect()
}

/// Follows `next` from the first page to the last: every page's items, in order.
async fn all_pages<T, F, Fut>(mut page: F) -> Vec<Vec<T>>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = StoreResult<(Vec<T>, Option<String>)>>,
{
    let (mut out, mut after) = (Vec::new(), None);
    loop {
        let (items, next) = page(after.take()).await.unwrap();
        out.push(items);
        match next {
            Some(n) if out.len() < 1000 => after = Some(n),
            Some(n) => panic!("endless pages (next {n})"),
            None => return out,
        }
    }
}

/// Create, conflict without overwriting, read, pages by name, update existing and missing.
pub async fn groups(s: &dyn Store) {
    assert_eq!(s.list_groups(None, 10).await.unwrap(), (vec![], None), "an empty store");
    for name in ["g3", "g1", "g5", "g2", "g4"] {
        s.create_group(&group(name, Some("A group"))).await.unwrap();
    }
    assert!(matches!(s.create_group(&group("g1", Some("Impostor"))).await, Err(StoreError::Conflict)));
    assert_eq!(s.get_group("g1").await.unwrap(), Some(group("g1", Some("A group"))), "not overwritten");
    assert_eq!(s.get_group("g9").await.unwrap(), None);

    let (page, next) = s.list_groups(None, 2).await.unwrap();
    assert_eq!(
        (page.clone(), next.as_deref()),
        (vec![group("g1", Some("A group")), group("g2", Some("A group"))], Some("g2"))
    );
    let (page, next) = s.list_groups(Some("g2"), 2).await.unwrap();
    assert_eq!((names(&page), next.as_deref()), (vec!["g3", "g4"], Some("g4")));
    let (page, next) = s.list_groups(Some("g4"), 2).await.unwrap();
    assert_eq!((names(&page), next), (vec!["g5"], None), "the last page says so");
    let (page, next) = s.list_groups(None, 5).await.unwrap();
    assert_eq!((names(&page), next), (vec!["g1", "g2", "g3", "g4", "g5"], None), "exactly full");
    assert_eq!(s.list_groups(Some("g5"), 10).await.unwrap(), (vec![], None), "after the last");
    assert_eq!(s.list_groups(Some("zzz"), 1).await.unwrap(), (vec![], None));
    assert_eq!(s.list_groups(None, 0).await.unwrap(), (vec![], None));
    let (page, _) = s.list_groups(Some("g0"), 1).await.unwrap();
    assert_eq!(names(&page), ["g1"], "a cursor need not name an existing group");
    for limit in 1..=3 {
        let pages = all_pages(|after| async move { s.list_groups(after.as_deref(), limit).await }).await;
        let all: Vec<String> = pages.iter().flatten().map(|g| g.name.clone()).collect();
        assert_eq!(all, ["g1", "g2", "g3", "g4", "g5"], "limit {limit}");
        assert!(pages.iter().all(|p| !p.is_empty() && p.len() <= limit), "limit {limit}");
    }

    assert!(s.update_group(&group("g2", None)).await.unwrap());
    assert_eq!(s.get_group("g2").await.unwrap(), Some(group("g2", None)));
    assert!(!s.update_group(&group("g9", Some("x"))).await.unwrap(), "updating a missing group reports false");
    assert_eq!(s.get_group("g9").await.unwrap(), None, "an update never creates a group");
    assert!(s.delete_group("g3").await.unwrap());
    assert!(!s.delete_group("g3").await.unwrap());
    assert!(!s.update_group(&group("g3", None)).await.unwrap(), "nor recreates a deleted one");
    let (page, next) = s.list_groups(Some("g1"), 10).await.unwrap();
    assert_eq!((names(&page), next), (vec!["g2", "g4", "g5"], None));
    assert_eq!(page[0], group("g2", None), "listed as it is now");
}

/// Adding is idempotent and needs the group and the user; one lookup says whether a user is a
/// member; members page by username; a user's groups by name; removal once.
pub async fn group_members(s: &dyn Store) {
    for g in ["staff", "ops", "empty"] {
        s.create_group(&group(g, None)).await.unwrap();
    }
    for u in ["carol", "alice", "bob", "dave", "erin"] {
        s.create_user(&user(u)).await.unwrap();
    }
    for u in ["erin", "bob", "alice", "dave", "carol"] {
        assert!(s.add_member("staff", u).await.unwrap(), "{u}");
    }
    assert!(s.add_member("staff", "alice").await.unwrap(), "adding again is fine");
    assert!(s.add_member("ops", "alice").await.unwrap());
    assert!(!s.add_member("nope", "alice").await.unwrap(), "no such group");
    assert!(!s.add_member("ops", "zed").await.unwrap(), "no such user");
    assert!(!s.is_member("ops", "zed").await.unwrap() && s.get_group("nope").await.unwrap().is_none());
    assert!(s.groups_of("zed").await.unwrap().is_empty(), "nothing was written for a missing user");

    assert!(s.is_member("staff", "alice").await.unwrap());
    assert!(s.is_member("ops", "alice").await.unwrap());
    assert!(!s.is_member("ops", "bob").await.unwrap());
    assert!(!s.is_member("empty", "alice").await.unwrap());
    assert!(!s.is_member("nope", "alice").await.unwrap());

    let (page, next) = s.list_members("staff", None, 2).await.unwrap();
    assert_eq!((page, next.as_deref()), (vec!["alice".to_owned(), "bob".to_owned()], Some("bob")));
    let (page, next) = s.list_members("staff", Some("bob"), 2).await.unwrap();
    assert_eq!((page, next.as_deref()), (vec!["carol".to_owned(), "dave".to_owned()], Some("dave")));
    let (page, next) = s.list_members("staff", Some("dave"), 2).await.unwrap();
    assert_eq!((page, next), (vec!["erin".to_owned()], None));
    assert_eq!(s.list_members("staff", Some("erin"), 2).await.unwrap(), (vec![], None), "after the last");
    assert_eq!(s.list_members("staff", Some("zzz"), 2).await.unwrap(), (vec![], None));
    assert_eq!(s.list_members("staff", None, 0).await.unwrap(), (vec![], None));
    assert_eq!(s.list_members("empty", None, 10).await.unwrap(), (vec![], None));
    assert_eq!(s.list_members("nope", None, 10).await.unwrap(), (vec![], None));
    assert_eq!(s.list_members("ops", None, 10).await.unwrap(), (vec!["alice".to_owned()], None));
    for limit in 1..=3 {
        let pages = all_pages(|after| async move { s.list_members("staff", after.as_deref(), limit).await }).await;
        assert_eq!(pages.concat(), ["alice", "bob", "carol", "dave", "erin"], "limit {limit}");
    }

    assert_eq!(s.groups_of("alice").await.unwrap(), ["ops", "staff"]);
    assert_eq!(s.groups_of("bob").await.unwrap(), ["staff"]);
    assert!(s.groups_of("nobody").await.unwrap().is_empty());

    assert!(s.remove_member("staff", "alice").await.unwrap());
    assert!(!s.remove_member("staff", "alice").await.unwrap(), "once");
    assert!(!s.remove_member("empty", "alice").await.unwrap());
    assert!(!s.remove_member("nope", "alice").await.unwrap());
    assert!(!s.is_member("staff", "alice").await.unwrap());
    assert!(s.is_member("ops", "alice").await.unwrap(), "other memberships stay");
    assert_eq!(s.groups_of("alice").await.unwrap(), ["ops"]);
    assert_eq!(s.list_members("staff", None, 10).await.unwrap().0, ["bob", "carol", "dave", "erin"]);
    assert_eq!(s.get_user("alice").await.unwrap(), Some(user("alice")), "the user record is untouched");
    assert_eq!(s.get_group("staff").await.unwrap(), Some(group("staff", None)), "the group record too");
}

/// Deleting a group removes every membership in it (more than one transaction's worth); a group
/// created again with the same name starts empty. Removing a user from their groups removes
/// every membership of theirs and no one else's.
pub async fn group_deletion(s: &dyn Store) {
    s.create_group(&group("big", None)).await.unwrap();
    s.create_group(&group("small", None)).await.unwrap();
    let members: Vec<String> = (0..60).map(|i| format!("u{i:02}")).collect();
    for u in &members {
        s.create_user(&user(u)).await.unwrap();
        assert!(s.add_member("big", u).await.unwrap());
    }
    assert!(s.add_member("small", "u00").await.unwrap());
    assert_eq!(s.list_members("big", None, 100).await.unwrap(), (members.clone(), None));

    assert!(s.delete_group("big").await.unwrap());
    assert_eq!(s.get_group("big").await.unwrap(), None);
    assert_eq!(s.list_members("big", None, 100).await.unwrap(), (vec![], None));
    for u in &members {
        assert!(!s.is_member("big", u).await.unwrap(), "{u}");
    }
    assert_eq!(s.groups_of("u00").await.unwrap(), ["small"]);
    assert!(s.groups_of("u01").await.unwrap().is_empty());
    assert!(!s.add_member("big", "u01").await.unwrap(), "a deleted group takes no members");
    assert!(!s.delete_group("big").await.unwrap());
    s.create_group(&group("big", Some("again"))).await.unwrap();
    assert_eq!(s.list_members("big", None, 100).await.unwrap(), (vec![], None), "a new group starts empty");
    assert!(!s.is_member("big", "u00").await.unwrap());
    assert_eq!(s.list_groups(None, 10).await.unwrap().0, vec![group("big", Some("again")), group("small", None)]);

    // A user leaves every group; others stay.
    for g in ["big", "small"] {
        assert!(s.add_member(g, "u05").await.unwrap());
        assert!(s.add_member(g, "u06").await.unwrap());
    }
    assert!(s.delete_user("u05", None).await.unwrap());
    assert_eq!(s.remove_user_from_groups("u05").await.unwrap(), 2);
    assert_eq!(s.remove_user_from_groups("u05").await.unwrap(), 0);
    assert_eq!(s.remove_user_from_groups("nobody").await.unwrap(), 0);
    assert!(!s.is_member("big", "u05").await.unwrap() && !s.is_member("small", "u05").await.unwrap());
    assert!(s.groups_of("u05").await.unwrap().is_empty());
    assert_eq!(s.groups_of("u06").await.unwrap(), ["big", "small"]);
    assert_eq!(s.list_members("small", None, 10).await.unwrap().0, ["u00", "u06"]);
    assert!(!s.add_member("big", "u05").await.unwrap(), "a deleted user cannot be added");
    s.create_user(&user("u05")).await.unwrap();
    assert!(s.groups_of("u05").await.unwrap().is_empty(), "a new user of the same name starts in no group");
}

/// Members added while their group is deleted never outlive it; of concurrent deletions
/// exactly one reports it.
pub async fn concurrent_group_deletion(s: Arc<dyn Store>) {
    s.create_group(&group("hot", None)).await.unwrap();
    for i in 0..40 {
        let u = format!("u{i:02}");
        s.create_user(&user(&u)).await.unwrap();
        if i < 20 {
            assert!(s.add_member("hot", &u).await.unwrap());
        }
    }
    let mut tasks = Vec::new();
    for i in 20..40 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move { s.add_member("hot", &format!("u{i:02}")).await.map(|_| false) }));
    }
    for _ in 0..4 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move { s.delete_group("hot").await }));
    }
    let mut deleted = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(d) => deleted += d as u32,
            // DynamoDB may cancel a write that meets a concurrent transaction on the same item.
            Err(StoreError::Unavailable(_)) => {}
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert!(deleted <= 1, "{deleted} deletions reported");
    if deleted == 0 {
        // Every deletion met contention: finish it.
        assert!(s.delete_group("hot").await.unwrap());
    }
    assert_eq!(s.get_group("hot").await.unwrap(), None);
    assert_eq!(s.list_members("hot", None, 100).await.unwrap(), (vec![], None), "no orphan memberships");
    for i in 0..40 {
        let u = format!("u{i:02}");
        assert!(!s.is_member("hot", &u).await.unwrap(), "{u}");
        assert!(s.groups_of(&u).await.unwrap().is_empty(), "{u}");
    }
}

/// Pages of users by username: whole records, cursors, the last page, updates and deletions.
pub async fn users_list(s: &dyn Store) {
    assert_eq!(s.list_users(None, 10).await.unwrap(), (vec![], None), "an empty store");
    for u in ["dave", "bob", "erin", "alice", "carol"] {
        s.create_user(&user(u)).await.unwrap();
    }
    // Items in the same partition that are not users are not listed.
    s.create_group(&group("staff", None)).await.unwrap();
    assert!(s.add_member("staff", "bob").await.unwrap());
    let usernames = |v: &[User]| v.iter().map(|u| u.username.clone()).collect::<Vec<_>>();
    let (page, next) = s.list_users(None, 2).await.unwrap();
    assert_eq!((page.clone(), next.as_deref()), (vec![user("alice"), user("bob")], Some("bob")), "whole records");
    let (page, next) = s.list_users(Some("bob"), 2).await.unwrap();
    assert_eq!((usernames(&page), next.as_deref()), (vec!["carol".to_owned(), "dave".to_owned()], Some("dave")));
    let (page, next) = s.list_users(Some("dave"), 2).await.unwrap();
    assert_eq!((usernames(&page), next), (vec!["erin".to_owned()], None));
    assert_eq!(s.list_users(Some("erin"), 2).await.unwrap(), (vec![], None));
    assert_eq!(s.list_users(None, 0).await.unwrap(), (vec![], None));
    for limit in 1..=3 {
        let pages = all_pages(|after| async move { s.list_users(after.as_deref(), limit).await }).await;
        assert_eq!(usernames(&pages.concat()), ["alice", "bob", "carol", "dave", "erin"], "limit {limit}");
    }
    let mut changed = user("bob");
    (changed.enabled, changed.updated_at, changed.version) = (false, NOW + 5, 1);
    assert!(s.update_user(&changed, 0).await.unwrap());
    assert!(s.delete_user("carol", None).await.unwrap());
    let (page, next) = s.list_users(Some("alice"), 2).await.unwrap();
    assert_eq!((page, next.as_deref()), (vec![changed, user("dave")], Some("dave")), "updated once, deleted gone");
}

/// Replace existing (never create), delete once, pages by identifier.
pub async fn resource_servers_update_delete(s: &dyn Store) {
    let rs = |id: &str, name: &str| ResourceServer {
        identifier: id.into(),
        name: Some(name.into()),
        scopes: vec![ScopeDescription { name: "read".into(), description: Some("Read things".into()), claims: vec![] }],
        created_at: NOW,
        custom_claims: vec![],
        version: 0,
    };
    let ids = ["https://a.example", "https://b.example/api", "https://b.example/api/v2", "urn:c", "urn:d"];
    assert_eq!(s.list_resource_servers_after(None, 10).await.unwrap(), (vec![], None));
    for id in ids.iter().rev() {
        s.create_resource_server(&rs(id, "API")).await.unwrap();
    }
    let listed = |v: &[ResourceServer]| v.iter().map(|r| r.identifier.clone()).collect::<Vec<_>>();
    let (page, next) = s.list_resource_servers_after(None, 2).await.unwrap();
    assert_eq!((listed(&page), next.as_deref()), (vec![ids[0].to_owned(), ids[1].to_owned()], Some(ids[1])));
    let (page, next) = s.list_resource_servers_after(Some(ids[1]), 2).await.unwrap();
    assert_eq!((listed(&page), next.as_deref()), (vec![ids[2].to_owned(), ids[3].to_owned()], Some(ids[3])));
    let (page, next) = s.list_resource_servers_after(Some(ids[3]), 2).await.unwrap();
    assert_eq!((listed(&page), next), (vec![ids[4].to_owned()], None));
    assert_eq!(s.list_resource_servers_after(Some("zzz"), 2).await.unwrap(), (vec![], None));
    assert_eq!(s.list_resource_servers_after(None, 0).await.unwrap(), (vec![], None));
    for limit in 1..=3 {
        let pages =
            all_pages(|after| async move { s.list_resource_servers_after(after.as_deref(), limit).await }).await;
        assert_eq!(listed(&pages.concat()), ids, "limit {limit}");
    }

    let mut renamed = rs(ids[1], "Renamed");
    renamed.version = 1;
    assert!(s.update_resource_server(&renamed, 0).await.unwrap());
    assert_eq!(s.get_resource_server(ids[1]).await.unwrap(), Some(renamed.clone()));
    // Optimistic concurrency: a writer that read version 0 lost to the one above.
    let mut stale = rs(ids[1], "API");
    (stale.scopes, stale.version) = (vec![], 1);
    assert!(matches!(s.update_resource_server(&stale, 0).await, Err(StoreError::Conflict)));
    assert_eq!(s.get_resource_server(ids[1]).await.unwrap(), Some(renamed.clone()), "a conflict writes nothing");
    let mut changed = renamed.clone();
    changed.scopes = vec![ScopeDescription { name: "write".into(), description: None, claims: vec![] }];
    changed.version = 2;
    assert!(s.update_resource_server(&changed, 1).await.unwrap());
    assert_eq!(s.get_resource_server(ids[1]).await.unwrap(), Some(changed.clone()));
    assert!(!s.update_resource_server(&rs("https://nope.example", "x"), 0).await.unwrap());
    assert_eq!(s.get_resource_server("https://nope.example").await.unwrap(), None, "an update never creates");

    assert!(matches!(s.delete_resource_server(ids[1], Some(1)).await, Err(StoreError::Conflict)));
    assert_eq!(s.get_resource_server(ids[1]).await.unwrap(), Some(changed.clone()), "nothing deleted");
    // Never updated: version 0, which its record does not state.
    assert!(s.delete_resource_server(ids[2], Some(0)).await.unwrap());
    assert!(!s.delete_resource_server(ids[2], None).await.unwrap(), "once");
    assert!(!s.delete_resource_server("https://nope.example", None).await.unwrap());
    assert_eq!(s.get_resource_server(ids[2]).await.unwrap(), None);
    assert!(!s.update_resource_server(&rs(ids[2], "x"), 0).await.unwrap(), "a deleted one is not recreated");
    let all = s.list_resource_servers().await.unwrap();
    assert_eq!(listed(&all), [ids[0], ids[1], ids[3], ids[4]]);
    assert_eq!(all[1], changed);
    assert_eq!(s.list_resource_servers_after(Some(ids[0]), 1).await.unwrap(), (vec![changed], Some(ids[1].to_owned())));
}
