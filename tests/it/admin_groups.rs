//! Groups and memberships (`/admin/groups`, `/admin/users/{username}/groups`), the user listing
//! (`GET /admin/users`) and resource servers by identifier (`GET`, `PATCH`, `DELETE
//! /admin/resource-servers/{identifier}`), on the embedded store and on DynamoDB: exact
//! statuses and bodies, the stored state after each call, refusals, pages, and memberships
//! ending with their group or user.
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use gatehouse::AppState;
use gatehouse::model::User;
use serde_json::{Value, json};

use crate::common::{self, ADMIN, T0, admin, assert_error, form, send};

/// Percent-encodes a path segment (everything but RFC 3986 unreserved characters).
fn seg(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn q(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn assert_no_store(r: &common::Resp) {
    assert_eq!(r.header("cache-control"), Some("no-store"), "{}", r.text);
    assert_eq!(r.header("pragma"), Some("no-cache"), "{}", r.text);
}

/// 200 with a JSON body, never cached; the body.
fn ok_json(r: &common::Resp) -> Value {
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_no_store(r);
    assert_eq!(r.header("content-type"), Some("application/json"));
    r.body.clone()
}

/// 204, empty, never cached.
fn assert_no_content(r: &common::Resp) {
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(r.text, "");
    assert_no_store(r);
}

fn assert_invalid(r: &common::Resp, description: &str) {
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(r.body["error_description"], description, "{}", r.text);
}

fn assert_not_found(r: &common::Resp, description: &str) {
    assert_error(r, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(r.body["error_description"], description, "{}", r.text);
}

async fn call(app: &Router, method: &str, path: &str, body: Option<Value>) -> common::Resp {
    send(app, admin(method, path, body)).await
}

/// A user straight into the store (no password hashing: fast).
async fn user(state: &AppState, name: &str) -> User {
    let u = gatehouse::store::conformance::user(name);
    state.store.create_user(&u).await.unwrap();
    u
}

fn user_json(u: &User, groups: &[&str]) -> Value {
    json!({"username": u.username, "attributes": u.attributes, "groups": groups, "enabled": u.enabled,
           "created_at": u.created_at, "updated_at": u.updated_at})
}

fn group_json(name: &str, description: Option<&str>, created_at: i64) -> Value {
    json!({"name": name, "description": description, "created_at": created_at})
}

async fn create_group(app: &Router, name: &str) {
    let r = call(app, "POST", "/admin/groups", Some(json!({"name": name}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

/// Follows `next` through a listing at `path` (with `limit`): every page's `key` array.
async fn pages(app: &Router, path: &str, key: &str, limit: usize) -> Vec<Vec<Value>> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let (mut out, mut cursor): (Vec<Vec<Value>>, Option<String>) = (Vec::new(), None);
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}{sep}limit={limit}&cursor={}", q(c)),
            None => format!("{path}{sep}limit={limit}"),
        };
        let body = ok_json(&call(app, "GET", &url, None).await);
        out.push(body[key].as_array().unwrap().clone());
        match body["next"].as_str() {
            Some(n) if out.len() < 100 => cursor = Some(n.to_owned()),
            Some(n) => panic!("endless pages, next {n}"),
            None => {
                assert_eq!(body["next"], Value::Null);
                return out;
            }
        }
    }
}

/// Listing with every limit from 1 to 3 visits `expected` exactly once, in order, in full pages
/// (but the last).
async fn assert_pages(app: &Router, path: &str, key: &str, expected: &[Value]) {
    for limit in 1..=3 {
        let got = pages(app, path, key, limit).await;
        assert_eq!(got.concat(), expected, "{path} limit {limit}");
        let full = got.len() - 1;
        assert!(got[..full].iter().all(|p| p.len() == limit), "{path} limit {limit}: {got:?}");
        assert!(got[full].len() <= limit && (got.len() == 1 || !got[full].is_empty()), "{path} limit {limit}: {got:?}");
    }
}

// ---------------------------------------------------------------- groups

async fn group_life_cycle(state: &AppState) {
    let app = common::app(state);
    let r = call(&app, "POST", "/admin/groups", Some(json!({"name": "staff", "description": "Everyone"}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_no_store(&r);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let staff = group_json("staff", Some("Everyone"), T0);
    assert_eq!(r.body, staff);
    let stored = state.store.get_group("staff").await.unwrap().unwrap();
    assert_eq!(
        (stored.name.as_str(), stored.description.as_deref(), stored.created_at),
        ("staff", Some("Everyone"), T0)
    );

    state.clock.advance(5);
    let r = call(&app, "POST", "/admin/groups", Some(json!({"name": "staff"}))).await;
    assert_error(&r, StatusCode::CONFLICT, "conflict");
    assert_eq!(r.body["error_description"], "a group with this name exists");
    assert_eq!(state.store.get_group("staff").await.unwrap(), Some(stored), "the original stands");

    let r = call(&app, "POST", "/admin/groups", Some(json!({"name": "Ops.team_1-x"}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let ops = group_json("Ops.team_1-x", None, T0 + 5);
    assert_eq!(r.body, ops);

    assert_eq!(ok_json(&call(&app, "GET", "/admin/groups/staff", None).await), staff);
    assert_eq!(ok_json(&call(&app, "GET", "/admin/groups/Ops.team_1-x", None).await), ops);
    assert_not_found(&call(&app, "GET", "/admin/groups/nope", None).await, "no such group");
    assert_eq!(ok_json(&call(&app, "GET", "/admin/groups", None).await), json!({"groups": [ops, staff], "next": null}));

    // PATCH: a new description, unchanged when absent, removed with null.
    let r = call(&app, "PATCH", "/admin/groups/staff", Some(json!({"description": "All staff"}))).await;
    let changed = group_json("staff", Some("All staff"), T0);
    assert_eq!(ok_json(&r), changed);
    assert_eq!(state.store.get_group("staff").await.unwrap().unwrap().description.as_deref(), Some("All staff"));
    assert_eq!(ok_json(&call(&app, "PATCH", "/admin/groups/staff", Some(json!({}))).await), changed);
    let r = call(&app, "PATCH", "/admin/groups/staff", Some(json!({"description": null}))).await;
    assert_eq!(ok_json(&r), group_json("staff", None, T0));
    assert_eq!(state.store.get_group("staff").await.unwrap().unwrap().description, None);
    let r = call(&app, "PATCH", "/admin/groups/nope", Some(json!({"description": "x"}))).await;
    assert_not_found(&r, "no such group");
    assert_eq!(state.store.get_group("nope").await.unwrap(), None, "a PATCH never creates");

    // DELETE.
    assert_no_content(&call(&app, "DELETE", "/admin/groups/staff", None).await);
    assert_eq!(state.store.get_group("staff").await.unwrap(), None);
    assert_not_found(&call(&app, "GET", "/admin/groups/staff", None).await, "no such group");
    assert_not_found(&call(&app, "DELETE", "/admin/groups/staff", None).await, "no such group");
    assert_eq!(ok_json(&call(&app, "GET", "/admin/groups", None).await), json!({"groups": [ops], "next": null}));

    // Methods.
    for (method, path, allow) in [
        ("PUT", "/admin/groups", "GET, POST"),
        ("POST", "/admin/groups/x", "GET, PATCH, DELETE"),
        ("POST", "/admin/groups/x/members", "GET"),
        ("GET", "/admin/groups/x/members/alice", "PUT, DELETE"),
        ("POST", "/admin/users/alice/groups", "GET"),
        ("DELETE", "/admin/users", "GET, POST"),
        ("POST", "/admin/resource-servers/urn%3Ax", "GET, PATCH, DELETE"),
    ] {
        let r = call(&app, method, path, None).await;
        assert_error(&r, StatusCode::METHOD_NOT_ALLOWED, "invalid_request");
        assert_eq!(r.header("allow"), Some(allow), "{method} {path}");
    }
}

#[tokio::test]
async fn group_create_read_update_delete() {
    let (state, _dir) = common::embedded_state();
    group_life_cycle(&state).await;
}

#[tokio::test]
async fn group_names_and_bodies_are_validated() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let name_rule = "name: 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' and '-'";
    for bad in ["", "a b", "a/b", "a#b", "a:b", "é", "a%b", "a\u{7}", &"x".repeat(65)] {
        let r = call(&app, "POST", "/admin/groups", Some(json!({"name": bad}))).await;
        assert_invalid(&r, name_rule);
    }
    let r = call(&app, "POST", "/admin/groups", Some(json!({"name": "x".repeat(64)}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "64 characters are fine: {}", r.text);
    let long = "d".repeat(501);
    let r = call(&app, "POST", "/admin/groups", Some(json!({"name": "g", "description": long}))).await;
    assert_invalid(&r, "description: at most 500 characters");
    let r = call(&app, "POST", "/admin/groups", Some(json!({"name": "g", "members": ["alice"]}))).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    assert!(r.body["error_description"].as_str().unwrap().starts_with("unknown field `members`"), "{}", r.text);
    let r = call(&app, "POST", "/admin/groups", Some(json!({"description": "no name"}))).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    assert!(r.body["error_description"].as_str().unwrap().contains("missing field `name`"), "{}", r.text);
    let r = call(&app, "POST", "/admin/groups", Some(json!({"name": "g", "description": 5}))).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    assert!(r.body["error_description"].as_str().unwrap().starts_with("description: "), "{}", r.text);
    for bad in [json!([]), json!("g"), json!(null), json!({"name": ["g"]}), json!({"name": null})] {
        assert_error(&call(&app, "POST", "/admin/groups", Some(bad)).await, StatusCode::BAD_REQUEST, "invalid_request");
    }
    let not_json = Request::post("/admin/groups")
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{\"name\": "))
        .unwrap();
    assert_error(&send(&app, not_json).await, StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(state.store.list_groups(None, 10).await.unwrap().0.len(), 1, "nothing refused was stored");

    create_group(&app, "g").await;
    let r = call(&app, "PATCH", "/admin/groups/g", Some(json!({"name": "h"}))).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    assert!(r.body["error_description"].as_str().unwrap().starts_with("unknown field `name`"), "{}", r.text);
    let r = call(&app, "PATCH", "/admin/groups/g", Some(json!({"description": long}))).await;
    assert_invalid(&r, "description: at most 500 characters");
    let r = call(&app, "PATCH", "/admin/groups/g", Some(json!({"description": ["x"]}))).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(state.store.get_group("g").await.unwrap().unwrap().description, None, "refused PATCHes change nothing");
}

async fn group_pages(state: &AppState) {
    let app = common::app(state);
    assert_eq!(ok_json(&call(&app, "GET", "/admin/groups", None).await), json!({"groups": [], "next": null}));
    assert_eq!(
        ok_json(&call(&app, "GET", "/admin/groups?limit=1", None).await),
        json!({"groups": [], "next": null}),
        "an empty set"
    );
    for name in ["b", "c", "a"] {
        create_group(&app, name).await;
    }
    let all: Vec<Value> = ["a", "b", "c"].iter().map(|n| group_json(n, None, T0)).collect();
    assert_pages(&app, "/admin/groups", "groups", &all).await;
    let first = ok_json(&call(&app, "GET", "/admin/groups?limit=2", None).await);
    assert_eq!(first["groups"], json!([all[0], all[1]]));
    let next = first["next"].as_str().unwrap().to_owned();
    let second = ok_json(&call(&app, "GET", &format!("/admin/groups?limit=2&cursor={}", q(&next)), None).await);
    assert_eq!(second, json!({"groups": [all[2]], "next": null}));
    let exact = ok_json(&call(&app, "GET", "/admin/groups?limit=3", None).await);
    assert_eq!(exact, json!({"groups": all, "next": null}), "a full last page says it is the last");

    // A cursor past the end (base64url of "zzz") is an empty last page.
    let past = ok_json(&call(&app, "GET", "/admin/groups?cursor=enp6", None).await);
    assert_eq!(past, json!({"groups": [], "next": null}));
    // Refused: limits out of range, cursors that no listing returned.
    let limit_rule = "limit: a whole number from 1 to 1000";
    for bad in ["limit=0", "limit=1001", "limit=-1", "limit=x", "limit=1.5", "limit=1&limit=2"] {
        let r = call(&app, "GET", &format!("/admin/groups?{bad}"), None).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
        if !bad.contains('&') {
            assert_eq!(r.body["error_description"], limit_rule, "{bad}");
        }
    }
    let cursor_rule = "cursor: malformed (pass back the `next` of the same listing)";
    for bad in ["%21%21", "a", "_w", &gatehouse::crypto::b64url("x".repeat(65))] {
        assert_invalid(&call(&app, "GET", &format!("/admin/groups?cursor={bad}"), None).await, cursor_rule);
    }
    let r = ok_json(&call(&app, "GET", "/admin/groups?limit=1000", None).await);
    assert_eq!(r["groups"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn groups_page_by_name() {
    let (state, _dir) = common::embedded_state();
    group_pages(&state).await;
}

// ---------------------------------------------------------------- memberships

async fn memberships(state: &AppState) {
    let app = common::app(state);
    create_group(&app, "staff").await;
    create_group(&app, "ops").await;
    create_group(&app, "empty").await;
    for u in ["carol", "alice", "bob", "dave"] {
        user(state, u).await;
    }
    let put = |g: &str, u: &str| format!("/admin/groups/{g}/members/{}", seg(u));
    for u in ["carol", "alice", "bob"] {
        assert_no_content(&call(&app, "PUT", &put("staff", u), None).await);
        assert!(state.store.is_member("staff", u).await.unwrap(), "{u}");
    }
    assert_no_content(&call(&app, "PUT", &put("staff", "alice"), None).await);
    assert_no_content(&call(&app, "PUT", &put("ops", "alice"), None).await);
    assert_eq!(state.store.list_members("staff", None, 10).await.unwrap().0, ["alice", "bob", "carol"], "once each");

    // Missing group or user.
    assert_not_found(&call(&app, "PUT", &put("nope", "alice"), None).await, "no such group");
    assert_not_found(&call(&app, "PUT", &put("staff", "zed"), None).await, "no such user");
    assert_not_found(&call(&app, "PUT", &put("nope", "zed"), None).await, "no such group");
    assert!(!state.store.is_member("staff", "zed").await.unwrap());
    assert!(state.store.groups_of("zed").await.unwrap().is_empty());

    // Listings.
    let r = ok_json(&call(&app, "GET", "/admin/groups/staff/members", None).await);
    assert_eq!(r, json!({"members": ["alice", "bob", "carol"], "next": null}));
    assert_eq!(
        ok_json(&call(&app, "GET", "/admin/groups/empty/members", None).await),
        json!({"members": [], "next": null})
    );
    assert_not_found(&call(&app, "GET", "/admin/groups/nope/members", None).await, "no such group");
    assert_pages(&app, "/admin/groups/staff/members", "members", &[json!("alice"), json!("bob"), json!("carol")]).await;
    let past = gatehouse::crypto::b64url("zzz");
    let r = ok_json(&call(&app, "GET", &format!("/admin/groups/staff/members?cursor={past}"), None).await);
    assert_eq!(r, json!({"members": [], "next": null}), "a cursor past the end");
    let r = call(&app, "GET", "/admin/groups/staff/members?limit=0", None).await;
    assert_invalid(&r, "limit: a whole number from 1 to 1000");

    let groups_of = |u: &str| format!("/admin/users/{}/groups", seg(u));
    assert_eq!(ok_json(&call(&app, "GET", &groups_of("alice"), None).await), json!({"groups": ["ops", "staff"]}));
    assert_eq!(ok_json(&call(&app, "GET", &groups_of("bob"), None).await), json!({"groups": ["staff"]}));
    assert_eq!(ok_json(&call(&app, "GET", &groups_of("dave"), None).await), json!({"groups": []}));
    assert_not_found(&call(&app, "GET", &groups_of("zed"), None).await, "no such user");

    // Removal.
    assert_no_content(&call(&app, "DELETE", &put("staff", "alice"), None).await);
    assert!(!state.store.is_member("staff", "alice").await.unwrap());
    assert!(state.store.is_member("ops", "alice").await.unwrap(), "other groups keep her");
    let r = call(&app, "DELETE", &put("staff", "alice"), None).await;
    assert_not_found(&r, "not a member of this group");
    assert_not_found(&call(&app, "DELETE", &put("staff", "dave"), None).await, "not a member of this group");
    assert_not_found(&call(&app, "DELETE", &put("nope", "bob"), None).await, "not a member of this group");
    assert_eq!(ok_json(&call(&app, "GET", &groups_of("alice"), None).await), json!({"groups": ["ops"]}));
    let r = ok_json(&call(&app, "GET", "/admin/groups/staff/members", None).await);
    assert_eq!(r, json!({"members": ["bob", "carol"], "next": null}));
}

#[tokio::test]
async fn members_are_added_listed_and_removed() {
    let (state, _dir) = common::embedded_state();
    memberships(&state).await;
}

/// Usernames may hold any character but controls: they survive the path and the cursor.
#[tokio::test]
async fn odd_usernames_round_trip() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    create_group(&app, "g").await;
    let names = ["a b", "a/b", "a+b", "a%2Fb", "a?b#c", "ünï", "z:1"];
    for u in names {
        user(&state, u).await;
        assert_no_content(&call(&app, "PUT", &format!("/admin/groups/g/members/{}", seg(u)), None).await);
    }
    let mut sorted: Vec<Value> = names.iter().map(|n| json!(n)).collect();
    sorted.sort_by(|a, b| a.as_str().unwrap().cmp(b.as_str().unwrap()));
    assert_pages(&app, "/admin/groups/g/members", "members", &sorted).await;
    for u in names {
        assert!(state.store.is_member("g", u).await.unwrap(), "{u}");
        let r = ok_json(&call(&app, "GET", &format!("/admin/users/{}/groups", seg(u)), None).await);
        assert_eq!(r, json!({"groups": ["g"]}), "{u}");
    }
    assert_no_content(&call(&app, "DELETE", &format!("/admin/groups/g/members/{}", seg("a/b")), None).await);
    assert!(!state.store.is_member("g", "a/b").await.unwrap());
    assert!(state.store.is_member("g", "a%2Fb").await.unwrap(), "decoded once, not twice");
}

async fn deletions_end_memberships(state: &AppState) {
    let app = common::app(state);
    for g in ["staff", "ops"] {
        create_group(&app, g).await;
    }
    for u in ["alice", "bob"] {
        user(state, u).await;
        for g in ["staff", "ops"] {
            assert_no_content(&call(&app, "PUT", &format!("/admin/groups/{g}/members/{u}"), None).await);
        }
    }
    // Deleting a group ends its memberships; a new group of that name starts empty.
    assert_no_content(&call(&app, "DELETE", "/admin/groups/staff", None).await);
    for u in ["alice", "bob"] {
        assert!(!state.store.is_member("staff", u).await.unwrap(), "{u}");
        let r = ok_json(&call(&app, "GET", &format!("/admin/users/{u}/groups"), None).await);
        assert_eq!(r, json!({"groups": ["ops"]}), "{u}");
    }
    assert_eq!(state.store.list_members("staff", None, 10).await.unwrap(), (vec![], None));
    create_group(&app, "staff").await;
    let r = ok_json(&call(&app, "GET", "/admin/groups/staff/members", None).await);
    assert_eq!(r, json!({"members": [], "next": null}));
    assert!(!state.store.is_member("staff", "alice").await.unwrap());

    // Deleting a user ends theirs; a new user of that name is in no group.
    assert_no_content(&call(&app, "DELETE", "/admin/users/alice", None).await);
    assert!(!state.store.is_member("ops", "alice").await.unwrap());
    assert!(state.store.groups_of("alice").await.unwrap().is_empty());
    let r = ok_json(&call(&app, "GET", "/admin/groups/ops/members", None).await);
    assert_eq!(r, json!({"members": ["bob"], "next": null}));
    assert_not_found(&call(&app, "GET", "/admin/users/alice/groups", None).await, "no such user");
    assert_not_found(&call(&app, "PUT", "/admin/groups/ops/members/alice", None).await, "no such user");
    user(state, "alice").await;
    assert_eq!(ok_json(&call(&app, "GET", "/admin/users/alice/groups", None).await), json!({"groups": []}));
    assert!(state.store.is_member("ops", "bob").await.unwrap(), "bob is untouched");

    // A membership left behind (a user deletion cut short) goes when the user is deleted again.
    user(state, "carol").await;
    assert!(state.store.add_member("ops", "carol").await.unwrap());
    assert!(state.store.delete_user("carol", None).await.unwrap());
    assert!(state.store.is_member("ops", "carol").await.unwrap(), "the orphan this test makes");
    assert_not_found(&call(&app, "DELETE", "/admin/users/carol", None).await, "no such user");
    assert!(!state.store.is_member("ops", "carol").await.unwrap());
}

#[tokio::test]
async fn deleting_a_group_or_a_user_ends_memberships() {
    let (state, _dir) = common::embedded_state();
    deletions_end_memberships(&state).await;
}

#[tokio::test]
async fn group_changes_are_audited() {
    gatehouse::audit::start_capture();
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let g = format!("audit-{}", gatehouse::crypto::random_id().replace('_', "-"));
    create_group(&app, &g).await;
    user(&state, "alice").await;
    call(&app, "PATCH", &format!("/admin/groups/{g}"), Some(json!({"description": "d"}))).await;
    call(&app, "PUT", &format!("/admin/groups/{g}/members/alice"), None).await;
    call(&app, "DELETE", &format!("/admin/groups/{g}/members/alice"), None).await;
    call(&app, "DELETE", &format!("/admin/groups/{g}/members/alice"), None).await; // 404: no line
    call(&app, "DELETE", &format!("/admin/groups/{g}"), None).await;
    let lines: Vec<(String, String)> = gatehouse::audit::captured()
        .into_iter()
        .filter(|l| l["event"] == "admin_change" && l["object"].as_str().is_some_and(|o| o.starts_with(&g)))
        .map(|l| {
            assert_eq!((l["event_id"].as_u64(), l["actor"].as_str()), (Some(21003), Some("admin-token")));
            (l["action"].as_str().unwrap().to_owned(), l["object"].as_str().unwrap().to_owned())
        })
        .collect();
    let alice = format!("{g}/alice");
    assert_eq!(
        lines,
        [
            ("group_created".to_owned(), g.clone()),
            ("group_updated".to_owned(), g.clone()),
            ("group_member_added".to_owned(), alice.clone()),
            ("group_member_removed".to_owned(), alice),
            ("group_deleted".to_owned(), g.clone()),
        ]
    );
}

// ---------------------------------------------------------------- users

async fn user_pages(state: &AppState) {
    let app = common::app(state);
    assert_eq!(ok_json(&call(&app, "GET", "/admin/users", None).await), json!({"users": [], "next": null}));
    let r = call(&app, "POST", "/admin/users", Some(json!({"username": "bob", "password": "a fine passphrase"}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let mut bob = r.body.clone();
    assert_eq!(bob["groups"], json!([]));
    let carol = user_json(&user(state, "carol").await, &[]);
    let alice = user_json(&user(state, "alice").await, &["ops", "staff"]);
    // Group items in users' partitions are not users; each user is listed with its groups.
    create_group(&app, "staff").await;
    create_group(&app, "ops").await;
    for (g, u) in [("staff", "bob"), ("staff", "alice"), ("ops", "alice")] {
        assert_no_content(&call(&app, "PUT", &format!("/admin/groups/{g}/members/{u}"), None).await);
    }
    bob["groups"] = json!(["staff"]);

    let r = call(&app, "GET", "/admin/users", None).await;
    assert_eq!(ok_json(&r), json!({"users": [alice, bob, carol], "next": null}));
    assert!(!r.text.contains("argon2") && !r.text.contains("password"), "never a hash: {}", r.text);
    assert_pages(&app, "/admin/users", "users", &[alice.clone(), bob.clone(), carol.clone()]).await;
    let past = gatehouse::crypto::b64url("zzz");
    let r = ok_json(&call(&app, "GET", &format!("/admin/users?limit=2&cursor={past}"), None).await);
    assert_eq!(r, json!({"users": [], "next": null}));
    assert_invalid(
        &call(&app, "GET", "/admin/users?cursor=*", None).await,
        "cursor: malformed (pass back the `next` of the same listing)",
    );

    // Listed as they are now; deleted ones are gone.
    let r = call(&app, "PATCH", "/admin/users/carol", Some(json!({"enabled": false}))).await;
    let carol = ok_json(&r);
    assert_no_content(&call(&app, "DELETE", "/admin/users/alice", None).await);
    let r = ok_json(&call(&app, "GET", "/admin/users?limit=1", None).await);
    assert_eq!(r["users"], json!([bob]));
    let r = ok_json(&call(&app, "GET", &format!("/admin/users?cursor={}", q(r["next"].as_str().unwrap())), None).await);
    assert_eq!(r, json!({"users": [carol], "next": null}));
}

#[tokio::test]
async fn users_are_listed_in_pages_without_hashes() {
    let (state, _dir) = common::embedded_state();
    user_pages(&state).await;
}

// ---------------------------------------------------------------- resource servers

const API: &str = "https://api.example.com:8443/v1/orders";

async fn resource_servers_by_identifier(state: &AppState) {
    let app = common::app(state);
    let path = format!("/admin/resource-servers/{}", seg(API));
    assert!(path.ends_with("https%3A%2F%2Fapi.example.com%3A8443%2Fv1%2Forders"), "{path}");
    let rs = json!({"identifier": API, "name": "Orders", "scopes": ["orders:read", {"name": "orders:write", "description": "Change orders"}]});
    let r = call(&app, "POST", "/admin/resource-servers", Some(rs)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let created = json!({"identifier": API, "name": "Orders", "created_at": T0,
        "scopes": [{"name": "orders:read", "description": null}, {"name": "orders:write", "description": "Change orders"}]});
    assert_eq!(r.body, created);

    assert_eq!(ok_json(&call(&app, "GET", &path, None).await), created);
    // Unencoded, the identifier's slashes are path segments: no such route.
    assert_error(
        &call(&app, "GET", &format!("/admin/resource-servers/{API}"), None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let missing = format!("/admin/resource-servers/{}", seg("https://api.example.com/v2"));
    for method in ["GET", "DELETE"] {
        assert_not_found(&call(&app, method, &missing, None).await, "no such resource server");
    }
    assert_not_found(&call(&app, "PATCH", &missing, Some(json!({"name": "x"}))).await, "no such resource server");
    assert_eq!(state.store.get_resource_server("https://api.example.com/v2").await.unwrap(), None);

    // PATCH: the name; the scopes replaced as a whole; the name removed with null.
    state.clock.advance(9);
    let r = call(&app, "PATCH", &path, Some(json!({"name": "Orders API"}))).await;
    let mut expected = created.clone();
    expected["name"] = json!("Orders API");
    assert_eq!(ok_json(&r), expected);
    let r = call(&app, "PATCH", &path, Some(json!({"scopes": [{"name": "orders:admin"}, "orders:read"]}))).await;
    expected["scopes"] =
        json!([{"name": "orders:admin", "description": null}, {"name": "orders:read", "description": null}]);
    assert_eq!(ok_json(&r), expected);
    let r = call(&app, "PATCH", &path, Some(json!({"name": null, "scopes": []}))).await;
    (expected["name"], expected["scopes"]) = (Value::Null, json!([]));
    assert_eq!(ok_json(&r), expected);
    assert_eq!(ok_json(&call(&app, "GET", &path, None).await), expected, "created_at is kept");
    let r = call(&app, "PATCH", &path, Some(json!({"scopes": ["orders:read"], "name": "Orders"}))).await;
    (expected["name"], expected["scopes"]) = (json!("Orders"), json!([{"name": "orders:read", "description": null}]));
    assert_eq!(ok_json(&r), expected);
    let stored = state.store.get_resource_server(API).await.unwrap().unwrap();
    expected["version"] = json!(4);
    assert_eq!(serde_json::to_value(&stored).unwrap(), expected, "four updates");
    expected.as_object_mut().unwrap().remove("version");

    // Refused PATCHes change nothing.
    for (bad, description) in [
        (json!({"scopes": ["a b"]}), Some("scopes: each name is one scope token (RFC 6749 §3.3)")),
        (json!({"scopes": ["a", "a"]}), Some("scopes: a scope is listed twice")),
        (
            json!({"scopes": [{"name": "a", "description": "d".repeat(501)}]}),
            Some("scopes: a description is at most 500 characters"),
        ),
        (json!({"name": "n".repeat(201)}), Some("name: at most 200 characters")),
        (json!({"identifier": "https://other.example"}), None),
        (json!({"scopes": "orders:read"}), None),
        (json!({"name": 5}), None),
    ] {
        let r = call(&app, "PATCH", &path, Some(bad.clone())).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
        if let Some(d) = description {
            assert_eq!(r.body["error_description"], d, "{bad}");
        }
    }
    let r = call(&app, "PATCH", &path, Some(json!({"identifier": "https://other.example"}))).await;
    assert!(r.body["error_description"].as_str().unwrap().starts_with("unknown field `identifier`"), "{}", r.text);
    assert_eq!(state.store.get_resource_server(API).await.unwrap(), Some(stored));

    // The scopes a token may carry follow the update.
    let c = common::register(&app, json!({"grant_types": ["client_credentials"], "scope": "orders:read orders:write"}))
        .await;
    let resource = format!("&resource={}", q(API));
    let r = send(
        &app,
        form("/token", Some(&c.basic()), &format!("grant_type=client_credentials&scope=orders:write{resource}")),
    )
    .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_scope");
    common::cc_token(&app, &c, &format!("&scope=orders:read{resource}")).await;

    // A second one, and pages by identifier (a cursor holds a whole URI).
    let other = "urn:example:api";
    let r = call(&app, "POST", "/admin/resource-servers", Some(json!({"identifier": other}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let other_json = r.body.clone();
    assert_eq!(ok_json(&call(&app, "GET", &format!("/admin/resource-servers/{}", seg(other)), None).await), other_json);
    assert_pages(&app, "/admin/resource-servers", "resource_servers", &[expected.clone(), other_json.clone()]).await;

    // DELETE: gone, and tokens can no longer be requested for it.
    assert_no_content(&call(&app, "DELETE", &path, None).await);
    assert_eq!(state.store.get_resource_server(API).await.unwrap(), None);
    assert_not_found(&call(&app, "GET", &path, None).await, "no such resource server");
    assert_not_found(&call(&app, "DELETE", &path, None).await, "no such resource server");
    let r = send(&app, form("/token", Some(&c.basic()), &format!("grant_type=client_credentials{resource}"))).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_target");
    let r = ok_json(&call(&app, "GET", "/admin/resource-servers", None).await);
    assert_eq!(r, json!({"resource_servers": [other_json], "next": null}));
}

#[tokio::test]
async fn resource_servers_are_read_updated_and_deleted_by_identifier() {
    let (state, _dir) = common::embedded_state();
    resource_servers_by_identifier(&state).await;
}

// ---------------------------------------------------------------- DynamoDB

/// The same scenarios on DynamoDB (a fresh table each).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_users_and_resource_servers_on_dynamodb() {
    let Some((store, _, _)) = common::dynamo().await else { return };
    group_life_cycle(&common::state_on(store)).await;
    let (store, _, _) = common::dynamo().await.unwrap();
    group_pages(&common::state_on(store)).await;
    let (store, _, _) = common::dynamo().await.unwrap();
    memberships(&common::state_on(store)).await;
    let (store, _, _) = common::dynamo().await.unwrap();
    deletions_end_memberships(&common::state_on(store)).await;
    let (store, _, _) = common::dynamo().await.unwrap();
    user_pages(&common::state_on(store)).await;
    let (store, _, _) = common::dynamo().await.unwrap();
    resource_servers_by_identifier(&common::state_on(store)).await;
}
