//! Redirect-URI validation at client registration (`validate_redirect_uri`: RFC 8252 §7, RFC
//! 9700 §4.1: https, http only on loopback, or a private-use scheme with a dot; absolute; no
//! fragment; at most 2000 characters).
//! Invariants: no panic; deterministic; whatever is accepted is an absolute URI that meets those
//! rules (never `javascript:`, `data:` or `file:`), and its normalised form (the one the
//! authorization endpoint redirects to) is accepted too.
#![no_main]
use gatehouse::fuzzing::validate_redirect_uri;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else { return };
    let r = validate_redirect_uri(raw);
    assert_eq!(gatehouse_fuzz::outcome(&r), gatehouse_fuzz::outcome(&validate_redirect_uri(raw)), "deterministic");
    if let Err(e) = &r {
        assert_eq!(e.code(), "invalid_redirect_uri");
        return;
    }
    assert!(raw.len() <= 2000 && !raw.contains('#'));
    let u = url::Url::parse(raw).expect("an accepted redirect URI parses");
    assert!(u.fragment().is_none());
    let loopback = matches!(u.host_str(), Some("127.0.0.1" | "[::1]" | "localhost"));
    match u.scheme() {
        "https" => assert!(u.host_str().is_some_and(|h| !h.is_empty())),
        "http" => assert!(loopback, "http to a non-loopback host: {raw:?}"),
        s => {
            assert!(s.contains('.'), "scheme {s:?}");
            assert!(!["javascript", "data", "file", "vbscript", "blob"].contains(&s));
        }
    }
    let normalised = u.as_str();
    if normalised.len() <= 2000 {
        assert!(validate_redirect_uri(normalised).is_ok(), "the normalised form {normalised:?} of {raw:?} is refused");
    }
});
