//! Telemetry for BFFs: log set-up, request identity and trace propagation.
//!
//! * [`init`] installs the global `tracing` subscriber: human-readable lines
//!   locally, one JSON object per line in deployment ([`LogFormat`]).
//! * [`request_context`] is the outermost middleware of every BFF. It honours
//!   or generates `x-request-id`, honours or starts a W3C `traceparent`,
//!   opens the request span, stores a [`RequestContext`] in the request
//!   extensions and echoes `x-request-id` on every response, errors included.
//! * [`TraceContext::child`] gives each downstream call its own span id under
//!   the caller's trace, so a trace id typed into the log search finds the
//!   request at every hop.
//!
//! * [`metrics`]: the Prometheus catalogue and recorder; [`request_context`]
//!   records every request's rate, errors, duration and fan-out there, and
//!   a composed response's per-component outcomes ([`Composition`]).
//!
//! * [`otel`]: span export over OTLP/HTTP, off unless an endpoint is
//!   configured ([`init_with_traces`] installs its layer). With it on, the
//!   request span continues the caller's `traceparent` and the ids logged
//!   and propagated are the exported spans' own.

pub mod metrics;
pub mod otel;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use bff_error::ErrorCode;
use serde::{Deserialize, Serialize};
use tracing::Instrument;

/// The header that carries the request id, in and out.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The W3C trace-context header.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// The W3C vendor trace-state header, forwarded untouched.
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Multi-field, coloured lines for a terminal (the local default).
    #[default]
    Pretty,
    /// One JSON object per line, for log shippers (set this in deployment).
    Json,
}

/// Installs the global subscriber. `RUST_LOG` overrides `default_filter`
/// (e.g. `info,bff_resilience=debug`). Calling it twice is harmless: the
/// second call keeps the first subscriber, which is what tests want.
pub fn init(format: LogFormat, default_filter: &str) {
    init_with_traces(format, default_filter, None);
}

/// [`init`], plus span export through `traces` when given. `RUST_LOG`
/// filters the log lines only: the exported spans are the BFF's own
/// (request at INFO; component, downstream and attempt at DEBUG) whatever
/// the log level, never the HTTP client's inside the exporter.
pub fn init_with_traces(format: LogFormat, default_filter: &str, traces: Option<&otel::Export>) {
    install(format, default_filter, traces, std::io::stdout);
}

/// [`init`] with the lines written to `writer` instead of stdout: for
/// benchmarks and guards that must pay for logging as deployed without
/// printing it (`std::io::sink`).
pub fn init_to_writer<W>(format: LogFormat, default_filter: &str, writer: W)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    install(format, default_filter, None, writer);
}

fn install<W>(format: LogFormat, default_filter: &str, traces: Option<&otel::Export>, writer: W)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::{EnvFilter, Layer as _, Registry};
    type Boxed = Box<dyn tracing_subscriber::Layer<Registry> + Send + Sync>;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let logs: Boxed = match format {
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .with_target(false)
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_filter(filter)
            .boxed(),
    };
    let mut layers = vec![logs];
    if let Some(traces) = traces {
        // Spans down to DEBUG (the component, downstream and attempt
        // spans are DEBUG, so that with export off and logs at INFO they
        // are never built: span creation was on the hot path), events down
        // to INFO.
        let ours = tracing_subscriber::filter::filter_fn(|meta| {
            let level = if meta.is_span() { tracing::Level::DEBUG } else { tracing::Level::INFO };
            *meta.level() <= level
                && !["hyper", "reqwest", "h2", "opentelemetry", "tower"]
                    .iter()
                    .any(|machinery| meta.target().starts_with(machinery))
        });
        layers.push(traces.layer().with_filter(ours).boxed());
    }
    let _ = tracing_subscriber::registry().with(layers).try_init();
}

/// Installs a subscriber for tests: output goes through the test harness's
/// capture (shown only for failing tests), filtered by `RUST_LOG` or `warn`.
pub fn init_for_tests() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
}

/// A W3C trace context (`traceparent`, version 00).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: u128,
    span_id: u64,
    sampled: bool,
}

impl TraceContext {
    /// Starts a new trace (used when the caller sent none or an invalid one).
    pub fn new_root() -> Self {
        TraceContext { trace_id: nonzero_u128(), span_id: nonzero_u64(), sampled: true }
    }

    /// Parses a `traceparent` header value. Returns `None` for anything the
    /// spec says to ignore: wrong length, upper-case hex, version `ff`,
    /// all-zero ids.
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.trim().split('-');
        let (version, trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let lower_hex = |s: &str, len: usize| {
            s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if !lower_hex(version, 2) || version == "ff" || !lower_hex(trace, 32) || !lower_hex(span, 16) {
            return None;
        }
        if !lower_hex(flags, 2) || (version == "00" && parts.next().is_some()) {
            return None;
        }
        let trace_id = u128::from_str_radix(trace, 16).ok()?;
        let span_id = u64::from_str_radix(span, 16).ok()?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        if trace_id == 0 || span_id == 0 {
            return None;
        }
        Some(TraceContext { trace_id, span_id, sampled: flags & 1 == 1 })
    }

    /// The same trace with a fresh span id: the context to send on one
    /// downstream call.
    pub fn child(&self) -> Self {
        TraceContext { span_id: nonzero_u64(), ..*self }
    }

    /// The 32-hex-digit trace id.
    pub fn trace_id(&self) -> String {
        format!("{:032x}", self.trace_id)
    }

    /// The 16-hex-digit id of the span this context names.
    pub fn span_id(&self) -> String {
        format!("{:016x}", self.span_id)
    }

    /// The `traceparent` header value.
    pub fn to_header(&self) -> String {
        format!("00-{:032x}-{:016x}-{:02x}", self.trace_id, self.span_id, u8::from(self.sampled))
    }
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_header())
    }
}

fn nonzero_u128() -> u128 {
    loop {
        let id = fastrand::u128(..);
        if id != 0 {
            return id;
        }
    }
}

fn nonzero_u64() -> u64 {
    fastrand::u64(1..)
}

/// What every part of the BFF knows about the request it is serving: its id
/// and trace context. Cheap to clone; handlers get it from the request
/// extensions (it implements `FromRequestParts`).
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The request id: the caller's `x-request-id` if it was sane, else a new UUID.
    pub request_id: String,
    /// The trace this request belongs to; its span id is the caller's span.
    pub trace: TraceContext,
    /// The caller's `tracestate`, forwarded as is.
    pub tracestate: Option<HeaderValue>,
    /// Downstream attempts made for this request so far (shared by every
    /// clone: the fan-out factor).
    downstream_calls: Arc<AtomicU32>,
}

impl RequestContext {
    /// A context for work that did not come from a request (start-up probes, tests).
    pub fn detached() -> Self {
        RequestContext {
            request_id: uuid::Uuid::new_v4().to_string(),
            trace: TraceContext::new_root(),
            tracestate: None,
            downstream_calls: Arc::default(),
        }
    }

    /// Counts one downstream attempt (a retry or a hedge is one more).
    pub fn note_downstream_call(&self) {
        self.downstream_calls.fetch_add(1, Ordering::Relaxed);
    }

    /// Downstream attempts made for this request so far.
    pub fn downstream_calls(&self) -> u32 {
        self.downstream_calls.load(Ordering::Relaxed)
    }

    /// Reads the context from request headers, generating what is missing.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let request_id = headers
            .get(&REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .filter(|id| is_acceptable_request_id(id))
            .map(str::to_owned)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let trace = headers
            .get(&TRACEPARENT)
            .and_then(|v| v.to_str().ok())
            .and_then(TraceContext::parse)
            .unwrap_or_else(TraceContext::new_root);
        let tracestate = headers.get(&TRACESTATE).filter(|v| v.len() <= 512).cloned();
        RequestContext { request_id, trace, tracestate, downstream_calls: Arc::default() }
    }

    /// The headers to put on one downstream call: the request id, a child
    /// `traceparent` and the caller's `tracestate`.
    pub fn outbound_headers(&self) -> Vec<(HeaderName, HeaderValue)> {
        let mut headers = Vec::with_capacity(3);
        if let Ok(id) = HeaderValue::from_str(&self.request_id) {
            headers.push((REQUEST_ID, id));
        }
        // With export on, the current span (a downstream attempt) is the
        // parent the service should hang its spans under; without it, a
        // fresh span id under the same trace.
        let parent = exported_span(&tracing::Span::current()).unwrap_or_else(|| self.trace.child());
        if let Ok(parent) = HeaderValue::from_str(&parent.to_header()) {
            headers.push((TRACEPARENT, parent));
        }
        if let Some(state) = &self.tracestate {
            headers.push((TRACESTATE, state.clone()));
        }
        headers
    }
}

/// A caller-supplied request id is kept only if it is short and made of
/// characters that cannot break a log line or a header: it ends up in both.
fn is_acceptable_request_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for RequestContext {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        // The middleware always inserts one; a router without it still gets
        // a usable context rather than an error.
        Ok(parts
            .extensions
            .get::<RequestContext>()
            .cloned()
            .unwrap_or_else(|| RequestContext::from_headers(&parts.headers)))
    }
}

/// The route template a request matched, put on its response (by
/// [`tag_route`], a route layer) so that layers outside routing, such as
/// [`request_context`], can label what they record with it.
#[derive(Debug, Clone)]
pub struct MatchedRoute(pub Arc<str>);

/// A route layer (`Router::route_layer(from_fn(tag_route))`): puts the
/// matched route template on the response as a [`MatchedRoute`].
pub async fn tag_route(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map(|p| Arc::<str>::from(p.as_str()));
    let mut response = next.run(request).await;
    if let Some(route) = route {
        response.extensions_mut().insert(MatchedRoute(route));
    }
    response
}

/// What a composed response was made of, put on it by the composition
/// engine's envelope. [`request_context`] logs and counts it; the shell
/// turns it into `Server-Timing` where configured.
#[derive(Debug, Clone, Default)]
pub struct Composition {
    /// Each component, in declaration order.
    pub components: Vec<ComponentOutcome>,
}

/// How one component of a composed response fared.
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentOutcome {
    /// The component's name (from code: a closed set).
    pub name: &'static str,
    /// `ok`, `fallback` or `error`.
    pub status: &'static str,
    /// Why it is not `ok`.
    pub reason: Option<&'static str>,
    /// When it finished, counted from the start of the composition (its
    /// parts start together, so this is its bar in a waterfall).
    pub elapsed: Option<std::time::Duration>,
}

impl Composition {
    /// Whether any component is not `ok`.
    pub fn degraded(&self) -> bool {
        self.components.iter().any(|c| c.status != "ok")
    }

    /// `name:reason` of each component that is not `ok`, comma-separated.
    fn failed(&self) -> String {
        let failed: Vec<String> = self
            .components
            .iter()
            .filter(|c| c.status != "ok")
            .map(|c| format!("{}:{}", c.name, c.reason.unwrap_or("unknown")))
            .collect();
        failed.join(",")
    }

    /// The `Server-Timing` value (W3C Server Timing): one metric per
    /// component, its duration in milliseconds and its status, e.g.
    /// `profile;dur=12.3;desc="ok", recommendations;dur=200.4;desc="fallback timeout"`.
    /// Component names only: never a service, host or id.
    pub fn server_timing(&self) -> String {
        let entries: Vec<String> = self
            .components
            .iter()
            .map(|c| {
                let desc = match c.reason {
                    Some(reason) => format!("{} {reason}", c.status),
                    None => c.status.to_owned(),
                };
                match c.elapsed {
                    Some(elapsed) => {
                        format!("{};dur={:.1};desc=\"{desc}\"", c.name, elapsed.as_secs_f64() * 1000.0)
                    }
                    None => format!("{};desc=\"{desc}\"", c.name),
                }
            })
            .collect();
        entries.join(", ")
    }
}

/// The outermost middleware (`axum::middleware::from_fn(request_context)`):
/// request id, trace context, the request span, one access-log event and
/// the request's metrics (see [`metrics`]).
///
/// The access log line says the route template, status, problem code,
/// latency, how many downstream attempts the request made and, for a
/// composed response, whether it was degraded and which components failed
/// and why.
pub async fn request_context(mut request: Request, next: Next) -> Response {
    let mut context = RequestContext::from_headers(request.headers());
    let method = request.method().clone();
    let span = tracing::info_span!(
        "request",
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        method = %method,
        route = tracing::field::Empty,
        status = tracing::field::Empty,
        request_id = %context.request_id,
        trace_id = tracing::field::Empty,
    );
    continue_trace(&span, request.headers(), &mut context);
    span.record("trace_id", context.trace.trace_id());
    let request_id = HeaderValue::from_str(&context.request_id).ok();
    let calls = Arc::clone(&context.downstream_calls);
    request.extensions_mut().insert(context);
    let started = Instant::now();
    // Held however the request ends (a client that goes away drops the future).
    let in_flight = crate::metrics::Held::hold(::metrics::gauge!(crate::metrics::HTTP_IN_FLIGHT));
    let mut response = next.run(request).instrument(span.clone()).await;
    drop(in_flight);
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    // Unmatched paths share one label: their paths are the caller's.
    let route =
        response.extensions().get::<MatchedRoute>().map_or(Arc::from("unmatched"), |r| Arc::clone(&r.0));
    let code = response.extensions().get::<ErrorCode>().map_or("ok", |code| code.as_str());
    let downstream_calls = calls.load(Ordering::Relaxed);
    let composition = response.extensions().get::<Composition>();
    record(&method, &route, status, code, elapsed, downstream_calls, composition);
    span.record("route", &*route);
    name_exported_span(&span, || format!("{method} {route}"));
    span.record("status", status);
    if response.extensions().get::<ErrorCode>().is_some_and(|code| code.is_server_fault()) {
        span.record("otel.status_code", "error");
    }
    span.in_scope(|| match composition {
        Some(composition) => tracing::info!(
            status,
            code,
            latency_ms = elapsed.as_millis() as u64,
            downstream_calls,
            degraded = composition.degraded(),
            failed = %composition.failed(),
            "request finished"
        ),
        None => tracing::info!(
            status,
            code,
            latency_ms = elapsed.as_millis() as u64,
            downstream_calls,
            "request finished"
        ),
    });
    if let Some(id) = request_id {
        response.headers_mut().insert(REQUEST_ID, id);
    }
    response
}

/// With trace export on, makes `span` the child of the caller's
/// `traceparent` (when it sent a valid one) and points `context` at the
/// exported span, so the ids in the log, on the wire and in the trace
/// backend are the same. Without export, `context` stays as parsed.
fn continue_trace(span: &tracing::Span, headers: &HeaderMap, context: &mut RequestContext) {
    use opentelemetry::trace::TraceContextExt as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let caller = headers.get(&TRACEPARENT).and_then(|v| v.to_str().ok()).and_then(TraceContext::parse);
    if let Some(caller) = caller {
        let remote = opentelemetry::trace::SpanContext::new(
            opentelemetry::trace::TraceId::from(caller.trace_id),
            opentelemetry::trace::SpanId::from(caller.span_id),
            if caller.sampled {
                opentelemetry::trace::TraceFlags::SAMPLED
            } else {
                opentelemetry::trace::TraceFlags::default()
            },
            true,
            opentelemetry::trace::TraceState::default(),
        );
        // Fails only when no export layer is installed: nothing to continue.
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
    }
    if let Some(exported) = exported_span(span) {
        context.trace = exported;
    }
}

/// Renames the exported span of `span` (the server span gets its route
/// once routing has matched it); nothing when export is off.
fn name_exported_span(span: &tracing::Span, name: impl FnOnce() -> String) {
    use opentelemetry::trace::TraceContextExt as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let cx = span.context();
    let exported = cx.span();
    if exported.span_context().is_valid() {
        exported.update_name(name());
    }
}

/// The trace context of `span` as exported, if trace export is on.
fn exported_span(span: &tracing::Span) -> Option<TraceContext> {
    use opentelemetry::trace::TraceContextExt as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let cx = span.context();
    let exported = cx.span().span_context().clone();
    exported.is_valid().then(|| TraceContext {
        trace_id: u128::from_be_bytes(exported.trace_id().to_bytes()),
        span_id: u64::from_be_bytes(exported.span_id().to_bytes()),
        sampled: exported.is_sampled(),
    })
}

/// One request's metrics. Every label is from a closed set.
fn record(
    method: &axum::http::Method,
    route: &Arc<str>,
    status: u16,
    code: &'static str,
    elapsed: std::time::Duration,
    downstream_calls: u32,
    composition: Option<&Composition>,
) {
    // Methods outside the standard set are one label, not the caller's word.
    let method = match *method {
        axum::http::Method::GET => "GET",
        axum::http::Method::HEAD => "HEAD",
        axum::http::Method::POST => "POST",
        axum::http::Method::PUT => "PUT",
        axum::http::Method::PATCH => "PATCH",
        axum::http::Method::DELETE => "DELETE",
        axum::http::Method::OPTIONS => "OPTIONS",
        _ => "other",
    };
    let route = route.to_string();
    ::metrics::counter!(crate::metrics::HTTP_REQUESTS, "method" => method, "route" => route.clone(), "status" => status.to_string(), "code" => code)
        .increment(1);
    ::metrics::histogram!(crate::metrics::HTTP_DURATION, "method" => method, "route" => route.clone())
        .record(elapsed.as_secs_f64());
    if route == "unmatched" {
        return;
    }
    ::metrics::histogram!(crate::metrics::CALLS_PER_REQUEST, "route" => route.clone())
        .record(f64::from(downstream_calls));
    if let Some(composition) = composition {
        let degraded = if composition.degraded() { "true" } else { "false" };
        ::metrics::counter!(crate::metrics::COMPOSED, "route" => route.clone(), "degraded" => degraded)
            .increment(1);
        for component in &composition.components {
            ::metrics::counter!(
                crate::metrics::COMPONENT_RESULTS,
                "route" => route.clone(),
                "component" => component.name,
                "status" => component.status,
                "reason" => component.reason.unwrap_or("none"),
            )
            .increment(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips_and_child_keeps_the_trace() {
        let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let parsed = TraceContext::parse(header).expect("valid traceparent");
        assert_eq!(parsed.to_header(), header);
        let child = parsed.child();
        assert_eq!(child.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(child.span_id(), parsed.span_id());
    }

    #[test]
    fn invalid_traceparents_are_ignored() {
        for bad in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert!(TraceContext::parse(bad).is_none(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn server_timing_names_each_component_with_its_duration_and_status() {
        let outcome = |name, status, reason, ms: Option<u64>| ComponentOutcome {
            name,
            status,
            reason,
            elapsed: ms.map(std::time::Duration::from_millis),
        };
        let composition = Composition {
            components: vec![
                outcome("profile", "ok", None, Some(12)),
                outcome("recommendations", "fallback", Some("timeout"), Some(200)),
                outcome("shipping", "error", Some("unavailable"), None),
            ],
        };
        assert_eq!(
            composition.server_timing(),
            "profile;dur=12.0;desc=\"ok\", recommendations;dur=200.0;desc=\"fallback timeout\", shipping;desc=\"error unavailable\""
        );
        assert!(composition.degraded());
        assert_eq!(composition.failed(), "recommendations:timeout,shipping:unavailable");
    }

    #[test]
    fn request_ids_are_honoured_only_when_safe() {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID, HeaderValue::from_static("abc-123"));
        assert_eq!(RequestContext::from_headers(&headers).request_id, "abc-123");
        headers.insert(REQUEST_ID, HeaderValue::from_static("evil\tvalue"));
        assert_ne!(RequestContext::from_headers(&headers).request_id, "evil\tvalue");
        let long = "a".repeat(129);
        headers.insert(REQUEST_ID, HeaderValue::from_str(&long).expect("ascii"));
        assert_ne!(RequestContext::from_headers(&headers).request_id, long);
    }
}
