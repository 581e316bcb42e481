//! Custom claims (OAM seed 38.4.1, "custom attributes"): static claims (a fixed JSON value) and
//! dynamic claims (taken from the user's profile attributes), configured on a client, on a
//! resource server and on a resource server's scope, and added to the JWT access tokens
//! (RFC 9068 §2.2 allows further claims).
//!
//! When one name is set at several levels, the most specific wins: scope over resource server
//! over client (the seed: "the scope-based attribute value takes precedence"). Between two
//! granted scopes setting the same name, the scope that sorts first wins, so the result is
//! deterministic. A dynamic claim whose attribute the user lacks (or any dynamic claim in a
//! token without a user, e.g. client credentials) is left out.
//!
//! Names are checked when configured: not a registered JWT claim (RFC 7519 §4.1, IANA "JSON Web
//! Token Claims" entries Gatehouse or its verifiers use), not one of Gatehouse's own claims, not
//! a reserved prefix (`gatehouse`, and the seed's `oracle`), 1–64 characters of
//! `A-Za-z0-9_.:-`; one name at most once per level; at most 20 claims per level; a static
//! value of at most 1 KiB serialized.
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One custom claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimRule {
    /// The claim name in the token.
    pub name: String,
    /// A static claim: this value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// A dynamic claim: the user's profile attribute of this name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute: Option<String>,
}

/// Registered claims a custom claim may not take (RFC 7519 §4.1, RFC 9068 §2.2, RFC 8693 §4,
/// RFC 9449 §6, RFC 7800 §3, OIDC Core §2 and §5.1 claims verifiers commonly interpret).
pub const RESERVED_NAMES: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "iat",
    "jti", // RFC 7519
    "client_id",
    "scope",
    "auth_time",
    "acr",
    "amr",
    "groups",
    "roles",
    "entitlements", // RFC 9068
    "act",
    "may_act", // RFC 8693
    "cnf",     // RFC 7800, RFC 9449
    "azp",
    "nonce",
    "sid",
    "at_hash",
    "c_hash",
    "typ",
    "token_type", // OIDC, RFC 7662
    "active",
    "username",
    "end_user",
    "grant_type", // RFC 7662 and Gatehouse's introspection
];

/// Reserved name prefixes (case-insensitive).
pub const RESERVED_PREFIXES: &[&str] = &["gatehouse", "oracle"];

/// Most claims per level.
pub const MAX_RULES: usize = 20;

/// Checks a level's rules; the error names the offending claim.
pub fn validate(field: &str, rules: &[ClaimRule]) -> Result<(), String> {
    if rules.len() > MAX_RULES {
        return Err(format!("{field}: at most {MAX_RULES} claims"));
    }
    for (i, r) in rules.iter().enumerate() {
        let n = r.name.as_str();
        let well_formed = !n.is_empty()
            && n.len() <= 64
            && n.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'));
        if !well_formed {
            return Err(format!("{field}: claim name `{n}` must be 1 to 64 characters of A-Za-z0-9_.:-"));
        }
        if RESERVED_NAMES.contains(&n) {
            return Err(format!("{field}: `{n}` is a registered JWT or Gatehouse claim"));
        }
        let lower = n.to_ascii_lowercase();
        if let Some(p) = RESERVED_PREFIXES.iter().find(|p| lower.starts_with(*p)) {
            return Err(format!("{field}: claim names starting with `{p}` are reserved"));
        }
        if rules[..i].iter().any(|o| o.name == n) {
            return Err(format!("{field}: claim `{n}` is defined twice"));
        }
        match (&r.value, &r.attribute) {
            (Some(v), None) => {
                if v.is_null() || v.to_string().len() > 1024 {
                    return Err(format!("{field}: claim `{n}`: a static value is non-null JSON of at most 1 KiB"));
                }
                crate::store::storable_json(v).map_err(|why| format!("{field}: claim `{n}`: {why}"))?;
            }
            (None, Some(a)) => {
                if a.is_empty() || a.len() > 128 {
                    return Err(format!("{field}: claim `{n}`: the attribute name is 1 to 128 characters"));
                }
            }
            _ => {
                return Err(format!(
                    "{field}: claim `{n}`: give exactly one of `value` (static) or `attribute` (dynamic)"
                ));
            }
        }
    }
    Ok(())
}

/// The claims for one token: `levels` from least to most specific (client, resource server,
/// then each granted scope in order); later levels win. `attributes`: the user's profile, if the
/// token has a user.
pub fn resolve<'a>(
    levels: impl IntoIterator<Item = &'a [ClaimRule]>,
    attributes: Option<&Map<String, Value>>,
) -> Map<String, Value> {
    let mut out = Map::new();
    for level in levels {
        for r in level {
            let value = match (&r.value, &r.attribute) {
                (Some(v), _) => Some(v.clone()),
                (None, Some(a)) => attributes.and_then(|m| m.get(a)).filter(|v| !v.is_null()).cloned(),
                (None, None) => None,
            };
            if let Some(v) = value {
                out.insert(r.name.clone(), v);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn st(name: &str, v: Value) -> ClaimRule {
        ClaimRule { name: name.into(), value: Some(v), attribute: None }
    }
    fn dy(name: &str, a: &str) -> ClaimRule {
        ClaimRule { name: name.into(), value: None, attribute: Some(a.into()) }
    }

    #[test]
    fn names_are_checked() {
        assert!(validate("custom_claims", &[st("tier", json!("gold")), dy("dept", "department")]).is_ok());
        for (rules, why) in [
            (vec![st("sub", json!(1))], "custom_claims: `sub` is a registered JWT or Gatehouse claim"),
            (vec![st("cnf", json!(1))], "registered"),
            (vec![st("Gatehouse.x", json!(1))], "claim names starting with `gatehouse` are reserved"),
            (vec![st("oracle.oauth.x", json!(1))], "starting with `oracle`"),
            (vec![st("", json!(1))], "1 to 64 characters"),
            (vec![st("a b", json!(1))], "1 to 64 characters"),
            (vec![st("x", json!(1)), dy("x", "a")], "claim `x` is defined twice"),
            (vec![st("x", Value::Null)], "non-null"),
            (vec![ClaimRule { name: "x".into(), value: Some(json!(1)), attribute: Some("a".into()) }], "exactly one"),
            (vec![ClaimRule { name: "x".into(), value: None, attribute: None }], "exactly one"),
            (vec![st("x", json!("y".repeat(2000)))], "at most 1 KiB"),
        ] {
            let e = validate("custom_claims", &rules).unwrap_err();
            assert!(e.contains(why), "{e} / {why}");
        }
        let many: Vec<_> = (0..21).map(|i| st(&format!("c{i}"), json!(i))).collect();
        assert_eq!(validate("f", &many).unwrap_err(), "f: at most 20 claims");
    }

    #[test]
    fn most_specific_level_wins_and_dynamic_claims_need_the_attribute() {
        let client = [st("tier", json!("client")), dy("dept", "department"), dy("cc", "cost_center")];
        let rs = [st("tier", json!("rs")), st("region", json!("eu"))];
        let scope = [st("tier", json!("scope"))];
        let user = json!({"department": "ops", "cost_center": null}).as_object().unwrap().clone();
        let got = resolve([&client[..], &rs[..], &scope[..]], Some(&user));
        assert_eq!(Value::Object(got), json!({"tier": "scope", "dept": "ops", "region": "eu"}));
        let got = resolve([&client[..], &rs[..]], None);
        assert_eq!(Value::Object(got), json!({"tier": "rs", "region": "eu"}));
    }
}
