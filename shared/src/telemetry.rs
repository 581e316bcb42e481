//! Logging: JSON lines for CloudWatch (Lambda) or readable text (local server), filtered by
//! `GATEHOUSE_LOG`: a level (`info`), or comma-separated `target=level` directives with an
//! optional default level (`warn,gatehouse=debug`), as tracing-subscriber's `Targets` parses
//! them. (`Targets` rather than `EnvFilter`: no span/field filters, but no regex engine in every
//! Lambda binary either — it was about 0.3 MB of each zip.)
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The filter `GATEHOUSE_LOG` names; `info` when it is unset, and `info` with one warning line
/// when it cannot be parsed (a typo must not silence the audit trail).
fn filter() -> (Targets, Option<String>) {
    let default = || Targets::new().with_default(LevelFilter::INFO);
    match std::env::var("GATEHOUSE_LOG") {
        Err(_) => (default(), None),
        Ok(v) => match v.parse::<Targets>() {
            Ok(t) => (t, None),
            Err(e) => (default(), Some(format!("GATEHOUSE_LOG is not a valid filter ({e}); logging at info"))),
        },
    }
}

/// JSON log lines, for Lambda.
pub fn init() {
    let (targets, warning) = filter();
    let fmt = tracing_subscriber::fmt::layer().json().with_current_span(false).with_target(false).without_time(); // CloudWatch stamps every line
    let _ = tracing_subscriber::registry().with(fmt).with(targets).try_init();
    if let Some(w) = warning {
        tracing::warn!("{w}");
    }
}

/// Human-readable log lines, for the local server.
pub fn init_local() {
    let (targets, warning) = filter();
    let fmt = tracing_subscriber::fmt::layer().with_target(false);
    let _ = tracing_subscriber::registry().with(fmt).with(targets).try_init();
    if let Some(w) = warning {
        tracing::warn!("{w}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_parse_as_documented() {
        for ok in ["info", "warn,gatehouse=debug", "gatehouse=trace", "off", "error,aws_smithy_runtime=off"] {
            assert!(ok.parse::<Targets>().is_ok(), "{ok}");
        }
        for bad in ["gatehouse=loud", "=info=debug"] {
            assert!(bad.parse::<Targets>().is_err(), "{bad}");
        }
    }
}
