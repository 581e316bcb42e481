//! Resource-owner authentication: Argon2id password hashes (DESIGN.md "Storage") and sign-in
//! lockout. Lockout counts failures per username whether or not the user exists, and answers
//! the same way in both cases, so it reveals nothing about which usernames exist.
use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

use crate::audit::{self, AuditEvent};
use crate::model::User;
use crate::{AppState, OAuthError, Result};

/// Passwords shorter than this are refused at registration (NIST SP 800-63B §5.1.1.2).
pub const MIN_PASSWORD_LEN: usize = 8;
/// Longer passwords are refused (bounded hashing work per request).
pub const MAX_PASSWORD_LEN: usize = 1024;
/// Longest username (characters).
pub const MAX_USERNAME_LEN: usize = 128;

/// Hashes a password with Argon2id (default parameters: m=19 MiB, t=2, p=1, OWASP minimum).
pub fn hash_password(password: &str) -> Result<String> {
    Argon2::default().hash_password(password.as_bytes()).map(|h| h.to_string()).map_err(OAuthError::server)
}

/// A hash of a random password, verified against when the user does not exist, so that an
/// unknown username costs the same time as a wrong password.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password(&crate::crypto::random_token()).expect("hashing works"))
}

/// Argon2 computations (hashes and checks) that run at once in this process, at most: each
/// takes 19 MiB and a CPU for tens of milliseconds, so a flood of sign-ins (each with another
/// username, which the lockout does not bound) would otherwise take a blocking thread and 19 MiB
/// apiece, up to tokio's 512 threads (9.5 GiB), and starve the store calls that share the pool.
/// Two per CPU keeps every CPU busy. A Lambda instance serves one request at a time, so there it
/// never waits.
pub fn hashing_limit() -> usize {
    static LIMIT: std::sync::LazyLock<usize> =
        std::sync::LazyLock::new(|| 2 * std::thread::available_parallelism().map_or(1, |n| n.get()));
    *LIMIT
}

/// How long a request waits for an Argon2 slot before it is answered 503
/// `temporarily_unavailable` (with `Retry-After`), having changed nothing.
const HASHING_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

static HASHING: std::sync::LazyLock<tokio::sync::Semaphore> =
    std::sync::LazyLock::new(|| tokio::sync::Semaphore::new(hashing_limit()));
static HASHING_NOW: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static HASHING_PEAK: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The most Argon2 computations that ran at once in this process so far (at most
/// [`hashing_limit`]).
pub fn hashing_peak() -> usize {
    HASHING_PEAK.load(std::sync::atomic::Ordering::Relaxed)
}

/// A place to run one Argon2 computation ([`hashing_limit`]).
pub struct HashingSlot {
    permit: tokio::sync::SemaphorePermit<'static>,
}

impl HashingSlot {
    /// Waits up to [`HASHING_WAIT`] for a slot; 503 after that.
    pub async fn take() -> Result<Self> {
        match tokio::time::timeout(HASHING_WAIT, HASHING.acquire()).await {
            Ok(Ok(permit)) => Ok(Self { permit }),
            _ => Err(OAuthError::TemporarilyUnavailable("too many password checks at once; retry shortly".into())),
        }
    }

    /// Runs `f` (the Argon2 work) on the blocking pool. The slot is given back when `f` ends,
    /// also when the request was dropped meanwhile (a client that hung up).
    pub async fn run<T: Send + 'static>(self, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        use std::sync::atomic::Ordering::Relaxed;
        let permit = self.permit;
        tokio::task::spawn_blocking(move || {
            let now = HASHING_NOW.fetch_add(1, Relaxed) + 1;
            HASHING_PEAK.fetch_max(now, Relaxed);
            let r = f();
            HASHING_NOW.fetch_sub(1, Relaxed);
            drop(permit);
            r
        })
        .await
        .map_err(OAuthError::server)
    }
}

fn verify(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// Why a sign-in failed. Both answer the same to the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInError {
    /// Wrong username or password (or a disabled user).
    Invalid,
    /// Too many failures: locked for the cool-down.
    Locked,
}

impl SignInError {
    /// The text shown on the sign-in page (the same for unknown and known users).
    pub fn message(self) -> &'static str {
        match self {
            Self::Invalid => "The username or password is incorrect.",
            Self::Locked => "Too many failed sign-in attempts. Try again later.",
        }
    }

    /// The token-endpoint error for the password grant (RFC 6749 §5.2 `invalid_grant`).
    pub fn into_oauth(self) -> OAuthError {
        OAuthError::InvalidGrant(
            match self {
                Self::Invalid => "the resource owner credentials are invalid",
                Self::Locked => "too many failed sign-in attempts; try again later",
            }
            .into(),
        )
    }
}

fn lock_key(username: &str) -> String {
    format!("signin:{}", username.to_lowercase())
}

/// Checks a username and password, with lockout. Store errors before the password check
/// propagate (503) without counting an attempt.
///
/// Each attempt takes its place in the failure count *before* its password is checked, and an
/// attempt past the threshold is refused unchecked: concurrent guesses (a burst of password
/// grants, or many Lambda instances at once) get at most `lockout_threshold` password checks
/// per window, as sequential ones do (RFC 6749 §4.3.2 and RFC 9700 §2.4: the lockout bounds
/// guessing however fast the guesses arrive). A success clears the count; a failure keeps its
/// place, and the one that reaches the threshold locks the username for the cool-down.
pub async fn sign_in(state: &AppState, username: &str, password: &str) -> Result<Result<User, SignInError>> {
    let now = state.clock.now();
    let key = lock_key(username);
    // The limits registration applies, in characters as there (not bytes: a password of
    // non-ASCII characters within the limit must sign in).
    if username.is_empty() || username.chars().count() > MAX_USERNAME_LEN || password.chars().count() > MAX_PASSWORD_LEN
    {
        return Ok(Err(SignInError::Invalid));
    }
    let counter = state.store.get_counter(&key, now).await?;
    if counter.as_ref().is_some_and(|c| c.is_locked(now)) {
        audit::record(AuditEvent::SignInFailed { username: username.to_owned(), reason: "locked" });
        return Ok(Err(SignInError::Locked));
    }
    let user = state.store.get_user(username).await?;
    let settings = state.settings().await?;
    // The slot first: an attempt answered 503 for want of one is not counted.
    let slot = HashingSlot::take().await?;
    let attempt = state.store.increment_counter(&key, now, settings.lockout_window as i64).await?;
    if attempt.is_locked(now) || u64::from(attempt.count) > settings.lockout_threshold {
        // Locked meanwhile, or more attempts than the threshold already counted or in flight.
        // The attempt that reached the threshold locks (below); this one is refused unchecked.
        audit::record(AuditEvent::SignInFailed { username: username.to_owned(), reason: "locked" });
        return Ok(Err(SignInError::Locked));
    }
    // The dummy hash (made once, by the first unknown username) is made in the slot too: it is
    // an Argon2 computation like any other.
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let pw = password.to_owned();
    let ok = slot.run(move || verify(&pw, hash.as_deref().unwrap_or_else(|| dummy_hash()))).await?;
    match user {
        Some(u) if ok && u.enabled => {
            // A success forgets earlier failures, and this attempt's place. The password was right:
            // a store error here only leaves the attempt counted, it does not refuse the user.
            if let Err(e) = state.store.clear_counter(&key).await {
                tracing::warn!(error = %e, "clearing a sign-in counter failed");
            }
            Ok(Ok(u))
        }
        _ => {
            let locked = u64::from(attempt.count) >= settings.lockout_threshold;
            if locked {
                state.store.lock_counter(&key, now + settings.lockout_cooldown as i64).await?;
                audit::record(AuditEvent::LockedOut { username: username.to_owned() });
            }
            audit::record(AuditEvent::SignInFailed { username: username.to_owned(), reason: "invalid credentials" });
            Ok(Err(if locked { SignInError::Locked } else { SignInError::Invalid }))
        }
    }
}

/// Validates a username for registration: 1-128 characters, no control characters or spaces
/// at either end.
pub fn validate_username(u: &str) -> Result<()> {
    let ok =
        !u.is_empty() && u.chars().count() <= MAX_USERNAME_LEN && !u.chars().any(char::is_control) && u.trim() == u;
    if ok { Ok(()) } else { Err(OAuthError::invalid_request("username: 1 to 128 characters, no control characters")) }
}

/// Validates a new password's length.
pub fn validate_password(p: &str) -> Result<()> {
    let n = p.chars().count();
    if (MIN_PASSWORD_LEN..=MAX_PASSWORD_LEN).contains(&n) {
        Ok(())
    } else {
        Err(OAuthError::invalid_request(format!("password: {MIN_PASSWORD_LEN} to {MAX_PASSWORD_LEN} characters")))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn hashes_verify_and_differ() {
        let h = super::hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(super::verify("correct horse", &h));
        assert!(!super::verify("wrong horse", &h));
        assert_ne!(h, super::hash_password("correct horse").unwrap(), "salted");
    }
}
