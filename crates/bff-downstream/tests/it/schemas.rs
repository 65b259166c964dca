//! What the BFFs read against what the mocks say they send, and what the
//! mocks really send against what they say.

use std::sync::Arc;

use bff_downstream::model::{
    Cart, Categories, Orders, Price, Product, ProductList, Promotions, Recommendations, ReviewSummary,
    ShippingEstimate, Stock, UserProfile,
};
use bff_downstream::schema_check::incompatibilities;
use schemars::schema_for;
use serde_json::Value;
use services_mock::{Fleet, Service};

/// Each consumer DTO with the provider route it is read from.
fn pairs() -> Vec<(Service, &'static str, Value)> {
    let schema = |s: schemars::Schema| s.to_value();
    vec![
        (Service::User, "GET /users/{id}", schema(schema_for!(UserProfile))),
        (Service::Cart, "GET /carts/{user}", schema(schema_for!(Cart))),
        (Service::Cart, "POST /carts/{user}/items", schema(schema_for!(Cart))),
        (Service::Catalog, "GET /products/{id}", schema(schema_for!(Product))),
        (Service::Catalog, "GET /products", schema(schema_for!(ProductList))),
        (Service::Catalog, "GET /categories", schema(schema_for!(Categories))),
        (Service::Pricing, "GET /prices/{id}", schema(schema_for!(Price))),
        (Service::Inventory, "GET /stock/{id}", schema(schema_for!(Stock))),
        (Service::Recommendations, "GET /recommendations", schema(schema_for!(Recommendations))),
        (Service::Promotions, "GET /promotions", schema(schema_for!(Promotions))),
        (Service::Shipping, "GET /estimates", schema(schema_for!(ShippingEstimate))),
        (Service::Reviews, "GET /reviews/{id}/summary", schema(schema_for!(ReviewSummary))),
        (Service::Orders, "GET /orders", schema(schema_for!(Orders))),
    ]
}

async fn published(fleet: &Fleet, service: Service) -> Value {
    reqwest::get(format!("{}/__schemas", fleet.url(service)))
        .await
        .expect("mock reachable")
        .json()
        .await
        .expect("schemas are JSON")
}

#[tokio::test]
async fn every_field_a_bff_reads_is_published_by_its_provider() {
    let fleet = Fleet::start().await.expect("mocks");
    for (service, route, consumer) in pairs() {
        let schemas = published(&fleet, service).await;
        let provider =
            schemas.get(route).unwrap_or_else(|| panic!("{service} publishes no schema for {route}"));
        let problems = incompatibilities(&consumer, provider);
        assert!(problems.is_empty(), "{route} of {service}:\n  {}", problems.join("\n  "));
    }
}

#[tokio::test]
async fn a_consumer_reading_a_field_the_provider_lacks_is_caught() {
    #[derive(schemars::JsonSchema)]
    #[allow(dead_code)] // Only its schema is used.
    struct GreedyPrice {
        #[schemars(rename = "productId")]
        product_id: String,
        discount_code: String,
    }
    let fleet = Fleet::start().await.expect("mocks");
    let schemas = published(&fleet, Service::Pricing).await;
    let problems = incompatibilities(&schema_for!(GreedyPrice).to_value(), &schemas["GET /prices/{id}"]);
    assert_eq!(problems, ["$.discount_code: read by the consumer, absent from the provider"]);
}

#[tokio::test]
async fn what_the_mocks_send_matches_what_they_publish() {
    let fleet = Arc::new(Fleet::start().await.expect("mocks"));
    let http = reqwest::Client::new();
    let reads: [(Service, &str, &str); 12] = [
        (Service::User, "GET /users/{id}", "/users/u-2"),
        (Service::Cart, "GET /carts/{user}", "/carts/u-1"),
        (Service::Catalog, "GET /products/{id}", "/products/p-5"),
        (Service::Catalog, "GET /products", "/products?category=shoes&limit=3"),
        (Service::Catalog, "GET /categories", "/categories"),
        (Service::Pricing, "GET /prices/{id}", "/prices/p-5"),
        (Service::Inventory, "GET /stock/{id}", "/stock/p-5"),
        (
            Service::Recommendations,
            "GET /recommendations",
            "/recommendations?segment=new&context=home&limit=3",
        ),
        (Service::Promotions, "GET /promotions", "/promotions?segment=frequent"),
        (Service::Shipping, "GET /estimates", "/estimates?user=u-4"),
        (Service::Reviews, "GET /reviews/{id}/summary", "/reviews/p-5/summary"),
        (Service::Orders, "GET /orders", "/orders?user=u-3"),
    ];
    for (service, route, path) in reads {
        let schemas = published(&fleet, service).await;
        let validator = jsonschema::validator_for(&schemas[route]).expect("a valid JSON Schema");
        let body: Value = http
            .get(format!("{}{path}", fleet.url(service)))
            // Staff: these read several users' data, which only the
            // owner or staff may (this checks shapes, not who may read).
            .bearer_auth(fleet.service_token(service, "s-1", "test-bff"))
            .send()
            .await
            .expect("reachable")
            .json()
            .await
            .expect("JSON");
        let errors: Vec<String> = validator.iter_errors(&body).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{route} of {service} breaks its own schema: {errors:?}\n{body}");
    }
    // And a body that breaks the schema is caught.
    let schemas = published(&fleet, Service::Pricing).await;
    let validator = jsonschema::validator_for(&schemas["GET /prices/{id}"]).expect("schema");
    assert!(!validator.is_valid(&serde_json::json!({"productId": "p-1", "price": {"amountMinor": "12"}})));
}
