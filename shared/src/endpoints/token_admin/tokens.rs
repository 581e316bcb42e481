//! The seed's token-management operations (002_050589298000c9b6.txt, TokenManagementMBean):
//! `GET /admin/tokens` lists by client and/or end user with offset and limit, or with a cursor
//! (keyset pagination: what lies before the cursor is never read), `GET /admin/tokens/count`
//! counts, `POST /admin/tokens/revoke` revokes one token, `POST /admin/tokens/revoke-all` every
//! token of a client, an end user, or both. Listings show metadata only, never a token.
use axum::body::Body;
use axum::extract::State;
use axum::http::Request;
use axum::http::request::Parts;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use super::{authorize, changed, json_body, ok};
use crate::model::{TokenKind, TokenRecord};
use crate::store::{TokenQuery, parse_token_sort_key};
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

/// Longest decoded cursor (a sort key: an id and a little more).
const MAX_CURSOR: usize = 512;

/// A listing's opaque cursor: base64url of the store's sort key of the last item listed.
fn encode_cursor(key: &str) -> String {
    crate::crypto::b64url(key)
}

/// Decodes a cursor from [`encode_cursor`]; anything else is `invalid_request` naming `cursor`.
fn decode_cursor(raw: &str) -> Result<String> {
    crate::crypto::b64url_decode(raw)
        .and_then(|b| String::from_utf8(b).ok())
        .filter(|k| !k.is_empty() && k.len() <= MAX_CURSOR)
        .ok_or_else(|| invalid("cursor: malformed (pass back the `next` of a listing)"))
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
    let limit = number(&p, "limit", 100, MAX_LIMIT)?;
    if let Some(cursor) = p.get("cursor") {
        if p.has("offset") {
            return Err(invalid("give offset or cursor, not both"));
        }
        let after = decode_cursor(cursor)?;
        if parse_token_sort_key(&after).is_none() {
            return Err(invalid("cursor: malformed (pass back the `next` of a listing)"));
        }
        let (page, next) = state.store.list_tokens_after(&q, state.clock.now(), Some(&after), limit).await?;
        return Ok(ok(json!({
            "tokens": page.iter().map(token_json).collect::<Vec<_>>(),
            "offset": null,
            "limit": limit,
            "next_offset": null,
            "next": next.as_deref().map(encode_cursor),
        })));
    }
    // Bounded so that stores can hold it as an i64 (SQLite reads a negative OFFSET as 0, which
    // would answer the first page again) and `offset + limit` cannot overflow.
    let offset = number(&p, "offset", 0, MAX_OFFSET)?;
    let (page, next) = state.store.list_tokens(&q, state.clock.now(), offset, limit).await?;
    let full = next.is_some();
    let next = next.as_deref().map(encode_cursor);
    Ok(ok(json!({
        "tokens": page.iter().map(token_json).collect::<Vec<_>>(),
        "offset": offset,
        "limit": limit,
        "next_offset": full.then(|| offset.saturating_add(limit)),
        "next": next,
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

/// `POST /admin/tokens/revoke` → `{"revoked": bool}`. A refresh token takes its family; one
/// revoked already is revoked again, so a retry after a 503 finishes its family
/// (`revoke::still_revocable`).
pub(super) async fn revoke(State(state): State<AppState>, req: Request<Body>) -> Result<Response> {
    let (parts, body) = req.into_parts();
    let actor = authorize(&state, &parts).await?;
    let r: RevokeRequest = json_body(body, invalid).await?;
    let now = state.clock.now();
    let record = match (r.token, r.jti) {
        (Some(t), None) => crate::endpoints::revoke::revocable_token(&state, &t).await?,
        (None, Some(j)) if j.len() <= 128 => {
            state.store.get_token(&j, now).await?.filter(|t| crate::endpoints::revoke::still_revocable(t, now))
        }
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

/// `{"client_id": "…", "end_user": "…"}`: at least one.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeAllRequest {
    client_id: Option<String>,
    end_user: Option<String>,
}

/// `POST /admin/tokens/revoke-all`: revokes every active token (access and refresh) of a
/// client, of an end user, or of an end user at one client → `{"revoked": n}`.
pub(super) async fn revoke_all(State(state): State<AppState>, req: Request<Body>) -> Result<Response> {
    let (parts, body) = req.into_parts();
    let actor = authorize(&state, &parts).await?;
    let r: RevokeAllRequest = json_body(body, invalid).await?;
    let valid = |v: &Option<String>| v.as_ref().is_none_or(|v| !v.is_empty() && v.len() <= 256);
    if (r.client_id.is_none() && r.end_user.is_none()) || !valid(&r.client_id) || !valid(&r.end_user) {
        return Err(invalid("give client_id, end_user, or both (non-empty, at most 256 characters)"));
    }
    let revoked = super::revoke_all(&state, &actor, r.client_id.as_deref(), r.end_user.as_deref()).await?;
    Ok(ok(json!({ "revoked": revoked })))
}
