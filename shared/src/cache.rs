//! Warm-instance caches of clients and resource servers (issue 7: round trips). A warm Lambda
//! instance reads a client at most once per [`CLIENT_TTL`] seconds and a resource server at
//! most once per [`RESOURCE_SERVER_TTL`] seconds; the identity-domain settings have their own
//! copy (`settings::SETTINGS_TTL`) and the key ring its reload (`keys::RELOAD_INTERVAL`).
//!
//! - "No such client / resource server" answers are cached too, so a caller cycling unknown ids
//!   costs at most one read per id and TTL, and the cache is bounded ([`MAX_ENTRIES`] per cache,
//!   expired entries dropped first, then the oldest).
//! - The admin instance that changes a client or resource server drops its own copy at once
//!   (`AppState::invalidate_client`, `AppState::invalidate_resource_server`); other warm
//!   instances see the change within the TTL. So a deleted client, a secret rotated without
//!   overlap, a changed redirect URI, grant type, scope or DPoP requirement take up to
//!   [`CLIENT_TTL`] seconds to reach every instance. A rotation's overlap is exact: the cached
//!   record carries both digests and the overlap's end, compared with the clock at each request.
//! - New credentials work at once everywhere: a client authentication that fails on the cached
//!   copy reads the client again (at most once per [`CLIENT_RECHECK_INTERVAL`] per client and
//!   instance, known or unknown alike, so the time taken tells nothing about whether the client
//!   exists) before refusing. So a rotated secret, a changed authentication method or a new
//!   `private_key_jwt` key is accepted by every instance from the moment it is stored.
//! - A failed read is not cached (the request fails as before: 503 when the store is down).
//! - Times come from the state's clock, so tests with a manual clock move the caches too.
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use crate::store::StoreResult;

/// Seconds a warm instance keeps a client (or its absence). Short, because a client's record
/// holds its credentials: a deleted client or a secret rotated without overlap keeps working on
/// other warm instances for at most this long. At one read per client, instance and 10 s, the
/// cost stays negligible.
pub const CLIENT_TTL: i64 = 10;
/// Seconds a warm instance keeps a resource server (or its absence): its scopes change rarely and
/// only narrow or widen what new tokens may carry. The same as the settings' TTL.
pub const RESOURCE_SERVER_TTL: i64 = 30;
/// Least seconds between two reads of a client caused by failed authentications (on one
/// instance): a caller guessing secrets costs at most one read per second and instance.
pub const CLIENT_RECHECK_INTERVAL: i64 = 1;
/// Most entries a cache holds.
pub const MAX_ENTRIES: usize = 1000;

struct Entry<V> {
    value: Option<Arc<V>>,
    read_at: i64,
    /// Insertion order, for evicting the oldest.
    seq: u64,
}

struct Inner<V> {
    entries: HashMap<String, Entry<V>>,
    next_seq: u64,
    /// +1 per invalidation: a read that started before one is not stored (it may be older than
    /// the change that caused it).
    epoch: u64,
}

/// A bounded map from key to a value read from the store (or its absence), each kept for `ttl`
/// seconds.
pub struct TtlCache<V> {
    ttl: i64,
    capacity: usize,
    inner: Mutex<Inner<V>>,
}

impl<V> TtlCache<V> {
    /// An empty cache keeping entries `ttl` seconds, at most `capacity` of them.
    pub fn new(ttl: i64, capacity: usize) -> Self {
        let inner = Inner { entries: HashMap::new(), next_seq: 0, epoch: 0 };
        Self { ttl, capacity: capacity.max(1), inner: Mutex::new(inner) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<V>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The value of `key` at `now`: the cached one while fresh, else `load`'s (then cached).
    pub async fn get_or_load<F, Fut>(&self, key: &str, now: i64, load: F) -> StoreResult<Option<Arc<V>>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = StoreResult<Option<V>>>,
    {
        let epoch = {
            let inner = self.lock();
            if let Some(e) = inner.entries.get(key)
                && self.fresh(e, now)
            {
                return Ok(e.value.clone());
            }
            inner.epoch
        };
        self.load(key, now, epoch, load).await
    }

    /// Reads `key` again unless this instance read it less than `min_age` seconds ago (and
    /// caches the answer): a refusal decided on a cached copy checks that the record has not
    /// changed since. `None` when it was not read again.
    pub async fn reload<F, Fut>(
        &self,
        key: &str,
        now: i64,
        min_age: i64,
        load: F,
    ) -> StoreResult<Option<Option<Arc<V>>>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = StoreResult<Option<V>>>,
    {
        let epoch = {
            let inner = self.lock();
            if let Some(e) = inner.entries.get(key)
                && self.fresh(e, now)
                && now < e.read_at.saturating_add(min_age)
            {
                return Ok(None);
            }
            inner.epoch
        };
        self.load(key, now, epoch, load).await.map(Some)
    }

    fn fresh(&self, e: &Entry<V>, now: i64) -> bool {
        now < e.read_at.saturating_add(self.ttl)
    }

    async fn load<F, Fut>(&self, key: &str, now: i64, epoch: u64, load: F) -> StoreResult<Option<Arc<V>>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = StoreResult<Option<V>>>,
    {
        let value = load().await?.map(Arc::new);
        let mut inner = self.lock();
        if inner.epoch == epoch {
            self.insert(&mut inner, key, value.clone(), now);
        }
        Ok(value)
    }

    fn insert(&self, inner: &mut Inner<V>, key: &str, value: Option<Arc<V>>, now: i64) {
        if !inner.entries.contains_key(key) && inner.entries.len() >= self.capacity {
            let ttl = self.ttl;
            inner.entries.retain(|_, e| now < e.read_at.saturating_add(ttl));
            if inner.entries.len() >= self.capacity
                && let Some(oldest) = inner.entries.iter().min_by_key(|(_, e)| e.seq).map(|(k, _)| k.clone())
            {
                inner.entries.remove(&oldest);
            }
        }
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.entries.insert(key.to_owned(), Entry { value, read_at: now, seq });
    }

    /// Forgets `key` (this instance changed it), and any read of it in flight.
    pub fn invalidate(&self, key: &str) {
        let mut inner = self.lock();
        inner.entries.remove(key);
        inner.epoch += 1;
    }

    /// How many entries are held (expired ones included until they are dropped).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    async fn get(c: &TtlCache<String>, key: &str, now: i64, reads: &AtomicUsize) -> Option<String> {
        let v = c
            .get_or_load(key, now, || async {
                reads.fetch_add(1, Ordering::SeqCst);
                Ok((!key.starts_with("unknown")).then(|| format!("value of {key}")))
            })
            .await
            .unwrap();
        v.map(|v| (*v).clone())
    }

    #[tokio::test]
    async fn values_and_absences_are_kept_for_the_ttl() {
        let (c, reads) = (TtlCache::new(10, 100), AtomicUsize::new(0));
        assert_eq!(get(&c, "a", 0, &reads).await.as_deref(), Some("value of a"));
        assert_eq!(get(&c, "a", 9, &reads).await.as_deref(), Some("value of a"));
        assert_eq!(get(&c, "unknown", 0, &reads).await, None);
        assert_eq!(get(&c, "unknown", 9, &reads).await, None);
        assert_eq!(reads.load(Ordering::SeqCst), 2, "one read per key within the TTL");
        get(&c, "a", 10, &reads).await;
        get(&c, "unknown", 10, &reads).await;
        assert_eq!(reads.load(Ordering::SeqCst), 4, "read again once the TTL has passed");
        c.invalidate("a");
        get(&c, "a", 11, &reads).await;
        assert_eq!(reads.load(Ordering::SeqCst), 5, "read again after an invalidation");
    }

    #[tokio::test]
    async fn a_reload_reads_again_unless_the_copy_is_younger_than_asked() {
        let (c, reads) = (TtlCache::new(10, 100), AtomicUsize::new(0));
        let load = || async {
            reads.fetch_add(1, Ordering::SeqCst);
            Ok(Some("fresh".to_owned()))
        };
        assert_eq!(
            c.reload("a", 0, 1, load).await.unwrap().map(|v| v.map(|v| (*v).clone())),
            Some(Some("fresh".into()))
        );
        assert_eq!(c.reload("a", 0, 1, load).await.unwrap(), None, "read less than a second ago");
        assert!(c.reload("a", 1, 1, load).await.unwrap().is_some());
        assert_eq!(reads.load(Ordering::SeqCst), 2);
        assert_eq!(get(&c, "a", 2, &reads).await.as_deref(), Some("fresh"), "the reloaded copy is cached");
        assert_eq!(reads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn the_size_is_bounded_and_the_oldest_goes_first() {
        let (c, reads) = (TtlCache::new(10, 3), AtomicUsize::new(0));
        for k in ["unknown1", "unknown2", "unknown3", "unknown4"] {
            get(&c, k, 0, &reads).await;
        }
        assert_eq!(c.len(), 3);
        get(&c, "unknown1", 1, &reads).await;
        assert_eq!(reads.load(Ordering::SeqCst), 5, "the oldest entry was evicted");
        get(&c, "unknown4", 1, &reads).await;
        assert_eq!(reads.load(Ordering::SeqCst), 5, "a newer one was kept");
        // Expired entries make room before live ones are evicted.
        get(&c, "x", 10, &reads).await;
        assert_eq!(c.len(), 2, "the entries read at 0 expired at 10: `unknown1` (read at 1) and `x` remain");
    }

    #[tokio::test]
    async fn a_read_overtaken_by_an_invalidation_is_not_stored() {
        let (c, reads) = (TtlCache::<String>::new(10, 10), AtomicUsize::new(0));
        let v = c
            .get_or_load("a", 0, || async {
                c.invalidate("a"); // the admin changed it while the read was in flight
                Ok(Some("old".to_owned()))
            })
            .await
            .unwrap();
        assert_eq!(v.as_deref().map(String::as_str), Some("old"));
        assert!(c.is_empty());
        assert_eq!(get(&c, "a", 1, &reads).await.as_deref(), Some("value of a"));
    }
}
