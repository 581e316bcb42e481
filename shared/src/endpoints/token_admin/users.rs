//! Resource owners and their consents: `POST /admin/users`, `GET /admin/users` (pages),
//! `GET`, `PATCH`, `DELETE /admin/users/{username}`, `GET /admin/users/{username}/consents`,
//! `DELETE /admin/users/{username}/consents/{client_id}`. Password hashes never leave the
//! server. Deleting a user revokes their tokens and consents and ends their group memberships.
//!
//! A user's `groups` are its memberships (the same as `GET /admin/users/{username}/groups`):
//! shown sorted by name; given on create or patch, every named group must exist (checked before
//! anything is written) and the memberships are made exactly those.
use std::future::Future;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::versioned::{self, IfMatch, Versioned, tagged};
use super::{authorize, changed, json_body, ok};
use crate::audit::{self, AuditEvent};
use crate::endpoints::json_no_store;
use crate::model::{Group, User};
use crate::store::{Store, StoreError};
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

/// Most groups named in one request.
const MAX_GROUPS: usize = 100;
/// Most store calls in flight for one request (group checks, membership changes, list pages).
const CONCURRENCY: usize = 16;

/// Runs `f` on every item, at most [`CONCURRENCY`] at a time; the results in the items' order,
/// or the first error (the calls still running are then aborted).
async fn bounded<T, R, F, Fut>(items: Vec<T>, f: F) -> Result<Vec<R>>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(T) -> Fut,
    Fut: Future<Output = Result<R>> + Send + 'static,
{
    let n = items.len();
    let mut out: Vec<Option<R>> = std::iter::repeat_with(|| None).take(n).collect();
    let mut tasks = tokio::task::JoinSet::new();
    let mut items = items.into_iter().enumerate();
    loop {
        while tasks.len() < CONCURRENCY {
            let Some((i, item)) = items.next() else { break };
            let fut = f(item);
            tasks.spawn(async move { (i, fut.await) });
        }
        let Some(done) = tasks.join_next().await else { break };
        let (i, r) = done.map_err(OAuthError::server)?;
        out[i] = Some(r?);
    }
    Ok(out.into_iter().flatten().collect())
}

/// The named groups, sorted and without repeats, once each is a valid group name that exists:
/// else 400 naming the first missing one. Nothing is written.
async fn existing_groups(store: &Arc<dyn Store>, groups: Vec<String>) -> Result<Vec<String>> {
    if groups.len() > MAX_GROUPS || !groups.iter().all(|g| Group::valid_name(g)) {
        return Err(invalid(format!(
            "groups: at most {MAX_GROUPS} group names (1 to 64 characters of A-Z, a-z, 0-9, '.', '_' and '-')"
        )));
    }
    let mut groups = groups;
    groups.sort_unstable();
    groups.dedup();
    let found = bounded(groups.clone(), |g| {
        let store = store.clone();
        async move { Ok(store.get_group(&g).await?.is_some()) }
    })
    .await?;
    if let Some((g, _)) = groups.iter().zip(&found).find(|(_, found)| !**found) {
        return Err(no_such_group(g));
    }
    Ok(groups)
}

fn no_such_group(name: &str) -> OAuthError {
    invalid(format!("groups: no such group: {name}"))
}

/// Makes `username`'s memberships exactly `wanted` (sorted, existing groups): adds the missing,
/// ends the extra. A group deleted since it was checked is a 400 naming it.
async fn set_memberships(state: &AppState, actor: &super::Actor, username: &str, wanted: &[String]) -> Result<()> {
    let current = state.store.groups_of(username).await?;
    let add: Vec<String> = wanted.iter().filter(|g| !current.contains(g)).cloned().collect();
    let remove: Vec<String> = current.into_iter().filter(|g| wanted.binary_search(g).is_err()).collect();
    let added = bounded(add, |g| {
        let (store, u) = (state.store.clone(), username.to_owned());
        async move { Ok((store.add_member(&g, &u).await?, g)) }
    })
    .await?;
    for (ok, g) in &added {
        if *ok {
            changed(actor, "group_member_added", format!("{g}/{username}"));
        }
    }
    if let Some((_, g)) = added.iter().find(|(ok, _)| !ok) {
        return Err(no_such_group(g));
    }
    let removed = bounded(remove, |g| {
        let (store, u) = (state.store.clone(), username.to_owned());
        async move { Ok((store.remove_member(&g, &u).await?, g)) }
    })
    .await?;
    for (_, g) in removed.iter().filter(|(ok, _)| *ok) {
        changed(actor, "group_member_removed", format!("{g}/{username}"));
    }
    Ok(())
}

fn validate_attributes(a: &Map<String, Value>) -> Result<()> {
    if serde_json::to_vec(a).map(|v| v.len()).unwrap_or(usize::MAX) > 8 * 1024 {
        return Err(invalid("attributes: at most 8 KiB of JSON"));
    }
    crate::store::storable_json(&Value::Object(a.clone())).map_err(|why| invalid(format!("attributes: {why}")))
}

/// A user as the admin API shows it (never the password hash), with its groups (the names of
/// the groups it is a member of, sorted).
pub fn user_json(u: &User, groups: &[String]) -> Value {
    json!({
        "username": u.username,
        "attributes": u.attributes,
        "groups": groups,
        "enabled": u.enabled,
        "created_at": u.created_at,
        "updated_at": u.updated_at,
    })
}

/// A user's entity tag: its record and its groups, both in its representation.
fn user_tag(u: &User, groups: &[String]) -> String {
    versioned::tag_of(&(u, groups))
}

pub(super) async fn create(State(state): State<AppState>, req: Request<Body>) -> Result<Response> {
    let (parts, body) = req.into_parts();
    let actor = authorize(&state, &parts).await?;
    let n: NewUser = json_body(body, invalid).await?;
    validate_username(&n.username)?;
    validate_password(&n.password)?;
    validate_attributes(&n.attributes)?;
    // A user's tokens carry the username as `sub`, a client's own tokens its client id: one
    // name may not be both, or a resource server could take one for the other (RFC 9068 §5).
    // Client ids are server-random, so checking here, past the cache, is enough.
    if state.store.get_client(&n.username).await?.is_some() {
        return Err(OAuthError::Conflict(
            "a client has this id; usernames and client ids share the tokens' `sub` (RFC 9068 §5)".into(),
        ));
    }
    let groups = existing_groups(&state.store, n.groups).await?;
    let now = state.clock.now();
    let password_hash = crate::users::HashingSlot::take().await?.run(move || hash_password(&n.password)).await??;
    let user = User {
        username: n.username,
        password_hash,
        attributes: n.attributes,
        enabled: n.enabled.unwrap_or(true),
        created_at: now,
        updated_at: now,
        version: 0,
        tokens_revoked_at: None,
        client_tokens_revoked_at: Default::default(),
    };
    match state.store.create_user(&user).await {
        Err(StoreError::Conflict) => return Err(OAuthError::Conflict("a user with this username exists".into())),
        r => r?,
    }
    changed(&actor, "user_created", &user.username);
    // Also ends any membership left behind by a deletion of an earlier user of this name that
    // was cut short. On failure the new user goes again: a refused create creates nothing.
    if let Err(e) = set_memberships(&state, &actor, &user.username, &groups).await {
        let undone = async {
            state.store.delete_user(&user.username, None).await?;
            state.store.remove_user_from_groups(&user.username).await
        };
        match undone.await {
            Ok(_) => changed(&actor, "user_deleted", &user.username),
            Err(u) => tracing::error!(error = %u, username = %user.username, "undoing a refused user creation failed"),
        }
        return Err(e);
    }
    Ok(tagged(json_no_store(StatusCode::CREATED, user_json(&user, &groups)), &user_tag(&user, &groups)))
}

/// `GET /admin/users?limit=&cursor=`: users by username, a page at a time.
pub(super) async fn list(State(state): State<AppState>, parts: Parts) -> Result<Response> {
    authorize(&state, &parts).await?;
    // A username is at most 128 characters of up to 4 bytes.
    let q = super::paging::page_query(&parts, 512)?;
    let (users, next) = state.store.list_users(q.after.as_deref(), q.limit).await?;
    // One `groups_of` per user on the page (a page is at most 1000), a few at a time.
    let users = bounded(users, |u| {
        let store = state.store.clone();
        async move { Ok(user_json(&u, &store.groups_of(&u.username).await?)) }
    })
    .await?;
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
    let user = existing(&state, &username).await?;
    let groups = state.store.groups_of(&username).await?;
    Ok(tagged(ok(user_json(&user, &groups)), &user_tag(&user, &groups)))
}

pub(super) async fn update(
    State(state): State<AppState>,
    Path(username): Path<String>,
    req: Request<Body>,
) -> Result<Response> {
    let (parts, body) = req.into_parts();
    let actor = authorize(&state, &parts).await?;
    let precondition = IfMatch::of(&parts)?;
    let p: UserPatch = json_body(body, invalid).await?;
    // A user's tag covers its groups too, which live apart from its record: checked here (so a
    // stale patch costs no password hashing) and again just before the write, which is
    // conditional on the record checked then. A membership change through the group calls in
    // the moment between that check and the new memberships is not detected.
    let current_tag = async || -> Result<(String, String)> {
        let read = existing(&state, &username).await?;
        Ok((user_tag(&read, &state.store.groups_of(&username).await?), read.tag()))
    };
    match precondition {
        IfMatch::Tags(_) => precondition.check(&current_tag().await?.0)?,
        IfMatch::Absent | IfMatch::Any => drop(existing(&state, &username).await?),
    }
    // Everything is checked before anything is written.
    if let Some(pw) = &p.password {
        validate_password(pw)?;
    }
    if let Some(a) = &p.attributes {
        validate_attributes(a)?;
    }
    let groups = match p.groups {
        Some(g) => Some(existing_groups(&state.store, g).await?),
        None => None,
    };
    let password_hash = match p.password {
        Some(pw) => Some(crate::users::HashingSlot::take().await?.run(move || hash_password(&pw)).await??),
        None => None,
    };
    let precondition = match precondition {
        IfMatch::Tags(_) => {
            let (tag, record_tag) = current_tag().await?;
            precondition.check(&tag)?;
            precondition.pinned(record_tag)
        }
        other => other,
    };
    // The patch applies to the user as it is when written (optimistic concurrency): a change
    // made meanwhile (say, a disable while this password was hashing) is kept, never undone by
    // writing back an older copy.
    let gone = || OAuthError::NotFound("no such user".into());
    let change = |current: &User| {
        let mut user = current.clone();
        if let Some(h) = &password_hash {
            user.password_hash.clone_from(h);
        }
        if let Some(a) = &p.attributes {
            user.attributes.clone_from(a);
        }
        if let Some(e) = p.enabled {
            user.enabled = e;
        }
        user.updated_at = state.clock.now();
        Ok((user, ()))
    };
    let (user, (), _) = versioned::modify(state.store.as_ref(), &username, gone, &precondition, change).await?;
    changed(&actor, "user_updated", &username);
    let groups = match groups {
        Some(g) => {
            set_memberships(&state, &actor, &username, &g).await?;
            g
        }
        None => state.store.groups_of(&username).await?,
    };
    Ok(tagged(ok(user_json(&user, &groups)), &user_tag(&user, &groups)))
}

pub(super) async fn delete(
    State(state): State<AppState>,
    Path(username): Path<String>,
    parts: Parts,
) -> Result<Response> {
    let actor = authorize(&state, &parts).await?;
    // A user's tag covers its groups too: checked here, then the deletion is conditional on the
    // record checked (as for a `PATCH`, a membership change in between is not detected).
    let precondition = match IfMatch::of(&parts)? {
        p @ IfMatch::Tags(_) => match state.store.get_user(&username).await? {
            Some(read) => {
                p.check(&user_tag(&read, &state.store.groups_of(&username).await?))?;
                p.pinned(read.tag())
            }
            None => p,
        },
        other => other,
    };
    let existed = versioned::remove::<User>(state.store.as_ref(), &username, &precondition).await?;
    if existed {
        changed(&actor, "user_deleted", &username);
    }
    // Memberships, consents and tokens go even when the user was gone already: deleting again
    // finishes a deletion that was cut short (a 503 part-way), so nothing outlives its user
    // (a new user of the same name must not inherit it; the grants also refuse what was
    // granted before their user was created, `grants::active_user`).
    state.store.remove_user_from_groups(&username).await?;
    for c in state.store.list_consents(&username).await? {
        state.store.delete_consent(&username, &c.client_id).await?;
    }
    super::revoke_all(&state, &actor, None, Some(&username)).await?;
    if !existed {
        return Err(OAuthError::NotFound("no such user".into()));
    }
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
    let user = existing(&state, &username).await?;
    let list = state.store.list_consents(&username).await?;
    // The consents that stand: as the sign-in flow sees them.
    let items: Vec<Value> = list
        .iter()
        .filter(|c| user.consent_stands(c))
        .map(|c| {
            let resources: serde_json::Map<String, Value> =
                c.resources.iter().map(|(aud, s)| (aud.clone(), Value::from(s.to_string()))).collect();
            json!({"client_id": c.client_id, "scope": c.scope.to_string(), "resources": resources,
                   "granted_at": c.granted_at})
        })
        .collect();
    Ok(ok(json!({ "consents": items })))
}

pub(super) async fn revoke_consent(
    State(state): State<AppState>,
    Path((username, client_id)): Path<(String, String)>,
    parts: Parts,
) -> Result<Response> {
    let actor = authorize(&state, &parts).await?;
    let existed = state.store.delete_consent(&username, &client_id).await?;
    if existed {
        audit::record(AuditEvent::ConsentRevoked {
            actor: actor.0.clone(),
            username: username.clone(),
            client_id: client_id.clone(),
        });
    }
    // Withdrawn consent ends what it allowed: the user's tokens at the client, refresh tokens
    // with their families (RFC 9700 §4.14.2; as Keycloak's consent revocation does). Also when
    // the consent was gone already: deleting again finishes a revocation cut short.
    super::revoke_all(&state, &actor, Some(&client_id), Some(&username)).await?;
    if !existed {
        return Err(OAuthError::NotFound("no such consent".into()));
    }
    let mut r = StatusCode::NO_CONTENT.into_response();
    crate::error::no_store(&mut r);
    Ok(r)
}
