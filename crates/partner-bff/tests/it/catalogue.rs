//! The partner catalogue: cursor pages, batch reads, v2 beside a
//! deprecated v1, and what each costs of the quota. Real client-credentials
//! tokens, the real mocks, calls counted at the mocks.

use std::collections::BTreeSet;

use bff_testkit::Reply;
use serde_json::{Value, json};
use services_mock::Service;

use crate::{client_credentials, spawn_app, spawn_app_with};

/// The `Link` values of an answer that have `rel` (a page's next link sits
/// beside v1's deprecation link).
fn link(reply: &Reply, rel: &str) -> Option<String> {
    let wanted = format!("rel=\"{rel}\"");
    reply
        .headers
        .get_all("link")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.ends_with(&wanted))
        .map(str::to_owned)
}

async fn reached(app: &bff_testkit::TestApp, service: Service, route: &str) -> u64 {
    app.fleet.stats(service).await.expect("stats")["routes"][route].as_u64().unwrap_or(0)
}

async fn batch(app: &bff_testkit::TestApp, token: &str, body: Value) -> Reply {
    let request =
        app.http.post(format!("{}/partner/v1/products:batchGet", app.base)).bearer_auth(token).json(&body);
    Reply::read(request.send().await.expect("the BFF answers")).await
}

#[tokio::test]
async fn walking_every_page_returns_each_product_once_in_a_stable_order() {
    let app = spawn_app().await;
    let token = client_credentials(&app, "partner-acme", "acme-dev-secret").await;
    let mut seen = Vec::new();
    let mut path = "/partner/v1/products?limit=7".to_owned();
    let mut pages = 0;
    loop {
        let reply = app.get_with(&path, Some(&token), &[]).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        pages += 1;
        let body = reply.json();
        for item in body["data"]["items"].as_array().expect("items") {
            seen.push(item["id"].as_str().expect("id").to_owned());
            assert!(item["price"]["amountMinor"].is_i64(), "v1 prices are minor units: {item}");
        }
        match body["data"]["nextCursor"].as_str() {
            Some(cursor) => {
                assert!(link(&reply, "deprecation").is_some(), "v1's deprecation beside the next link");
                let next_link = link(&reply, "next").expect("a Link to the next page");
                let next = format!("/partner/v1/products?limit=7&cursor={cursor}");
                assert_eq!(next_link, format!("<{next}>; rel=\"next\""));
                path = next;
            }
            None => {
                assert_eq!(link(&reply, "next"), None, "no next on the last page");
                break;
            }
        }
        assert!(pages < 20, "the walk ends");
    }
    assert_eq!(pages, 7, "48 products, 7 a page");
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!((seen.len(), unique.len()), (48, 48), "each product exactly once");
    let numbers: Vec<u32> = seen.iter().filter_map(|id| id.strip_prefix("p-")?.parse().ok()).collect();
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "the catalog's stable order: {numbers:?}");
    // One batched call per service per page, however many products.
    assert_eq!(reached(&app, Service::Catalog, "GET /products/page").await, 7);
    assert_eq!(reached(&app, Service::Pricing, "GET /prices").await, 7);
    assert_eq!(reached(&app, Service::Inventory, "GET /stock").await, 7);
}

#[tokio::test]
async fn a_forged_foreign_or_oversized_page_request_is_400_and_reaches_nothing() {
    let app = spawn_app().await;
    let acme = client_credentials(&app, "partner-acme", "acme-dev-secret").await;
    let globex = client_credentials(&app, "partner-globex", "globex-dev-secret").await;
    let first = app.get_with("/partner/v1/products?limit=5", Some(&acme), &[]).await.json();
    let cursor = first["data"]["nextCursor"].as_str().expect("a cursor").to_owned();
    app.fleet.reset_stats(Service::Catalog).await.expect("stats");

    let refused = [
        (format!("/partner/v1/products?cursor={cursor}"), &globex, "another partner's cursor"),
        (format!("/partner/v2/products?cursor={cursor}"), &acme, "a v1 cursor on v2"),
        ("/partner/v1/products?cursor=NQ".to_owned(), &acme, "a forged cursor (\"5\")"),
        (format!("/partner/v1/products?cursor={}x", &cursor[..cursor.len() - 1]), &acme, "an edited cursor"),
        ("/partner/v1/products?limit=101".to_owned(), &acme, "over the page-size cap"),
        ("/partner/v1/products?limit=0".to_owned(), &acme, "an empty page"),
    ];
    for (path, token, what) in refused {
        let reply = app.get_with(&path, Some(token), &[]).await;
        assert_eq!(reply.status, 400, "{what}: {}", reply.text);
        reply.assert_problem(400, "request.invalid");
    }
    assert_eq!(app.fleet.requests(Service::Catalog).await.expect("stats"), 0, "nothing reached the catalog");
    // The owner's cursor works.
    let second =
        app.get_with(&format!("/partner/v1/products?limit=5&cursor={cursor}"), Some(&acme), &[]).await;
    assert_eq!(second.json()["data"]["items"][0]["id"], "p-6");
}

#[tokio::test]
async fn a_batch_is_one_call_per_service_and_lists_what_it_did_not_find() {
    let app = spawn_app().await;
    let token = client_credentials(&app, "partner-acme", "acme-dev-secret").await;
    let reply = batch(&app, &token, json!({"ids": ["p-3", "p-1", "p-999", "p-1", "p-48"]})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    let ids: Vec<&str> =
        body["data"]["items"].as_array().expect("items").iter().filter_map(|i| i["id"].as_str()).collect();
    assert_eq!(ids, ["p-3", "p-1", "p-48"], "found, in the order asked, once each");
    assert_eq!(body["data"]["notFound"], json!(["p-999"]));
    for (service, route) in [
        (Service::Catalog, "GET /products/batch"),
        (Service::Pricing, "GET /prices"),
        (Service::Inventory, "GET /stock"),
    ] {
        assert_eq!(app.fleet.requests(service).await.expect("stats"), 1, "{service}");
        assert_eq!(reached(&app, service, route).await, 1, "{service}: one batched call");
    }

    // Nothing found at all is still an answer, not a failure.
    let none = batch(&app, &token, json!({"ids": ["p-900", "p-901"]})).await;
    assert_eq!(none.status, 200, "{}", none.text);
    assert_eq!(none.json()["data"]["notFound"], json!(["p-900", "p-901"]));

    // Inventory down: the batch is answered, availability unknown.
    app.fleet.set_faults(Service::Inventory, json!({"errorRatio": 1.0})).await.expect("faults");
    let degraded = batch(&app, &token, json!({"ids": ["p-2"]})).await.json();
    assert_eq!(degraded["degraded"], true);
    assert_eq!(degraded["data"]["items"][0]["availability"], "unknown");

    let many: Vec<String> = (1..=101).map(|n| format!("p-{n}")).collect();
    for bad in [json!({"ids": many}), json!({"ids": []}), json!({"ids": ["../p-1"]}), json!({"id": ["p-1"]})]
    {
        batch(&app, &token, bad).await.assert_problem(400, "request.invalid");
    }
}

#[tokio::test]
async fn v1_is_served_deprecated_and_v2_prices_are_decimal_strings() {
    let app = spawn_app().await;
    let token = client_credentials(&app, "partner-acme", "acme-dev-secret").await;
    let v1 = app.get_with("/partner/v1/products/p-5", Some(&token), &[]).await;
    assert_eq!(v1.status, 200);
    assert_eq!(v1.header("deprecation"), Some("@1796083200"), "2026-12-01 (RFC 9745)");
    assert_eq!(v1.header("sunset"), Some("Wed, 30 Jun 2027 00:00:00 GMT"), "RFC 8594");
    assert_eq!(
        v1.header("link"),
        Some("<https://developer.example.com/partner/v2-migration>; rel=\"deprecation\"")
    );
    // On every v1 answer, refusals too.
    let anonymous = app.get_with("/partner/v1/products/p-5", None, &[]).await;
    assert_eq!(anonymous.status, 401);
    assert!(anonymous.header("deprecation").is_some());

    let v2 = app.get_with("/partner/v2/products/p-5", Some(&token), &[]).await;
    assert_eq!(v2.status, 200, "{}", v2.text);
    assert_eq!(v2.header("deprecation"), None);
    assert_eq!(v2.json()["data"]["price"], json!({"amount": "194.99", "currency": "EUR"}));
    assert_eq!(v1.json()["data"]["price"], json!({"amountMinor": 19499, "currency": "EUR"}));
    app.get_with("/partner/v2/products/p-404", Some(&token), &[])
        .await
        .assert_problem(404, "resource.not_found");
    let page = app.get_with("/partner/v2/products?limit=2", Some(&token), &[]).await.json();
    assert!(page["data"]["items"][0]["price"]["amount"].is_string());

    // Switched off by configuration once v1 is current again (or gone).
    let current = spawn_app_with(|config| config.own.v1 = None).await;
    let token = client_credentials(&current, "partner-acme", "acme-dev-secret").await;
    assert_eq!(
        current.get_with("/partner/v1/products/p-5", Some(&token), &[]).await.header("deprecation"),
        None
    );
}

#[tokio::test]
async fn a_batch_costs_more_of_the_quota_than_a_single_read() {
    let app = spawn_app_with(|config| config.rate_limit.default.requests = 25).await;
    let token = client_credentials(&app, "partner-acme", "acme-dev-secret").await;
    let ids = json!({"ids": ["p-1", "p-2"]});
    let first = batch(&app, &token, ids.clone()).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.header("ratelimit"), Some("\"partner\";r=15;t=24"), "a batch costs 10");
    assert_eq!(batch(&app, &token, ids.clone()).await.status, 200);
    batch(&app, &token, ids).await.assert_problem(429, "rate_limited");
    // 5 left: a page (5) passes, then nothing does.
    assert_eq!(app.get_with("/partner/v1/products?limit=3", Some(&token), &[]).await.status, 200);
    app.get_with("/partner/v1/products/p-1", Some(&token), &[]).await.assert_problem(429, "rate_limited");
}
