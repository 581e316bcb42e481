//! The browser flow, driven in-process: `GET /authorize` (RFC 6749 §4.1.1, RFC 7636 §4.3,
//! RFC 9207), the sign-in page with lockout, the consent page and consent management, and the
//! code exchange at `POST /token` (RFC 6749 §4.1.3, RFC 7636 §4.6, RFC 9700 §4.5), including
//! 20 concurrent redemptions of one code on both backends. The helpers here are shared with
//! `refresh_password` and `users_admin`.
use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse::clock::Clock;
use gatehouse::keys::LocalSigner;
use gatehouse::model::{GrantType, TokenKind};
use gatehouse::{AppState, Config};
use serde_json::{Value, json};

use crate::common::{self, Resp, T0, TestClient, admin, assert_error, form, register, send};

pub(crate) const ISSUER: &str = "https://auth.test.example";
pub(crate) const COOKIE: &str = "__Host-gatehouse-authz";
pub(crate) const REDIRECT: &str = "https://app.example.com/cb";
pub(crate) const PASSWORD: &str = "correct horse battery staple";
/// RFC 7636 Appendix B: a verifier and its S256 challenge (computed independently of Gatehouse).
pub(crate) const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub(crate) const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
pub(crate) const INVALID_CREDENTIALS: &str = "The username or password is incorrect.";
pub(crate) const LOCKED: &str = "Too many failed sign-in attempts. Try again later.";
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'";
const EXPIRED: &str = "this sign-in page has expired or was already used; return to the application";
pub(crate) const ANOTHER_BROWSER: &str =
    "this sign-in was started in another browser or window; return to the application and start again";

// ---------------------------------------------------------------- shared helpers

/// Form-encodes one value.
pub(crate) fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A browser GET.
pub(crate) fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

/// A browser form POST, with the cookie (`name=value`) when given.
pub(crate) fn browser_post(path: &str, cookie: Option<&str>, body: &str) -> Request<Body> {
    let mut b = Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    b.body(Body::from(body.to_owned())).unwrap()
}

/// Creates a resource owner through the admin API.
pub(crate) async fn create_user(app: &Router, username: &str, password: &str) {
    let r = send(app, admin("POST", "/admin/users", Some(json!({"username": username, "password": password})))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

/// A public client (PKCE) with the code and refresh grants, scopes `read write`.
pub(crate) async fn public_client(app: &Router) -> TestClient {
    register(
        app,
        json!({"client_name": "Photo App", "grant_types": ["authorization_code", "refresh_token"],
               "token_endpoint_auth_method": "none", "redirect_uris": [REDIRECT], "scope": "read write"}),
    )
    .await
}

/// A confidential (Basic) client with the code and refresh grants, scopes `read write`.
pub(crate) async fn confidential_client(app: &Router) -> TestClient {
    register(
        app,
        json!({"client_name": "Web App", "grant_types": ["authorization_code", "refresh_token"],
               "redirect_uris": [REDIRECT], "scope": "read write"}),
    )
    .await
}

/// A resource server describing `read` and `write`.
pub(crate) async fn resource_server(app: &Router) {
    let r = send(
        app,
        admin(
            "POST",
            "/admin/resource-servers",
            Some(json!({"identifier": "https://api.example.com", "name": "Files API", "scopes": [
                {"name": "read", "description": "Read your files"},
                {"name": "write", "description": "Change & delete your <files>"}
            ]})),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

/// The authorization request a public client sends (PKCE S256, state `xyz`).
pub(crate) fn pkce_query(client_id: &str, extra: &str) -> String {
    format!(
        "response_type=code&client_id={}&redirect_uri={}&state=xyz&code_challenge={CHALLENGE}&code_challenge_method=S256{extra}",
        enc(client_id),
        enc(REDIRECT)
    )
}

/// A displayed sign-in page: the cookie to send back (`name=value`), its CSRF token, the page.
pub(crate) struct SignIn {
    pub cookie: String,
    pub csrf: String,
    pub page: Resp,
}

/// Every `Set-Cookie` header of a response.
pub(crate) fn set_cookies(r: &Resp) -> Vec<String> {
    r.headers.get_all(header::SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_owned()).collect()
}

/// The value of the hidden `csrf` input of a page.
pub(crate) fn csrf_of(html: &str) -> String {
    let marker = "<input type=\"hidden\" name=\"csrf\" value=\"";
    let start = html.find(marker).unwrap_or_else(|| panic!("no csrf input in {html}")) + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

/// `GET /authorize?{query}`: asserts the sign-in page and returns its cookie and CSRF token.
pub(crate) async fn open(app: &Router, query: &str) -> SignIn {
    let page = send(app, get(&format!("/authorize?{query}"))).await;
    assert_eq!(page.status, StatusCode::OK, "{:?} {}", page.headers.get(header::LOCATION), page.text);
    let cookies = set_cookies(&page);
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    let cookie = cookies[0].split(';').next().unwrap().to_owned();
    assert!(cookie.starts_with(&format!("{COOKIE}=")), "{cookie}");
    let csrf = csrf_of(&page.text);
    SignIn { cookie, csrf, page }
}

/// `POST /authorize/login` with the page's cookie and CSRF token.
pub(crate) async fn sign_in(app: &Router, s: &SignIn, username: &str, password: &str) -> Resp {
    let body = format!("csrf={}&username={}&password={}", enc(&s.csrf), enc(username), enc(password));
    send(app, browser_post("/authorize/login", Some(&s.cookie), &body)).await
}

/// `POST /authorize/consent` with `decision`.
pub(crate) async fn decide(app: &Router, s: &SignIn, decision: &str) -> Resp {
    let body = format!("csrf={}&decision={decision}", enc(&s.csrf));
    send(app, browser_post("/authorize/consent", Some(&s.cookie), &body)).await
}

/// A redirect's Location: the URL before `?` and its query parameters (each exactly once).
pub(crate) fn location(r: &Resp) -> (String, BTreeMap<String, String>) {
    let loc = r.header("location").unwrap_or_else(|| panic!("no Location: {} {}", r.status, r.text));
    let (base, query) = loc.split_once('?').unwrap_or((loc, ""));
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let map: BTreeMap<String, String> = pairs.iter().cloned().collect();
    assert_eq!(map.len(), pairs.len(), "a repeated parameter in {loc}");
    (base.to_owned(), map)
}

/// The exact parameters of a redirect.
pub(crate) fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// A 303 to the client with `code`, `state=xyz` and `iss`: returns the code.
pub(crate) fn code_from(r: &Resp) -> String {
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let (base, q) = location(r);
    assert_eq!(base, REDIRECT);
    let code = q.get("code").unwrap_or_else(|| panic!("no code in {q:?}")).clone();
    assert_eq!(q, params(&[("code", &code), ("state", "xyz"), ("iss", ISSUER)]));
    assert_eq!(code.len(), 51, "a time prefix and 256 random bits, base64url");
    code
}

/// The whole browser flow for `query` (approving when the consent page is shown): the code.
pub(crate) async fn code_for(app: &Router, query: &str, username: &str, password: &str) -> String {
    let s = open(app, query).await;
    let mut r = sign_in(app, &s, username, password).await;
    if r.status == StatusCode::OK {
        r = decide(app, &s, "approve").await;
    }
    code_from(&r)
}

/// A public client's code exchange with the RFC 7636 verifier.
pub(crate) async fn exchange_public(app: &Router, c: &TestClient, code: &str) -> Resp {
    let body = format!(
        "grant_type=authorization_code&code={}&redirect_uri={}&client_id={}&code_verifier={VERIFIER}",
        enc(code),
        enc(REDIRECT),
        enc(&c.id)
    );
    send(app, form("/token", None, &body)).await
}

/// Signs `username` in through the pages as `c` (public, PKCE) and exchanges the code: the
/// token response body.
pub(crate) async fn tokens_for(app: &Router, c: &TestClient, username: &str, extra: &str) -> Value {
    let code = code_for(app, &pkce_query(&c.id, extra), username, PASSWORD).await;
    let r = exchange_public(app, c, &code).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body
}

/// A JWT's payload.
pub(crate) fn claims(jwt: &str) -> Value {
    let p = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap()
}

/// A confidential client that only introspects.
pub(crate) async fn introspector(app: &Router) -> TestClient {
    register(app, json!({"grant_types": ["client_credentials"], "client_name": "resource server"})).await
}

/// `POST /introspect` as `caller`.
pub(crate) async fn introspect(app: &Router, caller: &TestClient, token: &str) -> Resp {
    send(app, form("/introspect", Some(&caller.basic()), &format!("token={}", enc(token)))).await
}

/// Asserts `{"active": false}`.
pub(crate) async fn assert_inactive(app: &Router, caller: &TestClient, token: &str) {
    let r = introspect(app, caller, token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body, json!({"active": false}), "{}", r.text);
}

/// Asserts the token is active (introspection).
pub(crate) async fn assert_active(app: &Router, caller: &TestClient, token: &str) {
    let r = introspect(app, caller, token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["active"], true, "{}", r.text);
}

/// Decodes the character references an HTML template may emit (`&#60;`, `&#x3c;`, `&lt;`, ...).
pub(crate) fn unescape(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find(';').filter(|e| *e <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let name = &rest[1..end];
        let c = match name {
            "lt" => Some('<'),
            "gt" => Some('>'),
            "amp" => Some('&'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ if name.starts_with("#x") || name.starts_with("#X") => {
                u32::from_str_radix(&name[2..], 16).ok().and_then(char::from_u32)
            }
            _ if name.starts_with('#') => name[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match c {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The text of the element that starts with `open` (up to the next `</`), unescaped.
pub(crate) fn element_text(html: &str, open: &str) -> Option<String> {
    let start = html.find(open)? + open.len();
    let end = html[start..].find("</")?;
    Some(unescape(&html[start..start + end]))
}

/// The headers every page carries.
pub(crate) fn assert_page_headers(r: &Resp) {
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"), "{:?}", r.headers);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("pragma"), Some("no-cache"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert_eq!(r.header("content-security-policy"), Some(CSP));
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
}

/// The error page: exact status, headers, never a Location, the description and code shown.
pub(crate) fn assert_error_page(r: &Resp, status: StatusCode, code: &str, description: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_page_headers(r);
    assert_eq!(r.header("location"), None, "an error page never redirects");
    assert!(r.text.contains("<h1>This sign-in request cannot be completed</h1>"), "{}", r.text);
    assert_eq!(element_text(&r.text, "<p class=\"error\" role=\"alert\">").as_deref(), Some(description), "{}", r.text);
    assert!(r.text.contains(&format!("Error code: <code>{code}</code>")), "{}", r.text);
}

/// The sign-in page again, with the error text: 200 (a 401 would need a `WWW-Authenticate`
/// challenge, RFC 9110 §15.5.2), no challenge, no new cookie.
pub(crate) fn assert_sign_in_refused(r: &Resp, text: &str) {
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.header("www-authenticate"), None);
    assert_page_headers(r);
    assert_eq!(
        element_text(&r.text, "<p class=\"error\" role=\"alert\" id=\"error\">").as_deref(),
        Some(text),
        "{}",
        r.text
    );
    assert!(r.text.contains("<form method=\"post\" action=\"/authorize/login\">"), "{}", r.text);
    assert_eq!(set_cookies(r), Vec::<String>::new());
}

/// Audit lines captured so far whose JSON mentions `needle`.
pub(crate) fn audit_lines(needle: &str) -> Vec<Value> {
    gatehouse::audit::captured().into_iter().filter(|l| l.to_string().contains(needle)).collect()
}

/// The ids of those lines.
pub(crate) fn audit_ids(needle: &str) -> Vec<u64> {
    audit_lines(needle).iter().map(|l| l["event_id"].as_u64().unwrap()).collect()
}

// ---------------------------------------------------------------- GET /authorize: before validation

#[tokio::test]
async fn bad_client_or_redirect_uri_shows_an_error_page_and_never_redirects() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = public_client(&app).await;
    let two = register(
        &app,
        json!({"grant_types": ["authorization_code"], "token_endpoint_auth_method": "none",
               "redirect_uris": [REDIRECT, "https://app.example.com/other"], "scope": "read"}),
    )
    .await;
    let pkce = format!("&state=xyz&code_challenge={CHALLENGE}&code_challenge_method=S256");
    let not_registered = "redirect_uri is missing or not registered for this client";
    let cases: Vec<(String, &str)> = vec![
        (format!("response_type=code&redirect_uri={}{pkce}", enc(REDIRECT)), "missing parameter `client_id`"),
        (format!("response_type=code&client_id=nope&redirect_uri={}{pkce}", enc(REDIRECT)), "unknown client_id"),
        // Unknown client with other errors too: still the page.
        (format!("response_type=token&client_id=nope&redirect_uri={}", enc(REDIRECT)), "unknown client_id"),
        (
            format!("response_type=code&client_id={}&redirect_uri={}{pkce}", c.id, enc("https://evil.example/cb")),
            not_registered,
        ),
        (
            format!("response_type=code&client_id={}&redirect_uri={}{pkce}", c.id, enc("https://app.example.com/cc")),
            not_registered,
        ),
        (
            format!("response_type=code&client_id={}&redirect_uri={}{pkce}", c.id, enc("https://app.example.com/cb/")),
            not_registered,
        ),
        (
            format!("response_type=code&client_id={}&redirect_uri={}{pkce}", c.id, enc("https://app.example.com/CB")),
            not_registered,
        ),
        (
            format!("response_type=code&client_id={}&redirect_uri={}{pkce}", c.id, enc("https://APP.example.com/cb")),
            not_registered,
        ),
        (
            format!(
                "response_type=code&client_id={}&redirect_uri={}{pkce}",
                c.id,
                enc("https://app.example.com/cb?x=1")
            ),
            not_registered,
        ),
        (
            format!("response_type=code&client_id={}&redirect_uri={}{pkce}", c.id, enc("http://app.example.com/cb")),
            not_registered,
        ),
        // Invalid redirect URI and an invalid response_type: the redirect URI wins.
        (
            format!("response_type=token&client_id={}&redirect_uri={}", c.id, enc("https://evil.example/cb")),
            not_registered,
        ),
        // A repeated parameter (RFC 6749 §3.1): nothing can be trusted, so no redirect.
        (
            format!("response_type=code&client_id={}&client_id={}&redirect_uri={}{pkce}", c.id, c.id, enc(REDIRECT)),
            "parameter `client_id` is repeated",
        ),
        (
            format!("response_type=code&client_id={}&redirect_uri={}&state=a&state=b", c.id, enc(REDIRECT)),
            "parameter `state` is repeated",
        ),
        // Two registered: redirect_uri is required.
        (format!("response_type=code&client_id={}{pkce}", two.id), not_registered),
    ];
    for (query, description) in cases {
        let r = send(&app, get(&format!("/authorize?{query}"))).await;
        assert_error_page(&r, StatusCode::BAD_REQUEST, "invalid_request", description);
        assert_eq!(set_cookies(&r), Vec::<String>::new(), "{query}");
    }
    // The second registered URI of the two works when named.
    let q =
        format!("response_type=code&client_id={}&redirect_uri={}{pkce}", two.id, enc("https://app.example.com/other"));
    open(&app, &q).await;
}

#[tokio::test]
async fn one_registered_redirect_uri_may_be_omitted() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = public_client(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    let q = format!(
        "response_type=code&client_id={}&state=xyz&code_challenge={CHALLENGE}&code_challenge_method=S256",
        c.id
    );
    let code = code_for(&app, &q, "alice", PASSWORD).await;
    // Not sent in the authorization request: the token request may omit it too.
    let body = format!("grant_type=authorization_code&code={code}&client_id={}&code_verifier={VERIFIER}", c.id);
    let r = send(&app, form("/token", None, &body)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let stored =
        state.store.get_code(&gatehouse::crypto::opaque_token_id(&code), state.clock.now()).await.unwrap().unwrap();
    assert_eq!((stored.redirect_uri.as_str(), stored.redirect_uri_in_request), (REDIRECT, false));
}

// ---------------------------------------------------------------- GET /authorize: after validation

#[tokio::test]
async fn errors_after_validation_redirect_with_error_state_and_iss() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    resource_server(&app).await;
    let public = public_client(&app).await;
    let conf = confidential_client(&app).await;
    let no_code_grant =
        register(&app, json!({"grant_types": ["client_credentials"], "redirect_uris": [REDIRECT], "scope": "read"}))
            .await;
    let redirect = enc(REDIRECT);
    let s256 = format!("code_challenge={CHALLENGE}&code_challenge_method=S256");
    let p = &public.id;
    let long_state = "s".repeat(1025);
    let cases: Vec<(String, &str, &str)> = vec![
        (
            format!("client_id={p}&redirect_uri={redirect}&state=xyz&{s256}"),
            "invalid_request",
            "missing parameter `response_type`",
        ),
        (
            format!("response_type=token&client_id={p}&redirect_uri={redirect}&state=xyz&{s256}"),
            "unsupported_response_type",
            "the response_type is not supported",
        ),
        (
            format!("response_type=code%20token&client_id={p}&redirect_uri={redirect}&state=xyz&{s256}"),
            "unsupported_response_type",
            "the response_type is not supported",
        ),
        (
            format!("response_type=code&client_id={}&redirect_uri={redirect}&state=xyz&{s256}", no_code_grant.id),
            "unauthorized_client",
            "the client is not allowed to use authorization_code",
        ),
        (
            format!("response_type=code&client_id={p}&redirect_uri={redirect}&state=xyz&{s256}&scope=read%20admin"),
            "invalid_scope",
            "the requested scope exceeds the client's allowed scopes",
        ),
        (
            format!(
                "response_type=code&client_id={p}&redirect_uri={redirect}&state=xyz&{s256}&resource={}",
                enc("https://unknown.example.com")
            ),
            "invalid_target",
            "the resource is not a registered resource server",
        ),
        (
            format!("response_type=code&client_id={p}&redirect_uri={redirect}&state=xyz"),
            "invalid_request",
            "public clients must use PKCE (code_challenge with S256)",
        ),
        (
            format!(
                "response_type=code&client_id={p}&redirect_uri={redirect}&state=xyz&code_challenge={CHALLENGE}&code_challenge_method=plain"
            ),
            "invalid_request",
            "code_challenge_method must be S256",
        ),
        (
            format!("response_type=code&client_id={p}&redirect_uri={redirect}&state=xyz&code_challenge={CHALLENGE}"),
            "invalid_request",
            "code_challenge_method must be S256",
        ),
        (
            format!(
                "response_type=code&client_id={}&redirect_uri={redirect}&state=xyz&code_challenge={CHALLENGE}&code_challenge_method=plain",
                conf.id
            ),
            "invalid_request",
            "code_challenge_method must be S256",
        ),
        (
            format!(
                "response_type=code&client_id={p}&redirect_uri={redirect}&state=xyz&code_challenge=short&code_challenge_method=S256"
            ),
            "invalid_request",
            "code_challenge is malformed",
        ),
        (
            format!(
                "response_type=code&client_id={p}&redirect_uri={redirect}&state=xyz&code_challenge={}&code_challenge_method=S256",
                enc(&format!("{}+", &CHALLENGE[..42]))
            ),
            "invalid_request",
            "code_challenge is malformed",
        ),
        (
            format!("response_type=code&client_id={p}&redirect_uri={redirect}&state=xyz&code_challenge_method=S256"),
            "invalid_request",
            "code_challenge_method without code_challenge",
        ),
        (
            format!(
                "response_type=code&client_id={p}&redirect_uri={redirect}&state=xyz&code_challenge={CHALLENGE}&code_challenge_method=S256&dpop_jkt=short"
            ),
            "invalid_request",
            "dpop_jkt must be a base64url SHA-256 JWK thumbprint",
        ),
        (
            format!(
                "response_type=code&client_id={p}&redirect_uri={redirect}&state=xyz&code_challenge={CHALLENGE}&code_challenge_method=S256&dpop_jkt={}",
                enc(&format!("{}=", &CHALLENGE[..42]))
            ),
            "invalid_request",
            "dpop_jkt must be a base64url SHA-256 JWK thumbprint",
        ),
    ];
    for (query, error, description) in cases {
        let r = send(&app, get(&format!("/authorize?{query}"))).await;
        assert_eq!(r.status, StatusCode::FOUND, "{query}: {}", r.text);
        let (base, q) = location(&r);
        assert_eq!(base, REDIRECT, "{query}");
        assert_eq!(
            q,
            params(&[("error", error), ("error_description", description), ("state", "xyz"), ("iss", ISSUER)]),
            "{query}"
        );
        assert_eq!(r.header("cache-control"), Some("no-store"), "{query}");
        assert_eq!(set_cookies(&r), Vec::<String>::new(), "{query}");
        assert_eq!(r.text, "", "{query}");
    }
    // Without state, none is added.
    let r = send(&app, get(&format!("/authorize?response_type=token&client_id={p}&redirect_uri={redirect}"))).await;
    assert_eq!(r.status, StatusCode::FOUND);
    let (_, q) = location(&r);
    assert_eq!(
        q,
        params(&[
            ("error", "unsupported_response_type"),
            ("error_description", "the response_type is not supported"),
            ("iss", ISSUER)
        ])
    );
    // A state with reserved characters comes back exactly.
    let odd_state = "a b&c=d/é?#%";
    let r = send(
        &app,
        get(&format!("/authorize?response_type=token&client_id={p}&redirect_uri={redirect}&state={}", enc(odd_state))),
    )
    .await;
    assert_eq!(location(&r).1["state"], odd_state);
    let r = send(
        &app,
        get(&format!("/authorize?response_type=code&client_id={p}&redirect_uri={redirect}&state={long_state}&{s256}")),
    )
    .await;
    assert_eq!(r.status, StatusCode::FOUND);
    let (_, q) = location(&r);
    assert_eq!(q["error"], "invalid_request");
    assert_eq!(q["error_description"], "state is longer than 1024 characters");
}

#[tokio::test]
async fn a_registered_redirect_uri_keeps_its_query() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let with_query = "https://app.example.com/cb?tenant=acme";
    let c = register(
        &app,
        json!({"grant_types": ["authorization_code"], "token_endpoint_auth_method": "none",
               "redirect_uris": [with_query], "scope": "read"}),
    )
    .await;
    let r = send(
        &app,
        get(&format!("/authorize?response_type=token&client_id={}&redirect_uri={}&state=xyz", c.id, enc(with_query))),
    )
    .await;
    assert_eq!(r.status, StatusCode::FOUND);
    let (base, q) = location(&r);
    assert_eq!(base, "https://app.example.com/cb");
    assert_eq!(
        q,
        params(&[
            ("tenant", "acme"),
            ("error", "unsupported_response_type"),
            ("error_description", "the response_type is not supported"),
            ("state", "xyz"),
            ("iss", ISSUER)
        ])
    );
}

#[tokio::test]
async fn confidential_client_without_pkce_completes_the_flow() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = confidential_client(&app).await;
    let no_refresh = register(
        &app,
        json!({"grant_types": ["authorization_code"], "redirect_uris": [REDIRECT], "scope": "read write"}),
    )
    .await;
    create_user(&app, "alice", PASSWORD).await;
    for (client, gets_refresh) in [(&c, true), (&no_refresh, false)] {
        let q =
            format!("response_type=code&client_id={}&redirect_uri={}&state=xyz&scope=read", client.id, enc(REDIRECT));
        let code = code_for(&app, &q, "alice", PASSWORD).await;
        let body = format!("grant_type=authorization_code&code={code}&redirect_uri={}", enc(REDIRECT));
        let r = send(&app, form("/token", Some(&client.basic()), &body)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert_eq!(r.header("pragma"), Some("no-cache"));
        let at = r.body["access_token"].as_str().unwrap();
        let mut expected = json!({"access_token": at, "token_type": "Bearer", "expires_in": 3600, "scope": "read"});
        if gets_refresh {
            let rt = r.body["refresh_token"].as_str().expect("a refresh token");
            assert_eq!(rt.len(), 51, "a time prefix and 256 random bits");
            expected["refresh_token"] = json!(rt);
        }
        assert_eq!(r.body, expected, "refresh token only with the refresh_token grant");
        let cl = claims(at);
        assert_eq!(cl["sub"], "alice");
        assert_eq!(cl["client_id"], client.id.as_str());
    }
}

// ---------------------------------------------------------------- the sign-in page

#[tokio::test]
async fn sign_in_page_headers_cookie_and_escaping() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = register(
        &app,
        json!({"client_name": "<script>alert('x')</script> & \"Co\"", "grant_types": ["authorization_code"],
               "token_endpoint_auth_method": "none", "redirect_uris": [REDIRECT], "scope": "read"}),
    )
    .await;
    let s = open(&app, &pkce_query(&c.id, "")).await;
    assert_page_headers(&s.page);
    let cookies = set_cookies(&s.page);
    let value = s.cookie.strip_prefix(&format!("{COOKIE}=")).unwrap();
    assert!(value.len() == 43 && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{value}");
    assert_eq!(cookies, vec![format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age=600; Secure")]);
    // The form names the request (its id) and proves it came from the page (the CSRF secret).
    let (id, secret) = s.csrf.split_once('.').expect("request id . CSRF secret");
    assert_eq!((id.len(), secret.len()), (43, 43), "{}", s.csrf);
    assert!(!s.csrf.contains(value), "the browser's nonce is not in the page");
    let html = &s.page.text;
    assert!(!html.contains("<script") && !html.contains("</script") && !html.contains("\"Co\""), "{html}");
    assert_eq!(
        element_text(html, "<p>to continue to <strong>").as_deref(),
        Some("<script>alert('x')</script> & \"Co\""),
        "escaped, and shown as typed: {html}"
    );
    assert!(html.contains("<form method=\"post\" action=\"/authorize/login\">"), "{html}");
    assert!(html.contains("name=\"username\""), "{html}");
    assert!(html.contains("type=\"password\""), "{html}");
    assert!(!html.contains("id=\"error\""), "{html}");
    // The pending request is server-side, keyed by the id in the form, bound to the browser.
    assert_eq!(state.store.get_pending(value, state.clock.now()).await.unwrap(), None, "the cookie names no request");
    let pending = state.store.get_pending(id, state.clock.now()).await.unwrap().expect("pending stored");
    assert_eq!(pending.client_id, c.id);
    assert_eq!(pending.redirect_uri, REDIRECT);
    assert_eq!(pending.state.as_deref(), Some("xyz"));
    assert_eq!(pending.code_challenge.as_deref(), Some(CHALLENGE));
    assert_eq!(pending.username, None);
    assert_eq!(pending.expires_at, T0 + 600);
    assert_eq!(pending.csrf_digest, gatehouse::crypto::digest(secret), "only a digest of the CSRF secret");
    assert_eq!(pending.browser_digest, gatehouse::crypto::digest(value), "only a digest of the browser's nonce");
}

#[tokio::test]
async fn loopback_http_issuer_uses_a_plain_cookie_without_secure() {
    let config = Config::from_lookup(|k| match k {
        "GATEHOUSE_ISSUER" => Some("http://127.0.0.1:8080".into()),
        "GATEHOUSE_ADMIN_TOKEN" => Some(common::ADMIN.into()),
        _ => None,
    })
    .unwrap();
    let (store, _dir) = common::embedded();
    let state = AppState::new(config, store, Arc::new(LocalSigner::ephemeral()), Clock::manual(T0));
    let app = common::app(&state);
    let c = public_client(&app).await;
    let r = send(&app, get(&format!("/authorize?{}", pkce_query(&c.id, "")))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let cookies = set_cookies(&r);
    assert_eq!(cookies.len(), 1);
    let value = cookies[0].strip_prefix("gatehouse-authz=").unwrap().split(';').next().unwrap();
    assert_eq!(cookies[0], format!("gatehouse-authz={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age=600"));
    // And the redirect carries this issuer.
    create_user(&app, "alice", PASSWORD).await;
    let s = SignIn { cookie: format!("gatehouse-authz={value}"), csrf: csrf_of(&r.text), page: r };
    let r = sign_in(&app, &s, "alice", PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "consent page: {}", r.text);
    let r = decide(&app, &s, "approve").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&r).1["iss"], "http://127.0.0.1:8080");
    assert_eq!(set_cookies(&r), Vec::<String>::new(), "the browser keeps its nonce (other tabs)");
}

#[tokio::test]
async fn wrong_password_and_unknown_user_answer_the_same() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = public_client(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    let s = open(&app, &pkce_query(&c.id, "")).await;

    let wrong = sign_in(&app, &s, "alice", "not the password").await;
    assert_sign_in_refused(&wrong, INVALID_CREDENTIALS);
    assert!(wrong.text.contains("value=\"alice\""), "the username is kept: {}", wrong.text);
    assert_eq!(csrf_of(&wrong.text), s.csrf, "the same pending request");

    let unknown = sign_in(&app, &s, "mallory", "not the password").await;
    assert_sign_in_refused(&unknown, INVALID_CREDENTIALS);
    assert_eq!(unknown.text.replace("value=\"mallory\"", "value=\"alice\""), wrong.text, "identical pages");

    let empty = sign_in(&app, &s, "", "").await;
    assert_sign_in_refused(&empty, INVALID_CREDENTIALS);

    // The typed username is escaped when shown again.
    let odd = sign_in(&app, &s, "\"><script>x</script>", "not the password").await;
    assert_sign_in_refused(&odd, INVALID_CREDENTIALS);
    assert!(!odd.text.contains("<script>"), "{}", odd.text);

    // The page still works with the right password.
    let ok = sign_in(&app, &s, "alice", PASSWORD).await;
    assert_eq!(ok.status, StatusCode::OK, "consent page: {}", ok.text);
    assert!(ok.text.contains("<h1>Allow access?</h1>"), "{}", ok.text);
}

#[tokio::test]
async fn csrf_mismatch_missing_cookie_and_expired_pending_show_the_error_page() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = public_client(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    let s = open(&app, &pkce_query(&c.id, "")).await;
    let login = |csrf: &str| format!("csrf={}&username=alice&password={}", enc(csrf), enc(PASSWORD));

    let other = open(&app, &pkce_query(&c.id, "")).await;
    let r = send(&app, browser_post("/authorize/login", Some(&s.cookie), &login(&other.csrf))).await;
    assert_error_page(&r, StatusCode::BAD_REQUEST, "invalid_request", ANOTHER_BROWSER);
    let (id, _) = s.csrf.split_once('.').unwrap();
    let forged = format!("{id}.{}", gatehouse::crypto::random_token());
    let r = send(&app, browser_post("/authorize/login", Some(&s.cookie), &login(&forged))).await;
    assert_error_page(&r, StatusCode::BAD_REQUEST, "invalid_request", "the form's CSRF token does not match");
    // A form of the previous version (the token alone) names no request.
    let r = send(&app, browser_post("/authorize/login", Some(&s.cookie), &login(id))).await;
    assert_error_page(&r, StatusCode::BAD_REQUEST, "invalid_request", EXPIRED);

    let r = send(
        &app,
        browser_post("/authorize/login", Some(&s.cookie), &format!("username=alice&password={}", enc(PASSWORD))),
    )
    .await;
    assert_error_page(&r, StatusCode::BAD_REQUEST, "invalid_request", "the form is missing its CSRF token");

    let r = send(&app, browser_post("/authorize/login", None, &login(&s.csrf))).await;
    assert_error_page(&r, StatusCode::BAD_REQUEST, "invalid_request", EXPIRED);

    let wrong_name = s.cookie.replace(COOKIE, "gatehouse-authz");
    let r = send(&app, browser_post("/authorize/login", Some(&wrong_name), &login(&s.csrf))).await;
    assert_error_page(&r, StatusCode::BAD_REQUEST, "invalid_request", EXPIRED);

    let r = send(&app, browser_post("/authorize/login", Some(&format!("{COOKIE}=forged")), &login(&s.csrf))).await;
    assert_error_page(&r, StatusCode::BAD_REQUEST, "invalid_request", EXPIRED);

    // Consent before sign-in: the pending request has no user.
    let r = decide(&app, &s, "approve").await;
    assert_error_page(&r, StatusCode::BAD_REQUEST, "invalid_request", EXPIRED);

    // Past GATEHOUSE_LOGIN_TTL (600 s) the pending request is gone.
    state.clock.advance(599);
    let r = sign_in(&app, &other, "alice", "wrong password").await;
    assert_sign_in_refused(&r, INVALID_CREDENTIALS);
    state.clock.advance(2);
    let r = sign_in(&app, &s, "alice", PASSWORD).await;
    assert_error_page(&r, StatusCode::BAD_REQUEST, "invalid_request", EXPIRED);
    let r = sign_in(&app, &other, "alice", PASSWORD).await;
    assert_error_page(&r, StatusCode::BAD_REQUEST, "invalid_request", EXPIRED);

    // Not a form.
    let mut req = browser_post("/authorize/login", Some(&s.cookie), "{}");
    req.headers_mut().insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
    let r = send(&app, req).await;
    assert_error_page(
        &r,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "the body must be application/x-www-form-urlencoded",
    );
}

#[tokio::test]
async fn expired_consent_page_shows_the_error_page() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = public_client(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    let s = open(&app, &pkce_query(&c.id, "")).await;
    state.clock.advance(300);
    assert_eq!(sign_in(&app, &s, "alice", PASSWORD).await.status, StatusCode::OK);
    state.clock.advance(301);
    let r = decide(&app, &s, "approve").await;
    assert_error_page(&r, StatusCode::BAD_REQUEST, "invalid_request", EXPIRED);
    assert_eq!(state.store.get_consent("alice", &c.id).await.unwrap(), None);
}

#[tokio::test]
async fn lockout_refuses_even_the_right_password_for_known_and_unknown_users_then_cools_down() {
    gatehouse::audit::start_capture();
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = public_client(&app).await;
    let user = format!("lock-{}", gatehouse::crypto::random_id());
    let ghost = format!("ghost-{}", gatehouse::crypto::random_id());
    create_user(&app, &user, PASSWORD).await;
    let s = open(&app, &pkce_query(&c.id, "")).await;

    for name in [&user, &ghost] {
        for attempt in 1..=5 {
            let r = sign_in(&app, &s, name, "wrong password").await;
            // The fifth failure reaches the threshold (GATEHOUSE_LOCKOUT_THRESHOLD=5) and locks.
            assert_sign_in_refused(&r, if attempt < 5 { INVALID_CREDENTIALS } else { LOCKED });
        }
        // The sixth, with the right password (for the real user) or not: refused, same text.
        let r = sign_in(&app, &s, name, PASSWORD).await;
        assert_sign_in_refused(&r, LOCKED);
    }
    // Usernames are locked case-insensitively.
    let r = sign_in(&app, &s, &user.to_uppercase(), PASSWORD).await;
    assert_sign_in_refused(&r, LOCKED);

    // Still locked just before the cool-down (GATEHOUSE_LOCKOUT_COOLDOWN=900 s) ends (a fresh
    // page: the first one expired after 600 s).
    state.clock.advance(899);
    let s = open(&app, &pkce_query(&c.id, "")).await;
    assert_sign_in_refused(&sign_in(&app, &s, &user, PASSWORD).await, LOCKED);
    state.clock.advance(2);
    let r = sign_in(&app, &s, &user, PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "signed in after the cool-down: {}", r.text);
    assert!(r.text.contains("<h1>Allow access?</h1>"));

    let ids = audit_ids(&user);
    assert_eq!(ids.iter().filter(|i| **i == 21006).count(), 1, "{ids:?}");
    assert!(ids.iter().filter(|i| **i == 21005).count() >= 7, "{ids:?}");
    let ghost_ids = audit_ids(&ghost);
    assert_eq!(ghost_ids.iter().filter(|i| **i == 21006).count(), 1, "{ghost_ids:?}");
    let reasons: Vec<String> = audit_lines(&user)
        .iter()
        .filter(|l| l["event_id"] == 21005)
        .map(|l| l["reason"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        reasons.contains(&"locked".to_owned()) && reasons.contains(&"invalid credentials".to_owned()),
        "{reasons:?}"
    );
    for l in audit_lines(&user) {
        assert!(!l.to_string().contains(PASSWORD) && !l.to_string().contains("wrong password"), "{l}");
    }
}

#[tokio::test]
async fn a_disabled_user_cannot_sign_in() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = public_client(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    let r = send(&app, admin("PATCH", "/admin/users/alice", Some(json!({"enabled": false})))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let s = open(&app, &pkce_query(&c.id, "")).await;
    assert_sign_in_refused(&sign_in(&app, &s, "alice", PASSWORD).await, INVALID_CREDENTIALS);
}

// ---------------------------------------------------------------- consent

#[tokio::test]
async fn consent_page_lists_scopes_with_descriptions() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    resource_server(&app).await;
    let c = public_client(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    let s = open(&app, &pkce_query(&c.id, "&scope=read%20write")).await;
    let r = sign_in(&app, &s, "alice", PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_page_headers(&r);
    assert_eq!(set_cookies(&r), Vec::<String>::new());
    let html = &r.text;
    assert!(html.contains("<h1>Allow access?</h1>"), "{html}");
    assert!(html.contains("<strong>Photo App</strong> asks to act for <strong>alice</strong>"), "{html}");
    assert!(html.contains("<li><code>read</code>: Read your files</li>"), "{html}");
    assert!(!html.contains("<files>"), "{html}");
    assert!(unescape(html).contains("<li><code>write</code>: Change & delete your <files></li>"), "{html}");
    assert!(html.contains("<form method=\"post\" action=\"/authorize/consent\">"), "{html}");
    assert!(html.contains("name=\"decision\" value=\"approve\""), "{html}");
    assert!(html.contains("name=\"decision\" value=\"deny\""), "{html}");
    assert_eq!(csrf_of(html), s.csrf);
    // A bad decision value: the error page, and the request stays usable.
    let body = format!("csrf={}&decision=maybe", enc(&s.csrf));
    let r = send(&app, browser_post("/authorize/consent", Some(&s.cookie), &body)).await;
    assert_error_page(&r, StatusCode::BAD_REQUEST, "invalid_request", "decision must be approve or deny");
    code_from(&decide(&app, &s, "approve").await);
}

#[tokio::test]
async fn deny_redirects_with_access_denied() {
    gatehouse::audit::start_capture();
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = public_client(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    let s = open(&app, &pkce_query(&c.id, "")).await;
    assert_eq!(sign_in(&app, &s, "alice", PASSWORD).await.status, StatusCode::OK);
    let r = decide(&app, &s, "deny").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let (base, q) = location(&r);
    assert_eq!(base, REDIRECT);
    assert_eq!(
        q,
        params(&[
            ("error", "access_denied"),
            ("error_description", "the resource owner denied the request"),
            ("state", "xyz"),
            ("iss", ISSUER)
        ])
    );
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(set_cookies(&r), Vec::<String>::new(), "the browser keeps its nonce (other tabs)");
    assert_eq!(state.store.get_consent("alice", &c.id).await.unwrap(), None, "nothing stored");
    // The request is used up.
    assert_error_page(&decide(&app, &s, "approve").await, StatusCode::BAD_REQUEST, "invalid_request", EXPIRED);
    assert!(audit_ids(&c.id).contains(&21011));
}

#[tokio::test]
async fn approve_issues_a_code_stores_the_consent_and_is_single_use() {
    gatehouse::audit::start_capture();
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = public_client(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    let s = open(&app, &pkce_query(&c.id, "&scope=write%20read")).await;
    assert_eq!(sign_in(&app, &s, "alice", PASSWORD).await.status, StatusCode::OK);
    let r = decide(&app, &s, "approve").await;
    let code = code_from(&r);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(set_cookies(&r), Vec::<String>::new(), "the browser keeps its nonce (other tabs)");

    let consent = state.store.get_consent("alice", &c.id).await.unwrap().expect("consent stored");
    assert_eq!((consent.scope.to_string().as_str(), consent.granted_at), ("read write", T0));
    let stored = state
        .store
        .get_code(&gatehouse::crypto::opaque_token_id(&code), T0)
        .await
        .unwrap()
        .expect("code stored by its opaque_token_id");
    assert_eq!(stored.client_id, c.id);
    assert_eq!(stored.redirect_uri, REDIRECT);
    assert!(stored.redirect_uri_in_request);
    assert_eq!(stored.username, "alice");
    assert_eq!(stored.scope.to_string(), "read write");
    assert_eq!(stored.audience, ISSUER);
    assert_eq!(stored.code_challenge.as_deref(), Some(CHALLENGE));
    assert_eq!((stored.issued_at, stored.expires_at, stored.consumed_at), (T0, T0 + 60, None));
    assert_eq!(state.store.get_code(&code, T0).await.unwrap(), None, "never stored in clear");

    // Re-submitting either form after completion: the error page.
    assert_error_page(&decide(&app, &s, "approve").await, StatusCode::BAD_REQUEST, "invalid_request", EXPIRED);
    assert_error_page(&decide(&app, &s, "deny").await, StatusCode::BAD_REQUEST, "invalid_request", EXPIRED);
    assert_error_page(&sign_in(&app, &s, "alice", PASSWORD).await, StatusCode::BAD_REQUEST, "invalid_request", EXPIRED);

    let ids = audit_ids(&c.id);
    assert!(ids.contains(&20003) && ids.contains(&21007), "{ids:?}");
}

#[tokio::test]
async fn prior_consent_covers_the_same_or_fewer_scopes_and_a_broader_request_asks_again() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = register(
        &app,
        json!({"client_name": "Photo App", "grant_types": ["authorization_code"], "token_endpoint_auth_method": "none",
               "redirect_uris": [REDIRECT], "scope": "read write delete"}),
    )
    .await;
    create_user(&app, "alice", PASSWORD).await;
    create_user(&app, "bob", PASSWORD).await;
    code_for(&app, &pkce_query(&c.id, "&scope=read%20write"), "alice", PASSWORD).await;

    for scope in ["read%20write", "write%20read", "read", "write"] {
        let s = open(&app, &pkce_query(&c.id, &format!("&scope={scope}"))).await;
        let r = sign_in(&app, &s, "alice", PASSWORD).await;
        code_from(&r); // 303 straight after sign-in
    }
    // Another user is asked.
    let s = open(&app, &pkce_query(&c.id, "&scope=read")).await;
    assert_eq!(sign_in(&app, &s, "bob", PASSWORD).await.status, StatusCode::OK);
    // A broader request (delete, or no scope = all allowed) asks again.
    for extra in ["&scope=read%20delete", ""] {
        let s = open(&app, &pkce_query(&c.id, extra)).await;
        let r = sign_in(&app, &s, "alice", PASSWORD).await;
        assert_eq!(r.status, StatusCode::OK, "{extra}: {}", r.text);
        assert!(r.text.contains("<h1>Allow access?</h1>"));
    }
    let s = open(&app, &pkce_query(&c.id, "&scope=read%20delete")).await;
    assert_eq!(sign_in(&app, &s, "alice", PASSWORD).await.status, StatusCode::OK);
    code_from(&decide(&app, &s, "approve").await);
    let consent = state.store.get_consent("alice", &c.id).await.unwrap().unwrap();
    assert_eq!(consent.scope.to_string(), "delete read write", "consents accumulate");
    // Now everything is covered, including a request without scope.
    let s = open(&app, &pkce_query(&c.id, "")).await;
    code_from(&sign_in(&app, &s, "alice", PASSWORD).await);
}

/// A consent is for the resource it was given for: two resource servers both define `read`,
/// and approving the blog's `read` does not approve the bank's (RFC 8707 §2: a scope means
/// something only at its resource; RFC 9700 §2.3). Each approval is remembered for its own
/// resource, and the admin API shows every scope approved.
#[tokio::test]
async fn a_consent_covers_only_the_resource_it_was_given_for() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    for api in ["https://blog.example", "https://bank.example"] {
        let rs = json!({"identifier": api, "scopes": ["read"]});
        assert_eq!(send(&app, admin("POST", "/admin/resource-servers", Some(rs))).await.status, StatusCode::CREATED);
    }
    let c = register(
        &app,
        json!({"grant_types": ["authorization_code"], "token_endpoint_auth_method": "none",
               "redirect_uris": [REDIRECT], "scope": "read"}),
    )
    .await;
    create_user(&app, "alice", PASSWORD).await;
    let query = |api: &str| pkce_query(&c.id, &format!("&scope=read&resource={}", enc(api)));
    let asked = |api: &'static str| {
        let (app, query) = (app.clone(), query(api));
        async move {
            let s = open(&app, &query).await;
            let r = sign_in(&app, &s, "alice", PASSWORD).await;
            (s, r)
        }
    };

    let (s, r) = asked("https://blog.example").await;
    assert!(r.text.contains("<h1>Allow access?</h1>"), "{}", r.text);
    code_from(&decide(&app, &s, "approve").await);
    let (_, r) = asked("https://blog.example").await;
    code_from(&r); // remembered for the blog
    let (s, r) = asked("https://bank.example").await;
    assert_eq!(r.status, StatusCode::OK, "the bank's read was never approved: {}", r.text);
    assert!(r.text.contains("<h1>Allow access?</h1>"));
    let code = code_from(&decide(&app, &s, "approve").await);
    let tokens = exchange_public(&app, &c, &code).await;
    assert_eq!(claims(tokens.body["access_token"].as_str().unwrap())["aud"], "https://bank.example");
    for api in ["https://blog.example", "https://bank.example"] {
        code_from(&asked(api).await.1);
    }
    let consent = state.store.get_consent("alice", &c.id).await.unwrap().unwrap();
    let read = gatehouse::model::Scope::parse("read").unwrap();
    assert_eq!(consent.scope, read);
    assert_eq!(
        consent.resources,
        [("https://bank.example".to_owned(), read.clone()), ("https://blog.example".to_owned(), read)].into()
    );
    let r = send(&app, admin("GET", "/admin/users/alice/consents", None)).await;
    let listed = json!({"client_id": c.id, "scope": "read", "granted_at": T0,
                        "resources": {"https://bank.example": "read", "https://blog.example": "read"}});
    assert_eq!(r.body, json!({"consents": [listed]}), "{}", r.text);
}

#[tokio::test]
async fn pre_approved_scopes_skip_consent() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = register(
        &app,
        json!({"grant_types": ["authorization_code"], "token_endpoint_auth_method": "none",
               "redirect_uris": [REDIRECT], "scope": "read write", "pre_approved_scopes": "read"}),
    )
    .await;
    create_user(&app, "alice", PASSWORD).await;
    let s = open(&app, &pkce_query(&c.id, "&scope=read")).await;
    let code = code_from(&sign_in(&app, &s, "alice", PASSWORD).await);
    assert_eq!(state.store.get_consent("alice", &c.id).await.unwrap(), None, "no consent was given or stored");
    let r = exchange_public(&app, &c, &code).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["scope"], "read");
    // Beyond the pre-approved scopes the user is asked.
    let s = open(&app, &pkce_query(&c.id, "&scope=read%20write")).await;
    assert_eq!(sign_in(&app, &s, "alice", PASSWORD).await.status, StatusCode::OK);
}

#[tokio::test]
async fn admin_lists_and_revokes_consents() {
    gatehouse::audit::start_capture();
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = public_client(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    code_for(&app, &pkce_query(&c.id, "&scope=read"), "alice", PASSWORD).await;

    let r = send(&app, admin("GET", "/admin/users/alice/consents", None)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let listed = json!({"client_id": c.id, "scope": "read", "resources": {ISSUER: "read"}, "granted_at": T0});
    assert_eq!(r.body, json!({"consents": [listed]}));

    let r = send(&app, admin("DELETE", &format!("/admin/users/alice/consents/{}", c.id), None)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(r.text, "");
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let r = send(&app, admin("DELETE", &format!("/admin/users/alice/consents/{}", c.id), None)).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    let r = send(&app, admin("GET", "/admin/users/alice/consents", None)).await;
    assert_eq!(r.body, json!({"consents": []}));
    let r = send(&app, admin("GET", "/admin/users/nobody/consents", None)).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    let mut unauth = admin("GET", "/admin/users/alice/consents", None);
    unauth.headers_mut().remove(header::AUTHORIZATION);
    assert_error(&send(&app, unauth).await, StatusCode::UNAUTHORIZED, "unauthorized");

    // Consent is asked again: in the withdrawal's second, the sign-in is 503 (what it led to
    // would be revoked with the consent); a moment later the form goes through.
    let s = open(&app, &pkce_query(&c.id, "&scope=read")).await;
    let r = sign_in(&app, &s, "alice", PASSWORD).await;
    assert_eq!((r.status, r.header("retry-after")), (StatusCode::SERVICE_UNAVAILABLE, Some("1")), "{}", r.text);
    assert!(r.text.contains("every token of this user was revoked this second; send the form again"), "{}", r.text);
    state.clock.advance(1);
    assert_eq!(sign_in(&app, &s, "alice", PASSWORD).await.status, StatusCode::OK);
    assert!(audit_ids(&c.id).contains(&21008));
}

// ---------------------------------------------------------------- the code exchange

#[tokio::test]
async fn public_client_exchanges_the_code_with_its_verifier() {
    gatehouse::audit::start_capture();
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = public_client(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    let code = code_for(&app, &pkce_query(&c.id, ""), "alice", PASSWORD).await;
    let r = exchange_public(&app, &c, &code).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("pragma"), Some("no-cache"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let at = r.body["access_token"].as_str().unwrap().to_owned();
    let rt = r.body["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(
        r.body,
        json!({"access_token": at, "token_type": "Bearer", "expires_in": 3600, "refresh_token": rt, "scope": "read write"})
    );
    let cl = claims(&at);
    let jti = cl["jti"].as_str().unwrap().to_owned();
    assert_eq!(
        cl,
        json!({"iss": ISSUER, "sub": "alice", "aud": ISSUER, "client_id": c.id, "scope": "read write",
               "iat": T0, "exp": T0 + 3600, "jti": jti})
    );
    let access = state.store.get_token(&jti, T0).await.unwrap().unwrap();
    assert_eq!(access.kind, TokenKind::Access);
    assert_eq!((access.subject.as_str(), access.end_user.as_deref()), ("alice", Some("alice")));
    assert_eq!(access.grant_type, GrantType::AuthorizationCode);
    let refresh = state.store.get_token(&gatehouse::crypto::opaque_token_id(&rt), T0).await.unwrap().unwrap();
    assert_eq!(refresh.kind, TokenKind::Refresh);
    assert_eq!(refresh.end_user.as_deref(), Some("alice"));
    assert_eq!(refresh.client_id, c.id);
    assert_eq!(refresh.scope.to_string(), "read write");
    assert_eq!((refresh.issued_at, refresh.expires_at), (T0, T0 + 2_592_000));
    assert!(refresh.family.is_some() && refresh.family == access.family, "one family");
    let stored = state.store.get_code(&gatehouse::crypto::opaque_token_id(&code), T0).await.unwrap().unwrap();
    assert_eq!(stored.consumed_at, Some(T0));
    let issued = audit_lines(&jti);
    assert_eq!(issued.len(), 1, "{issued:?}");
    assert_eq!(
        (issued[0]["event_id"].as_u64(), issued[0]["grant_type"].as_str()),
        (Some(20004), Some("authorization_code"))
    );
}

#[tokio::test]
async fn code_exchange_errors_are_exact() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = public_client(&app).await;
    let other = public_client(&app).await;
    let conf = confidential_client(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    let code = code_for(&app, &pkce_query(&c.id, ""), "alice", PASSWORD).await;
    let redirect = enc(REDIRECT);
    let wrong_verifier = "a".repeat(43);
    let cases: Vec<(Option<String>, String, &str, &str)> = vec![
        (
            None,
            format!(
                "grant_type=authorization_code&code={code}&redirect_uri={redirect}&client_id={}&code_verifier={wrong_verifier}",
                c.id
            ),
            "invalid_grant",
            "the code_verifier does not match the code_challenge",
        ),
        (
            None,
            format!("grant_type=authorization_code&code={code}&redirect_uri={redirect}&client_id={}", c.id),
            "invalid_grant",
            "code_verifier is required for this code",
        ),
        (
            None,
            format!(
                "grant_type=authorization_code&code={code}&redirect_uri={redirect}&client_id={}&code_verifier=short",
                c.id
            ),
            "invalid_request",
            "code_verifier is malformed (RFC 7636 §4.1)",
        ),
        (
            None,
            format!(
                "grant_type=authorization_code&code={code}&redirect_uri={redirect}&client_id={}&code_verifier={}",
                c.id,
                enc(&format!("{VERIFIER}+"))
            ),
            "invalid_request",
            "code_verifier is malformed (RFC 7636 §4.1)",
        ),
        (
            None,
            format!(
                "grant_type=authorization_code&code={code}&redirect_uri={}&client_id={}&code_verifier={VERIFIER}",
                enc("https://app.example.com/cb/"),
                c.id
            ),
            "invalid_grant",
            "redirect_uri differs from the authorization request",
        ),
        (
            None,
            format!("grant_type=authorization_code&code={code}&client_id={}&code_verifier={VERIFIER}", c.id),
            "invalid_grant",
            "redirect_uri differs from the authorization request",
        ),
        (
            None,
            format!(
                "grant_type=authorization_code&code={code}&redirect_uri={redirect}&client_id={}&code_verifier={VERIFIER}",
                other.id
            ),
            "invalid_grant",
            "the authorization code was issued to another client",
        ),
        (
            Some(conf.basic()),
            format!("grant_type=authorization_code&code={code}&redirect_uri={redirect}&code_verifier={VERIFIER}"),
            "invalid_grant",
            "the authorization code was issued to another client",
        ),
        (
            None,
            format!(
                "grant_type=authorization_code&code=unknown-code&redirect_uri={redirect}&client_id={}&code_verifier={VERIFIER}",
                c.id
            ),
            "invalid_grant",
            "the authorization code is invalid or expired",
        ),
        (
            None,
            format!(
                "grant_type=authorization_code&redirect_uri={redirect}&client_id={}&code_verifier={VERIFIER}",
                c.id
            ),
            "invalid_request",
            "missing parameter `code`",
        ),
    ];
    for (auth, body, error, description) in cases {
        let r = send(&app, form("/token", auth.as_deref(), &body)).await;
        assert_error(&r, StatusCode::BAD_REQUEST, error);
        assert_eq!(r.body["error_description"], description, "{body}");
    }
    // None of these consumed the code.
    let stored = state.store.get_code(&gatehouse::crypto::opaque_token_id(&code), T0).await.unwrap().unwrap();
    assert_eq!(stored.consumed_at, None);

    // A verifier for a code issued without a challenge (RFC 9700 §2.1.1).
    let q = format!("response_type=code&client_id={}&redirect_uri={redirect}&state=xyz", conf.id);
    let plain = code_for(&app, &q, "alice", PASSWORD).await;
    let body = format!("grant_type=authorization_code&code={plain}&redirect_uri={redirect}&code_verifier={VERIFIER}");
    let r = send(&app, form("/token", Some(&conf.basic()), &body)).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");
    assert_eq!(r.body["error_description"], "no code_challenge was sent with the authorization request");

    // Expired (GATEHOUSE_CODE_TTL=60).
    let late = code_for(&app, &pkce_query(&c.id, ""), "alice", PASSWORD).await;
    state.clock.advance(61);
    let r = exchange_public(&app, &c, &late).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");
    assert_eq!(r.body["error_description"], "the authorization code is invalid or expired");
}

#[tokio::test]
async fn a_code_is_valid_until_its_ttl() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = public_client(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    let code = code_for(&app, &pkce_query(&c.id, ""), "alice", PASSWORD).await;
    state.clock.advance(59);
    assert_eq!(exchange_public(&app, &c, &code).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_second_redemption_is_invalid_grant_and_revokes_the_first_tokens() {
    gatehouse::audit::start_capture();
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = public_client(&app).await;
    let rs = introspector(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    let code = code_for(&app, &pkce_query(&c.id, ""), "alice", PASSWORD).await;
    let first = exchange_public(&app, &c, &code).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let at = first.body["access_token"].as_str().unwrap();
    let rt = first.body["refresh_token"].as_str().unwrap();
    assert_active(&app, &rs, at).await;
    assert_active(&app, &rs, rt).await;

    state.clock.advance(5);
    let second = exchange_public(&app, &c, &code).await;
    assert_error(&second, StatusCode::BAD_REQUEST, "invalid_grant");
    assert_eq!(second.body["error_description"], "the authorization code was already used");

    assert_inactive(&app, &rs, at).await;
    assert_inactive(&app, &rs, rt).await;
    let jti = claims(at)["jti"].as_str().unwrap().to_owned();
    assert_eq!(state.store.get_token(&jti, state.clock.now()).await.unwrap().unwrap().revoked_at, Some(T0 + 5));
    let body = format!("grant_type=refresh_token&refresh_token={rt}&client_id={}", c.id);
    let r = send(&app, form("/token", None, &body)).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");
    let replay: Vec<Value> = audit_lines(&c.id).into_iter().filter(|l| l["event_id"] == 21009).collect();
    assert_eq!(replay.len(), 1, "{replay:?}");
    assert_eq!(replay[0]["revoked"], 2);
}

/// 20 concurrent redemptions of one code: exactly one succeeds; the rest are replays (and
/// revoke what the one issued).
async fn concurrent_redemptions(state: AppState) {
    let app = common::app(&state);
    let c = public_client(&app).await;
    let rs = introspector(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    let code = code_for(&app, &pkce_query(&c.id, ""), "alice", PASSWORD).await;
    let body = format!(
        "grant_type=authorization_code&code={code}&redirect_uri={}&client_id={}&code_verifier={VERIFIER}",
        enc(REDIRECT),
        c.id
    );
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (app, body) = (app.clone(), body.clone());
            tokio::spawn(async move { send(&app, form("/token", None, &body)).await })
        })
        .collect();
    let mut ok = Vec::new();
    let mut refused = 0;
    for t in tasks {
        let r = t.await.unwrap();
        if r.status == StatusCode::OK {
            ok.push(r);
        } else {
            assert_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");
            assert_eq!(r.body["error_description"], "the authorization code was already used");
            refused += 1;
        }
    }
    assert_eq!((ok.len(), refused), (1, 19));
    let stored = state.store.get_code(&gatehouse::crypto::opaque_token_id(&code), T0).await.unwrap().unwrap();
    assert_eq!(stored.consumed_at, Some(T0));
    // Exactly one access token and one refresh token were stored, and the replays revoked them.
    let at = ok[0].body["access_token"].as_str().unwrap();
    let rt = ok[0].body["refresh_token"].as_str().unwrap();
    let jti = claims(at)["jti"].as_str().unwrap().to_owned();
    let rec = state.store.get_token(&jti, T0).await.unwrap().unwrap();
    assert!(rec.revoked_at.is_some());
    let family = rec.family.clone().unwrap();
    assert_eq!(state.store.list_family(&family, T0).await.unwrap(), vec![], "nothing of the family is active");
    for kind in ["access", "refresh"] {
        let r = send(&app, admin("GET", &format!("/admin/tokens/count?type={kind}&end_user=alice"), None)).await;
        assert_eq!(r.body, json!({"count": 0}), "{kind}");
    }
    assert_inactive(&app, &rs, at).await;
    assert_inactive(&app, &rs, rt).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_redemptions_embedded() {
    let (state, _dir) = common::embedded_state();
    concurrent_redemptions(state).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_redemptions_dynamodb() {
    let Some((store, _, _)) = common::dynamo().await else { return };
    concurrent_redemptions(common::state_on(store)).await;
}

/// The whole flow on DynamoDB: pages, consent, exchange, replay.
#[tokio::test]
async fn whole_flow_on_dynamodb() {
    let Some((store, _, _)) = common::dynamo().await else { return };
    let state = common::state_on(store);
    let app = common::app(&state);
    let c = public_client(&app).await;
    let rs = introspector(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    let s = open(&app, &pkce_query(&c.id, "&scope=read")).await;
    assert_sign_in_refused(&sign_in(&app, &s, "alice", "wrong password").await, INVALID_CREDENTIALS);
    assert_eq!(sign_in(&app, &s, "alice", PASSWORD).await.status, StatusCode::OK);
    let code = code_from(&decide(&app, &s, "approve").await);
    assert_error_page(&decide(&app, &s, "approve").await, StatusCode::BAD_REQUEST, "invalid_request", EXPIRED);
    let r = exchange_public(&app, &c, &code).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["scope"], "read");
    let at = r.body["access_token"].as_str().unwrap().to_owned();
    assert_active(&app, &rs, &at).await;
    // Second time: consent remembered.
    let s = open(&app, &pkce_query(&c.id, "&scope=read")).await;
    code_from(&sign_in(&app, &s, "alice", PASSWORD).await);
    // Replay revokes.
    assert_error(&exchange_public(&app, &c, &code).await, StatusCode::BAD_REQUEST, "invalid_grant");
    assert_inactive(&app, &rs, &at).await;
}

// ---------------------------------------------------------------- metadata

#[tokio::test]
async fn metadata_lists_the_new_grants_and_pkce() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let r = send(&app, get("/.well-known/oauth-authorization-server")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["authorization_endpoint"], format!("{ISSUER}/authorize"));
    assert_eq!(
        r.body["grant_types_supported"],
        json!([
            "authorization_code",
            "client_credentials",
            "refresh_token",
            "password",
            "urn:ietf:params:oauth:grant-type:jwt-bearer"
        ])
    );
    assert_eq!(r.body["response_types_supported"], json!(["code"]));
    assert_eq!(r.body["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(
        r.body["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post", "private_key_jwt", "none"])
    );
    assert_eq!(r.body["authorization_response_iss_parameter_supported"], true);
}

/// The browser flow with every step sent to the Lambda function that serves it in the stack
/// (token-admin, authorize, token, introspect, revoke), on DynamoDB Local.
#[tokio::test]
async fn whole_flow_through_each_functions_router_on_dynamodb() {
    use gatehouse::endpoints::{authorize, introspect, revoke, token, token_admin};
    let Some((store, _, _)) = common::dynamo().await else { return };
    let state = common::state_on(store);
    let admin_fn = token_admin::router(state.clone());
    let (authorize_fn, token_fn) = (authorize::router(state.clone()), token::router(state.clone()));
    let (introspect_fn, revoke_fn) = (introspect::router(state.clone()), revoke::router(state.clone()));
    let c = public_client(&admin_fn).await;
    let rs = introspector(&admin_fn).await;
    create_user(&admin_fn, "bob", PASSWORD).await;
    let s = open(&authorize_fn, &pkce_query(&c.id, "&scope=read")).await;
    assert_eq!(sign_in(&authorize_fn, &s, "bob", PASSWORD).await.status, StatusCode::OK);
    let code = code_from(&decide(&authorize_fn, &s, "approve").await);
    let r = exchange_public(&token_fn, &c, &code).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let (at, rt) = (r.body["access_token"].as_str().unwrap(), r.body["refresh_token"].as_str().unwrap());
    assert_active(&introspect_fn, &rs, at).await;
    let refreshed = send(
        &token_fn,
        form("/token", None, &format!("grant_type=refresh_token&client_id={}&refresh_token={rt}", c.id)),
    )
    .await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.text);
    let rt2 = refreshed.body["refresh_token"].as_str().unwrap();
    assert_ne!(rt2, rt);
    let rv = send(&revoke_fn, form("/revoke", None, &format!("client_id={}&token={rt2}", c.id))).await;
    assert_eq!(rv.status, StatusCode::OK, "{}", rv.text);
    assert_inactive(&introspect_fn, &rs, refreshed.body["access_token"].as_str().unwrap()).await;
    let listed = send(&admin_fn, admin("GET", "/admin/tokens/count?type=refresh&end_user=bob", None)).await;
    assert_eq!(listed.body, serde_json::json!({"count": 0}), "the revoked family leaves no active refresh token");
}
