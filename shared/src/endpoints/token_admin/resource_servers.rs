//! `POST /admin/resource-servers` and `GET /admin/resource-servers`: the APIs tokens are
//! issued for. The identifier is the token audience (RFC 8707 §2, RFC 9068 §3).
use axum::body::Body;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{Request, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use super::{authorize, changed, json_body, ok};
use crate::endpoints::json_no_store;
use crate::model::{ResourceServer, Scope, ScopeDescription};
use crate::store::StoreError;
use crate::{AppState, OAuthError, Result};

/// A scope given as a bare name or with a description.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ScopeInput {
    Name(String),
    Described {
        name: String,
        #[serde(default)]
        description: Option<String>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewResourceServer {
    identifier: String,
    name: Option<String>,
    #[serde(default)]
    scopes: Vec<ScopeInput>,
}

fn invalid(msg: impl Into<String>) -> OAuthError {
    OAuthError::InvalidRequest(msg.into().into())
}

impl NewResourceServer {
    fn validate(self, now: i64) -> Result<ResourceServer> {
        let url = url::Url::parse(&self.identifier).map_err(|_| invalid("identifier: must be an absolute URI"))?;
        if url.fragment().is_some() || self.identifier.len() > 2048 {
            return Err(invalid("identifier: no fragment, at most 2048 characters (RFC 8707 §2)"));
        }
        let mut scopes: Vec<ScopeDescription> = Vec::new();
        for s in self.scopes {
            let (name, description) = match s {
                ScopeInput::Name(n) => (n, None),
                ScopeInput::Described { name, description } => (name, description),
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
            scopes.push(ScopeDescription { name, description });
        }
        if self.name.as_ref().is_some_and(|n| n.chars().count() > 200) {
            return Err(invalid("name: at most 200 characters"));
        }
        Ok(ResourceServer { identifier: self.identifier, name: self.name, scopes, created_at: now })
    }
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
    changed(&actor, "resource_server_created", &rs.identifier);
    Ok(json_no_store(StatusCode::CREATED, json!(rs)))
}

pub(super) async fn list(State(state): State<AppState>, parts: Parts) -> Result<Response> {
    authorize(&state, &parts).await?;
    let all = state.store.list_resource_servers().await?;
    Ok(ok(json!({ "resource_servers": all })))
}
