//! `grant_type=refresh_token` (RFC 6749 §6) with rotation (RFC 9700 §4.14.2): every use
//! returns a new refresh token in the same family, atomically with retiring the old one.
//! Presenting a rotated token again revokes the whole family, except within a short grace
//! window (`GATEHOUSE_REFRESH_GRACE`), where a retried or concurrent request gets the same new
//! tokens: they are kept encrypted under a key derived from the presented token, so only its
//! holder can read them back.
use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::audit::{self, AuditEvent};
use crate::dpop::Proof;
use crate::error::OAuthError;
use crate::http::Params;
use crate::model::{Client, GrantType, Scope, TokenKind, TokenRecord};
use crate::{AppState, Result};

use super::*;

/// RFC 6749 §6 parameters.
pub struct Request {
    refresh_token: String,
    scope: Option<Scope>,
    resource: Option<String>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("refresh_token", &"[redacted]")
            .field("scope", &self.scope)
            .field("resource", &self.resource)
            .finish()
    }
}

impl Request {
    /// Parses `refresh_token`, the optional narrower `scope` and the optional `resource`
    /// (RFC 8707 §2.2).
    pub fn parse(form: &Params) -> Result<Self> {
        let refresh_token = form.require("refresh_token")?.to_owned();
        let scope = crate::grants::parse_scope(form)?;
        Ok(Self { refresh_token, scope, resource: requested_resource(form)? })
    }
}

fn invalid(why: &'static str) -> OAuthError {
    OAuthError::InvalidGrant(why.into())
}

fn response_key(token: &str) -> Aes256Gcm {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(token.as_bytes()).expect("HMAC takes any key length");
    mac.update(b"gatehouse refresh successor response v1");
    Aes256Gcm::new_from_slice(&mac.finalize().into_bytes()).expect("32-byte key")
}

/// Encrypts the successor response under a key derived from the presented refresh token.
fn seal(token: &str, resp: &TokenResponse) -> Result<String> {
    let nonce = crate::crypto::random_bytes::<12>();
    let plain = serde_json::to_vec(resp).map_err(OAuthError::server)?;
    let ct = response_key(token).encrypt(&Nonce::from(nonce), plain.as_ref()).map_err(OAuthError::server)?;
    Ok(crate::crypto::b64url([nonce.as_slice(), &ct].concat()))
}

fn open(token: &str, sealed: &str) -> Option<TokenResponse> {
    let raw = crate::crypto::b64url_decode(sealed)?;
    if raw.len() < 12 {
        return None;
    }
    let (nonce, ct) = raw.split_at(12);
    let nonce: [u8; 12] = nonce.try_into().ok()?;
    let plain = response_key(token).decrypt(&Nonce::from(nonce), ct).ok()?;
    serde_json::from_slice(&plain).ok()
}

/// The ids of the tokens issued with and after the rotated `rec` in its family: the access
/// token issued with it, then those read from the successor responses sealed on each rotated
/// token (each readable with the token before it, the first with `token`, the one presented):
/// its rotation's access and refresh tokens, their successors, and so on to the family's
/// current refresh token. Each record is a consistent
/// read, so a reuse revokes the newest tokens even while the family's listing lags
/// ([`revoke_family`]).
///
/// The walk ends at a refresh token that is revoked (the family was revoked before: nothing
/// newer is active) or gone (expired), and after [`MAX_SUCCESSORS`] rotations; expired access
/// tokens are left out. A replay of a token more than that many rotations old relies on the
/// listing for the newest ones, which lags by seconds only.
pub(crate) async fn successor_ids(state: &AppState, rec: &TokenRecord, token: &str) -> Result<Vec<String>> {
    let now = state.clock.now();
    let mut ids: Vec<String> = rec.recent_sibling(now).into_iter().cloned().collect();
    let (mut sealed, mut token) = (rec.successor_response.clone(), token.to_owned());
    for _ in 0..MAX_SUCCESSORS {
        let Some(resp) = sealed.as_deref().and_then(|s| open(&token, s)) else { break };
        if let Some((jti, exp)) = jwt_id(&resp.access_token)
            && exp > now
        {
            ids.push(jti);
        }
        let Some(next) = resp.refresh_token else { break };
        let id = crate::crypto::opaque_token_id(&next);
        let Some(next_rec) = state.store.get_token(&id, now).await?.filter(|r| r.revoked_at.is_none()) else {
            break;
        };
        ids.push(id);
        sealed = next_rec.successor_response;
        token = next;
    }
    Ok(ids)
}

/// Rotations [`successor_ids`] follows at most (one consistent read each).
const MAX_SUCCESSORS: usize = 64;

/// The `jti` and `exp` of an access token this server signed (read without verifying: it
/// comes from a sealed response only this server wrote).
fn jwt_id(jwt: &str) -> Option<(String, i64)> {
    let claims = crate::crypto::b64url_decode(jwt.split('.').nth(1)?)?;
    let claims = serde_json::from_slice::<serde_json::Value>(&claims).ok()?;
    Some((claims["jti"].as_str()?.to_owned(), claims["exp"].as_i64()?))
}

/// A rotated token was presented: within the grace window, the same successor tokens;
/// otherwise refresh-token reuse, and the family is revoked.
async fn rotated_again(state: &AppState, rec: &TokenRecord, token: &str) -> Result<TokenResponse> {
    let now = state.clock.now();
    let grace = state.settings().await?.refresh_grace as i64;
    let within_grace = rec.rotated_at.is_some_and(|t| now - t <= grace);
    if within_grace && let Some(resp) = rec.successor_response.as_deref().and_then(|s| open(token, s)) {
        // Never hand out tokens revoked since the rotation (revocation, user deleted or
        // disabled): the successor must still be unrevoked and the user still active.
        let successor = match resp.refresh_token.as_deref() {
            Some(t) => state.store.get_token(&crate::crypto::opaque_token_id(t), now).await?,
            None => None,
        };
        if successor.is_none_or(|s| s.revoked_at.is_some()) {
            return Err(invalid("the refresh token was revoked"));
        }
        if let Some(u) = &rec.end_user {
            active_user(state, u, &rec.client_id, rec.grant_time()).await?;
        }
        return Ok(resp);
    }
    let family = rec.family.clone().unwrap_or_default();
    let successors = successor_ids(state, rec, token).await?;
    let revoked = revoke_family(state, &family, &successors).await?;
    audit::record(AuditEvent::RefreshReuseDetected { client_id: rec.client_id.clone(), family, revoked });
    Err(invalid("the refresh token was already used"))
}

/// Rotates the refresh token and issues a new access token (bound to the DPoP key of `dpop`,
/// if any).
pub async fn issue(state: &AppState, client: &Client, req: Request, dpop: Option<&Proof>) -> Result<TokenResponse> {
    ensure_grant_allowed(client, GrantType::RefreshToken)?;
    let settings = state.settings().await?;
    if !settings.refresh_tokens_enabled {
        // The tenant turned refresh tokens off (identity-domain settings): the grant is not
        // supported while it is off (RFC 6749 §5.2); the stored tokens stay as they are.
        return Err(OAuthError::UnsupportedGrantType);
    }
    let id = crate::crypto::opaque_token_id(&req.refresh_token);
    let rec = state.store.get_token(&id, state.clock.now()).await?;
    let rec = rec
        .filter(|r| r.kind == TokenKind::Refresh)
        .ok_or_else(|| invalid("the refresh token is invalid or expired"))?;
    if rec.client_id != client.client_id {
        return Err(invalid("the refresh token was issued to another client"));
    }
    // RFC 9449 §5: a public client's refresh token issued with a DPoP proof is bound to that
    // proof's key; it is used only with a proof made with the same key (checked before the
    // rotation grace, so the successor tokens are never handed to another key either).
    if let Some(bound) = &rec.jkt
        && !dpop.is_some_and(|p| crate::crypto::ct_eq(&p.jkt, bound))
    {
        return Err(invalid("the refresh token is bound to a DPoP key: send a DPoP proof made with that key"));
    }
    if rec.revoked_at.is_some() || client.revoked_with_all(rec.grant_time()) {
        return Err(invalid("the refresh token was revoked"));
    }
    // RFC 6749 §6: the same or a narrower scope; the new refresh token keeps the original.
    // Checked before the rotation grace too: a retry is answered as its first attempt only if
    // it is a valid request (§5.2).
    let scope = match req.scope {
        Some(s) if !s.is_subset(&rec.scope) => {
            return Err(OAuthError::InvalidScope("the requested scope exceeds the refresh token's scope".into()));
        }
        Some(s) => s,
        None => rec.scope.clone(),
    };
    same_resource(req.resource.as_deref(), &rec.audience)?;
    if rec.rotated_at.is_some() {
        return rotated_again(state, &rec, &req.refresh_token).await;
    }
    // The access token gets what the client and the resource server still allow: scopes
    // removed from either since the grant are dropped, and a deleted resource server ends it.
    let scope = still_allowed(state, client, &rec.audience, scope).await?;
    let username = rec.end_user.clone().ok_or_else(|| invalid("the refresh token has no resource owner"))?;
    let user = active_user(state, &username, &client.client_id, rec.grant_time()).await?;
    let family = rec.family.clone().unwrap_or_else(|| rec.id.clone());
    let granted_at = Some(rec.grant_time());
    let access_grant = Grant { audience: rec.audience.clone(), scope, jkt: None, granted_at }.bound_to(dpop);
    let access =
        sign_access_token(state, client, Some(&user), GrantType::RefreshToken, &access_grant, Some(&family)).await?;
    let keep = Grant { audience: rec.audience.clone(), scope: rec.scope.clone(), jkt: None, granted_at }.bound_to(dpop);
    let (new_token, new_rec) =
        new_refresh_token(state, &settings, client, &username, &keep, rec.grant_type, &access.record);
    let access_rec = access.record.clone();
    let resp = TokenResponse::with_refresh(access, Some(new_token));
    let sealed = seal(&req.refresh_token, &resp)?;
    if !state.store.rotate_refresh(&id, state.clock.now(), &sealed, &[new_rec, access_rec.clone()]).await? {
        // Someone rotated it first (a concurrent retry, or an attacker): decide as for reuse.
        let now = state.clock.now();
        let current = state.store.get_token(&id, now).await?.ok_or_else(|| invalid("the refresh token expired"))?;
        // Revoked meanwhile (by `/revoke`, a replayed code, an admin): no reuse to detect.
        if current.revoked_at.is_some() && current.rotated_at.is_none() {
            return Err(invalid("the refresh token was revoked"));
        }
        return rotated_again(state, &current, &req.refresh_token).await;
    }
    audit_issued(&access_rec);
    audit::record(AuditEvent::TokenRefreshed {
        client_id: client.client_id.clone(),
        username: Some(username),
        jti: access_rec.id,
        family,
    });
    Ok(resp)
}
