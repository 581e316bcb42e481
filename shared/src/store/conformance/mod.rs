//! The store contract as tests: every backend runs every case (`tests/it/store_conformance.rs`
//! runs them on the embedded store and on DynamoDB Local). Each case takes a fresh, empty
//! store and panics on a broken promise.
use std::sync::Arc;

mod authorization;
mod groups;
mod listing;
mod replay;
mod rotation;
mod settings;
mod users;

pub use authorization::{code, pending};
pub use rotation::family_token;
pub use users::user;

use super::{Store, StoreError, TokenQuery};
use crate::model::{
    AuthMethod, Client, GrantType, ResourceServer, Scope, ScopeDescription, StoredSigningKey, TokenKind, TokenRecord,
};

/// A fixed "now" for the cases: 2100-01-01, in the future, because DynamoDB Local deletes items
/// whose `ttl` has passed within seconds (real DynamoDB within days): a past "now" would let
/// the sweeper delete test items mid-case.
pub const NOW: i64 = 4_102_444_800;

/// Every case, by name, for the backends' test macros.
pub const CASES: &[&str] = &[
    "clients",
    "resource_servers",
    "tokens_put_get",
    "tokens_revoke",
    "tokens_list_by_client",
    "tokens_list_by_end_user",
    "signing_keys",
    "concurrent_revocation",
    "concurrent_creation",
    "users",
    "consents",
    "counters",
    "concurrent_counter",
    "pending_requests",
    "concurrent_pending_delete",
    "codes",
    "concurrent_redeem",
    "refresh_rotation",
    "concurrent_rotation",
    "token_families",
    "clients_list",
    "clients_update",
    "concurrent_client_updates",
    "tokens_list_after",
    "tokens_listed_by_expiry",
    "groups",
    "group_members",
    "group_deletion",
    "concurrent_group_deletion",
    "users_list",
    "resource_servers_update_delete",
    "settings",
    "concurrent_settings",
    "replay",
    "concurrent_replay",
];

/// A client record for the cases.
pub fn client(id: &str) -> Client {
    Client {
        client_id: id.into(),
        client_name: Some("Conformance".into()),
        secret_digest: Some(crate::crypto::digest("s3cret")),
        redirect_uris: vec!["https://app.example/cb".into()],
        grant_types: vec![GrantType::ClientCredentials, GrantType::AuthorizationCode],
        token_endpoint_auth_method: AuthMethod::ClientSecretBasic,
        scope: Scope::parse("read write").unwrap(),
        pre_approved_scopes: Scope::parse("read").unwrap(),
        access_token_lifetime: Some(600),
        refresh_token_lifetime: Some(86_400),
        created_at: NOW,
        previous_secret_digest: None,
        previous_secret_expires_at: None,
        version: 0,
        jwks: None,
        jwt_bearer_issuers: Vec::new(),
        dpop_bound_access_tokens: false,
        custom_claims: vec![],
        // Stored and read back like every member (a revoke-all of the client before NOW).
        tokens_revoked_at: Some(NOW - 60),
    }
}

/// A token record for the cases.
pub fn token(id: &str, kind: TokenKind, client: &str, user: Option<&str>, issued_at: i64) -> TokenRecord {
    TokenRecord {
        id: id.into(),
        kind,
        client_id: client.into(),
        subject: user.unwrap_or(client).into(),
        end_user: user.map(Into::into),
        scope: Scope::parse("read").unwrap(),
        audience: "https://api.example".into(),
        grant_type: if user.is_some() { GrantType::AuthorizationCode } else { GrantType::ClientCredentials },
        issued_at,
        expires_at: issued_at + 3600,
        revoked_at: None,
        family: None,
        rotated_at: None,
        successor_response: None,
        jkt: None,
        issued_with: None,
        granted_at: None,
    }
}

fn q(kind: TokenKind, client: Option<&str>, user: Option<&str>) -> TokenQuery {
    TokenQuery { kind, client_id: client.map(Into::into), end_user: user.map(Into::into) }
}

fn ids(v: &[TokenRecord]) -> Vec<&str> {
    v.iter().map(|t| t.id.as_str()).collect()
}

/// Runs the named case.
pub async fn run(case: &str, s: Arc<dyn Store>) {
    match case {
        "clients" => clients(&*s).await,
        "resource_servers" => resource_servers(&*s).await,
        "tokens_put_get" => tokens_put_get(&*s).await,
        "tokens_revoke" => tokens_revoke(&*s).await,
        "tokens_list_by_client" => tokens_list_by_client(&*s).await,
        "tokens_list_by_end_user" => tokens_list_by_end_user(&*s).await,
        "signing_keys" => signing_keys(&*s).await,
        "concurrent_revocation" => concurrent_revocation(s).await,
        "concurrent_creation" => concurrent_creation(s).await,
        "users" => users::users(&*s).await,
        "consents" => users::consents(&*s).await,
        "counters" => users::counters(&*s).await,
        "concurrent_counter" => users::concurrent_counter(s).await,
        "pending_requests" => authorization::pending_requests(&*s).await,
        "concurrent_pending_delete" => authorization::concurrent_pending_delete(s).await,
        "codes" => authorization::codes(&*s).await,
        "concurrent_redeem" => authorization::concurrent_redeem(s).await,
        "refresh_rotation" => rotation::refresh_rotation(&*s).await,
        "concurrent_rotation" => rotation::concurrent_rotation(s).await,
        "token_families" => rotation::token_families(&*s).await,
        "clients_list" => listing::clients_list(&*s).await,
        "clients_update" => listing::clients_update(&*s).await,
        "concurrent_client_updates" => listing::concurrent_client_updates(s).await,
        "tokens_list_after" => listing::tokens_list_after(&*s).await,
        "tokens_listed_by_expiry" => listing::tokens_listed_by_expiry(&*s).await,
        "groups" => groups::groups(&*s).await,
        "group_members" => groups::group_members(&*s).await,
        "group_deletion" => groups::group_deletion(&*s).await,
        "concurrent_group_deletion" => groups::concurrent_group_deletion(s).await,
        "users_list" => groups::users_list(&*s).await,
        "resource_servers_update_delete" => groups::resource_servers_update_delete(&*s).await,
        "settings" => settings::settings(&*s).await,
        "concurrent_settings" => settings::concurrent_settings(s).await,
        "replay" => replay::replay(&*s).await,
        "concurrent_replay" => replay::concurrent_replay(s).await,
        other => panic!("unknown conformance case {other}"),
    }
}

/// Create, read, conflict on re-create (nothing overwritten), delete once.
pub async fn clients(s: &dyn Store) {
    let c = client("c1");
    s.create_client(&c).await.unwrap();
    assert_eq!(s.get_client("c1").await.unwrap(), Some(c.clone()));
    assert_eq!(s.get_client("nope").await.unwrap(), None);
    let mut other = client("c1");
    other.client_name = Some("Impostor".into());
    assert!(matches!(s.create_client(&other).await, Err(StoreError::Conflict)));
    assert_eq!(s.get_client("c1").await.unwrap(), Some(c), "a conflicting create must not overwrite");
    let mut public = client("pub");
    (public.secret_digest, public.token_endpoint_auth_method, public.client_name, public.scope) =
        (None, AuthMethod::None, None, Scope::default());
    s.create_client(&public).await.unwrap();
    assert_eq!(s.get_client("pub").await.unwrap(), Some(public));
    // A conditional delete (If-Match) only at the version named: version 0 also for records
    // without one.
    assert!(matches!(s.delete_client("pub", Some(1)).await, Err(StoreError::Conflict)));
    assert!(s.get_client("pub").await.unwrap().is_some(), "a delete at another version deletes nothing");
    assert!(s.delete_client("pub", Some(0)).await.unwrap());
    assert!(!s.delete_client("pub", Some(0)).await.unwrap(), "gone: false, not a conflict");
    assert!(s.delete_client("c1", None).await.unwrap());
    assert!(!s.delete_client("c1", None).await.unwrap());
    assert_eq!(s.get_client("c1").await.unwrap(), None);
}

/// Create, read, list in identifier order, conflict on re-create.
pub async fn resource_servers(s: &dyn Store) {
    let rs = |id: &str| ResourceServer {
        identifier: id.into(),
        name: Some("API".into()),
        scopes: vec![ScopeDescription { name: "read".into(), description: Some("Read things".into()), claims: vec![] }],
        created_at: NOW,
        custom_claims: vec![],
        version: 0,
    };
    s.create_resource_server(&rs("https://b.example")).await.unwrap();
    s.create_resource_server(&rs("https://a.example/api")).await.unwrap();
    assert!(matches!(s.create_resource_server(&rs("https://b.example")).await, Err(StoreError::Conflict)));
    assert_eq!(s.get_resource_server("https://b.example").await.unwrap(), Some(rs("https://b.example")));
    assert_eq!(s.get_resource_server("https://c.example").await.unwrap(), None);
    let all: Vec<String> = s.list_resource_servers().await.unwrap().into_iter().map(|r| r.identifier).collect();
    assert_eq!(all, ["https://a.example/api", "https://b.example"]);
}

/// Round trip; duplicate ids conflict without overwriting; expired records are filtered on read.
pub async fn tokens_put_get(s: &dyn Store) {
    let t = token("t1", TokenKind::Access, "c1", None, NOW);
    s.put_token(&t).await.unwrap();
    assert_eq!(s.get_token("t1", NOW).await.unwrap(), Some(t.clone()));
    let mut dup = token("t1", TokenKind::Access, "c2", None, NOW);
    dup.scope = Scope::parse("admin").unwrap();
    assert!(matches!(s.put_token(&dup).await, Err(StoreError::Conflict)));
    assert_eq!(s.get_token("t1", NOW).await.unwrap(), Some(t.clone()));
    assert_eq!(s.get_token("t1", t.expires_at - 1).await.unwrap(), Some(t.clone()));
    assert_eq!(s.get_token("t1", t.expires_at).await.unwrap(), None, "expired at exp");
    assert_eq!(s.get_token("unknown", NOW).await.unwrap(), None);
    let u = token("t2", TokenKind::Refresh, "c1", Some("alice"), NOW);
    s.put_token(&u).await.unwrap();
    assert_eq!(s.get_token("t2", NOW).await.unwrap(), Some(u));
}

/// Revocation is conditional: once per token, never creates a record.
pub async fn tokens_revoke(s: &dyn Store) {
    s.put_token(&token("t1", TokenKind::Access, "c1", None, NOW)).await.unwrap();
    assert!(s.revoke_token("t1", NOW + 5).await.unwrap());
    assert!(!s.revoke_token("t1", NOW + 6).await.unwrap(), "second revocation reports false");
    assert_eq!(s.get_token("t1", NOW).await.unwrap().unwrap().revoked_at, Some(NOW + 5), "first time stands");
    assert!(!s.revoke_token("ghost", NOW).await.unwrap());
    assert_eq!(s.get_token("ghost", NOW).await.unwrap(), None, "revocation never creates a record");
}

/// By client: ordered by expiry (here, with one lifetime, issue time), offset/limit, kinds separate, revoked and expired excluded.
pub async fn tokens_list_by_client(s: &dyn Store) {
    for (i, id) in ["a3", "a1", "a2", "a4", "a5"].iter().enumerate() {
        let issued = NOW + [30, 10, 20, 40, 50][i];
        s.put_token(&token(id, TokenKind::Access, "ca", None, issued)).await.unwrap();
    }
    s.put_token(&token("b1", TokenKind::Access, "cb", None, NOW)).await.unwrap();
    s.put_token(&token("r1", TokenKind::Refresh, "ca", Some("u"), NOW)).await.unwrap();
    let mut old = token("old", TokenKind::Access, "ca", None, NOW - 7200);
    old.expires_at = NOW - 1;
    s.put_token(&old).await.unwrap();
    let access = q(TokenKind::Access, Some("ca"), None);
    assert_eq!(ids(&s.list_tokens(&access, NOW, 0, 100).await.unwrap().0), ["a1", "a2", "a3", "a4", "a5"]);
    assert_eq!(ids(&s.list_tokens(&access, NOW, 1, 2).await.unwrap().0), ["a2", "a3"]);
    assert_eq!(ids(&s.list_tokens(&access, NOW, 4, 2).await.unwrap().0), ["a5"]);
    assert!(s.list_tokens(&access, NOW, 5, 10).await.unwrap().0.is_empty(), "offset past the end");
    assert!(s.list_tokens(&access, NOW, 0, 0).await.unwrap().0.is_empty());
    assert_eq!(s.count_tokens(&access, NOW).await.unwrap(), 5);
    s.revoke_token("a2", NOW).await.unwrap();
    assert_eq!(ids(&s.list_tokens(&access, NOW, 0, 100).await.unwrap().0), ["a1", "a3", "a4", "a5"]);
    assert_eq!(s.count_tokens(&access, NOW).await.unwrap(), 4);
    assert_eq!(s.count_tokens(&access, NOW + 3600 + 35).await.unwrap(), 2, "a4 and a5 outlive the others");
    assert_eq!(ids(&s.list_tokens(&q(TokenKind::Refresh, Some("ca"), None), NOW, 0, 10).await.unwrap().0), ["r1"]);
    assert_eq!(s.count_tokens(&q(TokenKind::Access, Some("cb"), None), NOW).await.unwrap(), 1);
    assert_eq!(s.count_tokens(&q(TokenKind::Access, Some("nobody"), None), NOW).await.unwrap(), 0);
}

/// By end user and by client + end user, across clients.
pub async fn tokens_list_by_end_user(s: &dyn Store) {
    s.put_token(&token("x1", TokenKind::Access, "c1", Some("alice"), NOW + 1)).await.unwrap();
    s.put_token(&token("x2", TokenKind::Access, "c2", Some("alice"), NOW + 2)).await.unwrap();
    s.put_token(&token("x3", TokenKind::Access, "c1", Some("bob"), NOW + 3)).await.unwrap();
    s.put_token(&token("x4", TokenKind::Refresh, "c1", Some("alice"), NOW + 4)).await.unwrap();
    // Ids and user names that would collide if keys were naively concatenated.
    s.put_token(&token("x5", TokenKind::Access, "c1#alice", Some("x"), NOW + 5)).await.unwrap();
    let alice = q(TokenKind::Access, None, Some("alice"));
    assert_eq!(ids(&s.list_tokens(&alice, NOW, 0, 10).await.unwrap().0), ["x1", "x2"]);
    assert_eq!(s.count_tokens(&alice, NOW).await.unwrap(), 2);
    let alice_c1 = q(TokenKind::Access, Some("c1"), Some("alice"));
    assert_eq!(ids(&s.list_tokens(&alice_c1, NOW, 0, 10).await.unwrap().0), ["x1"]);
    assert_eq!(s.count_tokens(&q(TokenKind::Refresh, Some("c1"), Some("alice")), NOW).await.unwrap(), 1);
    assert_eq!(ids(&s.list_tokens(&q(TokenKind::Access, Some("c1"), None), NOW, 0, 10).await.unwrap().0), ["x1", "x3"]);
    assert_eq!(s.count_tokens(&q(TokenKind::Access, None, Some("carol")), NOW).await.unwrap(), 0);
}

/// Signing-key slots are unique by generation; listed in generation order.
pub async fn signing_keys(s: &dyn Store) {
    let key = |generation: u32, kid: &str| StoredSigningKey {
        kid: kid.into(),
        generation,
        alg: "ES256".into(),
        public_jwk: format!(r#"{{"kid":"{kid}"}}"#),
        sealed_private_key: "c2VhbGVk".into(),
        kms_key_id: None,
        created_at: NOW + generation as i64,
        active_from: None,
        retired_at: None,
    };
    assert!(s.list_signing_keys().await.unwrap().is_empty());
    s.put_signing_key(&key(1, "k1")).await.unwrap();
    assert!(matches!(s.put_signing_key(&key(1, "k1-racer")).await, Err(StoreError::Conflict)));
    let r = s.put_signing_key(&key(5, "k1")).await;
    assert!(matches!(r, Err(StoreError::Conflict)), "a kid is stored once: {r:?}");
    let mut k2 = key(2, "k2");
    k2.retired_at = Some(NOW + 100);
    s.put_signing_key(&k2).await.unwrap();
    assert_eq!(s.list_signing_keys().await.unwrap(), vec![key(1, "k1"), k2.clone()]);
    // A rotation's pending KMS key, then retiring generation 1: only that slot changes.
    let mut k3 = key(3, "k3");
    (k3.sealed_private_key, k3.kms_key_id, k3.active_from) = (String::new(), Some("arn:k3".into()), Some(NOW + 600));
    s.put_signing_key(&k3).await.unwrap();
    let mut k1 = key(1, "k1");
    k1.retired_at = Some(NOW + 50);
    assert!(s.replace_signing_key(&k1, &key(1, "k1")).await.unwrap());
    let mut wrong_slot = key(4, "k1");
    wrong_slot.retired_at = Some(NOW);
    assert!(!s.replace_signing_key(&wrong_slot, &key(4, "k1")).await.unwrap(), "no such slot: nothing written");
    let mut wrong_kid = key(2, "k1");
    wrong_kid.retired_at = Some(NOW);
    assert!(!s.replace_signing_key(&wrong_kid, &key(2, "k1")).await.unwrap(), "another key's slot is not overwritten");
    assert_eq!(s.list_signing_keys().await.unwrap(), vec![k1.clone(), k2.clone(), k3.clone()]);
    // Conditional on the schedule read: an admin cancelling the pending k3 (retiring it) as
    // another brings its activation forward; whichever writes second read a stale record and
    // writes nothing.
    let mut sooner = k3.clone();
    sooner.active_from = Some(NOW + 1);
    let mut cancelled = k3.clone();
    cancelled.retired_at = Some(NOW);
    assert!(s.replace_signing_key(&sooner, &k3).await.unwrap());
    assert!(!s.replace_signing_key(&cancelled, &k3).await.unwrap(), "k3 changed since it was read");
    assert!(!s.replace_signing_key(&k3, &k3).await.unwrap(), "nor is the earlier schedule written back");
    let mut retired_sooner = sooner.clone();
    retired_sooner.retired_at = Some(NOW);
    assert!(s.replace_signing_key(&retired_sooner, &sooner).await.unwrap(), "read again, it applies");
    // A retired key's retirement time is part of the schedule too.
    let mut k2_later = k2.clone();
    k2_later.retired_at = Some(NOW + 200);
    assert!(!s.replace_signing_key(&k2_later, &key(2, "k2")).await.unwrap(), "read before its retirement");
    assert!(s.replace_signing_key(&k2_later, &k2).await.unwrap());
    assert_eq!(s.list_signing_keys().await.unwrap(), vec![k1, k2_later, retired_sooner]);
}

/// 20 concurrent revocations of one token: exactly one reports it revoked.
pub async fn concurrent_revocation(s: Arc<dyn Store>) {
    s.put_token(&token("hot", TokenKind::Access, "c1", None, NOW)).await.unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move { s.revoke_token("hot", NOW + i).await.unwrap() })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        wins += t.await.unwrap() as u32;
    }
    assert_eq!(wins, 1);
}

/// 20 concurrent creations of one client id: exactly one succeeds, the rest conflict.
pub async fn concurrent_creation(s: Arc<dyn Store>) {
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                let mut c = client("same");
                c.client_name = Some(format!("racer {i}"));
                s.create_client(&c).await
            })
        })
        .collect();
    let (mut ok, mut conflict) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => ok += 1,
            Err(StoreError::Conflict) => conflict += 1,
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert_eq!((ok, conflict), (1, 19));
}
