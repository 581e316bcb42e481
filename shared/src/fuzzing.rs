//! Entry points for the cargo-fuzz targets in `fuzz/` (`scripts/fuzz.sh`). Not an API: hidden
//! from the docs, no stability promise. Each item is a parser that is otherwise private to its
//! module, re-exported unchanged, so the fuzzers exercise exactly the code the endpoints run.
use axum::body::Body;

use crate::{OAuthError, Result};

pub use crate::dpop::proof::{SignedProof, read as dpop_proof};
pub use crate::endpoints::token_admin::clients::{ClientMetadata, ValidMetadata, client_json, validate_redirect_uri};

/// The admin API's JSON body parser (`token_admin::json_body`: at most `http::MAX_BODY` bytes, a
/// JSON object, unknown fields refused by `T`); `bad` makes the error for a body that is not.
pub async fn admin_json_body<T: serde::de::DeserializeOwned>(
    body: Vec<u8>,
    bad: fn(String) -> OAuthError,
) -> Result<T> {
    crate::endpoints::token_admin::json_body(Body::from(body), bad).await
}
