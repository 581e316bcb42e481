//! Dependencies that fail: an unreachable DynamoDB (a real SDK client aimed at a closed
//! loopback port) and a throttled store answer 503 `temporarily_unavailable` with
//! `Retry-After`, and nothing is written.
use std::sync::Arc;

use async_trait::async_trait;
use axum::http::StatusCode;
use gatehouse::model::{
    AuthorizationCode, Client, Consent, FailureCounter, Group, PendingAuthorization, ResourceServer, StoredSigningKey,
    TokenRecord, User,
};
use gatehouse::store::*;
use serde_json::json;

use crate::common::{self, admin, assert_error, form, send};
use crate::hooked_store::Hooked;

/// Every call fails as a throttled backend does.
struct Throttled;

fn throttled<T>() -> StoreResult<T> {
    Err(StoreError::Unavailable("ProvisionedThroughputExceededException".into()))
}

#[async_trait]
impl ReplayStore for Throttled {
    async fn first_use(&self, _: &str, _: i64, _: i64) -> StoreResult<bool> {
        throttled()
    }
}

#[async_trait]
impl SettingsStore for Throttled {
    async fn get_settings(&self) -> StoreResult<Option<gatehouse::settings::StoredSettings>> {
        throttled()
    }
    async fn put_settings(&self, _: &gatehouse::settings::StoredSettings) -> StoreResult<bool> {
        throttled()
    }
}

#[async_trait]
impl ClientStore for Throttled {
    async fn create_client(&self, _: &Client) -> StoreResult<()> {
        throttled()
    }
    async fn get_client(&self, _: &str) -> StoreResult<Option<Client>> {
        throttled()
    }
    async fn delete_client(&self, _: &str, _: Option<u64>) -> StoreResult<bool> {
        throttled()
    }
    async fn update_client(&self, _: &Client, _: u64) -> StoreResult<bool> {
        throttled()
    }
    async fn list_clients(&self, _: Option<&str>, _: usize) -> StoreResult<(Vec<Client>, Option<String>)> {
        throttled()
    }
}

#[async_trait]
impl ResourceServerStore for Throttled {
    async fn create_resource_server(&self, _: &ResourceServer) -> StoreResult<()> {
        throttled()
    }
    async fn get_resource_server(&self, _: &str) -> StoreResult<Option<ResourceServer>> {
        throttled()
    }
    async fn list_resource_servers(&self) -> StoreResult<Vec<ResourceServer>> {
        throttled()
    }
    async fn list_resource_servers_after(
        &self,
        _: Option<&str>,
        _: usize,
    ) -> StoreResult<(Vec<ResourceServer>, Option<String>)> {
        throttled()
    }
    async fn update_resource_server(&self, _: &ResourceServer, _: u64) -> StoreResult<bool> {
        throttled()
    }
    async fn delete_resource_server(&self, _: &str, _: Option<u64>) -> StoreResult<bool> {
        throttled()
    }
}

#[async_trait]
impl TokenStore for Throttled {
    async fn put_token(&self, _: &TokenRecord) -> StoreResult<()> {
        throttled()
    }
    async fn get_token(&self, _: &str, _: i64) -> StoreResult<Option<TokenRecord>> {
        throttled()
    }
    async fn revoke_token(&self, _: &str, _: i64) -> StoreResult<bool> {
        throttled()
    }
    async fn rotate_refresh(&self, _: &str, _: i64, _: &str, _: &[TokenRecord]) -> StoreResult<bool> {
        throttled()
    }
    async fn list_family(&self, _: &str, _: i64) -> StoreResult<Vec<TokenRecord>> {
        throttled()
    }
    async fn list_tokens(
        &self,
        _: &TokenQuery,
        _: i64,
        _: usize,
        _: usize,
    ) -> StoreResult<(Vec<TokenRecord>, Option<String>)> {
        throttled()
    }
    async fn list_tokens_after(
        &self,
        _: &TokenQuery,
        _: i64,
        _: Option<&str>,
        _: usize,
    ) -> StoreResult<(Vec<TokenRecord>, Option<String>)> {
        throttled()
    }
    async fn count_tokens(&self, _: &TokenQuery, _: i64) -> StoreResult<u64> {
        throttled()
    }
}

#[async_trait]
impl KeyStore for Throttled {
    async fn put_signing_key(&self, _: &StoredSigningKey) -> StoreResult<()> {
        throttled()
    }
    async fn replace_signing_key(&self, _: &StoredSigningKey, _: &StoredSigningKey) -> StoreResult<bool> {
        throttled()
    }
    async fn list_signing_keys(&self) -> StoreResult<Vec<StoredSigningKey>> {
        throttled()
    }
}

#[async_trait]
impl UserStore for Throttled {
    async fn create_user(&self, _: &User) -> StoreResult<()> {
        throttled()
    }
    async fn get_user(&self, _: &str) -> StoreResult<Option<User>> {
        throttled()
    }
    async fn update_user(&self, _: &User, _: u64) -> StoreResult<bool> {
        throttled()
    }
    async fn delete_user(&self, _: &str, _: Option<u64>) -> StoreResult<bool> {
        throttled()
    }
    async fn list_users(&self, _: Option<&str>, _: usize) -> StoreResult<(Vec<User>, Option<String>)> {
        throttled()
    }
}

#[async_trait]
impl GroupStore for Throttled {
    async fn create_group(&self, _: &Group) -> StoreResult<()> {
        throttled()
    }
    async fn get_group(&self, _: &str) -> StoreResult<Option<Group>> {
        throttled()
    }
    async fn list_groups(&self, _: Option<&str>, _: usize) -> StoreResult<(Vec<Group>, Option<String>)> {
        throttled()
    }
    async fn update_group(&self, _: &Group) -> StoreResult<bool> {
        throttled()
    }
    async fn delete_group(&self, _: &str) -> StoreResult<bool> {
        throttled()
    }
    async fn add_member(&self, _: &str, _: &str) -> StoreResult<bool> {
        throttled()
    }
    async fn remove_member(&self, _: &str, _: &str) -> StoreResult<bool> {
        throttled()
    }
    async fn is_member(&self, _: &str, _: &str) -> StoreResult<bool> {
        throttled()
    }
    async fn list_members(&self, _: &str, _: Option<&str>, _: usize) -> StoreResult<(Vec<String>, Option<String>)> {
        throttled()
    }
    async fn groups_of(&self, _: &str) -> StoreResult<Vec<String>> {
        throttled()
    }
    async fn remove_user_from_groups(&self, _: &str) -> StoreResult<u64> {
        throttled()
    }
}

#[async_trait]
impl ConsentStore for Throttled {
    async fn put_consent(&self, _: &Consent) -> StoreResult<()> {
        throttled()
    }
    async fn get_consent(&self, _: &str, _: &str) -> StoreResult<Option<Consent>> {
        throttled()
    }
    async fn list_consents(&self, _: &str) -> StoreResult<Vec<Consent>> {
        throttled()
    }
    async fn delete_consent(&self, _: &str, _: &str) -> StoreResult<bool> {
        throttled()
    }
}

#[async_trait]
impl CounterStore for Throttled {
    async fn get_counter(&self, _: &str, _: i64) -> StoreResult<Option<FailureCounter>> {
        throttled()
    }
    async fn increment_counter(&self, _: &str, _: i64, _: i64) -> StoreResult<FailureCounter> {
        throttled()
    }
    async fn lock_counter(&self, _: &str, _: i64) -> StoreResult<()> {
        throttled()
    }
    async fn clear_counter(&self, _: &str) -> StoreResult<()> {
        throttled()
    }
}

#[async_trait]
impl AuthorizationStore for Throttled {
    async fn put_pending(&self, _: &PendingAuthorization) -> StoreResult<()> {
        throttled()
    }
    async fn get_pending(&self, _: &str, _: i64) -> StoreResult<Option<PendingAuthorization>> {
        throttled()
    }
    async fn update_pending(&self, _: &PendingAuthorization) -> StoreResult<bool> {
        throttled()
    }
    async fn delete_pending(&self, _: &str) -> StoreResult<bool> {
        throttled()
    }
    async fn put_code(&self, _: &AuthorizationCode) -> StoreResult<()> {
        throttled()
    }
    async fn get_code(&self, _: &str, _: i64) -> StoreResult<Option<AuthorizationCode>> {
        throttled()
    }
    async fn redeem_code(&self, _: &str, _: i64, _: &[TokenRecord]) -> StoreResult<bool> {
        throttled()
    }
}

fn assert_unavailable(r: &common::Resp) {
    assert_error(r, StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable");
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(!r.text.contains("Provisioned") && !r.text.contains("dynamodb"), "no internals leak: {}", r.text);
}

async fn every_endpoint_unavailable(state: gatehouse::AppState) {
    let app = common::app(&state);
    let auth = common::basic("some-client", "some-secret");
    assert_unavailable(&send(&app, form("/token", Some(&auth), "grant_type=client_credentials")).await);
    assert_unavailable(&send(&app, form("/introspect", Some(&auth), "token=x")).await);
    assert_unavailable(&send(&app, form("/revoke", Some(&auth), "token=x")).await);
    // GET /validate with a token whose signature holds: its record cannot be read.
    let claims = json!({"iss": state.config.issuer, "sub": "u", "aud": "a", "client_id": "c", "iat": 1,
                        "exp": i64::MAX / 2, "jti": "j"});
    let token = gatehouse::keys::Signer::sign(&*state.signer, "at+jwt", &claims).await.unwrap();
    let req = axum::http::Request::get("/validate").header("authorization", format!("Bearer {token}"));
    assert_unavailable(&send(&app, req.body(Default::default()).unwrap()).await);
    let meta = json!({"grant_types": ["client_credentials"]});
    assert_unavailable(&send(&app, admin("POST", "/admin/clients", Some(meta))).await);
    assert_unavailable(&send(&app, admin("GET", "/admin/tokens/count?type=access&client_id=c", None)).await);
    assert_unavailable(&send(&app, admin("GET", "/admin/tokens?type=access&client_id=c", None)).await);
    assert_unavailable(&send(&app, admin("POST", "/admin/groups", Some(json!({"name": "g"})))).await);
    assert_unavailable(&send(&app, admin("GET", "/admin/groups", None)).await);
    assert_unavailable(&send(&app, admin("PUT", "/admin/groups/g/members/u", None)).await);
    assert_unavailable(&send(&app, admin("DELETE", "/admin/groups/g", None)).await);
    assert_unavailable(&send(&app, admin("GET", "/admin/users", None)).await);
    assert_unavailable(&send(&app, admin("DELETE", "/admin/resource-servers/urn%3Ax", None)).await);
    assert_unavailable(&send(&app, admin("GET", "/admin/clients", None)).await);
    assert_unavailable(&send(&app, admin("PATCH", "/admin/clients/c", Some(json!({"client_name": "x"})))).await);
    assert_unavailable(&send(&app, admin("POST", "/admin/clients/c/secret", None)).await);
    assert_unavailable(&send(&app, admin("POST", "/admin/tokens/revoke-all", Some(json!({"client_id": "c"})))).await);
    // The authorize endpoint shows its error page with the same status.
    let r = send(&app, axum::http::Request::get("/authorize?client_id=c").body(Default::default()).unwrap()).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn throttled_store_is_503_everywhere() {
    every_endpoint_unavailable(common::state_on(Arc::new(Throttled))).await;
}

#[tokio::test]
async fn unreachable_dynamodb_is_503_everywhere() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = common::sdk_config(&format!("http://127.0.0.1:{port}")).await;
    let ddb = aws_sdk_dynamodb::Client::new(&config);
    every_endpoint_unavailable(common::state_on(Arc::new(DynamoStore::new(ddb, "nowhere")))).await;
}

/// A token whose record cannot be written is never handed out.
#[tokio::test]
async fn no_token_without_its_record() {
    let (inner, _dir) = common::embedded();
    let state = common::state_on(Arc::new(Hooked { fail_put_token: true, ..Hooked::new(inner.clone()) }));
    let app = common::app(&state);
    let c = common::cc_client(&app).await;
    let r = send(&app, form("/token", Some(&c.basic()), "grant_type=client_credentials")).await;
    assert_unavailable(&r);
    assert!(!r.text.contains("eyJ"), "no token in the response");
    let q = TokenQuery { kind: gatehouse::model::TokenKind::Access, client_id: Some(c.id), end_user: None };
    assert_eq!(inner.count_tokens(&q, common::T0).await.unwrap(), 0);
}
