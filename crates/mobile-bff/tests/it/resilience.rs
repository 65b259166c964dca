//! Breakers, bulkheads and downstream rate limits, observed at the mocks.

use bff_downstream::BreakerConfig;
use serde_json::json;
use services_mock::Service;

use crate::helpers::{spawn_app_with, status_of};

#[tokio::test]
async fn an_open_breaker_stops_calls_and_recovers_after_healing() {
    let app = spawn_app_with(|config| {
        config.downstream.services.get_mut("promotions").expect("configured").breaker =
            BreakerConfig { consecutive_failures: 3, open_ms: 1_000, ..BreakerConfig::default() };
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
        config.downstream.services.get_mut("cart").expect("configured").breaker =
            BreakerConfig { consecutive_failures: 1, open_ms: 30_000, ..BreakerConfig::default() };
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
async fn a_full_bulkhead_fails_fast() {
    let app = spawn_app_with(|config| {
        config.downstream.services.get_mut("recommendations").expect("configured").max_concurrent = 1;
    })
    .await;
    app.fleet.set_faults(Service::Recommendations, json!({"latencyMs": 500})).await.expect("faults");

    let (a, b, c, d) =
        tokio::join!(app.get("/v1/home"), app.get("/v1/home"), app.get("/v1/home"), app.get("/v1/home"));
    let mut full = 0;
    let mut ok = 0;
    for reply in [a, b, c, d] {
        assert_eq!(reply.status, 200, "{}", reply.text);
        let body = reply.json();
        match status_of(&body, "recommendations")["status"].as_str() {
            Some("ok") => ok += 1,
            Some("fallback") => {
                assert_eq!(status_of(&body, "recommendations")["reasonCode"], "bulkhead_full");
                full += 1;
            }
            other => panic!("unexpected status {other:?}"),
        }
    }
    assert!(full >= 1, "with one slot and four concurrent calls, some must be refused");
    let reached = app.fleet.requests(Service::Recommendations).await.expect("stats");
    assert_eq!(reached, ok, "refused calls never reach the service");
    let max_in_flight =
        app.fleet.stats(Service::Recommendations).await.expect("stats")["maxInFlight"].clone();
    assert_eq!(max_in_flight, 1, "the service never saw more than the bulkhead allows");
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
