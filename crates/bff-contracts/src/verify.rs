//! Provider verification: every pact replayed against its provider with
//! the Pact verifier library (`pact_verifier`).
//!
//! Providers run in this process on loopback ports: the mock services
//! ([`services_mock::Fleet`]) and, for the front ends' pacts, the BFFs with
//! the mocks behind them ([`Providers::start`]). The verifier sends each
//! interaction's request with real credentials added (a service token for
//! the mock's audience, a mobile user's bearer token, a web session cookie
//! obtained through the real login flow), after setting up its provider
//! states ([`States`]).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use async_trait::async_trait;
use pact_models::provider_states::ProviderState;
use pact_verifier::callback_executors::ProviderStateExecutor;
use pact_verifier::verification_result::VerificationMismatchResult;
use pact_verifier::{
    FilterInfo, NullRequestFilterExecutor, PactSource, ProviderInfo, ProviderTransport, VerificationOptions,
};
use serde_json::Value;
use services_mock::{Fleet, Service};

/// A pact file, as far as the matrix needs it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PactFile {
    /// The consumer's name (`mobile-bff`, `mobile-app`).
    pub consumer: String,
    /// The provider's name (`catalog`, `mobile-bff`).
    pub provider: String,
    /// Number of interactions in the file.
    pub interactions: usize,
    /// Where it is.
    pub path: PathBuf,
}

/// Reads every `*.json` pact in `dir`, sorted by consumer and provider.
pub fn pact_files(dir: &Path) -> anyhow::Result<Vec<PactFile>> {
    let mut files = Vec::new();
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let pact: Value =
            serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
        let name = |role: &str| {
            pact.pointer(&format!("/{role}/name"))
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| anyhow!("{} names no {role}", path.display()))
        };
        let interactions = pact.get("interactions").and_then(Value::as_array).map_or(0, Vec::len);
        files.push(PactFile { consumer: name("consumer")?, provider: name("provider")?, interactions, path });
    }
    files.sort();
    Ok(files)
}

/// One interaction that failed verification, explained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The interaction's description, with its provider states.
    pub interaction: String,
    /// What differed: expected vs actual, one line each.
    pub problems: Vec<String>,
}

/// The result of verifying one pact.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// The pact.
    pub pact: PactFile,
    /// Interactions the verifier replayed.
    pub verified: usize,
    /// Interactions that failed.
    pub failures: Vec<Failure>,
}

impl Verdict {
    /// Passed: every interaction was replayed (none skipped) and none failed.
    /// A verification that checked nothing is a failure, not a pass.
    pub fn passed(&self) -> bool {
        self.failures.is_empty() && self.verified == self.pact.interactions && self.verified > 0
    }
}

/// Where a provider answers and what the verifier adds to every request.
#[derive(Debug, Clone)]
pub struct Target {
    /// Loopback port.
    pub port: u16,
    /// Headers added to every request (credentials), lower-case: the
    /// verifier replaces a pact header only when the names match exactly.
    pub headers: HashMap<String, String>,
}

/// Verifies `pact` against `target`, setting up states with `states`
/// (made for this provider; its error log is per run, so runs must not
/// share it concurrently).
pub async fn verify(pact: &PactFile, target: &Target, states: Arc<States>) -> Verdict {
    states.take_errors();
    let transport = ProviderTransport {
        transport: "http".to_owned(),
        port: Some(target.port),
        path: None,
        scheme: Some("http".to_owned()),
    };
    // `port` is set as well as the transport: with the transport alone the
    // verifier called port 8080 (STACK-NOTES).
    #[allow(deprecated)]
    let provider = ProviderInfo {
        name: pact.provider.clone(),
        host: "127.0.0.1".to_owned(),
        port: Some(target.port),
        transports: vec![transport],
        ..ProviderInfo::default()
    };
    let options = VerificationOptions::<NullRequestFilterExecutor> {
        custom_headers: target.headers.clone(),
        coloured_output: false,
        request_timeout: 10_000,
        follow_redirects: false,
        ..VerificationOptions::default()
    };
    let source = PactSource::File(pact.path.to_string_lossy().into_owned());
    let result = pact_verifier::verify_provider_async(
        provider,
        vec![source],
        FilterInfo::None,
        vec![],
        &options,
        None,
        &states,
        None,
    )
    .await;
    let mut verdict = Verdict { pact: pact.clone(), verified: 0, failures: Vec::new() };
    match result {
        Err(error) => verdict.failures.push(Failure {
            interaction: "(the whole pact)".to_owned(),
            problems: vec![format!("the verifier failed: {error:#}")],
        }),
        Ok(result) => {
            let state_errors = states.take_errors();
            verdict.verified = result.interaction_results.len();
            for interaction in &result.interaction_results {
                let Err(mismatch) = &interaction.result else { continue };
                let given = if interaction.provider_states.is_empty() {
                    String::new()
                } else {
                    format!(" (given {})", interaction.provider_states.join(", "))
                };
                let mut problems = explain(&VerificationMismatchResult::from(mismatch));
                if problems.iter().any(|p| p.contains("state change")) {
                    problems.extend(
                        state_errors
                            .iter()
                            .filter(|e| {
                                interaction.provider_states.iter().any(|s| e.contains(&format!("`{s}`")))
                            })
                            .cloned(),
                    );
                }
                verdict.failures.push(Failure {
                    interaction: format!("{}{given}", interaction.interaction_description),
                    problems,
                });
            }
        }
    }
    verdict
}

fn explain(mismatch: &VerificationMismatchResult) -> Vec<String> {
    match mismatch {
        VerificationMismatchResult::Mismatches { mismatches, .. } => {
            mismatches.iter().map(|m| m.description()).collect()
        }
        VerificationMismatchResult::Error { error, .. } => vec![error.clone()],
    }
}

/// Provider states for one verification run, through the mocks' real
/// `POST /__pact/provider-states` endpoint: a mock provider's own endpoint
/// for its pacts; for a BFF's pacts, the user mock's (the seed is the same
/// in every mock). The endpoint checks the state against the seed and
/// refuses unknown ones. These states are handled here instead:
///
/// * `<service> is|are unavailable`: the mock answers `500` to everything
///   (`PUT /__faults {"errorRatio": 1.0}`), healed at teardown;
/// * `user <id> is signed in`: checks `<id>` is [`FRONTEND_USER`], whose
///   credentials the verifier adds;
/// * `idempotency key <key> was used for another item`: a write with that
///   key (for another product) goes to the cart service first.
#[derive(Debug)]
pub struct States {
    http: reqwest::Client,
    /// Base URL of each mock, by service name.
    mocks: BTreeMap<String, String>,
    /// The mock that checks data states.
    checker: String,
    /// A service token for the cart mock, acting for [`FRONTEND_USER`].
    cart_token: String,
    /// Why states failed since the last [`States::take_errors`]: the
    /// verifier itself only says "a state change handler has failed".
    errors: std::sync::Mutex<Vec<String>>,
}

impl States {
    /// States for verifying pacts of `provider`, backed by `fleet`.
    pub fn new(fleet: &Fleet, provider: &str) -> Arc<States> {
        let mocks: BTreeMap<String, String> =
            Service::ALL.iter().map(|s| (s.name().to_owned(), fleet.url(*s))).collect();
        let checker = mocks.get(provider).or_else(|| mocks.get("user")).cloned().unwrap_or_default();
        let cart_token = fleet.service_token(Service::Cart, FRONTEND_USER, "web-bff");
        Arc::new(States {
            http: reqwest::Client::new(),
            mocks,
            checker,
            cart_token,
            errors: Default::default(),
        })
    }

    /// The state failures recorded since the last call.
    fn take_errors(&self) -> Vec<String> {
        std::mem::take(&mut *self.errors.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    async fn call(&self, state: &str, setup: bool) -> anyhow::Result<()> {
        let words: Vec<&str> = state.split_whitespace().collect();
        if let [service, "is" | "are", "unavailable"] = words.as_slice() {
            let base = self.mocks.get(*service).ok_or_else(|| anyhow!("no mock named {service}"))?;
            let request = if setup {
                self.http.put(format!("{base}/__faults")).json(&serde_json::json!({ "errorRatio": 1.0 }))
            } else {
                self.http.delete(format!("{base}/__faults"))
            };
            request.send().await?.error_for_status()?;
            return Ok(());
        }
        if let ["idempotency", "key", key, "was", "used", "for", "another", "item"] = words.as_slice() {
            if !setup {
                return Ok(());
            }
            // The earlier write, straight to the cart service, as FRONTEND_USER.
            let cart = self.mocks.get("cart").ok_or_else(|| anyhow!("no cart mock"))?;
            self.http
                .post(format!("{cart}/carts/{FRONTEND_USER}/items"))
                .bearer_auth(&self.cart_token)
                .header("idempotency-key", *key)
                .json(&serde_json::json!({ "productId": "p-2", "quantity": 1 }))
                .send()
                .await?
                .error_for_status()?;
            return Ok(());
        }
        if let ["user", id, "is", "signed", "in"] = words.as_slice() {
            if *id != FRONTEND_USER {
                return Err(anyhow!("the verifier signs in as {FRONTEND_USER}, not {id}"));
            }
            return Ok(());
        }
        let base = &self.checker;
        let action = if setup { "setup" } else { "teardown" };
        let response = self
            .http
            .post(format!("{base}/__pact/provider-states"))
            .json(&serde_json::json!({ "state": state, "action": action }))
            .send()
            .await?;
        if !response.status().is_success() {
            let body: Value = response.json().await.unwrap_or_default();
            let message = body.get("message").and_then(Value::as_str).unwrap_or("refused").to_owned();
            return Err(anyhow!(message));
        }
        Ok(())
    }
}

#[async_trait]
impl ProviderStateExecutor for States {
    async fn call(
        self: Arc<Self>,
        _interaction_id: Option<String>,
        provider_state: &ProviderState,
        setup: bool,
        _client: Option<&reqwest::Client>,
    ) -> anyhow::Result<HashMap<String, Value>> {
        if let Err(error) = States::call(&self, &provider_state.name, setup).await {
            let message = format!("provider state `{}` failed: {error:#}", provider_state.name);
            self.errors.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(message);
            return Err(error);
        }
        Ok(HashMap::new())
    }

    fn teardown(&self) -> bool {
        true
    }
}

/// Every provider a pact can name, running on loopback: the mocks (in this
/// process), and the BFFs that front ends' pacts name, each its **real
/// binary** started as a child process with the mocks behind it (so the
/// verifier checks what ships, and this crate links no BFF). Dropping it
/// stops them.
#[derive(Debug)]
pub struct Providers {
    /// The mocks.
    pub fleet: Fleet,
    targets: BTreeMap<String, Target>,
    children: Vec<std::process::Child>,
}

/// The user whose credentials the front ends' pacts are verified with:
/// `u-2` has a cart with two lines and an order (`u-1` has no orders).
pub const FRONTEND_USER: &str = "u-2";

impl Providers {
    /// Starts every mock, and each BFF of the registry named in `wanted`
    /// from its binary in `bin_dir`.
    pub async fn start(
        bin_dir: &Path,
        wanted: &std::collections::BTreeSet<&str>,
    ) -> anyhow::Result<Providers> {
        let mut providers = Providers::mocks().await?;
        for bff in bff_registry::BFFS.iter().filter(|bff| wanted.contains(bff.name)) {
            providers.start_bff(bin_dir, bff).await?;
        }
        Ok(providers)
    }

    /// Starts every mock, no BFF.
    pub async fn mocks() -> anyhow::Result<Providers> {
        let fleet = Fleet::start().await?;
        let mut providers = Providers { fleet, targets: BTreeMap::new(), children: Vec::new() };
        for service in Service::ALL.into_iter().filter(|s| *s != Service::Identity) {
            let url = providers.fleet.url(service);
            // The audience is the service; the actor the BFF (any will do).
            // The subject is staff: the pacts read several users' data
            // (`/users/u-1`, `/carts/u-2`) with one token, and the mocks let
            // only the owner or staff do that. These checks are about the
            // answers' shape; who may read what is the mocks' own tests'.
            let token = providers.fleet.service_token(service, "s-1", "mobile-bff");
            let headers = HashMap::from([("authorization".to_owned(), format!("Bearer {token}"))]);
            providers.targets.insert(service.name().to_owned(), Target { port: port_of(&url)?, headers });
        }
        Ok(providers)
    }

    /// The target named `provider`, if it runs here.
    pub fn target(&self, provider: &str) -> Option<&Target> {
        self.targets.get(provider)
    }

    /// Starts `bff`'s binary on a free port, pointed at the mocks, waits
    /// until it is ready, and records the credentials its callers present.
    async fn start_bff(&mut self, bin_dir: &Path, bff: &'static bff_registry::Bff) -> anyhow::Result<()> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let binary = bin_dir.join(bff.name);
        let mut command = std::process::Command::new(&binary);
        // Nothing from this environment configures it but what we set:
        // no shared Redis, no stray overrides.
        command.env_remove("REDIS_URL");
        for (key, _) in std::env::vars().filter(|(key, _)| key.starts_with(bff.env_prefix)) {
            command.env_remove(key);
        }
        command
            .envs(bff_testkit::wire_env(&self.fleet, bff, port))
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let child = command
            .spawn()
            .with_context(|| format!("starting {} (is it built? `cargo build --bins`)", binary.display()))?;
        self.children.push(child);
        let base = format!("http://127.0.0.1:{port}");
        wait_ready(&base, bff.name).await?;
        let headers = match bff.auth {
            bff_registry::Auth::Session => {
                let (cookie, csrf) = web_login(&base, FRONTEND_USER).await?;
                HashMap::from([
                    ("cookie".to_owned(), cookie),
                    ("x-csrf-token".to_owned(), csrf),
                    ("origin".to_owned(), format!("http://127.0.0.1:{}", bff.port)),
                ])
            }
            _ => {
                let token =
                    self.fleet.identity().user_token(bff, FRONTEND_USER, Duration::from_secs(3600))?;
                HashMap::from([("authorization".to_owned(), format!("Bearer {token}"))])
            }
        };
        self.targets.insert(bff.name.to_owned(), Target { port, headers });
        Ok(())
    }
}

/// Polls `/readyz` until it answers `200` (30 s at most).
async fn wait_ready(base: &str, name: &str) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    for _ in 0..300 {
        if let Ok(response) = http.get(format!("{base}/readyz")).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(anyhow!("{name} did not become ready at {base} within 30 s"))
}

impl Drop for Providers {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn port_of(url: &str) -> anyhow::Result<u16> {
    url.rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .ok_or_else(|| anyhow!("no port in {url}"))
}

/// Logs `user` in to a session BFF through the real flow (BFF → identity
/// provider → callback); returns the session cookie pair and its CSRF token.
async fn web_login(base: &str, user: &str) -> anyhow::Result<(String, String)> {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let session = bff_testkit::session_login(&http, base, user).await.map_err(anyhow::Error::msg)?;
    let info: Value =
        http.get(format!("{base}/auth/session")).header("cookie", &session).send().await?.json().await?;
    let csrf = info.get("csrfToken").and_then(Value::as_str).ok_or_else(|| anyhow!("no csrfToken"))?;
    Ok((session, csrf.to_owned()))
}
