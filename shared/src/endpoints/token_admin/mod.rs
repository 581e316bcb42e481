//! The admin API under `/admin` (JSON): clients, resource servers, token listings, counts and
//! revocation (the seed's TokenManagementMBean operations).
//!
//! Every call needs an admin credential: `Authorization: Bearer <GATEHOUSE_ADMIN_TOKEN>`, or,
//! when `GATEHOUSE_ADMIN_IAM=true` (the deployment lets API Gateway authorize `/admin` routes
//! with AWS IAM), the IAM identity API Gateway put in `requestContext.authorizer.iam`. No
//! credential configured means everything is refused.
mod clients;
mod resource_servers;
mod tokens;
mod users;

use axum::Router;
use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use lambda_http::request::RequestContext;

use crate::audit::{self, AuditEvent};
use crate::endpoints::{json_no_store, method_not_allowed, not_found};
use crate::{AppState, OAuthError, Result};

/// The token-admin function's router.
pub fn router(state: AppState) -> Router {
    routes().fallback(not_found).with_state(state)
}

/// The `/admin` routes, for merging.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/clients", post(clients::create).fallback(method_not_allowed("POST")))
        .route(
            "/admin/clients/{client_id}",
            get(clients::read).delete(clients::delete).fallback(method_not_allowed("GET, DELETE")),
        )
        .route(
            "/admin/resource-servers",
            post(resource_servers::create).get(resource_servers::list).fallback(method_not_allowed("GET, POST")),
        )
        .route("/admin/users", post(users::create).fallback(method_not_allowed("POST")))
        .route(
            "/admin/users/{username}",
            get(users::read)
                .patch(users::update)
                .delete(users::delete)
                .fallback(method_not_allowed("GET, PATCH, DELETE")),
        )
        .route("/admin/users/{username}/consents", get(users::consents).fallback(method_not_allowed("GET")))
        .route(
            "/admin/users/{username}/consents/{client_id}",
            axum::routing::delete(users::revoke_consent).fallback(method_not_allowed("DELETE")),
        )
        .route("/admin/tokens", get(tokens::list).fallback(method_not_allowed("GET")))
        .route("/admin/tokens/count", get(tokens::count).fallback(method_not_allowed("GET")))
        .route("/admin/tokens/revoke", post(tokens::revoke).fallback(method_not_allowed("POST")))
}

/// Who made an admin call, for the audit trail.
#[derive(Debug, Clone)]
pub struct Actor(pub String);

/// Checks the admin credential.
pub async fn authorize(state: &AppState, parts: &Parts) -> Result<Actor> {
    if state.config.admin_iam
        && let Some(RequestContext::ApiGatewayV2(ctx)) = parts.extensions.get::<RequestContext>()
        && let Some(iam) = ctx.authorizer.as_ref().and_then(|a| a.iam.as_ref())
    {
        let who = iam.user_arn.clone().or_else(|| iam.caller_id.clone()).unwrap_or_else(|| "iam".into());
        return Ok(Actor(format!("iam:{who}")));
    }
    let Some(expected) = state.config.admin_token.as_deref() else {
        audit::record(AuditEvent::AdminRefused { reason: "no admin credential is configured" });
        return Err(OAuthError::AdminUnauthorized);
    };
    let presented = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    let ok =
        presented.is_some_and(|t| crate::crypto::ct_eq(&crate::crypto::digest(t), &crate::crypto::digest(expected)));
    if !ok {
        audit::record(AuditEvent::AdminRefused { reason: "missing or wrong admin bearer token" });
        return Err(OAuthError::AdminUnauthorized);
    }
    Ok(Actor("admin-token".into()))
}

/// Parses a JSON body (unknown fields refused by the target type). Errors name the field.
pub(crate) async fn json_body<T: serde::de::DeserializeOwned>(body: Body, bad: fn(String) -> OAuthError) -> Result<T> {
    let bytes = crate::http::read_body(body).await?;
    let mut de = serde_json::Deserializer::from_slice(&bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        // serde names unknown fields itself; for a wrong value, say which field holds it.
        if path == "." || inner.to_string().starts_with("unknown field") {
            bad(inner.to_string())
        } else {
            bad(format!("{path}: {inner}"))
        }
    })
}

/// Audits an admin change.
pub(crate) fn changed(actor: &Actor, action: &'static str, object: impl Into<String>) {
    audit::record(AuditEvent::AdminChange { actor: actor.0.clone(), action, object: object.into() });
}

/// 200 with a JSON body, never cached.
pub(crate) fn ok(body: serde_json::Value) -> Response {
    json_no_store(StatusCode::OK, body)
}

/// Revokes every active token (both kinds) of a client, a user, or a user at one client: a
/// deleted or compromised client, a user signed out everywhere. Tokens that another request
/// revoked meanwhile (or that a lagging index still lists) are stepped over, so this always ends.
pub(crate) async fn revoke_all(
    state: &AppState,
    actor: &Actor,
    client_id: Option<&str>,
    end_user: Option<&str>,
) -> Result<u64> {
    use crate::model::TokenKind;
    let now = state.clock.now();
    let mut revoked = 0;
    for kind in [TokenKind::Access, TokenKind::Refresh] {
        let q =
            crate::store::TokenQuery { kind, client_id: client_id.map(Into::into), end_user: end_user.map(Into::into) };
        let mut offset = 0;
        loop {
            let page = state.store.list_tokens(&q, now, offset, 100).await?;
            if page.is_empty() {
                break;
            }
            let mut done = 0;
            for t in &page {
                if state.store.revoke_token(&t.id, now).await? {
                    done += 1;
                    changed(actor, "token_revoked", t.id.chars().take(22).collect::<String>());
                }
            }
            // Revoked tokens drop out of the next listing; the rest are skipped.
            offset += page.len() - done;
            revoked += done as u64;
        }
    }
    Ok(revoked)
}
