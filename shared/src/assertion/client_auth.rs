//! `private_key_jwt` client authentication (RFC 7523 §2.2, §3; RFC 7521 §4.2; OpenID Connect
//! Core §9): a confidential client registered with `token_endpoint_auth_method:
//! private_key_jwt` and an inline `jwks` sends `client_assertion_type=` [`CLIENT_ASSERTION_TYPE`]
//! and `client_assertion=<JWT>` in the form body, at every endpoint that authenticates clients
//! (token, introspection, revocation).
//!
//! The JWT's `iss` and `sub` are the client id, its `aud` the issuer identifier alone, as a
//! single string (RFC 10070; with the tenant setting `legacy_client_assertion_audience`, an
//! untyped JWT may also name the token endpoint URL, or an array naming either, as RFC 7523
//! §3 allowed), and it carries `exp` and a single-use `jti` (replay key
//! `clientassertion|<client_id>|<jti>`); see the parent module for the time rules.
//!
//! Failures are `invalid_client` (RFC 7521 §4.2.1) answered like other body credentials
//! (`ClientAuthAttempt::Body`: 400 without a challenge; a 401 would need a `WWW-Authenticate`
//! scheme, RFC 9110 §15.5.2, and there is none for client assertions). Until the signature has
//! been verified with one of the client's keys the description is the same for every cause
//! (unknown client, another registered method, unknown `kid`, wrong signature) and an unknown
//! client costs a signature check too, so responses do not tell which client ids exist; after
//! that, the description names the failed check. Sending an assertion together with another
//! method (a secret, an `Authorization` header) is `invalid_request`, as RFC 6749 §2.3 and
//! OAuth 2.1 §2.4 have it for any two methods (RFC 7521 §4.2.1 would say `invalid_client`).
use std::fmt;
use std::sync::Arc;

use axum::http::{HeaderMap, header};

use super::{Refusal, SKEW};
use crate::audit::{self, AuditEvent};
use crate::error::{ClientAuthAttempt, OAuthError};
use crate::http::{Params, Presented};
use crate::model::{AuthMethod, Client};
use crate::{AppState, Result};

/// The `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How a client assertion is named in descriptions.
const WHAT: &str = "the client assertion";

/// The description of every failure before the signature is verified.
const GENERIC: &str = "client authentication failed";

/// A client assertion as presented: `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientAssertion(String);

impl ClientAssertion {
    /// The JWT.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientAssertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientAssertion([redacted])")
    }
}

/// The client assertion a request presents, if any (RFC 7521 §4.2): both parameters, the
/// registered type, and no other credentials (`invalid_request`). The client is the body's
/// `client_id` (RFC 7521 §4.2: optional) or else the assertion's `sub`.
pub fn presented(headers: &HeaderMap, form: &Params) -> Result<Option<Presented>> {
    let (kind, assertion) = (form.get("client_assertion_type"), form.get("client_assertion"));
    if kind.is_none() && assertion.is_none() {
        return Ok(None);
    }
    if headers.contains_key(header::AUTHORIZATION) || form.has("client_secret") {
        return Err(OAuthError::invalid_request(
            "more than one client authentication method: send the client assertion alone",
        ));
    }
    let kind = kind.ok_or_else(|| OAuthError::invalid_request("missing parameter `client_assertion_type`"))?;
    let assertion = assertion.ok_or_else(|| OAuthError::invalid_request("missing parameter `client_assertion`"))?;
    if kind != CLIENT_ASSERTION_TYPE {
        return Err(OAuthError::invalid_request(format!("client_assertion_type must be {CLIENT_ASSERTION_TYPE}")));
    }
    let client_id = match form.get("client_id") {
        Some(id) => Ok(id.to_owned()),
        None => super::parse(assertion).and_then(|p| p.claims.sub.ok_or(Refusal::MissingClaim("sub"))),
    };
    let client_id = client_id.map_err(|r| {
        audit::record(AuditEvent::InvalidClient { client_id: None, reason: r.reason() });
        OAuthError::invalid_client(r.describe(WHAT), ClientAuthAttempt::Body)
    })?;
    Ok(Some(Presented::Assertion { client_id, assertion: ClientAssertion(assertion.to_owned()) }))
}

/// The assertion's signature checked with the key of `client` it names (its registered key set,
/// for a `private_key_jwt` client); `UnknownKey`, after as much work, when there is none.
fn verify_for(parsed: &super::Parsed<'_>, client: Option<&Client>) -> Result<(), Refusal> {
    let key = client
        .filter(|c| c.token_endpoint_auth_method == AuthMethod::PrivateKeyJwt)
        .and_then(|c| c.jwks.as_ref())
        .and_then(|jwks| jwks.select(parsed.header.kid.as_deref()));
    match key {
        Some(key) => super::verify_signature(parsed, key),
        None => {
            super::verify_against_nobody(parsed);
            Err(Refusal::UnknownKey)
        }
    }
}

/// Whether a client assertion's `typ` may be this: none, `JWT`, or the explicit type
/// `client-authentication+jwt` (RFC 10070), compared without case and with
/// or without `application/` (RFC 7515 §4.1.9). Any other names another kind of JWT, such as a
/// DPoP proof (`dpop+jwt`) or an access token (`at+jwt`) signed with the same key, and is
/// refused so that one is never taken for the other (RFC 8725 §3.11).
fn client_assertion_type(typ: Option<&str>) -> bool {
    let Some(typ) = typ else { return true };
    super::media_type(typ) == "jwt" || explicitly_typed(Some(typ))
}

/// Whether a client assertion carries the explicit type of RFC 10070,
/// `client-authentication+jwt`: its client follows RFC 10070, so its `aud` is held to it.
fn explicitly_typed(typ: Option<&str>) -> bool {
    typ.is_some_and(|t| super::media_type(t) == "client-authentication+jwt")
}

/// Authenticates `client_id` by its client assertion.
pub async fn authenticate(state: &AppState, client_id: &str, assertion: &ClientAssertion) -> Result<Arc<Client>> {
    let fail = |reason: &'static str, description: String| {
        audit::record(AuditEvent::InvalidClient { client_id: Some(client_id.to_owned()), reason });
        OAuthError::invalid_client(description, ClientAuthAttempt::Body)
    };
    let parsed = super::parse(assertion.expose()).map_err(|r| fail(r.reason(), r.describe(WHAT)))?;
    let mut client = state.client(client_id).await?;
    let mut verified = verify_for(&parsed, client.as_deref());
    // A refusal on the cached copy reads the client again first: a key added (or a method
    // changed) on another instance works here at once (`cache::CLIENT_RECHECK_INTERVAL`).
    if verified.is_err()
        && let Some(fresh) = state.recheck_client(client_id).await?
    {
        verified = verify_for(&parsed, fresh.as_deref());
        client = fresh;
    }
    let Some(client) = client else {
        return Err(fail("unknown client", GENERIC.into()));
    };
    if client.token_endpoint_auth_method != AuthMethod::PrivateKeyJwt {
        return Err(fail("authentication method differs from the registered one", GENERIC.into()));
    }
    if let Err(r) = verified {
        return Err(fail(r.reason(), GENERIC.into()));
    }
    if !client_assertion_type(parsed.header.typ.as_deref()) {
        return Err(fail(Refusal::Type.reason(), Refusal::Type.describe(WHAT)));
    }
    // RFC 7523 §3 items 1 and 2: both are the client id.
    let me = Some(client.client_id.as_str());
    if parsed.claims.iss.as_deref() != me || parsed.claims.sub.as_deref() != me {
        return Err(fail(
            "assertion iss or sub is not the client",
            format!("{WHAT}'s iss and sub must be the client_id"),
        ));
    }
    let now = state.clock.now();
    let [endpoint, issuer] = super::audiences(&state.config);
    // RFC 10070 (the audience injection attack): an assertion whose `aud` may be an endpoint URL
    // can be obtained by an attacker's server that claims this server's endpoint as its own, and
    // replayed here; the issuer identifier, which clients check against the metadata (RFC 8414
    // §3.3), cannot be claimed that way. So the issuer alone, as a single string, unless the
    // tenant still accepts RFC 7523's audiences from untyped assertions.
    let legacy =
        state.settings().await?.legacy_client_assertion_audience && !explicitly_typed(parsed.header.typ.as_deref());
    let audiences: &[&str] = if legacy { &[&endpoint, &issuer] } else { &[&issuer] };
    let valid = match super::check_claims(&parsed.claims, audiences, now) {
        Err(Refusal::Audience) if !legacy => Err(Refusal::AudienceNotIssuer),
        Ok(_) if !legacy && parsed.claims.aud_is_array => Err(Refusal::AudienceNotIssuer),
        checked => checked,
    }
    .map_err(|r| fail(r.reason(), r.describe(WHAT)))?;
    let replay_key = format!("clientassertion|{}|{}", client.client_id, valid.jti);
    if !state.store.first_use(&replay_key, now, valid.exp.saturating_add(SKEW)).await? {
        return Err(fail(Refusal::Replayed.reason(), Refusal::Replayed.describe(WHAT)));
    }
    Ok(client)
}
