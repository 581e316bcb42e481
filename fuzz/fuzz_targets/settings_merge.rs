//! `PATCH /admin/settings`: a JSON merge patch (RFC 7396) of the identity-domain settings
//! (`settings::SettingsOverrides::merge`), on top of no overrides and of some.
//! Invariants: no panic; deterministic; what is accepted keeps every setting in its documented
//! range, leaves the members the patch does not name as they were, and applying the same patch
//! again changes nothing (a merge patch is idempotent).
#![no_main]
use gatehouse::settings::SettingsOverrides;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

const RANGES: [(&str, u64, u64); 7] = [
    ("access_token_ttl", 60, 86_400),
    ("refresh_token_ttl", 300, 31_536_000),
    ("code_ttl", 10, 600),
    ("refresh_grace", 0, 300),
    ("lockout_threshold", 1, 100),
    ("lockout_window", 60, 86_400),
    ("lockout_cooldown", 60, 86_400),
];

fuzz_target!(|data: &[u8]| {
    let Ok(patch) = serde_json::from_slice::<Value>(data) else { return };
    let some: SettingsOverrides = serde_json::from_value(json!({
        "access_token_ttl": 600, "consent_enabled": false, "default_resource": "https://api.example.com"
    }))
    .unwrap();
    for base in [SettingsOverrides::default(), some] {
        let merged = base.merge(&patch);
        assert_eq!(merged, base.merge(&patch), "deterministic");
        let Ok(merged) = merged else { continue };
        let (before, after) = (serde_json::to_value(&base).unwrap(), serde_json::to_value(&merged).unwrap());
        for (name, lo, hi) in RANGES {
            if let Some(v) = after.get(name) {
                let v = v.as_u64().expect("a whole number");
                assert!((lo..=hi).contains(&v), "{name} = {v}");
            }
        }
        if let Some(r) = after.get("default_resource") {
            let r = r.as_str().expect("a string");
            assert!(r.len() <= 2048 && url::Url::parse(r).is_ok(), "default_resource {r:?}");
        }
        let named = patch.as_object().expect("only an object merges");
        for (name, value) in after.as_object().unwrap() {
            if !named.contains_key(name) {
                assert_eq!(before.get(name), Some(value), "{name} changed without being named");
            }
        }
        assert_eq!(merged.merge(&patch), Ok(merged.clone()), "idempotent");
    }
});
