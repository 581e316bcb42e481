//! `Config::from_env()`: every `GATEHOUSE_*` variable, documented and validated once at start.
//! An invalid value fails start-up with an error naming the variable (a cold start fails fast).
use std::net::SocketAddr;
use std::path::PathBuf;

/// Which storage backend holds clients, tokens and keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// DynamoDB, one table per tenant stack (the Lambda deployment).
    Dynamodb,
    /// SQLite in the data directory (the local server).
    Embedded,
}

/// How access tokens are signed (DESIGN.md "Keys and signing").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignerKind {
    /// ES256 key generated on first start and kept in the data directory.
    Local,
    /// Every token signed by KMS `Sign` with an asymmetric KMS key.
    Kms,
    /// An ES256 key sealed by a KMS symmetric key, stored in the table, unsealed per cold start.
    Sealed,
}

/// The longest refresh-token lifetime anything may set, seconds (one year): the stack's default
/// (`GATEHOUSE_REFRESH_TOKEN_TTL`), the tenant's setting and a client's own lifetime.
pub const MAX_REFRESH_TOKEN_TTL: u64 = 31_536_000;

/// A configuration error: names the variable and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {problem}")]
pub struct ConfigError {
    pub var: &'static str,
    pub problem: String,
}

fn bad(var: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError { var, problem: problem.into() }
}

/// The validated configuration of one tenant.
#[derive(Debug, Clone)]
pub struct Config {
    /// `GATEHOUSE_ISSUER`: the issuer identifier (RFC 8414 §2): https, or http on loopback;
    /// no query or fragment. Endpoint URLs are derived from it. Default `http://<GATEHOUSE_ADDR>`.
    pub issuer: String,
    /// `GATEHOUSE_TENANT`: the tenant (identity domain) id, used in audit lines and as KMS
    /// encryption context. Default `local`.
    pub tenant: String,
    /// `GATEHOUSE_ADDR`: the local server's listen address. Default `127.0.0.1:8080`.
    pub addr: SocketAddr,
    /// `GATEHOUSE_STORE`: `dynamodb` or `embedded`. Default `embedded`.
    pub store: StoreKind,
    /// `GATEHOUSE_TABLE_NAME`: the DynamoDB table (required with `dynamodb`).
    pub table_name: Option<String>,
    /// `GATEHOUSE_DATA_DIR`: where the embedded store, local key and admin token live.
    /// Default `./.gatehouse`.
    pub data_dir: PathBuf,
    /// `GATEHOUSE_SIGNER`: `local`, `kms` or `sealed`. Default `local`.
    pub signer: SignerKind,
    /// `GATEHOUSE_KMS_KEY_ID`: key id, ARN or alias. With `kms` the asymmetric signing key
    /// (ECC_NIST_P256 or RSA_2048, SIGN_VERIFY); with `sealed` the symmetric key that seals.
    pub kms_key_id: Option<String>,
    /// `GATEHOUSE_ADMIN_TOKEN`: static bearer token for the admin API (local runs).
    pub admin_token: Option<crate::model::Redacted<String>>,
    /// `GATEHOUSE_ADMIN_IAM`: `true` when API Gateway authorizes the admin routes with AWS IAM;
    /// only then is `requestContext.authorizer.iam` trusted. Default `false`.
    pub admin_iam: bool,
    /// `GATEHOUSE_ACCESS_TOKEN_TTL`: default access-token lifetime in seconds (60..=86400).
    /// Default 3600.
    pub access_token_ttl: u64,
    /// `GATEHOUSE_DEFAULT_AUDIENCE`: `aud` of tokens requested without `resource`.
    /// Default: the issuer.
    pub default_audience: String,
    /// `GATEHOUSE_REFRESH_TOKEN_TTL`: refresh-token lifetime in seconds, renewed at each
    /// rotation (300..=31536000). Default 2592000 (30 days).
    pub refresh_token_ttl: u64,
    /// `GATEHOUSE_CODE_TTL`: authorization-code lifetime in seconds (10..=600). Default 60.
    pub code_ttl: u64,
    /// `GATEHOUSE_LOGIN_TTL`: how long a sign-in/consent page stays valid, seconds
    /// (60..=3600). Default 600.
    pub login_ttl: u64,
    /// `GATEHOUSE_REFRESH_GRACE`: seconds after a rotation in which presenting the old refresh
    /// token again returns the same new tokens instead of revoking the family (0..=300).
    /// Default 10.
    pub refresh_grace: u64,
    /// `GATEHOUSE_LOCKOUT_THRESHOLD`: failed sign-ins within the window that lock a username
    /// (1..=100). Default 5.
    pub lockout_threshold: u32,
    /// `GATEHOUSE_LOCKOUT_WINDOW`: seconds in which failures are counted (60..=86400).
    /// Default 900.
    pub lockout_window: u64,
    /// `GATEHOUSE_LOCKOUT_COOLDOWN`: seconds a locked username stays locked (60..=86400).
    /// Default 900.
    pub lockout_cooldown: u64,
}

/// Reads a whole number in `range`, or the default.
fn number(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, ConfigError> {
    match get(var) {
        None => Ok(default),
        Some(v) => {
            v.parse::<u64>().ok().filter(|n| range.contains(n)).ok_or_else(|| {
                bad(var, format!("expected a whole number between {} and {}", range.start(), range.end()))
            })
        }
    }
}

/// Reads one variable; empty counts as unset.
fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Config {
    /// Reads and validates every `GATEHOUSE_*` variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(var)
    }

    /// Same as [`Config::from_env`], reading from any lookup (tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let addr: SocketAddr = match get("GATEHOUSE_ADDR") {
            Some(a) => a.parse().map_err(|_| bad("GATEHOUSE_ADDR", "expected host:port, e.g. 127.0.0.1:8080"))?,
            None => SocketAddr::from(([127, 0, 0, 1], 8080)),
        };
        let issuer = get("GATEHOUSE_ISSUER").unwrap_or_else(|| format!("http://{addr}"));
        let issuer = validate_issuer(&issuer)?;
        let store = match get("GATEHOUSE_STORE").as_deref() {
            None | Some("embedded") => StoreKind::Embedded,
            Some("dynamodb") => StoreKind::Dynamodb,
            Some(_) => return Err(bad("GATEHOUSE_STORE", "expected `dynamodb` or `embedded`")),
        };
        if store == StoreKind::Embedded && !cfg!(feature = "embedded") {
            // The Lambda functions are built without SQLite (shared/Cargo.toml, feature `embedded`).
            return Err(bad("GATEHOUSE_STORE", "this build has only the `dynamodb` store"));
        }
        let table_name = get("GATEHOUSE_TABLE_NAME");
        if store == StoreKind::Dynamodb && table_name.is_none() {
            return Err(bad("GATEHOUSE_TABLE_NAME", "required when GATEHOUSE_STORE=dynamodb"));
        }
        let signer = match get("GATEHOUSE_SIGNER").as_deref() {
            None | Some("local") => SignerKind::Local,
            Some("kms") => SignerKind::Kms,
            Some("sealed") => SignerKind::Sealed,
            Some(_) => return Err(bad("GATEHOUSE_SIGNER", "expected `local`, `kms` or `sealed`")),
        };
        let kms_key_id = get("GATEHOUSE_KMS_KEY_ID");
        if signer != SignerKind::Local && kms_key_id.is_none() {
            return Err(bad("GATEHOUSE_KMS_KEY_ID", "required when GATEHOUSE_SIGNER is kms or sealed"));
        }
        let admin_token = get("GATEHOUSE_ADMIN_TOKEN");
        if admin_token.as_ref().is_some_and(|t| t.len() < 32) {
            return Err(bad("GATEHOUSE_ADMIN_TOKEN", "must be at least 32 characters"));
        }
        let admin_iam = match get("GATEHOUSE_ADMIN_IAM").as_deref() {
            None | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(_) => return Err(bad("GATEHOUSE_ADMIN_IAM", "expected `true` or `false`")),
        };
        let access_token_ttl = number(&get, "GATEHOUSE_ACCESS_TOKEN_TTL", 3600, 60..=86_400)?;
        let tenant = get("GATEHOUSE_TENANT").unwrap_or_else(|| "local".into());
        if tenant.len() > 64 || !tenant.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(bad("GATEHOUSE_TENANT", "up to 64 letters, digits, `-` or `_`"));
        }
        let default_audience = get("GATEHOUSE_DEFAULT_AUDIENCE").unwrap_or_else(|| issuer.clone());
        Ok(Self {
            issuer,
            tenant,
            addr,
            store,
            table_name,
            data_dir: PathBuf::from(get("GATEHOUSE_DATA_DIR").unwrap_or_else(|| "./.gatehouse".into())),
            signer,
            kms_key_id,
            admin_token: admin_token.map(Into::into),
            admin_iam,
            access_token_ttl,
            default_audience,
            refresh_token_ttl: number(&get, "GATEHOUSE_REFRESH_TOKEN_TTL", 2_592_000, 300..=MAX_REFRESH_TOKEN_TTL)?,
            code_ttl: number(&get, "GATEHOUSE_CODE_TTL", 60, 10..=600)?,
            login_ttl: number(&get, "GATEHOUSE_LOGIN_TTL", 600, 60..=3600)?,
            refresh_grace: number(&get, "GATEHOUSE_REFRESH_GRACE", 10, 0..=300)?,
            lockout_threshold: number(&get, "GATEHOUSE_LOCKOUT_THRESHOLD", 5, 1..=100)? as u32,
            lockout_window: number(&get, "GATEHOUSE_LOCKOUT_WINDOW", 900, 60..=86_400)?,
            lockout_cooldown: number(&get, "GATEHOUSE_LOCKOUT_COOLDOWN", 900, 60..=86_400)?,
        })
    }

    /// The issuer's path (`""` for an issuer at the root of its host, `"/t1"` for
    /// `https://auth.example.com/t1`): where the endpoints live on the host, for the pages'
    /// forms, which post to the page's own host.
    pub fn issuer_path(&self) -> &str {
        let after_scheme = self.issuer.split_once("://").map_or(self.issuer.as_str(), |(_, rest)| rest);
        after_scheme.find('/').map_or("", |i| &after_scheme[i..])
    }

    /// An absolute endpoint URL under the issuer, e.g. `endpoint("/token")`.
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }
}

/// RFC 8414 §2: the issuer is an https URL without query or fragment. Plain http is allowed
/// only on loopback, for the local server. A trailing slash is removed.
fn validate_issuer(raw: &str) -> Result<String, ConfigError> {
    let u = url::Url::parse(raw).map_err(|_| bad("GATEHOUSE_ISSUER", "not an absolute URL"))?;
    if u.query().is_some() || u.fragment().is_some() {
        return Err(bad("GATEHOUSE_ISSUER", "must not have a query or fragment (RFC 8414 §2)"));
    }
    let loopback = matches!(u.host_str(), Some("127.0.0.1") | Some("localhost") | Some("[::1]"));
    match u.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => return Err(bad("GATEHOUSE_ISSUER", "must use https (http only on loopback)")),
    }
    Ok(raw.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn defaults() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.issuer, "http://127.0.0.1:8080");
        assert_eq!(c.store, StoreKind::Embedded);
        assert_eq!(c.signer, SignerKind::Local);
        assert_eq!(c.access_token_ttl, 3600);
        assert_eq!(c.default_audience, c.issuer);
    }

    #[test]
    fn errors_name_the_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("GATEHOUSE_STORE", "redis")], "GATEHOUSE_STORE"),
            (&[("GATEHOUSE_STORE", "dynamodb")], "GATEHOUSE_TABLE_NAME"),
            (&[("GATEHOUSE_SIGNER", "kms")], "GATEHOUSE_KMS_KEY_ID"),
            (&[("GATEHOUSE_ISSUER", "http://example.com")], "GATEHOUSE_ISSUER"),
            (&[("GATEHOUSE_ISSUER", "https://a.example/?x=1")], "GATEHOUSE_ISSUER"),
            (&[("GATEHOUSE_ADDR", "nope")], "GATEHOUSE_ADDR"),
            (&[("GATEHOUSE_ACCESS_TOKEN_TTL", "5")], "GATEHOUSE_ACCESS_TOKEN_TTL"),
            (&[("GATEHOUSE_ADMIN_TOKEN", "short")], "GATEHOUSE_ADMIN_TOKEN"),
            (&[("GATEHOUSE_ADMIN_IAM", "yes")], "GATEHOUSE_ADMIN_IAM"),
            (&[("GATEHOUSE_TENANT", "a b")], "GATEHOUSE_TENANT"),
            (&[("GATEHOUSE_CODE_TTL", "3600")], "GATEHOUSE_CODE_TTL"),
            (&[("GATEHOUSE_REFRESH_GRACE", "x")], "GATEHOUSE_REFRESH_GRACE"),
            (&[("GATEHOUSE_LOCKOUT_THRESHOLD", "0")], "GATEHOUSE_LOCKOUT_THRESHOLD"),
        ];
        for (pairs, var) in cases {
            let e = cfg(pairs).unwrap_err();
            assert_eq!(e.var, *var, "{pairs:?}");
            assert!(e.to_string().starts_with(var));
        }
    }

    #[test]
    fn https_issuer_trailing_slash_trimmed() {
        let c = cfg(&[("GATEHOUSE_ISSUER", "https://auth.example.com/")]).unwrap();
        assert_eq!(c.issuer, "https://auth.example.com");
        assert_eq!(c.issuer_path(), "");
        assert_eq!(c.endpoint("/token"), "https://auth.example.com/token");
    }

    #[test]
    fn issuer_path_is_what_follows_the_host() {
        let c = cfg(&[("GATEHOUSE_ISSUER", "https://auth.example.com/t1/")]).unwrap();
        assert_eq!((c.issuer.as_str(), c.issuer_path()), ("https://auth.example.com/t1", "/t1"));
        let c = cfg(&[("GATEHOUSE_ISSUER", "http://127.0.0.1:8080")]).unwrap();
        assert_eq!(c.issuer_path(), "");
    }
}
