//! The seed's token validation checks (002_050589298000c9b6.txt, "token validation
//! interceptor"), shared by `POST /introspect` (RFC 7662 plus check parameters) and
//! `GET /validate` (the STS-style GET of 000_661aebbf905003eb.txt):
//!
//! 1. the token is one of ours and active: not `expired`, not `revoked` (or rotated, or its
//!    client deleted), else `invalid`;
//! 2. `expected_audience` (Gatehouse's, not the seed's): the token was issued for that resource
//!    server, its `aud` (`audience_mismatch`): RFC 9068 §4 and RFC 7662 §4 leave this to the
//!    resource server, which can ask Gatehouse to do it in the same call;
//! 3. `expected_end_user`: the token's resource owner is that user (exact match), or, with the
//!    tenant's `group_uri_enabled` setting on, the token was issued to a group's owner and the
//!    user is a member of that group now (`user_mismatch` / `not_a_member`);
//! 4. `expected_group`: with `group_uri_enabled` on, the token was issued to that group's owner
//!    (`group_mismatch`);
//! 5. `required_scope`: the token's scope covers every scope token asked (`insufficient_scope`).
//!
//! Group owners (seed: "a group owner with a group URI [is] a normal resource owner ... the
//! token can access a resource on behalf of any of the group members"): the owner of group `G`
//! is the user whose username is `G`. A token issued to that user acts for `G`'s members;
//! membership is one point read ([`crate::store::GroupStore::is_member`]) at every validation,
//! so removing a member takes effect at once, and so does turning the setting off.
use serde::Serialize;

use crate::http::Params;
use crate::model::{Scope, TokenKind, TokenRecord};
use crate::{AppState, OAuthError, Result};

/// Longest `expected_end_user` / `expected_group` value accepted (characters).
pub const MAX_NAME: usize = 256;

/// Why a token did not validate: the reason codes `POST /introspect` answers with
/// `include_reason=true`. Token reasons come first (`expired` before `revoked`: an expired
/// token's record may already be gone), then the checks in the order above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Not a token of this tenant: malformed, forged, unknown, or another kind than asked.
    Invalid,
    /// Past its `exp` (access tokens; an expired refresh token is `invalid`: its record is
    /// filtered on read).
    Expired,
    /// Revoked, or (refresh tokens) rotated.
    Revoked,
    /// Issued for another resource server than `expected_audience`.
    AudienceMismatch,
    /// `expected_end_user` is not the token's resource owner (nor, with groups on, a member
    /// of the group the token was issued for, when the token's owner is no group).
    UserMismatch,
    /// Groups on and the token issued to a group's owner, but `expected_end_user` is not a
    /// member of that group (never was, or was removed).
    NotAMember,
    /// The token was not issued to `expected_group`'s owner, or groups are off.
    GroupMismatch,
    /// `required_scope` is not covered by the token's scope.
    InsufficientScope,
}

impl Reason {
    /// The reason code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invalid => "invalid",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
            Self::AudienceMismatch => "audience_mismatch",
            Self::UserMismatch => "user_mismatch",
            Self::NotAMember => "not_a_member",
            Self::GroupMismatch => "group_mismatch",
            Self::InsufficientScope => "insufficient_scope",
        }
    }

    /// The RFC 6750 §3.1 refusal of `GET /validate`: the token itself is bad → 401
    /// `invalid_token`; a good token that does not cover the request → 403 `insufficient_scope`
    /// (with the needed `scope` when a scope is missing).
    pub fn error(self, required: Option<&Scope>) -> OAuthError {
        match self {
            Self::Invalid => OAuthError::InvalidToken("the access token is not valid".into()),
            Self::Expired => OAuthError::InvalidToken("the access token has expired".into()),
            Self::Revoked => OAuthError::InvalidToken("the access token was revoked".into()),
            // RFC 9068 §4: a token for another audience is one the resource server rejects as
            // invalid (RFC 6750 §3.1 `invalid_token`), not one short of scope.
            Self::AudienceMismatch => {
                OAuthError::InvalidToken("the access token was issued for another resource server".into())
            }
            Self::UserMismatch => {
                OAuthError::InsufficientScope("the access token does not act for the expected end user".into())
            }
            Self::NotAMember => OAuthError::InsufficientScope(
                "the expected end user is not a member of the group the access token was issued for".into(),
            ),
            Self::GroupMismatch => {
                OAuthError::InsufficientScope("the access token was not issued for the expected group".into())
            }
            Self::InsufficientScope => OAuthError::ScopeRequired {
                description: "the access token does not have the required scope".into(),
                scope: required.map(Scope::to_string).unwrap_or_default(),
            },
        }
    }
}

/// The checks a resource server asks for (form parameters of `POST /introspect`, query
/// parameters of `GET /validate`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Checks {
    pub expected_audience: Option<String>,
    pub expected_end_user: Option<String>,
    pub expected_group: Option<String>,
    pub required_scope: Option<Scope>,
}

impl Checks {
    /// Reads `expected_audience`, `expected_end_user`, `expected_group` and `required_scope`
    /// (space-separated, RFC 6749 §3.3 syntax); `invalid_request` naming the parameter when
    /// malformed.
    pub fn parse(p: &Params) -> Result<Self> {
        let name = |key: &'static str| -> Result<Option<String>> {
            match p.get(key) {
                Some(v) if v.chars().count() > MAX_NAME => {
                    Err(OAuthError::invalid_request(format!("`{key}` is longer than {MAX_NAME} characters")))
                }
                v => Ok(v.map(str::to_owned)),
            }
        };
        let required_scope = match p.get("required_scope") {
            None => None,
            Some(s) => Some(Scope::parse(s).ok_or_else(|| {
                OAuthError::invalid_request("`required_scope` is not a space-separated list of scope tokens")
            })?),
        };
        let max = crate::model::ResourceServer::MAX_IDENTIFIER;
        let expected_audience = match p.get("expected_audience") {
            Some(v) if v.len() > max => {
                return Err(OAuthError::invalid_request(format!("`expected_audience` is longer than {max} bytes")));
            }
            v => v.map(str::to_owned),
        };
        Ok(Self {
            expected_audience,
            expected_end_user: name("expected_end_user")?,
            expected_group: name("expected_group")?,
            required_scope,
        })
    }

    /// The checks asked, in evaluation order.
    fn asked(&self) -> Vec<Check<'_>> {
        let audience = self.expected_audience.as_deref().map(Check::Audience);
        let user = self.expected_end_user.as_deref().map(Check::EndUser);
        let group = self.expected_group.as_deref().map(Check::Group);
        let scope = self.required_scope.as_ref().map(Check::Scope);
        [audience, user, group, scope].into_iter().flatten().collect()
    }
}

/// One check asked.
#[derive(Debug, Clone, Copy)]
enum Check<'a> {
    Audience(&'a str),
    EndUser(&'a str),
    Group(&'a str),
    Scope(&'a Scope),
}

impl Check<'_> {
    fn name(self) -> &'static str {
        match self {
            Self::Audience(_) => "expected_audience",
            Self::EndUser(_) => "expected_end_user",
            Self::Group(_) => "expected_group",
            Self::Scope(_) => "required_scope",
        }
    }

    fn value(self) -> String {
        match self {
            Self::Audience(v) | Self::EndUser(v) | Self::Group(v) => v.to_owned(),
            Self::Scope(s) => s.to_string(),
        }
    }

    fn outcome(self, outcome: &'static str) -> CheckOutcome {
        CheckOutcome { check: self.name(), value: self.value(), outcome }
    }
}

/// One check asked and its outcome (audit EDR 20006): `pass`, the failing check's reason code,
/// or `skipped` when the token itself was not valid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckOutcome {
    pub check: &'static str,
    pub value: String,
    pub outcome: &'static str,
}

/// Which tokens a validation accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// Access and refresh tokens (RFC 7662 introspection).
    AnyToken,
    /// Access tokens only (`GET /validate`: refresh tokens never go to resource servers,
    /// RFC 6749 §1.5).
    AccessOnly,
}

/// The outcome of one validation. Never holds the token.
#[derive(Debug, Clone, Default)]
pub struct Validation {
    /// The token's record when the token is active (even if a check failed).
    pub record: Option<TokenRecord>,
    /// Why the answer is not valid; `None` when the token is active and every check passed.
    pub reason: Option<Reason>,
    /// The token's `jti` (a refresh token: its store id's first 22 characters) when it is ours.
    pub jti: Option<String>,
    /// The token's client and resource owner when known.
    pub client_id: Option<String>,
    pub end_user: Option<String>,
    /// Each check asked, in order, with its outcome.
    pub checks: Vec<CheckOutcome>,
}

impl Validation {
    /// The record, when the token is active and every check passed.
    pub fn valid(&self) -> Option<&TokenRecord> {
        self.record.as_ref().filter(|_| self.reason.is_none())
    }

    fn refuse(mut self, reason: Reason) -> Self {
        self.reason = Some(reason);
        self.record = None;
        self
    }
}

/// Finds `token` and applies `checks` to it.
pub async fn validate(state: &AppState, token: &str, accept: Accept, checks: &Checks) -> Result<Validation> {
    let mut v = lookup(state, token, accept).await?;
    // Deleting a client revokes its tokens, but another warm instance may issue one more from
    // its cached copy of the client (`cache::CLIENT_TTL`): a token of a client that no longer
    // exists is never active. Nor is one issued before a revocation of all the client's tokens
    // (the sweep of their records may be unfinished). A cached read: no round trip on a warm
    // instance.
    if let Some(r) = &v.record
        && state.client(&r.client_id).await?.is_none_or(|c| c.revoked_with_all(r.grant_time()))
    {
        v = v.refuse(Reason::Revoked);
    }
    let asked = checks.asked();
    let Some(record) = v.record.clone() else {
        v.checks = asked.into_iter().map(|c| c.outcome("skipped")).collect();
        return Ok(v);
    };
    let mut first_failure = None;
    for check in asked {
        let failed = match check {
            Check::Audience(aud) => (record.audience != aud).then_some(Reason::AudienceMismatch),
            Check::EndUser(user) => end_user_check(state, &record, user).await?,
            Check::Group(group) => group_check(state, &record, group).await?,
            Check::Scope(s) => (!s.is_subset(&record.scope)).then_some(Reason::InsufficientScope),
        };
        first_failure = first_failure.or(failed);
        v.checks.push(check.outcome(failed.map_or("pass", Reason::as_str)));
    }
    v.reason = first_failure;
    Ok(v)
}

/// The token's record and state: access tokens are JWTs (signature, type and issuer verified
/// before any read), refresh tokens opaque (read by `crypto::opaque_token_id`).
async fn lookup(state: &AppState, token: &str, accept: Accept) -> Result<Validation> {
    let v = Validation::default();
    let now = state.clock.now();
    if token.split('.').count() != 3 {
        if accept == Accept::AccessOnly || token.len() > 256 {
            return Ok(v.refuse(Reason::Invalid));
        }
        let id = crate::crypto::opaque_token_id(token);
        return Ok(known(v, state.store.get_token(&id, now).await?, TokenKind::Refresh, None, now));
    }
    let Some(claims) =
        crate::keys::verify_access_token_signature(&*state.signer, token, &state.config.issuer, now).await
    else {
        return Ok(v.refuse(Reason::Invalid));
    };
    let v = Validation { jti: Some(claims.jti.clone()), client_id: Some(claims.client_id.clone()), ..v };
    if claims.exp <= now {
        return Ok(v.refuse(Reason::Expired));
    }
    let record = state.store.get_token(&claims.jti, now).await?;
    Ok(known(v, record, TokenKind::Access, Some(&claims.client_id), now))
}

/// Judges a stored record of the expected kind (and, for an access token, of the client its
/// signed claims name).
fn known(
    mut v: Validation,
    record: Option<TokenRecord>,
    kind: TokenKind,
    client: Option<&str>,
    now: i64,
) -> Validation {
    let Some(r) = record.filter(|r| r.kind == kind && client.is_none_or(|c| c == r.client_id)) else {
        return v.refuse(Reason::Invalid);
    };
    v.jti = Some(r.id.chars().take(22).collect());
    v.client_id = Some(r.client_id.clone());
    v.end_user = r.end_user.clone();
    if r.revoked_at.is_some() || r.rotated_at.is_some() {
        return v.refuse(Reason::Revoked);
    }
    if !r.is_active(now) {
        return v.refuse(Reason::Expired);
    }
    v.record = Some(r);
    v
}

/// `expected_end_user`: exact match, or (groups on) a member of the group whose owner the
/// token was issued to.
async fn end_user_check(state: &AppState, r: &TokenRecord, expected: &str) -> Result<Option<Reason>> {
    let Some(owner) = r.end_user.as_deref() else {
        return Ok(Some(Reason::UserMismatch));
    };
    if owner == expected {
        return Ok(None);
    }
    if !state.settings().await?.group_uri_enabled {
        return Ok(Some(Reason::UserMismatch));
    }
    if state.store.is_member(owner, expected).await? {
        return Ok(None);
    }
    let is_group = state.store.get_group(owner).await?.is_some();
    Ok(Some(if is_group { Reason::NotAMember } else { Reason::UserMismatch }))
}

/// `expected_group`: (groups on) the token was issued to that group's owner.
async fn group_check(state: &AppState, r: &TokenRecord, group: &str) -> Result<Option<Reason>> {
    let ok = r.end_user.as_deref() == Some(group)
        && state.settings().await?.group_uri_enabled
        && state.store.get_group(group).await?.is_some();
    Ok((!ok).then_some(Reason::GroupMismatch))
}

#[cfg(test)]
mod tests {
    use axum::response::IntoResponse;

    use super::*;

    fn challenge(e: OAuthError) -> (u16, String) {
        let r = e.into_response();
        let c = r.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        assert_eq!(r.headers()["cache-control"], "no-store");
        (r.status().as_u16(), c)
    }

    #[test]
    fn reasons_map_to_rfc6750_refusals() {
        let scope = Scope::parse("write read").unwrap();
        let invalid = |d: &str| format!(r#"Bearer realm="gatehouse", error="invalid_token", error_description="{d}""#);
        let forbidden =
            |d: &str| format!(r#"Bearer realm="gatehouse", error="insufficient_scope", error_description="{d}""#);
        for (reason, code, status, header) in [
            (Reason::Invalid, "invalid", 401, invalid("the access token is not valid")),
            (Reason::Expired, "expired", 401, invalid("the access token has expired")),
            (Reason::Revoked, "revoked", 401, invalid("the access token was revoked")),
            (
                Reason::UserMismatch,
                "user_mismatch",
                403,
                forbidden("the access token does not act for the expected end user"),
            ),
            (
                Reason::NotAMember,
                "not_a_member",
                403,
                forbidden("the expected end user is not a member of the group the access token was issued for"),
            ),
            (
                Reason::GroupMismatch,
                "group_mismatch",
                403,
                forbidden("the access token was not issued for the expected group"),
            ),
            (
                Reason::InsufficientScope,
                "insufficient_scope",
                403,
                forbidden("the access token does not have the required scope") + r#", scope="read write""#,
            ),
        ] {
            assert_eq!(reason.as_str(), code);
            assert_eq!(challenge(reason.error(Some(&scope))), (status, header), "{code}");
        }
        assert_eq!(challenge(OAuthError::BearerTokenRequired), (401, r#"Bearer realm="gatehouse""#.to_owned()));
    }

    #[test]
    fn checks_parse_and_refuse_malformed_values() {
        let p = |q: &str| Params::parse(q.as_bytes()).unwrap();
        assert_eq!(Checks::parse(&p("token=x")).unwrap(), Checks::default());
        let c = Checks::parse(&p("expected_end_user=alice&expected_group=g&required_scope=b+a")).unwrap();
        assert_eq!(
            (c.expected_end_user.as_deref(), c.expected_group.as_deref(), c.required_scope.map(|s| s.to_string())),
            (Some("alice"), Some("g"), Some("a b".to_owned()))
        );
        let names: Vec<&str> = Checks::parse(&p("required_scope=a&expected_group=g&expected_end_user=u"))
            .unwrap()
            .asked()
            .into_iter()
            .map(Check::name)
            .collect();
        assert_eq!(names, ["expected_end_user", "expected_group", "required_scope"], "the evaluation order");
        for bad in ["required_scope=a%20%20b", "required_scope=%5C", &format!("expected_group={}", "g".repeat(257))] {
            assert_eq!(Checks::parse(&p(bad)).unwrap_err().code(), "invalid_request", "{bad}");
        }
    }
}
