//! Versioned admin objects (clients, users, resource servers): `ETag` on `GET` and `PATCH`,
//! `If-Match` on `PATCH` (RFC 9110 §8.8.3, §13.1.1), and concurrent patches of a resource
//! server, none lost.
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
    assert_eq!(r.header("etag"), Some("\"0\""), "a new resource server is version 0");
    assert!(r.body.get("version").is_none(), "the version is the ETag, not a member: {}", r.text);
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

async fn if_match_applies_to_the_version_named(state: AppState) {
    let app = common::app(&state);
    for k in kinds(&app).await {
        let p = |i| json!({ k.member: (k.value)(i) });
        let r = read(&app, &k.path).await;
        assert_eq!(r.header("etag"), Some("\"0\""), "{}", k.path);
        assert!(r.body.get("version").is_none(), "{}", r.text);

        // Without If-Match: applies to the current version.
        let r = patch_if(&app, &k.path, &[], p(1)).await;
        assert_eq!((r.status, r.header("etag")), (StatusCode::OK, Some("\"1\"")), "{}", r.text);
        assert_eq!(r.body[k.member], (k.value)(1));

        // A version read before that change: 412, and nothing changes.
        for stale in [&["\"0\""][..], &["W/\"1\""], &["\"01\""], &["\"x\", \"0\""], &["\"0\"", "\"2\""]] {
            let r = patch_if(&app, &k.path, stale, p(2)).await;
            assert_error(&r, StatusCode::PRECONDITION_FAILED, "precondition_failed");
            assert_eq!(r.header("etag"), None);
            let now = read(&app, &k.path).await;
            assert_eq!((now.header("etag"), &now.body[k.member]), (Some("\"1\""), &(k.value)(1)), "{stale:?}");
        }
        // Unreadable preconditions are refused, not ignored.
        for bad in ["1", "\"1", "*, \"1\"", "W/1"] {
            let r = patch_if(&app, &k.path, &[bad], p(2)).await;
            assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
        }
        assert_eq!(read(&app, &k.path).await.header("etag"), Some("\"1\""));

        // The version read (one of a list), then `*`.
        let r = patch_if(&app, &k.path, &["\"7\", \"1\""], p(3)).await;
        assert_eq!((r.status, r.header("etag")), (StatusCode::OK, Some("\"2\"")), "{}", r.text);
        assert_eq!(r.body[k.member], (k.value)(3));
        let r = patch_if(&app, &k.path, &["*"], p(4)).await;
        assert_eq!((r.status, r.header("etag")), (StatusCode::OK, Some("\"3\"")), "{}", r.text);
        let now = read(&app, &k.path).await;
        assert_eq!((now.header("etag"), &now.body[k.member]), (Some("\"3\""), &(k.value)(4)));

        // A missing object is 404 whatever the precondition (RFC 9110 §13.2.1).
        let gone = format!("{}-gone", k.path);
        assert_error(&patch_if(&app, &gone, &["\"3\""], p(5)).await, StatusCode::NOT_FOUND, "not_found");
        assert_error(&patch_if(&app, &gone, &["*"], p(5)).await, StatusCode::NOT_FOUND, "not_found");
    }
    let listed = send(&app, admin("GET", "/admin/resource-servers", None)).await;
    assert!(listed.body["resource_servers"][0].get("version").is_none(), "{}", listed.text);
}

#[tokio::test]
async fn if_match_applies_to_the_version_named_embedded() {
    let (state, _dir) = common::embedded_state();
    if_match_applies_to_the_version_named(state).await;
}

#[tokio::test]
async fn if_match_applies_to_the_version_named_dynamodb() {
    let Some((store, _, _)) = common::dynamo().await else { return };
    if_match_applies_to_the_version_named(common::state_on(store)).await;
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
    assert_eq!(now.header("etag"), Some("\"12\""));
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
