//! The HTTP floor of the local server (docs/performance.md, "Where the time goes"): the same
//! runtime, allocator and server (`gatehouse::server::serve` on tokio's multi-thread scheduler,
//! mimalloc) with a handler that only reads the form body and answers a fixed JSON object,
//! optionally writing one line to stdout per request as the audit trail does. What it costs per
//! request is the part of an endpoint's CPU that no handler change can remove.
//!
//! Run: `scripts/http-floor.sh` (builds it, drives it with wrk, prints CPU per request).
use axum::Router;
use axum::body::Bytes;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::post;
use std::io::Write;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let line = std::env::var_os("FLOOR_LINE").is_some();
    let app = Router::new().route(
        "/introspect",
        post(move |body: Bytes| async move {
            if line {
                let _ = std::io::stdout()
                    .lock()
                    .write_all(format!("{{\"audit\":true,\"len\":{}}}\n", body.len()).as_bytes());
            }
            ([(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")], r#"{"active":false}"#)
                .into_response()
        }),
    );
    let addr = std::env::var("FLOOR_ADDR").unwrap_or_else(|_| "127.0.0.1:0".into());
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
    println!("listening on {}", listener.local_addr().expect("addr"));
    gatehouse::server::serve(listener, app, std::future::pending()).await;
}
