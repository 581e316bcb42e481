//! Resource owners through the admin API (`/admin/users`), deleting a user (tokens and consents
//! go with them), and the seed's token listings by end user and by client + end user, with
//! revocation of refresh tokens through `POST /admin/tokens/revoke`.
use axum::Router;
use axum::http::{StatusCode, header};
use serde_json::{Value, json};

use crate::code_flow::{
    ISSUER, PASSWORD, assert_active, assert_inactive, claims, create_user, enc, introspector, open, pkce_query,
    public_client, sign_in, tokens_for,
};
use crate::common::{self, T0, TestClient, admin, assert_error, form, register, send};

fn s(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or_else(|| panic!("no {k} in {v}")).to_owned()
}

async fn password_client(app: &Router) -> TestClient {
    register(app, json!({"grant_types": ["password", "refresh_token"], "scope": "read write"})).await
}

async fn password_grant(app: &Router, c: &TestClient, username: &str, password: &str) -> common::Resp {
    let body = format!("grant_type=password&username={}&password={}", enc(username), enc(password));
    send(app, form("/token", Some(&c.basic()), &body)).await
}

async fn refresh(app: &Router, c: &TestClient, token: &str) -> common::Resp {
    let body = format!("grant_type=refresh_token&refresh_token={}&client_id={}", enc(token), enc(&c.id));
    send(app, form("/token", None, &body)).await
}

async fn create_groups(app: &Router, names: &[&str]) {
    for name in names {
        let r = send(app, admin("POST", "/admin/groups", Some(json!({"name": name})))).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
}

async fn groups_of(app: &Router, username: &str) -> Value {
    let r = send(app, admin("GET", &format!("/admin/users/{username}/groups"), None)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["groups"].clone()
}

fn assert_invalid_request(r: &common::Resp, description: &str) {
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(r.body["error_description"], description, "{}", r.text);
}

#[tokio::test]
async fn create_read_and_validation() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    create_groups(&app, &["staff", "admins"]).await;
    // The groups given are memberships: shown sorted, repeats once.
    let new = json!({"username": "alice", "password": PASSWORD, "attributes": {"dept": "eng", "level": 3},
                     "groups": ["staff", "admins", "staff"]});
    let r = send(&app, admin("POST", "/admin/users", Some(new.clone()))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let expected = json!({"username": "alice", "attributes": {"dept": "eng", "level": 3},
                          "groups": ["admins", "staff"], "enabled": true, "created_at": T0, "updated_at": T0});
    assert_eq!(r.body, expected);
    assert!(!r.text.contains("argon2") && !r.text.contains(PASSWORD), "no hash or password: {}", r.text);
    let stored = state.store.get_user("alice").await.unwrap().unwrap();
    assert!(stored.password_hash.starts_with("$argon2id$v=19$"), "{}", stored.password_hash);
    assert!(!stored.password_hash.contains(PASSWORD));

    let r = send(&app, admin("GET", "/admin/users/alice", None)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.body, expected);
    assert!(!r.text.contains("argon2"));
    assert_eq!(groups_of(&app, "alice").await, json!(["admins", "staff"]));
    let r = send(&app, admin("GET", "/admin/groups/staff/members", None)).await;
    assert_eq!(r.body["members"], json!(["alice"]), "{}", r.text);

    // Defaults, and the shortest password allowed (8).
    let r = send(&app, admin("POST", "/admin/users", Some(json!({"username": "bob", "password": "12345678"})))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(
        r.body,
        json!({"username": "bob", "attributes": {}, "groups": [], "enabled": true, "created_at": T0, "updated_at": T0})
    );
    let r = send(
        &app,
        admin("POST", "/admin/users", Some(json!({"username": "carol", "password": PASSWORD, "enabled": false}))),
    )
    .await;
    assert_eq!(r.body["enabled"], false);

    let r = send(&app, admin("POST", "/admin/users", Some(new))).await;
    assert_error(&r, StatusCode::CONFLICT, "conflict");
    assert_eq!(r.body["error_description"], "a user with this username exists");
    // A username may not be a client's id: both are a token's `sub` (RFC 9068 §5).
    let c = common::cc_client(&app).await;
    let r = send(&app, admin("POST", "/admin/users", Some(json!({"username": c.id, "password": PASSWORD})))).await;
    assert_error(&r, StatusCode::CONFLICT, "conflict");
    assert_eq!(
        r.body["error_description"],
        "a client has this id; usernames and client ids share the tokens' `sub` (RFC 9068 §5)"
    );
    assert_eq!(state.store.get_user(&c.id).await.unwrap(), None, "nothing created");

    let r = send(&app, admin("POST", "/admin/users", Some(json!({"username": "dave", "password": "1234567"})))).await;
    assert_invalid_request(&r, "password: 8 to 1024 characters");
    let r = send(
        &app,
        admin("POST", "/admin/users", Some(json!({"username": "dave", "password": PASSWORD, "nickname": "d"}))),
    )
    .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    let d = s(&r.body, "error_description");
    assert!(d.starts_with("unknown field `nickname`"), "{d}");
    let r = send(&app, admin("POST", "/admin/users", Some(json!({"username": "dave"})))).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    assert!(s(&r.body, "error_description").contains("missing field `password`"), "{}", r.text);
    for bad in ["", " dave", "dave ", "da\u{0007}ve"] {
        let r = send(&app, admin("POST", "/admin/users", Some(json!({"username": bad, "password": PASSWORD})))).await;
        assert_invalid_request(&r, "username: 1 to 128 characters, no control characters");
    }
    let bad_names = "groups: at most 100 group names (1 to 64 characters of A-Z, a-z, 0-9, '.', '_' and '-')";
    let too_many: Vec<String> = (0..101).map(|i| format!("g{i}")).collect();
    for groups in [json!([""]), json!(["a b"]), json!(["x".repeat(65)]), json!(too_many)] {
        let r = send(
            &app,
            admin("POST", "/admin/users", Some(json!({"username": "dave", "password": PASSWORD, "groups": groups}))),
        )
        .await;
        assert_invalid_request(&r, bad_names);
    }
    // Every group named must exist: checked before the user is created.
    let r = send(
        &app,
        admin(
            "POST",
            "/admin/users",
            Some(json!({"username": "dave", "password": PASSWORD, "groups": ["staff", "nope", "zzz"]})),
        ),
    )
    .await;
    assert_invalid_request(&r, "groups: no such group: nope");
    assert_eq!(state.store.get_user("dave").await.unwrap(), None, "nothing refused was stored");
    assert!(state.store.groups_of("dave").await.unwrap().is_empty());
    let r = send(&app, admin("GET", "/admin/groups/staff/members", None)).await;
    assert_eq!(r.body["members"], json!(["alice"]), "{}", r.text);

    let r = send(&app, admin("GET", "/admin/users/nobody", None)).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    for (method, path) in [("POST", "/admin/users"), ("GET", "/admin/users/alice"), ("DELETE", "/admin/users/alice")] {
        let mut req = admin(method, path, Some(json!({"username": "eve", "password": PASSWORD})));
        req.headers_mut().remove(header::AUTHORIZATION);
        assert_error(&send(&app, req).await, StatusCode::UNAUTHORIZED, "unauthorized");
    }
    assert!(state.store.get_user("alice").await.unwrap().is_some(), "an unauthorized DELETE did nothing");
}

#[tokio::test]
async fn patch_changes_the_password_and_profile() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = password_client(&app).await;
    create_groups(&app, &["g1", "g2", "g3"]).await;
    create_user(&app, "alice", PASSWORD).await;
    state.clock.advance(30);
    let new_password = "a much better passphrase";
    let r = send(
        &app,
        admin(
            "PATCH",
            "/admin/users/alice",
            Some(json!({"password": new_password, "attributes": {"dept": "ops"}, "groups": ["g1"]})),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(
        r.body,
        json!({"username": "alice", "attributes": {"dept": "ops"}, "groups": ["g1"], "enabled": true,
               "created_at": T0, "updated_at": T0 + 30})
    );
    assert!(!r.text.contains("argon2"));
    assert_eq!(groups_of(&app, "alice").await, json!(["g1"]));
    let r = password_grant(&app, &c, "alice", PASSWORD).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");
    assert_eq!(password_grant(&app, &c, "alice", new_password).await.status, StatusCode::OK);

    // Refused changes change nothing.
    let r = send(&app, admin("PATCH", "/admin/users/alice", Some(json!({"password": "short"})))).await;
    assert_invalid_request(&r, "password: 8 to 1024 characters");
    let r = send(&app, admin("PATCH", "/admin/users/alice", Some(json!({"username": "bob"})))).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    assert!(s(&r.body, "error_description").starts_with("unknown field `username`"), "{}", r.text);
    let r = send(&app, admin("PATCH", "/admin/users/alice", Some(json!({"enabled": "no"})))).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    assert!(s(&r.body, "error_description").starts_with("enabled: "), "{}", r.text);
    assert_eq!(password_grant(&app, &c, "alice", new_password).await.status, StatusCode::OK);
    // An unknown group: refused before anything changes (neither memberships nor the rest).
    let r = send(
        &app,
        admin("PATCH", "/admin/users/alice", Some(json!({"groups": ["g2", "nope"], "attributes": {"dept": "x"}}))),
    )
    .await;
    assert_invalid_request(&r, "groups: no such group: nope");
    let r = send(&app, admin("PATCH", "/admin/users/alice", Some(json!({"groups": [""], "enabled": false})))).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(password_grant(&app, &c, "alice", new_password).await.status, StatusCode::OK);
    let r = send(&app, admin("GET", "/admin/users/alice", None)).await;
    assert_eq!(r.body["updated_at"], T0 + 30);
    assert_eq!(r.body["attributes"], json!({"dept": "ops"}));
    assert_eq!(r.body["groups"], json!(["g1"]));
    assert_eq!(groups_of(&app, "alice").await, json!(["g1"]));

    // Memberships made elsewhere show in the user; a patch replaces them all.
    let r = send(&app, admin("PUT", "/admin/groups/g2/members/alice", None)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = send(&app, admin("GET", "/admin/users/alice", None)).await;
    assert_eq!(r.body["groups"], json!(["g1", "g2"]));
    let r = send(&app, admin("PATCH", "/admin/users/alice", Some(json!({"groups": ["g3", "g2"]})))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["groups"], json!(["g2", "g3"]));
    assert_eq!(groups_of(&app, "alice").await, json!(["g2", "g3"]));
    let r = send(&app, admin("GET", "/admin/groups/g1/members", None)).await;
    assert_eq!(r.body["members"], json!([]), "{}", r.text);
    // Without `groups` the memberships stay; an empty list ends them all.
    let r = send(&app, admin("PATCH", "/admin/users/alice", Some(json!({"enabled": true})))).await;
    assert_eq!(r.body["groups"], json!(["g2", "g3"]), "{}", r.text);
    let r = send(&app, admin("PATCH", "/admin/users/alice", Some(json!({"groups": []})))).await;
    assert_eq!(r.body["groups"], json!([]), "{}", r.text);
    assert_eq!(groups_of(&app, "alice").await, json!([]));
    let r = send(&app, admin("GET", "/admin/users", None)).await;
    assert_eq!(r.body["users"][0]["groups"], json!([]), "{}", r.text);

    let r = send(&app, admin("PATCH", "/admin/users/nobody", Some(json!({"enabled": false})))).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(state.store.get_user("nobody").await.unwrap(), None);
}

#[tokio::test]
async fn deleting_a_user_revokes_their_tokens_and_consents() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let web = public_client(&app).await;
    let pw = password_client(&app).await;
    let rs = introspector(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    create_user(&app, "bob", PASSWORD).await;
    let code_tokens = tokens_for(&app, &web, "alice", "").await;
    let pw_tokens = password_grant(&app, &pw, "alice", PASSWORD).await.body;
    let bobs = tokens_for(&app, &web, "bob", "").await;
    assert!(state.store.get_consent("alice", &web.id).await.unwrap().is_some());

    let r = send(&app, admin("DELETE", "/admin/users/alice", None)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(r.text, "");
    assert_eq!(r.header("cache-control"), Some("no-store"));

    assert_error(&send(&app, admin("GET", "/admin/users/alice", None)).await, StatusCode::NOT_FOUND, "not_found");
    assert_error(&send(&app, admin("DELETE", "/admin/users/alice", None)).await, StatusCode::NOT_FOUND, "not_found");
    for t in [&code_tokens, &pw_tokens] {
        assert_inactive(&app, &rs, &s(t, "access_token")).await;
        assert_inactive(&app, &rs, &s(t, "refresh_token")).await;
    }
    let r = refresh(&app, &web, &s(&code_tokens, "refresh_token")).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");
    assert_eq!(state.store.list_consents("alice").await.unwrap(), vec![]);
    for kind in ["access", "refresh"] {
        let r = send(&app, admin("GET", &format!("/admin/tokens/count?type={kind}&end_user=alice"), None)).await;
        assert_eq!(r.body, json!({"count": 0}), "{kind}");
    }
    // Bob is untouched.
    assert_active(&app, &rs, &s(&bobs, "access_token")).await;
    assert_active(&app, &rs, &s(&bobs, "refresh_token")).await;
    assert!(state.store.get_consent("bob", &web.id).await.unwrap().is_some());

    // A new user with the same name starts over: no consent, no old tokens.
    create_user(&app, "alice", PASSWORD).await;
    let page = open(&app, &pkce_query(&web.id, "")).await;
    let r = sign_in(&app, &page, "alice", PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "the consent page again: {}", r.text);
    assert!(r.text.contains("<h1>Allow access?</h1>"));
    assert_error(
        &refresh(&app, &web, &s(&code_tokens, "refresh_token")).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
}

#[tokio::test]
async fn listings_by_end_user_and_by_client_and_end_user() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let web = public_client(&app).await;
    let pw = password_client(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    create_user(&app, "bob", PASSWORD).await;
    let a1 = tokens_for(&app, &web, "alice", "").await;
    state.clock.advance(10);
    let a2 = password_grant(&app, &pw, "alice", PASSWORD).await.body;
    state.clock.advance(10);
    tokens_for(&app, &web, "bob", "&scope=read").await;

    let rt1 = gatehouse::crypto::opaque_token_id(&s(&a1, "refresh_token"));
    let rt2 = gatehouse::crypto::opaque_token_id(&s(&a2, "refresh_token"));
    let refresh_json = |jti: &str, client: &str, grant: &str, iat: i64| {
        json!({"jti": jti, "type": "refresh", "client_id": client, "sub": "alice", "end_user": "alice",
               "scope": "read write", "aud": ISSUER, "grant_type": grant, "iat": iat, "exp": iat + 2_592_000})
    };
    let r1 = refresh_json(&rt1, &web.id, "authorization_code", T0);
    let r2 = refresh_json(&rt2, &pw.id, "password", T0 + 10);

    // The cursor: base64url of the sort key (`E`, expiry, `#`, id); these expire 30 days after
    // their issue.
    let cursor = |iat: i64, jti: &str| gatehouse::crypto::b64url(format!("E{:012}#{jti}", iat + 2_592_000));
    let list = |q: String| {
        let app = app.clone();
        async move {
            let r = send(&app, admin("GET", &format!("/admin/tokens?{q}"), None)).await;
            assert_eq!(r.status, StatusCode::OK, "{q}: {}", r.text);
            assert_eq!(r.header("cache-control"), Some("no-store"));
            r.body
        }
    };
    assert_eq!(
        list("type=refresh&end_user=alice".into()).await,
        json!({"tokens": [r1, r2], "offset": 0, "limit": 100, "next_offset": null, "next": null})
    );
    assert_eq!(
        list(format!("type=refresh&end_user=alice&client_id={}", web.id)).await,
        json!({"tokens": [r1], "offset": 0, "limit": 100, "next_offset": null, "next": null})
    );
    assert_eq!(
        list(format!("type=refresh&end_user=alice&client_id={}", pw.id)).await,
        json!({"tokens": [r2], "offset": 0, "limit": 100, "next_offset": null, "next": null})
    );
    assert_eq!(
        list("type=refresh&end_user=alice&limit=1".into()).await,
        json!({"tokens": [r1], "offset": 0, "limit": 1, "next_offset": 1, "next": cursor(T0, &rt1)})
    );
    assert_eq!(
        list("type=refresh&end_user=alice&offset=1&limit=1".into()).await,
        json!({"tokens": [r2], "offset": 1, "limit": 1, "next_offset": 2, "next": cursor(T0 + 10, &rt2)})
    );
    // The cursor continues where the page ended.
    assert_eq!(
        list(format!("type=refresh&end_user=alice&limit=1&cursor={}", cursor(T0, &rt1))).await,
        json!({"tokens": [r2], "offset": null, "limit": 1, "next_offset": null, "next": null})
    );
    assert_eq!(list("type=refresh&end_user=alice&offset=2&limit=1".into()).await["tokens"], json!([]));

    let access = list(format!("type=access&end_user=alice&client_id={}", web.id)).await;
    let at1 = claims(&s(&a1, "access_token"));
    assert_eq!(
        access["tokens"],
        json!([{"jti": at1["jti"], "type": "access", "client_id": web.id, "sub": "alice", "end_user": "alice",
                "scope": "read write", "aud": ISSUER, "grant_type": "authorization_code", "iat": T0, "exp": T0 + 3600}])
    );
    let bob = list(format!("type=refresh&end_user=bob&client_id={}", web.id)).await;
    assert_eq!(bob["tokens"].as_array().unwrap().len(), 1);
    assert_eq!(bob["tokens"][0]["scope"], "read");
    assert_eq!(list("type=refresh&end_user=nobody".into()).await["tokens"], json!([]));
    // By client: both users.
    assert_eq!(list(format!("type=refresh&client_id={}", web.id)).await["tokens"].as_array().unwrap().len(), 2);

    let count = |q: &str| {
        let (app, q) = (app.clone(), q.to_owned());
        async move { send(&app, admin("GET", &format!("/admin/tokens/count?{q}"), None)).await.body }
    };
    assert_eq!(count("type=refresh&end_user=alice").await, json!({"count": 2}));
    assert_eq!(count("type=access&end_user=alice").await, json!({"count": 2}));
    assert_eq!(count(&format!("type=refresh&end_user=alice&client_id={}", pw.id)).await, json!({"count": 1}));
    assert_eq!(count("type=refresh&end_user=bob").await, json!({"count": 1}));

    // A rotated refresh token leaves the listing; its successor appears.
    let next = refresh(&app, &web, &s(&a1, "refresh_token")).await;
    assert_eq!(next.status, StatusCode::OK, "{}", next.text);
    let listed = list(format!("type=refresh&end_user=alice&client_id={}", web.id)).await;
    assert_eq!(listed["tokens"].as_array().unwrap().len(), 1);
    assert_eq!(
        listed["tokens"][0]["jti"],
        gatehouse::crypto::opaque_token_id(&s(&next.body, "refresh_token")).as_str()
    );
    assert_eq!(listed["tokens"][0]["grant_type"], "authorization_code", "the family's grant");
}

#[tokio::test]
async fn admin_revocation_of_a_refresh_token_revokes_its_family() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let web = public_client(&app).await;
    let rs = introspector(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    let one = tokens_for(&app, &web, "alice", "").await;
    let two = tokens_for(&app, &web, "alice", "").await;

    let r = send(&app, admin("POST", "/admin/tokens/revoke", Some(json!({"token": s(&one, "refresh_token")})))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.body, json!({"revoked": true}));
    assert_inactive(&app, &rs, &s(&one, "refresh_token")).await;
    assert_inactive(&app, &rs, &s(&one, "access_token")).await;
    assert_error(&refresh(&app, &web, &s(&one, "refresh_token")).await, StatusCode::BAD_REQUEST, "invalid_grant");
    // Again: nothing active to revoke.
    let r = send(&app, admin("POST", "/admin/tokens/revoke", Some(json!({"token": s(&one, "refresh_token")})))).await;
    assert_eq!(r.body, json!({"revoked": false}));
    // The other family is untouched; it can be revoked by its listed id.
    assert_active(&app, &rs, &s(&two, "access_token")).await;
    let listed = send(&app, admin("GET", "/admin/tokens?type=refresh&end_user=alice", None)).await;
    let ids: Vec<&str> = listed.body["tokens"].as_array().unwrap().iter().map(|t| t["jti"].as_str().unwrap()).collect();
    let two_id = gatehouse::crypto::opaque_token_id(&s(&two, "refresh_token"));
    assert_eq!(ids, vec![two_id.as_str()]);
    let r = send(&app, admin("POST", "/admin/tokens/revoke", Some(json!({"jti": two_id})))).await;
    assert_eq!(r.body, json!({"revoked": true}));
    assert_inactive(&app, &rs, &s(&two, "access_token")).await;
    assert_inactive(&app, &rs, &s(&two, "refresh_token")).await;
    let r = send(&app, admin("GET", "/admin/tokens/count?type=access&end_user=alice", None)).await;
    assert_eq!(r.body, json!({"count": 0}));
}

#[tokio::test]
async fn users_and_consents_on_dynamodb() {
    let Some((store, _, _)) = common::dynamo().await else { return };
    let state = common::state_on(store);
    let app = common::app(&state);
    let web = public_client(&app).await;
    let rs = introspector(&app).await;
    let r = send(
        &app,
        admin("POST", "/admin/users", Some(json!({"username": "alice", "password": PASSWORD, "groups": ["g"]}))),
    )
    .await;
    assert_invalid_request(&r, "groups: no such group: g");
    assert_eq!(state.store.get_user("alice").await.unwrap(), None);
    create_groups(&app, &["g", "h"]).await;
    let r = send(
        &app,
        admin("POST", "/admin/users", Some(json!({"username": "alice", "password": PASSWORD, "groups": ["g"]}))),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["groups"], json!(["g"]));
    let r = send(&app, admin("PATCH", "/admin/users/alice", Some(json!({"groups": ["h"]})))).await;
    assert_eq!(r.body["groups"], json!(["h"]), "{}", r.text);
    let r = send(&app, admin("GET", "/admin/users/alice", None)).await;
    assert_eq!(r.body["groups"], json!(["h"]), "{}", r.text);
    assert_eq!(groups_of(&app, "alice").await, json!(["h"]));
    let r = send(&app, admin("GET", "/admin/users", None)).await;
    assert_eq!(r.body["users"][0]["groups"], json!(["h"]), "{}", r.text);
    let r = send(&app, admin("POST", "/admin/users", Some(json!({"username": "alice", "password": PASSWORD})))).await;
    assert_error(&r, StatusCode::CONFLICT, "conflict");
    let t = tokens_for(&app, &web, "alice", "").await;
    let r = send(&app, admin("GET", "/admin/users/alice/consents", None)).await;
    let listed =
        json!({"client_id": web.id, "scope": "read write", "resources": {ISSUER: "read write"}, "granted_at": T0});
    assert_eq!(r.body, json!({"consents": [listed]}));
    let r = send(&app, admin("GET", &format!("/admin/tokens?type=refresh&end_user=alice&client_id={}", web.id), None))
        .await;
    assert_eq!(r.body["tokens"].as_array().unwrap().len(), 1, "{}", r.text);
    let r = send(&app, admin("DELETE", "/admin/users/alice", None)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_inactive(&app, &rs, &s(&t, "access_token")).await;
    assert_inactive(&app, &rs, &s(&t, "refresh_token")).await;
    assert_eq!(state.store.list_consents("alice").await.unwrap(), vec![]);
}

/// DynamoDB keeps consents in a partition of their own (`CONSENT#<user>`), apart from the user
/// record, so that the authorize function's role may write them and never a user. A consent an
/// earlier version kept in the user's partition is still listed and deleted by the admin API
/// (and with the user), and is not read when deciding (its user is asked once more).
#[tokio::test]
async fn consents_of_an_earlier_version_are_listed_and_deleted_dynamodb() {
    use aws_sdk_dynamodb::types::AttributeValue;

    let Some((store, ddb, table)) = common::dynamo().await else { return };
    let state = common::state_on(store.clone());
    let app = common::app(&state);
    create_user(&app, "alice", PASSWORD).await;
    let legacy = |client: &str| {
        let item = [
            ("pk", AttributeValue::S("USER#alice".into())),
            ("sk", AttributeValue::S(format!("CONSENT#{client}"))),
            ("username", AttributeValue::S("alice".into())),
            ("client_id", AttributeValue::S(client.into())),
            ("scope", AttributeValue::S("read".into())),
            ("granted_at", AttributeValue::N(T0.to_string())),
        ];
        ddb.put_item()
            .table_name(&table)
            .set_item(Some(item.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
            .send()
    };
    legacy("old-app").await.unwrap();
    legacy("both").await.unwrap();
    let now = gatehouse::model::Consent {
        username: "alice".into(),
        client_id: "both".into(),
        scope: gatehouse::model::Scope::parse("read write").unwrap(),
        resources: Default::default(),
        granted_at: T0 + 1,
    };
    store.put_consent(&now).await.unwrap();
    assert_eq!(store.get_consent("alice", "old-app").await.unwrap(), None, "not read for a decision");
    assert_eq!(store.get_consent("alice", "both").await.unwrap(), Some(now.clone()));
    let listed = store.list_consents("alice").await.unwrap();
    let ids: Vec<(&str, i64)> = listed.iter().map(|c| (c.client_id.as_str(), c.granted_at)).collect();
    assert_eq!(ids, [("both", T0 + 1), ("old-app", T0)], "one per client, the current one first");
    let r = send(&app, admin("DELETE", "/admin/users/alice/consents/old-app", None)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(store.list_consents("alice").await.unwrap(), [now]);
    let r = send(&app, admin("DELETE", "/admin/users/alice", None)).await;
    assert!(r.status.is_success(), "{}", r.text);
    assert_eq!(store.list_consents("alice").await.unwrap(), []);
    let left = ddb
        .get_item()
        .table_name(&table)
        .key("pk", AttributeValue::S("USER#alice".into()))
        .key("sk", AttributeValue::S("CONSENT#both".into()))
        .send()
        .await
        .unwrap();
    assert!(left.item.is_none(), "the earlier version's copy went with the current one");
}
