//! Token requests by `grant_type` (RFC 6749 §4), one file per grant, and access-token issuance
//! (RFC 9068) shared by all of them.
mod authorization_code;
mod client_credentials;
mod jwt_bearer;
mod password;
mod refresh_token;

pub use client_credentials::parse_resource;
pub(crate) use refresh_token::successor_ids;

use serde::Serialize;
use serde_json::json;

use crate::audit::{self, AuditEvent};
use crate::error::OAuthError;
use crate::http::Params;
use crate::model::{Client, GrantType, ResourceServer, Scope, TokenKind, TokenRecord};
use crate::{AppState, Result};

/// A parsed token request.
#[derive(Debug)]
pub enum TokenRequest {
    /// RFC 6749 §4.4.2.
    ClientCredentials(client_credentials::Request),
    /// RFC 6749 §4.1.3 with RFC 7636 §4.5.
    AuthorizationCode(authorization_code::Request),
    /// RFC 6749 §6.
    RefreshToken(refresh_token::Request),
    /// RFC 6749 §4.3.2.
    Password(password::Request),
    /// RFC 7523 §2.1.
    JwtBearer(jwt_bearer::Request),
}

impl TokenRequest {
    /// Parses the request for `client`. A missing `grant_type` is `invalid_request`; an
    /// unknown or unserved one is `unsupported_grant_type`; one the client did not register is
    /// `unauthorized_client` (RFC 6749 §5.2), decided before the grant's own parameters are read.
    pub fn parse(form: &Params, client: &Client) -> Result<Self> {
        let grant = form.require("grant_type")?;
        let grant = GrantType::parse(grant).filter(|g| g.is_served()).ok_or(OAuthError::UnsupportedGrantType)?;
        ensure_grant_allowed(client, grant)?;
        match grant {
            GrantType::ClientCredentials => Ok(Self::ClientCredentials(client_credentials::Request::parse(form)?)),
            GrantType::AuthorizationCode => Ok(Self::AuthorizationCode(authorization_code::Request::parse(form)?)),
            GrantType::RefreshToken => Ok(Self::RefreshToken(refresh_token::Request::parse(form)?)),
            GrantType::Password => Ok(Self::Password(password::Request::parse(form)?)),
            GrantType::JwtBearer => Ok(Self::JwtBearer(jwt_bearer::Request::parse(form)?)),
        }
    }
}

/// The successful token response (RFC 6749 §5.1). `Debug` shows no token.
#[derive(Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"[redacted]")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "[redacted]"))
            .field("scope", &self.scope)
            .finish()
    }
}

/// Runs the grant for an authenticated client. With a checked DPoP proof (`crate::dpop`), the
/// access token is bound to its key (RFC 9449 §5).
pub async fn issue(
    state: &AppState,
    client: &Client,
    request: TokenRequest,
    dpop: Option<&crate::dpop::Proof>,
) -> Result<TokenResponse> {
    match request {
        TokenRequest::ClientCredentials(r) => client_credentials::issue(state, client, r, dpop).await,
        TokenRequest::AuthorizationCode(r) => authorization_code::issue(state, client, r, dpop).await,
        TokenRequest::RefreshToken(r) => refresh_token::issue(state, client, r, dpop).await,
        TokenRequest::Password(r) => password::issue(state, client, r, dpop).await,
        TokenRequest::JwtBearer(r) => jwt_bearer::issue(state, client, r, dpop).await,
    }
}

/// The optional `resource` parameter (RFC 8707 §2): an absolute URI without a fragment. It may
/// be sent more than once; Gatehouse issues a token for one resource per request, so several
/// are `invalid_target`, as for a resource it does not serve.
pub fn requested_resource(params: &Params) -> Result<Option<String>> {
    if params.several_resources() {
        return Err(OAuthError::InvalidTarget("one resource per request: send `resource` once".into()));
    }
    params.get("resource").map(parse_resource).transpose()
}

/// The optional `scope` parameter (RFC 6749 §3.3); malformed is `invalid_scope`.
pub fn parse_scope(params: &Params) -> Result<Option<Scope>> {
    params
        .get("scope")
        .map(|s| Scope::parse(s).ok_or_else(|| OAuthError::InvalidScope("the scope is malformed".into())))
        .transpose()
}

/// RFC 6749 §5.2 `unauthorized_client` unless the client registered this grant.
pub fn ensure_grant_allowed(client: &Client, grant: GrantType) -> Result<()> {
    if client.grant_types.contains(&grant) {
        Ok(())
    } else {
        Err(OAuthError::UnauthorizedClient(format!("the client is not allowed to use {}", grant.as_str()).into()))
    }
}

/// The audience and scope a token is issued for.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    pub audience: String,
    pub scope: Scope,
    /// RFC 9449 §6: the thumbprint of the DPoP key the access token is bound to (`cnf.jkt`);
    /// refresh tokens are bound to it only for public clients (§5).
    pub jkt: Option<String>,
    /// When the grant was first made, for grants that continue one (a code exchange, a
    /// refresh): the tokens' [`TokenRecord::granted_at`].
    pub granted_at: Option<i64>,
}

impl Grant {
    /// This grant, bound to the key of `proof` if there is one.
    pub fn bound_to(self, proof: Option<&crate::dpop::Proof>) -> Self {
        Self { jkt: proof.map(|p| p.jkt.clone()), ..self }
    }
}

/// Decides audience and scope (RFC 6749 §3.3, RFC 8707 §2): `resource`, when given, must be a
/// registered resource server (`invalid_target`), and the token is limited to its scopes.
/// The requested scope must lie within the client's allowed scopes (and the resource's);
/// without `scope`, every allowed scope is granted.
pub async fn decide_grant(
    state: &AppState,
    client: &Client,
    requested: Option<&Scope>,
    resource: Option<&str>,
) -> Result<Grant> {
    let admin = requested.is_some_and(|s| s.contains(crate::endpoints::token_admin::ADMIN_SCOPE));
    let rs: Option<std::sync::Arc<ResourceServer>> = match resource {
        // This server's own API (the admin API): its audience is the issuer, which is no
        // registered resource server. Asked for by `resource` = the issuer, or by the admin
        // scope without `resource` (the tenant's default resource server is another API).
        Some(r) if r == state.config.issuer => None,
        None if admin => None,
        // RFC 8707 §2: without `resource`, the tenant's default resource server if one is
        // set (identity-domain settings) and still registered.
        None => match state.settings().await?.default_resource.as_deref() {
            Some(d) => state.resource_server(d).await?,
            None => None,
        },
        Some(r) => Some(
            state
                .resource_server(r)
                .await?
                .ok_or_else(|| OAuthError::InvalidTarget("the resource is not a registered resource server".into()))?,
        ),
    };
    let within_rs = |t: &str| rs.as_ref().is_none_or(|rs| rs.scope_names().any(|n| n == t));
    let scope = match requested {
        Some(req) => {
            if !req.is_subset(&client.scope) {
                return Err(OAuthError::InvalidScope("the requested scope exceeds the client's allowed scopes".into()));
            }
            if !req.iter().all(within_rs) {
                return Err(OAuthError::InvalidScope("the requested scope is not offered by the resource".into()));
            }
            req.clone()
        }
        None => client.scope.filter(within_rs),
    };
    let own_api = resource == Some(state.config.issuer.as_str()) || (resource.is_none() && admin);
    let audience = match rs {
        Some(r) => r.identifier.clone(),
        None if own_api => state.config.issuer.clone(),
        None => state.config.default_audience.clone(),
    };
    Ok(Grant { audience, scope, jkt: None, granted_at: None })
}

/// A freshly issued access token and its stored record.
pub struct IssuedAccessToken {
    pub token: String,
    pub record: TokenRecord,
}

/// Issues an RFC 9068 JWT access token (`typ: at+jwt`; `iss`, `sub`, `aud`, `client_id`,
/// `scope`, `iat`, `exp`, `jti`, and `cnf.jkt` when DPoP-bound, RFC 9449 §6.1) and stores its record. Signing happens first: if the store
/// write fails, the token is never handed out, so no token exists without its record.
pub async fn issue_access_token(
    state: &AppState,
    client: &Client,
    end_user: Option<&crate::model::User>,
    grant_type: GrantType,
    grant: &Grant,
) -> Result<IssuedAccessToken> {
    let issued = sign_access_token(state, client, end_user, grant_type, grant, None).await?;
    state.store.put_token(&issued.record).await?;
    audit_issued(&issued.record);
    Ok(issued)
}

/// Signs an access token and builds its record without storing it (the caller stores it,
/// possibly in a transaction with other writes). `sub` is the end user, or the client itself
/// when there is none (RFC 9068 §2.2, client credentials).
pub async fn sign_access_token(
    state: &AppState,
    client: &Client,
    end_user: Option<&crate::model::User>,
    grant_type: GrantType,
    grant: &Grant,
    family: Option<&str>,
) -> Result<IssuedAccessToken> {
    let now = state.clock.now();
    // All of the client's tokens were revoked this second: one issued now would be refused
    // wherever it is used (`Client::revoked_with_all`), so none is handed out.
    if client.revoked_with_all(now) {
        return Err(OAuthError::TemporarilyUnavailable(
            "every token of this client was revoked this second; retry".into(),
        ));
    }
    // The same for the user's (`User::revoked_with_all`, checked when a grant is redeemed).
    if end_user.is_some_and(|u| u.revoked_with_all(&client.client_id, now)) {
        return Err(OAuthError::TemporarilyUnavailable(
            "every token of this user was revoked this second; retry".into(),
        ));
    }
    let lifetime = client.access_token_lifetime.unwrap_or(state.settings().await?.access_token_ttl);
    let record = TokenRecord {
        id: crate::crypto::time_ordered_id(),
        kind: TokenKind::Access,
        client_id: client.client_id.clone(),
        subject: end_user.map_or_else(|| client.client_id.clone(), |u| u.username.clone()),
        end_user: end_user.map(|u| u.username.clone()),
        scope: grant.scope.clone(),
        audience: grant.audience.clone(),
        grant_type,
        issued_at: now,
        expires_at: now + lifetime as i64,
        revoked_at: None,
        family: family.map(str::to_owned),
        rotated_at: None,
        successor_response: None,
        jkt: grant.jkt.clone(),
        issued_with: None,
        granted_at: grant.granted_at,
    };
    let mut claims = json!({
        "iss": state.config.issuer,
        "sub": record.subject,
        "aud": record.audience,
        "client_id": record.client_id,
        "iat": record.issued_at,
        "exp": record.expires_at,
        "jti": record.id,
    });
    if !record.scope.is_empty() {
        claims["scope"] = json!(record.scope.to_string());
    }
    if let Some(jkt) = &record.jkt {
        claims["cnf"] = json!({ "jkt": jkt });
    }
    if let Some(obj) = claims.as_object_mut() {
        for (name, value) in custom_claims(state, client, &record, end_user).await? {
            // Configured names never collide with these (`claims::validate`); never overwrite.
            obj.entry(name).or_insert(value);
        }
    }
    // A warm instance picks up key rotations here (one store query per `RELOAD_INTERVAL`).
    state.signer.refresh(state.clock.now(), None).await;
    let token = state.signer.sign("at+jwt", &claims).await?;
    // A token longer than the verifiers accept (custom claims too large) could be neither
    // introspected nor revoked by its client (RFC 7009 §2.1): refused before anything is stored.
    if token.len() > crate::keys::MAX_TOKEN_LEN {
        return Err(OAuthError::server(format_args!(
            "an access token for client {} would be {} bytes, over the {} that verify: make its custom claims smaller",
            client.client_id,
            token.len(),
            crate::keys::MAX_TOKEN_LEN
        )));
    }
    Ok(IssuedAccessToken { token, record })
}

/// The custom claims of a token (OAM seed 38.4.1, `crate::claims`): the client's, then those of
/// the resource server the token is for, then those of each granted scope it defines; dynamic
/// claims from the profile of the token's user (`end_user`, which the grant read already).
async fn custom_claims(
    state: &AppState,
    client: &Client,
    record: &TokenRecord,
    end_user: Option<&crate::model::User>,
) -> Result<serde_json::Map<String, serde_json::Value>> {
    let rs = state.resource_server(&record.audience).await?; // cached: `cache::RESOURCE_SERVER_TTL`
    let mut levels: Vec<&[crate::claims::ClaimRule]> = vec![&client.custom_claims];
    if let Some(rs) = &rs {
        levels.push(&rs.custom_claims);
        for granted in record.scope.iter() {
            if let Some(d) = rs.scopes.iter().find(|d| d.name == granted) {
                levels.push(&d.claims);
            }
        }
    }
    if levels.iter().all(|l| l.is_empty()) {
        return Ok(serde_json::Map::new());
    }
    Ok(crate::claims::resolve(levels, end_user.map(|u| &u.attributes)))
}

/// Audits an issued access token (EDR 20004).
pub fn audit_issued(record: &TokenRecord) {
    crate::metrics::token_issued(record.grant_type.as_str());
    audit::record(AuditEvent::TokenIssued {
        client_id: record.client_id.clone(),
        subject: record.subject.clone(),
        grant_type: record.grant_type.as_str(),
        jti: record.id.clone(),
        scope: record.scope.to_string(),
        audience: record.audience.clone(),
    });
}

/// A new opaque refresh token (256 random bits after a time prefix, `crypto::opaque_token`) and
/// its record, stored by `crypto::opaque_token_id`, never by the token (RFC 6749 §10.4), issued
/// with `access` (the same user and family; the record names it, `issued_with`).
pub fn new_refresh_token(
    state: &AppState,
    settings: &crate::settings::Settings,
    client: &Client,
    username: &str,
    grant: &Grant,
    origin: GrantType,
    access: &TokenRecord,
) -> (String, TokenRecord) {
    let token = crate::crypto::opaque_token();
    let now = state.clock.now();
    let lifetime = client.refresh_token_lifetime.unwrap_or(settings.refresh_token_ttl);
    let record = TokenRecord {
        id: crate::crypto::opaque_token_id(&token),
        kind: TokenKind::Refresh,
        client_id: client.client_id.clone(),
        subject: username.to_owned(),
        end_user: Some(username.to_owned()),
        scope: grant.scope.clone(),
        audience: grant.audience.clone(),
        grant_type: origin,
        issued_at: now,
        expires_at: now + lifetime as i64,
        revoked_at: None,
        family: access.family.clone(),
        rotated_at: None,
        successor_response: None,
        // RFC 9449 §5: only a public client's refresh token is bound (a confidential client's
        // is already bound to its credentials).
        jkt: if client.is_public() { grant.jkt.clone() } else { None },
        issued_with: Some(access.id.clone()),
        granted_at: grant.granted_at,
    };
    (token, record)
}

/// Whether the client receives refresh tokens: the tenant has them on and the client registered
/// the `refresh_token` grant (the OAM seed issues them only for the code and password grants).
pub fn gets_refresh_token(client: &Client, settings: &crate::settings::Settings) -> bool {
    settings.refresh_tokens_enabled && client.grant_types.contains(&GrantType::RefreshToken)
}

/// Revokes every active token of a family (code replay, refresh reuse, refresh revocation), one
/// conditional update per token: the access tokens first, the refresh token last. A failure
/// part-way (503) then leaves the refresh token active, so a client that retries with it runs
/// the whole revocation again (RFC 7009 §2.1: the family's access tokens go with it).
///
/// The tokens are those the family's listing finds, and `known`: ids the caller has from
/// consistent reads (the tokens a code's redemption issued, the successors of a rotated
/// refresh token, the presented token). On DynamoDB the listing is a Query of an index, which
/// is eventually consistent: a token issued a moment before (the winner of a race with a
/// replayed code or refresh token) may be missing from it, and `known` names exactly those.
pub async fn revoke_family(state: &AppState, family: &str, known: &[String]) -> Result<u64> {
    let now = state.clock.now();
    let mut tokens = state.store.list_family(family, now).await?;
    for id in known {
        if tokens.iter().any(|t| &t.id == id) {
            continue;
        }
        if let Some(t) = state.store.get_token(id, now).await?
            && t.family.as_deref() == Some(family)
            && t.is_active(now)
        {
            tokens.push(t);
        }
    }
    tokens.sort_by_key(|t| t.kind == TokenKind::Refresh); // stable: access tokens first, in order
    let mut revoked = 0;
    for t in tokens {
        revoked += state.store.revoke_token(&t.id, now).await? as u64;
    }
    Ok(revoked)
}

/// Checks that the resource owner of a grant made at `granted_at` (a code's sign-in time, a
/// refresh token's grant time) for `client_id` still exists and is enabled, and that the grant
/// was not revoked with all of the user's tokens (everywhere or at this client,
/// [`crate::model::User::revoked_with_all`]): `invalid_grant` otherwise. A user created after
/// the grant is another user of the same name: a deletion cut short (a 503 part-way) never
/// hands the old user's tokens to a new account.
pub async fn active_user(
    state: &AppState,
    username: &str,
    client_id: &str,
    granted_at: i64,
) -> Result<crate::model::User> {
    match state.store.get_user(username).await? {
        Some(u) if u.enabled && u.created_at <= granted_at => {
            if u.revoked_with_all(client_id, granted_at) {
                return Err(OAuthError::InvalidGrant("the grant was revoked with every token of its user".into()));
            }
            Ok(u)
        }
        _ => Err(OAuthError::InvalidGrant("the resource owner is unknown or disabled".into())),
    }
}

/// RFC 8707 §2.2: a `resource` sent with a code or a refresh token names a resource the grant is
/// for; Gatehouse grants one, its audience. Another one is `invalid_target`.
pub fn same_resource(requested: Option<&str>, audience: &str) -> Result<()> {
    match requested {
        Some(r) if r != audience => {
            Err(OAuthError::InvalidTarget("the resource is not the one this grant was issued for".into()))
        }
        _ => Ok(()),
    }
}

/// The scope of a stored grant (a code's, a refresh token's) that the client and the resource
/// server still allow (RFC 6749 §3.3: the server's policy decides, at every issue): scopes taken
/// from the client or from the resource server since are not issued again. A grant for a
/// resource server that was deleted since is `invalid_grant` (deleting one refuses later
/// requests for it).
pub async fn still_allowed(state: &AppState, client: &Client, audience: &str, scope: Scope) -> Result<Scope> {
    let rs = state.resource_server(audience).await?;
    if rs.is_none() && audience != state.config.default_audience && audience != state.config.issuer {
        return Err(OAuthError::InvalidGrant("the resource server of this grant is no longer registered".into()));
    }
    Ok(scope.filter(|t| client.scope.contains(t) && rs.as_ref().is_none_or(|rs| rs.scope_names().any(|n| n == t))))
}

impl TokenResponse {
    /// The response for an access token alone.
    pub fn access_only(issued: IssuedAccessToken) -> Self {
        let r = &issued.record;
        Self {
            expires_in: (r.expires_at - r.issued_at).max(0) as u64,
            scope: (!r.scope.is_empty()).then(|| r.scope.to_string()),
            // RFC 9449 §5: a bound access token is of type DPoP.
            token_type: if r.jkt.is_some() { "DPoP" } else { "Bearer" }.into(),
            access_token: issued.token,
            refresh_token: None,
        }
    }

    /// The response for an access token and, optionally, a refresh token.
    pub fn with_refresh(issued: IssuedAccessToken, refresh: Option<String>) -> Self {
        Self { refresh_token: refresh, ..Self::access_only(issued) }
    }
}

#[cfg(test)]
mod tests {
    /// No `Debug` of a request or response shows a secret or a token: one `{:?}` in a log
    /// line must never leak them.
    #[test]
    fn debug_never_shows_secrets() {
        let secret = "s3cr3t-value-0123456789-s3cr3t-value-0123456789";
        let form = crate::http::Params::parse(
            format!("grant_type=authorization_code&code={secret}&code_verifier={secret}&redirect_uri=https%3A%2F%2Fa&refresh_token={secret}&client_secret={secret}")
                .as_bytes(),
        )
        .unwrap();
        let code = super::authorization_code::Request::parse(&form).unwrap();
        let refresh = super::refresh_token::Request::parse(&form).unwrap();
        let response = super::TokenResponse {
            access_token: secret.into(),
            token_type: "Bearer".into(),
            expires_in: 60,
            refresh_token: Some(secret.into()),
            scope: None,
        };
        let mut pending = crate::store::conformance::pending(secret);
        pending.state = None;
        let admin = format!("{secret}-admin-token-long-enough");
        let config =
            crate::config::Config::from_lookup(|v| (v == "GATEHOUSE_ADMIN_TOKEN").then(|| admin.clone())).unwrap();
        assert_eq!(config.admin_token.as_deref().map(String::as_str), Some(admin.as_str()));
        for shown in [
            format!("{form:?}"),
            format!("{code:?}"),
            format!("{refresh:?}"),
            format!("{response:?}"),
            format!("{pending:?}"),
            format!("{config:?}"),
        ] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(format!("{form:?}").contains("client_secret"), "the names are shown");
    }
}
