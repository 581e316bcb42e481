//! Versioned admin objects (clients, users, resource servers): `ETag` on `GET`, create and
//! `PATCH`, `If-Match` on `PATCH` and `DELETE` (RFC 9110 §8.8.3, §13.1.1) and refused elsewhere,
//! and concurrent patches of a resource server, none lost.
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use gatehouse::AppState;
use serde_json::{Value, json};

use crate::common::{self, ADMIN, Resp, admin, assert_error, register, send};

const API: &str = "https://api.example.com";

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// `PATCH path` with `If-Match` field lines.
async fn patch_if(app: &Router, path: &str, if_match: &[&str], body: Value) -> Resp {
    let mut b = Request::patch(path)
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"))
        .header(header::CONTENT_TYPE, "application/json");
    for v in if_match {
        b = b.header(header::IF_MATCH, *v);
    }
    send(app, b.body(Body::from(body.to_string())).unwrap()).await
}

/// The three kinds: the object's path, and a patch (by number, each different) of one member
/// with the member's name.
struct Kind {
    path: String,
    member: &'static str,
    value: fn(usize) -> Value,
}

async fn kinds(app: &Router) -> Vec<Kind> {
    let c = register(app, json!({"client_name": "App", "grant_types": ["client_credentials"], "scope": "read"})).await;
    let r =
        send(app, admin("POST", "/admin/users", Some(json!({"username": "alice", "password": "correct horse"})))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r =
        send(app, admin("POST", "/admin/resource-servers", Some(json!({"identifier": API, "scopes": ["read"]})))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert!(r.body.get("version").is_none(), "the version is in the ETag, not a member: {}", r.text);
    vec![
        Kind { path: format!("/admin/clients/{}", c.id), member: "client_name", value: |i| json!(format!("App {i}")) },
        Kind { path: "/admin/users/alice".into(), member: "attributes", value: |i| json!({"n": i}) },
        Kind {
            path: format!("/admin/resource-servers/{}", enc(API)),
            member: "name",
            value: |i| json!(format!("API {i}")),
        },
    ]
}

async fn read(app: &Router, path: &str) -> Resp {
    let r = send(app, admin("GET", path, None)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r
}

/// A response's entity tag: strong, quoted, 128 bits in base64url.
fn etag(r: &Resp) -> String {
    let t = r.header("etag").unwrap_or_else(|| panic!("no ETag: {} {}", r.status, r.text)).to_owned();
    assert!(t.len() == 24 && t.starts_with('"') && t.ends_with('"'), "{t}");
    t
}

async fn if_match_applies_to_the_state_named(state: AppState) {
    let app = common::app(&state);
    for k in kinds(&app).await {
        let p = |i| json!({ k.member: (k.value)(i) });
        let r = read(&app, &k.path).await;
        let t0 = etag(&r);
        assert!(r.body.get("version").is_none(), "{}", r.text);
        assert_eq!(etag(&read(&app, &k.path).await), t0, "the same state, the same tag");

        // Without If-Match: applies to the current state.
        let r = patch_if(&app, &k.path, &[], p(1)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let t1 = etag(&r);
        assert_ne!(t1, t0);
        assert_eq!(r.body[k.member], (k.value)(1));
        assert_eq!(etag(&read(&app, &k.path).await), t1, "GET agrees with the PATCH");

        // A state read before that change: 412, and nothing changes.
        let weak = format!("W/{t1}");
        let listed = format!("\"x\", {t0}");
        for stale in [&[t0.as_str()][..], &[&weak], &[&listed], &[&t0, "\"zz\""], &[""]] {
            let r = patch_if(&app, &k.path, stale, p(2)).await;
            assert_error(&r, StatusCode::PRECONDITION_FAILED, "precondition_failed");
            assert_eq!(r.header("etag"), None);
            let now = read(&app, &k.path).await;
            assert_eq!((etag(&now), &now.body[k.member]), (t1.clone(), &(k.value)(1)), "{stale:?}");
        }
        // Unreadable preconditions are refused, not ignored.
        for bad in ["1", "\"1", "*, \"1\"", "W/1"] {
            let r = patch_if(&app, &k.path, &[bad], p(2)).await;
            assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
        }
        // A patch that changes nothing writes nothing (a user's `updated_at` is the clock's,
        // which stands still here), but its precondition still holds.
        let r = patch_if(&app, &k.path, &[&t0], p(1)).await;
        assert_error(&r, StatusCode::PRECONDITION_FAILED, "precondition_failed");
        let r = patch_if(&app, &k.path, &[&t1], p(1)).await;
        assert_eq!((r.status, etag(&r)), (StatusCode::OK, t1.clone()), "{}", r.text);
        assert_eq!(etag(&read(&app, &k.path).await), t1);

        // The state read (one of a list), then `*`.
        let r = patch_if(&app, &k.path, &[&format!("\"x\", {t1}")], p(3)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let t3 = etag(&r);
        assert_eq!(r.body[k.member], (k.value)(3));
        let r = patch_if(&app, &k.path, &["*"], p(4)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_ne!(etag(&r), t3);
        assert_eq!(read(&app, &k.path).await.body[k.member], (k.value)(4));

        // A missing object is 404 whatever the precondition (RFC 9110 §13.2.1).
        let gone = format!("{}-gone", k.path);
        assert_error(&patch_if(&app, &gone, &[&t3], p(5)).await, StatusCode::NOT_FOUND, "not_found");
        assert_error(&patch_if(&app, &gone, &["*"], p(5)).await, StatusCode::NOT_FOUND, "not_found");

        // Concurrent PATCHes naming the same state: exactly one is written.
        let t = etag(&read(&app, &k.path).await);
        let tasks: Vec<_> = (10..16)
            .map(|i| {
                let (app, path, t, body) = (app.clone(), k.path.clone(), t.clone(), p(i));
                tokio::spawn(async move { patch_if(&app, &path, &[&t], body).await.status })
            })
            .collect();
        let mut statuses = Vec::new();
        for task in tasks {
            statuses.push(task.await.unwrap());
        }
        statuses.sort();
        let mut expected = vec![StatusCode::OK];
        expected.extend([StatusCode::PRECONDITION_FAILED; 5]);
        assert_eq!(statuses, expected, "{}", k.path);
    }
    let listed = send(&app, admin("GET", "/admin/resource-servers", None)).await;
    assert!(listed.body["resource_servers"][0].get("version").is_none(), "{}", listed.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn if_match_applies_to_the_state_named_embedded() {
    let (state, _dir) = common::embedded_state();
    if_match_applies_to_the_state_named(state).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn if_match_applies_to_the_state_named_dynamodb() {
    let Some((store, _, _)) = common::dynamo().await else { return };
    if_match_applies_to_the_state_named(common::state_on(store)).await;
}

/// Numbers that DynamoDB gives back in another form (`1.0` as `1`) do not change a tag: the
/// tag a create or `PATCH` answers is the one a later `GET` answers, and it is accepted.
async fn tags_survive_the_stores_number_forms(state: AppState) {
    let app = common::app(&state);
    let attrs = json!({"ratio": 1.0, "neg": -0.0, "big": 3e3, "half": 0.5, "list": [2.0, {"x": 1.0}]});
    let r = send(
        &app,
        admin("POST", "/admin/users", Some(json!({"username": "f", "password": "correct horse", "attributes": attrs}))),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(etag(&r), etag(&read(&app, "/admin/users/f").await), "create and GET agree");
    let r = patch_if(&app, "/admin/users/f", &[&etag(&r)], json!({"attributes": {"ratio": 2.0}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(etag(&r), etag(&read(&app, "/admin/users/f").await), "PATCH and GET agree");
    let c = send(
        &app,
        admin(
            "POST",
            "/admin/clients",
            Some(json!({"grant_types": ["client_credentials"],
        "custom_claims": [{"name": "tier", "value": 1.0}]})),
        ),
    )
    .await;
    assert_eq!(c.status, StatusCode::CREATED, "{}", c.text);
    let path = format!("/admin/clients/{}", c.body["client_id"].as_str().unwrap());
    assert_eq!(etag(&c), etag(&read(&app, &path).await));
    let r = patch_if(&app, &path, &[&etag(&c)], json!({"custom_claims": [{"name": "tier", "value": 4.0}]})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(etag(&r), etag(&read(&app, &path).await));
}

#[tokio::test]
async fn tags_survive_the_stores_number_forms_embedded() {
    let (state, _dir) = common::embedded_state();
    tags_survive_the_stores_number_forms(state).await;
}

#[tokio::test]
async fn tags_survive_the_stores_number_forms_dynamodb() {
    let Some((store, _, _)) = common::dynamo().await else { return };
    tags_survive_the_stores_number_forms(common::state_on(store)).await;
}

/// Tags answer every create, and a tag never names an earlier object of the same name: a user
/// created again (a new password salt), a resource server created again later. A user's tag
/// covers its groups, which other calls change.
#[tokio::test]
async fn tags_of_creates_recreations_and_a_users_groups() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = send(&app, admin("POST", "/admin/clients", Some(json!({"grant_types": ["client_credentials"]})))).await;
    let id = c.body["client_id"].as_str().unwrap();
    assert_eq!(etag(&c), etag(&read(&app, &format!("/admin/clients/{id}")).await), "create and GET agree");

    let alice = json!({"username": "alice", "password": "correct horse"});
    let r = send(&app, admin("POST", "/admin/users", Some(alice.clone()))).await;
    let old = etag(&r);
    assert_eq!(old, etag(&read(&app, "/admin/users/alice").await));
    assert_eq!(send(&app, admin("DELETE", "/admin/users/alice", None)).await.status, StatusCode::NO_CONTENT);
    assert_eq!(send(&app, admin("POST", "/admin/users", Some(alice))).await.status, StatusCode::CREATED);
    let r = patch_if(&app, "/admin/users/alice", &[&old], json!({"enabled": false})).await;
    assert_error(&r, StatusCode::PRECONDITION_FAILED, "precondition_failed");

    let rs = json!({"identifier": API, "scopes": ["read"]});
    let path = format!("/admin/resource-servers/{}", enc(API));
    let old = etag(&send(&app, admin("POST", "/admin/resource-servers", Some(rs.clone()))).await);
    assert_eq!(old, etag(&read(&app, &path).await));
    assert_eq!(send(&app, admin("DELETE", &path, None)).await.status, StatusCode::NO_CONTENT);
    state.clock.advance(1);
    assert_eq!(send(&app, admin("POST", "/admin/resource-servers", Some(rs))).await.status, StatusCode::CREATED);
    let r = patch_if(&app, &path, &[&old], json!({"name": "x"})).await;
    assert_error(&r, StatusCode::PRECONDITION_FAILED, "precondition_failed");

    // Joining a group changes the user's representation, so its tag.
    let t = etag(&read(&app, "/admin/users/alice").await);
    assert_eq!(
        send(&app, admin("POST", "/admin/groups", Some(json!({"name": "staff"})))).await.status,
        StatusCode::CREATED
    );
    let r = send(&app, admin("PUT", "/admin/groups/staff/members/alice", None)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let now = read(&app, "/admin/users/alice").await;
    assert_eq!(now.body["groups"], json!(["staff"]));
    assert_ne!(etag(&now), t);
    let r = patch_if(&app, "/admin/users/alice", &[&t], json!({"groups": []})).await;
    assert_error(&r, StatusCode::PRECONDITION_FAILED, "precondition_failed");
    assert_eq!(read(&app, "/admin/users/alice").await.body["groups"], json!(["staff"]), "the membership kept");
    let r = patch_if(&app, "/admin/users/alice", &[&etag(&now)], json!({"groups": []})).await;
    assert_eq!((r.status, &r.body["groups"]), (StatusCode::OK, &json!([])), "{}", r.text);
}

/// `DELETE path` with `If-Match` field lines.
async fn delete_if(app: &Router, path: &str, if_match: &[&str]) -> Resp {
    let mut b = Request::delete(path).header(header::AUTHORIZATION, format!("Bearer {ADMIN}"));
    for v in if_match {
        b = b.header(header::IF_MATCH, *v);
    }
    send(app, b.body(Body::empty()).unwrap()).await
}

/// A `DELETE` with `If-Match` deletes only a state it names: an earlier tag (or a weak one, or
/// none listed) is 412 and deletes nothing (for a user, also when only its groups changed);
/// the current tag or `*` deletes; a missing object is 404 as without the field.
async fn a_conditional_delete_deletes_only_the_state_named(state: AppState) {
    let app = common::app(&state);
    for k in kinds(&app).await {
        let t0 = etag(&read(&app, &k.path).await);
        let r = patch_if(&app, &k.path, &[], json!({ k.member: (k.value)(1) })).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let t1 = etag(&r);
        for stale in [vec![t0.as_str()], vec![&format!("W/{t1}")], vec![""]] {
            let r = delete_if(&app, &k.path, &stale).await;
            assert_error(&r, StatusCode::PRECONDITION_FAILED, "precondition_failed");
            assert_eq!(etag(&read(&app, &k.path).await), t1, "{} still there, unchanged", k.path);
        }
        let r = delete_if(&app, &k.path, &[&format!("{t0}, {t1}")]).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}: {}", k.path, r.text);
        assert_error(&send(&app, admin("GET", &k.path, None)).await, StatusCode::NOT_FOUND, "not_found");
        assert_error(&delete_if(&app, &k.path, &[&t1]).await, StatusCode::NOT_FOUND, "not_found");
        assert_error(&delete_if(&app, &k.path, &["*"]).await, StatusCode::NOT_FOUND, "not_found");
    }
    // `*`: whatever the state.
    let c = register(&app, json!({"grant_types": ["client_credentials"]})).await;
    let path = format!("/admin/clients/{}", c.id);
    assert_eq!(delete_if(&app, &path, &["*"]).await.status, StatusCode::NO_CONTENT);
    assert_eq!(state.store.get_client(&c.id).await.unwrap(), None);
    // A user whose groups changed since the tag was read.
    let r =
        send(&app, admin("POST", "/admin/users", Some(json!({"username": "bob", "password": "correct horse"})))).await;
    let t = etag(&r);
    assert_eq!(
        send(&app, admin("POST", "/admin/groups", Some(json!({"name": "staff"})))).await.status,
        StatusCode::CREATED
    );
    assert_eq!(send(&app, admin("PUT", "/admin/groups/staff/members/bob", None)).await.status, StatusCode::NO_CONTENT);
    assert_error(
        &delete_if(&app, "/admin/users/bob", &[&t]).await,
        StatusCode::PRECONDITION_FAILED,
        "precondition_failed",
    );
    let now = etag(&read(&app, "/admin/users/bob").await);
    assert_eq!(delete_if(&app, "/admin/users/bob", &[&now]).await.status, StatusCode::NO_CONTENT);
    assert_eq!(state.store.get_user("bob").await.unwrap(), None);
}

#[tokio::test]
async fn a_conditional_delete_deletes_only_the_state_named_embedded() {
    let (state, _dir) = common::embedded_state();
    a_conditional_delete_deletes_only_the_state_named(state).await;
}

#[tokio::test]
async fn a_conditional_delete_deletes_only_the_state_named_dynamodb() {
    let Some((store, _, _)) = common::dynamo().await else { return };
    a_conditional_delete_deletes_only_the_state_named(common::state_on(store)).await;
}

/// A change made between the If-Match check and the deletion is not deleted over: the deletion
/// is conditional on the version checked, so the new state is checked again (412).
#[tokio::test]
async fn a_change_between_the_check_and_the_deletion_is_not_deleted_over() {
    let (inner, _dir) = common::embedded();
    let hooked = std::sync::Arc::new(crate::hooked_store::Hooked::new(inner.clone()));
    let state = common::state_on(hooked.clone());
    let app = common::app(&state);
    let c = register(&app, json!({"client_name": "App", "grant_types": ["client_credentials"]})).await;
    let path = format!("/admin/clients/{}", c.id);
    let t = etag(&read(&app, &path).await);
    hooked.rename_before_conditional_delete.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_error(&delete_if(&app, &path, &[&t]).await, StatusCode::PRECONDITION_FAILED, "precondition_failed");
    let kept = inner.get_client(&c.id).await.unwrap().expect("not deleted");
    assert_eq!(kept.client_name.as_deref(), Some("renamed meanwhile"));
}

/// Calls that are not conditional refuse `If-Match` instead of acting unconditionally.
#[tokio::test]
async fn if_match_elsewhere_is_refused() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = register(&app, json!({"grant_types": ["client_credentials"]})).await;
    let calls = [
        ("DELETE", format!("/admin/users/alice/consents/{}", c.id), None),
        ("POST", format!("/admin/clients/{}/secret", c.id), None),
        ("GET", format!("/admin/clients/{}", c.id), None),
        ("PATCH", "/admin/settings".to_owned(), Some(json!({"consent_enabled": false}))),
        ("POST", "/admin/groups".to_owned(), Some(json!({"name": "g"}))),
    ];
    for (method, path, body) in calls {
        let mut req = admin(method, &path, body);
        req.headers_mut().insert(header::IF_MATCH, "*".parse().unwrap());
        let r = send(&app, req).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
        assert_eq!(
            r.body["error_description"],
            "If-Match: only a PATCH or DELETE of a client, a user or a resource server is conditional",
            "{method} {path}"
        );
    }
    assert!(state.store.get_client(&c.id).await.unwrap().is_some(), "nothing done");
    assert_eq!(state.store.get_group("g").await.unwrap(), None);
}

/// 12 concurrent PATCHes of a resource server, four each of `name`, `scopes` and
/// `custom_claims`: every one is written (the version counts 12), each response shows its own
/// change, and every member ends with one of the values sent for it.
async fn concurrent_resource_server_patches_all_land(state: AppState) {
    let app = common::app(&state);
    let r =
        send(&app, admin("POST", "/admin/resource-servers", Some(json!({"identifier": API, "name": "initial"})))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let path = format!("/admin/resource-servers/{}", enc(API));
    let patch_of = |i: usize| -> (&'static str, Value) {
        match i % 3 {
            0 => ("name", json!(format!("name {i}"))),
            1 => ("scopes", json!([{"name": format!("s{i}"), "description": format!("scope {i}")}])),
            _ => ("custom_claims", json!([{"name": format!("c{i}"), "value": i}])),
        }
    };
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let (app, path) = (app.clone(), path.clone());
            let (member, value) = patch_of(i);
            tokio::spawn(async move {
                let r = patch_if(&app, &path, &[], json!({ member: value })).await;
                assert_eq!(r.status, StatusCode::OK, "patch {i}: {}", r.text);
                assert_eq!(r.body[member], value, "patch {i} shows its own change: {}", r.text);
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let stored = state.store.get_resource_server(API).await.unwrap().unwrap();
    assert_eq!(stored.version, 12, "12 conditional writes, none lost: {stored:?}");
    let now = read(&app, &path).await;
    for member in ["name", "scopes", "custom_claims"] {
        let sent: Vec<Value> = (0..12).map(patch_of).filter(|(m, _)| *m == member).map(|(_, v)| v).collect();
        assert!(sent.contains(&now.body[member]), "{member}: {} is not one of {sent:?}", now.body[member]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_resource_server_patches_all_land_embedded() {
    let (state, _dir) = common::embedded_state();
    concurrent_resource_server_patches_all_land(state).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_resource_server_patches_all_land_dynamodb() {
    let Some((store, _, _)) = common::dynamo().await else { return };
    concurrent_resource_server_patches_all_land(common::state_on(store)).await;
}
