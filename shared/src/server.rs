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
//! `http::BODY_READ_TIMEOUT`, and a response the client does not read by [`WRITE_STALL_TIMEOUT`]
//! (hyper has no write timeout: a client that sends requests and never reads the answers would
//! hold its connection, and a shutdown waiting for it, for ever). A shutdown waits at most
//! [`SHUTDOWN_GRACE`] for the open requests. Lambda does not use this: API Gateway holds the
//! connections.
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
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

/// How long a response may wait for the client to make room for it (a write that cannot
/// proceed); then the connection is closed.
pub const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a shutdown waits for the requests in progress before it returns anyway (their
/// writes are committed before any answer, so none is lost by not waiting longer).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(15);

/// A connection whose writes fail once one has waited [`WRITE_STALL_TIMEOUT`] for the client.
struct StallGuard<S> {
    inner: S,
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> StallGuard<S> {
    fn new(inner: S) -> Self {
        Self { inner, stalled: None }
    }

    /// Passes a write's outcome on; a write still waiting after the timeout becomes an error.
    fn watch<T>(&mut self, cx: &mut Context<'_>, r: Poll<std::io::Result<T>>) -> Poll<std::io::Result<T>> {
        if r.is_ready() {
            self.stalled = None;
            return r;
        }
        let timer = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(WRITE_STALL_TIMEOUT)));
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the client stopped reading")))
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for StallGuard<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for StallGuard<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.watch(cx, r)
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then stops accepting, lets each open
/// connection finish the request it is serving (idle ones close at once) and returns when all
/// have closed, or after [`SHUTDOWN_GRACE`].
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
        let io = TokioIo::new(StallGuard::new(stream));
        let connection = graceful.watch(builder.serve_connection(io, service));
        tokio::spawn(async move {
            // A client's broken or timed-out connection is its own business: nothing to report.
            let _ = connection.await;
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await.is_err() {
        tracing::warn!("requests still open after the shutdown grace period; stopping anyway");
    }
}

fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset)
}
