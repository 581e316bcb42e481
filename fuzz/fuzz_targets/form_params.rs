//! `http::Params::parse`: `application/x-www-form-urlencoded` bodies and query strings.
//! Invariants: no panic; the result is the one RFC 6749 §3.1 and Appendix B ask for (computed
//! here independently): not UTF-8 → refused; a name given twice with a value → refused; else every
//! pair is readable, values without a value are absent; and the parsed form round-trips
//! (serialized again, it parses to the same parameters).
#![no_main]
use std::collections::BTreeMap;

use gatehouse::http::Params;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let parsed = Params::parse(data);
    let again = Params::parse(data);
    assert_eq!(parsed.as_ref().err().map(|e| e.description()), again.as_ref().err().map(|e| e.description()));

    let utf8 = data.split(|b| *b == b'&').all(|p| percent_encoding::percent_decode(p).decode_utf8().is_ok());
    let mut expected = BTreeMap::new();
    let mut repeated = false;
    let mut empty = Vec::new();
    for (k, v) in form_urlencoded::parse(data) {
        if v.is_empty() {
            empty.push(k.into_owned());
        } else if expected.insert(k.into_owned(), v.into_owned()).is_some() {
            repeated = true;
        }
    }
    let params = match parsed {
        Err(e) => {
            assert_eq!(e.code(), "invalid_request");
            assert!(!utf8 || repeated, "refused a valid form: {e:?}");
            return;
        }
        Ok(p) => p,
    };
    assert!(utf8 && !repeated, "accepted a form that is not UTF-8 or repeats a parameter");
    for (k, v) in &expected {
        assert_eq!(params.get(k), Some(v.as_str()), "parameter {k:?}");
    }
    for k in empty.iter().filter(|k| !expected.contains_key(*k)) {
        assert!(!params.has(k), "an empty parameter counts as absent: {k:?}");
    }

    // Round trip: the parameters serialized again parse to the same ones.
    let again = form_urlencoded::Serializer::new(String::new()).extend_pairs(&expected).finish();
    let reparsed = Params::parse(again.as_bytes()).expect("a serialized form parses");
    for (k, v) in &expected {
        assert_eq!(reparsed.get(k), Some(v.as_str()), "round trip of {k:?}");
    }
});
