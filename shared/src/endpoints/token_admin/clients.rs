//! `POST /admin/clients` (RFC 7591 §2 client metadata, §3.2.1 response), `GET /admin/clients`
//! (a page of clients), `GET` and `DELETE /admin/clients/{client_id}`. Secrets are generated
//! here (256 bits), shown once, stored as SHA-256 digests. Deleting a client revokes its tokens.
//! Updates and secret rotation: `client_update.rs`.
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::versioned::{Versioned, tagged};
use super::{authorize, changed, json_body, ok};
use crate::endpoints::json_no_store;
use crate::model::{AuthMethod, Client, ClientSecret, GrantType, JwkSet, Scope, TrustedIssuer};
use crate::{AppState, OAuthError, Result};

/// The RFC 7591 §2 metadata Gatehouse accepts. Unknown members are refused (an admin API, not
/// open dynamic registration: a typo must not silently produce a different client).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientMetadata {
    pub client_name: Option<String>,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// RFC 7591 §2 default: `["authorization_code"]`.
    pub grant_types: Option<Vec<String>>,
    /// RFC 7591 §2 default: `client_secret_basic`.
    pub token_endpoint_auth_method: Option<String>,
    /// The scopes the client may request.
    pub scope: Option<String>,
    /// Gatehouse: scopes the user is never asked to consent to (within `scope`).
    pub pre_approved_scopes: Option<String>,
    /// Gatehouse: access-token lifetime in seconds (60..=86400).
    pub access_token_lifetime: Option<u64>,
    /// Gatehouse: refresh-token lifetime in seconds (300..=31536000).
    pub refresh_token_lifetime: Option<u64>,
    /// RFC 7591 §2 `jwks`: the public keys of a `private_key_jwt` client (inline only; no
    /// `jwks_uri`). Validated by `assertion::registration`.
    pub jwks: Option<serde_json::Value>,
    /// Gatehouse: the issuers of JWT bearer assertions (RFC 7523 §2.1) this client may exchange,
    /// `[{"issuer", "jwks", "enabled"}]`.
    pub jwt_bearer_issuers: Option<serde_json::Value>,
    /// RFC 9449 §5.2: every token request must carry a DPoP proof (default `false`).
    pub dpop_bound_access_tokens: Option<bool>,
    /// Gatehouse: custom claims of this client's access tokens (OAM seed 38.4.1).
    pub custom_claims: Option<Vec<crate::claims::ClaimRule>>,
}

fn meta(msg: impl Into<String>) -> OAuthError {
    OAuthError::InvalidClientMetadata(msg.into().into())
}

/// RFC 8252 §7 / RFC 9700 §4.1: https, http only on loopback, or a private-use scheme with a
/// dot; absolute, no fragment.
pub fn validate_redirect_uri(raw: &str) -> Result<()> {
    let bad = |why: &str| OAuthError::InvalidRedirectUri(format!("redirect_uris: {why}").into());
    if raw.len() > 2000 {
        return Err(bad("a URI is longer than 2000 characters"));
    }
    // Redirect URIs are matched exactly (RFC 9700 §4.1.3): a `*` would read as a pattern that
    // is never applied, and a later matcher that honoured it would be an open redirect.
    if raw.contains('*') {
        return Err(bad("a redirect URI is matched exactly: no wildcards (`*`)"));
    }
    let u = url::Url::parse(raw).map_err(|_| bad("not an absolute URI"))?;
    if u.fragment().is_some() || raw.contains('#') {
        return Err(bad("a redirect URI must not contain a fragment"));
    }
    let loopback = matches!(u.host_str(), Some("127.0.0.1") | Some("[::1]") | Some("localhost"));
    match u.scheme() {
        "https" if u.host_str().is_some() => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(bad("http is allowed only for loopback redirect URIs")),
        s if s.contains('.') => Ok(()),
        _ => Err(bad("use https, loopback http, or a private-use scheme such as com.example.app")),
    }
}

/// Client metadata that passed validation: everything a registration holds besides the id,
/// the secrets and the times.
#[derive(Debug, Clone)]
pub struct ValidMetadata {
    pub client_name: Option<String>,
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<GrantType>,
    pub token_endpoint_auth_method: AuthMethod,
    pub scope: Scope,
    pub pre_approved_scopes: Scope,
    pub access_token_lifetime: Option<u64>,
    pub refresh_token_lifetime: Option<u64>,
    pub jwks: Option<JwkSet>,
    pub jwt_bearer_issuers: Vec<TrustedIssuer>,
    pub dpop_bound_access_tokens: bool,
    pub custom_claims: Vec<crate::claims::ClaimRule>,
}

/// `jwks` and `jwt_bearer_issuers`, validated against the method and the grant types.
fn assertion_keys(
    jwks: Option<&serde_json::Value>,
    issuers: Option<&serde_json::Value>,
    method: AuthMethod,
    grant_types: &[GrantType],
) -> Result<(Option<JwkSet>, Vec<TrustedIssuer>)> {
    use crate::assertion::registration;
    let jwks = jwks.map(registration::jwk_set).transpose().map_err(|e| meta(format!("jwks: {e}")))?;
    match (method, &jwks) {
        (AuthMethod::PrivateKeyJwt, None) => {
            return Err(meta("jwks: required for token_endpoint_auth_method private_key_jwt (inline keys only)"));
        }
        (m, Some(_)) if m != AuthMethod::PrivateKeyJwt => {
            return Err(meta("jwks: only used with token_endpoint_auth_method private_key_jwt"));
        }
        _ => {}
    }
    let issuers = issuers.map(registration::trusted_issuers).transpose().map_err(meta)?.unwrap_or_default();
    if !issuers.is_empty() && !grant_types.contains(&GrantType::JwtBearer) {
        return Err(meta(format!(
            "jwt_bearer_issuers: requires the grant type {} in grant_types",
            GrantType::JwtBearer.as_str()
        )));
    }
    Ok((jwks, issuers))
}

impl ClientMetadata {
    /// Validates the metadata (RFC 7591 §2, with Gatehouse's bounds), filling in defaults.
    pub fn validate(self) -> Result<ValidMetadata> {
        let method = match self.token_endpoint_auth_method.as_deref().unwrap_or("client_secret_basic") {
            "client_secret_basic" => AuthMethod::ClientSecretBasic,
            "client_secret_post" => AuthMethod::ClientSecretPost,
            "none" => AuthMethod::None,
            "private_key_jwt" => AuthMethod::PrivateKeyJwt,
            _ => {
                return Err(meta(
                    "token_endpoint_auth_method: expected client_secret_basic, client_secret_post, private_key_jwt \
                     or none",
                ));
            }
        };
        let mut grant_types = Vec::new();
        for g in self.grant_types.unwrap_or_else(|| vec!["authorization_code".into()]) {
            let g = GrantType::parse(&g).ok_or_else(|| meta("grant_types: unknown grant type"))?;
            if !grant_types.contains(&g) {
                grant_types.push(g);
            }
        }
        if grant_types.is_empty() {
            return Err(meta("grant_types: at least one grant type is required"));
        }
        if method == AuthMethod::None && grant_types.contains(&GrantType::ClientCredentials) {
            return Err(meta(
                "grant_types: a public client (token_endpoint_auth_method none) cannot use client_credentials",
            ));
        }
        if self.redirect_uris.len() > 20 {
            return Err(OAuthError::InvalidRedirectUri("redirect_uris: at most 20".into()));
        }
        self.redirect_uris.iter().try_for_each(|u| validate_redirect_uri(u))?;
        if grant_types.contains(&GrantType::AuthorizationCode) && self.redirect_uris.is_empty() {
            return Err(OAuthError::InvalidRedirectUri(
                "redirect_uris: required for the authorization_code grant".into(),
            ));
        }
        let scope = Scope::parse(self.scope.as_deref().unwrap_or(""))
            .ok_or_else(|| meta("scope: malformed (RFC 6749 §3.3)"))?;
        if self.client_name.as_ref().is_some_and(|n| n.chars().count() > 200 || n.trim().is_empty()) {
            return Err(meta("client_name: 1 to 200 characters"));
        }
        if self.access_token_lifetime.is_some_and(|l| !(60..=86_400).contains(&l)) {
            return Err(meta("access_token_lifetime: seconds between 60 and 86400"));
        }
        if self.refresh_token_lifetime.is_some_and(|l| !(300..=crate::config::MAX_REFRESH_TOKEN_TTL).contains(&l)) {
            return Err(meta(format!(
                "refresh_token_lifetime: seconds between 300 and {}",
                crate::config::MAX_REFRESH_TOKEN_TTL
            )));
        }
        let pre_approved_scopes = Scope::parse(self.pre_approved_scopes.as_deref().unwrap_or(""))
            .ok_or_else(|| meta("pre_approved_scopes: malformed (RFC 6749 §3.3)"))?;
        if !pre_approved_scopes.is_subset(&scope) {
            return Err(meta("pre_approved_scopes: must be within scope"));
        }
        let (jwks, jwt_bearer_issuers) =
            assertion_keys(self.jwks.as_ref(), self.jwt_bearer_issuers.as_ref(), method, &grant_types)?;
        let custom_claims = self.custom_claims.unwrap_or_default();
        crate::claims::validate("custom_claims", &custom_claims).map_err(meta)?;
        Ok(ValidMetadata {
            client_name: self.client_name,
            redirect_uris: self.redirect_uris,
            grant_types,
            token_endpoint_auth_method: method,
            scope,
            pre_approved_scopes,
            access_token_lifetime: self.access_token_lifetime,
            refresh_token_lifetime: self.refresh_token_lifetime,
            jwks,
            jwt_bearer_issuers,
            dpop_bound_access_tokens: self.dpop_bound_access_tokens.unwrap_or(false),
            custom_claims,
        })
    }

    /// Validates the metadata and builds the client, generating its id and secret.
    pub fn into_client(self, now: i64) -> Result<(Client, Option<ClientSecret>)> {
        let m = self.validate()?;
        // Public and private_key_jwt clients have no secret.
        let secret =
            matches!(m.token_endpoint_auth_method, AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost)
                .then(ClientSecret::generate);
        let client = Client {
            client_id: crate::crypto::random_id(),
            client_name: m.client_name,
            secret_digest: secret.as_ref().map(ClientSecret::digest),
            redirect_uris: m.redirect_uris,
            grant_types: m.grant_types,
            token_endpoint_auth_method: m.token_endpoint_auth_method,
            scope: m.scope,
            pre_approved_scopes: m.pre_approved_scopes,
            access_token_lifetime: m.access_token_lifetime,
            refresh_token_lifetime: m.refresh_token_lifetime,
            created_at: now,
            previous_secret_digest: None,
            previous_secret_expires_at: None,
            version: 0,
            jwks: m.jwks,
            jwt_bearer_issuers: m.jwt_bearer_issuers,
            dpop_bound_access_tokens: m.dpop_bound_access_tokens,
            custom_claims: m.custom_claims,
            tokens_revoked_at: None,
        };
        Ok((client, secret))
    }
}

impl ValidMetadata {
    /// `client` with this metadata (id, secrets and times kept; a client that now authenticates
    /// with private_key_jwt loses its secrets).
    pub fn apply_to(self, client: &Client) -> Client {
        let client = if self.token_endpoint_auth_method == AuthMethod::PrivateKeyJwt {
            Client {
                secret_digest: None,
                previous_secret_digest: None,
                previous_secret_expires_at: None,
                ..client.clone()
            }
        } else {
            client.clone()
        };
        Client {
            client_name: self.client_name,
            redirect_uris: self.redirect_uris,
            grant_types: self.grant_types,
            token_endpoint_auth_method: self.token_endpoint_auth_method,
            scope: self.scope,
            pre_approved_scopes: self.pre_approved_scopes,
            access_token_lifetime: self.access_token_lifetime,
            refresh_token_lifetime: self.refresh_token_lifetime,
            jwks: self.jwks,
            jwt_bearer_issuers: self.jwt_bearer_issuers,
            dpop_bound_access_tokens: self.dpop_bound_access_tokens,
            custom_claims: self.custom_claims,
            ..client
        }
    }
}

/// The client's registered metadata as JSON (RFC 7591 §3.2.1), without any secret.
pub fn client_json(c: &Client) -> serde_json::Value {
    let mut v = json!({
        "client_id": c.client_id,
        "client_id_issued_at": c.created_at,
        "redirect_uris": c.redirect_uris,
        "grant_types": c.grant_types.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "token_endpoint_auth_method": c.token_endpoint_auth_method.as_str(),
        "scope": c.scope.to_string(),
    });
    if let Some(n) = &c.client_name {
        v["client_name"] = json!(n);
    }
    if let Some(l) = c.access_token_lifetime {
        v["access_token_lifetime"] = json!(l);
    }
    if let Some(l) = c.refresh_token_lifetime {
        v["refresh_token_lifetime"] = json!(l);
    }
    if !c.pre_approved_scopes.is_empty() {
        v["pre_approved_scopes"] = json!(c.pre_approved_scopes.to_string());
    }
    if let Some(jwks) = &c.jwks {
        v["jwks"] = json!(jwks);
    }
    if !c.jwt_bearer_issuers.is_empty() {
        v["jwt_bearer_issuers"] = json!(c.jwt_bearer_issuers);
    }
    if c.dpop_bound_access_tokens {
        v["dpop_bound_access_tokens"] = json!(true);
    }
    if !c.custom_claims.is_empty() {
        v["custom_claims"] = json!(c.custom_claims);
    }
    v
}

pub(super) async fn create(State(state): State<AppState>, req: Request<Body>) -> Result<Response> {
    let (parts, body) = req.into_parts();
    let actor = authorize(&state, &parts).await?;
    let metadata: ClientMetadata = json_body(body, |e| OAuthError::InvalidClientMetadata(e.into())).await?;
    let (client, secret) = metadata.into_client(state.clock.now())?;
    state.store.create_client(&client).await?;
    state.invalidate_client(&client.client_id);
    changed(&actor, "client_created", &client.client_id);
    let mut body = client_json(&client);
    if let Some(s) = secret {
        body["client_secret"] = json!(s.expose());
        body["client_secret_expires_at"] = json!(0);
    }
    Ok(tagged(json_no_store(StatusCode::CREATED, body), &client.tag()))
}

/// `GET /admin/clients?limit=&cursor=`: clients by id, a page at a time; `next` is the cursor
/// of the next page (`null` on the last).
pub(super) async fn list(State(state): State<AppState>, parts: Parts) -> Result<Response> {
    authorize(&state, &parts).await?;
    let page = super::paging::page_query(&parts, 256)?;
    let (clients, next) = state.store.list_clients(page.after.as_deref(), page.limit).await?;
    Ok(ok(json!({
        "clients": clients.iter().map(client_json).collect::<Vec<_>>(),
        "next": super::paging::next_cursor(next),
    })))
}

pub(super) async fn read(State(state): State<AppState>, Path(id): Path<String>, parts: Parts) -> Result<Response> {
    authorize(&state, &parts).await?;
    let client = state.store.get_client(&id).await?.ok_or_else(|| OAuthError::NotFound("no such client".into()))?;
    Ok(tagged(ok(client_json(&client)), &client.tag()))
}

pub(super) async fn delete(State(state): State<AppState>, Path(id): Path<String>, parts: Parts) -> Result<Response> {
    let actor = authorize(&state, &parts).await?;
    let precondition = super::versioned::IfMatch::of(&parts)?;
    if !super::versioned::remove::<Client>(state.store.as_ref(), &id, &precondition).await? {
        return Err(OAuthError::NotFound("no such client".into()));
    }
    state.invalidate_client(&id);
    changed(&actor, "client_deleted", &id);
    let revoked = super::revoke_all(&state, &actor, Some(&id), None).await?;
    tracing::info!(client_id = %id, revoked, "client deleted");
    let mut r = StatusCode::NO_CONTENT.into_response();
    crate::error::no_store(&mut r);
    Ok(r)
}
