//! Test support for BFF crates (a dev-dependency of the BFFs; `bff-contracts`
//! uses it to start providers for verification).
//!
//! [`spawn`] runs a BFF, built by its shell, on a free loopback port with
//! the mocks it calls behind it ([`Fleet::for_bff`]: the identity provider
//! and its egress list, nothing else), [`wire`] points a BFF's
//! configuration at a fleet, and [`TestApp`] sends real HTTP with real
//! ES256 tokens. [`Reply`] reads a response whole and asserts problem
//! bodies, so each test reads as a story. [`pact`] records consumer pacts
//! through the real typed clients; [`RedisServer`] is a real `redis-server`;
//! [`browser`] drives a real headless Chromium.

pub mod browser;
pub mod cluster;
pub mod conformance;
pub mod metrics;
pub mod pact;
pub mod replicas;

pub use conformance::conformance;

use std::path::PathBuf;
use std::time::Duration;

use bff_registry::Auth;
use bff_server::{Bff, Config, Section, ShellError};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;
use services_mock::{Fleet, Service};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The per-caller quota [`wire`] sets: tests send many requests as one
/// caller, and quotas are tested on purpose (with small ones).
pub const TEST_QUOTA: u32 = 1_000_000;

/// Points a BFF's configuration at `fleet`, with generous timeouts: a loaded
/// 2-core CI machine running many tests at once must not turn healthy calls
/// into timeouts. Tests about budgets set tight ones explicitly.
///
/// Redis is switched off (whatever `$REDIS_URL` says): tests that want it
/// start their own [`RedisServer`] and set `redis.url`.
pub fn wire<X: Section>(fleet: &Fleet, config: &mut Config<X>) {
    config.redis.url = None;
    let identity = fleet.url(Service::Identity);
    config.auth.jwks_url = format!("{identity}/.well-known/jwks.json");
    config.auth.exchange.token_url = format!("{identity}/oauth/token");
    config.session.authorize_url = format!("{identity}/authorize");
    config.compose.request_deadline_ms = 5_000;
    // Tests send many requests as one caller; quotas are tested on purpose.
    config.rate_limit.default.requests = TEST_QUOTA;
    for (name, settings) in config.downstream.services.iter_mut() {
        // A service the fleet does not run keeps its default URL.
        if let Ok(service) = name.parse::<Service>()
            && fleet.runs(service)
        {
            settings.base_url = fleet.url(service);
        }
        settings.timeout_ms = 4_000;
    }
}

/// The environment that points the BFF binary of `bff`, listening on
/// `port`, at `fleet`: what [`wire`] does to a configuration, as
/// `<PREFIX>__SECTION__KEY` variables (for a BFF run as a process, e.g. by
/// the contract verifier). Whoever starts it should also remove
/// `REDIS_URL` from its environment.
pub fn wire_env(fleet: &Fleet, bff: &bff_registry::Bff, port: u16) -> Vec<(String, String)> {
    let prefix = bff.env_prefix;
    let identity = fleet.url(Service::Identity);
    let mut env = vec![
        (format!("{prefix}__SERVER__PORT"), port.to_string()),
        (format!("{prefix}__AUTH__JWKS_URL"), format!("{identity}/.well-known/jwks.json")),
        (format!("{prefix}__AUTH__EXCHANGE__TOKEN_URL"), format!("{identity}/oauth/token")),
        (format!("{prefix}__COMPOSE__REQUEST_DEADLINE_MS"), "5000".to_owned()),
        (format!("{prefix}__RATE_LIMIT__DEFAULT__REQUESTS"), TEST_QUOTA.to_string()),
    ];
    if bff.auth == Auth::Session {
        env.push((format!("{prefix}__SESSION__AUTHORIZE_URL"), format!("{identity}/authorize")));
        env.push((format!("{prefix}__SESSION__PUBLIC_URL"), format!("http://127.0.0.1:{port}")));
        // Its callback on this port, registered exactly: a confidential
        // client's redirect URI never matches on any port.
        fleet.identity().register_redirect_uri(bff.name, &format!("http://127.0.0.1:{port}/auth/callback"));
    }
    for name in bff.calls {
        let key = format!("{prefix}__DOWNSTREAM__SERVICES__{}", name.to_ascii_uppercase());
        if let Ok(service) = name.parse::<Service>() {
            env.push((format!("{key}__BASE_URL"), fleet.url(service)));
        }
        env.push((format!("{key}__TIMEOUT_MS"), "4000".to_owned()));
    }
    env
}

/// A running BFF with its own mocks.
#[derive(Debug)]
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The admin listener (`/metrics`): `http://127.0.0.1:<another port>`.
    pub admin_base: String,
    /// The mocks behind it.
    pub fleet: Fleet,
    /// A client for requests to it (redirects are not followed).
    pub http: reqwest::Client,
    /// The BFF's registry entry: whose tokens [`TestApp::token`] mints.
    pub bff: &'static bff_registry::Bff,
    shutdown: Option<oneshot::Sender<()>>,
    /// The server task; resolves when the BFF has stopped.
    pub server: Option<tokio::task::JoinHandle<Result<(), ShellError>>>,
}

/// Starts `bff` on a free loopback port with the mocks it calls behind it.
/// `customize` changes its configuration after [`wire`] (tight budgets,
/// a Redis URL, ...). In `session` mode the BFF's public URL is the bound
/// address, so its login redirects come back to it.
pub async fn spawn<X: Section>(bff: Bff<X>, customize: impl FnOnce(&mut Config<X>)) -> TestApp {
    let fleet = Fleet::for_bff(bff.entry()).await.expect("mocks start");
    spawn_with_fleet(bff, fleet, customize).await
}

/// [`spawn`] with a fleet of the caller's (e.g. every mock).
pub async fn spawn_with_fleet<X: Section>(
    bff: Bff<X>,
    fleet: Fleet,
    customize: impl FnOnce(&mut Config<X>),
) -> TestApp {
    bff_telemetry::init_for_tests();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
    let base = format!("http://{}", listener.local_addr().expect("local address"));
    let admin = TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
    let admin_base = format!("http://{}", admin.local_addr().expect("local address"));
    let mut config = bff.defaults();
    wire(&fleet, &mut config);
    if bff.entry().auth == Auth::Session {
        config.session.public_url = base.clone();
        // Registered exactly, as a deployment registers its callback.
        fleet.identity().register_redirect_uri(bff.entry().name, &format!("{base}/auth/callback"));
    }
    customize(&mut config);
    let (tx, rx) = oneshot::channel::<()>();
    let entry = bff.entry();
    let server = tokio::spawn(async move {
        let shutdown = async {
            let _ = rx.await;
        };
        bff.run_with_admin(config, listener, Some(admin), shutdown).await
    });
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    TestApp { base, admin_base, fleet, http, bff: entry, shutdown: Some(tx), server: Some(server) }
}

/// Logs `user` in to the session BFF at `base` through the real flow: the
/// BFF's `/auth/login`, the identity provider's redirect back, the BFF's
/// callback. `http` must not follow redirects. The `__Host-session=...`
/// cookie pair, or what went wrong.
pub async fn session_login(http: &reqwest::Client, base: &str, user: &str) -> Result<String, String> {
    let cookie = |reply: &reqwest::Response, name: &str| {
        reply
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with(&format!("{name}=")))
            .and_then(|c| c.split(';').next())
            .map(str::to_owned)
            .ok_or_else(|| format!("no {name} cookie (status {})", reply.status()))
    };
    let location = |reply: &reqwest::Response| {
        reply
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| format!("no redirect (status {})", reply.status()))
    };
    let mut login = None;
    // A BFF just spawned may not accept connections yet.
    for _ in 0..50 {
        match http.get(format!("{base}/auth/login?login_hint={user}")).send().await {
            Ok(reply) => {
                login = Some(reply);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let login = login.ok_or("the BFF does not answer /auth/login")?;
    let at_identity = http.get(location(&login)?).send().await.map_err(|e| e.to_string())?;
    let callback = http
        .get(location(&at_identity)?)
        .header("cookie", cookie(&login, "__Host-login")?)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    cookie(&callback, "__Host-session")
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
    /// A valid access token of this BFF's callers for `user`.
    pub fn token(&self, user: &str) -> String {
        self.token_for(self.bff, user)
    }

    /// A valid access token of `bff`'s callers for `user` (another BFF's
    /// token, to show it is refused here).
    pub fn token_for(&self, bff: &bff_registry::Bff, user: &str) -> String {
        self.fleet.identity().user_token(bff, user, Duration::from_secs(300)).expect("token")
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

    /// The seeded caller tests use by default: `s-1` (an admin) for a
    /// staff BFF, `u-1` otherwise.
    pub fn default_caller(&self) -> &'static str {
        if self.bff.auth == Auth::Staff { "s-1" } else { "u-1" }
    }

    /// `GET path` as the default caller, authenticated the way this BFF's
    /// callers are: a bearer token, or (session mode) the cookie of a real
    /// login through the BFF.
    pub async fn get(&self, path: &str) -> Reply {
        let user = self.default_caller();
        if self.bff.auth == Auth::Session {
            let cookie = self.login(user).await;
            self.get_with(path, None, &[("cookie", &cookie)]).await
        } else {
            let token = self.token(user);
            self.get_with(path, Some(&token), &[]).await
        }
    }

    /// Logs `user` in to a session BFF through the real flow (the BFF, the
    /// identity provider, the callback); the `__Host-session=...` pair.
    pub async fn login(&self, user: &str) -> String {
        session_login(&self.http, &self.base, user).await.unwrap_or_else(|e| panic!("login as {user}: {e}"))
    }

    /// Starts the dev console (`services_mock::console`) for this BFF and
    /// its mocks on a free loopback port, for as long as the test runs;
    /// returns its base URL.
    pub async fn console(&self) -> String {
        let mocks =
            Service::ALL.iter().filter(|s| self.fleet.runs(**s)).map(|s| (*s, self.fleet.url(*s))).collect();
        let targets = services_mock::console::Targets {
            identity: self.fleet.url(Service::Identity),
            mocks,
            bffs: vec![(self.bff, self.base.clone())],
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("local address"));
        let console = services_mock::console::app(targets).expect("the console starts");
        tokio::spawn(services_mock::serve(listener, console, std::future::pending()));
        url
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
    for service in Service::ALL.into_iter().filter(|s| fleet.runs(*s)) {
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
    /// `(user, password)` when the default user is off.
    credentials: Option<(String, String)>,
    /// Serving TLS only (see [`RedisServer::start_tls`]).
    tls: bool,
}

/// A test certificate authority and a server certificate it signed for
/// `localhost` and `127.0.0.1`, as PEM files in a directory of their own.
#[derive(Debug)]
pub struct TestCertificates {
    /// The directory holding the files (removed on drop).
    pub dir: PathBuf,
    /// The CA's certificate: what a client trusts.
    pub ca: PathBuf,
    /// The server's certificate and key.
    pub cert: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
}

impl TestCertificates {
    /// A fresh CA and server certificate (new keys each call, so two sets
    /// do not trust each other).
    pub fn generate() -> TestCertificates {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("bff-testkit-tls-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory for certificates");
        let ca_key = KeyPair::generate().expect("a CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "bff-testkit CA");
        let ca_cert = ca_params.self_signed(&ca_key).expect("a CA certificate");
        let issuer = Issuer::new(ca_params, ca_key);
        let server_key = KeyPair::generate().expect("a server key");
        let server_params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("server parameters");
        let server_cert = server_params.signed_by(&server_key, &issuer).expect("a server certificate");
        let certificates = TestCertificates {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server-key.pem"),
            dir,
        };
        std::fs::write(&certificates.ca, ca_cert.pem()).expect("write ca.pem");
        std::fs::write(&certificates.cert, server_cert.pem()).expect("write server.pem");
        std::fs::write(&certificates.key, server_key.serialize_pem()).expect("write server-key.pem");
        certificates
    }
}

impl Drop for TestCertificates {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The ACL user the BFFs log in as, and its rules: the same as the compose
/// stack's Redis (`xtask/src/stack.rs`): the default user off, `bff` may
/// touch only `bff:*` keys and no dangerous command.
pub const REDIS_ACL_USER: &str = "bff";

/// `redis-server` arguments for [`REDIS_ACL_USER`] with `password`.
pub fn redis_acl_args(password: &str) -> Vec<String> {
    [
        "--user",
        "default",
        "off",
        "--user",
        REDIS_ACL_USER,
        "on",
        &format!(">{password}"),
        "~bff:*",
        "+@all",
        "-@dangerous",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect()
}

/// A test's `redis-server`: loopback only, nothing written to disk.
pub(crate) const EPHEMERAL_REDIS: [&str; 6] = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"];

impl RedisServer {
    /// Starts the server and waits until it answers `PING`.
    pub fn start() -> RedisServer {
        Self::spawn(Vec::new(), None)
    }

    /// Starts a server that speaks TLS only (no plain port), with the
    /// server certificate of `certificates`; clients need no certificate.
    /// [`RedisServer::url`] is then `rediss://`.
    pub fn start_tls(certificates: &TestCertificates) -> RedisServer {
        let path = |p: &PathBuf| p.display().to_string();
        let args = [
            "--tls-port".to_owned(),
            String::new(), // the port, filled in by `spawn`
            "--tls-cert-file".to_owned(),
            path(&certificates.cert),
            "--tls-key-file".to_owned(),
            path(&certificates.key),
            "--tls-ca-cert-file".to_owned(),
            path(&certificates.ca),
            "--tls-auth-clients".to_owned(),
            "no".to_owned(),
        ];
        Self::spawn(args.to_vec(), None)
    }

    /// Starts a server that only [`REDIS_ACL_USER`] with `password` may use,
    /// under the compose stack's rules ([`redis_acl_args`]).
    pub fn start_with_password(password: &str) -> RedisServer {
        Self::spawn(redis_acl_args(password), Some((REDIS_ACL_USER.to_owned(), password.to_owned())))
    }

    fn spawn(mut extra: Vec<String>, credentials: Option<(String, String)>) -> RedisServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|addr| addr.port())
            .expect("a free port");
        // TLS only: the plain port off, the TLS port the free one.
        let tls = extra.first().is_some_and(|a| a == "--tls-port");
        let plain_port = if tls {
            extra[1] = port.to_string();
            0
        } else {
            port
        };
        let child = std::process::Command::new("redis-server")
            .args(["--port", &plain_port.to_string()])
            .args(EPHEMERAL_REDIS)
            .args(std::mem::take(&mut extra))
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server on the PATH (apt-get install -y redis-server)");
        let server = RedisServer { child, port, credentials, tls };
        for _ in 0..200 {
            // A TLS server is up when it accepts connections; a plain one
            // when it answers PING.
            let up =
                if tls { std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() } else { server.ping() };
            if up {
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
        let mut reply = [0u8; 64];
        let auth = match &self.credentials {
            Some((user, password)) => format!("AUTH {user} {password}\r\n"),
            None => String::new(),
        };
        if stream.write_all(format!("{auth}PING\r\n").as_bytes()).is_err() {
            return false;
        }
        // The answers, `+OK\r\n` to AUTH first when there is one.
        let mut answered = Vec::new();
        while let Ok(n @ 1..) = stream.read(&mut reply) {
            answered.extend_from_slice(&reply[..n]);
            if answered.windows(5).any(|w| w == b"+PONG") {
                return true;
            }
            if answered.starts_with(b"-") {
                return false;
            }
        }
        false
    }

    /// `redis://127.0.0.1:<port>`, with the user and password when the
    /// server has them; `rediss://localhost:<port>` for a TLS server.
    pub fn url(&self) -> String {
        if self.tls {
            return format!("rediss://localhost:{}", self.port);
        }
        match &self.credentials {
            Some((user, password)) => format!("redis://{user}:{password}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// [`RedisServer::url`] with another password (or none): what a BFF
    /// with the wrong credentials would use.
    pub fn url_with_password(&self, password: Option<&str>) -> String {
        match password {
            Some(password) => format!("redis://{REDIS_ACL_USER}:{password}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
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
