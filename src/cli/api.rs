//! The admin API client: one HTTP/1.1 request per call (rustls on aws-lc for https), an admin
//! bearer token or a SigV4 signature, a deadline over the whole exchange, and errors an operator
//! can act on (connection refused, unknown host, timeout, the API's own error).
use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use super::Failure;
use super::sigv4::Signer;

/// Characters left as they are in a path segment or query value: RFC 3986 unreserved.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Percent-encodes one path segment or query component (`/` included).
pub fn enc(s: &str) -> String {
    utf8_percent_encode(s, UNRESERVED).to_string()
}

/// How admin calls prove who makes them.
pub enum Auth {
    /// `Authorization: Bearer <admin token>`.
    Bearer(String),
    /// AWS SigV4 (API Gateway IAM authorization).
    SigV4(Box<Signer>),
}

/// Never the token.
impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Bearer(_) => "Bearer([redacted])",
            Self::SigV4(_) => "SigV4",
        })
    }
}

enum Transport {
    Plain(Client<HttpConnector, Full<Bytes>>),
    Tls(Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>),
}

/// A client of one tenant's admin API.
pub struct Api {
    /// `scheme://authority` plus any path prefix (an API Gateway stage), without a final `/`.
    base: String,
    authority: String,
    auth: Auth,
    timeout: Duration,
    transport: Transport,
}

/// A successful answer: its status and JSON body (`None` when empty, as for 204).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Option<Value>,
}

impl Api {
    /// A client for `url` (`http://` or `https://`, optionally with a path prefix).
    pub fn new(url: &str, auth: Auth, timeout: Duration) -> Result<Self, Failure> {
        let bad = || Failure::Usage(format!("--url: expected http(s)://host[:port][/prefix], got `{url}`"));
        let uri: Uri = url.parse().map_err(|_| bad())?;
        let authority = uri.authority().ok_or_else(bad)?.to_string();
        if uri.query().is_some() || authority.contains('@') {
            return Err(bad());
        }
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(bad()),
        };
        // Every call carries the admin credential (a bearer token, or a SigV4 signature with the
        // session token): over plain http only to a server on this machine, as the server's own
        // issuer rule allows http only on loopback.
        let host = uri.host().unwrap_or_default();
        let loopback = host.eq_ignore_ascii_case("localhost")
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !tls && !loopback {
            return Err(Failure::Usage(format!(
                "--url: use https for `{host}`: http is only for a server on this machine (localhost, 127.0.0.1, [::1]), \
                 since every call carries the admin credential"
            )));
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        let transport = if tls {
            connector.enforce_http(false);
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let https = hyper_rustls::HttpsConnectorBuilder::new()
                .with_provider_and_native_roots(provider)
                .map_err(|e| Failure::Transport(format!("cannot load the system's CA certificates: {e}")))?
                .https_only()
                .enable_http1()
                .wrap_connector(connector);
            Transport::Tls(Client::builder(TokioExecutor::new()).build(https))
        } else {
            Transport::Plain(Client::builder(TokioExecutor::new()).build(connector))
        };
        let base =
            format!("{}://{}{}", uri.scheme_str().unwrap_or("http"), authority, uri.path().trim_end_matches('/'));
        Ok(Self { base, authority, auth, timeout, transport })
    }

    /// The base URL, for messages.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends `method path?query` with an optional JSON body. Non-2xx answers become
    /// [`Failure::Api`]; an unreachable server or a missed deadline [`Failure::Transport`].
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Reply, Failure> {
        let mut url = format!("{}{path}", self.base);
        let pairs: Vec<String> = query.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect();
        if !pairs.is_empty() {
            url.push('?');
            url.push_str(&pairs.join("&"));
        }
        let bytes = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let mut req = http::Request::builder()
            .method(method)
            .uri(&url)
            .header(header::HOST, &self.authority)
            .header(header::ACCEPT, "application/json")
            .header(header::USER_AGENT, concat!("gatehouse-cli/", env!("CARGO_PKG_VERSION")));
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let mut req = req.body(bytes).map_err(|e| Failure::Usage(format!("cannot build a request for {url}: {e}")))?;
        match &self.auth {
            Auth::Bearer(t) => {
                let v = HeaderValue::from_str(&format!("Bearer {t}")).map_err(|_| {
                    Failure::Usage("the admin token contains characters not allowed in a header".into())
                })?;
                req.headers_mut().insert(header::AUTHORIZATION, v);
            }
            Auth::SigV4(signer) => signer.sign(&mut req)?,
        }
        let req = req.map(Full::new);
        let exchange = async {
            let resp = match &self.transport {
                Transport::Plain(c) => c.request(req).await,
                Transport::Tls(c) => c.request(req).await,
            }
            .map_err(|e| self.unreachable(&e))?;
            let status = resp.status();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| Failure::Transport(format!("reading the answer from {}: {}", self.base, chain(&e))))?
                .to_bytes();
            Ok::<_, Failure>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(self.timeout, exchange).await.map_err(|_| {
            Failure::Transport(format!("no answer from {} within {} s (--timeout)", self.base, self.timeout.as_secs()))
        })??;
        decode(status, &bytes)
    }

    /// A clear message for a request that did not get an answer.
    fn unreachable(&self, e: &hyper_util::client::legacy::Error) -> Failure {
        let host = self.authority.rsplit_once(':').map_or(self.authority.as_str(), |(h, _)| h);
        let mut source: Option<&(dyn StdError + 'static)> = Some(e);
        while let Some(err) = source {
            if err.to_string() == "dns error" {
                return Failure::Transport(format!("cannot resolve host `{host}` (unknown host?) for {}", self.base));
            }
            if let Some(io) = err.downcast_ref::<std::io::Error>() {
                match io.kind() {
                    std::io::ErrorKind::ConnectionRefused => {
                        return Failure::Transport(format!(
                            "cannot connect to {}: connection refused (is the server running?)",
                            self.base
                        ));
                    }
                    std::io::ErrorKind::TimedOut => {
                        return Failure::Transport(format!(
                            "cannot connect to {}: timed out after {} s",
                            self.base,
                            self.timeout.as_secs()
                        ));
                    }
                    _ => {}
                }
            }
            source = err.source();
        }
        Failure::Transport(format!("request to {} failed: {}", self.base, chain(e)))
    }
}

/// An error and its causes, `: `-separated.
pub fn chain(e: &dyn StdError) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.last().is_some_and(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// A status and body into a [`Reply`] or the API's error.
fn decode(status: StatusCode, bytes: &[u8]) -> Result<Reply, Failure> {
    let json: Option<Value> =
        if bytes.iter().all(u8::is_ascii_whitespace) { None } else { serde_json::from_slice(bytes).ok() };
    if status.is_success() {
        if json.is_none() && !bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(Failure::Transport(format!("the server answered {status} with a body that is not JSON")));
        }
        return Ok(Reply { status, body: json });
    }
    let field = |k: &str| json.as_ref().and_then(|j| j.get(k)).and_then(Value::as_str).map(str::to_owned);
    let (error, description) = match (field("error"), field("message")) {
        (Some(e), _) => (e, field("error_description")),
        // API Gateway's own answers (IAM authorization, throttling): {"message": "..."}.
        (None, Some(m)) => (m, None),
        (None, None) => {
            let text = String::from_utf8_lossy(bytes);
            let text = text.trim();
            let reason = status.canonical_reason().unwrap_or("error").to_lowercase();
            (reason, (!text.is_empty()).then(|| text.chars().take(200).collect()))
        }
    };
    Err(Failure::Api { status, error, description })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_fully_encoded() {
        assert_eq!(enc("https://api.example.com/v1"), "https%3A%2F%2Fapi.example.com%2Fv1");
        assert_eq!(enc("a b+c~d_e.f-g"), "a%20b%2Bc~d_e.f-g");
        assert_eq!(enc("émile"), "%C3%A9mile");
    }

    #[test]
    fn errors_are_decoded() {
        let e = decode(StatusCode::NOT_FOUND, br#"{"error":"not_found","error_description":"no such client"}"#);
        assert!(matches!(e, Err(Failure::Api { status, error, description: Some(d) })
            if status == StatusCode::NOT_FOUND && error == "not_found" && d == "no such client"));
        let e = decode(StatusCode::FORBIDDEN, br#"{"message":"Forbidden"}"#);
        assert!(matches!(e, Err(Failure::Api { error, description: None, .. }) if error == "Forbidden"));
        let e = decode(StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>");
        assert!(matches!(e, Err(Failure::Api { error, description: Some(d), .. })
            if error == "bad gateway" && d == "<html>bad gateway</html>"));
        assert!(matches!(decode(StatusCode::NO_CONTENT, b""), Ok(Reply { body: None, .. })));
        assert!(matches!(decode(StatusCode::OK, b"<html>"), Err(Failure::Transport(_))));
    }

    #[test]
    fn base_keeps_a_stage_prefix_and_refuses_other_schemes() {
        let auth = || Auth::Bearer("t".into());
        let api = Api::new("https://x.execute-api.eu-west-1.amazonaws.com/prod/", auth(), Duration::from_secs(1));
        assert_eq!(api.unwrap().base(), "https://x.execute-api.eu-west-1.amazonaws.com/prod");
        assert!(matches!(Api::new("ftp://x", auth(), Duration::from_secs(1)), Err(Failure::Usage(_))));
        assert!(matches!(Api::new("localhost:8080", auth(), Duration::from_secs(1)), Err(Failure::Usage(_))));
    }
}
