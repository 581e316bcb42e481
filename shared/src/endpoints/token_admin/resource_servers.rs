//! `POST /admin/resource-servers`, `GET /admin/resource-servers` (pages), and `GET`, `PATCH`,
//! `DELETE /admin/resource-servers/{identifier}` (the identifier percent-encoded as one path
//! segment): the APIs tokens are issued for. The identifier is the token audience (RFC 8707 §2,
//! RFC 9068 §3). Deleting one refuses later requests for it (`invalid_target`); tokens issued
//! for it stay valid until they expire or are revoked.
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Deserializer};
use serde_json::json;

use super::paging::{next_cursor, page_query};
use super::versioned::{self, IfMatch, Versioned, tagged};
use super::{authorize, changed, json_body, ok};
use crate::claims::ClaimRule;
use crate::endpoints::json_no_store;
use crate::model::{ResourceServer, Scope, ScopeDescription};
use crate::store::StoreError;
use crate::{AppState, OAuthError, Result};

/// A scope given as a bare name or with a description.
#[derive(Debug)]
enum ScopeInput {
    Name(String),
    Described(DescribedScope),
}

/// A scope object: unknown members are refused, as everywhere in the admin API (a misspelt
/// `descripton` must not be dropped silently).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DescribedScope {
    name: String,
    #[serde(default)]
    description: Option<String>,
    /// Custom claims of tokens granted this scope.
    #[serde(default)]
    claims: Vec<ClaimRule>,
}

impl<'de> Deserialize<'de> for ScopeInput {
    /// A string, or an object read as [`DescribedScope`] with its own error (an untagged enum
    /// would only say that nothing matched).
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(name) => Ok(Self::Name(name)),
            other => DescribedScope::deserialize(other).map(Self::Described).map_err(serde::de::Error::custom),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewResourceServer {
    identifier: String,
    name: Option<String>,
    #[serde(default)]
    scopes: Vec<ScopeInput>,
    #[serde(default)]
    custom_claims: Vec<ClaimRule>,
}

/// `PATCH`: each field given replaces the stored one; `"name": null` removes the name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResourceServerPatch {
    #[serde(default, deserialize_with = "present")]
    name: Option<Option<String>>,
    #[serde(default)]
    scopes: Option<Vec<ScopeInput>>,
    /// Replaces the list (`[]` removes every custom claim).
    #[serde(default)]
    custom_claims: Option<Vec<ClaimRule>>,
}

/// A field that is present, possibly `null`.
fn present<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Longest identifier (bytes), which also bounds a listing's cursor.
const MAX_IDENTIFIER: usize = ResourceServer::MAX_IDENTIFIER;

fn invalid(msg: impl Into<String>) -> OAuthError {
    OAuthError::InvalidRequest(msg.into().into())
}

/// The scopes of a definition: one scope token each, listed once, descriptions bounded.
fn validate_scopes(input: Vec<ScopeInput>) -> Result<Vec<ScopeDescription>> {
    let mut scopes: Vec<ScopeDescription> = Vec::new();
    for s in input {
        let (name, description, claims) = match s {
            ScopeInput::Name(n) => (n, None, Vec::new()),
            ScopeInput::Described(DescribedScope { name, description, claims }) => (name, description, claims),
        };
        let valid = Scope::parse(&name).is_some_and(|p| p.iter().count() == 1);
        if !valid {
            return Err(invalid("scopes: each name is one scope token (RFC 6749 §3.3)"));
        }
        if description.as_ref().is_some_and(|d| d.chars().count() > 500) {
            return Err(invalid("scopes: a description is at most 500 characters"));
        }
        if scopes.iter().any(|x| x.name == name) {
            return Err(invalid("scopes: a scope is listed twice"));
        }
        crate::claims::validate(&format!("scopes[{}].claims", scopes.len()), &claims).map_err(invalid)?;
        scopes.push(ScopeDescription { name, description, claims });
    }
    Ok(scopes)
}

fn validate_name(name: Option<&str>) -> Result<()> {
    if name.is_some_and(|n| n.chars().count() > 200) {
        return Err(invalid("name: at most 200 characters"));
    }
    Ok(())
}

impl NewResourceServer {
    fn validate(self, now: i64) -> Result<ResourceServer> {
        let url = url::Url::parse(&self.identifier).map_err(|_| invalid("identifier: must be an absolute URI"))?;
        if url.fragment().is_some() || self.identifier.len() > MAX_IDENTIFIER {
            return Err(invalid(format!("identifier: no fragment (RFC 8707 §2), at most {MAX_IDENTIFIER} bytes")));
        }
        let scopes = validate_scopes(self.scopes)?;
        validate_name(self.name.as_deref())?;
        crate::claims::validate("custom_claims", &self.custom_claims).map_err(invalid)?;
        Ok(ResourceServer {
            identifier: self.identifier,
            name: self.name,
            scopes,
            created_at: now,
            custom_claims: self.custom_claims,
            version: 0,
        })
    }
}

/// A resource server as the admin API shows it: its stored form without the version (that is
/// the `ETag`).
fn rs_json(rs: &ResourceServer) -> serde_json::Value {
    let mut v = json!(rs);
    if let Some(o) = v.as_object_mut() {
        o.remove("version");
    }
    v
}

fn no_such_resource_server() -> OAuthError {
    OAuthError::NotFound("no such resource server".into())
}

pub(super) async fn create(State(state): State<AppState>, req: Request<Body>) -> Result<Response> {
    let (parts, body) = req.into_parts();
    let actor = authorize(&state, &parts).await?;
    let input: NewResourceServer = json_body(body, invalid).await?;
    let rs = input.validate(state.clock.now())?;
    match state.store.create_resource_server(&rs).await {
        Err(StoreError::Conflict) => {
            return Err(OAuthError::Conflict("a resource server with this identifier exists".into()));
        }
        r => r?,
    }
    state.invalidate_resource_server(&rs.identifier);
    changed(&actor, "resource_server_created", &rs.identifier);
    Ok(tagged(json_no_store(StatusCode::CREATED, rs_json(&rs)), &rs.tag()))
}

/// `GET /admin/resource-servers?limit=&cursor=`: by identifier, a page at a time.
pub(super) async fn list(State(state): State<AppState>, parts: Parts) -> Result<Response> {
    authorize(&state, &parts).await?;
    let q = page_query(&parts, MAX_IDENTIFIER)?;
    let (page, next) = state.store.list_resource_servers_after(q.after.as_deref(), q.limit).await?;
    let page: Vec<_> = page.iter().map(rs_json).collect();
    Ok(ok(json!({ "resource_servers": page, "next": next_cursor(next) })))
}

pub(super) async fn read(
    State(state): State<AppState>,
    Path(identifier): Path<String>,
    parts: Parts,
) -> Result<Response> {
    authorize(&state, &parts).await?;
    let rs = state.store.get_resource_server(&identifier).await?.ok_or_else(no_such_resource_server)?;
    Ok(tagged(ok(rs_json(&rs)), &rs.tag()))
}

pub(super) async fn update(
    State(state): State<AppState>,
    Path(identifier): Path<String>,
    req: Request<Body>,
) -> Result<Response> {
    let (parts, body) = req.into_parts();
    let actor = authorize(&state, &parts).await?;
    let precondition = IfMatch::of(&parts)?;
    let p: ResourceServerPatch = json_body(body, invalid).await?;
    // Everything is checked before anything is read or written.
    if let Some(name) = &p.name {
        validate_name(name.as_deref())?;
    }
    let scopes = p.scopes.map(validate_scopes).transpose()?;
    if let Some(claims) = &p.custom_claims {
        crate::claims::validate("custom_claims", claims).map_err(invalid)?;
    }
    let change = |current: &ResourceServer| {
        let mut rs = current.clone();
        if let Some(name) = &p.name {
            rs.name.clone_from(name);
        }
        if let Some(scopes) = &scopes {
            rs.scopes.clone_from(scopes);
        }
        if let Some(claims) = &p.custom_claims {
            rs.custom_claims.clone_from(claims);
        }
        Ok((rs, ()))
    };
    let (rs, (), written) =
        versioned::modify(state.store.as_ref(), &identifier, no_such_resource_server, &precondition, change).await?;
    if written {
        state.invalidate_resource_server(&identifier);
        changed(&actor, "resource_server_updated", &identifier);
    }
    Ok(tagged(ok(rs_json(&rs)), &rs.tag()))
}

pub(super) async fn delete(
    State(state): State<AppState>,
    Path(identifier): Path<String>,
    parts: Parts,
) -> Result<Response> {
    let actor = authorize(&state, &parts).await?;
    let precondition = IfMatch::of(&parts)?;
    if !versioned::remove::<ResourceServer>(state.store.as_ref(), &identifier, &precondition).await? {
        return Err(no_such_resource_server());
    }
    state.invalidate_resource_server(&identifier);
    changed(&actor, "resource_server_deleted", &identifier);
    let mut r = StatusCode::NO_CONTENT.into_response();
    crate::error::no_store(&mut r);
    Ok(r)
}
