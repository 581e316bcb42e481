//! `GET /admin/openapi.json`: the OpenAPI 3.1 description of the admin API and the OAuth
//! endpoints (`shared/openapi.json`, compiled in). It needs an admin credential like every
//! `/admin` call: IAM deployments authorize `/admin/*` at API Gateway anyway, and one rule for
//! the whole prefix leaves nothing to remember. `tests/it/openapi.rs` keeps it in step with the
//! routes and the responses.
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::authorize;
use crate::{AppState, Result};

/// The document, as written in `shared/openapi.json`.
pub const DOCUMENT: &str = include_str!("../../../openapi.json");

pub(super) async fn document(State(state): State<AppState>, parts: Parts) -> Result<Response> {
    authorize(&state, &parts).await?;
    let mut r = (StatusCode::OK, DOCUMENT).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    crate::error::no_store(&mut r);
    Ok(r)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_is_json() {
        let doc: serde_json::Value = serde_json::from_str(super::DOCUMENT).expect("shared/openapi.json is JSON");
        assert_eq!(doc["openapi"], "3.1.0");
    }
}
