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

    let (status, problem) = api.get("/v1/product-page/p-999").await;
    assert_eq!((status, problem["code"].as_str()), (404, Some("resource.not_found")));
    // A degraded page still renders; the app hides the rating it cannot show.
    let (status, page) = api.get("/v1/product-page/p-2").await;
    assert_eq!((status, page["components"]["reviews"]["status"].as_str()), (200, Some("error")));
    assert!(page["data"].get("rating").is_none());
}
