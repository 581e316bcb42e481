//! `POST /introspect` (RFC 7662): a resource server, authenticated as a confidential client,
//! asks whether a token is active. Anything not active answers exactly `{"active": false}`.
//!
//! The same call can apply the seed's validation checks ([`crate::validation`]) with the form
//! parameters `expected_audience`, `expected_end_user`, `expected_group` and `required_scope`: a
//! failed check also
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

/// Finds the active record of one of our refresh tokens (opaque, stored by `crypto::opaque_token_id`).
pub async fn active_refresh_token(state: &AppState, token: &str) -> Result<Option<TokenRecord>> {
    if token.len() > 256 {
        return Ok(None);
    }
    let now = state.clock.now();
    let record = state.store.get_token(&crate::crypto::opaque_token_id(token), now).await?;
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
    let proof = ProofParams::parse(&form)?;
    let mut v = validation::validate(state, token, Accept::AnyToken, &checks).await?;
    // RFC 9449 §6.2 leaves the proof to the resource server; one that forwards the client's
    // `DPoP` header (`dpop_proof`, with `htm` and `htu`) has Gatehouse check it here as at
    // `GET /validate`: the proof must be valid for the request, carry the token's `ath`, and be
    // made with the key the token is bound to. A failure is `active: false`.
    let mut dpop_failure = None;
    if let (Some(p), Some(r)) = (&proof, v.valid()) {
        let outcome = match p.verify(state, token, r).await {
            Ok(()) => "pass",
            Err(e) => e.code(),
        };
        v.checks.push(validation::CheckOutcome { check: "dpop", value: "RFC 9449".into(), outcome });
        dpop_failure = (outcome != "pass").then_some(outcome);
    }
    record_validation("introspect", Some(caller.client_id.clone()), &v);
    let valid = v.valid().filter(|_| dpop_failure.is_none());
    let Some(r) = valid else {
        let mut body = json!({ "active": false });
        let reason = dpop_failure.or(v.reason.map(validation::Reason::as_str));
        if include_reason && let Some(reason) = reason {
            body["reason"] = json!(reason);
        }
        return Ok(json_no_store(StatusCode::OK, body));
    };
    Ok(json_no_store(StatusCode::OK, active_body(state, r)))
}

/// `dpop_proof`, `htm`, `htu`: the client's DPoP proof and the request it was made for, as a
/// resource server received them (all three or none).
struct ProofParams {
    proof: String,
    htm: String,
    htu: String,
}

impl ProofParams {
    fn parse(form: &http::Params) -> Result<Option<Self>> {
        match (form.get("dpop_proof"), form.get("htm"), form.get("htu")) {
            (None, None, None) => Ok(None),
            (Some(proof), Some(htm), Some(htu)) => {
                Ok(Some(Self { proof: proof.to_owned(), htm: htm.to_owned(), htu: htu.to_owned() }))
            }
            _ => Err(OAuthError::invalid_request("give `dpop_proof`, `htm` and `htu` together, or none of them")),
        }
    }

    /// The proof as `GET /validate` checks it, for a token presented with the DPoP scheme.
    async fn verify(&self, state: &AppState, token: &str, r: &TokenRecord) -> Result<()> {
        let mut headers = axum::http::HeaderMap::new();
        let bad = |_| OAuthError::invalid_request("`dpop_proof` is not a valid header value");
        headers.insert("dpop", self.proof.parse().map_err(bad)?);
        headers.insert(axum::http::header::AUTHORIZATION, format!("DPoP {token}").parse().map_err(bad)?);
        crate::dpop::verify_for_resource(state, &self.htm, &self.htu, &headers, token, r.jkt.as_deref()).await.map(drop)
    }
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
