//! Redis for BFFs: what instances share (rate-limit counters, later cached
//! values), with one rule: **a Redis failure is never a BFF failure.**
//!
//! [`SharedRedis::run`] gives every command a short timeout and puts a
//! circuit breaker in front of the connection; it answers `None` when Redis
//! is not configured, down, slow or frozen, and callers fall back to
//! in-process state. The connection is established lazily and re-established
//! in the background (`redis::aio::ConnectionManager`), so a BFF starts and
//! serves without Redis and picks it up when it appears.

use std::future::Future;
use std::time::Duration;

use bff_resilience::{BreakerConfig, CircuitBreaker, Verdict};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};

pub use redis;

/// How a BFF reaches Redis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://127.0.0.1:6379`; unset (the local default) means in-process
    /// state only.
    pub url: Option<String>,
    /// Longest a command may take, in milliseconds, before we fall back.
    pub timeout_ms: u64,
    /// Longest a (re)connection attempt may take, in milliseconds.
    pub connect_timeout_ms: u64,
    /// When to stop trying Redis for a while.
    pub breaker: BreakerConfig,
}

impl Default for RedisConfig {
    /// The URL defaults to `$REDIS_URL` (unset: no Redis), so one variable
    /// turns Redis on for `cargo xtask dev` and every BFF.
    fn default() -> Self {
        RedisConfig {
            url: std::env::var("REDIS_URL").ok().filter(|url| !url.is_empty()),
            timeout_ms: 50,
            connect_timeout_ms: 250,
            // Unlike a dependency's, Redis's breaker opens eagerly (three
            // failures, no sustained time): without Redis a request only
            // loses the shared tier, whereas waiting on a sick Redis costs
            // every request its timeout. Two seconds, flat, one probe.
            breaker: BreakerConfig {
                consecutive_failures: 3,
                sustained_ms: 0,
                open_ms: 2_000,
                max_open_ms: 2_000,
                half_open_probes: 1,
                ..BreakerConfig::default()
            },
        }
    }
}

impl RedisConfig {
    /// Problems that make this configuration unusable.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(url) = self.url.as_ref().filter(|url| redis::Client::open(url.as_str()).is_err()) {
            problems.push(format!("url `{url}` is not a Redis URL"));
        }
        if self.timeout_ms == 0 {
            problems.push("timeout_ms must be greater than 0".to_owned());
        }
        problems.extend(self.breaker.problems());
        problems
    }
}

/// A lazily connected, guarded Redis. Cheap to clone.
#[derive(Clone)]
pub struct SharedRedis {
    connection: Option<ConnectionManager>,
    breaker: std::sync::Arc<CircuitBreaker>,
    timeout: Duration,
}

impl std::fmt::Debug for SharedRedis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedRedis")
            .field("configured", &self.connection.is_some())
            .field("breaker", &self.breaker.state())
            .finish()
    }
}

impl SharedRedis {
    /// Redis as configured; never fails: a bad or unreachable URL means
    /// in-process fallbacks (and a warning).
    pub fn new(config: &RedisConfig) -> Self {
        let connection = config.url.as_deref().and_then(|url| {
            let client = redis::Client::open(url)
                .map_err(|error| tracing::warn!(%error, "Redis URL unusable; running without Redis"))
                .ok()?;
            let manager = ConnectionManagerConfig::new()
                .set_response_timeout(Some(Duration::from_millis(config.timeout_ms)))
                .set_connection_timeout(Some(Duration::from_millis(config.connect_timeout_ms)))
                .set_number_of_retries(2)
                .set_max_delay(Duration::from_millis(500));
            ConnectionManager::new_lazy_with_config(client, manager)
                .map_err(|error| tracing::warn!(%error, "Redis unavailable; running without Redis"))
                .ok()
        });
        SharedRedis {
            connection,
            breaker: std::sync::Arc::new(CircuitBreaker::new(config.breaker.clone())),
            timeout: Duration::from_millis(config.timeout_ms),
        }
    }

    /// Redis switched off: every [`SharedRedis::run`] answers `None`.
    pub fn disabled() -> Self {
        SharedRedis::new(&RedisConfig::default())
    }

    /// Whether a Redis URL is configured.
    pub fn is_configured(&self) -> bool {
        self.connection.is_some()
    }

    /// Runs `command` on the shared connection: `Some(value)`, or `None`
    /// when Redis is not configured, its breaker is open, or the command
    /// failed or took longer than the timeout. Callers then fall back.
    pub async fn run<T, F, Fut>(&self, command: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let connection = self.connection.clone()?;
        let permit = self.breaker.try_acquire().ok()?;
        match tokio::time::timeout(self.timeout, command(connection)).await {
            Ok(Ok(value)) => {
                permit.record(Verdict::Success);
                Some(value)
            }
            Ok(Err(error)) => {
                tracing::debug!(%error, "Redis command failed; falling back");
                permit.record(Verdict::Failure);
                None
            }
            Err(_) => {
                tracing::debug!("Redis command timed out; falling back");
                permit.record(Verdict::Failure);
                None
            }
        }
    }
}
