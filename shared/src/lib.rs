//! Gatehouse: an OAuth 2.0 authorization server for AWS Lambda.
//!
//! Every endpoint is an `axum::Router` over one [`AppState`]; the same routers run in the
//! Lambda functions (`functions/*`), the local all-in-one server and the tests.
pub mod assertion;
pub mod audit;
pub mod cache;
pub mod claims;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod dpop;
pub mod endpoints;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod grants;
pub mod http;
pub mod keys;
pub mod lifecycle;
pub mod metrics;
pub mod model;
#[cfg(feature = "embedded")]
pub mod server;
pub mod settings;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod users;
pub mod validation;

pub use config::Config;
pub use error::OAuthError;
pub use state::AppState;

/// Gatehouse's result type: errors are OAuth errors.
pub type Result<T, E = OAuthError> = std::result::Result<T, E>;
