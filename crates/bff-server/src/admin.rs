//! The admin listener: what operators and Prometheus read, on an address
//! of its own (`server.admin_host:admin_port`, loopback by default) and
//! never on the public port, so clients cannot read it and a scrape never
//! competes with them for the connection cap or the concurrency limit.
//!
//! * `GET /metrics`: the Prometheus text exposition of the process
//!   (`bff_telemetry::metrics` has the catalogue);
//! * `GET /healthz`: the process is alive.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The content type of the Prometheus text format.
const EXPOSITION: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The admin listener's routes.
pub fn router() -> Router {
    bff_telemetry::metrics::install();
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { axum::Json(serde_json::json!({ "status": "ok" })) }))
}

async fn metrics() -> Response {
    let body = bff_telemetry::metrics::render();
    ([(header::CONTENT_TYPE, HeaderValue::from_static(EXPOSITION))], body).into_response()
}
