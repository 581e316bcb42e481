//! The store conformance suite (`gatehouse::store::conformance`) on every backend: the
//! embedded SQLite store and DynamoDB (AWS's DynamoDB Local, a fresh table per case).
use gatehouse::store::conformance;

use crate::common;

macro_rules! backend_cases {
    ($backend:ident: $($case:ident),* $(,)?) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    if let Some(store) = super::$backend().await {
                        gatehouse::store::conformance::run(stringify!($case), store.0).await;
                    }
                }
            )*
        }
    };
}

async fn embedded() -> Option<(std::sync::Arc<dyn gatehouse::store::Store>, tempfile::TempDir)> {
    Some(common::embedded())
}

async fn dynamodb() -> Option<(std::sync::Arc<dyn gatehouse::store::Store>, String)> {
    common::dynamo().await.map(|(s, _, table)| (s, table))
}

backend_cases!(embedded: clients, resource_servers, tokens_put_get, tokens_revoke, tokens_list_by_client,
    tokens_list_by_end_user, signing_keys, concurrent_revocation, concurrent_creation, users, consents, counters,
    concurrent_counter, pending_requests, concurrent_pending_delete, codes, concurrent_redeem, refresh_rotation,
    concurrent_rotation, token_families, clients_list, clients_update, concurrent_client_updates,
    tokens_list_after, tokens_listed_by_expiry, groups, group_members, group_deletion, concurrent_group_deletion, users_list,
    resource_servers_update_delete, settings, concurrent_settings, replay, concurrent_replay);
backend_cases!(dynamodb: clients, resource_servers, tokens_put_get, tokens_revoke, tokens_list_by_client,
    tokens_list_by_end_user, signing_keys, concurrent_revocation, concurrent_creation, users, consents, counters,
    concurrent_counter, pending_requests, concurrent_pending_delete, codes, concurrent_redeem, refresh_rotation,
    concurrent_rotation, token_families, clients_list, clients_update, concurrent_client_updates,
    tokens_list_after, tokens_listed_by_expiry, groups, group_members, group_deletion, concurrent_group_deletion, users_list,
    resource_servers_update_delete, settings, concurrent_settings, replay, concurrent_replay);

/// Every case of the suite is instantiated for the backends above.
#[test]
fn every_case_is_run() {
    let here = include_str!("store_conformance.rs");
    for case in conformance::CASES {
        assert_eq!(
            here.matches(&format!(" {case},")).count() + here.matches(&format!(" {case});")).count(),
            2,
            "{case}"
        );
    }
}

/// The embedded store keeps its data across a reopen (the local server restarting).
#[tokio::test]
async fn embedded_is_durable_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = gatehouse::store::EmbeddedStore::open(dir.path()).unwrap();
        gatehouse::store::ClientStore::create_client(&s, &conformance::client("kept")).await.unwrap();
    }
    let s = gatehouse::store::EmbeddedStore::open(dir.path()).unwrap();
    assert!(gatehouse::store::ClientStore::get_client(&s, "kept").await.unwrap().is_some());
}

/// Two handles on one data directory (two processes) see each other's writes and never both
/// win a conditional write.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_two_handles_share_one_database() {
    use gatehouse::store::{EmbeddedStore, TokenStore};
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (EmbeddedStore::open(dir.path()).unwrap(), EmbeddedStore::open(dir.path()).unwrap());
    let t = conformance::token("shared", gatehouse::model::TokenKind::Access, "c", None, conformance::NOW);
    a.put_token(&t).await.unwrap();
    assert!(matches!(b.put_token(&t).await, Err(gatehouse::store::StoreError::Conflict)));
    let (ra, rb) = tokio::join!(a.revoke_token("shared", conformance::NOW), b.revoke_token("shared", conformance::NOW));
    assert_eq!(ra.unwrap() as u8 + rb.unwrap() as u8, 1);
}
