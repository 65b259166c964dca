//! `GET /v1/home`.

use serde_json::json;
use services_mock::Service;

use crate::helpers::{assert_no_internals, spawn_app, spawn_app_with, status_of};

const HOME_DEPENDENCIES: [Service; 5] =
    [Service::User, Service::Cart, Service::Recommendations, Service::Promotions, Service::Shipping];

#[tokio::test]
async fn healthy_home_is_complete_and_not_degraded() {
    let app = spawn_app().await;
    let reply = app.get("/v1/home").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert!(reply.header("x-request-id").is_some_and(|id| !id.is_empty()));
    let body = reply.json();
    assert_eq!(body["degraded"], false);
    for name in ["profile", "cart", "recommendations", "promotions", "shipping"] {
        assert_eq!(status_of(&body, name), &json!({"status": "ok"}), "{name}");
    }
    // u-1 is Ada (seed): 3 cart lines with 1 + 2 + 1 units, GBP market.
    let data = &body["data"];
    assert_eq!(data["greeting"], "Hi Ada");
    assert_eq!(data["cart"]["itemCount"], 4);
    assert_eq!(data["cart"]["total"]["currency"], "GBP");
    assert_eq!(data["recommendations"].as_array().map(Vec::len), Some(6));
    assert!(data["shippingBanner"].as_str().is_some_and(|b| b.starts_with("Delivery in 2–4 days")));
    // UI-shaped, not proxied: no internal fields of the user record.
    assert!(data.get("email").is_none() && data.get("segment").is_none());
    for service in HOME_DEPENDENCIES {
        assert_eq!(app.fleet.requests(service).await.expect("stats"), 1, "{service}");
    }
}

#[tokio::test]
async fn the_five_parts_are_fetched_in_parallel() {
    let app = spawn_app().await;
    for service in HOME_DEPENDENCIES {
        app.fleet.set_faults(service, json!({"latencyMs": 50})).await.expect("faults");
    }
    let reply = app.get("/v1/home").await;
    assert_eq!(reply.status, 200, "{}", reply.text);

    // Every call started before any finished: they overlapped at the mocks.
    let mut starts = Vec::new();
    let mut ends = Vec::new();
    for service in HOME_DEPENDENCIES {
        let stats = app.fleet.stats(service).await.expect("stats");
        let recent = &stats["recent"][0];
        starts.push(recent["startedUs"].as_u64().expect("started"));
        ends.push(recent["finishedUs"].as_u64().expect("finished"));
    }
    let last_start = starts.iter().max().expect("five starts");
    let first_end = ends.iter().min().expect("five ends");
    assert!(last_start < first_end, "calls did not overlap: starts {starts:?}, ends {ends:?}");
}

#[tokio::test]
async fn slow_recommendations_degrade_the_response_without_delaying_it() {
    let app = spawn_app_with(|config| {
        config.downstream.services.get_mut("recommendations").expect("configured").timeout_ms = 200;
    })
    .await;
    app.fleet.set_faults(Service::Recommendations, json!({"latencyMs": 5_000})).await.expect("faults");

    let started = std::time::Instant::now();
    let reply = app.get("/v1/home").await;
    let elapsed = started.elapsed();

    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["degraded"], true);
    assert_eq!(
        status_of(&body, "recommendations"),
        &json!({"status": "fallback", "source": "default", "reasonCode": "timeout"})
    );
    assert_eq!(body["data"]["recommendations"], json!([]));
    assert_eq!(status_of(&body, "profile")["status"], "ok");
    // Not a latency measurement: the slow call takes 5 s, and the response
    // must not have waited for it.
    assert!(elapsed.as_secs_f64() < 2.5, "response waited for the slow part: {elapsed:?}");
}

#[tokio::test]
async fn missing_shipping_is_omitted_and_reported() {
    let app = spawn_app().await;
    app.fleet.set_faults(Service::Shipping, json!({"errorRatio": 1.0})).await.expect("faults");
    let reply = app.get("/v1/home").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["degraded"], true);
    assert_eq!(status_of(&body, "shipping"), &json!({"status": "error", "reasonCode": "unavailable"}));
    assert!(body["data"].get("shippingBanner").is_none());
}

#[tokio::test]
async fn a_failing_cart_fails_the_screen_without_leaking_internals() {
    let app = spawn_app().await;
    app.fleet
        .set_faults(Service::Cart, json!({"errorRatio": 1.0, "errorStatus": 500}))
        .await
        .expect("faults");
    let reply = app.get("/v1/home").await;
    reply.assert_problem(503, "dependency.unavailable");
    assert_no_internals(&reply, &app);
}

#[tokio::test]
async fn a_cart_past_its_budget_is_a_gateway_timeout() {
    let app = spawn_app_with(|config| {
        config.downstream.services.get_mut("cart").expect("configured").timeout_ms = 150;
    })
    .await;
    app.fleet.set_faults(Service::Cart, json!({"latencyMs": 3_000})).await.expect("faults");
    let reply = app.get("/v1/home").await;
    reply.assert_problem(504, "dependency.timeout");
    assert_no_internals(&reply, &app);
}

#[tokio::test]
async fn request_id_and_trace_context_reach_every_downstream_call() {
    let app = spawn_app().await;
    let token = app.token("u-1");
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let reply = app
        .get_with("/v1/home", Some(&token), &[("x-request-id", "req-abc-123"), ("traceparent", parent)])
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.header("x-request-id"), Some("req-abc-123"));
    let mut span_ids = std::collections::HashSet::new();
    for service in HOME_DEPENDENCIES {
        let stats = app.fleet.stats(service).await.expect("stats");
        let call = &stats["recent"][0];
        assert_eq!(call["requestId"], "req-abc-123", "{service}");
        let traceparent = call["traceparent"].as_str().expect("traceparent sent");
        let parts: Vec<&str> = traceparent.split('-').collect();
        assert_eq!(parts[1], "4bf92f3577b34da6a3ce929d0e0e4736", "{service}: same trace");
        assert_ne!(parts[2], "00f067aa0ba902b7", "{service}: a child span, not the caller's");
        span_ids.insert(parts[2].to_owned());
    }
    assert_eq!(span_ids.len(), 5, "each downstream call has its own span id");
}
