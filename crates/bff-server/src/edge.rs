//! The edge: the middleware stack in front of every BFF's routes, and the
//! operational endpoints.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bff_error::{ApiError, ErrorCode};
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::{BoxError, ServiceBuilder};
use tower_http::catch_panic::CatchPanicLayer;

use crate::ServerConfig;

/// A readiness check: `Ok` when the BFF can serve (e.g. it holds signing
/// keys), `Err(reason)` otherwise. The reason is logged, not returned.
pub type Readiness =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), crate::ShellError>> + Send>> + Send + Sync>;

/// Wraps a BFF's routes in the edge stack and adds `/healthz` and `/readyz`.
///
/// Request order, outermost first:
/// 1. request context: `x-request-id`, `traceparent`, the request span, the
///    access log and the request's metrics. Outermost so that every
///    response, shed or panicked, has an id and is counted.
/// 2. panic catcher: a panic becomes `500 internal` with no details.
/// 3. `/healthz`, `/readyz`: above the limiter, so probes answer under load.
/// 4. load shedding: at most `max_concurrent_requests` at once, the rest get
///    `503 overloaded` + `Retry-After` at once instead of waiting in a queue.
/// 5. body limit: a declared `Content-Length` over the limit is refused
///    before the body is read; a streamed body is cut by the extractor limit.
/// 6. the routes; unknown paths and methods get problem responses.
pub fn edge(routes: Router, config: &ServerConfig, readiness: Readiness) -> Router {
    let limit = config.body_limit_bytes;
    let app = routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(limit, refuse_declared_oversize))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(overloaded))
                .load_shed()
                .layer(GlobalConcurrencyLimitLayer::new(config.max_concurrent_requests)),
        );
    let ops = Router::new()
        .route("/healthz", get(|| async { axum::Json(serde_json::json!({ "status": "ok" })) }))
        .route("/readyz", get(ready).with_state(readiness));
    app.merge(ops)
        // Every route's template rides on its response, for the access log
        // and the metrics of the request context outside routing.
        .route_layer(middleware::from_fn(bff_telemetry::tag_route))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::from_fn(bff_telemetry::request_context))
}

/// Set once the BFF has been told to stop: from then on `/readyz` answers
/// `503` while the BFF keeps serving for `server.drain_secs`, so that load
/// balancers take it out before it stops accepting (see [`crate::serve`]).
#[derive(Debug, Clone, Default)]
pub struct Draining(Arc<std::sync::atomic::AtomicBool>);

impl Draining {
    /// From now on, not ready.
    pub fn start(&self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether [`Draining::start`] was called.
    pub fn is_draining(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// `readiness`, but not ready once draining.
    pub(crate) fn guard(&self, readiness: Readiness) -> Readiness {
        let draining = self.clone();
        Arc::new(move || {
            if draining.is_draining() {
                return Box::pin(async { Err(crate::ShellError::Draining) });
            }
            readiness()
        })
    }
}

async fn ready(State(readiness): State<Readiness>) -> Response {
    match readiness().await {
        Ok(()) => axum::Json(serde_json::json!({ "status": "ready" })).into_response(),
        Err(crate::ShellError::Draining) => ApiError::new(ErrorCode::DependencyUnavailable)
            .with_detail("draining: this instance is shutting down")
            .into_response(),
        Err(reason) => {
            tracing::warn!(reason = %reason, "not ready");
            // Said as every error is: a problem, here "a dependency (the
            // identity provider's keys) is unavailable"; the reason is logged.
            ApiError::new(ErrorCode::DependencyUnavailable)
                .with_detail("not ready")
                .with_retry_after(Duration::from_secs(1))
                .into_response()
        }
    }
}

async fn refuse_declared_oversize(State(limit): State<usize>, request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return ApiError::new(ErrorCode::RequestTooLarge)
            .with_detail(format!("the body may be at most {limit} bytes"))
            .into_response();
    }
    next.run(request).await
}

async fn overloaded(error: BoxError) -> ApiError {
    if error.is::<tower::load_shed::error::Overloaded>() {
        tracing::warn!("shedding load: concurrency limit reached");
        metrics::counter!(bff_telemetry::metrics::HTTP_SHED).increment(1);
        ApiError::new(ErrorCode::Overloaded).with_retry_after(Duration::from_secs(1))
    } else {
        tracing::error!(%error, "unhandled middleware error");
        ApiError::new(ErrorCode::Internal)
    }
}

async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound).with_detail("no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(ErrorCode::MethodNotAllowed)
}

fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    // The panic message may hold internals: it goes to the log, not the client.
    tracing::error!("handler panicked");
    ApiError::new(ErrorCode::Internal).into_response()
}
