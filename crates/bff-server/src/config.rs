//! Layered, typed, validated configuration: the shared sections every BFF
//! has, the ones its features need, and its own.
//!
//! Precedence, lowest first: the BFF's defaults (which run locally), the
//! TOML file named by `<PREFIX>_CONFIG` if set, then environment variables
//! `<PREFIX>__SECTION__KEY` (e.g. `MOBILE_BFF__SERVER__PORT=9000`).
//!
//! A BFF has only the sections it uses ([`Config::sections`]): `server`,
//! `auth`, `downstream` and `compose` always; `redis` and `cache` when it
//! shares state or caches parts; `session` when its callers log in through
//! it; and its own section ([`Section`]), if it has one. A key outside those
//! (a typo, or a section this BFF does not have) stops start-up with a
//! message naming it, as does an invalid value. Because the defaults are
//! laid down first, one nested key can be overridden alone
//! (`..._CACHE__POLICIES__RECOMMENDATIONS__TTL_SECS=30`).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::net::{IpAddr, Ipv4Addr};

use bff_auth::AuthConfig;
use bff_cache::CacheConfig;
use bff_compose::ComposeConfig;
use bff_downstream::DownstreamConfig;
use bff_ratelimit::RateLimitConfig;
use bff_redis::RedisConfig;
use bff_telemetry::LogFormat;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::ShellError;
use crate::session::SessionConfig;

/// Implemented by configuration types: everything wrong with a value.
pub trait Validate {
    /// Each problem as `path.to.key: what is wrong`; empty when valid.
    fn problems(&self) -> Vec<String>;
}

/// A BFF's own configuration section (admin's `audit`, partner's
/// `rate_limit`): typed, with defaults that run locally, checked at
/// start-up. `()` is "no section of its own".
pub trait Section: Serialize + DeserializeOwned + Default + Clone + Debug + Send + Sync + 'static {
    /// The section's key: `audit` is `[audit]` in TOML and
    /// `ADMIN_BFF__AUDIT__...` in the environment. Empty for `()`.
    const KEY: &'static str;

    /// Everything wrong with the value, each as `key: what is wrong`
    /// (without the section's own key; the shell prefixes it).
    fn problems(&self) -> Vec<String> {
        Vec::new()
    }
}

impl Section for () {
    const KEY: &'static str = "";
}

/// The HTTP server settings every BFF has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to bind; `0.0.0.0` in containers.
    pub host: IpAddr,
    /// Port to bind.
    pub port: u16,
    /// Address of the admin listener (`GET /metrics`), never the public
    /// one: loopback by default; the pod's address where Prometheus scrapes.
    pub admin_host: IpAddr,
    /// Port of the admin listener: the BFF's port + 1000 by default (9081
    /// for mobile-bff); 0 serves no admin listener.
    pub admin_port: u16,
    /// Largest request body accepted, in bytes; larger is `413 request.too_large`.
    pub body_limit_bytes: usize,
    /// Requests handled at once; beyond it requests are shed with
    /// `503 overloaded` and `Retry-After` instead of queuing without bound.
    pub max_concurrent_requests: usize,
    /// How long in-flight requests may run once the BFF stops accepting
    /// (after the drain period).
    pub shutdown_grace_secs: u64,
    /// On a shutdown signal (SIGTERM), how long the BFF keeps serving while
    /// `/readyz` answers `503`, so that a load balancer takes it out before
    /// it stops accepting: at least the balancer's check interval × the
    /// failed checks it waits for (HAProxy `inter` × `fall`; a Kubernetes
    /// readiness probe's `periodSeconds` × `failureThreshold`, which the
    /// endpoints controller then propagates). 0 (the default, for a
    /// developer's Ctrl-C) stops accepting at once.
    pub drain_secs: u64,
    /// A new connection's first request head, and any later request's head
    /// once its first byte arrived, must be complete within this many
    /// milliseconds, or the connection is closed (slowloris).
    pub header_read_timeout_ms: u64,
    /// A kept-alive connection with nothing in flight is closed after this
    /// many milliseconds. Keep it above the load balancer's own idle timeout
    /// (60 s on most), so the balancer never reuses a connection we are closing.
    pub idle_timeout_ms: u64,
    /// A request must be answered (its body read and its answer written)
    /// within this many milliseconds, or its connection is closed: bounds
    /// bodies trickled a byte at a time. Far above any screen's deadline.
    pub request_timeout_ms: u64,
    /// Connections served at once. Past it, a few more answer the health
    /// endpoints only and the rest are closed on accept: memory stays
    /// bounded however many sockets a client opens.
    pub max_connections: usize,
    /// `Server-Timing` on composed answers: each component's duration and
    /// status (names only), for the browser's devtools. Off by default: it
    /// tells callers how the screen is made; the local stack turns it on
    /// for web and mobile.
    pub server_timing: bool,
    /// How long a write's answer is kept for replays of its
    /// `Idempotency-Key`, in seconds (24 h: a client retrying after a day
    /// has lost track, and should ask rather than replay).
    pub idempotency_key_ttl_secs: u64,
    /// How long a write holds its `Idempotency-Key` while it runs, in
    /// milliseconds: concurrent repeats get `409` meanwhile. If the
    /// instance dies mid-write, retries get `409` until it ends. Keep it
    /// above the longest write (the BFF's deadline).
    pub idempotency_lease_ms: u64,
    /// Log format: `pretty` locally, `json` in deployment.
    pub log_format: LogFormat,
    /// `development` or `production` (also `BFF_ENV`). Unset, a BFF that
    /// listens on a non-loopback address counts as deployed. Deployed, it
    /// refuses to start with the public development keys, secrets or issuer.
    pub environment: Option<Environment>,
    /// The region this instance serves (`eu-west-1`), when deployed in
    /// several: then every downstream service and Redis must be in it
    /// (ARCHITECTURE.md, "Regions": no cross-region call on the request
    /// path), which start-up checks by name — each URL's host is either
    /// cluster-local (no dot, or `.svc`/`.svc.cluster.local`) or has the
    /// region as one of its labels (`catalog.eu-west-1.example.internal`);
    /// loopback is everywhere.
    pub region: Option<String>,
}

/// Where a BFF runs, for the checks of [`ServerConfig::is_deployed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// A developer's machine or the local compose stack: development keys
    /// are allowed (with a warning).
    Development,
    /// Anything else: development keys stop start-up.
    Production,
}

impl ServerConfig {
    /// Local-development settings on `port`.
    pub fn local(port: u16) -> Self {
        ServerConfig { port, admin_port: port.saturating_add(1000), ..ServerConfig::default() }
    }

    /// Whether this BFF runs outside local development: `production`, or no
    /// environment said and a non-loopback address to listen on.
    pub fn is_deployed(&self) -> bool {
        match self.environment {
            Some(Environment::Production) => true,
            Some(Environment::Development) => false,
            None => !self.host.is_loopback(),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 8080,
            admin_host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            admin_port: 9080,
            body_limit_bytes: 64 * 1024,
            max_concurrent_requests: 512,
            shutdown_grace_secs: 20,
            drain_secs: 0,
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 75_000,
            request_timeout_ms: 30_000,
            max_connections: 4096,
            environment: None,
            region: None,
            server_timing: false,
            idempotency_key_ttl_secs: 86_400,
            idempotency_lease_ms: 10_000,
            log_format: LogFormat::Pretty,
        }
    }
}

impl Validate for ServerConfig {
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.body_limit_bytes == 0 {
            problems.push("body_limit_bytes must be greater than 0".to_owned());
        }
        if self.max_concurrent_requests == 0 {
            problems.push("max_concurrent_requests must be greater than 0".to_owned());
        }
        for (key, value) in [
            ("header_read_timeout_ms", self.header_read_timeout_ms),
            ("idle_timeout_ms", self.idle_timeout_ms),
            ("request_timeout_ms", self.request_timeout_ms),
            ("idempotency_key_ttl_secs", self.idempotency_key_ttl_secs),
            ("idempotency_lease_ms", self.idempotency_lease_ms),
        ] {
            if value == 0 {
                problems.push(format!("{key} must be greater than 0"));
            }
        }
        if self.admin_port != 0 && self.admin_port == self.port && self.admin_host == self.host {
            problems.push(format!(
                "admin_port {} is the public port: metrics are never served to clients",
                self.admin_port
            ));
        }
        if self.max_connections == 0 || u32::try_from(self.max_connections).is_err() {
            problems.push("max_connections must be between 1 and 4294967295".to_owned());
        }
        problems
    }
}

/// Which optional sections a BFF has; decided by the shell from what the
/// BFF declares (see [`crate::Bff`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Uses {
    /// Redis: shared state across instances (`redis`).
    pub redis: bool,
    /// The part cache (`cache`).
    pub cache: bool,
    /// Browser sessions (`session`).
    pub session: bool,
}

/// Everything a BFF can be configured with: the shared sections, the ones
/// its features need, and its own (`X`, `()` for none).
///
/// Every field exists whatever the BFF uses (so code and tests can read
/// them), but only [`Config::sections`] are read from files and the
/// environment, printed and validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Config<X = ()> {
    /// HTTP server.
    pub server: ServerConfig,
    /// Caller authentication and token exchange.
    pub auth: AuthConfig,
    /// Downstream services (the egress allow-list) and their guards.
    pub downstream: DownstreamConfig,
    /// Request deadline and per-component budgets.
    pub compose: ComposeConfig,
    /// Shared state across instances (when the BFF uses it).
    pub redis: RedisConfig,
    /// Lifetimes and encryption of cached parts (when the BFF caches).
    pub cache: CacheConfig,
    /// Browser sessions and login (session-mode BFFs).
    pub session: SessionConfig,
    /// Per-caller rate limits (every BFF): the quota per caller, per-caller
    /// overrides and what costly operations cost.
    pub rate_limit: RateLimitConfig,
    /// The BFF's own section.
    pub own: X,
    /// Which optional sections are in use.
    pub uses: Uses,
}

impl<X: Section> Config<X> {
    /// The keys of the sections this configuration has, in print order.
    pub fn sections(&self) -> Vec<&'static str> {
        let mut keys = vec!["server", "auth", "downstream", "compose", "rate_limit"];
        if self.uses.redis {
            keys.push("redis");
        }
        if self.uses.cache {
            keys.push("cache");
        }
        if self.uses.session {
            keys.push("session");
        }
        if !X::KEY.is_empty() {
            keys.push(X::KEY);
        }
        keys
    }

    /// The sections in use as one JSON object, secrets included (see
    /// [`Config::redacted`] for printing).
    pub fn to_json(&self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        for key in self.sections() {
            let value = match key {
                "server" => serde_json::to_value(&self.server),
                "auth" => serde_json::to_value(&self.auth),
                "downstream" => serde_json::to_value(&self.downstream),
                "compose" => serde_json::to_value(&self.compose),
                "rate_limit" => serde_json::to_value(&self.rate_limit),
                "redis" => serde_json::to_value(&self.redis),
                "cache" => serde_json::to_value(&self.cache),
                "session" => serde_json::to_value(&self.session),
                _ => serde_json::to_value(&self.own),
            };
            map.insert(key.to_owned(), value.unwrap_or(serde_json::Value::Null));
        }
        serde_json::Value::Object(map)
    }

    /// [`Config::to_json`] with every secret (`*secret`, `*_key`, each of
    /// `*_keys`, URLs' passwords) replaced by `<redacted>`: what `<bff>
    /// config` prints.
    pub fn redacted(&self) -> serde_json::Value {
        fn redact(value: &mut serde_json::Value) {
            match value {
                serde_json::Value::Object(map) => {
                    for (key, value) in map.iter_mut() {
                        let secret = key.ends_with("secret") || key.ends_with("_key");
                        // Lists of keys (the ones being rotated out).
                        let secrets = key.ends_with("_keys");
                        if secret && value.is_string() {
                            *value = serde_json::Value::String("<redacted>".to_owned());
                        } else if let (true, serde_json::Value::Array(items)) = (secrets, &mut *value) {
                            for item in items.iter_mut().filter(|item| item.is_string()) {
                                *item = serde_json::Value::String("<redacted>".to_owned());
                            }
                        } else {
                            redact(value);
                        }
                    }
                }
                serde_json::Value::Array(items) => items.iter_mut().for_each(redact),
                _ => {}
            }
        }
        let mut json = self.to_json();
        redact(&mut json);
        if let Some(url) =
            json.pointer_mut("/redis/url").filter(|url| url.as_str().is_some_and(|u| u.contains('@')))
        {
            *url = serde_json::Value::String("<redacted>".to_owned());
        }
        json
    }

    /// With `server.region` set: every downstream service and Redis URL
    /// that is not in that region, by name (see [`ServerConfig::region`]).
    fn region_problems(&self) -> Vec<String> {
        let Some(region) = self.server.region.as_deref() else { return Vec::new() };
        let mut urls: Vec<(String, &str)> = self
            .downstream
            .services
            .iter()
            .map(|(name, service)| {
                (format!("downstream.services.{name}.base_url"), service.base_url.as_str())
            })
            .collect();
        if self.uses.redis
            && let Some(url) = self.redis.url.as_deref()
        {
            urls.push(("redis.url".to_owned(), url));
        }
        urls.into_iter()
            .filter(|(_, url)| !in_region(url, region))
            .map(|(key, url)| {
                let host = reqwest::Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_owned));
                format!(
                    "{key}: {} is not in region {region} (no cross-region call on the request path: \
                     a cluster-local name, or one with `{region}` as a label)",
                    host.unwrap_or_else(|| "an unparsable URL".to_owned())
                )
            })
            .collect()
    }

    /// Everything wrong with the sections in use, each prefixed with its
    /// section (`auth.jwks_url ...`). `egress` is the BFF's egress list:
    /// `downstream.services` must configure exactly those.
    pub fn problems(&self, bff: &str, egress: &[&str]) -> Vec<String> {
        let prefixed = |section: &str, problems: Vec<String>| {
            problems.into_iter().map(move |p| format!("{section}.{p}")).collect::<Vec<_>>()
        };
        let mut problems = prefixed("server", self.server.problems());
        problems.extend(prefixed("auth", self.auth.problems()));
        problems.extend(prefixed("downstream", self.downstream.problems()));
        for name in self.downstream.services.keys() {
            if !egress.contains(&name.as_str()) {
                problems.push(format!(
                    "downstream.services.{name}: {bff} does not call {name} (its egress list: {})",
                    egress.join(", ")
                ));
            }
        }
        for name in egress {
            if !self.downstream.services.contains_key(*name) {
                problems.push(format!("downstream.services.{name}: missing (on {bff}'s egress list)"));
            }
        }
        problems.extend(self.region_problems());
        problems.extend(prefixed("compose", self.compose.problems()));
        problems.extend(prefixed("rate_limit", self.rate_limit.problems()));
        if self.uses.redis {
            problems.extend(prefixed("redis", self.redis.problems()));
        }
        if self.uses.cache {
            problems.extend(prefixed("cache", self.cache.problems()));
        }
        if self.uses.session {
            problems.extend(prefixed("session", self.session.problems()));
        }
        if !X::KEY.is_empty() {
            problems.extend(prefixed(X::KEY, self.own.problems()));
        }
        problems
    }

    /// The defaults as a figment: only the sections in use.
    pub fn figment(&self) -> Figment {
        let mut figment = Figment::new()
            .merge(Serialized::default("server", &self.server))
            .merge(Serialized::default("auth", &self.auth))
            .merge(Serialized::default("downstream", &self.downstream))
            .merge(Serialized::default("compose", &self.compose))
            .merge(Serialized::default("rate_limit", &self.rate_limit));
        if self.uses.redis {
            figment = figment.merge(Serialized::default("redis", &self.redis));
        }
        if self.uses.cache {
            figment = figment.merge(Serialized::default("cache", &self.cache));
        }
        if self.uses.session {
            figment = figment.merge(Serialized::default("session", &self.session));
        }
        if !X::KEY.is_empty() {
            figment = figment.merge(Serialized::default(X::KEY, &self.own));
        }
        figment
    }

    /// This configuration with `figment`'s values laid over it: the
    /// sections in use are read back from the merged figment, a key that is
    /// not one of them is an error.
    pub fn merged(&self, figment: Figment) -> Result<Config<X>, ShellError> {
        let known = self.sections();
        let top: BTreeMap<String, figment::value::Value> =
            figment.extract().map_err(|e| ShellError::ConfigUnreadable(Box::new(e)))?;
        if let Some(key) = top.keys().find(|key| !known.contains(&key.as_str())) {
            return Err(ShellError::UnknownSection { key: key.clone(), known });
        }
        fn read<T: DeserializeOwned + Clone>(
            figment: &Figment,
            key: &str,
            fallback: &T,
        ) -> Result<T, ShellError> {
            if figment.find_value(key).is_err() {
                return Ok(fallback.clone());
            }
            figment.extract_inner(key).map_err(|e| ShellError::ConfigUnreadable(Box::new(e)))
        }
        Ok(Config {
            server: read(&figment, "server", &self.server)?,
            auth: read(&figment, "auth", &self.auth)?,
            downstream: read(&figment, "downstream", &self.downstream)?,
            compose: read(&figment, "compose", &self.compose)?,
            rate_limit: read(&figment, "rate_limit", &self.rate_limit)?,
            redis: if self.uses.redis { read(&figment, "redis", &self.redis)? } else { self.redis.clone() },
            cache: if self.uses.cache { read(&figment, "cache", &self.cache)? } else { self.cache.clone() },
            session: if self.uses.session {
                read(&figment, "session", &self.session)?
            } else {
                self.session.clone()
            },
            own: if X::KEY.is_empty() { self.own.clone() } else { read(&figment, X::KEY, &self.own)? },
            uses: self.uses,
        })
    }

    /// Loads the configuration over these defaults: the TOML file named by
    /// `<prefix>_CONFIG`, then `<prefix>__SECTION__KEY` variables.
    pub fn load(&self, prefix: &str) -> Result<Config<X>, ShellError> {
        let mut figment = self.figment();
        if let Ok(path) = std::env::var(format!("{prefix}_CONFIG")) {
            figment = figment.merge(Toml::file_exact(path));
        }
        figment = figment.merge(Env::prefixed(&format!("{prefix}__")).split("__"));
        self.merged(figment)
    }
}

/// Whether `url`'s host is loopback, cluster-local or names `region` as one of its labels.
fn in_region(url: &str, region: &str) -> bool {
    let Some(host) = reqwest::Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_ascii_lowercase))
    else {
        return false;
    };
    // This machine (a sidecar, the local stack) and this cluster are in every region they serve.
    let loopback = host == "localhost"
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
        || host.trim_matches(['[', ']']).parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    let cluster_local = !host.contains('.') || host.ends_with(".svc") || host.ends_with(".svc.cluster.local");
    loopback || cluster_local || host.split('.').any(|label| label == region.to_ascii_lowercase())
}

#[cfg(test)]
mod region_tests {
    use super::in_region;

    #[test]
    fn a_url_is_in_the_region_it_names_or_in_the_cluster() {
        for url in [
            "http://catalog",
            "http://127.0.0.1:7002",
            "http://[::1]:7002",
            "http://catalog.shop.svc.cluster.local:8080",
            "https://catalog.eu-west-1.example.internal",
            "rediss://bff:secret@redis.eu-west-1.cache.example.com:6379",
        ] {
            assert!(in_region(url, "eu-west-1"), "{url}");
        }
        for url in [
            "https://catalog.us-east-1.example.internal",
            "https://catalog.example.com",
            "https://eu-west-1-catalog.example.com",
            "not a url",
        ] {
            assert!(!in_region(url, "eu-west-1"), "{url}");
        }
    }
}
