//! The browser sign-in flow end to end in real headless Chromium (issue 3): the local-server
//! binary on the embedded store, driven through chromedriver's W3C WebDriver HTTP API by a
//! tiny client over `std::net::TcpStream`. Sign-in page (a wrong password first), consent page,
//! the redirect with `code`, `state` and `iss` (RFC 9207), the code exchanged with PKCE
//! (RFC 7636) by a public client, introspection, one refresh; then a second run in the same
//! browser that skips the consent page; then two tabs signing in at once. The consent page's
//! screenshot is written to `target/browser-consent.png`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (installed by `scripts/test.sh`). Without
//! `/usr/bin/chromedriver` the test skips, unless `GATEHOUSE_TEST_REQUIRE_SERVICES=1`.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

use crate::common::{ADMIN, basic};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// W3C WebDriver §12: the key of a web element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

const USERNAME: &str = "alice.browser";
const PASSWORD: &str = "correct horse battery staple";
const CLIENT_NAME: &str = "Browser Test App";
const SCOPE: &str = "docs.read docs.write";
const SIGN_IN_FAILED: &str = "The username or password is incorrect.";

// ---------------------------------------------------------------------------------------------
// Raw HTTP/1.1 over a fresh connection (both the server and chromedriver).

struct HttpResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl HttpResponse {
    fn headers(&self, name: &str) -> impl Iterator<Item = &str> {
        self.headers.iter().filter(move |(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers(name).next()
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> HttpResponse {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut r = BufReader::new(s);
    let line = |r: &mut BufReader<TcpStream>| {
        let mut l = String::new();
        r.read_line(&mut l).unwrap_or_else(|e| panic!("{method} {addr}{path}: {e}"));
        l.trim_end_matches(['\r', '\n']).to_owned()
    };
    let status_line = line(&mut r);
    let status = status_line.get(9..12).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{status_line:?}"));
    let mut headers = Vec::new();
    loop {
        let l = line(&mut r);
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').unwrap_or_else(|| panic!("bad header line {l:?}"));
        headers.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    let find = |n: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(n)).map(|(_, v)| v.clone());
    let mut bytes = Vec::new();
    if let Some(n) = find("content-length") {
        bytes.resize(n.parse().unwrap(), 0);
        r.read_exact(&mut bytes).unwrap();
    } else if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let size = line(&mut r);
            let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap();
            if size == 0 {
                while !line(&mut r).is_empty() {}
                break;
            }
            let start = bytes.len();
            bytes.resize(start + size, 0);
            r.read_exact(&mut bytes[start..]).unwrap();
            line(&mut r);
        }
    } else {
        r.read_to_end(&mut bytes).unwrap();
    }
    HttpResponse { status, headers, body: String::from_utf8_lossy(&bytes).into_owned() }
}

use crate::common::free_port;

fn wait_until(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------------
// The local server.

struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the `gatehouse` binary on a free port with exactly `env` (plus PATH); its issuer is
/// the default, `http://<address>`.
fn start_server(env: &[(&str, &str)]) -> Server {
    let (child, addr) = crate::common::spawn_local_server(|addr| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
        cmd.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).env("GATEHOUSE_ADDR", addr);
        cmd.env("GATEHOUSE_LOG", "warn").stdout(Stdio::null()).stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    });
    Server { child, addr }
}

impl Server {
    fn admin(&self, method: &str, path: &str, body: Option<Value>) -> HttpResponse {
        let auth = format!("Bearer {ADMIN}");
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        http(&self.addr, method, path, &[("Authorization", &auth), ("Content-Type", "application/json")], &body)
    }

    fn created(&self, path: &str, body: Value) -> Value {
        let r = self.admin("POST", path, Some(body));
        assert_eq!(r.status, 201, "POST {path}: {}", r.body);
        r.json()
    }

    fn form(&self, path: &str, auth: Option<&str>, params: &[(&str, &str)]) -> HttpResponse {
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
        let mut headers = vec![("Content-Type", "application/x-www-form-urlencoded")];
        headers.extend(auth.map(|a| ("Authorization", a)));
        http(&self.addr, "POST", path, &headers, &body)
    }
}

// ---------------------------------------------------------------------------------------------
// chromedriver and a minimal W3C WebDriver client.

/// A running chromedriver; its temporary directory holds its log and Chromium's profile.
struct Chromedriver {
    child: Child,
    addr: String,
    dir: tempfile::TempDir,
}

impl Chromedriver {
    fn start() -> Self {
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("chromedriver.log");
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let mut d = Chromedriver { child, addr: format!("127.0.0.1:{port}"), dir };
        wait_until("chromedriver to answer GET /status", Duration::from_secs(20), || {
            if let Some(status) = d.child.try_wait().unwrap() {
                panic!("chromedriver exited during start-up: {status}");
            }
            TcpStream::connect(&d.addr).is_ok()
                && http(&d.addr, "GET", "/status", &[], "").json()["value"]["ready"] == json!(true)
        });
        d
    }

    /// A WebDriver command: the response's status and its `value`.
    fn try_send(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let body = body.map(Value::to_string).unwrap_or_default();
        let headers: &[(&str, &str)] =
            if method == "POST" { &[("Content-Type", "application/json; charset=utf-8")] } else { &[] };
        let r = http(&self.addr, method, path, headers, &body);
        (r.status, r.json()["value"].clone())
    }

    /// A WebDriver command that must succeed.
    fn send(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let (status, v) = self.try_send(method, path, body);
        assert_eq!(status, 200, "WebDriver {method} {path} failed: {} {}", v["error"], v["message"]);
        v
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.dir.path().join("chromedriver.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- chromedriver log (last lines) ---");
            tail.iter().rev().for_each(|l| eprintln!("{l}"));
        }
    }
}

/// One WebDriver session (one headless Chromium), ended on drop.
struct Browser<'a> {
    driver: &'a Chromedriver,
    session: String,
}

impl<'a> Browser<'a> {
    fn new(driver: &'a Chromedriver) -> Self {
        let profile = driver.dir.path().join("profile");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
                    "--disable-dev-shm-usage",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        }}});
        let v = driver.send("POST", "/session", Some(&caps));
        let session = v["sessionId"].as_str().unwrap_or_else(|| panic!("no sessionId in {v}")).to_owned();
        Browser { driver, session }
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.driver.send(method, &format!("/session/{}{path}", self.session), body.as_ref())
    }

    fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })));
    }

    fn url(&self) -> String {
        self.cmd("GET", "/url", None).as_str().unwrap().to_owned()
    }

    fn title(&self) -> String {
        self.cmd("GET", "/title", None).as_str().unwrap().to_owned()
    }

    fn source(&self) -> String {
        self.cmd("GET", "/source", None).as_str().unwrap().to_owned()
    }

    fn find_all(&self, css: &str) -> Vec<String> {
        let v = self.cmd("POST", "/elements", Some(json!({"using": "css selector", "value": css})));
        v.as_array().unwrap().iter().map(|e| e[ELEMENT].as_str().unwrap().to_owned()).collect()
    }

    /// The one element matching `css` (panics with the page source otherwise).
    fn find(&self, css: &str) -> String {
        match self.find_all(css).as_slice() {
            [one] => one.clone(),
            found => panic!("{} elements match {css:?} on {}:\n{}", found.len(), self.url(), self.source()),
        }
    }

    fn type_into(&self, css: &str, text: &str) {
        self.cmd("POST", &format!("/element/{}/value", self.find(css)), Some(json!({ "text": text })));
    }

    fn click(&self, css: &str) {
        self.cmd("POST", &format!("/element/{}/click", self.find(css)), Some(json!({})));
    }

    /// Clicks a submit button and waits until the browser has left the page: the click may
    /// return before the form's navigation starts, so the old document must be seen to go
    /// (its root element turns stale).
    fn submit(&self, css: &str) {
        let old = self.find("html");
        self.click(css);
        let path = format!("/session/{}/element/{old}/name", self.session);
        wait_until(&format!("the page to change after clicking {css}"), Duration::from_secs(20), || {
            match self.driver.try_send("GET", &path, None) {
                (200, _) => false,
                (_, v) if v["error"] == "stale element reference" || v["error"] == "no such element" => true,
                // Mid-navigation, ChromeDriver may say so through the DevTools error instead.
                (_, v) if v["message"].as_str().is_some_and(|m| m.contains("does not belong to the document")) => true,
                (status, v) => panic!("WebDriver GET {path}: {status} {v}"),
            }
        });
    }

    fn text(&self, css: &str) -> String {
        self.cmd("GET", &format!("/element/{}/text", self.find(css)), None).as_str().unwrap().to_owned()
    }

    fn value(&self, css: &str) -> String {
        self.cmd("GET", &format!("/element/{}/property/value", self.find(css)), None).as_str().unwrap().to_owned()
    }

    fn screenshot_png(&self) -> Vec<u8> {
        let b64 = self.cmd("GET", "/screenshot", None);
        base64::engine::general_purpose::STANDARD.decode(b64.as_str().unwrap()).unwrap()
    }

    /// Waits until the browser is at a URL starting with `prefix` and returns it.
    fn wait_for_url(&self, prefix: &str) -> String {
        let mut url = String::new();
        wait_until(&format!("a URL starting with {prefix}"), Duration::from_secs(20), || {
            url = self.url();
            url.starts_with(prefix)
        });
        url
    }

    fn quit(mut self) {
        let session = std::mem::take(&mut self.session);
        self.driver.send("DELETE", &format!("/session/{session}"), None);
    }
}

impl Drop for Browser<'_> {
    fn drop(&mut self) {
        // Best effort and never panicking (this may run while unwinding): ends Chromium.
        if !self.session.is_empty()
            && let Ok(mut s) = TcpStream::connect(&self.driver.addr)
        {
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let req = format!(
                "DELETE /session/{} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                self.session, self.driver.addr
            );
            let _ = s.write_all(req.as_bytes()).and_then(|_| s.read_to_end(&mut Vec::new()));
        }
    }
}

/// Whether chromedriver and Chromium are installed; when not, the test skips, or fails under
/// `GATEHOUSE_TEST_REQUIRE_SERVICES=1` (the convention of `common.rs`).
fn chromedriver_available() -> bool {
    let missing: Vec<&str> = [CHROMEDRIVER, CHROMIUM].into_iter().filter(|p| !Path::new(p).exists()).collect();
    if missing.is_empty() {
        return true;
    }
    let hint = "apt-get install chromium chromium-driver, or run scripts/test.sh";
    if std::env::var("GATEHOUSE_TEST_REQUIRE_SERVICES").is_ok_and(|v| v == "1") {
        panic!("{} absent but GATEHOUSE_TEST_REQUIRE_SERVICES=1 ({hint})", missing.join(" and "));
    }
    eprintln!("skipping the browser test: {} absent ({hint})", missing.join(" and "));
    false
}

// ---------------------------------------------------------------------------------------------
// OAuth helpers.

/// A PKCE pair (RFC 7636 §4.1-4.2): a 86-character verifier and its S256 challenge.
fn pkce() -> (String, String) {
    let verifier = format!("{}{}", gatehouse::crypto::random_token(), gatehouse::crypto::random_token());
    let challenge = s256(&verifier);
    (verifier, challenge)
}

/// `BASE64URL(SHA256(verifier))`; the function used is pinned to RFC 7636 Appendix B's example.
fn s256(verifier: &str) -> String {
    assert_eq!(
        gatehouse::crypto::digest("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "S256 must match RFC 7636 Appendix B"
    );
    gatehouse::crypto::digest(verifier)
}

/// The query parameters of `url`, in order.
fn query(url: &str) -> Vec<(String, String)> {
    let q = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    let q = q.split('#').next().unwrap();
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

struct Fixture {
    server: Server,
    issuer: String,
    redirect_uri: String,
    app: String,
    introspector: (String, String),
}

impl Fixture {
    /// `/authorize?...` for `state` and `challenge`.
    fn authorize_path(&self, state: &str, challenge: &str) -> String {
        let q = form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("response_type", "code"),
                ("client_id", &self.app),
                ("redirect_uri", &self.redirect_uri),
                ("scope", SCOPE),
                ("state", state),
                ("code_challenge", challenge),
                ("code_challenge_method", "S256"),
            ])
            .finish();
        format!("/authorize?{q}")
    }

    /// The code from the redirect the browser landed on; asserts `state` and `iss`.
    fn code_from(&self, url: &str, state: &str) -> String {
        let (at, _) = url.split_once('?').unwrap_or_else(|| panic!("no query in {url}"));
        assert_eq!(at, self.redirect_uri, "landed on the registered redirect URI: {url}");
        let q = query(url);
        let keys: Vec<&str> = q.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["code", "state", "iss"], "exactly code, state and iss: {url}");
        assert_eq!(q[1].1, state, "state comes back unchanged");
        assert_eq!(q[2].1, self.issuer, "iss is the issuer (RFC 9207)");
        assert!(q[0].1.len() >= 43, "a code of at least 256 bits: {url}");
        q[0].1.clone()
    }

    fn redeem(&self, code: &str, verifier: &str) -> Value {
        let r = self.server.form(
            "/token",
            None,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", &self.redirect_uri),
                ("client_id", &self.app),
                ("code_verifier", verifier),
            ],
        );
        assert_eq!(r.status, 200, "code exchange: {}", r.body);
        assert_eq!(r.header("cache-control"), Some("no-store"));
        let t = r.json();
        assert_eq!(t["token_type"], "Bearer", "{t}");
        assert!(t["access_token"].as_str().is_some_and(|a| a.split('.').count() == 3), "a JWT: {t}");
        assert!(t["refresh_token"].as_str().is_some_and(|s| s.len() >= 43), "a refresh token: {t}");
        assert!(t["expires_in"].as_u64().is_some_and(|e| e > 0), "{t}");
        assert_eq!(t["scope"], SCOPE, "{t}");
        t
    }

    fn introspect(&self, token: &str) -> Value {
        let auth = basic(&self.introspector.0, &self.introspector.1);
        let r = self.server.form("/introspect", Some(&auth), &[("token", token)]);
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    }
}

fn set_up() -> (Fixture, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let server =
        start_server(&[("GATEHOUSE_DATA_DIR", &data.path().display().to_string()), ("GATEHOUSE_ADMIN_TOKEN", ADMIN)]);
    let issuer = format!("http://{}", server.addr);
    // Nothing listens there: the browser's page load fails, but its URL is what counts.
    let redirect_uri = format!("http://127.0.0.1:{}/callback", free_port());
    server.created(
        "/admin/resource-servers",
        json!({
            "identifier": "https://docs.example.test/api",
            "name": "Documents API",
            "scopes": [
                {"name": "docs.read", "description": "Read your documents & folders"},
                {"name": "docs.write", "description": "Create and edit your documents"},
            ],
        }),
    );
    let user = server.created("/admin/users", json!({"username": USERNAME, "password": PASSWORD}));
    assert_eq!(user["username"], USERNAME);
    assert!(user.get("password").is_none() && user.get("password_hash").is_none(), "{user}");
    let app = server.created(
        "/admin/clients",
        json!({
            "client_name": CLIENT_NAME,
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "redirect_uris": [redirect_uri],
            "scope": SCOPE,
        }),
    );
    assert!(app.get("client_secret").is_none(), "a public client has no secret: {app}");
    let rs = server.created("/admin/clients", json!({"grant_types": ["client_credentials"], "scope": "docs.read"}));
    let introspector = (rs["client_id"].as_str().unwrap().to_owned(), rs["client_secret"].as_str().unwrap().to_owned());
    let app = app["client_id"].as_str().unwrap().to_owned();
    (Fixture { server, issuer, redirect_uri, app, introspector }, data)
}

/// The sign-in page's own headers, fetched without the browser.
fn assert_page_headers(f: &Fixture) {
    let (_, challenge) = pkce();
    let r = http(&f.server.addr, "GET", &f.authorize_path("headers", &challenge), &[], "");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.header("content-type").is_some_and(|c| c.starts_with("text/html")), "{:?}", r.headers);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    let csp = r.header("content-security-policy").unwrap_or_default();
    assert!(csp.split(';').any(|d| d.trim() == "frame-ancestors 'none'"), "CSP: {csp}");
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    let cookies: Vec<&str> = r.headers("set-cookie").collect();
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    let attrs: Vec<&str> = cookies[0].split(';').map(str::trim).collect();
    let (name, value) = attrs[0].split_once('=').unwrap();
    assert_eq!(name, "gatehouse-authz", "no __Host- prefix without Secure: {}", cookies[0]);
    assert!(value.len() >= 43, "the browser's nonce, at least 256 bits: {}", cookies[0]);
    let has = |a: &str| attrs[1..].iter().any(|x| x.eq_ignore_ascii_case(a));
    assert!(has("HttpOnly") && has("SameSite=Lax") && has("Path=/"), "{}", cookies[0]);
    assert!(!has("Secure"), "no Secure on a loopback http issuer: {}", cookies[0]);
    assert!(!r.body.contains("docs.read"), "the request is kept server-side, not in the page");
}

fn sign_in(b: &Browser, password: &str) {
    b.type_into("#password", password);
    b.submit("#sign-in");
}

#[test]
fn sign_in_consent_pkce_refresh_then_remembered_consent_in_headless_chromium() {
    if !chromedriver_available() {
        return;
    }
    let started = Instant::now();
    let (f, _data) = set_up();
    assert_page_headers(&f);
    let driver = Chromedriver::start();
    let b = Browser::new(&driver);

    // Run 1: sign-in page.
    let (verifier, challenge) = pkce();
    let state = format!("s1-{}", gatehouse::crypto::random_id());
    b.goto(&format!("{}{}", f.issuer, f.authorize_path(&state, &challenge)));
    assert_eq!(b.title(), "Sign in");
    assert!(b.url().starts_with(&format!("{}/authorize?", f.issuer)), "{}", b.url());
    assert!(b.source().contains(CLIENT_NAME), "the page names the client");
    assert!(b.find_all("#error").is_empty(), "no error before the first attempt");

    // A wrong password: the error shows and the form is still there, username kept.
    b.type_into("#username", USERNAME);
    sign_in(&b, "not the password at all");
    assert_eq!(b.url(), format!("{}/authorize/login", f.issuer));
    assert_eq!(b.title(), "Sign in");
    assert_eq!(b.text("#error"), SIGN_IN_FAILED);
    assert_eq!(b.value("#username"), USERNAME, "the username is kept");
    assert_eq!(b.value("#password"), "", "the password is not echoed back");
    b.find("#sign-in");
    assert!(b.find_all("#approve").is_empty());

    // The right password: the consent page lists the scopes with their descriptions.
    sign_in(&b, PASSWORD);
    assert_eq!(b.title(), "Allow access", "{}", b.source());
    let intro = b.text("main p");
    assert!(intro.contains(CLIENT_NAME) && intro.contains(USERNAME), "{intro}");
    let scopes = b.text("#scopes");
    let mut lines: Vec<&str> = scopes.lines().map(str::trim).collect();
    lines.sort_unstable();
    assert_eq!(lines, ["docs.read: Read your documents & folders", "docs.write: Create and edit your documents"]);
    b.find("#deny");
    let png = b.screenshot_png();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG screenshot");
    let shot = Path::new(env!("CARGO_MANIFEST_DIR")).join("target").join("browser-consent.png");
    std::fs::create_dir_all(shot.parent().unwrap()).unwrap();
    std::fs::write(&shot, &png).unwrap();

    // Allow: the browser lands on the redirect URI with code, state and iss.
    b.submit("#approve");
    let landed = b.wait_for_url(&f.redirect_uri);
    let code = f.code_from(&landed, &state);

    // The public client exchanges the code with its verifier (no secret).
    let t = f.redeem(&code, &verifier);
    let access = t["access_token"].as_str().unwrap();
    let i = f.introspect(access);
    assert_eq!(i["active"], true, "{i}");
    assert_eq!(i["sub"], USERNAME, "{i}");
    assert_eq!(i["client_id"], f.app, "{i}");
    assert_eq!(i["scope"], SCOPE, "{i}");

    // One refresh: new access and refresh tokens.
    let refresh = t["refresh_token"].as_str().unwrap();
    let r = f.server.form(
        "/token",
        None,
        &[("grant_type", "refresh_token"), ("refresh_token", refresh), ("client_id", &f.app)],
    );
    assert_eq!(r.status, 200, "refresh: {}", r.body);
    let t2 = r.json();
    assert_eq!(t2["token_type"], "Bearer", "{t2}");
    let refresh2 = t2["refresh_token"].as_str().unwrap_or_else(|| panic!("a rotated refresh token: {t2}"));
    assert_ne!(refresh2, refresh, "the refresh token rotates");
    assert_ne!(t2["access_token"], t["access_token"]);
    let i2 = f.introspect(t2["access_token"].as_str().unwrap());
    assert_eq!((i2["active"].clone(), i2["sub"].clone()), (json!(true), json!(USERNAME)), "{i2}");

    // The consent is kept for this user and client.
    let c = f.server.admin("GET", &format!("/admin/users/{USERNAME}/consents"), None);
    assert_eq!(c.status, 200, "{}", c.body);
    assert!(c.body.contains(&f.app) && c.body.contains("docs.write"), "{}", c.body);

    // Run 2, same browser: sign in, and the consent page is skipped.
    let (verifier2, challenge2) = pkce();
    let state2 = format!("s2-{}", gatehouse::crypto::random_id());
    b.goto(&format!("{}{}", f.issuer, f.authorize_path(&state2, &challenge2)));
    assert_eq!(b.title(), "Sign in");
    b.type_into("#username", USERNAME);
    sign_in(&b, PASSWORD);
    let landed2 = b.wait_for_url(&f.redirect_uri);
    let code2 = f.code_from(&landed2, &state2);
    assert_ne!(code2, code);
    let t3 = f.redeem(&code2, &verifier2);
    assert_eq!(f.introspect(t3["access_token"].as_str().unwrap())["sub"], USERNAME);

    // Run 3, two tabs of the same browser: the second tab's sign-in page does not end the
    // first's (one cookie per browser), and each tab gets its own code.
    let first_tab = b.cmd("GET", "/window", None).as_str().unwrap().to_owned();
    let (verifier3, challenge3) = pkce();
    let state3 = format!("s3-{}", gatehouse::crypto::random_id());
    b.goto(&format!("{}{}", f.issuer, f.authorize_path(&state3, &challenge3)));
    assert_eq!(b.title(), "Sign in");
    let second_tab = b.cmd("POST", "/window/new", Some(json!({"type": "tab"})))["handle"].as_str().unwrap().to_owned();
    b.cmd("POST", "/window", Some(json!({ "handle": second_tab })));
    let (verifier4, challenge4) = pkce();
    let state4 = format!("s4-{}", gatehouse::crypto::random_id());
    b.goto(&format!("{}{}", f.issuer, f.authorize_path(&state4, &challenge4)));
    assert_eq!(b.title(), "Sign in");
    b.cmd("POST", "/window", Some(json!({ "handle": first_tab })));
    b.type_into("#username", USERNAME);
    sign_in(&b, PASSWORD);
    let code3 = f.code_from(&b.wait_for_url(&f.redirect_uri), &state3);
    b.cmd("POST", "/window", Some(json!({ "handle": second_tab })));
    b.type_into("#username", USERNAME);
    sign_in(&b, PASSWORD);
    let code4 = f.code_from(&b.wait_for_url(&f.redirect_uri), &state4);
    for (code, verifier) in [(&code3, &verifier3), (&code4, &verifier4)] {
        let t = f.redeem(code, verifier);
        assert_eq!(f.introspect(t["access_token"].as_str().unwrap())["sub"], USERNAME);
    }

    b.quit();
    eprintln!("browser flow passed in {:.1?}; consent screenshot: {}", started.elapsed(), shot.display());
}
