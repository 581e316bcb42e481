//! Settings: absent until first written; every write names the version it read.
use std::sync::Arc;

use crate::settings::{SettingsOverrides, StoredSettings};
use crate::store::Store;

use super::NOW;

fn at(version: u64, ttl: Option<u64>) -> StoredSettings {
    StoredSettings {
        overrides: SettingsOverrides { access_token_ttl: ttl, consent_enabled: Some(false), ..Default::default() },
        version,
        updated_at: NOW + version as i64,
        updated_by: "admin-token".into(),
        ..Default::default()
    }
}

/// First write creates, later writes need the previous version, stale writes change nothing.
pub async fn settings(s: &dyn Store) {
    assert_eq!(s.get_settings().await.unwrap(), None);
    assert!(!s.put_settings(&at(2, Some(600))).await.unwrap(), "version 2 needs a stored version 1");
    assert_eq!(s.get_settings().await.unwrap(), None);
    assert!(s.put_settings(&at(1, Some(600))).await.unwrap());
    assert!(!s.put_settings(&at(1, Some(900))).await.unwrap(), "a second first write loses");
    assert_eq!(s.get_settings().await.unwrap(), Some(at(1, Some(600))));
    assert!(s.put_settings(&at(2, None)).await.unwrap());
    assert!(!s.put_settings(&at(2, Some(120))).await.unwrap(), "a write that read version 1 again loses");
    assert!(!s.put_settings(&at(4, Some(120))).await.unwrap());
    assert_eq!(s.get_settings().await.unwrap(), Some(at(2, None)));
}

/// 10 writers racing from the same version: exactly one wins.
pub async fn concurrent_settings(s: Arc<dyn Store>) {
    s.put_settings(&at(1, Some(60))).await.unwrap();
    let jobs = (0..10u64).map(|i| {
        let s = s.clone();
        tokio::spawn(async move { s.put_settings(&at(2, Some(100 + i))).await.unwrap() })
    });
    let mut wins = 0;
    for j in jobs {
        wins += usize::from(j.await.unwrap());
    }
    assert_eq!(wins, 1);
    assert_eq!(s.get_settings().await.unwrap().unwrap().version, 2);
}
