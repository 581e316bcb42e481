//! `GET /.well-known/oauth-authorization-server` (RFC 8414 §3) and
//! `GET /.well-known/jwks.json` (RFC 7517 §5). Lists only what is served.
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::AppState;
use crate::endpoints::method_not_allowed;
use crate::model::GrantType;

/// The metadata routes, for merging.
pub fn routes() -> Router<AppState> {
    let routes = Router::new()
        .route("/.well-known/oauth-authorization-server", get(server_metadata).fallback(method_not_allowed("GET")))
        .route("/.well-known/jwks.json", get(jwks).fallback(method_not_allowed("GET")));
    super::cors::allow(routes, "GET")
}

/// RFC 8414 §2 authorization server metadata.
pub fn document(state: &AppState) -> serde_json::Value {
    let c = &state.config;
    let grants: Vec<&str> = GrantType::ALL.into_iter().filter(|g| g.is_served()).map(GrantType::as_str).collect();
    let auth_methods = ["client_secret_basic", "client_secret_post", "private_key_jwt"];
    let token_auth_methods = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"];
    // private_key_jwt client assertions (RFC 7523 §2.2), at every endpoint that authenticates.
    let assertion_algs = ["ES256", "RS256"];
    json!({
        "issuer": c.issuer,
        "authorization_endpoint": c.endpoint("/authorize"),
        "token_endpoint": c.endpoint("/token"),
        "jwks_uri": c.endpoint("/.well-known/jwks.json"),
        "revocation_endpoint": c.endpoint("/revoke"),
        "introspection_endpoint": c.endpoint("/introspect"),
        "grant_types_supported": grants,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": token_auth_methods,
        "revocation_endpoint_auth_methods_supported": token_auth_methods,
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "token_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "revocation_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "introspection_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "authorization_response_iss_parameter_supported": true,
        // RFC 9449 §5.1: the algorithms accepted for DPoP proofs.
        "dpop_signing_alg_values_supported": crate::dpop::SIGNING_ALGS,
    })
}

fn cacheable(body: serde_json::Value, max_age: &'static str) -> Response {
    let mut r = axum::Json(body).into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(max_age));
    r
}

async fn server_metadata(State(state): State<AppState>) -> Response {
    let mut doc = document(&state);
    if let Some(m) = doc.as_object_mut() {
        m.retain(|_, v| !v.is_null());
    }
    cacheable(doc, "public, max-age=300")
}

/// RFC 7517 §5. Pending keys are in it before they sign (`keys::KeyRing`), so `max-age` must
/// stay below `keys::DEFAULT_ACTIVATION_DELAY` - `keys::RELOAD_INTERVAL`.
async fn jwks(State(state): State<AppState>) -> Response {
    state.signer.refresh(state.clock.now(), None).await;
    cacheable(state.signer.keys().jwks(), "public, max-age=300")
}
