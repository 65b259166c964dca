//! What every BFF must be, checked the same way for each: a BFF crate's
//! tests call [`conformance`] once (the scaffold of `cargo xtask new-bff`
//! does), so a rule of the shell holds by test in every crate rather than
//! by review.
//!
//! * its defaults are its registry entry (port, audience, OAuth client,
//!   egress list);
//! * it serves `/openapi.json` publicly, and that is the committed
//!   `openapi/<name>.json` (else: `cargo xtask contracts --update`);
//! * `/metrics` is served on its admin listener and not on its public port;
//! * every operation whose document lists scopes refuses a token of its own
//!   callers without them (`403`, `insufficient_scope`);
//! * every operation its document says is secured refuses a request
//!   without credentials with `401 auth.invalid_token`, and nothing reaches
//!   a downstream service;
//! * `docker-compose.yml` runs it with an environment its real
//!   configuration accepts, pointing at the compose services;
//! * `deploy/k8s` deploys it with an environment (and Secrets) its real
//!   configuration accepts in production, with ports, probes, the drain and
//!   the termination grace period that agree with that configuration, and
//!   a network policy whose egress is its registry egress list;
//! * it limits each caller: its smoke request carries `RateLimit-Policy`
//!   and `RateLimit`, and the request after the quota is `429 rate_limited`
//!   with `Retry-After`;
//! * told to stop, it drains: `/readyz` answers `503` at once while it still
//!   serves for `server.drain_secs`, then it stops accepting.

use std::collections::BTreeMap;
use std::path::PathBuf;

use bff_server::{Bff, Config, Section};
use figment::Figment;
use figment::providers::Serialized;
use serde::Deserialize;
use serde_json::Value;

use crate::{Reply, spawn};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs every check on the BFF `make` builds (it is started with its mocks,
/// its configuration changed by `customize`, e.g. to write files in a
/// temporary directory); panics with what is wrong and how to fix it.
pub async fn conformance<X: Section>(make: impl Fn() -> Bff<X>, customize: impl Fn(&mut Config<X>)) {
    let bff = make();
    let entry = bff.entry();
    let defaults = bff.defaults();
    assert_eq!(defaults.server.port, entry.port, "{}: the default port is the registry's", entry.name);
    assert_eq!(defaults.auth.audience, entry.name, "{}: tokens are for its own audience", entry.name);
    assert_eq!(defaults.auth.exchange.client_id, entry.name, "{}: it exchanges tokens as itself", entry.name);
    let egress: Vec<&str> = defaults.downstream.services.keys().map(String::as_str).collect();
    let mut calls: Vec<&str> = entry.calls.to_vec();
    calls.sort_unstable();
    assert_eq!(egress, calls, "{}: its downstream services are its registry egress list", entry.name);
    assert_eq!(
        defaults.uses.cache, entry.cache,
        "{}: the registry's `cache` says whether the crate calls `.cache()` (its deployment's cache key)",
        entry.name
    );

    compose_environment_is_accepted(&bff);
    kubernetes_deployment_fits_its_configuration(&bff);

    callers_are_limited(&make, &customize).await;

    drains_before_it_stops(&make, &customize).await;

    let app = spawn(make(), &customize).await;
    let served = app.get_with("/openapi.json", None, &[]).await;
    assert_eq!(served.status, 200, "{}: /openapi.json is public", entry.name);
    let file = workspace().join(format!("openapi/{}.json", entry.name));
    let committed = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(
        served.text == committed,
        "{}: the served document differs from {}: run `cargo xtask contracts --update`",
        entry.name,
        file.display()
    );

    // Metrics are the operators': on the admin listener, never the public port.
    app.get_with("/metrics", None, &[]).await.assert_problem(404, "resource.not_found");
    let metrics = Reply::read(
        app.http.get(format!("{}/metrics", app.admin_base)).send().await.expect("the admin listener answers"),
    )
    .await;
    assert_eq!(metrics.status, 200, "{}: GET /metrics on the admin listener", entry.name);
    assert!(metrics.text.contains("bff_http_requests_total"), "{}: {}", entry.name, metrics.text);

    let document = served.json();
    let mut secured = 0;
    for (path, item) in document["paths"].as_object().into_iter().flatten() {
        for (method, operation) in item.as_object().into_iter().flatten() {
            let needs_credentials =
                operation["security"].as_array().is_some_and(|requirements| !requirements.is_empty());
            if !needs_credentials {
                continue;
            }
            secured += 1;
            let url = format!("{}{}", app.base, example_path(path));
            let method =
                reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes()).expect("a method");
            let reply = Reply::read(
                app.http
                    .request(method.clone(), &url)
                    .header("content-type", "application/json")
                    .header("idempotency-key", "conformance-0001")
                    .body("{}")
                    .send()
                    .await
                    .expect("the BFF answers"),
            )
            .await;
            assert_eq!(
                reply.status, 401,
                "{}: {method} {path} without credentials: {}",
                entry.name, reply.text
            );
            reply.assert_problem(401, "auth.invalid_token");
            scopes_are_enforced(&app, path, &method, operation).await;
        }
    }
    assert!(secured > 0, "{}: its document declares no secured operation", entry.name);
    // Nothing reached a service for a caller. (A BFF's own background work,
    // which carries a token whose subject is the BFF, may run meanwhile.)
    for service in entry.calls.iter().filter_map(|name| name.parse::<services_mock::Service>().ok()) {
        let stats = app.fleet.stats(service).await.expect("stats");
        for request in stats["recent"].as_array().into_iter().flatten() {
            assert_eq!(
                request["token"]["sub"], entry.name,
                "{}: an unauthenticated request reached {service}: {request}",
                entry.name
            );
        }
    }
}

/// Shutdown with a 2 s drain: not ready at once, still serving, then gone.
async fn drains_before_it_stops<X: Section>(make: &impl Fn() -> Bff<X>, customize: &impl Fn(&mut Config<X>)) {
    let mut app = spawn(make(), |config: &mut Config<X>| {
        customize(config);
        config.server.drain_secs = 2;
    })
    .await;
    let name = app.bff.name;
    assert_eq!(app.get_with("/readyz", None, &[]).await.status, 200, "{name}: ready before the signal");
    let started = std::time::Instant::now();
    app.shutdown();
    // Within the drain period (polled: the signal reaches the server task
    // asynchronously).
    let mut draining = None;
    while started.elapsed() < std::time::Duration::from_millis(1500) {
        let ready = app.get_with("/readyz", None, &[]).await;
        if ready.status != 200 {
            draining = Some(ready);
            break;
        }
    }
    let draining = draining.unwrap_or_else(|| panic!("{name}: /readyz still 200 after the shutdown signal"));
    let problem = draining.assert_problem(503, "dependency.unavailable");
    assert_eq!(problem["detail"], "draining: this instance is shutting down", "{name}");
    let alive = app.get_with("/healthz", None, &[]).await;
    assert_eq!(alive.status, 200, "{name}: still serving while it drains");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "{name}: the checks above ran past the drain"
    );
    // After the drain, the listener closes (the server task ends).
    let server = app.server.take().expect("the server task");
    let stopped = tokio::time::timeout(std::time::Duration::from_secs(10), server).await;
    assert!(stopped.is_ok(), "{name}: still running 10 s after a 2 s drain");
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(2),
        "{name}: stopped before the drain was over"
    );
    let refused = app.http.get(format!("{}/healthz", app.base)).send().await;
    assert!(refused.is_err(), "{name}: still accepting after the drain");
}

/// Its smoke request, as its callers send it, against a quota of 2.
async fn callers_are_limited<X: Section>(make: &impl Fn() -> Bff<X>, customize: &impl Fn(&mut Config<X>)) {
    let app = spawn(make(), |config| {
        customize(config);
        config.rate_limit.default.requests = 2;
        config.rate_limit.overrides.clear();
    })
    .await;
    let (entry, path) = (app.bff, app.bff.smoke.path);
    for n in 1..=2 {
        let reply = app.get(path).await;
        assert_ne!(reply.status, 429, "{}: request {n} of a quota of 2: {}", entry.name, reply.text);
        assert!(
            reply.header("ratelimit-policy").is_some_and(|p| p.ends_with(";q=2;w=60"))
                && reply.header("ratelimit").is_some(),
            "{}: GET {path} carries the RateLimit headers: {:?}",
            entry.name,
            reply.headers
        );
    }
    let over = app.get(path).await;
    over.assert_problem(429, "rate_limited");
    assert!(over.header("retry-after").is_some(), "{}: a 429 says when to come back", entry.name);
}

/// An operation whose document lists scopes refuses a token of its own
/// callers that lacks one: `403 auth.forbidden` with RFC 6750's
/// `insufficient_scope` challenge, not the screen. (Bearer modes; a
/// session BFF's scopes are tested in its crate, with a sealed session.)
async fn scopes_are_enforced(app: &crate::TestApp, path: &str, method: &reqwest::Method, operation: &Value) {
    let entry = app.bff;
    let needed: Vec<&str> = operation["security"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|requirement| requirement.as_object().into_iter().flatten())
        .flat_map(|(_, scopes)| scopes.as_array().into_iter().flatten().filter_map(Value::as_str))
        .collect();
    if needed.is_empty() || entry.auth == bff_registry::Auth::Session {
        return;
    }
    let identity = app.fleet.identity();
    let mut claims = identity.user_claims(entry, app.default_caller(), std::time::Duration::from_secs(300));
    claims.scope =
        claims.scope.split_whitespace().filter(|s| !needed.contains(s)).collect::<Vec<_>>().join(" ");
    let token = identity.sign(&claims).expect("a token");
    let reply = Reply::read(
        app.http
            .request(method.clone(), format!("{}{}", app.base, example_path(path)))
            .bearer_auth(&token)
            .send()
            .await
            .expect("the BFF answers"),
    )
    .await;
    assert_eq!(
        reply.status, 403,
        "{}: {method} {path} with a token lacking {needed:?} (its document lists them): {}",
        entry.name, reply.text
    );
    reply.assert_problem(403, "auth.forbidden");
    let challenge = reply.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.starts_with("Bearer error=\"insufficient_scope\"")
            && needed.iter().all(|s| challenge.contains(s)),
        "{}: {method} {path}: the challenge names the scope: {challenge:?}",
        entry.name
    );
}

/// `/v1/products/{id}` as a request path: each parameter an example id.
fn example_path(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').map_or(rest.len(), |c| open + c + 1);
        out.push_str("p-1");
        rest = &rest[close..];
    }
    out.push_str(rest);
    out
}

#[derive(Debug, Deserialize)]
struct Compose {
    services: BTreeMap<String, ComposeService>,
}

#[derive(Debug, Deserialize)]
struct ComposeService {
    #[serde(default)]
    environment: BTreeMap<String, String>,
}

/// The compose file's environment for `bff`, loaded by its real configuration.
fn compose_environment_is_accepted<X: Section>(bff: &Bff<X>) {
    let entry = bff.entry();
    let text = std::fs::read_to_string(workspace().join("docker-compose.yml")).expect("docker-compose.yml");
    let compose: Compose = serde_norway::from_str(&text).expect("docker-compose.yml parses");
    let service = compose
        .services
        .get(entry.name)
        .unwrap_or_else(|| panic!("{}: not in docker-compose.yml: run `cargo xtask compose`", entry.name));
    let figment = environment(entry, "docker-compose.yml", service.environment.clone());
    let config = bff
        .load_from(figment)
        .unwrap_or_else(|e| panic!("{}: its compose environment is refused: {e}", entry.name));
    let json: Value = config.to_json();
    assert_eq!(json["server"]["host"], "0.0.0.0", "{}", entry.name);
    assert_eq!(json["auth"]["jwks_url"], "http://identity:7000/.well-known/jwks.json", "{}", entry.name);
    for called in entry.calls {
        let url = json["downstream"]["services"][called]["base_url"].as_str().unwrap_or_default();
        assert!(url.starts_with(&format!("http://{called}:")), "{}: {called} at {url}", entry.name);
    }
}

/// `<PREFIX>__SECTION__KEY` variables (from `source`) as configuration,
/// read as the environment provider reads them (`true` a boolean, `30` a
/// number); `REDIS_URL`, which Redis's defaults read, left out.
fn environment(
    entry: &bff_registry::Bff,
    source: &str,
    variables: impl IntoIterator<Item = (String, String)>,
) -> Figment {
    let mut figment = Figment::new();
    for (key, value) in variables {
        if key == "REDIS_URL" {
            continue;
        }
        let path = key
            .strip_prefix(&format!("{}__", entry.env_prefix))
            .unwrap_or_else(|| panic!("{}: {source} sets {key}, which lacks its prefix", entry.name))
            .to_lowercase()
            .replace("__", ".");
        let value: figment::value::Value = value.parse().unwrap_or_else(|never| match never {});
        figment = figment.merge(Serialized::default(&path, value));
    }
    figment
}

/// Values of the right shape for what the manifests read from Secrets,
/// none of them a development value.
fn secret_placeholder(variable: &str) -> &'static str {
    if variable.ends_with("COOKIE_KEY") {
        // 64 bytes: 0, 1, ..., 63.
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw=="
    } else if variable.ends_with("ENCRYPTION_KEY") {
        // 32 bytes: 0, 1, ..., 31.
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
    } else {
        "a-deployed-secret-from-kubernetes"
    }
}

fn kubernetes_deployment_fits_its_configuration<X: Section>(bff: &Bff<X>) {
    let entry = bff.entry();
    let name = entry.name;
    let path = workspace().join(format!("deploy/k8s/base/{name}.yaml"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{name}: no {}: run `cargo xtask compose`", path.display()));
    let documents: Vec<Value> = serde_norway::Deserializer::from_str(&text)
        .map(|document| Value::deserialize(document).expect("a YAML document"))
        .collect();
    let of_kind = |kinds: &[&str]| {
        documents
            .iter()
            .find(|d| kinds.contains(&d["kind"].as_str().unwrap_or_default()))
            .unwrap_or_else(|| panic!("{name}: no {kinds:?} in {}", path.display()))
    };
    let workload = of_kind(&["Deployment", "StatefulSet"]);
    let pod = &workload["spec"]["template"]["spec"];
    let container = &pod["containers"][0];

    // Its environment, Secrets included, is a production configuration it
    // accepts: every development value replaced, every key one it knows.
    let variables = container["env"].as_array().into_iter().flatten().map(|variable| {
        let key = variable["name"].as_str().expect("env name").to_owned();
        let value = match variable["value"].as_str() {
            Some(value) => value.to_owned(),
            None => {
                let from_secret = variable["valueFrom"]["secretKeyRef"]["name"].is_string();
                assert!(from_secret, "{name}: {key} from a Secret");
                secret_placeholder(&key).to_owned()
            }
        };
        (key, value)
    });
    let figment = environment(entry, "its Kubernetes deployment", variables);
    let config = bff
        .load_from(figment)
        .unwrap_or_else(|e| panic!("{name}: its Kubernetes deployment is refused in production: {e}"));
    let json: Value = config.to_json();
    assert_eq!(json["server"]["environment"], "production", "{name}");

    let port_of = |port_name: &str| {
        container["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == port_name)
            .and_then(|p| p["containerPort"].as_u64())
            .unwrap_or_else(|| panic!("{name}: no container port `{port_name}`"))
    };
    assert_eq!(Some(port_of("http")), json["server"]["port"].as_u64(), "{name}: the API port");
    assert_eq!(Some(port_of("metrics")), json["server"]["admin_port"].as_u64(), "{name}: the metrics port");
    let annotations = &workload["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(
        annotations["prometheus.io/port"].as_str(),
        Some(port_of("metrics").to_string().as_str()),
        "{name}"
    );
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz", "{name}");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz", "{name}");

    // The drain outlasts the readiness probe's verdict; the pod is given
    // the time preStop, the drain and the grace period take.
    let number = |v: &Value| v.as_u64().unwrap_or_else(|| panic!("{name}: not a number: {v}"));
    let drain = number(&json["server"]["drain_secs"]);
    let readiness = &container["readinessProbe"];
    assert!(
        drain >= number(&readiness["periodSeconds"]) * number(&readiness["failureThreshold"]),
        "{name}: drain_secs {drain} ends before the readiness probe takes the pod out"
    );
    let pre_stop: u64 = container["lifecycle"]["preStop"]["exec"]["command"][1]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{name}: preStop is `sleep N`"));
    let grace = number(&json["server"]["shutdown_grace_secs"]);
    let termination = number(&pod["terminationGracePeriodSeconds"]);
    assert!(
        termination > pre_stop + drain + grace,
        "{name}: terminationGracePeriodSeconds {termination} <= preStop {pre_stop} + drain {drain} + grace {grace}"
    );

    // Egress: its registry egress list, the identity provider and Redis (and DNS).
    let policy = of_kind(&["NetworkPolicy"]);
    let mut allowed: Vec<&str> = policy["spec"]["egress"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|rule| rule["to"].as_array().into_iter().flatten())
        .filter_map(|peer| peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"].as_str())
        .collect();
    allowed.sort_unstable();
    let mut expected: Vec<&str> = entry.calls.iter().copied().chain(["identity", "redis"]).collect();
    expected.sort_unstable();
    assert_eq!(allowed, expected, "{name}: the network policy's egress is not its egress list");
}

#[cfg(test)]
mod tests {
    #[test]
    fn path_parameters_become_example_ids() {
        assert_eq!(super::example_path("/v1/products/{id}"), "/v1/products/p-1");
        assert_eq!(super::example_path("/a/{x}/b/{y}"), "/a/p-1/b/p-1");
        assert_eq!(super::example_path("/v1/home"), "/v1/home");
    }
}
