//! Key rotation drills (issue 4's "rotate signing keys without invalidating live tokens", issue
//! 7's key rotation drill): in each signer mode, while tokens are issued and validated by several
//! function instances, a rotation publishes the new key before it signs, warm instances pick it
//! up, and no token is ever rejected while it is unexpired. Then the admin API's refusals.
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::future::join_all;
use gatehouse::AppState;
use gatehouse::clock::Clock;
use gatehouse::keys::{self, KeyRing, KeyUse, Signer};
use gatehouse::model::StoredSigningKey;
use gatehouse::store::{KeyStore, Store, StoreResult};
use serde_json::{Value, json};

use crate::common::{self, T0, admin, app, assert_error, cc_client, cc_token, form, send};

const ISSUER: &str = "https://auth.test.example";

pub(crate) fn kid_of(token: &str) -> String {
    let h: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap()).unwrap()).unwrap();
    h["kid"].as_str().unwrap().to_owned()
}

fn exp_of(token: &str) -> i64 {
    let p: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap();
    p["exp"].as_i64().unwrap()
}

/// A KMS client that can reach nothing: a verify-only ring must never call KMS.
async fn unreachable_kms() -> aws_sdk_kms::Client {
    aws_sdk_kms::Client::new(&common::sdk_config("http://127.0.0.1:9").await)
}

/// The instances of one tenant stack in a drill.
struct Stack {
    /// The token function instance that also serves the admin API in the test.
    state: AppState,
    router: axum::Router,
    /// A second warm token-function instance, never asked to reload explicitly.
    stale: Arc<KeyRing>,
    /// An introspect-function instance (verify only).
    verifier: Arc<KeyRing>,
    tokens: Vec<String>,
}

impl Stack {
    fn now(&self) -> i64 {
        self.state.clock.now()
    }

    /// Issues `n` tokens concurrently (client credentials) and returns their kids.
    async fn issue(&mut self, client: &common::TestClient, n: usize) -> Vec<String> {
        let fresh = join_all((0..n).map(|_| cc_token(&self.router, client, ""))).await;
        let kids = fresh.iter().map(|t| kid_of(t)).collect();
        self.tokens.extend(fresh);
        kids
    }

    /// Every unexpired token verifies on every instance and introspects active, concurrently.
    async fn all_valid(&self, client: &common::TestClient) {
        let now = self.now();
        let live: Vec<&String> = self.tokens.iter().filter(|t| exp_of(t) > now).collect();
        assert!(!live.is_empty());
        let signers: [&dyn Signer; 3] = [&*self.state.signer, &*self.stale, &*self.verifier];
        let checks = live
            .iter()
            .flat_map(|t| signers.map(|s| async move { keys::verify_access_token(s, t, ISSUER, now).await }));
        for (i, ok) in join_all(checks).await.into_iter().enumerate() {
            assert!(ok.is_some(), "token {} (of {}) refused by instance {} at {now}", i / 3, live.len(), i % 3);
        }
        for t in live {
            let r = send(&self.router, form("/introspect", Some(&client.basic()), &format!("token={t}"))).await;
            assert_eq!(r.body["active"], true, "{}", r.text);
        }
    }

    async fn ring(&self) -> Value {
        let r = send(&self.router, admin("GET", "/admin/keys", None)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.header("cache-control"), Some("no-store"));
        r.body
    }

    async fn jwks_kids(&self) -> Vec<String> {
        let r =
            send(&self.router, axum::http::Request::get("/.well-known/jwks.json").body(Default::default()).unwrap())
                .await;
        r.body["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect()
    }
}

async fn stack(store: Arc<dyn Store>, make: impl AsyncFn(KeyUse) -> KeyRing) -> Stack {
    let signer: Arc<dyn Signer> = Arc::new(make(KeyUse::Sign).await);
    let stale = Arc::new(make(KeyUse::Sign).await);
    let verifier = Arc::new(make(KeyUse::Verify).await);
    let state = AppState::new(common::config(), store, signer, Clock::manual(T0));
    let router = app(&state);
    Stack { state, router, stale, verifier, tokens: Vec::new() }
}

/// A sealed-mode stack on `store` (every instance with KMS) and its new seal key's id.
async fn sealed_stack(kms: &aws_sdk_kms::Client, store: &Arc<dyn Store>) -> (Stack, String) {
    let seal = common::kms_key(kms, KeySpec::SymmetricDefault, KeyUsageType::EncryptDecrypt).await;
    let make =
        async |u: KeyUse| KeyRing::sealed(kms.clone(), seal.clone(), "test", store.clone(), u, T0).await.unwrap();
    (stack(store.clone(), make).await, seal)
}

/// The drill after a new key joined the ring pending at `joined_at` (activation 600 s later).
async fn drill_after_join(s: &mut Stack, client: &common::TestClient, k1: &str, joined_at: i64) {
    let k2 = s.ring().await["keys"][1]["kid"].as_str().unwrap().to_owned();
    assert_ne!(k1, k2);
    // Pending: published by the instance that reloaded, not signing anywhere yet.
    assert_eq!(s.issue(client, 5).await, vec![k1.to_owned(); 5], "the old key signs until the new one is active");
    assert_eq!(s.jwks_kids().await, [k1.to_owned(), k2.clone()]);
    s.all_valid(client).await;
    // A warm instance picks the pending key up at its next periodic reload.
    s.state.clock.advance(keys::RELOAD_INTERVAL);
    s.stale.refresh(s.now(), None).await;
    assert!(s.stale.keys().contains(&k2) && s.stale.kid() == k1);
    // Activation: every signing instance switches at its next issuance; old tokens stay valid.
    s.state.clock.advance(joined_at + 600 - s.now());
    assert_eq!(s.issue(client, 5).await, vec![k2.clone(); 5], "the new key signs once active");
    s.all_valid(client).await;
    s.stale.refresh(s.now(), None).await;
    assert_eq!(s.stale.kid(), k2);
    let ring = s.ring().await;
    assert_eq!(
        ring["keys"].as_array().unwrap().iter().map(|k| k["status"].as_str().unwrap()).collect::<Vec<_>>(),
        ["previous", "signing"]
    );
    assert_eq!(ring["keys"][1]["active_from"], joined_at + 600);

    // Retiring the old key: refused while its tokens may be live, allowed a day after.
    let retire = format!("/admin/keys/{k1}/retire");
    let r = send(&s.router, admin("POST", &retire, None)).await;
    assert_error(&r, StatusCode::CONFLICT, "conflict");
    let safe_at = joined_at + 600 + 86_400 + keys::RELOAD_INTERVAL;
    assert!(r.body["error_description"].as_str().unwrap().contains(&format!("until {safe_at}")));
    s.all_valid(client).await;
    s.state.clock.advance(safe_at - 1 - s.now());
    let r = send(&s.router, admin("POST", &retire, None)).await;
    assert_error(&r, StatusCode::CONFLICT, "conflict");
    s.state.clock.advance(1);
    let r = send(&s.router, admin("POST", &retire, None)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!((r.body["status"].as_str(), r.body["retired_at"].as_i64()), (Some("retired"), Some(s.now())));
    assert_eq!(s.jwks_kids().await, vec![k2.clone()], "a retired key is no longer published");
    let r = send(&s.router, admin("POST", &retire, None)).await;
    assert_error(&r, StatusCode::CONFLICT, "conflict");
    let r = send(&s.router, admin("POST", &format!("/admin/keys/{k2}/retire"), Some(json!({})))).await;
    assert_error(&r, StatusCode::CONFLICT, "conflict");
    assert!(r.text.contains("signs now"));
    s.issue(client, 2).await;
    s.all_valid(client).await;
}

async fn sealed_drill(store: Arc<dyn Store>) {
    let Some(kms) = common::kms().await else { return };
    let seal = common::kms_key(&kms, KeySpec::SymmetricDefault, KeyUsageType::EncryptDecrypt).await;
    let nowhere = unreachable_kms().await;
    let make = async |u: KeyUse| {
        let kms = if u == KeyUse::Sign { kms.clone() } else { nowhere.clone() };
        KeyRing::sealed(kms, seal.clone(), "test", store.clone(), u, T0).await.unwrap()
    };
    let mut s = stack(store.clone(), make).await;
    let client = cc_client(&s.router).await;
    let k1 = s.state.signer.kid();
    assert_eq!(s.issue(&client, 3).await, vec![k1.clone(); 3]);
    s.all_valid(&client).await;

    // Refusals change nothing.
    for (body, why) in [
        (json!({"activate_after": -1}), "activate_after"),
        (json!({"activate_after": 604_801}), "activate_after"),
        (json!({"delay": 5}), "unknown field"),
    ] {
        let r = send(&s.router, admin("POST", "/admin/keys/rotate", Some(body))).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
        assert!(r.text.contains(why), "{}", r.text);
    }
    let r = send(&s.router, admin("POST", "/admin/keys/no-such-kid/retire", None)).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(s.ring().await["keys"].as_array().unwrap().len(), 1);

    s.state.clock.advance(10);
    let r = send(&s.router, admin("POST", "/admin/keys/rotate", Some(json!({"activate_after": 600})))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let k2 = r.body["kid"].as_str().unwrap().to_owned();
    assert_eq!(
        r.body,
        json!({"kid": k2, "generation": 2, "alg": "ES256", "status": "pending", "created_at": T0 + 10,
               "active_from": T0 + 610, "retired_at": null})
    );
    let stored = store.list_signing_keys().await.unwrap();
    assert!(stored.iter().all(|k| !k.sealed_private_key.is_empty() && k.kms_key_id.is_none()));
    drill_after_join(&mut s, &client, &k1, T0 + 10).await;

    // A compromised key: an immediate rotation, then a forced retirement invalidates its tokens.
    let k2 = s.state.signer.kid();
    let victim = s.tokens.last().unwrap().clone();
    let r = send(&s.router, admin("POST", "/admin/keys/rotate", Some(json!({"activate_after": 0})))).await;
    assert_eq!((r.status, r.body["status"].as_str()), (StatusCode::CREATED, Some("signing")), "{}", r.text);
    let k3 = r.body["kid"].as_str().unwrap().to_owned();
    assert_eq!(s.issue(&client, 1).await, vec![k3.clone()]);
    let r = send(&s.router, admin("POST", &format!("/admin/keys/{k2}/retire"), None)).await;
    assert_error(&r, StatusCode::CONFLICT, "conflict");
    let r = send(&s.router, admin("POST", &format!("/admin/keys/{k2}/retire"), Some(json!({"force": true})))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = send(&s.router, form("/introspect", Some(&client.basic()), &format!("token={victim}"))).await;
    assert_eq!(r.body, json!({"active": false}), "a force-retired key's tokens are refused");
    s.state.clock.advance(keys::RELOAD_INTERVAL);
    s.verifier.refresh(s.now(), None).await;
    assert!(keys::verify_access_token(&*s.verifier, &victim, ISSUER, s.now()).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sealed_rotation_drill_embedded() {
    let (store, _dir) = common::embedded();
    sealed_drill(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sealed_rotation_drill_dynamodb() {
    let Some((store, _, _)) = common::dynamo().await else { return };
    sealed_drill(store).await;
}

/// KMS mode: the operator creates a key and moves the alias; the signing instances join it as
/// pending at their next reload, and the old key (by ARN) signs until the new one is active.
async fn kms_drill(store: Arc<dyn Store>) {
    let Some(kms) = common::kms().await else { return };
    let k1_id = common::kms_key(&kms, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    let alias = format!("alias/gatehouse-test-{}", gatehouse::crypto::random_id().replace(['-', '_'], "x"));
    kms.create_alias().alias_name(&alias).target_key_id(&k1_id).send().await.unwrap();
    let nowhere = unreachable_kms().await;
    let make = async |u: KeyUse| {
        let kms = if u == KeyUse::Sign { kms.clone() } else { nowhere.clone() };
        KeyRing::kms(kms, alias.clone(), store.clone(), u, T0).await.unwrap()
    };
    let mut s = stack(store.clone(), make).await;
    let client = cc_client(&s.router).await;
    let k1 = s.state.signer.kid();
    s.issue(&client, 3).await;
    // Rotating while the alias still names the signing key is refused.
    let r = send(&s.router, admin("POST", "/admin/keys/rotate", None)).await;
    assert_error(&r, StatusCode::CONFLICT, "conflict");
    assert!(r.text.contains("move the alias"), "{}", r.text);

    let k2_id = common::kms_key(&kms, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    kms.update_alias().alias_name(&alias).target_key_id(&k2_id).send().await.unwrap();
    // The next reload of a signing instance (here: at an issuance) joins the alias's new key.
    s.state.clock.advance(keys::RELOAD_INTERVAL);
    let joined_at = s.now();
    s.issue(&client, 1).await;
    let stored = store.list_signing_keys().await.unwrap();
    assert_eq!(stored.len(), 2);
    assert!(stored[1].kms_key_id.as_deref().unwrap().ends_with(&k2_id), "signs by the key's ARN");
    assert_eq!(stored[1].active_from, Some(joined_at + keys::DEFAULT_ACTIVATION_DELAY));
    drill_after_join(&mut s, &client, &k1, joined_at).await;

    // The alias moves on, then disappears (deleted, or KMS denies it) while the new key is
    // pending: the signing instances go on with the ring and switch at its activation.
    let k3_id = common::kms_key(&kms, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    kms.update_alias().alias_name(&alias).target_key_id(&k3_id).send().await.unwrap();
    s.state.clock.advance(keys::RELOAD_INTERVAL);
    let joined_at = s.now();
    let k2 = s.state.signer.kid();
    assert_eq!(s.issue(&client, 1).await, [k2]);
    let k3 = s.ring().await["keys"][2]["kid"].as_str().unwrap().to_owned();
    kms.delete_alias().alias_name(&alias).send().await.unwrap();
    s.state.clock.advance(joined_at + keys::DEFAULT_ACTIVATION_DELAY - s.now());
    assert_eq!(s.issue(&client, 2).await, [k3.clone(), k3.clone()], "activation without the alias");
    s.stale.refresh(s.now(), None).await;
    assert_eq!(s.stale.kid(), k3);
    s.all_valid(&client).await;
}

/// A rotation cancelled by retiring its pending key does not count as superseding the signing
/// key, which goes on signing: retiring it later waits for its tokens from after the cancel.
#[tokio::test]
async fn a_cancelled_rotation_does_not_shorten_the_wait_before_retiring() {
    let Some(kms) = common::kms().await else { return };
    let (store, _dir) = common::embedded();
    let (mut s, _) = sealed_stack(&kms, &store).await;
    let client = cc_client(&s.router).await;
    let k1 = s.state.signer.kid();
    let r = send(&s.router, admin("POST", "/admin/keys/rotate", Some(json!({"activate_after": 600})))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let cancelled = r.body["kid"].as_str().unwrap().to_owned();
    let r = send(&s.router, admin("POST", &format!("/admin/keys/{cancelled}/retire"), None)).await;
    assert_eq!((r.status, r.body["status"].as_str()), (StatusCode::OK, Some("retired")), "{}", r.text);

    // Five days on, k1 still signs; a rotation that takes effect at once.
    s.state.clock.advance(5 * 86_400);
    assert_eq!(s.issue(&client, 1).await, [k1.as_str()]);
    let r = send(&s.router, admin("POST", "/admin/keys/rotate", Some(json!({"activate_after": 0})))).await;
    assert_eq!((r.status, r.body["status"].as_str()), (StatusCode::CREATED, Some("signing")), "{}", r.text);
    let stopped = s.now();
    let r = send(&s.router, admin("POST", &format!("/admin/keys/{k1}/retire"), None)).await;
    assert_error(&r, StatusCode::CONFLICT, "conflict");
    let safe_at = stopped + 86_400 + keys::RELOAD_INTERVAL;
    assert_eq!(
        r.body["error_description"],
        format!(
            "tokens signed by this key may be live until {safe_at} (it stopped signing at {stopped}); retire it \
             then, or pass \"force\": true to invalidate them now"
        )
    );
    s.all_valid(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kms_rotation_drill_embedded() {
    let (store, _dir) = common::embedded();
    kms_drill(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kms_rotation_drill_dynamodb() {
    let Some((store, _, _)) = common::dynamo().await else { return };
    kms_drill(store).await;
}

/// A key store over the test's store that counts the ring reads an instance makes and, while
/// `corrupt` is set, shows every key after the first with a sealed private key KMS cannot
/// unseal (an instance whose reload cannot load the new signing key).
struct Observed {
    inner: Arc<dyn Store>,
    reads: AtomicUsize,
    corrupt: std::sync::atomic::AtomicBool,
}

impl Observed {
    fn new(inner: Arc<dyn Store>, corrupt: bool) -> Arc<Self> {
        Arc::new(Self { inner, reads: AtomicUsize::new(0), corrupt: corrupt.into() })
    }
}

#[async_trait]
impl KeyStore for Observed {
    async fn put_signing_key(&self, k: &StoredSigningKey) -> StoreResult<()> {
        self.inner.put_signing_key(k).await
    }
    async fn replace_signing_key(&self, k: &StoredSigningKey, read: &StoredSigningKey) -> StoreResult<bool> {
        self.inner.replace_signing_key(k, read).await
    }
    async fn list_signing_keys(&self) -> StoreResult<Vec<StoredSigningKey>> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let mut keys = self.inner.list_signing_keys().await?;
        if self.corrupt.load(Ordering::SeqCst) {
            for k in keys.iter_mut().filter(|k| k.generation > 1) {
                k.sealed_private_key = URL_SAFE_NO_PAD.encode(b"not a KMS ciphertext");
            }
        }
        Ok(keys)
    }
}

/// A verify-only instance of a brand-new tenant (its token function has not started yet) starts
/// with an empty key set and no KMS call, loads the first key when a token names it, and
/// reloads for unknown `kid`s at most once per `FORCED_RELOAD_INTERVAL`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_only_ring_starts_empty_and_reloads_rate_limited() {
    let Some(kms) = common::kms().await else { return };
    let seal = common::kms_key(&kms, KeySpec::SymmetricDefault, KeyUsageType::EncryptDecrypt).await;
    let (store, _dir) = common::embedded();
    let counting = Observed::new(store.clone(), false);
    let verifier = KeyRing::sealed(unreachable_kms().await, seal.clone(), "test", counting.clone(), KeyUse::Verify, T0)
        .await
        .expect("no KMS call, no key needed");
    assert!(verifier.keys().jwk_list().next().is_none());
    assert!(matches!(verifier.sign("at+jwt", &json!({})).await, Err(keys::KeyError::Invalid(_))));
    assert_eq!(counting.reads.load(Ordering::SeqCst), 1);

    let signer = KeyRing::sealed(kms, seal, "test", store.clone(), KeyUse::Sign, T0).await.unwrap();
    let claims =
        json!({"iss": ISSUER, "sub": "c", "aud": "a", "client_id": "c", "iat": T0, "exp": T0 + 3600, "jti": "j"});
    let token = signer.sign("at+jwt", &claims).await.unwrap();
    assert!(keys::verify_access_token(&verifier, &token, ISSUER, T0 + 1).await.is_some());
    assert_eq!(counting.reads.load(Ordering::SeqCst), 2, "one forced reload");

    let forged = |kid: &str| {
        let h = URL_SAFE_NO_PAD.encode(json!({"alg": "ES256", "typ": "at+jwt", "kid": kid}).to_string());
        format!("{h}.{}", token.split_once('.').unwrap().1)
    };
    for i in 0..20 {
        assert!(keys::verify_access_token(&verifier, &forged(&format!("k{i}")), ISSUER, T0 + 2).await.is_none());
    }
    assert_eq!(counting.reads.load(Ordering::SeqCst), 2, "unknown kids within the interval: no reload");
    for i in 0..20 {
        assert!(keys::verify_access_token(&verifier, &forged(&format!("k{i}")), ISSUER, T0 + 11).await.is_none());
    }
    assert_eq!(counting.reads.load(Ordering::SeqCst), 3, "one reload per interval");
    // A known kid causes no reload; the periodic one comes after RELOAD_INTERVAL.
    assert!(keys::verify_access_token(&verifier, &token, ISSUER, T0 + 30).await.is_some());
    assert_eq!(counting.reads.load(Ordering::SeqCst), 3);
    assert!(keys::verify_access_token(&verifier, &token, ISSUER, T0 + 11 + keys::RELOAD_INTERVAL).await.is_some());
    assert_eq!(counting.reads.load(Ordering::SeqCst), 4);
}

/// A warm signing instance whose reload cannot load the ring's new signing key still installs
/// the ring's public keys: it goes on signing with its key while the ring publishes it, stops
/// (503) once that key is retired (a compromise), and loads the new key when it can.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_cannot_load_the_signing_key_still_drops_a_retired_key() {
    let Some(kms) = common::kms().await else { return };
    let (store, _dir) = common::embedded();
    let (mut s, seal) = sealed_stack(&kms, &store).await;
    let client = cc_client(&s.router).await;
    let k1 = s.state.signer.kid();
    let flaky_store = Observed::new(store.clone(), true);
    let flaky =
        KeyRing::sealed(kms.clone(), seal.clone(), "test", flaky_store.clone(), KeyUse::Sign, T0).await.unwrap();
    assert_eq!(flaky.kid(), k1);

    let r = send(&s.router, admin("POST", "/admin/keys/rotate", Some(json!({"activate_after": 600})))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let k2 = r.body["kid"].as_str().unwrap().to_owned();
    s.state.clock.advance(600);
    assert_eq!(s.issue(&client, 1).await, vec![k2.clone()], "the healthy instance switched");

    // The new key cannot be unsealed here: the old one, still published, goes on signing.
    flaky.refresh(s.now(), None).await;
    assert_eq!(flaky.kid(), k1);
    assert!(flaky.keys().contains(&k2), "the ring's public keys are installed");
    // Retried after FORCED_RELOAD_INTERVAL, not RELOAD_INTERVAL.
    flaky_store.corrupt.store(false, Ordering::SeqCst);
    flaky.refresh(s.now() + keys::FORCED_RELOAD_INTERVAL - 1, None).await;
    assert_eq!(flaky.kid(), k1, "not yet due");
    flaky_store.corrupt.store(true, Ordering::SeqCst);

    // k1 is compromised: retired by force. The instance drops it at its next reload and signs
    // nothing until it can load k2: 503, not tokens nobody accepts.
    let r = send(&s.router, admin("POST", &format!("/admin/keys/{k1}/retire"), Some(json!({"force": true})))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    s.state.clock.advance(keys::FORCED_RELOAD_INTERVAL);
    flaky.refresh(s.now(), None).await;
    assert!(!flaky.keys().contains(&k1), "a retired key no longer verifies here");
    assert!(matches!(flaky.current(), Err(keys::KeyError::Unavailable(_))), "{:?}", flaky.current().err());
    let e: gatehouse::OAuthError = flaky.current().err().unwrap().into();
    assert_eq!((e.status(), e.code()), (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable"));
    assert!(matches!(flaky.sign("at+jwt", &json!({})).await, Err(keys::KeyError::Unavailable(_))));

    // KMS answers again: the next reload loads k2.
    flaky_store.corrupt.store(false, Ordering::SeqCst);
    s.state.clock.advance(keys::FORCED_RELOAD_INTERVAL);
    flaky.refresh(s.now(), None).await;
    assert_eq!(flaky.kid(), k2);
}

/// KMS mode, a compromise: the operator moves the alias to a new key, and the instances join
/// it pending (600 s) before the operator's rotation arrives. The rotation brings that pending
/// key's activation forward (`activate_after` 0: it signs at once) instead of being refused;
/// a later activation than the pending one changes nothing; a key that signs is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kms_rotation_brings_a_joined_pending_key_forward() {
    let Some(kms) = common::kms().await else { return };
    let (store, _dir) = common::embedded();
    let k1_id = common::kms_key(&kms, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    let alias = format!("alias/gatehouse-test-{}", gatehouse::crypto::random_id().replace(['-', '_'], "x"));
    kms.create_alias().alias_name(&alias).target_key_id(&k1_id).send().await.unwrap();
    let make = async |u: KeyUse| KeyRing::kms(kms.clone(), alias.clone(), store.clone(), u, T0).await.unwrap();
    let mut s = stack(store.clone(), make).await;
    let client = cc_client(&s.router).await;
    let k1 = s.state.signer.kid();
    let k2_id = common::kms_key(&kms, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    kms.update_alias().alias_name(&alias).target_key_id(&k2_id).send().await.unwrap();
    s.state.clock.advance(keys::RELOAD_INTERVAL);
    let joined_at = s.now();
    assert_eq!(s.issue(&client, 1).await, vec![k1.clone()], "joined pending; k1 still signs");
    let k2 = s.ring().await["keys"][1]["kid"].as_str().unwrap().to_owned();

    s.state.clock.advance(5);
    let r = send(&s.router, admin("POST", "/admin/keys/rotate", Some(json!({"activate_after": 900})))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!((r.body["kid"].as_str(), r.body["status"].as_str()), (Some(k2.as_str()), Some("pending")));
    assert_eq!(r.body["active_from"], joined_at + keys::DEFAULT_ACTIVATION_DELAY, "not postponed");
    let r = send(&s.router, admin("POST", "/admin/keys/rotate", Some(json!({"activate_after": 0})))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!((r.body["kid"].as_str(), r.body["status"].as_str()), (Some(k2.as_str()), Some("signing")));
    assert_eq!(r.body["active_from"], s.now());
    assert_eq!(s.issue(&client, 2).await, [k2.clone(), k2.clone()], "the new key signs at once");
    s.all_valid(&client).await;
    let r = send(&s.router, admin("POST", "/admin/keys/rotate", Some(json!({"activate_after": 0})))).await;
    assert_error(&r, StatusCode::CONFLICT, "conflict");
    assert!(r.text.contains("move the alias"), "{}", r.text);
    assert_eq!(store.list_signing_keys().await.unwrap().len(), 2, "no key added");
}

/// Decrypt names the seal key: a ring sealed by one KMS key is not unsealed through a stack
/// configured with another, even where the caller may use both.
#[tokio::test]
async fn a_key_sealed_by_another_seal_key_is_not_unsealed() {
    let Some(kms) = common::kms().await else { return };
    let (store, _dir) = common::embedded();
    let sealed_by = common::kms_key(&kms, KeySpec::SymmetricDefault, KeyUsageType::EncryptDecrypt).await;
    let other = common::kms_key(&kms, KeySpec::SymmetricDefault, KeyUsageType::EncryptDecrypt).await;
    let first = KeyRing::sealed(kms.clone(), sealed_by.clone(), "test", store.clone(), KeyUse::Sign, T0).await.unwrap();
    let wrong = KeyRing::sealed(kms.clone(), other, "test", store.clone(), KeyUse::Sign, T0).await;
    assert!(wrong.is_err(), "unsealed through another seal key");
    let again = KeyRing::sealed(kms, sealed_by, "test", store, KeyUse::Sign, T0).await.unwrap();
    assert_eq!(again.kid(), first.kid());
}
