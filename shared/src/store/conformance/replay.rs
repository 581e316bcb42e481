//! Single-use identifiers: the first use wins, until the entry expires.
use std::sync::Arc;

use crate::store::Store;

use super::NOW;

/// First use admitted, a second refused while live, admitted again once expired.
pub async fn replay(s: &dyn Store) {
    assert!(s.first_use("iss|jti-1", NOW, NOW + 60).await.unwrap());
    assert!(!s.first_use("iss|jti-1", NOW + 1, NOW + 61).await.unwrap(), "a replay within the lifetime");
    assert!(s.first_use("iss|jti-2", NOW + 1, NOW + 61).await.unwrap(), "another key is independent");
    assert!(!s.first_use("iss|jti-1", NOW + 59, NOW + 119).await.unwrap());
    assert!(s.first_use("iss|jti-1", NOW + 60, NOW + 120).await.unwrap(), "expired: usable again");
    assert!(!s.first_use("iss|jti-1", NOW + 61, NOW + 121).await.unwrap());
}

/// 20 concurrent first uses of one key: exactly one is admitted.
pub async fn concurrent_replay(s: Arc<dyn Store>) {
    let jobs = (0..20).map(|_| {
        let s = s.clone();
        tokio::spawn(async move { s.first_use("proof|same", NOW, NOW + 300).await.unwrap() })
    });
    let mut admitted = 0;
    for j in jobs {
        admitted += usize::from(j.await.unwrap());
    }
    assert_eq!(admitted, 1);
}
