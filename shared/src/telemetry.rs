//! Logging: JSON lines for CloudWatch (Lambda) or readable text (local server), filtered by
//! `GATEHOUSE_LOG` (tracing `EnvFilter` syntax, default `info`).
use tracing_subscriber::EnvFilter;

fn filter() -> EnvFilter {
    EnvFilter::try_from_env("GATEHOUSE_LOG").unwrap_or_else(|_| EnvFilter::new("info"))
}

/// JSON log lines, for Lambda.
pub fn init() {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter())
        .with_current_span(false)
        .with_target(false)
        .without_time() // CloudWatch stamps every line
        .try_init();
}

/// Human-readable log lines, for the local server.
pub fn init_local() {
    let _ = tracing_subscriber::fmt().with_env_filter(filter()).with_target(false).try_init();
}
