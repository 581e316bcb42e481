//! The operator CLI (`gatehouse <resource> <action>`), run as a process: against the real local
//! server (its default URL and generated admin token, or `--url`/`--token`), against a listener
//! that never answers or is not there, and against a listener that checks AWS SigV4 signatures
//! by recomputing them independently.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::common::{self, free_port};

const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");
const SECRET_NOTE: &str = "Store the client secret now: it is shown only this once.\n";

/// A finished CLI run.
#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `gatehouse args...` with exactly `env` (plus PATH), optionally feeding `stdin`.
fn gh(env: &[(&str, &str)], args: &[&str], stdin: Option<&str>) -> Out {
    let mut cmd = Command::new(BIN);
    cmd.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("run the gatehouse CLI");
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    Out {
        code: out.status.code().expect("the CLI exited by itself"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// The local server, with a generated admin token in its own data directory.
struct Server {
    child: Child,
    addr: String,
    dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server() -> Server {
    start_server_in(tempfile::tempdir().unwrap())
}

fn start_server_in(dir: tempfile::TempDir) -> Server {
    let (child, addr) = common::spawn_local_server(|addr| {
        let mut cmd = Command::new(BIN);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("GATEHOUSE_ADDR", addr)
            .env("GATEHOUSE_DATA_DIR", dir.path())
            .env("GATEHOUSE_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        cmd
    });
    Server { child, addr, dir }
}

impl Server {
    /// The environment in which the CLI finds this server as "the local server": its address
    /// and data directory (so the generated admin token), no `--url` and no `--token`.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![("GATEHOUSE_ADDR", self.addr.clone()), ("GATEHOUSE_DATA_DIR", self.dir.path().display().to_string())]
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Out {
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        gh(&env, args, stdin)
    }

    /// Runs a command that must succeed quietly; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args, None);
        assert_eq!((out.code, out.stderr.as_str()), (0, ""), "gatehouse {args:?}: {out:?}");
        out.stdout
    }

    /// Runs a command with `--json`; checks that stdout is the pretty form of its JSON.
    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        let stdout = self.ok(&args);
        let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"));
        assert_eq!(stdout, format!("{}\n", serde_json::to_string_pretty(&v).unwrap()), "pretty JSON");
        v
    }

    fn admin_token(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("admin-token")).unwrap()
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// An access token by client credentials, over plain HTTP.
    fn cc_token(&self, id: &str, secret: &str) -> String {
        let mut s = TcpStream::connect(&self.addr).unwrap();
        let body = "grant_type=client_credentials&scope=read";
        let req = format!(
            "POST /token HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAuthorization: {}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            common::basic(id, secret),
            body.len()
        );
        s.write_all(req.as_bytes()).unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
        let json: Value = serde_json::from_str(resp.split_once("\r\n\r\n").unwrap().1).unwrap();
        json["access_token"].as_str().unwrap().to_owned()
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` (UTC) for seconds since the epoch.
fn rfc3339(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (mut y, mut d) = (1970, days);
    loop {
        let len = if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 { 366 } else { 365 };
        if d < len {
            break;
        }
        d -= len;
        y += 1;
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let months = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let mut m = 0;
    while d >= months[m] {
        d -= months[m];
        m += 1;
    }
    format!("{y:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", m + 1, d + 1, rem / 3600, rem % 3600 / 60, rem % 60)
}

fn time_of(v: &Value) -> String {
    rfc3339(v.as_i64().unwrap())
}

/// Expected `field  value` lines: keys padded to the longest, two spaces.
fn kv(pairs: &[(&str, &str)]) -> String {
    let w = pairs.iter().map(|(k, _)| k.len()).max().unwrap();
    pairs.iter().map(|(k, v)| format!("{k:<w$}  {v}\n")).collect()
}

/// Expected table: each column as wide as its widest cell, two spaces apart, last unpadded.
fn table(rows: &[&[&str]]) -> String {
    let widths: Vec<usize> = (0..rows[0].len()).map(|c| rows.iter().map(|r| r[c].len()).max().unwrap()).collect();
    let mut out = String::new();
    for r in rows {
        let cells: Vec<String> = r.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[test]
fn clients_create_get_list_update_rotate_delete() {
    let s = start_server();
    let out = s.run(
        &["clients", "create", "--name", "billing", "--grant-type", "client_credentials", "--scope", "read write"],
        None,
    );
    assert_eq!((out.code, out.stderr.as_str()), (0, SECRET_NOTE), "{out:?}");
    let line = |name: &str| -> String {
        let l = out.stdout.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap();
        l.split_whitespace().last().unwrap().to_owned()
    };
    let (id, secret) = (line("client_id"), line("client_secret"));
    assert_eq!(secret.len(), 43, "a 256-bit secret, base64url");
    let got = s.json(&["clients", "get", &id]);
    assert_eq!(
        got,
        json!({
            "client_id": id, "client_name": "billing", "client_id_issued_at": got["client_id_issued_at"],
            "grant_types": ["client_credentials"], "redirect_uris": [], "scope": "read write",
            "token_endpoint_auth_method": "client_secret_basic",
        })
    );
    let issued = time_of(&got["client_id_issued_at"]);
    assert_eq!(
        out.stdout,
        kv(&[
            ("client_id", &id),
            ("client_name", "billing"),
            ("token_endpoint_auth_method", "client_secret_basic"),
            ("grant_types", "client_credentials"),
            ("redirect_uris", "-"),
            ("scope", "read write"),
            ("client_id_issued_at", &issued),
            ("client_secret", &secret),
            ("client_secret_expires_at", "never"),
        ])
    );
    // The secret printed is the real one.
    assert!(!s.cc_token(&id, &secret).is_empty());

    // `get` shows the metadata, never a secret.
    let shown = s.ok(&["clients", "get", &id]);
    assert_eq!(
        shown,
        kv(&[
            ("client_id", &id),
            ("client_name", "billing"),
            ("token_endpoint_auth_method", "client_secret_basic"),
            ("grant_types", "client_credentials"),
            ("redirect_uris", "-"),
            ("scope", "read write"),
            ("client_id_issued_at", &issued),
        ])
    );

    assert_eq!(
        s.ok(&["clients", "list"]),
        table(&[
            &["CLIENT_ID", "NAME", "AUTH_METHOD", "GRANT_TYPES", "SCOPE"],
            &[&id, "billing", "client_secret_basic", "client_credentials", "read write"],
        ])
    );
    let listed = s.json(&["clients", "list", "--limit", "10"]);
    assert_eq!(listed["clients"], json!([got]));

    // A merge patch of the metadata.
    let updated = s.ok(&["clients", "update", &id, "--name", "billing-2", "--scope", "read"]);
    assert!(updated.contains(&format!("\n{:<26}  billing-2\n", "client_name")), "{updated}");
    assert!(updated.contains(&format!("\n{:<26}  read\n", "scope")), "{updated}");
    let out = s.run(&["clients", "update", &id], None);
    assert_eq!((out.code, out.stderr.as_str()), (2, "error: nothing to change: give at least one option\n"));

    // A new secret, printed once; the old one stops working without an overlap.
    let out = s.run(&["clients", "rotate-secret", &id], None);
    assert_eq!((out.code, out.stderr.as_str()), (0, SECRET_NOTE), "{out:?}");
    let new_secret = out.stdout.lines().find_map(|l| l.strip_prefix("client_secret ")).unwrap().trim().to_owned();
    assert_ne!(new_secret, secret);
    assert!(!s.cc_token(&id, &new_secret).is_empty());

    assert_eq!(s.ok(&["clients", "delete", &id]), format!("deleted client {id}\n"));
    // The API's error: exit 1, its code and description and the status on stderr.
    let out = s.run(&["clients", "get", &id], None);
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.stdout, "");
    assert_eq!(out.stderr, "error: not_found: no such client (HTTP 404)\n");
    let out = s.run(&["clients", "delete", &id, "--json"], None);
    assert_eq!((out.code, out.stdout.as_str()), (1, ""));
    assert_eq!(out.stderr, "error: not_found: no such client (HTTP 404)\n");
}

#[test]
fn users_and_resource_servers() {
    let s = start_server();
    // `--group` names an existing group: the user becomes a member.
    let out =
        s.run(&["users", "create", "alice", "--password-stdin", "--group", "staff"], Some("correct horse battery\n"));
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.stderr, "error: invalid_request: groups: no such group: staff (HTTP 400)\n");
    s.ok(&["groups", "create", "staff"]);
    s.ok(&["groups", "create", "ops"]);
    let out = s.run(
        &["users", "create", "alice", "--password-stdin", "--attribute", "email=alice@example.com", "--group", "staff"],
        Some("correct horse battery\n"),
    );
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{out:?}");
    let got = s.json(&["users", "get", "alice"]);
    assert_eq!(
        got,
        json!({
            "username": "alice", "enabled": true, "groups": ["staff"],
            "attributes": {"email": "alice@example.com"},
            "created_at": got["created_at"], "updated_at": got["created_at"],
        })
    );
    let created = time_of(&got["created_at"]);
    let expected = kv(&[
        ("username", "alice"),
        ("enabled", "true"),
        ("groups", "staff"),
        ("attributes", r#"{"email":"alice@example.com"}"#),
        ("created_at", &created),
        ("updated_at", &created),
    ]);
    assert_eq!(out.stdout, expected, "create shows the user, never the password");
    assert_eq!(s.ok(&["users", "get", "alice"]), expected);
    assert_eq!(s.ok(&["users", "groups", "alice"]), "GROUP\nstaff\n");
    let both = s.json(&["users", "update", "alice", "--group", "staff,ops"]);
    assert_eq!(both["groups"], json!(["ops", "staff"]));
    assert_eq!(s.ok(&["groups", "members", "ops"]), "USERNAME\nalice\n");
    let disabled = s.ok(&["users", "update", "alice", "--disable", "--no-groups"]);
    assert!(disabled.starts_with("username    alice\nenabled     false\ngroups      -\n"), "{disabled}");
    assert_eq!(s.ok(&["users", "groups", "alice"]), "GROUP\n");

    let out = s.run(&["users", "create", "bob"], None);
    assert_eq!((out.code, out.stderr.as_str()), (2, "error: a new user needs --password or --password-stdin\n"));
    let out = s.run(&["users", "create", "bob", "--password", "short"], None);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.starts_with("error: invalid_request: ") && out.stderr.ends_with(" (HTTP 400)\n"), "{out:?}");

    assert_eq!(s.ok(&["users", "delete", "alice"]), "deleted user alice\n");
    let out = s.run(&["users", "get", "alice"], None);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (1, "", "error: not_found: no such user (HTTP 404)\n")
    );

    // Resource servers, here with an explicit --url and --token (from the environment).
    let token = s.admin_token();
    let url = s.url();
    let env = [("GATEHOUSE_URL", url.as_str()), ("GATEHOUSE_ADMIN_TOKEN", token.as_str())];
    let out = gh(
        &env,
        &[
            "resource-servers",
            "create",
            "https://api.example.com",
            "--name",
            "Example API",
            "--scope",
            "orders:read=Read your orders",
            "--scope",
            "orders:write",
        ],
        None,
    );
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{out:?}");
    let listed = s.json(&["resource-servers", "list"]);
    let rs = &listed["resource_servers"][0];
    let created = time_of(&rs["created_at"]);
    assert_eq!(
        out.stdout,
        format!(
            "{}\n{}",
            kv(&[
                ("identifier", "https://api.example.com"),
                ("name", "Example API"),
                ("scopes", "orders:read,orders:write"),
                ("created_at", &created),
            ]),
            table(&[&["SCOPE", "DESCRIPTION"], &["orders:read", "Read your orders"]])
        )
    );
    let out = gh(&env, &["resource-servers", "list"], None);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""));
    assert_eq!(
        out.stdout,
        table(&[
            &["IDENTIFIER", "NAME", "SCOPES", "CREATED_AT"],
            &["https://api.example.com", "Example API", "orders:read,orders:write", &created],
        ])
    );
}

#[test]
fn tokens_list_count_revoke() {
    let s = start_server();
    let out =
        s.run(&["clients", "create", "--grant-type", "client_credentials", "--scope", "read write", "--json"], None);
    assert_eq!((out.code, out.stderr.as_str()), (0, SECRET_NOTE), "{out:?}");
    let c: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(out.stdout, format!("{}\n", serde_json::to_string_pretty(&c).unwrap()));
    let (id, secret) = (c["client_id"].as_str().unwrap(), c["client_secret"].as_str().unwrap());
    let at = s.cc_token(id, secret);

    let listed = s.json(&["tokens", "list", "--client-id", id]);
    assert!(!listed.to_string().contains(&at), "a listing never holds a token");
    let t = &listed["tokens"][0];
    assert_eq!(listed["tokens"].as_array().unwrap().len(), 1, "{listed}");
    let jti = t["jti"].as_str().unwrap();
    let aud = s.url();
    assert_eq!(
        (t["client_id"].as_str(), t["aud"].as_str(), t["scope"].as_str()),
        (Some(id), Some(aud.as_str()), Some("read"))
    );
    let (iat, exp) = (time_of(&t["iat"]), time_of(&t["exp"]));
    let header: &[&str] =
        &["JTI", "TYPE", "CLIENT_ID", "END_USER", "SCOPE", "AUDIENCE", "GRANT_TYPE", "ISSUED_AT", "EXPIRES_AT"];
    let shown = s.ok(&["tokens", "list", "--type", "access", "--client-id", id, "--limit", "5"]);
    assert_eq!(shown, table(&[header, &[jti, "access", id, "-", "read", &aud, "client_credentials", &iat, &exp]]));
    assert!(!shown.contains(&at));
    assert_eq!(s.ok(&["tokens", "list", "--type", "refresh", "--client-id", id]), table(&[header]));

    assert_eq!(s.ok(&["tokens", "count", "--client-id", id]), "1\n");
    assert_eq!(s.ok(&["tokens", "count", "--client-id", id, "--json"]), "{\n  \"count\": 1\n}\n");
    assert_eq!(s.ok(&["tokens", "revoke", "--jti", jti]), "revoked\n");
    assert_eq!(s.ok(&["tokens", "count", "--client-id", id]), "0\n");
    assert_eq!(
        s.ok(&["tokens", "revoke", "--jti", jti]),
        "not revoked: no active token matches (unknown, expired or already revoked)\n"
    );
    assert_eq!(s.ok(&["tokens", "list", "--client-id", id]), table(&[header]));

    // The token itself goes on stdin, never on the command line.
    let at2 = s.cc_token(id, secret);
    let out = s.run(&["tokens", "revoke", "--token-stdin", "--json"], Some(&format!("{at2}\n")));
    assert_eq!((out.code, out.stdout.as_str(), out.stderr.as_str()), (0, "{\n  \"revoked\": true\n}\n", ""));

    s.cc_token(id, secret);
    s.cc_token(id, secret);
    assert_eq!(s.ok(&["tokens", "revoke-all", "--client-id", id]), "revoked 2 tokens\n");
    assert_eq!(s.ok(&["tokens", "count", "--client-id", id]), "0\n");
}

#[test]
fn groups_settings_and_cursor_paging() {
    let s = start_server();
    for u in ["alice", "bob"] {
        let out = s.run(&["users", "create", u, "--password-stdin"], Some("correct horse battery"));
        assert_eq!(out.code, 0, "{out:?}");
    }
    // A page of one, and the hint (on stderr) naming the cursor of the next.
    let out = s.run(&["users", "list", "--limit", "1"], None);
    assert_eq!(out.code, 0, "{out:?}");
    let page = s.json(&["users", "list", "--limit", "1"]);
    let next = page["next"].as_str().expect("a next cursor");
    assert_eq!(out.stderr, format!("more results: repeat with --cursor {next}\n"));
    let first = page["users"][0]["username"].as_str().unwrap();
    assert!(out.stdout.starts_with("USERNAME  ENABLED  GROUPS  CREATED_AT\n") && out.stdout.contains(first), "{out:?}");
    let rest = s.json(&["users", "list", "--limit", "1", "--cursor", next]);
    let second = rest["users"][0]["username"].as_str().unwrap();
    assert_eq!([first.min(second), first.max(second)], ["alice", "bob"]);

    let created = s.json(&["groups", "create", "staff", "--description", "The staff"]);
    assert_eq!(s.ok(&["groups", "add-member", "staff", "alice"]), "added alice to group staff\n");
    assert_eq!(s.ok(&["groups", "members", "staff"]), "USERNAME\nalice\n");
    assert_eq!(s.ok(&["users", "groups", "alice"]), "GROUP\nstaff\n");
    assert_eq!(
        s.ok(&["groups", "list"]),
        table(&[&["NAME", "DESCRIPTION", "CREATED_AT"], &["staff", "The staff", &time_of(&created["created_at"])]])
    );
    assert_eq!(s.ok(&["groups", "remove-member", "staff", "alice"]), "removed alice from group staff\n");
    assert_eq!(s.ok(&["groups", "members", "staff"]), "USERNAME\n");
    assert_eq!(s.ok(&["groups", "delete", "staff"]), "deleted group staff\n");
    let out = s.run(&["groups", "get", "staff"], None);
    assert_eq!((out.code, out.stdout.as_str()), (1, ""));
    assert!(out.stderr.starts_with("error: not_found: ") && out.stderr.ends_with(" (HTTP 404)\n"), "{out:?}");

    let set = s.ok(&["settings", "set", "access_token_ttl=600"]);
    assert!(set.lines().any(|l| l.split_whitespace().eq(["access_token_ttl", "600", "override"])), "{set}");
    assert_eq!(s.ok(&["settings", "get", "access_token_ttl"]), "600\n");
    assert_eq!(s.json(&["settings", "get"])["settings"]["access_token_ttl"], 600);
    let out = s.run(&["settings", "set", "access_token_ttl=5"], None);
    assert_eq!((out.code, out.stdout.as_str()), (1, ""));
    assert!(
        out.stderr.starts_with("error: invalid_request: access_token_ttl: ") && out.stderr.ends_with(" (HTTP 400)\n")
    );
    assert_eq!(
        s.ok(&["settings", "set", "access_token_ttl=null"])
            .lines()
            .find(|l| l.starts_with("access_token_ttl "))
            .map(|l| l.split_whitespace().collect::<Vec<_>>()),
        Some(vec!["access_token_ttl", "3600", "default"])
    );
}

#[test]
fn usage_errors_exit_2() {
    let out = gh(&[], &["clients", "frobnicate"], None);
    assert_eq!((out.code, out.stdout.as_str()), (2, ""));
    assert!(out.stderr.starts_with("error: unrecognized subcommand 'frobnicate'\n"), "{}", out.stderr);

    let out = gh(&[], &["tokens", "count"], None);
    assert_eq!((out.code, out.stdout.as_str()), (2, ""));
    assert!(out.stderr.starts_with("error: the following required arguments were not provided:\n"), "{}", out.stderr);
    assert!(out.stderr.contains("--client-id <CLIENT_ID>|--end-user <USERNAME>"), "{}", out.stderr);

    let out = gh(&[], &["tokens", "list", "--client-id", "c", "--type", "bearer"], None);
    assert_eq!(out.code, 2);
    assert!(out.stderr.starts_with("error: invalid value 'bearer' for '--type <TYPE>'"), "{}", out.stderr);

    let out = gh(&[], &["--timeout", "0", "keys", "list"], None);
    assert_eq!(out.code, 2, "{out:?}");

    // Admin options are not the server's (a bad store makes a server that did start fail fast).
    for args in [&["--json"][..], &["serve", "--url", "http://127.0.0.1:1"], &["serve", "--token-file", "/nonexistent"]]
    {
        let out = gh(&[("GATEHOUSE_STORE", "redis")], args, None);
        assert_eq!((out.code, out.stdout.as_str()), (2, ""), "{args:?}: {out:?}");
        let option = args.iter().find(|a| a.starts_with("--")).unwrap();
        let expected = format!(
            "error: {option} is an option of the admin commands (clients, users, ...), not of the server, create-table or upgrade-table\n"
        );
        assert!(out.stderr.starts_with(&expected), "{}", out.stderr);
    }

    // No credential: the default local URL reads the local server's token file, and says so.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().display().to_string();
    let out = gh(&[("GATEHOUSE_DATA_DIR", &data)], &["clients", "list"], None);
    assert_eq!((out.code, out.stdout.as_str()), (2, ""));
    assert_eq!(
        out.stderr,
        format!(
            "error: no admin token: pass --token or set GATEHOUSE_ADMIN_TOKEN (the local server keeps the token it \
             generates in {data}/admin-token; is GATEHOUSE_DATA_DIR the server's?)\n"
        )
    );
    let out = gh(&[], &["--url", "https://auth.example.com", "clients", "list"], None);
    assert_eq!(out.code, 2);
    assert_eq!(
        out.stderr,
        "error: no admin credential for https://auth.example.com: pass --token (or set GATEHOUSE_ADMIN_TOKEN), or \
         --sigv4 for a deployment that authorizes /admin with AWS IAM\n"
    );
    let out = gh(&[], &["--url", "ftp://x", "--token", "t", "clients", "list"], None);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (2, "error: --url: expected http(s)://host[:port][/prefix], got `ftp://x`\n")
    );
    // Plain http only to this machine: every call carries the admin credential.
    for url in ["http://auth.example.com", "http://10.0.0.7:8080/prod", "http://[2001:db8::1]"] {
        let out = gh(&[], &["--url", url, "--token", "t", "clients", "list"], None);
        let host = url.trim_start_matches("http://").split(['/']).next().unwrap();
        let host =
            host.rsplit_once(':').filter(|(h, _)| !h.ends_with(':') && !host.starts_with('[')).map_or(host, |(h, _)| h);
        assert_eq!(
            (out.code, out.stderr),
            (
                2,
                format!(
                    "error: --url: use https for `{host}`: http is only for a server on this machine (localhost, \
                     127.0.0.1, [::1]), since every call carries the admin credential\n"
                )
            ),
            "{url}"
        );
    }
    // --token-file: a file the CLI cannot read, or an empty one.
    let missing = dir.path().join("missing");
    let out = gh(
        &[],
        &["--url", "https://auth.example.com", "--token-file", &missing.display().to_string(), "clients", "list"],
        None,
    );
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.starts_with(&format!("error: --token-file: cannot read {}: ", missing.display())),
        "{}",
        out.stderr
    );
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let out = gh(
        &[],
        &["--url", "https://auth.example.com", "--token-file", &empty.display().to_string(), "clients", "list"],
        None,
    );
    assert_eq!((out.code, out.stderr), (2, format!("error: --token-file: {} holds no token\n", empty.display())));
}

#[test]
fn wrong_token_unreachable_and_silent_servers_exit_1() {
    let s = start_server();
    let url = s.url();
    let out = gh(&[], &["--url", &url, "--token", "not-the-admin-token", "keys", "list"], None);
    assert_eq!((out.code, out.stdout.as_str()), (1, ""));
    assert_eq!(out.stderr, "error: unauthorized: a valid admin credential is required (HTTP 401)\n");
    // --token-file (out of the process list), before a --token or GATEHOUSE_ADMIN_TOKEN.
    let file = s.dir.path().join("token-copy");
    std::fs::write(&file, format!("{}\n", s.admin_token())).unwrap();
    let path = file.display().to_string();
    let out = gh(&[("GATEHOUSE_ADMIN_TOKEN", "wrong")], &["--url", &url, "--token-file", &path, "keys", "list"], None);
    assert_eq!(out.code, 0, "{}", out.stderr);
    drop(s);

    // Nothing listens on the port.
    let closed = format!("http://127.0.0.1:{}", free_port());
    let out = gh(&[], &["--url", &closed, "--token", "t", "clients", "get", "x"], None);
    assert_eq!((out.code, out.stdout.as_str()), (1, ""));
    assert_eq!(out.stderr, format!("error: cannot connect to {closed}: connection refused (is the server running?)\n"));

    // A server that accepts the connection and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    let started = Instant::now();
    let out = gh(&[], &["--url", &silent_url, "--token", "t", "--timeout", "1", "clients", "get", "x"], None);
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    assert_eq!((out.code, out.stdout.as_str()), (1, ""));
    assert_eq!(out.stderr, format!("error: no answer from {silent_url} within 1 s (--timeout)\n"));
    drop(silent);
}

// ---------------------------------------------------------------------------------------------
// SigV4: a listener records each request and answers a canned response.

/// A request as received: request line, lower-cased headers, body.
#[derive(Debug)]
struct Received {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

fn read_request(stream: &TcpStream) -> Received {
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap().to_owned(), parts.next().unwrap().to_owned());
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).unwrap();
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':').unwrap();
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
    let len = headers.iter().find(|(k, _)| k == "content-length").map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = vec![0; len];
    r.read_exact(&mut body).unwrap();
    Received { method, target, headers, body }
}

/// Serves one connection per canned `(status line, JSON body)`, sending each request back.
fn recording_listener(answers: Vec<(&'static str, &'static str)>) -> (String, mpsc::Receiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for (status, body) in answers {
            let (mut stream, _) = listener.accept().unwrap();
            let req = read_request(&stream);
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(resp.as_bytes()).unwrap();
            tx.send(req).unwrap();
        }
    });
    (addr, rx)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
    m.update(data.as_bytes());
    m.finalize().into_bytes().to_vec()
}

/// Checks a request's SigV4 signature the way API Gateway does, from the AWS documentation
/// (not from the signing crate): canonical request, string to sign, derived key, HMAC.
fn verify_sigv4(req: &Received, access_key: &str, secret: &str, region: &str) {
    let auth = req.header("authorization").expect("an Authorization header");
    let amz_date = req.header("x-amz-date").expect("an x-amz-date header");
    assert!(amz_date.len() == 16 && amz_date.as_bytes()[8] == b'T' && amz_date.ends_with('Z'), "{amz_date}");
    let date = &amz_date[..8];
    let prefix =
        format!("AWS4-HMAC-SHA256 Credential={access_key}/{date}/{region}/execute-api/aws4_request, SignedHeaders=");
    let rest = auth.strip_prefix(&prefix).unwrap_or_else(|| panic!("{auth} does not start with {prefix}"));
    let (signed_headers, signature) = rest.split_once(", Signature=").unwrap();
    assert!(signature.len() == 64 && signature.bytes().all(|b| b.is_ascii_hexdigit()), "{signature}");
    let names: Vec<&str> = signed_headers.split(';').collect();
    assert!(names.contains(&"host") && names.contains(&"x-amz-date"), "{signed_headers}");

    let (path, query) = req.target.split_once('?').unwrap_or((&req.target, ""));
    // Not S3: every path segment is URI-encoded once more.
    let canonical_path: String = path
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let mut params: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    params.sort_unstable();
    let canonical_headers: String = names
        .iter()
        .map(|n| format!("{n}:{}\n", req.header(n).unwrap_or_else(|| panic!("signed {n} missing"))))
        .collect();
    let canonical = format!(
        "{}\n{canonical_path}\n{}\n{canonical_headers}\n{signed_headers}\n{}",
        req.method,
        params.join("&"),
        hex(&Sha256::digest(&req.body))
    );
    let scope = format!("{date}/{region}/execute-api/aws4_request");
    let to_sign = format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}", hex(&Sha256::digest(canonical.as_bytes())));
    let mut key = hmac(format!("AWS4{secret}").as_bytes(), date);
    for part in [region, "execute-api", "aws4_request"] {
        key = hmac(&key, part);
    }
    assert_eq!(signature, hex(&hmac(&key, &to_sign)), "signature over:\n{canonical}");
}

#[test]
fn sigv4_signs_for_execute_api_with_credentials_from_the_aws_chain() {
    let (addr, requests) = recording_listener(vec![
        ("200 OK", r#"{"count":7}"#),
        ("200 OK", r#"{"revoked":true}"#),
        ("200 OK", r#"{"identifier":"https://api.example.com","name":null,"scopes":[],"created_at":0}"#),
        ("403 Forbidden", r#"{"message":"Forbidden"}"#),
    ]);
    let home = tempfile::tempdir().unwrap();
    let home = home.path().display().to_string();
    let missing = format!("{home}/missing");
    let base = [
        ("AWS_ACCESS_KEY_ID", "AKIDGATEHOUSETEST"),
        ("AWS_SECRET_ACCESS_KEY", "gatehouse/test+secret"),
        ("AWS_REGION", "eu-west-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_CONFIG_FILE", missing.as_str()),
        ("AWS_SHARED_CREDENTIALS_FILE", missing.as_str()),
        ("HOME", home.as_str()),
        // Ignored with --sigv4: the signature is the credential.
        ("GATEHOUSE_ADMIN_TOKEN", "not-sent"),
    ];
    let url = format!("http://{addr}/prod");

    let out = gh(&base, &["--url", &url, "--sigv4", "tokens", "count", "--client-id", "c1"], None);
    assert_eq!((out.code, out.stdout.as_str(), out.stderr.as_str()), (0, "7\n", ""));
    let req = requests.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(
        (req.method.as_str(), req.target.as_str()),
        ("GET", "/prod/admin/tokens/count?type=access&client_id=c1")
    );
    assert_eq!(req.header("host"), Some(addr.as_str()));
    assert_eq!(req.header("x-amz-security-token"), None);
    verify_sigv4(&req, "AKIDGATEHOUSETEST", "gatehouse/test+secret", "eu-west-1");

    // Temporary credentials: the session token is sent and signed. A body is signed by digest.
    let mut env = base.to_vec();
    env.push(("AWS_SESSION_TOKEN", "session/token=="));
    let out = gh(&env, &["--url", &url, "--sigv4", "--region", "us-west-2", "tokens", "revoke", "--jti", "abc"], None);
    assert_eq!((out.code, out.stdout.as_str(), out.stderr.as_str()), (0, "revoked\n", ""));
    let req = requests.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!((req.method.as_str(), req.target.as_str()), ("POST", "/prod/admin/tokens/revoke"));
    assert_eq!(req.body, br#"{"jti":"abc"}"#);
    assert_eq!(req.header("x-amz-security-token"), Some("session/token=="));
    assert!(req.header("authorization").unwrap().contains(";x-amz-security-token,"), "{req:?}");
    verify_sigv4(&req, "AKIDGATEHOUSETEST", "gatehouse/test+secret", "us-west-2");

    // A percent-encoded path segment (signed double-encoded, as for every service but S3).
    let out = gh(&base, &["--url", &url, "--sigv4", "resource-servers", "get", "https://api.example.com"], None);
    assert_eq!(out.code, 0, "{out:?}");
    let req = requests.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(req.target, "/prod/admin/resource-servers/https%3A%2F%2Fapi.example.com");
    verify_sigv4(&req, "AKIDGATEHOUSETEST", "gatehouse/test+secret", "eu-west-1");

    // API Gateway's own refusal.
    let out = gh(&base, &["--url", &url, "--sigv4", "keys", "list"], None);
    assert_eq!((out.code, out.stdout.as_str(), out.stderr.as_str()), (1, "", "error: Forbidden (HTTP 403)\n"));
    requests.recv_timeout(Duration::from_secs(10)).unwrap();
}

/// The environment of a table command (`create-table`, `upgrade-table`) on `table` in
/// DynamoDB Local.
fn table_env(table: &str) -> Vec<(&'static str, String)> {
    vec![
        ("GATEHOUSE_TABLE_NAME", table.to_owned()),
        ("AWS_ENDPOINT_URL_DYNAMODB", std::env::var("GATEHOUSE_TEST_DYNAMODB_URL").unwrap()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_REGION", "us-east-1".into()),
    ]
}

/// Runs `gatehouse <command>` with `env` off the test's runtime (the CLI blocks).
async fn gh_off_runtime(env: Vec<(&'static str, String)>, command: &'static str) -> Out {
    tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        gh(&env, &[command], None)
    })
    .await
    .unwrap()
}

/// `gatehouse create-table`: the tenant table in DynamoDB Local, with the schema the stack
/// declares (the same `create_table` that infra.rs checks against the template); a second run
/// fails because the table exists; a missing table name is a clear error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_table_makes_the_tenant_table_in_dynamodb_local() {
    let Some((_, ddb, _)) = common::dynamo().await else { return };
    let table = format!("gatehouse-cli-{}", gatehouse::crypto::random_id().replace(['-', '_'], "x"));
    let env = table_env(&table);
    let run = |env| gh_off_runtime(env, "create-table");
    let out = run(env.clone()).await;
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (0, format!("created table {table}\n").as_str(), "")
    );

    let described = ddb.describe_table().table_name(&table).send().await.unwrap().table.unwrap();
    let keys: Vec<_> = described.key_schema().iter().map(|k| k.attribute_name().to_owned()).collect();
    assert_eq!(keys, ["pk", "sk"]);
    let mut indexes: Vec<_> =
        described.global_secondary_indexes().iter().map(|i| i.index_name().unwrap().to_owned()).collect();
    indexes.sort();
    let mut expected: Vec<_> = gatehouse::store::dynamo::INDEXES.iter().map(|(n, _)| n.to_string()).collect();
    expected.sort();
    assert_eq!(indexes, expected);

    let out = run(env).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.starts_with(&format!("Error: creating table {table}: ")), "{}", out.stderr);

    let out = run(vec![("AWS_REGION", "us-east-1".into())]).await;
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (1, "", "Error: GATEHOUSE_TABLE_NAME is not set\n")
    );
}

/// `gatehouse upgrade-table`: clients and users written by a version before their listings
/// (items without `client_pk`/`user_pk` and `issued_sk`) are missing from the admin listings
/// until it runs, and listed after it, their items exactly as this version writes them; token
/// items, listed items and a group named like a user item's sort key are left alone; a second
/// run changes nothing; a missing table name is a clear error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_table_lists_the_clients_and_users_of_earlier_versions() {
    use aws_sdk_dynamodb::types::AttributeValue;

    let Some((store, ddb, table)) = common::dynamo().await else { return };
    let state = common::state_on(store.clone());
    let app = common::app(&state);
    let old_client = common::cc_client(&app).await;
    let new_client = common::cc_client(&app).await;
    let token = common::cc_token(&app, &old_client, "").await;
    for name in ["old-user", "new-user"] {
        let body = json!({"username": name, "password": "correct horse battery staple"});
        let r = common::send(&app, common::admin("POST", "/admin/users", Some(body))).await;
        assert_eq!(r.status, http::StatusCode::CREATED, "{}", r.text);
    }
    // A group whose name is a user item's sort key: its item (`GROUPS` / `USER`) is no user's.
    let r = common::send(&app, common::admin("POST", "/admin/groups", Some(json!({"name": "USER"})))).await;
    assert_eq!(r.status, http::StatusCode::CREATED, "{}", r.text);
    let raw = |pk: String, sk: &'static str| {
        let ddb = ddb.clone();
        let table = table.clone();
        async move {
            let out = ddb
                .get_item()
                .table_name(table)
                .key("pk", AttributeValue::S(pk))
                .key("sk", AttributeValue::S(sk.into()))
                .consistent_read(true)
                .send()
                .await
                .unwrap();
            out.item.unwrap()
        }
    };
    // The items as this version wrote them, listing keys included.
    let old_client_item = raw(format!("CLIENT#{}", old_client.id), "CLIENT").await;
    let old_user_item = raw("USER#old-user".into(), "USER").await;
    let group_item = raw("GROUPS".into(), "USER").await;
    // As an earlier version wrote them: without the listing keys.
    let make_old = || async {
        for (pk, sk, list) in [
            (format!("CLIENT#{}", old_client.id), "CLIENT", "client_pk"),
            ("USER#old-user".to_owned(), "USER", "user_pk"),
        ] {
            ddb.update_item()
                .table_name(&table)
                .key("pk", AttributeValue::S(pk))
                .key("sk", AttributeValue::S(sk.into()))
                .update_expression(format!("REMOVE {list}, issued_sk"))
                .send()
                .await
                .unwrap();
        }
    };
    make_old().await;
    let listed = |kind: &'static str, key: &'static str| {
        let app = app.clone();
        async move {
            let r = common::send(&app, common::admin("GET", &format!("/admin/{kind}"), None)).await;
            assert_eq!(r.status, http::StatusCode::OK, "{}", r.text);
            let mut names: Vec<String> =
                r.body[kind].as_array().unwrap().iter().map(|i| i[key].as_str().unwrap().to_owned()).collect();
            names.sort();
            names
        }
    };
    let mut both_clients = vec![old_client.id.clone(), new_client.id.clone()];
    both_clients.sort();
    assert_eq!(listed("clients", "client_id").await, std::slice::from_ref(&new_client.id));
    assert_eq!(listed("users", "username").await, ["new-user"]);

    // The Scan in pages of one item (the table's keys, clients, users, token, ...).
    let done = gatehouse::store::dynamo::upgrade_table(&ddb, &table, 1).await.unwrap();
    assert_eq!(done, gatehouse::store::dynamo::Upgraded { clients: 1, users: 1 });
    assert_eq!(listed("clients", "client_id").await, both_clients);
    assert_eq!(listed("users", "username").await, ["new-user", "old-user"]);
    // Exactly the items this version writes: the same listing keys (the sort key is the cursor
    // of the listings' pages), nothing else changed; the group untouched.
    assert_eq!(raw(format!("CLIENT#{}", old_client.id), "CLIENT").await, old_client_item);
    assert_eq!(raw("USER#old-user".into(), "USER").await, old_user_item);
    assert_eq!(raw("GROUPS".into(), "USER").await, group_item);
    make_old().await;

    let env = table_env(&table);
    let run = |env| gh_off_runtime(env, "upgrade-table");
    let out = run(env.clone()).await;
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (0, format!("upgraded table {table}: listing keys added to 1 client and 1 user\n").as_str(), "")
    );
    assert_eq!(listed("clients", "client_id").await, both_clients);
    assert_eq!(listed("users", "username").await, ["new-user", "old-user"]);
    assert_eq!(raw(format!("CLIENT#{}", old_client.id), "CLIENT").await, old_client_item);
    assert_eq!(raw("USER#old-user".into(), "USER").await, old_user_item);
    // The client's token is still listed under its client, and still active.
    let r = common::send(
        &app,
        common::admin("GET", &format!("/admin/tokens?type=access&client_id={}", old_client.id), None),
    )
    .await;
    assert_eq!((r.status, r.body["tokens"].as_array().map(Vec::len)), (http::StatusCode::OK, Some(1)), "{}", r.text);
    let r = common::send(&app, common::form("/introspect", Some(&old_client.basic()), &format!("token={token}"))).await;
    assert_eq!(r.body["active"], true, "{}", r.text);

    let out = run(env).await;
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (0, format!("upgraded table {table}: listing keys added to 0 clients and 0 users\n").as_str(), "")
    );

    let out = run(vec![("AWS_REGION", "us-east-1".into())]).await;
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (1, "", "Error: GATEHOUSE_TABLE_NAME is not set\n")
    );

    // DynamoDB unreachable (a closed port): the error says what the run did before it.
    let mut env = table_env(&table);
    env[1].1 = "http://127.0.0.1:9".into();
    let out = run(env).await;
    assert_eq!((out.code, out.stdout.as_str()), (1, ""), "{}", out.stderr);
    let prefix = format!("Error: upgrading table {table}: store unavailable: dynamodb: ");
    assert!(out.stderr.starts_with(&prefix), "{}", out.stderr);
    assert!(
        out.stderr.ends_with(
            " (listing keys were added to 0 clients and 0 users before it; run it again to finish: upgraded items \
             are skipped)\n"
        ),
        "{}",
        out.stderr
    );
}

/// Servers starting at once on a fresh data directory (here: threads making the admin token)
/// agree on one token, the file's, and leave no temporary file (and clear one a crash left); a
/// hand-made file too short to keep is refused, not replaced.
#[test]
fn servers_starting_together_share_one_admin_token() {
    use gatehouse::store::{MIN_ADMIN_TOKEN, load_or_create_admin_token};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let barrier = std::sync::Barrier::new(8);
    let tokens: Vec<String> = std::thread::scope(|scope| {
        let starting: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    load_or_create_admin_token(&data).unwrap()
                })
            })
            .collect();
        starting.into_iter().map(|s| s.join().unwrap()).collect()
    });
    assert!(tokens.iter().all(|t| *t == tokens[0]), "{tokens:?}");
    assert!(tokens[0].len() >= MIN_ADMIN_TOKEN);
    assert_eq!(std::fs::read_to_string(data.join("admin-token")).unwrap(), tokens[0]);
    let files: Vec<_> = std::fs::read_dir(&data).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(files, ["admin-token"]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join("admin-token")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{mode:o}");
    }
    std::fs::write(data.join("admin-token"), "short\n").unwrap();
    let e = load_or_create_admin_token(&data).unwrap_err().to_string();
    assert!(e.contains("fewer than 32 characters") && !e.contains("short"), "{e}");
    assert_eq!(std::fs::read_to_string(data.join("admin-token")).unwrap(), "short\n", "left as it was");

    // A temporary file a crash left (over a minute old) is removed by the next creation; a
    // recent one (another process writing it) is not.
    let fresh = tempfile::tempdir().unwrap();
    let (stale, recent) = (fresh.path().join(".gatehouse-stale.tmp"), fresh.path().join(".gatehouse-recent.tmp"));
    for f in [&stale, &recent] {
        std::fs::write(f, "secret").unwrap();
    }
    let minutes_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(120);
    std::fs::File::options().write(true).open(&stale).unwrap().set_modified(minutes_ago).unwrap();
    load_or_create_admin_token(fresh.path()).unwrap();
    assert!(!stale.exists() && recent.exists());
}

/// An admin token file put in the data directory by hand, readable by others, is kept and made
/// private (0600) when the server starts.
#[cfg(unix)]
#[test]
fn a_loose_admin_token_file_is_kept_and_made_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let token = "hand-made-admin-token-0123456789abcdefghijkl";
    std::fs::write(dir.path().join("admin-token"), format!("{token}\n")).unwrap();
    std::fs::set_permissions(dir.path().join("admin-token"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let server = start_server_in(dir);
    assert_eq!(server.admin_token().trim(), token, "kept");
    let mode = std::fs::metadata(server.dir.path().join("admin-token")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
    let db = std::fs::metadata(server.dir.path().join("gatehouse.db")).unwrap().permissions().mode() & 0o777;
    assert_eq!(db, 0o600, "{db:o}");
}
