//! Token exchange and the identity provider's guard, against a token
//! endpoint that answers what each test needs.

use std::sync::Arc;
use std::time::Duration;

use bff_auth::{AuthError, ExchangeConfig, IdentityProvider, Principal, TokenExchanger};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::calls;

fn config(server: &MockServer) -> ExchangeConfig {
    ExchangeConfig {
        token_url: format!("{}/oauth/token", server.uri()),
        ..ExchangeConfig::local("mobile-bff")
    }
}

fn exchanger(server: &MockServer) -> TokenExchanger {
    let config = config(server);
    let provider = Arc::new(IdentityProvider::new(&config).expect("valid settings"));
    TokenExchanger::new(config, provider).expect("valid settings")
}

fn issued(token: &str) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(serde_json::json!({"access_token": token, "token_type": "Bearer", "expires_in": 300}))
        .set_delay(Duration::from_millis(50))
}

#[tokio::test]
async fn concurrent_exchanges_for_one_caller_and_service_share_one_request_then_the_cache() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(issued("svc-token"))
        .mount(&server)
        .await;
    let exchanger = Arc::new(exchanger(&server));
    let principal = Arc::new(Principal::new("u-1", "caller-token"));
    let scopes = vec!["catalog:read".to_owned()];
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (exchanger, principal, scopes) = (Arc::clone(&exchanger), Arc::clone(&principal), scopes.clone());
        tasks.spawn(async move { exchanger.exchange(&principal, "catalog", &scopes).await });
    }
    while let Some(result) = tasks.join_next().await {
        assert_eq!(&*result.expect("task").expect("a token"), "svc-token");
    }
    assert_eq!(calls(&server, "/oauth/token").await, 1, "one exchange, shared");
    exchanger.exchange(&principal, "catalog", &scopes).await.expect("cached");
    assert_eq!(calls(&server, "/oauth/token").await, 1, "then cached");
    exchanger.own("catalog", &scopes).await.expect("the BFF's own token");
    let requests = server.received_requests().await.unwrap_or_default();
    let own = String::from_utf8_lossy(&requests[1].body).into_owned();
    assert!(own.contains("grant_type=client_credentials") && own.contains("audience=catalog"), "{own}");
}

#[tokio::test]
async fn refused_grants_are_the_callers_problem_and_never_open_the_breaker() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({"error": "invalid_grant"})))
        .mount(&server)
        .await;
    let provider = IdentityProvider::new(&config(&server)).expect("valid settings");
    for _ in 0..12 {
        let refused = provider.redeem_code("used-code", "http://127.0.0.1/cb", "verifier").await;
        assert!(
            matches!(refused, Err(AuthError::GrantRefused { ref error }) if error == "invalid_grant"),
            "{refused:?}"
        );
    }
    assert_eq!(
        calls(&server, "/oauth/token").await,
        12,
        "every refusal reached the provider: the breaker stayed closed"
    );
}

#[tokio::test]
async fn a_provider_failing_for_a_sustained_time_opens_its_breaker_and_later_calls_fail_fast() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_string_contains("grant_type"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;
    let provider = IdentityProvider::new(&config(&server)).expect("valid settings");
    // A failure every 50 ms: the breaker waits until failures are sustained
    // (1.5 s by default), so a blip of the provider never opens it.
    let mut failed_calls = 0;
    while provider.guard().breaker().state() == bff_resilience::BreakerState::Closed {
        let failed = provider.exchange("subject-token", "catalog", "").await;
        assert!(matches!(failed, Err(AuthError::ProviderUnavailable { .. })), "{failed:?}");
        failed_calls += 1;
        assert!(failed_calls <= 60, "still closed after {failed_calls} failures over 3 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(failed_calls >= 20, "opened after {failed_calls} failures: before they were sustained");
    let reached = calls(&server, "/oauth/token").await;
    for _ in 0..10 {
        let failed = provider.exchange("subject-token", "catalog", "").await;
        assert!(matches!(failed, Err(AuthError::ProviderUnavailable { .. })), "{failed:?}");
    }
    assert_eq!(calls(&server, "/oauth/token").await, reached, "open: later calls fail without reaching it");
}
