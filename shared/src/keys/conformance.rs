//! The signer contract as tests: every signer (local, KMS ES256, KMS RS256, sealed) runs every
//! case (`tests/it/signer_conformance.rs`). Panics on a broken promise.
use serde_json::json;

use super::{Alg, Signer};
use crate::crypto::{b64url, b64url_decode};

/// The issuer the cases sign for.
pub const ISSUER: &str = "https://auth.conformance.example";
/// A fixed "now".
pub const NOW: i64 = 1_767_225_600;

/// Claims of an access token for the cases.
pub fn claims(jti: &str) -> serde_json::Value {
    json!({"iss": ISSUER, "sub": "c1", "aud": "https://api.example", "client_id": "c1",
           "scope": "read", "iat": NOW, "exp": NOW + 600, "jti": jti})
}

fn part(token: &str, i: usize) -> serde_json::Value {
    serde_json::from_slice(&b64url_decode(token.split('.').nth(i).unwrap()).unwrap()).unwrap()
}

/// Runs every case against `signer`; `other` is an unrelated signer of any kind.
pub async fn run_all(signer: &dyn Signer, other: &dyn Signer) {
    signs_a_verifiable_jws(signer).await;
    jwks_verifies_independently(signer).await;
    refuses_forgeries(signer, other).await;
    concurrent_signing(signer).await;
}

/// Header `{alg, typ, kid}`, JOSE-form signature, claims intact, verifies with the key set.
pub async fn signs_a_verifiable_jws(s: &dyn Signer) {
    let token = s.sign("at+jwt", &claims("j1")).await.unwrap();
    assert_eq!(token.split('.').count(), 3);
    assert_eq!(part(&token, 0), json!({"alg": s.alg().as_str(), "typ": "at+jwt", "kid": s.kid()}));
    assert_eq!(part(&token, 1), claims("j1"));
    let sig = b64url_decode(token.split('.').nth(2).unwrap()).unwrap();
    match s.alg() {
        Alg::ES256 => assert_eq!(sig.len(), 64, "ES256 signatures are r||s, 64 bytes (RFC 7518 §3.4)"),
        Alg::RS256 => assert!(sig.len() >= 256),
    }
    let verified = s.keys().verify_access_token(&token, ISSUER, NOW).expect("verifies");
    assert_eq!((verified.jti.as_str(), verified.exp), ("j1", NOW + 600));
    // Again, from the key set's cache of verified tokens: the same claims, and the same refusals.
    assert_eq!(s.keys().verify_access_token(&token, ISSUER, NOW), Some(verified));
    assert!(s.keys().verify_access_token(&token, ISSUER, NOW + 600).is_none(), "expired at exp");
    assert!(s.keys().verify_access_token(&token, "https://other.example", NOW).is_none(), "wrong issuer");
    // One signature character changed (well inside it: the last one carries padding bits).
    let at = token.len() - 10;
    let swap = if &token[at..=at] == "A" { "B" } else { "A" };
    let resigned = format!("{}{swap}{}", &token[..at], &token[at + 1..]);
    assert!(s.keys().verify_access_token(&resigned, ISSUER, NOW).is_none(), "a changed signature after a cached one");
}

/// The published JWKS alone verifies the token through an independent JOSE implementation.
pub async fn jwks_verifies_independently(s: &dyn Signer) {
    let token = s.sign("at+jwt", &claims("j2")).await.unwrap();
    let jwks = s.keys().jwks();
    let key = jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == s.kid()).expect("current kid published");
    assert_eq!((key["alg"].as_str(), key["use"].as_str()), (Some(s.alg().as_str()), Some("sig")));
    assert!(key.get("d").is_none() && key.get("p").is_none(), "no private members");
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.clone()).unwrap();
    let dk = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
    let alg = match s.alg() {
        Alg::ES256 => jsonwebtoken::Algorithm::ES256,
        Alg::RS256 => jsonwebtoken::Algorithm::RS256,
    };
    let mut v = jsonwebtoken::Validation::new(alg);
    v.validate_exp = false;
    v.validate_aud = false;
    let data = jsonwebtoken::decode::<serde_json::Value>(&token, &dk, &v).expect("independent verification");
    assert_eq!(data.claims, claims("j2"));
}

/// Tampered payloads, foreign keys, a wrong `typ`, `alg: none` and swapped algorithms fail.
pub async fn refuses_forgeries(s: &dyn Signer, other: &dyn Signer) {
    let keys = s.keys();
    let token = s.sign("at+jwt", &claims("j3")).await.unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let mut evil = claims("j3");
    evil["scope"] = json!("admin");
    let tampered = format!("{}.{}.{}", parts[0], b64url(evil.to_string()), parts[2]);
    assert!(keys.verify_access_token(&tampered, ISSUER, NOW).is_none(), "tampered payload");
    let foreign = other.sign("at+jwt", &claims("j3")).await.unwrap();
    assert!(keys.verify_access_token(&foreign, ISSUER, NOW).is_none(), "another key");
    let hdr = |h: serde_json::Value| format!("{}.{}.{}", b64url(h.to_string()), parts[1], parts[2]);
    let none = hdr(json!({"alg": "none", "typ": "at+jwt", "kid": s.kid()}));
    assert!(keys.verify_access_token(&none, ISSUER, NOW).is_none(), "alg none");
    let swapped = if s.alg() == Alg::ES256 { "RS256" } else { "ES256" };
    let swapped = hdr(json!({"alg": swapped, "typ": "at+jwt", "kid": s.kid()}));
    assert!(keys.verify_access_token(&swapped, ISSUER, NOW).is_none(), "algorithm swap");
    let hs = hdr(json!({"alg": "HS256", "typ": "at+jwt", "kid": s.kid()}));
    assert!(keys.verify_access_token(&hs, ISSUER, NOW).is_none(), "HMAC with the public key");
    let plain_jwt = s.sign("JWT", &claims("j3")).await.unwrap();
    assert!(keys.verify_access_token(&plain_jwt, ISSUER, NOW).is_none(), "typ must be at+jwt (RFC 9068 §4)");
    for garbage in ["", "a.b.c", "....", &"x".repeat(10_000)] {
        assert!(keys.verify_access_token(garbage, ISSUER, NOW).is_none());
    }
}

/// Many signatures at once, all valid and distinct tokens.
pub async fn concurrent_signing(s: &dyn Signer) {
    let jobs = (0..16).map(|i| async move { s.sign("at+jwt", &claims(&format!("c{i}"))).await.unwrap() });
    let tokens = futures_join_all(jobs).await;
    for (i, t) in tokens.iter().enumerate() {
        let c = s.keys().verify_access_token(t, ISSUER, NOW).unwrap();
        assert_eq!(c.jti, format!("c{i}"));
    }
}

async fn futures_join_all<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut out = Vec::new();
    let pinned: Vec<_> = futs.map(Box::pin).collect();
    // Start all, then collect in order: the futures run concurrently on the caller's task.
    let mut pending: Vec<_> = pinned.into_iter().map(Some).collect();
    let mut results: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (i, slot) in pending.iter_mut().enumerate() {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        results[i] = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done { std::task::Poll::Ready(()) } else { std::task::Poll::Pending }
    })
    .await;
    out.extend(results.into_iter().map(Option::unwrap));
    out
}
