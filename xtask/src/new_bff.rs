//! `cargo xtask new-bff <name> --port <p> --auth <mode>`: a new BFF, ready
//! for CI, in one command.
//!
//! It writes the crate `crates/<name>/` (one composed screen,
//! `GET /v1/products/{id}`: product and price critical, availability
//! optional; tests for the healthy, degraded, critical-failure and
//! bad-credential cases; the shell's conformance test; consumer pacts) and
//! the BFF's entry in `crates/bff-registry`, which is all the rest of the
//! workspace needs: `cargo xtask dev`, `contracts`, `smoke`, the compose
//! file and the identity mock's clients all read the registry. Then it
//! regenerates `docker-compose.yml` and runs `cargo xtask contracts
//! --update`, which writes the OpenAPI document and the pacts and verifies
//! them; the first document is the BFF's released baseline.
//! (`--no-contracts` skips that step, to scaffold several BFFs in a row.)
//!
//! A name that is taken, an invalid crate name, or a port another BFF, a
//! mock or Redis uses is refused before anything is written.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};
use bff_registry::{Auth, BFFS};

use crate::root;

/// The marker line in the registry above which entries are inserted.
const MARKER: &str = "    // cargo xtask new-bff: new entries go above this line.";

/// What the command was asked for, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// `kiosk-bff`.
    pub(crate) name: String,
    /// The port.
    pub(crate) port: u16,
    /// The authentication mode.
    pub(crate) auth: Auth,
}

impl Plan {
    /// The crate's Rust name (`kiosk_bff`).
    fn ident(&self) -> String {
        self.name.replace('-', "_")
    }

    /// `kiosk`.
    fn short(&self) -> &str {
        self.name.strip_suffix("-bff").unwrap_or(&self.name)
    }

    /// The identity-provider client its callers use.
    fn client(&self) -> String {
        match self.auth {
            Auth::Session => self.name.clone(),
            Auth::Bearer | Auth::Device => format!("{}-app", self.short()),
            Auth::ClientCredentials => format!("{}-client", self.short()),
            Auth::Staff => format!("{}-console", self.short()),
        }
    }
}

/// Runs the command.
pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    if args.first().is_some_and(|arg| arg == "--selftest") {
        return selftest();
    }
    let (plan, contracts) = parse(args, &root())?;
    let root = root();
    scaffold(&root, &plan)?;
    println!("new-bff: wrote crates/{} and its entry in crates/bff-registry/src/lib.rs", plan.name);
    // This xtask was built with the old registry: a fresh one regenerates
    // what the registry drives.
    xtask(&root, &["compose"])?;
    if contracts {
        // Writes the new OpenAPI document and pacts, and verifies them.
        xtask(&root, &["contracts", "--update"])?;
        write_baselines(&root)?;
    } else {
        println!("new-bff: next, `cargo xtask contracts --update` writes its OpenAPI document and pacts");
    }
    println!(
        "\nnew-bff: {name} is ready on port {port} ({auth} callers).\n  \
         run it:   cargo xtask dev, then {try_it}\n  \
         test it:  cargo test -p {name}\n  \
         its code: crates/{name}/src/routes.rs (the screen), crates/{name}/tests/it/",
        name = plan.name,
        port = plan.port,
        auth = plan.auth,
        try_it = format_args!("cargo xtask smoke"),
    );
    Ok(())
}

/// Validates the arguments against the workspace at `root`.
pub(crate) fn parse(args: &[String], root: &Path) -> anyhow::Result<(Plan, bool)> {
    const USAGE: &str = "usage: cargo xtask new-bff <name> --port <p> --auth <bearer|session|client-credentials|staff|device> [--no-contracts]";
    let (mut name, mut port, mut auth, mut contracts) = (None, None, None, true);
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--port" => port = Some(iter.next().context(USAGE)?.clone()),
            "--auth" => auth = Some(iter.next().context(USAGE)?.clone()),
            "--no-contracts" => contracts = false,
            "-h" | "--help" => bail!("{USAGE}"),
            other if other.starts_with("--") => bail!("unknown option `{other}`\n{USAGE}"),
            other if name.is_none() => name = Some(other.to_owned()),
            other => bail!("unexpected argument `{other}`\n{USAGE}"),
        }
    }
    let name = name.with_context(|| format!("a name is required\n{USAGE}"))?;
    let port = port.with_context(|| format!("--port is required\n{USAGE}"))?;
    let auth = auth.with_context(|| format!("--auth is required\n{USAGE}"))?;
    let name = valid_name(&name)?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p >= 1024)
        .with_context(|| format!("`{port}` is not a port a BFF can use (a number from 1024 to 65535)"))?;
    let auth: Auth = auth.parse().map_err(anyhow::Error::msg)?;
    if BFFS.iter().any(|bff| bff.name == name) || root.join("crates").join(&name).exists() {
        bail!("`{name}` exists already (crates/{name} or its registry entry); choose another name");
    }
    if let Some(bff) = BFFS.iter().find(|bff| bff.port == port) {
        bail!("port {port} is taken by {}; choose another", bff.name);
    }
    if let Some((mock, _)) = crate::stack::MOCKS.iter().find(|(_, p)| *p == port) {
        bail!("port {port} is taken by the {mock} mock; choose another");
    }
    if port == 6379 {
        bail!("port 6379 is Redis's; choose another");
    }
    Ok((Plan { name, port, auth }, contracts))
}

/// A crate name for a BFF: lower-case letters, digits and single dashes,
/// starting with a letter; `-bff` is appended when missing.
fn valid_name(name: &str) -> anyhow::Result<String> {
    let ok = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
        && !name.contains("--")
        && name.len() <= 40;
    if !ok {
        bail!(
            "`{name}` is not a valid BFF crate name: use lower-case letters, digits and single dashes, \
             starting with a letter (e.g. `kiosk-bff`)"
        );
    }
    Ok(if name.ends_with("-bff") { name.to_owned() } else { format!("{name}-bff") })
}

/// Writes the crate and the registry entry.
pub(crate) fn scaffold(root: &Path, plan: &Plan) -> anyhow::Result<()> {
    let registry = root.join("crates/bff-registry/src/lib.rs");
    let text = std::fs::read_to_string(&registry).context("reading the registry")?;
    if !text.contains(MARKER) {
        bail!("the registry has lost its marker line ({MARKER:?}); put it back at the end of BFFS");
    }
    let dir = root.join("crates").join(&plan.name);
    let files: Vec<(PathBuf, String)> = vec![
        (dir.join("Cargo.toml"), render(CARGO_TOML, plan)),
        (dir.join("src/lib.rs"), render(LIB_RS, plan)),
        (dir.join("src/main.rs"), render(MAIN_RS, plan)),
        (dir.join("src/routes.rs"), render(ROUTES_RS, plan)),
        (dir.join("tests/it/main.rs"), render(TESTS_MAIN_RS, plan)),
        (dir.join("tests/it/pacts.rs"), render(TESTS_PACTS_RS, plan)),
    ];
    for (path, content) in &files {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, content).with_context(|| format!("writing {}", path.display()))?;
    }
    let entry = render(ENTRY, plan);
    std::fs::write(&registry, text.replacen(MARKER, &format!("{entry}{MARKER}"), 1))
        .context("writing the registry")?;
    Ok(())
}

/// A new BFF's first document is its released baseline: for every
/// document without one (`contracts --update` has just written them).
fn write_baselines(root: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(root.join("openapi"))?.flatten() {
        let path = entry.path();
        let baseline = root.join("openapi/baseline").join(entry.file_name());
        if path.extension().is_some_and(|e| e == "json") && !baseline.exists() {
            std::fs::copy(&path, &baseline)?;
            println!(
                "new-bff: wrote the released baseline openapi/baseline/{}",
                entry.file_name().to_string_lossy()
            );
        }
    }
    Ok(())
}

/// `cargo xtask <args>` in `root` (rebuilding xtask, so it sees the new registry).
fn xtask(root: &Path, args: &[&str]) -> anyhow::Result<()> {
    let status = crate::cargo()
        .current_dir(root)
        .args(["run", "--quiet", "--package", "xtask", "--"])
        .args(args)
        .status()
        .context("running cargo xtask")?;
    if !status.success() {
        bail!("cargo xtask {} failed", args.join(" "));
    }
    Ok(())
}

fn render(template: &str, plan: &Plan) -> String {
    let scheme = if plan.auth == Auth::Session { "session" } else { "bearer" };
    // The scope the screen needs (the shell enforces it from the document
    // and documents its 403): one every derived client of the mode is
    // granted by the identity mock (staff tokens carry `admin`).
    let scope = if plan.auth == Auth::Staff { "admin" } else { "catalog" };
    let callers = match plan.auth {
        Auth::Bearer => "an OAuth bearer JWT of its app",
        Auth::Session => "a sealed session cookie set by the BFF's own login (and a CSRF token on writes)",
        Auth::ClientCredentials => "a client-credentials bearer JWT (machines, acting for themselves)",
        Auth::Staff => "a staff bearer JWT with the `admin` or `support` role",
        Auth::Device => "a bearer JWT obtained with the device authorization grant (RFC 8628)",
    };
    template
        .replace("{{name}}", &plan.name)
        .replace("{{ident}}", &plan.ident())
        .replace("{{port}}", &plan.port.to_string())
        .replace("{{prefix}}", &bff_registry::Bff::env_prefix_of(&plan.name))
        .replace("{{mode}}", plan.auth.as_str())
        .replace("{{Mode}}", plan.auth.variant())
        .replace("{{client}}", &plan.client())
        .replace("{{scheme}}", scheme)
        .replace("{{scope}}", scope)
        .replace("{{callers}}", callers)
        .replace("{{caller}}", if plan.auth == Auth::Staff { "s-1" } else { "u-1" })
}

const ENTRY: &str = r##"    Bff {
        name: "{{name}}",
        port: {{port}},
        env_prefix: "{{prefix}}",
        auth: Auth::{{Mode}},
        client: "{{client}}",
        calls: &["catalog", "pricing", "inventory"],
        routes: "GET /v1/products/{id}",
        smoke: Smoke { path: "/v1/products/p-1", caller: "{{caller}}", expect: r#""degraded":false"# },
        ..Bff::DEFAULTS
    },
"##;

const CARGO_TOML: &str = r##"[package]
name = "{{name}}"
version = "0.1.0"
description = "{{name}}: a Backend-for-Frontend (scaffolded by `cargo xtask new-bff`)."
edition.workspace = true
rust-version.workspace = true
license.workspace = true
publish.workspace = true

[dependencies]
axum.workspace = true
bff-compose.workspace = true
bff-downstream.workspace = true
bff-error.workspace = true
bff-registry.workspace = true
bff-server.workspace = true
mimalloc.workspace = true
serde.workspace = true
utoipa.workspace = true
utoipa-axum.workspace = true

[dev-dependencies]
bff-testkit.workspace = true
serde_json.workspace = true
services-mock.workspace = true
tokio.workspace = true

[[test]]
name = "it"
path = "tests/it/main.rs"

[lints]
workspace = true
"##;

const LIB_RS: &str = r##"//! {{name}}: a Backend-for-Frontend.
//!
//! Its callers authenticate with {{callers}}: the shell's `{{mode}}` mode,
//! chosen by its entry in `crates/bff-registry`, which also gives its port
//! ({{port}}), its configuration prefix (`{{prefix}}__SECTION__KEY`) and the
//! services it may call. Screens:
//!
//! * `GET /v1/products/{id}`: [`routes::product`]
//! * `GET /openapi.json`: this API's OpenAPI document, public
//!
//! This crate holds only screens (recipes and view models); everything
//! else comes from `bff-server`'s [`Bff`].

pub mod routes;

use bff_server::{Backbone, Bff};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// This BFF's registry entry.
pub const ENTRY: &bff_registry::Bff = bff_registry::entry("{{name}}");

/// The screens, each routed together with its OpenAPI operation.
fn screens() -> OpenApiRouter<Backbone> {
    OpenApiRouter::new().routes(routes!(routes::product))
}

/// {{name}}.
pub fn bff() -> Bff {
    Bff::new(ENTRY, env!("CARGO_PKG_VERSION"))
        .describe(
            "{{name}}: composed screens answer with an envelope whose `components` say which \
             optional parts are missing; a missing critical part is a `503`/`504` problem.",
        )
        .deadline_ms(250)
        .screens(screens)
}
"##;

const MAIN_RS: &str = r##"//! The {{name}} binary: `{{name}} --help` lists its commands.

// The allocator every BFF binary uses: PERFORMANCE.md says why.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    {{ident}}::bff().main()
}
"##;

const ROUTES_RS: &str = r##"//! The screens. Each handler is the screen's recipe: which parts, which are
//! critical, what to show when an optional one is missing. Budgets,
//! breakers and spans come from configuration, keyed by component name.

use axum::extract::State;
use bff_compose::{Envelope, Plan};
use bff_downstream::model::{Money, StockLevel};
use bff_error::ApiError;
use bff_server::Backbone;
use bff_server::extract::PathId;
use serde::Serialize;

/// Money, ready to show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MoneyVm {
    /// Minor units.
    pub amount_minor: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// E.g. `€19.99`.
    #[schema(examples("€19.99"))]
    pub formatted: String,
}

impl From<&Money> for MoneyVm {
    fn from(money: &Money) -> Self {
        MoneyVm {
            amount_minor: money.amount_minor,
            currency: money.currency.clone(),
            formatted: money.formatted(),
        }
    }
}

/// Whether it can be bought now: coarse on purpose, never an exact count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Availability {
    /// More than ten.
    InStock,
    /// One to ten.
    Limited,
    /// None.
    OutOfStock,
    /// Inventory did not answer.
    Unknown,
}

impl From<StockLevel> for Availability {
    fn from(level: StockLevel) -> Self {
        match level {
            StockLevel::Plenty => Availability::InStock,
            StockLevel::Few => Availability::Limited,
            StockLevel::None => Availability::OutOfStock,
        }
    }
}

/// `GET /v1/products/{id}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductVm {
    /// Product id.
    pub id: String,
    /// Name.
    pub name: String,
    /// What it costs now.
    pub price: MoneyVm,
    /// Whether it can be bought now.
    pub availability: Availability,
}

/// The product screen's response (named for the OpenAPI document).
pub type ProductEnvelope = Envelope<ProductVm>;

/// `GET /v1/products/{id}`: a product's screen.
///
/// | component | critical | when missing |
/// |---|---|---|
/// | `product` | yes | 404 for an unknown id, else 503/504 |
/// | `price` | yes | 503/504: never a product without a (valid) price |
/// | `availability` | no | `unknown` (`fallback`) |
#[utoipa::path(
    get,
    path = "/v1/products/{id}",
    tag = "screens",
    operation_id = "product",
    summary = "A product with its price and availability",
    security(("{{scheme}}" = ["{{scope}}"])),
    params(("id" = String, Path, description = "Product id, e.g. `p-1`.", pattern = "^[A-Za-z0-9_-]{1,64}$")),
    responses(
        (status = 200, description = "The product; `components` says which parts are missing.", body = ProductEnvelope),
        (status = 400, response = bff_error::openapi::BadRequest),
        (status = 401, response = bff_error::openapi::Unauthenticated),
        (status = 404, response = bff_error::openapi::NotFound),
        (status = 503, response = bff_error::openapi::Unavailable),
        (status = 504, response = bff_error::openapi::Timeout),
    )
)]
pub async fn product(
    State(backbone): State<Backbone>,
    plan: Plan,
    PathId(id): PathId,
) -> Result<Envelope<ProductVm>, ApiError> {
    let (api, id) = (&backbone.api, id.as_str());
    let (product, price, availability) = plan
        .run((
            plan.critical("product", |cx| api.catalog.product(cx, id)),
            plan.critical("price", |cx| api.pricing.price(cx, id)),
            plan.optional("availability", |cx| async move {
                api.inventory.stock(cx, id).await.map(|stock| Availability::from(stock.level()))
            })
            .or(Availability::Unknown),
        ))
        .await?;
    Ok(plan.envelope(ProductVm {
        id: product.id,
        name: product.name,
        price: MoneyVm::from(&price.price),
        availability,
    }))
}
"##;

const TESTS_MAIN_RS: &str = r##"//! {{name}} integration tests: the real app on a loopback port, the mocks
//! it calls behind it, real credentials of its callers.

mod pacts;

use bff_testkit::{TestApp, status_of};
use serde_json::json;
use services_mock::Service;

async fn spawn_app() -> TestApp {
    bff_testkit::spawn({{ident}}::bff(), |_| {}).await
}

#[tokio::test]
async fn a_healthy_product_screen_is_complete_and_not_degraded() {
    let app = spawn_app().await;
    let reply = app.get("/v1/products/p-5").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["degraded"], false, "{body}");
    for part in ["product", "price", "availability"] {
        assert_eq!(status_of(&body, part)["status"], "ok", "{part}: {body}");
    }
    assert_eq!(body["data"]["id"], "p-5");
    assert!(body["data"]["price"]["formatted"].is_string(), "{body}");
}

#[tokio::test]
async fn a_failing_optional_part_degrades_the_screen() {
    let app = spawn_app().await;
    app.fleet.set_faults(Service::Inventory, json!({"errorRatio": 1.0})).await.expect("faults");
    let reply = app.get("/v1/products/p-5").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["degraded"], true);
    assert_eq!(status_of(&body, "availability")["status"], "fallback");
    assert_eq!(status_of(&body, "availability")["reasonCode"], "unavailable");
    assert_eq!(body["data"]["availability"], "unknown");
}

#[tokio::test]
async fn a_failing_critical_part_is_a_problem_without_internals() {
    let app = spawn_app().await;
    app.fleet.set_faults(Service::Pricing, json!({"errorRatio": 1.0})).await.expect("faults");
    let reply = app.get("/v1/products/p-5").await;
    reply.assert_problem(503, "dependency.unavailable");
    bff_testkit::assert_no_internals(&reply, &app.fleet);
}

#[tokio::test]
async fn missing_or_forged_credentials_are_refused_before_any_call() {
    let app = spawn_app().await;
    let reply = app.get_with("/v1/products/p-5", None, &[]).await;
    reply.assert_problem(401, "auth.invalid_token");
    let forged = [("authorization", "Bearer e30.e30.forged"), ("cookie", "__Host-session=forged")];
    let reply = app.get_with("/v1/products/p-5", None, &forged).await;
    reply.assert_problem(401, "auth.invalid_token");
    assert_eq!(app.fleet.domain_requests().await.expect("stats"), 0, "a refused caller reached a service");
}

#[tokio::test]
async fn conforms_to_the_shell() {
    bff_testkit::conformance({{ident}}::bff, |_| {}).await;
}
"##;

const TESTS_PACTS_RS: &str = r##"//! Consumer pacts of {{name}} with each service it calls: one [`Read`] per
//! typed-client call its screens make (see `src/routes.rs`). A screen that
//! starts calling something new adds it here; `cargo xtask contracts
//! --update` then regenerates `contracts/{{name}}-<service>.json`.

use bff_testkit::pact::{Read, record_all};
use services_mock::Service;

/// What the product screen reads, by service.
fn reads() -> Vec<(Service, Vec<Read>)> {
    vec![
        (Service::Catalog, vec![Read::Product, Read::ProductMissing]),
        (Service::Pricing, vec![Read::PriceOnSale]),
        (Service::Inventory, vec![Read::Stock]),
    ]
}

#[tokio::test]
async fn {{ident}}_pacts_are_recorded_through_the_real_clients() {
    record_all("{{name}}", &reads()).await;
}
"##;

/// The scaffolds the self-test makes: one per authentication mode.
const SELFTEST: &[(&str, u16, Auth)] = &[
    ("kiosk", 8091, Auth::Bearer),
    ("shop", 8092, Auth::Session),
    ("wholesale", 8093, Auth::ClientCredentials),
    ("ops", 8094, Auth::Staff),
    ("signage", 8095, Auth::Device),
];

/// The scaffold's end-to-end test (run by `cargo xtask test`): in a copy of
/// this workspace (its tracked and untracked files, not `target/`), one
/// `cargo xtask new-bff` per authentication mode, then what CI would run on
/// them: fmt, clippy, their tests, `cargo xtask contracts` (which must pass
/// with the files `new-bff` wrote and nothing else), the compose check, and
/// `cargo xtask dev` answering `cargo xtask smoke` for every BFF, new ones
/// included. The copy builds into `target/scaffold-e2e/target`, kept between
/// runs so that only the first is cold.
pub(crate) fn selftest() -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let work = crate::target_dir().join("scaffold-e2e");
    let copy = work.join("workspace");
    let target = work.join("target");
    if copy.exists() {
        std::fs::remove_dir_all(&copy).with_context(|| format!("clearing {}", copy.display()))?;
    }
    copy_workspace(&root(), &copy)?;
    println!("scaffold self-test: workspace copied to {}", copy.display());
    seed_target(&crate::target_dir(), &target);
    let step = |what: &str, args: &[&str]| -> anyhow::Result<()> {
        println!(
            "scaffold self-test: {what}: cargo {} ({:.0} s)",
            args.join(" "),
            started.elapsed().as_secs_f64()
        );
        let status = crate::cargo()
            .current_dir(&copy)
            .env("CARGO_TARGET_DIR", &target)
            // Built once: incremental state would only take disk space.
            .env("CARGO_INCREMENTAL", "0")
            .args(args)
            .status()
            .with_context(|| format!("running cargo {}", args.join(" ")))?;
        if !status.success() {
            bail!("scaffold self-test failed at: {what} (in {})", copy.display());
        }
        Ok(())
    };
    let last = SELFTEST.len() - 1;
    for (index, (name, port, auth)) in SELFTEST.iter().enumerate() {
        let port = port.to_string();
        let mut args = vec!["xtask", "new-bff", name, "--port", &port, "--auth", auth.as_str()];
        // Contracts once, with every new BFF in place.
        if index < last {
            args.push("--no-contracts");
        }
        step(&format!("scaffold {name}-bff ({auth})"), &args)?;
    }
    step("format", &["fmt", "--all", "--check"])?;
    // The whole workspace, as CI lints it: a `-p` subset would unify
    // features differently and make the next build recompile dependencies.
    step("lint, new BFFs included", &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])?;
    // Every integration test of the copy, the new crates' among them, from
    // the build `contracts --update` made (a `-p` subset would re-unify
    // features and rebuild the dependencies).
    step("test the workspace, new BFFs included", &["test", "--workspace", "--test", "it"])?;
    step("contracts, as CI runs them", &["xtask", "contracts"])?;
    step("compose file", &["xtask", "compose", "--check"])?;
    dev_and_smoke(&copy, &target)?;
    println!("scaffold self-test: passed in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Starts the copy's target directory from this workspace's build, when
/// it has none yet: the dependencies' artifacts do not depend on where the
/// workspace is, so the copy only compiles its own crates (its sources are
/// newer than any artifact, so nothing of ours is taken as fresh). A real
/// copy with times preserved (`cp -a`), never links: the copy rebuilds
/// files this workspace still uses. Failing to seed only means a cold build.
fn seed_target(from: &Path, to: &Path) {
    let (from, to) = (from.join("debug"), to.join("debug"));
    if to.exists() || !from.exists() || std::fs::create_dir_all(&to).is_err() {
        return;
    }
    let started = std::time::Instant::now();
    for dir in ["deps", "build", ".fingerprint"] {
        let source = from.join(dir);
        let copied = source.exists()
            && Command::new("cp").arg("-a").arg(&source).arg(&to).status().is_ok_and(|s| s.success());
        if source.exists() && !copied {
            println!(
                "scaffold self-test: could not seed {dir} from this workspace's build; building it cold"
            );
        }
    }
    println!(
        "scaffold self-test: seeded its build from this one's in {:.0} s",
        started.elapsed().as_secs_f64()
    );
}

/// Every file of the workspace git knows or would add (tracked and
/// untracked, not ignored), copied to `to`.
fn copy_workspace(from: &Path, to: &Path) -> anyhow::Result<()> {
    let output = Command::new("git")
        .current_dir(from)
        .args(["ls-files", "-z", "--cached", "--others", "--exclude-standard"])
        .output()
        .context("listing the workspace's files with git")?;
    if !output.status.success() {
        bail!("git ls-files failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    for file in output.stdout.split(|b| *b == 0).filter(|f| !f.is_empty()) {
        let relative = PathBuf::from(String::from_utf8_lossy(file).into_owned());
        let source = from.join(&relative);
        if !source.is_file() {
            continue; // deleted in the working tree
        }
        let destination = to.join(&relative);
        if let Some(parent) = destination.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(&source, &destination).with_context(|| format!("copying {}", relative.display()))?;
    }
    Ok(())
}

/// `cargo xtask dev` in the copy, then `cargo xtask smoke` against it.
fn dev_and_smoke(copy: &Path, target: &Path) -> anyhow::Result<()> {
    let ports: Vec<u16> = crate::stack::MOCKS
        .iter()
        .map(|(_, port)| *port)
        .chain(BFFS.iter().map(|bff| bff.port))
        .chain(SELFTEST.iter().map(|(_, port, _)| *port))
        .collect();
    if let Some(port) = ports.iter().find(|port| std::net::TcpListener::bind(("127.0.0.1", **port)).is_err())
    {
        bail!("port {port} is in use (is `cargo xtask dev` running?): the self-test runs the whole stack");
    }
    println!("scaffold self-test: cargo xtask dev, then cargo xtask smoke");
    let xtask = target.join("debug/xtask");
    // Its output goes to a file: a pipe closed early would kill it mid-print
    // and leave its children running.
    let log = target.join("scaffold-dev.log");
    let mut dev = Command::new(&xtask)
        .current_dir(copy)
        .env("CARGO_TARGET_DIR", target)
        .args(["dev", "--no-build"])
        .stdout(std::fs::File::create(&log)?)
        .spawn()
        .context("starting cargo xtask dev in the copy")?;
    let mut ready = false;
    for _ in 0..600 {
        if std::fs::read_to_string(&log).unwrap_or_default().contains("stop: Ctrl-C") {
            ready = true;
            break;
        }
        if dev.try_wait()?.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let smoke = if ready {
        Command::new(&xtask).current_dir(copy).env("CARGO_TARGET_DIR", target).arg("smoke").status()
    } else {
        Ok(std::process::ExitStatus::default())
    };
    let _ = Command::new("kill").args(["-INT", &dev.id().to_string()]).status();
    let _ = dev.wait();
    if !ready {
        bail!("cargo xtask dev did not come up in the copy (its output: {})", log.display());
    }
    if !smoke.context("running cargo xtask smoke")?.success() {
        bail!("cargo xtask smoke failed in the copy");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    fn refusal(text: &str) -> String {
        match parse(&args(text), &root()) {
            Ok(plan) => panic!("`{text}` was accepted: {plan:?}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn taken_names_invalid_names_and_taken_ports_are_refused_with_a_reason() {
        assert!(refusal("mobile-bff --port 9100 --auth bearer").contains("exists already"));
        assert!(
            refusal("mobile --port 9100 --auth bearer").contains("exists already"),
            "the suffix is added"
        );
        assert!(refusal("Kiosk_BFF --port 9100 --auth bearer").contains("not a valid BFF crate name"));
        assert!(refusal("9kiosk --port 9100 --auth bearer").contains("not a valid BFF crate name"));
        assert!(refusal("kiosk- --port 9100 --auth bearer").contains("not a valid BFF crate name"));
        assert!(refusal("kiosk --port 8081 --auth bearer").contains("taken by mobile-bff"));
        assert!(refusal("kiosk --port 7002 --auth bearer").contains("taken by the catalog mock"));
        assert!(refusal("kiosk --port 80 --auth bearer").contains("not a port"));
        assert!(refusal("kiosk --port 9100 --auth oauth").contains("unknown authentication mode"));
        assert!(refusal("kiosk --auth bearer").contains("--port is required"));
    }

    #[test]
    fn a_valid_request_is_planned_and_names_are_completed() {
        let (plan, contracts) = parse(&args("kiosk --port 9100 --auth staff"), &root()).expect("valid");
        assert_eq!(plan, Plan { name: "kiosk-bff".to_owned(), port: 9100, auth: Auth::Staff });
        assert!(contracts);
        assert_eq!(plan.client(), "kiosk-console");
        assert_eq!(plan.ident(), "kiosk_bff");
    }

    #[test]
    fn a_refused_request_writes_nothing() {
        let scratch = root().join("target/new-bff-refusal");
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(scratch.join("crates/kiosk-bff")).expect("scratch");
        let error =
            parse(&args("kiosk --port 9100 --auth bearer"), &scratch).expect_err("exists in that tree");
        assert!(error.to_string().contains("exists already"), "{error}");
        let entries = std::fs::read_dir(scratch.join("crates")).expect("crates").count();
        assert_eq!(entries, 1, "nothing was written");
        let _ = std::fs::remove_dir_all(&scratch);
    }

    #[test]
    fn every_template_placeholder_is_filled() {
        for auth in Auth::ALL {
            let plan = Plan { name: "kiosk-bff".to_owned(), port: 9100, auth };
            for template in [ENTRY, CARGO_TOML, LIB_RS, MAIN_RS, ROUTES_RS, TESTS_MAIN_RS, TESTS_PACTS_RS] {
                let text = render(template, &plan);
                assert!(!text.contains("{{"), "{auth}: unfilled placeholder in\n{text}");
            }
        }
    }
}
