//! 200 concurrent requests on the real local server (issue 7, item 5): the `gatehouse` binary on
//! the embedded store with the local signer, on a free loopback port, driven over plain HTTP/1.1
//! (one connection per request). In every round the 200 requests are connected first and
//! released together by a barrier. No request may fail for a reason other than the ones the
//! RFCs require (no 5xx, no dropped connection); a code is redeemed once (RFC 6749 §4.1.2) and a
//! refresh token rotated once (RFC 9700 §4.14.2); the server is still running at the end.
//!
//! No timing is asserted (the machine is shared): the timeouts only guard against hangs, and
//! the refresh grace window is set to its maximum so that no answer depends on how long the
//! round takes.
use std::collections::HashSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::code_flow::{CHALLENGE, PASSWORD, REDIRECT, VERIFIER, csrf_of, enc};
use crate::common::{ADMIN, basic};

/// Requests per round.
const N: usize = 200;
/// A hang guard per request, not a timing assertion.
const HANG: Duration = Duration::from_secs(180);

// ---------------------------------------------------------------- the server

/// A running local server with its own data directory; its stdout (the audit lines) in a file.
struct Server {
    child: Child,
    addr: String,
    stdout: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let stdout = dir.path().join("stdout.log");
        let (child, addr) = crate::common::spawn_local_server(|addr| {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
            cmd.env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("GATEHOUSE_ADDR", addr)
                .env("GATEHOUSE_DATA_DIR", dir.path().join("data"))
                .env("GATEHOUSE_ADMIN_TOKEN", ADMIN)
                .env("GATEHOUSE_REFRESH_GRACE", "300")
                .env("GATEHOUSE_LOG", "warn")
                .stdout(Stdio::from(std::fs::File::create(&stdout).unwrap()))
                .stderr(Stdio::inherit());
            cmd
        });
        Self { child, addr, stdout, _dir: dir }
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// The audit lines of `event` written so far.
    fn audit(&self, event: &str) -> Vec<Value> {
        std::fs::read_to_string(&self.stdout)
            .unwrap()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l["audit"] == true && l["event"] == event)
            .collect()
    }

    async fn send(&self, req: Req) -> Reply {
        let mut s = TcpStream::connect(&self.addr).await.unwrap();
        exchange(&mut s, &req.bytes(&self.addr)).await
    }

    /// Sends every request on its own connection: all connect first, then a barrier releases
    /// them together. The answers in request order.
    async fn concurrently(&self, reqs: Vec<Req>) -> Vec<Reply> {
        let barrier = Arc::new(tokio::sync::Barrier::new(reqs.len()));
        let tasks: Vec<_> = reqs
            .into_iter()
            .map(|req| {
                let (addr, barrier) = (self.addr.clone(), barrier.clone());
                tokio::spawn(async move {
                    let bytes = req.bytes(&addr);
                    let mut s = TcpStream::connect(&addr).await.unwrap_or_else(|e| panic!("connect: {e}"));
                    tokio::time::timeout(HANG, barrier.wait()).await.expect("every request connected");
                    exchange(&mut s, &bytes).await
                })
            })
            .collect();
        let mut replies = Vec::new();
        for t in tasks {
            replies.push(t.await.unwrap());
        }
        assert!(replies.iter().all(|r| r.status < 500), "no 5xx: {:?}", replies.iter().find(|r| r.status >= 500));
        replies
    }

    fn admin(&self, method: &'static str, path: &str, body: Option<Value>) -> Req {
        let mut r = Req::new(method, path).header("Authorization", &format!("Bearer {ADMIN}"));
        if let Some(b) = body {
            r = r.header("Content-Type", "application/json");
            r.body = b.to_string();
        }
        r
    }

    async fn register(&self, metadata: Value) -> (String, String) {
        let r = self.send(self.admin("POST", "/admin/clients", Some(metadata))).await;
        assert_eq!(r.status, 201, "{}", r.body);
        let id = r.json["client_id"].as_str().unwrap().to_owned();
        (id, r.json["client_secret"].as_str().unwrap_or("").to_owned())
    }

    async fn count(&self, query: &str) -> u64 {
        let r = self.send(self.admin("GET", &format!("/admin/tokens/count?{query}"), None)).await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.json["count"].as_u64().unwrap()
    }
}

// ---------------------------------------------------------------- plain HTTP/1.1

/// A request (sent with `Connection: close`).
#[derive(Clone)]
struct Req {
    method: &'static str,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Req {
    fn new(method: &'static str, path: &str) -> Self {
        Self { method, path: path.to_owned(), headers: Vec::new(), body: String::new() }
    }

    fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// A form POST.
    fn form(path: &str, body: &str) -> Self {
        let mut r = Self::new("POST", path).header("Content-Type", "application/x-www-form-urlencoded");
        r.body = body.to_owned();
        r
    }

    fn bytes(&self, addr: &str) -> Vec<u8> {
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.method,
            self.path,
            self.body.len()
        );
        for (k, v) in &self.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        [head.into_bytes(), self.body.clone().into_bytes()].concat()
    }
}

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
    json: Value,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn str(&self, member: &str) -> String {
        self.json[member].as_str().unwrap_or_else(|| panic!("no {member} in {}", self.body)).to_owned()
    }
}

/// Writes a request and reads the whole answer (the server closes the connection).
async fn exchange(s: &mut TcpStream, request: &[u8]) -> Reply {
    let io = async {
        s.write_all(request).await?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await?;
        Ok::<_, std::io::Error>(out)
    };
    let raw = tokio::time::timeout(HANG, io).await.expect("a hang").expect("the connection failed");
    let text = String::from_utf8(raw).expect("a UTF-8 answer");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no head in {text:?}"));
    let mut lines = head.lines();
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())).collect();
    let chunked = headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v == "chunked");
    let body = if chunked { unchunk(body) } else { body.to_owned() };
    let json = serde_json::from_str(&body).unwrap_or(Value::Null);
    Reply { status, headers, body, json }
}

fn unchunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        if n == 0 {
            break;
        }
        out.push_str(&after[..n]);
        rest = &after[n + 2..];
    }
    out
}

// ---------------------------------------------------------------- OAuth requests

fn client_credentials(id: &str, secret: &str) -> Req {
    Req::form("/token", "grant_type=client_credentials").header("Authorization", &basic(id, secret))
}

fn introspect(id: &str, secret: &str, token: &str) -> Req {
    Req::form("/introspect", &format!("token={}", enc(token))).header("Authorization", &basic(id, secret))
}

fn validate(token: &str) -> Req {
    Req::new("GET", "/validate").header("Authorization", &format!("Bearer {token}"))
}

fn revoke(id: &str, secret: &str, token: &str) -> Req {
    Req::form("/revoke", &format!("token={}", enc(token))).header("Authorization", &basic(id, secret))
}

/// A 200 token response with the no-store headers.
fn assert_tokens(r: &Reply) {
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("cache-control"), Some("no-store"), "{:?}", r.headers);
    assert_eq!(r.json["token_type"], "Bearer", "{}", r.body);
}

/// An RFC 6749 §5.2 error, exactly.
fn assert_error(r: &Reply, status: u16, code: &str, description: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.json, json!({"error": code, "error_description": description}));
    assert_eq!(r.header("cache-control"), Some("no-store"));
}

/// Issues `n` client-credentials tokens (concurrently): the access tokens.
async fn issue(server: &Server, id: &str, secret: &str, n: usize) -> Vec<String> {
    let replies = server.concurrently(vec![client_credentials(id, secret); n]).await;
    replies
        .iter()
        .map(|r| {
            assert_tokens(r);
            r.str("access_token")
        })
        .collect()
}

/// Asserts `active` for every token, introspected concurrently.
async fn assert_all_active(server: &Server, caller: &(String, String), tokens: &[String], active: bool) {
    let reqs = tokens.iter().map(|t| introspect(&caller.0, &caller.1, t)).collect();
    for r in server.concurrently(reqs).await {
        assert_eq!(r.status, 200, "{}", r.body);
        if active {
            assert_eq!(r.json["active"], true, "{}", r.body);
        } else {
            assert_eq!(r.json, json!({"active": false}));
        }
    }
}

/// The browser flow over HTTP: the sign-in page, sign-in, consent, the code (RFC 7636 S256).
async fn code_for(server: &Server, client_id: &str, username: &str) -> String {
    let query = format!(
        "response_type=code&client_id={}&redirect_uri={}&state=xyz&code_challenge={CHALLENGE}&code_challenge_method=S256",
        enc(client_id),
        enc(REDIRECT)
    );
    let page = server.send(Req::new("GET", &format!("/authorize?{query}"))).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let cookie = page.header("set-cookie").unwrap().split(';').next().unwrap().to_owned();
    let csrf = csrf_of(&page.body);
    let login = format!("csrf={}&username={}&password={}", enc(&csrf), enc(username), enc(PASSWORD));
    let r = server.send(Req::form("/authorize/login", &login).header("Cookie", &cookie)).await;
    let r = if r.status == 200 {
        let consent = format!("csrf={}&decision=approve", enc(&csrf));
        server.send(Req::form("/authorize/consent", &consent).header("Cookie", &cookie)).await
    } else {
        r
    };
    assert_eq!(r.status, 303, "{}", r.body);
    let location = r.header("location").unwrap();
    let (base, q) = location.split_once('?').unwrap();
    assert_eq!(base, REDIRECT);
    form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "code").unwrap().1.into_owned()
}

async fn create_user(server: &Server, username: &str) {
    let body = json!({"username": username, "password": PASSWORD});
    let r = server.send(server.admin("POST", "/admin/users", Some(body))).await;
    assert_eq!(r.status, 201, "{}", r.body);
}

// ---------------------------------------------------------------- the rounds

/// (a) 200 client-credentials requests: 200 × 200 with 200 distinct tokens, each active (200
/// concurrent introspections), each stored; (b) 200 concurrent introspections of one token and
/// 200 `GET /validate` of it: all active.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_token_requests_and_introspections() {
    let mut server = Server::start().await;
    let m2m = server.register(json!({"grant_types": ["client_credentials"], "scope": "read write"})).await;
    let rs = server.register(json!({"grant_types": ["client_credentials"]})).await;

    let tokens = issue(&server, &m2m.0, &m2m.1, N).await;
    let distinct: HashSet<&String> = tokens.iter().collect();
    assert_eq!(distinct.len(), N, "distinct tokens");
    let jtis: HashSet<String> =
        tokens.iter().map(|t| crate::code_flow::claims(t)["jti"].as_str().unwrap().to_owned()).collect();
    assert_eq!(jtis.len(), N, "distinct jti");
    assert_all_active(&server, &rs, &tokens, true).await;
    assert_eq!(server.count(&format!("type=access&client_id={}", enc(&m2m.0))).await, N as u64);

    let one = &tokens[0];
    assert_all_active(&server, &rs, &vec![one.clone(); N], true).await;
    let replies = server.concurrently(vec![validate(one); N]).await;
    for r in &replies {
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!((&r.json["active"], &r.json["client_id"]), (&json!(true), &json!(m2m.0)), "{}", r.body);
    }
    assert!(server.alive(), "the server is still running");
}

/// (c) One authorization code redeemed by 200 concurrent requests: exactly one 200; the other
/// 199 are 400 `invalid_grant` (a replay, RFC 6749 §4.1.2), and the replays revoke the tokens
/// issued with the code: at the end neither the access nor the refresh token is active, each
/// revoked once (the replays' audit lines count two revocations in all).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_code_redeemed_by_two_hundred_requests() {
    let mut server = Server::start().await;
    let app = server
        .register(json!({"client_name": "Photo App", "grant_types": ["authorization_code", "refresh_token"],
                         "token_endpoint_auth_method": "none", "redirect_uris": [REDIRECT], "scope": "read"}))
        .await;
    let rs = server.register(json!({"grant_types": ["client_credentials"]})).await;
    create_user(&server, "alice").await;
    let code = code_for(&server, &app.0, "alice").await;

    let body = format!(
        "grant_type=authorization_code&code={}&redirect_uri={}&client_id={}&code_verifier={VERIFIER}",
        enc(&code),
        enc(REDIRECT),
        enc(&app.0)
    );
    let replies = server.concurrently(vec![Req::form("/token", &body); N]).await;
    let winners: Vec<&Reply> = replies.iter().filter(|r| r.status == 200).collect();
    assert_eq!(winners.len(), 1, "exactly one redemption");
    assert_tokens(winners[0]);
    for r in replies.iter().filter(|r| r.status != 200) {
        assert_error(r, 400, "invalid_grant", "the authorization code was already used");
    }
    let (at, rt) = (winners[0].str("access_token"), winners[0].str("refresh_token"));
    assert_all_active(&server, &rs, &[at, rt], false).await;
    assert_eq!(server.count("type=access&end_user=alice").await, 0);
    assert_eq!(server.count("type=refresh&end_user=alice").await, 0);
    let replayed = server.audit("code_replayed");
    assert_eq!(replayed.len(), N - 1, "one audit line per replay");
    let revoked: u64 = replayed.iter().map(|l| l["revoked"].as_u64().unwrap()).sum();
    assert_eq!(revoked, 2, "the access and the refresh token, each revoked once");
    assert!(server.alive(), "the server is still running");
}

/// (d) One refresh token presented by 200 concurrent refresh requests: exactly one rotation is
/// stored, and every request answers 200 with that rotation's tokens (the grace rule of
/// `grants::refresh_token`: a rotated token presented again within `GATEHOUSE_REFRESH_GRACE`
/// gets the same successor, so concurrent retries are not mistaken for reuse).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_refresh_token_used_by_two_hundred_requests() {
    let mut server = Server::start().await;
    let c = server.register(json!({"grant_types": ["password", "refresh_token"], "scope": "read"})).await;
    let rs = server.register(json!({"grant_types": ["client_credentials"]})).await;
    create_user(&server, "bob").await;
    let body = format!("grant_type=password&username=bob&password={}", enc(PASSWORD));
    let first = server.send(Req::form("/token", &body).header("Authorization", &basic(&c.0, &c.1))).await;
    assert_tokens(&first);
    let (at1, rt1) = (first.str("access_token"), first.str("refresh_token"));

    let refresh = Req::form("/token", &format!("grant_type=refresh_token&refresh_token={}", enc(&rt1)))
        .header("Authorization", &basic(&c.0, &c.1));
    let replies = server.concurrently(vec![refresh; N]).await;
    for r in &replies {
        assert_tokens(r);
        assert_eq!(r.json, replies[0].json, "the same successor for every request");
    }
    let (at2, rt2) = (replies[0].str("access_token"), replies[0].str("refresh_token"));
    assert_ne!(rt2, rt1);
    assert_eq!(server.audit("token_refreshed").len(), 1, "one rotation");
    assert_eq!(server.audit("refresh_reuse_detected").len(), 0, "no reuse detected");
    assert_eq!(server.count("type=refresh&end_user=bob").await, 1, "the successor only");
    assert_eq!(server.count("type=access&end_user=bob").await, 2, "the first access token and the rotation's");
    assert_all_active(&server, &rs, &[at1, at2, rt2.clone()], true).await;
    assert_all_active(&server, &rs, &[rt1], false).await;
    // The successor rotates in turn.
    let next = Req::form("/token", &format!("grant_type=refresh_token&refresh_token={}", enc(&rt2)))
        .header("Authorization", &basic(&c.0, &c.1));
    assert_tokens(&server.send(next).await);
    assert!(server.alive(), "the server is still running");
}

/// (e) A mixed round of 200: 60 token requests, 50 introspections and 50 `GET /validate` of
/// tokens issued before, 40 revocations of other tokens issued before. Every answer is the one
/// the RFCs give without contention; afterwards exactly the 40 revoked tokens are inactive.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mixed_round_of_two_hundred() {
    let mut server = Server::start().await;
    let m2m = server.register(json!({"grant_types": ["client_credentials"], "scope": "read"})).await;
    let rs = server.register(json!({"grant_types": ["client_credentials"]})).await;
    let before = issue(&server, &m2m.0, &m2m.1, 140).await;
    let (checked, revoked) = before.split_at(100);

    let mut reqs = Vec::new();
    reqs.extend((0..60).map(|_| client_credentials(&m2m.0, &m2m.1)));
    reqs.extend(checked[..50].iter().map(|t| introspect(&rs.0, &rs.1, t)));
    reqs.extend(checked[50..].iter().map(|t| validate(t)));
    reqs.extend(revoked.iter().map(|t| revoke(&m2m.0, &m2m.1, t)));
    assert_eq!(reqs.len(), N);
    let replies = server.concurrently(reqs).await;
    let (issued, rest) = replies.split_at(60);
    let (introspected, rest) = rest.split_at(50);
    let (validated, revocations) = rest.split_at(50);
    let mut new_tokens = Vec::new();
    for r in issued {
        assert_tokens(r);
        new_tokens.push(r.str("access_token"));
    }
    for r in introspected {
        assert_eq!((r.status, &r.json["active"]), (200, &json!(true)), "{}", r.body);
    }
    for r in validated {
        assert_eq!((r.status, &r.json["active"]), (200, &json!(true)), "{}", r.body);
    }
    for r in revocations {
        assert_eq!((r.status, r.body.as_str()), (200, ""), "RFC 7009 §2.2: 200, empty");
        assert_eq!(r.header("cache-control"), Some("no-store"));
    }
    let all: HashSet<&String> = before.iter().chain(&new_tokens).collect();
    assert_eq!(all.len(), 200, "distinct tokens");
    assert_all_active(&server, &rs, revoked, false).await;
    assert_all_active(&server, &rs, &[checked.to_vec(), new_tokens].concat(), true).await;
    assert_eq!(server.count(&format!("type=access&client_id={}", enc(&m2m.0))).await, 160);
    assert!(server.alive(), "the server is still running");
}
