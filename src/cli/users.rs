//! `gatehouse users ...`: `/admin/users` and a user's consents.
use clap::{Args, Subcommand};
use http::Method;
use serde_json::{Map, Value, json};

use super::api::enc;
use super::{Ctx, Failure, Page, output};

const FIELDS: &[&str] = &["username", "enabled", "groups", "attributes", "created_at", "updated_at"];

const COLUMNS: &[(&str, &str)] =
    &[("username", "username"), ("enabled", "enabled"), ("groups", "groups"), ("created_at", "created_at")];

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Create a user (the password is hashed with Argon2id by the server)
    Create {
        username: String,
        #[command(flatten)]
        password: Password,
        /// An attribute, KEY=VALUE (VALUE as JSON when it parses, else text); repeat for several
        #[arg(long = "attribute", value_name = "KEY=VALUE", value_parser = super::key_value)]
        attributes: Vec<(String, Value)>,
        /// Make the user a member of this existing group (repeat or separate with commas)
        #[arg(long = "group", value_name = "GROUP", value_delimiter = ',')]
        groups: Vec<String>,
        /// Create the user disabled (cannot sign in)
        #[arg(long)]
        disabled: bool,
    },
    /// List users
    List(Page),
    /// Show a user (never the password hash)
    Get { username: String },
    /// Change a user's password, attributes, group memberships or enabled flag
    Update {
        username: String,
        #[command(flatten)]
        password: Password,
        /// Replace the attributes with these, KEY=VALUE (repeat for several)
        #[arg(long = "attribute", value_name = "KEY=VALUE", value_parser = super::key_value)]
        attributes: Vec<(String, Value)>,
        /// Replace the user's group memberships with these existing groups (repeat or separate with commas)
        #[arg(long = "group", value_name = "GROUP", value_delimiter = ',', conflicts_with = "no_groups")]
        groups: Vec<String>,
        /// End every group membership of the user
        #[arg(long)]
        no_groups: bool,
        /// Allow the user to sign in
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        /// Stop the user from signing in
        #[arg(long)]
        disable: bool,
    },
    /// Delete a user, their consents and tokens
    Delete { username: String },
    /// List the groups the user belongs to
    Groups { username: String },
    /// List the user's persisted consents
    Consents { username: String },
    /// Revoke the user's consent to one client
    RevokeConsent {
        username: String,
        #[arg(allow_hyphen_values = true)]
        client_id: String,
    },
}

/// A password, given on the command line or (better: not in the process list) on stdin.
#[derive(Debug, Args)]
pub struct Password {
    /// The password (visible to other local users in the process list: prefer --password-stdin)
    #[arg(long, conflicts_with = "password_stdin")]
    password: Option<gatehouse::model::Redacted<String>>,
    /// Read the password from standard input
    #[arg(long)]
    password_stdin: bool,
}

impl Password {
    fn read(self) -> Result<Option<String>, Failure> {
        if self.password_stdin {
            return super::read_stdin_secret("password").map(Some);
        }
        Ok(self.password.map(|p| p.0))
    }
}

fn path(username: &str) -> String {
    format!("/admin/users/{}", enc(username))
}

fn attributes(pairs: Vec<(String, Value)>) -> Map<String, Value> {
    pairs.into_iter().collect()
}

pub async fn run(ctx: &Ctx, cmd: Cmd) -> Result<(), Failure> {
    match cmd {
        Cmd::Create { username, password, attributes: attrs, groups, disabled } => {
            let password = password
                .read()?
                .ok_or_else(|| Failure::Usage("a new user needs --password or --password-stdin".into()))?;
            let mut body = json!({ "username": username, "password": password });
            if !attrs.is_empty() {
                body["attributes"] = Value::Object(attributes(attrs));
            }
            if !groups.is_empty() {
                body["groups"] = json!(groups);
            }
            if disabled {
                body["enabled"] = json!(false);
            }
            let v = ctx.send_json(Method::POST, "/admin/users", Some(&body)).await?;
            ctx.show(&v, |v| output::fields(v, FIELDS, false));
        }
        Cmd::List(page) => {
            let v = ctx.get("/admin/users", &page.query()).await?;
            ctx.list(&v, "users", COLUMNS);
        }
        Cmd::Get { username } => {
            let v = ctx.get(&path(&username), &[]).await?;
            ctx.show(&v, |v| output::fields(v, FIELDS, false));
        }
        Cmd::Update { username, password, attributes: attrs, groups, no_groups, enable, disable } => {
            let mut patch = Map::new();
            if let Some(p) = password.read()? {
                patch.insert("password".into(), json!(p));
            }
            if !attrs.is_empty() {
                patch.insert("attributes".into(), Value::Object(attributes(attrs)));
            }
            if !groups.is_empty() || no_groups {
                patch.insert("groups".into(), json!(groups));
            }
            if enable || disable {
                patch.insert("enabled".into(), json!(enable));
            }
            if patch.is_empty() {
                return Err(Failure::Usage("nothing to change: give at least one option".into()));
            }
            let v = ctx.send_json(Method::PATCH, &path(&username), Some(&Value::Object(patch))).await?;
            ctx.show(&v, |v| output::fields(v, FIELDS, false));
        }
        Cmd::Delete { username } => {
            let body = ctx.send(Method::DELETE, &path(&username), None).await?;
            ctx.done(body, &format!("deleted user {username}"));
        }
        Cmd::Groups { username } => {
            let v = ctx.get(&format!("{}/groups", path(&username)), &[]).await?;
            ctx.show(&v, |v| {
                let rows: Vec<Vec<String>> = v
                    .get("groups")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|g| vec![g.as_str().map_or_else(|| output::cell("name", g.get("name")), str::to_owned)])
                    .collect();
                output::table(&["group"], &rows)
            });
        }
        Cmd::Consents { username } => {
            let v = ctx.get(&format!("{}/consents", path(&username)), &[]).await?;
            ctx.list(&v, "consents", &[("client_id", "client_id"), ("scope", "scope"), ("granted_at", "granted_at")]);
        }
        Cmd::RevokeConsent { username, client_id } => {
            let p = format!("{}/consents/{}", path(&username), enc(&client_id));
            let body = ctx.send(Method::DELETE, &p, None).await?;
            ctx.done(body, &format!("revoked the consent of {username} to client {client_id}"));
        }
    }
    Ok(())
}
