//! Breakers, bulkheads and downstream rate limits, observed at the mocks.
//!
//! Tests of what an open breaker does use an eager one (no sustained time,
//! a flat open period, one probe) so that a few sequential requests open
//! it; when the default one opens is the business of the breaker's own
//! tests and of the fault scenarios (`bff-load`).

use std::time::Duration;

use bff_cache::CachePolicy;
use bff_downstream::{BreakerConfig, HedgePolicy};
use serde_json::json;
use services_mock::Service;

use crate::helpers::{spawn_app_with, status_of};

/// Opens after `failures` in a row, for `open_ms`, closes on one probe.
fn eager(failures: u32, open_ms: u64) -> BreakerConfig {
    BreakerConfig {
        consecutive_failures: failures,
        sustained_ms: 0,
        open_ms,
        max_open_ms: open_ms,
        jitter: 0.0,
        half_open_probes: 1,
        ..BreakerConfig::default()
    }
}

#[tokio::test]
async fn an_open_breaker_stops_calls_and_recovers_after_healing() {
    let app = spawn_app_with(|config| {
        let promotions = config.downstream.services.get_mut("promotions").expect("configured");
        promotions.breaker = eager(3, 1_000);
        // No retries: one call per request, so the count at the mock is exact.
        promotions.retry.max_attempts = 1;
    })
    .await;
    app.fleet.set_faults(Service::Promotions, json!({"errorRatio": 1.0})).await.expect("faults");

    for _ in 0..3 {
        let body = app.get("/v1/home").await.json();
        assert_eq!(status_of(&body, "promotions")["reasonCode"], "unavailable");
    }
    assert_eq!(app.fleet.requests(Service::Promotions).await.expect("stats"), 3);

    for _ in 0..5 {
        let reply = app.get("/v1/home").await;
        assert_eq!(reply.status, 200, "optional part: still a 200");
        let body = reply.json();
        assert_eq!(body["degraded"], true);
        assert_eq!(status_of(&body, "promotions")["reasonCode"], "circuit_open");
    }
    assert_eq!(app.fleet.requests(Service::Promotions).await.expect("stats"), 3, "open breaker: no calls");

    app.fleet.clear_faults(Service::Promotions).await.expect("heal");
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let body = app.get("/v1/home").await.json();
    assert_eq!(status_of(&body, "promotions"), &json!({"status": "ok"}), "recovered through a probe");
    assert_eq!(body["degraded"], false);
    assert_eq!(app.fleet.requests(Service::Promotions).await.expect("stats"), 4);
}

#[tokio::test]
async fn an_open_breaker_on_a_critical_part_is_a_503_with_retry_after() {
    let app = spawn_app_with(|config| {
        config.downstream.services.get_mut("cart").expect("configured").breaker = eager(1, 30_000);
    })
    .await;
    app.fleet.set_faults(Service::Cart, json!({"errorRatio": 1.0})).await.expect("faults");
    app.get("/v1/home").await.assert_problem(503, "dependency.unavailable");
    let reply = app.get("/v1/home").await;
    reply.assert_problem(503, "dependency.unavailable");
    let retry_after: u64 = reply.header("retry-after").and_then(|v| v.parse().ok()).expect("Retry-After");
    assert!((1..=30).contains(&retry_after), "Retry-After {retry_after} within the open period");
    assert_eq!(app.fleet.requests(Service::Cart).await.expect("stats"), 1);
}

#[tokio::test]
async fn a_critical_part_with_an_open_breaker_is_served_stale_from_its_cache_and_says_so() {
    let app = spawn_app_with(|config| {
        let catalog = config.downstream.services.get_mut("catalog").expect("configured");
        catalog.breaker = eager(1, 30_000);
        catalog.retry.max_attempts = 1;
        let short = CachePolicy { ttl_secs: 1, swr_secs: 0, keep_secs: 60, jitter: 0.0 };
        config.cache.policies.insert("product".to_owned(), short.into());
    })
    .await;
    let fresh = app.get("/v1/product-page/p-5").await.json();
    assert_eq!(status_of(&fresh, "product"), &json!({"status": "ok"}));
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    app.fleet.set_faults(Service::Catalog, json!({"errorRatio": 1.0})).await.expect("faults");

    // The catalog fails (and its breaker opens): the stale snippet is served.
    let body = app.get("/v1/product-page/p-5").await.json();
    assert_eq!(status_of(&body, "product")["reasonCode"], "unavailable");
    let reached = app.fleet.requests(Service::Catalog).await.expect("stats");

    let reply = app.get("/v1/product-page/p-5").await;
    assert_eq!(reply.status, 200, "a stale snippet beats a 503: {}", reply.text);
    let body = reply.json();
    assert_eq!(body["degraded"], true);
    let status = status_of(&body, "product");
    assert_eq!((&status["status"], &status["source"]), (&json!("fallback"), &json!("cache")), "{status}");
    assert_eq!(status["reasonCode"], "circuit_open");
    assert!(status["ageMs"].as_u64().is_some_and(|age| age >= 1_000), "{status}");
    assert_eq!(body["data"]["title"], fresh["data"]["title"], "the last good snippet");
    assert_eq!(app.fleet.requests(Service::Catalog).await.expect("stats"), reached, "open: not called");

    // With nothing cached, the critical part fails the screen as before.
    app.get("/v1/product-page/p-6").await.assert_problem(503, "dependency.unavailable");
}

#[tokio::test]
async fn a_full_bulkhead_fails_fast() {
    // Shipping: not cached, so concurrent requests really call it concurrently.
    let app = spawn_app_with(|config| {
        let shipping = config.downstream.services.get_mut("shipping").expect("configured");
        shipping.max_concurrent = 1;
        // No wait for a slot: this is about refusing (the wait is tested below).
        shipping.max_wait_ms = 0;
    })
    .await;
    app.fleet.set_faults(Service::Shipping, json!({"latencyMs": 500})).await.expect("faults");

    let (a, b, c, d) =
        tokio::join!(app.get("/v1/home"), app.get("/v1/home"), app.get("/v1/home"), app.get("/v1/home"));
    let mut full = 0;
    let mut ok = 0;
    for reply in [a, b, c, d] {
        assert_eq!(reply.status, 200, "{}", reply.text);
        let body = reply.json();
        match status_of(&body, "shipping")["status"].as_str() {
            Some("ok") => ok += 1,
            Some("error") => {
                assert_eq!(status_of(&body, "shipping")["reasonCode"], "bulkhead_full");
                full += 1;
            }
            other => panic!("unexpected status {other:?}"),
        }
    }
    assert!(full >= 1, "with one slot and four concurrent calls, some must be refused");
    let reached = app.fleet.requests(Service::Shipping).await.expect("stats");
    assert_eq!(reached, ok, "refused calls never reach the service");
    let max_in_flight = app.fleet.stats(Service::Shipping).await.expect("stats")["maxInFlight"].clone();
    assert_eq!(max_in_flight, 1, "the service never saw more than the bulkhead allows");
}

#[tokio::test]
async fn a_burst_waits_briefly_for_a_bulkhead_slot_instead_of_failing() {
    let app = spawn_app_with(|config| {
        let shipping = config.downstream.services.get_mut("shipping").expect("configured");
        shipping.max_concurrent = 1;
        shipping.max_wait_ms = 1_000;
    })
    .await;
    app.fleet.set_faults(Service::Shipping, json!({"latencyMs": 30})).await.expect("faults");
    let (a, b, c, d) =
        tokio::join!(app.get("/v1/home"), app.get("/v1/home"), app.get("/v1/home"), app.get("/v1/home"));
    for reply in [a, b, c, d] {
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(status_of(&reply.json(), "shipping"), &json!({"status": "ok"}), "waited its turn");
    }
    assert_eq!(app.fleet.requests(Service::Shipping).await.expect("stats"), 4);
    let max_in_flight = app.fleet.stats(Service::Shipping).await.expect("stats")["maxInFlight"].clone();
    assert_eq!(max_in_flight, 1, "one at a time, as the bulkhead says");
}

#[tokio::test]
async fn a_downstream_429_degrades_as_rate_limited() {
    let app = spawn_app_with(|_| {}).await;
    app.fleet
        .set_faults(Service::Promotions, json!({"rateLimitRatio": 1.0, "retryAfterS": 7}))
        .await
        .expect("faults");
    let body = app.get("/v1/home").await.json();
    assert_eq!(
        status_of(&body, "promotions"),
        &json!({"status": "fallback", "source": "default", "reasonCode": "rate_limited"})
    );
}

#[tokio::test]
async fn a_transient_failure_of_a_read_is_retried() {
    let app = spawn_app_with(|_| {}).await;
    app.fleet.set_faults(Service::Promotions, json!({"errorFirst": 1})).await.expect("faults");
    let body = app.get("/v1/home").await.json();
    assert_eq!(status_of(&body, "promotions"), &json!({"status": "ok"}), "the retry succeeded");
    assert_eq!(app.fleet.requests(Service::Promotions).await.expect("stats"), 2);
}

#[tokio::test]
async fn the_retry_budget_stops_retries_during_a_total_outage() {
    let app = spawn_app_with(|config| {
        let promotions = config.downstream.services.get_mut("promotions").expect("configured");
        // The breaker would stop the calls first; take it out of the picture.
        promotions.breaker =
            BreakerConfig { consecutive_failures: 10_000, minimum_calls: 10_000, ..BreakerConfig::default() };
        promotions.retry.budget_percent = 0.1;
        promotions.retry.budget_min_per_sec = 0;
    })
    .await;
    app.fleet.set_faults(Service::Promotions, json!({"errorRatio": 1.0})).await.expect("faults");
    for _ in 0..50 {
        assert_eq!(app.get("/v1/home").await.status, 200);
    }
    let calls = app.fleet.requests(Service::Promotions).await.expect("stats");
    assert!((50..=56).contains(&calls), "50 requests and at most ~10% retries, not 100 calls: {calls}");
}

#[tokio::test]
async fn a_429_cools_the_dependency_down_until_retry_after() {
    let app = spawn_app_with(|_| {}).await;
    app.fleet
        .set_faults(Service::Promotions, json!({"rateLimitRatio": 1.0, "retryAfterS": 30}))
        .await
        .expect("faults");
    for _ in 0..4 {
        let body = app.get("/v1/home").await.json();
        assert_eq!(status_of(&body, "promotions")["reasonCode"], "rate_limited");
    }
    assert_eq!(
        app.fleet.requests(Service::Promotions).await.expect("stats"),
        1,
        "no calls while cooling down"
    );
}

/// Sequential home requests with every 20th shipping call (5%) slow
/// (shipping is not cached, so every request calls it): how many come back
/// with shipping timed out, and how many calls the service saw.
async fn tail_of_shipping(hedge: bool) -> (usize, u64) {
    let app = spawn_app_with(|config| {
        let shipping = config.downstream.services.get_mut("shipping").expect("configured");
        shipping.timeout_ms = 300;
        // No retries: they would also rescue slow calls, and this is about hedging.
        shipping.retry.max_attempts = 1;
        shipping.hedge = HedgePolicy {
            enabled: hedge,
            min_samples: 20,
            min_delay_ms: 50,
            budget_percent: 0.1,
            ..HedgePolicy::default()
        };
    })
    .await;
    for _ in 0..25 {
        assert_eq!(app.get("/v1/home").await.status, 200, "warm-up");
    }
    app.fleet.set_faults(Service::Shipping, json!({"slowEvery": 20, "slowMs": 3_000})).await.expect("faults");
    app.fleet.reset_stats(Service::Shipping).await.expect("reset");
    let mut timeouts = 0;
    for _ in 0..100 {
        let body = app.get("/v1/home").await.json();
        if status_of(&body, "shipping")["reasonCode"] == "timeout" {
            timeouts += 1;
        }
    }
    (timeouts, app.fleet.requests(Service::Shipping).await.expect("stats"))
}

#[tokio::test]
async fn hedging_rescues_the_slow_tail_within_its_budget() {
    let (timeouts_without, calls_without) = tail_of_shipping(false).await;
    assert_eq!((timeouts_without, calls_without), (5, 100), "every 20th call is slow and times out");

    let (timeouts_with, calls_with) = tail_of_shipping(true).await;
    assert!(timeouts_with <= 1, "hedges answer for the slow calls: {timeouts_with} timeouts");
    let extra = calls_with - 100;
    assert!(extra >= 4, "the slow calls were hedged: {extra} extra calls");
    // The budget earns one hedge per ten calls (about 105 here, warm-up included).
    assert!(extra <= 11, "extra calls stay within the 10% hedge budget: {extra}");
}

/// The BFF never sends a service more than its configured rate: what is
/// over it is not sent, and degrades as the service's own 429 would.
#[tokio::test]
async fn calls_over_a_dependencys_outbound_rate_are_not_sent_and_degrade() {
    let app = spawn_app_with(|config| {
        let shipping = config.downstream.services.get_mut("shipping").expect("configured");
        shipping.max_rate_per_sec = 2;
        shipping.retry.max_attempts = 1;
    })
    .await;
    let started = std::time::Instant::now();
    let mut limited = 0;
    for _ in 0..10 {
        let reply = app.get("/v1/home").await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let shipping = status_of(&reply.json(), "shipping").clone();
        if shipping["reasonCode"] == "rate_limited" {
            assert_eq!(shipping["status"], "error", "{shipping}");
            limited += 1;
        }
    }
    let seconds = started.elapsed().as_secs() + 1;
    let sent = app.fleet.requests(Service::Shipping).await.expect("stats");
    // A burst of 2, then 2 a second.
    assert!(sent <= 2 + 2 * seconds, "{sent} calls in {seconds} s at 2 a second");
    assert_eq!(sent + limited, 10, "each request either called shipping or was throttled");
    assert!(limited >= 10 - (2 + 2 * seconds), "{limited} throttled");
}
