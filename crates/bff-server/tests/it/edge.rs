//! The edge stack in front of a minimal router, driven with `oneshot`.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use bff_server::{Readiness, ServerConfig, ShellError, edge};
use tower::ServiceExt as _;

fn ready() -> Readiness {
    Arc::new(|| Box::pin(async { Ok(()) }))
}

fn not_ready() -> Readiness {
    Arc::new(|| Box::pin(async { Err(ShellError::InvalidConfig(vec!["no keys".to_owned()])) }))
}

async fn panics() -> &'static str {
    panic!("secret internals")
}

fn app(config: &ServerConfig, readiness: Readiness) -> Router {
    let routes = Router::new()
        .route("/hello", get(|| async { "hello" }))
        .route("/echo", post(|body: String| async move { body }))
        .route("/panic", get(panics));
    edge(routes, config, readiness)
}

async fn send(
    app: &Router,
    request: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
    let response: Response = app.clone().oneshot(request).await.expect("infallible");
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024).await.expect("body");
    (parts.status, parts.headers, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}

fn get_request(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).expect("request")
}

#[tokio::test]
async fn every_answer_has_a_request_id_yours_if_it_is_safe() {
    let app = app(&ServerConfig::default(), ready());
    let request =
        Request::get("/hello").header("x-request-id", "abc-123").body(Body::empty()).expect("request");
    let (status, headers, _) = send(&app, request).await;
    assert_eq!((status, headers["x-request-id"].to_str().ok()), (StatusCode::OK, Some("abc-123")));
    let unsafe_id =
        Request::get("/nope").header("x-request-id", "a b\"<c>").body(Body::empty()).expect("request");
    let (status, headers, _) = send(&app, unsafe_id).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let id = headers["x-request-id"].to_str().expect("ascii");
    assert_ne!(id, "a b\"<c>");
    assert_eq!(id.len(), 36, "a fresh UUID: {id}");
}

#[tokio::test]
async fn unknown_routes_methods_and_panics_are_problems_without_internals() {
    let app = app(&ServerConfig::default(), ready());
    let (status, headers, body) = send(&app, get_request("/nope")).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::NOT_FOUND, Some("resource.not_found")));
    assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
    let (status, _, body) = send(&app, Request::delete("/hello").body(Body::empty()).expect("request")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, Some("request.method_not_allowed"))
    );
    let (status, _, body) = send(&app, get_request("/panic")).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::INTERNAL_SERVER_ERROR, Some("internal")));
    assert!(!body.to_string().contains("secret"), "{body}");
}

#[tokio::test]
async fn a_declared_oversized_body_is_refused_before_it_is_read() {
    let config = ServerConfig { body_limit_bytes: 16, ..ServerConfig::default() };
    let app = app(&config, ready());
    let request = Request::post("/echo")
        .header(header::CONTENT_LENGTH, "1000000")
        .body(Body::from("x"))
        .expect("request");
    let (status, _, body) = send(&app, request).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("request.too_large")));
}

#[tokio::test]
async fn probes_answer_and_readiness_fails_as_a_problem() {
    let (status, _, body) = send(&app(&ServerConfig::default(), ready()), get_request("/readyz")).await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("ready")));
    let app = app(&ServerConfig::default(), not_ready());
    let (status, headers, body) = send(&app, get_request("/readyz")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("dependency.unavailable"))
    );
    assert!(headers.contains_key(header::RETRY_AFTER));
    assert!(!body.to_string().contains("no keys"), "the reason is logged, not told: {body}");
    let (status, _, _) = send(&app, get_request("/healthz")).await;
    assert_eq!(status, StatusCode::OK, "liveness does not depend on readiness");
}

#[tokio::test]
async fn beyond_the_concurrency_limit_a_request_is_shed_not_queued() {
    use tokio::sync::Notify;

    // A handler that holds its slot until told to let go.
    let (entered, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let hold = {
        let (entered, release) = (Arc::clone(&entered), Arc::clone(&release));
        move || async move {
            entered.notify_one();
            release.notified().await;
            "held"
        }
    };
    let config = ServerConfig { max_concurrent_requests: 1, ..ServerConfig::default() };
    let app = edge(
        Router::new().route("/hold", get(hold)).route("/hello", get(|| async { "hello" })),
        &config,
        ready(),
    );
    let first = tokio::spawn({
        let app = app.clone();
        async move { send(&app, get_request("/hold")).await.0 }
    });
    entered.notified().await;
    let (status, headers, body) = send(&app, get_request("/hello")).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("overloaded")));
    assert_eq!(headers[header::RETRY_AFTER], "1");
    assert!(
        !first.is_finished(),
        "answered while the admitted request still holds its slot: shed, not queued"
    );
    let (status, _, _) = send(&app, get_request("/healthz")).await;
    assert_eq!(status, StatusCode::OK, "probes are above the limit");
    release.notify_one();
    assert_eq!(first.await.expect("task"), StatusCode::OK, "the admitted request finished");
}
