//! Read-modify-write of the admin API's versioned objects (clients, users, resource servers),
//! and their entity tags.
//!
//! Each stored object counts its updates (`version`), and the store writes an update only if
//! the object is still at the version it was read at. A `PATCH` that loses that race is redone
//! from a fresh read (the patch applies as well to the newer object), so concurrent changes of
//! different members never overwrite each other.
//!
//! Two admins editing the *same* member need more: the second must learn that the object changed
//! since they read it. So `GET` and `PATCH` answer the version as a strong entity tag (`ETag:
//! "3"`, RFC 9110 §8.8.3), and a `PATCH` with `If-Match` (RFC 9110 §13.1.1) is written only if
//! the object is still at a version it names; otherwise 412 `precondition_failed`, and nothing
//! changes.
use std::time::Duration;

use async_trait::async_trait;
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::Response;

use crate::model::{Client, ResourceServer, User};
use crate::store::{Store, StoreError, StoreResult};
use crate::{OAuthError, Result};

/// How many times a versioned update is redone before answering 409: each round lost to a
/// write that succeeded, so only a storm of writes to one object reaches this.
pub(super) const UPDATE_ATTEMPTS: u32 = 50;

/// An object the store updates on condition of its version.
#[async_trait]
pub(super) trait Versioned: Clone + PartialEq + Send + Sync + Sized {
    fn version(&self) -> u64;
    fn set_version(&mut self, v: u64);
    /// Reads the object named `key`.
    async fn read(store: &dyn Store, key: &str) -> StoreResult<Option<Self>>;
    /// Replaces it if it is still at `read_version` (the store's conditional update).
    async fn write(&self, store: &dyn Store, read_version: u64) -> StoreResult<bool>;
}

macro_rules! versioned {
    ($($t:ty: $get:ident, $update:ident;)*) => {$(
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
        }
    )*};
}
versioned! {
    Client: get_client, update_client;
    User: get_user, update_user;
    ResourceServer: get_resource_server, update_resource_server;
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
    /// Reads every `If-Match` field line. A value that is not `*` or a list of entity tags is
    /// 400 `invalid_request`: a precondition that cannot be read must not be ignored.
    pub(super) fn of(parts: &Parts) -> Result<Self> {
        let bad = || OAuthError::invalid_request("If-Match: `*` or a list of entity tags such as \"3\"");
        let mut seen = false;
        let mut tags = Vec::new();
        let mut any = false;
        for value in parts.headers.get_all(header::IF_MATCH) {
            let value = value.to_str().map_err(|_| bad())?;
            for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
                seen = true;
                if item == "*" {
                    any = true;
                    continue;
                }
                let (weak, tag) = match item.strip_prefix("W/") {
                    Some(rest) => (true, rest),
                    None => (false, item),
                };
                let opaque = tag.strip_prefix('"').and_then(|t| t.strip_suffix('"')).ok_or_else(bad)?;
                // etagc = %x21 / %x23-7E / obs-text (RFC 9110 §8.8.3); `to_str` already kept
                // the value visible ASCII.
                if opaque.contains('"') || opaque.contains(' ') {
                    return Err(bad());
                }
                if !weak {
                    tags.push(opaque.to_owned());
                }
            }
        }
        match (seen, any) {
            (false, _) => Ok(Self::Absent),
            (true, true) if tags.is_empty() => Ok(Self::Any),
            // `*` in a list is no field value RFC 9110 allows.
            (true, true) => Err(bad()),
            (true, false) => Ok(Self::Tags(tags)),
        }
    }

    /// `Ok` if an object at `version` meets the precondition, else 412 `precondition_failed`.
    pub(super) fn check(&self, version: u64) -> Result<()> {
        match self {
            Self::Absent | Self::Any => Ok(()),
            // Strong comparison: the opaque tags are equal character by character.
            Self::Tags(tags) if tags.iter().any(|t| *t == version.to_string()) => Ok(()),
            Self::Tags(_) => Err(OAuthError::PreconditionFailed(
                "the object changed since that version was read (If-Match); read it again".into(),
            )),
        }
    }
}

/// The entity tag of an object at `version`.
pub(super) fn etag(version: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).expect("digits and quotes")
}

/// `r` with the `ETag` of an object at `version`.
pub(super) fn tagged(mut r: Response, version: u64) -> Response {
    r.headers_mut().insert(header::ETAG, etag(version));
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
        precondition.check(current.version())?;
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

    #[test]
    fn if_match_values() {
        assert_eq!(parse(&[]).unwrap(), IfMatch::Absent);
        assert_eq!(parse(&["*"]).unwrap(), IfMatch::Any);
        assert_eq!(parse(&["\"3\""]).unwrap(), IfMatch::Tags(vec!["3".into()]));
        assert_eq!(parse(&["\"3\", W/\"4\"", "\"x\""]).unwrap(), IfMatch::Tags(vec!["3".into(), "x".into()]));
        assert_eq!(parse(&["W/\"4\""]).unwrap(), IfMatch::Tags(vec![]), "a weak tag never matches");
        for bad in ["3", "\"3", "*, \"3\"", "\"a\"b\"", "W/3", "\"a b\""] {
            assert!(matches!(parse(&[bad]), Err(OAuthError::InvalidRequest(_))), "{bad}");
        }
    }

    #[test]
    fn strong_comparison_of_versions() {
        assert!(IfMatch::Absent.check(7).is_ok());
        assert!(IfMatch::Any.check(0).is_ok());
        let tags = IfMatch::Tags(vec!["x".into(), "7".into()]);
        assert!(tags.check(7).is_ok());
        for v in [0, 6, 70] {
            assert!(matches!(tags.check(v), Err(OAuthError::PreconditionFailed(_))), "{v}");
        }
        assert!(matches!(IfMatch::Tags(vec![]).check(0), Err(OAuthError::PreconditionFailed(_))));
        assert!(
            matches!(IfMatch::Tags(vec!["07".into()]).check(7), Err(OAuthError::PreconditionFailed(_))),
            "by characters"
        );
    }
}
