//! `GET /v1/product-page/{id}`.

use serde_json::json;
use services_mock::Service;

use crate::helpers::{assert_no_internals, spawn_app, status_of};

#[tokio::test]
async fn healthy_product_page_is_complete_and_not_degraded() {
    let app = spawn_app().await;
    let reply = app.get("/v1/product-page/p-5").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["degraded"], false);
    for name in ["product", "price", "availability", "recommendations", "reviews"] {
        assert_eq!(status_of(&body, name), &json!({"status": "ok"}), "{name}");
    }
    let data = &body["data"];
    assert_eq!(data["id"], "p-5");
    // Seed: p-5 costs 194.99 EUR, on sale from 243.73, 25 in stock.
    assert_eq!(
        data["price"]["current"],
        json!({"amountMinor": 19499, "currency": "EUR", "formatted": "€194.99"})
    );
    assert_eq!(data["price"]["was"]["amountMinor"], 24373);
    assert_eq!(data["availability"]["code"], "in_stock");
    assert!(data["images"].as_array().is_some_and(|images| images.len() == 3), "three images, not four");
    assert!(!reply.text.contains("\"available\""), "never an exact stock count");
}

#[tokio::test]
async fn unknown_product_is_a_404_problem() {
    let app = spawn_app().await;
    let reply = app.get("/v1/product-page/p-9999").await;
    reply.assert_problem(404, "resource.not_found");
    assert_no_internals(&reply, &app);
}

#[tokio::test]
async fn a_malformed_product_id_is_a_400_and_never_reaches_a_service() {
    let app = spawn_app().await;
    let reply = app.get("/v1/product-page/p-1%2F..%2F..%2Fadmin").await;
    reply.assert_problem(400, "request.invalid");
    assert_eq!(app.fleet.domain_requests().await.expect("stats"), 0);
}

#[tokio::test]
async fn missing_inventory_shows_limited_stock() {
    let app = spawn_app().await;
    app.fleet.set_faults(Service::Inventory, json!({"dropRatio": 1.0})).await.expect("faults");
    let reply = app.get("/v1/product-page/p-5").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["degraded"], true);
    assert_eq!(
        status_of(&body, "availability"),
        &json!({"status": "fallback", "source": "default", "reasonCode": "unavailable"})
    );
    assert_eq!(body["data"]["availability"]["code"], "limited_stock");
    assert_eq!(body["data"]["availability"]["label"], "Limited stock");
}

#[tokio::test]
async fn a_negative_price_fails_closed() {
    let app = spawn_app().await;
    app.fleet.set_faults(Service::Pricing, json!({"badData": true})).await.expect("faults");
    let reply = app.get("/v1/product-page/p-5").await;
    reply.assert_problem(503, "dependency.unavailable");
    assert!(!reply.text.contains("19499"), "the bad price must not leak: {}", reply.text);
    assert_no_internals(&reply, &app);
}

#[tokio::test]
async fn bad_data_in_an_optional_part_degrades_it_as_invalid_data() {
    let app = spawn_app().await;
    app.fleet.set_faults(Service::Reviews, json!({"badData": true})).await.expect("faults");
    let reply = app.get("/v1/product-page/p-5").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    assert_eq!(status_of(&body, "reviews"), &json!({"status": "error", "reasonCode": "invalid_data"}));
    assert!(body["data"].get("rating").is_none(), "a 7.5/5 rating is not shown");
}
