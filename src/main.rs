//! The local all-in-one server: every endpoint on one port, the embedded store and a local
//! signing key in the data directory. `cargo run --release` starts Gatehouse.
//!
//! The same binary is the operator CLI (`gatehouse clients list`, ... in `cli/`), which talks to
//! a local or deployed tenant's admin API; without a command it runs the server.
mod cli;

use std::process::ExitCode;

use gatehouse::{AppState, Config};

/// mimalloc rather than glibc's malloc: a request allocates and frees a few dozen small buffers
/// (headers, form, JSON), and glibc's allocator was about a tenth of the local server's CPU under
/// load (docs/performance.md, "Where the time goes").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = cli::Cli::parse_args();
    match args.command {
        None | Some(cli::Command::Serve) => match serve() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                // As `main() -> Result` reports it.
                eprintln!("Error: {e:?}");
                ExitCode::FAILURE
            }
        },
        Some(cli::Command::CreateTable) => match create_table() {
            Ok(table) => {
                println!("created table {table}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("Error: {e}");
                ExitCode::FAILURE
            }
        },
        Some(cli::Command::UpgradeTable) => match upgrade_table() {
            Ok((table, done)) => {
                println!("upgraded table {table}: listing keys added to {done}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("Error: {e}");
                ExitCode::FAILURE
            }
        },
        Some(command) => cli::run(args.conn, command),
    }
}

/// `gatehouse create-table`: the table `GATEHOUSE_TABLE_NAME` names, with the schema the stack
/// declares, in the DynamoDB the standard AWS variables point at.
#[tokio::main(flavor = "current_thread")]
async fn create_table() -> Result<String, String> {
    let table = table_name()?;
    gatehouse::store::dynamo::create_table_from_env(&table)
        .await
        .map_err(|e| format!("creating table {table}: {e}"))?;
    Ok(table)
}

/// `gatehouse upgrade-table`: brings the items of the table `GATEHOUSE_TABLE_NAME` that earlier
/// versions wrote up to date (`gatehouse::store::dynamo::upgrade_table`).
#[tokio::main(flavor = "current_thread")]
async fn upgrade_table() -> Result<(String, gatehouse::store::dynamo::Upgraded), String> {
    let table = table_name()?;
    let done = gatehouse::store::dynamo::upgrade_table_from_env(&table)
        .await
        .map_err(|e| format!("upgrading table {table}: {e}"))?;
    Ok((table, done))
}

/// The table the table commands work on.
fn table_name() -> Result<String, String> {
    std::env::var("GATEHOUSE_TABLE_NAME").map_err(|_| "GATEHOUSE_TABLE_NAME is not set".to_owned())
}

/// Runs the local server until Ctrl-C.
#[tokio::main]
async fn serve() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    gatehouse::telemetry::init_local();
    let mut config = Config::from_env().map_err(|e| format!("configuration error: {e}"))?;
    let generated = match config.admin_token {
        Some(_) => false,
        None => {
            let token = gatehouse::store::load_or_create_admin_token(&config.data_dir)
                .map_err(|e| format!("admin token: {e}"))?;
            config.admin_token = Some(token.into());
            true
        }
    };
    let state = AppState::build(config).await?;
    let listener = tokio::net::TcpListener::bind(state.config.addr)
        .await
        .map_err(|e| format!("cannot listen on {} (GATEHOUSE_ADDR): {e}", state.config.addr))?;
    print_banner(&state, generated);
    gatehouse::audit::record(gatehouse::audit::AuditEvent::Started { component: "local-server" });
    // hyper with a header read (and keep-alive idle) timeout, which `axum::serve` lacks.
    gatehouse::server::serve(listener, gatehouse::endpoints::all(state), shutdown_signal()).await;
    gatehouse::audit::record(gatehouse::audit::AuditEvent::Stopped { component: "local-server" });
    Ok(())
}

/// Ctrl-C or `SIGTERM` (a service manager, a container runtime): finish the open requests, then
/// write the 20002 audit line.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM can be handled");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

fn print_banner(state: &AppState, generated: bool) {
    let c = &state.config;
    println!("Gatehouse is running (tenant `{}`, data in {})", c.tenant, c.data_dir.display());
    println!("  issuer         {}", c.issuer);
    for (name, path) in [
        ("token", "/token"),
        ("introspect", "/introspect"),
        ("revoke", "/revoke"),
        ("authorize", "/authorize"),
        ("metadata", "/.well-known/oauth-authorization-server"),
        ("jwks", "/.well-known/jwks.json"),
        ("admin", "/admin"),
    ] {
        println!("  {name:<14} {}", c.endpoint(path));
    }
    // The token itself is never printed: stdout is where the audit lines go, and a log
    // collector would keep it.
    let admin = if generated {
        let path = c.data_dir.join("admin-token");
        println!("Admin API token: in {} (mode 0600)", path.display());
        format!("$(cat {})", path.display())
    } else {
        println!("Admin API token: GATEHOUSE_ADMIN_TOKEN");
        "$GATEHOUSE_ADMIN_TOKEN".to_owned()
    };
    println!("Try:\n  curl -s -X POST {}/admin/clients -H \"Authorization: Bearer {admin}\" \\", c.issuer);
    println!(
        "    -H 'Content-Type: application/json' -d '{{\"grant_types\":[\"client_credentials\"],\"scope\":\"read\"}}'"
    );
}
