//! Safe retries of writes: the IETF Idempotency-Key header
//! (draft-ietf-httpapi-idempotency-key-header), enforced by the shell for
//! every operation whose document declares a required `Idempotency-Key`
//! header (`params(IdempotencyKey)` on the handler): what the document
//! promises is what is enforced, as for scopes.
//!
//! For such a request, just inside authentication (the caller is known):
//!
//! * no key: `400 idempotency.key_missing`; a malformed one `400 request.invalid`;
//! * the key is **claimed** for the caller (`SET NX` with a lease in Redis,
//!   shared by every instance) together with the request's fingerprint
//!   (method, path, query and body);
//! * claimed: the handler runs. A *settled* answer (a success, or a refusal
//!   the same request would always get: [`bff_error::ErrorCode::settles_write`])
//!   is stored under the key for `server.idempotency_key_ttl_secs` (24 h by
//!   default), sealed with the cache's key; anything else (a server fault,
//!   `write.outcome_unknown`, a rate limit) releases the key, so the retry
//!   runs again and the service that owns the write, which keeps the key
//!   too, answers it with what it did;
//! * not claimed: the same fingerprint still in flight is
//!   `409 idempotency.in_flight` with `Retry-After` (concurrent requests
//!   with one key never both run); the same fingerprint settled is the
//!   stored answer again, with `Idempotent-Replayed: true`; another
//!   fingerprint is `422 idempotency.key_reused`.
//!
//! The lease (`server.idempotency_lease_ms`, 10 s by default) bounds how
//! long a key stays claimed if the instance dies mid-request: retries get
//! `409` until it ends, then run (and the owning service replays).
//!
//! Without Redis (not configured, or failing: its breaker), keys are held
//! in this instance's memory: the guarantees then hold per instance, and
//! the owning service's own key check is the backstop across instances.
//! A Redis failure is never a request failure.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use base64::Engine as _;
use bff_auth::Caller;
use bff_cache::Cache;
use bff_error::{ApiError, ErrorCode};
use bff_redis::SharedRedis;
use bff_redis::redis::{self, AsyncCommands as _};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::openapi::OpenApi;

use crate::extract::IdempotencyKey;

/// The response header on a replayed answer (Stripe's name, the most
/// widely known; the draft leaves it open).
pub const REPLAYED: &str = "idempotent-replayed";

/// Keys held in memory at most when Redis is unavailable.
const LOCAL_CAPACITY: usize = 100_000;

/// Headers of a handler's answer that are kept with it (the outer layers
/// add the rest again on a replay).
const KEPT_HEADERS: [HeaderName; 3] = [header::CONTENT_TYPE, header::LOCATION, header::ETAG];

/// Stores settle only answers up to this size (a write's answer is small;
/// a larger one is answered, and the key released).
const MAX_STORED_BODY: usize = 256 * 1024;

/// What is enforced, and where keys are kept. One `Arc`: the layer's state
/// is cloned for every request, writes or not.
#[derive(Clone)]
pub(crate) struct Idempotency(Arc<Inner>);

pub(crate) struct Inner {
    /// Path templates, each with the methods that declare the header.
    writes: HashMap<String, Vec<Method>>,
    redis: SharedRedis,
    cache: Cache,
    local: Arc<Mutex<HashMap<String, (String, Instant)>>>,
    namespace: &'static str,
    ttl: Duration,
    lease: Duration,
    body_limit: usize,
}

impl Idempotency {
    /// The operations of `doc` that declare a required `Idempotency-Key`.
    pub(crate) fn from_document(
        doc: &OpenApi,
        namespace: &'static str,
        redis: SharedRedis,
        cache: Cache,
        config: &crate::config::ServerConfig,
    ) -> Self {
        let doc = serde_json::to_value(doc).unwrap_or_default();
        let mut writes: HashMap<String, Vec<Method>> = HashMap::new();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for (method, operation) in item.as_object().into_iter().flatten() {
                let Ok(method) = Method::from_bytes(method.to_ascii_uppercase().as_bytes()) else { continue };
                let declares = operation["parameters"].as_array().into_iter().flatten().any(|parameter| {
                    parameter["in"] == "header"
                        && parameter["required"] == true
                        && parameter["name"]
                            .as_str()
                            .is_some_and(|n| n.eq_ignore_ascii_case(IdempotencyKey::HEADER))
                });
                if declares {
                    writes.entry(path.clone()).or_default().push(method);
                }
            }
        }
        Idempotency(Arc::new(Inner {
            writes,
            redis,
            cache,
            local: Arc::default(),
            namespace,
            ttl: Duration::from_secs(config.idempotency_key_ttl_secs),
            lease: Duration::from_millis(config.idempotency_lease_ms),
            body_limit: config.body_limit_bytes,
        }))
    }

    /// Whether no operation declares the header (the layer can be left out).
    pub(crate) fn is_empty(&self) -> bool {
        self.0.writes.is_empty()
    }
}

impl std::ops::Deref for Idempotency {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// A settled answer as stored (sealed) under its key.
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    /// A success status by name, or `error:<code>` (statuses are chosen
    /// by the taxonomy only: a refusal's comes back from its code).
    status: String,
    headers: Vec<(String, String)>,
    body: String,
}

/// What a key holds: claimed by a request in flight, or settled.
enum Held {
    /// Could not be read (Redis failed between the claim and the read).
    Unknown,
    InFlight {
        fingerprint: String,
    },
    Settled {
        fingerprint: String,
        answer: Option<Stored>,
    },
}

/// Where a claim was made: it is settled or released in the same place.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Store {
    Redis,
    Local,
}

/// The layer (a route layer inside authentication). A hand-written tower
/// layer rather than `middleware::from_fn`, which boxes a future and
/// clones its inner stack on every request: this one passes reads straight
/// through and does its work for declared writes only. Even so, one more
/// level in the route stack costs every request 22 allocations (mobile
/// home 801 → 823, measured by the allocation guard), because each
/// `from_fn` layer above it clones the whole stack below per request; at
/// ~20 ns each under mimalloc that is ~0.2% of a screen, accepted.
#[derive(Clone)]
pub(crate) struct GuardWritesLayer(pub(crate) Idempotency);

impl<S> tower::Layer<S> for GuardWritesLayer {
    type Service = GuardWrites<S>;

    fn layer(&self, inner: S) -> GuardWrites<S> {
        GuardWrites { idem: self.0.clone(), inner }
    }
}

/// The service of [`GuardWritesLayer`].
#[derive(Clone)]
pub(crate) struct GuardWrites<S> {
    idem: Idempotency,
    inner: S,
}

type Boxed = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

pin_project_lite::pin_project! {
    /// A read's own future, or a guarded write's.
    #[project = GuardFutureProjection]
    pub(crate) enum GuardFuture<F> {
        Pass { #[pin] inner: F },
        Guarded { future: Boxed },
    }
}

impl<F: Future<Output = Result<Response, Infallible>>> Future for GuardFuture<F> {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            GuardFutureProjection::Pass { inner } => inner.poll(cx),
            GuardFutureProjection::Guarded { future } => future.as_mut().poll(cx),
        }
    }
}

impl<S> tower::Service<Request> for GuardWrites<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = GuardFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // Reads pass straight through: no allocation, no lookup beyond this.
        let declared = !matches!(*request.method(), Method::GET | Method::HEAD)
            && request.extensions().get::<MatchedPath>().is_some_and(|m| {
                self.idem.writes.get(m.as_str()).is_some_and(|methods| methods.contains(request.method()))
            });
        if !declared {
            return GuardFuture::Pass { inner: self.inner.call(request) };
        }
        // The ready service serves this request; its clone stays for the next.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let idem = self.idem.clone();
        GuardFuture::Guarded { future: Box::pin(async move { Ok(guard(idem, request, inner).await) }) }
    }
}

/// One declared write: claim, run, settle or release; or answer from what
/// the key holds.
async fn guard<S>(idem: Idempotency, request: Request, mut inner: S) -> Response
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
{
    let key = match request.headers().get(IdempotencyKey::HEADER).map(HeaderValue::to_str) {
        None => return ApiError::new(ErrorCode::IdempotencyKeyMissing).into_response(),
        Some(Ok(key)) if IdempotencyKey::is_valid(key) => key.to_owned(),
        Some(_) => {
            return ApiError::new(ErrorCode::RequestInvalid)
                .with_detail("an Idempotency-Key is 8 to 128 letters, digits, '-', '_', '.' or ':'")
                .into_response();
        }
    };
    let Some(subject) = request.extensions().get::<Caller>().map(|caller| caller.subject.clone()) else {
        tracing::error!("a write that needs an Idempotency-Key has no authenticated caller");
        return ApiError::new(ErrorCode::AuthInvalidToken).into_response();
    };
    let (parts, body) = request.into_parts();
    // The edge refuses a declared oversize body; this cuts a streamed one.
    let Ok(body) = axum::body::to_bytes(body, idem.body_limit).await else {
        return ApiError::new(ErrorCode::RequestTooLarge).into_response();
    };
    let fingerprint = fingerprint(&parts.method, parts.uri.path(), parts.uri.query(), &body);
    let storage_key = storage_key(idem.namespace, &subject, &key);
    let token = format!("{:016x}", fastrand::u64(..));
    let claim = format!("f|{fingerprint}|{token}");

    let mut store = None;
    for _ in 0..2 {
        match idem.claim(&storage_key, &claim).await {
            (true, claimed_in) => {
                store = Some(claimed_in);
                break;
            }
            (false, claimed_in) => match idem.read(&storage_key, claimed_in).await {
                // Gone between the claim and the read (settled answers do
                // not vanish early; a lease may): try once more.
                None => continue,
                Some(held) => return answer_held(&storage_key, &fingerprint, held),
            },
        }
    }
    let Some(store) = store else {
        return in_flight("this key's request is still being decided");
    };

    let request = Request::from_parts(parts, Body::from(body));
    let response = match inner.call(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let settles = response.extensions().get::<ErrorCode>().is_none_or(|code| code.settles_write());
    if !settles {
        idem.release(&storage_key, &claim, store).await;
        return response;
    }
    let (head, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_STORED_BODY).await else {
        tracing::warn!("a write's answer is too large to keep for replays; its key is released");
        idem.release(&storage_key, &claim, store).await;
        return ApiError::new(ErrorCode::Internal).into_response();
    };
    let Some(status) = stored_status(&head.status, head.extensions.get::<ErrorCode>()) else {
        tracing::warn!(status = %head.status, "a write's answer of this kind is not kept for replays");
        idem.release(&storage_key, &claim, store).await;
        return Response::from_parts(head, Body::from(bytes));
    };
    let stored = Stored {
        status,
        headers: KEPT_HEADERS
            .iter()
            .filter_map(|name| {
                let value = head.headers.get(name)?.to_str().ok()?;
                Some((name.as_str().to_owned(), value.to_owned()))
            })
            .collect(),
        body: String::from_utf8_lossy(&bytes).into_owned(),
    };
    idem.settle(&storage_key, &claim, &fingerprint, &stored, store).await;
    Response::from_parts(head, Body::from(bytes))
}

/// The answer for a key someone else holds.
fn answer_held(storage_key: &str, fingerprint: &str, held: Held) -> Response {
    match held {
        Held::Unknown => in_flight("this key's state cannot be read right now"),
        Held::InFlight { fingerprint: other } | Held::Settled { fingerprint: other, .. }
            if other != fingerprint =>
        {
            ApiError::new(ErrorCode::IdempotencyKeyReused).into_response()
        }
        Held::InFlight { .. } => in_flight("a request with this Idempotency-Key is still in progress"),
        Held::Settled { answer: Some(stored), .. } => replay(stored),
        Held::Settled { answer: None, .. } => {
            // Sealed with a key no longer configured, or edited: the answer
            // cannot be shown, and running the write again could repeat it.
            tracing::warn!(key = %storage_key, "a stored answer could not be opened");
            in_flight("the first answer for this Idempotency-Key cannot be read; try again later")
        }
    }
}

fn in_flight(detail: &'static str) -> Response {
    ApiError::new(ErrorCode::IdempotencyInFlight)
        .with_detail(detail)
        .with_retry_after(Duration::from_secs(1))
        .into_response()
}

/// How a settled answer's status is kept: a success by name, an error by
/// its code.
fn stored_status(status: &StatusCode, code: Option<&ErrorCode>) -> Option<String> {
    if let Some(code) = code {
        return Some(format!("error:{code}"));
    }
    let name = match *status {
        StatusCode::OK => "ok",
        StatusCode::CREATED => "created",
        StatusCode::ACCEPTED => "accepted",
        StatusCode::NO_CONTENT => "no_content",
        _ => return None,
    };
    Some(name.to_owned())
}

fn replayed_status(stored: &str) -> Option<StatusCode> {
    if let Some(code) = stored.strip_prefix("error:") {
        return ErrorCode::ALL.into_iter().find(|known| known.as_str() == code).map(ErrorCode::status);
    }
    match stored {
        "ok" => Some(StatusCode::OK),
        "created" => Some(StatusCode::CREATED),
        "accepted" => Some(StatusCode::ACCEPTED),
        "no_content" => Some(StatusCode::NO_CONTENT),
        _ => None,
    }
}

fn replay(stored: Stored) -> Response {
    let Some(status) = replayed_status(&stored.status) else {
        tracing::warn!(status = %stored.status, "a stored answer has an unknown status");
        return in_flight("the first answer for this Idempotency-Key cannot be read; try again later");
    };
    let mut response = (status, stored.body).into_response();
    let headers: &mut HeaderMap = response.headers_mut();
    headers.remove(header::CONTENT_TYPE);
    for (name, value) in stored.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            headers.insert(name, value);
        }
    }
    headers.insert(HeaderName::from_static(REPLAYED), HeaderValue::from_static("true"));
    response
}

/// What makes two requests "the same request": method, path, query and body.
fn fingerprint(method: &Method, path: &str, query: Option<&str>, body: &[u8]) -> String {
    let mut hash = Sha256::new();
    for part in [method.as_str().as_bytes(), path.as_bytes(), query.unwrap_or_default().as_bytes(), body] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hex(&hash.finalize())
}

/// Keys are per BFF and per caller; hashed, so Redis holds no user id.
fn storage_key(namespace: &str, subject: &str, key: &str) -> String {
    let mut hash = Sha256::new();
    hash.update((subject.len() as u64).to_be_bytes());
    hash.update(subject.as_bytes());
    hash.update(key.as_bytes());
    format!("bff:idem:{namespace}:{}", hex(&hash.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Sets KEYS[1] to ARGV[2] for ARGV[3] ms if it still holds ARGV[1] (our claim).
const SETTLE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
    return redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) else return false end";
/// Deletes KEYS[1] if it still holds ARGV[1] (our claim).
const RELEASE: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

impl Idempotency {
    /// Claims `key` with `claim` for the lease: `(claimed, where)`.
    async fn claim(&self, key: &str, claim: &str) -> (bool, Store) {
        let lease = self.lease.as_millis() as u64;
        let shared: Option<Option<String>> = self
            .redis
            .run(|mut redis| async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(claim)
                    .arg("NX")
                    .arg("PX")
                    .arg(lease)
                    .query_async(&mut redis)
                    .await
            })
            .await;
        match shared {
            Some(set) => (set.is_some(), Store::Redis),
            None => (self.local_claim(key, claim), Store::Local),
        }
    }

    fn local_claim(&self, key: &str, claim: &str) -> bool {
        let mut local = self.local.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if local.get(key).is_some_and(|(_, until)| *until > now) {
            return false;
        }
        if local.len() >= LOCAL_CAPACITY {
            local.retain(|_, (_, until)| *until > now);
        }
        if local.len() >= LOCAL_CAPACITY {
            // Full of live keys: run without a local hold (the owning
            // service's key check still stands) rather than refuse writes.
            tracing::warn!("in-memory idempotency keys at capacity; a write runs unguarded here");
            return true;
        }
        local.insert(key.to_owned(), (claim.to_owned(), now + self.lease));
        true
    }

    /// What `key` holds, read where the claim failed; `None` if nothing.
    async fn read(&self, key: &str, store: Store) -> Option<Held> {
        let raw = match store {
            Store::Redis => {
                let read: Option<Option<String>> =
                    self.redis.run(|mut redis| async move { redis.get(key).await }).await;
                // Redis failed between the claim and the read: say "in
                // flight" (retry later) rather than run the write unguarded.
                match read {
                    Some(value) => value?,
                    None => return Some(Held::Unknown),
                }
            }
            Store::Local => {
                let local = self.local.lock().unwrap_or_else(PoisonError::into_inner);
                let (value, until) = local.get(key)?;
                if *until <= Instant::now() {
                    return None;
                }
                value.clone()
            }
        };
        let mut fields = raw.splitn(3, '|');
        let (kind, fingerprint, rest) =
            (fields.next()?, fields.next()?.to_owned(), fields.next().unwrap_or_default());
        match kind {
            "f" => Some(Held::InFlight { fingerprint }),
            "d" => {
                let answer = base64::engine::general_purpose::STANDARD
                    .decode(rest)
                    .ok()
                    .and_then(|sealed| self.cache.open(key, &sealed))
                    .and_then(|plain| serde_json::from_slice(&plain).ok());
                Some(Held::Settled { fingerprint, answer })
            }
            _ => None,
        }
    }

    async fn settle(&self, key: &str, claim: &str, fingerprint: &str, stored: &Stored, store: Store) {
        let sealed = serde_json::to_vec(stored).ok().and_then(|plain| self.cache.seal(key, &plain));
        let Some(sealed) = sealed else {
            self.release(key, claim, store).await;
            return;
        };
        let value = format!("d|{fingerprint}|{}", base64::engine::general_purpose::STANDARD.encode(sealed));
        match store {
            Store::Redis => {
                let ttl = self.ttl.as_millis() as u64;
                let settled: Option<Option<String>> = self
                    .redis
                    .run(|mut redis| async move {
                        redis::Script::new(SETTLE)
                            .key(key)
                            .arg(claim)
                            .arg(&value)
                            .arg(ttl)
                            .invoke_async(&mut redis)
                            .await
                    })
                    .await;
                if settled.flatten().is_none() {
                    // Our lease ended first, or Redis failed: the next retry
                    // runs again and the owning service answers it.
                    tracing::warn!("a write's answer could not be kept for replays");
                }
            }
            Store::Local => {
                let mut local = self.local.lock().unwrap_or_else(PoisonError::into_inner);
                if local.get(key).is_some_and(|(held, _)| held == claim) {
                    local.insert(key.to_owned(), (value, Instant::now() + self.ttl));
                }
            }
        }
    }

    async fn release(&self, key: &str, claim: &str, store: Store) {
        match store {
            Store::Redis => {
                let _: Option<i64> = self
                    .redis
                    .run(|mut redis| async move {
                        redis::Script::new(RELEASE).key(key).arg(claim).invoke_async(&mut redis).await
                    })
                    .await;
            }
            Store::Local => {
                let mut local = self.local.lock().unwrap_or_else(PoisonError::into_inner);
                if local.get(key).is_some_and(|(held, _)| held == claim) {
                    local.remove(key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_tells_method_path_query_and_body_apart() {
        let base = fingerprint(&Method::POST, "/v1/orders", None, b"{}");
        assert_eq!(base, fingerprint(&Method::POST, "/v1/orders", None, b"{}"));
        assert_ne!(base, fingerprint(&Method::PATCH, "/v1/orders", None, b"{}"));
        assert_ne!(base, fingerprint(&Method::POST, "/v1/order", None, b"s{}"));
        assert_ne!(base, fingerprint(&Method::POST, "/v1/orders", Some("a=1"), b"{}"));
        assert_ne!(base, fingerprint(&Method::POST, "/v1/orders", None, b"{ }"));
    }

    #[test]
    fn a_stored_status_comes_back_as_it_was() {
        for status in [StatusCode::OK, StatusCode::CREATED, StatusCode::NO_CONTENT] {
            let kept = stored_status(&status, None).expect("a success is kept");
            assert_eq!(replayed_status(&kept), Some(status));
        }
        let kept = stored_status(&ErrorCode::NotFound.status(), Some(&ErrorCode::NotFound)).expect("kept");
        assert_eq!(replayed_status(&kept), Some(ErrorCode::NotFound.status()));
        assert_eq!(stored_status(&StatusCode::PARTIAL_CONTENT, None), None, "not a write's answer");
        assert_eq!(replayed_status("error:no.such_code"), None);
    }

    #[test]
    fn keys_are_per_caller_and_hold_no_user_id() {
        let a = storage_key("mobile-bff", "u-1", "key-00000001");
        assert_ne!(a, storage_key("mobile-bff", "u-2", "key-00000001"));
        assert_ne!(a, storage_key("web-bff", "u-1", "key-00000001"));
        assert!(!a.contains("u-1") && a.starts_with("bff:idem:mobile-bff:"));
    }
}
