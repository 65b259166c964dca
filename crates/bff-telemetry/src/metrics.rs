//! Prometheus metrics: the catalogue, the process-wide recorder and its
//! text exposition.
//!
//! Recording goes through the [`metrics`] facade (`metrics::counter!` and
//! friends), so a crate that records (the resilience guard, the edge) needs
//! only that small crate; this module installs the one recorder
//! (`metrics-exporter-prometheus`) and renders what it holds for
//! `GET /metrics` on the BFF's admin listener (`bff_server::admin`).
//!
//! **Labels come from closed sets only**: route templates (`/v1/product-page/{id}`,
//! never the id), component and dependency names from code and
//! configuration, HTTP methods and statuses, problem and reason codes. No
//! label is ever taken from a request's values, so the number of series is
//! bounded by the code, not by traffic (a test sends 1,000 distinct ids and
//! counts series).
//!
//! | metric | type | labels | what it answers |
//! |---|---|---|---|
//! | `bff_http_requests_total` | counter | `method`, `route`, `status`, `code` | rate and errors by problem code (RED) |
//! | `bff_http_request_duration_seconds` | histogram | `method`, `route` | latency per route (RED) |
//! | `bff_http_requests_in_flight` | gauge | | saturation at the edge |
//! | `bff_http_requests_shed_total` | counter | | load shed (`503 overloaded`) |
//! | `bff_composed_responses_total` | counter | `route`, `degraded` | the degraded-rate SLI's denominator and numerator |
//! | `bff_component_results_total` | counter | `route`, `component`, `status`, `reason` | which component degrades, and why |
//! | `bff_downstream_calls_per_request` | histogram | `route` | the fan-out factor (attempts, retries and hedges included) |
//! | `bff_dependency_calls_total` | counter | `dependency`, `outcome` | a dependency's outcomes (`ok`, `timeout`, `unavailable`, `rate_limited`, `invalid_data`, `not_found`, `circuit_open`, `bulkhead_full`) |
//! | `bff_dependency_call_duration_seconds` | histogram | `dependency` | a guarded call's duration, retries and hedges included |
//! | `bff_dependency_breaker_state` | gauge | `dependency` | 0 closed, 1 half-open (a probe may pass), 2 open; read at each scrape |
//! | `bff_dependency_in_flight` | gauge | `dependency` | bulkhead occupancy |
//! | `bff_dependency_retries_total` | counter | `dependency`, `budget` | retries sent (`spent`) or refused by the budget (`refused`) |
//! | `bff_dependency_hedges_total` | counter | `dependency`, `budget` | hedges sent (`spent`) or not sent because the hedge budget was empty (`refused`) |
//! | `bff_cache_lookups_total` | counter | `component`, `result` | cached parts: `fresh`, `stale` (served while refreshing), `miss` (called), `stale_if_error`, `error` |
//! | `bff_cache_coalesced_waiters_total` | counter | `component` | misses that waited for another request's call instead of making their own |
//! | `bff_cache_rejected_entries_total` | counter | | Redis entries that failed authentication (treated as misses) |
//! | `bff_auth_token_verifications_total` | counter | `result` | callers' access tokens: `verified` in full, answered from the `cached` verification, or `refused` |
//! | `bff_token_exchanges_total` | counter | `result` | service tokens: `cached`, `exchanged`, `error` |
//! | `bff_ratelimit_decisions_total` | counter | `caller`, `decision`, `source` | quota checks per partner with a quota of its own (`default` for the rest): `allowed` or `limited`, decided in `redis` or `local` (fallback) |
//! | `bff_redis_breaker_state` | gauge | | Redis's breaker (when Redis is configured), read at each scrape: 0 closed, 1 half-open, 2 open |
//! | `bff_trace_spans_total` | counter | `outcome` | spans `exported`, `dropped` (export queue full) or lost in a failed export (`export_failed`) |

use std::sync::OnceLock;

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Requests answered, by method, route template, status and problem code.
pub const HTTP_REQUESTS: &str = "bff_http_requests_total";
/// Time to answer a request, by method and route template.
pub const HTTP_DURATION: &str = "bff_http_request_duration_seconds";
/// Requests being served now.
pub const HTTP_IN_FLIGHT: &str = "bff_http_requests_in_flight";
/// Requests refused at once because the BFF was at its concurrency limit.
pub const HTTP_SHED: &str = "bff_http_requests_shed_total";
/// Composed responses, by route and whether they were degraded.
pub const COMPOSED: &str = "bff_composed_responses_total";
/// Each component's outcome in a composed response.
pub const COMPONENT_RESULTS: &str = "bff_component_results_total";
/// Downstream attempts one request made (the fan-out factor).
pub const CALLS_PER_REQUEST: &str = "bff_downstream_calls_per_request";
/// Guarded calls to a dependency, by outcome.
pub const DEPENDENCY_CALLS: &str = "bff_dependency_calls_total";
/// Duration of a guarded call to a dependency.
pub const DEPENDENCY_DURATION: &str = "bff_dependency_call_duration_seconds";
/// A dependency's breaker: 0 closed, 1 half-open, 2 open.
pub const BREAKER_STATE: &str = "bff_dependency_breaker_state";
/// Calls to a dependency holding a bulkhead slot now.
pub const DEPENDENCY_IN_FLIGHT: &str = "bff_dependency_in_flight";
/// Retries to a dependency, spent or refused by the retry budget.
pub const RETRIES: &str = "bff_dependency_retries_total";
/// Hedges to a dependency, sent or refused by the hedge budget.
pub const HEDGES: &str = "bff_dependency_hedges_total";
/// Attempts not sent to a dependency: over its outbound rate limit.
pub const THROTTLED: &str = "bff_dependency_throttled_total";
/// Lookups of cached parts, by component and result.
pub const CACHE_LOOKUPS: &str = "bff_cache_lookups_total";
/// Cache misses that waited for another request's call.
pub const CACHE_COALESCED: &str = "bff_cache_coalesced_waiters_total";
/// Redis cache entries that failed authentication.
pub const CACHE_REJECTED: &str = "bff_cache_rejected_entries_total";
/// Service tokens asked for, by result.
pub const TOKEN_EXCHANGES: &str = "bff_token_exchanges_total";
/// Callers' access tokens checked, by result.
pub const TOKEN_VERIFICATIONS: &str = "bff_auth_token_verifications_total";
/// Rate-limit decisions, by decision and where they were made.
pub const RATE_LIMIT: &str = "bff_ratelimit_decisions_total";
/// Redis's breaker: 0 closed, 1 half-open, 2 open.
pub const REDIS_BREAKER: &str = "bff_redis_breaker_state";

/// Finished spans by what became of them (trace export on only).
pub const TRACE_SPANS: &str = "bff_trace_spans_total";

/// Buckets of every `_seconds` histogram: from 5 ms (a cache hit) to 10 s
/// (past every deadline), finest around the 100–500 ms screen budgets.
const SECONDS_BUCKETS: &[f64] =
    &[0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0];

/// Buckets of the fan-out histogram: a screen makes a handful of calls.
const CALLS_BUCKETS: &[f64] = &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0, 16.0, 24.0, 32.0];

/// One unit of a gauge held while it lives: incremented when made,
/// decremented when dropped, however the work ends (a cancelled future
/// too). For "in flight" gauges.
#[derive(Debug)]
pub struct Held(metrics::Gauge);

impl Held {
    /// Counts one in `gauge` until the guard is dropped.
    pub fn hold(gauge: metrics::Gauge) -> Self {
        gauge.increment(1.0);
        Held(gauge)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// The process's recorder, installed on first use. Every BFF in a process
/// shares it (tests run several; a deployed process runs one).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), SECONDS_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(CALLS_PER_REQUEST.to_owned()), CALLS_BUCKETS)
            });
        let builder = match builder {
            Ok(builder) => builder,
            // Only an empty bucket list fails, and ours are not empty.
            Err(error) => {
                tracing::error!(%error, "metric buckets refused; using summaries");
                PrometheusBuilder::new()
            }
        };
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics shows only this one's");
        }
        describe();
        handle
    })
}

/// Installs the recorder (idempotent). Call it before serving, so the
/// first requests are counted.
pub fn install() {
    handle();
}

/// Something that brings a gauge up to date; `false` once what it reads is
/// gone (it is then forgotten).
type Refresh = Box<dyn Fn() -> bool + Send + Sync>;

fn refreshers() -> &'static std::sync::Mutex<Vec<Refresh>> {
    static REFRESHERS: OnceLock<std::sync::Mutex<Vec<Refresh>>> = OnceLock::new();
    REFRESHERS.get_or_init(Default::default)
}

/// Registers `refresh`, run before every rendering, for gauges whose value
/// changes with time rather than with events (a breaker's open period
/// ending while nothing calls). It returns `false` once what it reads is
/// gone (a weak reference that no longer upgrades), and is then dropped.
pub fn refresh_before_render(refresh: impl Fn() -> bool + Send + Sync + 'static) {
    refreshers().lock().unwrap_or_else(|p| p.into_inner()).push(Box::new(refresh));
}

/// The exposition, in the Prometheus text format (version 0.0.4).
pub fn render() -> String {
    let handle = handle();
    refreshers().lock().unwrap_or_else(|p| p.into_inner()).retain(|refresh| refresh());
    // Drains histograms' recent samples into their buckets.
    handle.run_upkeep();
    handle.render()
}

fn describe() {
    describe_counter!(
        HTTP_REQUESTS,
        Unit::Count,
        "Requests answered, by method, route template, status and problem code."
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "Time to answer a request, by method and route template."
    );
    describe_gauge!(HTTP_IN_FLIGHT, Unit::Count, "Requests being served now.");
    describe_counter!(
        HTTP_SHED,
        Unit::Count,
        "Requests refused at once because the BFF was at its concurrency limit."
    );
    describe_counter!(COMPOSED, Unit::Count, "Composed responses, by route and whether they were degraded.");
    describe_counter!(
        COMPONENT_RESULTS,
        Unit::Count,
        "Each component's outcome in a composed response: status ok, fallback or error, and the reason."
    );
    describe_histogram!(
        CALLS_PER_REQUEST,
        Unit::Count,
        "Downstream attempts one request made, retries and hedges included."
    );
    describe_counter!(DEPENDENCY_CALLS, Unit::Count, "Guarded calls to a dependency, by outcome.");
    describe_histogram!(
        DEPENDENCY_DURATION,
        Unit::Seconds,
        "Duration of a guarded call to a dependency, retries and hedges included."
    );
    describe_gauge!(
        BREAKER_STATE,
        Unit::Count,
        "A dependency's circuit breaker, read at each scrape: 0 closed, 1 half-open (a probe may pass), 2 open."
    );
    describe_gauge!(DEPENDENCY_IN_FLIGHT, Unit::Count, "Calls to a dependency holding a bulkhead slot now.");
    describe_counter!(
        RETRIES,
        Unit::Count,
        "Retries to a dependency: spent, or refused by the retry budget."
    );
    describe_counter!(
        HEDGES,
        Unit::Count,
        "Hedges to a dependency: sent (spent), or not sent because the hedge budget was empty (refused)."
    );
    describe_counter!(
        CACHE_LOOKUPS,
        Unit::Count,
        "Lookups of cached parts: fresh, stale (served while refreshing), miss (called), stale_if_error, error."
    );
    describe_counter!(
        CACHE_COALESCED,
        Unit::Count,
        "Cache misses that waited for another request's call instead of making their own."
    );
    describe_counter!(
        CACHE_REJECTED,
        Unit::Count,
        "Redis cache entries that failed authentication, treated as misses."
    );
    describe_counter!(
        TOKEN_VERIFICATIONS,
        Unit::Count,
        "Callers' access tokens: verified in full, answered from a cached verification, or refused."
    );
    describe_counter!(TOKEN_EXCHANGES, Unit::Count, "Service tokens asked for: cached, exchanged or error.");
    describe_counter!(
        THROTTLED,
        Unit::Count,
        "Attempts not sent to a dependency because this BFF's outbound limit for it (max_rate_per_sec) was used up."
    );
    describe_counter!(
        RATE_LIMIT,
        Unit::Count,
        "Rate-limit decisions by caller (configured quotas; default for the rest): allowed or limited, decided in Redis or locally (fallback)."
    );
    describe_counter!(
        TRACE_SPANS,
        Unit::Count,
        "Finished spans: exported, dropped because the export queue was full, or lost in a failed export."
    );
    describe_gauge!(
        REDIS_BREAKER,
        Unit::Count,
        "Redis's circuit breaker (when Redis is configured), read at each scrape: 0 closed, 1 half-open, 2 open."
    );
}
