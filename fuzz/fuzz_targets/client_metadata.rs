//! Client registration metadata (`POST /admin/clients`, RFC 7591 §2): the admin API's JSON body
//! parser (`token_admin::json_body`: a JSON object, unknown members refused) into
//! `ClientMetadata`, then `validate` (grant types, auth method, redirect URIs, scopes,
//! lifetimes, inline JWK Sets, trusted issuers, custom claims).
//! Invariants: no panic (deeply nested or huge JSON included); deterministic; refusals are
//! `invalid_client_metadata` / `invalid_redirect_uri` (413 `invalid_request` over 16 KiB); every
//! accepted redirect URI passes `validate_redirect_uri`; and the stored client, shown as the
//! admin API shows it (`client_json`), is registration metadata that validates to the same client
//! again (PATCH merges into exactly that document).
#![no_main]
use std::sync::OnceLock;

use gatehouse::OAuthError;
use gatehouse::fuzzing::{ClientMetadata, admin_json_body, client_json, validate_redirect_uri};
use gatehouse::model::Client;
use gatehouse_fuzz::{NOW, outcome, runtime};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn base() -> &'static Client {
    static BASE: OnceLock<Client> = OnceLock::new();
    BASE.get_or_init(|| {
        let m: ClientMetadata =
            serde_json::from_value(serde_json::json!({"grant_types": ["client_credentials"]})).unwrap();
        m.into_client(NOW).unwrap().0
    })
}

fn parse(data: &[u8]) -> Result<ClientMetadata, OAuthError> {
    runtime()
        .block_on(admin_json_body::<ClientMetadata>(data.to_vec(), |e| OAuthError::InvalidClientMetadata(e.into())))
}

fuzz_target!(|data: &[u8]| {
    let (first, second) = (parse(data), parse(data));
    assert_eq!(outcome(&first), outcome(&second), "deterministic");
    let (Ok(first), Ok(second)) = (first, second) else {
        let e = parse(data).unwrap_err();
        assert!(["invalid_client_metadata", "invalid_request"].contains(&e.code()), "{e:?}");
        return;
    };
    let (valid, again) = (first.validate(), second.validate());
    assert_eq!(outcome(&valid), outcome(&again), "validation is deterministic");
    let valid = match valid {
        Ok(v) => v,
        Err(e) => {
            assert!(["invalid_client_metadata", "invalid_redirect_uri"].contains(&e.code()), "{e:?}");
            return;
        }
    };
    for u in &valid.redirect_uris {
        validate_redirect_uri(u).expect("accepted redirect URIs validate");
    }
    let shown = client_json(&valid.apply_to(base()));
    let mut doc = shown.as_object().cloned().expect("an object");
    doc.remove("client_id");
    doc.remove("client_id_issued_at");
    let metadata: ClientMetadata = serde_json::from_value(Value::Object(doc))
        .unwrap_or_else(|e| panic!("client_json is not registration metadata: {e}: {shown}"));
    let revalidated = metadata.validate().unwrap_or_else(|e| panic!("the stored metadata is refused: {e:?}: {shown}"));
    assert_eq!(client_json(&revalidated.apply_to(base())), shown, "round trip");
});
