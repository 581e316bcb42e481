//! DPoP proofs (RFC 9449 §4.3): the proof reader on its own (`dpop::proof::read`: compact JWS,
//! `typ`, asymmetric `alg`, public `jwk`, signature, claims), `htu` normalisation, and the whole
//! check the token endpoint runs (`dpop::token_request`: one header, `htm` POST, `htu` the token
//! endpoint, `iat` within 60 s of the fixed clock, single-use `jti`).
//! Invariants: no panic; the reader is deterministic; an accepted proof was signed with ES256,
//! PS256 or RS256 (never `none` or an HMAC), is `dpop+jwt`, carries a public key and fits in 4096
//! bytes; normalising a normalised `htu` changes nothing; the token endpoint accepts only what
//! the reader accepts, for its own method, URI and time, and never answers a server error.
#![no_main]
use std::sync::OnceLock;

use axum::http::{HeaderValue, Request};
use gatehouse::dpop::{MAX_PROOF_LEN, SIGNING_ALGS, normalize_htu};
use gatehouse::fuzzing::{ClientMetadata, dpop_proof};
use gatehouse::model::Client;
use gatehouse_fuzz::{NOW, TOKEN_ENDPOINT, jose_header, runtime, state};
use libfuzzer_sys::fuzz_target;

fn client() -> &'static Client {
    static CLIENT: OnceLock<Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        let m: ClientMetadata =
            serde_json::from_value(serde_json::json!({"grant_types": ["client_credentials"]})).unwrap();
        m.into_client(NOW).unwrap().0
    })
}

fn check_reader(text: &str) {
    let read = dpop_proof(text);
    assert_eq!(read, dpop_proof(text), "deterministic");
    if let Ok(p) = &read {
        let h = jose_header(text).expect("an accepted proof has a JSON header");
        let alg = h.get("alg").and_then(|v| v.as_str()).unwrap_or_default();
        assert!(SIGNING_ALGS.contains(&alg), "accepted alg {alg:?}");
        assert!(h.get("typ").and_then(|v| v.as_str()).is_some_and(|t| t.eq_ignore_ascii_case("dpop+jwt")));
        assert!(!h.contains_key("crit"));
        let jwk = h.get("jwk").and_then(|v| v.as_object()).expect("a jwk");
        assert!(!jwk.contains_key("d") && !jwk.contains_key("k"), "a private key accepted");
        assert!(text.len() <= MAX_PROOF_LEN);
        assert_eq!(p.jkt.len(), 43, "a SHA-256 thumbprint");
        assert!(!p.jti.is_empty() && !p.htm.is_empty() && !p.htu.is_empty());
    }
    if let Some(n) = normalize_htu(text) {
        assert_eq!(normalize_htu(&n).as_deref(), Some(n.as_str()), "htu normalisation is idempotent");
    }
}

fuzz_target!(|data: &[u8]| {
    let text = std::str::from_utf8(data).ok();
    if let Some(t) = text {
        check_reader(t);
    }
    let Ok(value) = HeaderValue::from_bytes(data) else { return };
    let (parts, ()) = Request::post("/token").header("dpop", value).body(()).unwrap().into_parts();
    match runtime().block_on(gatehouse::dpop::token_request(state(), &parts, client())) {
        Ok(Some(proof)) => {
            let p = dpop_proof(text.expect("UTF-8").trim()).expect("the reader accepts it too");
            assert_eq!(p.jkt, proof.jkt);
            assert_eq!(p.htm, "POST");
            assert_eq!(normalize_htu(&p.htu), normalize_htu(TOKEN_ENDPOINT));
            assert!((p.iat - NOW).abs() <= gatehouse::dpop::IAT_WINDOW);
        }
        Ok(None) => panic!("a DPoP header was sent"),
        Err(e) => assert!(["invalid_dpop_proof", "use_dpop_nonce"].contains(&e.code()), "{e:?}"),
    }
});
