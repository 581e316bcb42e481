//! `grant_type=client_credentials` (RFC 6749 §4.4): a confidential client asks for a token for
//! itself. `sub` is the client id (RFC 9068 §2.2).
use crate::dpop::Proof;
use crate::error::OAuthError;
use crate::http::Params;
use crate::model::{Client, GrantType, Scope};
use crate::{AppState, Result};

use super::{TokenResponse, decide_grant, ensure_grant_allowed, issue_access_token};

/// RFC 6749 §4.4.2 parameters, plus RFC 8707 `resource`.
#[derive(Debug)]
pub struct Request {
    scope: Option<Scope>,
    resource: Option<String>,
}

impl Request {
    /// Parses `scope` (RFC 6749 §3.3; malformed → `invalid_scope`) and `resource` (RFC 8707
    /// §2: an absolute URI without fragment, else `invalid_target`).
    pub fn parse(form: &Params) -> Result<Self> {
        let scope = crate::grants::parse_scope(form)?;
        let resource = super::requested_resource(form)?;
        Ok(Self { scope, resource })
    }
}

/// RFC 8707 §2: `resource` is an absolute URI without a fragment (and no longer than a
/// resource server's identifier can be).
pub fn parse_resource(r: &str) -> Result<String> {
    let ok = r.len() <= crate::model::ResourceServer::MAX_IDENTIFIER
        && url::Url::parse(r).is_ok_and(|u| u.fragment().is_none());
    if ok {
        Ok(r.to_owned())
    } else {
        Err(OAuthError::InvalidTarget("resource must be an absolute URI without a fragment".into()))
    }
}

/// RFC 6749 §4.4.3: only confidential clients registered for this grant; no refresh token.
pub async fn issue(state: &AppState, client: &Client, req: Request, dpop: Option<&Proof>) -> Result<TokenResponse> {
    if client.is_public() {
        return Err(OAuthError::UnauthorizedClient("public clients cannot use client_credentials".into()));
    }
    ensure_grant_allowed(client, GrantType::ClientCredentials)?;
    let grant = decide_grant(state, client, req.scope.as_ref(), req.resource.as_deref()).await?.bound_to(dpop);
    let issued = issue_access_token(state, client, None, GrantType::ClientCredentials, &grant).await?;
    Ok(TokenResponse::access_only(issued))
}
