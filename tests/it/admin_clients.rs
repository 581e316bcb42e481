//! The admin API's client and token operations: client listing (cursor), client update (JSON
//! merge patch, no lost updates), secret rotation with overlap, token listings with a cursor,
//! counts without rotated tokens, and bulk revocation.
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse::AppState;
use gatehouse::model::{AuthMethod, Client, GrantType, Scope};
use serde_json::{Value, json};

use crate::code_flow::{PASSWORD, assert_active, assert_inactive, create_user, enc, introspector};
use crate::common::{self, ADMIN, T0, TestClient, admin, assert_error, cc_client, form, register, send};

fn assert_no_store(r: &common::Resp) {
    assert_eq!(r.header("cache-control"), Some("no-store"), "{}", r.text);
    assert_eq!(r.header("pragma"), Some("no-cache"));
    assert_eq!(r.header("content-type"), Some("application/json"));
}

async fn stored(state: &AppState, id: &str) -> Client {
    state.store.get_client(id).await.unwrap().expect("the client is stored")
}

async fn get(app: &Router, path: &str) -> common::Resp {
    send(app, admin("GET", path, None)).await
}

async fn patch(app: &Router, id: &str, body: Value) -> common::Resp {
    send(app, admin("PATCH", &format!("/admin/clients/{id}"), Some(body))).await
}

async fn rotate(app: &Router, id: &str, body: Option<Value>) -> common::Resp {
    send(app, admin("POST", &format!("/admin/clients/{id}/secret"), body)).await
}

/// An admin request with a raw body.
fn raw(method: &str, path: &str, body: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

fn cursor(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(key)
}

fn jti(token: &str) -> String {
    crate::code_flow::claims(token)["jti"].as_str().unwrap().to_owned()
}

fn jtis(r: &common::Resp) -> Vec<String> {
    r.body["tokens"].as_array().unwrap().iter().map(|t| t["jti"].as_str().unwrap().to_owned()).collect()
}

/// A client-credentials token response (200 asserted).
async fn cc(app: &Router, id: &str, secret: &str, extra: &str) -> common::Resp {
    let r =
        send(app, form("/token", Some(&common::basic(id, secret)), &format!("grant_type=client_credentials{extra}")))
            .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r
}

// ---------------------------------------------------------------- client listing

#[tokio::test]
async fn list_clients_pages_with_a_cursor() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let r = get(&app, "/admin/clients").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_no_store(&r);
    assert_eq!(r.body, json!({"clients": [], "next": null}), "no clients yet");

    let mut ids = Vec::new();
    for i in 0..5 {
        let c = register(&app, json!({"client_name": format!("App {i}"), "grant_types": ["client_credentials"]})).await;
        ids.push(c.id);
    }
    ids.sort();
    let mut metadata = Vec::new();
    for id in &ids {
        metadata.push(get(&app, &format!("/admin/clients/{id}")).await.body);
    }

    // Everything on the default page, as `GET /admin/clients/{id}` shows each, by id.
    let r = get(&app, "/admin/clients").await;
    assert_eq!(r.body, json!({"clients": metadata, "next": null}));
    assert!(!r.text.contains("\"client_secret\""), "never a secret: {}", r.text);

    // Pages of 2, following `next`.
    let r = get(&app, "/admin/clients?limit=2").await;
    assert_eq!(r.body, json!({"clients": metadata[0..2], "next": cursor(&ids[1])}));
    let r = get(&app, &format!("/admin/clients?limit=2&cursor={}", r.body["next"].as_str().unwrap())).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_no_store(&r);
    assert_eq!(r.body, json!({"clients": metadata[2..4], "next": cursor(&ids[3])}));
    let r = get(&app, &format!("/admin/clients?limit=2&cursor={}", r.body["next"].as_str().unwrap())).await;
    assert_eq!(r.body, json!({"clients": metadata[4..5], "next": null}), "the last page");
    let r = get(&app, "/admin/clients?limit=5").await;
    assert_eq!(r.body, json!({"clients": metadata, "next": null}), "an exactly full page has no next");
    // Past the end, and limit 0: empty.
    let r = get(&app, &format!("/admin/clients?cursor={}", cursor(&ids[4]))).await;
    assert_eq!(r.body, json!({"clients": [], "next": null}));
    let r = get(&app, &format!("/admin/clients?cursor={}", cursor("~~~~"))).await;
    assert_eq!(r.body, json!({"clients": [], "next": null}));
    let r = get(&app, "/admin/clients?limit=1000").await;
    assert_eq!(r.body["clients"].as_array().unwrap().len(), 5);

    // A deleted client leaves the listing.
    let d = send(&app, admin("DELETE", &format!("/admin/clients/{}", ids[0]), None)).await;
    assert_eq!(d.status, StatusCode::NO_CONTENT);
    let r = get(&app, "/admin/clients").await;
    assert_eq!(r.body, json!({"clients": metadata[1..5], "next": null}));

    // Malformed cursors and limits.
    for q in [
        "cursor=!!!",
        "cursor=_w",
        "cursor=a",
        "cursor=a%20b",
        "limit=0",
        "limit=1001",
        "limit=-1",
        "limit=x",
        "cursor=x&cursor=y",
    ] {
        let r = get(&app, &format!("/admin/clients?{q}")).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
        if q.starts_with("cursor=") && !q.contains('&') {
            assert!(r.body["error_description"].as_str().unwrap().contains("cursor"), "{q}: {}", r.text);
        }
    }
    let r = get(&app, &format!("/admin/clients?cursor={}", cursor(&"x".repeat(257)))).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    let r = send(&app, admin("PUT", "/admin/clients", None)).await;
    assert_error(&r, StatusCode::METHOD_NOT_ALLOWED, "invalid_request");
    assert_eq!(r.header("allow"), Some("GET, POST"));
}

// ---------------------------------------------------------------- client update

#[tokio::test]
async fn patch_merges_metadata_and_validates_like_registration() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = register(
        &app,
        json!({"client_name": "Billing", "grant_types": ["client_credentials"], "scope": "read write",
               "access_token_lifetime": 600}),
    )
    .await;
    let secret = c.secret.clone().unwrap();
    let before = stored(&state, &c.id).await;
    assert_eq!(before.version, 0);

    state.clock.advance(5);
    let r = patch(
        &app,
        &c.id,
        json!({"client_name": "Billing v2", "access_token_lifetime": null, "refresh_token_lifetime": 7200,
               "scope": "read write admin", "pre_approved_scopes": "read"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_no_store(&r);
    let expected = json!({
        "client_id": c.id,
        "client_id_issued_at": T0,
        "client_name": "Billing v2",
        "redirect_uris": [],
        "grant_types": ["client_credentials"],
        "token_endpoint_auth_method": "client_secret_basic",
        "scope": "admin read write",
        "pre_approved_scopes": "read",
        "refresh_token_lifetime": 7200,
    });
    assert_eq!(r.body, expected);
    assert_eq!(get(&app, &format!("/admin/clients/{}", c.id)).await.body, expected);
    let after = stored(&state, &c.id).await;
    assert_eq!(
        after,
        Client {
            client_name: Some("Billing v2".into()),
            scope: Scope::parse("admin read write").unwrap(),
            pre_approved_scopes: Scope::parse("read").unwrap(),
            access_token_lifetime: None,
            refresh_token_lifetime: Some(7200),
            version: 1,
            ..before.clone()
        },
        "the secret, id and creation time are kept"
    );
    // The token endpoint sees the change: the new scope, the default lifetime again.
    let t = cc(&app, &c.id, &secret, "&scope=admin").await;
    assert_eq!((t.body["scope"].clone(), t.body["expires_in"].clone()), (json!("admin"), json!(3600)));
    let r = patch(&app, &c.id, json!({"access_token_lifetime": 120})).await;
    assert_eq!(r.body["access_token_lifetime"], 120, "{}", r.text);
    assert_eq!(cc(&app, &c.id, &secret, "").await.body["expires_in"], 120);

    // An empty patch changes nothing (and writes nothing).
    let now = stored(&state, &c.id).await;
    let r = patch(&app, &c.id, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body, get(&app, &format!("/admin/clients/{}", c.id)).await.body);
    assert_eq!(stored(&state, &c.id).await, now);

    // Between confidential methods: allowed; null restores the default (client_secret_basic).
    let r = patch(&app, &c.id, json!({"token_endpoint_auth_method": "client_secret_post"})).await;
    assert_eq!(r.body["token_endpoint_auth_method"], "client_secret_post", "{}", r.text);
    let basic = send(&app, form("/token", Some(&c.basic()), "grant_type=client_credentials")).await;
    assert_error(&basic, StatusCode::UNAUTHORIZED, "invalid_client");
    let body = format!("grant_type=client_credentials&client_id={}&client_secret={}", c.id, enc(&secret));
    assert_eq!(send(&app, form("/token", None, &body)).await.status, StatusCode::OK);
    let r = patch(&app, &c.id, json!({"token_endpoint_auth_method": null})).await;
    assert_eq!(r.body["token_endpoint_auth_method"], "client_secret_basic", "{}", r.text);
    assert_eq!(stored(&state, &c.id).await.token_endpoint_auth_method, AuthMethod::ClientSecretBasic);
    assert_eq!(stored(&state, &c.id).await.version, 4);

    // Refusals name the field and change nothing.
    let unchanged = stored(&state, &c.id).await;
    let metadata = [
        (json!({"scopes": "read"}), "scopes"),
        (json!({"client_id": "another"}), "client_id"),
        (json!({"client_secret": "chosen-by-me"}), "client_secret"),
        (json!({"client_id_issued_at": 0}), "client_id_issued_at"),
        (json!({"token_endpoint_auth_method": "none"}), "token_endpoint_auth_method"),
        (json!({"token_endpoint_auth_method": "private_key_jwt"}), "token_endpoint_auth_method"),
        (json!({"access_token_lifetime": 59}), "access_token_lifetime"),
        (json!({"access_token_lifetime": "600"}), "access_token_lifetime"),
        (json!({"refresh_token_lifetime": 31_536_001}), "refresh_token_lifetime"),
        (json!({"grant_types": []}), "grant_types"),
        (json!({"grant_types": ["implicit"]}), "grant_types"),
        (json!({"pre_approved_scopes": "delete"}), "pre_approved_scopes"),
        (json!({"scope": "write"}), "pre_approved_scopes"),
        (json!({"scope": "a  b"}), "scope"),
        (json!({"client_name": ""}), "client_name"),
    ];
    for (body, field) in metadata {
        let r = patch(&app, &c.id, body.clone()).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_client_metadata");
        assert!(r.body["error_description"].as_str().unwrap().contains(field), "{body}: {}", r.text);
        assert!(!r.text.contains(&secret));
    }
    for body in [json!({"redirect_uris": ["http://evil.example/cb"]}), json!({"grant_types": null})] {
        // The default grant (authorization_code) needs redirect URIs.
        let r = patch(&app, &c.id, body).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_redirect_uri");
    }
    for body in ["[1, 2]", "\"x\"", "{not json", ""] {
        let r = send(&app, raw("PATCH", &format!("/admin/clients/{}", c.id), body)).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_client_metadata");
    }
    assert_eq!(stored(&state, &c.id).await, unchanged);
    let r = patch(&app, "no-such-client", json!({"client_name": "x"})).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    assert!(state.store.get_client("no-such-client").await.unwrap().is_none());
}

#[tokio::test]
async fn a_public_client_stays_public() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let spa = crate::code_flow::public_client(&app).await;
    for body in [
        json!({"token_endpoint_auth_method": "client_secret_basic"}),
        json!({"token_endpoint_auth_method": "client_secret_post"}),
        json!({"token_endpoint_auth_method": null}),
    ] {
        let r = patch(&app, &spa.id, body).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_client_metadata");
        assert!(r.body["error_description"].as_str().unwrap().contains("token_endpoint_auth_method"), "{}", r.text);
    }
    let r = patch(
        &app,
        &spa.id,
        json!({"client_name": null, "redirect_uris": ["https://spa.example.com/cb", "http://127.0.0.1:9000/cb"]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body,
        json!({
            "client_id": spa.id,
            "client_id_issued_at": T0,
            "redirect_uris": ["https://spa.example.com/cb", "http://127.0.0.1:9000/cb"],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "none",
            "scope": "read write",
        })
    );
    let s = stored(&state, &spa.id).await;
    assert_eq!((s.client_name, s.secret_digest, s.version), (None, None, 1));
    // A public client has no secret to rotate.
    let r = rotate(&app, &spa.id, None).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_client_metadata");
    assert_eq!(stored(&state, &spa.id).await.version, 1);
}

/// 20 concurrent PATCHes, each of one field (seven fields, each patched two or three times with
/// values no other patch and not the initial client uses): every one is written (the version
/// counts 20 conditional writes), each response shows its own change, and every field ends
/// with one of the values sent for it.
async fn concurrent_patches_all_land(state: AppState) {
    let app = common::app(&state);
    let c = register(
        &app,
        json!({"client_name": "initial", "grant_types": ["client_credentials"], "scope": "read write",
               "redirect_uris": ["https://app.example.com/cb"]}),
    )
    .await;
    let patch_of = |i: usize| -> (&'static str, Value) {
        let pre_approved = ["read", "write", "read write"];
        let grants = [json!(["client_credentials", "authorization_code"]), json!(["authorization_code"])];
        match i % 7 {
            0 => ("client_name", json!(format!("name {i}"))),
            1 => ("access_token_lifetime", json!(600 + i)),
            2 => ("refresh_token_lifetime", json!(3600 + i)),
            3 => ("scope", json!(format!("extra{i} read write"))),
            4 => ("pre_approved_scopes", json!(pre_approved[i / 7])),
            5 => ("redirect_uris", json!([format!("https://app.example.com/cb{i}")])),
            _ => ("grant_types", grants[i / 7].clone()),
        }
    };
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (app, id) = (app.clone(), c.id.clone());
            let (field, value) = patch_of(i);
            tokio::spawn(async move {
                let r = patch(&app, &id, json!({ field: value })).await;
                assert_eq!(r.status, StatusCode::OK, "patch {i}: {}", r.text);
                assert_eq!(r.body[field], value, "patch {i} shows its own change: {}", r.text);
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let s = stored(&state, &c.id).await;
    assert_eq!(s.version, 20, "20 conditional writes, none lost: {s:?}");
    let body = get(&app, &format!("/admin/clients/{}", c.id)).await.body;
    for field in ["client_name", "access_token_lifetime", "refresh_token_lifetime", "scope", "pre_approved_scopes"] {
        let sent: Vec<Value> = (0..20).map(patch_of).filter(|(f, _)| *f == field).map(|(_, v)| v).collect();
        assert!(sent.contains(&body[field]), "{field}: {} is not one of {sent:?}", body[field]);
    }
    let sent: Vec<Value> = (0..20).map(patch_of).filter(|(f, _)| *f == "redirect_uris").map(|(_, v)| v).collect();
    assert!(sent.contains(&body["redirect_uris"]), "{body}");
    assert!(s.grant_types == [GrantType::AuthorizationCode] || s.grant_types.len() == 2, "{s:?}");
    assert_ne!(s.grant_types, [GrantType::ClientCredentials]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_patches_all_land_embedded() {
    let (state, _dir) = common::embedded_state();
    concurrent_patches_all_land(state).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_patches_all_land_dynamodb() {
    let Some((store, _, _)) = common::dynamo().await else { return };
    concurrent_patches_all_land(common::state_on(store)).await;
}

// ---------------------------------------------------------------- secret rotation

#[tokio::test]
async fn rotated_secret_overlaps_then_expires() {
    gatehouse::audit::start_capture();
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = cc_client(&app).await;
    let old = c.secret.clone().unwrap();
    let rs = introspector(&app).await;

    state.clock.advance(10);
    let r = rotate(&app, &c.id, Some(json!({"overlap_seconds": 600}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_no_store(&r);
    let new = r.body["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(
        r.body,
        json!({"client_id": c.id, "client_secret": new, "client_secret_expires_at": 0,
               "previous_secret_expires_at": T0 + 610})
    );
    assert_eq!(new.len(), 43);
    assert_ne!(new, old);
    let s = stored(&state, &c.id).await;
    assert_eq!(s.secret_digest.as_deref(), Some(gatehouse::crypto::digest(&new).as_str()));
    assert_eq!(s.previous_secret_digest.as_deref(), Some(gatehouse::crypto::digest(&old).as_str()));
    assert_eq!((s.previous_secret_expires_at, s.version), (Some(T0 + 610), 1));
    let shown = get(&app, &format!("/admin/clients/{}", c.id)).await.text;
    assert!(!shown.contains(&new) && !shown.contains(&old), "never shown again: {shown}");

    // During the overlap both secrets work, at the token and the introspection endpoints.
    let at = cc(&app, &c.id, &old, "").await.body["access_token"].as_str().unwrap().to_owned();
    cc(&app, &c.id, &new, "").await;
    let r = send(&app, form("/introspect", Some(&common::basic(&c.id, &old)), &format!("token={}", enc(&at)))).await;
    assert_eq!(r.body["active"], true, "{}", r.text);
    state.clock.advance(599);
    cc(&app, &c.id, &old, "").await;
    // From previous_secret_expires_at on, only the new one.
    state.clock.advance(1);
    assert_eq!(state.clock.now(), T0 + 610);
    let r = send(&app, form("/token", Some(&common::basic(&c.id, &old)), "grant_type=client_credentials")).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_client");
    let r = send(&app, form("/introspect", Some(&common::basic(&c.id, &old)), &format!("token={}", enc(&at)))).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_client");
    cc(&app, &c.id, &new, "").await;
    assert_active(&app, &rs, &at).await; // rotation does not revoke tokens

    // Without an overlap (no body): the previous secret stops at once, and nothing is kept.
    let r = rotate(&app, &c.id, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let newest = r.body["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(r.body, json!({"client_id": c.id, "client_secret": newest, "client_secret_expires_at": 0}));
    let r = send(&app, form("/token", Some(&common::basic(&c.id, &new)), "grant_type=client_credentials")).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_client");
    cc(&app, &c.id, &newest, "").await;
    let s = stored(&state, &c.id).await;
    assert_eq!((s.previous_secret_digest, s.previous_secret_expires_at, s.version), (None, None, 2));

    // Rotating again during an overlap keeps only the latest previous secret.
    let r = rotate(&app, &c.id, Some(json!({"overlap_seconds": 604_800}))).await;
    let fourth = r.body["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(r.body["previous_secret_expires_at"], state.clock.now() + 604_800);
    let r = rotate(&app, &c.id, Some(json!({"overlap_seconds": 60}))).await;
    let fifth = r.body["client_secret"].as_str().unwrap().to_owned();
    cc(&app, &c.id, &fourth, "").await;
    cc(&app, &c.id, &fifth, "").await;
    let r = send(&app, form("/token", Some(&common::basic(&c.id, &newest)), "grant_type=client_credentials")).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_client");
    let r = rotate(&app, &c.id, Some(json!({"overlap_seconds": 0}))).await;
    assert!(r.body.get("previous_secret_expires_at").is_none(), "{}", r.text);

    // Audit: the changes are named, the secrets never.
    let lines: Vec<Value> = gatehouse::audit::captured().into_iter().filter(|l| l["object"] == c.id.as_str()).collect();
    let rotations = lines.iter().filter(|l| l["action"] == "client_secret_rotated").count();
    assert_eq!(rotations, 5, "{lines:?}");
    for l in &lines {
        let text = l.to_string();
        for s in [&old, &new, &newest, &fourth, &fifth] {
            assert!(!text.contains(s.as_str()), "a secret in {text}");
        }
    }
}

#[tokio::test]
async fn secret_rotation_refusals() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = cc_client(&app).await;
    let before = stored(&state, &c.id).await;
    for body in [
        json!({"overlap_seconds": 604_801}),
        json!({"overlap_seconds": -1}),
        json!({"overlap_seconds": "60"}),
        json!({"overlap": 60}),
        json!({"client_secret": "chosen-by-me"}),
        json!([60]),
    ] {
        let r = rotate(&app, &c.id, Some(body.clone())).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    }
    let r = send(&app, raw("POST", &format!("/admin/clients/{}/secret", c.id), "{not json")).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(stored(&state, &c.id).await, before, "nothing changed");
    cc(&app, &c.id, c.secret.as_deref().unwrap(), "").await;
    let r = rotate(&app, "no-such-client", None).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    let r = get(&app, &format!("/admin/clients/{}/secret", c.id)).await;
    assert_error(&r, StatusCode::METHOD_NOT_ALLOWED, "invalid_request");
    assert_eq!(r.header("allow"), Some("POST"));
    // A client_secret_post client rotates too.
    let p = register(
        &app,
        json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_post"}),
    )
    .await;
    let r = rotate(&app, &p.id, Some(json!({"overlap_seconds": 30}))).await;
    let new = r.body["client_secret"].as_str().unwrap();
    for s in [p.secret.as_deref().unwrap(), new] {
        let body = format!("grant_type=client_credentials&client_id={}&client_secret={}", p.id, enc(s));
        assert_eq!(send(&app, form("/token", None, &body)).await.status, StatusCode::OK);
    }
}

// ---------------------------------------------------------------- token listings with a cursor

#[tokio::test]
async fn token_listing_with_a_cursor() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = cc_client(&app).await;
    let secret = c.secret.clone().unwrap();
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(jti(cc(&app, &c.id, &secret, "").await.body["access_token"].as_str().unwrap()));
        if i % 3 != 2 {
            state.clock.advance(1); // some in the same second: ordered by id
        }
    }
    let mut expected = ids.clone();
    let iat = |j: usize| T0 + [0, 1, 2, 2, 3, 4, 4][j];
    expected.sort_by_key(|j| (iat(ids.iter().position(|x| x == j).unwrap()), j.clone()));
    let list = |q: String| {
        let app = app.clone();
        async move { send(&app, admin("GET", &format!("/admin/tokens?{q}"), None)).await }
    };

    // The offset listing now also gives a cursor when its page is full.
    let r = list(format!("type=access&client_id={}&limit=3", c.id)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(jtis(&r), expected[0..3]);
    // The sort key: `E`, the expiry (an hour after issue), `#`, the id.
    let key = |j: &str| format!("E{:012}#{j}", iat(ids.iter().position(|x| x == j).unwrap()) + 3600);
    assert_eq!(r.body["next"], json!(cursor(&key(&expected[2]))));
    assert_eq!(r.body["next_offset"], 3);

    // Follow `next`: every token once, in the offset listing's order.
    let first = r.body["next"].as_str().unwrap().to_owned();
    let r = list(format!("type=access&client_id={}&limit=3&cursor={first}", c.id)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_no_store(&r);
    let next = cursor(&key(&expected[5]));
    assert_eq!(
        r.body,
        json!({
            "tokens": r.body["tokens"].clone(),
            "offset": null, "limit": 3, "next_offset": null, "next": next,
        })
    );
    assert_eq!(jtis(&r), expected[3..6]);
    let by_offset = list(format!("type=access&client_id={}&offset=3&limit=3", c.id)).await;
    assert_eq!(r.body["tokens"], by_offset.body["tokens"], "the same content as by offset");
    let r = list(format!("type=access&client_id={}&limit=3&cursor={next}", c.id)).await;
    assert_eq!(jtis(&r), expected[6..7]);
    assert_eq!(r.body["next"], Value::Null, "the last page");
    // Cursor past the end, limit 0: empty.
    let end = cursor(&key(&expected[6]));
    let r = list(format!("type=access&client_id={}&cursor={end}", c.id)).await;
    assert_eq!((r.body["tokens"].clone(), r.body["next"].clone()), (json!([]), Value::Null));
    let r = list(format!("type=access&client_id={}&cursor={first}&limit=0", c.id)).await;
    assert_eq!((r.body["tokens"].clone(), r.body["next"].clone()), (json!([]), Value::Null));
    // Another client's, or a kind without tokens: empty.
    let r = list(format!("type=refresh&client_id={}&cursor={first}", c.id)).await;
    assert_eq!(r.body["tokens"], json!([]));
    // A revoked token drops out of a cursor page too.
    let r = send(&app, admin("POST", "/admin/tokens/revoke", Some(json!({"jti": expected[4]})))).await;
    assert_eq!(r.body, json!({"revoked": true}));
    let r = list(format!("type=access&client_id={}&cursor={first}", c.id)).await;
    assert_eq!(jtis(&r), [expected[3].clone(), expected[5].clone(), expected[6].clone()]);

    // Refusals: both offset and cursor, malformed cursors.
    let r = list(format!("type=access&client_id={}&offset=0&cursor={first}", c.id)).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    assert!(r.body["error_description"].as_str().unwrap().contains("cursor"), "{}", r.text);
    for bad in ["!!!".to_owned(), "_w".into(), cursor("not-a-sort-key"), cursor("12345#x"), cursor("000000000001#")] {
        let r = list(format!("type=access&client_id={}&cursor={bad}", c.id)).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
        assert!(r.body["error_description"].as_str().unwrap().contains("cursor"), "{bad}: {}", r.text);
    }
    let r = list(format!("type=access&client_id={}&cursor={first}&limit=1001", c.id)).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
}

/// Refresh rotation takes the old refresh token out of listings and counts.
#[tokio::test]
async fn counts_exclude_rotated_revoked_and_expired_tokens() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let pw = register(&app, json!({"grant_types": ["password", "refresh_token"], "scope": "read"})).await;
    create_user(&app, "alice", PASSWORD).await;
    let grant = format!("grant_type=password&username=alice&password={}", enc(PASSWORD));
    let t = send(&app, form("/token", Some(&pw.basic()), &grant)).await.body;
    let count = |kind: &'static str| {
        let app = app.clone();
        let id = pw.id.clone();
        async move {
            let r = get(&app, &format!("/admin/tokens/count?type={kind}&client_id={id}&end_user=alice")).await;
            r.body["count"].as_u64().unwrap()
        }
    };
    assert_eq!((count("access").await, count("refresh").await), (1, 1));
    state.clock.advance(1);
    let refreshed = format!("grant_type=refresh_token&refresh_token={}", enc(t["refresh_token"].as_str().unwrap()));
    let t2 = send(&app, form("/token", Some(&pw.basic()), &refreshed)).await;
    assert_eq!(t2.status, StatusCode::OK, "{}", t2.text);
    assert_eq!((count("access").await, count("refresh").await), (2, 1), "the rotated refresh token is not counted");
    let r = get(&app, &format!("/admin/tokens?type=refresh&end_user=alice&cursor={}", cursor("000000000000#a"))).await;
    assert_eq!(r.body["tokens"].as_array().unwrap().len(), 1, "{}", r.text);
    assert_eq!(r.body["tokens"][0]["iat"], T0 + 1, "the successor only");
    let first_access = jti(t["access_token"].as_str().unwrap());
    send(&app, admin("POST", "/admin/tokens/revoke", Some(json!({"jti": first_access})))).await;
    assert_eq!(count("access").await, 1, "revoked");
    state.clock.advance(3600);
    assert_eq!(count("access").await, 0, "expired");
}

// ---------------------------------------------------------------- bulk revocation

async fn revoke_all(app: &Router, body: Value) -> common::Resp {
    send(app, admin("POST", "/admin/tokens/revoke-all", Some(body))).await
}

async fn count_of(app: &Router, query: &str) -> u64 {
    get(app, &format!("/admin/tokens/count?{query}")).await.body["count"].as_u64().unwrap()
}

#[tokio::test]
async fn revoke_all_by_client_end_user_or_both() {
    let (state, _dir) = common::embedded_state();
    revoke_all_scenario(state).await;
}

#[tokio::test]
async fn revoke_all_on_dynamodb() {
    let Some((store, _, _)) = common::dynamo().await else { return };
    revoke_all_scenario(common::state_on(store)).await;
}

async fn revoke_all_scenario(state: AppState) {
    let app = common::app(&state);
    let rs = introspector(&app).await;
    let pw = register(&app, json!({"grant_types": ["password", "refresh_token"], "scope": "read"})).await;
    let other = register(&app, json!({"grant_types": ["password", "refresh_token"], "scope": "read"})).await;
    let svc = cc_client(&app).await;
    create_user(&app, "alice", PASSWORD).await;
    create_user(&app, "bob", PASSWORD).await;
    let grant = |c: &TestClient, user: &str| {
        let (app, c) = (app.clone(), c.clone());
        let body = format!("grant_type=password&username={user}&password={}", enc(PASSWORD));
        async move {
            let r = send(&app, form("/token", Some(&c.basic()), &body)).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            r.body
        }
    };
    let a1 = grant(&pw, "alice").await;
    let a2 = grant(&pw, "alice").await;
    let a_other = grant(&other, "alice").await;
    let b1 = grant(&pw, "bob").await;
    let svc_token = common::cc_token(&app, &svc, "").await;
    // One refresh of a1's family: a new access and refresh token, the old refresh rotated.
    let refreshed = format!("grant_type=refresh_token&refresh_token={}", enc(a1["refresh_token"].as_str().unwrap()));
    let a1b = send(&app, form("/token", Some(&pw.basic()), &refreshed)).await.body;
    let s = |v: &Value, k: &str| v[k].as_str().unwrap().to_owned();

    // Alice at pw: 3 access (a1, a1b, a2) + 2 refresh (a1b, a2).
    let r = revoke_all(&app, json!({"client_id": pw.id, "end_user": "alice"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_no_store(&r);
    assert_eq!(r.body, json!({"revoked": 5}));
    for t in [&a1, &a1b, &a2] {
        assert_inactive(&app, &rs, &s(t, "access_token")).await;
    }
    for t in [&a1b, &a2] {
        assert_inactive(&app, &rs, &s(t, "refresh_token")).await;
        let body = format!("grant_type=refresh_token&refresh_token={}", enc(&s(t, "refresh_token")));
        let r = send(&app, form("/token", Some(&pw.basic()), &body)).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");
    }
    for kind in ["access", "refresh"] {
        assert_eq!(count_of(&app, &format!("type={kind}&client_id={}&end_user=alice", pw.id)).await, 0);
    }
    // Untouched: alice at another client, bob, the service client.
    for t in [&a_other, &b1] {
        assert_active(&app, &rs, &s(t, "access_token")).await;
        assert_active(&app, &rs, &s(t, "refresh_token")).await;
    }
    assert_active(&app, &rs, &svc_token).await;
    let r = revoke_all(&app, json!({"client_id": pw.id, "end_user": "alice"})).await;
    assert_eq!(r.body, json!({"revoked": 0}), "nothing left");

    // Everything of one end user, across clients.
    let r = revoke_all(&app, json!({"end_user": "alice"})).await;
    assert_eq!(r.body, json!({"revoked": 2}));
    assert_inactive(&app, &rs, &s(&a_other, "refresh_token")).await;
    assert_active(&app, &rs, &s(&b1, "access_token")).await;
    // Everything of one client.
    let r = revoke_all(&app, json!({"client_id": svc.id})).await;
    assert_eq!(r.body, json!({"revoked": 1}));
    assert_inactive(&app, &rs, &svc_token).await;
    let r = revoke_all(&app, json!({"client_id": pw.id})).await;
    assert_eq!(r.body, json!({"revoked": 2}), "bob's two");
    assert_inactive(&app, &rs, &s(&b1, "refresh_token")).await;
    let r = revoke_all(&app, json!({"end_user": "nobody"})).await;
    assert_eq!(r.body, json!({"revoked": 0}));
    assert_eq!(count_of(&app, &format!("type=access&client_id={}", rs.id)).await, 0);

    // Refusals.
    for body in [
        json!({}),
        json!({"client_id": ""}),
        json!({"client_id": null, "end_user": null}),
        json!({"end_user": "x".repeat(257)}),
        json!({"client_id": "x", "jti": "y"}),
        json!({"client_id": 5}),
        json!(["x"]),
    ] {
        let r = revoke_all(&app, body.clone()).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    }
    let r = get(&app, "/admin/tokens/revoke-all").await;
    assert_error(&r, StatusCode::METHOD_NOT_ALLOWED, "invalid_request");
    assert_eq!(r.header("allow"), Some("POST"));
}

// ---------------------------------------------------------------- on DynamoDB

#[tokio::test]
async fn clients_and_cursors_on_dynamodb() {
    let Some((store, _, _)) = common::dynamo().await else { return };
    let state = common::state_on(store);
    let app = common::app(&state);
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(cc_client(&app).await);
    }
    ids.sort_by(|a, b| a.id.cmp(&b.id));
    let r = get(&app, "/admin/clients?limit=2").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let listed: Vec<&str> =
        r.body["clients"].as_array().unwrap().iter().map(|c| c["client_id"].as_str().unwrap()).collect();
    assert_eq!(listed, [ids[0].id.as_str(), ids[1].id.as_str()]);
    assert_eq!(r.body["next"], json!(cursor(&ids[1].id)));
    let r = get(&app, &format!("/admin/clients?limit=2&cursor={}", r.body["next"].as_str().unwrap())).await;
    assert_eq!(r.body["clients"][0]["client_id"], ids[2].id.as_str());
    assert_eq!(r.body["next"], Value::Null);

    // Patch and rotate, then the listing shows the patched client (and no second copy).
    let c = &ids[0];
    let r = patch(&app, &c.id, json!({"client_name": "Renamed", "access_token_lifetime": 300})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = rotate(&app, &c.id, Some(json!({"overlap_seconds": 60}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let new = r.body["client_secret"].as_str().unwrap().to_owned();
    let old = c.secret.clone().unwrap();
    assert_eq!(cc(&app, &c.id, &old, "").await.body["expires_in"], 300);
    cc(&app, &c.id, &new, "").await;
    state.clock.advance(60);
    let r = send(&app, form("/token", Some(&common::basic(&c.id, &old)), "grant_type=client_credentials")).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_client");
    let r = get(&app, "/admin/clients").await;
    assert_eq!(r.body["clients"].as_array().unwrap().len(), 3, "{}", r.text);
    assert_eq!(r.body["clients"][0]["client_name"], "Renamed");
    assert_eq!(stored(&state, &c.id).await.version, 2);

    // Token cursor pages, across revoked tokens.
    let mut jtis_issued = Vec::new();
    for _ in 0..5 {
        jtis_issued.push(jti(cc(&app, &c.id, &new, "").await.body["access_token"].as_str().unwrap()));
        state.clock.advance(1);
    }
    send(&app, admin("POST", "/admin/tokens/revoke", Some(json!({"jti": jtis_issued[1]})))).await;
    let base = format!("type=access&client_id={}&limit=2", c.id);
    let r = get(&app, &format!("/admin/tokens?{base}&offset=0")).await;
    let mut seen = jtis(&r);
    let mut next = r.body["next"].as_str().map(str::to_owned);
    while let Some(n) = next {
        let r = get(&app, &format!("/admin/tokens?{base}&cursor={n}")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        seen.extend(jtis(&r));
        next = r.body["next"].as_str().map(str::to_owned);
    }
    // Every active token of the client (with the two issued during the overlap), once, in order.
    let all = jtis(&get(&app, &format!("/admin/tokens?type=access&client_id={}", c.id)).await);
    assert_eq!(seen, all);
    assert!(!seen.contains(&jtis_issued[1]));
    assert_eq!(count_of(&app, &format!("type=access&client_id={}", c.id)).await, all.len() as u64);
}
