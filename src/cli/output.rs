//! Human output: aligned tables for listings, `field  value` lines for one object, and the
//! server's JSON pretty-printed for `--json`. Token values never appear in human output; the only
//! secret ever printed is a client secret the server has just generated (shown once).
use std::io::Write;

use serde_json::{Map, Value};

/// Fields that are times in seconds since the Unix epoch.
const TIME_FIELDS: &[&str] = &[
    "created_at",
    "updated_at",
    "iat",
    "exp",
    "client_id_issued_at",
    "client_secret_expires_at",
    "granted_at",
    "active_from",
    "retired_at",
    "issued_at",
    "expires_at",
    "previous_secret_expires_at",
];

/// Fields never shown in human output: token values and password material.
const HIDDEN: &[&str] = &["access_token", "refresh_token", "id_token", "token", "password", "password_hash"];

/// Writes `text` to stdout; a closed pipe (`gatehouse ... | head`) is not an error.
pub fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// The server's JSON, pretty, with a final newline.
pub fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since the epoch (proleptic Gregorian calendar, UTC).
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// One value as table text: `-` for absent, null or empty; arrays joined with commas; times as
/// RFC 3339; scope objects by name; other objects as compact JSON.
pub fn cell(field: &str, v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) if s.is_empty() => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) if TIME_FIELDS.contains(&field) => match n.as_i64() {
            Some(0) if field == "client_secret_expires_at" => "never".into(),
            Some(t) => rfc3339(t),
            None => n.to_string(),
        },
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Array(a)) if a.is_empty() => "-".into(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| match x {
                Value::String(s) => s.clone(),
                Value::Object(o) if o.get("name").is_some_and(Value::is_string) => o["name"].as_str().unwrap().into(),
                Value::Object(o) if o.get("username").is_some_and(Value::is_string) => {
                    o["username"].as_str().unwrap().into()
                }
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(","),
        Some(Value::Object(o)) if o.is_empty() => "-".into(),
        Some(other) => other.to_string(),
    }
}

/// An aligned table: upper-case headers, columns two spaces apart, no trailing blanks.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let last = cells.len().saturating_sub(1);
        let mut s = String::new();
        for (i, c) in cells.into_iter().enumerate() {
            s.push_str(&c);
            if i < last {
                s.push_str(&" ".repeat(widths[i] - c.chars().count() + 2));
            }
        }
        s.truncate(s.trim_end().len());
        s.push('\n');
        s
    };
    let mut out = line(headers.iter().map(|h| h.to_uppercase()).collect());
    for row in rows {
        out.push_str(&line(row.clone()));
    }
    out
}

/// A table of `items` with one column per field (header = field name).
pub fn table_of(items: &[Value], fields: &[(&str, &str)]) -> String {
    let headers: Vec<&str> = fields.iter().map(|(h, _)| *h).collect();
    let rows: Vec<Vec<String>> =
        items.iter().map(|it| fields.iter().map(|(_, f)| cell(f, it.get(*f))).collect()).collect();
    table(&headers, &rows)
}

/// `field  value` lines for one object: the `first` fields in order (when present), then the
/// others alphabetically, never a hidden field (nor a `client_secret` unless `secret_ok`).
pub fn fields(obj: &Value, first: &[&str], secret_ok: bool) -> String {
    let Some(map) = obj.as_object() else { return pretty(obj) };
    let shown = |k: &str| !HIDDEN.contains(&k) && (secret_ok || k != "client_secret");
    let mut keys: Vec<&str> = first.iter().copied().filter(|k| map.contains_key(*k) && shown(k)).collect();
    let mut rest: Vec<&str> = map.keys().map(String::as_str).filter(|k| !first.contains(k) && shown(k)).collect();
    rest.sort_unstable();
    keys.extend(rest);
    let width = keys.iter().map(|k| k.chars().count()).max().unwrap_or(0);
    let mut out = String::new();
    for k in keys {
        let v = cell(k, map.get(k));
        let line = format!("{k:<width$}  {v}");
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Nested objects flattened to dotted keys (`lockout.threshold`), for settings.
pub fn flatten(prefix: &str, map: &Map<String, Value>, out: &mut Vec<(String, Value)>) {
    for (k, v) in map {
        let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match v {
            Value::Object(inner) if !inner.is_empty() => flatten(&key, inner, out),
            other => out.push((key, other.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(4_102_444_800), "2100-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_094_921), "2026-11-19T13:28:41Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn tables_align_and_never_trail_blanks() {
        let t = table(&["id", "name"], &[vec!["a".into(), "-".into()], vec!["abcdef".into(), "x y".into()]]);
        assert_eq!(t, "ID      NAME\na       -\nabcdef  x y\n");
    }

    #[test]
    fn objects_list_preferred_fields_first_and_hide_secrets() {
        let v = json!({"b": 1, "a": [], "client_id": "c", "client_secret": "s", "token": "t", "exp": 0});
        assert_eq!(
            fields(&v, &["client_id"], false),
            "client_id  c\na          -\nb          1\nexp        1970-01-01T00:00:00Z\n"
        );
        assert!(fields(&v, &[], true).contains("client_secret  s\n"));
    }

    #[test]
    fn cells() {
        assert_eq!(cell("grant_types", Some(&json!(["a", "b"]))), "a,b");
        assert_eq!(cell("scopes", Some(&json!([{"name": "read", "description": "x"}, "write"]))), "read,write");
        assert_eq!(cell("client_secret_expires_at", Some(&json!(0))), "never");
        assert_eq!(cell("attributes", Some(&json!({"email": "a@b"}))), r#"{"email":"a@b"}"#);
        assert_eq!(cell("scope", Some(&json!(""))), "-");
    }
}
