//! `gatehouse keys ...`: the signing-key ring (`/admin/keys`).
use clap::Subcommand;
use http::Method;
use serde_json::{Value, json};

use super::api::enc;
use super::{Ctx, Failure, output};

const FIELDS: &[&str] = &["kid", "generation", "alg", "status", "created_at", "active_from", "retired_at"];

const COLUMNS: &[(&str, &str)] = &[
    ("kid", "kid"),
    ("generation", "generation"),
    ("alg", "alg"),
    ("status", "status"),
    ("created_at", "created_at"),
    ("active_from", "active_from"),
    ("retired_at", "retired_at"),
];

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// List the signing keys (published, active, retired)
    List,
    /// Make a new signing key; it signs once activated
    Rotate {
        /// Seconds before the new key starts signing (published in the JWKS meanwhile)
        #[arg(long, value_name = "SECONDS")]
        activate_after: Option<u64>,
    },
    /// Retire a key: stop publishing it
    Retire {
        #[arg(allow_hyphen_values = true)]
        kid: String,
        /// Retire even if tokens it signed may still be valid
        #[arg(long)]
        force: bool,
    },
}

/// A key ring answer as a table, or any other object as fields.
fn human(v: &Value) -> String {
    match v.get("keys").and_then(Value::as_array) {
        Some(keys) => output::table_of(keys, COLUMNS),
        None => match v.get("key") {
            Some(k @ Value::Object(_)) => output::fields(k, FIELDS, false),
            _ => output::fields(v, FIELDS, false),
        },
    }
}

pub async fn run(ctx: &Ctx, cmd: Cmd) -> Result<(), Failure> {
    match cmd {
        Cmd::List => {
            let v = ctx.get("/admin/keys", &[]).await?;
            ctx.show(&v, human);
        }
        Cmd::Rotate { activate_after } => {
            let body = match activate_after {
                Some(s) => json!({ "activate_after": s }),
                None => json!({}),
            };
            let v = ctx.send(Method::POST, "/admin/keys/rotate", Some(&body)).await?;
            match v {
                Some(v) => ctx.show(&v, human),
                None => ctx.done(None, "rotated: a new signing key was made"),
            }
        }
        Cmd::Retire { kid, force } => {
            let body = if force { json!({ "force": true }) } else { json!({}) };
            let v = ctx.send(Method::POST, &format!("/admin/keys/{}/retire", enc(&kid)), Some(&body)).await?;
            match v {
                Some(v) => ctx.show(&v, human),
                None => ctx.done(None, &format!("retired key {kid}")),
            }
        }
    }
    Ok(())
}
