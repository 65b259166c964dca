//! Downstream calls carry exchanged service tokens (RFC 8693), never the
//! caller's token; exchanges are cached and coalesced; an identity provider
//! that cannot exchange fails the request closed.

use serde_json::json;
use services_mock::Service;

use crate::helpers::{spawn_app, spawn_app_with};

const HOME_SERVICES: [Service; 5] =
    [Service::User, Service::Cart, Service::Recommendations, Service::Promotions, Service::Shipping];

async fn exchanges(app: &crate::helpers::TestApp) -> u64 {
    let stats = app.fleet.stats(Service::Identity).await.expect("stats");
    stats["routes"]["POST /oauth/token"].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn each_service_receives_a_token_for_itself_naming_the_user_and_the_bff() {
    let app = spawn_app().await;
    let user_token = app.token("u-4");
    let reply = app.get_with("/v1/home", Some(&user_token), &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    for service in HOME_SERVICES {
        let stats = app.fleet.stats(service).await.expect("stats");
        let seen = &stats["recent"][0]["token"];
        assert_eq!(seen["aud"], service.name(), "{service}: audience-scoped");
        assert_eq!(seen["sub"], "u-4", "{service}: the user is the subject");
        assert_eq!(seen["act"], json!({"sub": "mobile-bff"}), "{service}: the BFF is the actor");
        assert_eq!(seen["scope"], format!("{}:read", service.name()), "{service}: least privilege");
        assert!(!stats.to_string().contains(&user_token), "{service} saw the caller's own token");
    }
}

#[tokio::test]
async fn concurrent_requests_by_one_user_share_one_exchange_per_audience() {
    let app = spawn_app().await;
    let token = app.token("u-2");
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let http = app.http.clone();
        let url = format!("{}/v1/home", app.base);
        let token = token.clone();
        requests
            .spawn(async move { http.get(url).bearer_auth(token).send().await.map(|r| r.status().as_u16()) });
    }
    while let Some(status) = requests.join_next().await {
        assert_eq!(status.expect("task").expect("response"), 200);
    }
    assert_eq!(exchanges(&app).await, 5, "one exchange per downstream audience, not per request");
    assert_eq!(app.fleet.requests(Service::Cart).await.expect("stats"), 100);
}

#[tokio::test]
async fn identity_provider_down_fails_closed_and_forwards_nothing() {
    let mut app = spawn_app().await;
    assert_eq!(app.get_with("/readyz", None, &[]).await.status, 200, "keys loaded first");
    app.fleet.stop(Service::Identity);
    let reply = app.get("/v1/home").await;
    reply.assert_problem(503, "dependency.unavailable");
    assert_eq!(app.fleet.domain_requests().await.expect("stats"), 0, "nothing sent without a service token");
}

#[tokio::test]
async fn a_refused_exchange_fails_closed() {
    let app =
        spawn_app_with(|config| config.auth.exchange.client_secret = bff_auth::Secret::new("wrong")).await;
    let reply = app.get("/v1/home").await;
    reply.assert_problem(503, "dependency.unavailable");
    assert_eq!(app.fleet.domain_requests().await.expect("stats"), 0);
}

#[tokio::test]
async fn cached_keys_keep_validating_while_the_jwks_endpoint_fails() {
    let app = spawn_app_with(|config| config.auth.jwks_refresh_cooldown_secs = 0).await;
    assert_eq!(app.get_with("/readyz", None, &[]).await.status, 200, "keys loaded first");
    app.fleet
        .set_faults(Service::Identity, json!({"errorRatio": 1.0, "routes": ["GET /.well-known/jwks.json"]}))
        .await
        .expect("faults");
    // An unknown kid (header {"alg":"ES256","kid":"new","typ":"at+jwt"}) forces a refresh, which fails...
    let reply = app
        .get_with("/v1/home", Some("eyJhbGciOiJFUzI1NiIsImtpZCI6Im5ldyIsInR5cCI6ImF0K2p3dCJ9.e30.sig"), &[])
        .await;
    assert_eq!(reply.status, 401);
    let stats = app.fleet.stats(Service::Identity).await.expect("stats");
    assert!(
        stats["routes"]["GET /.well-known/jwks.json"].as_u64() >= Some(2),
        "a refresh was attempted: {stats}"
    );
    // ...and the cached keys still validate real tokens.
    let reply = app.get("/v1/home").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}
