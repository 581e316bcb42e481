//! Refresh-token rotation (RFC 9700 §4.14.2) and token families.
use std::sync::Arc;

use super::{NOW, ids, q, token};
use crate::model::{TokenKind, TokenRecord};
use crate::store::Store;

/// A token of `family` for the cases (client `c1`, end user `alice`).
pub fn family_token(id: &str, kind: TokenKind, family: &str, issued_at: i64) -> TokenRecord {
    let mut t = token(id, kind, "c1", Some("alice"), issued_at);
    t.family = Some(family.into());
    t
}

/// The successor refresh and access tokens of a rotation (the refresh token names its sibling,
/// which the stores keep as they keep every other field).
fn successors(prefix: &str, family: &str) -> Vec<TokenRecord> {
    let mut refresh = family_token(&format!("{prefix}-refresh"), TokenKind::Refresh, family, NOW + 10);
    refresh.issued_with = Some(format!("{prefix}-access"));
    // A refresh carries its grant's time (stored and read back like every other field).
    refresh.granted_at = Some(NOW);
    vec![refresh, family_token(&format!("{prefix}-access"), TokenKind::Access, family, NOW + 10)]
}

async fn stored(s: &dyn Store, tokens: &[TokenRecord]) -> Vec<Option<TokenRecord>> {
    let mut out = Vec::new();
    for t in tokens {
        out.push(s.get_token(&t.id, NOW + 11).await.unwrap());
    }
    out
}

/// Rotation once, storing the successors; the rotated record is still read (with its
/// successor response) but no longer listed or counted; a second rotation, or one of a
/// revoked, expired or unknown token, is `false` and writes nothing.
pub async fn refresh_rotation(s: &dyn Store) {
    let old = family_token("r0", TokenKind::Refresh, "f1", NOW);
    s.put_token(&old).await.unwrap();
    let refresh = q(TokenKind::Refresh, Some("c1"), None);
    assert_eq!(ids(&s.list_tokens(&refresh, NOW, 0, 10).await.unwrap().0), ["r0"]);

    let next = successors("n1", "f1");
    assert!(s.rotate_refresh("r0", NOW + 10, "sealed-response-1", &next).await.unwrap());
    assert_eq!(stored(s, &next).await, next.iter().cloned().map(Some).collect::<Vec<_>>());
    let rotated = s.get_token("r0", NOW + 11).await.unwrap().expect("a rotated record is still read");
    assert_eq!(
        (rotated.rotated_at, rotated.successor_response.as_deref()),
        (Some(NOW + 10), Some("sealed-response-1"))
    );
    assert_eq!(rotated.revoked_at, None);
    assert!(!rotated.is_active(NOW + 11));
    assert_eq!(ids(&s.list_tokens(&refresh, NOW + 11, 0, 10).await.unwrap().0), ["n1-refresh"], "rotated: not listed");
    assert_eq!(s.count_tokens(&refresh, NOW + 11).await.unwrap(), 1, "rotated: not counted");
    let by_user = q(TokenKind::Refresh, Some("c1"), Some("alice"));
    assert_eq!(s.count_tokens(&by_user, NOW + 11).await.unwrap(), 1);

    let again = successors("n2", "f1");
    assert!(!s.rotate_refresh("r0", NOW + 12, "sealed-response-2", &again).await.unwrap(), "single use");
    assert_eq!(stored(s, &again).await, [None, None], "a failed rotation stores no tokens");
    let still = s.get_token("r0", NOW + 12).await.unwrap().unwrap();
    assert_eq!((still.rotated_at, still.successor_response.as_deref()), (Some(NOW + 10), Some("sealed-response-1")));
    assert!(s.revoke_token("r0", NOW + 13).await.unwrap(), "a rotated token can still be revoked (reuse)");
    assert_eq!(s.get_token("r0", NOW + 13).await.unwrap().unwrap().revoked_at, Some(NOW + 13));

    s.put_token(&family_token("revoked", TokenKind::Refresh, "f2", NOW)).await.unwrap();
    s.revoke_token("revoked", NOW + 1).await.unwrap();
    let after_revoked = successors("n3", "f2");
    assert!(!s.rotate_refresh("revoked", NOW + 10, "x", &after_revoked).await.unwrap(), "revoked");
    assert_eq!(stored(s, &after_revoked).await, [None, None]);
    assert_eq!(s.get_token("revoked", NOW + 10).await.unwrap().unwrap().rotated_at, None);

    let mut short = family_token("short", TokenKind::Refresh, "f3", NOW);
    short.expires_at = NOW + 10;
    s.put_token(&short).await.unwrap();
    let after_expired = successors("n4", "f3");
    assert!(!s.rotate_refresh("short", NOW + 10, "x", &after_expired).await.unwrap(), "expired at expires_at");
    assert_eq!(stored(s, &after_expired).await, [None, None]);
    let after_unknown = successors("n5", "f4");
    assert!(!s.rotate_refresh("ghost", NOW + 10, "x", &after_unknown).await.unwrap(), "unknown");
    assert_eq!(stored(s, &after_unknown).await, [None, None]);
    assert_eq!(s.get_token("ghost", NOW).await.unwrap(), None, "rotation never creates a record");
}

/// 20 concurrent rotations of one refresh token, each with its own successors: exactly one
/// wins, its successors (only) are stored and its response is the one kept.
pub async fn concurrent_rotation(s: Arc<dyn Store>) {
    s.put_token(&family_token("hot", TokenKind::Refresh, "f1", NOW)).await.unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                let next = successors(&format!("racer{i}"), "f1");
                let won = s.rotate_refresh("hot", NOW + 10, &format!("response-{i}"), &next).await.unwrap();
                (i, won, next)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        let (i, won, next) = t.await.unwrap();
        if won {
            winners.push(i);
        }
        let expect: Vec<_> = next.iter().map(|t| won.then(|| t.clone())).collect();
        assert_eq!(stored(&*s, &next).await, expect, "won: {won}");
    }
    assert_eq!(winners.len(), 1);
    let rotated = s.get_token("hot", NOW + 11).await.unwrap().unwrap();
    assert_eq!(rotated.successor_response, Some(format!("response-{}", winners[0])));
}

/// A family's active tokens, any kind: not other families', not revoked, expired or rotated.
pub async fn token_families(s: &dyn Store) {
    s.put_token(&family_token("a1", TokenKind::Access, "f1", NOW + 1)).await.unwrap();
    s.put_token(&family_token("r1", TokenKind::Refresh, "f1", NOW + 1)).await.unwrap();
    s.put_token(&family_token("gone", TokenKind::Access, "f1", NOW + 2)).await.unwrap();
    s.revoke_token("gone", NOW + 3).await.unwrap();
    let mut old = family_token("old", TokenKind::Access, "f1", NOW - 7200);
    old.expires_at = NOW;
    s.put_token(&old).await.unwrap();
    s.put_token(&family_token("b1", TokenKind::Access, "f2", NOW)).await.unwrap();
    s.put_token(&family_token("f1", TokenKind::Access, "f", NOW)).await.unwrap();
    s.put_token(&token("loner", TokenKind::Access, "c1", Some("alice"), NOW)).await.unwrap();

    let sorted = |v: Vec<TokenRecord>| {
        let mut ids: Vec<String> = v.into_iter().map(|t| t.id).collect();
        ids.sort();
        ids
    };
    assert_eq!(sorted(s.list_family("f1", NOW).await.unwrap()), ["a1", "r1"]);
    assert!(s.rotate_refresh("r1", NOW + 10, "x", &successors("r2", "f1")).await.unwrap());
    assert_eq!(sorted(s.list_family("f1", NOW + 10).await.unwrap()), ["a1", "r2-access", "r2-refresh"]);
    let records = s.list_family("f1", NOW + 10).await.unwrap();
    assert!(records.iter().all(|t| t.family.as_deref() == Some("f1") && t.is_active(NOW + 10)));
    assert_eq!(sorted(s.list_family("f1", NOW + 3601).await.unwrap()), ["r2-access", "r2-refresh"], "a1 expired");
    assert_eq!(sorted(s.list_family("f2", NOW).await.unwrap()), ["b1"]);
    assert_eq!(sorted(s.list_family("f", NOW).await.unwrap()), ["f1"]);
    assert!(s.list_family("nobody", NOW).await.unwrap().is_empty());
}
