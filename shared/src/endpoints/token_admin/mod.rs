//! The admin API under `/admin` (JSON): clients, resource servers, users, groups, token
//! listings, counts and revocation (the seed's TokenManagementMBean operations).
//!
//! Every call needs an admin credential: `Authorization: Bearer <GATEHOUSE_ADMIN_TOKEN>`; an
//! access token of this tenant with the scope `gatehouse:admin` (client credentials); or, when
//! `GATEHOUSE_ADMIN_IAM=true` (the deployment lets API Gateway authorize `/admin` routes with AWS
//! IAM), the IAM identity API Gateway put in `requestContext.authorizer.iam`.
mod client_update;
pub(crate) mod clients;
mod groups;
mod keys;
mod openapi;
mod paging;
mod resource_servers;
mod settings;
mod tokens;
mod users;
mod versioned;

use axum::Router;
use axum::body::Body;
use axum::http::StatusCode;
use axum::http::request::Parts;
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
        .route("/admin/clients", post(clients::create).get(clients::list).fallback(method_not_allowed("GET, POST")))
        .route(
            "/admin/clients/{client_id}",
            get(clients::read)
                .patch(client_update::patch)
                .delete(clients::delete)
                .fallback(method_not_allowed("GET, PATCH, DELETE")),
        )
        .route(
            "/admin/clients/{client_id}/secret",
            post(client_update::rotate_secret).fallback(method_not_allowed("POST")),
        )
        .route(
            "/admin/resource-servers",
            post(resource_servers::create).get(resource_servers::list).fallback(method_not_allowed("GET, POST")),
        )
        .route(
            "/admin/resource-servers/{identifier}",
            get(resource_servers::read)
                .patch(resource_servers::update)
                .delete(resource_servers::delete)
                .fallback(method_not_allowed("GET, PATCH, DELETE")),
        )
        .route("/admin/groups", post(groups::create).get(groups::list).fallback(method_not_allowed("GET, POST")))
        .route(
            "/admin/groups/{name}",
            get(groups::read)
                .patch(groups::update)
                .delete(groups::delete)
                .fallback(method_not_allowed("GET, PATCH, DELETE")),
        )
        .route("/admin/groups/{name}/members", get(groups::members).fallback(method_not_allowed("GET")))
        .route(
            "/admin/groups/{name}/members/{username}",
            axum::routing::put(groups::add_member)
                .delete(groups::remove_member)
                .fallback(method_not_allowed("PUT, DELETE")),
        )
        .route("/admin/users/{username}/groups", get(groups::of_user).fallback(method_not_allowed("GET")))
        .route("/admin/users", post(users::create).get(users::list).fallback(method_not_allowed("GET, POST")))
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
        .route("/admin/tokens/revoke-all", post(tokens::revoke_all).fallback(method_not_allowed("POST")))
        .route("/admin/keys", get(keys::list).fallback(method_not_allowed("GET")))
        .route(
            "/admin/settings",
            get(settings::read).patch(settings::update).fallback(method_not_allowed("GET, PATCH")),
        )
        .route("/admin/keys/rotate", post(keys::rotate).fallback(method_not_allowed("POST")))
        .route("/admin/keys/{kid}/retire", post(keys::retire).fallback(method_not_allowed("POST")))
        .route("/admin/openapi.json", get(openapi::document).fallback(method_not_allowed("GET")))
}

/// Who made an admin call, for the audit trail.
#[derive(Debug, Clone)]
pub struct Actor(pub String);

/// The scope an access token needs to call the admin API (issue 5: automation manages a tenant
/// with a client-credentials token instead of AWS credentials).
pub const ADMIN_SCOPE: &str = "gatehouse:admin";

/// Checks the admin credential, in this order: the IAM identity API Gateway verified (when
/// `GATEHOUSE_ADMIN_IAM=true`), the static `GATEHOUSE_ADMIN_TOKEN`, or an active access token of
/// this tenant with the scope [`ADMIN_SCOPE`] that a client obtained for itself (client
/// credentials grant; a token a user delegated never administers), meant for this server
/// (`aud`), and presented with its DPoP proof when DPoP-bound. Every admitted call is audited
/// with its actor; every refusal too, without the credential.
pub async fn authorize(state: &AppState, parts: &Parts) -> Result<Actor> {
    let actor = authenticate(state, parts).await?;
    audit::record(AuditEvent::AdminCall {
        actor: actor.0.clone(),
        method: parts.method.to_string(),
        path: parts.uri.path().chars().take(256).collect(),
    });
    // Every object the admin API names has a key of at most 1024 bytes (DynamoDB's limit for
    // a sort key; names and ids are validated shorter when created): a longer path segment
    // names nothing, and never reaches the store (where DynamoDB would refuse it: a 500).
    if parts.uri.path().split('/').any(|segment| percent_encoding::percent_decode_str(segment).count() > MAX_SEGMENT) {
        return Err(OAuthError::NotFound("no such object".into()));
    }
    // RFC 9110 §13.1.1: a server that receives `If-Match` evaluates it; a call that cannot be
    // made conditional refuses it rather than acting unconditionally.
    if parts.headers.contains_key(axum::http::header::IF_MATCH) && !versioned::conditional(parts) {
        return Err(OAuthError::invalid_request(
            "If-Match: only a PATCH or DELETE of a client, a user or a resource server is conditional",
        ));
    }
    Ok(actor)
}

/// Longest path segment (bytes, percent-decoded) that can name an object.
const MAX_SEGMENT: usize = 1024;

async fn authenticate(state: &AppState, parts: &Parts) -> Result<Actor> {
    if state.config.admin_iam
        && let Some(RequestContext::ApiGatewayV2(ctx)) = parts.extensions.get::<RequestContext>()
        && let Some(iam) = ctx.authorizer.as_ref().and_then(|a| a.iam.as_ref())
    {
        let who = iam.user_arn.clone().or_else(|| iam.caller_id.clone()).unwrap_or_else(|| "iam".into());
        return Ok(Actor(format!("iam:{who}")));
    }
    // `Bearer <token>` (RFC 6750 §2.1), or `DPoP <token>` for a DPoP-bound access token.
    let Some((scheme, presented)) = crate::dpop::presented_token(&parts.headers) else {
        audit::record(AuditEvent::AdminRefused { reason: "missing admin credential" });
        return Err(OAuthError::AdminUnauthorized);
    };
    if scheme == crate::dpop::Scheme::Bearer
        && let Some(expected) = state.config.admin_token.as_deref()
        && crate::crypto::ct_eq(&crate::crypto::digest(presented), &crate::crypto::digest(expected))
    {
        return Ok(Actor("admin-token".into()));
    }
    if presented.split('.').count() == 3
        && let Some((_, record)) = crate::endpoints::introspect::active_access_token(state, presented).await?
    {
        // RFC 9449 §7.1: a DPoP-bound token only with the DPoP scheme and a proof by its key
        // for this request (`htu` as the token endpoint's: the issuer and the path); an
        // unbound one only as Bearer. Refusals are 401 `invalid_token`/`invalid_dpop_proof`.
        let htu = state.config.endpoint(parts.uri.path());
        let dpop = crate::dpop::verify_for_resource(
            state,
            parts.method.as_str(),
            &htu,
            &parts.headers,
            presented,
            record.jkt.as_deref(),
        )
        .await;
        if let Err(e) = dpop {
            audit::record(AuditEvent::AdminRefused { reason: "access token presented without its DPoP proof" });
            return Err(e);
        }
        // RFC 9068 §4: only a token meant for this server (`aud` the issuer, or the tenant's
        // default audience, which is the issuer unless configured). A token for any other
        // resource server never administers: that server holds it and could replay it here.
        if record.audience != state.config.issuer && record.audience != state.config.default_audience {
            audit::record(AuditEvent::AdminRefused { reason: "access token for another audience" });
            return Err(OAuthError::AdminInvalidCredential);
        }
        if record.scope.contains(ADMIN_SCOPE) && record.grant_type == crate::model::GrantType::ClientCredentials {
            // The client must still exist, read past the cache: deleting a client revokes its
            // tokens, but another warm instance may issue one more from its cached copy
            // (`cache::CLIENT_TTL`), and a deletion cut short leaves some unrevoked. Deleting a
            // compromised automation client always ends its administration at once.
            match state.store.get_client(&record.client_id).await? {
                None => {
                    audit::record(AuditEvent::AdminRefused { reason: "access token of a deleted client" });
                    return Err(OAuthError::AdminInvalidCredential);
                }
                Some(c) if c.revoked_with_all(record.grant_time()) => {
                    audit::record(AuditEvent::AdminRefused { reason: "access token revoked with all of its client's" });
                    return Err(OAuthError::AdminInvalidCredential);
                }
                Some(_) => {}
            }
            return Ok(Actor(format!("client:{}", record.client_id)));
        }
        audit::record(AuditEvent::AdminRefused { reason: "access token without the gatehouse:admin scope" });
        // RFC 6750 §3.1: a valid token without the needed scope is 403 insufficient_scope.
        return Err(OAuthError::InsufficientScope(
            "the admin API needs an access token with the gatehouse:admin scope from a client credentials grant".into(),
        ));
    }
    audit::record(AuditEvent::AdminRefused { reason: "wrong admin bearer token" });
    Err(OAuthError::AdminInvalidCredential)
}

/// Parses a JSON body (unknown fields refused by the target type). Errors name the field.
/// An object with a member name twice, at any depth, is refused: RFC 8259 §4 leaves its meaning
/// open, and a merge patch (RFC 7396) or free-form attributes would silently keep the last.
pub(crate) async fn json_body<T: serde::de::DeserializeOwned>(body: Body, bad: fn(String) -> OAuthError) -> Result<T> {
    let bytes = crate::http::read_body(body).await?;
    // Every admin body is a JSON object; serde would otherwise read `["x"]` as a struct.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(bad("the body must be a JSON object".into()));
    }
    unique_member_names(&bytes).map_err(bad)?;
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

/// Refuses a JSON document in which an object repeats a member name, at any depth.
pub(crate) fn unique_member_names(bytes: &[u8]) -> std::result::Result<(), String> {
    serde_json::from_slice::<UniqueNames>(bytes).map(|_| ()).map_err(|e| e.to_string())
}

/// A JSON document walked only to check that no object repeats a member name (serde_json's
/// recursion limit bounds the depth).
struct UniqueNames;

impl<'de> serde::Deserialize<'de> for UniqueNames {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(UniqueNamesVisitor)
    }
}

struct UniqueNamesVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueNamesVisitor {
    type Value = UniqueNames;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("JSON")
    }

    fn visit_bool<E>(self, _: bool) -> std::result::Result<UniqueNames, E> {
        Ok(UniqueNames)
    }

    fn visit_i64<E>(self, _: i64) -> std::result::Result<UniqueNames, E> {
        Ok(UniqueNames)
    }

    fn visit_u64<E>(self, _: u64) -> std::result::Result<UniqueNames, E> {
        Ok(UniqueNames)
    }

    fn visit_f64<E>(self, _: f64) -> std::result::Result<UniqueNames, E> {
        Ok(UniqueNames)
    }

    fn visit_str<E>(self, _: &str) -> std::result::Result<UniqueNames, E> {
        Ok(UniqueNames)
    }

    fn visit_unit<E>(self) -> std::result::Result<UniqueNames, E> {
        Ok(UniqueNames)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<UniqueNames, A::Error> {
        while seq.next_element::<UniqueNames>()?.is_some() {}
        Ok(UniqueNames)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> std::result::Result<UniqueNames, A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(name) = map.next_key::<String>()? {
            if seen.contains(&name) {
                let shown: String = name.chars().take(64).collect();
                return Err(serde::de::Error::custom(format!("duplicate member name `{shown}`")));
            }
            map.next_value::<UniqueNames>()?;
            seen.insert(name);
        }
        Ok(UniqueNames)
    }
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
/// deleted or compromised client, a user signed out everywhere. Refresh tokens go first, each
/// with its family. Pages follow a cursor, so each pass reads every active token once and
/// ends.
///
/// Listings are in expiry order, so a token issued during a pass can sort before its cursor
/// (a code redeemed at a client of shorter lifetimes, a successor the family index did not
/// show yet, a record an earlier version wrote during a rolling deploy). Passes therefore
/// repeat from the start until one revokes nothing, at most [`SWEEP_PASSES`]: each reads only
/// the tokens still active, so the passes after the first read what was issued meanwhile. On
/// DynamoDB a pass reads an index, which lags writes by a moment: a token issued in the last
/// moment of a pass may be missed by the next. The cutoffs recorded first make the revocation
/// exact where it matters most: a client's own covers every use of its tokens and codes; a
/// user's covers every redemption of the user's codes and refresh tokens (an access token the
/// sweep missed stays valid at introspection until it expires, as introspection does not read
/// users).
pub(crate) async fn revoke_all(
    state: &AppState,
    actor: &Actor,
    client_id: Option<&str>,
    end_user: Option<&str>,
) -> Result<u64> {
    use crate::model::TokenKind;
    let now = state.clock.now();
    // All of one client's: first recorded on the client, which every use of a token or code
    // checks, so the revocation holds even if the sweep below is cut short (a client with
    // millions of records takes longer to sweep than a Lambda call lasts).
    if let (Some(id), None) = (client_id, end_user) {
        let gone = || OAuthError::NotFound("no such client".into());
        let mark = |c: &crate::model::Client| {
            let at = c.tokens_revoked_at.map_or(now, |t| t.max(now));
            Ok((crate::model::Client { tokens_revoked_at: Some(at), ..c.clone() }, ()))
        };
        match versioned::modify(state.store.as_ref(), id, gone, &versioned::IfMatch::Absent, mark).await {
            Ok(_) => {
                state.invalidate_client(id);
                changed(actor, "client_tokens_revoked", id);
            }
            // A deleted client: its tokens are refused anyway; the sweep revokes their records.
            Err(OAuthError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    // All of one user's, everywhere or at one client: recorded on the user, which every
    // redemption of the user's codes and refresh tokens reads (`grants::active_user`), so those
    // hold even where the sweep misses a token (cut short; on DynamoDB, an index that lags).
    // A cutoff at one client only for a client that exists: a deleted client's tokens are
    // refused anyway, and a user record never gathers cutoffs for names that are no client.
    let client_exists = match client_id {
        Some(id) if end_user.is_some() => state.store.get_client(id).await?.is_some(),
        _ => true,
    };
    if let Some(username) = end_user.filter(|_| client_exists) {
        let gone = || OAuthError::NotFound("no such user".into());
        let mark = |u: &crate::model::User| Ok((u.with_tokens_revoked(client_id, now), ()));
        match versioned::modify(state.store.as_ref(), username, gone, &versioned::IfMatch::Absent, mark).await {
            Ok(_) => {
                changed(actor, "user_tokens_revoked", username);
                // At one client it withdraws the user's consent there (the sign-in flow ignores
                // a consent given until the cutoff; this removes it from the listing too).
                if let Some(id) = client_id {
                    state.store.delete_consent(username, id).await?;
                }
            }
            // A deleted user: a user created again later never inherits the tokens
            // (`grants::active_user`); the sweep revokes their records.
            Err(OAuthError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    let mut revoked = 0;
    for _ in 0..SWEEP_PASSES {
        let mut this_pass = 0;
        for kind in [TokenKind::Refresh, TokenKind::Access] {
            let q = crate::store::TokenQuery {
                kind,
                client_id: client_id.map(Into::into),
                end_user: end_user.map(Into::into),
            };
            let mut after: Option<String> = None;
            loop {
                let (page, next) = state.store.list_tokens_after(&q, now, after.as_deref(), 100).await?;
                for t in &page {
                    let n = match (&t.kind, &t.family) {
                        (TokenKind::Refresh, Some(f)) => {
                            crate::grants::revoke_family(state, f, &t.with_sibling(now)).await?
                        }
                        _ => state.store.revoke_token(&t.id, now).await? as u64,
                    };
                    if n > 0 {
                        changed(actor, "token_revoked", t.id.chars().take(22).collect::<String>());
                    }
                    this_pass += n;
                }
                match next {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
        }
        revoked += this_pass;
        if this_pass == 0 {
            break;
        }
    }
    Ok(revoked)
}

/// Most passes of a [`revoke_all`] sweep: the first revokes what was active, the next ones
/// what was issued during the one before (a handful of tokens, unless the user or client keeps
/// getting new ones, which a sweep cannot outrun).
pub const SWEEP_PASSES: usize = 4;
