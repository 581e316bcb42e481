//! `GET /admin/settings` and `PATCH /admin/settings` (JSON merge patch, RFC 7396): the
//! identity-domain settings (`crate::settings`). A change is a conditional write on the version it
//! read, retried from a fresh read when another change came first, so no change is lost. Warm
//! instances pick it up within `settings::SETTINGS_TTL` seconds; this instance at once.
use axum::body::Body;
use axum::extract::State;
use axum::http::Request;
use axum::http::request::Parts;
use axum::response::Response;

use super::{authorize, changed, ok};
use crate::settings::{StoredSettings, settings_json};
use crate::{AppState, OAuthError, Result};

pub(super) async fn read(State(state): State<AppState>, parts: Parts) -> Result<Response> {
    authorize(&state, &parts).await?;
    let stored = state.store.get_settings().await?;
    state.settings_cache.put(stored.as_ref(), state.clock.now());
    Ok(ok(settings_json(state.settings_cache.defaults(), stored.as_ref())))
}

pub(super) async fn update(State(state): State<AppState>, req: Request<Body>) -> Result<Response> {
    let (parts, body) = req.into_parts();
    let actor = authorize(&state, &parts).await?;
    let bytes = crate::http::read_body(body).await?;
    let patch: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| OAuthError::InvalidRequest(format!("the body is not JSON: {e}").into()))?;
    super::unique_member_names(&bytes).map_err(|e| OAuthError::InvalidRequest(e.into()))?;
    for attempt in 0..16u64 {
        if attempt > 0 {
            // Another change came first: back off a little (jittered) and merge into it.
            let jitter = u64::from(crate::crypto::random_bytes::<1>()[0]) % 20;
            tokio::time::sleep(std::time::Duration::from_millis(5 * attempt + jitter)).await;
        }
        let stored = state.store.get_settings().await?;
        let current = stored.clone().unwrap_or_default();
        let overrides = current.overrides.merge(&patch).map_err(|e| OAuthError::InvalidRequest(e.into()))?;
        if let Some(r) = overrides.default_resource.as_deref()
            && overrides.default_resource != current.overrides.default_resource
            && state.store.get_resource_server(r).await?.is_none()
        {
            return Err(OAuthError::InvalidRequest("default_resource: not a registered resource server".into()));
        }
        let next = StoredSettings {
            overrides,
            version: current.version + 1,
            updated_at: state.clock.now(),
            updated_by: actor.0.clone(),
            // Made once, kept: the tenant's DPoP nonces stay valid across changes.
            dpop_nonce_key: current.dpop_nonce_key.clone().or_else(|| Some(crate::dpop::NonceKey::generate())),
        };
        if state.store.put_settings(&next).await? {
            changed(&actor, "settings_updated", format!("version {}", next.version));
            state.settings_cache.put(Some(&next), state.clock.now());
            return Ok(ok(settings_json(state.settings_cache.defaults(), Some(&next))));
        }
    }
    Err(OAuthError::Conflict("the settings are being changed concurrently; retry".into()))
}
