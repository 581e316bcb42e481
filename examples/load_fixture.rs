//! Benchmark fixture for `scripts/load.sh`: authorization codes for the code-exchange scenario,
//! written straight into a local server's embedded store (the server keeps running: the store is
//! safe with several processes on one data directory).
//!
//! A code normally comes out of `/authorize` after a browser signs in (one Argon2id hash, tens of
//! milliseconds) and consents; minting thousands that way would measure the password hash, not
//! the exchange. This writes the same record the sign-in flow writes (`endpoints::authorize`: the
//! code's digest, the grant `/authorize` decides for a request without `scope`/`resource`, a
//! PKCE S256 challenge, a fresh token family), with a 10-minute expiry so that the codes outlast
//! the load run. It prints the codes, one per line.
//!
//! `cargo run --release --example load_fixture -- DATA_DIR CLIENT_ID REDIRECT_URI USERNAME COUNT VERIFIER`
use std::sync::Arc;

use gatehouse::clock::Clock;
use gatehouse::keys::{LocalSigner, Signer};
use gatehouse::model::AuthorizationCode;
use gatehouse::store::{EmbeddedStore, Store};
use gatehouse::{AppState, Config};
use sha2::Digest;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [data_dir, client_id, redirect_uri, username, count, verifier] = args.as_slice() else {
        return Err("usage: load_fixture DATA_DIR CLIENT_ID REDIRECT_URI USERNAME COUNT VERIFIER".into());
    };
    let count: usize = count.parse()?;
    // The server's issuer (its default audience, which the grant names), as `scripts/load.sh`
    // passes it.
    let issuer = std::env::var("GATEHOUSE_ISSUER").unwrap_or_else(|_| "http://127.0.0.1".into());
    let config = Config::from_lookup(|k| match k {
        "GATEHOUSE_ISSUER" => Some(issuer.clone()),
        "GATEHOUSE_DATA_DIR" => Some(data_dir.clone()),
        _ => None,
    })?;
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(std::path::Path::new(data_dir))?);
    let signer: Arc<dyn Signer> = Arc::new(LocalSigner::ephemeral());
    let state = AppState::new(config, store.clone(), signer, Clock::system());
    let client = store.get_client(client_id).await?.ok_or("unknown client")?;
    let grant = gatehouse::grants::decide_grant(&state, &client, None, None).await.map_err(|e| format!("{e:?}"))?;
    let challenge = gatehouse::crypto::b64url(sha2::Sha256::digest(verifier.as_bytes()));
    let now = state.clock.now();
    let mut out = String::with_capacity(count * 44);
    for _ in 0..count {
        let code = gatehouse::crypto::opaque_token();
        let record = AuthorizationCode {
            id: gatehouse::crypto::opaque_token_id(&code),
            client_id: client.client_id.clone(),
            redirect_uri: redirect_uri.clone(),
            redirect_uri_in_request: true,
            username: username.clone(),
            scope: grant.scope.clone(),
            audience: grant.audience.clone(),
            code_challenge: Some(challenge.clone()),
            dpop_jkt: None,
            family: gatehouse::crypto::time_ordered_id(),
            issued_at: now,
            signed_in_at: Some(now),
            expires_at: now + 600,
            consumed_at: None,
            issued: vec![],
        };
        store.put_code(&record).await?;
        out.push_str(&code);
        out.push('\n');
    }
    print!("{out}");
    Ok(())
}
