//! `AppState`: configuration, store, signer, clock and the warm instance's caches (settings,
//! clients, resource servers: `crate::cache`), built once per host (a Lambda cold start, the
//! local server, a test).
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::config::SharedInterceptor;

use crate::cache::TtlCache;
use crate::config::{Config, SignerKind, StoreKind};
use crate::keys::{KeyRing, KeyUse, LocalSigner, Signer};
use crate::model::{Client, ResourceServer};
#[cfg(feature = "embedded")]
use crate::store::EmbeddedStore;
use crate::store::{DynamoStore, Store};

/// Everything a request handler needs. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub signer: Arc<dyn Signer>,
    pub clock: crate::clock::Clock,
    /// The identity-domain settings, kept for `settings::SETTINGS_TTL`.
    pub settings_cache: Arc<crate::settings::SettingsCache>,
    /// Clients by id (and unknown ids), kept for `cache::CLIENT_TTL`.
    pub client_cache: Arc<TtlCache<Client>>,
    /// Resource servers by identifier (and unknown ones), kept for `cache::RESOURCE_SERVER_TTL`.
    pub resource_server_cache: Arc<TtlCache<ResourceServer>>,
}

/// The AWS SDK clients a state is built on. `AppState::from_env` builds them from the standard
/// chain; tests build them on the emulators, with extra interceptors (e.g. one counting calls).
#[derive(Clone, Debug)]
pub struct AwsClients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub kms: aws_sdk_kms::Client,
}

impl AwsClients {
    /// Clients on `aws` whose calls emit latency metrics (`metrics::LatencyInterceptor`), then
    /// pass through `extra`.
    pub fn new(aws: &aws_config::SdkConfig, extra: &[SharedInterceptor]) -> Self {
        let mut ddb = aws_sdk_dynamodb::config::Builder::from(aws).interceptor(crate::metrics::LatencyInterceptor);
        let mut kms = aws_sdk_kms::config::Builder::from(aws).interceptor(crate::metrics::LatencyInterceptor);
        for i in extra {
            ddb.push_interceptor(i.clone());
            kms.push_interceptor(i.clone());
        }
        Self {
            dynamodb: aws_sdk_dynamodb::Client::from_conf(ddb.build()),
            kms: aws_sdk_kms::Client::from_conf(kms.build()),
        }
    }
}

/// A start-up failure: bad configuration, unreachable store or KMS, unusable key.
pub type StartupError = Box<dyn std::error::Error + Send + Sync>;

impl AppState {
    /// Assembles a state from its parts (tests, benchmarks).
    pub fn new(config: Config, store: Arc<dyn Store>, signer: Arc<dyn Signer>, clock: crate::clock::Clock) -> Self {
        let settings_cache = Arc::new(crate::settings::SettingsCache::new(&config));
        Self::with_caches(config, store, signer, clock, settings_cache, resource_server_cache())
    }

    fn with_caches(
        config: Config,
        store: Arc<dyn Store>,
        signer: Arc<dyn Signer>,
        clock: crate::clock::Clock,
        settings_cache: Arc<crate::settings::SettingsCache>,
        resource_server_cache: Arc<TtlCache<ResourceServer>>,
    ) -> Self {
        crate::audit::set_tenant(&config.tenant);
        let client_cache = Arc::new(TtlCache::new(crate::cache::CLIENT_TTL, crate::cache::MAX_ENTRIES));
        Self { config: Arc::new(config), store, signer, clock, settings_cache, client_cache, resource_server_cache }
    }

    /// A registered client (RFC 7591 metadata and secret digests), read from the store at most
    /// every `cache::CLIENT_TTL` seconds per id, unknown ids included. Admin handlers that
    /// change a client read the store directly and call [`AppState::invalidate_client`].
    pub async fn client(&self, client_id: &str) -> crate::Result<Option<Arc<Client>>> {
        // No client has a longer id (they are generated, 22 characters); never a store key.
        if client_id.len() > crate::http::MAX_CLIENT_ID {
            return Ok(None);
        }
        let store = &self.store;
        Ok(self.client_cache.get_or_load(client_id, self.clock.now(), || store.get_client(client_id)).await?)
    }

    /// A failed client authentication on a cached copy: the client read again (`Some`), unless
    /// this instance read it less than `cache::CLIENT_RECHECK_INTERVAL` seconds ago (`None`).
    pub async fn recheck_client(&self, client_id: &str) -> crate::Result<Option<Option<Arc<Client>>>> {
        let (store, now) = (&self.store, self.clock.now());
        let min_age = crate::cache::CLIENT_RECHECK_INTERVAL;
        Ok(self.client_cache.reload(client_id, now, min_age, || store.get_client(client_id)).await?)
    }

    /// Forgets this instance's copy of a client (after creating, changing or deleting it).
    pub fn invalidate_client(&self, client_id: &str) {
        self.client_cache.invalidate(client_id);
    }

    /// A registered resource server (RFC 8707 `resource`, token audience), read from the store
    /// at most every `cache::RESOURCE_SERVER_TTL` seconds per identifier, unknown ones included.
    pub async fn resource_server(&self, identifier: &str) -> crate::Result<Option<Arc<ResourceServer>>> {
        let store = &self.store;
        let now = self.clock.now();
        Ok(self.resource_server_cache.get_or_load(identifier, now, || store.get_resource_server(identifier)).await?)
    }

    /// Forgets this instance's copy of a resource server (after creating, changing or deleting it).
    pub fn invalidate_resource_server(&self, identifier: &str) {
        self.resource_server_cache.invalidate(identifier);
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
        let kms_needed = config.signer != SignerKind::Local;
        let aws = if config.store == StoreKind::Dynamodb || kms_needed {
            Some(AwsClients::new(&aws_sdk_config().await, &[]))
        } else {
            None
        };
        Self::build_on(config, key_use, aws, crate::clock::Clock::system()).await
    }

    /// [`AppState::build_for`] on given SDK clients and clock: the Lambda functions' own
    /// assembly, which tests run on the emulators (counting the calls it makes).
    pub async fn build_on(
        config: Config,
        key_use: KeyUse,
        aws: Option<AwsClients>,
        clock: crate::clock::Clock,
    ) -> Result<Self, StartupError> {
        // The random-number generators' first call is CPU work: done on the blocking pool
        // while this task waits for the store and KMS.
        let warm_up = tokio::task::spawn_blocking(crate::crypto::warm_up);
        let aws = || aws.clone().ok_or("the DynamoDB store and the kms and sealed signers need AWS clients");
        let store: Arc<dyn Store> = match config.store {
            #[cfg(feature = "embedded")]
            StoreKind::Embedded => Arc::new(EmbeddedStore::open(&config.data_dir)?),
            #[cfg(not(feature = "embedded"))]
            StoreKind::Embedded => return Err("this build has no embedded store (GATEHOUSE_STORE=dynamodb)".into()),
            StoreKind::Dynamodb => {
                Arc::new(DynamoStore::new(aws()?.dynamodb, config.table_name.clone().expect("validated")))
            }
        };
        let now = clock.now();
        let signer = async {
            let signer: Arc<dyn Signer> = match config.signer {
                SignerKind::Local => Arc::new(LocalSigner::load_or_create(&config.data_dir)?),
                SignerKind::Kms => {
                    let alias = config.kms_key_id.clone().expect("validated");
                    Arc::new(KeyRing::kms(aws()?.kms, alias, store.clone(), key_use, now).await?)
                }
                SignerKind::Sealed => {
                    let key_id = config.kms_key_id.clone().expect("validated");
                    let tenant = config.tenant.clone();
                    Arc::new(KeyRing::sealed(aws()?.kms, key_id, tenant, store.clone(), key_use, now).await?)
                }
            };
            Ok::<_, StartupError>(signer)
        };
        // Init phase: the first request finds the settings loaded and, in a function that
        // issues tokens, the resource server of the default audience (read for every token
        // without `resource`: `grants::decide_grant`, the custom claims); read while the key
        // ring loads (its reads and, in sealed mode, the unsealing), not after it.
        let settings_cache = Arc::new(crate::settings::SettingsCache::new(&config));
        let resource_server_cache = resource_server_cache();
        let first_reads = async {
            let settings =
                settings_cache.get(&*store, now).await.map_err(|e| format!("reading the tenant settings: {e}"))?;
            if key_use == KeyUse::Sign {
                let audience = settings.default_resource.as_deref().unwrap_or(&config.default_audience);
                let read = resource_server_cache.get_or_load(audience, now, || store.get_resource_server(audience));
                if let Err(e) = read.await {
                    // Not needed to start: the first token reads it again.
                    tracing::warn!(error = %e, "the default audience's resource server could not be read at start");
                }
            }
            Ok::<_, StartupError>(())
        };
        let (signer, ()) = tokio::try_join!(signer, first_reads)?;
        warm_up.await.map_err(|e| format!("warming the random-number generators: {e}"))?;
        Ok(Self::with_caches(config, store, signer, clock, settings_cache, resource_server_cache))
    }
}

/// An empty cache of resource servers (`cache::RESOURCE_SERVER_TTL`).
fn resource_server_cache() -> Arc<TtlCache<ResourceServer>> {
    Arc::new(TtlCache::new(crate::cache::RESOURCE_SERVER_TTL, crate::cache::MAX_ENTRIES))
}

/// The AWS SDK configuration from the standard chain (`AWS_REGION`, credentials,
/// `AWS_ENDPOINT_URL_DYNAMODB` / `AWS_ENDPOINT_URL_KMS` overrides), with timeouts that fit a
/// Lambda's budget: a slow dependency becomes a 503 quickly instead of a function timeout.
pub async fn aws_sdk_config() -> aws_config::SdkConfig {
    with_lambda_budget(aws_config::defaults(aws_config::BehaviorVersion::latest())).load().await
}

/// The SDK timeouts and retries of [`aws_sdk_config`] on any loader (tests that point the SDK
/// at proxies use the functions' own budget): 1 s to connect, 2 s per attempt, 5 s per
/// operation, 3 attempts (standard retry mode).
pub fn with_lambda_budget(loader: aws_config::ConfigLoader) -> aws_config::ConfigLoader {
    loader
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(1))
                .operation_attempt_timeout(Duration::from_secs(2))
                .operation_timeout(Duration::from_secs(5))
                .build(),
        )
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(3))
}
