//! `POST /introspect` (RFC 7662): a resource server, authenticated as a confidential client,
//! asks whether a token is active. Anything not active answers exactly `{"active": false}`.
//!
//! The same call can apply the seed's validation checks ([`crate::validation`]) with the form
//! parameters `expected_end_user`, `expected_group` and `required_scope`: a failed check also
//! answers `{"active": false}`, and a caller that sends `include_reason=true` gets
//! `{"active": false, "reason": "<code>"}` (an extension: RFC 7662 §2.2 has no reason). The
//! reason names only the token's state or the failed check, never data from the token.
//!
//! The introspect function also serves `GET /validate` ([`super::validate`]).
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
use crate::validation::{self, Accept, Checks, Validation};
use crate::{AppState, Result, http};

/// The introspect function's router.
pub fn router(state: AppState) -> Router {
    routes().fallback(not_found).with_state(state)
}

/// The introspect function's routes, for merging: `/introspect` and `/validate`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/introspect", post(handle).fallback(method_not_allowed("POST")))
        .merge(super::validate::routes())
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
    let checks = Checks::parse(&form)?;
    let include_reason = match form.get("include_reason") {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(OAuthError::invalid_request("`include_reason` must be true or false")),
    };
    let v = validation::validate(state, token, Accept::AnyToken, &checks).await?;
    record_validation("introspect", Some(caller.client_id.clone()), &v);
    let Some(r) = v.valid() else {
        let mut body = json!({ "active": false });
        if include_reason && let Some(reason) = v.reason {
            body["reason"] = json!(reason.as_str());
        }
        return Ok(json_no_store(StatusCode::OK, body));
    };
    Ok(json_no_store(StatusCode::OK, active_body(state, r)))
}

/// The audit line of one validation (EDR 20006), at `endpoint`, by `caller` when known.
pub(crate) fn record_validation(endpoint: &'static str, caller: Option<String>, v: &Validation) {
    audit::record(AuditEvent::TokenIntrospected {
        endpoint,
        caller,
        jti: v.jti.clone(),
        client_id: v.client_id.clone(),
        end_user: v.end_user.clone(),
        active: v.reason.is_none(),
        reason: v.reason.map(validation::Reason::as_str),
        checks: v.checks.clone(),
    });
}

/// The RFC 7662 §2.2 members of an active token (also `GET /validate`'s 200 body).
pub fn active_body(state: &AppState, r: &TokenRecord) -> serde_json::Value {
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
        // RFC 9449 §6.2: a DPoP-bound token is of type DPoP.
        body["token_type"] = json!(if r.jkt.is_some() { "DPoP" } else { "Bearer" });
    }
    if let Some(jkt) = &r.jkt {
        // RFC 9449 §6.2 (RFC 7800 §3.1): the key the token is bound to.
        body["cnf"] = json!({ "jkt": jkt });
    }
    if !r.scope.is_empty() {
        body["scope"] = json!(r.scope.to_string());
    }
    if let Some(u) = &r.end_user {
        body["username"] = json!(u);
    }
    body
}
