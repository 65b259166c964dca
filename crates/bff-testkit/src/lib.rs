//! Test support for BFF crates (a dev-dependency of the BFFs; `bff-contracts`
//! uses it to start providers for verification).
//!
//! [`spawn`] runs a BFF on a free loopback port with the whole mock
//! [`Fleet`] behind it, [`wire`] points a BFF's configuration at that fleet,
//! and [`TestApp`] sends real HTTP with real ES256 tokens. [`Reply`] reads a
//! response whole and asserts problem bodies, so each test reads as a story.
//! [`pact`] records consumer pacts through the real typed clients.

pub mod pact;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bff_server::{BffConfig, SectionsMut};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;
use services_mock::identity::ClientKind;
use services_mock::{Fleet, Service};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The shutdown future a BFF's `run` receives.
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Points a BFF's configuration at `fleet`, with generous timeouts: a loaded
/// 2-core CI machine running many tests at once must not turn healthy calls
/// into timeouts. Tests about budgets set tight ones explicitly.
///
/// Redis is switched off (whatever `$REDIS_URL` says): tests that want it
/// start their own [`RedisServer`] and set `redis.url`.
pub fn wire(fleet: &Fleet, config: &mut impl BffConfig) {
    let SectionsMut { auth, downstream, compose, redis, .. } = config.sections_mut();
    redis.url = None;
    let identity = fleet.url(Service::Identity);
    auth.jwks_url = format!("{identity}/.well-known/jwks.json");
    auth.exchange.token_url = format!("{identity}/oauth/token");
    compose.request_deadline_ms = 5_000;
    for service in Service::ALL.into_iter().filter(|s| *s != Service::Identity) {
        if let Ok(name) = service.name().parse() {
            downstream.set_base_url(name, fleet.url(service));
        }
        if let Some(settings) = downstream.services.get_mut(service.name()) {
            settings.timeout_ms = 4_000;
        }
    }
}

/// A running BFF with its own mocks.
#[derive(Debug)]
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The mocks behind it.
    pub fleet: Fleet,
    /// A client for requests to it.
    pub http: reqwest::Client,
    /// The client kind whose tokens [`TestApp::token`] mints.
    pub client: ClientKind,
    shutdown: Option<oneshot::Sender<()>>,
    /// The server task; resolves when the BFF has stopped.
    pub server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// Starts a BFF: `run` gets a bound listener and a shutdown future.
pub async fn spawn<F, Fut>(fleet: Fleet, client: ClientKind, run: F) -> TestApp
where
    F: FnOnce(TcpListener, Shutdown) -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    bff_telemetry::init_for_tests();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
    let base = format!("http://{}", listener.local_addr().expect("local address"));
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(run(
        listener,
        Box::pin(async {
            let _ = rx.await;
        }),
    ));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    TestApp { base, fleet, http, client, shutdown: Some(tx), server: Some(server) }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub text: String,
}

impl Reply {
    /// Reads `response` whole.
    pub async fn read(response: reqwest::Response) -> Reply {
        Reply {
            status: response.status(),
            headers: response.headers().clone(),
            text: response.text().await.expect("body"),
        }
    }

    /// The body as JSON (panics with the body if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts an RFC 9457 problem with `status` and `code`; returns the body.
    pub fn assert_problem(&self, status: u16, code: &str) -> Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text);
        assert_eq!(self.header("content-type"), Some("application/problem+json"));
        let body = self.json();
        assert_eq!(body["code"], code, "body: {}", self.text);
        assert_eq!(body["status"], status);
        assert!(body["type"].is_string() && body["title"].is_string());
        body
    }
}

impl TestApp {
    /// A valid access token of this app's client kind for `user`.
    pub fn token(&self, user: &str) -> String {
        self.token_for(self.client, user)
    }

    /// A valid access token of `client` for `user`.
    pub fn token_for(&self, client: ClientKind, user: &str) -> String {
        self.fleet.identity().user_token(client, user, Duration::from_secs(300)).expect("token")
    }

    /// `GET path` with an optional bearer token and extra headers.
    pub async fn get_with(&self, path: &str, token: Option<&str>, headers: &[(&str, &str)]) -> Reply {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Reply::read(request.send().await.expect("request reaches the BFF")).await
    }

    /// `GET path` as user `u-1` of this app's client kind.
    pub async fn get(&self, path: &str) -> Reply {
        let token = self.token("u-1");
        self.get_with(path, Some(&token), &[]).await
    }

    /// Signals shutdown (in-flight requests may still finish).
    pub fn shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The `components[name]` entry of an envelope.
pub fn status_of<'a>(body: &'a Value, name: &str) -> &'a Value {
    &body["components"][name]
}

/// Asserts the body names no internal service, host or port.
pub fn assert_no_internals(reply: &Reply, fleet: &Fleet) {
    let text = reply.text.to_lowercase();
    for leak in ["127.0.0.1", "localhost", "http://", "mock"] {
        assert!(!text.contains(leak), "response leaks {leak:?}: {}", reply.text);
    }
    for service in Service::ALL {
        let url = fleet.url(service);
        let port = url.rsplit(':').next().unwrap_or_default();
        assert!(!text.contains(port), "response leaks port {port}: {}", reply.text);
        assert!(!text.contains(service.name()), "response leaks service name {service}: {}", reply.text);
    }
}

/// A real `redis-server` on a free loopback port, for one test; stopped
/// when dropped. Needs `redis-server` on the PATH (`.ci/run` installs it).
#[derive(Debug)]
pub struct RedisServer {
    child: std::process::Child,
    port: u16,
}

impl RedisServer {
    /// Starts the server and waits until it answers `PING`.
    pub fn start() -> RedisServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|addr| addr.port())
            .expect("a free port");
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server on the PATH (apt-get install -y redis-server)");
        let server = RedisServer { child, port };
        for _ in 0..200 {
            if server.ping() {
                return server;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("redis-server did not answer on port {port}");
    }

    fn ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else { return false };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
        let mut reply = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read(&mut reply).is_ok()
            && reply.starts_with(b"+PONG")
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn signal(&self, signal: &str) {
        let _ = std::process::Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .stderr(std::process::Stdio::null())
            .status();
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing answers.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a paused server (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// Kills the server now (a second call does nothing).
    pub fn kill(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.resume();
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
