//! `gatehouse groups ...`: `/admin/groups` and their members.
use clap::Subcommand;
use http::Method;
use serde_json::{Map, Value, json};

use super::api::enc;
use super::{Ctx, Failure, Page, output};

const FIELDS: &[&str] = &["name", "description", "members", "created_at", "updated_at"];

const COLUMNS: &[(&str, &str)] = &[("name", "name"), ("description", "description"), ("created_at", "created_at")];

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Create a group
    Create {
        name: String,
        /// What the group is for
        #[arg(long)]
        description: Option<String>,
    },
    /// List groups
    List(Page),
    /// Show a group
    Get { name: String },
    /// Change a group's description (a JSON merge patch)
    Update {
        name: String,
        /// The new description
        #[arg(long, required_unless_present = "no_description", conflicts_with = "no_description")]
        description: Option<String>,
        /// Remove the description
        #[arg(long)]
        no_description: bool,
    },
    /// Delete a group
    Delete { name: String },
    /// List a group's members
    Members {
        name: String,
        #[command(flatten)]
        page: Page,
    },
    /// Add a user to a group
    AddMember { name: String, username: String },
    /// Remove a user from a group
    RemoveMember { name: String, username: String },
}

fn path(name: &str) -> String {
    format!("/admin/groups/{}", enc(name))
}

/// Members as `USERNAME` rows, whether the server lists names or user objects.
fn members_table(v: &Value) -> String {
    let items = ["members", "users"].iter().find_map(|k| v.get(*k).and_then(Value::as_array));
    let rows: Vec<Vec<String>> = items
        .into_iter()
        .flatten()
        .map(|m| match m {
            Value::String(s) => vec![s.clone()],
            other => vec![output::cell("username", other.get("username"))],
        })
        .collect();
    output::table(&["username"], &rows)
}

pub async fn run(ctx: &Ctx, cmd: Cmd) -> Result<(), Failure> {
    match cmd {
        Cmd::Create { name, description } => {
            let mut body = json!({ "name": name });
            if let Some(d) = description {
                body["description"] = json!(d);
            }
            let v = ctx.send_json(Method::POST, "/admin/groups", Some(&body)).await?;
            ctx.show(&v, |v| output::fields(v, FIELDS, false));
        }
        Cmd::List(page) => {
            let v = ctx.get("/admin/groups", &page.query()).await?;
            ctx.list(&v, "groups", COLUMNS);
        }
        Cmd::Get { name } => {
            let v = ctx.get(&path(&name), &[]).await?;
            ctx.show(&v, |v| output::fields(v, FIELDS, false));
        }
        Cmd::Update { name, description, no_description: _ } => {
            // Without --description, --no-description was given: null removes it (RFC 7396).
            let patch = Value::Object(Map::from_iter([("description".to_owned(), json!(description))]));
            let v = ctx.send_json(Method::PATCH, &path(&name), Some(&patch)).await?;
            ctx.show(&v, |v| output::fields(v, FIELDS, false));
        }
        Cmd::Delete { name } => {
            let body = ctx.send(Method::DELETE, &path(&name), None).await?;
            ctx.done(body, &format!("deleted group {name}"));
        }
        Cmd::Members { name, page } => {
            let v = ctx.get(&format!("{}/members", path(&name)), &page.query()).await?;
            ctx.show(&v, members_table);
            if !ctx.json {
                super::next_page_hint(&v, false);
            }
        }
        Cmd::AddMember { name, username } => {
            let p = format!("{}/members/{}", path(&name), enc(&username));
            let body = ctx.send(Method::PUT, &p, None).await?;
            ctx.done(body, &format!("added {username} to group {name}"));
        }
        Cmd::RemoveMember { name, username } => {
            let p = format!("{}/members/{}", path(&name), enc(&username));
            let body = ctx.send(Method::DELETE, &p, None).await?;
            ctx.done(body, &format!("removed {username} from group {name}"));
        }
    }
    Ok(())
}
