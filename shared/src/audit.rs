//! Audit trail (DESIGN.md "Audit"): one JSON line per outcome on stdout (CloudWatch in
//! Lambda) with a stable event id. Ids 20001-20006 are the seed's EDRs
//! (002_050589298000c9b6.txt, table 3-11); 21xxx are Gatehouse's own. Never a secret, a token
//! or a password: a token is named by its `jti`.
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use serde::Serialize;
use serde_json::Value;

/// Something worth an audit line.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum AuditEvent {
    /// 20001: a function or the local server started (seed: OAuth service started).
    Started { component: &'static str },
    /// 20002: a function or the local server is shutting down (seed: OAuth service stopped).
    Stopped { component: &'static str },
    /// 20003: an authorization code was issued (seed `authorize`).
    CodeIssued { client_id: String, username: String, scope: String },
    /// 20004: an access token was issued (seed `applyToken`).
    TokenIssued {
        client_id: String,
        subject: String,
        grant_type: &'static str,
        jti: String,
        scope: String,
        audience: String,
    },
    /// 20005: a refresh token was exchanged (seed `refreshToken`).
    TokenRefreshed { client_id: String, username: Option<String>, jti: String, family: String },
    /// 20006: a token was presented for validation (seed: token used at a resource server): by a
    /// resource server's client at `POST /introspect` (`caller`) or by anyone holding it at
    /// `GET /validate` (no caller), with the token's client and end user when it is one of ours,
    /// `reason` when the answer was not active, and each check asked with its outcome.
    TokenIntrospected {
        endpoint: &'static str,
        caller: Option<String>,
        jti: Option<String>,
        client_id: Option<String>,
        end_user: Option<String>,
        active: bool,
        reason: Option<&'static str>,
        checks: Vec<crate::validation::CheckOutcome>,
    },
    /// 21001: a token was revoked.
    TokenRevoked { by: String, jti: String, client_id: String },
    /// 21002: client authentication failed.
    InvalidClient { client_id: Option<String>, reason: &'static str },
    /// 21003: an admin API call changed something.
    AdminChange { actor: String, action: &'static str, object: String },
    /// 21004: an admin API call was refused for lack of a valid credential.
    AdminRefused { reason: &'static str },
    /// 21005: a sign-in (page or password grant) failed.
    SignInFailed { username: String, reason: &'static str },
    /// 21006: a username was locked after too many failures.
    LockedOut { username: String },
    /// 21007: a user approved scopes for a client.
    ConsentGranted { username: String, client_id: String, scope: String },
    /// 21008: a consent was revoked.
    ConsentRevoked { actor: String, username: String, client_id: String },
    /// 21009: an authorization code was presented again; its tokens were revoked.
    CodeReplayed { client_id: String, family: String, revoked: u64 },
    /// 21010: a rotated refresh token was reused outside the grace window; its family was revoked.
    RefreshReuseDetected { client_id: String, family: String, revoked: u64 },
    /// 21011: the user denied the authorization request.
    AccessDenied { username: String, client_id: String },
    /// 21012: an admin API call was admitted (reads included), with who made it.
    AdminCall { actor: String, method: String, path: String },
}

impl AuditEvent {
    /// The stable event id.
    pub fn id(&self) -> u32 {
        match self {
            Self::Started { .. } => 20001,
            Self::Stopped { .. } => 20002,
            Self::CodeIssued { .. } => 20003,
            Self::TokenIssued { .. } => 20004,
            Self::TokenRefreshed { .. } => 20005,
            Self::TokenIntrospected { .. } => 20006,
            Self::TokenRevoked { .. } => 21001,
            Self::InvalidClient { .. } => 21002,
            Self::AdminChange { .. } => 21003,
            Self::AdminRefused { .. } => 21004,
            Self::SignInFailed { .. } => 21005,
            Self::LockedOut { .. } => 21006,
            Self::ConsentGranted { .. } => 21007,
            Self::ConsentRevoked { .. } => 21008,
            Self::CodeReplayed { .. } => 21009,
            Self::RefreshReuseDetected { .. } => 21010,
            Self::AccessDenied { .. } => 21011,
            Self::AdminCall { .. } => 21012,
        }
    }

    /// The stable event name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Started { .. } => "service_started",
            Self::Stopped { .. } => "service_stopped",
            Self::CodeIssued { .. } => "code_issued",
            Self::TokenIssued { .. } => "token_issued",
            Self::TokenRefreshed { .. } => "token_refreshed",
            Self::TokenIntrospected { .. } => "token_introspected",
            Self::TokenRevoked { .. } => "token_revoked",
            Self::InvalidClient { .. } => "invalid_client",
            Self::AdminChange { .. } => "admin_change",
            Self::AdminRefused { .. } => "admin_refused",
            Self::SignInFailed { .. } => "sign_in_failed",
            Self::LockedOut { .. } => "locked_out",
            Self::ConsentGranted { .. } => "consent_granted",
            Self::ConsentRevoked { .. } => "consent_revoked",
            Self::CodeReplayed { .. } => "code_replayed",
            Self::RefreshReuseDetected { .. } => "refresh_reuse_detected",
            Self::AccessDenied { .. } => "access_denied",
            Self::AdminCall { .. } => "admin_call",
        }
    }

    /// The fields every line carries (issue 5's EDR parity): who acted (`actor`: a user, a client
    /// id, an admin identity, a component), on whom (`subject`: the user or object), through
    /// which client, and whether it succeeded.
    fn common(&self) -> (Option<&str>, Option<&str>, Option<&str>, &'static str) {
        use AuditEvent::*;
        const OK: &str = "success";
        const FAIL: &str = "failure";
        match self {
            Started { component } | Stopped { component } => (Some(component), None, None, OK),
            CodeIssued { client_id, username, .. } => (Some(username), Some(username), Some(client_id), OK),
            TokenIssued { client_id, subject, .. } => (Some(client_id), Some(subject), Some(client_id), OK),
            TokenRefreshed { client_id, username, .. } => (Some(client_id), username.as_deref(), Some(client_id), OK),
            TokenIntrospected { caller, client_id, end_user, active, .. } => {
                let actor = caller.as_deref().or(client_id.as_deref());
                (
                    actor,
                    end_user.as_deref(),
                    client_id.as_deref().or(caller.as_deref()),
                    if *active { OK } else { FAIL },
                )
            }
            TokenRevoked { by, client_id, .. } => (Some(by), None, Some(client_id), OK),
            InvalidClient { client_id, .. } => (client_id.as_deref(), None, client_id.as_deref(), FAIL),
            AdminChange { actor, object, .. } => (Some(actor), Some(object), None, OK),
            AdminRefused { .. } => (None, None, None, FAIL),
            SignInFailed { username, .. } | LockedOut { username } => (Some(username), Some(username), None, FAIL),
            ConsentGranted { username, client_id, .. } => (Some(username), Some(username), Some(client_id), OK),
            ConsentRevoked { actor, username, client_id } => (Some(actor), Some(username), Some(client_id), OK),
            CodeReplayed { client_id, .. } | RefreshReuseDetected { client_id, .. } => {
                (Some(client_id), None, Some(client_id), FAIL)
            }
            AccessDenied { username, client_id } => (Some(username), Some(username), Some(client_id), FAIL),
            AdminCall { actor, .. } => (Some(actor), None, None, OK),
        }
    }

    /// Whether the event's own fields include `name` (one of the common fields): the line then
    /// carries the event's value only, so no line has a member twice (RFC 8259 §4 "SHOULD be
    /// unique"). The values agree: [`Self::common`] takes them from those fields.
    fn has_own(&self, name: &str) -> bool {
        use AuditEvent::*;
        match name {
            "subject" => matches!(self, TokenIssued { .. }),
            "actor" => matches!(self, AdminChange { .. } | ConsentRevoked { .. } | AdminCall { .. }),
            _ => false,
        }
    }

    /// The whole audit line: one JSON object, serialised straight into a string (no
    /// intermediate `serde_json::Value`: this runs once per request).
    pub fn line(&self) -> String {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let (actor, subject, client, outcome) = self.common();
        let line = Line {
            audit: true,
            event_id: self.id(),
            event: self.name(),
            tenant: tenant(),
            time: now,
            actor: (!self.has_own("actor")).then_some(actor),
            subject: (!self.has_own("subject")).then_some(subject),
            client,
            outcome,
            fields: self,
        };
        // Serialising plain strings, numbers and options into a String cannot fail.
        serde_json::to_string(&line).unwrap_or_default()
    }

    /// The whole audit line as JSON (tests).
    pub fn to_json(&self) -> Value {
        serde_json::from_str(&self.line()).unwrap_or(Value::Null)
    }
}

/// An audit line: the fields every line carries, then the event's own.
#[derive(Serialize)]
struct Line<'a> {
    audit: bool,
    event_id: u32,
    event: &'static str,
    tenant: &'a str,
    time: u64,
    /// `None`: the event carries the field itself; `Some(None)`: `null`.
    #[serde(skip_serializing_if = "Option::is_none")]
    actor: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<Option<&'a str>>,
    client: Option<&'a str>,
    outcome: &'static str,
    #[serde(flatten)]
    fields: &'a AuditEvent,
}

static TENANT: OnceLock<String> = OnceLock::new();
static CAPTURE: Mutex<Option<Vec<Value>>> = Mutex::new(None);
static CAPTURING: AtomicBool = AtomicBool::new(false);

/// The tenant named in every line.
pub fn tenant() -> &'static str {
    TENANT.get().map(String::as_str).unwrap_or("local")
}

/// Sets the tenant named in every line (once, at start).
pub fn set_tenant(t: &str) {
    let _ = TENANT.set(t.to_owned());
}

/// Writes one audit line.
pub fn record(event: AuditEvent) {
    let mut line = event.line();
    if CAPTURING.load(Ordering::Relaxed)
        && let Some(buf) = CAPTURE.lock().unwrap_or_else(|p| p.into_inner()).as_mut()
        && let Ok(v) = serde_json::from_str(&line)
    {
        buf.push(v);
    }
    line.push('\n');
    // One write of the whole line (stdout is line-buffered: one `write` call per line).
    let _ = std::io::stdout().lock().write_all(line.as_bytes());
}

/// Tests: starts keeping every audit line in memory (process-wide).
pub fn start_capture() {
    let mut c = CAPTURE.lock().unwrap_or_else(|p| p.into_inner());
    c.get_or_insert_with(Vec::new);
    CAPTURING.store(true, Ordering::Relaxed);
}

/// Tests: the lines captured so far.
pub fn captured() -> Vec<Value> {
    CAPTURE.lock().unwrap_or_else(|p| p.into_inner()).clone().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(line: &str, member: &str) -> usize {
        line.matches(&format!("\"{member}\":")).count()
    }

    #[test]
    fn every_line_has_the_common_fields_once_and_the_event_fields() {
        let issued = AuditEvent::TokenIssued {
            client_id: "c1".into(),
            subject: "alice".into(),
            grant_type: "authorization_code",
            jti: "j1".into(),
            scope: "read".into(),
            audience: "https://api".into(),
        };
        let line = issued.line();
        for member in ["audit", "event_id", "event", "tenant", "time", "actor", "subject", "client", "outcome", "jti"] {
            assert_eq!(count(&line, member), 1, "{member} in {line}");
        }
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["audit"], true);
        assert_eq!(v["event_id"], 20004);
        assert_eq!(v["event"], "token_issued");
        assert_eq!(v["actor"], "c1");
        assert_eq!(v["subject"], "alice");
        assert_eq!(v["client"], "c1");
        assert_eq!(v["outcome"], "success");
        assert_eq!(v["grant_type"], "authorization_code");
        assert_eq!(v["audience"], "https://api");
        assert!(v["time"].as_u64().unwrap() > 1_700_000_000);

        let change = AuditEvent::AdminChange { actor: "ops".into(), action: "client_created", object: "c2".into() };
        let line = change.line();
        assert_eq!(count(&line, "actor"), 1, "{line}");
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            (v["actor"].as_str(), v["subject"].as_str(), v["client"].is_null()),
            (Some("ops"), Some("c2"), true)
        );

        let refused = AuditEvent::AdminRefused { reason: "bad_token" };
        let v = refused.to_json();
        assert!(v["actor"].is_null() && v["subject"].is_null() && v["client"].is_null(), "{v}");
        assert_eq!((v["outcome"].as_str(), v["reason"].as_str()), (Some("failure"), Some("bad_token")));
        assert!(!refused.line().contains('\n'));
    }
}
