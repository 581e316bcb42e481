//! `/admin/keys`: the signing-key ring (`keys::KeyRing`). `GET /admin/keys` lists it with each
//! key's status, `POST /admin/keys/rotate` starts a rotation (a new key, published before it
//! signs), `POST /admin/keys/{kid}/retire` stops publishing and accepting an old key once every
//! token it signed has expired (RFC 7517 key sets; RFC 9068 §4 verification by `kid`).
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::{Request, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use super::{authorize, changed, ok};
use crate::endpoints::json_no_store;
use crate::keys::{DEFAULT_ACTIVATION_DELAY, KeyRing, KeyStatus, superseded_at};
use crate::model::StoredSigningKey;
use crate::{AppState, OAuthError, Result};

/// The longest an access token can live (tenant and client lifetimes are capped at this): a
/// key that stopped signing this long ago has no live token left.
pub const MAX_ACCESS_TOKEN_LIFETIME: i64 = 86_400;

/// Longest activation delay a rotation may ask for (one week).
pub const MAX_ACTIVATION_DELAY: i64 = 604_800;

fn invalid(msg: impl Into<String>) -> OAuthError {
    OAuthError::InvalidRequest(msg.into().into())
}

fn key_json(k: &StoredSigningKey, status: KeyStatus) -> serde_json::Value {
    let mut v = json!({
        "kid": k.kid,
        "generation": k.generation,
        "alg": k.alg,
        "status": status.as_str(),
        "created_at": k.created_at,
        "active_from": k.active_from(),
        "retired_at": k.retired_at,
    });
    if let Some(id) = &k.kms_key_id {
        v["kms_key_id"] = json!(id);
    }
    v
}

fn ring(state: &AppState) -> Result<&KeyRing> {
    state.signer.ring().ok_or_else(|| {
        invalid(
            "this tenant's signer keeps a single key (GATEHOUSE_SIGNER=local); key rotation needs the kms or \
             sealed signer",
        )
    })
}

/// A JSON body that may be empty (then `T::default()`); otherwise read by the admin API's one
/// parser (`json_body`: an object, each member name once, unknown fields refused).
async fn optional_json<T: serde::de::DeserializeOwned + Default>(body: Body) -> Result<T> {
    let bytes = crate::http::read_body(body).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    super::json_body(Body::from(bytes), invalid).await
}

pub(super) async fn list(State(state): State<AppState>, parts: Parts) -> Result<Response> {
    authorize(&state, &parts).await?;
    let now = state.clock.now();
    let Some(ring) = state.signer.ring() else {
        // The local signer: one key, always signing.
        let keys = state.signer.keys();
        let keys: Vec<_> = keys
            .jwk_list()
            .map(|j| json!({"kid": j.kid, "generation": 1, "alg": j.alg, "status": "signing"}))
            .collect();
        return Ok(ok(json!({ "keys": keys })));
    };
    let stored = ring.list().await?;
    let status = KeyStatus::of(&stored, now);
    let keys: Vec<_> = stored.iter().zip(status).map(|(k, s)| key_json(k, s)).collect();
    Ok(ok(json!({ "keys": keys })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rotate {
    /// Seconds until the new key signs (published meanwhile).
    activate_after: Option<i64>,
}

pub(super) async fn rotate(State(state): State<AppState>, req: Request<Body>) -> Result<Response> {
    let (parts, body) = req.into_parts();
    let actor = authorize(&state, &parts).await?;
    let r: Rotate = optional_json(body).await?;
    let delay = r.activate_after.unwrap_or(DEFAULT_ACTIVATION_DELAY);
    if !(0..=MAX_ACTIVATION_DELAY).contains(&delay) {
        return Err(invalid(format!("activate_after: seconds between 0 and {MAX_ACTIVATION_DELAY}")));
    }
    let ring = ring(&state)?;
    let now = state.clock.now();
    let record = ring.rotate(now, delay).await?;
    changed(&actor, "signing_key_rotated", &record.kid);
    let status = if record.active_from() > now { KeyStatus::Pending } else { KeyStatus::Signing };
    Ok(json_no_store(StatusCode::CREATED, key_json(&record, status)))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Retire {
    /// Retire even though tokens it signed may still be live (a compromised key).
    #[serde(default)]
    force: bool,
}

pub(super) async fn retire(
    State(state): State<AppState>,
    Path(kid): Path<String>,
    req: Request<Body>,
) -> Result<Response> {
    let (parts, body) = req.into_parts();
    let actor = authorize(&state, &parts).await?;
    let r: Retire = optional_json(body).await?;
    let ring = ring(&state)?;
    let now = state.clock.now();
    let stored = ring.list().await?;
    let statuses = KeyStatus::of(&stored, now);
    let Some((key, status)) = stored.iter().zip(statuses).find(|(k, _)| k.kid == kid) else {
        return Err(OAuthError::NotFound("no such key in the ring".into()));
    };
    match status {
        KeyStatus::Retired => return Err(OAuthError::Conflict("the key is retired already".into())),
        KeyStatus::Signing => {
            return Err(OAuthError::Conflict(
                "the key signs now: rotate first, and retire it once its successor signs and its tokens have expired"
                    .into(),
            ));
        }
        // A pending key never signed: retiring it cancels the rotation.
        KeyStatus::Pending => {}
        KeyStatus::Previous => {
            let stopped = superseded_at(&stored, key, now).unwrap_or(now);
            // A warm signing instance may sign with it until its next reload after `stopped`.
            let safe_at =
                stopped.saturating_add(MAX_ACCESS_TOKEN_LIFETIME).saturating_add(crate::keys::RELOAD_INTERVAL);
            if now < safe_at && !r.force {
                return Err(OAuthError::Conflict(
                    format!(
                        "tokens signed by this key may be live until {safe_at} (it stopped signing at {stopped}); \
                         retire it then, or pass \"force\": true to invalidate them now"
                    )
                    .into(),
                ));
            }
        }
    }
    let retired = ring.retire(key, now).await?;
    changed(&actor, if r.force { "signing_key_retired_forced" } else { "signing_key_retired" }, &retired.kid);
    Ok(ok(key_json(&retired, KeyStatus::Retired)))
}
