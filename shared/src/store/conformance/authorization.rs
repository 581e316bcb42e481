//! Pending authorization requests and authorization codes: single use under concurrency, and
//! code redemption atomic with storing the issued tokens.
use std::sync::Arc;

use super::{NOW, token};
use crate::model::{AuthorizationCode, PendingAuthorization, Scope, TokenKind, TokenRecord};
use crate::store::{Store, StoreError};

/// A pending request for the cases, alive for 10 minutes from [`NOW`].
pub fn pending(id: &str) -> PendingAuthorization {
    PendingAuthorization {
        id: id.into(),
        csrf_digest: crate::crypto::digest("csrf"),
        browser_digest: crate::crypto::digest("browser"),
        client_id: "c1".into(),
        redirect_uri: "https://app.example/cb".into(),
        redirect_uri_in_request: true,
        state: Some("xyz".into()),
        scope: Scope::parse("read").unwrap(),
        audience: "https://api.example".into(),
        code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into()),
        dpop_jkt: Some("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I".into()),
        username: None,
        signed_in_at: None,
        created_at: NOW,
        expires_at: NOW + 600,
    }
}

/// A code for the cases, of family `fam-<id>`, alive for 60 seconds from [`NOW`].
pub fn code(id: &str) -> AuthorizationCode {
    AuthorizationCode {
        id: id.into(),
        client_id: "c1".into(),
        redirect_uri: "https://app.example/cb".into(),
        redirect_uri_in_request: false,
        username: "alice".into(),
        scope: Scope::parse("read").unwrap(),
        audience: "https://api.example".into(),
        code_challenge: None,
        dpop_jkt: Some("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I".into()),
        family: format!("fam-{id}"),
        issued_at: NOW,
        signed_in_at: Some(NOW - 5),
        expires_at: NOW + 60,
        consumed_at: None,
        issued: vec![],
    }
}

/// The access and refresh records a redemption of `code` at `NOW + 1` issues, ids prefixed.
fn issued(code: &str, prefix: &str) -> Vec<TokenRecord> {
    [TokenKind::Access, TokenKind::Refresh]
        .into_iter()
        .map(|kind| {
            let mut t = token(&format!("{prefix}-{}", kind.as_str()), kind, "c1", Some("alice"), NOW + 1);
            t.family = Some(format!("fam-{code}"));
            t
        })
        .collect()
}

async fn stored(s: &dyn Store, tokens: &[TokenRecord]) -> Vec<Option<TokenRecord>> {
    let mut out = Vec::new();
    for t in tokens {
        out.push(s.get_token(&t.id, NOW + 2).await.unwrap());
    }
    out
}

/// Create, conflict without overwriting, expiry on read, update existing and missing, delete.
pub async fn pending_requests(s: &dyn Store) {
    let p = pending("p1");
    s.put_pending(&p).await.unwrap();
    assert_eq!(s.get_pending("p1", NOW).await.unwrap(), Some(p.clone()));
    let mut other = pending("p1");
    other.client_id = "impostor".into();
    assert!(matches!(s.put_pending(&other).await, Err(StoreError::Conflict)));
    assert_eq!(s.get_pending("p1", NOW + 599).await.unwrap(), Some(p.clone()), "a conflict must not overwrite");
    assert_eq!(s.get_pending("p1", NOW + 600).await.unwrap(), None, "expired at expires_at");
    assert_eq!(s.get_pending("nope", NOW).await.unwrap(), None);

    let mut signed_in = p.clone();
    (signed_in.username, signed_in.signed_in_at) = (Some("alice".into()), Some(NOW + 5));
    assert!(s.update_pending(&signed_in).await.unwrap());
    assert_eq!(s.get_pending("p1", NOW).await.unwrap(), Some(signed_in));
    assert!(!s.update_pending(&pending("ghost")).await.unwrap(), "updating a missing request reports false");
    assert_eq!(s.get_pending("ghost", NOW).await.unwrap(), None, "an update never creates a request");

    assert!(s.delete_pending("p1").await.unwrap());
    assert!(!s.delete_pending("p1").await.unwrap(), "single use");
    assert_eq!(s.get_pending("p1", NOW).await.unwrap(), None);
    assert!(!s.update_pending(&p).await.unwrap(), "a consumed request cannot be brought back");
}

/// 20 concurrent deletions of one pending request: exactly one reports it deleted.
pub async fn concurrent_pending_delete(s: Arc<dyn Store>) {
    s.put_pending(&pending("hot")).await.unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.delete_pending("hot").await.unwrap() })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        wins += t.await.unwrap() as u32;
    }
    assert_eq!(wins, 1);
}

/// Create, conflict, expiry on read; redemption once, storing its tokens; a failed redemption
/// (consumed, expired, unknown, or a token that cannot be stored) writes nothing.
pub async fn codes(s: &dyn Store) {
    let c = code("k1");
    s.put_code(&c).await.unwrap();
    assert_eq!(s.get_code("k1", NOW).await.unwrap(), Some(c.clone()));
    let mut other = code("k1");
    other.username = "mallory".into();
    assert!(matches!(s.put_code(&other).await, Err(StoreError::Conflict)));
    assert_eq!(s.get_code("k1", NOW + 59).await.unwrap(), Some(c.clone()), "a conflict must not overwrite");
    assert_eq!(s.get_code("k1", NOW + 60).await.unwrap(), None, "expired at expires_at");

    let first = issued("k1", "first");
    assert!(s.redeem_code("k1", NOW + 1, &first).await.unwrap());
    assert_eq!(stored(s, &first).await, first.iter().cloned().map(Some).collect::<Vec<_>>());
    let consumed = s.get_code("k1", NOW + 2).await.unwrap().expect("a consumed code is still read");
    assert_eq!(consumed.consumed_at, Some(NOW + 1));
    let ids = |ts: &[TokenRecord]| ts.iter().map(|t| t.id.clone()).collect::<Vec<_>>();
    assert_eq!(consumed.issued, ids(&first), "the redemption records its tokens' ids");
    assert_eq!(consumed, AuthorizationCode { consumed_at: Some(NOW + 1), issued: ids(&first), ..c.clone() });
    let replay = issued("k1", "replay");
    assert!(!s.redeem_code("k1", NOW + 2, &replay).await.unwrap(), "single use");
    assert_eq!(stored(s, &replay).await, [None, None], "a failed redemption stores no tokens");
    let after = s.get_code("k1", NOW + 2).await.unwrap().unwrap();
    assert_eq!((after.consumed_at, after.issued), (Some(NOW + 1), ids(&first)), "first time stands");

    s.put_code(&code("k2")).await.unwrap();
    let late = issued("k2", "late");
    assert!(!s.redeem_code("k2", NOW + 60, &late).await.unwrap(), "expired at expires_at");
    assert_eq!(stored(s, &late).await, [None, None]);
    assert_eq!(s.get_code("k2", NOW).await.unwrap().unwrap().consumed_at, None);
    let ghost = issued("ghost", "ghost");
    assert!(!s.redeem_code("ghost", NOW + 1, &ghost).await.unwrap());
    assert_eq!(stored(s, &ghost).await, [None, None]);
    assert_eq!(s.get_code("ghost", NOW).await.unwrap(), None, "redemption never creates a code");

    // All or nothing: a token id that exists already fails the redemption, code unconsumed.
    let mut clash = issued("k2", "clash");
    clash[1].id = first[1].id.clone();
    let r = s.redeem_code("k2", NOW + 1, &clash).await;
    assert!(matches!(r, Err(StoreError::Conflict)), "{r:?}");
    assert_eq!(s.get_code("k2", NOW).await.unwrap().unwrap(), code("k2"), "the code is not consumed, nor marked");
    assert_eq!(s.get_token(&clash[0].id, NOW + 2).await.unwrap(), None, "no token of it is stored");
    assert_eq!(s.get_token(&first[1].id, NOW + 2).await.unwrap(), Some(first[1].clone()), "nor overwritten");
    let retry = issued("k2", "retry");
    assert!(s.redeem_code("k2", NOW + 1, &retry).await.unwrap(), "still redeemable");
    assert_eq!(s.get_code("k2", NOW + 2).await.unwrap().unwrap().issued, ids(&retry));
}

/// 20 concurrent redemptions of one code, each with its own tokens: exactly one wins, and
/// exactly the winner's tokens are stored.
pub async fn concurrent_redeem(s: Arc<dyn Store>) {
    s.put_code(&code("hot")).await.unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                let tokens = issued("hot", &format!("racer{i}"));
                let won = s.redeem_code("hot", NOW + 1, &tokens).await.unwrap();
                (won, tokens)
            })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        let (won, tokens) = t.await.unwrap();
        wins += won as u32;
        let expect: Vec<_> = tokens.iter().map(|t| won.then(|| t.clone())).collect();
        assert_eq!(stored(&*s, &tokens).await, expect, "won: {won}");
    }
    assert_eq!(wins, 1);
}
