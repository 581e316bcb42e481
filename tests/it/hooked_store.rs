//! A store that passes every call to another, except where a test asks it to fail or to
//! interleave another request's write (faults the emulators cannot inject on cue).
use std::sync::Arc;

use async_trait::async_trait;
use gatehouse::model::{
    AuthorizationCode, Client, Consent, FailureCounter, Group, PendingAuthorization, ResourceServer, StoredSigningKey,
    TokenRecord, User,
};
use gatehouse::store::*;

pub struct Hooked {
    pub inner: Arc<dyn Store>,
    /// Every `put_token` fails (503): a token whose record cannot be written.
    pub fail_put_token: bool,
    /// A refresh token is revoked (as `/revoke` or an admin would) between the grant's read and
    /// its rotation.
    pub revoke_before_rotation: bool,
    /// Every token listing fails (503): a sweep of a client's tokens cut short.
    pub fail_token_listing: bool,
    /// Written (`put_token`) just after the first cursor listing that continues after a cursor
    /// answers: a token issued while a sweep pages through, before its cursor or after.
    pub issue_during_listing: std::sync::Mutex<Vec<TokenRecord>>,
    /// A client is renamed (another admin's `PATCH`) just before the first conditional
    /// deletion of it: between the If-Match check on the state read and the deletion.
    pub rename_before_conditional_delete: std::sync::atomic::AtomicBool,
}

impl Hooked {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Self {
            inner,
            fail_put_token: false,
            revoke_before_rotation: false,
            fail_token_listing: false,
            issue_during_listing: Default::default(),
            rename_before_conditional_delete: Default::default(),
        }
    }
}

#[async_trait]
impl ReplayStore for Hooked {
    async fn first_use(&self, k: &str, now: i64, exp: i64) -> StoreResult<bool> {
        self.inner.first_use(k, now, exp).await
    }
}
#[async_trait]
impl SettingsStore for Hooked {
    async fn get_settings(&self) -> StoreResult<Option<gatehouse::settings::StoredSettings>> {
        self.inner.get_settings().await
    }
    async fn put_settings(&self, s: &gatehouse::settings::StoredSettings) -> StoreResult<bool> {
        self.inner.put_settings(s).await
    }
}
#[async_trait]
impl ClientStore for Hooked {
    async fn create_client(&self, c: &Client) -> StoreResult<()> {
        self.inner.create_client(c).await
    }
    async fn get_client(&self, id: &str) -> StoreResult<Option<Client>> {
        self.inner.get_client(id).await
    }
    async fn delete_client(&self, id: &str, version: Option<u64>) -> StoreResult<bool> {
        if version.is_some()
            && self.rename_before_conditional_delete.swap(false, std::sync::atomic::Ordering::SeqCst)
            && let Some(c) = self.inner.get_client(id).await?
        {
            let renamed = Client { client_name: Some("renamed meanwhile".into()), version: c.version + 1, ..c.clone() };
            assert!(self.inner.update_client(&renamed, c.version).await?);
        }
        self.inner.delete_client(id, version).await
    }
    async fn update_client(&self, c: &Client, read_version: u64) -> StoreResult<bool> {
        self.inner.update_client(c, read_version).await
    }
    async fn list_clients(&self, after: Option<&str>, l: usize) -> StoreResult<(Vec<Client>, Option<String>)> {
        self.inner.list_clients(after, l).await
    }
}
#[async_trait]
impl ResourceServerStore for Hooked {
    async fn create_resource_server(&self, r: &ResourceServer) -> StoreResult<()> {
        self.inner.create_resource_server(r).await
    }
    async fn get_resource_server(&self, id: &str) -> StoreResult<Option<ResourceServer>> {
        self.inner.get_resource_server(id).await
    }
    async fn list_resource_servers(&self) -> StoreResult<Vec<ResourceServer>> {
        self.inner.list_resource_servers().await
    }
    async fn list_resource_servers_after(
        &self,
        after: Option<&str>,
        l: usize,
    ) -> StoreResult<(Vec<ResourceServer>, Option<String>)> {
        self.inner.list_resource_servers_after(after, l).await
    }
    async fn update_resource_server(&self, r: &ResourceServer, v: u64) -> StoreResult<bool> {
        self.inner.update_resource_server(r, v).await
    }
    async fn delete_resource_server(&self, id: &str, version: Option<u64>) -> StoreResult<bool> {
        self.inner.delete_resource_server(id, version).await
    }
}
#[async_trait]
impl TokenStore for Hooked {
    async fn put_token(&self, t: &TokenRecord) -> StoreResult<()> {
        if self.fail_put_token {
            return Err(StoreError::Unavailable("ProvisionedThroughputExceededException".into()));
        }
        self.inner.put_token(t).await
    }
    async fn get_token(&self, id: &str, now: i64) -> StoreResult<Option<TokenRecord>> {
        self.inner.get_token(id, now).await
    }
    async fn revoke_token(&self, id: &str, at: i64) -> StoreResult<bool> {
        self.inner.revoke_token(id, at).await
    }
    async fn rotate_refresh(&self, id: &str, now: i64, r: &str, new: &[TokenRecord]) -> StoreResult<bool> {
        if self.revoke_before_rotation {
            self.inner.revoke_token(id, now).await?;
        }
        self.inner.rotate_refresh(id, now, r, new).await
    }
    async fn list_family(&self, family: &str, now: i64) -> StoreResult<Vec<TokenRecord>> {
        self.inner.list_family(family, now).await
    }
    async fn list_tokens(
        &self,
        q: &TokenQuery,
        now: i64,
        o: usize,
        l: usize,
    ) -> StoreResult<(Vec<TokenRecord>, Option<String>)> {
        self.inner.list_tokens(q, now, o, l).await
    }
    async fn list_tokens_after(
        &self,
        q: &TokenQuery,
        now: i64,
        after: Option<&str>,
        l: usize,
    ) -> StoreResult<(Vec<TokenRecord>, Option<String>)> {
        if self.fail_token_listing {
            return Err(StoreError::Unavailable("injected: token listing".into()));
        }
        let page = self.inner.list_tokens_after(q, now, after, l).await;
        if after.is_some() {
            let issued = std::mem::take(&mut *self.issue_during_listing.lock().unwrap());
            for t in issued {
                self.inner.put_token(&t).await?;
            }
        }
        page
    }
    async fn count_tokens(&self, q: &TokenQuery, now: i64) -> StoreResult<u64> {
        self.inner.count_tokens(q, now).await
    }
}
#[async_trait]
impl KeyStore for Hooked {
    async fn put_signing_key(&self, k: &StoredSigningKey) -> StoreResult<()> {
        self.inner.put_signing_key(k).await
    }
    async fn replace_signing_key(&self, k: &StoredSigningKey, read: &StoredSigningKey) -> StoreResult<bool> {
        self.inner.replace_signing_key(k, read).await
    }
    async fn list_signing_keys(&self) -> StoreResult<Vec<StoredSigningKey>> {
        self.inner.list_signing_keys().await
    }
}
#[async_trait]
impl UserStore for Hooked {
    async fn create_user(&self, u: &User) -> StoreResult<()> {
        self.inner.create_user(u).await
    }
    async fn get_user(&self, name: &str) -> StoreResult<Option<User>> {
        self.inner.get_user(name).await
    }
    async fn update_user(&self, u: &User, read_version: u64) -> StoreResult<bool> {
        self.inner.update_user(u, read_version).await
    }
    async fn delete_user(&self, name: &str, version: Option<u64>) -> StoreResult<bool> {
        self.inner.delete_user(name, version).await
    }
    async fn list_users(&self, after: Option<&str>, l: usize) -> StoreResult<(Vec<User>, Option<String>)> {
        self.inner.list_users(after, l).await
    }
}
#[async_trait]
impl GroupStore for Hooked {
    async fn create_group(&self, g: &Group) -> StoreResult<()> {
        self.inner.create_group(g).await
    }
    async fn get_group(&self, name: &str) -> StoreResult<Option<Group>> {
        self.inner.get_group(name).await
    }
    async fn list_groups(&self, after: Option<&str>, l: usize) -> StoreResult<(Vec<Group>, Option<String>)> {
        self.inner.list_groups(after, l).await
    }
    async fn update_group(&self, g: &Group) -> StoreResult<bool> {
        self.inner.update_group(g).await
    }
    async fn delete_group(&self, name: &str) -> StoreResult<bool> {
        self.inner.delete_group(name).await
    }
    async fn add_member(&self, group: &str, user: &str) -> StoreResult<bool> {
        self.inner.add_member(group, user).await
    }
    async fn remove_member(&self, group: &str, user: &str) -> StoreResult<bool> {
        self.inner.remove_member(group, user).await
    }
    async fn is_member(&self, group: &str, user: &str) -> StoreResult<bool> {
        self.inner.is_member(group, user).await
    }
    async fn list_members(
        &self,
        group: &str,
        after: Option<&str>,
        l: usize,
    ) -> StoreResult<(Vec<String>, Option<String>)> {
        self.inner.list_members(group, after, l).await
    }
    async fn groups_of(&self, user: &str) -> StoreResult<Vec<String>> {
        self.inner.groups_of(user).await
    }
    async fn remove_user_from_groups(&self, user: &str) -> StoreResult<u64> {
        self.inner.remove_user_from_groups(user).await
    }
}
#[async_trait]
impl ConsentStore for Hooked {
    async fn put_consent(&self, c: &Consent) -> StoreResult<()> {
        self.inner.put_consent(c).await
    }
    async fn get_consent(&self, user: &str, client: &str) -> StoreResult<Option<Consent>> {
        self.inner.get_consent(user, client).await
    }
    async fn list_consents(&self, user: &str) -> StoreResult<Vec<Consent>> {
        self.inner.list_consents(user).await
    }
    async fn delete_consent(&self, user: &str, client: &str) -> StoreResult<bool> {
        self.inner.delete_consent(user, client).await
    }
}
#[async_trait]
impl CounterStore for Hooked {
    async fn get_counter(&self, key: &str, now: i64) -> StoreResult<Option<FailureCounter>> {
        self.inner.get_counter(key, now).await
    }
    async fn increment_counter(&self, key: &str, now: i64, window: i64) -> StoreResult<FailureCounter> {
        self.inner.increment_counter(key, now, window).await
    }
    async fn lock_counter(&self, key: &str, until: i64) -> StoreResult<()> {
        self.inner.lock_counter(key, until).await
    }
    async fn clear_counter(&self, key: &str) -> StoreResult<()> {
        self.inner.clear_counter(key).await
    }
}
#[async_trait]
impl AuthorizationStore for Hooked {
    async fn put_pending(&self, p: &PendingAuthorization) -> StoreResult<()> {
        self.inner.put_pending(p).await
    }
    async fn get_pending(&self, id: &str, now: i64) -> StoreResult<Option<PendingAuthorization>> {
        self.inner.get_pending(id, now).await
    }
    async fn update_pending(&self, p: &PendingAuthorization) -> StoreResult<bool> {
        self.inner.update_pending(p).await
    }
    async fn delete_pending(&self, id: &str) -> StoreResult<bool> {
        self.inner.delete_pending(id).await
    }
    async fn put_code(&self, c: &AuthorizationCode) -> StoreResult<()> {
        self.inner.put_code(c).await
    }
    async fn get_code(&self, id: &str, now: i64) -> StoreResult<Option<AuthorizationCode>> {
        self.inner.get_code(id, now).await
    }
    async fn redeem_code(&self, id: &str, now: i64, tokens: &[TokenRecord]) -> StoreResult<bool> {
        self.inner.redeem_code(id, now, tokens).await
    }
}
