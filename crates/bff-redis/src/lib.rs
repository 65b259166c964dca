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
    /// `redis://127.0.0.1:6379`, or `rediss://host:port` for TLS, with
    /// `user:password@` when Redis requires a login; unset (the local
    /// default) means in-process state only.
    pub url: Option<String>,
    /// For `rediss://`: a PEM file of the certificate authorities to trust
    /// for Redis's certificate (a private CA). Unset: the system's roots.
    /// The server's name is always checked against its certificate.
    pub ca_file: Option<String>,
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
            ca_file: None,
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
            problems.push(format!("url `{}` is not a Redis URL", redacted(url)));
        }
        if let Some(ca_file) = &self.ca_file {
            if !self.url.as_deref().is_some_and(|url| url.starts_with("rediss://")) {
                problems.push("ca_file is set but url is not rediss:// (TLS)".to_owned());
            }
            match std::fs::read(ca_file) {
                Ok(pem) if pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") => {}
                Ok(_) => problems.push(format!("ca_file `{ca_file}` holds no PEM certificate")),
                Err(error) => problems.push(format!("ca_file `{ca_file}` cannot be read: {error}")),
            }
        }
        if self.timeout_ms == 0 {
            problems.push("timeout_ms must be greater than 0".to_owned());
        }
        problems.extend(self.breaker.problems());
        problems
    }
}

/// The client for `url`, trusting `ca_file`'s authorities when given.
fn client(url: &str, ca_file: Option<&str>) -> redis::RedisResult<redis::Client> {
    if url.starts_with("rediss://") {
        // rustls picks its crypto from crate features; with two enabled in
        // the build (aws-lc-rs by reqwest, ring by others) it must be told,
        // or the first handshake panics. Already chosen: fine.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
    let Some(ca_file) = ca_file else { return redis::Client::open(url) };
    let root_cert = std::fs::read(ca_file).map_err(|error| {
        redis::RedisError::from((redis::ErrorKind::InvalidClientConfig, "ca_file", error.to_string()))
    })?;
    redis::Client::build_with_tls(
        url,
        redis::TlsCertificates { client_tls: None, root_cert: Some(root_cert) },
    )
}

/// `url` with its password replaced, for messages.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
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
            let client = client(url, config.ca_file.as_deref())
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
        let breaker = std::sync::Arc::new(CircuitBreaker::new(config.breaker.clone()));
        if connection.is_some() {
            // Read at each scrape too: an open period that ends while no
            // command runs shows as half-open.
            let watched = std::sync::Arc::downgrade(&breaker);
            bff_telemetry::metrics::refresh_before_render(move || match watched.upgrade() {
                Some(breaker) => {
                    metrics::gauge!(bff_telemetry::metrics::REDIS_BREAKER).set(breaker.state().as_gauge());
                    true
                }
                None => false,
            });
        }
        SharedRedis { connection, breaker, timeout: Duration::from_millis(config.timeout_ms) }
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
        let result = self.guarded(connection, command).await;
        metrics::gauge!(bff_telemetry::metrics::REDIS_BREAKER).set(self.breaker.state().as_gauge());
        result
    }

    async fn guarded<T, F, Fut>(&self, connection: ConnectionManager, command: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn with(url: &str, ca_file: Option<&str>) -> RedisConfig {
        RedisConfig {
            url: Some(url.to_owned()),
            ca_file: ca_file.map(str::to_owned),
            ..RedisConfig::default()
        }
    }

    #[test]
    fn a_ca_file_needs_tls_and_a_readable_certificate() {
        let dir = std::env::temp_dir().join(format!("bff-redis-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let (pem, junk) = (dir.join("ca.pem"), dir.join("junk.pem"));
        std::fs::write(&pem, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
            .expect("write");
        std::fs::write(&junk, "not a certificate").expect("write");
        let (pem, junk) = (pem.display().to_string(), junk.display().to_string());

        assert!(with("rediss://redis.internal:6380", Some(&pem)).problems().is_empty());
        let problems = with("redis://redis.internal:6379", Some(&pem)).problems();
        assert_eq!(problems, ["ca_file is set but url is not rediss:// (TLS)"]);
        let problems = with("rediss://redis.internal:6380", Some(&junk)).problems();
        assert!(problems[0].contains("holds no PEM certificate"), "{problems:?}");
        let problems = with("rediss://redis.internal:6380", Some("/nonexistent/ca.pem")).problems();
        assert!(problems[0].contains("cannot be read"), "{problems:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_bad_url_is_named_without_its_password() {
        let problems = with("http://bff:s3cret@redis:6379", None).problems();
        assert_eq!(problems, ["url `http://bff:***@redis:6379` is not a Redis URL"]);
    }
}
