//! Cluster-wide rate limiting.
//!
//! The algorithm is GCRA (the generic cell rate algorithm: one "theoretical
//! arrival time" per key), run **atomically in Redis** by a small Lua script
//! that reads Redis' own clock, so every BFF instance shares one quota per
//! key whatever their clocks say. When Redis is not configured or does not
//! answer in time, each instance falls back to the same GCRA locally
//! (`governor`): a Redis outage then lets the cluster through up to N× the
//! quota for N instances — chosen over refusing every caller, and logged.
//!
//! [`Decision::headers`] gives the IETF `RateLimit-Policy` / `RateLimit`
//! fields (draft-ietf-httpapi-ratelimit-headers, structured-field syntax)
//! and `Retry-After` for a refusal.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, header};
use bff_redis::SharedRedis;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use serde::{Deserialize, Serialize};

/// A quota: so many requests per window (bursts up to the whole quota).
/// Both fields have defaults (60 per 60 s), so an override may set one alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuotaConfig {
    /// Requests allowed per window.
    pub requests: u32,
    /// The window, in seconds.
    pub window_secs: u64,
}

impl Default for QuotaConfig {
    fn default() -> Self {
        QuotaConfig { requests: 60, window_secs: 60 }
    }
}

/// Rate limits of one BFF, keyed by caller (e.g. partner id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// The policy's name, shown in the headers.
    pub policy: String,
    /// The quota of callers without an override.
    pub default: QuotaConfig,
    /// Per-caller quotas, by caller id.
    pub overrides: BTreeMap<String, QuotaConfig>,
    /// What an operation costs, in requests of the quota, by `METHOD
    /// /path/template` (`"POST /partner/v1/products:batchGet" = 10`);
    /// every other operation costs 1.
    pub costs: BTreeMap<String, u32>,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            policy: "default".to_owned(),
            default: QuotaConfig { requests: 60, window_secs: 60 },
            overrides: BTreeMap::new(),
            costs: BTreeMap::new(),
        }
    }
}

impl RateLimitConfig {
    /// Problems that make this configuration unusable.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let quotas = std::iter::once(("default".to_owned(), &self.default))
            .chain(self.overrides.iter().map(|(k, q)| (format!("overrides.{k}"), q)));
        for (name, quota) in quotas {
            if quota.requests == 0 || quota.window_secs == 0 {
                problems.push(format!("{name}: requests and window_secs must be greater than 0"));
            }
        }
        for (operation, cost) in &self.costs {
            if *cost == 0 {
                problems.push(format!("costs.{operation}: a cost must be at least 1"));
            }
        }
        if self.policy.is_empty()
            || !self.policy.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            problems.push("policy must be a plain name (letters, digits, '-', '_')".to_owned());
        }
        problems
    }

    /// What `method path` (a route template) costs: its configured cost, else 1.
    pub fn cost_of(&self, method: &str, path: &str) -> u32 {
        if self.costs.is_empty() {
            return 1;
        }
        self.costs.get(&format!("{method} {path}")).copied().unwrap_or(1)
    }

    fn quota_for(&self, key: &str) -> QuotaConfig {
        self.overrides.get(key).copied().unwrap_or(self.default)
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The policy name.
    pub policy: String,
    /// Requests per window.
    pub limit: u32,
    /// The window.
    pub window: Duration,
    /// Requests left right now.
    pub remaining: u32,
    /// Until the quota is whole again.
    pub reset: Duration,
    /// For a refusal: when the next request would be allowed.
    pub retry_after: Option<Duration>,
    /// Whether the decision came from the shared (Redis) counter.
    pub shared: bool,
}

fn ceil_secs(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

impl Decision {
    /// `RateLimit-Policy`, `RateLimit` and, for a refusal, `Retry-After`.
    pub fn headers(&self) -> Vec<(HeaderName, HeaderValue)> {
        let mut headers = Vec::with_capacity(3);
        let policy = format!("\"{}\";q={};w={}", self.policy, self.limit, self.window.as_secs());
        let state = format!("\"{}\";r={};t={}", self.policy, self.remaining, ceil_secs(self.reset));
        for (name, value) in [("ratelimit-policy", policy), ("ratelimit", state)] {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.push((HeaderName::from_static(name), value));
            }
        }
        if let Some(after) = self.retry_after {
            headers.push((header::RETRY_AFTER, HeaderValue::from(ceil_secs(after).max(1))));
        }
        headers
    }
}

/// GCRA in one atomic step. KEYS[1]: the key. ARGV[1]: emission interval
/// (window / requests) in µs; ARGV[2]: tolerance (the window) in µs;
/// ARGV[3]: the request's cost, in requests.
/// Returns {allowed, retry_after_us, tat_minus_now_us}.
const GCRA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local emission = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + emission * tonumber(ARGV[3] or 1)
local allow_at = new_tat - tolerance
if now < allow_at then
  return {0, allow_at - now, tat - now}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, 0, new_tat - now}
"#;

type Local = RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// A rate limiter shared across instances through Redis.
pub struct Limiter {
    config: RateLimitConfig,
    redis: SharedRedis,
    script: bff_redis::redis::Script,
    local_default: Local,
    local_overrides: BTreeMap<String, Local>,
    clock: DefaultClock,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter").field("config", &self.config).field("redis", &self.redis).finish()
    }
}

fn local(quota: QuotaConfig) -> Local {
    let requests = NonZeroU32::new(quota.requests).unwrap_or(NonZeroU32::MIN);
    let period = Duration::from_secs(quota.window_secs.max(1)) / requests.get();
    let quota =
        Quota::with_period(period).unwrap_or_else(|| Quota::per_second(requests)).allow_burst(requests);
    RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>()
}

impl Limiter {
    /// A limiter with `config`, sharing counters through `redis`.
    pub fn new(config: RateLimitConfig, redis: SharedRedis) -> Self {
        let local_default = local(config.default);
        let local_overrides =
            config.overrides.iter().map(|(key, quota)| (key.clone(), local(*quota))).collect();
        Limiter {
            config,
            redis,
            script: bff_redis::redis::Script::new(GCRA),
            local_default,
            local_overrides,
            clock: DefaultClock::default(),
        }
    }

    /// The configuration (quotas and costs).
    pub fn config(&self) -> &RateLimitConfig {
        &self.config
    }

    /// Counts one request of `key` and says whether it may proceed.
    pub async fn check(&self, key: &str) -> Decision {
        self.check_cost(key, 1).await
    }

    /// Counts a request of `key` that costs `cost` requests of its quota
    /// (a batch read costs more than a single one) and says whether it may
    /// proceed. A refused request takes nothing from the quota.
    pub async fn check_cost(&self, key: &str, cost: u32) -> Decision {
        let decision = self.decide(key, cost.max(1)).await;
        let verdict = if decision.allowed { "allowed" } else { "limited" };
        let source = if decision.shared { "redis" } else { "local" };
        // Callers with a quota of their own (configured: a closed set) are
        // labelled by id; everyone on the default quota shares `default`.
        let caller = match self.config.overrides.get_key_value(key) {
            Some((configured, _)) => configured.clone(),
            None => "default".to_owned(),
        };
        metrics::counter!(
            bff_telemetry::metrics::RATE_LIMIT,
            "caller" => caller,
            "decision" => verdict,
            "source" => source
        )
        .increment(1);
        decision
    }

    async fn decide(&self, key: &str, cost: u32) -> Decision {
        let quota = self.config.quota_for(key);
        // A cost above a caller's whole quota (a small plan) takes the
        // whole quota rather than never being allowed.
        let cost = cost.min(quota.requests.max(1));
        let window = Duration::from_secs(quota.window_secs.max(1));
        let emission = window / quota.requests.max(1);
        let shared: Option<(i64, i64, i64)> = if self.redis.is_configured() {
            let redis_key = format!("bff:ratelimit:{}:{key}", self.config.policy);
            self.redis
                .run(|mut connection| async move {
                    self.script
                        .key(&redis_key)
                        .arg(emission.as_micros() as u64)
                        .arg(window.as_micros() as u64)
                        .arg(cost)
                        .invoke_async(&mut connection)
                        .await
                })
                .await
        } else {
            None
        };
        let micros = |us: i64| Duration::from_micros(us.max(0) as u64);
        match shared {
            Some((allowed, retry_after_us, tat_us)) => {
                let used = micros(tat_us);
                let remaining = window.saturating_sub(used).as_micros() / emission.as_micros().max(1);
                Decision {
                    allowed: allowed == 1,
                    policy: self.config.policy.clone(),
                    limit: quota.requests,
                    window,
                    remaining: remaining.min(u128::from(quota.requests)) as u32,
                    reset: used,
                    retry_after: (allowed != 1).then(|| micros(retry_after_us)),
                    shared: true,
                }
            }
            None => self.check_locally(key, cost, quota, window, emission),
        }
    }

    fn check_locally(
        &self,
        key: &str,
        cost: u32,
        quota: QuotaConfig,
        window: Duration,
        emission: Duration,
    ) -> Decision {
        if self.redis.is_configured() {
            tracing::debug!("Redis unavailable: rate limiting per instance");
        }
        let limiter = self.local_overrides.get(key).unwrap_or(&self.local_default);
        let base = Decision {
            allowed: true,
            policy: self.config.policy.clone(),
            limit: quota.requests,
            window,
            remaining: 0,
            reset: window,
            retry_after: None,
            shared: false,
        };
        let cells = NonZeroU32::new(cost).unwrap_or(NonZeroU32::MIN);
        let checked = match limiter.check_key_n(&key.to_owned(), cells) {
            Ok(checked) => checked,
            // More than a whole quota: it could never pass (validation
            // refuses such a cost; refuse the request rather than panic).
            Err(_) => return Decision { allowed: false, retry_after: Some(window), ..base },
        };
        match checked {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                Decision {
                    remaining,
                    reset: emission * (quota.requests - remaining.min(quota.requests)),
                    ..base
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                Decision { allowed: false, retry_after: Some(wait), ..base }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(requests: u32) -> RateLimitConfig {
        RateLimitConfig {
            policy: "partner".to_owned(),
            default: QuotaConfig { requests, window_secs: 60 },
            ..RateLimitConfig::default()
        }
    }

    #[tokio::test]
    async fn without_redis_the_local_gcra_limits_each_key() {
        let limiter = Limiter::new(config(3), SharedRedis::disabled());
        let mut remaining = Vec::new();
        for _ in 0..3 {
            let decision = limiter.check("acme").await;
            assert!(decision.allowed && !decision.shared);
            remaining.push(decision.remaining);
        }
        assert_eq!(remaining, [2, 1, 0]);
        let refused = limiter.check("acme").await;
        assert!(!refused.allowed);
        assert!(refused.retry_after.is_some_and(|d| d > Duration::from_secs(10)));
        assert!(limiter.check("globex").await.allowed, "another key has its own quota");
    }

    #[tokio::test]
    async fn a_costly_request_takes_its_cost_from_the_quota() {
        let limiter = Limiter::new(config(10), SharedRedis::disabled());
        let batch = limiter.check_cost("acme", 4).await;
        assert!(batch.allowed);
        assert_eq!(batch.remaining, 6);
        assert!(limiter.check_cost("acme", 4).await.allowed);
        let refused = limiter.check_cost("acme", 4).await;
        assert!(!refused.allowed, "2 left, 4 asked");
        assert!(limiter.check("acme").await.allowed, "a refusal took nothing: 2 are still there");
        let small = Limiter::new(config(3), SharedRedis::disabled());
        let whole = small.check_cost("acme", 10).await;
        assert!(whole.allowed && whole.remaining == 0, "a cost above the quota takes all of it");
    }

    #[test]
    fn a_cost_is_looked_up_by_operation_and_checked_against_the_quotas() {
        let mut config = config(10);
        config.costs.insert("POST /partner/v1/products:batchGet".to_owned(), 5);
        assert_eq!(config.cost_of("POST", "/partner/v1/products:batchGet"), 5);
        assert_eq!(config.cost_of("GET", "/partner/v1/products/{id}"), 1);
        assert!(config.problems().is_empty());
        config.costs.insert("POST /x".to_owned(), 0);
        assert!(config.problems().iter().any(|p| p.contains("at least 1")));
    }

    #[test]
    fn headers_follow_the_ietf_draft_syntax() {
        let decision = Decision {
            allowed: false,
            policy: "partner".to_owned(),
            limit: 100,
            window: Duration::from_secs(60),
            remaining: 0,
            reset: Duration::from_millis(59_500),
            retry_after: Some(Duration::from_millis(600)),
            shared: true,
        };
        let headers: Vec<(String, String)> = decision
            .headers()
            .into_iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or_default().to_owned()))
            .collect();
        assert_eq!(
            headers,
            [
                ("ratelimit-policy".to_owned(), "\"partner\";q=100;w=60".to_owned()),
                ("ratelimit".to_owned(), "\"partner\";r=0;t=60".to_owned()),
                ("retry-after".to_owned(), "1".to_owned()),
            ]
        );
    }

    #[test]
    fn zero_quotas_are_refused() {
        let mut bad = config(0);
        bad.overrides.insert("x".to_owned(), QuotaConfig { requests: 1, window_secs: 0 });
        assert_eq!(bad.problems().len(), 2);
    }
}
