//! The accept loop: HTTP/1.1 connections with a header-read timeout, an
//! idle keep-alive timeout and a cap on open connections.
//!
//! `axum::serve` runs hyper without a timer, so a connection that goes
//! silent (or sends a byte a second: slowloris) is kept forever, and every
//! one of them holds a task and its buffers. This loop serves the same
//! router with hyper's HTTP/1 builder and a watchdog per connection:
//!
//! * **header read**: once the first byte of a request has arrived (or the
//!   connection is new), the whole head must arrive within
//!   `header_read_timeout_ms`, or the connection is closed;
//! * **idle**: a kept-alive connection with nothing in flight is closed
//!   after `idle_timeout_ms`;
//! * **request**: a dispatched request must be answered, body written,
//!   within `request_timeout_ms` (a body trickled in a byte at a time,
//!   a client that stops reading its answer), or the connection is closed;
//! * **cap**: at most `max_connections` are served. Past the cap a small
//!   reserve of connections ([`RESERVE`]) answers the health endpoints only
//!   (everything else `503 overloaded`, `Connection: close`), so probes
//!   still see the instance; past the reserve a connection is closed as
//!   soon as it is accepted.
//!
//! Why not hyper's own `header_read_timeout`: since hyper 1.6 its timer also
//! runs while a kept-alive connection waits for its next request, so one
//! value would either close kept-alive connections after a few seconds
//! (racing a load balancer that reuses them for up to 60 s, the classic
//! source of stray 502s) or let a slowloris hold its slot for a minute. The
//! two limits need two clocks.
//!
//! HTTP/2 is not served (the BFFs speak HTTP/1.1 to their load balancer),
//! so there are no HTTP/2 limits to set; a client sending the HTTP/2
//! preface gets its connection closed.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response, header};
use axum::response::IntoResponse;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::time::Instant;
use tower::ServiceExt as _;

use crate::config::ServerConfig;

/// Connections served past `max_connections`, for health checks only.
pub const RESERVE: usize = 16;

/// The connection limits of [`ServerConfig`], as durations.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    header_read: Duration,
    idle: Duration,
    request: Duration,
    max_connections: usize,
}

impl Limits {
    pub(crate) fn of(config: &ServerConfig) -> Self {
        Limits {
            header_read: Duration::from_millis(config.header_read_timeout_ms),
            idle: Duration::from_millis(config.idle_timeout_ms),
            request: Duration::from_millis(config.request_timeout_ms),
            max_connections: config.max_connections,
        }
    }
}

/// Serves `app` on `listener` within `limits` until `stopping` turns true;
/// then stops accepting, lets each connection finish what it is doing, and
/// resolves once all are closed.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    mut stopping: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let reserve = Arc::new(Semaphore::new(RESERVE));
    let health_only = health_only(app.clone());
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, mostly: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stopped(&mut stopping) => break,
        };
        let (permit, app) = if let Ok(permit) = slots.clone().try_acquire_owned() {
            (permit, app.clone())
        } else if let Ok(permit) = reserve.clone().try_acquire_owned() {
            (permit, health_only.clone())
        } else {
            tracing::debug!(%peer, "connection refused: over the connection cap and its reserve");
            drop(stream);
            continue;
        };
        let stopping = stopping.clone();
        tokio::spawn(async move {
            serve_connection(stream, peer, app, limits, stopping).await;
            drop(permit);
        });
    }
    // Every connection holds a permit until it is closed.
    let _all = tokio::join!(
        slots.acquire_many(u32::try_from(limits.max_connections).unwrap_or(u32::MAX)),
        reserve.acquire_many(RESERVE as u32),
    );
}

/// Resolves once `stopping` is true (or its sender is gone). The guard
/// `wait_for` returns is not `Send`: it must not live in a task's state.
async fn stopped(stopping: &mut watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stopping| *stopping).await;
}

/// The router for connections past the cap: health probes as usual,
/// everything else refused, and the connection closed after one answer.
fn health_only(app: Router) -> Router {
    Router::new()
        .route("/healthz", axum::routing::any_service(app.clone()))
        .route("/readyz", axum::routing::any_service(app))
        .fallback(|| async {
            bff_error::ApiError::new(bff_error::ErrorCode::Overloaded)
                .with_detail("too many open connections; retry on a new one")
                .into_response()
        })
        .layer(axum::middleware::map_response(|mut response: Response<Body>| async move {
            response.headers_mut().insert(header::CONNECTION, header::HeaderValue::from_static("close"));
            response
        }))
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: Limits,
    mut stopping: watch::Receiver<bool>,
) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "could not set TCP_NODELAY");
    }
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched { inner: stream, activity: activity.clone() });
    let on_request = activity.clone();
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        let guard = on_request.request_started();
        request.extensions_mut().insert(ConnectInfo(peer));
        let answer = app.clone().oneshot(request.map(Body::new));
        async move {
            let response = answer.await.unwrap_or_else(|never: Infallible| match never {});
            // In flight until hyper has written (and so dropped) the body.
            Ok::<_, Infallible>(response.map(|body| Body::new(Tracked { inner: body, _guard: guard })))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.header_read_timeout(None).max_buf_size(64 * 1024);
    let mut connection = std::pin::pin!(builder.serve_connection(io, service));
    let mut watchdog = std::pin::pin!(activity.clone().expired(limits));
    let mut shutting_down = false;
    loop {
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(error) = served {
                    tracing::debug!(%peer, %error, "connection ended with an error");
                }
                return;
            }
            why = &mut watchdog => {
                tracing::debug!(%peer, why, "connection closed");
                return;
            }
            () = stopped(&mut stopping), if !shutting_down => {
                // Finishes the request in flight, if any, then closes.
                shutting_down = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// What a connection is doing, for its watchdog. Times are milliseconds
/// since the connection was accepted.
#[derive(Debug)]
struct Activity {
    born: Instant,
    /// Requests dispatched whose response body is not written yet.
    in_flight: AtomicUsize,
    /// When the first byte of a request not yet dispatched arrived (0: none).
    head_since: AtomicU64,
    /// When the connection last became idle.
    idle_since: AtomicU64,
    /// When the oldest request in flight was dispatched.
    busy_since: AtomicU64,
    /// Wakes the watchdog when its deadline may have moved.
    changed: Notify,
}

/// "Since" values are stored +1 so that 0 can mean "not set".
const UNSET: u64 = 0;

impl Activity {
    fn new() -> Self {
        Activity {
            born: Instant::now(),
            in_flight: AtomicUsize::new(0),
            // A new connection owes us a request head.
            head_since: AtomicU64::new(1),
            idle_since: AtomicU64::new(1),
            busy_since: AtomicU64::new(1),
            changed: Notify::new(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1
    }

    fn at(&self, since: u64, limit: Duration) -> Instant {
        self.born + Duration::from_millis(since.saturating_sub(1)) + limit
    }

    /// Bytes arrived.
    fn read(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0
            && self
                .head_since
                .compare_exchange(UNSET, self.now(), Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.changed.notify_one();
        }
    }

    /// A request head was parsed and dispatched.
    fn request_started(self: &Arc<Self>) -> InFlight {
        if self.in_flight.fetch_add(1, Ordering::AcqRel) == 0 {
            self.busy_since.store(self.now(), Ordering::Release);
        }
        self.head_since.store(UNSET, Ordering::Release);
        self.changed.notify_one();
        InFlight(self.clone())
    }

    /// Resolves when a limit is passed, with which.
    async fn expired(self: Arc<Self>, limits: Limits) -> &'static str {
        loop {
            let changed = self.changed.notified();
            let (at, why) = if self.in_flight.load(Ordering::Acquire) > 0 {
                (self.at(self.busy_since.load(Ordering::Acquire), limits.request), "request timeout")
            } else {
                match self.head_since.load(Ordering::Acquire) {
                    UNSET => (self.at(self.idle_since.load(Ordering::Acquire), limits.idle), "idle timeout"),
                    since => (self.at(since, limits.header_read), "header read timeout"),
                }
            };
            if at <= Instant::now() {
                return why;
            }
            tokio::select! {
                () = tokio::time::sleep_until(at) => {}
                () = changed => {}
            }
        }
    }
}

/// A request in flight; dropped with its response body.
#[derive(Debug)]
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        activity.idle_since.store(activity.now(), Ordering::Release);
        activity.in_flight.fetch_sub(1, Ordering::AcqRel);
        activity.changed.notify_one();
    }
}

/// A response body that keeps its request in flight until it is dropped.
struct Tracked {
    inner: Body,
    _guard: InFlight,
}

impl http_body::Body for Tracked {
    type Data = <Body as http_body::Body>::Data;
    type Error = <Body as http_body::Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The socket, telling [`Activity`] when bytes arrive.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
