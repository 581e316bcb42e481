//! The seed's token validation checks (issue 6 items 1-3, 9): `POST /introspect` with
//! `expected_end_user`, `expected_group`, `required_scope` and `include_reason`, the STS-style
//! `GET /validate`, group owners acting for their members (`group_uri_enabled`), and the
//! EDR 20006 audit line of each validation. Every refusal exactly, on both backends.
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse::AppState;
use gatehouse::keys::{LocalSigner, Signer};
use serde_json::{Value, json};

use crate::code_flow::{PASSWORD, create_user, enc};
use crate::common::{self, TestClient, admin, assert_error, form, register, send};

const ISSUER: &str = "https://auth.test.example";
const BARE: &str = r#"Bearer realm="gatehouse""#;
const NOT_VALID: &str = "the access token is not valid";
const EXPIRED: &str = "the access token has expired";
const REVOKED: &str = "the access token was revoked";
const WRONG_USER: &str = "the access token does not act for the expected end user";
const NOT_A_MEMBER: &str = "the expected end user is not a member of the group the access token was issued for";
const WRONG_GROUP: &str = "the access token was not issued for the expected group";
const NO_SCOPE: &str = "the access token does not have the required scope";
const OTHER_AUDIENCE: &str = "the access token was issued for another resource server";

/// A tenant with a resource server's client (`rs`, it introspects), a password client
/// (`app_client`, scopes `read write`), users alice, bob, carol and `family`, and the group
/// `family` (owned by the user `family`) with members alice and bob.
struct Env {
    state: AppState,
    app: Router,
    rs: TestClient,
    app_client: TestClient,
    cc: TestClient,
}

async fn env(state: AppState) -> Env {
    let app = common::app(&state);
    let rs = register(&app, json!({"grant_types": ["client_credentials"], "client_name": "resource server"})).await;
    let app_client = register(&app, json!({"grant_types": ["password", "refresh_token"], "scope": "read write"})).await;
    let cc = common::cc_client(&app).await;
    for u in ["alice", "bob", "carol", "family"] {
        create_user(&app, u, PASSWORD).await;
    }
    let r = send(&app, admin("POST", "/admin/groups", Some(json!({"name": "family"})))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    for m in ["alice", "bob"] {
        let r = send(&app, admin("PUT", &format!("/admin/groups/family/members/{m}"), None)).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    }
    Env { state, app, rs, app_client, cc }
}

impl Env {
    /// Access and refresh token of `user` by the password grant, with `scope`.
    async fn tokens(&self, user: &str, scope: &str) -> (String, String) {
        let body = format!("grant_type=password&username={user}&password={}&scope={}", enc(PASSWORD), enc(scope));
        let r = send(&self.app, form("/token", Some(&self.app_client.basic()), &body)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        (r.body["access_token"].as_str().unwrap().to_owned(), r.body["refresh_token"].as_str().unwrap().to_owned())
    }

    async fn access(&self, user: &str) -> String {
        self.tokens(user, "read write").await.0
    }

    /// `POST /introspect` as the resource server with `token` and `extra` form parameters.
    async fn introspect(&self, token: &str, extra: &str) -> common::Resp {
        let body = format!("token={}{extra}", enc(token));
        send(&self.app, form("/introspect", Some(&self.rs.basic()), &body)).await
    }

    /// The `reason` an introspection with `include_reason=true` answers (`None`: active).
    async fn reason(&self, token: &str, extra: &str) -> Option<String> {
        let r = self.introspect(token, &format!("{extra}&include_reason=true")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_no_store(&r);
        if r.body["active"] == true {
            return None;
        }
        assert_eq!(r.body.as_object().unwrap().len(), 2, "only active and reason: {}", r.text);
        assert_eq!(r.body["active"], false, "{}", r.text);
        Some(r.body["reason"].as_str().unwrap_or_else(|| panic!("no reason: {}", r.text)).to_owned())
    }

    /// `GET /validate?{query}` with `authorization` when given.
    async fn validate(&self, authorization: Option<&str>, query: &str) -> common::Resp {
        let mut b = Request::get(format!("/validate{query}"));
        if let Some(a) = authorization {
            b = b.header(header::AUTHORIZATION, a);
        }
        send(&self.app, b.body(Body::empty()).unwrap()).await
    }

    async fn settings(&self, groups: bool) {
        let r = send(&self.app, admin("PATCH", "/admin/settings", Some(json!({"group_uri_enabled": groups})))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }

    async fn revoke(&self, token: &str) {
        let r =
            send(&self.app, form("/revoke", Some(&self.app_client.basic()), &format!("token={}", enc(token)))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
}

fn claims(token: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

fn assert_no_store(r: &common::Resp) {
    assert_eq!(r.header("cache-control"), Some("no-store"), "{r:?}");
    assert_eq!(r.header("pragma"), Some("no-cache"), "{r:?}");
}

/// Exactly `{"active":false}`, as RFC 7662 §2.2 answers plain callers.
fn assert_inactive(r: &common::Resp) {
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.text, r#"{"active":false}"#);
    assert_no_store(r);
}

/// The active body of an access token of `user` (`client_id`) with `scope`.
fn active_body(token: &str, client_id: &str, user: Option<&str>, scope: &str) -> Value {
    let c = claims(token);
    let mut body = json!({"active": true, "client_id": client_id, "sub": c["sub"], "aud": ISSUER, "iss": ISSUER,
        "exp": c["exp"], "iat": c["iat"], "jti": c["jti"], "token_type": "Bearer", "scope": scope});
    if let Some(u) = user {
        body["username"] = json!(u);
    }
    body
}

/// A 401 `invalid_token` with the RFC 6750 §3.1 challenge naming `description`.
fn assert_invalid_token(r: &common::Resp, description: &str) {
    assert_error(r, StatusCode::UNAUTHORIZED, "invalid_token");
    assert_eq!(r.body["error_description"], description);
    let challenge = format!(r#"Bearer realm="gatehouse", error="invalid_token", error_description="{description}""#);
    assert_eq!(r.header("www-authenticate"), Some(challenge.as_str()));
}

/// A 403 `insufficient_scope` (RFC 6750 §3.1) naming `description` (and `scope`).
fn assert_forbidden(r: &common::Resp, description: &str, scope: Option<&str>) {
    assert_error(r, StatusCode::FORBIDDEN, "insufficient_scope");
    assert_eq!(r.body["error_description"], description);
    let mut challenge =
        format!(r#"Bearer realm="gatehouse", error="insufficient_scope", error_description="{description}""#);
    if let Some(s) = scope {
        challenge.push_str(&format!(r#", scope="{s}""#));
    }
    assert_eq!(r.header("www-authenticate"), Some(challenge.as_str()));
}

/// A token with our claims signed by a key that is not the tenant's.
async fn foreign(token: &str) -> String {
    LocalSigner::ephemeral().sign("at+jwt", &claims(token)).await.unwrap()
}

// ---------------------------------------------------------------- POST /introspect

async fn plain_callers(state: AppState) {
    let e = env(state).await;
    let at = e.access("alice").await;
    let plain = e.introspect(&at, "").await;
    assert_eq!(plain.status, StatusCode::OK, "{}", plain.text);
    assert_eq!(plain.body, active_body(&at, &e.app_client.id, Some("alice"), "read write"));
    // Passing checks, with or without include_reason: exactly the plain answer.
    for extra in ["&expected_end_user=alice&required_scope=read", "&required_scope=read+write&include_reason=true"] {
        let r = e.introspect(&at, extra).await;
        assert_eq!((r.status, &r.body), (StatusCode::OK, &plain.body), "{extra}: {}", r.text);
        assert_no_store(&r);
    }
    // A failed check, or a token that is not active: nothing but {"active": false}.
    for extra in ["&expected_end_user=bob", "&required_scope=admin", "&expected_group=family&include_reason=false"] {
        assert_inactive(&e.introspect(&at, extra).await);
    }
    assert_inactive(&e.introspect("nonsense", "").await);
    e.revoke(&at).await;
    assert_inactive(&e.introspect(&at, "").await);
    assert_inactive(&e.introspect(&at, "&expected_end_user=alice").await);
    let at2 = e.access("alice").await;
    e.state.clock.advance(3600);
    assert_inactive(&e.introspect(&at2, "").await);
}

#[tokio::test]
async fn plain_rfc7662_callers_get_only_active_false() {
    let (store, _dir) = common::embedded();
    plain_callers(common::state_on(store)).await;
}

async fn reasons(state: AppState) {
    let e = env(state).await;
    let (at, rt) = e.tokens("alice", "read").await;
    assert_eq!(e.reason(&at, "").await, None);
    assert_eq!(e.reason(&at, "&expected_end_user=alice&required_scope=read").await, None);
    // Checks on a valid token.
    assert_eq!(e.reason(&at, "&expected_end_user=bob").await.as_deref(), Some("user_mismatch"));
    assert_eq!(e.reason(&at, "&expected_end_user=ALICE").await.as_deref(), Some("user_mismatch"), "exact match");
    assert_eq!(e.reason(&at, "&required_scope=write").await.as_deref(), Some("insufficient_scope"));
    assert_eq!(e.reason(&at, "&required_scope=read+write").await.as_deref(), Some("insufficient_scope"));
    assert_eq!(e.reason(&at, "&expected_group=family").await.as_deref(), Some("group_mismatch"));
    // The audience (no resource asked: the default audience, the issuer), exactly.
    let issuer = format!("&expected_audience={}", enc(ISSUER));
    assert_eq!(e.reason(&at, &issuer).await, None);
    assert_eq!(e.reason(&rt, &issuer).await, None);
    for other in ["https://api.example.com", "https://auth.test.example/", "HTTPS://auth.test.example"] {
        let extra = format!("&expected_audience={}", enc(other));
        assert_eq!(e.reason(&at, &extra).await.as_deref(), Some("audience_mismatch"), "{other}");
    }
    // Several failures: the first in the documented order (audience, end user, group, scope).
    let all = "&required_scope=write&expected_group=x&expected_end_user=bob";
    assert_eq!(e.reason(&at, all).await.as_deref(), Some("user_mismatch"));
    let all = format!("{all}&expected_audience=https%3A%2F%2Fapi.example.com");
    assert_eq!(e.reason(&at, &all).await.as_deref(), Some("audience_mismatch"));
    assert_eq!(e.reason(&at, "&required_scope=write&expected_group=x").await.as_deref(), Some("group_mismatch"));
    // A client credentials token has no resource owner.
    let cc = common::cc_token(&e.app, &e.cc, "&scope=read").await;
    assert_eq!(e.reason(&cc, &format!("&expected_end_user={}", e.cc.id)).await.as_deref(), Some("user_mismatch"));
    assert_eq!(e.reason(&cc, "&required_scope=read").await, None);
    // The refresh token is checked the same way.
    assert_eq!(e.reason(&rt, "&expected_end_user=alice&required_scope=read").await, None);
    assert_eq!(e.reason(&rt, "&expected_end_user=bob").await.as_deref(), Some("user_mismatch"));
    // Tokens that are not ours.
    assert_eq!(e.reason("nonsense", "").await.as_deref(), Some("invalid"));
    assert_eq!(e.reason(&foreign(&at).await, "").await.as_deref(), Some("invalid"));
    assert_eq!(e.reason(&format!("{at}x"), "").await.as_deref(), Some("invalid"), "a broken signature");
    assert_eq!(e.reason(&"r".repeat(300), "").await.as_deref(), Some("invalid"));
    // Revoked (a failed check does not hide it: the token's state comes first).
    e.revoke(&at).await;
    assert_eq!(e.reason(&at, "").await.as_deref(), Some("revoked"));
    assert_eq!(e.reason(&at, "&expected_end_user=bob").await.as_deref(), Some("revoked"));
    e.revoke(&rt).await;
    assert_eq!(e.reason(&rt, "&expected_end_user=alice").await.as_deref(), Some("revoked"));
    // A rotated refresh token is revoked too; its successor is active.
    let (_, rt2) = e.tokens("alice", "read").await;
    let body = format!("grant_type=refresh_token&refresh_token={}", enc(&rt2));
    let r = send(&e.app, form("/token", Some(&e.app_client.basic()), &body)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let rt3 = r.body["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(e.reason(&rt2, "").await.as_deref(), Some("revoked"));
    assert_eq!(e.reason(&rt3, "").await, None);
    // Expired: at `exp` exactly (and expired wins over revoked).
    let at4 = e.access("alice").await;
    e.state.clock.advance(3599);
    assert_eq!(e.reason(&at4, "").await, None);
    e.state.clock.advance(1);
    assert_eq!(e.reason(&at4, "").await.as_deref(), Some("expired"));
    assert_eq!(e.reason(&at, "").await.as_deref(), Some("expired"));
    assert_eq!(e.reason(&at4, "&expected_end_user=alice").await.as_deref(), Some("expired"));
}

#[tokio::test]
async fn each_failed_check_has_its_reason() {
    let (store, _dir) = common::embedded();
    reasons(common::state_on(store)).await;
}

#[tokio::test]
async fn malformed_check_parameters_are_invalid_request() {
    let (state, _dir) = common::embedded_state();
    let e = env(state).await;
    let at = e.access("alice").await;
    let long = "u".repeat(257);
    for (extra, description) in [
        ("&include_reason=yes", "`include_reason` must be true or false"),
        ("&include_reason=TRUE", "`include_reason` must be true or false"),
        ("&required_scope=read%20%20write", "`required_scope` is not a space-separated list of scope tokens"),
        ("&required_scope=%22quoted%22", "`required_scope` is not a space-separated list of scope tokens"),
        (&format!("&expected_end_user={long}"), "`expected_end_user` is longer than 256 characters"),
        (&format!("&expected_group={long}"), "`expected_group` is longer than 256 characters"),
        (&format!("&expected_audience={}", "a".repeat(1025)), "`expected_audience` is longer than 1024 bytes"),
        ("&expected_end_user=a&expected_end_user=b", "parameter `expected_end_user` is repeated"),
    ] {
        let r = e.introspect(&at, extra).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
        assert_eq!(r.body["error_description"], description, "{extra}");
        let r = e.validate(Some(&format!("Bearer {at}")), &format!("?{}", &extra[1..])).await;
        if !extra.starts_with("&include_reason") {
            assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
            assert_eq!(r.body["error_description"], description, "GET {extra}");
        }
    }
    // 256 characters are fine; an empty value is no check at all.
    assert_eq!(
        e.reason(&at, &format!("&expected_end_user={}", "u".repeat(256))).await.as_deref(),
        Some("user_mismatch")
    );
    assert_eq!(e.reason(&at, "&expected_end_user=&required_scope=").await, None);
}

// ---------------------------------------------------------------- group owners

async fn group_owners(state: AppState) {
    let e = env(state).await;
    let owner = e.access("family").await;
    let alice = e.access("alice").await;
    let bearer = format!("Bearer {owner}");
    // Feature off (the default): exact match only.
    assert_eq!(e.reason(&owner, "&expected_end_user=alice").await.as_deref(), Some("user_mismatch"));
    assert_eq!(e.reason(&owner, "&expected_group=family").await.as_deref(), Some("group_mismatch"));
    assert_eq!(e.reason(&owner, "&expected_end_user=family").await, None);
    assert_forbidden(&e.validate(Some(&bearer), "?expected_end_user=alice").await, WRONG_USER, None);

    // Feature on: the owner's token acts for every member.
    e.settings(true).await;
    for member in ["alice", "bob", "family"] {
        assert_eq!(e.reason(&owner, &format!("&expected_end_user={member}")).await, None, "{member}");
    }
    assert_eq!(e.reason(&owner, "&expected_end_user=carol").await.as_deref(), Some("not_a_member"));
    assert_eq!(e.reason(&owner, "&expected_end_user=nobody").await.as_deref(), Some("not_a_member"));
    assert_eq!(e.reason(&owner, "&expected_group=family&expected_end_user=bob").await, None);
    assert_eq!(e.reason(&owner, "&expected_group=other").await.as_deref(), Some("group_mismatch"));
    // A member's own token does not act for the other members, nor for the group.
    assert_eq!(e.reason(&alice, "&expected_end_user=bob").await.as_deref(), Some("user_mismatch"));
    assert_eq!(e.reason(&alice, "&expected_group=family").await.as_deref(), Some("group_mismatch"));
    let r = e.validate(Some(&bearer), "?expected_end_user=alice&expected_group=family").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body, active_body(&owner, &e.app_client.id, Some("family"), "read write"));
    assert_forbidden(&e.validate(Some(&bearer), "?expected_end_user=carol").await, NOT_A_MEMBER, None);
    assert_forbidden(&e.validate(Some(&bearer), "?expected_group=other").await, WRONG_GROUP, None);

    // Removing a member takes effect at once (membership is read at every validation).
    let r = send(&e.app, admin("DELETE", "/admin/groups/family/members/alice", None)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(e.reason(&owner, "&expected_end_user=alice").await.as_deref(), Some("not_a_member"));
    assert_forbidden(&e.validate(Some(&bearer), "?expected_end_user=alice").await, NOT_A_MEMBER, None);
    assert_eq!(e.reason(&owner, "&expected_end_user=bob").await, None);
    // So does adding one, and deleting the group.
    let r = send(&e.app, admin("PUT", "/admin/groups/family/members/carol", None)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(e.reason(&owner, "&expected_end_user=carol").await, None);
    let r = send(&e.app, admin("DELETE", "/admin/groups/family", None)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(e.reason(&owner, "&expected_end_user=carol").await.as_deref(), Some("user_mismatch"));
    assert_eq!(e.reason(&owner, "&expected_group=family").await.as_deref(), Some("group_mismatch"));

    // Turning the feature off takes effect at once on this instance.
    let r = send(&e.app, admin("POST", "/admin/groups", Some(json!({"name": "family"})))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    send(&e.app, admin("PUT", "/admin/groups/family/members/bob", None)).await;
    assert_eq!(e.reason(&owner, "&expected_end_user=bob").await, None);
    e.settings(false).await;
    assert_eq!(e.reason(&owner, "&expected_end_user=bob").await.as_deref(), Some("user_mismatch"));
    assert_forbidden(&e.validate(Some(&bearer), "?expected_end_user=bob").await, WRONG_USER, None);
}

#[tokio::test]
async fn group_owners_act_for_current_members_only() {
    let (store, _dir) = common::embedded();
    group_owners(common::state_on(store)).await;
}

// ---------------------------------------------------------------- GET /validate

async fn get_validation(state: AppState) {
    let e = env(state).await;
    let (at, rt) = e.tokens("alice", "read").await;
    let bearer = format!("Bearer {at}");

    // Valid: 200, the introspection members, never cached, no challenge.
    for (auth, query) in
        [(bearer.clone(), ""), (format!("bearer {at}"), "?required_scope=read&expected_end_user=alice")]
    {
        let r = e.validate(Some(&auth), query).await;
        assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.text);
        assert_eq!(r.body, active_body(&at, &e.app_client.id, Some("alice"), "read"));
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("www-authenticate"), None);
        assert_no_store(&r);
    }

    // No bearer token: 401 with a bare challenge (RFC 6750 §3.1).
    let basic = e.rs.basic();
    for auth in [None, Some(basic.as_str()), Some("Bearer"), Some("Bearer    "), Some("DPoPx abc")] {
        let r = e.validate(auth, "?required_scope=read").await;
        assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");
        assert_eq!(r.body["error_description"], "an access token is required: Authorization: Bearer <token>");
        assert_eq!(r.header("www-authenticate"), Some(BARE), "{auth:?}");
    }
    // Two Authorization headers.
    let req = Request::get("/validate")
        .header(header::AUTHORIZATION, &bearer)
        .header(header::AUTHORIZATION, &bearer)
        .body(Body::empty())
        .unwrap();
    let r = send(&e.app, req).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(r.body["error_description"], "send exactly one Authorization header");

    // Not valid: 401 invalid_token.
    assert_invalid_token(&e.validate(Some("Bearer not-a-token"), "").await, NOT_VALID);
    assert_invalid_token(&e.validate(Some("Bearer a.b.c"), "").await, NOT_VALID);
    assert_invalid_token(&e.validate(Some(&format!("Bearer {}", foreign(&at).await)), "").await, NOT_VALID);
    assert_invalid_token(&e.validate(Some(&format!("Bearer {rt}")), "").await, NOT_VALID);

    // Valid but not for this request: 403 insufficient_scope.
    assert_forbidden(&e.validate(Some(&bearer), "?required_scope=write").await, NO_SCOPE, Some("write"));
    assert_forbidden(&e.validate(Some(&bearer), "?required_scope=write+read").await, NO_SCOPE, Some("read write"));
    assert_forbidden(&e.validate(Some(&bearer), "?expected_end_user=bob").await, WRONG_USER, None);
    assert_forbidden(&e.validate(Some(&bearer), "?expected_group=family").await, WRONG_GROUP, None);
    // Issued for another resource server (RFC 9068 §4): the token is not valid here, 401.
    let r = e.validate(Some(&bearer), "?expected_audience=https%3A%2F%2Fapi.example.com&required_scope=read").await;
    assert_invalid_token(&r, OTHER_AUDIENCE);
    let r = e.validate(Some(&bearer), &format!("?expected_audience={}", enc(ISSUER))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let cc = common::cc_token(&e.app, &e.cc, "&scope=read").await;
    let r = e.validate(Some(&format!("Bearer {cc}")), "?required_scope=read").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body, active_body(&cc, &e.cc.id, None, "read"));
    assert_forbidden(&e.validate(Some(&format!("Bearer {cc}")), "?expected_end_user=alice").await, WRONG_USER, None);

    // Revoked, expired.
    e.revoke(&at).await;
    assert_invalid_token(&e.validate(Some(&bearer), "").await, REVOKED);
    assert_invalid_token(&e.validate(Some(&bearer), "?required_scope=write").await, REVOKED);
    let at2 = e.access("alice").await;
    e.state.clock.advance(3600);
    assert_invalid_token(&e.validate(Some(&format!("Bearer {at2}")), "").await, EXPIRED);

    // Only GET (and HEAD, which axum answers like GET without a body).
    let r = send(&e.app, form("/validate", Some(&bearer), "")).await;
    assert_error(&r, StatusCode::METHOD_NOT_ALLOWED, "invalid_request");
    assert_eq!(r.header("allow"), Some("GET"));
}

#[tokio::test]
async fn get_validation_answers_as_rfc6750_says() {
    let (store, _dir) = common::embedded();
    get_validation(common::state_on(store)).await;
}

/// The introspect function's own router serves `/validate` (the Lambda has no other).
#[tokio::test]
async fn the_introspect_function_serves_validate() {
    let (state, _dir) = common::embedded_state();
    let router = gatehouse::endpoints::introspect::router(state);
    let r = send(&router, Request::get("/validate").body(Body::empty()).unwrap()).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(r.header("www-authenticate"), Some(BARE));
}

// ---------------------------------------------------------------- audit (EDR 20006)

#[tokio::test]
async fn each_validation_is_audited_with_its_checks() {
    gatehouse::audit::start_capture();
    let (state, _dir) = common::embedded_state();
    let e = env(state).await;
    e.settings(true).await;
    let owner = e.access("family").await;
    let jti = claims(&owner)["jti"].as_str().unwrap().to_owned();
    let lines = |jti: &str| -> Vec<Value> {
        gatehouse::audit::captured()
            .into_iter()
            .filter(|l| l["event_id"] == 20006 && l["jti"] == jti)
            .map(|mut l| {
                for k in ["time", "tenant", "audit"] {
                    l.as_object_mut().unwrap().remove(k);
                }
                l
            })
            .collect()
    };
    e.reason(&owner, "&expected_end_user=bob&required_scope=read+write&expected_group=family").await;
    e.validate(Some(&format!("Bearer {owner}")), "?expected_end_user=carol&required_scope=admin").await;
    e.revoke(&owner).await;
    e.introspect(&owner, "&expected_end_user=bob").await;
    let base = json!({"event_id": 20006, "event": "token_introspected", "jti": jti, "client_id": e.app_client.id,
                      "subject": "family", "client": e.app_client.id, "end_user": "family"});
    let with = |fields: Value| {
        let mut v = base.clone();
        v.as_object_mut().unwrap().extend(fields.as_object().unwrap().clone());
        v
    };
    let check = |c: &str, v: &str, o: &str| json!({"check": c, "value": v, "outcome": o});
    assert_eq!(
        lines(&jti),
        vec![
            with(json!({"endpoint": "introspect", "caller": e.rs.id, "actor": e.rs.id, "active": true,
                "outcome": "success", "reason": null, "checks": [
                check("expected_end_user", "bob", "pass"), check("expected_group", "family", "pass"),
                check("required_scope", "read write", "pass")]})),
            with(json!({"endpoint": "validate", "caller": null, "actor": e.app_client.id, "active": false,
                "outcome": "failure", "reason": "not_a_member", "checks": [
                check("expected_end_user", "carol", "not_a_member"), check("required_scope", "admin", "insufficient_scope")]})),
            with(json!({"endpoint": "introspect", "caller": e.rs.id, "actor": e.rs.id, "active": false,
                "outcome": "failure", "reason": "revoked", "checks": [check("expected_end_user", "bob", "skipped")]})),
        ]
    );
    // A token that is not ours: nothing known about it, and the token itself never logged.
    e.validate(Some("Bearer not-a-token"), "?required_scope=audit-marker").await;
    let line = gatehouse::audit::captured()
        .into_iter()
        .find(|l| l["event_id"] == 20006 && l["checks"][0]["value"] == "audit-marker")
        .unwrap();
    assert_eq!(
        (&line["endpoint"], &line["jti"], &line["client_id"], &line["actor"], &line["subject"], &line["reason"]),
        (&json!("validate"), &json!(null), &json!(null), &json!(null), &json!(null), &json!("invalid"))
    );
    assert_eq!(line["checks"], json!([check("required_scope", "audit-marker", "skipped")]));
    for l in gatehouse::audit::captured() {
        assert!(!l.to_string().contains(&owner) && !l.to_string().contains("not-a-token"), "a token leaked: {l}");
    }
}

// ---------------------------------------------------------------- DynamoDB

/// Runs `suite` on a fresh DynamoDB Local table (skipped without the service).
async fn on_dynamodb<F: std::future::Future<Output = ()>>(suite: impl FnOnce(AppState) -> F) {
    let Some((store, ddb, table)) = common::dynamo().await else { return };
    suite(common::state_on(store)).await;
    ddb.delete_table().table_name(&table).send().await.expect("delete the test table");
}

#[tokio::test]
async fn plain_callers_on_dynamodb() {
    on_dynamodb(plain_callers).await;
}

#[tokio::test]
async fn reasons_on_dynamodb() {
    on_dynamodb(reasons).await;
}

#[tokio::test]
async fn group_owners_on_dynamodb() {
    on_dynamodb(group_owners).await;
}

#[tokio::test]
async fn get_validation_on_dynamodb() {
    on_dynamodb(get_validation).await;
}
