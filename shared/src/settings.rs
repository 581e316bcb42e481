//! Identity-domain settings (the OAM seed's `tokenSettings`): token and code lifetimes, refresh
//! tokens on or off, the refresh rotation grace window, consent management on or off, the group
//! URI feature, and the sign-in lockout. The stack's `GATEHOUSE_*` variables are the defaults; an
//! operator overrides any of them for the tenant through `PATCH /admin/settings`, stored as one
//! item in the tenant's table.
//!
//! Warm function instances keep the settings for [`SETTINGS_TTL`] seconds, so a change reaches
//! every instance within that time (the admin instance that made it: at once). If the table
//! cannot be read when the copy is due, the instance keeps its copy and retries a few seconds
//! later rather than failing requests.
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::Config;

/// Seconds a warm instance keeps the settings before reading them again.
pub const SETTINGS_TTL: i64 = 30;
/// Seconds before an instance whose read failed tries again.
const RETRY_AFTER_FAILURE: i64 = 5;

/// The tenant's overrides of the stack defaults (absent: the default applies).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingsOverrides {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_ttl: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token_ttl: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_ttl: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_tokens_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_grace: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_uri_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lockout_threshold: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lockout_window: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lockout_cooldown: Option<u64>,
}

/// The stored settings item.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSettings {
    pub overrides: SettingsOverrides,
    /// +1 per change; writes are conditional on it (no lost update between two admins).
    pub version: u64,
    pub updated_at: i64,
    pub updated_by: String,
}

/// The settings in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Settings {
    /// Access-token lifetime, seconds (a client's own lifetime wins).
    pub access_token_ttl: u64,
    /// Refresh-token lifetime, seconds (a client's own lifetime wins).
    pub refresh_token_ttl: u64,
    /// Authorization-code lifetime, seconds.
    pub code_ttl: u64,
    /// `false`: no refresh token is issued, and presenting one answers `unsupported_grant_type`.
    pub refresh_tokens_enabled: bool,
    /// Seconds after a rotation in which the old refresh token returns the same new tokens.
    pub refresh_grace: u64,
    /// `false`: users are never asked to consent (every allowed scope is granted).
    pub consent_enabled: bool,
    /// The seed's group URI feature (group owners acting for their members).
    pub group_uri_enabled: bool,
    /// Failed sign-ins within the window that lock a username.
    pub lockout_threshold: u64,
    /// Seconds in which failed sign-ins are counted.
    pub lockout_window: u64,
    /// Seconds a locked username stays locked.
    pub lockout_cooldown: u64,
}

/// One setting: its name and the whole numbers it accepts (`None`: a boolean).
const FIELDS: &[(&str, Option<(u64, u64)>)] = &[
    ("access_token_ttl", Some((60, 86_400))),
    ("refresh_token_ttl", Some((300, 31_536_000))),
    ("code_ttl", Some((10, 600))),
    ("refresh_tokens_enabled", None),
    ("refresh_grace", Some((0, 300))),
    ("consent_enabled", None),
    ("group_uri_enabled", None),
    ("lockout_threshold", Some((1, 100))),
    ("lockout_window", Some((60, 86_400))),
    ("lockout_cooldown", Some((60, 86_400))),
];

impl Settings {
    /// The stack's defaults.
    pub fn defaults(c: &Config) -> Self {
        Self {
            access_token_ttl: c.access_token_ttl,
            refresh_token_ttl: c.refresh_token_ttl,
            code_ttl: c.code_ttl,
            refresh_tokens_enabled: true,
            refresh_grace: c.refresh_grace,
            consent_enabled: true,
            group_uri_enabled: false,
            lockout_threshold: u64::from(c.lockout_threshold),
            lockout_window: c.lockout_window,
            lockout_cooldown: c.lockout_cooldown,
        }
    }

    /// These settings with `o` applied.
    pub fn with(&self, o: &SettingsOverrides) -> Self {
        Self {
            access_token_ttl: o.access_token_ttl.unwrap_or(self.access_token_ttl),
            refresh_token_ttl: o.refresh_token_ttl.unwrap_or(self.refresh_token_ttl),
            code_ttl: o.code_ttl.unwrap_or(self.code_ttl),
            refresh_tokens_enabled: o.refresh_tokens_enabled.unwrap_or(self.refresh_tokens_enabled),
            refresh_grace: o.refresh_grace.unwrap_or(self.refresh_grace),
            consent_enabled: o.consent_enabled.unwrap_or(self.consent_enabled),
            group_uri_enabled: o.group_uri_enabled.unwrap_or(self.group_uri_enabled),
            lockout_threshold: o.lockout_threshold.unwrap_or(self.lockout_threshold),
            lockout_window: o.lockout_window.unwrap_or(self.lockout_window),
            lockout_cooldown: o.lockout_cooldown.unwrap_or(self.lockout_cooldown),
        }
    }
}

impl SettingsOverrides {
    /// Applies a JSON merge patch (RFC 7396): a value sets a setting, `null` returns it to the
    /// stack default. Errors name the field; nothing is applied unless everything is valid.
    pub fn merge(&self, patch: &Value) -> Result<Self, String> {
        let Value::Object(patch) = patch else {
            return Err("the body must be a JSON object (RFC 7396 merge patch)".into());
        };
        let mut current = match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        for (name, value) in patch {
            let Some((_, range)) = FIELDS.iter().find(|(n, _)| n == name) else {
                let known: Vec<&str> = FIELDS.iter().map(|(n, _)| *n).collect();
                return Err(format!("unknown field `{name}`, expected one of {}", known.join(", ")));
            };
            match (value, range) {
                (Value::Null, _) => {
                    current.remove(name);
                }
                (Value::Bool(_), None) => {
                    current.insert(name.clone(), value.clone());
                }
                (Value::Number(n), Some((lo, hi))) if n.as_u64().is_some_and(|v| (*lo..=*hi).contains(&v)) => {
                    current.insert(name.clone(), value.clone());
                }
                (_, None) => return Err(format!("{name}: expected true, false or null")),
                (_, Some((lo, hi))) => {
                    return Err(format!("{name}: expected a whole number from {lo} to {hi}, or null"));
                }
            }
        }
        serde_json::from_value(Value::Object(current)).map_err(|e| e.to_string())
    }
}

/// A warm instance's copy of the settings.
pub struct SettingsCache {
    defaults: Settings,
    copy: RwLock<Option<(Arc<Settings>, i64)>>,
}

impl SettingsCache {
    /// An empty cache over the stack's defaults.
    pub fn new(config: &Config) -> Self {
        Self { defaults: Settings::defaults(config), copy: RwLock::new(None) }
    }

    /// The stack's defaults.
    pub fn defaults(&self) -> &Settings {
        &self.defaults
    }

    /// The settings in force at `now`, reading the store when the copy is older than
    /// [`SETTINGS_TTL`].
    pub async fn get(&self, store: &dyn crate::store::Store, now: i64) -> crate::store::StoreResult<Arc<Settings>> {
        let copy = self.copy.read().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some((s, until)) = &copy
            && now < *until
        {
            return Ok(s.clone());
        }
        match store.get_settings().await {
            Ok(stored) => Ok(self.put(stored.as_ref(), now)),
            Err(e) => match copy {
                Some((s, _)) => {
                    tracing::warn!(error = %e, "settings could not be read; the previous copy stays in use");
                    *self.copy.write().unwrap_or_else(|p| p.into_inner()) =
                        Some((s.clone(), now.saturating_add(RETRY_AFTER_FAILURE)));
                    Ok(s)
                }
                None => Err(e),
            },
        }
    }

    /// Replaces the copy with `stored` read at `now` (the admin instance after a change).
    pub fn put(&self, stored: Option<&StoredSettings>, now: i64) -> Arc<Settings> {
        let s = Arc::new(self.defaults.with(&stored.map(|s| s.overrides.clone()).unwrap_or_default()));
        *self.copy.write().unwrap_or_else(|p| p.into_inner()) = Some((s.clone(), now.saturating_add(SETTINGS_TTL)));
        s
    }
}

/// The admin API's view: the settings in force, the overrides, the defaults, the version.
pub fn settings_json(defaults: &Settings, stored: Option<&StoredSettings>) -> Value {
    let overrides = stored.map(|s| s.overrides.clone()).unwrap_or_default();
    json!({
        "settings": defaults.with(&overrides),
        "overrides": overrides,
        "defaults": defaults,
        "version": stored.map_or(0, |s| s.version),
        "updated_at": stored.map(|s| s.updated_at),
        "updated_by": stored.map(|s| s.updated_by.clone()),
        "propagation_seconds": SETTINGS_TTL,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_sets_resets_and_refuses() {
        let o = SettingsOverrides::default();
        let o = o.merge(&json!({"access_token_ttl": 600, "consent_enabled": false})).unwrap();
        assert_eq!((o.access_token_ttl, o.consent_enabled), (Some(600), Some(false)));
        let o = o.merge(&json!({"access_token_ttl": null, "lockout_threshold": 3})).unwrap();
        assert_eq!((o.access_token_ttl, o.consent_enabled, o.lockout_threshold), (None, Some(false), Some(3)));
        for (bad, why) in [
            (json!({"access_token_ttl": 59}), "access_token_ttl: expected a whole number from 60 to 86400"),
            (json!({"code_ttl": "60"}), "code_ttl: expected a whole number"),
            (json!({"refresh_grace": -1}), "refresh_grace: expected"),
            (json!({"consent_enabled": 1}), "consent_enabled: expected true, false or null"),
            (json!({"colour": 1}), "unknown field `colour`"),
            (json!([1]), "JSON object"),
        ] {
            assert!(o.merge(&bad).unwrap_err().starts_with(why) || o.merge(&bad).unwrap_err().contains(why), "{bad}");
        }
    }
}
