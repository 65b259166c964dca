//! Trace export over OTLP/HTTP (protobuf), off unless an endpoint is set.
//!
//! Configured with the standard OpenTelemetry variables, not a section of
//! the BFF's own configuration: collectors, sidecars and the Kubernetes
//! operator inject exactly these, and an operator should not have to learn
//! a second spelling.
//!
//! | variable | effect |
//! |---|---|
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` | collector base URL; spans go to `<it>/v1/traces`. Unset: no export |
//! | `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` | full URL for spans (wins over the above) |
//! | `OTEL_EXPORTER_OTLP_HEADERS`, `..._TIMEOUT`, `..._COMPRESSION` | read by `opentelemetry-otlp` |
//! | `OTEL_SERVICE_NAME` | `service.name` (default: the BFF's name) |
//! | `OTEL_SDK_DISABLED=true`, `OTEL_TRACES_EXPORTER=none` | no export, even with an endpoint |
//! | `OTEL_BSP_MAX_QUEUE_SIZE` | spans waiting for export before new ones are dropped (2048) |
//! | `OTEL_BSP_SCHEDULE_DELAY` | ms a batch waits to fill (1000) |
//! | `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` | spans per export request (512) |
//!
//! **Export never slows or fails a request.** A finished span is offered to
//! a bounded queue with `try_send`; when the queue is full the span is
//! dropped and counted (`bff_trace_spans_total{outcome="dropped"}`), and
//! one task on the BFF's runtime drains the queue in batches. This is our
//! own small processor rather than the SDK's `BatchSpanProcessor` because
//! that one exports on a thread of its own without a Tokio runtime (the
//! async reqwest client panics there, and the blocking one would be a
//! second HTTP stack), and it does not let us count what it drops.
//!
//! The span tree of a request: `request` (server; continues the caller's
//! `traceparent`) → `component` (one per part of a composition; `cache`
//! says how a cached part was served) → `downstream` (one guarded call:
//! retries and hedges included) → `attempt` (client; one per HTTP attempt,
//! with its number and whether it was the hedge). The `traceparent` sent
//! downstream names the attempt's span, so a service's own spans hang
//! under the right attempt.

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter as _, SpanProcessor};
use tokio::sync::mpsc;

use crate::metrics::TRACE_SPANS;

/// Where and how spans are exported, read from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSettings {
    /// `service.name` of every span.
    pub service_name: String,
    /// `service.version`.
    pub service_version: String,
    /// Spans waiting for export before new ones are dropped.
    pub max_queue: usize,
    /// How long a batch waits to fill.
    pub schedule_delay: Duration,
    /// Spans per export request.
    pub max_batch: usize,
}

/// A configuration that cannot be used; the BFF refuses to start with it.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A variable holds something that is not what it should.
    #[error("{variable}={value:?} is not valid: {why}")]
    Invalid {
        /// The variable.
        variable: &'static str,
        /// What it held.
        value: String,
        /// What was expected.
        why: &'static str,
    },
    /// The exporter could not be built (e.g. an endpoint that is not a URL).
    #[error("the OTLP exporter cannot be built: {0}")]
    Exporter(String),
}

impl ExportSettings {
    /// Reads the settings through `var` (the process environment in
    /// production, a map in tests). `None` when no endpoint is set or export
    /// is disabled.
    pub fn from_vars(
        var: impl Fn(&str) -> Option<String>,
        default_service: &str,
        version: &str,
    ) -> Result<Option<ExportSettings>, ExportError> {
        let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        if set("OTEL_EXPORTER_OTLP_ENDPOINT").is_none() && set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_none()
        {
            return Ok(None);
        }
        if set("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
            || set("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"))
        {
            return Ok(None);
        }
        let number = |variable: &'static str, default: u64| -> Result<u64, ExportError> {
            match set(variable) {
                None => Ok(default),
                Some(value) => match value.trim().parse::<u64>() {
                    Ok(n) if n > 0 => Ok(n),
                    _ => Err(ExportError::Invalid { variable, value, why: "a whole number above 0" }),
                },
            }
        };
        let max_queue = number("OTEL_BSP_MAX_QUEUE_SIZE", 2048)? as usize;
        let max_batch = (number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512)? as usize).min(max_queue);
        Ok(Some(ExportSettings {
            service_name: set("OTEL_SERVICE_NAME").unwrap_or_else(|| default_service.to_owned()),
            service_version: version.to_owned(),
            max_queue,
            schedule_delay: Duration::from_millis(number("OTEL_BSP_SCHEDULE_DELAY", 1000)?),
            max_batch,
        }))
    }

    /// [`Self::from_vars`] over the process environment.
    pub fn from_env(default_service: &str, version: &str) -> Result<Option<ExportSettings>, ExportError> {
        Self::from_vars(|name| std::env::var(name).ok(), default_service, version)
    }
}

/// A running export: the tracer provider and its draining task. Keep it for
/// the life of the process and [`Export::shutdown`] it at the end, which
/// sends what is still queued.
#[derive(Debug)]
pub struct Export {
    provider: SdkTracerProvider,
    worker: Option<tokio::task::JoinHandle<()>>,
}

impl Export {
    /// Builds the exporter and starts the task that drains the queue (call
    /// inside the Tokio runtime).
    pub fn start(settings: &ExportSettings) -> Result<Export, ExportError> {
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .build()
            .map_err(|error| ExportError::Exporter(error.to_string()))?;
        let resource = opentelemetry_sdk::Resource::builder_empty()
            .with_service_name(settings.service_name.clone())
            .with_attribute(opentelemetry::KeyValue::new("service.version", settings.service_version.clone()))
            .build();
        exporter.set_resource(&resource);
        let (queue, spans) = mpsc::channel(settings.max_queue);
        let worker = tokio::spawn(drain(spans, exporter, settings.max_batch, settings.schedule_delay));
        let provider = SdkTracerProvider::builder()
            .with_resource(resource)
            .with_span_processor(QueueProcessor { queue })
            .build();
        Ok(Export { provider, worker: Some(worker) })
    }

    /// The `tracing` layer that turns spans into OpenTelemetry spans for
    /// this export.
    pub(crate) fn layer<S>(
        &self,
    ) -> tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>
    where
        S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    {
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("bff"))
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
    }

    /// Sends what is queued (waiting at most `grace`) and stops. Spans that
    /// end afterwards are dropped and counted.
    pub async fn shutdown(mut self, grace: Duration) {
        // Dropping the provider drops the processor and so the queue's
        // sender: the task sends what is left and ends.
        let _ = self.provider.shutdown();
        drop(self.provider);
        if let Some(worker) = self.worker.take()
            && tokio::time::timeout(grace, worker).await.is_err()
        {
            tracing::warn!("trace export did not finish within {grace:?}; the rest is lost");
        }
    }
}

/// Offers each finished span to the queue; never waits.
#[derive(Debug)]
struct QueueProcessor {
    queue: mpsc::Sender<SpanData>,
}

impl SpanProcessor for QueueProcessor {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &opentelemetry::Context) {}

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        if self.queue.try_send(span).is_err() {
            ::metrics::counter!(TRACE_SPANS, "outcome" => "dropped").increment(1);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// Sends queued spans in batches of at most `max_batch`, each batch waiting
/// at most `delay` to fill, until the queue is closed and empty.
async fn drain(
    mut spans: mpsc::Receiver<SpanData>,
    exporter: opentelemetry_otlp::SpanExporter,
    max_batch: usize,
    delay: Duration,
) {
    let mut batch = Vec::with_capacity(max_batch);
    let mut last_warning: Option<tokio::time::Instant> = None;
    loop {
        if spans.recv_many(&mut batch, max_batch).await == 0 {
            return;
        }
        let until = tokio::time::Instant::now() + delay;
        while batch.len() < max_batch {
            let room = max_batch - batch.len();
            match tokio::time::timeout_at(until, spans.recv_many(&mut batch, room)).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let count = batch.len() as u64;
        let outcome =
            match exporter.export(std::mem::replace(&mut batch, Vec::with_capacity(max_batch))).await {
                Ok(()) => "exported",
                Err(error) => {
                    // One line a minute at most: a collector that is down must
                    // not flood the log it is down for.
                    if last_warning.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                        tracing::warn!(%error, spans = count, "trace export failed; spans lost");
                        last_warning = Some(tokio::time::Instant::now());
                    }
                    "export_failed"
                }
            };
        ::metrics::counter!(TRACE_SPANS, "outcome" => outcome).increment(count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Option<ExportSettings>, ExportError> {
        let vars: Vec<(String, String)> =
            vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        ExportSettings::from_vars(
            |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()),
            "mobile-bff",
            "0.1.0",
        )
    }

    #[test]
    fn export_is_off_without_an_endpoint_or_when_disabled() {
        assert_eq!(settings(&[]).ok(), Some(None));
        assert_eq!(settings(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")]).ok(), Some(None));
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318");
        assert_eq!(settings(&[endpoint, ("OTEL_SDK_DISABLED", "true")]).ok(), Some(None));
        assert_eq!(settings(&[endpoint, ("OTEL_TRACES_EXPORTER", "none")]).ok(), Some(None));
    }

    #[test]
    fn an_endpoint_turns_it_on_with_the_standard_defaults_and_overrides() {
        let on = settings(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318/v1/traces")])
            .ok()
            .flatten()
            .expect("on");
        assert_eq!((on.service_name.as_str(), on.max_queue, on.max_batch), ("mobile-bff", 2048, 512));
        assert_eq!(on.schedule_delay, Duration::from_secs(1));
        let tuned = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_SERVICE_NAME", "mobile-bff-eu"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "16"),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ])
        .ok()
        .flatten()
        .expect("on");
        assert_eq!(
            (tuned.service_name.as_str(), tuned.max_queue, tuned.max_batch),
            ("mobile-bff-eu", 16, 16)
        );
        assert_eq!(tuned.schedule_delay, Duration::from_millis(50));
    }

    #[test]
    fn a_bad_number_is_refused_by_name() {
        let error =
            settings(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c"), ("OTEL_BSP_MAX_QUEUE_SIZE", "lots")])
                .expect_err("refused");
        assert!(error.to_string().contains("OTEL_BSP_MAX_QUEUE_SIZE"), "{error}");
    }
}
