//! Groups of users, the OCSG seed's group URIs (a token issued to a group's owner may act for
//! any member; issue 6 checks that when the token is used): `POST /admin/groups`,
//! `GET /admin/groups`, `GET`, `PATCH`, `DELETE /admin/groups/{name}`,
//! `GET /admin/groups/{name}/members`, `PUT`, `DELETE /admin/groups/{name}/members/{username}`
//! and `GET /admin/users/{username}/groups`. Deleting a group ends its memberships.
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use super::paging::{next_cursor, page_query};
use super::{authorize, changed, json_body, ok};
use crate::endpoints::json_no_store;
use crate::model::Group;
use crate::store::StoreError;
use crate::{AppState, OAuthError, Result};

/// Longest description.
const MAX_DESCRIPTION: usize = 500;
/// Longest username in bytes (128 characters of up to 4 bytes): bounds a members cursor.
const MAX_USERNAME_BYTES: usize = 512;

fn invalid(msg: impl Into<String>) -> OAuthError {
    OAuthError::InvalidRequest(msg.into().into())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewGroup {
    name: String,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupPatch {
    /// Absent: unchanged; `null`: removed.
    #[serde(default, deserialize_with = "present")]
    description: Option<Option<String>>,
}

/// A field that is present, possibly `null`.
fn present<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

fn validate_name(name: &str) -> Result<()> {
    if Group::valid_name(name) {
        Ok(())
    } else {
        Err(invalid("name: 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' and '-'"))
    }
}

fn validate_description(d: Option<&str>) -> Result<()> {
    if d.is_some_and(|d| d.chars().count() > MAX_DESCRIPTION) {
        return Err(invalid(format!("description: at most {MAX_DESCRIPTION} characters")));
    }
    Ok(())
}

/// A group as the admin API shows it.
pub fn group_json(g: &Group) -> Value {
    json!({"name": g.name, "description": g.description, "created_at": g.created_at})
}

/// 204, never cached.
fn no_content() -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    crate::error::no_store(&mut r);
    r
}

fn no_such_group() -> OAuthError {
    OAuthError::NotFound("no such group".into())
}

async fn existing(state: &AppState, name: &str) -> Result<Group> {
    state.store.get_group(name).await?.ok_or_else(no_such_group)
}

pub(super) async fn create(State(state): State<AppState>, req: Request<Body>) -> Result<Response> {
    let (parts, body) = req.into_parts();
    let actor = authorize(&state, &parts).await?;
    let n: NewGroup = json_body(body, invalid).await?;
    validate_name(&n.name)?;
    validate_description(n.description.as_deref())?;
    let group = Group { name: n.name, description: n.description, created_at: state.clock.now() };
    match state.store.create_group(&group).await {
        Err(StoreError::Conflict) => return Err(OAuthError::Conflict("a group with this name exists".into())),
        r => r?,
    }
    changed(&actor, "group_created", &group.name);
    Ok(json_no_store(StatusCode::CREATED, group_json(&group)))
}

/// `GET /admin/groups?limit=&cursor=`: groups by name, a page at a time.
pub(super) async fn list(State(state): State<AppState>, parts: Parts) -> Result<Response> {
    authorize(&state, &parts).await?;
    let q = page_query(&parts, Group::MAX_NAME)?;
    let (groups, next) = state.store.list_groups(q.after.as_deref(), q.limit).await?;
    Ok(ok(json!({"groups": groups.iter().map(group_json).collect::<Vec<_>>(), "next": next_cursor(next)})))
}

pub(super) async fn read(State(state): State<AppState>, Path(name): Path<String>, parts: Parts) -> Result<Response> {
    authorize(&state, &parts).await?;
    Ok(ok(group_json(&existing(&state, &name).await?)))
}

pub(super) async fn update(
    State(state): State<AppState>,
    Path(name): Path<String>,
    req: Request<Body>,
) -> Result<Response> {
    let (parts, body) = req.into_parts();
    let actor = authorize(&state, &parts).await?;
    let p: GroupPatch = json_body(body, invalid).await?;
    let mut group = existing(&state, &name).await?;
    if let Some(d) = p.description {
        validate_description(d.as_deref())?;
        group.description = d;
    }
    if !state.store.update_group(&group).await? {
        return Err(no_such_group());
    }
    changed(&actor, "group_updated", &name);
    Ok(ok(group_json(&group)))
}

pub(super) async fn delete(State(state): State<AppState>, Path(name): Path<String>, parts: Parts) -> Result<Response> {
    let actor = authorize(&state, &parts).await?;
    if !state.store.delete_group(&name).await? {
        return Err(no_such_group());
    }
    changed(&actor, "group_deleted", &name);
    Ok(no_content())
}

/// `GET /admin/groups/{name}/members?limit=&cursor=`: usernames, a page at a time.
pub(super) async fn members(State(state): State<AppState>, Path(name): Path<String>, parts: Parts) -> Result<Response> {
    authorize(&state, &parts).await?;
    let q = page_query(&parts, MAX_USERNAME_BYTES)?;
    existing(&state, &name).await?;
    let (members, next) = state.store.list_members(&name, q.after.as_deref(), q.limit).await?;
    Ok(ok(json!({"members": members, "next": next_cursor(next)})))
}

/// `PUT /admin/groups/{name}/members/{username}`: idempotent.
pub(super) async fn add_member(
    State(state): State<AppState>,
    Path((name, username)): Path<(String, String)>,
    parts: Parts,
) -> Result<Response> {
    let actor = authorize(&state, &parts).await?;
    existing(&state, &name).await?;
    if state.store.get_user(&username).await?.is_none() {
        return Err(OAuthError::NotFound("no such user".into()));
    }
    // Checked again in the write: one of them may have been deleted since.
    if !state.store.add_member(&name, &username).await? {
        return Err(OAuthError::NotFound("no such group or user".into()));
    }
    changed(&actor, "group_member_added", format!("{name}/{username}"));
    Ok(no_content())
}

pub(super) async fn remove_member(
    State(state): State<AppState>,
    Path((name, username)): Path<(String, String)>,
    parts: Parts,
) -> Result<Response> {
    let actor = authorize(&state, &parts).await?;
    if !state.store.remove_member(&name, &username).await? {
        return Err(OAuthError::NotFound("not a member of this group".into()));
    }
    changed(&actor, "group_member_removed", format!("{name}/{username}"));
    Ok(no_content())
}

/// `GET /admin/users/{username}/groups`: the names of a user's groups.
pub(super) async fn of_user(
    State(state): State<AppState>,
    Path(username): Path<String>,
    parts: Parts,
) -> Result<Response> {
    authorize(&state, &parts).await?;
    if state.store.get_user(&username).await?.is_none() {
        return Err(OAuthError::NotFound("no such user".into()));
    }
    Ok(ok(json!({"groups": state.store.groups_of(&username).await?})))
}
