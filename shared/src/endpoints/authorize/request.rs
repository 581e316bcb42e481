//! `GET /authorize`: validates the authorization request (RFC 6749 §4.1.1, RFC 7636 §4.3),
//! stores it as a pending request and shows the sign-in page.
use std::sync::Arc;

use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{flow, page_for, pages};
use crate::grants::{decide_grant, ensure_grant_allowed};
use crate::http::{self, Params};
use crate::model::{Client, GrantType, PendingAuthorization};
use crate::{AppState, OAuthError, Result};

/// Where errors and codes go once the client and redirect URI are validated.
pub(super) struct ClientTarget {
    pub redirect_uri: String,
    pub state: Option<String>,
}

impl ClientTarget {
    /// Redirects to the client with `params`, plus `state` and RFC 9207 `iss`. After a form
    /// POST the status is 303, so the browser does not re-send the form (RFC 9700 §4.12).
    pub fn redirect(&self, app: &AppState, status: StatusCode, params: &[(&str, &str)]) -> Response {
        let Ok(mut target) = url::Url::parse(&self.redirect_uri) else {
            return pages::error(StatusCode::BAD_REQUEST, "invalid_request", "the redirect URI is invalid");
        };
        {
            let mut q = target.query_pairs_mut();
            for (k, v) in params {
                q.append_pair(k, v);
            }
            if let Some(s) = &self.state {
                q.append_pair("state", s);
            }
            q.append_pair("iss", &app.config.issuer);
        }
        let mut resp = status.into_response();
        if let Ok(v) = HeaderValue::from_str(target.as_str()) {
            resp.headers_mut().insert(header::LOCATION, v);
        }
        crate::error::no_store(&mut resp);
        resp
    }

    /// Redirects an OAuth error (RFC 6749 §4.1.2.1).
    pub fn error(&self, app: &AppState, status: StatusCode, e: &OAuthError) -> Response {
        if let OAuthError::Server(detail) = e {
            tracing::error!(error = %detail, "server_error on the authorization endpoint");
        }
        self.redirect(app, status, &[("error", e.code()), ("error_description", &e.description())])
    }
}

pub(super) async fn handle(State(state): State<AppState>, parts: Parts) -> Response {
    let (q, client, target) = match validate_client(&state, &parts).await {
        Ok(v) => v,
        Err(e) => return page_for(e),
    };
    // The browser keeps its nonce across requests (and tabs); a first request gets one.
    let nonce = flow::browser_nonce(&state, &parts).map_or_else(flow::new_nonce, str::to_owned);
    match pending_from(&state, &q, &client, &target, &nonce).await {
        Ok((pending, secret)) => {
            let csrf = flow::form_token(&pending, &secret);
            flow::show_login(&state, &client, &csrf, None, "", Some(&nonce))
        }
        Err(e) => target.error(&state, StatusCode::FOUND, &e),
    }
}

/// Steps that must pass before anything may redirect: a known client and one of its
/// registered redirect URIs, matched exactly (RFC 6749 §3.1.2.3; RFC 9700 §4.1.3).
async fn validate_client(state: &AppState, parts: &Parts) -> Result<(Params, Arc<Client>, ClientTarget)> {
    let q = http::query(parts)?;
    let client_id = q.require("client_id")?;
    let client = state.client(client_id).await?.ok_or_else(|| OAuthError::invalid_request("unknown client_id"))?;
    let redirect_uri = match (q.get("redirect_uri"), client.redirect_uris.as_slice()) {
        (Some(r), _) if is_registered(&client, r) => r.to_owned(),
        (None, [only]) => only.clone(),
        _ => return Err(OAuthError::invalid_request("redirect_uri is missing or not registered for this client")),
    };
    let target = ClientTarget { redirect_uri, state: q.get("state").map(str::to_owned) };
    Ok((q, client, target))
}

/// Whether `requested` is one of the client's redirect URIs: the same string, except that a
/// loopback redirect URI (`http` to `127.0.0.1`, `[::1]` or `localhost`) may name any port,
/// which a native app picks when it listens (RFC 8252 §7.3: "MUST allow any port"; RFC 9700
/// §4.1.3 keeps that one exception to exact matching). Everything else about it, the path and
/// query included, must match exactly.
pub(super) fn is_registered(client: &Client, requested: &str) -> bool {
    client.redirect_uris.iter().any(|u| u == requested || same_loopback_but_port(u, requested))
}

/// `http://<loopback host>[:port]<rest>` as (host, rest), if `uri` has that form with a port of
/// 1-5 digits or none.
fn loopback_parts(uri: &str) -> Option<(&str, &str)> {
    let after = uri.strip_prefix("http://")?;
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (authority, rest) = after.split_at(end);
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && !h.ends_with(':') => (h, Some(p)),
        _ => (authority, None),
    };
    let port_ok = port.is_none_or(|p| (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    (port_ok && matches!(host, "127.0.0.1" | "[::1]" | "localhost")).then_some((host, rest))
}

fn same_loopback_but_port(registered: &str, requested: &str) -> bool {
    matches!((loopback_parts(registered), loopback_parts(requested)), (Some(a), Some(b)) if a == b)
}

/// RFC 7636 §4.2-4.3: only `S256`; required for public clients.
fn pkce_challenge(q: &Params, client: &Client) -> Result<Option<String>> {
    let challenge = q.get("code_challenge");
    match (challenge, q.get("code_challenge_method")) {
        (None, Some(_)) => Err(OAuthError::invalid_request("code_challenge_method without code_challenge")),
        (None, None) if client.is_public() => {
            Err(OAuthError::invalid_request("public clients must use PKCE (code_challenge with S256)"))
        }
        (None, None) => Ok(None),
        (Some(_), None | Some("plain")) => Err(OAuthError::invalid_request("code_challenge_method must be S256")),
        (Some(_), Some(m)) if m != "S256" => Err(OAuthError::invalid_request("code_challenge_method must be S256")),
        (Some(c), Some(_)) => {
            let valid = c.len() == 43 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if valid { Ok(Some(c.to_owned())) } else { Err(OAuthError::invalid_request("code_challenge is malformed")) }
        }
    }
}

/// RFC 9449 §10: `dpop_jkt`, the base64url SHA-256 JWK thumbprint (RFC 7638) of the DPoP key
/// the code is to be bound to: 43 characters of the URL-safe alphabet.
fn dpop_jkt(q: &Params) -> Result<Option<String>> {
    match q.get("dpop_jkt") {
        None => Ok(None),
        Some(j) if j.len() == 43 && j.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') => {
            Ok(Some(j.to_owned()))
        }
        Some(_) => Err(OAuthError::invalid_request("dpop_jkt must be a base64url SHA-256 JWK thumbprint")),
    }
}

/// The remaining checks (each answered by redirect) and the pending record.
async fn pending_from(
    state: &AppState,
    q: &Params,
    client: &Client,
    target: &ClientTarget,
    nonce: &str,
) -> Result<(PendingAuthorization, String)> {
    // First, so that no other error echoes an oversized `state` into the redirect.
    if target.state.as_ref().is_some_and(|s| s.len() > 1024) {
        return Err(OAuthError::invalid_request("state is longer than 1024 characters"));
    }
    match q.get("response_type") {
        None => return Err(OAuthError::invalid_request("missing parameter `response_type`")),
        Some("code") => {}
        Some(_) => return Err(OAuthError::UnsupportedResponseType),
    }
    // OAuth 2.0 Multiple Response Type Encoding Practices §2.1: the code goes in the query
    // (`response_modes_supported` in the metadata). A client that asked for another mode
    // (`form_post`, `fragment`, JARM's `jwt`) is told, not silently sent the code in a URL.
    if q.get("response_mode").is_some_and(|m| m != "query") {
        return Err(OAuthError::invalid_request("response_mode: only query is supported"));
    }
    ensure_grant_allowed(client, GrantType::AuthorizationCode)?;
    let scope = crate::grants::parse_scope(q)?;
    let resource = crate::grants::requested_resource(q)?;
    let code_challenge = pkce_challenge(q, client)?;
    let dpop_jkt = dpop_jkt(q)?;
    let grant = decide_grant(state, client, scope.as_ref(), resource.as_deref()).await?;
    let csrf = crate::crypto::random_token();
    let now = state.clock.now();
    let pending = PendingAuthorization {
        id: crate::crypto::random_token().into(),
        csrf_digest: crate::crypto::digest(&csrf),
        browser_digest: crate::crypto::digest(nonce),
        client_id: client.client_id.clone(),
        redirect_uri: target.redirect_uri.clone(),
        redirect_uri_in_request: q.has("redirect_uri"),
        state: target.state.clone(),
        scope: grant.scope,
        audience: grant.audience,
        code_challenge,
        dpop_jkt,
        username: None,
        signed_in_at: None,
        created_at: now,
        expires_at: now + state.config.login_ttl as i64,
    };
    state.store.put_pending(&pending).await?;
    Ok((pending, csrf))
}
