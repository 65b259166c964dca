//! `spawn_app()` and request helpers, so each test reads as a short story.

use std::time::Duration;

use bff_downstream::Service as Downstream;
use mobile_bff::Config;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;
use services_mock::identity::ClientKind;
use services_mock::{Fleet, Service};
use tokio::sync::oneshot;

/// A running mobile-bff with its own mocks.
pub(crate) struct TestApp {
    pub(crate) base: String,
    pub(crate) fleet: Fleet,
    pub(crate) http: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    pub(crate) server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// A response, read whole.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) text: String,
}

impl Reply {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts an RFC 9457 problem with `status` and `code`; returns the body.
    pub(crate) fn assert_problem(&self, status: u16, code: &str) -> Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text);
        assert_eq!(self.header("content-type"), Some("application/problem+json"));
        let body = self.json();
        assert_eq!(body["code"], code, "body: {}", self.text);
        assert_eq!(body["status"], status);
        assert!(body["type"].is_string() && body["title"].is_string());
        body
    }
}

/// Maps a mock onto the BFF's name for the same service.
pub(crate) fn downstream(service: Service) -> Downstream {
    service.name().parse().expect("every domain mock is a downstream service")
}

/// Test configuration: generous timeouts, because a loaded 2-core CI machine
/// running many tests at once must not turn healthy calls into timeouts.
/// Tests about budgets set tight ones explicitly.
fn test_config(fleet: &Fleet) -> Config {
    let mut config = Config::default();
    config.server.port = 0;
    config.auth.jwks_url = format!("{}/.well-known/jwks.json", fleet.url(Service::Identity));
    config.auth.exchange.token_url = format!("{}/oauth/token", fleet.url(Service::Identity));
    config.compose.request_deadline_ms = 5_000;
    for service in Service::ALL.into_iter().filter(|s| *s != Service::Identity) {
        config.downstream.set_base_url(downstream(service), fleet.url(service));
        if let Some(settings) = config.downstream.services.get_mut(service.name()) {
            settings.timeout_ms = 4_000;
        }
    }
    config
}

pub(crate) async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub(crate) async fn spawn_app_with(customize: impl FnOnce(&mut Config)) -> TestApp {
    bff_telemetry::init_for_tests();
    let fleet = Fleet::start().await.expect("mocks start");
    let mut config = test_config(&fleet);
    customize(&mut config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(mobile_bff::run(config, listener, async {
        let _ = rx.await;
    }));
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client");
    TestApp { base, fleet, http, shutdown: Some(tx), server: Some(server) }
}

impl TestApp {
    /// A valid mobile access token for `user`.
    pub(crate) fn token(&self, user: &str) -> String {
        self.fleet.identity().user_token(ClientKind::Mobile, user, Duration::from_secs(300)).expect("token")
    }

    /// `GET path` with optional bearer token and extra headers.
    pub(crate) async fn get_with(&self, path: &str, token: Option<&str>, headers: &[(&str, &str)]) -> Reply {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("request reaches the BFF");
        Reply {
            status: response.status(),
            headers: response.headers().clone(),
            text: response.text().await.expect("body"),
        }
    }

    /// `GET path` as user `u-1`.
    pub(crate) async fn get(&self, path: &str) -> Reply {
        let token = self.token("u-1");
        self.get_with(path, Some(&token), &[]).await
    }

    /// Signals shutdown (in-flight requests may still finish).
    pub(crate) fn shutdown(&mut self) {
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

/// The `status` of component `name` in an envelope.
pub(crate) fn status_of<'a>(body: &'a Value, name: &str) -> &'a Value {
    &body["components"][name]
}

/// Asserts the body carries no internal service name, host or port.
pub(crate) fn assert_no_internals(reply: &Reply, app: &TestApp) {
    let text = reply.text.to_lowercase();
    for leak in ["127.0.0.1", "localhost", "http://", "mock"] {
        assert!(!text.contains(leak), "response leaks {leak:?}: {}", reply.text);
    }
    for service in Service::ALL {
        let url = app.fleet.url(service);
        let port = url.rsplit(':').next().unwrap_or_default();
        assert!(!text.contains(port), "response leaks port {port}: {}", reply.text);
        assert!(!text.contains(service.name()), "response leaks service name {service}: {}", reply.text);
    }
}
