//! partner-bff integration tests: real client-credentials tokens from the
//! identity mock, the real mocks behind the BFF.

mod pacts;

use bff_server::Config;
use bff_testkit::{Reply, TestApp, status_of};
use serde_json::json;
use services_mock::Service;

mod catalogue;
mod rate_limit;
mod scale_out;

async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

async fn spawn_app_with(customize: impl FnOnce(&mut Config<partner_bff::ApiVersions>)) -> TestApp {
    bff_testkit::spawn(partner_bff::bff(), customize).await
}

/// A token from the identity provider's real client-credentials grant.
pub(crate) async fn client_credentials(app: &TestApp, client_id: &str, secret: &str) -> String {
    let response = reqwest::Client::new()
        .post(format!("{}/oauth/token", app.fleet.url(Service::Identity)))
        .basic_auth(client_id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("identity reachable");
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.expect("json");
    body["access_token"].as_str().expect("access_token").to_owned()
}

pub(crate) async fn product(app: &TestApp, token: &str, id: &str) -> Reply {
    app.get_with(&format!("/partner/v1/products/{id}"), Some(token), &[]).await
}

#[tokio::test]
async fn a_partner_with_client_credentials_gets_the_product() {
    let app = spawn_app().await;
    let token = client_credentials(&app, "partner-acme", "acme-dev-secret").await;
    let reply = product(&app, &token, "p-5").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["degraded"], false);
    assert_eq!(
        body["data"],
        json!({
            "id": "p-5", "name": "Coastal Headphones", "brand": "Stark",
            "price": {"amountMinor": 19499, "currency": "EUR"},
            "listPrice": {"amountMinor": 24373, "currency": "EUR"},
            "availability": "in_stock"
        })
    );
    // Downstream, the partner is the subject and partner-bff the actor.
    let stats = app.fleet.stats(Service::Catalog).await.expect("stats");
    assert_eq!(stats["recent"][0]["token"]["sub"], "partner-acme");
    assert_eq!(stats["recent"][0]["token"]["act"], json!({"sub": "partner-bff"}));
    assert_eq!(stats["recent"][0]["token"]["aud"], "catalog");
}

#[tokio::test]
async fn user_tokens_do_not_open_partner_routes() {
    let app = spawn_app().await;
    let mobile = app.token_for(bff_registry::entry("mobile-bff"), "u-1");
    product(&app, &mobile, "p-1").await.assert_problem(401, "auth.invalid_token");

    // Even a user token minted for this audience is refused: partner routes act for partners.
    let mut claims = app.fleet.identity().user_claims(
        bff_registry::entry("mobile-bff"),
        "u-1",
        std::time::Duration::from_secs(60),
    );
    claims.aud = "partner-bff".to_owned();
    let forged_kind = app.fleet.identity().sign(&claims).expect("sign");
    product(&app, &forged_kind, "p-1").await.assert_problem(403, "auth.forbidden");

    assert_eq!(app.fleet.domain_requests().await.expect("stats"), 0, "nothing forwarded");
}

#[tokio::test]
async fn unknown_products_are_404_and_missing_stock_is_unknown() {
    let app = spawn_app().await;
    let token = client_credentials(&app, "partner-globex", "globex-dev-secret").await;
    product(&app, &token, "p-404").await.assert_problem(404, "resource.not_found");

    app.fleet.set_faults(Service::Inventory, json!({"errorRatio": 1.0})).await.expect("faults");
    let body = product(&app, &token, "p-1").await.json();
    assert_eq!(body["degraded"], true);
    assert_eq!(body["data"]["availability"], "unknown");
    assert_eq!(status_of(&body, "availability")["reasonCode"], "unavailable");
}

#[tokio::test]
async fn the_openapi_document_is_public_and_is_the_generated_one() {
    let app = spawn_app().await;
    let reply = app.get_with("/openapi.json", None, &[]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.text, bff_server::openapi::to_json(&partner_bff::bff().openapi()));
}

#[tokio::test]
async fn conforms_to_the_shell() {
    bff_testkit::conformance(partner_bff::bff, |_| {}).await;
}

#[tokio::test]
async fn the_dev_console_calls_as_either_seeded_partner_with_its_client_credentials() {
    let app = spawn_app().await;
    let console = app.console().await;
    let http = reqwest::Client::new();
    let clients: serde_json::Value =
        http.get(format!("{console}/api/clients")).send().await.expect("up").json().await.expect("json");
    let callers: Vec<&str> = clients["clients"][0]["callers"]
        .as_array()
        .expect("callers")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(callers, ["partner-acme", "partner-globex"]);
    // A product each: a product read once is cached for every partner.
    for (partner, product) in callers.into_iter().zip(["p-1", "p-2"]) {
        let path = format!("/partner/v1/products/{product}");
        let answer: serde_json::Value = http
            .post(format!("{console}/api/call"))
            .json(&serde_json::json!({"client": "partner", "caller": partner, "path": path}))
            .send()
            .await
            .expect("console")
            .json()
            .await
            .expect("json");
        assert_eq!(answer["status"], 200, "{partner}: {answer}");
    }
    // Each as itself: the catalog saw both partners behind the exchanged tokens.
    let stats = app.fleet.stats(Service::Catalog).await.expect("stats");
    let subjects: Vec<&str> = stats["recent"]
        .as_array()
        .expect("recent requests")
        .iter()
        .filter_map(|r| r["token"]["sub"].as_str())
        .collect();
    for partner in ["partner-acme", "partner-globex"] {
        assert!(subjects.contains(&partner), "{partner} not among {subjects:?}");
    }
}
