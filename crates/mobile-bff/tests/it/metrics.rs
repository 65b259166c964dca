//! The metrics an on-call engineer reads (`GET /metrics` on the admin
//! listener): a degraded component shows up in them, and ids never do.

use std::time::Duration;

use bff_testkit::metrics::{samples, sum};
use serde_json::json;
use services_mock::{Fleet, Service};

use crate::helpers::{Binary, spawn_app, spawn_app_with, status_of};

async fn scrape(http: &reqwest::Client, admin_base: &str) -> String {
    let reply = http.get(format!("{admin_base}/metrics")).send().await.expect("the admin listener answers");
    assert_eq!(reply.status(), 200);
    assert_eq!(
        reply.headers().get("content-type").and_then(|v| v.to_str().ok()),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    reply.text().await.expect("a body")
}

#[tokio::test]
async fn metrics_are_on_the_admin_listener_and_never_on_the_public_port() {
    let app = spawn_app().await;
    app.get_with("/metrics", None, &[]).await.assert_problem(404, "resource.not_found");
    let text = scrape(&app.http, &app.admin_base).await;
    assert!(text.contains("# TYPE bff_http_requests_total counter"), "{text}");
}

/// In this process every test's BFF shares the recorder, so what is
/// checked is growth by at least this test's requests.
#[tokio::test]
async fn a_slow_optional_dependency_shows_in_the_degraded_rate_the_dependency_and_the_fan_out() {
    let app = spawn_app_with(|config| {
        let recommendations = config.downstream.services.get_mut("recommendations").expect("configured");
        recommendations.timeout_ms = 100;
        recommendations.retry.max_attempts = 1;
    })
    .await;
    let home = [("route", "/v1/home")];
    let timed_out = [
        ("route", "/v1/home"),
        ("component", "recommendations"),
        ("status", "fallback"),
        ("reason", "timeout"),
    ];
    let before = scrape(&app.http, &app.admin_base).await;
    let received_before = app.fleet.domain_requests().await.expect("stats");

    app.fleet.set_faults(Service::Recommendations, json!({"latencyMs": 2_000})).await.expect("faults");
    for _ in 0..3 {
        let body = app.get("/v1/home").await.json();
        assert_eq!(status_of(&body, "recommendations")["reasonCode"], "timeout");
    }
    let after = scrape(&app.http, &app.admin_base).await;
    let received = app.fleet.domain_requests().await.expect("stats") - received_before;

    let grew = |name: &str, labels: &[(&str, &str)]| sum(&after, name, labels) - sum(&before, name, labels);
    assert!(grew("bff_component_results_total", &timed_out) >= 3.0, "{after}");
    assert!(grew("bff_composed_responses_total", &[("route", "/v1/home"), ("degraded", "true")]) >= 3.0);
    let ok = [("route", "/v1/home"), ("status", "200"), ("code", "ok"), ("method", "GET")];
    assert!(grew("bff_http_requests_total", &ok) >= 3.0);
    assert!(grew("bff_http_request_duration_seconds_count", &home) >= 3.0);
    let timeouts = [("dependency", "recommendations"), ("outcome", "timeout")];
    assert!(grew("bff_dependency_calls_total", &timeouts) >= 3.0);
    // Each request's fan-out is recorded: at least the calls this test's
    // services received (other tests' requests only add).
    assert!(received >= 3, "home calls its services");
    assert!(grew("bff_downstream_calls_per_request_count", &home) >= 3.0);
    assert!(grew("bff_downstream_calls_per_request_sum", &home) >= received as f64);
    // The cached parts' lookups and the service tokens are counted too.
    assert!(grew("bff_cache_lookups_total", &[("component", "recommendations")]) >= 3.0, "{after}");
    let tokens = grew("bff_token_exchanges_total", &[("result", "exchanged")])
        + grew("bff_token_exchanges_total", &[("result", "cached")]);
    assert!(tokens >= 3.0, "each call needs a service token: {tokens}");
    // Buckets are real histograms, not summaries.
    assert!(after.contains("bff_http_request_duration_seconds_bucket{"), "histograms have buckets");
}

/// The series a BFF exposes are bounded by its code, not by its traffic:
/// 1,000 distinct product ids add none. Run against the real binary, so
/// no other test's requests share its recorder.
#[tokio::test]
async fn a_thousand_distinct_ids_add_no_series() {
    let fleet = Fleet::for_bff(mobile_bff::ENTRY).await.expect("mocks");
    let bff = Binary::start(&fleet, &[]);
    let http = reqwest::Client::new();
    let token =
        fleet.identity().user_token(mobile_bff::ENTRY, "u-1", Duration::from_secs(300)).expect("a token");
    let page = |id: String| {
        let (http, token, base) = (http.clone(), token.clone(), bff.base.clone());
        async move {
            let reply = http.get(format!("{base}/v1/product-page/{id}")).bearer_auth(token).send().await;
            reply.expect("the BFF answers").status().as_u16()
        }
    };
    // Products that exist first: no part is cancelled, so the fan-out the
    // BFF counts is exactly what the services received.
    for n in 1..=20 {
        assert_eq!(page(format!("p-{n}")).await, 200);
    }
    let counted = sum(&scrape(&http, &bff.admin_base).await, "bff_downstream_calls_per_request_sum", &[]);
    let received = fleet.domain_requests().await.expect("stats");
    assert!(received >= 20 * 4, "a product page calls its services: {received}");
    assert_eq!(counted, received as f64, "calls per request, summed, are the calls the services received");

    // Unknown ids too (a failed critical part cancels the others).
    for n in 0..10 {
        assert_eq!(page(format!("p-yy-{n}")).await, 404);
    }
    let first = samples(&scrape(&http, &bff.admin_base).await);

    // Ten at a time: well within every bulkhead, so every answer is a 404.
    for batch in 0..100 {
        let mut pages = tokio::task::JoinSet::new();
        for n in 0..10 {
            pages.spawn(page(format!("p-zz-{}", batch * 10 + n + 1)));
        }
        while let Some(status) = pages.join_next().await {
            assert_eq!(status.expect("a request task"), 404);
        }
    }
    let text = scrape(&http, &bff.admin_base).await;
    let after = samples(&text);
    assert!(!text.contains("zz"), "an id is never a label value");
    // Every label value is from a set fixed by the code and configuration,
    // never by traffic: that is what bounds the series.
    let document: serde_json::Value =
        serde_json::from_str(include_str!("../../../../openapi/mobile-bff.json")).expect("the document");
    let routes: Vec<&str> =
        document["paths"].as_object().expect("paths").keys().map(String::as_str).collect();
    let outcomes: Vec<&str> = bff_error::ReasonCode::ALL.iter().map(|r| r.as_str()).collect();
    let codes: Vec<&str> = bff_error::ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    let components = ["product", "price", "availability", "recommendations", "reviews"];
    for sample in &after {
        for (key, value) in &sample.labels {
            let value = value.as_str();
            let closed = match key.as_str() {
                "route" => {
                    routes.contains(&value)
                        || ["unmatched", "/healthz", "/readyz", "/openapi.json"].contains(&value)
                }
                // Its egress list, and the identity provider (token exchange).
                "dependency" => mobile_bff::ENTRY.calls.contains(&value) || value == "identity",
                "outcome" => value == "ok" || outcomes.contains(&value),
                "reason" => value == "none" || outcomes.contains(&value),
                "code" => value == "ok" || codes.contains(&value),
                "component" => components.contains(&value),
                "status" => {
                    ["ok", "fallback", "error"].contains(&value)
                        || (value.len() == 3 && value.parse::<u16>().is_ok())
                }
                "method" => {
                    ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"].contains(&value)
                }
                "degraded" => ["true", "false"].contains(&value),
                "budget" => ["spent", "refused"].contains(&value),
                "result" => [
                    "fresh",
                    "stale",
                    "miss",
                    "stale_if_error",
                    "error",
                    "cached",
                    "exchanged",
                    "verified",
                    "refused",
                ]
                .contains(&value),
                "decision" => ["allowed", "limited"].contains(&value),
                // Callers with a configured quota by id, everyone else `default`.
                "caller" => {
                    value == "default"
                        || mobile_bff::bff().defaults().rate_limit.overrides.contains_key(value)
                }
                "source" => ["redis", "local"].contains(&value),
                "le" => value == "+Inf" || value.parse::<f64>().is_ok(),
                _ => false,
            };
            assert!(closed, "{}: label {key}={value:?} is not from a closed set", sample.name);
        }
    }
    // And the request series, which timing cannot vary, are exactly those
    // of the first requests. (A dependency's outcome series may appear
    // later, when a race first produces that outcome: still a closed set.)
    let http_series = |samples: &[bff_testkit::metrics::Sample]| {
        let mut keys: Vec<String> = samples
            .iter()
            .filter(|s| s.name.starts_with("bff_http_") || s.name.starts_with("bff_component_"))
            .map(|s| format!("{}{:?}", s.name, s.labels))
            .collect();
        keys.sort();
        keys
    };
    assert_eq!(http_series(&after), http_series(&first), "1,000 more ids, the same request series");
    let unknown = [("route", "/v1/product-page/{id}"), ("status", "404")];
    assert_eq!(sum(&text, "bff_http_requests_total", &unknown), 1_010.0, "all counted, under one route");
}

/// `Server-Timing` (when configured): each component of the answer, in
/// order, with its duration and status; the slow one says so.
#[tokio::test]
async fn server_timing_shows_each_component_and_which_one_was_slow() {
    let app = spawn_app_with(|config| {
        config.server.server_timing = true;
        let recommendations = config.downstream.services.get_mut("recommendations").expect("configured");
        recommendations.timeout_ms = 100;
        recommendations.retry.max_attempts = 1;
    })
    .await;
    app.fleet.set_faults(Service::Recommendations, json!({"latencyMs": 2_000})).await.expect("faults");
    let reply = app.get("/v1/product-page/p-3").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let timing = reply.header("server-timing").expect("a Server-Timing header").to_owned();
    let body = reply.json();
    let components: Vec<&str> =
        body["components"].as_object().expect("components").keys().map(String::as_str).collect();
    let entries: Vec<&str> = timing.split(", ").collect();
    let names: Vec<&str> = entries.iter().map(|e| e.split(';').next().unwrap_or_default()).collect();
    let mut sorted_components = components.clone();
    sorted_components.sort_unstable();
    let mut sorted_names = names.clone();
    sorted_names.sort_unstable();
    assert_eq!(sorted_names, sorted_components, "one entry per component: {timing}");
    for entry in &entries {
        let dur = entry.split(";dur=").nth(1).and_then(|d| d.split(';').next()).expect("a duration");
        assert!(dur.parse::<f64>().is_ok_and(|ms| ms >= 0.0), "{entry}");
    }
    let slow = entries.iter().find(|e| e.starts_with("recommendations;")).expect("recommendations");
    assert!(slow.ends_with("desc=\"fallback timeout\""), "{slow}");
    let slow_ms: f64 = slow
        .split(";dur=")
        .nth(1)
        .and_then(|d| d.split(';').next())
        .and_then(|d| d.parse().ok())
        .expect("ms");
    assert!(slow_ms >= 90.0, "it waited for its timeout: {slow}");
    assert!(entries.iter().any(|e| e.starts_with("product;") && e.ends_with("desc=\"ok\"")), "{timing}");
    assert!(!timing.contains("127.0.0.1") && !timing.contains("http"), "no hosts: {timing}");

    // Off unless configured.
    let plain = spawn_app().await;
    let reply = plain.get("/v1/product-page/p-3").await;
    assert_eq!(reply.header("server-timing"), None);
}
