//! `POST /revoke` (RFC 7009): a client revokes one of its own tokens. Unknown, expired or
//! malformed tokens answer 200 too (§2.2); another client's token is refused (§2.1).
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use crate::audit::{self, AuditEvent};
use crate::endpoints::{method_not_allowed, not_found};
use crate::error::{OAuthError, no_store};
use crate::{AppState, Result, http};

/// The revoke function's router.
pub fn router(state: AppState) -> Router {
    routes().fallback(not_found).with_state(state)
}

/// The `/revoke` route, for merging.
pub fn routes() -> Router<AppState> {
    super::cors::allow(Router::new().route("/revoke", post(handle).fallback(method_not_allowed("POST"))), "POST")
}

async fn handle(State(state): State<AppState>, req: Request<Body>) -> Response {
    revoke(&state, req).await.unwrap_or_else(IntoResponse::into_response)
}

async fn revoke(state: &AppState, req: Request<Body>) -> Result<Response> {
    let (parts, form) = http::read_form(req).await?;
    let client = http::authenticate_client(state, &parts.headers, &form).await?;
    let token = form.require("token")?;
    // token_type_hint is optional and only a hint (§2.1): every token is looked up the same way.
    if let Some(record) = revocable_token(state, token).await? {
        if record.client_id != client.client_id {
            // Another client's token: refused while active; a revoked one is nothing to revoke.
            if record.revoked_at.is_none() {
                return Err(OAuthError::UnauthorizedClient("the token was not issued to this client".into()));
            }
        } else if record.rotated_at.is_some() && record.revoked_at.is_none() {
            revoke_rotated(state, &client.client_id, &record, token).await?;
        } else {
            revoke_record(state, &client.client_id, &record).await?;
        }
    }
    let mut resp = StatusCode::OK.into_response();
    no_store(&mut resp);
    Ok(resp)
}

/// What revoking `token` acts on: the token if it is active, or a refresh token revoked already
/// (its family may still hold active tokens). A refresh token's family is revoked one token at a
/// time, the refresh token last (`grants::revoke_family`), so a revocation that failed part-way
/// (503) leaves it active and the retry runs again. A family left the other way round (its
/// refresh token revoked, an access token not: stopped part-way by a version that revoked in
/// listing order) is finished by a retry too (RFC 7009 §2.1). So is an unexpired refresh token
/// that was rotated: it is invalid already, but the grant it belongs to lives on in its
/// successors (a sign-out that presents the token another tab rotated meanwhile must end it).
pub async fn revocable_token(state: &AppState, token: &str) -> Result<Option<crate::model::TokenRecord>> {
    if token.split('.').count() == 3 || token.len() > 256 {
        return super::introspect::active_token(state, token).await;
    }
    let now = state.clock.now();
    let record = state.store.get_token(&crate::crypto::opaque_token_id(token), now).await?;
    let rotated = |r: &crate::model::TokenRecord| r.rotated_at.is_some() && r.expires_at > now;
    Ok(record.filter(|r| r.kind == crate::model::TokenKind::Refresh && (still_revocable(r, now) || rotated(r))))
}

/// Revokes the family of a rotated refresh token (RFC 7009 §2.1: the tokens of the same grant):
/// its successors too, by id, found through the responses sealed under the presented token
/// (the family's listing may lag behind the last rotation on DynamoDB).
async fn revoke_rotated(state: &AppState, by: &str, record: &crate::model::TokenRecord, token: &str) -> Result<()> {
    let Some(family) = &record.family else { return Ok(()) };
    let known = crate::grants::successor_ids(state, record, token).await?;
    if crate::grants::revoke_family(state, family, &known).await? > 0 {
        let jti = record.id.chars().take(22).collect();
        audit::record(AuditEvent::TokenRevoked { by: by.to_owned(), jti, client_id: record.client_id.clone() });
    }
    Ok(())
}

/// Whether revoking `record` can still change something: it is active, or it is a revoked
/// refresh token, whose family may still hold active access tokens ([`revocable_token`]), so a
/// retry must run the family's revocation again to finish it.
pub fn still_revocable(record: &crate::model::TokenRecord, now: i64) -> bool {
    record.is_active(now) || (record.kind == crate::model::TokenKind::Refresh && record.revoked_at.is_some())
}

/// Revokes a token. A refresh token takes its whole family (every access token of the same
/// grant) with it (RFC 7009 §2.1).
pub async fn revoke_record(state: &AppState, by: &str, record: &crate::model::TokenRecord) -> Result<bool> {
    let revoked = match (&record.kind, &record.family) {
        // The token itself and the access token issued with it by id too: the family's
        // listing may lag behind their issue (DynamoDB).
        (crate::model::TokenKind::Refresh, Some(f)) => {
            crate::grants::revoke_family(state, f, &record.with_sibling(state.clock.now())).await? > 0
        }
        _ => state.store.revoke_token(&record.id, state.clock.now()).await?,
    };
    if revoked {
        let jti = record.id.chars().take(22).collect();
        audit::record(AuditEvent::TokenRevoked { by: by.to_owned(), jti, client_id: record.client_id.clone() });
    }
    Ok(revoked)
}
