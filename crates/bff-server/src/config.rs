//! Layered, typed, validated configuration.
//!
//! Precedence, lowest first: the type's `Default` (which runs locally), the
//! TOML file named by `<PREFIX>_CONFIG` if set, then environment variables
//! `<PREFIX>__SECTION__KEY` (e.g. `MOBILE_BFF__SERVER__PORT=9000`). Config
//! structs use `deny_unknown_fields`, so a misspelt key is an error too.

use std::net::{IpAddr, Ipv4Addr};

use bff_telemetry::LogFormat;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Why configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A source could not be read or a value has the wrong type.
    #[error("configuration could not be read: {0}")]
    Load(#[from] Box<figment::Error>),
    /// Values were read but make no sense together.
    #[error("configuration is invalid:\n  - {}", .0.join("\n  - "))]
    Invalid(Vec<String>),
}

/// Implemented by configuration types: everything wrong with a value.
pub trait Validate {
    /// Each problem as `path.to.key: what is wrong`; empty when valid.
    fn problems(&self) -> Vec<String>;
}

/// Loads `T` for the binary whose environment prefix is `prefix`
/// (e.g. `MOBILE_BFF`).
pub fn load<T>(prefix: &str) -> Result<T, ConfigError>
where
    T: DeserializeOwned + Serialize + Default + Validate,
{
    let mut figment = Figment::from(Serialized::defaults(T::default()));
    if let Ok(path) = std::env::var(format!("{prefix}_CONFIG")) {
        figment = figment.merge(Toml::file_exact(path));
    }
    figment = figment.merge(Env::prefixed(&format!("{prefix}__")).split("__"));
    from_figment(figment)
}

/// Extracts and validates `T` from an assembled figment (tests build their own).
pub fn from_figment<T>(figment: Figment) -> Result<T, ConfigError>
where
    T: DeserializeOwned + Validate,
{
    let config: T = figment.extract().map_err(Box::new)?;
    let problems = config.problems();
    if problems.is_empty() { Ok(config) } else { Err(ConfigError::Invalid(problems)) }
}

/// The HTTP server settings every BFF has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to bind; `0.0.0.0` in containers.
    pub host: IpAddr,
    /// Port to bind.
    pub port: u16,
    /// Largest request body accepted, in bytes; larger is `413 request.too_large`.
    pub body_limit_bytes: usize,
    /// Requests handled at once; beyond it requests are shed with
    /// `503 overloaded` and `Retry-After` instead of queuing without bound.
    pub max_concurrent_requests: usize,
    /// How long in-flight requests may run after a shutdown signal.
    pub shutdown_grace_secs: u64,
    /// Log format: `pretty` locally, `json` in deployment.
    pub log_format: LogFormat,
}

impl ServerConfig {
    /// Local-development settings on `port`.
    pub fn local(port: u16) -> Self {
        ServerConfig { port, ..ServerConfig::default() }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 8080,
            body_limit_bytes: 64 * 1024,
            max_concurrent_requests: 512,
            shutdown_grace_secs: 20,
            log_format: LogFormat::Pretty,
        }
    }
}

impl Validate for ServerConfig {
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.body_limit_bytes == 0 {
            problems.push("server.body_limit_bytes must be greater than 0".to_owned());
        }
        if self.max_concurrent_requests == 0 {
            problems.push("server.max_concurrent_requests must be greater than 0".to_owned());
        }
        problems
    }
}
