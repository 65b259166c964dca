//! The dev console: watch a screen compose and degrade in a browser, and
//! flip the mocks' faults with a click (`services-mock console`, started by
//! `cargo xtask dev` on `http://127.0.0.1:7100`).
//!
//! A page with no build step (`console/index.html`, `console.js`,
//! `console.css`, embedded in the binary) over a small JSON API of its own:
//!
//! * `GET /api/clients`: the BFFs it can call, with their seeded callers;
//! * `GET /api/screens/{client}`: the BFF's `GET` operations, read from its
//!   own OpenAPI document;
//! * `POST /api/call` `{client, caller, path}`: calls the BFF as that caller
//!   and answers with the status, the headers, the `Server-Timing` entries,
//!   the body (as text) and the time it took. Credentials are minted here
//!   ([`crate::credentials`]: the same flows as `cargo xtask token`) and kept
//!   until they near expiry: the page never holds a token or a session
//!   cookie, and calls to the BFF are same-origin for the page (no CORS);
//! * `GET /api/mocks`: every mock's `/__faults` and `/__stats`;
//!   `PUT`/`DELETE /api/mocks/{name}/faults`: forwarded to its `/__faults`.
//!
//! It mints tokens, so it exists only in local development: it refuses to
//! start on a non-loopback address or under `BFF_ENV=production`
//! ([`refuse_outside_development`]), answers only requests whose `Host` is a
//! loopback name (a DNS-rebinding page cannot reach it), and takes writes
//! only as `application/json` (which a cross-site form cannot send without
//! a CORS preflight, which it never grants).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use bff_registry::Bff;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Service;
use crate::credentials::{self, Credential, Endpoints};
use crate::identity::{DEFAULT_ISSUER, Identity};

/// The console's default port (the mocks are 7000–7010, the BFFs 8080+).
pub const DEFAULT_PORT: u16 = bff_registry::DEV_CONSOLE_PORT;

/// How long a token the console signs itself lives; it is re-minted a
/// minute before that (and at once when the BFF answers `401`).
const TOKEN_TTL: Duration = Duration::from_secs(3600);

/// How long a credential minted through a flow (session, device, client
/// credentials) is reused before a fresh one is minted.
const FLOW_CREDENTIAL_REUSE: Duration = Duration::from_secs(300);

/// The longest a call to a BFF or a mock may take: longer than any fault
/// the panel sets by default, so a slow screen shows as slow, not as lost.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// What the console talks to.
#[derive(Debug, Clone)]
pub struct Targets {
    /// The identity mock's base URL.
    pub identity: String,
    /// The mocks whose faults and statistics it shows, with their base URLs.
    pub mocks: Vec<(Service, String)>,
    /// The BFFs it can call, with their base URLs.
    pub bffs: Vec<(&'static Bff, String)>,
}

impl Targets {
    /// The local stack of `cargo xtask dev`: every mock and every BFF of the
    /// registry on its default port.
    pub fn local() -> Targets {
        let url = |port: u16| format!("http://127.0.0.1:{port}");
        Targets {
            identity: url(Service::Identity.default_port()),
            mocks: Service::ALL.iter().map(|s| (*s, url(s.default_port()))).collect(),
            bffs: bff_registry::BFFS.iter().map(|b| (b, url(b.port))).collect(),
        }
    }

    fn bff(&self, client: &str) -> Option<(&'static Bff, &str)> {
        self.bffs
            .iter()
            .find(|(bff, _)| bff.name == client || bff.short_name() == client)
            .map(|(bff, url)| (*bff, url.as_str()))
    }

    fn mock(&self, name: &str) -> Option<&str> {
        self.mocks.iter().find(|(service, _)| service.name() == name).map(|(_, url)| url.as_str())
    }
}

/// Fails unless `addr` is a loopback address and `BFF_ENV` is not
/// `production`: the console mints tokens for anyone who asks.
pub fn refuse_outside_development(addr: &SocketAddr) -> anyhow::Result<()> {
    if !addr.ip().is_loopback() {
        bail!("the dev console mints tokens: it listens on loopback only (asked for {addr}; use 127.0.0.1)");
    }
    if std::env::var("BFF_ENV").is_ok_and(|env| env.trim().eq_ignore_ascii_case("production")) {
        bail!("the dev console is local-development tooling: refused under BFF_ENV=production");
    }
    Ok(())
}

/// A credential and when to stop using it.
type Minted = (Credential, Instant);

struct Console {
    targets: Targets,
    identity: Identity,
    http: reqwest::Client,
    credentials: Mutex<HashMap<(String, String), Minted>>,
}

type Shared = Arc<Console>;

/// The console's app (its page and its API) for `targets`.
pub fn app(targets: Targets) -> anyhow::Result<axum::Router> {
    let console = Console {
        targets,
        identity: Identity::new(DEFAULT_ISSUER)?,
        // Never follow a redirect: a BFF's answer is shown as it is.
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(CALL_TIMEOUT)
            .build()?,
        credentials: Mutex::new(HashMap::new()),
    };
    Ok(axum::Router::new()
        .route("/", get(|| async { page("text/html; charset=utf-8", include_str!("console/index.html")) }))
        .route(
            "/console.js",
            get(|| async { page("text/javascript; charset=utf-8", include_str!("console/console.js")) }),
        )
        .route(
            "/console.css",
            get(|| async { page("text/css; charset=utf-8", include_str!("console/console.css")) }),
        )
        .route("/api/clients", get(clients))
        .route("/api/screens/{client}", get(screens))
        .route("/api/call", post(call))
        .route("/api/mocks", get(mocks))
        .route("/api/mocks/{name}/faults", put(set_faults).delete(reset_faults))
        .route("/healthz", get(|| async { "ok" }))
        .fallback(|| async { problem(StatusCode::NOT_FOUND, "no such page") })
        .layer(axum::middleware::from_fn(loopback_host_only))
        .with_state(Arc::new(console)))
}

/// Binds `addr` (loopback only, see [`refuse_outside_development`]) and
/// serves the console until `shutdown` resolves.
pub async fn run(
    addr: SocketAddr,
    targets: Targets,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    refuse_outside_development(&addr)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("console: cannot bind {addr}: {e}"))?;
    tracing::info!(addr = %listener.local_addr()?, "dev console listening");
    crate::serve(listener, app(targets)?, shutdown).await?;
    Ok(())
}

fn page(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'"),
            ),
        ],
        body,
    )
        .into_response()
}

fn problem(status: StatusCode, detail: &str) -> Response {
    let body = json!({ "title": status.canonical_reason(), "status": status.as_u16(), "detail": detail });
    (status, [(header::CONTENT_TYPE, "application/problem+json")], body.to_string()).into_response()
}

/// Only `Host: 127.0.0.1:…`, `localhost:…` or `[::1]:…`: a page on another
/// site that rebinds its own name to 127.0.0.1 still sends its own name.
async fn loopback_host_only(request: Request, next: Next) -> Response {
    let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    };
    if matches!(name, "127.0.0.1" | "localhost" | "[::1]") {
        next.run(request).await
    } else {
        problem(StatusCode::FORBIDDEN, "the dev console answers loopback names only")
    }
}

async fn clients(State(console): State<Shared>) -> Json<Value> {
    let clients: Vec<Value> = console
        .targets
        .bffs
        .iter()
        .map(|(bff, url)| {
            json!({
                "name": bff.name,
                "short": bff.short_name(),
                "auth": bff.auth.as_str(),
                "url": url,
                "defaultPath": bff.smoke.path,
                "callers": credentials::callers(bff),
            })
        })
        .collect();
    Json(json!({ "clients": clients }))
}

/// Paths a person does not look at as a screen.
fn is_screen(path: &str) -> bool {
    !(path.starts_with("/auth/") || matches!(path, "/healthz" | "/readyz" | "/openapi.json" | "/metrics"))
}

async fn screens(State(console): State<Shared>, Path(client): Path<String>) -> Response {
    let Some((bff, url)) = console.targets.bff(&client) else {
        return problem(StatusCode::NOT_FOUND, "no such client");
    };
    let document: Value = match console.http.get(format!("{url}/openapi.json")).send().await {
        Ok(response) if response.status().is_success() => response.json().await.unwrap_or_default(),
        Ok(response) => {
            return problem(
                StatusCode::BAD_GATEWAY,
                &format!("{} answered {} for its OpenAPI document", bff.name, response.status()),
            );
        }
        Err(error) => {
            return problem(
                StatusCode::BAD_GATEWAY,
                &format!("{} is not reachable at {url}: {error}", bff.name),
            );
        }
    };
    Json(json!({ "screens": screens_of(&document) })).into_response()
}

/// The `GET` operations of an OpenAPI document that are screens: path,
/// summary, and whether the path has parameters to fill in.
fn screens_of(document: &Value) -> Vec<Value> {
    let Some(paths) = document["paths"].as_object() else {
        return Vec::new();
    };
    paths
        .iter()
        .filter(|(path, item)| is_screen(path) && item.get("get").is_some())
        .map(|(path, item)| {
            json!({
                "path": path,
                "summary": item["get"]["summary"].as_str().unwrap_or(""),
                "parameters": path.contains('{'),
            })
        })
        .collect()
}

/// `POST /api/call`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallRequest {
    client: String,
    caller: String,
    path: String,
}

async fn call(State(console): State<Shared>, Json(request): Json<CallRequest>) -> Response {
    let Some((bff, base)) = console.targets.bff(&request.client) else {
        return problem(StatusCode::NOT_FOUND, "no such client");
    };
    let Some(url) = same_origin(base, &request.path) else {
        return problem(StatusCode::BAD_REQUEST, "path must be a path on the BFF (`/v1/home`)");
    };
    if !credentials::callers(bff).iter().any(|c| c.id == request.caller) {
        return problem(
            StatusCode::BAD_REQUEST,
            &format!("`{}` is not a seeded caller of {}", request.caller, bff.name),
        );
    }
    let mut credential = match console.credential(bff, base, &request.caller, false).await {
        Ok(credential) => credential,
        Err(error) => return problem(StatusCode::BAD_GATEWAY, &format!("could not log in: {error:#}")),
    };
    let mut attempt = 0;
    loop {
        let (name, value) = credential.header();
        let started = Instant::now();
        let response = match console.http.get(url.clone()).header(name, value).send().await {
            Ok(response) => response,
            Err(error) => {
                return problem(StatusCode::BAD_GATEWAY, &format!("{} did not answer: {error}", bff.name));
            }
        };
        // A credential the BFF no longer accepts (it restarted with another
        // key, the session expired): mint afresh once.
        if response.status() == StatusCode::UNAUTHORIZED && attempt == 0 {
            attempt += 1;
            match console.credential(bff, base, &request.caller, true).await {
                Ok(fresh) => {
                    credential = fresh;
                    continue;
                }
                Err(error) => {
                    return problem(StatusCode::BAD_GATEWAY, &format!("could not log in: {error:#}"));
                }
            }
        }
        return Json(describe(response, started).await).into_response();
    }
}

/// `base` + `path`, or `None` when the result would leave `base`'s origin.
fn same_origin(base: &str, path: &str) -> Option<reqwest::Url> {
    if !path.starts_with('/') || path.starts_with("//") || path.contains('\\') {
        return None;
    }
    let base = reqwest::Url::parse(base).ok()?;
    let url = base.join(path).ok()?;
    (url.origin() == base.origin()).then_some(url)
}

/// What the page shows of a BFF's answer.
async fn describe(response: reqwest::Response, started: Instant) -> Value {
    let status = response.status().as_u16();
    let mut headers = serde_json::Map::new();
    for (name, value) in response.headers() {
        let value = value.to_str().unwrap_or("(not text)").to_owned();
        match headers.get_mut(name.as_str()) {
            Some(Value::String(existing)) => *existing = format!("{existing}, {value}"),
            _ => {
                headers.insert(name.as_str().to_owned(), Value::String(value));
            }
        }
    }
    let timing = headers.get("server-timing").and_then(Value::as_str).map(server_timing).unwrap_or_default();
    // The body as text: parsed here, a JSON object would come out with its
    // keys sorted, and the components' order is the screen's declaration
    // order (the page parses it).
    let body = response.text().await.unwrap_or_default();
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    json!({
        "status": status,
        "durationMs": (duration_ms * 10.0).round() / 10.0,
        "headers": headers,
        "serverTiming": timing,
        "bodyText": body,
    })
}

/// `Server-Timing` entries (`name;dur=12.0;desc="ok"`, comma-separated) as
/// `{name, durMs, desc}`.
fn server_timing(header: &str) -> Vec<Value> {
    let mut entries = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in header.chars().chain(std::iter::once(',')) {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            ',' if !quoted => {
                let entry = std::mem::take(&mut current);
                let mut parts = entry.split(';').map(str::trim);
                let Some(name) = parts.next().filter(|n| !n.is_empty()) else { continue };
                let mut item = json!({ "name": name });
                for part in parts {
                    match part.split_once('=') {
                        Some(("dur", value)) => item["durMs"] = json!(value.parse::<f64>().ok()),
                        Some(("desc", value)) => item["desc"] = json!(value.trim_matches('"')),
                        _ => {}
                    }
                }
                entries.push(item);
            }
            _ => current.push(c),
        }
    }
    entries
}

impl Console {
    /// The credential for `caller` of `bff`: kept while fresh, minted
    /// otherwise (or when `fresh` is asked for).
    async fn credential(
        &self,
        bff: &Bff,
        base: &str,
        caller: &str,
        fresh: bool,
    ) -> anyhow::Result<Credential> {
        let key = (bff.name.to_owned(), caller.to_owned());
        if !fresh {
            let cached = self.credentials.lock().unwrap_or_else(|p| p.into_inner()).get(&key).cloned();
            if let Some((credential, until)) = cached
                && Instant::now() < until
            {
                return Ok(credential);
            }
        }
        let endpoints = Endpoints { bff: base.to_owned(), identity: self.targets.identity.clone() };
        let credential = credentials::mint(bff, caller, &endpoints, &self.identity, TOKEN_TTL).await?;
        let reuse = match bff.auth {
            bff_registry::Auth::Bearer | bff_registry::Auth::Staff => TOKEN_TTL - Duration::from_secs(60),
            _ => FLOW_CREDENTIAL_REUSE,
        };
        self.credentials
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, (credential.clone(), Instant::now() + reuse));
        Ok(credential)
    }
}

async fn mocks(State(console): State<Shared>) -> Json<Value> {
    let reads = console.targets.mocks.iter().map(|(service, url)| {
        let http = console.http.clone();
        async move {
            let read = |path: &'static str| {
                let http = http.clone();
                let url = format!("{url}{path}");
                async move {
                    let response = http.get(url).timeout(Duration::from_secs(2)).send().await.ok()?;
                    response.json::<Value>().await.ok()
                }
            };
            let (faults, stats) = tokio::join!(read("/__faults"), read("/__stats"));
            json!({
                "name": service.name(),
                "url": url,
                "up": stats.is_some(),
                "faults": faults,
                "stats": stats.map(|s| json!({
                    "total": s["total"],
                    "inFlight": s["inFlight"],
                    "maxInFlight": s["maxInFlight"],
                })),
            })
        }
    });
    Json(json!({ "mocks": futures_util::future::join_all(reads).await }))
}

async fn set_faults(
    State(console): State<Shared>,
    Path(name): Path<String>,
    Json(faults): Json<Value>,
) -> Response {
    let Some(url) = console.targets.mock(&name) else {
        return problem(StatusCode::NOT_FOUND, "no such mock");
    };
    forward(console.http.put(format!("{url}/__faults")).json(&faults)).await
}

async fn reset_faults(State(console): State<Shared>, Path(name): Path<String>) -> Response {
    let Some(url) = console.targets.mock(&name) else {
        return problem(StatusCode::NOT_FOUND, "no such mock");
    };
    forward(console.http.delete(format!("{url}/__faults"))).await
}

/// Sends a request to a mock and hands its answer back as it is (a fault
/// the mock refuses comes back with the mock's own explanation).
async fn forward(request: reqwest::RequestBuilder) -> Response {
    match request.send().await {
        Ok(response) => {
            let status = StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let body = response.text().await.unwrap_or_default();
            (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        Err(error) => problem(StatusCode::BAD_GATEWAY, &format!("the mock did not answer: {error}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_timing_entries_are_read_with_their_durations_and_descriptions() {
        let entries = server_timing(
            "profile;dur=12.0;desc=\"ok\", recommendations;dur=200.5;desc=\"fallback timeout\", shipping;desc=\"error unavailable\"",
        );
        assert_eq!(
            entries,
            vec![
                json!({"name": "profile", "durMs": 12.0, "desc": "ok"}),
                json!({"name": "recommendations", "durMs": 200.5, "desc": "fallback timeout"}),
                json!({"name": "shipping", "desc": "error unavailable"}),
            ]
        );
        assert!(server_timing("").is_empty());
    }

    #[test]
    fn calls_stay_on_the_bff() {
        let base = "http://127.0.0.1:8081";
        assert_eq!(
            same_origin(base, "/v1/home?x=1").map(String::from).as_deref(),
            Some("http://127.0.0.1:8081/v1/home?x=1")
        );
        for escape in ["//evil.example/x", "http://evil.example/", "v1/home", "/\\evil.example", ""] {
            assert_eq!(same_origin(base, escape), None, "{escape}");
        }
    }

    #[test]
    fn the_console_refuses_to_listen_beyond_loopback() {
        for addr in ["0.0.0.0:7100", "192.168.1.5:7100", "[::]:7100"] {
            let addr: SocketAddr = addr.parse().expect("an address");
            assert!(refuse_outside_development(&addr).is_err(), "{addr}");
        }
    }

    #[test]
    fn screens_are_the_documents_gets_but_plumbing() {
        let document = json!({"paths": {
            "/v1/home": {"get": {"summary": "Home"}},
            "/v1/product-page/{id}": {"get": {"summary": "Product"}},
            "/v1/orders": {"post": {}},
            "/auth/login": {"get": {}},
            "/healthz": {"get": {}},
        }});
        let paths: Vec<_> = screens_of(&document).iter().map(|s| s["path"].clone()).collect();
        assert_eq!(paths, vec![json!("/v1/home"), json!("/v1/product-page/{id}")]);
    }
}
