//! The seed's token-management operations (002_050589298000c9b6.txt, TokenManagementMBean):
//! `GET /admin/tokens` lists by client and/or end user with offset and limit,
//! `GET /admin/tokens/count` counts, `POST /admin/tokens/revoke` revokes. Listings show
//! metadata only, never a token.
use axum::body::Body;
use axum::extract::State;
use axum::http::Request;
use axum::http::request::Parts;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use super::{authorize, changed, json_body, ok};
use crate::model::{TokenKind, TokenRecord};
use crate::store::TokenQuery;
use crate::{AppState, OAuthError, Result, http};

/// Largest page (`limit`) of a listing.
pub const MAX_LIMIT: usize = 1000;

/// Largest `offset` of a listing (fits an i64 on every target).
pub const MAX_OFFSET: usize = if usize::BITS >= 64 { i64::MAX as usize } else { usize::MAX };

fn invalid(msg: impl Into<String>) -> OAuthError {
    OAuthError::InvalidRequest(msg.into().into())
}

fn parse_query(p: &http::Params) -> Result<TokenQuery> {
    let kind = TokenKind::parse(p.require("type")?).ok_or_else(|| invalid("type: expected access or refresh"))?;
    let q = TokenQuery {
        kind,
        client_id: p.get("client_id").map(str::to_owned),
        end_user: p.get("end_user").map(str::to_owned),
    };
    if q.client_id.is_none() && q.end_user.is_none() {
        return Err(invalid("give client_id, end_user, or both"));
    }
    Ok(q)
}

fn number(p: &http::Params, name: &'static str, default: usize, max: usize) -> Result<usize> {
    match p.get(name) {
        None => Ok(default),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= max)
            .ok_or_else(|| invalid(format!("{name}: a whole number up to {max}"))),
    }
}

/// A token's metadata as listed (never the token itself).
pub fn token_json(t: &TokenRecord) -> serde_json::Value {
    json!({
        "jti": t.id,
        "type": t.kind.as_str(),
        "client_id": t.client_id,
        "sub": t.subject,
        "end_user": t.end_user,
        "scope": t.scope.to_string(),
        "aud": t.audience,
        "grant_type": t.grant_type.as_str(),
        "iat": t.issued_at,
        "exp": t.expires_at,
    })
}

pub(super) async fn list(State(state): State<AppState>, parts: Parts) -> Result<Response> {
    authorize(&state, &parts).await?;
    let p = http::query(&parts)?;
    let q = parse_query(&p)?;
    // Bounded so that stores can hold it as an i64 (SQLite reads a negative OFFSET as 0, which
    // would answer the first page again) and `offset + limit` cannot overflow.
    let offset = number(&p, "offset", 0, MAX_OFFSET)?;
    let limit = number(&p, "limit", 100, MAX_LIMIT)?;
    let page = state.store.list_tokens(&q, state.clock.now(), offset, limit).await?;
    let next = (page.len() == limit && limit > 0).then(|| offset.saturating_add(limit));
    Ok(ok(json!({
        "tokens": page.iter().map(token_json).collect::<Vec<_>>(),
        "offset": offset,
        "limit": limit,
        "next_offset": next,
    })))
}

pub(super) async fn count(State(state): State<AppState>, parts: Parts) -> Result<Response> {
    authorize(&state, &parts).await?;
    let q = parse_query(&http::query(&parts)?)?;
    let n = state.store.count_tokens(&q, state.clock.now()).await?;
    Ok(ok(json!({ "count": n })))
}

/// `{"token": "<access token>"}` or `{"jti": "<id from a listing>"}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeRequest {
    token: Option<String>,
    jti: Option<String>,
}

pub(super) async fn revoke(State(state): State<AppState>, req: Request<Body>) -> Result<Response> {
    let (parts, body) = req.into_parts();
    let actor = authorize(&state, &parts).await?;
    let r: RevokeRequest = json_body(body, invalid).await?;
    let now = state.clock.now();
    let record = match (r.token, r.jti) {
        (Some(t), None) => crate::endpoints::introspect::active_token(&state, &t).await?,
        (None, Some(j)) if j.len() <= 128 => state.store.get_token(&j, now).await?.filter(|t| t.is_active(now)),
        _ => return Err(invalid("give exactly one of token or jti")),
    };
    let revoked = match &record {
        Some(rec) => crate::endpoints::revoke::revoke_record(&state, &actor.0, rec).await?,
        None => false,
    };
    if let (true, Some(rec)) = (revoked, &record) {
        changed(&actor, "token_revoked", rec.id.chars().take(22).collect::<String>());
    }
    Ok(ok(json!({ "revoked": revoked })))
}
