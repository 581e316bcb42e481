//! `gatehouse resource-servers ...`: `/admin/resource-servers` (the identifier, an absolute URI,
//! is percent-encoded as one path segment).
use clap::Subcommand;
use http::Method;
use serde_json::{Map, Value, json};

use super::api::enc;
use super::{Ctx, Failure, Page, output};

const FIELDS: &[&str] = &["identifier", "name", "scopes", "created_at"];

const COLUMNS: &[(&str, &str)] =
    &[("identifier", "identifier"), ("name", "name"), ("scopes", "scopes"), ("created_at", "created_at")];

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Register an API: its identifier (an absolute URI) is the audience of its tokens
    Create {
        identifier: String,
        /// A display name
        #[arg(long)]
        name: Option<String>,
        /// A scope it defines, NAME or NAME=DESCRIPTION (repeat for several)
        #[arg(long = "scope", value_name = "NAME[=DESCRIPTION]")]
        scopes: Vec<String>,
    },
    /// List resource servers
    List(Page),
    /// Show a resource server and its scopes
    Get { identifier: String },
    /// Change a resource server's name or scopes (a JSON merge patch)
    Update {
        identifier: String,
        /// A new display name
        #[arg(long, conflicts_with = "no_name")]
        name: Option<String>,
        /// Remove the display name
        #[arg(long)]
        no_name: bool,
        /// Replace the scopes with these, NAME or NAME=DESCRIPTION (repeat for several)
        #[arg(long = "scope", value_name = "NAME[=DESCRIPTION]")]
        scopes: Vec<String>,
    },
    /// Delete a resource server
    Delete { identifier: String },
}

fn path(identifier: &str) -> String {
    format!("/admin/resource-servers/{}", enc(identifier))
}

fn scopes(list: &[String]) -> Value {
    Value::Array(
        list.iter()
            .map(|s| match s.split_once('=') {
                Some((name, description)) => json!({ "name": name, "description": description }),
                None => json!(s),
            })
            .collect(),
    )
}

fn show(ctx: &Ctx, v: &Value) {
    ctx.show(v, |v| {
        let mut out = output::fields(v, FIELDS, false);
        // The scopes with their descriptions, one per line, under the summary.
        let described: Vec<Vec<String>> = v
            .get("scopes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|s| {
                let d = s.get("description").and_then(Value::as_str)?;
                Some(vec![s.get("name").and_then(Value::as_str).unwrap_or("-").to_owned(), d.to_owned()])
            })
            .collect();
        if !described.is_empty() {
            out.push('\n');
            out.push_str(&output::table(&["scope", "description"], &described));
        }
        out
    });
}

pub async fn run(ctx: &Ctx, cmd: Cmd) -> Result<(), Failure> {
    match cmd {
        Cmd::Create { identifier, name, scopes: s } => {
            let mut body = json!({ "identifier": identifier, "scopes": scopes(&s) });
            if let Some(n) = name {
                body["name"] = json!(n);
            }
            let v = ctx.send_json(Method::POST, "/admin/resource-servers", Some(&body)).await?;
            show(ctx, &v);
        }
        Cmd::List(page) => {
            let v = ctx.get("/admin/resource-servers", &page.query()).await?;
            ctx.list(&v, "resource_servers", COLUMNS);
        }
        Cmd::Get { identifier } => {
            let v = ctx.get(&path(&identifier), &[]).await?;
            show(ctx, &v);
        }
        Cmd::Update { identifier, name, no_name, scopes: s } => {
            let mut patch = Map::new();
            if let Some(n) = name {
                patch.insert("name".into(), json!(n));
            }
            if no_name {
                patch.insert("name".into(), Value::Null);
            }
            if !s.is_empty() {
                patch.insert("scopes".into(), scopes(&s));
            }
            if patch.is_empty() {
                return Err(Failure::Usage("nothing to change: give --name, --no-name or --scope".into()));
            }
            let v = ctx.send_json(Method::PATCH, &path(&identifier), Some(&Value::Object(patch))).await?;
            show(ctx, &v);
        }
        Cmd::Delete { identifier } => {
            let body = ctx.send(Method::DELETE, &path(&identifier), None).await?;
            ctx.done(body, &format!("deleted resource server {identifier}"));
        }
    }
    Ok(())
}
