//! A grant over its life: what the client and resource server allow at each refresh (RFC 6749
//! §3.3), `resource` at the token endpoint (RFC 8707 §2.2), the rotation grace with a broader
//! scope, a replayed code without its verifier, a user deleted and created again, a rotated
//! refresh token revoked (RFC 7009 §2.1), a consent withdrawn, concurrent user changes, the
//! admin scope with a default resource server, the admin API's body rules, and a revocation of
//! all of a client's tokens whose sweep is cut short.
use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::json;

use crate::code_flow::{
    ISSUER, PASSWORD, assert_active, assert_inactive, claims, code_for, create_user, enc, exchange_public,
    introspector, pkce_query, public_client, resource_server, tokens_for,
};
use crate::common::{self, admin, assert_error, form, register, send};
use crate::hooked_store::Hooked;
use crate::refresh_password::{refresh, s};

const API: &str = "https://api.example.com";

#[tokio::test]
async fn each_refresh_issues_what_the_client_and_the_resource_server_still_allow() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    resource_server(&app).await;
    let c = public_client(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    let t = tokens_for(&app, &c, "alice", &format!("&resource={}", enc(API))).await;
    assert_eq!(t["scope"], "read write");

    // A scope taken from the client: no longer in the access tokens; the refresh token keeps
    // its scope (RFC 6749 §6), so giving the scope back restores it.
    let r = send(&app, admin("PATCH", &format!("/admin/clients/{}", c.id), Some(json!({"scope": "read"})))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = refresh(&app, &c, &s(&t, "refresh_token"), "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["scope"], "read");
    assert_eq!(claims(&s(&r.body, "access_token"))["scope"], "read");
    let rt = s(&r.body, "refresh_token");
    let record = state.store.get_token(&gatehouse::crypto::opaque_token_id(&rt), state.clock.now()).await.unwrap();
    assert_eq!(record.unwrap().scope.to_string(), "read write");

    // A scope taken from the resource server: the same.
    let patch = json!({"scopes": [{"name": "write"}]});
    let r = send(&app, admin("PATCH", &format!("/admin/resource-servers/{}", enc(API)), Some(patch))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = send(&app, admin("PATCH", &format!("/admin/clients/{}", c.id), Some(json!({"scope": "read write"})))).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = refresh(&app, &c, &rt, "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["scope"], "write");
    let rt = s(&r.body, "refresh_token");

    // The resource server deleted: the grant ends.
    let r = send(&app, admin("DELETE", &format!("/admin/resource-servers/{}", enc(API)), None)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = refresh(&app, &c, &rt, "").await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");
    assert_eq!(r.body["error_description"], "the resource server of this grant is no longer registered");
    assert_eq!(r.header("cache-control"), Some("no-store"));
}

#[tokio::test]
async fn a_code_issues_what_the_client_still_allows() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = public_client(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    let code = code_for(&app, &pkce_query(&c.id, ""), "alice", PASSWORD).await;
    let r = send(&app, admin("PATCH", &format!("/admin/clients/{}", c.id), Some(json!({"scope": "write"})))).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = exchange_public(&app, &c, &code).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["scope"], "write");
}

#[tokio::test]
async fn resource_with_a_code_or_refresh_token_must_be_the_grants_own() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    resource_server(&app).await;
    let c = public_client(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    let code = code_for(&app, &pkce_query(&c.id, &format!("&resource={}", enc(API))), "alice", PASSWORD).await;
    let exchange = |resource: &str| {
        format!(
            "grant_type=authorization_code&code={}&redirect_uri={}&client_id={}&code_verifier={}&resource={}",
            enc(&code),
            enc(crate::code_flow::REDIRECT),
            c.id,
            crate::code_flow::VERIFIER,
            enc(resource)
        )
    };
    let r = send(&app, form("/token", None, &exchange("https://other.example.com"))).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_target");
    assert_eq!(r.body["error_description"], "the resource is not the one this grant was issued for");
    let r = send(&app, form("/token", None, &exchange(API))).await;
    assert_eq!(r.status, StatusCode::OK, "the refused request left the code unused: {}", r.text);
    assert_eq!(claims(&s(&r.body, "access_token"))["aud"], API);
    let rt = s(&r.body, "refresh_token");
    let r = refresh(&app, &c, &rt, &format!("&resource={}", enc(ISSUER))).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_target");
    let r = refresh(&app, &c, &rt, &format!("&resource={}", enc(API))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn a_retry_within_the_grace_is_answered_only_if_it_is_a_valid_request() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = public_client(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    let t = tokens_for(&app, &c, "alice", "&scope=read").await;
    let rt = s(&t, "refresh_token");
    let first = refresh(&app, &c, &rt, "").await;
    assert_eq!(first.status, StatusCode::OK);
    state.clock.advance(2);
    let r = refresh(&app, &c, &rt, "&scope=read%20write").await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_scope");
    let r = refresh(&app, &c, &rt, "").await;
    assert_eq!((r.status, &r.body), (StatusCode::OK, &first.body), "the refused retry changed nothing");
}

#[tokio::test]
async fn a_replayed_code_revokes_its_tokens_only_when_sent_with_its_verifier() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = public_client(&app).await;
    let rs = introspector(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    let code = code_for(&app, &pkce_query(&c.id, ""), "alice", PASSWORD).await;
    let t = exchange_public(&app, &c, &code).await;
    assert_eq!(t.status, StatusCode::OK);
    let at = s(&t.body, "access_token");
    // Someone who saw the used code, without the verifier: refused, and the tokens live on.
    for extra in ["", "&code_verifier=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"] {
        let body = format!(
            "grant_type=authorization_code&code={}&redirect_uri={}&client_id={}{extra}",
            enc(&code),
            enc(crate::code_flow::REDIRECT),
            c.id
        );
        let r = send(&app, form("/token", None, &body)).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");
        assert_active(&app, &rs, &at).await;
    }
    // The replay with the verifier (RFC 6749 §4.1.2): the tokens go.
    let r = exchange_public(&app, &c, &code).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");
    assert_eq!(r.body["error_description"], "the authorization code was already used");
    assert_inactive(&app, &rs, &at).await;
    assert_inactive(&app, &rs, &s(&t.body, "refresh_token")).await;
}

#[tokio::test]
async fn a_user_deleted_part_way_is_finished_by_deleting_again_and_a_new_user_inherits_nothing() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = public_client(&app).await;
    let rs = introspector(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    // The earlier alice signs in and leaves a consent page open.
    let page = crate::code_flow::open(&app, &pkce_query(&c.id, "")).await;
    assert_eq!(crate::code_flow::sign_in(&app, &page, "alice", PASSWORD).await.status, StatusCode::OK);
    let t = tokens_for(&app, &c, "alice", "").await;
    let (at, rt) = (s(&t, "access_token"), s(&t, "refresh_token"));
    // A deletion cut short after the user record went (a 503 part-way).
    assert!(state.store.delete_user("alice", None).await.unwrap());
    assert_active(&app, &rs, &at).await;
    state.clock.advance(5);
    // A new "alice" meanwhile: the earlier one's refresh token is not hers, nor her sign-in.
    create_user(&app, "alice", PASSWORD).await;
    let r = refresh(&app, &c, &rt, "").await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");
    assert_eq!(r.body["error_description"], "the resource owner is unknown or disabled");
    let r = crate::code_flow::decide(&app, &page, "approve").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.text.contains("the user who signed in no longer exists; return to the application"), "{}", r.text);
    let consents = state.store.list_consents("alice").await.unwrap();
    assert!(consents.iter().all(|c| c.granted_at == common::T0), "none recorded for the new alice: {consents:?}");

    // Deleting again finishes the first deletion's work, as the retry of a 503 would.
    let r = send(&app, admin("DELETE", "/admin/users/alice", None)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = send(&app, admin("DELETE", "/admin/users/alice", None)).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    assert_inactive(&app, &rs, &at).await;
    assert_inactive(&app, &rs, &rt).await;
    assert_eq!(state.store.list_consents("alice").await.unwrap(), vec![]);
}

#[tokio::test]
async fn revoking_a_rotated_refresh_token_revokes_its_successors() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = public_client(&app).await;
    let rs = introspector(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    let t = tokens_for(&app, &c, "alice", "").await;
    let rt1 = s(&t, "refresh_token");
    let r = refresh(&app, &c, &rt1, "").await;
    let (at2, rt2) = (s(&r.body, "access_token"), s(&r.body, "refresh_token"));
    let r = refresh(&app, &c, &rt2, "").await;
    let (at3, rt3) = (s(&r.body, "access_token"), s(&r.body, "refresh_token"));
    assert_active(&app, &rs, &rt3).await;
    // A sign-out that presents the token another tab rotated since (RFC 7009 §2.1).
    let r = send(&app, form("/revoke", None, &format!("token={}&client_id={}", enc(&rt1), c.id))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    for token in [&at2, &at3, &rt3] {
        assert_inactive(&app, &rs, token).await;
    }
    let r = refresh(&app, &c, &rt3, "").await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");
    // Another client may not: it is not its token.
    let other = public_client(&app).await;
    let t = tokens_for(&app, &c, "alice", "").await;
    let rt = s(&t, "refresh_token");
    let next = refresh(&app, &c, &rt, "").await;
    let r = send(&app, form("/revoke", None, &format!("token={}&client_id={}", enc(&rt), other.id))).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "unauthorized_client");
    assert_active(&app, &rs, &s(&next.body, "refresh_token")).await;
}

#[tokio::test]
async fn withdrawing_a_consent_revokes_the_users_tokens_at_that_client() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = public_client(&app).await;
    let other = public_client(&app).await;
    let rs = introspector(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    create_user(&app, "bob", PASSWORD).await;
    let alice = tokens_for(&app, &c, "alice", "").await;
    let elsewhere = tokens_for(&app, &other, "alice", "").await;
    let bob = tokens_for(&app, &c, "bob", "").await;
    let r = send(&app, admin("DELETE", &format!("/admin/users/alice/consents/{}", c.id), None)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_inactive(&app, &rs, &s(&alice, "access_token")).await;
    assert_inactive(&app, &rs, &s(&alice, "refresh_token")).await;
    let r = refresh(&app, &c, &s(&alice, "refresh_token"), "").await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");
    for t in [&elsewhere, &bob] {
        assert_active(&app, &rs, &s(t, "access_token")).await;
        assert_active(&app, &rs, &s(t, "refresh_token")).await;
    }
    let r = send(&app, admin("DELETE", &format!("/admin/users/alice/consents/{}", c.id), None)).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn concurrent_changes_to_a_user_are_all_kept() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    for round in 0..4 {
        let name = format!("user{round}");
        create_user(&app, &name, PASSWORD).await;
        let before = state.store.get_user(&name).await.unwrap().unwrap();
        let path = format!("/admin/users/{name}");
        // A password change (slow: Argon2) and a disable, at once.
        let (a, b) = tokio::join!(
            send(&app, admin("PATCH", &path, Some(json!({"password": "another long passphrase"})))),
            send(&app, admin("PATCH", &path, Some(json!({"enabled": false, "attributes": {"round": round}})))),
        );
        assert_eq!((a.status, b.status), (StatusCode::OK, StatusCode::OK), "{} {}", a.text, b.text);
        let after = state.store.get_user(&name).await.unwrap().unwrap();
        assert!(!after.enabled, "the disable is never undone by the password change");
        assert_ne!(after.password_hash, before.password_hash, "the password change is never undone either");
        assert_eq!(after.attributes, json!({"round": round}).as_object().unwrap().clone());
        assert_eq!(after.version, 2, "two updates");
    }
}

#[tokio::test]
async fn the_admin_scope_is_for_this_server_even_with_a_default_resource_server() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    resource_server(&app).await;
    let r = send(&app, admin("PATCH", "/admin/settings", Some(json!({"default_resource": API})))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let robot = register(&app, json!({"grant_types": ["client_credentials"], "scope": "gatehouse:admin read"})).await;
    for extra in ["&scope=gatehouse:admin", &format!("&scope=gatehouse:admin&resource={}", enc(ISSUER))] {
        let token = common::cc_token(&app, &robot, extra).await;
        assert_eq!(claims(&token)["aud"], ISSUER, "{extra}");
        let req = axum::http::Request::get("/admin/settings")
            .header("authorization", format!("Bearer {token}"))
            .body(axum::body::Body::empty())
            .unwrap();
        let r = send(&app, req).await;
        assert_eq!(r.status, StatusCode::OK, "{extra}: {}", r.text);
    }
    // Without the admin scope, the default resource server still applies.
    let token = common::cc_token(&app, &robot, "&scope=read").await;
    assert_eq!(claims(&token)["aud"], API);
}

#[tokio::test]
async fn admin_bodies_follow_one_set_of_rules() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    // Redirect URIs are matched exactly: no wildcard registrations.
    for uri in ["https://*.example.com/cb", "https://app.example.com/*", "http://127.0.0.1:*/cb"] {
        let r = send(&app, admin("POST", "/admin/clients", Some(json!({"redirect_uris": [uri]})))).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_redirect_uri");
        assert_eq!(r.body["error_description"], "redirect_uris: a redirect URI is matched exactly: no wildcards (`*`)");
    }
    // A scope object with a misspelt member is refused, naming it.
    let body = json!({"identifier": "https://r.example", "scopes": [{"name": "read", "descripton": "x"}]});
    let r = send(&app, admin("POST", "/admin/resource-servers", Some(body))).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    let d = r.body["error_description"].as_str().unwrap();
    assert!(d.contains("unknown field `descripton`"), "{d}");
    assert_eq!(
        send(&app, admin("GET", "/admin/resource-servers/https%3A%2F%2Fr.example", None)).await.status,
        StatusCode::NOT_FOUND
    );
    // The key endpoints read their bodies as every other admin body.
    for (path, raw) in [
        ("/admin/keys/rotate", "[60]"),
        ("/admin/keys/rotate", r#"{"activate_after": 60, "activate_after": 0}"#),
        ("/admin/keys/some-kid/retire", "[true]"),
    ] {
        let req = axum::http::Request::post(path)
            .header("authorization", format!("Bearer {}", common::ADMIN))
            .header("content-type", "application/json")
            .body(axum::body::Body::from(raw))
            .unwrap();
        let r = send(&app, req).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    }
}

#[tokio::test]
async fn a_refresh_token_revoked_during_its_rotation_is_revoked_not_reused() {
    gatehouse::audit::start_capture();
    let (inner, _dir) = common::embedded();
    let plain = common::state_on(inner.clone());
    let app = common::app(&plain);
    let c = public_client(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    let t = tokens_for(&app, &c, "alice", "").await;
    let racing = common::state_on(Arc::new(Hooked { revoke_before_rotation: true, ..Hooked::new(inner) }));
    let r = refresh(&common::app(&racing), &c, &s(&t, "refresh_token"), "").await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");
    assert_eq!(r.body["error_description"], "the refresh token was revoked");
    let reuse = gatehouse::audit::captured()
        .into_iter()
        .filter(|l| l["event"] == "refresh_reuse_detected" && l["client_id"] == c.id.as_str())
        .count();
    assert_eq!(reuse, 0, "no reuse to report");
}

/// `POST /admin/tokens/revoke-all` for a client records the revocation on the client first: with
/// the per-token sweep cut short (503), its access tokens, refresh tokens, unredeemed codes and
/// admin tokens issued until then are all refused anyway; tokens issued after it are not.
async fn revoking_all_of_a_clients_tokens_holds_without_the_sweep(inner: Arc<dyn gatehouse::store::Store>) {
    // Every token listing fails: the per-token sweep of a revoke-all is cut short at once.
    let state = common::state_on(Arc::new(Hooked { fail_token_listing: true, ..Hooked::new(inner) }));
    let app = common::app(&state);
    let c = public_client(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    let rs = introspector(&app).await;
    let t = tokens_for(&app, &c, "alice", "").await;
    let unredeemed = code_for(&app, &pkce_query(&c.id, ""), "alice", PASSWORD).await;
    let automation = register(&app, json!({"grant_types": ["client_credentials"], "scope": "gatehouse:admin"})).await;
    let admin_token = common::cc_token(&app, &automation, "&scope=gatehouse%3Aadmin").await;

    for client in [&c.id, &automation.id] {
        let r = send(&app, admin("POST", "/admin/tokens/revoke-all", Some(json!({"client_id": client})))).await;
        assert_error(&r, StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable");
    }
    assert_inactive(&app, &rs, &s(&t, "access_token")).await;
    assert_inactive(&app, &rs, &s(&t, "refresh_token")).await;
    let r = refresh(&app, &c, &s(&t, "refresh_token"), "").await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");
    assert_eq!(r.body["error_description"], "the refresh token was revoked");
    let r = exchange_public(&app, &c, &unredeemed).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");
    assert_eq!(r.body["error_description"], "the authorization code was revoked with every token of the client");
    let mut req = admin("GET", "/admin/clients", None);
    req.headers_mut().insert(axum::http::header::AUTHORIZATION, format!("Bearer {admin_token}").parse().unwrap());
    assert_eq!(send(&app, req).await.status, StatusCode::UNAUTHORIZED, "the automation's admin token too");

    // In the revocation's second, no token is handed out (it would be refused): 503, retry.
    let r = form("/token", Some(&automation.basic()), "grant_type=client_credentials");
    let r = send(&app, r).await;
    assert_error(&r, StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable");
    // Tokens issued after the revocation (a second later) are good.
    state.clock.advance(1);
    let fresh = tokens_for(&app, &c, "alice", "").await;
    assert_active(&app, &rs, &s(&fresh, "access_token")).await;
    assert_eq!(refresh(&app, &c, &s(&fresh, "refresh_token"), "").await.status, StatusCode::OK);
    let admin_token = common::cc_token(&app, &automation, "&scope=gatehouse%3Aadmin").await;
    let mut req = admin("GET", "/admin/clients", None);
    req.headers_mut().insert(axum::http::header::AUTHORIZATION, format!("Bearer {admin_token}").parse().unwrap());
    assert_eq!(send(&app, req).await.status, StatusCode::OK);
}

#[tokio::test]
async fn revoking_all_of_a_clients_tokens_holds_without_the_sweep_embedded() {
    let (inner, _dir) = common::embedded();
    revoking_all_of_a_clients_tokens_holds_without_the_sweep(inner).await;
}

#[tokio::test]
async fn revoking_all_of_a_clients_tokens_holds_without_the_sweep_dynamodb() {
    let Some((inner, _, _)) = common::dynamo().await else { return };
    revoking_all_of_a_clients_tokens_holds_without_the_sweep(inner).await;
}

/// `POST /admin/tokens/revoke-all` for a user (at one client, then everywhere) records the
/// revocation on the user first: with the per-token sweep cut short (503), the user's refresh
/// tokens and unredeemed codes issued until then are refused at the token endpoint; other
/// clients' and other users' are not, and neither are tokens issued later.
async fn revoking_all_of_a_users_tokens_holds_without_the_sweep(inner: Arc<dyn gatehouse::store::Store>) {
    use crate::refresh_password::{credentials, password_client, password_grant};
    let state = common::state_on(Arc::new(Hooked { fail_token_listing: true, ..Hooked::new(inner.clone()) }));
    let app = common::app(&state);
    let (c, other) = (public_client(&app).await, password_client(&app).await);
    create_user(&app, "alice", PASSWORD).await;
    create_user(&app, "bob", PASSWORD).await;
    let at_c = tokens_for(&app, &c, "alice", "").await;
    let unredeemed = code_for(&app, &pkce_query(&c.id, ""), "alice", PASSWORD).await;
    let r = password_grant(&app, &other, &credentials("alice", PASSWORD)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let at_other = r.body;
    let bobs = tokens_for(&app, &c, "bob", "").await;
    let revoked = "the grant was revoked with every token of its user";

    // At one client.
    let body = json!({"end_user": "alice", "client_id": c.id});
    let r = send(&app, admin("POST", "/admin/tokens/revoke-all", Some(body))).await;
    assert_error(&r, StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable");
    let alice = inner.get_user("alice").await.unwrap().unwrap();
    assert_eq!((alice.tokens_revoked_at, alice.client_tokens_revoked_at.get(&c.id)), (None, Some(&common::T0)));
    let r = refresh(&app, &c, &s(&at_c, "refresh_token"), "").await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");
    assert_eq!(r.body["error_description"], revoked);
    let r = exchange_public(&app, &c, &unredeemed).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");
    assert_eq!(r.body["error_description"], revoked);
    let r = refresh(&app, &c, &s(&bobs, "refresh_token"), "").await;
    assert_eq!(r.status, StatusCode::OK, "bob's: {}", r.text);
    let r = refresh_confidential(&app, &other, &s(&at_other, "refresh_token")).await;
    assert_eq!(r.status, StatusCode::OK, "alice's at another client: {}", r.text);
    let at_other = r.body;

    // Everywhere. In the revocation's second no token is handed out to her (it would be
    // refused): 503, retry.
    let r = send(&app, admin("POST", "/admin/tokens/revoke-all", Some(json!({"end_user": "alice"})))).await;
    assert_error(&r, StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable");
    assert_eq!(inner.get_user("alice").await.unwrap().unwrap().tokens_revoked_at, Some(common::T0));
    let r = refresh_confidential(&app, &other, &s(&at_other, "refresh_token")).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");
    assert_eq!(r.body["error_description"], revoked);
    let r = password_grant(&app, &other, &credentials("alice", PASSWORD)).await;
    assert_error(&r, StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable");
    assert_eq!(r.body["error_description"], "every token of this user was revoked this second; retry");

    // A second later she signs in again, at both clients.
    state.clock.advance(1);
    let fresh = tokens_for(&app, &c, "alice", "").await;
    assert_eq!(refresh(&app, &c, &s(&fresh, "refresh_token"), "").await.status, StatusCode::OK);
    let r = password_grant(&app, &other, &credentials("alice", PASSWORD)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(refresh_confidential(&app, &other, &s(&r.body, "refresh_token")).await.status, StatusCode::OK);
}

/// A confidential client's refresh request (HTTP Basic).
async fn refresh_confidential(app: &axum::Router, c: &common::TestClient, token: &str) -> common::Resp {
    let body = format!("grant_type=refresh_token&refresh_token={}", enc(token));
    send(app, form("/token", Some(&c.basic()), &body)).await
}

#[tokio::test]
async fn revoking_all_of_a_users_tokens_holds_without_the_sweep_embedded() {
    let (inner, _dir) = common::embedded();
    revoking_all_of_a_users_tokens_holds_without_the_sweep(inner).await;
}

#[tokio::test]
async fn revoking_all_of_a_users_tokens_holds_without_the_sweep_dynamodb() {
    let Some((inner, _, _)) = common::dynamo().await else { return };
    revoking_all_of_a_users_tokens_holds_without_the_sweep(inner).await;
}

/// A user's cutoff covers grants, not only tokens issued before it: a refresh token rotated
/// within the grace window is not handed back again, a successor issued after the cutoff from an
/// earlier grant (a refresh racing with the revoke-all) is refused, a consent page left open
/// since an earlier sign-in yields no code and records no consent, and a later change of the
/// user keeps the cutoffs.
async fn a_users_cutoff_covers_grants_made_before_it(inner: Arc<dyn gatehouse::store::Store>) {
    use crate::code_flow::{decide, open, sign_in};
    let state = common::state_on(Arc::new(Hooked { fail_token_listing: true, ..Hooked::new(inner.clone()) }));
    let app = common::app(&state);
    let c = public_client(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    let revoked = "the grant was revoked with every token of its user";
    // A consent page shown, and left open; another request opened, not signed in yet.
    let page = open(&app, &pkce_query(&c.id, "")).await;
    assert_eq!(sign_in(&app, &page, "alice", PASSWORD).await.status, StatusCode::OK);
    let unsigned = open(&app, &pkce_query(&c.id, "")).await;
    let rotated = tokens_for(&app, &c, "alice", "").await;
    let raced = tokens_for(&app, &c, "alice", "").await;
    state.clock.advance(2);
    let r = refresh(&app, &c, &s(&rotated, "refresh_token"), "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = refresh(&app, &c, &s(&raced, "refresh_token"), "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let successor = r.body;

    // The revocation is recorded a second after the refreshes, as if the second refresh had
    // read the user just before it: its successor (issued at T0+2) comes from a grant of T0.
    let r = send(&app, admin("POST", "/admin/tokens/revoke-all", Some(json!({"end_user": "alice"})))).await;
    assert_error(&r, StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable");
    let mut alice = inner.get_user("alice").await.unwrap().unwrap();
    let v = alice.version;
    alice.tokens_revoked_at = Some(common::T0 + 1);
    alice.version += 1;
    assert!(inner.update_user(&alice, v).await.unwrap());
    state.clock.advance(1);
    let r = refresh(&app, &c, &s(&successor, "refresh_token"), "").await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");
    assert_eq!(r.body["error_description"], revoked);
    // Within the grace window the rotated token would get its successor back: not any more.
    let r = refresh(&app, &c, &s(&rotated, "refresh_token"), "").await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");
    assert_eq!(r.body["error_description"], revoked);
    // The consent page of the sign-in before the revocation: no code, and the consent is not
    // recorded again (the one recorded before stays as it was).
    let before = inner.get_consent("alice", &c.id).await.unwrap().unwrap();
    let r = decide(&app, &page, "approve").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.text.contains("every token of this user was revoked since this sign-in"), "{}", r.text);
    assert_eq!(inner.get_consent("alice", &c.id).await.unwrap(), Some(before));
    let pending_id = page.csrf.split_once('.').unwrap().0;
    assert_eq!(inner.get_pending(pending_id, state.clock.now()).await.unwrap(), None, "the request is over");
    // A request opened before the revocation but signed in after it goes through.
    let r = sign_in(&app, &unsigned, "alice", PASSWORD).await;
    let r = if r.status == StatusCode::OK { decide(&app, &unsigned, "approve").await } else { r };
    let code = crate::code_flow::code_from(&r);
    assert_eq!(exchange_public(&app, &c, &code).await.status, StatusCode::OK);

    // A change of the user keeps the cutoffs; a withdrawn consent of a client that does not
    // exist adds none.
    let r = send(&app, admin("PATCH", "/admin/users/alice", Some(json!({"attributes": {"team": "blue"}})))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = send(&app, admin("DELETE", "/admin/users/alice/consents/no-such-client", None)).await;
    assert_error(&r, StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable"); // its sweep, cut short
    let alice = inner.get_user("alice").await.unwrap().unwrap();
    assert_eq!((alice.tokens_revoked_at, alice.client_tokens_revoked_at.len()), (Some(common::T0 + 1), 0));
    let r = refresh(&app, &c, &s(&successor, "refresh_token"), "").await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");
}

#[tokio::test]
async fn a_users_cutoff_covers_grants_made_before_it_embedded() {
    let (inner, _dir) = common::embedded();
    a_users_cutoff_covers_grants_made_before_it(inner).await;
}

#[tokio::test]
async fn a_users_cutoff_covers_grants_made_before_it_dynamodb() {
    let Some((inner, _, _)) = common::dynamo().await else { return };
    a_users_cutoff_covers_grants_made_before_it(inner).await;
}

/// A code's grant time is its sign-in: a revocation of the user's tokens at the client that
/// lands after the approval's check but before its code is issued (dated between the two here)
/// covers the code, and the consent that approval recorded (given at the sign-in) counts as
/// withdrawn, so the user is asked again.
#[tokio::test]
async fn a_code_from_a_sign_in_before_a_cutoff_is_refused_and_its_consent_withdrawn() {
    use crate::code_flow::{code_from, decide, open, sign_in};
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = public_client(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    let page = open(&app, &pkce_query(&c.id, "")).await;
    assert_eq!(sign_in(&app, &page, "alice", PASSWORD).await.status, StatusCode::OK, "the consent page");
    state.clock.advance(2);
    let code = code_from(&decide(&app, &page, "approve").await);
    let mut alice = state.store.get_user("alice").await.unwrap().unwrap();
    let read = alice.version;
    alice.client_tokens_revoked_at.insert(c.id.clone(), common::T0 + 1);
    alice.version += 1;
    assert!(state.store.update_user(&alice, read).await.unwrap());
    let r = exchange_public(&app, &c, &code).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");
    assert_eq!(r.body["error_description"], "the grant was revoked with every token of its user");

    assert_eq!(state.store.get_consent("alice", &c.id).await.unwrap().unwrap().granted_at, common::T0);
    let again = open(&app, &pkce_query(&c.id, "")).await;
    assert_eq!(sign_in(&app, &again, "alice", PASSWORD).await.status, StatusCode::OK, "asked again");
    let code = code_from(&decide(&app, &again, "approve").await);
    assert_eq!(exchange_public(&app, &c, &code).await.status, StatusCode::OK);
    // Given after the revocation, this consent counts: not asked a third time.
    let third = open(&app, &pkce_query(&c.id, "")).await;
    assert_eq!(sign_in(&app, &third, "alice", PASSWORD).await.status, StatusCode::SEE_OTHER);

    // A revoke-all for her at the client withdraws the consent: deleted, and not listed.
    state.clock.advance(1);
    let body = json!({"end_user": "alice", "client_id": c.id});
    assert_eq!(send(&app, admin("POST", "/admin/tokens/revoke-all", Some(body))).await.status, StatusCode::OK);
    assert_eq!(state.store.get_consent("alice", &c.id).await.unwrap(), None);
    // One recorded again by an approval racing with it (given at a sign-in before it) stands
    // nowhere: not in the listing, not in the flow.
    let raced = gatehouse::model::Consent {
        username: "alice".into(),
        client_id: c.id.clone(),
        scope: gatehouse::model::Scope::parse("read write").unwrap(),
        resources: Default::default(),
        granted_at: common::T0 + 2,
    };
    state.store.put_consent(&raced).await.unwrap();
    let r = send(&app, admin("GET", "/admin/users/alice/consents", None)).await;
    assert_eq!(r.body, json!({"consents": []}), "{}", r.text);
}

/// A revocation of all of a client's tokens covers the codes issued until then; a sign-in under
/// way at that moment goes on, and its code (issued later) works.
#[tokio::test]
async fn a_sign_in_under_way_during_a_clients_revoke_all_goes_on() {
    use crate::code_flow::{code_from, decide, open, sign_in};
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = public_client(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    let page = open(&app, &pkce_query(&c.id, "")).await;
    assert_eq!(sign_in(&app, &page, "alice", PASSWORD).await.status, StatusCode::OK, "the consent page");
    let r = send(&app, admin("POST", "/admin/tokens/revoke-all", Some(json!({"client_id": c.id})))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    state.clock.advance(1);
    let code = code_from(&decide(&app, &page, "approve").await);
    let r = exchange_public(&app, &c, &code).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(refresh(&app, &c, &s(&r.body, "refresh_token"), "").await.status, StatusCode::OK);
}

/// A user's revoke-all pages through the user's tokens in expiry order; tokens issued while it
/// reads its last page (one at another client with a shorter lifetime, sorting before its
/// cursor; one after it) are revoked by the pass that follows.
async fn a_users_sweep_revokes_tokens_issued_during_it(inner: Arc<dyn gatehouse::store::Store>) {
    use gatehouse::model::TokenKind;
    use gatehouse::store::conformance::token;
    let now = common::T0;
    for i in 0..150 {
        inner.put_token(&token(&format!("long{i:03}"), TokenKind::Access, "slow", Some("alice"), now)).await.unwrap();
    }
    let sooner = gatehouse::model::TokenRecord {
        expires_at: now + 60,
        ..token("issued-during-the-sweep", TokenKind::Access, "brief", Some("alice"), now)
    };
    let later = gatehouse::model::TokenRecord {
        expires_at: now + 7200,
        ..token("issued-after-the-cursor", TokenKind::Access, "slow", Some("alice"), now)
    };
    let hooked = Hooked::new(inner.clone());
    *hooked.issue_during_listing.lock().unwrap() = vec![sooner, later];
    let state = common::state_on(Arc::new(hooked));
    let app = common::app(&state);
    let r = send(&app, admin("POST", "/admin/tokens/revoke-all", Some(json!({"end_user": "alice"})))).await;
    assert_eq!((r.status, &r.body), (StatusCode::OK, &json!({"revoked": 152})), "{}", r.text);
    for id in ["issued-during-the-sweep", "issued-after-the-cursor", "long000", "long149"] {
        let t = inner.get_token(id, now).await.unwrap().unwrap();
        assert_eq!(t.revoked_at, Some(now), "{id}");
    }
    let alice =
        gatehouse::store::TokenQuery { kind: TokenKind::Access, client_id: None, end_user: Some("alice".into()) };
    assert_eq!(inner.count_tokens(&alice, now).await.unwrap(), 0);
}

#[tokio::test]
async fn a_users_sweep_revokes_tokens_issued_during_it_embedded() {
    let (inner, _dir) = common::embedded();
    a_users_sweep_revokes_tokens_issued_during_it(inner).await;
}

#[tokio::test]
async fn a_users_sweep_revokes_tokens_issued_during_it_dynamodb() {
    let Some((inner, _, _)) = common::dynamo().await else { return };
    a_users_sweep_revokes_tokens_issued_during_it(inner).await;
}

/// Another warm instance whose cached client predates a revoke-all (up to `CLIENT_TTL`) may
/// still refresh an older grant: the new tokens carry that grant's time, so they are refused as
/// soon as the revocation is known, and refreshing them again fails.
#[tokio::test]
async fn tokens_a_stale_instance_refreshed_from_an_older_grant_are_revoked_too() {
    let (inner, _dir) = common::embedded();
    // The revoke-all's sweep is cut short, so the records stay active: only the client's
    // record says they are revoked.
    let admin_side = common::state_on(Arc::new(Hooked { fail_token_listing: true, ..Hooked::new(inner.clone()) }));
    let stale = common::state_on(inner.clone());
    let (admin_app, stale_app) = (common::app(&admin_side), common::app(&stale));
    let c = public_client(&admin_app).await;
    create_user(&admin_app, "alice", PASSWORD).await;
    let rs = introspector(&admin_app).await;
    let t = tokens_for(&stale_app, &c, "alice", "").await; // the stale instance caches the client
    let r = send(&admin_app, admin("POST", "/admin/tokens/revoke-all", Some(json!({"client_id": c.id})))).await;
    assert_error(&r, StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable");
    for st in [&admin_side, &stale] {
        st.clock.advance(2);
    }
    // Within its cache's 10 s the stale instance still refreshes (it cannot know yet) ...
    let r = refresh(&stale_app, &c, &s(&t, "refresh_token"), "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let refreshed = r.body;
    // ... but what it issued is refused wherever the revocation is known,
    assert_inactive(&admin_app, &rs, &s(&refreshed, "access_token")).await;
    assert_inactive(&admin_app, &rs, &s(&refreshed, "refresh_token")).await;
    let r = refresh(&admin_app, &c, &s(&refreshed, "refresh_token"), "").await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");
    // and on the stale instance once its cached client expires.
    stale.clock.advance(gatehouse::cache::CLIENT_TTL);
    assert_inactive(&stale_app, &rs, &s(&refreshed, "access_token")).await;
    let r = refresh(&stale_app, &c, &s(&refreshed, "refresh_token"), "").await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");
    assert_eq!(r.body["error_description"], "the refresh token was revoked");
}
