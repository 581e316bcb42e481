//! The local server's HTTP/1.1 front: the endpoints' router on hyper, with the timeouts
//! `axum::serve` does not set.
//!
//! `axum::serve` builds hyper's connections without a timer, so hyper's header read timeout
//! never runs: a client could hold a connection (a task and a file descriptor) for as long as
//! it liked by sending a request head a byte at a time, or nothing at all after connecting
//! (slowloris), or by leaving a keep-alive connection idle. Here every connection has a timer
//! and [`HEADER_READ_TIMEOUT`], which bounds the wait for each request head: from the
//! connection's start for the first request, and from the end of the previous response on a
//! keep-alive connection (so it is also the idle timeout). A body is bounded by
//! `http::BODY_READ_TIMEOUT`. Lambda does not use this: API Gateway holds the connections.
use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tower_service::Service;

/// How long a connection may take to send a complete request head, counted from its start (the
/// first request) or from the end of the previous response (the next one, on a keep-alive
/// connection); then it is closed. Longer than any real client needs on a network; short
/// enough that idle or stalled connections do not pile up.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `shutdown` completes, then stops accepting, lets each open
/// connection finish the request it is serving (idle ones close at once) and returns when all
/// have closed.
pub async fn serve(listener: TcpListener, app: Router, shutdown: impl Future<Output = ()>) {
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // A connection that failed before it was accepted concerns that client
                    // alone; anything else (out of file descriptors) is retried after a pause,
                    // as `axum::serve` does.
                    if !is_connection_error(&e) {
                        tracing::error!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let app = app.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let mut app = app.clone();
            async move { app.call(req.map(Body::new)).await }
        });
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // A client's broken or timed-out connection is its own business: nothing to report.
            let _ = connection.await;
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset)
}
