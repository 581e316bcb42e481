//! Cursor paging of the admin listings of groups, members, users and resource servers:
//! `?limit=&cursor=` in, `"next"` out. The cursor is opaque to callers: base64url of the store
//! key of the last item listed (as for clients and tokens), so what lies before it is never read.
use axum::http::request::Parts;
use serde_json::Value;

use crate::{OAuthError, Result, http};

/// Default page size.
const DEFAULT_LIMIT: usize = 100;
/// Largest page size.
const MAX_LIMIT: usize = 1000;

/// A page request.
pub(super) struct PageQuery {
    pub limit: usize,
    /// The key after which the page starts.
    pub after: Option<String>,
}

fn invalid(msg: impl Into<String>) -> OAuthError {
    OAuthError::InvalidRequest(msg.into().into())
}

/// Reads `limit` (1 to 1000, default 100) and `cursor` (a `next` of the same listing, whose key
/// is at most `max_key` bytes) from the query string.
pub(super) fn page_query(parts: &Parts, max_key: usize) -> Result<PageQuery> {
    let p = http::query(parts)?;
    let limit = match p.get("limit") {
        None => DEFAULT_LIMIT,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| invalid(format!("limit: a whole number from 1 to {MAX_LIMIT}")))?,
    };
    let after = match p.get("cursor") {
        None => None,
        Some(c) => Some(
            crate::crypto::b64url_decode(c)
                .and_then(|b| String::from_utf8(b).ok())
                .filter(|k| !k.is_empty() && k.len() <= max_key)
                .ok_or_else(|| invalid("cursor: malformed (pass back the `next` of the same listing)"))?,
        ),
    };
    Ok(PageQuery { limit, after })
}

/// The `next` of a listing: the cursor of the following page, `null` on the last.
pub(super) fn next_cursor(next: Option<String>) -> Value {
    next.map_or(Value::Null, |k| Value::String(crate::crypto::b64url(k)))
}
