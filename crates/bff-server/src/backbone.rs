//! The parts every BFF is built from, so a BFF crate holds only its screens.

use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use axum::extract::FromRef;
use bff_auth::{AuthConfig, JwtVerifier, TokenExchanger};
use bff_cache::{Cache, CacheConfig};
use bff_compose::ComposeConfig;
use bff_downstream::{Api, DownstreamConfig};
use bff_redis::{RedisConfig, SharedRedis};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;

use crate::config::Validate;
use crate::{Readiness, ServerConfig};

/// What the handlers of every BFF share: typed downstream clients (whose
/// calls carry exchanged service tokens), the access-token verifier, the
/// composition settings, Redis and the part cache. Cheap to clone; use it
/// as (part of) the router state.
#[derive(Debug, Clone)]
pub struct Backbone {
    /// Typed downstream clients.
    pub api: Api,
    /// Access-token verifier.
    pub verifier: Arc<JwtVerifier>,
    /// Composition settings (read by the `Plan` extractor).
    pub compose: Arc<ComposeConfig>,
    /// Shared state across instances (optional; never a point of failure).
    pub redis: SharedRedis,
    /// The two-tier cache of composed parts.
    pub cache: Cache,
}

/// The configuration sections a [`Backbone`] is built from.
#[derive(Debug, Clone, Copy)]
pub struct Sections<'a> {
    /// Caller authentication and token exchange.
    pub auth: &'a AuthConfig,
    /// Downstream services.
    pub downstream: &'a DownstreamConfig,
    /// Composition.
    pub compose: &'a ComposeConfig,
    /// Redis.
    pub redis: &'a RedisConfig,
    /// The part cache.
    pub cache: &'a CacheConfig,
}

/// [`Sections`], mutable: what [`BffConfig::sections_mut`] hands out.
#[derive(Debug)]
pub struct SectionsMut<'a> {
    /// Caller authentication and token exchange.
    pub auth: &'a mut AuthConfig,
    /// Downstream services.
    pub downstream: &'a mut DownstreamConfig,
    /// Composition.
    pub compose: &'a mut ComposeConfig,
    /// Redis.
    pub redis: &'a mut RedisConfig,
    /// The part cache.
    pub cache: &'a mut CacheConfig,
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
    /// Builds the shared parts of the BFF `name` and loads the JWKS (a
    /// failure there is logged, not fatal: `/readyz` reports it and the
    /// first request retries).
    pub async fn new(name: &str, sections: Sections<'_>) -> anyhow::Result<Self> {
        let exchanger = TokenExchanger::new(sections.auth.exchange.clone()).map_err(anyhow::Error::msg)?;
        let api = Api::new(sections.downstream, name, Arc::new(exchanger)).map_err(anyhow::Error::msg)?;
        let verifier = Arc::new(JwtVerifier::new(sections.auth.clone()).map_err(anyhow::Error::msg)?);
        if let Err(error) = verifier.refresh().await {
            tracing::warn!(%error, "JWKS not loaded at start-up; will retry");
        }
        let redis = SharedRedis::new(sections.redis);
        if sections.cache.encryption_key == bff_cache::DEV_ENCRYPTION_KEY && redis.is_configured() {
            tracing::warn!("encrypting per-user cache entries with the public development key");
        }
        let cache = Cache::new(sections.cache.clone(), redis.clone())?;
        Ok(Backbone { api, verifier, compose: Arc::new(sections.compose.clone()), redis, cache })
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
                verifier.refresh().await.map(|_| ()).map_err(|e| e.to_string())
            })
        })
    }
}

/// Problems of the sections every BFF configuration has, each prefixed with
/// its section (`auth.jwks_url ...`). A BFF's `Validate` adds its own.
pub fn common_problems(server: &ServerConfig, sections: Sections<'_>) -> Vec<String> {
    let prefixed = |section: &str, problems: Vec<String>| {
        problems.into_iter().map(move |p| format!("{section}.{p}")).collect::<Vec<_>>()
    };
    let mut problems = server.problems();
    problems.extend(prefixed("auth", sections.auth.problems()));
    problems.extend(prefixed("downstream", sections.downstream.problems()));
    problems.extend(prefixed("compose", sections.compose.problems()));
    problems.extend(prefixed("redis", sections.redis.problems()));
    problems.extend(prefixed("cache", sections.cache.problems()));
    problems
}

/// A BFF's configuration type: loadable, validated, with the server
/// settings and the sections every BFF has. Implement it with
/// [`crate::bff_config!`] for a struct with fields `server`, `auth`,
/// `downstream`, `compose`, `redis` and `cache`.
pub trait BffConfig: DeserializeOwned + Serialize + Default + Validate {
    /// The HTTP server section.
    fn server(&self) -> &ServerConfig;

    /// The sections the shared [`Backbone`] is built from.
    fn sections(&self) -> Sections<'_>;

    /// The same sections, to change (tests point them at their mocks).
    fn sections_mut(&mut self) -> SectionsMut<'_>;

    /// Problems of the shared sections ([`common_problems`]).
    fn common_problems(&self) -> Vec<String> {
        common_problems(self.server(), self.sections())
    }
}

/// Implements [`BffConfig`] for a BFF configuration struct whose fields are
/// named `server`, `auth`, `downstream`, `compose`, `redis` and `cache`.
#[macro_export]
macro_rules! bff_config {
    ($config:ty) => {
        impl $crate::BffConfig for $config {
            fn server(&self) -> &$crate::ServerConfig {
                &self.server
            }

            fn sections(&self) -> $crate::Sections<'_> {
                $crate::Sections {
                    auth: &self.auth,
                    downstream: &self.downstream,
                    compose: &self.compose,
                    redis: &self.redis,
                    cache: &self.cache,
                }
            }

            fn sections_mut(&mut self) -> $crate::SectionsMut<'_> {
                $crate::SectionsMut {
                    auth: &mut self.auth,
                    downstream: &mut self.downstream,
                    compose: &mut self.compose,
                    redis: &mut self.redis,
                    cache: &mut self.cache,
                }
            }
        }
    };
}

/// The whole `main` of a BFF binary: load and validate configuration
/// (`<env_prefix>__...`), set up logging, bind, and `run` until SIGTERM or
/// Ctrl-C. Every failure is one line on stderr and a non-zero exit.
pub async fn launch<C, F, Fut>(name: &str, env_prefix: &str, run: F) -> ExitCode
where
    C: BffConfig,
    F: FnOnce(C, TcpListener, std::pin::Pin<Box<dyn Future<Output = ()> + Send>>) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let config: C = match crate::load(env_prefix) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{name}: {error}");
            return ExitCode::FAILURE;
        }
    };
    bff_telemetry::init(config.server().log_format, "info");
    let addr = SocketAddr::new(config.server().host, config.server().port);
    let listener = match TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("{name}: cannot bind {addr}: {error}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(%addr, "{name} listening");
    match run(config, listener, Box::pin(crate::shutdown_signal())).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{name}: {error:#}");
            ExitCode::FAILURE
        }
    }
}
