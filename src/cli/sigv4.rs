//! AWS Signature Version 4 for admin calls to a deployed tenant whose API Gateway authorizes
//! `/admin` with AWS IAM (service `execute-api`). Credentials come from the standard AWS chain
//! (environment, profile, SSO, container or instance role) through `aws-config`.
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;

use super::Failure;

/// The API Gateway service name in SigV4 credential scopes.
pub const SERVICE: &str = "execute-api";

/// What signs each request: credentials and the region of the API.
#[derive(Debug, Clone)]
pub struct Signer {
    pub credentials: Credentials,
    pub region: String,
}

impl Signer {
    /// Resolves the region (`--region`, `AWS_REGION`, then the AWS profile) and credentials
    /// from the standard chain.
    pub async fn from_environment(region: Option<String>) -> Result<Self, Failure> {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(r) = region {
            loader = loader.region(aws_config::Region::new(r));
        }
        let conf = loader.load().await;
        let region = conf
            .region()
            .map(|r| r.as_ref().to_owned())
            .ok_or_else(|| Failure::Usage("--sigv4 needs a region: pass --region or set AWS_REGION".into()))?;
        let provider = conf
            .credentials_provider()
            .ok_or_else(|| Failure::Transport("no AWS credentials provider is configured".into()))?;
        let credentials = provider
            .provide_credentials()
            .await
            .map_err(|e| Failure::Transport(format!("cannot load AWS credentials: {}", super::api::chain(&e))))?;
        Ok(Self { credentials, region })
    }

    /// Signs `req` now (adds `x-amz-date`, `Authorization`, and `x-amz-security-token` with
    /// temporary credentials).
    pub fn sign(&self, req: &mut http::Request<Bytes>) -> Result<(), Failure> {
        sign_request(req, &self.credentials, &self.region, SERVICE, SystemTime::now())
            .map_err(|e| Failure::Transport(format!("cannot sign the request (SigV4): {e}")))
    }
}

/// Signs `req` (absolute URI, `host` header set, whole body) for `service` in `region` at `time`,
/// with the default settings for services other than S3: double-encoded path, normalized path,
/// no `x-amz-content-sha256` header, session token signed.
pub fn sign_request(
    req: &mut http::Request<Bytes>,
    credentials: &Credentials,
    region: &str,
    service: &str,
    time: SystemTime,
) -> Result<(), String> {
    let identity: Identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let instructions = {
        let mut headers = Vec::with_capacity(req.headers().len());
        for (name, value) in req.headers() {
            let value = value.to_str().map_err(|_| format!("header {name} is not visible ASCII"))?;
            headers.push((name.as_str(), value));
        }
        let uri = req.uri().to_string();
        let signable =
            SignableRequest::new(req.method().as_str(), uri, headers.into_iter(), SignableBody::Bytes(req.body()))
                .map_err(|e| e.to_string())?;
        sign(signable, &params).map_err(|e| e.to_string())?.into_parts().0
    };
    instructions.apply_to_request_http1x(req);
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Vectors from AWS's SigV4 test suite (`aws-signing-test-suite/v4`, as shipped in the
    //! `aws-sigv4` crate): credentials AKIDEXAMPLE, 2015-08-30T12:36:00Z, us-east-1, `service`.
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    const TIME: u64 = 1_440_938_160; // 2015-08-30T12:36:00Z

    fn credentials(session_token: Option<&str>) -> Credentials {
        Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            session_token.map(str::to_owned),
            None,
            "test",
        )
    }

    fn signed(method: &str, uri: &str, session_token: Option<&str>) -> http::Request<Bytes> {
        let mut req = http::Request::builder()
            .method(method)
            .uri(uri)
            .header("host", "example.amazonaws.com")
            .body(Bytes::new())
            .unwrap();
        let time = UNIX_EPOCH + Duration::from_secs(TIME);
        sign_request(&mut req, &credentials(session_token), "us-east-1", "service", time).unwrap();
        req
    }

    fn header<'a>(req: &'a http::Request<Bytes>, name: &str) -> &'a str {
        req.headers().get(name).unwrap().to_str().unwrap()
    }

    #[test]
    fn get_vanilla() {
        let req = signed("GET", "https://example.amazonaws.com/", None);
        assert_eq!(header(&req, "x-amz-date"), "20150830T123600Z");
        assert_eq!(
            header(&req, "authorization"),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn post_vanilla_query() {
        let req = signed("POST", "https://example.amazonaws.com/?Param1=value1", None);
        assert_eq!(
            header(&req, "authorization"),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"
        );
    }

    #[test]
    fn get_vanilla_with_session_token() {
        let token = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267";
        let req = signed("GET", "https://example.amazonaws.com/", Some(token));
        assert_eq!(header(&req, "x-amz-security-token"), token);
        assert_eq!(
            header(&req, "authorization"),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date;x-amz-security-token, \
             Signature=07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8"
        );
    }
}
