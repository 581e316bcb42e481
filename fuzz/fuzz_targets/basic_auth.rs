//! Client credentials as presented (`http::presented_credentials`): the `Authorization: Basic`
//! header (RFC 6749 §2.3.1: base64 of the form-encoded id and secret) together with the body's
//! `client_id`, `client_secret` and client assertion parameters. Input: the header value, a
//! newline, the form body.
//! Invariants: no panic; deterministic; a Basic header yields a non-empty client id, and the
//! credentials it yields, encoded again, read back the same (round trip); two methods at once are
//! never accepted.
#![no_main]
use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;
use gatehouse::http::{Params, Presented, presented_credentials};
use libfuzzer_sys::fuzz_target;

fn basic(id: &str, secret: &str) -> String {
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", enc(id), enc(secret))))
}

fuzz_target!(|data: &[u8]| {
    let (head, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let mut headers = HeaderMap::new();
    if !head.is_empty() {
        let Ok(v) = HeaderValue::from_bytes(head) else { return };
        headers.insert(header::AUTHORIZATION, v);
    }
    let Ok(form) = Params::parse(body) else { return };
    let presented = presented_credentials(&headers, &form);
    assert_eq!(
        gatehouse_fuzz::outcome(&presented),
        gatehouse_fuzz::outcome(&presented_credentials(&headers, &form)),
        "deterministic"
    );
    let Ok(presented) = presented else { return };
    match &presented {
        Presented::Basic { client_id, secret } => {
            assert!(!client_id.is_empty());
            assert!(!form.has("client_secret") && !form.has("client_assertion"), "two methods accepted");
            // Encoded again (percent-encoding may lengthen it past the 4096-byte bound: then skip).
            let value = basic(client_id, secret.expose());
            if value.len() <= "Basic ".len() + 4096 {
                let mut again = HeaderMap::new();
                again.insert(header::AUTHORIZATION, HeaderValue::from_str(&value).unwrap());
                let round = presented_credentials(&again, &Params::default()).expect("re-encoded credentials parse");
                assert_eq!(round, presented, "round trip");
            }
        }
        Presented::Post { client_id, secret } => {
            assert!(headers.is_empty(), "two methods accepted");
            assert_eq!(form.get("client_id"), Some(client_id.as_str()));
            assert_eq!(form.get("client_secret"), Some(secret.expose()));
        }
        Presented::Assertion { .. } => {
            assert!(headers.is_empty() && !form.has("client_secret"), "two methods accepted");
        }
        Presented::Public { client_id } => {
            assert!(headers.is_empty() && !form.has("client_secret"));
            assert_eq!(form.get("client_id"), Some(client_id.as_str()));
        }
        Presented::None => assert!(headers.is_empty() && !form.has("client_id")),
    }
});
