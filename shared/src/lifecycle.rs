//! Start and shutdown of a function (the seed's EDRs 20001 and 20002).
//!
//! Lambda sends a function's runtime `SIGTERM` before it shuts an execution environment down only
//! when an extension is registered (Lambda Extensions API, "Shutdown phase"). [`start_function`]
//! registers a no-op *internal* extension (it subscribes to no event, so it costs nothing per
//! invocation) during the init phase, then writes 20001; on `SIGTERM` it writes 20002 and exits.
//! Without the Extensions API (an emulator without it, the local server) only the signal
//! handling remains.
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::audit::{self, AuditEvent};

/// The name the extension registers under (unique per function).
const EXTENSION_NAME: &str = "gatehouse-shutdown-audit";

/// A function's init phase: builds its state (`AppState::from_env`) while the shutdown extension
/// registers, so the two wait for their round trips (DynamoDB, KMS, the Extensions API) at the
/// same time, then writes 20001. Call in a function's `main` before `lambda_http::run`.
pub async fn start_function(
    component: &'static str,
    key_use: crate::keys::KeyUse,
) -> Result<crate::AppState, crate::state::StartupError> {
    let (state, extension) = tokio::join!(crate::AppState::from_env(key_use), register_extension());
    let state = state?;
    lambda_started(component, extension);
    Ok(state)
}

/// Registers the no-op extension when the Extensions API is there (`AWS_LAMBDA_RUNTIME_API`):
/// its id and the API's address.
async fn register_extension() -> Option<(String, String)> {
    let api = std::env::var("AWS_LAMBDA_RUNTIME_API").ok()?;
    match tokio::time::timeout(Duration::from_secs(2), register(&api)).await {
        Ok(Ok(id)) => Some((api, id)),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "no shutdown event: the extension could not register");
            None
        }
        Err(_) => {
            tracing::warn!("no shutdown event: the Extensions API did not answer");
            None
        }
    }
}

/// After the state is built: keeps the registered extension waiting for its (never sent) next
/// event, handles `SIGTERM` and writes 20001.
fn lambda_started(component: &'static str, extension: Option<(String, String)>) {
    if let Some((api, id)) = extension {
        tokio::spawn(async move {
            // An internal extension must ask for its next event, or the init phase never
            // ends; with no event subscribed, the call simply stays open.
            while next_event(&api, &id).await.is_ok() {}
        });
    }
    audit_stop_on_sigterm(component);
    audit::record(AuditEvent::Started { component });
}

/// Writes 20002 and exits when the process receives `SIGTERM`.
pub fn audit_stop_on_sigterm(component: &'static str) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            tracing::warn!("no shutdown event: SIGTERM cannot be handled");
            return;
        };
        tokio::spawn(async move {
            if term.recv().await.is_some() {
                audit::record(AuditEvent::Stopped { component });
                std::process::exit(0);
            }
        });
    }
}

/// One HTTP/1.1 exchange with the Extensions API on loopback: the status, the extension id
/// header if any. The API is plain HTTP on `AWS_LAMBDA_RUNTIME_API` (host:port).
async fn exchange(api: &str, request: String) -> std::io::Result<(u16, Option<String>)> {
    let mut stream = TcpStream::connect(api).await?;
    stream.write_all(request.as_bytes()).await?;
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).await?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("malformed status line"))?;
    let (mut id, mut length) = (None, 0usize);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("lambda-extension-identifier") {
                id = Some(value.to_owned());
            } else if name.eq_ignore_ascii_case("content-length") {
                length = value.parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length.min(64 * 1024)];
    reader.read_exact(&mut body).await?;
    Ok((status, id))
}

/// `POST /2020-01-01/extension/register` with no events: the extension id.
async fn register(api: &str) -> std::io::Result<String> {
    let body = r#"{"events":[]}"#;
    let request = format!(
        "POST /2020-01-01/extension/register HTTP/1.1\r\nHost: {api}\r\nLambda-Extension-Name: {EXTENSION_NAME}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    match exchange(api, request).await? {
        (200, Some(id)) => Ok(id),
        (status, _) => Err(std::io::Error::other(format!("register answered {status}"))),
    }
}

/// `GET /2020-01-01/extension/event/next`.
async fn next_event(api: &str, id: &str) -> std::io::Result<()> {
    let request = format!(
        "GET /2020-01-01/extension/event/next HTTP/1.1\r\nHost: {api}\r\nLambda-Extension-Identifier: {id}\r\n\
         Connection: close\r\n\r\n"
    );
    match exchange(api, request).await? {
        (200, _) => Ok(()),
        (status, _) => Err(std::io::Error::other(format!("next answered {status}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A fake Extensions API: answers the registration with an id, then holds `next` open.
    #[tokio::test]
    async fn registers_a_no_op_internal_extension_and_waits_for_events() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            let mut requests = Vec::new();
            for answer in ["HTTP/1.1 200 OK\r\nLambda-Extension-Identifier: ext-1\r\nContent-Length: 2\r\n\r\n{}", ""] {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = vec![0; 4096];
                let n = s.read(&mut buf).await.unwrap();
                requests.push(String::from_utf8_lossy(&buf[..n]).into_owned());
                if answer.is_empty() {
                    // `next` stays open, as with no subscribed event.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    return (requests, s);
                }
                s.write_all(answer.as_bytes()).await.unwrap();
            }
            unreachable!()
        });
        let id = register(&api).await.unwrap();
        assert_eq!(id, "ext-1");
        let next = tokio::spawn({
            let api = api.clone();
            async move { next_event(&api, &id).await }
        });
        let (requests, _open) = server.await.unwrap();
        assert!(requests[0].starts_with("POST /2020-01-01/extension/register HTTP/1.1\r\n"));
        assert!(requests[0].contains("Lambda-Extension-Name: gatehouse-shutdown-audit\r\n"));
        assert!(requests[0].ends_with("\r\n\r\n{\"events\":[]}"), "{}", requests[0]);
        assert!(requests[1].starts_with("GET /2020-01-01/extension/event/next HTTP/1.1\r\n"));
        assert!(requests[1].contains("Lambda-Extension-Identifier: ext-1\r\n"));
        assert!(!next.is_finished(), "next stays pending while no event comes");
        next.abort();
    }

    #[tokio::test]
    async fn a_refused_registration_is_an_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0; 4096];
            let _ = s.read(&mut buf).await.unwrap();
            s.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n").await.unwrap();
        });
        assert!(register(&api).await.is_err());
    }
}
