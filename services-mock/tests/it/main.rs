//! The mocks' own contract: fault injection, stats and admin routes behave as
//! the README documents, over real HTTP.

use serde_json::{Value, json};
use services_mock::{Fleet, Service};

mod console;
mod identity;

/// `GET url` with a valid service token for `service` (what token exchange gives a BFF).
async fn get_as(fleet: &Fleet, service: Service, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let token = fleet.service_token(service, "u-1", "mobile-bff");
    let response = reqwest::Client::new()
        .get(format!("{}{path}", fleet.url(service)))
        .bearer_auth(token)
        .send()
        .await
        .expect("mock reachable");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.expect("body"))
}

async fn get(url: String) -> (u16, reqwest::header::HeaderMap, String) {
    let response = reqwest::get(url).await.expect("mock reachable");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.expect("body"))
}

#[tokio::test]
async fn seeded_entities_are_served_and_unknown_ids_are_404() {
    let fleet = Fleet::start().await.expect("fleet");
    let (status, _, body) = get_as(&fleet, Service::Catalog, "/products/p-1").await;
    assert_eq!(status, 200);
    let product: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(product["id"], "p-1");
    assert_eq!(get_as(&fleet, Service::Catalog, "/products/p-49").await.0, 404);
    // (Another user's id is 403 before it is looked up: see below.)
    let staff = fleet.service_token(Service::User, "s-1", "admin-bff");
    let unknown = reqwest::Client::new()
        .get(format!("{}/users/u-7", fleet.url(Service::User)))
        .bearer_auth(staff)
        .send()
        .await
        .expect("mock reachable");
    assert_eq!(unknown.status(), 404);
    assert_eq!(get(format!("{}/nope", fleet.url(Service::User))).await.0, 404);
}

#[tokio::test]
async fn faults_are_validated_applied_and_reset() {
    let fleet = Fleet::start().await.expect("fleet");
    let pricing = fleet.url(Service::Pricing);
    assert!(fleet.set_faults(Service::Pricing, json!({"errorRatio": 1.5})).await.is_err(), "ratio > 1");
    assert!(fleet.set_faults(Service::Pricing, json!({"latncyMs": 5})).await.is_err(), "typo rejected");
    assert!(fleet.set_faults(Service::Pricing, json!({"errorStatus": 200})).await.is_err(), "not an error");

    fleet
        .set_faults(Service::Pricing, json!({"rateLimitRatio": 1.0, "retryAfterS": 9}))
        .await
        .expect("faults");
    let (status, headers, _) = get_as(&fleet, Service::Pricing, "/prices/p-1").await;
    assert_eq!(status, 429);
    assert_eq!(headers.get("retry-after").and_then(|v| v.to_str().ok()), Some("9"));

    fleet.set_faults(Service::Pricing, json!({"errorRatio": 1.0, "errorStatus": 502})).await.expect("faults");
    assert_eq!(get_as(&fleet, Service::Pricing, "/prices/p-1").await.0, 502);
    assert_eq!(get(format!("{pricing}/__stats")).await.0, 200, "admin routes are never faulted");

    fleet.set_faults(Service::Pricing, json!({"badData": true})).await.expect("faults");
    let (_, _, body) = get_as(&fleet, Service::Pricing, "/prices/p-1").await;
    let price: Value = serde_json::from_str(&body).expect("json");
    assert!(price["price"]["amountMinor"].as_i64().expect("amount") < 0);

    fleet.set_faults(Service::Pricing, json!({"dropRatio": 1.0})).await.expect("faults");
    let token = fleet.service_token(Service::Pricing, "u-1", "mobile-bff");
    let request = reqwest::Client::new().get(format!("{pricing}/prices/p-1")).bearer_auth(token);
    let dropped = async { request.send().await?.bytes().await };
    assert!(dropped.await.is_err(), "the connection is dropped mid-response");

    fleet.clear_faults(Service::Pricing).await.expect("heal");
    assert_eq!(get_as(&fleet, Service::Pricing, "/prices/p-1").await.0, 200);
}

#[tokio::test]
async fn stats_count_requests_per_route_and_reset() {
    let fleet = Fleet::start().await.expect("fleet");
    let reviews = fleet.url(Service::Reviews);
    for id in ["p-1", "p-2", "p-404"] {
        get_as(&fleet, Service::Reviews, &format!("/reviews/{id}/summary")).await;
    }
    let stats = fleet.stats(Service::Reviews).await.expect("stats");
    assert_eq!(stats["total"], 3);
    assert_eq!(stats["routes"]["GET /reviews/{id}/summary"], 3);
    assert_eq!(stats["recent"].as_array().map(Vec::len), Some(3));
    reqwest::Client::new().delete(format!("{reviews}/__stats")).send().await.expect("reset");
    assert_eq!(fleet.requests(Service::Reviews).await.expect("stats"), 0);
}

#[tokio::test]
async fn identity_publishes_both_keys_and_schemas_are_published() {
    let fleet = Fleet::start().await.expect("fleet");
    let (_, _, body) = get(format!("{}/.well-known/jwks.json", fleet.url(Service::Identity))).await;
    let jwks: Value = serde_json::from_str(&body).expect("json");
    let kids: Vec<&str> =
        jwks["keys"].as_array().expect("keys").iter().filter_map(|k| k["kid"].as_str()).collect();
    assert_eq!(kids, ["dev-es256-1", "dev-es256-2"]);
    assert!(jwks["keys"][0].get("d").is_none(), "no private key material in the JWKS");

    let (_, _, body) = get(format!("{}/__schemas", fleet.url(Service::Pricing))).await;
    let schemas: Value = serde_json::from_str(&body).expect("json");
    assert!(schemas["GET /prices/{id}"]["properties"]["price"].is_object(), "{schemas}");
}

/// `POST /carts/u-2/items` with a service token, an optional key and `body`.
async fn add_item(fleet: &Fleet, key: Option<&str>, body: &str) -> (u16, Option<String>, String) {
    let mut request = reqwest::Client::new()
        .post(format!("{}/carts/u-2/items", fleet.url(Service::Cart)))
        .bearer_auth(fleet.service_token(Service::Cart, "u-2", "web-bff"))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let response = request.send().await.expect("mock reachable");
    let status = response.status().as_u16();
    let replayed =
        response.headers().get("idempotency-replayed").and_then(|v| v.to_str().ok()).map(str::to_owned);
    (status, replayed, response.text().await.expect("body"))
}

#[tokio::test]
async fn cart_writes_replay_a_repeated_key_and_refuse_a_reused_one() {
    let fleet = Fleet::start().await.expect("mocks");
    let one = r#"{"productId":"p-1","quantity":1}"#;
    let (status, replayed, first) = add_item(&fleet, Some("key-mock-0001"), one).await;
    assert_eq!((status, replayed), (201, None));
    let (status, replayed, again) = add_item(&fleet, Some("key-mock-0001"), one).await;
    assert_eq!((status, replayed.as_deref(), again), (201, Some("true"), first));
    let (status, _, body) =
        add_item(&fleet, Some("key-mock-0001"), r#"{"productId":"p-3","quantity":1}"#).await;
    assert_eq!(status, 422, "{body}");
    let (status, _, body) = add_item(&fleet, None, one).await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn a_token_reads_and_writes_only_its_subjects_data_unless_staff() {
    let fleet = Fleet::start().await.expect("fleet");
    let http = reqwest::Client::new();
    let call = |service: Service, subject: &str, method: reqwest::Method, path: &str| {
        let token = fleet.service_token(service, subject, "mobile-bff");
        let mut request = http.request(method, format!("{}{path}", fleet.url(service))).bearer_auth(token);
        if path.ends_with("/items") {
            request = request
                .header("idempotency-key", "ownership-1")
                .json(&json!({"productId": "p-1", "quantity": 1}));
        }
        async move { request.send().await.expect("mock reachable").status().as_u16() }
    };
    use reqwest::Method;
    // The attacker's run: u-1's cart token read /carts/u-2.
    for (service, method, path) in [
        (Service::Cart, Method::GET, "/carts/u-2"),
        (Service::Cart, Method::POST, "/carts/u-2/items"),
        (Service::User, Method::GET, "/users/u-2"),
        (Service::Orders, Method::GET, "/orders?user=u-2"),
    ] {
        assert_eq!(call(service, "u-1", method.clone(), path).await, 403, "u-1: {method} {path}");
        assert_eq!(call(service, "u-2", method.clone(), path).await / 100, 2, "u-2: {method} {path}");
        assert_eq!(call(service, "s-2", method.clone(), path).await / 100, 2, "support: {method} {path}");
    }
}

/// `POST /orders` as `user` with `key`, through the orders mock's real route.
async fn place_order(fleet: &Fleet, user: &str, key: &str, body: &Value) -> (u16, Option<String>, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/orders", fleet.url(Service::Orders)))
        .bearer_auth(fleet.service_token(Service::Orders, user, "mobile-bff"))
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .expect("mock reachable");
    let status = response.status().as_u16();
    let replayed =
        response.headers().get("idempotency-replayed").and_then(|v| v.to_str().ok()).map(str::to_owned);
    (status, replayed, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn an_order_and_its_key_survive_a_restart_of_the_orders_mock() {
    let dir = std::env::temp_dir().join(format!("mock-orders-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let body = json!({"userId": "u-1", "items": [{"productId": "p-1", "quantity": 2}]});
    let first = {
        let fleet = Fleet::start_with_data(&[Service::Orders], Some(&dir)).await.expect("mocks");
        let (status, replayed, order) = place_order(&fleet, "u-1", "restart-key-01", &body).await;
        assert_eq!((status, replayed), (201, None), "{order}");
        order
    }; // the fleet, and its orders mock, stop here
    let fleet = Fleet::start_with_data(&[Service::Orders], Some(&dir)).await.expect("mocks again");
    let (_, _, found) =
        get_as(&fleet, Service::Orders, &format!("/orders/{}", first["id"].as_str().expect("id"))).await;
    let found: Value = serde_json::from_str(&found).expect("json");
    assert_eq!(found, first, "the order is still there");
    let (status, replayed, again) = place_order(&fleet, "u-1", "restart-key-01", &body).await;
    assert_eq!((status, replayed.as_deref()), (201, Some("true")));
    assert_eq!(again, first, "the key is enforced across the restart: the first order, not a second");
    let other = json!({"userId": "u-1", "items": [{"productId": "p-2", "quantity": 1}]});
    assert_eq!(place_order(&fleet, "u-1", "restart-key-01", &other).await.0, 422);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_probe_tells_a_running_mock_from_a_missing_one() {
    let fleet = Fleet::start_only(&[Service::Cart]).await.expect("mocks");
    let port = fleet.url(Service::Cart).rsplit(':').next().unwrap_or_default().to_owned();
    let probe = |port: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_services-mock"))
            .args(["probe", "--port", port])
            .output()
            .expect("the binary runs")
    };
    let up = tokio::task::spawn_blocking(move || probe(&port)).await.expect("probe");
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));
    let nobody =
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
    assert!(!probe(&nobody.to_string()).status.success());
}
