//! `POST /authorize/login` and `POST /authorize/consent`: sign-in with lockout, consent with
//! persistence (OAM seed: consent management), and the authorization code (RFC 6749 §4.1.2).
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::Response;

use super::page_for;
use super::pages::{self, Consent, Login};
use super::request::ClientTarget;
use crate::audit::{self, AuditEvent};
use crate::http::{self, Params};
use crate::model::{AuthorizationCode, Client, PendingAuthorization, Scope, User};
use crate::{AppState, OAuthError, Result};

/// The cookie binding pending requests to the browser that opened them: `__Host-` prefixed and
/// `Secure` on https issuers; plain on loopback http (the local server).
///
/// Its value is a random nonce of the browser, not of one request: each pending request stores
/// the nonce's digest, and its forms carry the request's id and CSRF secret. So every tab of a
/// browser can have a sign-in under way (a second `/authorize` keeps the nonce, and with it the
/// first tab's request), while a form posted from another browser (login CSRF, RFC 6749 §10.12)
/// matches no request of its own.
fn cookie_name(state: &AppState) -> &'static str {
    if secure(state) { "__Host-gatehouse-authz" } else { "gatehouse-authz" }
}

fn secure(state: &AppState) -> bool {
    state.config.issuer.starts_with("https://")
}

fn set_cookie(state: &AppState, resp: &mut Response, value: &str, max_age: u64) {
    let attrs = if secure(state) { "; Secure" } else { "" };
    let c = format!("{}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{attrs}", cookie_name(state));
    if let Ok(v) = HeaderValue::from_str(&c) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// The browser's nonce from the cookie, if it holds one in the form [`new_nonce`] makes (a value
/// of any other form is no nonce of ours).
pub(super) fn browser_nonce<'a>(state: &AppState, parts: &'a Parts) -> Option<&'a str> {
    let name = cookie_name(state);
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| v.len() == NONCE_LEN && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
}

/// Length of a browser nonce: 256 random bits, base64url.
const NONCE_LEN: usize = 43;

/// A new browser nonce.
pub(super) fn new_nonce() -> String {
    crate::crypto::random_token()
}

/// The value of the forms' hidden `csrf` field: the pending request's id and its CSRF secret.
pub(super) fn form_token(pending: &PendingAuthorization, secret: &str) -> String {
    format!("{}.{secret}", *pending.id)
}

/// The sign-in page; on first display with the browser's nonce (`nonce`) in the cookie, its
/// lifetime renewed.
///
/// A refused sign-in shows the page again with its message and status 200, as Keycloak does:
/// a 401 must carry a `WWW-Authenticate` challenge (RFC 9110 §15.5.2), and an HTML form is no
/// HTTP authentication scheme. The failure is in the audit line, not the status.
pub(super) fn show_login(
    state: &AppState,
    client: &Client,
    csrf: &str,
    error: Option<&str>,
    username: &str,
    nonce: Option<&str>,
) -> Response {
    let name = client.client_name.as_deref().unwrap_or(&client.client_id);
    let mut resp = pages::page(
        StatusCode::OK,
        &Login { base: state.config.issuer_path(), client_name: name, csrf, username, error },
    );
    if let Some(nonce) = nonce {
        set_cookie(state, &mut resp, nonce, state.config.login_ttl);
    }
    resp
}

fn expired() -> OAuthError {
    OAuthError::invalid_request("this sign-in page has expired or was already used; return to the application")
}

/// The pending request the form names, if the form's CSRF secret is the request's and the
/// browser's nonce is the one that opened it.
async fn load(state: &AppState, parts: &Parts, form: &Params) -> Result<PendingAuthorization> {
    let nonce = browser_nonce(state, parts).ok_or_else(expired)?;
    let csrf = form.get("csrf").ok_or_else(|| OAuthError::invalid_request("the form is missing its CSRF token"))?;
    // A form of the previous version (its token alone, no id) names no request any more.
    let (id, secret) = csrf.split_once('.').ok_or_else(expired)?;
    let pending = state.store.get_pending(id, state.clock.now()).await?.ok_or_else(expired)?;
    if !crate::crypto::ct_eq(&crate::crypto::digest(secret), &pending.csrf_digest) {
        return Err(OAuthError::invalid_request("the form's CSRF token does not match"));
    }
    // Another browser's request (login CSRF), or one whose nonce was replaced: two first
    // requests of a browser that had no cookie yet race, and the last `Set-Cookie` wins.
    if !crate::crypto::ct_eq(&crate::crypto::digest(nonce), &pending.browser_digest) {
        return Err(OAuthError::invalid_request(
            "this sign-in was started in another browser or window; return to the application and start again",
        ));
    }
    Ok(pending)
}

async fn client_of(state: &AppState, pending: &PendingAuthorization) -> Result<Arc<Client>> {
    state.client(&pending.client_id).await?.ok_or_else(|| OAuthError::invalid_request("the client no longer exists"))
}

fn target(pending: &PendingAuthorization) -> ClientTarget {
    ClientTarget { redirect_uri: pending.redirect_uri.clone(), state: pending.state.clone() }
}

pub(super) async fn login(State(state): State<AppState>, req: Request<Body>) -> Response {
    match try_login(&state, req).await {
        Ok(r) => r,
        Err(e) => page_for(e),
    }
}

async fn try_login(state: &AppState, req: Request<Body>) -> Result<Response> {
    let (parts, form) = http::read_form(req).await?;
    let mut pending = load(state, &parts, &form).await?;
    let client = registered_client(state, &pending).await?;
    let csrf = form.require("csrf")?;
    let (username, password) = (form.get("username").unwrap_or(""), form.get("password").unwrap_or(""));
    // The sign-in's time is when it began: the record it checks was read then, and the password
    // hashing may wait for a slot. What changed meanwhile is read again below.
    let started = state.clock.now();
    let user = match crate::users::sign_in(state, username, password).await? {
        Ok(u) => u,
        Err(e) => return Ok(show_login(state, &client, csrf, Some(e.message()), username, None)),
    };
    pending.username = Some(user.username.clone());
    pending.signed_in_at = Some(started);
    let user = current_user(state, &user.username).await?;
    still_signed_in(state, &pending, &user, true).await?;
    if !needs_consent(state, &pending, &client, &user).await? {
        return finish(state, &pending).await;
    }
    if !state.store.update_pending(&pending).await? {
        return Err(expired());
    }
    let scopes = describe(state, &pending).await?;
    let name = client.client_name.as_deref().unwrap_or(&client.client_id);
    Ok(pages::page(
        StatusCode::OK,
        &Consent { base: state.config.issuer_path(), client_name: name, username: &user.username, csrf, scopes },
    ))
}

/// Consent is skipped when the tenant turned consent management off (identity-domain settings),
/// or when every requested scope is pre-approved for the client or was approved by this user
/// before for the same resource (the request's audience: the same scope name at another
/// resource server is another permission). A request with no scope needs a prior consent for
/// its resource.
async fn needs_consent(state: &AppState, p: &PendingAuthorization, client: &Client, user: &User) -> Result<bool> {
    if !state.settings().await?.consent_enabled {
        return Ok(false);
    }
    let prior = current_consent(state, user, &client.client_id).await?;
    let approved = prior.as_ref().and_then(|c| c.resources.get(&p.audience));
    let covered = |t: &str| client.pre_approved_scopes.contains(t) || approved.is_some_and(|s| s.contains(t));
    let all_covered = p.scope.iter().all(covered);
    Ok(!(all_covered && (approved.is_some() || !p.scope.is_empty())))
}

/// The user's consent for the client, if it stands (`User::consent_stands`: this user gave it
/// and did not withdraw it).
async fn current_consent(state: &AppState, user: &User, client_id: &str) -> Result<Option<crate::model::Consent>> {
    let prior = state.store.get_consent(&user.username, client_id).await?;
    Ok(prior.filter(|c| user.consent_stands(c)))
}

/// The user who signed in, as stored now: one deleted or disabled since is refused.
async fn current_user(state: &AppState, username: &str) -> Result<User> {
    match state.store.get_user(username).await? {
        Some(u) if u.enabled => Ok(u),
        _ => Err(OAuthError::invalid_request("the user who signed in no longer exists or was disabled")),
    }
}

/// Whether the sign-in of `p` still stands for `user` (read after it): a revocation of every
/// token of the user (everywhere, or at the client: also a withdrawn consent) made at or after
/// the sign-in ends it, like the codes and tokens it would have led to
/// (`User::revoked_with_all`), and so does a user created after it (the one who signed in was
/// deleted, and another took the name). So a consent page left open never yields a code, nor
/// records the consent again. The request is over (deleted), except for a sign-in (`at_sign_in`)
/// in the revocation's very second: 503, and the form can be sent again a moment later.
async fn still_signed_in(state: &AppState, p: &PendingAuthorization, user: &User, at_sign_in: bool) -> Result<()> {
    let signed_in = p.signed_in_at.unwrap_or(p.created_at);
    let revoked = user.revoked_with_all(&p.client_id, signed_in);
    if !revoked && user.created_at <= signed_in {
        return Ok(());
    }
    if at_sign_in && revoked && signed_in >= state.clock.now() {
        return Err(OAuthError::TemporarilyUnavailable(
            "every token of this user was revoked this second; send the form again".into(),
        ));
    }
    state.store.delete_pending(&p.id).await?;
    Err(OAuthError::invalid_request(if revoked {
        "every token of this user was revoked since this sign-in; return to the application and start again"
    } else {
        "the user who signed in no longer exists; return to the application and start again"
    }))
}

/// Each requested scope with the description its resource server gives (the audience's first).
async fn describe(state: &AppState, p: &PendingAuthorization) -> Result<Vec<(String, Option<String>)>> {
    let mut servers = state.store.list_resource_servers().await?;
    servers.sort_by_key(|rs| rs.identifier != p.audience);
    Ok(p.scope
        .iter()
        .map(|t| {
            let d = servers
                .iter()
                .flat_map(|rs| rs.scopes.iter())
                .find(|s| s.name == t)
                .and_then(|s| s.description.clone());
            (t.to_owned(), d)
        })
        .collect())
}

pub(super) async fn consent(State(state): State<AppState>, req: Request<Body>) -> Response {
    match try_consent(&state, req).await {
        Ok(r) => r,
        Err(e) => page_for(e),
    }
}

async fn try_consent(state: &AppState, req: Request<Body>) -> Result<Response> {
    let (parts, form) = http::read_form(req).await?;
    let pending = load(state, &parts, &form).await?;
    let username = pending.username.clone().ok_or_else(expired)?;
    match form.get("decision") {
        Some("approve") => {}
        Some("deny") => {
            if !state.store.delete_pending(&pending.id).await? {
                return Err(expired());
            }
            audit::record(AuditEvent::AccessDenied { username, client_id: pending.client_id.clone() });
            let e = OAuthError::AccessDenied;
            return Ok(target(&pending).error(state, StatusCode::SEE_OTHER, &e));
        }
        _ => return Err(OAuthError::invalid_request("decision must be approve or deny")),
    }
    let user = current_user(state, &username).await?;
    still_signed_in(state, &pending, &user, false).await?;
    let prior = current_consent(state, &user, &pending.client_id).await?;
    let merged = Scope::from_tokens(prior.iter().flat_map(|c| c.scope.iter()).chain(pending.scope.iter()));
    let mut resources = prior.map(|c| c.resources).unwrap_or_default();
    let for_resource = resources.get(&pending.audience).into_iter().flat_map(|s| s.iter());
    let for_resource = Scope::from_tokens(for_resource.chain(pending.scope.iter()));
    resources.insert(pending.audience.clone(), for_resource);
    let consent = crate::model::Consent {
        username: username.clone(),
        client_id: pending.client_id.clone(),
        scope: merged,
        resources,
        // The sign-in's time, not the approval's: a withdrawal of the consent after the sign-in
        // (its cutoff, `current_consent`) covers a consent this approval records even when the
        // two race.
        granted_at: pending.signed_in_at.unwrap_or(pending.created_at),
    };
    // The consent first: if recording it fails (503), the pending request is still there and
    // the user can approve again; the code is issued only with its consent recorded.
    registered_client(state, &pending).await?;
    state.store.put_consent(&consent).await?;
    let resp = finish(state, &pending).await?;
    audit::record(AuditEvent::ConsentGranted {
        username,
        client_id: pending.client_id.clone(),
        scope: pending.scope.to_string(),
    });
    Ok(resp)
}

/// The pending request's client, checked again as `/authorize` checked it: sign-in and consent
/// take minutes, and meanwhile the client may have been deleted, lost the code grant or the
/// redirect URI. A code goes only to a redirect URI registered when it is issued (RFC 6749
/// §3.1.2.3; RFC 9700 §4.1.3); otherwise an error page, and no redirect.
async fn registered_client(state: &AppState, p: &PendingAuthorization) -> Result<Arc<Client>> {
    let client = client_of(state, p).await?;
    if !client.grant_types.contains(&crate::model::GrantType::AuthorizationCode)
        || !super::request::is_registered(&client, &p.redirect_uri)
    {
        return Err(OAuthError::invalid_request(
            "the client's registration changed during sign-in; return to the application and start again",
        ));
    }
    Ok(client)
}

/// Consumes the pending request (exactly once) and redirects with a new code. The caller checked
/// the client in this request ([`registered_client`]).
async fn finish(state: &AppState, p: &PendingAuthorization) -> Result<Response> {
    if !state.store.delete_pending(&p.id).await? {
        return Err(expired());
    }
    let username = p.username.clone().ok_or_else(expired)?;
    let code = crate::crypto::opaque_token();
    let now = state.clock.now();
    let record = AuthorizationCode {
        id: crate::crypto::opaque_token_id(&code),
        client_id: p.client_id.clone(),
        redirect_uri: p.redirect_uri.clone(),
        redirect_uri_in_request: p.redirect_uri_in_request,
        username: username.clone(),
        scope: p.scope.clone(),
        audience: p.audience.clone(),
        code_challenge: p.code_challenge.clone(),
        dpop_jkt: p.dpop_jkt.clone(),
        family: crate::crypto::time_ordered_id(),
        issued_at: now,
        signed_in_at: Some(p.signed_in_at.unwrap_or(p.created_at)),
        expires_at: now + state.settings().await?.code_ttl as i64,
        consumed_at: None,
        issued: vec![],
    };
    state.store.put_code(&record).await?;
    audit::record(AuditEvent::CodeIssued { client_id: p.client_id.clone(), username, scope: p.scope.to_string() });
    // The cookie stays: other tabs of this browser may have sign-ins under way.
    Ok(target(p).redirect(state, StatusCode::SEE_OTHER, &[("code", &code)]))
}
