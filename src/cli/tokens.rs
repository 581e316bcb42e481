//! `gatehouse tokens ...`: the seed's token-management operations (`/admin/tokens`). Listings
//! show metadata (the `jti`), never a token.
use clap::{Args, Subcommand};
use http::Method;
use serde_json::{Value, json};

use super::{Ctx, Failure, output};

const COLUMNS: &[(&str, &str)] = &[
    ("jti", "jti"),
    ("type", "type"),
    ("client_id", "client_id"),
    ("end_user", "end_user"),
    ("scope", "scope"),
    ("audience", "aud"),
    ("grant_type", "grant_type"),
    ("issued_at", "iat"),
    ("expires_at", "exp"),
];

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// List active tokens of a client and/or an end user (the soonest to expire first)
    List {
        #[command(flatten)]
        filter: Filter,
        /// Skip this many tokens
        #[arg(long, value_name = "N")]
        offset: Option<u64>,
        /// Largest number of tokens to return (server default 100)
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
        /// Where to continue: the `next` value of the previous page
        #[arg(long, value_name = "CURSOR", conflicts_with = "offset")]
        cursor: Option<String>,
    },
    /// Count active tokens of a client and/or an end user
    Count {
        #[command(flatten)]
        filter: Filter,
    },
    /// Revoke one token, named by its jti or given on standard input (a refresh token takes its
    /// family)
    Revoke {
        /// The token's id, as listed
        #[arg(
            long,
            required_unless_present = "token_stdin",
            conflicts_with = "token_stdin",
            allow_hyphen_values = true
        )]
        jti: Option<String>,
        /// Read the token itself (access or refresh) from standard input
        #[arg(long)]
        token_stdin: bool,
    },
    /// Revoke every active token of a client and/or an end user
    RevokeAll {
        #[command(flatten)]
        who: Who,
    },
}

/// `--type` and whose tokens.
#[derive(Debug, Args)]
pub struct Filter {
    /// Token type
    #[arg(long = "type", value_name = "TYPE", value_parser = ["access", "refresh"], default_value = "access")]
    kind: String,
    #[command(flatten)]
    who: Who,
}

/// A client, an end user, or both.
#[derive(Debug, Args)]
#[group(required = true, multiple = true)]
pub struct Who {
    /// Tokens issued to this client
    #[arg(long, value_name = "CLIENT_ID", allow_hyphen_values = true)]
    client_id: Option<String>,
    /// Tokens of this end user (resource owner)
    #[arg(long, value_name = "USERNAME", allow_hyphen_values = true)]
    end_user: Option<String>,
}

impl Filter {
    fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = vec![("type", self.kind.clone())];
        if let Some(c) = &self.who.client_id {
            q.push(("client_id", c.clone()));
        }
        if let Some(u) = &self.who.end_user {
            q.push(("end_user", u.clone()));
        }
        q
    }
}

pub async fn run(ctx: &Ctx, cmd: Cmd) -> Result<(), Failure> {
    match cmd {
        Cmd::List { filter, offset, limit, cursor } => {
            let mut q = filter.query();
            let by_offset = offset.is_some();
            q.extend(offset.map(|o| ("offset", o.to_string())));
            q.extend(limit.map(|l| ("limit", l.to_string())));
            q.extend(cursor.map(|c| ("cursor", c)));
            let v = ctx.get("/admin/tokens", &q).await?;
            ctx.list_paged(&v, "tokens", COLUMNS, by_offset);
        }
        Cmd::Count { filter } => {
            let v = ctx.get("/admin/tokens/count", &filter.query()).await?;
            ctx.show(&v, |v| format!("{}\n", output::cell("count", v.get("count"))));
        }
        Cmd::Revoke { jti, token_stdin } => {
            let body = match jti {
                Some(j) if !token_stdin => json!({ "jti": j }),
                _ => json!({ "token": super::read_stdin_secret("token")? }),
            };
            let v = ctx.send_json(Method::POST, "/admin/tokens/revoke", Some(&body)).await?;
            ctx.show(&v, |v| match v.get("revoked").and_then(Value::as_bool) {
                Some(true) => "revoked\n".into(),
                _ => "not revoked: no active token matches (unknown, expired or already revoked)\n".into(),
            });
        }
        Cmd::RevokeAll { who } => {
            let mut body = json!({});
            if let Some(c) = who.client_id {
                body["client_id"] = json!(c);
            }
            if let Some(u) = who.end_user {
                body["end_user"] = json!(u);
            }
            let v = ctx.send_json(Method::POST, "/admin/tokens/revoke-all", Some(&body)).await?;
            ctx.show(&v, |v| match v.get("revoked").and_then(Value::as_u64) {
                Some(1) => "revoked 1 token\n".into(),
                Some(n) => format!("revoked {n} tokens\n"),
                None => output::fields(v, &[], false),
            });
        }
    }
    Ok(())
}
