//! `POST /token` (RFC 6749 §3.2): authenticate the client, parse the grant, check a DPoP proof
//! (RFC 9449 §5), issue.
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use crate::endpoints::{json_no_store, method_not_allowed, not_found};
use crate::{AppState, Result, dpop, grants, http};

/// The token function's router: `/token` and the metadata documents.
pub fn router(state: AppState) -> Router {
    routes().merge(super::metadata::routes()).fallback(not_found).with_state(state)
}

/// The `/token` route, for merging.
pub fn routes() -> Router<AppState> {
    super::cors::allow(Router::new().route("/token", post(handle).fallback(method_not_allowed("POST"))), "POST")
}

async fn handle(State(state): State<AppState>, req: Request<Body>) -> Response {
    token(&state, req).await.map(IntoResponse::into_response).unwrap_or_else(IntoResponse::into_response)
}

async fn token(state: &AppState, req: Request<Body>) -> Result<Response> {
    let (parts, form) = http::read_form(req).await?;
    let client = http::authenticate_client(state, &parts.headers, &form).await?;
    let request = grants::TokenRequest::parse(&form, &client)?;
    let proof = dpop::token_request(state, &parts, &client).await?;
    let issued = grants::issue(state, &client, request, proof.as_ref()).await?;
    let mut resp = json_no_store(StatusCode::OK, serde_json::to_value(issued).map_err(crate::OAuthError::server)?);
    dpop::add_nonce(state, &mut resp).await?;
    Ok(resp)
}
