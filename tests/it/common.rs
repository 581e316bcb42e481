//! Test harness: states on every backend, requests through the routers, response parsing.
#![allow(dead_code)]
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use base64::Engine;
use gatehouse::clock::Clock;
use gatehouse::keys::{LocalSigner, Signer};
use gatehouse::store::{DynamoStore, EmbeddedStore, Store};
use gatehouse::{AppState, Config};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// The admin token every test state accepts.
pub const ADMIN: &str = "test-admin-token-0123456789abcdef0123456789";
/// A fixed start time for manual clocks: 2100-01-01T00:00:00Z. In the future on purpose:
/// DynamoDB Local's TTL sweeper deletes items whose `ttl` has passed within seconds.
pub const T0: i64 = 4_102_444_800;

/// The settings every test configuration has: the test issuer, admin token and tenant.
fn test_setting(name: &str) -> Option<String> {
    match name {
        "GATEHOUSE_ISSUER" => Some("https://auth.test.example".into()),
        "GATEHOUSE_ADMIN_TOKEN" => Some(ADMIN.into()),
        "GATEHOUSE_TENANT" => Some("test".into()),
        _ => None,
    }
}

/// A configuration for tests: loopback issuer, the test admin token, no AWS.
pub fn config() -> Config {
    Config::from_lookup(test_setting).expect("test config is valid")
}

/// The configuration a tenant stack gives a function, with the test settings: DynamoDB table
/// `table`, signer mode `signer` and KMS key `kms_key`.
pub fn stack_config(table: &str, signer: &str, kms_key: &str) -> Config {
    Config::from_lookup(|k| match k {
        "GATEHOUSE_STORE" => Some("dynamodb".into()),
        "GATEHOUSE_TABLE_NAME" => Some(table.into()),
        "GATEHOUSE_SIGNER" => Some(signer.into()),
        "GATEHOUSE_KMS_KEY_ID" => Some(kms_key.into()),
        _ => test_setting(k),
    })
    .expect("stack config is valid")
}

/// A fresh embedded store in a temporary directory (kept alive by the returned guard).
pub fn embedded() -> (Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (Arc::new(EmbeddedStore::open(dir.path()).unwrap()), dir)
}

fn service_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if std::env::var("GATEHOUSE_TEST_REQUIRE_SERVICES").is_ok_and(|v| v == "1") => {
            panic!("{var} is not set but GATEHOUSE_TEST_REQUIRE_SERVICES=1: start the services with scripts/test.sh")
        }
        _ => {
            eprintln!("skipping: {var} is not set (run scripts/test.sh for the full suite)");
            None
        }
    }
}

/// SDK configuration pointing at a loopback emulator, with dummy credentials (requests are
/// still SigV4-signed, as the emulators require).
pub async fn sdk_config(url: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "tests"))
        .load()
        .await
}

/// A DynamoDB store on a fresh table in DynamoDB Local, or `None` when the service is absent.
pub async fn dynamo() -> Option<(Arc<dyn Store>, aws_sdk_dynamodb::Client, String)> {
    let url = service_url("GATEHOUSE_TEST_DYNAMODB_URL")?;
    let ddb = aws_sdk_dynamodb::Client::new(&sdk_config(&url).await);
    let table = format!("gatehouse-test-{}", gatehouse::crypto::random_id().replace(['-', '_'], "x"));
    gatehouse::store::dynamo::create_table(&ddb, &table).await.expect("create the test table");
    Some((Arc::new(DynamoStore::new(ddb.clone(), table.clone())), ddb, table))
}

/// A KMS client on moto's server, or `None` when the service is absent.
pub async fn kms() -> Option<aws_sdk_kms::Client> {
    let url = service_url("GATEHOUSE_TEST_KMS_URL")?;
    Some(aws_sdk_kms::Client::new(&sdk_config(&url).await))
}

/// Creates a KMS key of `spec` and `usage` in moto.
pub async fn kms_key(
    kms: &aws_sdk_kms::Client,
    spec: aws_sdk_kms::types::KeySpec,
    usage: aws_sdk_kms::types::KeyUsageType,
) -> String {
    let out = kms.create_key().key_spec(spec).key_usage(usage).send().await.expect("moto create_key");
    out.key_metadata.unwrap().key_id
}

/// A state on `store` with an in-memory local key and a manual clock at [`T0`].
pub fn state_on(store: Arc<dyn Store>) -> AppState {
    state_with(store, Arc::new(LocalSigner::ephemeral()))
}

/// A state on `store` with `signer` and a manual clock at [`T0`].
pub fn state_with(store: Arc<dyn Store>, signer: Arc<dyn Signer>) -> AppState {
    AppState::new(config(), store, signer, Clock::manual(T0))
}

/// A state on a fresh embedded store (guard keeps the directory alive).
pub fn embedded_state() -> (AppState, tempfile::TempDir) {
    let (store, dir) = embedded();
    (state_on(store), dir)
}

/// The all-in-one router for `state`.
pub fn app(state: &AppState) -> Router {
    gatehouse::endpoints::all(state.clone())
}

/// A response, read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Resp {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Sends `req` through `router`.
pub async fn send(router: &Router, req: Request<Body>) -> Resp {
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Resp { status, headers, body, text }
}

/// `Authorization: Basic` for a client (RFC 6749 §2.3.1 form-encoding of both parts).
pub fn basic(id: &str, secret: &str) -> String {
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", enc(id), enc(secret))))
}

/// A form POST, optionally with an Authorization header.
pub fn form(path: &str, auth: Option<&str>, body: &str) -> Request<Body> {
    let mut b = Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(a) = auth {
        b = b.header(header::AUTHORIZATION, a);
    }
    b.body(Body::from(body.to_owned())).unwrap()
}

/// An admin JSON request with the test admin token.
pub fn admin(method: &str, path: &str, body: Option<Value>) -> Request<Body> {
    let b = Request::builder().method(method).uri(path).header(header::AUTHORIZATION, format!("Bearer {ADMIN}"));
    match body {
        Some(v) => b.header(header::CONTENT_TYPE, "application/json").body(Body::from(v.to_string())).unwrap(),
        None => b.body(Body::empty()).unwrap(),
    }
}

/// A registered client: id and secret (if confidential).
#[derive(Debug, Clone)]
pub struct TestClient {
    pub id: String,
    pub secret: Option<String>,
}

impl TestClient {
    /// Its Basic authorization header.
    pub fn basic(&self) -> String {
        basic(&self.id, self.secret.as_deref().unwrap_or(""))
    }
}

/// Registers a client through the admin API.
pub async fn register(router: &Router, metadata: Value) -> TestClient {
    let r = send(router, admin("POST", "/admin/clients", Some(metadata))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    TestClient {
        id: r.body["client_id"].as_str().unwrap().to_owned(),
        secret: r.body["client_secret"].as_str().map(str::to_owned),
    }
}

/// A confidential client-credentials client with scopes `read write`.
pub async fn cc_client(router: &Router) -> TestClient {
    register(router, serde_json::json!({"grant_types": ["client_credentials"], "scope": "read write"})).await
}

/// Gets an access token by client credentials; panics unless 200.
pub async fn cc_token(router: &Router, c: &TestClient, extra: &str) -> String {
    let r = send(router, form("/token", Some(&c.basic()), &format!("grant_type=client_credentials{extra}"))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["access_token"].as_str().unwrap().to_owned()
}

/// Asserts an OAuth error response exactly: status, body and the no-store headers.
pub fn assert_error(r: &Resp, status: StatusCode, code: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.body["error"], code, "{}", r.text);
    assert!(r.body["error_description"].is_string(), "{}", r.text);
    assert_eq!(r.body.as_object().unwrap().len(), 2, "only error and error_description: {}", r.text);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("pragma"), Some("no-cache"));
    assert_eq!(r.header("content-type"), Some("application/json"));
}

/// A free loopback port: bound to port 0 and released. Another process can take it before the
/// caller binds it; [`spawn_local_server`] copes with that.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts the local server binary and waits until it answers HTTP on its address; returns the
/// process and the address (`127.0.0.1:port`).
///
/// `command(addr)` builds the command (environment, stdio) for a server listening on `addr`.
/// Ready means the *server* answered `GET /.well-known/oauth-authorization-server` with a 200,
/// not merely that a TCP connection opened: a connection can succeed without the server — a
/// connect to a port in the ephemeral range may connect to itself (TCP simultaneous open)
/// before anything listens, or another test may hold the port for a moment. If the server exits
/// during start-up (the port taken between [`free_port`] and its bind), it is started again on
/// another port, up to three times.
pub fn spawn_local_server(mut command: impl FnMut(&str) -> std::process::Command) -> (std::process::Child, String) {
    let mut last_exit = None;
    for _ in 0..3 {
        let addr = format!("127.0.0.1:{}", free_port());
        let mut child = command(&addr).spawn().expect("start the local server");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                last_exit = Some(status);
                break;
            }
            if answers_metadata(&addr) {
                return (child, addr);
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the local server did not answer on {addr}");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    panic!("the local server exited during start-up three times; last: {last_exit:?}");
}

/// Whether an HTTP server on `addr` answers the metadata document with a 200.
fn answers_metadata(addr: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else { return false };
    let timeout = Some(std::time::Duration::from_secs(2));
    let _ = (s.set_read_timeout(timeout), s.set_write_timeout(timeout));
    let request =
        format!("GET /.well-known/oauth-authorization-server HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let mut head = [0u8; 12];
    s.write_all(request.as_bytes()).is_ok() && s.read_exact(&mut head).is_ok() && head == *b"HTTP/1.1 200"
}
