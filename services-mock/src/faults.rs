//! Live fault injection (`PUT/GET/DELETE /__faults`) and request statistics
//! (`GET/DELETE /__stats`), shared by every mock service.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The fault configuration of one mock. Every field is optional in the
/// `PUT /__faults` body; unknown fields are rejected so a typo is an error,
/// not a silently healthy mock. Shares are probabilities in `[0, 1]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct Faults {
    /// Added to every response, in milliseconds.
    pub latency_ms: u64,
    /// Up to this much more, uniformly random, in milliseconds.
    pub jitter_ms: u64,
    /// Share of responses that are slow...
    pub slow_ratio: f64,
    /// ...by this many extra milliseconds.
    pub slow_ms: u64,
    /// Share of responses replaced by an error...
    pub error_ratio: f64,
    /// ...with this status (default 503).
    pub error_status: Option<u16>,
    /// Share of responses replaced by `429 Too Many Requests`...
    pub rate_limit_ratio: f64,
    /// ...with this `Retry-After`, in seconds (default 1).
    pub retry_after_s: Option<u64>,
    /// Share of requests whose connection is dropped mid-response.
    pub drop_ratio: f64,
    /// Serve semantically wrong data (negative prices, empty names, ...).
    pub bad_data: bool,
    /// The next this-many requests fail with `errorStatus` (deterministic;
    /// counted from this `PUT`).
    pub error_first: u64,
    /// Every this-many-th request is slow by `slowMs` (deterministic;
    /// counted from this `PUT`), on top of `slowRatio`.
    pub slow_every: u64,
    /// Writes (any method but `GET`) are done, then answered this many
    /// milliseconds late: the write happened, its answer is late or lost
    /// (the caller may time out). For tests of "did my order go through?".
    pub after_write_ms: u64,
    /// Only these routes misbehave (`"GET /.well-known/jwks.json"`, as
    /// `/__stats` names them); empty means every route.
    pub routes: Vec<String>,
}

impl Faults {
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (name, share) in [
            ("slowRatio", self.slow_ratio),
            ("errorRatio", self.error_ratio),
            ("rateLimitRatio", self.rate_limit_ratio),
            ("dropRatio", self.drop_ratio),
        ] {
            if !(0.0..=1.0).contains(&share) {
                problems.push(format!("{name} must be between 0 and 1"));
            }
        }
        if self.error_ratio + self.rate_limit_ratio + self.drop_ratio > 1.0 {
            problems.push("errorRatio + rateLimitRatio + dropRatio must not exceed 1".to_owned());
        }
        if self.error_status.is_some_and(|status| !(400..=599).contains(&status)) {
            problems.push("errorStatus must be a 4xx or 5xx status".to_owned());
        }
        if self.latency_ms + self.jitter_ms + self.slow_ms + self.after_write_ms > 600_000 {
            problems.push("total injected latency must stay under 10 minutes".to_owned());
        }
        problems
    }
}

/// One request as recorded in `/__stats`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRecord {
    /// `METHOD /route/{param}`.
    pub route: String,
    /// Arrival, microseconds since the Unix epoch.
    pub started_us: u64,
    /// Completion (or cancellation), microseconds since the Unix epoch.
    pub finished_us: Option<u64>,
    /// The `x-request-id` it carried.
    pub request_id: Option<String>,
    /// The `traceparent` it carried.
    pub traceparent: Option<String>,
    /// Whether it carried an `Authorization` header.
    pub authorization: bool,
    /// The claims of its bearer token as sent (decoded, not verified), so
    /// tests can see who the token was for and who it names.
    pub token: Option<TokenSeen>,
}

/// The parts of a received bearer token that tests look at.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenSeen {
    /// Audience.
    pub aud: Option<String>,
    /// Subject.
    pub sub: Option<String>,
    /// Actor (`act.sub`) of an exchanged token.
    pub act: Option<serde_json::Value>,
    /// Scopes.
    pub scope: Option<String>,
}

fn token_seen(headers: &HeaderMap) -> Option<TokenSeen> {
    let token = headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ")?;
    jsonwebtoken::dangerous::insecure_decode::<TokenSeen>(token).ok().map(|data| data.claims)
}

#[derive(Debug, Default)]
struct StatsInner {
    total: u64,
    in_flight: u64,
    max_in_flight: u64,
    routes: BTreeMap<String, u64>,
    recent: VecDeque<RequestRecord>,
    next_seq: u64,
    first_seq_in_recent: u64,
}

/// How many recent requests `/__stats` keeps.
const RECENT: usize = 256;

/// Request counters of one mock.
#[derive(Debug, Default)]
pub struct Stats {
    inner: Mutex<StatsInner>,
}

/// The `/__stats` body.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatsSnapshot {
    /// Requests that reached a service route since start or reset.
    pub total: u64,
    /// Requests being served now.
    pub in_flight: u64,
    /// Highest `inFlight` seen.
    pub max_in_flight: u64,
    /// Requests per route.
    pub routes: BTreeMap<String, u64>,
    /// The last requests, oldest first.
    pub recent: Vec<RequestRecord>,
}

impl Stats {
    fn lock(&self) -> MutexGuard<'_, StatsInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn begin(&self, record: RequestRecord) -> u64 {
        let mut inner = self.lock();
        inner.total += 1;
        inner.in_flight += 1;
        inner.max_in_flight = inner.max_in_flight.max(inner.in_flight);
        *inner.routes.entry(record.route.clone()).or_default() += 1;
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.recent.push_back(record);
        if inner.recent.len() > RECENT {
            inner.recent.pop_front();
            inner.first_seq_in_recent += 1;
        }
        seq
    }

    fn end(&self, seq: u64) {
        let mut inner = self.lock();
        inner.in_flight = inner.in_flight.saturating_sub(1);
        let offset = seq.checked_sub(inner.first_seq_in_recent);
        if let Some(record) = offset.and_then(|o| inner.recent.get_mut(o as usize)) {
            record.finished_us = Some(now_us());
        }
    }

    /// The current counters.
    pub fn snapshot(&self) -> StatsSnapshot {
        let inner = self.lock();
        StatsSnapshot {
            total: inner.total,
            in_flight: inner.in_flight,
            max_in_flight: inner.max_in_flight,
            routes: inner.routes.clone(),
            recent: inner.recent.iter().cloned().collect(),
        }
    }

    /// Zeroes the counters (requests in flight stay counted as in flight).
    pub fn reset(&self) {
        let mut inner = self.lock();
        let in_flight = inner.in_flight;
        let next_seq = inner.next_seq;
        *inner = StatsInner {
            in_flight,
            max_in_flight: in_flight,
            next_seq,
            first_seq_in_recent: next_seq,
            ..StatsInner::default()
        };
    }
}

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// The live fault configuration of one mock.
#[derive(Debug, Default)]
pub struct FaultState {
    faults: Mutex<Faults>,
    /// Requests the faults were applied to since the last `PUT`.
    seen: std::sync::atomic::AtomicU64,
}

impl FaultState {
    /// The current configuration.
    pub fn get(&self) -> Faults {
        self.faults.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Heals the mock: no faults.
    pub fn clear(&self) {
        self.set(Faults::default());
    }

    fn set(&self, faults: Faults) {
        *self.faults.lock().unwrap_or_else(|p| p.into_inner()) = faults;
        self.seen.store(0, std::sync::atomic::Ordering::SeqCst);
    }

    /// Counts a request; returns its 1-based number since the last `PUT`.
    fn next(&self) -> u64 {
        self.seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1
    }

    /// Whether handlers should corrupt their data.
    pub fn bad_data(&self) -> bool {
        self.get().bad_data
    }
}

/// What the fault middleware and the admin routes share.
#[derive(Debug, Clone, Default)]
pub struct Control {
    /// Fault configuration.
    pub faults: Arc<FaultState>,
    /// Request counters.
    pub stats: Arc<Stats>,
}

/// Decrements `inFlight` even when the request is cancelled mid-way.
struct InFlight<'a> {
    stats: &'a Stats,
    seq: u64,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.stats.end(self.seq);
    }
}

fn header_string(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// Middleware on every service route: count the request, then apply the
/// configured latency and failures.
pub async fn inject(State(control): State<Control>, request: Request, next: Next) -> Response {
    let route = match request.extensions().get::<MatchedPath>() {
        Some(path) => format!("{} {}", request.method(), path.as_str()),
        None => format!("{} {}", request.method(), request.uri().path()),
    };
    let headers = request.headers();
    let seq = control.stats.begin(RequestRecord {
        route: route.clone(),
        started_us: now_us(),
        finished_us: None,
        request_id: header_string(headers, "x-request-id"),
        traceparent: header_string(headers, "traceparent"),
        authorization: headers.contains_key(header::AUTHORIZATION),
        token: token_seen(headers),
    });
    let _in_flight = InFlight { stats: &control.stats, seq };

    let faults = control.faults.get();
    if !faults.routes.is_empty() && !faults.routes.contains(&route) {
        return next.run(request).await;
    }
    let nth = control.faults.next();
    let mut delay = faults.latency_ms;
    if faults.slow_every > 0 && nth.is_multiple_of(faults.slow_every) {
        delay += faults.slow_ms;
    }
    if faults.jitter_ms > 0 {
        delay += fastrand::u64(0..=faults.jitter_ms);
    }
    if faults.slow_ratio > 0.0 && fastrand::f64() < faults.slow_ratio {
        delay += faults.slow_ms;
    }
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }

    if nth <= faults.error_first {
        return injected_error(&faults);
    }
    let roll = fastrand::f64();
    if roll < faults.drop_ratio {
        return dropped_connection();
    }
    if roll < faults.drop_ratio + faults.rate_limit_ratio {
        let mut response = error_body(StatusCode::TOO_MANY_REQUESTS, "rate limited (injected)");
        let after = faults.retry_after_s.unwrap_or(1);
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(after));
        return response;
    }
    if roll < faults.drop_ratio + faults.rate_limit_ratio + faults.error_ratio {
        return injected_error(&faults);
    }
    let write = request.method() != axum::http::Method::GET;
    let response = next.run(request).await;
    if write && faults.after_write_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.after_write_ms)).await;
    }
    response
}

/// The injected error response: `errorStatus`, 503 by default.
fn injected_error(faults: &Faults) -> Response {
    let status = faults
        .error_status
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    error_body(status, "failure (injected)")
}

/// A 200 whose body fails after the headers: the server aborts the
/// connection, and the client sees it dropped mid-response.
fn dropped_connection() -> Response {
    let stream = futures_util::stream::once(async {
        Err::<axum::body::Bytes, io::Error>(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "connection dropped (injected)",
        ))
    });
    let mut response = Response::new(Body::from_stream(stream));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The mocks' error body.
pub fn error_body(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

/// `GET /__faults`.
pub async fn get_faults(State(control): State<Control>) -> Json<Faults> {
    Json(control.faults.get())
}

/// `PUT /__faults`: replaces the configuration.
pub async fn put_faults(State(control): State<Control>, body: axum::body::Bytes) -> Response {
    let faults: Faults = match serde_json::from_slice(&body) {
        Ok(faults) => faults,
        Err(e) => return error_body(StatusCode::BAD_REQUEST, &format!("invalid faults: {e}")),
    };
    let problems = faults.problems();
    if !problems.is_empty() {
        return error_body(StatusCode::BAD_REQUEST, &problems.join("; "));
    }
    tracing::info!(?faults, "faults changed");
    control.faults.set(faults.clone());
    Json(faults).into_response()
}

/// `DELETE /__faults`: back to healthy.
pub async fn delete_faults(State(control): State<Control>) -> StatusCode {
    control.faults.set(Faults::default());
    StatusCode::NO_CONTENT
}

/// `GET /__stats`.
pub async fn get_stats(State(control): State<Control>) -> Json<StatsSnapshot> {
    Json(control.stats.snapshot())
}

/// `DELETE /__stats`.
pub async fn delete_stats(State(control): State<Control>) -> StatusCode {
    control.stats.reset();
    StatusCode::NO_CONTENT
}
