//! Logging: JSON lines for CloudWatch (Lambda) or readable text (local server), filtered by
//! `GATEHOUSE_LOG`: a level (`info`), or comma-separated `target=level` directives with an
//! optional default level (`warn,gatehouse=debug`), as tracing-subscriber's `Targets` parses
//! them. (`Targets` rather than `EnvFilter`: no span/field filters, but no regex engine in every
//! Lambda binary either — it was about 0.3 MB of each zip.)
//!
//! `trace` is for Gatehouse's own code only: other crates log at most `debug` whatever the
//! filter says, because at `trace` they write what passes through them — the Lambda runtime each
//! API Gateway event (client secrets, tokens, passwords, cookies), the AWS SDK each request body
//! (a KMS `Encrypt` of a sealed signing key: the private key) — and no secret or token may ever
//! reach a log line.
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The filter `GATEHOUSE_LOG` names; `info` when it is unset, and `info` with one warning line
/// when it cannot be parsed (a typo must not silence the audit trail).
fn filter() -> (Targets, Option<String>) {
    let default = || Targets::new().with_default(LevelFilter::INFO);
    match std::env::var("GATEHOUSE_LOG") {
        Err(_) => (default(), None),
        Ok(v) if v.trim().is_empty() => (default(), None),
        Ok(v) => match parse(&v) {
            Ok(t) => (t, None),
            Err(e) => (default(), Some(format!("GATEHOUSE_LOG is not a valid filter ({e}); logging at info"))),
        },
    }
}

/// `Targets` syntax, stricter: `Targets` reads a bare word that is not a level as a target
/// enabled at TRACE, so a typo (`wanr`) would silence every other log line. Here a bare word
/// must be a level.
fn parse(v: &str) -> Result<Targets, String> {
    for directive in v.split(',').map(str::trim) {
        let level = match directive.split_once('=') {
            None if directive.is_empty() => return Err("an empty directive".into()),
            None => directive,
            Some((target, level)) if !target.is_empty() => level,
            Some(_) => return Err(format!("`{directive}` names no target")),
        };
        if level.is_empty() || level.parse::<LevelFilter>().is_err() {
            return Err(format!("`{level}` is not a level (trace, debug, info, warn, error, off)"));
        }
    }
    v.parse::<Targets>().map(own_trace_only).map_err(|e| e.to_string())
}

/// The crates of this workspace (library, local server, Lambda functions): the only targets
/// allowed `trace`. (`Targets` matches by prefix; no dependency's name starts with one of these,
/// `Cargo.lock` says.)
const OWN_CRATES: &[&str] =
    &["gatehouse", "gatehouse_server", "token", "introspect", "revoke", "authorize", "token_admin"];

fn own(target: &str) -> bool {
    OWN_CRATES.iter().any(|c| target == *c || target.strip_prefix(c).is_some_and(|rest| rest.starts_with("::")))
}

/// `t` with every other crate's level capped at `debug` (module docs); a `trace` default stays
/// `trace` for this workspace's crates.
fn own_trace_only(t: Targets) -> Targets {
    let cap = |l: LevelFilter| l.min(LevelFilter::DEBUG);
    let default = t.default_level().unwrap_or(LevelFilter::OFF);
    let mut capped = Targets::new().with_default(cap(default));
    let mut named = Vec::new();
    for (target, level) in t.iter() {
        named.push(target.to_owned());
        capped = capped.with_target(target.to_owned(), if own(target) { level } else { cap(level) });
    }
    if default == LevelFilter::TRACE {
        for c in OWN_CRATES.iter().filter(|c| !named.iter().any(|n| n == *c)) {
            capped = capped.with_target(*c, LevelFilter::TRACE);
        }
    }
    capped
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
        for ok in ["info", "WARN", "warn,gatehouse=debug", "gatehouse=trace", "off", "error,aws_smithy_runtime=off"] {
            assert!(parse(ok).is_ok(), "{ok}");
        }
        for bad in ["gatehouse=loud", "=info=debug", "wanr", "info,gatehouse", "", "gatehouse=", "info,"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let t = parse("warn,gatehouse=debug").unwrap();
        assert!(t.would_enable("gatehouse::store", &tracing::Level::DEBUG));
        assert!(!t.would_enable("hyper", &tracing::Level::INFO));
    }

    /// Other crates never log at `trace` (the Lambda runtime's events, the SDK's request
    /// bodies): neither by the default level nor by their own directive.
    #[test]
    fn only_gatehouse_logs_at_trace() {
        let trace = &tracing::Level::TRACE;
        let debug = &tracing::Level::DEBUG;
        for v in ["trace", "lambda_runtime=trace,aws_smithy_runtime=trace,trace", "info,aws_sigv4=trace"] {
            let t = parse(v).unwrap();
            for dep in ["lambda_runtime::layers::api_response", "aws_smithy_runtime::client::orchestrator", "aws_sigv4"]
            {
                assert!(!t.would_enable(dep, trace), "{v}: {dep}");
            }
        }
        let t = parse("trace").unwrap();
        assert!(t.would_enable("gatehouse::store::dynamo", trace));
        assert!(t.would_enable("token", trace));
        assert!(t.would_enable("aws_smithy_runtime::client::orchestrator", debug));
        let t = parse("info,gatehouse=trace,aws_smithy_runtime=debug").unwrap();
        assert!(t.would_enable("gatehouse::keys", trace));
        assert!(t.would_enable("aws_smithy_runtime", debug));
        assert!(!t.would_enable("hyper", debug));
    }
}
