//! Per-partner quotas, shared through a real Redis, with the local fallback.

use std::time::{Duration, Instant};

use bff_ratelimit::QuotaConfig;
use bff_testkit::{RedisServer, Reply, TestApp};

use crate::{client_credentials, product, spawn_app_with};

async fn limited_app(redis: Option<&RedisServer>, requests: u32) -> TestApp {
    let url = redis.map(RedisServer::url);
    spawn_app_with(|config| {
        config.redis.url = url;
        config.rate_limit.default = QuotaConfig { requests, window_secs: 60 };
    })
    .await
}

fn remaining(reply: &Reply) -> u32 {
    let header =
        reply.header("ratelimit").unwrap_or_else(|| panic!("no RateLimit header: {:?}", reply.headers));
    header
        .split(';')
        .find_map(|part| part.strip_prefix("r="))
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("no r= in {header}"))
}

#[tokio::test]
async fn the_request_after_the_quota_is_429_with_retry_after_and_ratelimit_headers() {
    let redis = RedisServer::start();
    let app = limited_app(Some(&redis), 5).await;
    let token = client_credentials(&app, "partner-acme", "acme-dev-secret").await;
    let mut left = Vec::new();
    for _ in 0..5 {
        let reply = product(&app, &token, "p-1").await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.header("ratelimit-policy"), Some("\"partner\";q=5;w=60"));
        left.push(remaining(&reply));
    }
    assert_eq!(left, [4, 3, 2, 1, 0]);
    let metrics = |app: &TestApp| {
        let (http, url) = (app.http.clone(), format!("{}/metrics", app.admin_base));
        async move { http.get(url).send().await.expect("admin listener").text().await.expect("a body") }
    };
    let limited_in_redis = [("decision", "limited"), ("source", "redis")];
    let before =
        bff_testkit::metrics::sum(&metrics(&app).await, "bff_ratelimit_decisions_total", &limited_in_redis);
    let refused = product(&app, &token, "p-1").await;
    refused.assert_problem(429, "rate_limited");
    // Counted where it was decided (other tests share the recorder: growth).
    let after =
        bff_testkit::metrics::sum(&metrics(&app).await, "bff_ratelimit_decisions_total", &limited_in_redis);
    assert!(after >= before + 1.0, "a limited decision made in Redis is counted: {before} -> {after}");
    let redis_breaker = bff_testkit::metrics::samples(&metrics(&app).await)
        .into_iter()
        .any(|s| s.name == "bff_redis_breaker_state");
    assert!(redis_breaker, "Redis's breaker state is exposed");
    let retry_after: u64 = refused.header("retry-after").and_then(|v| v.parse().ok()).expect("Retry-After");
    assert!((1..=12).contains(&retry_after), "one request frees up every 12 s: {retry_after}");
    assert_eq!(remaining(&refused), 0);

    // Another partner has its own quota, and its own series (it has a
    // configured quota); acme, on the default quota, counts under `default`.
    let globex = client_credentials(&app, "partner-globex", "globex-dev-secret").await;
    let allowed_globex = [("caller", "partner-globex"), ("decision", "allowed")];
    let before =
        bff_testkit::metrics::sum(&metrics(&app).await, "bff_ratelimit_decisions_total", &allowed_globex);
    assert_eq!(product(&app, &globex, "p-1").await.status, 200);
    let text = metrics(&app).await;
    let after = bff_testkit::metrics::sum(&text, "bff_ratelimit_decisions_total", &allowed_globex);
    assert!(after >= before + 1.0, "globex's decision has its own series: {before} -> {after}");
    let acme_limited = [("caller", "default"), ("decision", "limited"), ("source", "redis")];
    assert!(bff_testkit::metrics::sum(&text, "bff_ratelimit_decisions_total", &acme_limited) >= 1.0);
    assert!(!text.contains("caller=\"partner-acme\""), "no series for a partner without a quota of its own");
}

#[tokio::test]
async fn two_instances_sharing_redis_share_the_quota() {
    let redis = RedisServer::start();
    let first = limited_app(Some(&redis), 4).await;
    let second = limited_app(Some(&redis), 4).await;
    let token = client_credentials(&first, "partner-acme", "acme-dev-secret").await;
    for app in [&first, &second, &first, &second] {
        assert_eq!(product(app, &token, "p-1").await.status, 200);
    }
    product(&second, &token, "p-1").await.assert_problem(429, "rate_limited");
    product(&first, &token, "p-1").await.assert_problem(429, "rate_limited");
}

#[tokio::test]
async fn without_redis_each_instance_still_limits_locally() {
    let mut redis = RedisServer::start();
    let app = limited_app(Some(&redis), 3).await;
    let token = client_credentials(&app, "partner-acme", "acme-dev-secret").await;
    redis.kill();
    for _ in 0..3 {
        assert_eq!(product(&app, &token, "p-1").await.status, 200, "Redis down is not a BFF failure");
    }
    product(&app, &token, "p-1").await.assert_problem(429, "rate_limited");
}

#[tokio::test]
async fn a_frozen_redis_does_not_hold_requests() {
    let redis = RedisServer::start();
    let app = limited_app(Some(&redis), 100).await;
    let token = client_credentials(&app, "partner-acme", "acme-dev-secret").await;
    assert_eq!(product(&app, &token, "p-1").await.status, 200);
    redis.pause();
    for _ in 0..5 {
        let started = Instant::now();
        let reply = product(&app, &token, "p-1").await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        // Not a latency measurement: a hung Redis would hold it for ever.
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "waited on a frozen Redis: {:?}",
            started.elapsed()
        );
    }
    redis.resume();
}

#[tokio::test]
async fn behind_a_password_redis_is_shared_with_it_and_without_it_each_instance_falls_back() {
    // The compose stack's Redis: the default user off, `bff` with a password,
    // `bff:*` keys only, no dangerous commands. Quotas (a Lua script) and
    // cached products (GET/SET) both go through it.
    let redis = RedisServer::start_with_password("s3cret-for-tests");
    let first = limited_app(Some(&redis), 3).await;
    let second = limited_app(Some(&redis), 3).await;
    let token = client_credentials(&first, "partner-acme", "acme-dev-secret").await;
    for app in [&first, &second, &first] {
        assert_eq!(product(app, &token, "p-1").await.status, 200);
    }
    product(&second, &token, "p-1").await.assert_problem(429, "rate_limited");

    // The wrong password (or none): Redis refuses, the instance serves on its
    // own quota rather than failing, and shares nothing.
    for password in [Some("wrong"), None] {
        let url = redis.url_with_password(password);
        let alone = spawn_app_with(|config| {
            config.redis.url = Some(url);
            config.rate_limit.default = QuotaConfig { requests: 3, window_secs: 60 };
        })
        .await;
        let reply = product(&alone, &token, "p-1").await;
        assert_eq!(reply.status, 200, "{password:?}: {}", reply.text);
    }
}
