//! `grant_type=password` (RFC 6749 §4.3; OAM seed 2-legged): only for clients that registered
//! the grant, with the same lockout as the sign-in page. RFC 9700 §2.4 says not to use it;
//! Gatehouse serves it for the seed's trusted first-party clients and off by default (a
//! client must register it).
use crate::dpop::Proof;
use crate::http::Params;
use crate::model::{Client, GrantType, Scope};
use crate::{AppState, Result};

use super::*;

/// RFC 6749 §4.3.2 parameters plus RFC 8707 `resource`.
pub struct Request {
    username: String,
    password: String,
    scope: Option<Scope>,
    resource: Option<String>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request").field("username", &self.username).field("password", &"[redacted]").finish()
    }
}

impl Request {
    /// Parses `username`, `password`, `scope` and `resource`.
    pub fn parse(form: &Params) -> Result<Self> {
        let scope = crate::grants::parse_scope(form)?;
        Ok(Self {
            username: form.require("username")?.to_owned(),
            password: form.require("password")?.to_owned(),
            scope,
            resource: super::requested_resource(form)?,
        })
    }
}

/// Signs the user in and issues tokens in a new family.
pub async fn issue(state: &AppState, client: &Client, req: Request, dpop: Option<&Proof>) -> Result<TokenResponse> {
    ensure_grant_allowed(client, GrantType::Password)?;
    let grant = decide_grant(state, client, req.scope.as_ref(), req.resource.as_deref()).await?.bound_to(dpop);
    let user = crate::users::sign_in(state, &req.username, &req.password).await?.map_err(|e| e.into_oauth())?;
    let family = crate::crypto::time_ordered_id();
    let name = user.username.as_str();
    let access = sign_access_token(state, client, Some(&user), GrantType::Password, &grant, Some(&family)).await?;
    let settings = state.settings().await?;
    let refresh = gets_refresh_token(client, &settings)
        .then(|| new_refresh_token(state, &settings, client, name, &grant, GrantType::Password, &access.record));
    if let Some((_, r)) = &refresh {
        state.store.put_token(r).await?;
    }
    state.store.put_token(&access.record).await?;
    audit_issued(&access.record);
    Ok(TokenResponse::with_refresh(access, refresh.map(|(t, _)| t)))
}
