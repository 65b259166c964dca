//! Cached parts of the home screen (recommendations and promotions, per
//! segment) over real HTTP, with a real Redis where it matters.

use std::time::{Duration, Instant};

use bff_cache::CachePolicy;
use bff_testkit::RedisServer;
use serde_json::json;
use services_mock::Service;

use crate::helpers::{spawn_app_with, status_of};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_requests_for_a_cold_key_make_one_downstream_call() {
    let redis = RedisServer::start();
    let url = redis.url();
    let app = spawn_app_with(|config| {
        config.redis.url = Some(url);
        // Room and time for all 1,000 at once (5,000 downstream calls through
        // one debug-built process on 2 cores): this is about the cache, not
        // about bulkheads or budgets.
        config.server.max_concurrent_requests = 2_000;
        config.compose.request_deadline_ms = 60_000;
        config.auth.exchange.timeout_ms = 30_000;
        // Opening 5,000 loopback connections at once is slow here: slow
        // connects must not trip breakers in a test about the cache.
        config.downstream.connect_timeout_ms = 30_000;
        for service in config.downstream.services.values_mut() {
            service.max_concurrent = 2_000;
            service.timeout_ms = 55_000;
            service.breaker.consecutive_failures = 10_000;
            service.breaker.minimum_calls = 10_000;
        }
    })
    .await;
    let token = app.token("u-1");
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..1_000 {
        let (http, url, token) = (app.http.clone(), format!("{}/v1/home", app.base), token.clone());
        requests.spawn(async move {
            let response = http.get(url).bearer_auth(token).send().await?;
            Ok::<_, reqwest::Error>(bff_testkit::Reply::read(response).await)
        });
    }
    while let Some(reply) = requests.join_next().await {
        let reply = reply.expect("task").expect("response");
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    assert_eq!(app.fleet.requests(Service::Recommendations).await.expect("stats"), 1);
    assert_eq!(app.fleet.requests(Service::Promotions).await.expect("stats"), 1);
    assert_eq!(app.fleet.requests(Service::Cart).await.expect("stats"), 1_000, "carts are never cached");
}

#[tokio::test]
async fn a_failing_dependency_is_answered_from_the_cache_with_its_age() {
    let app = spawn_app_with(|config| {
        let short = CachePolicy { ttl_secs: 1, swr_secs: 0, keep_secs: 60, jitter: 0.0 };
        config.cache.policies.insert("recommendations".to_owned(), short.into());
    })
    .await;
    let fresh = app.get("/v1/home").await.json();
    assert_eq!(status_of(&fresh, "recommendations"), &json!({"status": "ok"}));
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    app.fleet.set_faults(Service::Recommendations, json!({"errorRatio": 1.0})).await.expect("faults");

    let body = app.get("/v1/home").await.json();
    assert_eq!(body["degraded"], true);
    let status = status_of(&body, "recommendations");
    assert_eq!(status["status"], "fallback");
    assert_eq!(status["source"], "cache");
    assert_eq!(status["reasonCode"], "unavailable");
    assert!(status["ageMs"].as_u64().is_some_and(|age| age >= 1_000), "{status}");
    assert_eq!(body["data"]["recommendations"], fresh["data"]["recommendations"], "the last good value");
}

#[tokio::test]
async fn redis_killed_or_frozen_mid_run_fails_no_request() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    let app = spawn_app_with(|config| {
        config.redis.url = Some(url);
        // Short lifetimes, so requests keep going to Redis and the services.
        let short = CachePolicy { ttl_secs: 1, swr_secs: 0, keep_secs: 2, jitter: 0.0 };
        config.cache.policies.insert("recommendations".to_owned(), short.into());
        config.cache.policies.insert("promotions".to_owned(), short.into());
    })
    .await;
    for phase in ["healthy", "frozen", "killed"] {
        match phase {
            "frozen" => redis.pause(),
            "killed" => redis.kill(),
            _ => {}
        }
        for _ in 0..15 {
            let started = Instant::now();
            let reply = app.get("/v1/home").await;
            assert_eq!(reply.status, 200, "{phase}: {}", reply.text);
            assert_eq!(reply.json()["degraded"], false, "{phase}: {}", reply.text);
            // Not a latency measurement: a hung Redis would hold requests for ever.
            assert!(started.elapsed() < Duration::from_secs(2), "{phase}: {:?}", started.elapsed());
        }
    }
}

#[tokio::test]
async fn a_cached_critical_part_is_served_stale_when_its_service_fails() {
    let app = spawn_app_with(|config| {
        let short = CachePolicy { ttl_secs: 1, swr_secs: 0, keep_secs: 60, jitter: 0.0 };
        config.cache.policies.insert("product".to_owned(), short.into());
    })
    .await;
    assert_eq!(app.get("/v1/product-page/p-5").await.status, 200);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    app.fleet.set_faults(Service::Catalog, json!({"errorRatio": 1.0})).await.expect("faults");

    let reply = app.get("/v1/product-page/p-5").await;
    assert_eq!(reply.status, 200, "the last good product instead of a 503: {}", reply.text);
    let body = reply.json();
    assert_eq!(status_of(&body, "product")["source"], "cache");
    assert_eq!(body["data"]["title"], "Coastal Headphones");

    // Never cached, so a failing catalog still fails the page.
    app.get("/v1/product-page/p-6").await.assert_problem(503, "dependency.unavailable");
}
