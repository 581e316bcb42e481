//! `KeyRing`: the signer of the kms and sealed modes. The tenant's keys live in its table
//! ([`StoredSigningKey`], numbered slots written with a conditional put), so every function
//! instance of a stack agrees on them, and a rotation never invalidates a live token:
//!
//! 1. A new key joins the ring *pending*: published in the JWKS and accepted, not signing yet.
//! 2. It starts signing at its `active_from`, by default [`DEFAULT_ACTIVATION_DELAY`] later:
//!    longer than an instance's [`RELOAD_INTERVAL`] plus the JWKS `max-age` (300 s), so every
//!    instance and every resource server holding a cached JWKS knows the key before the first
//!    token it signs (RFC 7517 §5: a key set may hold several keys; RFC 9068 §4: the verifier
//!    picks the key by `kid`).
//! 3. The previous key stays published and accepted until an operator retires it, which the
//!    admin API allows once every token it signed has expired.
//!
//! Instances reload the ring every [`RELOAD_INTERVAL`] on the request path (one store query)
//! and at once, rate-limited, when a token names a `kid` they do not know.
//!
//! KMS mode joins keys by alias: the signing instances look at the key the alias names at each
//! reload; a key not yet in the ring (the operator moved the alias) joins as pending. Tokens are
//! signed with the ring's active key by its ARN, so the old key keeps signing until the new one
//! is active. Sealed mode joins keys by `POST /admin/keys/rotate` (generate, seal, store).
//!
//! A [`KeyUse::Verify`] ring (functions that never sign: authorize, introspect, revoke, admin)
//! only reads the table: it needs no KMS permission, and an empty ring (a new tenant whose token
//! function has not started yet) is simply an empty key set.
use std::sync::{Arc, RwLock};

use aws_sdk_kms::Client as Kms;

use super::kms::{KmsKey, describe};
use super::sealed::{seal, unseal};
use super::{Alg, EcKey, KeyError, KeySet, PublicJwk, Signer, SigningKey};
use crate::model::StoredSigningKey;
use crate::store::{KeyStore, StoreError};

/// Seconds between two reloads of the ring by a warm instance.
pub const RELOAD_INTERVAL: i64 = 60;
/// Least seconds between two reloads caused by an unknown `kid` (a token naming a random `kid`
/// costs at most one store query per this interval and instance).
pub const FORCED_RELOAD_INTERVAL: i64 = 10;

/// What a warm instance signs with a KMS key before it takes over signing (never a token).
const SIGN_PROBE: &[u8] = b"gatehouse: may this function sign with this key?";
/// Seconds from a key joining the ring to its first signature, unless the rotation says
/// otherwise: [`RELOAD_INTERVAL`] + the JWKS `max-age` (300 s) + margin.
pub const DEFAULT_ACTIVATION_DELAY: i64 = 600;

/// What an instance does with the ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUse {
    /// Signs tokens (the token function, the local server): creates a new tenant's first key,
    /// joins a moved KMS alias's key, unseals or calls KMS to sign.
    Sign,
    /// Only verifies tokens: reads the public keys from the table, never calls KMS.
    Verify,
}

/// Where a ring's keys come from.
enum Source {
    Kms { kms: Kms, alias: String },
    Sealed { kms: Kms, seal_key_id: String, tenant: String },
}

/// A key's place in its life cycle at some time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    /// Published, signs from `active_from` on.
    Pending,
    /// Signs now.
    Signing,
    /// Superseded; published and accepted until retired.
    Previous,
    /// Neither published nor accepted.
    Retired,
}

impl KeyStatus {
    /// The name used by the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Signing => "signing",
            Self::Previous => "previous",
            Self::Retired => "retired",
        }
    }

    /// The status of every key of `ring` at `now` (same order).
    pub fn of(ring: &[StoredSigningKey], now: i64) -> Vec<Self> {
        let signing = signing_record(ring, now).map(|k| k.generation);
        ring.iter()
            .map(|k| {
                if !k.is_published(now) {
                    Self::Retired
                } else if Some(k.generation) == signing {
                    Self::Signing
                } else if k.active_from() > now || signing.is_some_and(|g| k.generation > g) {
                    Self::Pending
                } else {
                    Self::Previous
                }
            })
            .collect()
    }
}

/// The key that signs at `now`: the newest published key whose activation time has come.
pub fn signing_record(ring: &[StoredSigningKey], now: i64) -> Option<&StoredSigningKey> {
    ring.iter().filter(|k| k.is_published(now) && k.active_from() <= now).max_by_key(|k| k.generation)
}

/// When `key` stopped signing: the activation of the first newer key that has signed since.
/// A newer key retired while pending (a cancelled rotation) never signed, so `key` went on
/// signing past its `active_from`: it does not count. A key that signed is never retired
/// before its successor signs (the admin API refuses to retire the signing key).
pub fn superseded_at(ring: &[StoredSigningKey], key: &StoredSigningKey, now: i64) -> Option<i64> {
    ring.iter()
        .filter(|k| k.generation > key.generation && k.active_from() <= now)
        .filter(|k| k.retired_at.is_none_or(|r| r > k.active_from()))
        .map(StoredSigningKey::active_from)
        .min()
}

/// What an instance has loaded.
#[derive(Clone)]
struct Loaded {
    keys: Arc<KeySet>,
    current: Option<Arc<dyn SigningKey>>,
    next_reload: i64,
    last_forced: i64,
}

/// The kms and sealed modes' signer (module docs).
pub struct KeyRing {
    source: Source,
    store: Arc<dyn KeyStore>,
    key_use: KeyUse,
    loaded: RwLock<Loaded>,
    reloading: tokio::sync::Mutex<()>,
}

impl KeyRing {
    /// KMS mode: keys join the ring through `alias` (a KMS alias or key id).
    pub async fn kms(
        kms: Kms,
        alias: impl Into<String>,
        store: Arc<dyn KeyStore>,
        key_use: KeyUse,
        now: i64,
    ) -> Result<Self, KeyError> {
        Self::start(Source::Kms { kms, alias: alias.into() }, store, key_use, now).await
    }

    /// Sealed mode: keys sealed by `seal_key_id` for `tenant` (the encryption context).
    pub async fn sealed(
        kms: Kms,
        seal_key_id: impl Into<String>,
        tenant: impl Into<String>,
        store: Arc<dyn KeyStore>,
        key_use: KeyUse,
        now: i64,
    ) -> Result<Self, KeyError> {
        let source = Source::Sealed { kms, seal_key_id: seal_key_id.into(), tenant: tenant.into() };
        Self::start(source, store, key_use, now).await
    }

    async fn start(source: Source, store: Arc<dyn KeyStore>, key_use: KeyUse, now: i64) -> Result<Self, KeyError> {
        let empty =
            Loaded { keys: Arc::new(KeySet::default()), current: None, next_reload: now, last_forced: i64::MIN };
        let ring = Self { source, store, key_use, loaded: RwLock::new(empty), reloading: tokio::sync::Mutex::new(()) };
        let loaded = ring.load(now, None).await?;
        *ring.loaded.write().expect("not poisoned") = loaded;
        Ok(ring)
    }

    fn snapshot(&self) -> Loaded {
        self.loaded.read().expect("not poisoned").clone()
    }

    /// Every key of the ring, by generation.
    pub async fn list(&self) -> Result<Vec<StoredSigningKey>, KeyError> {
        Ok(self.store.list_signing_keys().await?)
    }

    /// Reads the ring, joins new keys (signing instances), and loads the signing key.
    async fn load(&self, now: i64, previous: Option<&Loaded>) -> Result<Loaded, KeyError> {
        let mut ring = self.store.list_signing_keys().await?;
        if self.key_use == KeyUse::Sign {
            let joined = match &self.source {
                // A ring with keys goes on without the alias's key when KMS does not answer for
                // it (alias deleted, access denied, outage): the ring's own changes (a pending
                // key's activation, a retirement) must still reach this instance, which signs
                // by each key's ARN.
                Source::Kms { kms, alias } => {
                    match self.join_kms_key_after(kms, alias, &ring, now, DEFAULT_ACTIVATION_DELAY, false).await {
                        Ok(joined) => joined.is_some(),
                        Err(e) if !ring.is_empty() => {
                            tracing::warn!(error = %e, "the KMS alias's key could not be read; the ring's keys stay in use");
                            false
                        }
                        Err(e) => return Err(e),
                    }
                }
                Source::Sealed { .. } if ring.is_empty() => {
                    // A new tenant: racing cold starts agree on slot 1 (conditional put).
                    match self.join_sealed_key(&ring, now, 0).await {
                        Ok(_) | Err(KeyError::Conflict(_)) => true,
                        Err(e) => return Err(e),
                    }
                }
                Source::Sealed { .. } => false,
            };
            if joined {
                ring = self.store.list_signing_keys().await?;
            }
        }
        let jwks = ring.iter().filter(|k| k.is_published(now)).map(|k| {
            serde_json::from_str::<PublicJwk>(&k.public_jwk)
                .map_err(|e| KeyError::Invalid(format!("stored JWK {}: {e}", k.kid)))
        });
        let keys = Arc::new(KeySet::new(jwks.collect::<Result<Vec<_>, _>>()?)?);
        let mut next_reload = now.saturating_add(RELOAD_INTERVAL);
        let current = match self.key_use {
            KeyUse::Verify => None,
            KeyUse::Sign => {
                let signing = match signing_record(&ring, now) {
                    None => Err(KeyError::Invalid("no signing key: every key of the ring is retired".into())),
                    Some(record) => match previous.and_then(|p| p.current.clone()).filter(|c| c.kid() == record.kid) {
                        Some(kept) => Ok(kept),
                        None => match self.signing_key(record).await {
                            // KMS mode, a key taking over on a warm instance: one `Sign` first, so
                            // that a key this function may not use (a key policy or grant missing,
                            // the key disabled) never replaces one that works. The probe failing
                            // is the branch below: the previous key goes on while published.
                            Ok(k) if previous.is_some() && matches!(self.source, Source::Kms { .. }) => {
                                k.sign_input(SIGN_PROBE).await.map(|_| k)
                            }
                            other => other,
                        },
                    },
                };
                match (signing, previous) {
                    (Ok(k), _) => Some(k),
                    // A cold start without a signing key fails (the function's init is retried).
                    (Err(e), None) => return Err(e),
                    // A reload whose signing key cannot be loaded (KMS refusing to unseal it, say)
                    // still installs the ring's public keys, so that a key retired after a
                    // compromise stops verifying here at once. The key that signed so far goes
                    // on only while the ring still publishes it (its tokens verify everywhere);
                    // a retired one signs nothing more: token requests are 503 until a reload,
                    // tried again soon, loads the ring's signing key.
                    (Err(e), Some(p)) => {
                        let kept = p.current.clone().filter(|c| keys.contains(c.kid()));
                        tracing::warn!(
                            error = %e,
                            signing = kept.as_ref().map(|k| k.kid().to_owned()),
                            "the key ring's signing key could not be loaded; retrying"
                        );
                        next_reload = now.saturating_add(FORCED_RELOAD_INTERVAL);
                        kept
                    }
                }
            }
        };
        let last_forced = previous.map_or(i64::MIN, |p| p.last_forced);
        Ok(Loaded { keys, current, next_reload, last_forced })
    }

    /// The signing half of a ring key: its KMS key, or the unsealed private key.
    async fn signing_key(&self, record: &StoredSigningKey) -> Result<Arc<dyn SigningKey>, KeyError> {
        match &self.source {
            Source::Kms { kms, .. } => {
                let key_id = record.kms_key_id.clone().ok_or_else(|| {
                    KeyError::Invalid(format!("key {} of the ring is not a KMS key (signer mode changed?)", record.kid))
                })?;
                let alg = match record.alg.as_str() {
                    "ES256" => Alg::ES256,
                    "RS256" => Alg::RS256,
                    other => return Err(KeyError::Invalid(format!("key {}: unsupported alg {other}", record.kid))),
                };
                Ok(Arc::new(KmsKey { kms: kms.clone(), key_id, alg, kid: record.kid.clone() }))
            }
            Source::Sealed { kms, seal_key_id, tenant } => {
                if record.sealed_private_key.is_empty() {
                    return Err(KeyError::Invalid(format!(
                        "key {} of the ring is not a sealed key (signer mode changed?)",
                        record.kid
                    )));
                }
                Ok(Arc::new(unseal(kms, seal_key_id, tenant, record).await?))
            }
        }
    }

    /// KMS mode: joins the key `alias` names if the ring does not hold it. The first key of a
    /// ring signs at once; a later one is pending for `delay` seconds. `explicit`: an operator
    /// asked for the rotation, so an alias that names a ring key already is a `Conflict`.
    #[allow(clippy::too_many_arguments)]
    async fn join_kms_key_after(
        &self,
        kms: &Kms,
        alias: &str,
        ring: &[StoredSigningKey],
        now: i64,
        delay: i64,
        explicit: bool,
    ) -> Result<Option<StoredSigningKey>, KeyError> {
        let (arn, alg, jwk) = describe(kms, alias).await?;
        if let Some(k) = ring.iter().find(|k| k.kid == jwk.kid) {
            if !explicit {
                return Ok(None);
            }
            // Instances join the alias's new key at their next reload, pending for the default
            // delay: an operator's rotation to that key (a compromise: `activate_after` 0) brings
            // its activation forward instead of being refused.
            if k.is_published(now) && k.active_from() > now {
                let asked = now.saturating_add(delay.max(0));
                let mut sooner = k.clone();
                sooner.active_from = Some(asked.min(k.active_from()));
                if sooner.active_from != k.active_from && !self.store.replace_signing_key(&sooner, k).await? {
                    return Err(KeyError::Conflict("the key ring changed meanwhile; retry".into()));
                }
                tracing::info!(kid = %k.kid, active_from = sooner.active_from(), "pending KMS key's activation set");
                return Ok(Some(sooner));
            }
            return Err(KeyError::Conflict(format!(
                "{alias} names key {} (generation {}), which the ring holds already: create a new KMS key and \
                 move the alias to it first",
                k.kid, k.generation
            )));
        }
        let record = StoredSigningKey {
            kid: jwk.kid.clone(),
            generation: next_generation(ring),
            alg: alg.as_str().into(),
            public_jwk: serde_json::to_string(&jwk).map_err(|e| KeyError::Invalid(e.to_string()))?,
            sealed_private_key: String::new(),
            kms_key_id: Some(arn),
            created_at: now,
            active_from: pending_from(ring, now, delay),
            retired_at: None,
        };
        match self.store.put_signing_key(&record).await {
            Ok(()) => {
                tracing::info!(kid = %record.kid, generation = record.generation, "KMS key joined the key ring");
                Ok(Some(record))
            }
            // Another instance joined a key into this slot first; the next reload sees it.
            Err(StoreError::Conflict) if !explicit => Ok(None),
            Err(StoreError::Conflict) => Err(KeyError::Conflict("another rotation took this key slot; retry".into())),
            Err(e) => Err(e.into()),
        }
    }

    /// Sealed mode: generates, seals and stores a new key in the next slot.
    async fn join_sealed_key(
        &self,
        ring: &[StoredSigningKey],
        now: i64,
        delay: i64,
    ) -> Result<StoredSigningKey, KeyError> {
        let Source::Sealed { kms, seal_key_id, tenant } = &self.source else {
            return Err(KeyError::Invalid("not a sealed key ring".into()));
        };
        let key = EcKey::generate();
        let mut record = seal(kms, seal_key_id, tenant, &key, next_generation(ring), now).await?;
        record.active_from = pending_from(ring, now, delay);
        match self.store.put_signing_key(&record).await {
            Ok(()) => {
                tracing::info!(kid = %record.kid, generation = record.generation, "sealed key joined the key ring");
                Ok(record)
            }
            Err(StoreError::Conflict) => Err(KeyError::Conflict("another rotation took this key slot; retry".into())),
            Err(e) => Err(e.into()),
        }
    }

    /// Starts a rotation: a new key joins the ring, pending for `activate_after` seconds (sealed:
    /// a generated key; kms: the key the alias names now, which must be new to the ring or still
    /// pending in it: then its activation is brought forward to `activate_after`, if sooner).
    pub async fn rotate(&self, now: i64, activate_after: i64) -> Result<StoredSigningKey, KeyError> {
        let ring = self.store.list_signing_keys().await?;
        let record = match &self.source {
            Source::Kms { kms, alias } => self
                .join_kms_key_after(kms, alias, &ring, now, activate_after, true)
                .await?
                .ok_or_else(|| KeyError::Conflict("the alias names a key of the ring".into()))?,
            Source::Sealed { .. } => self.join_sealed_key(&ring, now, activate_after).await?,
        };
        self.reload_soon();
        Ok(record)
    }

    /// Retires `kid` (stops publishing and accepting it). The caller decides whether that is
    /// safe (`endpoints::token_admin::keys`).
    pub async fn retire(&self, key: &StoredSigningKey, now: i64) -> Result<StoredSigningKey, KeyError> {
        let mut retired = key.clone();
        retired.retired_at = Some(now);
        if !self.store.replace_signing_key(&retired, key).await? {
            return Err(KeyError::Conflict(format!("key {} changed meanwhile (or left its slot); retry", key.kid)));
        }
        self.reload_soon();
        Ok(retired)
    }

    /// Makes the next request reload the ring.
    fn reload_soon(&self) {
        self.loaded.write().expect("not poisoned").next_reload = i64::MIN;
    }
}

fn next_generation(ring: &[StoredSigningKey]) -> u32 {
    ring.iter().map(|k| k.generation).max().unwrap_or(0) + 1
}

/// A new tenant's first key signs at once; later keys are published `delay` seconds first.
fn pending_from(ring: &[StoredSigningKey], now: i64, delay: i64) -> Option<i64> {
    (!ring.is_empty() && delay > 0).then(|| now.saturating_add(delay))
}

#[async_trait::async_trait]
impl Signer for KeyRing {
    fn current(&self) -> Result<Arc<dyn SigningKey>, KeyError> {
        self.loaded.read().expect("not poisoned").current.clone().ok_or_else(|| match self.key_use {
            KeyUse::Sign => KeyError::Unavailable("the key ring's signing key could not be loaded; retrying".into()),
            KeyUse::Verify => KeyError::Invalid("this function only verifies tokens; it has no signing key".into()),
        })
    }

    fn keys(&self) -> Arc<KeySet> {
        self.loaded.read().expect("not poisoned").keys.clone()
    }

    async fn refresh(&self, now: i64, unknown_kid: Option<&str>) {
        let due = |l: &Loaded| match unknown_kid {
            None => now >= l.next_reload,
            Some(kid) => !l.keys.contains(kid) && now >= l.last_forced.saturating_add(FORCED_RELOAD_INTERVAL),
        };
        if !due(&self.loaded.read().expect("not poisoned")) {
            return;
        }
        // One reload at a time; whoever waited re-checks (the first may have loaded the key).
        let _one = self.reloading.lock().await;
        let previous = self.snapshot();
        if !due(&previous) {
            return;
        }
        let result = self.load(now, Some(&previous)).await;
        let mut loaded = self.loaded.write().expect("not poisoned");
        match result {
            Ok(fresh) => *loaded = fresh,
            Err(e) => {
                tracing::warn!(error = %e, "key ring reload failed; the loaded keys stay in use");
                loaded.next_reload = now.saturating_add(FORCED_RELOAD_INTERVAL);
            }
        }
        if unknown_kid.is_some() {
            loaded.last_forced = now;
        }
    }

    fn ring(&self) -> Option<&KeyRing> {
        Some(self)
    }
}
