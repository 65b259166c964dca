//! Cart and orders: writes that are safe to retry (the IETF Idempotency-Key
//! draft end to end), and orders only their owner can see (OWASP API1).
//! Real HTTP, real tokens, the real orders and cart mocks; what reached a
//! service is counted from its `/__stats`.

use std::time::Duration;

use bff_testkit::{RedisServer, Reply, TestApp};
use serde_json::{Value, json};
use services_mock::{Fleet, Service};

use crate::helpers::{Binary, spawn_app, spawn_app_with};

async fn write(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    user: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> Reply {
    write_to(&app.http, &app.base, &app.token(user), method, path, key, body).await
}

async fn write_to(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    method: reqwest::Method,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let mut request = http.request(method, format!("{base}{path}")).bearer_auth(token);
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    Reply::read(request.send().await.expect("the BFF answers")).await
}

fn order_of(lines: &[(&str, u32)]) -> Value {
    json!({ "items": lines.iter().map(|(id, n)| json!({"productId": id, "quantity": n})).collect::<Vec<_>>() })
}

/// Requests that reached `route` of `service` (`/__stats` by route).
async fn reached(fleet: &Fleet, service: Service, route: &str) -> u64 {
    fleet.stats(service).await.expect("stats")["routes"][route].as_u64().unwrap_or(0)
}

/// The orders the orders service holds for `user`, asked directly.
async fn orders_at_service(fleet: &Fleet, user: &str) -> Vec<Value> {
    let token = fleet.service_token(Service::Orders, user, "mobile-bff");
    let body: Value = reqwest::Client::new()
        .get(format!("{}/orders?user={user}", fleet.url(Service::Orders)))
        .bearer_auth(token)
        .send()
        .await
        .expect("orders mock")
        .json()
        .await
        .expect("json");
    body["orders"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn an_order_is_placed_once_and_a_retry_with_its_key_replays_it() {
    let app = spawn_app().await;
    let post = reqwest::Method::POST;
    let body = order_of(&[("p-1", 2), ("p-7", 1)]);

    let missing = write(&app, post.clone(), "/v1/orders", "u-1", None, Some(body.clone())).await;
    missing.assert_problem(400, "idempotency.key_missing");
    let malformed = write(&app, post.clone(), "/v1/orders", "u-1", Some("short"), Some(body.clone())).await;
    malformed.assert_problem(400, "request.invalid");
    assert_eq!(reached(&app.fleet, Service::Orders, "POST /orders").await, 0, "refused at the BFF");

    let first =
        write(&app, post.clone(), "/v1/orders", "u-1", Some("order-key-0001"), Some(body.clone())).await;
    assert_eq!(first.status, 201, "{}", first.text);
    let order = first.json();
    let id = order["id"].as_str().expect("an id").to_owned();
    assert_eq!(first.header("location"), Some(format!("/v1/orders/{id}").as_str()));
    assert_eq!(order["itemCount"], 3);
    assert_eq!(first.header("idempotent-replayed"), None);

    let again =
        write(&app, post.clone(), "/v1/orders", "u-1", Some("order-key-0001"), Some(body.clone())).await;
    assert_eq!(again.status, 201);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.json(), order, "the first answer, byte for byte");
    assert_eq!(again.header("location"), first.header("location"));

    let other = order_of(&[("p-2", 1)]);
    let reused = write(&app, post.clone(), "/v1/orders", "u-1", Some("order-key-0001"), Some(other)).await;
    reused.assert_problem(422, "idempotency.key_reused");

    // Keys are per caller: u-2 may use the same key for an order of its own.
    let theirs = write(&app, post, "/v1/orders", "u-2", Some("order-key-0001"), Some(body)).await;
    assert_eq!(theirs.status, 201);
    assert_ne!(theirs.json()["id"], order["id"]);

    assert_eq!(reached(&app.fleet, Service::Orders, "POST /orders").await, 2, "one per distinct order");
    assert_eq!(orders_at_service(&app.fleet, "u-1").await.len(), 1);

    let shown = app.get_with(&format!("/v1/orders/{id}"), Some(&app.token("u-1")), &[]).await;
    assert_eq!(shown.status, 200);
    assert_eq!(shown.json(), order);
    let listed = app.get_with("/v1/orders", Some(&app.token("u-1")), &[]).await;
    assert_eq!(listed.json()["orders"][0]["id"], id.as_str());
}

/// Fires 50 requests with one key at once while the first is held in
/// flight by the orders service: exactly one order is created.
async fn fifty_at_once(app: &TestApp) {
    app.fleet.set_faults(Service::Orders, json!({"afterWriteMs": 300})).await.expect("faults");
    let body = order_of(&[("p-3", 1)]);
    let token = app.token("u-1");
    let requests = (0..50).map(|_| {
        write_to(
            &app.http,
            &app.base,
            &token,
            reqwest::Method::POST,
            "/v1/orders",
            Some("one-key-for-all"),
            Some(body.clone()),
        )
    });
    let replies = futures_util::future::join_all(requests).await;
    let created: Vec<&Reply> = replies.iter().filter(|r| r.status == 201).collect();
    let in_flight = replies.iter().filter(|r| r.status == 409).count();
    assert_eq!(
        created.len() + in_flight,
        50,
        "only 201 or 409: {:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert!(!created.is_empty());
    for reply in replies.iter().filter(|r| r.status == 409) {
        reply.assert_problem(409, "idempotency.in_flight");
        assert!(reply.header("retry-after").is_some());
    }
    let ids: std::collections::BTreeSet<String> =
        created.iter().map(|r| r.json()["id"].as_str().unwrap_or_default().to_owned()).collect();
    assert_eq!(ids.len(), 1, "every 201 is the same order: {ids:?}");
    assert_eq!(
        reached(&app.fleet, Service::Orders, "POST /orders").await,
        1,
        "one write reached the service"
    );
    assert_eq!(orders_at_service(&app.fleet, "u-1").await.len(), 1, "exactly one order exists");
}

#[tokio::test]
async fn fifty_concurrent_orders_with_one_key_create_one_order_through_redis() {
    let redis = RedisServer::start();
    let app = spawn_app_with(|config| config.redis.url = Some(redis.url())).await;
    fifty_at_once(&app).await;
}

#[tokio::test]
async fn fifty_concurrent_orders_with_one_key_create_one_order_without_redis() {
    let app = spawn_app().await;
    fifty_at_once(&app).await;
}

#[tokio::test]
async fn a_lost_answer_is_an_unknown_outcome_and_the_retry_finds_the_order() {
    let app = spawn_app_with(|config| {
        if let Some(orders) = config.downstream.services.get_mut("orders") {
            orders.timeout_ms = 300;
        }
    })
    .await;
    app.fleet.set_faults(Service::Orders, json!({"afterWriteMs": 1000})).await.expect("faults");
    let body = order_of(&[("p-4", 1)]);
    let post = reqwest::Method::POST;
    let lost =
        write(&app, post.clone(), "/v1/orders", "u-1", Some("lost-answer-01"), Some(body.clone())).await;
    let problem = lost.assert_problem(504, "write.outcome_unknown");
    assert!(problem["title"].as_str().is_some_and(|t| t.contains("same Idempotency-Key")));
    let placed = orders_at_service(&app.fleet, "u-1").await;
    assert_eq!(placed.len(), 1, "the write happened: only its answer was lost");

    app.fleet.clear_faults(Service::Orders).await.expect("heal");
    let retry = write(&app, post, "/v1/orders", "u-1", Some("lost-answer-01"), Some(body)).await;
    assert_eq!(retry.status, 201, "{}", retry.text);
    assert_eq!(retry.json()["id"], placed[0]["id"], "the original order, not a second one");
    // The BFF released the key after the unknown outcome, so the retry
    // reached the service, which answered it from its own key record.
    assert_eq!(reached(&app.fleet, Service::Orders, "POST /orders").await, 2);
    assert_eq!(orders_at_service(&app.fleet, "u-1").await.len(), 1);
}

#[tokio::test]
async fn a_bff_killed_mid_order_is_retried_on_a_fresh_one_and_finds_the_original() {
    let fleet = Fleet::for_bff(mobile_bff::ENTRY).await.expect("mocks");
    let redis = RedisServer::start();
    let env = [("REDIS_URL", redis.url()), ("MOBILE_BFF__SERVER__IDEMPOTENCY_LEASE_MS", "1500".to_owned())];
    let first = Binary::start(&fleet, &env);
    // The orders service writes, then holds its answer: the window in
    // which the BFF dies.
    fleet.set_faults(Service::Orders, json!({"afterWriteMs": 3000})).await.expect("faults");
    let token =
        fleet.identity().user_token(mobile_bff::ENTRY, "u-1", Duration::from_secs(300)).expect("token");
    let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().expect("client");
    let body = order_of(&[("p-5", 1)]);
    let in_flight = tokio::spawn({
        let (http, base, token, body) = (http.clone(), first.base.clone(), token.clone(), body.clone());
        async move {
            http.post(format!("{base}/v1/orders"))
                .bearer_auth(token)
                .header("idempotency-key", "crash-key-0001")
                .json(&body)
                .send()
                .await
        }
    });
    let mut written = Vec::new();
    for _ in 0..100 {
        written = orders_at_service(&fleet, "u-1").await;
        if !written.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(written.len(), 1, "the order reached the orders service");
    drop(first); // SIGKILL, before the answer came back
    assert!(in_flight.await.expect("task").is_err(), "the client never got an answer");
    fleet.clear_faults(Service::Orders).await.expect("heal");

    let fresh = Binary::start(&fleet, &env);
    let mut statuses = Vec::new();
    let answer = loop {
        let reply = write_to(
            &http,
            &fresh.base,
            &token,
            reqwest::Method::POST,
            "/v1/orders",
            Some("crash-key-0001"),
            Some(body.clone()),
        )
        .await;
        statuses.push(reply.status.as_u16());
        if reply.status != 409 {
            break reply;
        }
        // The dead instance's hold on the key lasts until its lease ends.
        reply.assert_problem(409, "idempotency.in_flight");
        assert!(statuses.len() < 20, "the lease never ended: {statuses:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(answer.status, 201, "{}", answer.text);
    assert_eq!(answer.json()["id"], written[0]["id"], "the original order");
    assert_eq!(orders_at_service(&fleet, "u-1").await.len(), 1, "not a second one");
}

#[tokio::test]
async fn another_users_order_answers_exactly_like_an_unknown_one() {
    let app = spawn_app().await;
    // u-2 has seeded orders; u-3 is another real user.
    let (owner, other) = (app.token("u-2"), app.token("u-3"));
    let listed = app.get_with("/v1/orders", Some(&owner), &[]).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    let id = listed.json()["orders"][0]["id"].as_str().expect("u-2 has an order").to_owned();
    assert_eq!(app.get_with(&format!("/v1/orders/{id}"), Some(&owner), &[]).await.status, 200);

    app.fleet.reset_stats(Service::Orders).await.expect("stats");
    let theirs = app.get_with(&format!("/v1/orders/{id}"), Some(&other), &[]).await;
    let unknown = app.get_with("/v1/orders/o-u-3-999", Some(&other), &[]).await;
    theirs.assert_problem(404, "resource.not_found");
    assert_eq!(theirs.status, unknown.status);
    assert_eq!(theirs.text, unknown.text, "same body");
    assert_eq!(theirs.header("content-type"), unknown.header("content-type"));
    // Same work for both (one call each to the service): no timing tell of
    // "exists, not yours" against "does not exist".
    assert_eq!(reached(&app.fleet, Service::Orders, "GET /orders/{id}").await, 2);

    // And a placed order too.
    let placed = write(
        &app,
        reqwest::Method::POST,
        "/v1/orders",
        "u-2",
        Some("bola-key-0001"),
        Some(order_of(&[("p-1", 1)])),
    )
    .await;
    let placed_id = placed.json()["id"].as_str().expect("id").to_owned();
    let peek = app.get_with(&format!("/v1/orders/{placed_id}"), Some(&other), &[]).await;
    assert_eq!(peek.text, unknown.text);
}

#[tokio::test]
async fn orders_are_paged_newest_first_with_cursors_only_their_caller_can_use() {
    let app = spawn_app().await;
    // u-5 has four seeded orders.
    let token = app.token("u-5");
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let path = match &cursor {
            Some(c) => format!("/v1/orders?limit=3&cursor={c}"),
            None => "/v1/orders?limit=3".to_owned(),
        };
        let page = app.get_with(&path, Some(&token), &[]).await;
        assert_eq!(page.status, 200, "{}", page.text);
        let body = page.json();
        for order in body["orders"].as_array().expect("orders") {
            seen.push(order["placedAt"].as_str().unwrap_or_default().to_owned());
        }
        cursor = body["nextCursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
        // Another caller cannot use it, and nothing reaches the service.
        let before = reached(&app.fleet, Service::Orders, "GET /orders").await;
        let stolen = app
            .get_with(
                &format!(
                    "{path_base}?cursor={c}",
                    path_base = "/v1/orders",
                    c = cursor.as_deref().unwrap_or_default()
                ),
                Some(&app.token("u-6")),
                &[],
            )
            .await;
        stolen.assert_problem(400, "request.invalid");
        assert_eq!(reached(&app.fleet, Service::Orders, "GET /orders").await, before);
    }
    assert_eq!(seen.len(), 4, "every order once: {seen:?}");
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted, "newest first");
    app.get_with("/v1/orders?cursor=bm90LW1pbmU", Some(&token), &[])
        .await
        .assert_problem(400, "request.invalid");
    app.get_with("/v1/orders?limit=51", Some(&token), &[]).await.assert_problem(400, "request.invalid");
}

#[tokio::test]
async fn the_cart_is_read_and_changed_with_keys() {
    let app = spawn_app().await;
    let token = app.token("u-3");
    let cart = app.get_with("/v1/cart", Some(&token), &[]).await;
    assert_eq!(cart.status, 200, "{}", cart.text);
    let before = cart.json()["data"]["cart"]["itemCount"].as_u64().expect("count");

    let added = write(
        &app,
        reqwest::Method::POST,
        "/v1/cart/items",
        "u-3",
        Some("cart-key-0001"),
        Some(json!({"productId": "p-9", "quantity": 2})),
    )
    .await;
    assert_eq!(added.status, 201, "{}", added.text);
    assert_eq!(added.json()["itemCount"].as_u64(), Some(before + 2));
    let line = &added.json()["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|l| l["productId"] == "p-9")
        .cloned()
        .expect("the line");
    assert_eq!(
        line["lineTotal"]["amountMinor"].as_i64(),
        line["unitPrice"]["amountMinor"].as_i64().map(|p| p * 2)
    );

    let changed = write(
        &app,
        reqwest::Method::PATCH,
        "/v1/cart/items/p-9",
        "u-3",
        Some("cart-key-0002"),
        Some(json!({"quantity": 5})),
    )
    .await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    assert_eq!(changed.json()["itemCount"].as_u64(), Some(before + 5));

    let removed =
        write(&app, reqwest::Method::DELETE, "/v1/cart/items/p-9", "u-3", Some("cart-key-0003"), None).await;
    assert_eq!(removed.status, 200);
    assert_eq!(removed.json()["itemCount"].as_u64(), Some(before));
    // A replay of the delete is the first answer, not a 404 for a line gone.
    let replayed =
        write(&app, reqwest::Method::DELETE, "/v1/cart/items/p-9", "u-3", Some("cart-key-0003"), None).await;
    assert_eq!(replayed.status, 200);
    assert_eq!(replayed.header("idempotent-replayed"), Some("true"));
    let gone =
        write(&app, reqwest::Method::DELETE, "/v1/cart/items/p-9", "u-3", Some("cart-key-0004"), None).await;
    gone.assert_problem(404, "resource.not_found");
    let unknown = write(
        &app,
        reqwest::Method::POST,
        "/v1/cart/items",
        "u-3",
        Some("cart-key-0005"),
        Some(json!({"productId": "p-999", "quantity": 1})),
    )
    .await;
    unknown.assert_problem(404, "resource.not_found");
    // A settled refusal is replayed too: the same request gets the same answer.
    let again = write(
        &app,
        reqwest::Method::POST,
        "/v1/cart/items",
        "u-3",
        Some("cart-key-0005"),
        Some(json!({"productId": "p-999", "quantity": 1})),
    )
    .await;
    again.assert_problem(404, "resource.not_found");
    assert_eq!(again.header("idempotent-replayed"), Some("true"));

    let writes = [
        "POST /carts/{user}/items",
        "PATCH /carts/{user}/items/{product}",
        "DELETE /carts/{user}/items/{product}",
    ];
    let mut total = 0;
    for route in writes {
        total += reached(&app.fleet, Service::Cart, route).await;
    }
    assert_eq!(total, 5, "five distinct writes reached the cart service; the two replays did not");
    let after = app.get_with("/v1/cart", Some(&token), &[]).await;
    assert_eq!(after.json()["data"]["cart"]["itemCount"].as_u64(), Some(before));
}
