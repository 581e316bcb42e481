//! Round trips per request on a warm function (issue 7, item 2): the state is assembled exactly
//! as the Lambda functions assemble it (`AppState::build_on`, the body of `AppState::from_env`)
//! on DynamoDB Local and moto's KMS, with a `CallCounter` interceptor on its own SDK clients,
//! and every DynamoDB and KMS call of one request is asserted by operation, in order.
//!
//! "Warm" means the caches hold what the request needs: the client (`cache::CLIENT_TTL`), the
//! resource server (`cache::RESOURCE_SERVER_TTL`), the settings (`settings::SETTINGS_TTL`) and
//! the key ring (`keys::RELOAD_INTERVAL`). Each expiry costs one read (the ring: one Query, and
//! in kms mode one `GetPublicKey` of the alias), asserted too.
//!
//! The second half: what the caches mean when an admin changes a client or a resource server on
//! one instance (token-admin) while another (token) holds a copy: new credentials work at once
//! everywhere, old ones stop within `CLIENT_TTL`, resource servers within their TTL.
use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use gatehouse::AppState;
use gatehouse::cache::{CLIENT_TTL, RESOURCE_SERVER_TTL};
use gatehouse::clock::Clock;
use gatehouse::keys::{KeyUse, RELOAD_INTERVAL};
use gatehouse::metrics::{CallCounter, WriteRecorder};
use gatehouse::settings::SETTINGS_TTL;
use gatehouse::state::AwsClients;
use serde_json::json;

use crate::code_flow::{
    PASSWORD, REDIRECT, code_from, create_user, decide, enc, open, pkce_query, public_client, resource_server, sign_in,
};
use crate::common::{self, Resp, T0, TestClient, form, send};

const API: &str = "https://api.example.com";

// The calls, as `Service:Operation`.
const GET: &str = "DynamoDB:GetItem";
const PUT: &str = "DynamoDB:PutItem";
const UPDATE: &str = "DynamoDB:UpdateItem";
const QUERY: &str = "DynamoDB:Query";
const DELETE: &str = "DynamoDB:DeleteItem";
const TRANSACT: &str = "DynamoDB:TransactWriteItems";
const SIGN: &str = "KMS:Sign";
const GET_PUBLIC_KEY: &str = "KMS:GetPublicKey";

/// One function instance of a tenant stack on the emulators, every SDK call counted.
struct Instance {
    app: Router,
    calls: CallCounter,
    /// Every DynamoDB write, as IAM authorizes it.
    writes: WriteRecorder,
}

/// The signer mode and its KMS key (created in moto).
#[derive(Clone)]
struct Stack {
    signer: &'static str,
    table: String,
    kms_key: String,
}

impl Stack {
    async fn new(signer: &'static str) -> Option<Self> {
        let (Some((_, _, table)), Some(kms)) = (common::dynamo().await, common::kms().await) else { return None };
        let (spec, usage) = match signer {
            "sealed" => (KeySpec::SymmetricDefault, KeyUsageType::EncryptDecrypt),
            _ => (KeySpec::EccNistP256, KeyUsageType::SignVerify),
        };
        let kms_key = common::kms_key(&kms, spec, usage).await;
        Some(Self { signer, table, kms_key })
    }

    /// A cold start of a function that signs (`Sign`: token) or only verifies (`Verify`:
    /// introspect, revoke, authorize, token-admin), sharing `clock` with the others.
    async fn start(&self, key_use: KeyUse, clock: &Clock) -> Instance {
        let (calls, writes) = (CallCounter::default(), WriteRecorder::default());
        let env = |v: &str| std::env::var(v).expect("checked by common::dynamo and common::kms");
        let ddb = common::sdk_config(&env("GATEHOUSE_TEST_DYNAMODB_URL")).await;
        let kms = common::sdk_config(&env("GATEHOUSE_TEST_KMS_URL")).await;
        let aws = AwsClients {
            dynamodb: AwsClients::new(&ddb, &[calls.interceptor(), writes.interceptor()]).dynamodb,
            kms: AwsClients::new(&kms, &[calls.interceptor()]).kms,
        };
        let config = common::stack_config(&self.table, self.signer, &self.kms_key);
        let state = AppState::build_on(config, key_use, Some(aws), clock.clone()).await.unwrap();
        let app = common::app(&state);
        Instance { app, calls, writes }
    }
}

impl Instance {
    /// The calls made since the last look.
    fn calls(&self) -> Vec<String> {
        self.calls.take().into_iter().map(|(service, op)| format!("{service}:{op}")).collect()
    }

    /// Sends `req`: the response and the calls it made.
    async fn send(&self, req: Request<Body>) -> (Resp, Vec<String>) {
        self.calls();
        let r = send(&self.app, req).await;
        (r, self.calls())
    }

    async fn cc_token(&self, c: &TestClient, extra: &str) -> (String, Vec<String>) {
        let (r, calls) = self.send(cc(c, extra)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        (r.body["access_token"].as_str().unwrap().to_owned(), calls)
    }
}

fn cc(c: &TestClient, extra: &str) -> Request<Body> {
    form("/token", Some(&c.basic()), &format!("grant_type=client_credentials{extra}"))
}

fn introspect(caller: &TestClient, token: &str) -> Request<Body> {
    form("/introspect", Some(&caller.basic()), &format!("token={}", enc(token)))
}

fn validate(token: &str) -> Request<Body> {
    Request::get("/validate").header(header::AUTHORIZATION, format!("Bearer {token}")).body(Body::empty()).unwrap()
}

fn revoke(c: &TestClient, token: &str) -> Request<Body> {
    form("/revoke", Some(&c.basic()), &format!("token={}", enc(token)))
}

fn refresh(c: &TestClient, token: &str) -> Request<Body> {
    form("/token", None, &format!("grant_type=refresh_token&refresh_token={}&client_id={}", enc(token), enc(&c.id)))
}

/// The resource server `API`, the user alice (with a `department`), a confidential
/// client-credentials client (it also introspects) and a public code-flow client whose tokens
/// carry alice's department (a dynamic claim: the user the grant reads anyway supplies it, no
/// second read), through the admin API.
async fn setup(i: &Instance) -> (TestClient, TestClient) {
    resource_server(&i.app).await;
    create_user(&i.app, "alice", PASSWORD).await;
    let attributes = json!({"attributes": {"department": "ops"}});
    let r = send(&i.app, common::admin("PATCH", "/admin/users/alice", Some(attributes))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let m2m = common::cc_client(&i.app).await;
    let public = public_client(&i.app).await;
    let claims = json!({"custom_claims": [{"name": "dept", "attribute": "department"}]});
    let r = send(&i.app, common::admin("PATCH", &format!("/admin/clients/{}", public.id), Some(claims))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    (m2m, public)
}

/// `a` then `b`.
fn then(a: &[&'static str], b: &[&'static str]) -> Vec<&'static str> {
    [a, b].concat()
}

/// A cold start's calls: the key ring's `ring`, in order, and `reads` `GetItem`s (the settings;
/// in a signing function then the default audience's resource server), which run alongside the
/// ring (`AppState::build_on`), so at any position between its calls.
fn assert_cold_start(calls: Vec<String>, ring: &[&str], reads: usize, what: &str) {
    let (gets, rest): (Vec<&String>, Vec<&String>) = calls.iter().partition(|c| *c == GET);
    assert_eq!(gets.len(), reads, "{what}: the reads alongside the ring: {calls:?}");
    assert_eq!(rest, ring, "{what}: the ring's calls, in order: {calls:?}");
}

/// Every endpoint's calls on a warm instance of `signer`'s mode; `sign` is what signing one
/// access token costs in KMS calls.
async fn endpoint_counts(signer: &'static str, sign: &[&'static str]) {
    let Some(stack) = Stack::new(signer).await else { return };
    let clock = Clock::manual(T0);
    let i = stack.start(KeyUse::Sign, &clock).await;
    // A new tenant's first cold start: the (empty) ring, its first key joined (sealed: generated
    // and sealed by `Encrypt`; kms: the alias's public key; stored with its `kid` marker in one
    // transaction), the ring again, the signing key loaded (sealed: `Decrypt`); alongside, the
    // settings and the resource server of the default audience (none: the absence is cached too).
    let first_key: &[&str] = match signer {
        "kms" => &[QUERY, GET_PUBLIC_KEY, TRANSACT, QUERY],
        _ => &[QUERY, "KMS:Encrypt", TRANSACT, QUERY, "KMS:Decrypt"],
    };
    assert_cold_start(i.calls(), first_key, 2, "cold start");
    let (m2m, public) = setup(&i).await;
    let issue = then(sign, &[PUT]);

    // Client credentials: the first request after the client was registered reads it (the
    // resource server of the default audience was read at the cold start); warm: one write,
    // and no KMS call in sealed mode (kms mode: one Sign).
    let (_, calls) = i.cc_token(&m2m, "").await;
    assert_eq!(calls, then(&[GET], &issue), "client credentials, first use of the client");
    let (at, calls) = i.cc_token(&m2m, "").await;
    assert_eq!(calls, issue, "client credentials, warm");
    // With a resource (RFC 8707): the resource server is read once, then cached.
    let resource = format!("&resource={}", enc(API));
    let (_, calls) = i.cc_token(&m2m, &resource).await;
    assert_eq!(calls, then(&[GET], &issue), "client credentials, first use of the resource");
    let (_, calls) = i.cc_token(&m2m, &resource).await;
    assert_eq!(calls, issue, "client credentials with a resource, warm");

    // Introspection of a JWT and GET /validate: the token's record, nothing else.
    let (r, calls) = i.send(introspect(&m2m, &at)).await;
    assert_eq!((&r.body["active"], calls), (&json!(true), vec![GET.to_owned()]), "introspection (JWT)");
    let (r, calls) = i.send(validate(&at)).await;
    assert_eq!((r.status, calls), (StatusCode::OK, vec![GET.to_owned()]), "GET /validate");
    // Revocation of an access token: its record, then the conditional update.
    let (r, calls) = i.send(revoke(&m2m, &at)).await;
    assert_eq!((r.status, calls), (StatusCode::OK, vec![GET.to_owned(), UPDATE.to_owned()]), "revocation (JWT)");
    let (r, calls) = i.send(introspect(&m2m, &at)).await;
    assert_eq!((&r.body, calls), (&json!({"active": false}), vec![GET.to_owned()]), "introspection (revoked)");

    // The authorization-code flow through the authorize function's pages.
    i.calls();
    let page = open(&i.app, &pkce_query(&public.id, &format!("&scope=read&resource={}", enc(API)))).await;
    let authorize = i.calls();
    let r = sign_in(&i.app, &page, "alice", PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "the consent page: {}", r.text);
    let login = i.calls();
    let code = code_from(&decide(&i.app, &page, "approve").await);
    let consent = i.calls();
    assert_eq!(authorize, [GET, PUT], "GET /authorize: the client (first use), the pending request");
    // Sign-in: the pending request, the lockout counter (none), the user; the attempt counted
    // before the password check (no live counter: the update's condition fails, then a new
    // one is put) and cleared after its success; the user read again (a revocation or a
    // deletion during the password hashing ends the sign-in), a prior consent, the pending
    // request updated, the resource servers (scope descriptions).
    assert_eq!(login, [GET, GET, GET, UPDATE, PUT, DELETE, GET, GET, PUT, QUERY], "POST /authorize/login");
    // Consent: the pending request, the user (still there, and created before its prior
    // consent), the prior consent, the consent stored (before the code: a failure leaves the
    // pending request for another try), the pending request consumed (a one-action
    // transaction: its idempotency token answers a retried attempt as the first), the code
    // stored.
    assert_eq!(consent, [GET, GET, GET, PUT, TRANSACT, PUT], "POST /authorize/consent");
    // Code exchange: the code, the resource owner (still enabled?), then one transaction that
    // consumes the code and stores both tokens.
    let (r, calls) = i.send(exchange_code(&public, &code)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(crate::code_flow::claims(r.body["access_token"].as_str().unwrap())["dept"], "ops", "the dynamic claim");
    let exchange = then(&[GET, GET], &then(sign, &[TRANSACT]));
    assert_eq!(calls, exchange, "code exchange");
    // Refresh: the refresh token's record, the resource owner, one transaction (rotation).
    let rt = r.body["refresh_token"].as_str().unwrap().to_owned();
    let (r, calls) = i.send(refresh(&public, &rt)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(calls, exchange, "refresh");
    let rt = r.body["refresh_token"].as_str().unwrap().to_owned();
    // Introspection of a refresh token: its record.
    let (r, calls) = i.send(introspect(&m2m, &rt)).await;
    assert_eq!((&r.body["active"], calls), (&json!(true), vec![GET.to_owned()]), "introspection (refresh)");
    // Revocation of a refresh token: its record, its family's active tokens (one Query), and
    // one conditional update per active token of the family (here three: the refresh token and
    // the access tokens of the exchange and of the refresh).
    let (r, calls) = i.send(public_revoke(&public, &rt)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(calls, [GET, QUERY, UPDATE, UPDATE, UPDATE], "revocation (refresh token)");

    // The caches expire. At T0 + CLIENT_TTL: the client is read again, once.
    clock.advance(CLIENT_TTL);
    let (at, calls) = i.cc_token(&m2m, "").await;
    assert_eq!(calls, then(&[GET], &issue), "the client, once per CLIENT_TTL");
    let (_, calls) = i.cc_token(&m2m, "").await;
    assert_eq!(calls, issue);
    // At T0 + SETTINGS_TTL (= RESOURCE_SERVER_TTL): the client (read at T0 + CLIENT_TTL), the
    // settings and the resource server are read again.
    assert_eq!((SETTINGS_TTL, RESOURCE_SERVER_TTL, CLIENT_TTL), (30, 30, 10));
    clock.advance(SETTINGS_TTL - CLIENT_TTL);
    let (_, calls) = i.cc_token(&m2m, &resource).await;
    assert_eq!(calls, then(&[GET, GET, GET], &issue), "client, settings, resource server");
    let (_, calls) = i.cc_token(&m2m, &resource).await;
    assert_eq!(calls, issue);
    // At T0 + RELOAD_INTERVAL: the client, the settings, the (absent) resource server of the
    // default audience (last read at T0), and the key ring (one Query; kms mode: plus
    // `GetPublicKey` of the alias, which may have moved to a new key).
    clock.advance(RELOAD_INTERVAL - SETTINGS_TTL);
    let (_, calls) = i.cc_token(&m2m, "").await;
    let reload: &[&str] = if signer == "kms" { &[QUERY, GET_PUBLIC_KEY] } else { &[QUERY] };
    assert_eq!(calls, then(&then(&[GET, GET, GET], reload), &issue), "client, settings, audience, key ring");
    let (_, calls) = i.cc_token(&m2m, "").await;
    assert_eq!(calls, issue);
    let (r, calls) = i.send(introspect(&m2m, &at)).await;
    assert_eq!((&r.body["active"], calls), (&json!(true), vec![GET.to_owned()]));
}

fn exchange_code(c: &TestClient, code: &str) -> Request<Body> {
    let body = format!(
        "grant_type=authorization_code&code={}&redirect_uri={}&client_id={}&code_verifier={}",
        enc(code),
        enc(REDIRECT),
        enc(&c.id),
        crate::code_flow::VERIFIER
    );
    form("/token", None, &body)
}

fn public_revoke(c: &TestClient, token: &str) -> Request<Body> {
    form("/revoke", None, &format!("token={}&client_id={}", enc(token), enc(&c.id)))
}

#[tokio::test]
async fn sealed_mode_round_trips() {
    endpoint_counts("sealed", &[]).await;
}

#[tokio::test]
async fn kms_mode_round_trips() {
    endpoint_counts("kms", &[SIGN]).await;
}

/// A verifying function (introspect, revoke, authorize, token-admin) never calls KMS: its ring
/// is read from the table at the cold start and once per RELOAD_INTERVAL.
#[tokio::test]
async fn verifying_functions_never_call_kms() {
    for signer in ["sealed", "kms"] {
        let Some(stack) = Stack::new(signer).await else { return };
        let clock = Clock::manual(T0);
        let token_fn = stack.start(KeyUse::Sign, &clock).await;
        let (m2m, _) = setup(&token_fn).await;
        let (at, _) = token_fn.cc_token(&m2m, "").await;
        let introspect_fn = stack.start(KeyUse::Verify, &clock).await;
        assert_cold_start(introspect_fn.calls(), &[QUERY], 1, &format!("{signer}: cold start: the ring, the settings"));
        let (r, calls) = introspect_fn.send(introspect(&m2m, &at)).await;
        assert_eq!(r.body["active"], true, "{}", r.text);
        assert_eq!(calls, [GET, GET], "{signer}: the caller (first use), the token");
        let (_, calls) = introspect_fn.send(introspect(&m2m, &at)).await;
        assert_eq!(calls, [GET], "{signer}: warm");
        clock.advance(RELOAD_INTERVAL);
        let (r, calls) = introspect_fn.send(validate(&at)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(calls, [QUERY, GET, GET], "{signer}: the ring, the token, its client (expired)");
    }
}

// ---------------------------------------------------------------- writes vs the template's roles

/// Whether `role` (a template `AWS::IAM::Role`) allows the DynamoDB `action` on the table item
/// whose partition key is `pk`: an Allow statement naming the action on the table, with no
/// condition or a `dynamodb:LeadingKeys` condition one of whose patterns matches `pk` (`*` at
/// the end only, as the template writes them). Any other condition counts as not allowing.
fn role_allows(role: &serde_json::Value, action: &str, pk: &str) -> bool {
    let action = format!("dynamodb:{action}");
    let listed = |v: &serde_json::Value| match v {
        serde_json::Value::Array(a) => a.clone(),
        other => vec![other.clone()],
    };
    role["Properties"]["Policies"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["PolicyDocument"]["Statement"].as_array().unwrap().clone())
        .filter(|s| s["Effect"] == "Allow")
        .filter(|s| listed(&s["Action"]).iter().any(|a| *a == json!(action)))
        .filter(|s| listed(&s["Resource"]).iter().any(|r| *r == json!({"Fn::GetAtt": ["Table", "Arn"]})))
        .any(|s| match s.get("Condition") {
            None => true,
            Some(c) => {
                let c = c.as_object().unwrap();
                let (op, keys) = c.iter().next().unwrap();
                let patterns = &keys["dynamodb:LeadingKeys"];
                c.len() == 1
                    && ["ForAllValues:StringLike", "ForAllValues:StringEquals"].contains(&op.as_str())
                    && keys.as_object().unwrap().len() == 1
                    && listed(patterns).iter().filter_map(|p| p.as_str()).any(|p| match p.strip_suffix('*') {
                        Some(prefix) if op.ends_with("StringLike") => pk.starts_with(prefix),
                        _ => p == pk,
                    })
            }
        })
}

/// The emulators do not enforce IAM, so a write the template's role does not allow would pass
/// every other test and fail in AWS. Here the flows each function serves run on DynamoDB Local,
/// every write (per item, as IAM authorizes a transaction) is recorded with its partition key,
/// and each must be allowed by the role of the function that made it: a new tenant's first
/// cold start (the signing key), client credentials (with DPoP), the password grant to a lock
/// and a success, sign-in and consent pages (a wrong password, a consent), code exchange, code
/// replay, refresh, refresh-token reuse, revocation, DPoP at `/validate`.
#[tokio::test]
async fn every_write_is_allowed_by_the_role_of_the_function_that_makes_it() {
    use std::collections::BTreeSet;

    use crate::code_flow::{exchange_public, sign_in};
    use crate::dpop::{DpopKey, token_request};

    let Some(stack) = Stack::new("sealed").await else { return };
    let clock = Clock::manual(T0);
    let i = stack.start(KeyUse::Sign, &clock).await;
    let mut seen: BTreeSet<(&str, String, String)> = BTreeSet::new();
    let mut record = |function: &'static str, i: &Instance| {
        seen.extend(i.writes.take().into_iter().map(|(action, pk)| (function, action, pk)));
    };
    record("token", &i); // the cold start: the tenant's first signing key
    let (m2m, public) = setup(&i).await;
    let _ = i.writes.take(); // token-admin may write anything in the table

    let (_, _) = i.cc_token(&m2m, "").await;
    let key = DpopKey::new();
    let proof = key.proof_at("POST", "https://auth.test.example/token", clock.now(), json!({}));
    let r = send(&i.app, token_request(Some(&m2m.basic()), "grant_type=client_credentials", &[&proof])).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let bound = r.body["access_token"].as_str().unwrap().to_owned();
    record("token", &i);
    let pw = common::register(&i.app, json!({"grant_types": ["password", "refresh_token"], "scope": "read"})).await;
    let _ = i.writes.take();
    let grant = |password: &str| {
        form("/token", Some(&pw.basic()), &format!("grant_type=password&username=alice&password={}", enc(password)))
    };
    for _ in 0..5 {
        assert_eq!(send(&i.app, grant("a wrong password")).await.status, StatusCode::BAD_REQUEST);
    }
    clock.advance(901);
    let r = send(&i.app, grant(PASSWORD)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    record("token", &i);

    // The pages: a wrong password, then the right one and the consent.
    let page = open(&i.app, &pkce_query(&public.id, &format!("&scope=read&resource={}", enc(API)))).await;
    assert_eq!(sign_in(&i.app, &page, "alice", "a wrong password").await.status, StatusCode::OK);
    assert_eq!(sign_in(&i.app, &page, "alice", PASSWORD).await.status, StatusCode::OK);
    let code = code_from(&decide(&i.app, &page, "approve").await);
    record("authorize", &i);
    let r = exchange_public(&i.app, &public, &code).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(exchange_public(&i.app, &public, &code).await.status, StatusCode::BAD_REQUEST, "a replay");
    record("token", &i);
    let code = crate::code_flow::code_for(&i.app, &pkce_query(&public.id, ""), "alice", PASSWORD).await;
    record("authorize", &i);
    let first = exchange_public(&i.app, &public, &code).await.body;
    let rt = first["refresh_token"].as_str().unwrap().to_owned();
    let (r, _) = i.send(refresh(&public, &rt)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let newer = r.body["refresh_token"].as_str().unwrap().to_owned();
    clock.advance(60);
    let (r, _) = i.send(refresh(&public, &rt)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "reuse: {}", r.text);
    record("token", &i);

    let code = crate::code_flow::code_for(&i.app, &pkce_query(&public.id, ""), "alice", PASSWORD).await;
    record("authorize", &i);
    let rt = exchange_public(&i.app, &public, &code).await.body["refresh_token"].as_str().unwrap().to_owned();
    record("token", &i);
    let (r, _) = i.send(public_revoke(&public, &rt)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    record("revoke", &i);
    assert!(!newer.is_empty());

    // A resource server forwards the client's request to it (`htm`, `htu`) with its proof.
    let resource = "https://api.example.com/photos";
    let proof = key.proof_at("GET", resource, clock.now(), json!({"ath": gatehouse::crypto::digest(&bound)}));
    let req = Request::get(format!("/validate?htm=GET&htu={}", enc(resource)))
        .header(header::AUTHORIZATION, format!("DPoP {bound}"))
        .header("DPoP", proof)
        .body(Body::empty())
        .unwrap();
    let r = send(&i.app, req).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    record("introspect", &i);

    let t = crate::infra::template();
    let roles = crate::infra::resources(&t);
    let role = |function: &str| match function {
        "token" => &roles["TokenRole"],
        "introspect" => &roles["IntrospectRole"],
        "revoke" => &roles["RevokeRole"],
        "authorize" => &roles["AuthorizeRole"],
        other => panic!("{other}"),
    };
    let refused: Vec<_> = seen.iter().filter(|(f, action, pk)| !role_allows(role(f), action, pk)).collect();
    assert!(refused.is_empty(), "writes the roles do not allow: {refused:#?}\nall writes: {seen:#?}");
}

// ---------------------------------------------------------------- propagation between instances

/// Two warm instances of one tenant (say token-admin and token) on one store and clock: each
/// has its own caches.
fn two_instances() -> (Router, Router, AppState, tempfile::TempDir) {
    let (store, dir) = common::embedded();
    let admin_state = common::state_on(store.clone());
    let other = AppState::new(common::config(), store, admin_state.signer.clone(), admin_state.clock.clone());
    (common::app(&admin_state), common::app(&other), admin_state, dir)
}

/// `POST /admin/clients/{id}/secret` with an overlap.
fn rotate(id: &str, overlap: i64) -> Request<Body> {
    common::admin("POST", &format!("/admin/clients/{id}/secret"), Some(json!({"overlap_seconds": overlap})))
}

/// A rotated secret works on every instance at once (a refusal re-reads the client); the
/// previous one works until the overlap ends, exactly; without an overlap, other warm instances
/// accept the previous secret for at most CLIENT_TTL.
#[tokio::test]
async fn secret_rotation_reaches_other_instances() {
    let (admin_fn, token_fn, state, _dir) = two_instances();
    let clock = &state.clock;
    let c = common::cc_client(&admin_fn).await;
    let with = |secret: &str| TestClient { id: c.id.clone(), secret: Some(secret.to_owned()) };
    let status = |r: Resp| r.status;
    let s1 = with(c.secret.as_deref().unwrap());
    assert_eq!(status(send(&token_fn, cc(&s1, "")).await), StatusCode::OK, "the token function caches the client");

    let r = send(&admin_fn, rotate(&c.id, 60)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let s2 = with(r.body["client_secret"].as_str().unwrap());
    let overlap_end = r.body["previous_secret_expires_at"].as_i64().unwrap();
    clock.advance(1);
    assert_eq!(status(send(&token_fn, cc(&s2, "")).await), StatusCode::OK, "the new secret works at once");
    assert_eq!(status(send(&token_fn, cc(&s1, "")).await), StatusCode::OK, "the previous one during the overlap");
    clock.advance(overlap_end - 5 - clock.now());
    assert_eq!(status(send(&token_fn, cc(&s1, "")).await), StatusCode::OK, "read again 5 s before the end");
    clock.advance(5);
    let r = send(&token_fn, cc(&s1, "")).await;
    common::assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_client");
    assert_eq!(status(send(&token_fn, cc(&s2, "")).await), StatusCode::OK);

    // Without an overlap: the admin instance refuses the previous secret at once; another warm
    // instance's copy (read just now) accepts it until CLIENT_TTL after that read.
    let r = send(&admin_fn, rotate(&c.id, 0)).await;
    let s3 = with(r.body["client_secret"].as_str().unwrap());
    let r = send(&admin_fn, cc(&s2, "")).await;
    common::assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_client");
    assert_eq!(status(send(&token_fn, cc(&s2, "")).await), StatusCode::OK, "a stale copy, for at most CLIENT_TTL");
    clock.advance(CLIENT_TTL);
    let r = send(&token_fn, cc(&s2, "")).await;
    common::assert_error(&r, StatusCode::UNAUTHORIZED, "invalid_client");
    assert_eq!(status(send(&token_fn, cc(&s3, "")).await), StatusCode::OK);
}

/// A deleted client: refused at once by the admin instance, within CLIENT_TTL by the others;
/// a token another instance issued from its stale copy is never active once that instance
/// knows (its client no longer exists, though the deletion's revocation could not see it).
#[tokio::test]
async fn a_deleted_client_is_refused_within_the_ttl() {
    let (admin_fn, token_fn, state, _dir) = two_instances();
    let c = common::cc_client(&admin_fn).await;
    common::cc_token(&token_fn, &c, "").await;
    let r = send(&admin_fn, common::admin("DELETE", &format!("/admin/clients/{}", c.id), None)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    common::assert_error(&send(&admin_fn, cc(&c, "")).await, StatusCode::UNAUTHORIZED, "invalid_client");
    let late = common::cc_token(&token_fn, &c, "").await;
    assert_eq!(send(&token_fn, validate(&late)).await.status, StatusCode::OK, "the stale instance's view");
    let r = send(&admin_fn, validate(&late)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "not active where the deletion is known: {}", r.text);
    state.clock.advance(CLIENT_TTL);
    common::assert_error(&send(&token_fn, cc(&c, "")).await, StatusCode::UNAUTHORIZED, "invalid_client");
    assert_eq!(send(&token_fn, validate(&late)).await.status, StatusCode::UNAUTHORIZED);
}

/// A resource server registered after an instance cached its absence: the admin instance knows
/// it at once, the others within RESOURCE_SERVER_TTL.
#[tokio::test]
async fn a_new_resource_server_reaches_other_instances_within_the_ttl() {
    let (admin_fn, token_fn, state, _dir) = two_instances();
    let c = common::cc_client(&admin_fn).await;
    let resource = format!("&resource={}", enc(API));
    common::assert_error(&send(&token_fn, cc(&c, &resource)).await, StatusCode::BAD_REQUEST, "invalid_target");
    resource_server(&admin_fn).await;
    assert_eq!(send(&admin_fn, cc(&c, &resource)).await.status, StatusCode::OK, "at once where it was made");
    common::assert_error(&send(&token_fn, cc(&c, &resource)).await, StatusCode::BAD_REQUEST, "invalid_target");
    state.clock.advance(RESOURCE_SERVER_TTL);
    assert_eq!(send(&token_fn, cc(&c, &resource)).await.status, StatusCode::OK, "within RESOURCE_SERVER_TTL");
}

/// A `private_key_jwt` key added on the admin instance is accepted by the others at once; a key
/// removed stops working on them within CLIENT_TTL.
#[tokio::test]
async fn a_new_client_key_works_on_other_instances_at_once() {
    use crate::jwt_bearer::{ISSUER, TestKey, jti};
    let (admin_fn, token_fn, state, _dir) = two_instances();
    let (k1, k2) = (TestKey::ec("k1"), TestKey::ec("k2"));
    let metadata = json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt",
                          "jwks": {"keys": [k1.jwk]}});
    let r = send(&admin_fn, common::admin("POST", "/admin/clients", Some(metadata))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.body["client_id"].as_str().unwrap().to_owned();
    let token = |key: &TestKey| {
        let now = state.clock.now();
        let claims = json!({"iss": id, "sub": id, "aud": ISSUER, "exp": now + 60, "jti": jti()});
        let body = format!(
            "grant_type=client_credentials&client_assertion_type={}&client_assertion={}",
            enc("urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            enc(&key.sign(&claims))
        );
        form("/token", None, &body)
    };
    assert_eq!(send(&token_fn, token(&k1)).await.status, StatusCode::OK, "the token function caches the client");
    let path = format!("/admin/clients/{id}");
    let r = send(&admin_fn, common::admin("PATCH", &path, Some(json!({"jwks": {"keys": [k1.jwk, k2.jwk]}})))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    state.clock.advance(1);
    assert_eq!(send(&token_fn, token(&k2)).await.status, StatusCode::OK, "the new key works at once");
    let r = send(&admin_fn, common::admin("PATCH", &path, Some(json!({"jwks": {"keys": [k2.jwk]}})))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    common::assert_error(&send(&admin_fn, token(&k1)).await, StatusCode::BAD_REQUEST, "invalid_client");
    assert_eq!(send(&token_fn, token(&k1)).await.status, StatusCode::OK, "a stale copy, for at most CLIENT_TTL");
    state.clock.advance(CLIENT_TTL);
    common::assert_error(&send(&token_fn, token(&k1)).await, StatusCode::BAD_REQUEST, "invalid_client");
    assert_eq!(send(&token_fn, token(&k2)).await.status, StatusCode::OK);
}
