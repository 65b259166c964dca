//! What the handlers of every BFF share, built once at start-up.

use std::sync::Arc;

use axum::extract::FromRef;
use bff_auth::{IdentityProvider, JwtVerifier, TokenExchanger};
use bff_cache::{Cache, CacheConfig};
use bff_compose::ComposeConfig;
use bff_downstream::Api;
use bff_redis::{RedisConfig, SharedRedis};

use crate::config::{Config, Section};
use crate::{Readiness, ShellError};

/// What the handlers of every BFF share: typed downstream clients for its
/// egress list (whose calls carry exchanged service tokens), the
/// access-token verifier, the identity provider, the composition settings,
/// Redis and the part cache. Cheap to clone: it is the router state of
/// every BFF's screens (`State<Backbone>`).
#[derive(Debug, Clone)]
pub struct Backbone {
    /// Typed downstream clients. Services off the BFF's egress list refuse
    /// every call without sending anything. Behind an `Arc`: the backbone
    /// is cloned for every request (router state), and ten clients' worth of
    /// reference counts cloned and dropped per request was ~2.5% of a home
    /// screen's CPU (#11's profile).
    pub api: Arc<Api>,
    /// Access-token verifier.
    pub verifier: Arc<JwtVerifier>,
    /// The identity provider's token endpoint (guarded egress), shared by
    /// token exchange and, in session mode, the login.
    pub identity: Arc<IdentityProvider>,
    /// Composition settings (read by the `Plan` extractor).
    pub compose: Arc<ComposeConfig>,
    /// Shared state across instances (not configured unless the BFF uses
    /// it; never a point of failure).
    pub redis: SharedRedis,
    /// The two-tier cache of composed parts. A BFF that does not declare a
    /// cache gets one that keeps nothing (every lookup calls through).
    pub cache: Cache,
}

impl FromRef<Backbone> for Arc<JwtVerifier> {
    fn from_ref(backbone: &Backbone) -> Self {
        Arc::clone(&backbone.verifier)
    }
}

impl FromRef<Backbone> for Arc<ComposeConfig> {
    fn from_ref(backbone: &Backbone) -> Self {
        Arc::clone(&backbone.compose)
    }
}

impl Backbone {
    /// Builds the shared parts of the BFF `name` from its configuration and
    /// loads the JWKS (a failure there is logged, not fatal: `/readyz`
    /// reports it and the first request retries).
    pub async fn new<X: Section>(name: &str, config: &Config<X>) -> Result<Self, ShellError> {
        let identity = Arc::new(IdentityProvider::new(&config.auth.exchange)?);
        let exchanger = TokenExchanger::new(config.auth.exchange.clone(), Arc::clone(&identity))?;
        let api = bff_downstream::Api::new(&config.downstream, name, Arc::new(exchanger))?;
        let verifier = Arc::new(JwtVerifier::new(config.auth.clone())?);
        if let Err(error) = verifier.refresh().await {
            tracing::warn!(%error, "JWKS not loaded at start-up; will retry");
        }
        let redis = if config.uses.redis {
            SharedRedis::new(&config.redis)
        } else {
            SharedRedis::new(&RedisConfig { url: None, ..RedisConfig::default() })
        };
        let cache_config = if config.uses.cache {
            config.cache.clone()
        } else {
            // Nothing kept: a screen that caches without declaring it
            // still works, it just calls through every time.
            CacheConfig { memory_capacity: 0, ..CacheConfig::default() }
        };
        if config.uses.cache
            && cache_config.encryption_key == bff_cache::DEV_ENCRYPTION_KEY
            && redis.is_configured()
        {
            tracing::warn!("encrypting per-user cache entries with the public development key");
        }
        let cache = Cache::new(cache_config, redis.clone())?;
        Ok(Backbone {
            api: Arc::new(api),
            verifier,
            identity,
            compose: Arc::new(config.compose.clone()),
            redis,
            cache,
        })
    }

    /// Ready once signing keys are loaded (tries to load them if not).
    pub fn readiness(&self) -> Readiness {
        let verifier = Arc::clone(&self.verifier);
        Arc::new(move || {
            let verifier = Arc::clone(&verifier);
            Box::pin(async move {
                if verifier.key_count() > 0 {
                    return Ok(());
                }
                verifier.refresh().await.map(|_| ()).map_err(ShellError::from)
            })
        })
    }
}
