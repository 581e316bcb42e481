//! JWT assertions (RFC 7523): the checks shared by the JWT bearer grant (§2.1,
//! `grants::jwt_bearer`) and `private_key_jwt` client authentication (§2.2, [`client_auth`]),
//! and the validation of the keys clients register for them ([`registration`]).
//!
//! An assertion is a compact JWS (RFC 7515 §7.1) signed with `ES256` or `RS256` by a key the
//! client registered inline (`none`, `HS*` and every other algorithm are refused, so a public
//! key can never be used as an HMAC secret). Its claims (RFC 7523 §3):
//! - `iss`, `sub`, `aud`, `exp` and `jti` are required; `aud` (a string or an array) must
//!   contain the token endpoint URL or the issuer identifier;
//! - `exp` must not have passed, `nbf` and `iat`, when present, must not lie in the future, each
//!   with [`SKEW`] seconds of clock skew;
//! - an assertion may be valid for at most [`MAX_LIFETIME`] seconds (from `iat`, or from now
//!   without one), which also bounds how long its `jti` is remembered;
//! - the `jti` is single use (`ReplayStore::first_use`, a conditional write), remembered until
//!   `exp` + [`SKEW`], after which the assertion is refused as expired anyway.
pub mod client_auth;
pub mod registration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};

use crate::keys::PublicJwk;

/// Clock skew allowed on `exp`, `nbf` and `iat` (seconds).
pub const SKEW: i64 = 60;
/// Longest validity of an assertion (seconds, RFC 7523 §3 item 4: the server may refuse an
/// `exp` "unreasonably far in the future"; RFC 7523 §3 item 6 for `iat`).
pub const MAX_LIFETIME: i64 = 3600;
/// Longest assertion accepted (bytes).
pub const MAX_LEN: usize = 8192;
/// Longest `jti` accepted (bytes: it is part of a replay key, DynamoDB keys are at most 2048 bytes).
const MAX_JTI: usize = 256;

/// Why an assertion was refused. [`Refusal::describe`] gives the `error_description`; the
/// assertion itself is never echoed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not a compact JWS with a JSON header and a JSON object as payload, or too long.
    Malformed,
    /// `alg` is not `ES256` or `RS256` (`none`, `HS256`, ...).
    Algorithm,
    /// A `crit` header parameter (RFC 7515 §4.1.11): no extension is understood.
    Critical,
    /// Client authentication: a `typ` that names another kind of JWT (RFC 8725 §3.11).
    Type,
    /// JWT bearer grant: `iss` is not one of the client's trusted issuers.
    UnknownIssuer,
    /// JWT bearer grant: the issuer is registered but disabled.
    DisabledIssuer,
    /// The header's `kid` names no registered key (or has none while several keys exist).
    UnknownKey,
    /// The header's `alg` differs from the selected key's.
    KeyAlgorithm,
    /// The signature does not verify with the selected key.
    Signature,
    /// A required claim is absent.
    MissingClaim(&'static str),
    /// A claim has the wrong type (or an over-long `jti`).
    BadClaim(&'static str),
    /// The header's `typ` names a kind of JWT with another meaning here (a client assertion,
    /// a DPoP proof, an access token), so it is not taken for an authorization grant.
    OtherKind,
    /// `aud` names neither the token endpoint nor the issuer.
    Audience,
    /// `aud` is not the issuer identifier alone, as a single string (a client assertion,
    /// RFC 10070).
    AudienceNotIssuer,
    /// `exp` has passed.
    Expired,
    /// `nbf` lies in the future.
    NotYetValid,
    /// `iat` lies in the future.
    IssuedInFuture,
    /// Valid for more than [`MAX_LIFETIME`] seconds.
    TooLongLived,
    /// The `jti` was used before.
    Replayed,
}

impl Refusal {
    /// The `error_description` for an assertion called `what` ("the assertion").
    pub fn describe(self, what: &str) -> String {
        match self {
            Self::Malformed => format!("{what} is not a well-formed signed JWT"),
            Self::Algorithm => format!("{what} must be signed with ES256 or RS256"),
            Self::Critical => format!("{what} has critical header parameters that are not supported"),
            Self::Type => format!("{what}'s typ names another kind of JWT (use JWT or client-authentication+jwt)"),
            Self::UnknownIssuer => format!("{what}'s issuer is not trusted by this client"),
            Self::DisabledIssuer => format!("{what}'s issuer is disabled for this client"),
            Self::UnknownKey => format!("{what}'s kid names no registered key"),
            Self::KeyAlgorithm => format!("{what}'s alg does not match the registered key"),
            Self::Signature => format!("{what}'s signature is invalid"),
            Self::MissingClaim(c) => format!("{what} has no {c} claim"),
            Self::BadClaim(c) => format!("{what}'s {c} claim is malformed"),
            Self::OtherKind => {
                format!("{what}'s typ names another kind of JWT (a client assertion, a DPoP proof or an access token)")
            }
            Self::Audience => format!("{what}'s aud must contain the token endpoint URL or the issuer identifier"),
            Self::AudienceNotIssuer => format!("{what}'s aud must be the issuer identifier, as a single string"),
            Self::Expired => format!("{what} has expired"),
            Self::NotYetValid => format!("{what} is not valid yet (nbf)"),
            Self::IssuedInFuture => format!("{what} is issued in the future (iat)"),
            Self::TooLongLived => format!("{what} is valid for more than {MAX_LIFETIME} seconds"),
            Self::Replayed => format!("{what} was used already (jti)"),
        }
    }

    /// A short reason for the audit trail.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Malformed => "assertion malformed",
            Self::Algorithm => "assertion algorithm refused",
            Self::Critical => "assertion crit header",
            Self::Type => "assertion typ refused",
            Self::UnknownIssuer => "assertion issuer unknown",
            Self::DisabledIssuer => "assertion issuer disabled",
            Self::UnknownKey => "assertion kid unknown",
            Self::KeyAlgorithm => "assertion alg differs from the key",
            Self::Signature => "assertion signature invalid",
            Self::MissingClaim(_) => "assertion claim missing",
            Self::BadClaim(_) => "assertion claim malformed",
            Self::OtherKind => "assertion typ of another kind",
            Self::Audience => "assertion audience wrong",
            Self::AudienceNotIssuer => "assertion audience not the issuer alone",
            Self::Expired => "assertion expired",
            Self::NotYetValid => "assertion not yet valid",
            Self::IssuedInFuture => "assertion issued in the future",
            Self::TooLongLived => "assertion lifetime too long",
            Self::Replayed => "assertion replayed",
        }
    }
}

/// The JOSE header members Gatehouse reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub alg: Algorithm,
    pub kid: Option<String>,
    /// The media type of the whole JWT (RFC 7515 §4.1.9), as sent.
    pub typ: Option<String>,
}

/// The registered claims of an assertion, as sent (not yet checked).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claims {
    pub iss: Option<String>,
    pub sub: Option<String>,
    pub aud: Vec<String>,
    /// `aud` was an array (RFC 7519 §4.1.3 allows a string or an array).
    pub aud_is_array: bool,
    pub exp: Option<i64>,
    pub nbf: Option<i64>,
    pub iat: Option<i64>,
    pub jti: Option<String>,
}

/// A parsed, not yet verified, assertion.
#[derive(Debug, Clone)]
pub struct Parsed<'a> {
    pub header: Header,
    pub claims: Claims,
    signing_input: &'a str,
    signature: &'a str,
}

/// The claims of an assertion that passed [`check_claims`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Valid {
    pub iss: String,
    pub sub: String,
    pub jti: String,
    pub exp: i64,
}

fn json_segment(segment: &str) -> Result<Map<String, Value>, Refusal> {
    let bytes = URL_SAFE_NO_PAD.decode(segment).map_err(|_| Refusal::Malformed)?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(Refusal::Malformed),
    }
}

fn string_claim(m: &Map<String, Value>, name: &'static str) -> Result<Option<String>, Refusal> {
    match m.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
        Some(_) => Err(Refusal::BadClaim(name)),
    }
}

/// A NumericDate (RFC 7519 §2): seconds, possibly with a fraction (dropped).
fn time_claim(m: &Map<String, Value>, name: &'static str) -> Result<Option<i64>, Refusal> {
    match m.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite() && f.abs() < 1e15).map(|f| f.floor() as i64))
            .map(Some)
            .ok_or(Refusal::BadClaim(name)),
        Some(_) => Err(Refusal::BadClaim(name)),
    }
}

/// `aud`: a string or an array of strings (RFC 7519 §4.1.3).
fn audience_claim(m: &Map<String, Value>) -> Result<Vec<String>, Refusal> {
    match m.get("aud") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(a)) => {
            a.iter().map(|v| v.as_str().map(str::to_owned).ok_or(Refusal::BadClaim("aud"))).collect()
        }
        Some(_) => Err(Refusal::BadClaim("aud")),
    }
}

/// Splits and decodes an assertion: a compact JWS whose header names `ES256` or `RS256` and
/// no `crit` parameter, and whose payload is a JSON object of claims with the registered types.
pub fn parse(token: &str) -> Result<Parsed<'_>, Refusal> {
    if token.len() > MAX_LEN {
        return Err(Refusal::Malformed);
    }
    let (signing_input, signature) = token.rsplit_once('.').ok_or(Refusal::Malformed)?;
    let (header, payload) = signing_input.split_once('.').ok_or(Refusal::Malformed)?;
    if payload.contains('.') {
        return Err(Refusal::Malformed);
    }
    let header = json_segment(header)?;
    let alg = match header.get("alg").and_then(Value::as_str) {
        Some("ES256") => Algorithm::ES256,
        Some("RS256") => Algorithm::RS256,
        Some(_) => return Err(Refusal::Algorithm),
        None => return Err(Refusal::Malformed),
    };
    if header.contains_key("crit") {
        return Err(Refusal::Critical);
    }
    let optional_string = |name| match header.get(name) {
        None => Ok(None),
        Some(Value::String(v)) => Ok(Some(v.clone())),
        Some(_) => Err(Refusal::Malformed),
    };
    let (kid, typ) = (optional_string("kid")?, optional_string("typ")?);
    if signature.is_empty() {
        return Err(Refusal::Malformed);
    }
    let claims = json_segment(payload)?;
    let claims = Claims {
        iss: string_claim(&claims, "iss")?,
        sub: string_claim(&claims, "sub")?,
        aud: audience_claim(&claims)?,
        aud_is_array: matches!(claims.get("aud"), Some(Value::Array(_))),
        exp: time_claim(&claims, "exp")?,
        nbf: time_claim(&claims, "nbf")?,
        iat: time_claim(&claims, "iat")?,
        jti: string_claim(&claims, "jti")?,
    };
    Ok(Parsed { header: Header { alg, kid, typ }, claims, signing_input, signature })
}

/// The verification key of a registered JWK (`ES256` on P-256 or `RS256`).
pub(crate) fn decoding_key(jwk: &PublicJwk) -> Option<(Algorithm, DecodingKey)> {
    match (jwk.kty.as_str(), jwk.alg.as_str(), &jwk.x, &jwk.y, &jwk.n, &jwk.e) {
        ("EC", "ES256", Some(x), Some(y), _, _) => {
            Some((Algorithm::ES256, DecodingKey::from_ec_components(x, y).ok()?))
        }
        ("RSA", "RS256", _, _, Some(n), Some(e)) => {
            Some((Algorithm::RS256, DecodingKey::from_rsa_components(n, e).ok()?))
        }
        _ => None,
    }
}

fn signature_holds(parsed: &Parsed<'_>, alg: Algorithm, key: &DecodingKey) -> bool {
    jsonwebtoken::crypto::verify(parsed.signature, parsed.signing_input.as_bytes(), key, alg).unwrap_or(false)
}

/// Verifies the signature with `key`: the header's `alg` must be the key's (RFC 8725 §3.1).
pub fn verify_signature(parsed: &Parsed<'_>, key: &PublicJwk) -> Result<(), Refusal> {
    let (alg, key) = decoding_key(key).ok_or(Refusal::UnknownKey)?;
    if parsed.header.alg != alg {
        return Err(Refusal::KeyAlgorithm);
    }
    if signature_holds(parsed, alg, &key) { Ok(()) } else { Err(Refusal::Signature) }
}

/// The same work as [`verify_signature`] against a key nobody holds, always failing: run when
/// there is no key to verify with (unknown client), so that this takes as long as a real check.
pub fn verify_against_nobody(parsed: &Parsed<'_>) {
    let key = match parsed.header.alg {
        Algorithm::RS256 => DecodingKey::from_rsa_components(DUMMY_RSA_N, "AQAB"),
        _ => DecodingKey::from_ec_components(DUMMY_EC_X, DUMMY_EC_Y),
    };
    if let Ok(key) = key {
        let _ = signature_holds(parsed, parsed.header.alg, &key);
    }
}

/// `typ` compared without case and without `application/` (RFC 7515 §4.1.9).
pub(crate) fn media_type(typ: &str) -> String {
    let lower = typ.to_ascii_lowercase();
    lower.strip_prefix("application/").map(str::to_owned).unwrap_or(lower)
}

/// Whether `typ` names a kind of JWT that means something else here (RFC 8725 §3.11): a client
/// assertion (`client-authentication+jwt`, RFC 10070), a DPoP proof (`dpop+jwt`, RFC 9449) or
/// an access token (`at+jwt`, RFC 9068).
pub(crate) fn names_another_kind(typ: &str) -> bool {
    matches!(media_type(typ).as_str(), "client-authentication+jwt" | "dpop+jwt" | "at+jwt")
}

/// Checks the claims (RFC 7523 §3) at `now`: required claims present, `aud` names one of
/// `audiences`, the validity window holds.
pub fn check_claims(claims: &Claims, audiences: &[&str], now: i64) -> Result<Valid, Refusal> {
    let iss = claims.iss.clone().ok_or(Refusal::MissingClaim("iss"))?;
    let sub = claims.sub.clone().ok_or(Refusal::MissingClaim("sub"))?;
    if claims.aud.is_empty() {
        return Err(Refusal::MissingClaim("aud"));
    }
    let exp = claims.exp.ok_or(Refusal::MissingClaim("exp"))?;
    let jti = claims.jti.clone().ok_or(Refusal::MissingClaim("jti"))?;
    if jti.len() > MAX_JTI {
        return Err(Refusal::BadClaim("jti"));
    }
    if !claims.aud.iter().any(|a| audiences.contains(&a.as_str())) {
        return Err(Refusal::Audience);
    }
    if exp.saturating_add(SKEW) <= now {
        return Err(Refusal::Expired);
    }
    if claims.nbf.is_some_and(|nbf| nbf > now.saturating_add(SKEW)) {
        return Err(Refusal::NotYetValid);
    }
    if claims.iat.is_some_and(|iat| iat > now.saturating_add(SKEW)) {
        return Err(Refusal::IssuedInFuture);
    }
    let start = claims.iat.map_or(now, |iat| iat.min(now));
    if exp.saturating_sub(start) > MAX_LIFETIME {
        return Err(Refusal::TooLongLived);
    }
    Ok(Valid { iss, sub, jti, exp })
}

/// The audiences an assertion may name: the token endpoint URL and the issuer identifier
/// (RFC 7523 §3 item 3).
pub fn audiences(config: &crate::Config) -> [String; 2] {
    [config.endpoint("/token"), config.issuer.clone()]
}

/// A P-256 public key (the generator point, whose private key is 1: no one signs with it).
const DUMMY_EC_X: &str = "axfR8uEsQkf4vOblY6RA8ncDfYEt6zOg9KE5RdiYwpY";
const DUMMY_EC_Y: &str = "T-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU";
/// The modulus of an RSA-2048 key whose private half was thrown away.
const DUMMY_RSA_N: &str = "yxN34vUMNGtI2FDZMwpb0REhKcwLqFc1KNO4BxGjJ1e4_Lak_SoKpaaxPs5n2UtbGYR5_QWaUoFBIjpkyZMGb_S1Fp-soKM2rfXxmvPaDR8C0RZ6j5Nj8aASLeHqI_80q8qd2NR0LvNtk4OIdm3RNo9XO7DXRcBpCRATX0t6dM9-E8LuTtfImMwlv112yiaZaTDs2EpKGhq5osgy_O_8Vi5lJ6gyM8Grgky82fydUflJsmsdSX_s7_j9uwBHO7HuxfSkKOEuKMZDmr0NJ83rioG-FPsKfQPQBoZ6D5XBWAG9VBvFrnVkaljojUz4SOCBsKdcvGDRVslZGOV_J3BR_w";

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(v: Value) -> String {
        URL_SAFE_NO_PAD.encode(v.to_string())
    }

    fn token(header: Value, claims: Value) -> String {
        format!("{}.{}.c2ln", segment(header), segment(claims))
    }

    #[test]
    fn parse_refuses_other_algorithms_and_crit() {
        let claims = serde_json::json!({"iss": "a"});
        for alg in ["none", "HS256", "PS256", "ES384"] {
            assert_eq!(parse(&token(serde_json::json!({"alg": alg}), claims.clone())).unwrap_err(), Refusal::Algorithm);
        }
        let crit = serde_json::json!({"alg": "ES256", "crit": ["b64"], "b64": false});
        assert_eq!(parse(&token(crit, claims.clone())).unwrap_err(), Refusal::Critical);
        assert_eq!(parse("a.b").unwrap_err(), Refusal::Malformed);
        assert_eq!(parse("a.b.c.d").unwrap_err(), Refusal::Malformed);
        let t = token(serde_json::json!({"alg": "RS256", "kid": "k"}), claims.clone());
        let p = parse(&t).unwrap();
        assert_eq!(p.header, Header { alg: Algorithm::RS256, kid: Some("k".into()), typ: None });
        let t = token(serde_json::json!({"alg": "ES256", "typ": "dpop+jwt"}), claims.clone());
        assert_eq!(parse(&t).unwrap().header.typ.as_deref(), Some("dpop+jwt"), "read as sent; judged by the caller");
        // RFC 7515 §4.1.4, §4.1.9: `kid` and `typ` are strings (for both kinds of assertion).
        for header in [serde_json::json!({"alg": "ES256", "typ": 1}), serde_json::json!({"alg": "ES256", "kid": ["k"]})]
        {
            assert_eq!(parse(&token(header, claims.clone())).unwrap_err(), Refusal::Malformed);
        }
    }

    #[test]
    fn claims_types_and_window() {
        let h = serde_json::json!({"alg": "ES256"});
        let bad = serde_json::json!({"iss": 1});
        assert_eq!(parse(&token(h.clone(), bad)).unwrap_err(), Refusal::BadClaim("iss"));
        let c = serde_json::json!({"iss": "i", "sub": "s", "aud": ["x", "t"], "exp": 1060.5, "jti": "j"});
        let t = token(h, c);
        let p = parse(&t).unwrap();
        let v = check_claims(&p.claims, &["t"], 1000).unwrap();
        assert_eq!(v, Valid { iss: "i".into(), sub: "s".into(), jti: "j".into(), exp: 1060 });
        assert_eq!(check_claims(&p.claims, &["u"], 1000).unwrap_err(), Refusal::Audience);
        assert_eq!(check_claims(&p.claims, &["t"], 1120).unwrap_err(), Refusal::Expired);
        assert!(check_claims(&p.claims, &["t"], 1119).is_ok(), "within the skew");
        assert_eq!(check_claims(&p.claims, &["t"], 1060 - MAX_LIFETIME - 1).unwrap_err(), Refusal::TooLongLived);
    }

    #[test]
    fn the_dummy_keys_are_valid_keys() {
        assert!(DecodingKey::from_rsa_components(DUMMY_RSA_N, "AQAB").is_ok());
        let x = URL_SAFE_NO_PAD.decode(DUMMY_EC_X).unwrap();
        let y = URL_SAFE_NO_PAD.decode(DUMMY_EC_Y).unwrap();
        let point = [&[4u8][..], &x, &y].concat();
        assert!(p256::PublicKey::from_sec1_bytes(&point).is_ok());
    }
}
