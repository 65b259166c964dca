//! Answers no well-behaved mock gives, from `wiremock` (or, for a body cut
//! short, a raw socket): each ends as a typed failure with the right reason,
//! never a panic, a hang or a followed redirect.

use std::sync::Arc;
use std::time::Duration;

use bff_auth::{AuthError, Principal, ServiceTokens, TokenFuture};
use bff_compose::CallCtx;
use bff_downstream::{Api, DownstreamConfig, DownstreamError, Service};
use bff_error::{Classify as _, ReasonCode};
use bff_resilience::Deadline;
use bff_telemetry::RequestContext;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Hands out a fixed token: these servers check nothing.
#[derive(Debug)]
struct AnyToken;

impl ServiceTokens for AnyToken {
    fn token_for<'a>(&'a self, _: &'a Principal, _: &'a str, _: &'a [String]) -> TokenFuture<'a> {
        Box::pin(async { Ok::<_, AuthError>(Arc::from("t")) })
    }

    fn own_token<'a>(&'a self, _: &'a str, _: &'a [String]) -> TokenFuture<'a> {
        Box::pin(async { Ok::<_, AuthError>(Arc::from("t")) })
    }
}

/// The catalog client pointed at `base_url`, one attempt per call, with a
/// 300 ms timeout and a 1 KiB response limit.
fn catalog(base_url: &str) -> Api {
    let mut config = DownstreamConfig::for_services(&[Service::Catalog]);
    config.max_response_bytes = 1024;
    let catalog = config.services.get_mut("catalog").expect("catalog");
    catalog.base_url = base_url.to_owned();
    catalog.timeout_ms = 300;
    catalog.retry.max_attempts = 1;
    Api::new(&config, "edge-tests", Arc::new(AnyToken)).expect("api")
}

fn cx() -> CallCtx {
    CallCtx::new(RequestContext::detached(), Deadline::after(Duration::from_secs(5)))
        .with_principal(Some(Arc::new(Principal::new("u-1", "caller-token"))))
}

fn product_json() -> serde_json::Value {
    serde_json::json!({"id": "p-1", "name": "Trail Runner", "brand": "N", "description": "d", "images": []})
}

#[tokio::test]
async fn an_html_page_with_a_200_is_invalid_data_not_a_product() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/products/p-1"))
        .respond_with(ResponseTemplate::new(200).set_body_raw("<html>maintenance</html>", "text/html"))
        .mount(&server)
        .await;
    let error = catalog(&server.uri()).catalog.product(cx(), "p-1").await.expect_err("not JSON");
    assert!(matches!(error, DownstreamError::Undecodable { .. }), "{error}");
    assert!(error.to_string().contains("text/html"), "{error}");
    assert_eq!(error.failure().reason, ReasonCode::InvalidData);
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let server = MockServer::start().await;
    let elsewhere = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(product_json()))
        .expect(0)
        .mount(&elsewhere)
        .await;
    Mock::given(method("GET"))
        .and(path("/products/p-1"))
        .respond_with(
            ResponseTemplate::new(302).insert_header("location", format!("{}/products/p-1", elsewhere.uri())),
        )
        .mount(&server)
        .await;
    let error =
        catalog(&server.uri()).catalog.product(cx(), "p-1").await.expect_err("a redirect is no answer");
    assert!(matches!(error, DownstreamError::Status { status: 302, .. }), "{error}");
    assert_eq!(error.failure().reason, ReasonCode::Unavailable);
    // `elsewhere` verifies on drop that it was never called: egress stays on the list.
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_before_it_is_read_whole() {
    let server = MockServer::start().await;
    let big = format!("{{\"id\":\"p-1\",\"name\":\"{}\"}}", "x".repeat(4096));
    Mock::given(method("GET"))
        .and(path("/products/p-1"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(big, "application/json"))
        .mount(&server)
        .await;
    let error = catalog(&server.uri()).catalog.product(cx(), "p-1").await.expect_err("too big");
    assert!(matches!(error, DownstreamError::Undecodable { .. }), "{error}");
    assert!(error.to_string().contains("over 1024 bytes"), "{error}");
}

#[tokio::test]
async fn headers_that_arrive_too_late_are_a_timeout() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/products/p-1"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(product_json()).set_delay(Duration::from_secs(2)),
        )
        .mount(&server)
        .await;
    let started = std::time::Instant::now();
    let error = catalog(&server.uri()).catalog.product(cx(), "p-1").await.expect_err("too slow");
    assert_eq!(error.failure().reason, ReasonCode::Timeout, "{error}");
    assert!(started.elapsed() < Duration::from_secs(1), "cut at the 300 ms timeout, not after 2 s");
}

#[tokio::test]
async fn a_body_cut_short_is_unavailable() {
    // A server that promises 500 bytes, sends 20 and hangs up.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = [0u8; 1024];
            let _ = socket.read(&mut request).await;
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n";
            let _ = socket.write_all(head.as_bytes()).await;
            let _ = socket.write_all(br#"{"id":"p-1","name":"#).await;
            let _ = socket.shutdown().await;
        }
    });
    let error = catalog(&base).catalog.product(cx(), "p-1").await.expect_err("truncated");
    assert!(matches!(error, DownstreamError::Transport { .. }), "{error}");
    assert_eq!(error.failure().reason, ReasonCode::Unavailable);
}

#[tokio::test]
async fn a_refused_connection_says_so_in_the_log_text() {
    // A port nobody listens on (bound, then released).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    drop(listener);
    let error = catalog(&base).catalog.product(cx(), "p-1").await.expect_err("nobody listens");
    assert!(matches!(error, DownstreamError::Transport { .. }), "{error}");
    // reqwest's own text stops at "error sending request for url (...)":
    // the cause chain is what tells on-call refused from reset from closed.
    assert!(error.to_string().contains("refused"), "{error}");
    assert_eq!(error.failure().reason, ReasonCode::Unavailable);
}

#[tokio::test]
async fn a_well_formed_answer_still_parses_after_all_that() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/products/p-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(product_json()))
        .expect(1)
        .mount(&server)
        .await;
    let product = catalog(&server.uri()).catalog.product(cx(), "p-1").await.expect("a product");
    assert_eq!(product.name, "Trail Runner");
}
