//! Domain types: RFC-spelled newtypes and the records the stores keep.
mod authorization;
mod group;
mod scope;
mod secret;
mod trust;
mod user;

pub use authorization::{AuthorizationCode, PendingAuthorization};
pub use group::Group;
pub use scope::Scope;
pub use secret::{ClientSecret, Redacted};
pub use trust::{JwkSet, TrustedIssuer};
pub use user::{Consent, FailureCounter, User};

use serde::{Deserialize, Serialize};

/// RFC 6749 §2.3 client authentication methods, as named by RFC 7591 §2
/// (`token_endpoint_auth_method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// HTTP Basic with the client id and secret (RFC 6749 §2.3.1), the default.
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body (RFC 6749 §2.3.1).
    ClientSecretPost,
    /// A public client: no secret (RFC 6749 §2.1).
    None,
    /// A JWT signed with one of the client's registered keys (RFC 7523 §2.2, OIDC Core §9).
    PrivateKeyJwt,
}

impl AuthMethod {
    /// The RFC 7591 name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::None => "none",
            Self::PrivateKeyJwt => "private_key_jwt",
        }
    }
}

/// Grant types Gatehouse knows (RFC 6749 §4, RFC 7523 §2.1), all served; a grant added before
/// it is served would be left out of [`GrantType::is_served`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
pub enum GrantType {
    #[serde(rename = "authorization_code")]
    AuthorizationCode,
    #[serde(rename = "client_credentials")]
    ClientCredentials,
    #[serde(rename = "refresh_token")]
    RefreshToken,
    #[serde(rename = "password")]
    Password,
    #[serde(rename = "urn:ietf:params:oauth:grant-type:jwt-bearer")]
    JwtBearer,
}

impl GrantType {
    /// Every grant type, in metadata order.
    pub const ALL: [GrantType; 5] =
        [Self::AuthorizationCode, Self::ClientCredentials, Self::RefreshToken, Self::Password, Self::JwtBearer];

    /// The `grant_type` parameter value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::ClientCredentials => "client_credentials",
            Self::RefreshToken => "refresh_token",
            Self::Password => "password",
            Self::JwtBearer => "urn:ietf:params:oauth:grant-type:jwt-bearer",
        }
    }

    /// Parses a `grant_type` parameter value.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == s)
    }

    /// Whether the token endpoint serves this grant in this release (metadata lists only these).
    pub fn is_served(self) -> bool {
        Self::ALL.contains(&self)
    }
}

/// A registered client (RFC 7591 §2 metadata plus Gatehouse's own settings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Client {
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    /// SHA-256 digest (base64url) of the server-generated secret; `None` for public clients.
    pub secret_digest: Option<String>,
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<GrantType>,
    pub token_endpoint_auth_method: AuthMethod,
    /// The scopes this client may request.
    pub scope: Scope,
    /// Scopes the user is never asked to consent to for this client (OAM seed).
    #[serde(default)]
    pub pre_approved_scopes: Scope,
    /// Access-token lifetime in seconds for this client, overriding the tenant default.
    pub access_token_lifetime: Option<u64>,
    /// Refresh-token lifetime in seconds for this client, overriding the tenant default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token_lifetime: Option<u64>,
    /// Seconds since the epoch.
    pub created_at: i64,
    /// Secret rotation with overlap: the digest of the secret before the current one, accepted
    /// until `previous_secret_expires_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret_digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret_expires_at: Option<i64>,
    /// Optimistic concurrency: 0 at creation, +1 per update (`ClientStore::update_client`).
    #[serde(default)]
    pub version: u64,
    /// RFC 7591 §2 `jwks`: the public keys of a `private_key_jwt` client (RFC 7523 §2.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<JwkSet>,
    /// The issuers whose JWT bearer assertions this client may exchange (RFC 7523 §2.1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jwt_bearer_issuers: Vec<TrustedIssuer>,
    /// RFC 9449 §5.2 `dpop_bound_access_tokens`: every token request of this client must carry
    /// a DPoP proof (default `false`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dpop_bound_access_tokens: bool,
    /// Custom claims added to this client's access tokens (OAM seed 38.4.1, `crate::claims`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom_claims: Vec<crate::claims::ClaimRule>,
    /// Every token and code issued to this client at or before this time is revoked
    /// (`POST /admin/tokens/revoke-all` for the client): checked wherever one is used, from the
    /// client's record, so the revocation holds at once whatever the number of tokens, and the
    /// per-token sweep that follows only tidies up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_revoked_at: Option<i64>,
}

impl Client {
    /// Whether a token or code issued to this client at `issued_at` was revoked with all of
    /// the client's ([`Self::tokens_revoked_at`]; one issued in the same second too).
    pub fn revoked_with_all(&self, issued_at: i64) -> bool {
        self.tokens_revoked_at.is_some_and(|at| issued_at <= at)
    }

    /// RFC 6749 §2.1: a client without credentials is public.
    pub fn is_public(&self) -> bool {
        self.token_endpoint_auth_method == AuthMethod::None
    }
}

/// A scope offered by a resource server, with the text shown on consent pages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeDescription {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Custom claims added to tokens granted this scope; they win over the resource server's and
    /// the client's (`crate::claims`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claims: Vec<crate::claims::ClaimRule>,
}

/// A resource server (API): its identifier is the audience of the tokens issued for it
/// (RFC 8707 §2, RFC 9068 §3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceServer {
    pub identifier: String,
    pub name: Option<String>,
    pub scopes: Vec<ScopeDescription>,
    pub created_at: i64,
    /// Custom claims added to the tokens issued for this resource server (`crate::claims`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom_claims: Vec<crate::claims::ClaimRule>,
    /// Optimistic concurrency: 0 at creation, +1 per update
    /// ([`crate::store::ResourceServerStore::update_resource_server`]). Version 0 is stored as no
    /// version, as records written before versions existed are, so that the stores' tests of a
    /// first update cover those records too.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub version: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl ResourceServer {
    /// Longest identifier, in bytes: the identifier is a sort key in DynamoDB, whose sort keys
    /// hold at most 1024 bytes. A `resource` parameter longer than this names no resource
    /// server (`invalid_target`).
    pub const MAX_IDENTIFIER: usize = 1024;

    /// The scope names this resource server defines.
    pub fn scope_names(&self) -> impl Iterator<Item = &str> {
        self.scopes.iter().map(|s| s.name.as_str())
    }
}

/// What kind of token a [`TokenRecord`] describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    Access,
    Refresh,
}

impl TokenKind {
    /// `access` or `refresh`, as used by the admin API's `type` parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Access => "access",
            Self::Refresh => "refresh",
        }
    }

    /// Parses the admin API's `type` parameter.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "access" => Some(Self::Access),
            "refresh" => Some(Self::Refresh),
            _ => None,
        }
    }
}

/// The stored record of an issued token: what introspection, revocation and the admin
/// listings read. Never holds the token itself (a JWT is named by its `jti`, an opaque token
/// by `crypto::opaque_token_id`: a time prefix and its digest).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// The JWT `jti`, or `crypto::opaque_token_id` of an opaque token.
    pub id: String,
    pub kind: TokenKind,
    pub client_id: String,
    /// RFC 9068 `sub`: the end user, or the client itself for client credentials.
    pub subject: String,
    /// The resource owner, when there is one (absent for client credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_user: Option<String>,
    pub scope: Scope,
    pub audience: String,
    pub grant_type: GrantType,
    pub issued_at: i64,
    pub expires_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<i64>,
    /// The grant the token came from (one code redemption or password sign-in, and every
    /// refresh after it): revoked together on code replay or refresh-token reuse.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// Refresh tokens: when it was exchanged for its successor (rotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated_at: Option<i64>,
    /// Refresh tokens: the successor's token response, encrypted under a key derived from this
    /// (presented) refresh token, so a retry within the grace window gets the same tokens
    /// while the store alone reveals nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successor_response: Option<String>,
    /// RFC 9449 §6: the RFC 7638 thumbprint of the key the token is bound to (`cnf.jkt`): a
    /// DPoP-bound access token, or a refresh token of a public client issued with a proof (§5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jkt: Option<String>,
    /// Refresh tokens: the `jti` of the access token issued in the same response, so revoking
    /// the refresh token takes it by id even before the family's listing shows it (RFC 7009
    /// §2.1; on DynamoDB the listing is an eventually consistent index).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_with: Option<String>,
    /// When the grant the token came from was made (the code's issue, for a code exchange),
    /// carried through every refresh: a revocation of all of a client's tokens covers what a
    /// stale instance refreshed since from an older grant. Absent: the token's own issue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub granted_at: Option<i64>,
}

impl TokenRecord {
    /// When its grant was made ([`Self::granted_at`], or its own issue).
    pub fn grant_time(&self) -> i64 {
        self.granted_at.unwrap_or(self.issued_at)
    }

    /// Active means: not expired at `now`, not revoked and not rotated.
    pub fn is_active(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.rotated_at.is_none() && self.expires_at > now
    }

    /// The token's id and, within [`Self::LISTING_LAG`] of its issue, that of the access token
    /// issued with it: the ids a revocation of its family knows without the family's listing
    /// (`grants::revoke_family`, which reads each one the listing lacks). Later the listing
    /// holds the sibling if it is still active, and naming it would only cost a read.
    pub fn with_sibling(&self, now: i64) -> Vec<String> {
        std::iter::once(&self.id).chain(self.recent_sibling(now)).cloned().collect()
    }

    /// `issued_with`, while the family's listing may not show it yet.
    pub fn recent_sibling(&self, now: i64) -> Option<&String> {
        self.issued_with.as_ref().filter(|_| now - self.issued_at < Self::LISTING_LAG)
    }

    /// Seconds after which a token is surely in its family's listing (a DynamoDB index lags by
    /// well under a second; a wide margin).
    pub const LISTING_LAG: i64 = 60;
}

/// One key of a tenant's key ring (DESIGN.md "Keys and signing"; RFC 7517 key sets): a key
/// generated by Gatehouse and sealed by KMS (sealed mode), or a KMS asymmetric key (kms mode).
///
/// Life cycle, all decided from the stored times: *pending* (published in the JWKS, not yet
/// signing: `now < active_from`), *signing* (the newest generation whose `active_from` has
/// passed), *previous* (superseded, still published and accepted so that the tokens it signed
/// stay valid), *retired* (from `retired_at` on, neither published nor accepted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredSigningKey {
    pub kid: String,
    /// The key slot: 1 for a tenant's first key, +1 per rotation. Unique per tenant, so two
    /// cold starts (or two rotations) racing for a slot agree on one key.
    pub generation: u32,
    pub alg: String,
    /// The public key as a JWK (RFC 7517), JSON text.
    pub public_jwk: String,
    /// Sealed mode: KMS ciphertext of the PKCS#8 private key, base64url. Empty for a KMS key.
    #[serde(default)]
    pub sealed_private_key: String,
    /// Kms mode: the KMS key id (ARN) that signs with this key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    pub created_at: i64,
    /// The key signs from this time on (published before, so that verifiers whose JWKS copy is
    /// cached know it before the first token it signs). `None`: from `created_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_from: Option<i64>,
    /// From this time on the key is neither published nor accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<i64>,
}

impl StoredSigningKey {
    /// When the key starts signing.
    pub fn active_from(&self) -> i64 {
        self.active_from.unwrap_or(self.created_at)
    }

    /// Published and accepted at `now`.
    pub fn is_published(&self, now: i64) -> bool {
        self.retired_at.is_none_or(|r| r > now)
    }
}
