//! The client-credentials flow end to end through each function's own router (the Lambda
//! hosts), on every store and signer; and the real local-server binary, configured only by
//! environment variables, on the embedded store and on the AWS emulators.
use std::io::{Read, Write};
use std::sync::Arc;

use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use axum::http::StatusCode;
use gatehouse::AppState;
use gatehouse::endpoints::{introspect, revoke, token, token_admin};
use gatehouse::keys::{KeyRing, KeyUse, LocalSigner};
use serde_json::{Value, json};

use crate::common::{self, admin, form, send};

/// Register (token-admin) → token (token) → JWKS (token) → introspect → revoke → introspect.
async fn flow(state: AppState) {
    let (admin_fn, token_fn) = (token_admin::router(state.clone()), token::router(state.clone()));
    let (introspect_fn, revoke_fn) = (introspect::router(state.clone()), revoke::router(state.clone()));
    let meta = json!({"client_name": "flow", "grant_types": ["client_credentials"], "scope": "read write"});
    let c = common::register(&admin_fn, meta).await;
    let r = send(&token_fn, form("/token", Some(&c.basic()), "grant_type=client_credentials&scope=read")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let at = r.body["access_token"].as_str().unwrap().to_owned();
    let jwks =
        send(&token_fn, axum::http::Request::get("/.well-known/jwks.json").body(Default::default()).unwrap()).await;
    assert!(jwks.body["keys"].as_array().unwrap().iter().any(|k| k["kid"] == state.signer.kid()));
    let i = send(&introspect_fn, form("/introspect", Some(&c.basic()), &format!("token={at}"))).await;
    assert_eq!((i.body["active"].clone(), i.body["sub"].clone()), (json!(true), json!(c.id)));
    let n = send(&admin_fn, admin("GET", &format!("/admin/tokens/count?type=access&client_id={}", c.id), None)).await;
    assert_eq!(n.body, json!({"count": 1}));
    let rv = send(&revoke_fn, form("/revoke", Some(&c.basic()), &format!("token={at}"))).await;
    assert_eq!(rv.status, StatusCode::OK);
    let i = send(&introspect_fn, form("/introspect", Some(&c.basic()), &format!("token={at}"))).await;
    assert_eq!(i.body, json!({"active": false}));
    let n = send(&admin_fn, admin("GET", &format!("/admin/tokens/count?type=access&client_id={}", c.id), None)).await;
    assert_eq!(n.body, json!({"count": 0}));
}

#[tokio::test]
async fn embedded_store_local_signer() {
    let (state, _dir) = common::embedded_state();
    flow(state).await;
}

#[tokio::test]
async fn dynamodb_local_signer() {
    let Some((store, _, _)) = common::dynamo().await else { return };
    flow(common::state_with(store, Arc::new(LocalSigner::ephemeral()))).await;
}

async fn kms_flow(spec: KeySpec) {
    let (Some((store, _, _)), Some(kms)) = (common::dynamo().await, common::kms().await) else { return };
    let key = common::kms_key(&kms, spec, KeyUsageType::SignVerify).await;
    let ring = KeyRing::kms(kms, key, store.clone(), KeyUse::Sign, common::T0).await.unwrap();
    flow(common::state_with(store, Arc::new(ring))).await;
}

#[tokio::test]
async fn dynamodb_kms_signer_es256() {
    kms_flow(KeySpec::EccNistP256).await;
}

#[tokio::test]
async fn dynamodb_kms_signer_rs256() {
    kms_flow(KeySpec::Rsa2048).await;
}

#[tokio::test]
async fn dynamodb_sealed_signer() {
    let (Some((store, _, _)), Some(kms)) = (common::dynamo().await, common::kms().await) else { return };
    let seal = common::kms_key(&kms, KeySpec::SymmetricDefault, KeyUsageType::EncryptDecrypt).await;
    let signer = KeyRing::sealed(kms, seal, "test", store.clone(), KeyUse::Sign, common::T0).await.unwrap();
    flow(common::state_with(store, Arc::new(signer))).await;
}

/// A running local server process.
struct Server {
    child: std::process::Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `target/.../gatehouse` with exactly `env` (plus PATH) and waits until it answers.
fn start(env: &[(&str, String)]) -> Server {
    let (child, addr) = crate::common::spawn_local_server(|addr| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"));
        cmd.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).env("GATEHOUSE_ADDR", addr);
        cmd.env("GATEHOUSE_LOG", "warn").stdout(std::process::Stdio::null()).stderr(std::process::Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    });
    Server { child, addr }
}

/// One HTTP/1.1 request over a fresh connection; returns status and JSON body.
fn call(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, Value) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

/// Creates a client on a running server and returns (id, secret).
fn create_client(addr: &str, admin_token: &str) -> (String, String) {
    let auth = format!("Bearer {admin_token}");
    let body = r#"{"grant_types":["client_credentials"],"scope":"read"}"#;
    let (status, c) =
        call(addr, "POST", "/admin/clients", &[("Authorization", &auth), ("Content-Type", "application/json")], body);
    assert_eq!(status, 201, "{c}");
    (c["client_id"].as_str().unwrap().into(), c["client_secret"].as_str().unwrap().into())
}

fn token_and_introspect(addr: &str, id: &str, secret: &str) -> Value {
    let auth = common::basic(id, secret);
    let (status, t) = call(addr, "POST", "/token", &[("Authorization", &auth), FORM], "grant_type=client_credentials");
    assert_eq!(status, 200, "{t}");
    let at = t["access_token"].as_str().unwrap();
    let (_, i) = call(addr, "POST", "/introspect", &[("Authorization", &auth), FORM], &format!("token={at}"));
    i
}

#[test]
fn local_server_keeps_its_data_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("GATEHOUSE_DATA_DIR", dir.path().display().to_string())];
    let (id, secret, admin_token) = {
        let server = start(&env);
        let admin_token = std::fs::read_to_string(dir.path().join("admin-token")).unwrap();
        let (id, secret) = create_client(&server.addr, &admin_token);
        assert_eq!(token_and_introspect(&server.addr, &id, &secret)["active"], true);
        (id, secret, admin_token)
    };
    let server = start(&env);
    assert_eq!(std::fs::read_to_string(dir.path().join("admin-token")).unwrap(), admin_token, "admin token kept");
    assert_eq!(token_and_introspect(&server.addr, &id, &secret)["active"], true, "client and key kept");
    let (status, _) = call(&server.addr, "GET", "/admin/clients/x", &[("Authorization", "Bearer wrong")], "");
    assert_eq!(status, 401);
}

/// The local server makes its data directory private (0700) and its admin token file 0600,
/// refuses to start with a token file too short to keep (rather than replace it), and never
/// prints the token: stdout carries the audit lines, which a log collector keeps. The banner names the file instead; with
/// `GATEHOUSE_ADMIN_TOKEN`, the variable.
#[cfg(unix)]
#[test]
fn local_server_keeps_its_admin_token_private() {
    use std::os::unix::fs::PermissionsExt;

    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let top = tempfile::tempdir().unwrap();
    let dir = top.path().join("new").join("data");
    let run = |env: &[(&str, String)]| {
        let out = top.path().join("stdout");
        let (mut child, _) = crate::common::spawn_local_server(|addr| {
            let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"));
            cmd.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).env("GATEHOUSE_ADDR", addr);
            cmd.env("GATEHOUSE_LOG", "warn").env("GATEHOUSE_DATA_DIR", &dir);
            cmd.stdout(std::fs::File::create(&out).unwrap()).stderr(std::process::Stdio::inherit());
            for (k, v) in env {
                cmd.env(k, v);
            }
            cmd
        });
        let _ = child.kill();
        let _ = child.wait();
        std::fs::read_to_string(&out).unwrap()
    };
    let banner = run(&[]);
    let token = std::fs::read_to_string(dir.join("admin-token")).unwrap();
    assert!(token.len() >= 32);
    assert!(!banner.contains(&token), "{banner}");
    assert!(banner.contains(&format!("Admin API token: in {} (mode 0600)", dir.join("admin-token").display())));
    assert!(banner.contains(&format!("Bearer $(cat {})", dir.join("admin-token").display())), "{banner}");
    assert_eq!((mode(&dir), mode(dir.parent().unwrap()), mode(&dir.join("admin-token"))), (0o700, 0o700, 0o600));
    // A token file too short to keep: the server does not start, and says why (not what the
    // file holds); the file is left as it was.
    std::fs::write(dir.join("admin-token"), "tiny").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GATEHOUSE_ADDR", "127.0.0.1:0")
        .env("GATEHOUSE_LOG", "warn")
        .env("GATEHOUSE_DATA_DIR", &dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("holds fewer than 32 characters") && !stderr.contains("tiny"), "{stderr}");
    assert_eq!(std::fs::read_to_string(dir.join("admin-token")).unwrap(), "tiny");
    // From the environment: named, not printed.
    let secret = gatehouse::crypto::random_token();
    let banner = run(&[("GATEHOUSE_ADMIN_TOKEN", secret.clone())]);
    assert!(!banner.contains(&secret), "{banner}");
    assert!(banner.contains("Admin API token: GATEHOUSE_ADMIN_TOKEN"), "{banner}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_server_on_dynamodb_and_sealed_kms_via_standard_aws_variables() {
    let (Some((_, _, table)), Some(kms)) = (common::dynamo().await, common::kms().await) else { return };
    let seal = common::kms_key(&kms, KeySpec::SymmetricDefault, KeyUsageType::EncryptDecrypt).await;
    let admin_token = gatehouse::crypto::random_token();
    let env = [
        ("GATEHOUSE_STORE", "dynamodb".to_owned()),
        ("GATEHOUSE_TABLE_NAME", table),
        ("GATEHOUSE_SIGNER", "sealed".to_owned()),
        ("GATEHOUSE_KMS_KEY_ID", seal),
        ("GATEHOUSE_ADMIN_TOKEN", admin_token.clone()),
        ("GATEHOUSE_TENANT", "acme".to_owned()),
        ("AWS_ENDPOINT_URL_DYNAMODB", std::env::var("GATEHOUSE_TEST_DYNAMODB_URL").unwrap()),
        ("AWS_ENDPOINT_URL_KMS", std::env::var("GATEHOUSE_TEST_KMS_URL").unwrap()),
        ("AWS_ACCESS_KEY_ID", "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
    ];
    let introspected = tokio::task::spawn_blocking(move || {
        let server = start(&env);
        let (id, secret) = create_client(&server.addr, &admin_token);
        token_and_introspect(&server.addr, &id, &secret)
    })
    .await
    .unwrap();
    assert_eq!(introspected["active"], true, "{introspected}");
}

#[test]
fn bad_configuration_fails_fast_naming_the_variable() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .env_clear()
        .env("GATEHOUSE_STORE", "redis")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("GATEHOUSE_STORE"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `SIGTERM` makes the local server finish and write the 20002 audit line (the functions do the
/// same through `gatehouse::lifecycle`; its Extensions API exchange is unit-tested there).
#[cfg(unix)]
#[test]
fn sigterm_writes_the_service_stopped_audit_line() {
    let dir = tempfile::tempdir().unwrap();
    let (child, _) = common::spawn_local_server(|addr| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("GATEHOUSE_ADDR", addr)
            .env("GATEHOUSE_DATA_DIR", dir.path())
            .env("GATEHOUSE_LOG", "warn")
            .stdout(std::process::Stdio::piped());
        cmd
    });
    let kill = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}", out.status);
    let lines: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let events: Vec<(&str, u64)> =
        lines.iter().filter_map(|l| Some((l["event"].as_str()?, l["event_id"].as_u64()?))).collect();
    assert_eq!(events, [("service_started", 20001), ("service_stopped", 20002)]);
    assert_eq!(lines.last().unwrap()["component"], "local-server");
}
