//! Health, readiness, unknown routes, body limits, load shedding, graceful
//! shutdown and configuration validation.

use std::time::Duration;

use serde_json::json;
use services_mock::Service;

use crate::helpers::{TestApp, spawn_app, spawn_app_with};

async fn wait_until_in_flight(app: &TestApp, service: Service) {
    for _ in 0..200 {
        let stats = app.fleet.stats(service).await.expect("stats");
        if stats["inFlight"].as_u64() == Some(1) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{service} never saw the request");
}

#[tokio::test]
async fn health_and_readiness_answer_without_credentials() {
    let app = spawn_app().await;
    let health = app.get_with("/healthz", None, &[]).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json(), json!({"status": "ok"}));
    let ready = app.get_with("/readyz", None, &[]).await;
    assert_eq!(ready.status, 200, "{}", ready.text);
}

#[tokio::test]
async fn readiness_fails_while_no_signing_keys_can_be_loaded() {
    let app = spawn_app_with(|config| config.auth.jwks_url = "http://127.0.0.1:9/jwks.json".to_owned()).await;
    let ready = app.get_with("/readyz", None, &[]).await;
    assert_eq!(ready.status, 503, "{}", ready.text);
    let token = app.token("u-1");
    let reply = app.get_with("/v1/home", Some(&token), &[]).await;
    reply.assert_problem(401, "auth.invalid_token");
    assert_eq!(app.fleet.domain_requests().await.expect("stats"), 0);
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let app = spawn_app().await;
    app.get("/v1/nope").await.assert_problem(404, "resource.not_found");
    let reply = app.http.delete(format!("{}/v1/home", app.base)).send().await.expect("request");
    assert_eq!(reply.status(), 405);
    assert_eq!(
        reply.headers().get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
}

#[tokio::test]
async fn an_oversized_body_is_refused_before_it_is_read() {
    let app = spawn_app_with(|config| config.server.body_limit_bytes = 1024).await;
    let reply = app
        .http
        .post(format!("{}/v1/home", app.base))
        .header("content-type", "application/json")
        .body(vec![b' '; 4096])
        .send()
        .await
        .expect("request");
    assert_eq!(reply.status(), 413);
    let body: serde_json::Value = reply.json().await.expect("problem body");
    assert_eq!(body["code"], "request.too_large");
}

#[tokio::test]
async fn beyond_the_concurrency_limit_requests_are_shed_not_queued() {
    let app = spawn_app_with(|config| config.server.max_concurrent_requests = 1).await;
    app.fleet.set_faults(Service::Cart, json!({"latencyMs": 1_500})).await.expect("faults");
    let token = app.token("u-1");
    let first = tokio::spawn({
        let http = app.http.clone();
        let url = format!("{}/v1/home", app.base);
        let token = token.clone();
        async move { http.get(url).bearer_auth(token).send().await.map(|r| r.status().as_u16()) }
    });
    wait_until_in_flight(&app, Service::Cart).await;

    let shed = app.get_with("/v1/home", Some(&token), &[]).await;
    shed.assert_problem(503, "overloaded");
    assert_eq!(shed.header("retry-after"), Some("1"));
    assert!(shed.header("x-request-id").is_some(), "shed responses still carry a request id");
    assert_eq!(app.get_with("/healthz", None, &[]).await.status, 200, "probes are not shed");

    assert_eq!(first.await.expect("task").expect("first request"), 200);
    assert_eq!(app.fleet.requests(Service::Cart).await.expect("stats"), 1, "the shed request did no work");
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let mut app = spawn_app().await;
    app.fleet.set_faults(Service::Cart, json!({"latencyMs": 700})).await.expect("faults");
    let token = app.token("u-1");
    let in_flight = tokio::spawn({
        let http = app.http.clone();
        let url = format!("{}/v1/home", app.base);
        async move { http.get(url).bearer_auth(token).send().await.map(|r| r.status().as_u16()) }
    });
    wait_until_in_flight(&app, Service::Cart).await;

    app.shutdown();
    assert_eq!(in_flight.await.expect("task").expect("in-flight request completes"), 200);
    let server = app.server.take().expect("server task");
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("server stops after draining")
        .expect("task")
        .expect("clean exit");
    let after = reqwest::Client::new().get(format!("{}/healthz", app.base)).send().await;
    assert!(after.is_err(), "the listener is closed after shutdown");
}

#[test]
fn configuration_errors_name_the_key_and_the_problem() {
    use figment::Figment;
    use figment::providers::{Format, Toml};

    let bff = mobile_bff::bff();
    let load = |toml: &str| bff.load_from(Figment::from(Toml::string(toml)));

    let message = load("[server]\nprot = 1\n").expect_err("unknown key").to_string();
    assert!(message.contains("prot"), "{message}");

    let message = load("[sesion]\ncookie_key = \"x\"\n").expect_err("unknown section").to_string();
    assert!(message.contains("unknown section `sesion`"), "{message}");

    let message = load(
        "[downstream.services.pricing]\nbase_url = \"ftp://x\"\ntimeout_ms = 0\n[auth]\nalgorithms = [\"HS256\"]\n",
    )
    .expect_err("invalid values")
    .to_string();
    assert!(message.contains("downstream.services.pricing.base_url"), "{message}");
    assert!(message.contains("downstream.services.pricing.timeout_ms"), "{message}");
    assert!(message.contains("auth.algorithms"), "{message}");

    let message =
        load("[downstream.services.payments]\ntimeout_ms = 50\n").expect_err("not called").to_string();
    assert!(message.contains("downstream.services.payments"), "{message}");

    let overridden = load("[server]\nport = 9999\n").expect("valid override");
    assert_eq!(overridden.server.port, 9999);
    assert_eq!(overridden.compose, bff.defaults().compose, "other sections keep their defaults");
}

#[test]
fn one_nested_key_can_be_overridden_alone() {
    use figment::Figment;
    use figment::providers::{Format, Toml};

    // What `MOBILE_BFF__CACHE__POLICIES__RECOMMENDATIONS__TTL_SECS=30` and
    // `..._SERVICES__CATALOG__TIMEOUT_MS=90` become: one key each.
    let bff = mobile_bff::bff();
    let config = bff
        .load_from(Figment::from(Toml::string(
            "[cache.policies.recommendations]\nttl_secs = 30\n[downstream.services.catalog]\ntimeout_ms = 90\n",
        )))
        .expect("one key alone is a whole setting");
    let policy = config.cache.policy("recommendations");
    assert_eq!(policy.ttl_secs, 30);
    assert_eq!(policy.swr_secs, config.cache.default_policy.swr_secs, "the rest from default_policy");
    let catalog = &config.downstream.services["catalog"];
    assert_eq!(catalog.timeout_ms, 90);
    assert_eq!(catalog.base_url, "http://127.0.0.1:7002", "the rest from the defaults");
}

#[test]
fn the_binary_prints_its_effective_configuration_and_its_document_and_names_a_bad_key() {
    use std::process::Command;

    let binary = env!("CARGO_BIN_EXE_mobile-bff");
    // The README's example: one nested key, alone, from the environment.
    let output = Command::new(binary)
        .arg("config")
        .env("MOBILE_BFF__CACHE__POLICIES__RECOMMENDATIONS__TTL_SECS", "30")
        .env_remove("REDIS_URL")
        .output()
        .expect("the binary runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let config: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(config["cache"]["policies"]["recommendations"]["ttl_secs"], 30);
    assert_eq!(config["auth"]["exchange"]["client_secret"], "<redacted>");
    assert!(config.get("session").is_none(), "mobile has no session section");

    let output =
        Command::new(binary).arg("config").env("MOBILE_BFF__SESION__COOKIE_KEY", "x").output().expect("runs");
    assert!(!output.status.success());
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(message.contains("unknown section `sesion`"), "{message}");

    let output = Command::new(binary).arg("openapi").output().expect("runs");
    let committed = include_str!("../../../../openapi/mobile-bff.json");
    assert!(output.stdout == committed.as_bytes(), "`mobile-bff openapi` prints the committed document");
}
