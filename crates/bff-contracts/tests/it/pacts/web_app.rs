//! The web front end's view of web-bff: the session, the home page, and
//! logging out (a write: session cookie, CSRF token, allowed Origin).

use bff_testkit::pact::pact;
use pact_consumer::prelude::*;
use serde_json::Value;

const SESSION: &str = "__Host-session=sealed";

fn with_session(i: &mut pact_consumer::builders::InteractionBuilder) {
    i.request
        .header("accept", "application/json")
        .header("cookie", term!("^__Host-session=[A-Za-z0-9._~+/=%-]+$", SESSION));
}

/// `POST /v1/cart/items` of one unit of `product`: a write, so the session,
/// the CSRF token, the page's Origin and an Idempotency-Key.
fn cart_write(
    i: &mut pact_consumer::builders::InteractionBuilder,
    key: impl Into<pact_consumer::patterns::StringPattern>,
    product: &str,
) {
    i.request
        .post()
        .path("/v1/cart/items")
        .header("x-csrf-token", term!("^[A-Za-z0-9_-]+$", "b64-csrf-token"))
        .header("origin", term!("^https?://[^/]+$", "http://127.0.0.1:8080"))
        .header("idempotency-key", key)
        .content_type("application/json")
        .json_body(json_pattern!({ "productId": product, "quantity": 1 }));
    with_session(i);
}

#[tokio::test]
async fn web_app_reads_its_pages_from_web_bff() {
    let mut builder = pact("web-app", "web-bff");
    builder
        .interaction("the session", "", |mut i| {
            i.given("user u-2 is signed in");
            i.request.get().path("/auth/session");
            with_session(&mut i);
            i.response.ok().content_type("application/json").json_body(json_pattern!({
                "subject": like!("u-2"),
                "csrfToken": like!("b64-csrf-token"),
                "expiresAt": like!(1_790_000_000),
            }));
            i
        })
        .interaction("a product page", "", |mut i| {
            i.given("user u-2 is signed in");
            i.given("product p-1 exists");
            i.request.get().path("/v1/product-page/p-1");
            with_session(&mut i);
            i.response.ok().content_type("application/json").json_body(json_pattern!({
                "data": {
                    "id": "p-1",
                    "title": like!("Amber Lamp"),
                    "images": each_like!("https://img.example/p-1/1.jpg"),
                    "price": { "formatted": like!("$19.99") },
                    "availability": term!("^(in_stock|limited_stock|out_of_stock|unknown)$", "in_stock"),
                    "recommendations": each_like!({ "id": like!("p-7"), "title": like!("Amber Lamp") }),
                    "reviews": each_like!({ "rating": like!(5), "title": like!("Solid") }),
                },
            }));
            i
        })
        .interaction("the categories, anonymously", "", |mut i| {
            i.given("category shoes exists");
            i.request.get().path("/v1/categories").header("accept", "application/json");
            // (Its `Cache-Control: public, ...` is web-bff's own test: Pact
            // splits the header at commas.)
            i.response.ok().content_type("application/json").json_body(
                json_pattern!({ "categories": each_like!({ "id": like!("shoes"), "name": like!("Shoes") }) }),
            );
            i
        })
        .interaction("the home page", "", |mut i| {
            i.given("user u-2 is signed in");
            i.given("user u-2 has orders");
            i.request.get().path("/v1/home");
            with_session(&mut i);
            i.response.ok().content_type("application/json").json_body(json_pattern!({
                "degraded": like!(false),
                "data": {
                    "greeting": like!("Welcome back, Grace"),
                    "cart": {
                        "itemCount": like!(2),
                        "lineCount": like!(2),
                        "total": { "formatted": like!("$59.97") },
                    },
                    "recommendations": each_like!({ "id": like!("p-7"), "title": like!("Amber Lamp") }),
                    "recentOrders": each_like!({
                        "id": like!("o-2-1"),
                        "status": like!("delivered"),
                        "total": { "formatted": like!("$59.98") },
                    }),
                },
            }));
            i
        })
        .interaction("adding a product to the cart", "", |mut i| {
            i.given("user u-2 is signed in");
            i.given("product p-1 exists");
            cart_write(&mut i, term!("^[A-Za-z0-9_.:-]{8,128}$", "0b6f3c1e-4f7a-4d2e"), "p-1");
            i.response.status(201).content_type("application/json").json_body(json_pattern!({
                "itemCount": like!(3),
                "lineCount": like!(3),
                "total": { "formatted": like!("$59.97") },
            }));
            i
        })
        .interaction("adding with an Idempotency-Key already used for another product", "", |mut i| {
            i.given("user u-2 is signed in");
            i.given("idempotency key key-used-0001 was used for another item");
            cart_write(&mut i, "key-used-0001", "p-3");
            i.response
                .status(422)
                .content_type("application/problem+json")
                .json_body(json_pattern!({ "code": "idempotency.key_reused" }));
            i
        })
        .interaction("logging out", "", |mut i| {
            i.given("user u-2 is signed in");
            i.request
                .post()
                .path("/auth/logout")
                .header("x-csrf-token", term!("^[A-Za-z0-9_-]+$", "b64-csrf-token"))
                .header("origin", term!("^https?://[^/]+$", "http://127.0.0.1:8080"));
            with_session(&mut i);
            i.response
                .status(204)
                .header("set-cookie", term!("^__Host-session=;.*$", "__Host-session=; Max-Age=0"));
            i
        });
    let server = builder.start_mock_server(None, None);
    let base = server.url().to_string();
    let base = base.trim_end_matches('/');
    let http = reqwest::Client::new();
    let get = |path: &str| {
        http.get(format!("{base}{path}"))
            .header("accept", "application/json")
            .header("cookie", SESSION)
            .send()
    };

    let session: Value = get("/auth/session").await.expect("answer").json().await.expect("json");
    let csrf = session["csrfToken"].as_str().expect("a CSRF token").to_owned();
    let home: Value = get("/v1/home").await.expect("answer").json().await.expect("json");
    let page: Value = get("/v1/product-page/p-1").await.expect("answer").json().await.expect("json");
    assert_eq!(page["data"]["reviews"][0]["rating"], 5);
    let categories: Value = http
        .get(format!("{base}/v1/categories"))
        .header("accept", "application/json")
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("json");
    assert_eq!(categories["categories"][0]["id"], "shoes");
    assert_eq!(home["data"]["cart"]["lineCount"], 2);
    let add = |key: &str, product: &str| {
        http.post(format!("{base}/v1/cart/items"))
            .header("accept", "application/json")
            .header("cookie", SESSION)
            .header("x-csrf-token", "b64-csrf-token")
            .header("origin", "http://127.0.0.1:8080")
            .header("idempotency-key", key.to_owned())
            .json(&serde_json::json!({ "productId": product, "quantity": 1 }))
            .send()
    };
    let added = add("0b6f3c1e-4f7a-4d2e", "p-1").await.expect("answer");
    assert_eq!(added.status(), 201);
    let reused = add("key-used-0001", "p-3").await.expect("answer");
    assert_eq!(reused.status(), 422);
    let problem: Value = reused.json().await.expect("json");
    assert_eq!(problem["code"], "idempotency.key_reused");

    let logout = http
        .post(format!("{base}/auth/logout"))
        .header("accept", "application/json")
        .header("cookie", SESSION)
        .header("x-csrf-token", csrf)
        .header("origin", "http://127.0.0.1:8080")
        .send()
        .await
        .expect("answer");
    let status = logout.status();
    assert_eq!(status, 204, "{}", logout.text().await.unwrap_or_default());
}
