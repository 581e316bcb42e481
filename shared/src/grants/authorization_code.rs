//! `grant_type=authorization_code` (RFC 6749 §4.1.3) with PKCE (RFC 7636 §4.5-4.6). The code
//! is redeemed exactly once, atomically with storing the tokens; a second presentation is
//! `invalid_grant` and revokes every token issued from the code (RFC 6749 §4.1.2,
//! RFC 9700 §4.5).
use sha2::{Digest, Sha256};

use crate::audit::{self, AuditEvent};
use crate::dpop::Proof;
use crate::error::OAuthError;
use crate::http::Params;
use crate::model::{AuthorizationCode, Client, GrantType};
use crate::{AppState, Result};

use super::*;

/// RFC 6749 §4.1.3 parameters plus RFC 7636 `code_verifier`.
pub struct Request {
    code: String,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    resource: Option<String>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("code", &"[redacted]")
            .field("redirect_uri", &self.redirect_uri)
            .field("code_verifier", &self.code_verifier.as_ref().map(|_| "[redacted]"))
            .field("resource", &self.resource)
            .finish()
    }
}

/// RFC 7636 §4.1: 43-128 characters of `[A-Za-z0-9-._~]`.
pub fn valid_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

impl Request {
    /// Parses the parameters; a malformed verifier is `invalid_request`.
    pub fn parse(form: &Params) -> Result<Self> {
        let code = form.require("code")?;
        if code.len() > 256 {
            return Err(OAuthError::InvalidGrant("the authorization code is invalid or expired".into()));
        }
        let code_verifier = form.get("code_verifier").map(str::to_owned);
        if code_verifier.as_deref().is_some_and(|v| !valid_verifier(v)) {
            return Err(OAuthError::invalid_request("code_verifier is malformed (RFC 7636 §4.1)"));
        }
        Ok(Self {
            code: code.to_owned(),
            redirect_uri: form.get("redirect_uri").map(str::to_owned),
            code_verifier,
            resource: requested_resource(form)?,
        })
    }
}

fn invalid(why: &'static str) -> OAuthError {
    OAuthError::InvalidGrant(why.into())
}

/// RFC 7636 §4.6: `BASE64URL(SHA256(verifier)) == challenge`, compared in constant time.
fn pkce_holds(challenge: Option<&str>, verifier: Option<&str>) -> Result<()> {
    match (challenge, verifier) {
        (Some(c), Some(v)) if crate::crypto::ct_eq(&crate::crypto::b64url(Sha256::digest(v.as_bytes())), c) => Ok(()),
        (Some(_), Some(_)) => Err(invalid("the code_verifier does not match the code_challenge")),
        (Some(_), None) => Err(invalid("code_verifier is required for this code")),
        // RFC 9700 §2.1.1: a verifier for a code issued without a challenge is refused.
        (None, Some(_)) => Err(invalid("no code_challenge was sent with the authorization request")),
        (None, None) => Ok(()),
    }
}

fn check_redirect(code: &AuthorizationCode, sent: Option<&str>) -> Result<()> {
    match sent {
        Some(r) if r == code.redirect_uri => Ok(()),
        None if !code.redirect_uri_in_request => Ok(()),
        _ => Err(invalid("redirect_uri differs from the authorization request")),
    }
}

/// RFC 9449 §10: a code bound to a DPoP key (`dpop_jkt` at `/authorize`) is redeemed only with a
/// proof by that key; otherwise `invalid_grant`, and the code stays unused.
fn key_holds(bound: Option<&str>, dpop: Option<&Proof>) -> Result<()> {
    match (bound, dpop) {
        (None, _) => Ok(()),
        (Some(jkt), Some(p)) if p.jkt == jkt => Ok(()),
        (Some(_), Some(_)) => Err(invalid("the DPoP proof's key is not the one the authorization code is bound to")),
        (Some(_), None) => Err(invalid("the authorization code is bound to a DPoP key: a DPoP proof is required")),
    }
}

/// Revokes the tokens of a replayed code and answers `invalid_grant`. The tokens its redemption
/// issued are read back with the code (a consistent read: `code` may be the copy read before a
/// redemption that lost a race), so they are revoked even while the family's listing lags.
async fn replayed(state: &AppState, code: &AuthorizationCode) -> OAuthError {
    let issued = if code.issued.is_empty() {
        match state.store.get_code(&code.id, state.clock.now()).await {
            Ok(c) => c.map(|c| c.issued).unwrap_or_default(),
            Err(e) => return e.into(),
        }
    } else {
        code.issued.clone()
    };
    let revoked = match revoke_family(state, &code.family, &issued).await {
        Ok(n) => n,
        Err(e) => return e,
    };
    audit::record(AuditEvent::CodeReplayed { client_id: code.client_id.clone(), family: code.family.clone(), revoked });
    invalid("the authorization code was already used")
}

/// Exchanges the code for an access token and (if the client has the grant) a refresh token.
pub async fn issue(state: &AppState, client: &Client, req: Request, dpop: Option<&Proof>) -> Result<TokenResponse> {
    ensure_grant_allowed(client, GrantType::AuthorizationCode)?;
    let id = crate::crypto::opaque_token_id(&req.code);
    let code = state.store.get_code(&id, state.clock.now()).await?;
    let code = code.ok_or_else(|| invalid("the authorization code is invalid or expired"))?;
    if code.client_id != client.client_id {
        return Err(invalid("the authorization code was issued to another client"));
    }
    check_redirect(&code, req.redirect_uri.as_deref())?;
    pkce_holds(code.code_challenge.as_deref(), req.code_verifier.as_deref())?;
    key_holds(code.dpop_jkt.as_deref(), dpop)?;
    // A replay revokes the code's tokens only when its sender proves what the first redemption
    // needed (the verifier, the DPoP key): else anyone who saw a used code (a log, a referrer)
    // and knows a public client's id could revoke its user's tokens at will (RFC 9700 §4.5).
    if code.consumed_at.is_some() {
        return Err(replayed(state, &code).await);
    }
    if client.revoked_with_all(code.issued_at) {
        return Err(invalid("the authorization code was revoked with every token of the client"));
    }
    same_resource(req.resource.as_deref(), &code.audience)?;
    // The user's cutoffs against the sign-in: one recorded after it covers a code issued later
    // (a revocation racing with the consent approval). A client's cutoff covers the codes issued
    // until then, as documented; a sign-in under way when it was recorded goes on. The tokens
    // carry the code's issue as their grant time: every cutoff of the user made since is later.
    let user = active_user(state, &code.username, &client.client_id, code.grant_time()).await?;
    let scope = still_allowed(state, client, &code.audience, code.scope.clone()).await?;
    let grant =
        Grant { audience: code.audience.clone(), scope, jkt: None, granted_at: Some(code.issued_at) }.bound_to(dpop);
    let access =
        sign_access_token(state, client, Some(&user), GrantType::AuthorizationCode, &grant, Some(&code.family)).await?;
    let settings = state.settings().await?;
    let refresh = gets_refresh_token(client, &settings).then(|| {
        new_refresh_token(
            state,
            &settings,
            client,
            &code.username,
            &grant,
            GrantType::AuthorizationCode,
            &access.record,
        )
    });
    let mut records = vec![access.record.clone()];
    records.extend(refresh.iter().map(|(_, r)| r.clone()));
    if !state.store.redeem_code(&id, state.clock.now(), &records).await? {
        // Lost a race with another redemption of the same code: that is a replay too.
        return Err(replayed(state, &code).await);
    }
    audit_issued(&access.record);
    Ok(TokenResponse::with_refresh(access, refresh.map(|(t, _)| t)))
}
