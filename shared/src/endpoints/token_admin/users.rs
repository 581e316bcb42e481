//! Resource owners and their consents: `POST /admin/users`, `GET /admin/users` (pages),
//! `GET`, `PATCH`, `DELETE /admin/users/{username}`, `GET /admin/users/{username}/consents`,
//! `DELETE /admin/users/{username}/consents/{client_id}`. Password hashes never leave the
//! server. Deleting a user revokes their tokens and consents and ends their group memberships.
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{authorize, changed, json_body, ok};
use crate::audit::{self, AuditEvent};
use crate::endpoints::json_no_store;
use crate::model::User;
use crate::store::StoreError;
use crate::users::{hash_password, validate_password, validate_username};
use crate::{AppState, OAuthError, Result};

fn invalid(msg: impl Into<String>) -> OAuthError {
    OAuthError::InvalidRequest(msg.into().into())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    username: String,
    password: String,
    #[serde(default)]
    attributes: Map<String, Value>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    enabled: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserPatch {
    password: Option<String>,
    attributes: Option<Map<String, Value>>,
    groups: Option<Vec<String>>,
    enabled: Option<bool>,
}

fn validate_groups(groups: &[String]) -> Result<()> {
    if groups.len() > 100 || groups.iter().any(|g| g.is_empty() || g.chars().count() > 128) {
        return Err(invalid("groups: at most 100 names of 1 to 128 characters"));
    }
    Ok(())
}

fn validate_attributes(a: &Map<String, Value>) -> Result<()> {
    if serde_json::to_vec(a).map(|v| v.len()).unwrap_or(usize::MAX) > 8 * 1024 {
        return Err(invalid("attributes: at most 8 KiB of JSON"));
    }
    Ok(())
}

/// A user as the admin API shows it (never the password hash).
pub fn user_json(u: &User) -> Value {
    json!({
        "username": u.username,
        "attributes": u.attributes,
        "groups": u.groups,
        "enabled": u.enabled,
        "created_at": u.created_at,
        "updated_at": u.updated_at,
    })
}

pub(super) async fn create(State(state): State<AppState>, req: Request<Body>) -> Result<Response> {
    let (parts, body) = req.into_parts();
    let actor = authorize(&state, &parts).await?;
    let n: NewUser = json_body(body, invalid).await?;
    validate_username(&n.username)?;
    validate_password(&n.password)?;
    validate_groups(&n.groups)?;
    validate_attributes(&n.attributes)?;
    let now = state.clock.now();
    let password_hash =
        tokio::task::spawn_blocking(move || hash_password(&n.password)).await.map_err(OAuthError::server)??;
    let user = User {
        username: n.username,
        password_hash,
        attributes: n.attributes,
        groups: n.groups,
        enabled: n.enabled.unwrap_or(true),
        created_at: now,
        updated_at: now,
    };
    match state.store.create_user(&user).await {
        Err(StoreError::Conflict) => return Err(OAuthError::Conflict("a user with this username exists".into())),
        r => r?,
    }
    changed(&actor, "user_created", &user.username);
    Ok(json_no_store(StatusCode::CREATED, user_json(&user)))
}

/// `GET /admin/users?limit=&cursor=`: users by username, a page at a time.
pub(super) async fn list(State(state): State<AppState>, parts: Parts) -> Result<Response> {
    authorize(&state, &parts).await?;
    // A username is at most 128 characters of up to 4 bytes.
    let q = super::paging::page_query(&parts, 512)?;
    let (users, next) = state.store.list_users(q.after.as_deref(), q.limit).await?;
    let users: Vec<Value> = users.iter().map(user_json).collect();
    Ok(ok(json!({"users": users, "next": super::paging::next_cursor(next)})))
}

async fn existing(state: &AppState, username: &str) -> Result<User> {
    state.store.get_user(username).await?.ok_or_else(|| OAuthError::NotFound("no such user".into()))
}

pub(super) async fn read(
    State(state): State<AppState>,
    Path(username): Path<String>,
    parts: Parts,
) -> Result<Response> {
    authorize(&state, &parts).await?;
    Ok(ok(user_json(&existing(&state, &username).await?)))
}

pub(super) async fn update(
    State(state): State<AppState>,
    Path(username): Path<String>,
    req: Request<Body>,
) -> Result<Response> {
    let (parts, body) = req.into_parts();
    let actor = authorize(&state, &parts).await?;
    let p: UserPatch = json_body(body, invalid).await?;
    let mut user = existing(&state, &username).await?;
    if let Some(pw) = p.password {
        validate_password(&pw)?;
        user.password_hash =
            tokio::task::spawn_blocking(move || hash_password(&pw)).await.map_err(OAuthError::server)??;
    }
    if let Some(a) = p.attributes {
        validate_attributes(&a)?;
        user.attributes = a;
    }
    if let Some(g) = p.groups {
        validate_groups(&g)?;
        user.groups = g;
    }
    if let Some(e) = p.enabled {
        user.enabled = e;
    }
    user.updated_at = state.clock.now();
    if !state.store.update_user(&user).await? {
        return Err(OAuthError::NotFound("no such user".into()));
    }
    changed(&actor, "user_updated", &username);
    Ok(ok(user_json(&user)))
}

pub(super) async fn delete(
    State(state): State<AppState>,
    Path(username): Path<String>,
    parts: Parts,
) -> Result<Response> {
    let actor = authorize(&state, &parts).await?;
    let existed = state.store.delete_user(&username).await?;
    // Memberships go even when the user was gone already: deleting again finishes a deletion
    // that was cut short, so no membership outlives its user (a new user of the same name
    // must not inherit it).
    state.store.remove_user_from_groups(&username).await?;
    if !existed {
        return Err(OAuthError::NotFound("no such user".into()));
    }
    changed(&actor, "user_deleted", &username);
    for c in state.store.list_consents(&username).await? {
        state.store.delete_consent(&username, &c.client_id).await?;
    }
    super::revoke_all(&state, &actor, None, Some(&username)).await?;
    let mut r = StatusCode::NO_CONTENT.into_response();
    crate::error::no_store(&mut r);
    Ok(r)
}

pub(super) async fn consents(
    State(state): State<AppState>,
    Path(username): Path<String>,
    parts: Parts,
) -> Result<Response> {
    authorize(&state, &parts).await?;
    existing(&state, &username).await?;
    let list = state.store.list_consents(&username).await?;
    let items: Vec<Value> = list
        .iter()
        .map(|c| json!({"client_id": c.client_id, "scope": c.scope.to_string(), "granted_at": c.granted_at}))
        .collect();
    Ok(ok(json!({ "consents": items })))
}

pub(super) async fn revoke_consent(
    State(state): State<AppState>,
    Path((username, client_id)): Path<(String, String)>,
    parts: Parts,
) -> Result<Response> {
    let actor = authorize(&state, &parts).await?;
    if !state.store.delete_consent(&username, &client_id).await? {
        return Err(OAuthError::NotFound("no such consent".into()));
    }
    audit::record(AuditEvent::ConsentRevoked { actor: actor.0.clone(), username, client_id });
    let mut r = StatusCode::NO_CONTENT.into_response();
    crate::error::no_store(&mut r);
    Ok(r)
}
