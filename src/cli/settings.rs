//! `gatehouse settings ...`: tenant settings (`/admin/settings`, changed by JSON merge patch).
use clap::Subcommand;
use http::Method;
use serde_json::{Map, Value};

use super::{Ctx, Failure, output};

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Show the settings, or one (dotted KEY for nested settings)
    Get { key: Option<String> },
    /// Change settings: KEY=VALUE (VALUE as JSON when it parses, else text; `null` resets; a
    /// dotted KEY sets a nested setting)
    Set {
        #[arg(required = true, value_name = "KEY=VALUE", value_parser = super::key_value)]
        pairs: Vec<(String, Value)>,
    },
}

/// `a.b=1` into `{"a": {"b": 1}}`, merged into `patch`.
fn insert(patch: &mut Map<String, Value>, key: &str, value: Value) -> Result<(), Failure> {
    match key.split_once('.') {
        None => {
            patch.insert(key.to_owned(), value);
            Ok(())
        }
        Some((head, rest)) if !head.is_empty() => {
            let inner = patch.entry(head.to_owned()).or_insert_with(|| Value::Object(Map::new()));
            match inner {
                Value::Object(m) => insert(m, rest, value),
                _ => Err(Failure::Usage(format!("`{head}` is set both as a value and as a group of settings"))),
            }
        }
        Some(_) => Err(Failure::Usage(format!("bad setting name `{key}`"))),
    }
}

/// The effective settings as `SETTING  VALUE  SOURCE` rows (whether each is a tenant override or
/// the deployment's default), then the version lines; any other object as dotted `key  value`.
fn human(v: &Value) -> String {
    let Some(map) = v.as_object() else { return output::pretty(v) };
    let Some(effective) = map.get("settings").and_then(Value::as_object) else {
        let mut flat = Vec::new();
        output::flatten("", map, &mut flat);
        flat.sort_by(|a, b| a.0.cmp(&b.0));
        let rows: Vec<Vec<String>> = flat.iter().map(|(k, v)| vec![k.clone(), output::cell(k, Some(v))]).collect();
        return output::table(&["setting", "value"], &rows);
    };
    let overridden = |k: &str| map.get("overrides").and_then(|o| o.get(k)).is_some_and(|v| !v.is_null());
    let mut flat = Vec::new();
    output::flatten("", effective, &mut flat);
    flat.sort_by(|a, b| a.0.cmp(&b.0));
    let rows: Vec<Vec<String>> = flat
        .iter()
        .map(|(k, v)| {
            let source = if overridden(k.split('.').next().unwrap_or(k)) { "override" } else { "default" };
            vec![k.clone(), output::cell(k, Some(v)), source.to_owned()]
        })
        .collect();
    let mut out = output::table(&["setting", "value", "source"], &rows);
    let mut rest = map.clone();
    for k in ["settings", "overrides", "defaults"] {
        rest.remove(k);
    }
    if !rest.is_empty() {
        out.push('\n');
        out.push_str(&output::fields(&Value::Object(rest), &["version", "updated_at", "updated_by"], false));
    }
    out
}

/// The value at a dotted key.
fn lookup<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key).or_else(|| {
        let (head, rest) = key.split_once('.')?;
        lookup(v.get(head)?, rest)
    })
}

pub async fn run(ctx: &Ctx, cmd: Cmd) -> Result<(), Failure> {
    match cmd {
        Cmd::Get { key: None } => {
            let v = ctx.get("/admin/settings", &[]).await?;
            ctx.show(&v, human);
        }
        Cmd::Get { key: Some(key) } => {
            let v = ctx.get("/admin/settings", &[]).await?;
            let one = v
                .get("settings")
                .and_then(|s| lookup(s, &key))
                .or_else(|| lookup(&v, &key))
                .ok_or_else(|| Failure::Usage(format!("no setting named `{key}`")))?;
            ctx.show(one, |one| match one {
                Value::Object(_) | Value::Array(_) => output::pretty(one),
                Value::String(s) => format!("{s}\n"),
                other => format!("{other}\n"),
            });
        }
        Cmd::Set { pairs } => {
            let mut patch = Map::new();
            for (k, v) in pairs {
                insert(&mut patch, &k, v)?;
            }
            let v = ctx.send_json(Method::PATCH, "/admin/settings", Some(&Value::Object(patch))).await?;
            ctx.show(&v, human);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn dotted_keys_nest() {
        let mut p = Map::new();
        insert(&mut p, "lockout.threshold", json!(5)).unwrap();
        insert(&mut p, "lockout.window", json!(60)).unwrap();
        insert(&mut p, "issuer", json!("x")).unwrap();
        assert_eq!(Value::Object(p.clone()), json!({"lockout": {"threshold": 5, "window": 60}, "issuer": "x"}));
        assert!(insert(&mut p, "issuer.x", json!(1)).is_err());
        let v = json!({"lockout": {"threshold": 5}, "a.b": 1});
        assert_eq!(lookup(&v, "lockout.threshold"), Some(&json!(5)));
        assert_eq!(lookup(&v, "a.b"), Some(&json!(1)));
        assert_eq!(human(&v), "SETTING            VALUE\na.b                1\nlockout.threshold  5\n");
    }

    #[test]
    fn effective_settings_name_their_source() {
        let v = json!({
            "settings": {"access_token_ttl": 600, "consent_enabled": true},
            "overrides": {"access_token_ttl": 600},
            "defaults": {"access_token_ttl": 3600, "consent_enabled": true},
            "version": 2, "updated_at": 0, "updated_by": "admin-token", "propagation_seconds": 60,
        });
        assert_eq!(
            human(&v),
            "SETTING           VALUE  SOURCE\naccess_token_ttl  600    override\nconsent_enabled   true   default\n\n\
             version              2\nupdated_at           1970-01-01T00:00:00Z\nupdated_by           admin-token\n\
             propagation_seconds  60\n"
        );
    }
}
