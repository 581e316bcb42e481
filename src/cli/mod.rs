//! The operator CLI: `gatehouse <resource> <action>` talks to a local or deployed tenant's
//! admin API (`/admin/...`, see the README) over HTTP, with the admin bearer token or, for an
//! IAM-protected deployment, AWS SigV4. `gatehouse` alone (or `gatehouse serve`) runs the local
//! server instead.
//!
//! Exit codes: 0 done; 1 the call failed (the API answered an error, or the server could not be
//! reached); 2 usage error.
mod api;
mod clients;
mod groups;
mod keys;
pub mod output;
mod resource_servers;
mod settings;
pub mod sigv4;
mod tokens;
mod users;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use http::{Method, StatusCode};
use serde_json::{Map, Value};

use self::api::{Api, Auth};

/// Gatehouse: an OAuth 2.0 authorization server. Without a command it runs the local server.
#[derive(Debug, Parser)]
#[command(
    name = "gatehouse",
    version,
    after_help = "Without a command, `gatehouse` runs the local all-in-one server (as `gatehouse serve`).\n\
                  Exit codes: 0 done, 1 the call failed (API error or server unreachable), 2 usage error."
)]
pub struct Cli {
    #[command(flatten)]
    pub conn: Conn,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Where the admin API is and how to authenticate (for every command but `serve`).
#[derive(Debug, Args)]
pub struct Conn {
    /// Admin API base URL, with any stage prefix [default: http://<GATEHOUSE_ADDR>, that is
    /// http://127.0.0.1:8080]
    #[arg(long, global = true, env = "GATEHOUSE_URL", value_name = "URL")]
    pub url: Option<String>,
    /// Admin bearer token (on the command line it is visible to other local users in the process
    /// list: prefer GATEHOUSE_ADMIN_TOKEN or --token-file). With the default local URL it is read
    /// from the local server's <GATEHOUSE_DATA_DIR>/admin-token when not given
    #[arg(long, global = true, env = "GATEHOUSE_ADMIN_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub token: Option<gatehouse::model::Redacted<String>>,
    /// Read the admin bearer token from this file (its first line; before --token)
    #[arg(long, global = true, value_name = "PATH")]
    pub token_file: Option<std::path::PathBuf>,
    /// Sign requests with AWS SigV4 (service execute-api) for a deployment whose API Gateway
    /// authorizes /admin with IAM; credentials from the standard AWS chain
    #[arg(long, global = true)]
    pub sigv4: bool,
    /// AWS region of the API, for --sigv4 [default: from the AWS profile]
    #[arg(long, global = true, env = "AWS_REGION", value_name = "REGION")]
    pub region: Option<String>,
    /// Print the server's JSON (pretty) instead of tables
    #[arg(long, global = true)]
    pub json: bool,
    /// Seconds to wait for the whole exchange
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the local all-in-one server (the default): every endpoint on GATEHOUSE_ADDR
    Serve,
    /// Create the tenant table GATEHOUSE_TABLE_NAME in DynamoDB (for DynamoDB Local, via
    /// AWS_ENDPOINT_URL_DYNAMODB; in AWS the stack creates it)
    CreateTable,
    /// Bring the items of the table GATEHOUSE_TABLE_NAME that earlier versions wrote up to
    /// date (listing keys of clients and users); run once after an upgrade, safe to rerun
    UpgradeTable,
    /// OAuth clients (RFC 7591 metadata)
    #[command(subcommand)]
    Clients(clients::Cmd),
    /// Resource owners (end users) and their consents
    #[command(subcommand)]
    Users(users::Cmd),
    /// APIs that tokens are issued for (the audience) and their scopes
    #[command(subcommand)]
    ResourceServers(resource_servers::Cmd),
    /// Groups of users
    #[command(subcommand)]
    Groups(groups::Cmd),
    /// Active tokens: list, count, revoke (metadata only, never a token value)
    #[command(subcommand)]
    Tokens(tokens::Cmd),
    /// Signing keys: list, rotate, retire
    #[command(subcommand)]
    Keys(keys::Cmd),
    /// Tenant settings
    #[command(subcommand)]
    Settings(settings::Cmd),
}

/// Why a command did not succeed.
#[derive(Debug)]
pub enum Failure {
    /// Bad arguments or missing configuration: exit 2.
    Usage(String),
    /// The API answered an error: exit 1.
    Api { status: StatusCode, error: String, description: Option<String> },
    /// No answer (refused, unknown host, timeout) or an answer that is not the API's: exit 1.
    Transport(String),
}

impl Failure {
    /// Prints the failure to stderr and returns the exit code.
    pub fn report(&self) -> ExitCode {
        match self {
            Failure::Usage(m) => {
                eprintln!("error: {m}");
                ExitCode::from(2)
            }
            Failure::Api { status, error, description } => {
                match description {
                    Some(d) => eprintln!("error: {error}: {d} (HTTP {})", status.as_u16()),
                    None => eprintln!("error: {error} (HTTP {})", status.as_u16()),
                }
                ExitCode::from(1)
            }
            Failure::Transport(m) => {
                eprintln!("error: {m}");
                ExitCode::from(1)
            }
        }
    }
}

impl Cli {
    /// Parses the command line (exit 2 on a usage error). The admin options given to the server
    /// (`gatehouse --json`, `gatehouse serve --url ...`) are a usage error too, not ignored.
    pub fn parse_args() -> Self {
        let mut command = Self::command();
        let matches = command.get_matches_mut();
        let cli = Self::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        if matches!(cli.command, None | Some(Command::Serve | Command::CreateTable | Command::UpgradeTable)) {
            let on_line = |m: &clap::ArgMatches| {
                ["url", "token", "token_file", "sigv4", "region", "json", "timeout"]
                    .into_iter()
                    .find(|id| m.value_source(id) == Some(clap::parser::ValueSource::CommandLine))
            };
            let given = on_line(&matches).or_else(|| matches.subcommand().and_then(|(_, m)| on_line(m)));
            if let Some(id) = given {
                command
                    .error(
                        clap::error::ErrorKind::ArgumentConflict,
                        format!(
                            "--{} is an option of the admin commands (clients, users, ...), not of the server, create-table or upgrade-table",
                            id.replace('_', "-")
                        ),
                    )
                    .exit();
            }
        }
        cli
    }
}

/// Runs an admin command to completion and returns the exit code.
pub fn run(conn: Conn, command: Command) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return Failure::Transport(format!("cannot start the async runtime: {e}")).report(),
    };
    match rt.block_on(execute(conn, command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => f.report(),
    }
}

async fn execute(conn: Conn, command: Command) -> Result<(), Failure> {
    let ctx = Ctx::connect(conn).await?;
    match command {
        Command::Serve | Command::CreateTable | Command::UpgradeTable => {
            Err(Failure::Usage("this command takes no admin options".into()))
        }
        Command::Clients(c) => clients::run(&ctx, c).await,
        Command::Users(c) => users::run(&ctx, c).await,
        Command::ResourceServers(c) => resource_servers::run(&ctx, c).await,
        Command::Groups(c) => groups::run(&ctx, c).await,
        Command::Tokens(c) => tokens::run(&ctx, c).await,
        Command::Keys(c) => keys::run(&ctx, c).await,
        Command::Settings(c) => settings::run(&ctx, c).await,
    }
}

/// The local server's URL: `http://<GATEHOUSE_ADDR>` (loopback when it listens on all
/// addresses), by default `http://127.0.0.1:8080`.
pub fn local_url() -> String {
    let addr = std::env::var("GATEHOUSE_ADDR")
        .ok()
        .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
        .unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 8080)));
    let addr = match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::SocketAddr::from(([127, 0, 0, 1], addr.port())),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
            std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port()))
        }
        _ => addr,
    };
    format!("http://{addr}")
}

/// The admin token the local server generated: `<GATEHOUSE_DATA_DIR or ./.gatehouse>/admin-token`.
fn local_token_file() -> PathBuf {
    let dir = std::env::var_os("GATEHOUSE_DATA_DIR").map_or_else(|| PathBuf::from("./.gatehouse"), PathBuf::from);
    dir.join("admin-token")
}

/// A connected command context: the API client and the output mode.
pub struct Ctx {
    api: Api,
    json: bool,
}

impl Ctx {
    async fn connect(conn: Conn) -> Result<Self, Failure> {
        let local = local_url();
        let url = conn.url.clone().unwrap_or_else(|| local.clone());
        let is_local = url.trim_end_matches('/') == local;
        let auth = if conn.sigv4 {
            Auth::SigV4(Box::new(sigv4::Signer::from_environment(conn.region.clone()).await?))
        } else if let Some(path) = &conn.token_file {
            let t = std::fs::read_to_string(path)
                .map_err(|e| Failure::Usage(format!("--token-file: cannot read {}: {e}", path.display())))?;
            match t.lines().next().map(str::trim).filter(|t| !t.is_empty()) {
                Some(t) => Auth::Bearer(t.to_owned()),
                None => return Err(Failure::Usage(format!("--token-file: {} holds no token", path.display()))),
            }
        } else if let Some(t) = conn.token.filter(|t| !t.trim().is_empty()) {
            Auth::Bearer(t.trim().to_owned())
        } else if is_local {
            let path = local_token_file();
            match std::fs::read_to_string(&path) {
                Ok(t) if !t.trim().is_empty() => Auth::Bearer(t.trim().to_owned()),
                _ => {
                    return Err(Failure::Usage(format!(
                        "no admin token: pass --token or set GATEHOUSE_ADMIN_TOKEN (the local server keeps the \
                         token it generates in {}; is GATEHOUSE_DATA_DIR the server's?)",
                        path.display()
                    )));
                }
            }
        } else {
            return Err(Failure::Usage(format!(
                "no admin credential for {url}: pass --token (or set GATEHOUSE_ADMIN_TOKEN), or --sigv4 for a \
                 deployment that authorizes /admin with AWS IAM"
            )));
        };
        let api = Api::new(&url, auth, Duration::from_secs(conn.timeout))?;
        Ok(Self { api, json: conn.json })
    }

    /// `GET path?query`, expecting a JSON body.
    async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, Failure> {
        let reply = self.api.call(Method::GET, path, query, None).await?;
        reply.body.ok_or_else(|| self.empty(reply.status))
    }

    /// A call with an optional JSON body; the answer's JSON, if any.
    async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Option<Value>, Failure> {
        Ok(self.api.call(method, path, &[], body).await?.body)
    }

    /// A call that must answer JSON.
    async fn send_json(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value, Failure> {
        let reply = self.api.call(method, path, &[], body).await?;
        reply.body.ok_or_else(|| self.empty(reply.status))
    }

    fn empty(&self, status: StatusCode) -> Failure {
        Failure::Transport(format!("{} answered {status} without the expected JSON body", self.api.base()))
    }

    /// Prints `v` as pretty JSON (`--json`) or as `human(v)`.
    fn show(&self, v: &Value, human: impl FnOnce(&Value) -> String) {
        output::print(&if self.json { output::pretty(v) } else { human(v) });
    }

    /// After a change without a body of interest (a delete): the body with `--json`, else `message`.
    fn done(&self, body: Option<Value>, message: &str) {
        match (self.json, body) {
            (true, Some(b)) => output::print(&output::pretty(&b)),
            (true, None) => {}
            (false, _) => output::print(&format!("{message}\n")),
        }
    }

    /// A listing: pretty JSON, or the table and, on stderr, how to get the next page.
    fn list(&self, v: &Value, key: &str, fields: &[(&str, &str)]) {
        self.list_paged(v, key, fields, false);
    }

    /// [`Ctx::list`], naming the next page by offset when the caller pages by offset.
    fn list_paged(&self, v: &Value, key: &str, fields: &[(&str, &str)], by_offset: bool) {
        let empty = Vec::new();
        let items = v.get(key).and_then(Value::as_array).unwrap_or(&empty);
        self.show(v, |_| output::table_of(items, fields));
        if !self.json {
            next_page_hint(v, by_offset);
        }
    }
}

/// Tells (on stderr) how to fetch the next page of a listing, if the server says there is one.
fn next_page_hint(v: &Value, by_offset: bool) {
    let cursor = v.get("next").and_then(Value::as_str).filter(|n| !n.is_empty());
    let offset = v.get("next_offset").and_then(Value::as_u64);
    match (cursor, offset) {
        (_, Some(o)) if by_offset || cursor.is_none() => eprintln!("more results: repeat with --offset {o}"),
        (Some(c), _) => eprintln!("more results: repeat with --cursor {c}"),
        _ => {}
    }
}

/// `--limit` and `--cursor` of a cursor-paged listing.
#[derive(Debug, Args)]
pub struct Page {
    /// Largest number of items to return
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
    /// Where to continue: the `next` value of the previous page
    #[arg(long, value_name = "CURSOR")]
    pub cursor: Option<String>,
}

impl Page {
    fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if let Some(l) = self.limit {
            q.push(("limit", l.to_string()));
        }
        if let Some(c) = &self.cursor {
            q.push(("cursor", c.clone()));
        }
        q
    }
}

/// `KEY=VALUE`: the value as JSON when it parses (`true`, `5`, `null`, `["a"]`), else as text.
pub fn key_value(s: &str) -> Result<(String, Value), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("expected KEY=VALUE, got `{s}`"))?;
    if k.is_empty() {
        return Err(format!("expected KEY=VALUE with a non-empty KEY, got `{s}`"));
    }
    let value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_owned()));
    Ok((k.to_owned(), value))
}

/// A JSON object given on the command line, or `@path` to read it from a file.
pub fn json_object(s: &str) -> Result<Map<String, Value>, String> {
    let text = match s.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?,
        None => s.to_owned(),
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err("expected a JSON object".into()),
        Err(e) => Err(format!("not JSON: {e}")),
    }
}

/// Reads a secret from standard input (one line; the final newline is dropped).
pub fn read_stdin_secret(what: &str) -> Result<String, Failure> {
    let mut s = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
        .map_err(|e| Failure::Usage(format!("cannot read the {what} from standard input: {e}")))?;
    let s = s.strip_suffix('\n').map(|s| s.strip_suffix('\r').unwrap_or(s)).unwrap_or(&s).to_owned();
    if s.is_empty() {
        return Err(Failure::Usage(format!("standard input held no {what}")));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn key_values_take_json_or_text() {
        assert_eq!(key_value("a=5").unwrap(), ("a".into(), json!(5)));
        assert_eq!(key_value("a.b=true").unwrap(), ("a.b".into(), json!(true)));
        assert_eq!(key_value("a=x y").unwrap(), ("a".into(), json!("x y")));
        assert_eq!(key_value("a=").unwrap(), ("a".into(), json!("")));
        assert_eq!(key_value("a=null").unwrap(), ("a".into(), Value::Null));
        assert!(key_value("=1").is_err());
        assert!(key_value("a").is_err());
    }

    /// Client ids, jtis and kids are base64url and may start with `-`.
    #[test]
    fn ids_may_start_with_a_hyphen() {
        for args in [
            &["gatehouse", "clients", "get", "-Cx1"][..],
            &["gatehouse", "clients", "delete", "-Cx1"],
            &["gatehouse", "clients", "rotate-secret", "-Cx1"],
            &["gatehouse", "tokens", "count", "--client-id", "-Cx1"],
            &["gatehouse", "tokens", "revoke", "--jti", "-J1"],
            &["gatehouse", "keys", "retire", "-K1"],
            &["gatehouse", "users", "revoke-consent", "alice", "-Cx1"],
        ] {
            assert!(Cli::try_parse_from(args).is_ok(), "{args:?}");
        }
    }

    #[test]
    fn no_arguments_means_the_server() {
        let cli = Cli::try_parse_from(["gatehouse"]).unwrap();
        assert!(cli.command.is_none());
        let cli = Cli::try_parse_from(["gatehouse", "serve"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Serve)));
    }
}
