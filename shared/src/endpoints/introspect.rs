//! `POST /introspect` (RFC 7662): a resource server, authenticated as a confidential client,
//! asks whether a token is active. Anything not active answers exactly `{"active": false}`.
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;

use crate::audit::{self, AuditEvent};
use crate::endpoints::{json_no_store, method_not_allowed, not_found};
use crate::error::{ClientAuthAttempt, OAuthError};
use crate::keys::AccessClaims;
use crate::model::TokenRecord;
use crate::{AppState, Result, http};

/// The introspect function's router.
pub fn router(state: AppState) -> Router {
    routes().fallback(not_found).with_state(state)
}

/// The `/introspect` route, for merging.
pub fn routes() -> Router<AppState> {
    Router::new().route("/introspect", post(handle).fallback(method_not_allowed("POST")))
}

async fn handle(State(state): State<AppState>, req: Request<Body>) -> Response {
    introspect(&state, req).await.unwrap_or_else(IntoResponse::into_response)
}

/// Finds the active record of one of our access tokens: signature, issuer and expiry
/// checked, then the stored record (revocation, expiry, same client). `None` for anything else.
pub async fn active_access_token(state: &AppState, token: &str) -> Result<Option<(AccessClaims, TokenRecord)>> {
    let now = state.clock.now();
    let Some(claims) = crate::keys::verify_access_token(&*state.signer, token, &state.config.issuer, now).await else {
        return Ok(None);
    };
    let record = state.store.get_token(&claims.jti, now).await?;
    Ok(record.filter(|r| r.is_active(now) && r.client_id == claims.client_id).map(|r| (claims, r)))
}

/// Finds the active record of one of our refresh tokens (opaque, stored by digest).
pub async fn active_refresh_token(state: &AppState, token: &str) -> Result<Option<TokenRecord>> {
    if token.len() > 256 {
        return Ok(None);
    }
    let now = state.clock.now();
    let record = state.store.get_token(&crate::crypto::digest(token), now).await?;
    Ok(record.filter(|r| r.kind == crate::model::TokenKind::Refresh && r.is_active(now)))
}

/// The active record of any token of ours: a JWT access token or an opaque refresh token.
pub async fn active_token(state: &AppState, token: &str) -> Result<Option<TokenRecord>> {
    if token.split('.').count() == 3 {
        return Ok(active_access_token(state, token).await?.map(|(_, r)| r));
    }
    active_refresh_token(state, token).await
}

async fn introspect(state: &AppState, req: Request<Body>) -> Result<Response> {
    let (parts, form) = http::read_form(req).await?;
    let caller = http::authenticate_client(state, &parts.headers, &form).await?;
    if caller.is_public() {
        return Err(OAuthError::invalid_client("public clients cannot introspect tokens", ClientAuthAttempt::Body));
    }
    let token = form.require("token")?;
    let found = active_token(state, token).await?;
    audit::record(AuditEvent::TokenIntrospected {
        caller: caller.client_id.clone(),
        jti: found.as_ref().map(|r| r.id.chars().take(22).collect()),
        active: found.is_some(),
    });
    let Some(r) = found else {
        return Ok(json_no_store(StatusCode::OK, json!({ "active": false })));
    };
    let mut body = json!({
        "active": true,
        "client_id": r.client_id,
        "sub": r.subject,
        "aud": r.audience,
        "iss": state.config.issuer,
        "exp": r.expires_at,
        "iat": r.issued_at,
    });
    if r.kind == crate::model::TokenKind::Access {
        body["jti"] = json!(r.id);
        body["token_type"] = json!("Bearer");
    }
    if !r.scope.is_empty() {
        body["scope"] = json!(r.scope.to_string());
    }
    if let Some(u) = &r.end_user {
        body["username"] = json!(u);
    }
    Ok(json_no_store(StatusCode::OK, body))
}
