//! `AppState`: configuration, store, signer and clock, built once per host (a Lambda cold
//! start, the local server, a test).
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, SignerKind, StoreKind};
use crate::keys::{KmsSigner, LocalSigner, SealedSigner, Signer};
use crate::store::{DynamoStore, EmbeddedStore, Store};

/// Everything a request handler needs. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub signer: Arc<dyn Signer>,
    pub clock: crate::clock::Clock,
}

/// A start-up failure: bad configuration, unreachable store or KMS, unusable key.
pub type StartupError = Box<dyn std::error::Error + Send + Sync>;

impl AppState {
    /// Assembles a state from its parts (tests, benchmarks).
    pub fn new(config: Config, store: Arc<dyn Store>, signer: Arc<dyn Signer>, clock: crate::clock::Clock) -> Self {
        crate::audit::set_tenant(&config.tenant);
        Self { config: Arc::new(config), store, signer, clock }
    }

    /// Reads `GATEHOUSE_*` and builds the state (a Lambda cold start).
    pub async fn from_env() -> Result<Self, StartupError> {
        Self::build(Config::from_env()?).await
    }

    /// Builds the store and signer the configuration names. One-time costs (random-number
    /// generator, TLS, key loading or unsealing) are paid here, in the init phase.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        crate::crypto::warm_up();
        let aws = if config.store == StoreKind::Dynamodb || config.signer != SignerKind::Local {
            Some(aws_sdk_config().await)
        } else {
            None
        };
        let store: Arc<dyn Store> = match config.store {
            StoreKind::Embedded => Arc::new(EmbeddedStore::open(&config.data_dir)?),
            StoreKind::Dynamodb => {
                let ddb = aws_sdk_dynamodb::Client::new(aws.as_ref().expect("aws config loaded"));
                Arc::new(DynamoStore::new(ddb, config.table_name.clone().expect("validated")))
            }
        };
        let now = crate::clock::Clock::system().now();
        let signer: Arc<dyn Signer> = match config.signer {
            SignerKind::Local => Arc::new(LocalSigner::load_or_create(&config.data_dir)?),
            SignerKind::Kms => {
                let kms = aws_sdk_kms::Client::new(aws.as_ref().expect("aws config loaded"));
                Arc::new(KmsSigner::new(kms, config.kms_key_id.clone().expect("validated")).await?)
            }
            SignerKind::Sealed => {
                let kms = aws_sdk_kms::Client::new(aws.as_ref().expect("aws config loaded"));
                let key_id = config.kms_key_id.as_deref().expect("validated");
                Arc::new(SealedSigner::load_or_create(&kms, key_id, &config.tenant, store.clone(), now).await?)
            }
        };
        Ok(Self::new(config, store, signer, crate::clock::Clock::system()))
    }
}

/// The AWS SDK configuration from the standard chain (`AWS_REGION`, credentials,
/// `AWS_ENDPOINT_URL_DYNAMODB` / `AWS_ENDPOINT_URL_KMS` overrides), with timeouts that fit a
/// Lambda's budget: a slow dependency becomes a 503 quickly instead of a function timeout.
pub async fn aws_sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(1))
                .operation_attempt_timeout(Duration::from_secs(2))
                .operation_timeout(Duration::from_secs(5))
                .build(),
        )
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(3))
        .load()
        .await
}
