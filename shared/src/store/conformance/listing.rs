//! Cases for the admin API's pages and updates: the client listing, optimistic client updates,
//! and the keyset (cursor) token listing.
use std::sync::Arc;

use super::*;
use crate::store::token_sort_key;

fn client_ids(v: &[Client]) -> Vec<&str> {
    v.iter().map(|c| c.client_id.as_str()).collect()
}

/// Pages of clients by id: cursors, the last page, limit 0, deleted and updated clients.
pub async fn clients_list(s: &dyn Store) {
    assert_eq!(s.list_clients(None, 10).await.unwrap(), (vec![], None), "an empty store");
    for id in ["c3", "c1", "c5", "c2", "c4"] {
        s.create_client(&client(id)).await.unwrap();
    }
    let (page, next) = s.list_clients(None, 2).await.unwrap();
    assert_eq!((client_ids(&page), next.as_deref()), (vec!["c1", "c2"], Some("c2")));
    assert_eq!(page[0], client("c1"), "whole records");
    let (page, next) = s.list_clients(Some("c2"), 2).await.unwrap();
    assert_eq!((client_ids(&page), next.as_deref()), (vec!["c3", "c4"], Some("c4")));
    let (page, next) = s.list_clients(Some("c4"), 2).await.unwrap();
    assert_eq!((client_ids(&page), next), (vec!["c5"], None), "the last page says so");
    let (page, next) = s.list_clients(None, 5).await.unwrap();
    assert_eq!((client_ids(&page), next), (vec!["c1", "c2", "c3", "c4", "c5"], None), "exactly full");
    assert_eq!(s.list_clients(Some("c5"), 10).await.unwrap(), (vec![], None), "after the last");
    assert_eq!(s.list_clients(Some("zzz"), 10).await.unwrap(), (vec![], None));
    assert_eq!(s.list_clients(None, 0).await.unwrap(), (vec![], None));
    let (page, _) = s.list_clients(Some("c0"), 1).await.unwrap();
    assert_eq!(client_ids(&page), ["c1"], "a cursor need not name an existing client");

    assert!(s.delete_client("c3", None).await.unwrap());
    let mut c4 = client("c4");
    (c4.client_name, c4.version) = (Some("Renamed".into()), 1);
    assert!(s.update_client(&c4, 0).await.unwrap());
    let (page, next) = s.list_clients(Some("c2"), 10).await.unwrap();
    assert_eq!((page, next), (vec![c4, client("c5")], None), "deleted gone, updated listed once as it is now");
}

/// Updates are conditional on the version read: a stale write conflicts and changes nothing;
/// an unknown client is never created. The rotation fields round-trip.
pub async fn clients_update(s: &dyn Store) {
    let c = client("c1");
    s.create_client(&c).await.unwrap();
    let mut next = c.clone();
    next.client_name = Some("Second".into());
    next.previous_secret_digest = c.secret_digest.clone();
    next.previous_secret_expires_at = Some(NOW + 3600);
    next.secret_digest = Some(crate::crypto::digest("new-secret"));
    next.version = 1;
    assert!(s.update_client(&next, 0).await.unwrap());
    assert_eq!(s.get_client("c1").await.unwrap(), Some(next.clone()));

    let mut stale = c.clone();
    (stale.client_name, stale.version) = (Some("Lost".into()), 1);
    assert!(matches!(s.update_client(&stale, 0).await, Err(StoreError::Conflict)), "read version 0 is gone");
    let mut ahead = next.clone();
    (ahead.client_name, ahead.version) = (Some("Ahead".into()), 3);
    assert!(matches!(s.update_client(&ahead, 2).await, Err(StoreError::Conflict)));
    assert_eq!(s.get_client("c1").await.unwrap(), Some(next.clone()), "a conflicting update writes nothing");

    let mut third = next.clone();
    (third.previous_secret_digest, third.previous_secret_expires_at, third.version) = (None, None, 2);
    assert!(s.update_client(&third, 1).await.unwrap());
    assert_eq!(s.get_client("c1").await.unwrap(), Some(third));

    let mut ghost = client("ghost");
    ghost.version = 1;
    assert!(!s.update_client(&ghost, 0).await.unwrap());
    assert_eq!(s.get_client("ghost").await.unwrap(), None, "an update never creates a client");
    assert!(s.delete_client("c1", None).await.unwrap());
    assert!(!s.update_client(&next, 1).await.unwrap(), "deleted meanwhile");
}

/// 20 concurrent read-modify-write cycles (each adds its own redirect URI, redone from a fresh
/// read on conflict): none is lost, and the version counts them.
pub async fn concurrent_client_updates(s: Arc<dyn Store>) {
    s.create_client(&client("hot")).await.unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                loop {
                    let current = s.get_client("hot").await.unwrap().unwrap();
                    let mut next = current.clone();
                    next.redirect_uris.push(format!("https://app.example/cb{i}"));
                    next.version = current.version + 1;
                    match s.update_client(&next, current.version).await {
                        Ok(true) => return,
                        Err(StoreError::Conflict) => tokio::task::yield_now().await,
                        other => panic!("unexpected {other:?}"),
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let c = s.get_client("hot").await.unwrap().unwrap();
    assert_eq!(c.version, 20);
    assert_eq!(c.redirect_uris.len(), 21, "{:?}", c.redirect_uris);
    for i in 0..20 {
        assert!(c.redirect_uris.contains(&format!("https://app.example/cb{i}")), "cb{i} was lost");
    }
}

/// The cursor listing: the offset listing's order and content, page by page, across runs of
/// revoked, rotated and expired tokens (which neither listing nor count includes).
pub async fn tokens_list_after(s: &dyn Store) {
    let access = q(TokenKind::Access, Some("ca"), None);
    assert_eq!(s.list_tokens_after(&access, NOW, None, 10).await.unwrap(), (vec![], None), "none yet");
    // 12 active tokens, and 18 inactive ones (revoked, expired) between them.
    let mut active = Vec::new();
    for i in 0..24i64 {
        let id = format!("t{i:02}");
        s.put_token(&token(&id, TokenKind::Access, "ca", None, NOW + i)).await.unwrap();
        match i % 4 {
            0 | 3 => active.push(id),
            1 => assert!(s.revoke_token(&id, NOW).await.unwrap()),
            _ => {
                let mut expired = token(&format!("x{i:02}"), TokenKind::Access, "ca", None, NOW - 7200 + i);
                expired.expires_at = NOW;
                s.put_token(&expired).await.unwrap();
                assert!(s.revoke_token(&id, NOW).await.unwrap());
            }
        }
    }
    // Two tokens in the same second are ordered by id; another client's and kind's are apart.
    s.put_token(&token("t05b", TokenKind::Access, "ca", None, NOW + 5)).await.unwrap();
    s.put_token(&token("t05a", TokenKind::Access, "ca", None, NOW + 5)).await.unwrap();
    s.put_token(&token("other", TokenKind::Access, "cb", None, NOW)).await.unwrap();
    s.put_token(&token("r1", TokenKind::Refresh, "ca", Some("u"), NOW)).await.unwrap();
    active.insert(3, "t05a".into());
    active.insert(4, "t05b".into());
    assert_eq!(ids(&s.list_tokens(&access, NOW, 0, 100).await.unwrap().0), active, "the offset listing");

    for limit in [1, 2, 3, 5, 14, 15] {
        let (mut seen, mut after) = (Vec::new(), None::<String>);
        loop {
            let (page, next) = s.list_tokens_after(&access, NOW, after.as_deref(), limit).await.unwrap();
            assert!(page.len() <= limit);
            let offset_page = s.list_tokens(&access, NOW, seen.len(), limit).await.unwrap().0;
            assert_eq!(page, offset_page, "limit {limit}: the same page as by offset");
            seen.extend(page.iter().map(|t| t.id.clone()));
            match next {
                Some(n) => {
                    let last = page.last().unwrap();
                    assert_eq!(n, token_sort_key(last.expires_at, &last.id));
                    after = Some(n);
                }
                None => break,
            }
        }
        assert_eq!(seen, active, "limit {limit}: every active token once, in order");
    }
    let (page, next) = s.list_tokens_after(&access, NOW, None, 14).await.unwrap();
    assert_eq!((page.len(), next), (14, None), "exactly the last page: no next");
    let last = token_sort_key(NOW + 23 + 3600, "t23");
    assert_eq!(s.list_tokens_after(&access, NOW, Some(&last), 10).await.unwrap(), (vec![], None), "after the end");
    assert_eq!(s.list_tokens_after(&access, NOW, None, 0).await.unwrap(), (vec![], None));
    let mid = token_sort_key(NOW + 5 + 3600, "t05a");
    let (page, _) = s.list_tokens_after(&access, NOW, Some(&mid), 2).await.unwrap();
    assert_eq!(ids(&page), ["t05b", "t07"], "strictly after the cursor");
    assert_eq!(s.count_tokens(&access, NOW).await.unwrap(), 14);

    // Rotation takes a refresh token out of listings and counts; its successor comes in.
    s.put_token(&family_token("fr1", TokenKind::Refresh, "f1", NOW + 1)).await.unwrap();
    let by_alice = q(TokenKind::Refresh, Some("c1"), Some("alice"));
    let (page, _) = s.list_tokens_after(&by_alice, NOW, None, 10).await.unwrap();
    assert_eq!(ids(&page), ["fr1"]);
    let successor = family_token("fr2", TokenKind::Refresh, "f1", NOW + 2);
    assert!(s.rotate_refresh("fr1", NOW + 2, "r", &[successor]).await.unwrap());
    let (page, next) = s.list_tokens_after(&by_alice, NOW + 2, None, 10).await.unwrap();
    assert_eq!((ids(&page), next), (vec!["fr2"], None));
    assert_eq!(s.count_tokens(&by_alice, NOW + 2).await.unwrap(), 1, "the rotated token is not counted");
    let by_user = q(TokenKind::Refresh, None, Some("alice"));
    assert_eq!(ids(&s.list_tokens_after(&by_user, NOW + 2, None, 10).await.unwrap().0), ["fr2"]);
    // Expiry: at NOW + 3603 only the tokens issued after NOW + 3 are left.
    let later = ids(&s.list_tokens_after(&access, NOW + 3603, None, 100).await.unwrap().0)
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    assert_eq!(later, active[2..].to_vec());
    assert_eq!(s.count_tokens(&access, NOW + 3603).await.unwrap(), later.len() as u64);
}

/// The listings' order is expiry, then id, whatever the issue order (a client whose lifetime
/// was shortened, a user's tokens from clients of different lifetimes); cursors, offsets and
/// counts follow it, and a token expiring at `now` is out.
pub async fn tokens_listed_by_expiry(s: &dyn Store) {
    let at = |id: &str, client: &str, issued: i64, lifetime: i64| TokenRecord {
        expires_at: issued + lifetime,
        ..token(id, TokenKind::Access, client, Some("alice"), issued)
    };
    // Issue order: long, short, mid, same-b, same-a; expiry order: short, mid, same-a, same-b, long.
    let tokens = [
        at("long", "c1", NOW, 7200),
        at("short", "c1", NOW + 1, 60),
        at("mid", "c2", NOW + 2, 600),
        at("same-b", "c2", NOW + 3, 3600),
        at("same-a", "c1", NOW + 4, 3599),
    ];
    for t in &tokens {
        s.put_token(t).await.unwrap();
    }
    let order = ["short", "mid", "same-a", "same-b", "long"];
    let alice = q(TokenKind::Access, None, Some("alice"));
    assert_eq!(ids(&s.list_tokens(&alice, NOW + 4, 0, 10).await.unwrap().0), order);
    let (page, next) = s.list_tokens(&alice, NOW + 4, 1, 2).await.unwrap();
    assert_eq!((ids(&page), next), (vec!["mid", "same-a"], Some(token_sort_key(NOW + 3603, "same-a"))));
    let mut seen = Vec::new();
    let mut after = None::<String>;
    loop {
        let (page, next) = s.list_tokens_after(&alice, NOW + 4, after.as_deref(), 2).await.unwrap();
        seen.extend(page.iter().map(|t| t.id.clone()));
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(seen, order, "the cursor pages");
    assert_eq!(
        ids(&s.list_tokens(&q(TokenKind::Access, Some("c1"), None), NOW + 4, 0, 10).await.unwrap().0),
        ["short", "same-a", "long"]
    );
    assert_eq!(
        ids(&s.list_tokens(&q(TokenKind::Access, Some("c2"), Some("alice")), NOW + 4, 0, 10).await.unwrap().0),
        ["mid", "same-b"]
    );
    // At the short token's expiry it is out of listings, cursor pages and counts.
    assert_eq!(ids(&s.list_tokens(&alice, NOW + 61, 0, 10).await.unwrap().0), &order[1..]);
    assert_eq!(ids(&s.list_tokens_after(&alice, NOW + 61, None, 10).await.unwrap().0), &order[1..]);
    assert_eq!(s.count_tokens(&alice, NOW + 61).await.unwrap(), 4);
    assert_eq!(s.count_tokens(&q(TokenKind::Access, Some("c1"), None), NOW + 3604).await.unwrap(), 1, "long");
    // A cursor before `now` starts at the first unexpired token.
    let stale = token_sort_key(NOW, "a");
    assert_eq!(ids(&s.list_tokens_after(&alice, NOW + 700, Some(&stale), 10).await.unwrap().0), &order[2..]);
}
