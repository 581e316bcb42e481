//! DPoP, OAuth 2.0 Demonstrating Proof of Possession (RFC 9449): the successor of the seed's
//! MAC-type tokens. A client proves, with a JWT signed by a key it holds (the `DPoP` header),
//! that it holds the key an access token is bound to (`cnf.jkt`, RFC 9449 §6.1).
//!
//! Every proof is checked as RFC 9449 §4.3 lists: one `DPoP` header holding one compact JWS
//! ([`proof::read`]: `typ`, asymmetric `alg`, public `jwk`, signature, claims); `htm` equals the
//! request method; `htu` equals the request URI without query and fragment, both normalised
//! (the URI a client sees is the issuer's origin and path prefix plus the request path: behind
//! API Gateway the function sees only the path); `iat` within [`IAT_WINDOW`] seconds of the
//! server clock, either way; the nonce, when the tenant requires nonces ([`nonce`]); `ath`
//! when the proof comes with an access token; and last, the `jti` is single use
//! (`ReplayStore::first_use` of `dpop|<jkt>|<jti>`, kept until the proof's `iat` leaves the
//! window, so a replay is refused by one check or the other on every instance).
mod nonce;
pub(crate) mod proof;

use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;

pub use nonce::{NonceKey, PERIOD as NONCE_PERIOD};
pub use proof::{MAX_PROOF_LEN, Refusal, SIGNING_ALGS, access_token_hash, normalize_htu};

use crate::crypto::ct_eq;
use crate::error::OAuthError;
use crate::model::Client;
use crate::{AppState, Result};

/// Seconds a proof's `iat` may lie before or after the server's clock (RFC 9449 §11.1).
pub const IAT_WINDOW: i64 = 60;

/// The request header carrying a proof (RFC 9449 §4.1).
pub const DPOP_HEADER: &str = "dpop";

/// The response header carrying a server nonce (RFC 9449 §8).
pub const DPOP_NONCE_HEADER: &str = "dpop-nonce";

/// A proof that passed every check: the RFC 7638 thumbprint of its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    pub jkt: String,
}

/// What a proof must match.
struct Expected<'a> {
    htm: &'a str,
    htu: &'a str,
    access_token: Option<&'a str>,
}

/// Why a check failed; the caller decides the answer (token endpoint or resource server).
enum Failure {
    /// `invalid_dpop_proof` with this description.
    Invalid(Refusal),
    /// `use_dpop_nonce`, with the nonce to use.
    UseNonce(String),
    /// Anything else (the store or the settings could not be read).
    Other(OAuthError),
}

impl From<OAuthError> for Failure {
    fn from(e: OAuthError) -> Self {
        Self::Other(e)
    }
}

impl From<crate::store::StoreError> for Failure {
    fn from(e: crate::store::StoreError) -> Self {
        Self::Other(e.into())
    }
}

fn invalid(why: &'static str) -> Failure {
    Failure::Invalid(why.into())
}

/// RFC 9449 §4.3 items 1-2: the single `DPoP` header, if any.
fn header_value(headers: &HeaderMap) -> Result<Option<&str>, Failure> {
    let mut all = headers.get_all(DPOP_HEADER).iter();
    let Some(first) = all.next() else {
        return Ok(None);
    };
    // Two headers, or two joined into one by a proxy (API Gateway joins repeated headers with
    // commas; a JWS has none).
    if all.next().is_some() || first.as_bytes().contains(&b',') {
        return Err(invalid("send exactly one DPoP header (RFC 9449 §4.3)"));
    }
    let value = first.to_str().map_err(|_| invalid("the DPoP header is not a compact JWS"))?;
    Ok(Some(value.trim()))
}

/// Checks the request's proof against `expected`; `None` without a `DPoP` header.
async fn check(state: &AppState, headers: &HeaderMap, expected: &Expected<'_>) -> Result<Option<Proof>, Failure> {
    let Some(value) = header_value(headers)? else {
        return Ok(None);
    };
    let p = proof::read(value).map_err(Failure::Invalid)?;
    if p.htm != expected.htm {
        return Err(invalid("the DPoP proof's htm does not match the request method"));
    }
    if normalize_htu(&p.htu).is_none_or(|htu| Some(htu) != normalize_htu(expected.htu)) {
        return Err(invalid("the DPoP proof's htu does not match the request URI"));
    }
    let now = state.clock.now();
    if p.iat > now + IAT_WINDOW {
        return Err(invalid("the DPoP proof's iat is in the future"));
    }
    if p.iat < now - IAT_WINDOW {
        return Err(invalid("the DPoP proof is too old (iat)"));
    }
    if let Some(token) = expected.access_token {
        match &p.ath {
            None => return Err(invalid("the DPoP proof has no ath claim for the access token")),
            Some(ath) if !ct_eq(ath, &access_token_hash(token)) => {
                return Err(invalid("the DPoP proof's ath does not match the access token"));
            }
            Some(_) => {}
        }
    }
    if let Some(key) = required_nonce_key(state).await?
        && !p.nonce.as_deref().is_some_and(|n| key.accepts(n, now))
    {
        return Err(Failure::UseNonce(key.current(now)));
    }
    // Last: only a proof that passed everything else uses up its jti. Kept until its iat
    // leaves the window (+1: `first_use` admits again at `expires_at`).
    let replay_key = format!("dpop|{}|{}", p.jkt, p.jti);
    if !state.store.first_use(&replay_key, now, p.iat + IAT_WINDOW + 1).await? {
        return Err(invalid("the DPoP proof was already used (jti)"));
    }
    Ok(Some(Proof { jkt: p.jkt }))
}

/// The tenant's nonce key when the tenant requires nonces (setting `dpop_nonce_required`).
async fn required_nonce_key(state: &AppState) -> Result<Option<NonceKey>> {
    let settings = state.settings().await?;
    if !settings.dpop_nonce_required {
        return Ok(None);
    }
    match &settings.dpop_nonce_key {
        Some(k) => Ok(Some(k.clone())),
        None => Err(OAuthError::server("dpop_nonce_required is on but the settings hold no nonce key")),
    }
}

/// RFC 9449 §5: the proof sent to the token endpoint (`htm` POST, `htu` the issuer's token
/// endpoint URL), checked. `None` without a `DPoP` header: the token is a Bearer token, unless
/// the client registered `dpop_bound_access_tokens` (RFC 9449 §5.2: such a request "MUST" be
/// rejected; a required header is missing, so `invalid_request`, RFC 6749 §5.2). A refused
/// proof is `invalid_dpop_proof` (400), a missing or stale nonce `use_dpop_nonce` (400 with a
/// `DPoP-Nonce`, §8).
pub async fn token_request(state: &AppState, parts: &Parts, client: &Client) -> Result<Option<Proof>> {
    let htu = state.config.endpoint(parts.uri.path());
    let expected = Expected { htm: parts.method.as_str(), htu: &htu, access_token: None };
    match check(state, &parts.headers, &expected).await {
        Ok(None) if client.dpop_bound_access_tokens => Err(OAuthError::invalid_request(
            "this client must send a DPoP proof (dpop_bound_access_tokens, RFC 9449 §5.2)",
        )),
        Ok(proof) => Ok(proof),
        Err(Failure::Invalid(why)) => Err(OAuthError::InvalidDpopProof(why)),
        Err(Failure::UseNonce(nonce)) => Err(OAuthError::UseDpopNonce(nonce)),
        Err(Failure::Other(e)) => Err(e),
    }
}

/// RFC 9449 §8.2: when the tenant requires nonces, a successful response carries the current
/// nonce in `DPoP-Nonce`, so the client's next proof needs no extra round trip.
pub async fn add_nonce(state: &AppState, resp: &mut Response) -> Result<()> {
    if let Some(key) = required_nonce_key(state).await?
        && let Ok(v) = HeaderValue::from_str(&key.current(state.clock.now()))
    {
        resp.headers_mut().insert(DPOP_NONCE_HEADER, v);
    }
    Ok(())
}

/// How an access token was presented to a resource server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `Authorization: Bearer` (RFC 6750 §2.1).
    Bearer,
    /// `Authorization: DPoP` (RFC 9449 §7.1).
    Dpop,
}

/// The access token of `Authorization: Bearer <token>` or `Authorization: DPoP <token>`
/// (scheme names are case-insensitive, RFC 9110 §11.1).
pub fn presented_token(headers: &HeaderMap) -> Option<(Scheme, &str)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    if token.is_empty() || token.contains(' ') {
        return None;
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        Some((Scheme::Bearer, token))
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Some((Scheme::Dpop, token))
    } else {
        None
    }
}

fn refused(code: &'static str, why: impl Into<Refusal>, nonce: Option<String>) -> OAuthError {
    OAuthError::DpopUnauthorized { code, description: why.into(), nonce }
}

/// RFC 9449 §7 for a resource server (the validation endpoints): `token` was presented in the
/// request whose `headers`, `method` and URI (`htu`, as the client called it) are given, and
/// is bound to `jkt` (its record's `cnf.jkt`; `None`: a Bearer token).
///
/// - a bound token presented as `Bearer` is refused (`invalid_token`): accepting it would undo
///   the binding (§7.1 presents bound tokens with the DPoP scheme; §7.2);
/// - an unbound token presented as `DPoP` is refused (`invalid_token`);
/// - a bound token presented as `DPoP` needs a valid proof whose `ath` is the token's hash
///   (`invalid_dpop_proof`) made with the bound key (`invalid_token`, §7.1), and the tenant's
///   nonce when nonces are required (`use_dpop_nonce` with a `DPoP-Nonce`, §9);
/// - an unbound token presented as `Bearer` passes (`None`).
///
/// Refusals are 401 with `WWW-Authenticate: DPoP error=...` and the accepted `algs`.
pub async fn verify_for_resource(
    state: &AppState,
    method: &str,
    htu: &str,
    headers: &HeaderMap,
    token: &str,
    jkt: Option<&str>,
) -> Result<Option<Proof>> {
    let scheme = presented_token(headers).map_or(Scheme::Bearer, |(s, _)| s);
    let Some(bound) = jkt else {
        if scheme == Scheme::Dpop {
            return Err(refused(
                "invalid_token",
                "the access token is not DPoP-bound: present it as a Bearer token",
                None,
            ));
        }
        return Ok(None);
    };
    if scheme == Scheme::Bearer {
        let why = "the access token is DPoP-bound: present it with the DPoP scheme and a DPoP proof (RFC 9449 §7.1)";
        return Err(refused("invalid_token", why, None));
    }
    let expected = Expected { htm: method, htu, access_token: Some(token) };
    match check(state, headers, &expected).await {
        Ok(Some(proof)) if ct_eq(&proof.jkt, bound) => Ok(Some(proof)),
        Ok(Some(_)) => {
            Err(refused("invalid_token", "the DPoP proof's key is not the key the access token is bound to", None))
        }
        Ok(None) => Err(refused("invalid_dpop_proof", "a DPoP proof is required with a DPoP-bound access token", None)),
        Err(Failure::Invalid(why)) => Err(refused("invalid_dpop_proof", why, None)),
        Err(Failure::UseNonce(nonce)) => {
            Err(refused("use_dpop_nonce", "the resource server requires a nonce in the DPoP proof", Some(nonce)))
        }
        Err(Failure::Other(e)) => Err(e),
    }
}
