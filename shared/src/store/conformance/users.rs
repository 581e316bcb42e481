//! Users, consents and failure counters.
use std::sync::Arc;

use super::NOW;
use crate::model::{Consent, FailureCounter, Scope, User};
use crate::store::{Store, StoreError};

/// A user record for the cases, with attributes of every JSON type.
pub fn user(name: &str) -> User {
    let attributes = serde_json::json!({
        "email": format!("{name}@example.com"), "age": 42, "verified": true, "score": 1.5,
        "tags": ["a", "b"], "address": {"city": "Oslo"}, "nickname": null, "blank": "",
    });
    User {
        username: name.into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo".into(),
        attributes: attributes.as_object().unwrap().clone(),
        enabled: true,
        created_at: NOW,
        updated_at: NOW,
        version: 0,
        tokens_revoked_at: None,
        client_tokens_revoked_at: Default::default(),
    }
}

fn consent(user: &str, client: &str, scope: &str) -> Consent {
    let scope = Scope::parse(scope).unwrap();
    let resources = [("https://api.example".to_owned(), scope.clone())].into();
    Consent { username: user.into(), client_id: client.into(), scope, resources, granted_at: NOW }
}

/// Create, conflict without overwriting, read, update existing (the revocation cutoffs too)
/// and missing, delete once.
pub async fn users(s: &dyn Store) {
    let alice = user("alice");
    s.create_user(&alice).await.unwrap();
    assert_eq!(s.get_user("alice").await.unwrap(), Some(alice.clone()));
    assert_eq!(s.get_user("nobody").await.unwrap(), None);
    let mut impostor = user("alice");
    impostor.password_hash = "$argon2id$impostor".into();
    assert!(matches!(s.create_user(&impostor).await, Err(StoreError::Conflict)));
    assert_eq!(s.get_user("alice").await.unwrap(), Some(alice.clone()), "a conflicting create must not overwrite");

    let mut changed = alice.clone();
    (changed.enabled, changed.attributes, changed.updated_at, changed.version) =
        (false, serde_json::Map::new(), NOW + 10, 1);
    assert!(s.update_user(&changed, 0).await.unwrap());
    assert_eq!(s.get_user("alice").await.unwrap(), Some(changed.clone()));
    // Optimistic concurrency: a writer that read version 0 lost to the one above.
    let mut stale = alice.clone();
    (stale.password_hash, stale.version) = ("$argon2id$stale".into(), 1);
    assert!(matches!(s.update_user(&stale, 0).await, Err(StoreError::Conflict)));
    assert_eq!(s.get_user("alice").await.unwrap(), Some(changed.clone()), "a conflicting update writes nothing");
    let mut next = changed.with_tokens_revoked(Some("app"), NOW + 20).with_tokens_revoked(None, NOW + 30);
    (next.enabled, next.version) = (true, 2);
    assert!(s.update_user(&next, 1).await.unwrap());
    assert_eq!(s.get_user("alice").await.unwrap(), Some(next));
    assert!(!s.update_user(&user("bob"), 0).await.unwrap(), "updating a missing user reports false");
    assert_eq!(s.get_user("bob").await.unwrap(), None, "an update never creates a user");

    s.create_user(&user("carol")).await.unwrap();
    assert!(matches!(s.delete_user("alice", Some(1)).await, Err(StoreError::Conflict)));
    assert!(s.get_user("alice").await.unwrap().is_some(), "a delete at another version deletes nothing");
    assert!(!s.delete_user("nobody", Some(0)).await.unwrap());
    assert!(s.delete_user("alice", Some(2)).await.unwrap());
    s.create_user(&user("alice")).await.unwrap();
    assert!(s.delete_user("alice", None).await.unwrap());
    assert!(!s.delete_user("alice", None).await.unwrap());
    assert_eq!(s.get_user("alice").await.unwrap(), None);
    assert_eq!(s.get_user("carol").await.unwrap(), Some(user("carol")));
}

/// Put replaces; read one; list a user's in client order (not other users', not the user
/// record itself); delete once.
pub async fn consents(s: &dyn Store) {
    s.create_user(&user("alice")).await.unwrap();
    s.put_consent(&consent("alice", "c2", "read")).await.unwrap();
    s.put_consent(&consent("alice", "c1", "read")).await.unwrap();
    s.put_consent(&consent("bob", "c1", "write")).await.unwrap();
    s.put_consent(&consent("alice", "c1", "read write")).await.unwrap();
    assert_eq!(s.get_consent("alice", "c1").await.unwrap(), Some(consent("alice", "c1", "read write")), "replaced");
    assert_eq!(s.get_consent("alice", "c3").await.unwrap(), None);
    assert_eq!(s.get_consent("carol", "c1").await.unwrap(), None);
    assert_eq!(
        s.list_consents("alice").await.unwrap(),
        vec![consent("alice", "c1", "read write"), consent("alice", "c2", "read")]
    );
    assert_eq!(s.list_consents("bob").await.unwrap(), vec![consent("bob", "c1", "write")]);
    assert!(s.list_consents("carol").await.unwrap().is_empty());

    assert!(s.delete_consent("alice", "c1").await.unwrap());
    assert!(!s.delete_consent("alice", "c1").await.unwrap());
    assert!(!s.delete_consent("carol", "c1").await.unwrap());
    assert_eq!(s.list_consents("alice").await.unwrap(), vec![consent("alice", "c2", "read")]);
    assert_eq!(
        s.get_consent("bob", "c1").await.unwrap(),
        Some(consent("bob", "c1", "write")),
        "other users keep theirs"
    );
    assert_eq!(s.get_user("alice").await.unwrap(), Some(user("alice")), "the user record is untouched");
}

fn counter(count: u32, expires_at: i64, locked_until: Option<i64>) -> FailureCounter {
    FailureCounter { count, expires_at, locked_until }
}

/// Increment starts at 1 with expiry `now + window`, adds to a live counter, starts over when
/// expired; lock raises the expiry; clear forgets; keys are separate.
pub async fn counters(s: &dyn Store) {
    assert_eq!(s.get_counter("k", NOW).await.unwrap(), None);
    assert_eq!(s.increment_counter("k", NOW, 300).await.unwrap(), counter(1, NOW + 300, None));
    assert_eq!(s.increment_counter("k", NOW + 10, 300).await.unwrap(), counter(2, NOW + 300, None), "same expiry");
    assert_eq!(s.get_counter("k", NOW + 299).await.unwrap(), Some(counter(2, NOW + 300, None)));
    assert_eq!(s.get_counter("k", NOW + 300).await.unwrap(), None, "expired at expires_at");
    assert_eq!(s.increment_counter("k", NOW + 300, 300).await.unwrap(), counter(1, NOW + 600, None), "starts over");

    s.lock_counter("k", NOW + 1000).await.unwrap();
    let locked = s.get_counter("k", NOW + 700).await.unwrap().expect("the lock keeps the counter alive");
    assert_eq!(locked, counter(0, NOW + 1000, Some(NOW + 1000)), "the lock restarts the count");
    assert!(locked.is_locked(NOW + 999) && !locked.is_locked(NOW + 1000));
    assert_eq!(s.increment_counter("k", NOW + 700, 300).await.unwrap(), counter(1, NOW + 1000, Some(NOW + 1000)));

    s.increment_counter("short", NOW, 300).await.unwrap();
    s.lock_counter("short", NOW + 100).await.unwrap();
    assert_eq!(
        s.get_counter("short", NOW).await.unwrap(),
        Some(counter(0, NOW + 300, Some(NOW + 100))),
        "never lowered"
    );
    s.lock_counter("fresh", NOW + 50).await.unwrap();
    assert_eq!(s.get_counter("fresh", NOW).await.unwrap(), Some(counter(0, NOW + 50, Some(NOW + 50))));

    s.clear_counter("k").await.unwrap();
    assert_eq!(s.get_counter("k", NOW).await.unwrap(), None);
    s.clear_counter("never-seen").await.unwrap();
    assert_eq!(s.increment_counter("k", NOW + 5, 300).await.unwrap(), counter(1, NOW + 305, None));
    assert_eq!(
        s.get_counter("short", NOW).await.unwrap(),
        Some(counter(0, NOW + 300, Some(NOW + 100))),
        "other keys unaffected"
    );
}

/// 20 concurrent increments of a new counter: each sees a different count, ending at 20.
pub async fn concurrent_counter(s: Arc<dyn Store>) {
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.increment_counter("hot", NOW, 300).await.unwrap() })
        })
        .collect();
    let mut counts = Vec::new();
    for t in tasks {
        let c = t.await.unwrap();
        assert_eq!(c.expires_at, NOW + 300);
        counts.push(c.count);
    }
    counts.sort_unstable();
    assert_eq!(counts, (1..=20).collect::<Vec<u32>>());
    assert_eq!(s.get_counter("hot", NOW).await.unwrap().unwrap().count, 20);
}
