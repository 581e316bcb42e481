//! `gatehouse clients ...`: `/admin/clients`.
use clap::{Args, Subcommand};
use http::Method;
use serde_json::{Map, Value, json};

use super::api::enc;
use super::{Ctx, Failure, Page, output};

/// The fields of a client, in the order shown.
const FIELDS: &[&str] = &[
    "client_id",
    "client_name",
    "token_endpoint_auth_method",
    "grant_types",
    "redirect_uris",
    "scope",
    "pre_approved_scopes",
    "access_token_lifetime",
    "refresh_token_lifetime",
    "dpop_bound_access_tokens",
    "jwks",
    "jwt_bearer_issuers",
    "client_id_issued_at",
    "client_secret",
    "client_secret_expires_at",
];

const COLUMNS: &[(&str, &str)] = &[
    ("client_id", "client_id"),
    ("name", "client_name"),
    ("auth_method", "token_endpoint_auth_method"),
    ("grant_types", "grant_types"),
    ("scope", "scope"),
];

/// Printed (on stderr) whenever the server hands out a new secret.
const SECRET_NOTE: &str = "Store the client secret now: it is shown only this once.";

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Register a client; a confidential client's generated secret is printed once
    Create(Metadata),
    /// List clients
    List(Page),
    /// Show a client's metadata (never its secret)
    Get {
        #[arg(allow_hyphen_values = true)]
        client_id: String,
    },
    /// Change a client's metadata (a JSON merge patch of the given options)
    Update {
        #[arg(allow_hyphen_values = true)]
        client_id: String,
        #[command(flatten)]
        metadata: Metadata,
    },
    /// Delete a client and revoke its tokens
    Delete {
        #[arg(allow_hyphen_values = true)]
        client_id: String,
    },
    /// Generate a new client secret (printed once)
    RotateSecret {
        #[arg(allow_hyphen_values = true)]
        client_id: String,
        /// Seconds during which the previous secret keeps working
        #[arg(long, value_name = "SECONDS")]
        overlap_seconds: Option<u64>,
    },
}

/// RFC 7591 client metadata as options.
#[derive(Debug, Args)]
pub struct Metadata {
    /// client_name
    #[arg(long)]
    name: Option<String>,
    /// grant_types: authorization_code, refresh_token, client_credentials, password (repeat or
    /// separate with commas)
    #[arg(long = "grant-type", value_name = "GRANT_TYPE", value_delimiter = ',')]
    grant_types: Vec<String>,
    /// redirect_uris (repeat for several)
    #[arg(long = "redirect-uri", value_name = "URI")]
    redirect_uris: Vec<String>,
    /// token_endpoint_auth_method: client_secret_basic (default), client_secret_post, none (public)
    #[arg(long, value_name = "METHOD")]
    auth_method: Option<String>,
    /// scope: the scopes the client may request, space-separated
    #[arg(long)]
    scope: Option<String>,
    /// pre_approved_scopes: scopes never asked for consent, space-separated
    #[arg(long, value_name = "SCOPE")]
    pre_approved_scopes: Option<String>,
    /// access_token_lifetime in seconds
    #[arg(long, value_name = "SECONDS")]
    access_token_lifetime: Option<u64>,
    /// refresh_token_lifetime in seconds
    #[arg(long, value_name = "SECONDS")]
    refresh_token_lifetime: Option<u64>,
    /// dpop_bound_access_tokens: require DPoP-bound access tokens (RFC 9449 §5.2)
    #[arg(long, value_name = "BOOL")]
    dpop_bound_access_tokens: Option<bool>,
    /// jwks: the client's public keys for private_key_jwt, a JWK Set as JSON or @FILE
    #[arg(long, value_name = "JSON|@FILE", value_parser = super::json_object)]
    jwks: Option<Map<String, Value>>,
    /// Further metadata as a JSON object or @FILE (the options above take precedence)
    #[arg(long, value_name = "JSON|@FILE", value_parser = super::json_object)]
    metadata: Option<Map<String, Value>>,
}

impl Metadata {
    fn into_json(self) -> Map<String, Value> {
        let mut m = self.metadata.unwrap_or_default();
        let mut set = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                m.insert(k.to_owned(), v);
            }
        };
        set("client_name", self.name.map(Value::from));
        set("grant_types", (!self.grant_types.is_empty()).then(|| json!(self.grant_types)));
        set("redirect_uris", (!self.redirect_uris.is_empty()).then(|| json!(self.redirect_uris)));
        set("token_endpoint_auth_method", self.auth_method.map(Value::from));
        set("scope", self.scope.map(Value::from));
        set("pre_approved_scopes", self.pre_approved_scopes.map(Value::from));
        set("access_token_lifetime", self.access_token_lifetime.map(Value::from));
        set("refresh_token_lifetime", self.refresh_token_lifetime.map(Value::from));
        set("dpop_bound_access_tokens", self.dpop_bound_access_tokens.map(Value::from));
        set("jwks", self.jwks.map(Value::Object));
        m
    }
}

fn path(id: &str) -> String {
    format!("/admin/clients/{}", enc(id))
}

/// A client as `field  value` lines; a JWK Set is summarized by its key ids.
fn human(v: &Value, secret_ok: bool) -> String {
    let mut v = v.clone();
    if let Some(keys) = v.get("jwks").and_then(|j| j.get("keys")).and_then(Value::as_array) {
        let kids: Vec<&str> = keys.iter().map(|k| k.get("kid").and_then(Value::as_str).unwrap_or("?")).collect();
        let noun = if kids.len() == 1 { "key" } else { "keys" };
        v["jwks"] = Value::from(format!("{} {noun}: {}", kids.len(), kids.join(",")));
    }
    output::fields(&v, FIELDS, secret_ok)
}

/// Shows a client just given a secret: the secret once, and a reminder on stderr.
fn show_with_secret(ctx: &Ctx, v: &Value) {
    ctx.show(v, |v| human(v, true));
    if v.get("client_secret").is_some_and(Value::is_string) {
        eprintln!("{SECRET_NOTE}");
    }
}

pub async fn run(ctx: &Ctx, cmd: Cmd) -> Result<(), Failure> {
    match cmd {
        Cmd::Create(m) => {
            let v = ctx.send_json(Method::POST, "/admin/clients", Some(&Value::Object(m.into_json()))).await?;
            show_with_secret(ctx, &v);
        }
        Cmd::List(page) => {
            let v = ctx.get("/admin/clients", &page.query()).await?;
            ctx.list(&v, "clients", COLUMNS);
        }
        Cmd::Get { client_id } => {
            let v = ctx.get(&path(&client_id), &[]).await?;
            ctx.show(&v, |v| human(v, false));
        }
        Cmd::Update { client_id, metadata } => {
            let patch = metadata.into_json();
            if patch.is_empty() {
                return Err(Failure::Usage("nothing to change: give at least one option".into()));
            }
            let v = ctx.send_json(Method::PATCH, &path(&client_id), Some(&Value::Object(patch))).await?;
            ctx.show(&v, |v| human(v, false));
        }
        Cmd::Delete { client_id } => {
            let body = ctx.send(Method::DELETE, &path(&client_id), None).await?;
            ctx.done(body, &format!("deleted client {client_id}"));
        }
        Cmd::RotateSecret { client_id, overlap_seconds } => {
            let body = match overlap_seconds {
                Some(s) => json!({ "overlap_seconds": s }),
                None => json!({}),
            };
            let v = ctx.send_json(Method::POST, &format!("{}/secret", path(&client_id)), Some(&body)).await?;
            show_with_secret(ctx, &v);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwks_are_summarized_by_kid() {
        let v = json!({"client_id": "c", "jwks": {"keys": [{"kid": "k1", "kty": "EC"}, {"kty": "EC"}]}});
        assert_eq!(human(&v, false), "client_id  c\njwks       2 keys: k1,?\n");
    }
}
