//! `OAuthError`: every error Gatehouse can answer, and the ONLY mapping from errors to HTTP.
//!
//! Error responses follow RFC 6749 §5.2 (token endpoint), RFC 7009 §2.2.1 (revocation),
//! RFC 7662 §2.3 (introspection), RFC 6750 §3 (bearer token usage) and RFC 7591 §3.2.2
//! (client metadata). The body is always `{"error", "error_description"}` with
//! `Cache-Control: no-store` and `Pragma: no-cache`. Internal details (`Server`) are logged
//! and never reach the client.
use std::borrow::Cow;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The realm named in `WWW-Authenticate` challenges.
pub const REALM: &str = "gatehouse";

/// How the client tried to authenticate, which decides the `invalid_client` status
/// (RFC 6749 §5.2: 401 + `WWW-Authenticate` when the Authorization header was used).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthAttempt {
    /// `Authorization: Basic` header (client_secret_basic).
    Header,
    /// Credentials in the form body (client_secret_post, or a public client's client_id).
    Body,
    /// No credentials at all: challenge with the supported scheme.
    None,
}

type Desc = Cow<'static, str>;

/// Every error Gatehouse answers. The RFC error code, status and headers are derived here only.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// RFC 6749 §5.2 `invalid_request` (400).
    #[error("invalid_request: {0}")]
    InvalidRequest(Desc),
    /// RFC 6749 §5.2 `invalid_client` (401 with a Basic challenge, or 400 for body credentials).
    #[error("invalid_client: {description}")]
    InvalidClient { description: Desc, attempt: ClientAuthAttempt },
    /// RFC 6749 §5.2 `invalid_grant` (400).
    #[error("invalid_grant: {0}")]
    InvalidGrant(Desc),
    /// RFC 6749 §5.2 `unauthorized_client` (400).
    #[error("unauthorized_client: {0}")]
    UnauthorizedClient(Desc),
    /// RFC 6749 §5.2 `unsupported_grant_type` (400).
    #[error("unsupported_grant_type")]
    UnsupportedGrantType,
    /// RFC 6749 §5.2 `invalid_scope` (400).
    #[error("invalid_scope: {0}")]
    InvalidScope(Desc),
    /// RFC 8707 §2 `invalid_target` (400).
    #[error("invalid_target: {0}")]
    InvalidTarget(Desc),
    /// RFC 9449 §5 `invalid_dpop_proof` at the token endpoint (400).
    #[error("invalid_dpop_proof: {0}")]
    InvalidDpopProof(Desc),
    /// RFC 9449 §8 `use_dpop_nonce` at the token endpoint: 400, the nonce to use in `DPoP-Nonce`.
    #[error("use_dpop_nonce")]
    UseDpopNonce(String),
    /// RFC 9449 §7.1, §9: a resource-server refusal under the DPoP scheme (`invalid_token`,
    /// `invalid_dpop_proof` or `use_dpop_nonce`): 401 with `WWW-Authenticate: DPoP error=...`
    /// and, for `use_dpop_nonce`, the nonce in `DPoP-Nonce`.
    #[error("{code}: {description}")]
    DpopUnauthorized { code: &'static str, description: Desc, nonce: Option<String> },
    /// RFC 6749 §4.1.2.1 `access_denied`: the resource owner denied the request (redirected).
    #[error("access_denied")]
    AccessDenied,
    /// RFC 6749 §4.1.2.1 `unsupported_response_type` (400 when it cannot be redirected).
    #[error("unsupported_response_type")]
    UnsupportedResponseType,
    /// RFC 7009 §2.2.1 `unsupported_token_type` (400).
    #[error("unsupported_token_type")]
    UnsupportedTokenType,
    /// RFC 6750 §3.1 `invalid_token` (401 with a Bearer challenge).
    #[error("invalid_token: {0}")]
    InvalidToken(Desc),
    /// RFC 6750 §3.1 `insufficient_scope` (403 with a Bearer challenge).
    #[error("insufficient_scope: {0}")]
    InsufficientScope(Desc),
    /// RFC 6750 §3.1 `insufficient_scope` naming the scope the request needs (the challenge's
    /// `scope` attribute, RFC 6750 §3): 403.
    #[error("insufficient_scope: {description}")]
    ScopeRequired { description: Desc, scope: String },
    /// RFC 6750 §3.1: a request to a bearer-protected endpoint without a bearer token. 401 with
    /// a bare `Bearer realm` challenge (no error code, as §3.1 asks).
    #[error("bearer token required")]
    BearerTokenRequired,
    /// RFC 7591 §3.2.2 `invalid_client_metadata` (400); the description names the field.
    #[error("invalid_client_metadata: {0}")]
    InvalidClientMetadata(Desc),
    /// RFC 7591 §3.2.2 `invalid_redirect_uri` (400).
    #[error("invalid_redirect_uri: {0}")]
    InvalidRedirectUri(Desc),
    /// Admin API: no admin credential (401, Bearer challenge without error code, RFC 6750 §3.1).
    #[error("unauthorized")]
    AdminUnauthorized,
    /// Admin API: a credential that is wrong, expired, revoked or for another audience (401 as
    /// [`Self::AdminUnauthorized`], the challenge with `error="invalid_token"`, RFC 6750 §3.1).
    #[error("unauthorized")]
    AdminInvalidCredential,
    /// Admin API: the named object does not exist (404 `not_found`).
    #[error("not_found: {0}")]
    NotFound(Desc),
    /// Admin API: the object exists already (409 `conflict`).
    #[error("conflict: {0}")]
    Conflict(Desc),
    /// Admin API: the object is no longer the version an `If-Match` names (RFC 9110 §13.1.1:
    /// 412 `precondition_failed`); nothing was written.
    #[error("precondition_failed: {0}")]
    PreconditionFailed(Desc),
    /// The HTTP method is not served on this path (405 `invalid_request`, with `Allow`).
    #[error("method not allowed")]
    MethodNotAllowed(&'static str),
    /// Request body over the limit (413 `invalid_request`).
    #[error("payload too large")]
    PayloadTooLarge,
    /// The request body did not arrive within `http::BODY_READ_TIMEOUT` (RFC 9110 §15.5.9:
    /// 408 `invalid_request`).
    #[error("request timeout")]
    RequestTimeout,
    /// RFC 6749 §5.2 / §4.1.2.1 `temporarily_unavailable`: the store or KMS is unavailable or
    /// throttled. 503 with `Retry-After`; nothing was written.
    #[error("temporarily_unavailable: {0}")]
    TemporarilyUnavailable(Desc),
    /// Anything unexpected: logged in full, answered as a bare `server_error` (500).
    #[error("server_error: {0}")]
    Server(String),
}

impl OAuthError {
    /// Shorthand for `InvalidRequest` with a static description.
    pub fn invalid_request(d: impl Into<Desc>) -> Self {
        Self::InvalidRequest(d.into())
    }

    /// Shorthand for `InvalidClient`.
    pub fn invalid_client(d: impl Into<Desc>, attempt: ClientAuthAttempt) -> Self {
        Self::InvalidClient { description: d.into(), attempt }
    }

    /// Shorthand for `Server`; the message is logged, never sent.
    pub fn server(e: impl std::fmt::Display) -> Self {
        Self::Server(e.to_string())
    }

    /// The RFC error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) | Self::MethodNotAllowed(_) | Self::PayloadTooLarge | Self::RequestTimeout => {
                "invalid_request"
            }
            Self::InvalidClient { .. } => "invalid_client",
            Self::InvalidGrant(_) => "invalid_grant",
            Self::UnauthorizedClient(_) => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope(_) => "invalid_scope",
            Self::InvalidTarget(_) => "invalid_target",
            Self::InvalidDpopProof(_) => "invalid_dpop_proof",
            Self::UseDpopNonce(_) => "use_dpop_nonce",
            Self::DpopUnauthorized { code, .. } => code,
            Self::AccessDenied => "access_denied",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::UnsupportedTokenType => "unsupported_token_type",
            Self::InvalidToken(_) => "invalid_token",
            Self::InsufficientScope(_) | Self::ScopeRequired { .. } => "insufficient_scope",
            Self::InvalidClientMetadata(_) => "invalid_client_metadata",
            Self::InvalidRedirectUri(_) => "invalid_redirect_uri",
            Self::AdminUnauthorized | Self::AdminInvalidCredential | Self::BearerTokenRequired => "unauthorized",
            Self::NotFound(_) => "not_found",
            Self::Conflict(_) => "conflict",
            Self::PreconditionFailed(_) => "precondition_failed",
            Self::TemporarilyUnavailable(_) => "temporarily_unavailable",
            Self::Server(_) => "server_error",
        }
    }

    /// The human-readable description sent to the client (never internal details).
    pub fn description(&self) -> Cow<'static, str> {
        match self {
            Self::InvalidRequest(d)
            | Self::InvalidGrant(d)
            | Self::UnauthorizedClient(d)
            | Self::InvalidScope(d)
            | Self::InvalidTarget(d)
            | Self::InvalidDpopProof(d)
            | Self::InvalidToken(d)
            | Self::InsufficientScope(d)
            | Self::InvalidClientMetadata(d)
            | Self::InvalidRedirectUri(d)
            | Self::NotFound(d)
            | Self::Conflict(d)
            | Self::PreconditionFailed(d)
            | Self::TemporarilyUnavailable(d) => d.clone(),
            Self::InvalidClient { description, .. } | Self::ScopeRequired { description, .. } => description.clone(),
            Self::DpopUnauthorized { description, .. } => description.clone(),
            Self::UseDpopNonce(_) => "the authorization server requires a nonce in the DPoP proof".into(),
            Self::UnsupportedGrantType => "the grant_type is not supported".into(),
            Self::AccessDenied => "the resource owner denied the request".into(),
            Self::UnsupportedResponseType => "the response_type is not supported".into(),
            Self::UnsupportedTokenType => "revocation of this token type is not supported".into(),
            Self::AdminUnauthorized | Self::AdminInvalidCredential => "a valid admin credential is required".into(),
            Self::BearerTokenRequired => "an access token is required: Authorization: Bearer <token>".into(),
            Self::MethodNotAllowed(allow) => format!("use {allow} on this endpoint").into(),
            Self::PayloadTooLarge => "the request body is too large".into(),
            Self::RequestTimeout => "the request body did not arrive in time".into(),
            Self::Server(_) => "the server encountered an unexpected condition".into(),
        }
    }

    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidClient { attempt: ClientAuthAttempt::Body, .. } => StatusCode::BAD_REQUEST,
            Self::InvalidClient { .. }
            | Self::InvalidToken(_)
            | Self::AdminUnauthorized
            | Self::AdminInvalidCredential
            | Self::BearerTokenRequired => StatusCode::UNAUTHORIZED,
            Self::InsufficientScope(_) | Self::ScopeRequired { .. } => StatusCode::FORBIDDEN,
            Self::DpopUnauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::TemporarilyUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Server(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// The `WWW-Authenticate` challenge, when the status requires one (RFC 9110 §11.6.1).
    pub fn challenge(&self) -> Option<String> {
        match self {
            Self::InvalidClient { attempt: ClientAuthAttempt::Body, .. } => None,
            Self::InvalidClient { .. } => Some(format!("Basic realm=\"{REALM}\"")),
            Self::InvalidToken(_) | Self::InsufficientScope(_) => Some(format!(
                "Bearer realm=\"{REALM}\", error=\"{}\", error_description=\"{}\"",
                self.code(),
                self.description().replace(['"', '\\'], "'")
            )),
            Self::ScopeRequired { scope, .. } => Some(format!(
                "Bearer realm=\"{REALM}\", error=\"insufficient_scope\", error_description=\"{}\", scope=\"{}\"",
                self.description().replace(['"', '\\'], "'"),
                scope.replace(['"', '\\'], "'")
            )),
            Self::AdminUnauthorized | Self::BearerTokenRequired => Some(format!("Bearer realm=\"{REALM}\"")),
            Self::AdminInvalidCredential => Some(format!("Bearer realm=\"{REALM}\", error=\"invalid_token\"")),
            Self::DpopUnauthorized { .. } => Some(format!(
                "DPoP realm=\"{REALM}\", error=\"{}\", error_description=\"{}\", algs=\"{}\"",
                self.code(),
                // A header value is visible ASCII: `§` spelled out, anything else non-ASCII dropped.
                self.description()
                    .replace(['"', '\\'], "'")
                    .replace('§', "Section ")
                    .replace(|c: char| !c.is_ascii(), ""),
                crate::dpop::SIGNING_ALGS.join(" ")
            )),
            _ => None,
        }
    }
}

/// Response headers every OAuth response carries (RFC 6749 §5.1: no caching of tokens or errors).
pub fn no_store(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        crate::metrics::error(self.code());
        match &self {
            Self::Server(detail) => tracing::error!(error = %detail, "server_error"),
            Self::TemporarilyUnavailable(_) => tracing::warn!(error = %self, "dependency unavailable"),
            _ => {}
        }
        let body = serde_json::json!({
            "error": self.code(),
            "error_description": self.description(),
        });
        let mut resp = (self.status(), axum::Json(body)).into_response();
        no_store(&mut resp);
        if let Some(c) = self.challenge().and_then(|c| HeaderValue::from_str(&c).ok()) {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, c);
        }
        match &self {
            Self::TemporarilyUnavailable(_) => {
                resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Self::MethodNotAllowed(allow) => {
                resp.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            Self::UseDpopNonce(nonce) | Self::DpopUnauthorized { nonce: Some(nonce), .. } => {
                if let Ok(v) = HeaderValue::from_str(nonce) {
                    resp.headers_mut().insert(crate::dpop::DPOP_NONCE_HEADER, v);
                }
            }
            _ => {}
        }
        resp
    }
}

impl From<crate::store::StoreError> for OAuthError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match e {
            StoreError::Unavailable(_) => {
                tracing::warn!(error = %e, "store unavailable");
                Self::TemporarilyUnavailable("the token store is unavailable, retry shortly".into())
            }
            other => Self::Server(other.to_string()),
        }
    }
}
