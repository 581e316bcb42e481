//! `PATCH /admin/clients/{client_id}` (a JSON merge patch, RFC 7396, of the RFC 7591 §2
//! metadata accepted at registration) and `POST /admin/clients/{client_id}/secret` (a new
//! secret, the previous one optionally accepted for an overlap).
//!
//! Both are read-modify-write cycles made safe by the store's optimistic `version` condition
//! ([`super::versioned`]): a write that finds the client changed since it was read is redone
//! from a fresh read (a merge patch applies as well to the newer client), so concurrent changes
//! never overwrite each other; a `PATCH` with `If-Match` applies only to the version it names.
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::Request;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::clients::{ClientMetadata, client_json};
use super::versioned::{self, IfMatch, Versioned, tagged};
use super::{authorize, changed, json_body, ok};
use crate::model::{AuthMethod, Client, ClientSecret};
use crate::{AppState, OAuthError, Result};

/// The metadata a patch may change (the members `POST /admin/clients` accepts).
const PATCHABLE: [&str; 12] = [
    "client_name",
    "redirect_uris",
    "grant_types",
    "token_endpoint_auth_method",
    "scope",
    "pre_approved_scopes",
    "access_token_lifetime",
    "refresh_token_lifetime",
    "jwks",
    "jwt_bearer_issuers",
    "dpop_bound_access_tokens",
    "custom_claims",
];

/// Members of the client's JSON that are not metadata and never change by a patch.
const FIXED: [&str; 5] =
    ["client_id", "client_id_issued_at", "client_secret", "client_secret_expires_at", "previous_secret_expires_at"];

/// Longest overlap of a rotated secret: one week.
pub const MAX_OVERLAP_SECONDS: u64 = 604_800;

fn meta(msg: impl Into<String>) -> OAuthError {
    OAuthError::InvalidClientMetadata(msg.into().into())
}

/// Applies a merge patch to a client's metadata and validates the result as registration does.
fn merge(current: &Client, patch: &Map<String, Value>) -> Result<Client> {
    for name in patch.keys() {
        if FIXED.contains(&name.as_str()) {
            return Err(meta(format!("{name}: cannot be changed (a new secret: POST /admin/clients/{{id}}/secret)")));
        }
        if !PATCHABLE.contains(&name.as_str()) {
            let name: String = name.chars().take(64).collect();
            return Err(meta(format!("unknown field `{name}`, expected one of {}", PATCHABLE.join(", "))));
        }
    }
    // The client's metadata as registration would take it, patched (RFC 7396 §2: null removes
    // a member, which then takes its registration default).
    let mut doc = match client_json(current) {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    doc.retain(|k, _| PATCHABLE.contains(&k.as_str()));
    for (name, value) in patch {
        match value {
            Value::Null => doc.remove(name),
            v => doc.insert(name.clone(), v.clone()),
        };
    }
    let method = doc.get("token_endpoint_auth_method").map_or(Some("client_secret_basic"), Value::as_str);
    if method.is_some_and(|m| (m == AuthMethod::None.as_str()) != current.is_public()) {
        return Err(meta(
            "token_endpoint_auth_method: a client cannot change between public (none) and confidential; \
             register a new client",
        ));
    }
    let metadata: ClientMetadata = serde_path_to_error::deserialize(Value::Object(doc))
        .map_err(|e| meta(format!("{}: {}", e.path(), e.inner())))?;
    Ok(metadata.validate()?.apply_to(current))
}

/// Reads the client, lets `change` derive its next state, and writes that on condition that
/// nobody changed the client meanwhile ([`versioned::modify`]). An unchanged client is not
/// written (`false`).
async fn modify_client<T>(
    state: &AppState,
    id: &str,
    precondition: &IfMatch,
    change: impl FnMut(&Client) -> Result<(Client, T)>,
) -> Result<(Client, T, bool)> {
    let gone = || OAuthError::NotFound("no such client".into());
    let r = versioned::modify(state.store.as_ref(), id, gone, precondition, change).await?;
    if r.2 {
        state.invalidate_client(id);
    }
    Ok(r)
}

/// `PATCH /admin/clients/{client_id}`: 200 with the client's metadata as it now is.
pub(super) async fn patch(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request<Body>,
) -> Result<Response> {
    let (parts, body) = req.into_parts();
    let actor = authorize(&state, &parts).await?;
    let precondition = IfMatch::of(&parts)?;
    let patch: Map<String, Value> = json_body(body, |e| OAuthError::InvalidClientMetadata(e.into())).await?;
    let (client, (), written) = modify_client(&state, &id, &precondition, |c| Ok((merge(c, &patch)?, ()))).await?;
    if written {
        changed(&actor, "client_updated", &id);
    }
    Ok(tagged(ok(client_json(&client)), &client.tag()))
}

/// `{"overlap_seconds": n}`: how long the previous secret stays valid (0, the default: not at all).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateRequest {
    #[serde(default)]
    overlap_seconds: u64,
}

/// `POST /admin/clients/{client_id}/secret`: a new 256-bit secret, shown once. With an overlap,
/// the previous secret keeps working until `previous_secret_expires_at` (one previous secret at
/// most: rotating again forgets the older one).
pub(super) async fn rotate_secret(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request<Body>,
) -> Result<Response> {
    let (parts, body) = req.into_parts();
    let actor = authorize(&state, &parts).await?;
    let bytes = crate::http::read_body(body).await?;
    let invalid = |e: String| OAuthError::InvalidRequest(e.into());
    let request: RotateRequest = if bytes.iter().all(u8::is_ascii_whitespace) {
        RotateRequest::default()
    } else {
        // An object only (serde would also read `[60]` as the struct's fields in order).
        let object: Map<String, Value> = json_body(Body::from(bytes), invalid).await?;
        serde_path_to_error::deserialize(Value::Object(object))
            .map_err(|e| invalid(format!("{}: {}", e.path(), e.inner())))?
    };
    let overlap = request.overlap_seconds;
    if overlap > MAX_OVERLAP_SECONDS {
        return Err(OAuthError::InvalidRequest(format!("overlap_seconds: between 0 and {MAX_OVERLAP_SECONDS}").into()));
    }
    let now = state.clock.now();
    let previous_expires_at = (overlap > 0).then(|| now.saturating_add(overlap as i64));
    let (client, secret, _) = modify_client(&state, &id, &IfMatch::Absent, |c| {
        if c.is_public() {
            return Err(meta("token_endpoint_auth_method: a public client (none) has no secret"));
        }
        if c.token_endpoint_auth_method == AuthMethod::PrivateKeyJwt {
            return Err(meta(
                "token_endpoint_auth_method: a private_key_jwt client has no secret (change its keys with PATCH jwks)",
            ));
        }
        let secret = ClientSecret::generate();
        let next = Client {
            secret_digest: Some(secret.digest()),
            previous_secret_digest: previous_expires_at.and(c.secret_digest.clone()),
            previous_secret_expires_at: previous_expires_at,
            ..c.clone()
        };
        Ok((next, secret))
    })
    .await?;
    changed(&actor, "client_secret_rotated", &id);
    let mut body = json!({
        "client_id": client.client_id,
        "client_secret": secret.expose(),
        "client_secret_expires_at": 0,
    });
    if let Some(at) = previous_expires_at {
        body["previous_secret_expires_at"] = json!(at);
    }
    Ok(ok(body))
}
