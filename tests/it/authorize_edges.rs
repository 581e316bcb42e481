//! The authorization endpoint's edges: loopback redirect URIs on any port (RFC 8252 §7.3),
//! `response_mode`, repeated `resource` (RFC 8707 §2), an oversized `state`, a client changed
//! during sign-in, a consent from an earlier user of the same name, non-ASCII credentials,
//! an issuer with a path, and sign-ins in several tabs of one browser.
use std::sync::Arc;

use axum::http::StatusCode;
use gatehouse::AppState;
use gatehouse::clock::Clock;
use gatehouse::keys::LocalSigner;
use serde_json::json;

use crate::code_flow::{
    CHALLENGE, ISSUER, PASSWORD, REDIRECT, VERIFIER, assert_error_page, code_for, create_user, decide, enc,
    exchange_public, get, location, open, params, pkce_query, public_client, sign_in,
};
use crate::common::{self, T0, admin, assert_error, form, register, send};

/// A public client whose one redirect URI is `registered`.
async fn native_app(app: &axum::Router, registered: &str) -> common::TestClient {
    register(
        app,
        json!({"grant_types": ["authorization_code", "refresh_token"], "token_endpoint_auth_method": "none",
               "redirect_uris": [registered], "scope": "read"}),
    )
    .await
}

fn query_for(client_id: &str, redirect_uri: &str) -> String {
    format!(
        "response_type=code&client_id={}&redirect_uri={}&state=xyz&code_challenge={CHALLENGE}&code_challenge_method=S256",
        enc(client_id),
        enc(redirect_uri)
    )
}

#[tokio::test]
async fn a_loopback_redirect_uri_may_name_any_port_and_nothing_else_may_differ() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    create_user(&app, "alice", PASSWORD).await;
    let c = native_app(&app, "http://127.0.0.1/cb").await;
    let v6 = native_app(&app, "http://[::1]:8000/cb?app=1").await;

    // RFC 8252 §7.3: the port the app listens on, picked when it asks.
    let asked = "http://127.0.0.1:51004/cb";
    let s = open(&app, &query_for(&c.id, asked)).await;
    let r = sign_in(&app, &s, "alice", PASSWORD).await;
    let r = if r.status == StatusCode::OK { decide(&app, &s, "approve").await } else { r };
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let (base, q) = location(&r);
    assert_eq!(base, asked, "the code goes to the port asked for");
    let code = q["code"].clone();
    assert_eq!(q, params(&[("code", &code), ("state", "xyz"), ("iss", ISSUER)]));
    // The token request names the same redirect URI, port and all (RFC 6749 §4.1.3).
    let body = |uri: &str| {
        format!(
            "grant_type=authorization_code&code={}&redirect_uri={}&client_id={}&code_verifier={VERIFIER}",
            enc(&code),
            enc(uri),
            c.id
        )
    };
    let r = send(&app, form("/token", None, &body("http://127.0.0.1/cb"))).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");
    let r = send(&app, form("/token", None, &body(asked))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // IPv6 loopback, a registered port and query: another port is fine, the query must match.
    open(&app, &query_for(&v6.id, "http://[::1]:40000/cb?app=1")).await;
    open(&app, &query_for(&v6.id, "http://[::1]/cb?app=1")).await;

    let refused = [
        (&c, "http://127.0.0.1:51004/other"),
        (&c, "http://localhost:51004/cb"),
        (&c, "http://127.0.0.1:51004/cb?x=1"),
        (&c, "http://127.0.0.1:123456/cb"),
        (&c, "http://127.0.0.1:80x/cb"),
        (&c, "http://127.0.0.1:/cb"),
        (&c, "https://127.0.0.1:51004/cb"),
        (&c, "http://user@127.0.0.1:51004/cb"),
        (&v6, "http://[::1]:40000/cb"),
        (&v6, "http://127.0.0.1:8000/cb?app=1"),
    ];
    for (client, uri) in refused {
        let r = send(&app, get(&format!("/authorize?{}", query_for(&client.id, uri)))).await;
        assert_error_page(
            &r,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "redirect_uri is missing or not registered for this client",
        );
    }
    // Not a loopback registration: exact, port included.
    let web = public_client(&app).await;
    let r = send(&app, get(&format!("/authorize?{}", query_for(&web.id, "https://app.example.com:8443/cb")))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn response_mode_other_than_query_repeated_resource_and_long_state_are_redirected_errors() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = public_client(&app).await;
    let redirected = |extra: &str, state: Option<&str>| {
        let q = match state {
            Some(s) => pkce_query(&c.id, extra).replace("state=xyz", &format!("state={s}")),
            None => pkce_query(&c.id, extra),
        };
        format!("/authorize?{q}")
    };
    for mode in ["form_post", "fragment", "jwt", "query.jwt"] {
        let r = send(&app, get(&redirected(&format!("&response_mode={mode}"), None))).await;
        assert_eq!(r.status, StatusCode::FOUND, "{mode}: {}", r.text);
        let (base, q) = location(&r);
        assert_eq!(base, REDIRECT);
        assert_eq!(
            q,
            params(&[
                ("error", "invalid_request"),
                ("error_description", "response_mode: only query is supported"),
                ("state", "xyz"),
                ("iss", ISSUER)
            ])
        );
    }
    open(&app, &pkce_query(&c.id, "&response_mode=query")).await;

    // RFC 8707 §2 allows `resource` more than once: one resource per request is served.
    let two = "&resource=https%3A%2F%2Fa.example&resource=https%3A%2F%2Fb.example";
    let r = send(&app, get(&redirected(two, None))).await;
    assert_eq!(r.status, StatusCode::FOUND, "{}", r.text);
    let (_, q) = location(&r);
    assert_eq!((q["error"].as_str(), q["state"].as_str()), ("invalid_target", "xyz"));
    assert_eq!(q["error_description"], "one resource per request: send `resource` once");

    // An oversized state is the first error, whatever else is wrong.
    let long = "s".repeat(1025);
    let r = send(&app, get(&redirected("", Some(&long)).replace("response_type=code", "response_type=token"))).await;
    assert_eq!(r.status, StatusCode::FOUND);
    let (_, q) = location(&r);
    assert_eq!(q["error"], "invalid_request");
    assert_eq!(q["error_description"], "state is longer than 1024 characters");
}

#[tokio::test]
async fn several_resources_at_the_token_endpoint_are_invalid_target() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = common::cc_client(&app).await;
    let body = "grant_type=client_credentials&resource=https%3A%2F%2Fa.example&resource=https%3A%2F%2Fb.example";
    let r = send(&app, form("/token", Some(&c.basic()), body)).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_target");
    assert_eq!(r.header("cache-control"), Some("no-store"));
}

#[tokio::test]
async fn a_client_changed_during_sign_in_gets_no_code() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    create_user(&app, "alice", PASSWORD).await;
    let changed = "the client's registration changed during sign-in; return to the application and start again";

    // The redirect URI replaced while the consent page is shown.
    let c = public_client(&app).await;
    let s = open(&app, &pkce_query(&c.id, "")).await;
    assert_eq!(sign_in(&app, &s, "alice", PASSWORD).await.status, StatusCode::OK, "the consent page");
    let patch = json!({"redirect_uris": ["https://app.example.com/new"]});
    let r = send(&app, admin("PATCH", &format!("/admin/clients/{}", c.id), Some(patch))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = decide(&app, &s, "approve").await;
    assert_error_page(&r, StatusCode::BAD_REQUEST, "invalid_request", changed);
    let r = send(&app, admin("GET", "/admin/users/alice/consents", None)).await;
    assert_eq!(r.body["consents"], json!([]), "no consent recorded either");

    // The client deleted.
    let c = public_client(&app).await;
    let s = open(&app, &pkce_query(&c.id, "")).await;
    assert_eq!(sign_in(&app, &s, "alice", PASSWORD).await.status, StatusCode::OK);
    let r = send(&app, admin("DELETE", &format!("/admin/clients/{}", c.id), None)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = decide(&app, &s, "approve").await;
    assert_eq!((r.status, r.header("location")), (StatusCode::BAD_REQUEST, None), "{}", r.text);

    // Unchanged: the flow completes.
    let c = public_client(&app).await;
    let code = code_for(&app, &pkce_query(&c.id, ""), "alice", PASSWORD).await;
    assert_eq!(exchange_public(&app, &c, &code).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_consent_recorded_before_its_user_was_created_is_not_this_users() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = public_client(&app).await;
    state.clock.advance(100);
    create_user(&app, "alice", PASSWORD).await;
    // Left behind by an earlier "alice" (a deletion cut short), given before this one existed.
    let old = gatehouse::model::Consent {
        username: "alice".into(),
        client_id: c.id.clone(),
        scope: gatehouse::model::Scope::parse("read write").unwrap(),
        resources: [(ISSUER.to_owned(), gatehouse::model::Scope::parse("read write").unwrap())].into(),
        granted_at: T0 + 50,
    };
    state.store.put_consent(&old).await.unwrap();
    let s = open(&app, &pkce_query(&c.id, "")).await;
    let r = sign_in(&app, &s, "alice", PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.text.contains("name=\"decision\""), "the consent page, not a code: {}", r.text);
    let r = decide(&app, &s, "approve").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let stored = state.store.get_consent("alice", &c.id).await.unwrap().unwrap();
    assert_eq!(stored.granted_at, T0 + 100, "this user's own consent replaced it");
    // Now given by this user: the next request skips the page.
    let s = open(&app, &pkce_query(&c.id, "")).await;
    assert_eq!(sign_in(&app, &s, "alice", PASSWORD).await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn non_ascii_usernames_and_passwords_within_the_limits_sign_in() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let password = "é".repeat(600); // 600 characters, 1,200 bytes: within 1,024 characters
    let username = "日".repeat(100); // 100 characters, 300 bytes: within 128 characters
    create_user(&app, &username, &password).await;
    let c = register(&app, json!({"grant_types": ["password"], "scope": "read"})).await;
    let body = format!("grant_type=password&username={}&password={}", enc(&username), enc(&password));
    let r = send(&app, form("/token", Some(&c.basic()), &body)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let web = public_client(&app).await;
    let s = open(&app, &pkce_query(&web.id, "")).await;
    assert_eq!(sign_in(&app, &s, &username, &password).await.status, StatusCode::OK, "the consent page");
    // Over the limits (in characters): refused as any wrong password is.
    let body = format!("grant_type=password&username={}&password={}", enc(&username), enc(&"é".repeat(1025)));
    assert_error(&send(&app, form("/token", Some(&c.basic()), &body)).await, StatusCode::BAD_REQUEST, "invalid_grant");
}

#[tokio::test]
async fn an_issuer_with_a_path_posts_its_forms_under_that_path() {
    let (store, _dir) = common::embedded();
    let mut config = common::config();
    config.issuer = format!("{ISSUER}/t1");
    config.default_audience = config.issuer.clone();
    let state = AppState::new(config, store, Arc::new(LocalSigner::ephemeral()), Clock::manual(T0));
    let app = common::app(&state);
    let c = public_client(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    let page = send(&app, get(&format!("/authorize?{}", pkce_query(&c.id, "")))).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.text.contains("<form method=\"post\" action=\"/t1/authorize/login\">"), "{}", page.text);
    let cookie = crate::code_flow::set_cookies(&page)[0].split(';').next().unwrap().to_owned();
    let s = crate::code_flow::SignIn { cookie, csrf: crate::code_flow::csrf_of(&page.text), page };
    let r = sign_in(&app, &s, "alice", PASSWORD).await;
    assert!(r.text.contains("<form method=\"post\" action=\"/t1/authorize/consent\">"), "{}", r.text);
}

/// `GET /authorize` sent with the browser's cookie (`name=value`): the page, its form token, and
/// the cookie it sets.
async fn open_in_tab(app: &axum::Router, query: &str, cookie: &str) -> crate::code_flow::SignIn {
    let mut req = get(&format!("/authorize?{query}"));
    req.headers_mut().insert(axum::http::header::COOKIE, cookie.parse().unwrap());
    let page = send(app, req).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let set = crate::code_flow::set_cookies(&page);
    assert_eq!(set.len(), 1, "{set:?}");
    let cookie = set[0].split(';').next().unwrap().to_owned();
    crate::code_flow::SignIn { cookie, csrf: crate::code_flow::csrf_of(&page.text), page }
}

/// A form posted with `cookie` and the form token `csrf`.
fn posted(cookie: &str, csrf: &str) -> crate::code_flow::SignIn {
    let page = common::Resp {
        status: StatusCode::OK,
        headers: Default::default(),
        body: serde_json::Value::Null,
        text: String::new(),
    };
    crate::code_flow::SignIn { cookie: cookie.to_owned(), csrf: csrf.to_owned(), page }
}

/// Two tabs of one browser each sign in: the second `/authorize` keeps the browser's nonce, so
/// the first tab's request survives it, and both get a code that redeems. A form of another
/// browser's request, or a browser's form posted with another browser's cookie, is refused
/// and consumes nothing (login CSRF, RFC 6749 §10.12).
#[tokio::test]
async fn each_tab_of_a_browser_signs_in_and_other_browsers_cannot_post_its_forms() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = public_client(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    create_user(&app, "mallory", PASSWORD).await;
    let tab1 = open(&app, &pkce_query(&c.id, "&scope=read")).await;
    let tab2 = open_in_tab(&app, &pkce_query(&c.id, "&scope=write"), &tab1.cookie).await;
    assert_eq!(tab2.cookie, tab1.cookie, "the browser keeps its nonce");
    assert_eq!(
        crate::code_flow::set_cookies(&tab2.page)[0],
        format!("{}; Path=/; HttpOnly; SameSite=Lax; Max-Age=600; Secure", tab1.cookie),
        "its lifetime renewed"
    );
    assert_ne!(tab2.csrf, tab1.csrf);

    // Another browser (no cookie yet) opens its own request: a nonce of its own.
    let other = open(&app, &pkce_query(&c.id, "&scope=read")).await;
    assert_ne!(other.cookie, tab1.cookie);
    let stolen = posted(&tab1.cookie, &other.csrf);
    let mismatch = crate::code_flow::ANOTHER_BROWSER;
    assert_error_page(
        &sign_in(&app, &stolen, "mallory", PASSWORD).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        mismatch,
    );
    let foreign = posted(&other.cookie, &tab1.csrf);
    assert_error_page(
        &sign_in(&app, &foreign, "mallory", PASSWORD).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        mismatch,
    );

    // Both tabs sign in, in either order, and get codes that redeem.
    assert_eq!(sign_in(&app, &tab2, "alice", PASSWORD).await.status, StatusCode::OK, "consent for write");
    assert_eq!(sign_in(&app, &tab1, "alice", PASSWORD).await.status, StatusCode::OK, "consent for read");
    let code1 = crate::code_flow::code_from(&decide(&app, &tab1, "approve").await);
    let code2 = crate::code_flow::code_from(&decide(&app, &tab2, "approve").await);
    for (code, scope) in [(code1, "read"), (code2, "write")] {
        let r = exchange_public(&app, &c, &code).await;
        assert_eq!((r.status, r.body["scope"].as_str()), (StatusCode::OK, Some(scope)), "{}", r.text);
    }
    // The other browser's request was never consumed: it still signs in there.
    assert_eq!(sign_in(&app, &other, "mallory", PASSWORD).await.status, StatusCode::OK);
}

/// A cookie that holds no nonce of ours (a value of another form) is replaced by a new nonce.
#[tokio::test]
async fn a_cookie_that_is_no_nonce_gets_a_new_one() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = public_client(&app).await;
    for forged in ["forged", &"A".repeat(42), &format!("{}.", "A".repeat(42)), &"A".repeat(44)] {
        let cookie = format!("{}={forged}", crate::code_flow::COOKIE);
        let tab = open_in_tab(&app, &pkce_query(&c.id, ""), &cookie).await;
        assert_ne!(tab.cookie, cookie, "{forged}");
        assert_eq!(tab.cookie.len(), cookie.len() - forged.len() + 43, "{}", tab.cookie);
    }
}

/// Two first requests of a browser that had no cookie yet each get a nonce, and the browser
/// keeps the last: the other tab's sign-in is refused with a message that says so (a limit of
/// binding requests to the browser), and starting it again works.
#[tokio::test]
async fn two_first_tabs_race_and_the_loser_is_told_to_start_again() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = public_client(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    let (first, last) = (open(&app, &pkce_query(&c.id, "")).await, open(&app, &pkce_query(&c.id, "")).await);
    let r = sign_in(&app, &posted(&last.cookie, &first.csrf), "alice", PASSWORD).await;
    assert_error_page(&r, StatusCode::BAD_REQUEST, "invalid_request", crate::code_flow::ANOTHER_BROWSER);
    assert_eq!(sign_in(&app, &last, "alice", PASSWORD).await.status, StatusCode::OK, "the last one signs in");
    let again = open_in_tab(&app, &pkce_query(&c.id, ""), &last.cookie).await;
    assert_eq!(sign_in(&app, &again, "alice", PASSWORD).await.status, StatusCode::OK);
}

/// A pending request stored by the previous version (no browser digest) answers no browser:
/// refused, not consumed. On both stores, as each decodes the record.
async fn a_request_without_a_browser_digest_answers_no_browser(state: AppState) {
    let app = common::app(&state);
    let c = public_client(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    let s = open(&app, &pkce_query(&c.id, "")).await;
    let (id, _) = s.csrf.split_once('.').unwrap();
    let mut legacy = state.store.get_pending(id, T0).await.unwrap().unwrap();
    legacy.browser_digest = String::new();
    assert!(state.store.update_pending(&legacy).await.unwrap());
    assert_eq!(state.store.get_pending(id, T0).await.unwrap().unwrap().browser_digest, "", "stored without one");
    let r = sign_in(&app, &s, "alice", PASSWORD).await;
    assert_error_page(&r, StatusCode::BAD_REQUEST, "invalid_request", crate::code_flow::ANOTHER_BROWSER);
    assert!(state.store.get_pending(id, T0).await.unwrap().is_some(), "not consumed");
}

#[tokio::test]
async fn a_request_without_a_browser_digest_answers_no_browser_embedded() {
    let (state, _dir) = common::embedded_state();
    a_request_without_a_browser_digest_answers_no_browser(state).await;
}

#[tokio::test]
async fn a_request_without_a_browser_digest_answers_no_browser_dynamodb() {
    let Some((store, _, _)) = common::dynamo().await else { return };
    a_request_without_a_browser_digest_answers_no_browser(common::state_on(store)).await;
}
