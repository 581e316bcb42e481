//! `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` (RFC 7523 §2.1, §3): a client
//! exchanges a JWT issued by an issuer it registered (`jwt_bearer_issuers`, inline keys) for an
//! access token for the end user the JWT names in `sub`.
//!
//! Checks, in order (each refusal is `invalid_grant`, RFC 7523 §3.1, with a description that
//! names the check and never echoes the assertion): the client registered the grant
//! (`unauthorized_client` otherwise); the JWT is well formed and signed with ES256 or RS256; its
//! `iss` is one of the client's issuers and that issuer is enabled; the header's `kid` selects
//! one of the issuer's keys, whose `alg` it matches, and the signature verifies; the claims
//! pass `assertion::check_claims` (`aud`, `exp`, `nbf`, `iat`, lifetime, `jti`); `sub` is an
//! existing, enabled user of this tenant; the scope and `resource` are decided as for the other
//! grants; finally the `jti` is recorded as used (`jwtbearer|<iss>|<jti>`, a conditional write:
//! of concurrent uses exactly one gets a token).
//!
//! No refresh token is issued: the client presents a new assertion from its issuer instead
//! (RFC 6749 §5.1 makes `refresh_token` optional; nothing in RFC 7521/7523 asks for one, and a
//! refresh token would outlive the issuer's decision about the user).
use crate::assertion::{self, Refusal, SKEW};
use crate::error::OAuthError;
use crate::http::Params;
use crate::model::{Client, GrantType, Scope, User};
use crate::{AppState, Result};

use super::{TokenResponse, decide_grant, ensure_grant_allowed, issue_access_token};

/// How the assertion is named in descriptions.
const WHAT: &str = "the assertion";

/// RFC 7523 §2.1 parameters (`assertion`, `scope`) plus RFC 8707 `resource`.
pub struct Request {
    assertion: String,
    scope: Option<Scope>,
    resource: Option<String>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("assertion", &"[redacted]")
            .field("scope", &self.scope)
            .field("resource", &self.resource)
            .finish()
    }
}

impl Request {
    /// Parses `assertion` (required, `invalid_request` when missing), `scope` and `resource`.
    pub fn parse(form: &Params) -> Result<Self> {
        let scope = crate::grants::parse_scope(form)?;
        Ok(Self { assertion: form.require("assertion")?.to_owned(), scope, resource: super::requested_resource(form)? })
    }
}

fn refused(r: Refusal) -> OAuthError {
    OAuthError::InvalidGrant(r.describe(WHAT).into())
}

/// Verifies the assertion against the client's trusted issuers: signature, issuer, claims.
fn verify(state: &AppState, client: &Client, token: &str) -> Result<assertion::Valid> {
    let parsed = assertion::parse(token).map_err(refused)?;
    if parsed.header.typ.as_deref().is_some_and(assertion::names_another_kind) {
        return Err(refused(Refusal::OtherKind));
    }
    let iss = parsed.claims.iss.as_deref().ok_or_else(|| refused(Refusal::MissingClaim("iss")))?;
    let issuer =
        client.jwt_bearer_issuers.iter().find(|i| i.issuer == iss).ok_or_else(|| refused(Refusal::UnknownIssuer))?;
    if !issuer.enabled {
        return Err(refused(Refusal::DisabledIssuer));
    }
    let key = issuer.jwks.select(parsed.header.kid.as_deref()).ok_or_else(|| refused(Refusal::UnknownKey))?;
    assertion::verify_signature(&parsed, key).map_err(refused)?;
    let [endpoint, issuer_id] = assertion::audiences(&state.config);
    assertion::check_claims(&parsed.claims, &[&endpoint, &issuer_id], state.clock.now()).map_err(refused)
}

/// RFC 7523 §3 item 2: the subject must be an existing, enabled user of this tenant.
async fn subject(state: &AppState, sub: &str) -> Result<User> {
    match state.store.get_user(sub).await? {
        Some(u) if u.enabled => Ok(u),
        Some(_) => Err(OAuthError::InvalidGrant("the assertion's subject is a disabled user".into())),
        None => Err(OAuthError::InvalidGrant("the assertion's subject is not a user of this tenant".into())),
    }
}

/// Verifies the assertion and issues an access token for its subject (no refresh token).
pub async fn issue(
    state: &AppState,
    client: &Client,
    req: Request,
    dpop: Option<&crate::dpop::Proof>,
) -> Result<TokenResponse> {
    ensure_grant_allowed(client, GrantType::JwtBearer)?;
    let valid = verify(state, client, &req.assertion)?;
    let user = subject(state, &valid.sub).await?;
    let grant = decide_grant(state, client, req.scope.as_ref(), req.resource.as_deref()).await?.bound_to(dpop);
    let replay_key = format!("jwtbearer|{}|{}", valid.iss, valid.jti);
    if !state.store.first_use(&replay_key, state.clock.now(), valid.exp.saturating_add(SKEW)).await? {
        return Err(refused(Refusal::Replayed));
    }
    let issued = issue_access_token(state, client, Some(&user), GrantType::JwtBearer, &grant).await?;
    Ok(TokenResponse::access_only(issued))
}
