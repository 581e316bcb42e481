//! Request parsing shared by the endpoints: bounded bodies, `application/x-www-form-urlencoded`
//! forms (RFC 6749 §3.1/§3.2), HTTP Basic client credentials (RFC 6749 §2.3.1) and client
//! authentication.
use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Request, header};
use base64::Engine;

use crate::audit::{self, AuditEvent};
use crate::error::{ClientAuthAttempt, OAuthError};
use crate::model::{AuthMethod, Client};
use crate::{AppState, Result};

/// Largest request body any endpoint accepts (bytes): far above any legitimate OAuth request.
pub const MAX_BODY: usize = 16 * 1024;

/// Form or query parameters: each name at most once, empty values treated as absent.
#[derive(Default, Clone)]
pub struct Params(HashMap<String, String>, bool);

/// The parameter names only: values hold secrets and tokens (`client_secret`, `code`,
/// `refresh_token`, `password`, `client_assertion`).
impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.0.keys().collect();
        names.sort();
        f.debug_tuple("Params").field(&names).finish()
    }
}

impl Params {
    /// Parses `application/x-www-form-urlencoded` pairs. A repeated parameter is
    /// `invalid_request` (RFC 6749 §3.1: "MUST NOT be included more than once"); a parameter
    /// sent without a value is treated as omitted. Names and values must be UTF-8 once
    /// percent-decoded (RFC 6749 Appendix B), else `invalid_request`: a lossy decoding would
    /// read different octets as the same value.
    ///
    /// One pass, each name and value decoded once (WHATWG URL "application/x-www-form-urlencoded
    /// parsing": pairs split at `&`, empty pairs skipped, the name ends at the first `=`, `+` is
    /// a space, `%XX` an octet and any other `%` itself).
    pub fn parse(raw: &[u8]) -> Result<Self> {
        let mut map = HashMap::new();
        let mut several_resources = false;
        for pair in raw.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
            let (name, value) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &pair[pair.len()..]),
            };
            let (Some(name), Some(value)) = (form_decode(name), form_decode(value)) else {
                return Err(OAuthError::invalid_request("the parameters are not UTF-8 (RFC 6749 Appendix B)"));
            };
            if value.is_empty() {
                continue;
            }
            // RFC 8707 §2 allows `resource` more than once; Gatehouse serves one resource per
            // request, and says so with `invalid_target` (`grants::requested_resource`).
            if name == "resource" && map.contains_key("resource") {
                several_resources = true;
                continue;
            }
            let shown: String = name.chars().take(64).collect();
            if map.insert(name, value).is_some() {
                return Err(OAuthError::invalid_request(format!("parameter `{shown}` is repeated")));
            }
        }
        Ok(Self(map, several_resources))
    }

    /// Whether `resource` was sent more than once (RFC 8707 §2).
    pub fn several_resources(&self) -> bool {
        self.1
    }

    /// A parameter's value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A required parameter, or `invalid_request` naming it.
    pub fn require(&self, name: &'static str) -> Result<&str> {
        self.get(name).ok_or_else(|| OAuthError::invalid_request(format!("missing parameter `{name}`")))
    }

    /// Whether a parameter is present.
    pub fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }
}

/// A form name or value decoded (`+` a space, `%XX` an octet), or `None` when the octets are
/// not UTF-8. Most values (tokens, ids, grant types) have neither `+` nor `%`: no copy to decode.
fn form_decode(raw: &[u8]) -> Option<String> {
    if !raw.iter().any(|b| matches!(b, b'%' | b'+')) {
        return std::str::from_utf8(raw).ok().map(str::to_owned);
    }
    let spaced: Vec<u8> = raw.iter().map(|b| if *b == b'+' { b' ' } else { *b }).collect();
    String::from_utf8(percent_encoding::percent_decode(&spaced).collect()).ok()
}

/// Longest query string any endpoint accepts (bytes), as for bodies.
pub const MAX_QUERY: usize = MAX_BODY;

/// How long a request body may take to arrive once the handler reads it. On the local server a
/// client that sends its headers and then trickles or withholds the body holds its connection
/// and task no longer than this; on Lambda the whole body has arrived before the function runs.
pub const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads a body of at most [`MAX_BODY`] bytes (413 `invalid_request` beyond) within
/// [`BODY_READ_TIMEOUT`] (408 `invalid_request` after). A body whose declared length
/// (`Content-Length`) is over the limit is refused before any of it is read; any other
/// (chunked, or lying about its length) is cut off as soon as it passes the limit.
pub async fn read_body(body: Body) -> Result<axum::body::Bytes> {
    read_body_within(body, BODY_READ_TIMEOUT).await
}

async fn read_body_within(body: Body, time: std::time::Duration) -> Result<axum::body::Bytes> {
    if axum::body::HttpBody::size_hint(&body).lower() > MAX_BODY as u64 {
        return Err(OAuthError::PayloadTooLarge);
    }
    match tokio::time::timeout(time, axum::body::to_bytes(body, MAX_BODY)).await {
        Ok(read) => read.map_err(|_| OAuthError::PayloadTooLarge),
        Err(_) => Err(OAuthError::RequestTimeout),
    }
}

/// Splits a request into its head and its form body. The content type must be
/// `application/x-www-form-urlencoded` (RFC 6749 §3.2).
pub async fn read_form(req: Request<Body>) -> Result<(Parts, Params)> {
    let (parts, body) = req.into_parts();
    let is_form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(OAuthError::invalid_request("the body must be application/x-www-form-urlencoded"));
    }
    let bytes = read_body(body).await?;
    Ok((parts, Params::parse(&bytes)?))
}

/// The query string's parameters (same rules as a form); one over [`MAX_QUERY`] bytes is
/// `invalid_request`.
pub fn query(parts: &Parts) -> Result<Params> {
    let query = parts.uri.query().unwrap_or("");
    if query.len() > MAX_QUERY {
        return Err(OAuthError::invalid_request("the query string is longer than 16384 bytes"));
    }
    Params::parse(query.as_bytes())
}

/// The client credentials a request presents.
#[derive(Debug, PartialEq, Eq)]
pub enum Presented {
    /// `Authorization: Basic` (client_secret_basic).
    Basic { client_id: String, secret: crate::model::ClientSecret },
    /// `client_id` + `client_secret` in the body (client_secret_post).
    Post { client_id: String, secret: crate::model::ClientSecret },
    /// Only `client_id` in the body: a public client (RFC 6749 §2.1, §3.2.1).
    Public { client_id: String },
    /// `client_assertion` in the body (private_key_jwt, RFC 7523 §2.2): the body's `client_id`
    /// or else the assertion's `sub`.
    Assertion { client_id: String, assertion: crate::assertion::client_auth::ClientAssertion },
    /// Nothing.
    None,
}

impl Presented {
    fn attempt(&self) -> ClientAuthAttempt {
        match self {
            Self::Basic { .. } => ClientAuthAttempt::Header,
            Self::Post { .. } | Self::Public { .. } | Self::Assertion { .. } => ClientAuthAttempt::Body,
            Self::None => ClientAuthAttempt::None,
        }
    }

    /// The client id presented, if any.
    pub fn client_id(&self) -> Option<&str> {
        match self {
            Self::Basic { client_id, .. }
            | Self::Post { client_id, .. }
            | Self::Public { client_id }
            | Self::Assertion { client_id, .. } => Some(client_id),
            Self::None => None,
        }
    }
}

/// Parses `Authorization: Basic base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 §2.3.1).
fn parse_basic(value: &str) -> Option<(String, String)> {
    let (scheme, b64) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") || b64.len() > 4096 {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    let unescape = |s: &str| -> Option<String> {
        let plus = s.replace('+', " ");
        percent_encoding::percent_decode_str(&plus).decode_utf8().ok().map(|c| c.into_owned())
    };
    let (id, secret) = (unescape(id)?, unescape(secret)?);
    (!id.is_empty()).then_some((id, secret))
}

/// What credentials the request presents. More than one method is `invalid_request`
/// (RFC 6749 §2.3: "MUST NOT use more than one authentication method in each request").
pub fn presented_credentials(headers: &HeaderMap, form: &Params) -> Result<Presented> {
    if let Some(assertion) = crate::assertion::client_auth::presented(headers, form)? {
        return Ok(assertion);
    }
    let body_id = form.get("client_id");
    let body_secret = form.get("client_secret");
    let Some(auth) = headers.get(header::AUTHORIZATION) else {
        return Ok(match (body_id, body_secret) {
            (Some(id), Some(s)) => Presented::Post { client_id: id.into(), secret: crate::model::ClientSecret::new(s) },
            (Some(id), None) => Presented::Public { client_id: id.into() },
            (None, Some(_)) => return Err(OAuthError::invalid_request("client_secret without client_id")),
            (None, None) => Presented::None,
        });
    };
    if body_secret.is_some() {
        return Err(OAuthError::invalid_request(
            "client credentials sent both in the Authorization header and the body",
        ));
    }
    let (id, secret) =
        auth.to_str().ok().and_then(parse_basic).ok_or_else(|| {
            OAuthError::invalid_client("malformed Basic authorization header", ClientAuthAttempt::Header)
        })?;
    if body_id.is_some_and(|b| b != id) {
        return Err(OAuthError::invalid_request("client_id in the body differs from the Authorization header"));
    }
    Ok(Presented::Basic { client_id: id, secret: crate::model::ClientSecret::new(secret) })
}

/// A digest no real secret has: compared against when the client is unknown, so that an
/// unknown client and a wrong secret take the same time.
const DUMMY_DIGEST: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

/// Longest `client_id` looked up (bytes); a longer one is an unknown client.
pub const MAX_CLIENT_ID: usize = 256;

/// RFC 6749 §2.3 / §3.2.1: authenticates the client of a token, introspection or revocation
/// request. The presented method must be the client's registered
/// `token_endpoint_auth_method`; secrets are compared as digests in constant time, against the
/// current secret and the previous one (until its overlap after a rotation ends): always both
/// comparisons, so that an unknown client, a wrong secret and a right one take the same time.
/// A client assertion (private_key_jwt) is checked by `assertion::client_auth`.
///
/// The client's record comes from the warm instance's cache (`AppState::client`,
/// `cache::CLIENT_TTL`): it carries both digests and the overlap's end, so a rotation's overlap
/// ends exactly on time. A refusal on the cached copy reads the client again first
/// (`AppState::recheck_client`), so a secret or method changed on another instance works here
/// at once.
pub async fn authenticate_client(state: &AppState, headers: &HeaderMap, form: &Params) -> Result<Arc<Client>> {
    let presented = presented_credentials(headers, form)?;
    let attempt = presented.attempt();
    let fail = |client_id: Option<&str>, why: &'static str| {
        audit::record(AuditEvent::InvalidClient { client_id: client_id.map(str::to_owned), reason: why });
        OAuthError::invalid_client("client authentication failed", attempt)
    };
    let Some(client_id) = presented.client_id() else {
        return Err(fail(None, "no client credentials"));
    };
    if client_id.len() > MAX_CLIENT_ID {
        return Err(fail(None, "client_id too long"));
    }
    if let Presented::Assertion { assertion, .. } = &presented {
        return crate::assertion::client_auth::authenticate(state, client_id, assertion).await;
    }
    let mut client = state.client(client_id).await?;
    let now = state.clock.now();
    let mut checked = check_secret(&presented, client.as_deref(), now);
    if checked.is_err()
        && let Some(fresh) = state.recheck_client(client_id).await?
    {
        checked = check_secret(&presented, fresh.as_deref(), now);
        client = fresh;
    }
    match (checked, client) {
        (Ok(()), Some(client)) => Ok(client),
        (Err(why), _) => Err(fail(Some(client_id), why)),
        (Ok(()), None) => Err(fail(Some(client_id), "unknown client")),
    }
}

/// Whether the presented secret (or its absence, for a public client) authenticates `client`:
/// the reason of the refusal if not.
fn check_secret(presented: &Presented, client: Option<&Client>, now: i64) -> Result<(), &'static str> {
    let (secret, method) = match presented {
        Presented::Basic { secret, .. } => (Some(secret), AuthMethod::ClientSecretBasic),
        Presented::Post { secret, .. } => (Some(secret), AuthMethod::ClientSecretPost),
        _ => (None, AuthMethod::None),
    };
    let expected = client.and_then(|c| c.secret_digest.as_deref()).unwrap_or(DUMMY_DIGEST);
    let previous = client
        .filter(|c| c.previous_secret_expires_at.is_some_and(|at| now < at))
        .and_then(|c| c.previous_secret_digest.as_deref())
        .unwrap_or(DUMMY_DIGEST);
    let secret_ok = secret.is_some_and(|s| {
        let d = s.digest();
        crate::crypto::ct_eq(&d, expected) | crate::crypto::ct_eq(&d, previous) // both, always
    });
    let Some(client) = client else {
        return Err("unknown client");
    };
    if client.token_endpoint_auth_method != method {
        return Err("authentication method differs from the registered one");
    }
    if method != AuthMethod::None && !secret_ok {
        return Err("wrong client secret");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body that stops arriving is refused after the timeout (408), not waited for; one that
    /// arrives in time is read whole.
    #[tokio::test]
    async fn a_stalled_body_times_out() {
        use futures_util::StreamExt;
        let first =
            futures_util::stream::once(async { Ok::<_, std::io::Error>(axum::body::Bytes::from_static(b"a=")) });
        let stalled = Body::from_stream(first.chain(futures_util::stream::pending()));
        let e = read_body_within(stalled, std::time::Duration::from_millis(50)).await.unwrap_err();
        assert!(matches!(e, OAuthError::RequestTimeout), "{e:?}");
        assert_eq!((e.status(), e.code()), (axum::http::StatusCode::REQUEST_TIMEOUT, "invalid_request"));
        assert_eq!(e.description(), "the request body did not arrive in time");
        let whole = read_body_within(Body::from("a=b"), std::time::Duration::from_millis(50)).await.unwrap();
        assert_eq!(&whole[..], b"a=b");
    }

    #[test]
    fn basic_is_form_decoded() {
        let v = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("my%20app:p%3Ass+w"));
        assert_eq!(parse_basic(&v), Some(("my app".into(), "p:ss w".into())));
        assert_eq!(parse_basic("Bearer abc"), None);
        assert_eq!(parse_basic("Basic !!!"), None);
    }

    #[test]
    fn repeated_parameters_are_refused() {
        assert_eq!(Params::parse(b"a=1&a=2").unwrap_err().code(), "invalid_request");
        let p = Params::parse(b"a=1&b=&c=x+y").unwrap();
        assert_eq!((p.get("a"), p.get("b"), p.get("c")), (Some("1"), None, Some("x y")));
    }

    /// The one-pass parser gives what `form_urlencoded` (the WHATWG parser) gives, and refuses
    /// exactly the forms whose decoded octets are not UTF-8 or repeat a name.
    #[test]
    fn parses_as_the_whatwg_form_parser_does() {
        let forms: [&[u8]; 18] = [
            b"",
            b"&&",
            b"a",
            b"=x",
            b"a==b&c=%3D",
            b"a%3Db=c",
            b"x=%C3%A9t%C3%A9+%2B+1",
            b"x=%",
            b"x=%zz&y=%4",
            b"x=%C3",
            b"x=%C3&y=%A9",
            b"%C3=%A9",
            b"x=\xff",
            b"a=1&&b=2&",
            b"a+b=1&a%20b=2",
            b"a=&a=1",
            b"a=1&a=",
            b"t=eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln&token_type_hint=access_token",
        ];
        for raw in forms {
            let utf8 = raw.split(|b| *b == b'&').all(|p| percent_encoding::percent_decode(p).decode_utf8().is_ok());
            let mut expected = HashMap::new();
            let mut repeated = false;
            for (k, v) in form_urlencoded::parse(raw).filter(|(_, v)| !v.is_empty()) {
                repeated |= expected.insert(k.into_owned(), v.into_owned()).is_some();
            }
            match Params::parse(raw) {
                Ok(p) => assert!(utf8 && !repeated && p.0 == expected, "{:?}", String::from_utf8_lossy(raw)),
                Err(e) => {
                    assert!((!utf8 || repeated) && e.code() == "invalid_request", "{:?}", String::from_utf8_lossy(raw))
                }
            }
        }
        assert_eq!(Params::parse(b"x=%C3%A9t%C3%A9+%2B+1").unwrap().get("x"), Some("\u{e9}t\u{e9} + 1"));
        assert_eq!(Params::parse(b"x=%zz").unwrap().get("x"), Some("%zz"));
    }
}
