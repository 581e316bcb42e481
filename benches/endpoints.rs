//! In-process benchmarks of the hot endpoints, on the embedded store (SQLite in a temporary
//! directory) and an in-memory ES256 key, through `gatehouse::endpoints::all(state)` exactly
//! as the local server and the Lambda functions route requests (no sockets, no HTTP parsing).
//!
//! Run: `cargo bench --bench endpoints` (about a minute after the build; criterion arguments
//! pass through, e.g. `cargo bench --bench endpoints -- introspect`). Reports and history go
//! to `target/criterion/`.
//!
//! Groups:
//! - `endpoint/token_client_credentials`: `POST /token`, Basic auth, client credentials
//!   (client lookup + secret digest, JWT signing, token record insert, audit line).
//! - `endpoint/introspect_active`: `POST /introspect` of an active token (client lookup +
//!   secret digest, JWT verification, token record read, audit line).
//! - `crypto/sign_access_token`, `crypto/verify_access_token`: the JWT work alone.
//! - `store/put_token`, `store/get_token`: the embedded store's part alone.
//!
//! so `endpoint ≈ crypto + store + routing/parsing/JSON`.
//!
//! The endpoints write one JSON audit line per request to stdout, as in production. To keep
//! criterion's report readable, `main` runs the benchmarks in a child process and drops those
//! lines from its output (the child still pays for formatting and writing them).
use std::io::{BufRead, Write};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine;
use criterion::{Criterion, SamplingMode, Throughput};
use gatehouse::clock::Clock;
use gatehouse::keys::AccessClaims;
use gatehouse::keys::{LocalSigner, Signer};
use gatehouse::model::TokenRecord;
use gatehouse::store::{EmbeddedStore, Store};
use gatehouse::{AppState, Config};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::runtime::Runtime;
use tower::ServiceExt;

const ADMIN: &str = "bench-admin-token-0123456789abcdef0123456789";
const ISSUER: &str = "https://auth.bench.example";
/// Set in the child process that runs the benchmarks.
const CHILD_ENV: &str = "GATEHOUSE_BENCH_CHILD";

/// A state on a fresh embedded store, its router, a registered client-credentials client and
/// one active access token of that client, with its verified claims and stored record.
struct Fixture {
    rt: Runtime,
    state: AppState,
    router: Router,
    basic: String,
    token: String,
    claims: AccessClaims,
    record: TokenRecord,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
        let dir = tempfile::tempdir().expect("temporary directory");
        let config = Config::from_lookup(|k| match k {
            "GATEHOUSE_ISSUER" => Some(ISSUER.into()),
            "GATEHOUSE_ADMIN_TOKEN" => Some(ADMIN.into()),
            "GATEHOUSE_TENANT" => Some("bench".into()),
            _ => None,
        })
        .expect("bench config is valid");
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).expect("embedded store"));
        let signer: Arc<dyn Signer> = Arc::new(LocalSigner::ephemeral());
        let state = AppState::new(config, store, signer, Clock::system());
        let router = gatehouse::endpoints::all(state.clone());

        let (basic, token) = rt.block_on(async {
            let metadata = json!({"grant_types": ["client_credentials"], "scope": "read write"});
            let req = Request::post("/admin/clients")
                .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(metadata.to_string()))
                .unwrap();
            let (status, client) = send(&router, req).await;
            assert_eq!(status, StatusCode::CREATED, "{client}");
            let basic = basic(client["client_id"].as_str().unwrap(), client["client_secret"].as_str().unwrap());

            let (status, body) = send(&router, token_request(&basic)).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let token = body["access_token"].as_str().unwrap().to_owned();

            let (status, body) = send(&router, introspect_request(&basic, &token)).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(body["active"], true, "{body}");
            (basic, token)
        });
        let now = state.clock.now();
        let claims = state.signer.keys().verify_access_token(&token, &state.config.issuer, now).expect("valid token");
        let record = rt.block_on(state.store.get_token(&claims.jti, now)).unwrap().expect("stored token record");
        Self { rt, state, router, basic, token, claims, record, _dir: dir }
    }
}

/// `Authorization: Basic` (RFC 6749 §2.3.1: both parts form-encoded).
fn basic(id: &str, secret: &str) -> String {
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", enc(id), enc(secret))))
}

fn form(path: &str, basic: &str, body: String) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::AUTHORIZATION, basic)
        .body(Body::from(body))
        .unwrap()
}

fn token_request(basic: &str) -> Request<Body> {
    form("/token", basic, "grant_type=client_credentials".to_owned())
}

fn introspect_request(basic: &str, token: &str) -> Request<Body> {
    form("/introspect", basic, format!("token={token}&token_type_hint=access_token"))
}

/// Sends `req` and reads the whole response (status and JSON body).
async fn send(router: &Router, req: Request<Body>) -> (StatusCode, Value) {
    let (status, bytes) = send_raw(router, req).await;
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// Sends `req` and reads the whole body, as a client would.
async fn send_raw(router: &Router, req: Request<Body>) -> (StatusCode, axum::body::Bytes) {
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    (status, resp.into_body().collect().await.unwrap().to_bytes())
}

fn endpoints(c: &mut Criterion) {
    let f = Fixture::new();
    let mut g = c.benchmark_group("endpoint");
    g.throughput(Throughput::Elements(1)).sampling_mode(SamplingMode::Flat);

    g.bench_function("token_client_credentials", |b| {
        b.to_async(&f.rt).iter(|| async {
            let (status, body) = send_raw(&f.router, token_request(&f.basic)).await;
            assert_eq!(status, StatusCode::OK);
            body
        })
    });

    g.bench_function("introspect_active", |b| {
        b.to_async(&f.rt).iter(|| async {
            let (status, body) = send_raw(&f.router, introspect_request(&f.basic, &f.token)).await;
            assert_eq!(status, StatusCode::OK);
            debug_assert!(body.starts_with(b"{\"active\":true"));
            body
        })
    });
    g.finish();
}

fn crypto(c: &mut Criterion) {
    let f = Fixture::new();
    let mut g = c.benchmark_group("crypto");
    g.throughput(Throughput::Elements(1));

    // The claims the token endpoint signs, with a fresh `jti`.
    let mut claims = f.claims.clone();
    claims.jti = gatehouse::crypto::random_id();
    let claims = serde_json::to_value(&claims).unwrap();
    g.bench_function("sign_access_token", |b| {
        b.to_async(&f.rt).iter(|| async { f.state.signer.sign("at+jwt", &claims).await.unwrap() })
    });

    let keys = f.state.signer.keys();
    let issuer = f.state.config.issuer.as_str();
    let now = f.state.clock.now();
    assert!(keys.verify_access_token(&f.token, issuer, now).is_some());
    g.bench_function("verify_access_token", |b| {
        b.iter(|| keys.verify_access_token(std::hint::black_box(&f.token), issuer, now).unwrap())
    });
    g.finish();
}

fn store(c: &mut Criterion) {
    let f = Fixture::new();
    let mut g = c.benchmark_group("store");
    g.throughput(Throughput::Elements(1)).sampling_mode(SamplingMode::Flat);

    // Copies of a real access-token record under fresh ids.
    let fresh = || TokenRecord { id: gatehouse::crypto::random_id(), ..f.record.clone() };
    let store = &f.state.store;
    g.bench_function("put_token", |b| {
        b.to_async(&f.rt).iter_batched(
            fresh,
            |r| async move { store.put_token(&r).await.unwrap() },
            criterion::BatchSize::SmallInput,
        )
    });

    let now = f.state.clock.now();
    g.bench_function("get_token", |b| {
        b.to_async(&f.rt).iter(|| async { store.get_token(&f.record.id, now).await.unwrap().unwrap() })
    });
    g.finish();
}

fn config() -> Criterion {
    // Modest budget: the whole run takes about a minute on a small machine.
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .nresamples(20_000)
        .without_plots()
        .configure_from_args()
}

/// Runs the benchmarks (in the child process).
fn run_benches() {
    let mut c = config();
    endpoints(&mut c);
    crypto(&mut c);
    store(&mut c);
    c.final_summary();
}

/// Re-runs this binary with the same arguments and forwards its output, minus audit lines.
fn main() -> ExitCode {
    if std::env::var_os(CHILD_ENV).is_some() {
        run_benches();
        return ExitCode::SUCCESS;
    }
    let exe = std::env::current_exe().expect("current executable");
    let mut child = Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(CHILD_ENV, "1")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the benchmark process");
    let child_out = std::io::BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut out = std::io::stdout().lock();
    let mut dropped = 0u64;
    for line in child_out.lines() {
        let line = line.expect("read benchmark output");
        // Audit lines are the only JSON objects on stdout (serde_json orders their keys).
        if line.starts_with('{') && line.contains("\"audit\":true") {
            dropped += 1;
        } else {
            let _ = writeln!(out, "{line}");
        }
    }
    let status = child.wait().expect("wait for the benchmark process");
    if dropped > 0 {
        eprintln!("({dropped} audit lines from the endpoints were not shown)");
    }
    if status.success() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
