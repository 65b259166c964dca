//! Which services exist, where they live, and how each is guarded.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use bff_resilience::{BreakerConfig, DependencyPolicy, HedgePolicy, RetryPolicy};
use reqwest::Url;
use serde::{Deserialize, Serialize};

/// The downstream services a BFF may call. The set is closed: egress goes
/// to these and nowhere else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    /// Profiles: name, tier, locale, segment.
    User,
    /// Product descriptions and images.
    Catalog,
    /// Current and list prices.
    Pricing,
    /// Stock levels.
    Inventory,
    /// Shopping carts.
    Cart,
    /// Personalised product suggestions.
    Recommendations,
    /// Active promotions per customer.
    Promotions,
    /// Delivery estimates.
    Shipping,
    /// Ratings and reviews.
    Reviews,
    /// Order history.
    Orders,
}

impl Service {
    /// Every service, in port order.
    pub const ALL: [Service; 10] = [
        Service::User,
        Service::Catalog,
        Service::Pricing,
        Service::Inventory,
        Service::Cart,
        Service::Recommendations,
        Service::Promotions,
        Service::Shipping,
        Service::Reviews,
        Service::Orders,
    ];

    /// The configuration key and log name of the service.
    pub const fn name(self) -> &'static str {
        match self {
            Service::User => "user",
            Service::Catalog => "catalog",
            Service::Pricing => "pricing",
            Service::Inventory => "inventory",
            Service::Cart => "cart",
            Service::Recommendations => "recommendations",
            Service::Promotions => "promotions",
            Service::Shipping => "shipping",
            Service::Reviews => "reviews",
            Service::Orders => "orders",
        }
    }

    /// The local development port (identity is 7000; services follow).
    pub const fn default_port(self) -> u16 {
        match self {
            Service::User => 7001,
            Service::Catalog => 7002,
            Service::Pricing => 7003,
            Service::Inventory => 7004,
            Service::Cart => 7005,
            Service::Recommendations => 7006,
            Service::Promotions => 7007,
            Service::Shipping => 7008,
            Service::Reviews => 7009,
            Service::Orders => 7010,
        }
    }

    /// The default per-call timeout: the 80–140 ms range of the design, from
    /// the service's typical latency (cheap lookups low, ranking high).
    pub const fn default_timeout_ms(self) -> u64 {
        match self {
            Service::Pricing | Service::Inventory => 80,
            Service::User | Service::Catalog | Service::Promotions | Service::Shipping => 100,
            Service::Cart | Service::Reviews => 120,
            Service::Recommendations | Service::Orders => 140,
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Service {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Service::ALL
            .into_iter()
            .find(|service| service.name() == s)
            .ok_or_else(|| format!("unknown service `{s}`"))
    }
}

/// Where one service lives and how calls to it are guarded.
///
/// Every field has a default, so that one key can be overridden alone
/// (`..._SERVICES__CATALOG__TIMEOUT_MS=100`): the BFF's defaults for the
/// services it calls are laid down first, and an entry for a service it
/// does not call is reported as such rather than as "missing field".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    /// Base URL, e.g. `http://127.0.0.1:7002`. Paths are appended to it.
    pub base_url: String,
    /// Longest a single call may take, in milliseconds.
    pub timeout_ms: u64,
    /// Calls allowed in flight at once (bulkhead size).
    pub max_concurrent: usize,
    /// Longest a call waits for a bulkhead slot when all are taken, in
    /// milliseconds (at most half of what is left of its deadline, too).
    pub max_wait_ms: u64,
    /// Circuit breaker settings.
    pub breaker: BreakerConfig,
    /// Scopes requested when exchanging the caller's token for this
    /// service: only what the BFF needs from it (least privilege).
    pub scopes: Vec<String>,
    /// Retries of reads (writes are never retried).
    pub retry: RetryPolicy,
    /// Hedging of reads (off unless enabled; on for recommendations by default).
    pub hedge: HedgePolicy,
    /// Most calls per second this BFF instance sends the service (every
    /// attempt, retries and hedges too; the service's capacity divided by
    /// the instances); 0 for none. Over it, a call is not sent and fails
    /// like a `429`: an optional part degrades, a critical one is `503`.
    pub max_rate_per_sec: u32,
}

impl Default for ServiceConfig {
    /// No base URL (which is a problem until one is set) and the default guard.
    fn default() -> Self {
        let policy = DependencyPolicy::default();
        ServiceConfig {
            base_url: String::new(),
            timeout_ms: policy.timeout_ms,
            max_concurrent: policy.max_concurrent,
            max_wait_ms: policy.max_wait_ms,
            breaker: policy.breaker,
            scopes: Vec::new(),
            retry: policy.retry,
            hedge: policy.hedge,
            max_rate_per_sec: policy.max_rate_per_sec,
        }
    }
}

impl ServiceConfig {
    /// The local-development settings of `service`.
    pub fn local(service: Service) -> Self {
        ServiceConfig {
            base_url: format!("http://127.0.0.1:{}", service.default_port()),
            timeout_ms: service.default_timeout_ms(),
            max_concurrent: DependencyPolicy::default().max_concurrent,
            max_wait_ms: DependencyPolicy::default().max_wait_ms,
            breaker: BreakerConfig::default(),
            scopes: vec![format!("{}:read", service.name())],
            retry: RetryPolicy::default(),
            // Ranking has the longest tail and the cheapest repeat: hedge it.
            hedge: HedgePolicy { enabled: service == Service::Recommendations, ..HedgePolicy::default() },
            max_rate_per_sec: 0,
        }
    }

    /// The resilience policy these settings describe.
    pub fn policy(&self) -> DependencyPolicy {
        DependencyPolicy {
            timeout_ms: self.timeout_ms,
            max_concurrent: self.max_concurrent,
            max_wait_ms: self.max_wait_ms,
            breaker: self.breaker.clone(),
            retry: self.retry.clone(),
            hedge: self.hedge.clone(),
            max_rate_per_sec: self.max_rate_per_sec,
        }
    }

    pub(crate) fn parsed_base_url(&self) -> Result<Url, String> {
        if self.base_url.is_empty() {
            return Err("base_url: must be set".to_owned());
        }
        let url = Url::parse(&self.base_url).map_err(|e| format!("base_url: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("base_url: scheme must be http or https".to_owned());
        }
        if url.cannot_be_a_base() || url.query().is_some() || url.fragment().is_some() {
            return Err("base_url: must be a plain base URL without query or fragment".to_owned());
        }
        Ok(url)
    }
}

/// Downstream settings of one BFF.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DownstreamConfig {
    /// TCP connect timeout, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Largest response body read from a service; larger is `invalid_data`.
    pub max_response_bytes: usize,
    /// The services, by name. This map is the egress allow-list: a service
    /// not in it is never called.
    pub services: BTreeMap<String, ServiceConfig>,
}

impl Default for DownstreamConfig {
    /// No services at all: egress is declared, never assumed.
    fn default() -> Self {
        DownstreamConfig {
            connect_timeout_ms: 250,
            max_response_bytes: 1024 * 1024,
            services: BTreeMap::new(),
        }
    }
}

impl DownstreamConfig {
    /// Local-development settings for a BFF that calls exactly `services`.
    pub fn for_services(services: &[Service]) -> Self {
        DownstreamConfig {
            services: services
                .iter()
                .map(|service| (service.name().to_owned(), ServiceConfig::local(*service)))
                .collect(),
            ..DownstreamConfig::default()
        }
    }

    /// Points `service` at `base_url` (tests and tools).
    pub fn set_base_url(&mut self, service: Service, base_url: impl Into<String>) {
        self.services
            .entry(service.name().to_owned())
            .or_insert_with(|| ServiceConfig::local(service))
            .base_url = base_url.into();
    }

    /// The settings of `service`, if configured.
    pub fn service(&self, service: Service) -> Option<&ServiceConfig> {
        self.services.get(service.name())
    }

    /// Problems that make this configuration unusable.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (name, config) in &self.services {
            if name.parse::<Service>().is_err() {
                let known: Vec<_> = Service::ALL.iter().map(|s| s.name()).collect();
                problems.push(format!("services.{name}: unknown service (known: {})", known.join(", ")));
            }
            if let Err(problem) = config.parsed_base_url() {
                problems.push(format!("services.{name}.{problem}"));
            }
            for problem in config.policy().problems() {
                problems.push(format!("services.{name}.{problem}"));
            }
        }
        if self.connect_timeout_ms == 0 {
            problems.push("connect_timeout_ms must be greater than 0".to_owned());
        }
        if self.max_response_bytes == 0 {
            problems.push("max_response_bytes must be greater than 0".to_owned());
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_defaults_are_valid() {
        assert_eq!(DownstreamConfig::for_services(&Service::ALL).problems(), Vec::<String>::new());
        assert!(DownstreamConfig::default().services.is_empty(), "no egress unless declared");
    }

    #[test]
    fn typos_and_bad_urls_are_reported() {
        let mut config = DownstreamConfig::for_services(&Service::ALL);
        config.services.insert("catalgo".to_owned(), ServiceConfig::local(Service::Catalog));
        config.set_base_url(Service::Pricing, "ftp://pricing");
        config.services.get_mut("cart").expect("cart").timeout_ms = 0;
        config.services.insert("orders".to_owned(), ServiceConfig::default());
        let problems = config.problems().join("\n");
        assert!(problems.contains("services.orders.base_url: must be set"), "{problems}");
        assert!(problems.contains("services.catalgo: unknown service"), "{problems}");
        assert!(problems.contains("services.pricing.base_url"), "{problems}");
        assert!(problems.contains("services.cart.timeout_ms"), "{problems}");
    }
}
