//! The mobile app's view of mobile-bff: what its home and product screens
//! read, and the error codes it switches on.

use bff_testkit::pact::pact;
use pact_consumer::prelude::*;
use serde_json::Value;

/// The app's API client: bearer token, JSON, problem codes.
struct MobileApi {
    base: String,
    http: reqwest::Client,
}

impl MobileApi {
    async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.base.trim_end_matches('/')))
            .bearer_auth("app-access-token")
            .header("accept", "application/json")
            .send()
            .await
            .expect("the pact mock server answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, key: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base.trim_end_matches('/')))
            .bearer_auth("app-access-token")
            .header("accept", "application/json")
            .header("idempotency-key", key)
            .json(&body)
            .send()
            .await
            .expect("the pact mock server answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

fn money() -> JsonPattern {
    json_pattern!({ "formatted": like!("$59.97"), "amountMinor": like!(5997), "currency": term!("^[A-Z]{3}$", "USD") })
}

fn authorized(i: &mut pact_consumer::builders::InteractionBuilder, path: &str) {
    i.request
        .get()
        .path(path)
        .header("accept", "application/json")
        .header("authorization", term!("^Bearer [A-Za-z0-9._~+/=-]+$", "Bearer app-access-token"));
}

#[tokio::test]
async fn mobile_app_reads_its_screens_from_mobile_bff() {
    let mut builder = pact("mobile-app", "mobile-bff");
    builder
        .interaction("the home screen", "", |mut i| {
            i.given("user u-2 is signed in");
            authorized(&mut i, "/v1/home");
            i.response.ok().content_type("application/json").json_body(json_pattern!({
                "degraded": like!(false),
                "components": {
                    "profile": { "status": term!("^(ok|fallback|error)$", "ok") },
                    "cart": { "status": term!("^(ok|fallback|error)$", "ok") },
                },
                "data": {
                    "greeting": like!("Hi Grace"),
                    "tier": like!("gold"),
                    "cart": { "itemCount": like!(2), "total": money() },
                    "recommendations": each_like!({
                        "id": like!("p-7"),
                        "title": like!("Amber Lamp"),
                        "imageUrl": like!("https://img.example/p-7/1.jpg"),
                        "price": money(),
                    }),
                    "promotions": each_like!({ "id": like!("promo-1"), "title": like!("Free returns all winter") }),
                },
            }));
            i
        })
        .interaction("a product page", "", |mut i| {
            i.given("user u-2 is signed in");
            i.given("product p-1 exists");
            authorized(&mut i, "/v1/product-page/p-1");
            i.response.ok().content_type("application/json").json_body(json_pattern!({
                "degraded": like!(false),
                "data": {
                    "id": "p-1",
                    "title": like!("Amber Lamp"),
                    "images": each_like!("https://img.example/p-1/1.jpg"),
                    "price": { "current": money() },
                    "availability": {
                        "code": term!("^(in_stock|limited_stock|out_of_stock)$", "in_stock"),
                        "label": like!("In stock"),
                        "canBuy": like!(true),
                    },
                },
            }));
            i
        })
        .interaction("a product page without reviews", "", |mut i| {
            i.given("user u-2 is signed in");
            i.given("product p-2 exists");
            i.given("reviews are unavailable");
            authorized(&mut i, "/v1/product-page/p-2");
            i.response.ok().content_type("application/json").json_body(json_pattern!({
                "degraded": true,
                "components": { "reviews": { "status": "error", "reasonCode": like!("unavailable") } },
                "data": { "id": "p-2", "title": like!("Amber Lamp") },
            }));
            i
        })
        .interaction("the cart screen", "", |mut i| {
            i.given("user u-2 is signed in");
            authorized(&mut i, "/v1/cart");
            i.response.ok().content_type("application/json").json_body(json_pattern!({
                "components": { "cart": { "status": term!("^(ok|fallback|error)$", "ok") } },
                "data": {
                    "cart": {
                        "items": each_like!({
                            "productId": like!("p-2"),
                            "title": like!("Amber Lamp"),
                            "quantity": like!(1),
                            "unitPrice": money(),
                            "lineTotal": money(),
                        }),
                        "itemCount": like!(2),
                        "total": money(),
                    },
                },
            }));
            i
        })
        .interaction("placing an order", "", |mut i| {
            i.given("user u-2 is signed in");
            i.given("product p-1 exists");
            i.request
                .post()
                .path("/v1/orders")
                .header("accept", "application/json")
                .header("authorization", term!("^Bearer [A-Za-z0-9._~+/=-]+$", "Bearer app-access-token"))
                .header("idempotency-key", term!("^[A-Za-z0-9_.:-]{8,128}$", "order-key-0001"))
                .content_type("application/json")
                .json_body(json_pattern!({ "items": [{ "productId": "p-1", "quantity": 1 }] }));
            i.response.status(201).content_type("application/json").json_body(json_pattern!({
                "id": like!("ord-000001"),
                "status": like!("placed"),
                "items": each_like!({ "productId": like!("p-1"), "quantity": like!(1), "lineTotal": money() }),
                "itemCount": like!(1),
                "total": money(),
            }));
            i
        })
        .interaction("the order history", "", |mut i| {
            i.given("user u-2 is signed in");
            i.given("user u-2 has orders");
            authorized(&mut i, "/v1/orders");
            i.response.ok().content_type("application/json").json_body(json_pattern!({
                "orders": each_like!({
                    "id": like!("o-u-2-1"),
                    "placedAt": like!("2026-02-04T10:00:00Z"),
                    "status": like!("shipped"),
                    "total": money(),
                }),
            }));
            i
        })
        .interaction("another user's order", "", |mut i| {
            i.given("user u-2 is signed in");
            i.given("order o-u-3-1 exists");
            authorized(&mut i, "/v1/orders/o-u-3-1");
            i.response
                .status(404)
                .content_type("application/problem+json")
                .json_body(json_pattern!({ "code": "resource.not_found", "title": like!("The resource does not exist") }));
            i
        })
        .interaction("an unknown product page", "", |mut i| {
            i.given("user u-2 is signed in");
            i.given("product p-999 does not exist");
            authorized(&mut i, "/v1/product-page/p-999");
            i.response
                .status(404)
                .content_type("application/problem+json")
                .json_body(json_pattern!({ "code": "resource.not_found", "title": like!("The resource does not exist") }));
            i
        });
    let server = builder.start_mock_server(None, None);
    let api = MobileApi { base: server.url().to_string(), http: reqwest::Client::new() };

    let (status, home) = api.get("/v1/home").await;
    assert_eq!(status, 200);
    assert_eq!(home["data"]["greeting"], "Hi Grace");
    assert_eq!(home["data"]["cart"]["total"]["formatted"], "$59.97");

    let (status, product) = api.get("/v1/product-page/p-1").await;
    assert_eq!((status, product["data"]["availability"]["canBuy"].as_bool()), (200, Some(true)));

    let (status, cart) = api.get("/v1/cart").await;
    assert_eq!((status, cart["data"]["cart"]["itemCount"].as_u64()), (200, Some(2)));
    let order = serde_json::json!({ "items": [{ "productId": "p-1", "quantity": 1 }] });
    let (status, placed) = api.post("/v1/orders", "order-key-0001", order).await;
    assert_eq!((status, placed["status"].as_str()), (201, Some("placed")));
    let (status, history) = api.get("/v1/orders").await;
    assert_eq!((status, history["orders"][0]["id"].as_str()), (200, Some("o-u-2-1")));
    // Another user's order is a 404: the app shows "no such order".
    let (status, problem) = api.get("/v1/orders/o-u-3-1").await;
    assert_eq!((status, problem["code"].as_str()), (404, Some("resource.not_found")));

    let (status, problem) = api.get("/v1/product-page/p-999").await;
    assert_eq!((status, problem["code"].as_str()), (404, Some("resource.not_found")));
    // A degraded page still renders; the app hides the rating it cannot show.
    let (status, page) = api.get("/v1/product-page/p-2").await;
    assert_eq!((status, page["components"]["reviews"]["status"].as_str()), (200, Some("error")));
    assert!(page["data"].get("rating").is_none());
}
