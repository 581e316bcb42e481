//! `GET /validate`: STS-style token validation for resource servers that can only send a GET
//! (the session manager of 000_661aebbf905003eb.txt). The resource server forwards the access
//! token it received as `Authorization: Bearer <token>` (RFC 6750 §2.1) and may ask the seed's
//! checks ([`crate::validation`]) as query parameters: `expected_audience`, `expected_end_user`,
//! `expected_group`, `required_scope`.
//!
//! - valid: 200 with the introspection members (`sub`, `username`, `client_id`, `scope`, `exp`,
//!   `aud`, `iat`, `iss`, `jti`, `token_type`);
//! - no bearer token: 401 with a bare `Bearer realm="gatehouse"` challenge (RFC 6750 §3.1);
//! - not valid (malformed, foreign, expired, revoked, a refresh token, issued for another
//!   resource server than `expected_audience`, RFC 9068 §4): 401 `invalid_token`;
//! - valid but not for this request (a missing `required_scope`, another end user or group):
//!   403 `insufficient_scope`, naming the `scope` when a scope is missing;
//! - a DPoP-bound token (RFC 9449 §7): valid only as `Authorization: DPoP <token>` with the
//!   client's `DPoP` proof forwarded and `htm`/`htu` naming the client's request to the
//!   resource server; refusals are 401 with a `DPoP` challenge (`invalid_token`,
//!   `invalid_dpop_proof`, or `use_dpop_nonce` with a `DPoP-Nonce`).
//!
//! The caller does not authenticate: the token is the credential, as at any resource server,
//! and the answer tells only what the token's holder can already read in the JWT (plus whether
//! it is still active). Every answer carries `Cache-Control: no-store`.
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::introspect::{active_body, record_validation};
use crate::endpoints::{json_no_store, method_not_allowed};
use crate::error::OAuthError;
use crate::model::TokenRecord;
use crate::validation::{self, Accept, CheckOutcome, Checks};
use crate::{AppState, Result, dpop, http};

/// The `/validate` route (served by the introspect function), for merging.
pub fn routes() -> Router<AppState> {
    Router::new().route("/validate", get(handle).fallback(method_not_allowed("GET")))
}

async fn handle(State(state): State<AppState>, req: Request<Body>) -> Response {
    validate(&state, req).await.unwrap_or_else(IntoResponse::into_response)
}

async fn validate(state: &AppState, req: Request<Body>) -> Result<Response> {
    let (parts, _) = req.into_parts();
    let query = http::query(&parts)?;
    let checks = Checks::parse(&query)?;
    let token = bearer_token(&parts)?;
    let mut v = validation::validate(state, token, Accept::AccessOnly, &checks).await?;
    let dpop = match v.valid() {
        Some(r) => dpop_check(state, &parts, &query, token, r).await,
        None => None,
    };
    if let Some(outcome) = &dpop {
        let outcome = outcome.as_ref().map_or_else(OAuthError::code, |()| "pass");
        v.checks.push(CheckOutcome { check: "dpop", value: "RFC 9449".into(), outcome });
    }
    record_validation("validate", None, &v);
    if let Some(Err(e)) = dpop {
        return Err(e);
    }
    match (v.valid(), v.reason) {
        (Some(r), _) => Ok(json_no_store(StatusCode::OK, active_body(state, r))),
        (None, reason) => Err(reason.unwrap_or(validation::Reason::Invalid).error(checks.required_scope.as_ref())),
    }
}

/// RFC 9449 §7 for a valid token (`dpop::verify_for_resource`): `None` when DPoP plays no part
/// (an unbound token presented as `Bearer`). A bound token needs the `DPoP` scheme and the
/// client's `DPoP` header forwarded, with the query parameters `htm` and `htu` naming the
/// method and URI of the client's request to the resource server (the proof was made for them).
async fn dpop_check(
    state: &AppState,
    parts: &Parts,
    query: &http::Params,
    token: &str,
    r: &TokenRecord,
) -> Option<Result<()>> {
    let scheme = dpop::presented_token(&parts.headers).map(|(s, _)| s);
    if r.jkt.is_none() && scheme != Some(dpop::Scheme::Dpop) {
        return None;
    }
    let (htm, htu) = (query.get("htm"), query.get("htu"));
    if r.jkt.is_some() && scheme == Some(dpop::Scheme::Dpop) && (htm.is_none() || htu.is_none()) {
        return Some(Err(OAuthError::invalid_request(
            "`htm` and `htu` (the method and URI of the request to the resource server) are required with a \
             DPoP-bound token",
        )));
    }
    let (htm, htu) = (htm.unwrap_or_default(), htu.unwrap_or_default());
    Some(dpop::verify_for_resource(state, htm, htu, &parts.headers, token, r.jkt.as_deref()).await.map(drop))
}

/// The token of `Authorization: Bearer <token>` (RFC 6750 §2.1) or `Authorization: DPoP
/// <token>` (RFC 9449 §7.1; the scheme is case-insensitive). No header, another scheme or an empty token: `BearerTokenRequired`;
/// several Authorization headers: `invalid_request`. Tokens in the query (RFC 6750 §2.3) are
/// not accepted: URLs end up in logs.
fn bearer_token(parts: &Parts) -> Result<&str> {
    let mut values = parts.headers.get_all(header::AUTHORIZATION).iter();
    let (value, None) = (values.next(), values.next()) else {
        return Err(OAuthError::invalid_request("send exactly one Authorization header"));
    };
    let token = value
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("dpop"))
        .map(|(_, t)| t.trim())
        .filter(|t| !t.is_empty());
    token.ok_or(OAuthError::BearerTokenRequired)
}
