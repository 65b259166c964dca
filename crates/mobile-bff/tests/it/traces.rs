//! Traces over OTLP: the real binary exports to a receiver in this process
//! (real OTLP/HTTP, decoded with the official protobuf types), and the span
//! tree of one `/v1/home` request is what an on-call engineer needs.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message as _;
use services_mock::{Fleet, Service};

use crate::helpers::Binary;

/// An OTLP/HTTP receiver on a loopback port: `POST /v1/traces`, protobuf.
struct Receiver {
    endpoint: String,
    received: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let received = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&received);
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: Bytes| {
                let kept = Arc::clone(&kept);
                async move {
                    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf export");
                    kept.lock().expect("lock").push(request);
                    (
                        [("content-type", "application/x-protobuf")],
                        ExportTraceServiceResponse::default().encode_to_vec(),
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let endpoint = format!("http://{}", listener.local_addr().expect("an address"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { endpoint, received }
    }

    /// The spans of the trace `trace_id` (hex), once its server span has
    /// arrived (it ends last, after every other; 5 s at most).
    async fn trace(&self, trace_id: &str) -> Vec<(String, Span)> {
        let wanted = unhex(trace_id);
        let mut spans = Vec::new();
        for _ in 0..200 {
            spans = self.spans(&wanted);
            if spans.iter().any(|(_, s)| s.kind == SpanKind::Server as i32) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        spans
    }

    /// Spans of `trace_id` received so far, with the service that sent them.
    fn spans(&self, trace_id: &[u8]) -> Vec<(String, Span)> {
        let received = self.received.lock().expect("lock");
        let mut spans = Vec::new();
        for export in received.iter() {
            for resource in &export.resource_spans {
                let service = resource
                    .resource
                    .as_ref()
                    .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
                    .and_then(|kv| kv.value.as_ref())
                    .and_then(|v| match &v.value {
                        Some(Value::StringValue(s)) => Some(s.clone()),
                        _ => None,
                    })
                    .unwrap_or_default();
                for scope in &resource.scope_spans {
                    for span in scope.spans.iter().filter(|s| s.trace_id == trace_id) {
                        spans.push((service.clone(), span.clone()));
                    }
                }
            }
        }
        spans
    }
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    let value = span.attributes.iter().find(|kv| kv.key == key)?.value.as_ref()?.value.as_ref()?;
    Some(match value {
        Value::StringValue(s) => s.clone(),
        Value::IntValue(n) => n.to_string(),
        Value::BoolValue(b) => b.to_string(),
        Value::DoubleValue(d) => d.to_string(),
        other => format!("{other:?}"),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex")).collect()
}

/// The tree as indented lines, for failure messages.
fn draw(spans: &[(String, Span)]) -> String {
    fn walk(spans: &[(String, Span)], parent: &[u8], depth: usize, out: &mut String) {
        for (_, span) in spans.iter().filter(|(_, s)| s.parent_span_id == parent) {
            let attributes: Vec<String> = span
                .attributes
                .iter()
                .filter_map(|kv| Some(format!("{}={:?}", kv.key, kv.value.as_ref()?.value.as_ref()?)))
                .collect();
            out.push_str(&format!("{}{} [{}]\n", "  ".repeat(depth), span.name, attributes.join(" ")));
            walk(spans, &span.span_id, depth + 1, out);
        }
    }
    let mut out = String::new();
    let ids: Vec<&[u8]> = spans.iter().map(|(_, s)| s.span_id.as_slice()).collect();
    for (_, root) in spans.iter().filter(|(_, s)| !ids.contains(&s.parent_span_id.as_slice())) {
        out.push_str(&format!("{} (parent {})\n", root.name, hex(&root.parent_span_id)));
        walk(spans, &root.span_id, 1, &mut out);
    }
    out
}

/// One `/v1/home` request with a caller's `traceparent`: one server span
/// under the caller's span, one span per component under it, one guarded
/// call under each component that called, and one client span per HTTP
/// attempt under that, with dependency, budget, outcome, attempt number and
/// hedge; cached parts say how the cache served them; the `traceparent` a
/// service received names the attempt's span.
#[tokio::test]
async fn one_home_request_exports_its_span_tree_under_the_callers_trace() {
    let receiver = Receiver::start().await;
    let fleet = Fleet::for_bff(mobile_bff::ENTRY).await.expect("mocks");
    let bff = Binary::start(
        &fleet,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint.clone()),
            ("OTEL_BSP_SCHEDULE_DELAY", "50".to_owned()),
        ],
    );
    let http = reqwest::Client::new();
    let token =
        fleet.identity().user_token(mobile_bff::ENTRY, "u-1", Duration::from_secs(300)).expect("a token");
    let (trace_id, caller_span) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let reply = http
        .get(format!("{}/v1/home", bff.base))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .send()
        .await
        .expect("the BFF answers");
    assert_eq!(reply.status(), 200);
    let body: serde_json::Value = reply.json().await.expect("json");
    let components: Vec<String> = body["components"]
        .as_object()
        .map(|c| c.keys().cloned().collect())
        .or_else(|| {
            body["components"]
                .as_array()
                .map(|a| a.iter().filter_map(|c| c["name"].as_str().map(str::to_owned)).collect())
        })
        .expect("the envelope lists its components");

    let spans = receiver.trace(trace_id).await;
    let tree = draw(&spans);
    assert!(spans.iter().all(|(service, _)| service == "mobile-bff"), "service.name:\n{tree}");

    let servers: Vec<&Span> =
        spans.iter().map(|(_, s)| s).filter(|s| s.kind == SpanKind::Server as i32).collect();
    assert_eq!(servers.len(), 1, "one server span:\n{tree}");
    let server = servers[0];
    assert_eq!(server.name, "GET /v1/home", "{tree}");
    assert_eq!(hex(&server.parent_span_id), caller_span, "continues the caller's span:\n{tree}");
    assert_eq!(attribute(server, "status").as_deref(), Some("200"), "{tree}");

    let children = |parent: &Span, name: &str| -> Vec<Span> {
        spans
            .iter()
            .map(|(_, s)| s)
            .filter(|s| s.parent_span_id == parent.span_id && s.name == name)
            .cloned()
            .collect()
    };
    let component_spans = children(server, "component");
    let mut named: Vec<String> =
        component_spans.iter().filter_map(|s| attribute(s, "component")).collect::<Vec<_>>();
    named.sort();
    let mut expected = components.clone();
    expected.sort();
    assert_eq!(named, expected, "one span per component, under the server span:\n{tree}");

    let mut attempts_seen = BTreeMap::new();
    for component in &component_spans {
        let name = attribute(component, "component").unwrap_or_default();
        assert_eq!(attribute(component, "outcome").as_deref(), Some("ok"), "{name}:\n{tree}");
        assert!(attribute(component, "budget_ms").is_some(), "{name} has its budget:\n{tree}");
        if ["recommendations", "promotions"].contains(&name.as_str()) {
            // The first request: a miss, so the part called.
            assert_eq!(attribute(component, "cache").as_deref(), Some("miss"), "{name}:\n{tree}");
        }
        for call in children(component, "downstream") {
            assert_eq!(attribute(&call, "outcome").as_deref(), Some("ok"), "{tree}");
            for attempt in children(&call, "attempt") {
                assert_eq!(attempt.kind, SpanKind::Client as i32, "{tree}");
                let dependency = attribute(&attempt, "dependency").expect("a dependency");
                assert_eq!(attribute(&attempt, "attempt").as_deref(), Some("1"), "{tree}");
                assert_eq!(attribute(&attempt, "hedge").as_deref(), Some("false"), "{tree}");
                assert_eq!(attribute(&attempt, "outcome").as_deref(), Some("ok"), "{tree}");
                let budget: u64 =
                    attribute(&attempt, "budget_ms").and_then(|b| b.parse().ok()).expect("budget");
                assert!(budget > 0, "{tree}");
                attempts_seen.insert(dependency, hex(&attempt.span_id));
            }
        }
    }
    // Every home dependency was called once, each in its own attempt span,
    // and received a traceparent naming that span under the caller's trace.
    for (service, dependency) in [
        (Service::User, "user"),
        (Service::Cart, "cart"),
        (Service::Recommendations, "recommendations"),
        (Service::Promotions, "promotions"),
        (Service::Shipping, "shipping"),
    ] {
        let span_id =
            attempts_seen.get(dependency).unwrap_or_else(|| panic!("no attempt to {dependency}:\n{tree}"));
        let stats = fleet.stats(service).await.expect("stats");
        let sent = stats["recent"][0]["traceparent"].as_str().unwrap_or_default().to_owned();
        assert_eq!(
            sent,
            format!("00-{trace_id}-{span_id}-01"),
            "{dependency} got the attempt's span:\n{tree}"
        );
    }
}

/// A fault switched on in a mock shows in the next request's trace: the
/// component's span and its attempt's say what happened.
#[tokio::test]
async fn a_failing_dependency_shows_in_the_trace_of_the_next_request() {
    let receiver = Receiver::start().await;
    let fleet = Fleet::for_bff(mobile_bff::ENTRY).await.expect("mocks");
    let bff = Binary::start(
        &fleet,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint.clone()),
            ("OTEL_BSP_SCHEDULE_DELAY", "50".to_owned()),
        ],
    );
    fleet.set_faults(Service::Shipping, serde_json::json!({"errorRatio": 1.0})).await.expect("faults");
    let token =
        fleet.identity().user_token(mobile_bff::ENTRY, "u-1", Duration::from_secs(300)).expect("a token");
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let reply = reqwest::Client::new()
        .get(format!("{}/v1/home", bff.base))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{trace_id}-b7ad6b7169203331-01"))
        .send()
        .await
        .expect("the BFF answers");
    assert_eq!(reply.status(), 200, "shipping is optional");
    let spans = receiver.trace(trace_id).await;
    let tree = draw(&spans);
    let shipping = spans
        .iter()
        .map(|(_, s)| s)
        .find(|s| s.name == "component" && attribute(s, "component").as_deref() == Some("shipping"))
        .unwrap_or_else(|| panic!("a shipping component span:\n{tree}"));
    assert_eq!(attribute(shipping, "outcome").as_deref(), Some("unavailable"), "{tree}");
    let attempts: Vec<&Span> = spans
        .iter()
        .map(|(_, s)| s)
        .filter(|s| s.name == "attempt" && attribute(s, "dependency").as_deref() == Some("shipping"))
        .collect();
    assert!(!attempts.is_empty(), "{tree}");
    assert!(attempts.iter().all(|a| attribute(a, "outcome").as_deref() == Some("unavailable")), "{tree}");
}

/// A collector that never answers: requests are still answered, the queue
/// stays bounded and what did not fit is counted as dropped.
#[tokio::test]
async fn a_collector_that_hangs_costs_spans_not_requests() {
    // Accepts connections and never answers them.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let endpoint = format!("http://{}", silent.local_addr().expect("an address"));
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let fleet = Fleet::for_bff(mobile_bff::ENTRY).await.expect("mocks");
    let bff = Binary::start(
        &fleet,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "10".to_owned()),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "8".to_owned()),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "8".to_owned()),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "30000".to_owned()),
        ],
    );
    let http = reqwest::Client::new();
    let token =
        fleet.identity().user_token(mobile_bff::ENTRY, "u-1", Duration::from_secs(300)).expect("a token");
    for _ in 0..20 {
        let reply =
            http.get(format!("{}/v1/home", bff.base)).bearer_auth(&token).send().await.expect("answers");
        assert_eq!(reply.status(), 200);
    }
    let metrics = http
        .get(format!("{}/metrics", bff.admin_base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let dropped = bff_testkit::metrics::sum(&metrics, "bff_trace_spans_total", &[("outcome", "dropped")]);
    let exported = bff_testkit::metrics::sum(&metrics, "bff_trace_spans_total", &[("outcome", "exported")]);
    // 20 requests of a dozen spans each against a queue of 8 and one batch
    // of 8 stuck in a hanging export: most are dropped, none exported.
    assert!(dropped >= 100.0, "dropped {dropped}:\n{metrics}");
    assert_eq!(exported, 0.0);
}
