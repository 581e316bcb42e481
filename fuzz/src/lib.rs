//! Fixtures shared by the fuzz targets: a fixed clock, issuer and P-256 key (the seed corpus in
//! `corpus/` is made with the same ones by `make_corpus.py`), and a Gatehouse state on a
//! throw-away embedded store for the targets that go through the endpoints.
use std::sync::{Arc, OnceLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse::AppState;
use gatehouse::keys::{Alg, LocalSigner, PublicJwk};
use serde_json::{Map, Value};

/// The issuer every target is configured with.
pub const ISSUER: &str = "https://auth.fuzz.example";
/// The token endpoint URL (`htu` of DPoP proofs, `aud` of assertions).
pub const TOKEN_ENDPOINT: &str = "https://auth.fuzz.example/token";
/// The fixed clock: 2100-01-01T00:00:00Z.
pub const NOW: i64 = 4_102_444_800;
/// The admin bearer token of [`state`].
pub const ADMIN_TOKEN: &str = "fuzz-admin-token-0123456789abcdef0123456789";
/// The private scalar of the fixed P-256 key the targets trust (never a real key).
pub const KEY_SCALAR: [u8; 32] = [0x11; 32];
/// The `kid` of the fixed key where a registered key set names it (assertions).
pub const ASSERTION_KID: &str = "fuzz-key";

/// The fixed key's public half.
pub fn verifying_key() -> p256::ecdsa::VerifyingKey {
    *p256::ecdsa::SigningKey::from_slice(&KEY_SCALAR).expect("a valid scalar").verifying_key()
}

/// The fixed key as Gatehouse publishes its own keys (`kid` = RFC 7638 thumbprint, ES256).
pub fn public_jwk() -> PublicJwk {
    PublicJwk::from_p256(&verifying_key(), Alg::ES256)
}

/// The fixed key as a client registers it (`kid` [`ASSERTION_KID`]).
pub fn registered_jwks() -> Value {
    let jwk = public_jwk();
    serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "x": jwk.x, "y": jwk.y, "kid": ASSERTION_KID}]})
}

/// The decoded JOSE header of a compact JWS, when its first segment is base64url JSON.
pub fn jose_header(token: &str) -> Option<Map<String, Value>> {
    let first = token.split('.').next()?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(first.trim()).ok()?).ok()
}

/// `Debug` of a result: outcomes compared for determinism.
pub fn outcome<T: std::fmt::Debug, E: std::fmt::Debug>(r: &Result<T, E>) -> String {
    format!("{r:?}")
}

/// A single-threaded runtime for the async entry points (nothing here waits on I/O for long).
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime"))
}

/// A Gatehouse state for the whole run: an embedded store in a new directory under `TMPDIR`
/// (kept: `scripts/fuzz.sh` points `TMPDIR` into `fuzz/target` and empties it), an in-memory
/// signing key, the manual clock at [`NOW`].
pub fn state() -> &'static AppState {
    static STATE: OnceLock<AppState> = OnceLock::new();
    STATE.get_or_init(|| {
        let dir = tempfile::Builder::new().prefix("gatehouse-fuzz-").tempdir().expect("a temp dir").keep();
        let store = gatehouse::store::EmbeddedStore::open(&dir).expect("an embedded store");
        let config = gatehouse::Config::from_lookup(|k| match k {
            "GATEHOUSE_ISSUER" => Some(ISSUER.into()),
            "GATEHOUSE_ADMIN_TOKEN" => Some(ADMIN_TOKEN.into()),
            "GATEHOUSE_TENANT" => Some("fuzz".into()),
            _ => None,
        })
        .expect("a valid configuration");
        AppState::new(config, Arc::new(store), Arc::new(LocalSigner::ephemeral()), gatehouse::clock::Clock::manual(NOW))
    })
}
