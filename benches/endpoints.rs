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
//! - `endpoint/introspect_refresh`: `POST /introspect` of an active refresh token (opaque:
//!   digest, record read).
//! - `endpoint/validate`: `GET /validate` with `Authorization: Bearer` (JWT verification, token
//!   record read; no client authentication).
//! - `endpoint/token_code_exchange`: `POST /token`, `authorization_code` with PKCE S256, each
//!   iteration a fresh code (written to the store outside the timed part, as `/authorize`
//!   writes it): the user's status read, one signature (the refresh token is opaque), code
//!   redemption and both token records in one transaction.
//! - `endpoint/token_refresh`: `POST /token`, `refresh_token`, each iteration spending the
//!   refresh token the previous one earned (rotation in one transaction).
//! - `crypto/sign_access_token`, `crypto/verify_access_token` (a token verified before: the
//!   key set's cache), `crypto/verify_access_token_uncached` (the ECDSA verification): the JWT
//!   work alone.
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
use gatehouse::model::{AuthorizationCode, Client, TokenRecord};
use gatehouse::store::{EmbeddedStore, Store};
use gatehouse::{AppState, Config};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::runtime::Runtime;
use tower::ServiceExt;

/// The local server's allocator (src/main.rs), so in-process numbers compare with it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// A confidential authorization-code client (Basic) with refresh tokens, and its user.
    code_basic: String,
    code_client: Client,
    /// An active refresh token of `code_client` (introspected, never spent).
    refresh: String,
    _dir: tempfile::TempDir,
}

const REDIRECT_URI: &str = "https://app.bench.example/cb";
const USERNAME: &str = "bench-user";
const VERIFIER: &str = "bench-verifier-0123456789abcdefghijklmnopqrstuvwxyz";

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

        let (code_basic, code_client, refresh) = rt.block_on(async {
            let metadata = json!({"grant_types": ["authorization_code", "refresh_token"],
                "redirect_uris": [REDIRECT_URI], "scope": "read write"});
            let (status, client) = send(&router, admin_post("/admin/clients", &metadata)).await;
            assert_eq!(status, StatusCode::CREATED, "{client}");
            let user = json!({"username": USERNAME, "password": "bench passphrase 0123456789"});
            let (status, body) = send(&router, admin_post("/admin/users", &user)).await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            let id = client["client_id"].as_str().unwrap();
            let code_basic = self::basic(id, client["client_secret"].as_str().unwrap());
            let code_client = state.store.get_client(id).await.unwrap().unwrap();
            let code = mint_code(&state, &code_client).await;
            let (status, body) = send(&router, exchange_request(&code_basic, &code)).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let refresh = body["refresh_token"].as_str().unwrap().to_owned();
            let req = form("/introspect", &code_basic, format!("token={refresh}&token_type_hint=refresh_token"));
            let (status, body) = send(&router, req).await;
            assert_eq!((status, &body["active"]), (StatusCode::OK, &json!(true)), "{body}");
            (code_basic, code_client, refresh)
        });
        Self { rt, state, router, basic, token, claims, record, code_basic, code_client, refresh, _dir: dir }
    }
}

fn admin_post(path: &str, body: &Value) -> Request<Body> {
    Request::post(path)
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

/// Stores a fresh code as `/authorize` does after sign-in and consent (endpoints::authorize):
/// the grant it decides for a request without `scope`/`resource`, PKCE S256 of [`VERIFIER`].
async fn mint_code(state: &AppState, client: &Client) -> String {
    let grant = gatehouse::grants::decide_grant(state, client, None, None).await.unwrap();
    let code = gatehouse::crypto::opaque_token();
    let now = state.clock.now();
    let record = AuthorizationCode {
        id: gatehouse::crypto::opaque_token_id(&code),
        client_id: client.client_id.clone(),
        redirect_uri: REDIRECT_URI.to_owned(),
        redirect_uri_in_request: true,
        username: USERNAME.to_owned(),
        scope: grant.scope,
        audience: grant.audience,
        code_challenge: Some(gatehouse::crypto::b64url(Sha256::digest(VERIFIER.as_bytes()))),
        dpop_jkt: None,
        family: gatehouse::crypto::time_ordered_id(),
        issued_at: now,
        signed_in_at: Some(now),
        expires_at: now + 600,
        consumed_at: None,
        issued: vec![],
    };
    state.store.put_code(&record).await.unwrap();
    code
}

fn exchange_request(basic: &str, code: &str) -> Request<Body> {
    let body =
        format!("grant_type=authorization_code&code={code}&redirect_uri={REDIRECT_URI}&code_verifier={VERIFIER}");
    form("/token", basic, body)
}

fn refresh_request(basic: &str, refresh: &str) -> Request<Body> {
    form("/token", basic, format!("grant_type=refresh_token&refresh_token={refresh}"))
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

    let refresh_body = format!("token={}&token_type_hint=refresh_token", f.refresh);
    g.bench_function("introspect_refresh", |b| {
        b.to_async(&f.rt).iter(|| async {
            let (status, body) = send_raw(&f.router, form("/introspect", &f.code_basic, refresh_body.clone())).await;
            assert_eq!(status, StatusCode::OK);
            debug_assert!(body.starts_with(b"{\"active\":true"));
            body
        })
    });

    let bearer = format!("Bearer {}", f.token);
    g.bench_function("validate", |b| {
        b.to_async(&f.rt).iter(|| async {
            let req = Request::get("/validate").header(header::AUTHORIZATION, &bearer).body(Body::empty()).unwrap();
            let (status, body) = send_raw(&f.router, req).await;
            assert_eq!(status, StatusCode::OK);
            body
        })
    });

    g.bench_function("token_code_exchange", |b| {
        b.to_async(&f.rt).iter_batched(
            // Criterion calls this inside the runtime's `block_on`: a plain executor waits for it
            // (the embedded store's work runs on tokio's blocking pool, not on this thread).
            || futures::executor::block_on(mint_code(&f.state, &f.code_client)),
            |code| {
                let (router, req) = (&f.router, exchange_request(&f.code_basic, &code));
                async move {
                    let (status, body) = send_raw(router, req).await;
                    assert_eq!(status, StatusCode::OK);
                    body
                }
            },
            criterion::BatchSize::SmallInput,
        )
    });

    // A chain of rotations: each iteration spends the refresh token the previous one earned.
    let first = f.rt.block_on(async {
        let code = mint_code(&f.state, &f.code_client).await;
        let (status, body) = send(&f.router, exchange_request(&f.code_basic, &code)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["refresh_token"].as_str().unwrap().to_owned()
    });
    let current = std::sync::Mutex::new(first);
    g.bench_function("token_refresh", |b| {
        b.to_async(&f.rt).iter(|| async {
            let spend = current.lock().unwrap().clone();
            let (status, body) = send(&f.router, refresh_request(&f.code_basic, &spend)).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            *current.lock().unwrap() = body["refresh_token"].as_str().unwrap().to_owned();
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
    // The ECDSA verification itself: tokens never verified before (the key set remembers the
    // tokens it verified, so the benchmark above measures that cache). 8192 distinct tokens,
    // twice the cache's size, cycled.
    let fresh: Vec<String> = f.rt.block_on(async {
        let mut out = Vec::with_capacity(8192);
        for _ in 0..8192 {
            let mut c = f.claims.clone();
            c.jti = gatehouse::crypto::random_id();
            out.push(f.state.signer.sign("at+jwt", &serde_json::to_value(&c).unwrap()).await.unwrap());
        }
        out
    });
    let mut next = 0usize;
    g.bench_function("verify_access_token_uncached", |b| {
        b.iter(|| {
            next = (next + 1) % fresh.len();
            keys.verify_access_token(std::hint::black_box(&fresh[next]), issuer, now).unwrap()
        })
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
