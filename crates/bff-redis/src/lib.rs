//! Redis for BFFs: what instances share (rate-limit counters, later cached
//! values), with one rule: **a Redis failure is never a BFF failure.**
//!
//! [`SharedRedis::run`] gives every command a short timeout and puts a
//! circuit breaker in front of the connection; it answers `None` when Redis
//! is not configured, down, slow or frozen, and callers fall back to
//! in-process state. The connection is established lazily and re-established
//! in the background (`redis::aio::ConnectionManager`), so a BFF starts and
//! serves without Redis and picks it up when it appears.
//!
//! One server (`url`) or a Redis Cluster (`cluster_nodes`): the same
//! [`Connection`] either way, so callers do not know which. In a cluster a
//! command goes to the master of its key's slot; every script here touches
//! one key (rate-limit cell, idempotency key, cache entry), so none needs a
//! hash tag. When a master dies, its commands fail (callers fall back, the
//! breaker may open) until a replica is promoted; the cluster connection
//! then learns the new slot map on its own and the BFF uses the cluster
//! again without a restart.

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
    /// A Redis Cluster instead: some of its nodes' URLs (any masters or
    /// replicas; the rest is discovered), each as `url` would be. Defaults
    /// to `$REDIS_CLUSTER_NODES` (comma-separated). Set it or `url`, not both.
    pub cluster_nodes: Vec<String>,
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
            cluster_nodes: std::env::var("REDIS_CLUSTER_NODES")
                .map(|nodes| {
                    nodes.split(',').map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned).collect()
                })
                .unwrap_or_default(),
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
        for node in self.cluster_nodes.iter().filter(|node| redis::Client::open(node.as_str()).is_err()) {
            problems.push(format!("cluster_nodes: `{}` is not a Redis URL", redacted(node)));
        }
        if self.url.is_some() && !self.cluster_nodes.is_empty() {
            problems.push("url and cluster_nodes are both set: one server or a cluster, not both".to_owned());
        }
        if self.ca_file.is_some() && !self.cluster_nodes.is_empty() {
            problems.push("ca_file is for one server (url); a cluster trusts the system's roots".to_owned());
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

/// The connection [`SharedRedis::run`] hands to a command: one server's or
/// a cluster's, used the same way (`redis::AsyncCommands`, scripts,
/// `query_async`). Cheap to clone.
#[derive(Clone)]
pub enum Connection {
    /// One server, reconnected in the background.
    Single(ConnectionManager),
    /// A Redis Cluster: each command to its slot's master; the slot map
    /// refreshed when the cluster says it moved (a failover).
    Cluster(redis::cluster_async::ClusterConnection),
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Connection::Single(_) => "Connection::Single",
            Connection::Cluster(_) => "Connection::Cluster",
        })
    }
}

impl redis::aio::ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Connection::Single(connection) => connection.req_packed_command(cmd),
            Connection::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Connection::Single(connection) => connection.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(connection) => connection.get_db(),
            Connection::Cluster(connection) => connection.get_db(),
        }
    }
}

/// A lazily connected, guarded Redis. Cheap to clone.
#[derive(Clone)]
pub struct SharedRedis {
    connection: Option<Connection>,
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
        let connection = if config.cluster_nodes.is_empty() {
            Self::single(config).map(Connection::Single)
        } else {
            Self::cluster(config).map(Connection::Cluster)
        };
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

    /// A Redis Cluster, connected in the background (nothing waits here).
    fn cluster(config: &RedisConfig) -> Option<redis::cluster_async::ClusterConnection> {
        let client = redis::cluster::ClusterClient::builder(config.cluster_nodes.iter().map(String::as_str))
            // Commands fail fast (the caller falls back) rather than retry
            // through a failover: the next request tries again.
            .retries(1)
            .build()
            .map_err(|error| tracing::warn!(%error, "Redis Cluster nodes unusable; running without Redis"))
            .ok()?;
        let settings = redis::cluster::ClusterConfig::new()
            .set_connection_timeout(Duration::from_millis(config.connect_timeout_ms))
            .set_response_timeout(Duration::from_millis(config.timeout_ms));
        Some(client.get_pending_async_connection_with_config(settings))
    }

    /// One Redis server, connected lazily and reconnected in the background.
    fn single(config: &RedisConfig) -> Option<ConnectionManager> {
        config.url.as_deref().and_then(|url| {
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
        })
    }

    /// Redis switched off: every [`SharedRedis::run`] answers `None`.
    pub fn disabled() -> Self {
        SharedRedis::new(&RedisConfig::default())
    }

    /// Whether a Redis URL (or cluster) is configured.
    pub fn is_configured(&self) -> bool {
        self.connection.is_some()
    }

    /// Runs `command` on the shared connection: `Some(value)`, or `None`
    /// when Redis is not configured, its breaker is open, or the command
    /// failed or took longer than the timeout. Callers then fall back.
    pub async fn run<T, F, Fut>(&self, command: F) -> Option<T>
    where
        F: FnOnce(Connection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let connection = self.connection.clone()?;
        let result = self.guarded(connection, command).await;
        metrics::gauge!(bff_telemetry::metrics::REDIS_BREAKER).set(self.breaker.state().as_gauge());
        result
    }

    async fn guarded<T, F, Fut>(&self, connection: Connection, command: F) -> Option<T>
    where
        F: FnOnce(Connection) -> Fut,
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
    fn one_server_or_a_cluster_not_both() {
        let cluster = |nodes: &[&str]| RedisConfig {
            url: None,
            cluster_nodes: nodes.iter().map(|n| (*n).to_owned()).collect(),
            ..RedisConfig::default()
        };
        assert!(cluster(&["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"]).problems().is_empty());
        let problems = cluster(&["redis://10.0.0.1:7000", "http://bff:s3cret@10.0.0.2:7000"]).problems();
        assert_eq!(problems, ["cluster_nodes: `http://bff:***@10.0.0.2:7000` is not a Redis URL"]);
        let both = RedisConfig {
            url: Some("redis://10.0.0.3:6379".to_owned()),
            ..cluster(&["redis://10.0.0.1:7000"])
        };
        assert_eq!(
            both.problems(),
            ["url and cluster_nodes are both set: one server or a cluster, not both"]
        );
    }

    #[test]
    fn a_bad_url_is_named_without_its_password() {
        let problems = with("http://bff:s3cret@redis:6379", None).problems();
        assert_eq!(problems, ["url `http://bff:***@redis:6379` is not a Redis URL"]);
    }
}
