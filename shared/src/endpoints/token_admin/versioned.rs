//! Read-modify-write of the admin API's versioned objects (clients, users, resource servers),
//! and their entity tags.
//!
//! Each stored object counts its updates (`version`), and the store writes an update only if
//! the object is still at the version it was read at. A `PATCH` that loses that race is redone
//! from a fresh read (the patch applies as well to the newer object), so concurrent changes of
//! different members never overwrite each other.
//!
//! Two admins editing the *same* member need more: the second must learn that the object changed
//! since they read it. So `GET`, `POST` (create) and `PATCH` answer a strong entity tag of the
//! object (`ETag`, RFC 9110 §8.8.3): a digest of its stored record, which carries its version, its
//! creation time and, for users and clients, a random salt or id, so a tag names one state of one
//! object (a resource server created again with the same content in the same second has the same
//! representation, and the same tag). A `PATCH` with `If-Match` (RFC 9110 §13.1.1) is
//! written only if the object is still in a state it names; otherwise 412 `precondition_failed`,
//! and nothing changes. A `DELETE` with `If-Match` deletes only such a state ([`remove`]).
//! Other admin calls refuse `If-Match` (400) rather than ignore it.
use std::time::Duration;

use async_trait::async_trait;
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, header};
use axum::response::Response;

use crate::model::{Client, ResourceServer, User};
use crate::store::{Store, StoreError, StoreResult};
use crate::{OAuthError, Result};

/// How many times a versioned update is redone before answering 409: each round lost to a
/// write that succeeded, so only a storm of writes to one object reaches this.
pub(super) const UPDATE_ATTEMPTS: u32 = 50;

/// An object the store updates on condition of its version.
#[async_trait]
pub(super) trait Versioned: Clone + PartialEq + Send + Sync + Sized + serde::Serialize {
    fn version(&self) -> u64;
    fn set_version(&mut self, v: u64);
    /// Reads the object named `key`.
    async fn read(store: &dyn Store, key: &str) -> StoreResult<Option<Self>>;
    /// Replaces it if it is still at `read_version` (the store's conditional update).
    async fn write(&self, store: &dyn Store, read_version: u64) -> StoreResult<bool>;
    /// Deletes the object named `key`, if it is still at `version` when one is given (the
    /// store's conditional delete).
    async fn delete(store: &dyn Store, key: &str, version: Option<u64>) -> StoreResult<bool>;
    /// Its entity tag (the opaque part): [`tag_of`] its stored record.
    fn tag(&self) -> String {
        tag_of(self)
    }
}

/// The opaque part of the entity tag of `state`: the first 22 base64url characters (132 bits)
/// of the SHA-256 of its canonical JSON.
///
/// Canonical, because a record read back from DynamoDB is not always the one written: a
/// number is stored as its decimal text and read back as an integer when it is one, so a
/// `1.0` (or `-0.0`) in a user's attributes or a claim value returns as `1` (or `0`). Whole
/// floats are hashed as those integers, so create, `PATCH` and a later `GET` agree.
pub(super) fn tag_of(state: &impl serde::Serialize) -> String {
    fn canonical(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Number(n) => {
                if let Some(f) = n.as_f64().filter(|_| n.is_f64())
                    && f.fract() == 0.0
                    && f >= i64::MIN as f64
                    && f < i64::MAX as f64
                {
                    *n = serde_json::Number::from(f as i64);
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(canonical),
            serde_json::Value::Object(members) => members.values_mut().for_each(canonical),
            _ => {}
        }
    }
    let mut value = serde_json::to_value(state).expect("a stored record serialises");
    canonical(&mut value);
    crate::crypto::digest(&value.to_string())[..22].to_owned()
}

macro_rules! versioned {
    ($($t:ty: $get:ident, $update:ident, $delete:ident;)*) => {$(
        #[async_trait]
        impl Versioned for $t {
            fn version(&self) -> u64 {
                self.version
            }
            fn set_version(&mut self, v: u64) {
                self.version = v;
            }
            async fn read(store: &dyn Store, key: &str) -> StoreResult<Option<Self>> {
                store.$get(key).await
            }
            async fn write(&self, store: &dyn Store, read_version: u64) -> StoreResult<bool> {
                store.$update(self, read_version).await
            }
            async fn delete(store: &dyn Store, key: &str, version: Option<u64>) -> StoreResult<bool> {
                store.$delete(key, version).await
            }
        }
    )*};
}
versioned! {
    Client: get_client, update_client, delete_client;
    User: get_user, update_user, delete_user;
    ResourceServer: get_resource_server, update_resource_server, delete_resource_server;
}

/// The `If-Match` preconditions of a request (RFC 9110 §13.1.1).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum IfMatch {
    /// No `If-Match`: the update applies to whatever version is current.
    Absent,
    /// `If-Match: *`: any current version (the object exists).
    Any,
    /// The strong entity tags' opaque parts; weak tags (`W/"…"`) are kept out, as the strong
    /// comparison `If-Match` requires never matches them (RFC 9110 §8.8.3.2).
    Tags(Vec<String>),
}

impl IfMatch {
    /// Reads every `If-Match` field line: `*`, or a comma-separated list of entity tags
    /// (RFC 9110 §8.8.3, §5.6.1; empty elements are allowed). A field that is present but lists
    /// nothing matches nothing. A value of any other form is 400 `invalid_request`: a
    /// precondition that cannot be read must not be ignored.
    pub(super) fn of(parts: &Parts) -> Result<Self> {
        let bad = || OAuthError::invalid_request("If-Match: `*` or a list of entity tags such as \"3\"");
        let mut present = false;
        let (mut any, mut tags, mut items) = (false, Vec::new(), 0);
        for value in parts.headers.get_all(header::IF_MATCH) {
            present = true;
            let mut rest = value.to_str().map_err(|_| bad())?;
            loop {
                rest = rest.trim_start_matches([' ', '\t', ',']);
                if rest.is_empty() {
                    break;
                }
                items += 1;
                if let Some(r) = rest.strip_prefix('*') {
                    any = true;
                    rest = r;
                } else {
                    let (weak, r) = match rest.strip_prefix("W/") {
                        Some(r) => (true, r),
                        None => (false, rest),
                    };
                    let r = r.strip_prefix('"').ok_or_else(bad)?;
                    let close = r.find('"').ok_or_else(bad)?;
                    // etagc = %x21 / %x23-7E / obs-text; `to_str` kept the value visible ASCII
                    // and spaces.
                    let opaque = &r[..close];
                    if opaque.contains([' ', '\t']) {
                        return Err(bad());
                    }
                    if !weak {
                        tags.push(opaque.to_owned());
                    }
                    rest = &r[close + 1..];
                }
                // Each element ends at a comma or the end of the line.
                let after = rest.trim_start_matches([' ', '\t']);
                if !(after.is_empty() || after.starts_with(',')) {
                    return Err(bad());
                }
                rest = after;
            }
        }
        match (present, any) {
            (false, _) => Ok(Self::Absent),
            // `*` with anything else is no field value RFC 9110 allows.
            (true, true) if items == 1 => Ok(Self::Any),
            (true, true) => Err(bad()),
            (true, false) => Ok(Self::Tags(tags)),
        }
    }

    /// `Ok` if an object whose tag is `tag` meets the precondition, else 412
    /// `precondition_failed`.
    pub(super) fn check(&self, tag: &str) -> Result<()> {
        match self {
            Self::Absent | Self::Any => Ok(()),
            // Strong comparison: the opaque tags are equal character by character.
            Self::Tags(tags) if tags.iter().any(|t| t == tag) => Ok(()),
            Self::Tags(_) => Err(OAuthError::PreconditionFailed(
                "the object changed since it was read (If-Match); read it again".into(),
            )),
        }
    }

    /// This precondition, once met by a state whose own tag is `tag`, as a precondition on that
    /// state alone: for an object whose entity tag covers more than its record (a user's groups).
    pub(super) fn pinned(&self, tag: String) -> Self {
        match self {
            Self::Tags(_) => Self::Tags(vec![tag]),
            other => other.clone(),
        }
    }
}

/// Whether the call `parts` routes to honours `If-Match`: a `PATCH` or `DELETE` of a client,
/// user or resource server.
pub(super) fn conditional(parts: &Parts) -> bool {
    let segments: Vec<&str> = parts.uri.path().split('/').collect();
    (parts.method == Method::PATCH || parts.method == Method::DELETE)
        && matches!(segments.as_slice(), ["", "admin", "clients" | "users" | "resource-servers", _])
}

/// `r` with the entity tag whose opaque part is `tag` (base64url: a valid header value).
pub(super) fn tagged(mut r: Response, tag: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(&format!("\"{tag}\"")) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r
}

/// Reads the object `key` (none is `gone`, 404), checks `precondition` on it, lets `change`
/// derive its next state, and writes that on condition that nobody changed the object
/// meanwhile; otherwise starts over from a fresh read, and after [`UPDATE_ATTEMPTS`] rounds
/// answers 409. An unchanged object is not written (`false`).
pub(super) async fn modify<T: Versioned, X>(
    store: &dyn Store,
    key: &str,
    gone: impl Fn() -> OAuthError,
    precondition: &IfMatch,
    mut change: impl FnMut(&T) -> Result<(T, X)>,
) -> Result<(T, X, bool)> {
    for attempt in 0..UPDATE_ATTEMPTS {
        let current = T::read(store, key).await?.ok_or_else(&gone)?;
        precondition.check(&current.tag())?;
        let (mut next, extra) = change(&current)?;
        if next == current {
            return Ok((next, extra, false));
        }
        next.set_version(current.version() + 1);
        match next.write(store, current.version()).await {
            Ok(true) => return Ok((next, extra, true)),
            Ok(false) => return Err(gone()),
            Err(StoreError::Conflict) => conflict_backoff(attempt).await,
            Err(e) => return Err(e.into()),
        }
    }
    Err(OAuthError::Conflict("the object is being changed by other requests; retry".into()))
}

/// Deletes the object `key` under `precondition` (RFC 9110 §9.3.5, §13.1.1): without `If-Match`
/// whatever its state; otherwise it is read, the precondition checked on it, and the deletion
/// made on condition that it is still at the version read. A change made in between is read
/// and checked again (a tag the object no longer has is 412 `precondition_failed`, and nothing
/// is deleted). `false`: there is no such object (404 for the caller, as without `If-Match`).
pub(super) async fn remove<T: Versioned>(store: &dyn Store, key: &str, precondition: &IfMatch) -> Result<bool> {
    if *precondition == IfMatch::Absent {
        return Ok(T::delete(store, key, None).await?);
    }
    for attempt in 0..UPDATE_ATTEMPTS {
        let Some(current) = T::read(store, key).await? else { return Ok(false) };
        precondition.check(&current.tag())?;
        match T::delete(store, key, Some(current.version())).await {
            Ok(deleted) => return Ok(deleted),
            Err(StoreError::Conflict) => conflict_backoff(attempt).await,
            Err(e) => return Err(e.into()),
        }
    }
    Err(OAuthError::Conflict("the object is being changed by other requests; retry".into()))
}

/// Waits before another round of a versioned update that met a newer version: a few
/// milliseconds, growing with the attempt, with jitter so racing writers spread out.
async fn conflict_backoff(attempt: u32) {
    let jitter = u64::from(crate::crypto::random_bytes::<1>()[0] % 8);
    tokio::time::sleep(Duration::from_millis(u64::from(attempt.min(8)) + jitter)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(values: &[&str]) -> Result<IfMatch> {
        let mut req = axum::http::Request::builder();
        for v in values {
            req = req.header(header::IF_MATCH, *v);
        }
        IfMatch::of(&req.body(()).unwrap().into_parts().0)
    }

    fn tags(t: &[&str]) -> IfMatch {
        IfMatch::Tags(t.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn if_match_values() {
        assert_eq!(parse(&[]).unwrap(), IfMatch::Absent);
        assert_eq!(parse(&["*"]).unwrap(), IfMatch::Any);
        assert_eq!(parse(&[" * "]).unwrap(), IfMatch::Any);
        assert_eq!(parse(&["\"3\""]).unwrap(), tags(&["3"]));
        assert_eq!(parse(&["\"3\", W/\"4\"", "\"x\""]).unwrap(), tags(&["3", "x"]));
        assert_eq!(parse(&["\"a,b\" ,, \"\""]).unwrap(), tags(&["a,b", ""]), "a comma inside a tag; empty elements");
        assert_eq!(parse(&["W/\"4\""]).unwrap(), tags(&[]), "a weak tag never matches");
        assert_eq!(parse(&[""]).unwrap(), tags(&[]), "present, listing nothing: matches nothing");
        assert_eq!(parse(&[" , "]).unwrap(), tags(&[]));
        for bad in ["3", "\"3", "*, \"3\"", "\"3\", *", "* *", "\"a\"b\"", "W/3", "\"a b\"", "\"a\tb\"", "\"3\" \"4\""]
        {
            assert!(matches!(parse(&[bad]), Err(OAuthError::InvalidRequest(_))), "{bad:?}");
        }
        assert!(matches!(parse(&["*", "\"3\""]), Err(OAuthError::InvalidRequest(_))), "over two lines too");
    }

    #[test]
    fn strong_comparison_of_tags() {
        assert!(IfMatch::Absent.check("t").is_ok());
        assert!(IfMatch::Any.check("t").is_ok());
        let list = tags(&["x", "t"]);
        assert!(list.check("t").is_ok());
        for other in ["", "T", "t ", "tt"] {
            assert!(matches!(list.check(other), Err(OAuthError::PreconditionFailed(_))), "{other:?}");
        }
        assert!(matches!(tags(&[]).check("t"), Err(OAuthError::PreconditionFailed(_))));
        assert_eq!(list.pinned("r".into()), tags(&["r"]));
        assert_eq!(IfMatch::Any.pinned("r".into()), IfMatch::Any);
        assert_eq!(IfMatch::Absent.pinned("r".into()), IfMatch::Absent);
    }

    #[test]
    fn tags_are_digests_of_the_record() {
        let a = tag_of(&serde_json::json!({"version": 1}));
        assert_eq!(a.len(), 22);
        assert_ne!(a, tag_of(&serde_json::json!({"version": 2})));
        assert_eq!(a, tag_of(&serde_json::json!({"version": 1})));
        // A whole float is its integer (as DynamoDB gives it back), at any depth; others stay.
        let floats = serde_json::json!({"a": [1.0, -0.0, {"b": 3e3}], "c": 1.5, "d": 1e300});
        let read_back = serde_json::json!({"a": [1, 0, {"b": 3000}], "c": 1.5, "d": 1e300});
        assert_eq!(tag_of(&floats), tag_of(&read_back));
        assert_ne!(tag_of(&serde_json::json!({"c": 1.5})), tag_of(&serde_json::json!({"c": 2})));
    }
}
