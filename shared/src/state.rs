//! `AppState`: configuration, store, signer and clock, built once per host (a Lambda cold
//! start, the local server, a test).
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, SignerKind, StoreKind};
use crate::keys::{KeyRing, KeyUse, LocalSigner, Signer};
use crate::store::{DynamoStore, EmbeddedStore, Store};

/// Everything a request handler needs. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub signer: Arc<dyn Signer>,
    pub clock: crate::clock::Clock,
    /// The identity-domain settings, kept for `settings::SETTINGS_TTL`.
    pub settings_cache: Arc<crate::settings::SettingsCache>,
}

/// A start-up failure: bad configuration, unreachable store or KMS, unusable key.
pub type StartupError = Box<dyn std::error::Error + Send + Sync>;

impl AppState {
    /// Assembles a state from its parts (tests, benchmarks).
    pub fn new(config: Config, store: Arc<dyn Store>, signer: Arc<dyn Signer>, clock: crate::clock::Clock) -> Self {
        crate::audit::set_tenant(&config.tenant);
        let settings_cache = Arc::new(crate::settings::SettingsCache::new(&config));
        Self { config: Arc::new(config), store, signer, clock, settings_cache }
    }

    /// The identity-domain settings in force (read from the table at most every
    /// `settings::SETTINGS_TTL` seconds).
    pub async fn settings(&self) -> crate::Result<Arc<crate::settings::Settings>> {
        Ok(self.settings_cache.get(&*self.store, self.clock.now()).await?)
    }

    /// Reads `GATEHOUSE_*` and builds the state (a Lambda cold start). `key_use`: whether this
    /// function signs tokens (the token function) or only verifies them (the others, which then
    /// need no KMS permission at all).
    pub async fn from_env(key_use: KeyUse) -> Result<Self, StartupError> {
        Self::build_for(Config::from_env()?, key_use).await
    }

    /// Builds a signing state (the local server, tests).
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        Self::build_for(config, KeyUse::Sign).await
    }

    /// Builds the store and signer the configuration names. One-time costs (random-number
    /// generator, TLS, key loading or unsealing) are paid here, in the init phase.
    pub async fn build_for(config: Config, key_use: KeyUse) -> Result<Self, StartupError> {
        crate::crypto::warm_up();
        let kms_needed = config.signer != SignerKind::Local;
        let aws = if config.store == StoreKind::Dynamodb || kms_needed { Some(aws_sdk_config().await) } else { None };
        let store: Arc<dyn Store> = match config.store {
            StoreKind::Embedded => Arc::new(EmbeddedStore::open(&config.data_dir)?),
            StoreKind::Dynamodb => {
                let conf = aws_sdk_dynamodb::config::Builder::from(aws.as_ref().expect("aws config loaded"))
                    .interceptor(crate::metrics::LatencyInterceptor)
                    .build();
                let ddb = aws_sdk_dynamodb::Client::from_conf(conf);
                Arc::new(DynamoStore::new(ddb, config.table_name.clone().expect("validated")))
            }
        };
        let now = crate::clock::Clock::system().now();
        let signer: Arc<dyn Signer> = match config.signer {
            SignerKind::Local => Arc::new(LocalSigner::load_or_create(&config.data_dir)?),
            SignerKind::Kms => {
                let kms = kms_client(aws.as_ref().expect("aws config loaded"));
                let alias = config.kms_key_id.clone().expect("validated");
                Arc::new(KeyRing::kms(kms, alias, store.clone(), key_use, now).await?)
            }
            SignerKind::Sealed => {
                let kms = kms_client(aws.as_ref().expect("aws config loaded"));
                let key_id = config.kms_key_id.clone().expect("validated");
                let tenant = config.tenant.clone();
                Arc::new(KeyRing::sealed(kms, key_id, tenant, store.clone(), key_use, now).await?)
            }
        };
        let state = Self::new(config, store, signer, crate::clock::Clock::system());
        // Init phase: the first request finds the settings loaded.
        state.settings().await.map_err(|e| format!("reading the tenant settings: {e}"))?;
        Ok(state)
    }
}

/// A KMS client whose calls emit latency metrics.
fn kms_client(aws: &aws_config::SdkConfig) -> aws_sdk_kms::Client {
    aws_sdk_kms::Client::from_conf(
        aws_sdk_kms::config::Builder::from(aws).interceptor(crate::metrics::LatencyInterceptor).build(),
    )
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
