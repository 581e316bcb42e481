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
    Router::new().route("/revoke", post(handle).fallback(method_not_allowed("POST")))
}

async fn handle(State(state): State<AppState>, req: Request<Body>) -> Response {
    revoke(&state, req).await.unwrap_or_else(IntoResponse::into_response)
}

async fn revoke(state: &AppState, req: Request<Body>) -> Result<Response> {
    let (parts, form) = http::read_form(req).await?;
    let client = http::authenticate_client(state, &parts.headers, &form).await?;
    let token = form.require("token")?;
    // token_type_hint is optional and only a hint (§2.1): every token is looked up the same way.
    if let Some(record) = super::introspect::active_token(state, token).await? {
        if record.client_id != client.client_id {
            return Err(OAuthError::UnauthorizedClient("the token was not issued to this client".into()));
        }
        revoke_record(state, &client.client_id, &record).await?;
    }
    let mut resp = StatusCode::OK.into_response();
    no_store(&mut resp);
    Ok(resp)
}

/// Revokes a token. A refresh token takes its whole family (every access token of the same
/// grant) with it (RFC 7009 §2.1).
pub async fn revoke_record(state: &AppState, by: &str, record: &crate::model::TokenRecord) -> Result<bool> {
    let revoked = match (&record.kind, &record.family) {
        (crate::model::TokenKind::Refresh, Some(f)) => crate::grants::revoke_family(state, f).await? > 0,
        _ => state.store.revoke_token(&record.id, state.clock.now()).await?,
    };
    if revoked {
        let jti = record.id.chars().take(22).collect();
        audit::record(AuditEvent::TokenRevoked { by: by.to_owned(), jti, client_id: record.client_id.clone() });
    }
    Ok(revoked)
}
