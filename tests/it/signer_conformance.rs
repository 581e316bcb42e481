//! The signer conformance suite (`gatehouse::keys::conformance`) on every signer: local,
//! KMS ES256 and RS256 (moto's KMS on loopback), sealed (moto KMS + both stores).
use std::sync::Arc;

use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use gatehouse::keys::{KeyRing, KeyUse, LocalSigner, Signer, conformance};

use crate::common;

#[tokio::test]
async fn local_signer() {
    let dir = tempfile::tempdir().unwrap();
    let s = LocalSigner::load_or_create(dir.path()).unwrap();
    conformance::run_all(&s, &LocalSigner::ephemeral()).await;
    let again = LocalSigner::load_or_create(dir.path()).unwrap();
    assert_eq!(again.kid(), s.kid(), "the key is kept in the data dir across restarts");
    let token = s.sign("at+jwt", &conformance::claims("x")).await.unwrap();
    assert!(again.keys().verify_access_token(&token, conformance::ISSUER, conformance::NOW).is_some());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("signing-key.pem")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the private key is readable by its owner only");
    }
}

/// Processes starting at once on a fresh data directory (here: threads) agree on one key,
/// and no temporary file is left behind.
#[test]
fn local_signers_starting_together_share_one_key() {
    let dir = tempfile::tempdir().unwrap();
    let barrier = std::sync::Barrier::new(8);
    let kids: Vec<String> = std::thread::scope(|scope| {
        let starting: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    LocalSigner::load_or_create(dir.path()).unwrap().kid()
                })
            })
            .collect();
        starting.into_iter().map(|s| s.join().unwrap()).collect()
    });
    assert!(kids.iter().all(|k| *k == kids[0]), "{kids:?}");
    assert_eq!(LocalSigner::load_or_create(dir.path()).unwrap().kid(), kids[0]);
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(files, ["signing-key.pem"]);
}

#[tokio::test]
async fn kms_signer_es256() {
    let Some(kms) = common::kms().await else { return };
    let key = common::kms_key(&kms, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    let (store, _dir) = common::embedded();
    let s = KeyRing::kms(kms, key, store, KeyUse::Sign, conformance::NOW).await.unwrap();
    assert_eq!(s.alg().as_str(), "ES256");
    conformance::run_all(&s, &LocalSigner::ephemeral()).await;
}

#[tokio::test]
async fn kms_signer_rs256() {
    let Some(kms) = common::kms().await else { return };
    let key = common::kms_key(&kms, KeySpec::Rsa2048, KeyUsageType::SignVerify).await;
    let (store, _dir) = common::embedded();
    let s = KeyRing::kms(kms, key, store, KeyUse::Sign, conformance::NOW).await.unwrap();
    assert_eq!(s.alg().as_str(), "RS256");
    conformance::run_all(&s, &LocalSigner::ephemeral()).await;
}

#[tokio::test]
async fn kms_signer_refuses_unusable_keys() {
    let Some(kms) = common::kms().await else { return };
    let sym = common::kms_key(&kms, KeySpec::SymmetricDefault, KeyUsageType::EncryptDecrypt).await;
    let (store, _dir) = common::embedded();
    let ring = |key: String| KeyRing::kms(kms.clone(), key, store.clone(), KeyUse::Sign, conformance::NOW);
    assert!(ring(sym).await.is_err(), "a symmetric key cannot sign");
    let missing = ring("alias/does-not-exist".into()).await;
    assert!(matches!(missing, Err(gatehouse::keys::KeyError::Invalid(_))));
}

async fn sealed_on(store: Arc<dyn gatehouse::store::Store>) {
    let Some(kms) = common::kms().await else { return };
    let seal = common::kms_key(&kms, KeySpec::SymmetricDefault, KeyUsageType::EncryptDecrypt).await;
    let load = || KeyRing::sealed(kms.clone(), seal.clone(), "tenant-a", store.clone(), KeyUse::Sign, conformance::NOW);
    // Cold starts racing on a new tenant agree on one key.
    let (a, b, c) = tokio::join!(load(), load(), load());
    let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
    assert_eq!((a.kid(), b.kid()), (c.kid(), c.kid()));
    let keys = store.list_signing_keys().await.unwrap();
    assert_eq!(keys.len(), 1, "one key stored");
    assert!(!keys[0].sealed_private_key.contains("PRIVATE"), "stored sealed, never in clear");
    conformance::run_all(&a, &LocalSigner::ephemeral()).await;
    let token = a.sign("at+jwt", &conformance::claims("s")).await.unwrap();
    let later = load().await.unwrap();
    assert_eq!(later.kid(), a.kid());
    assert!(later.keys().verify_access_token(&token, conformance::ISSUER, conformance::NOW).is_some());
    // The encryption context binds the sealed key to its tenant.
    let other_tenant = KeyRing::sealed(kms, seal, "tenant-b", store.clone(), KeyUse::Sign, conformance::NOW).await;
    assert!(other_tenant.is_err(), "a key sealed for tenant-a does not unseal as tenant-b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sealed_signer_embedded_store() {
    let (store, _dir) = common::embedded();
    sealed_on(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sealed_signer_dynamodb_store() {
    let Some((store, _, _)) = common::dynamo().await else { return };
    sealed_on(store).await;
}
