//! The shell: everything a BFF is besides its screens, in one builder.
//!
//! A client team's crate says what is theirs and nothing else:
//!
//! ```text
//! pub fn bff() -> Bff<AuditConfig> {
//!     Bff::new(bff_registry::entry("admin-bff"), env!("CARGO_PKG_VERSION"))
//!         .describe("The BFF of the back office. ...")
//!         .deadline_ms(400)
//!         .screens(|| OpenApiRouter::new().routes(routes!(routes::user)))
//!         .around_auth(name_the_action)
//!         .around_edge(audit_layer)
//!         .command("verify-audit", "<file>", verify_audit)
//! }
//! // main.rs
//! fn main() -> ExitCode { admin_bff::bff().main() }
//! ```
//!
//! From the BFF's registry entry and those declarations the shell builds,
//! in the spirit of linkerd2-proxy's stack builders: the configuration
//! (shared sections, the ones the BFF's features need, its own section;
//! loaded and validated by key path), the authentication mode, the egress
//! list (typed clients, token-exchange scopes, one guard per dependency),
//! the OpenAPI document (split off the same routers that serve), readiness,
//! the edge stack, serving and graceful shutdown, and the binary's command
//! line (`serve`, `openapi`, `config`, plus the BFF's own commands).
//!
//! Layer order around a BFF's screens, innermost first (the outer edge is
//! in [`crate::edge`]; `ARCHITECTURE.md` has the whole inventory):
//!
//! 0. writes that declare an `Idempotency-Key`: the key is claimed, a
//!    settled answer stored and replayed (see `idempotency`);
//! 1. the BFF's [`Bff::inside_auth`] hooks: they see the authenticated caller;
//! 2. the caller's quota (`429 rate_limited`, `RateLimit` headers on every
//!    answer), then the scopes each operation's security requirement lists
//!    in the document (`403 auth.forbidden` without them; see `scopes`);
//! 3. authentication by mode (bearer; client credentials only; staff roles;
//!    session cookie then CSRF);
//! 4. the BFF's [`Bff::around_auth`] hooks: they see every request, refused
//!    ones too (admin's audit trail);
//! 5. conditional GETs (`ETag`/`304`) when declared;
//! 6. the edge; then, outermost, gzip (when declared) or the session
//!    mode's CORS.

use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::Route;
use bff_auth::session::{Origins, SessionAuth};
use bff_auth::{Caller, JwtVerifier};
use bff_cache::CacheConfig;
use bff_compose::ComposeConfig;
use bff_downstream::DownstreamConfig;
use bff_error::{ApiError, ErrorCode};
use bff_ratelimit::{QuotaConfig, RateLimitConfig};
use bff_redis::RedisConfig;
use bff_registry::Auth;
use tokio::net::TcpListener;
use tower::{Layer, Service};
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::config::{Config, Section, ServerConfig, Uses};
use crate::session::{SessionConfig, SessionState};
use crate::{Backbone, Draining, ShellError, openapi};

/// A change to the router of a BFF's screens: a layer, usually made with
/// [`route_layer`].
pub type Wrap = Box<dyn FnOnce(Router<Backbone>) -> Router<Backbone> + Send>;

/// A change to the whole app, edge included: a layer that sees every
/// request that reaches the BFF, those the edge refuses too.
pub type WrapApp = Box<dyn FnOnce(Router) -> Router + Send>;

/// A BFF's hook around the edge (see [`Bff::around_edge`]).
pub type EdgeHook<X> = fn(&X, &Backbone) -> Result<WrapApp, ShellError>;

/// A BFF's hook: builds a [`Wrap`] from its own section and the backbone
/// (e.g. opens the audit trail, makes the rate limiter).
pub type Hook<X> = fn(&X, &Backbone) -> Result<Wrap, ShellError>;

/// `router.route_layer(layer)`, boxed: the usual body of a [`Hook`].
pub fn route_layer<L>(layer: L) -> Wrap
where
    L: Layer<Route> + Clone + Send + Sync + 'static,
    L::Service: Service<Request> + Clone + Send + Sync + 'static,
    <L::Service as Service<Request>>::Response: IntoResponse + 'static,
    <L::Service as Service<Request>>::Error: Into<std::convert::Infallible> + 'static,
    <L::Service as Service<Request>>::Future: Send + 'static,
{
    Box::new(move |router| router.route_layer(layer))
}

/// Work a BFF runs in the background while it serves (the TV's precomputed
/// rails): built from its own section and the backbone, spawned when the
/// BFF starts serving, stopped when it stops.
pub type Task<X> =
    fn(&X, &Backbone) -> Result<std::pin::Pin<Box<dyn Future<Output = ()> + Send>>, ShellError>;

/// A subcommand of the BFF's binary (admin's `verify-audit <file>`).
#[derive(Debug, Clone, Copy)]
pub struct Command {
    /// `admin-bff <name> ...`.
    pub name: &'static str,
    /// Its arguments, for the usage text.
    pub usage: &'static str,
    /// Runs it with the arguments after the name.
    pub run: fn(&[String]) -> ExitCode,
}

/// The compose stack's Redis password (`docker-compose.yml`): public, so a
/// deployed BFF refuses a Redis URL that holds it.
pub const LOCAL_REDIS_PASSWORD: &str = "local-dev-redis-password";

/// Requests per minute each caller of a BFF may make unless the BFF says
/// otherwise ([`Bff::quota`]): ten a second sustained, a whole minute's
/// worth as a burst. A person tapping through an app makes a handful of
/// calls a second; a client retrying in a tight loop does not get far.
pub const DEFAULT_CALLER_QUOTA: u32 = 600;

/// The roles a staff BFF lets in unless told otherwise, strongest first.
pub const DEFAULT_STAFF_ROLES: &[&str] = &["admin", "support"];

/// One BFF: its registry entry plus what its crate declares. See the
/// module documentation for the shape.
pub struct Bff<X: Section = ()> {
    entry: &'static bff_registry::Bff,
    version: &'static str,
    description: &'static str,
    deadline_ms: u64,
    uses_cache: bool,
    uses_redis: bool,
    conditional_get: bool,
    compression: bool,
    staff_roles: &'static [&'static str],
    rate_limit: RateLimitConfig,
    screens: fn() -> OpenApiRouter<Backbone>,
    public_screens: fn() -> OpenApiRouter<Backbone>,
    inside_auth: Vec<Hook<X>>,
    around_auth: Vec<Hook<X>>,
    around_edge: Vec<EdgeHook<X>>,
    tasks: Vec<Task<X>>,
    commands: Vec<Command>,
    tune: Option<fn(&mut Config<X>)>,
}

impl<X: Section> std::fmt::Debug for Bff<X> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bff").field("name", &self.entry.name).field("auth", &self.entry.auth).finish()
    }
}

impl<X: Section> Bff<X> {
    /// The BFF of `entry` (from `bff_registry::entry("name")`), at `version`
    /// (its crate's, `env!("CARGO_PKG_VERSION")`).
    pub fn new(entry: &'static bff_registry::Bff, version: &'static str) -> Self {
        Bff {
            entry,
            version,
            description: "",
            deadline_ms: ComposeConfig::default().request_deadline_ms,
            uses_cache: false,
            // Every BFF limits its callers, shared through Redis.
            uses_redis: true,
            conditional_get: false,
            compression: false,
            staff_roles: DEFAULT_STAFF_ROLES,
            rate_limit: RateLimitConfig {
                policy: entry.short_name().to_owned(),
                default: QuotaConfig { requests: DEFAULT_CALLER_QUOTA, window_secs: 60 },
                ..RateLimitConfig::default()
            },
            screens: OpenApiRouter::new,
            public_screens: OpenApiRouter::new,
            inside_auth: Vec::new(),
            around_auth: Vec::new(),
            around_edge: Vec::new(),
            tasks: Vec::new(),
            commands: Vec::new(),
            tune: None,
        }
    }

    /// What the API is for, as its OpenAPI document says to client teams.
    #[must_use]
    pub fn describe(mut self, description: &'static str) -> Self {
        self.description = description;
        self
    }

    /// The default request deadline, in milliseconds (configurable as
    /// `compose.request_deadline_ms`).
    #[must_use]
    pub fn deadline_ms(mut self, deadline_ms: u64) -> Self {
        self.deadline_ms = deadline_ms;
        self
    }

    /// Screens cache parts (`stale_from_cache`): the `cache` and `redis`
    /// sections exist and entries are shared through Redis when configured.
    #[must_use]
    pub fn cache(mut self) -> Self {
        self.uses_cache = true;
        self.uses_redis = true;
        self
    }

    /// Each caller's quota (the `rate_limit` section's defaults): `policy`
    /// names it in the `RateLimit-Policy` header, `default` is every
    /// caller's quota unless overridden. Every BFF limits its callers
    /// (per user, staff member or partner: the authenticated subject),
    /// shared across instances through Redis; without a call to this,
    /// [`DEFAULT_CALLER_QUOTA`] per minute under the BFF's short name.
    #[must_use]
    pub fn quota(mut self, policy: &str, default: QuotaConfig) -> Self {
        self.rate_limit.policy = policy.to_owned();
        self.rate_limit.default = default;
        self
    }

    /// A quota of its own for one caller (a partner on a smaller plan).
    #[must_use]
    pub fn quota_for(mut self, caller: &str, quota: QuotaConfig) -> Self {
        self.rate_limit.overrides.insert(caller.to_owned(), quota);
        self
    }

    /// What an operation costs against the caller's quota, by
    /// `METHOD /path/template` (every other costs 1): a batch read of many
    /// entities costs more than a single one.
    #[must_use]
    pub fn cost(mut self, operation: &str, requests: u32) -> Self {
        self.rate_limit.costs.insert(operation.to_owned(), requests);
        self
    }

    /// The BFF shares state across instances through Redis (rate limits):
    /// the `redis` section exists.
    #[must_use]
    pub fn shared_state(mut self) -> Self {
        self.uses_redis = true;
        self
    }

    /// Conditional GETs: an `ETag` on every `200` and `304` for a matching
    /// `If-None-Match` (clients that pay for bytes).
    #[must_use]
    pub fn conditional_get(mut self) -> Self {
        self.conditional_get = true;
        self
    }

    /// gzip responses when the client accepts it.
    #[must_use]
    pub fn compression(mut self) -> Self {
        self.compression = true;
        self
    }

    /// The roles a `staff` BFF lets in (default [`DEFAULT_STAFF_ROLES`]).
    #[must_use]
    pub fn staff_roles(mut self, roles: &'static [&'static str]) -> Self {
        self.staff_roles = roles;
        self
    }

    /// The screens: every route registered with its OpenAPI operation
    /// (`OpenApiRouter::new().routes(routes!(handler))`), state [`Backbone`].
    #[must_use]
    pub fn screens(mut self, screens: fn() -> OpenApiRouter<Backbone>) -> Self {
        self.screens = screens;
        self
    }

    /// Anonymous, public operations (no security requirement in their
    /// document): served without authentication and without a caller's
    /// quota, with an `ETag` and `304`, and the handler's own
    /// `Cache-Control` (`public, max-age=.., stale-while-revalidate=..`)
    /// so a CDN can hold them. Only what is the same for everyone belongs
    /// here; a handler calls services on the BFF's own behalf
    /// (`CallCtx::on_own_behalf`). Every other screen's answer is forced
    /// `private`, whatever its handler said.
    #[must_use]
    pub fn public_screens(mut self, screens: fn() -> OpenApiRouter<Backbone>) -> Self {
        self.public_screens = screens;
        self
    }

    /// A layer between authentication and the screens: it sees the
    /// authenticated `Caller` (partner's rate limit). Later calls wrap
    /// earlier ones.
    #[must_use]
    pub fn inside_auth(mut self, hook: Hook<X>) -> Self {
        self.inside_auth.push(hook);
        self
    }

    /// A layer around authentication: it sees every request to a screen,
    /// refused ones too (admin's audit trail). Later calls wrap earlier ones.
    #[must_use]
    pub fn around_auth(mut self, hook: Hook<X>) -> Self {
        self.around_auth.push(hook);
        self
    }

    /// A layer around the whole app, edge included: it sees every request
    /// that reaches the BFF, those refused before routing too (unknown
    /// paths, `405`, `413`, shed load). Admin's audit trail records there.
    /// Later calls wrap earlier ones.
    #[must_use]
    pub fn around_edge(mut self, hook: EdgeHook<X>) -> Self {
        self.around_edge.push(hook);
        self
    }

    /// Work to run in the background while the BFF serves (see [`Task`]).
    #[must_use]
    pub fn task(mut self, task: Task<X>) -> Self {
        self.tasks.push(task);
        self
    }

    /// Changes the BFF's defaults (e.g. per-component budgets) before files
    /// and the environment are read.
    #[must_use]
    pub fn tune(mut self, tune: fn(&mut Config<X>)) -> Self {
        self.tune = Some(tune);
        self
    }

    /// A subcommand of the binary.
    #[must_use]
    pub fn command(
        mut self,
        name: &'static str,
        usage: &'static str,
        run: fn(&[String]) -> ExitCode,
    ) -> Self {
        self.commands.push(Command { name, usage, run });
        self
    }

    /// The registry entry.
    pub fn entry(&self) -> &'static bff_registry::Bff {
        self.entry
    }

    /// The services it calls, as the downstream crate names them.
    fn egress(&self) -> Vec<bff_downstream::Service> {
        self.entry.calls.iter().filter_map(|name| name.parse().ok()).collect()
    }

    /// The local-development defaults: everything runs against the mocks
    /// on their default ports.
    pub fn defaults(&self) -> Config<X> {
        let name = self.entry.name;
        let mut config = Config {
            server: ServerConfig {
                admin_port: self.entry.admin_port(),
                ..ServerConfig::local(self.entry.port)
            },
            auth: bff_auth::AuthConfig::local(name),
            downstream: DownstreamConfig::for_services(&self.egress()),
            compose: ComposeConfig { request_deadline_ms: self.deadline_ms, ..ComposeConfig::default() },
            rate_limit: self.rate_limit.clone(),
            redis: RedisConfig::default(),
            cache: CacheConfig::default(),
            session: SessionConfig::local(self.entry.port),
            own: X::default(),
            uses: Uses {
                redis: self.uses_redis,
                cache: self.uses_cache,
                session: self.entry.auth == Auth::Session,
            },
        };
        if let Some(tune) = self.tune {
            tune(&mut config);
        }
        config
    }

    /// Everything wrong with `config` for this BFF, each `section.key: problem`.
    pub fn problems(&self, config: &Config<X>) -> Vec<String> {
        let mut problems = config.problems(self.entry.name, self.entry.calls);
        if config.server.is_deployed() {
            let why = match config.server.environment {
                Some(crate::config::Environment::Production) => {
                    "server.environment (or BFF_ENV) is production".to_owned()
                }
                _ => format!("it listens on {}, not loopback, and no environment is set", config.server.host),
            };
            problems.extend(self.development_values(config).into_iter().map(|(key, what)| {
                let variable =
                    format!("{}__{}", self.entry.env_prefix, key.to_ascii_uppercase().replace('.', "__"));
                format!("{key}: {what}, and this BFF runs outside local development ({why}): set {variable}")
            }));
        }
        for name in self.entry.calls {
            if name.parse::<bff_downstream::Service>().is_err() {
                problems.push(format!(
                    "registry: {} calls `{name}`, which is not a known service",
                    self.entry.name
                ));
            }
        }
        problems
    }

    /// The settings of `config` that still hold a public development value
    /// (a key, a secret, the mock's issuer), as `(key, what)`.
    pub fn development_values(&self, config: &Config<X>) -> Vec<(&'static str, &'static str)> {
        let mut found = Vec::new();
        if config.auth.issuer == bff_auth::AuthConfig::default().issuer {
            found.push(("auth.issuer", "the identity mock's development issuer"));
        }
        if config.auth.exchange.has_development_secret() {
            found.push(("auth.exchange.client_secret", "the public development client secret"));
        }
        if config.uses.session && config.session.cookie_key.expose() == crate::session::DEV_COOKIE_KEY {
            found.push(("session.cookie_key", "the public development cookie key"));
        }
        if config.uses.session
            && config
                .session
                .previous_cookie_keys
                .iter()
                .any(|key| key.expose() == crate::session::DEV_COOKIE_KEY)
        {
            found.push(("session.previous_cookie_keys", "holds the public development cookie key"));
        }
        if config.uses.redis
            && config.redis.url.as_deref().is_some_and(|url| url.contains(LOCAL_REDIS_PASSWORD))
        {
            found.push(("redis.url", "the local stack's Redis password"));
        }
        if config.uses.cache && config.cache.encryption_key == bff_cache::DEV_ENCRYPTION_KEY {
            found.push(("cache.encryption_key", "the public development encryption key"));
        }
        found
    }

    /// Loads the configuration: defaults, `<PREFIX>_CONFIG`, `<PREFIX>__...`,
    /// and `BFF_ENV` for `server.environment` when that is not set; validated.
    /// (`BFF_ENV` is read here rather than by figment so that a bad value is
    /// named as `BFF_ENV`, not as a nested key.)
    pub fn load(&self) -> Result<Config<X>, ShellError> {
        let mut config = self.defaults().load(self.entry.env_prefix)?;
        if config.server.environment.is_none()
            && let Ok(environment) = std::env::var("BFF_ENV")
        {
            config.server.environment = Some(match environment.as_str() {
                "development" => crate::config::Environment::Development,
                "production" => crate::config::Environment::Production,
                other => {
                    return Err(ShellError::InvalidConfig(vec![format!(
                        "BFF_ENV is `{other}`: say development or production"
                    )]));
                }
            });
        }
        self.validate(config)
    }

    /// The defaults with `figment`'s values laid over them, validated: what
    /// [`Bff::load`] does with files and the environment, for tests.
    pub fn load_from(&self, figment: figment::Figment) -> Result<Config<X>, ShellError> {
        let defaults = self.defaults();
        let config = defaults.merged(defaults.figment().merge(figment))?;
        self.validate(config)
    }

    /// `config` if it has no problems.
    pub fn validate(&self, config: Config<X>) -> Result<Config<X>, ShellError> {
        let problems = self.problems(&config);
        if problems.is_empty() { Ok(config) } else { Err(ShellError::InvalidConfig(problems)) }
    }

    /// The OpenAPI document, as served on `/openapi.json` and committed as
    /// `openapi/<name>.json`.
    pub fn openapi(&self) -> OpenApi {
        let (_, doc) = self.routes();
        doc
    }

    /// The screens and, in session mode, the session routes, each split
    /// from its document; the documents merged and finished.
    fn routes(&self) -> (Routes, OpenApi) {
        let skeleton =
            openapi::document(self.entry.name, self.version, self.description, security_schemes(self.entry));
        let (screens, doc) = OpenApiRouter::with_openapi(skeleton).merge((self.screens)()).split_for_parts();
        let mut doc = openapi::rate_limited(doc);
        let (public_screens, public_doc) = (self.public_screens)().split_for_parts();
        doc = doc.merge_from(public_doc);
        let mut session = None;
        if self.entry.auth == Auth::Session {
            let (public, public_doc) = crate::session::public_routes().split_for_parts();
            let (private, private_doc) = crate::session::private_routes().split_for_parts();
            // Into the skeleton's document: it carries the BFF's `info`.
            doc = doc.merge_from(public_doc).merge_from(private_doc);
            session = Some((public, private));
        }
        (Routes { screens, public: public_screens, session }, openapi::finish(doc))
    }

    /// The complete app for `config`, and its backbone.
    pub async fn app(&self, config: &Config<X>) -> Result<(Router, Backbone), ShellError> {
        self.app_draining(config, Draining::default()).await
    }

    /// [`Bff::app`], whose `/readyz` answers `503` once `draining` starts.
    async fn app_draining(
        &self,
        config: &Config<X>,
        draining: Draining,
    ) -> Result<(Router, Backbone), ShellError> {
        let backbone = Backbone::new(self.entry.name, config).await?;
        let readiness = draining.guard(backbone.readiness());
        let (routes, doc) = self.routes();
        let mut screens = routes.screens;
        // Innermost: a key is claimed only for a request every other check
        // let through (see `idempotency`).
        let idempotency = crate::idempotency::Idempotency::from_document(
            &doc,
            self.entry.name,
            backbone.redis.clone(),
            backbone.cache.clone(),
            &config.server,
        );
        if !idempotency.is_empty() {
            screens = screens.route_layer(crate::idempotency::GuardWritesLayer(idempotency));
        }
        for hook in &self.inside_auth {
            screens = hook(&config.own, &backbone)?(screens);
        }
        // The caller's quota, then the scopes each screen's document
        // declares, checked just inside authentication (see `scopes`): one
        // layer for both (every layer costs each request a clone of the
        // stack below it).
        let checks = crate::scopes::CallerChecks {
            scopes: crate::scopes::RouteScopes::from_document(&doc),
            limiter: Arc::new(bff_ratelimit::Limiter::new(config.rate_limit.clone(), backbone.redis.clone())),
        };
        screens = screens.route_layer(middleware::from_fn_with_state(checks, crate::scopes::check_caller));
        let verifier = Arc::clone(&backbone.verifier);
        screens = match self.entry.auth {
            Auth::Bearer | Auth::Device => {
                screens.route_layer(middleware::from_fn_with_state(verifier, bff_auth::require_bearer))
            }
            Auth::ClientCredentials => screens
                .route_layer(middleware::from_fn(only_clients))
                .route_layer(middleware::from_fn_with_state(verifier, bff_auth::require_bearer)),
            Auth::Staff => screens.route_layer(middleware::from_fn_with_state(
                Staff { verifier, roles: self.staff_roles },
                require_staff,
            )),
            // The session check goes on below, around the session routes too.
            Auth::Session => screens,
        };
        for hook in &self.around_auth {
            screens = hook(&config.own, &backbone)?(screens);
        }
        if self.conditional_get {
            screens = screens.route_layer(middleware::from_fn(crate::conditional::conditional_get));
        }
        // Every screen answers an authenticated caller: nothing of it may sit
        // in a shared cache. Conditional GETs already said `private, no-cache`.
        screens = screens.route_layer(middleware::map_response(personal));
        if config.server.server_timing {
            screens = screens.route_layer(middleware::map_response(server_timing));
        }
        // Public screens: no authentication, no caller, the handler's own
        // (public) Cache-Control with an ETag; the edge still sheds load.
        let mut public = routes.public;
        if public.has_routes() {
            public = public.route_layer(middleware::from_fn(crate::conditional::conditional_public));
        }
        let public = public.with_state(backbone.clone());
        let mut app: Router = match routes.session {
            None => screens.with_state(backbone.clone()),
            Some((public, private)) => {
                let state = SessionState {
                    sealer: config.session.sealer()?,
                    config: Arc::new(config.session.clone()),
                    provider: Arc::clone(&backbone.identity),
                    verifier: Arc::clone(&backbone.verifier),
                    deployed: config.server.is_deployed(),
                    entry: self.entry,
                };
                let auth =
                    SessionAuth { sealer: state.sealer.clone(), verifier: Arc::clone(&backbone.verifier) };
                let origins = Origins(Arc::new(config.session.allowed_origins.clone()));
                let private = screens
                    .with_state(backbone.clone())
                    .merge(private.with_state(state.clone()))
                    // Layers run bottom-up: the session first, then the CSRF check.
                    .route_layer(middleware::from_fn_with_state(origins, bff_auth::session::require_csrf))
                    .route_layer(middleware::from_fn_with_state(auth, bff_auth::session::require_session));
                public.with_state(state).merge(private)
            }
        };
        app = app.merge(public).merge(openapi::route(&doc));
        let mut app = crate::edge(app, &config.server, readiness);
        for hook in &self.around_edge {
            app = hook(&config.own, &backbone)?(app);
        }
        if self.compression {
            // Outermost, after the ETag is taken.
            app = app.layer(tower_http::compression::CompressionLayer::new());
        }
        if self.entry.auth == Auth::Session {
            // Around the whole edge: preflights (OPTIONS) must be answered
            // before routing turns them into 405s.
            app = app.layer(crate::session::cors(&config.session));
        }
        Ok((app, backbone))
    }

    /// Serves the BFF with `config` on `listener` until `shutdown`, then
    /// lets in-flight requests finish within the grace period.
    pub async fn run(
        &self,
        config: Config<X>,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ShellError> {
        let config = self.validate(config)?;
        // Counted from the first request, whether or not an admin listener
        // serves the counts.
        bff_telemetry::metrics::install();
        if self.entry.auth == Auth::Session
            && config.session.cookie_key.expose() == crate::session::DEV_COOKIE_KEY
        {
            tracing::warn!(
                "sealing sessions with the public development key: set {}__SESSION__COOKIE_KEY",
                self.entry.env_prefix
            );
        }
        if config.server.is_deployed() && config.server.drain_secs == 0 {
            tracing::warn!(
                "server.drain_secs is 0: on SIGTERM this instance stops accepting at once, before a load \
                 balancer can take it out (set {}__SERVER__DRAIN_SECS)",
                self.entry.env_prefix
            );
        }
        let draining = Draining::default();
        let (app, backbone) = self.app_draining(&config, draining.clone()).await?;
        let mut tasks = tokio::task::JoinSet::new();
        for task in &self.tasks {
            tasks.spawn(task(&config.own, &backbone)?);
        }
        // Told to stop: not ready at once, still serving for the drain
        // period, then stop accepting (and the grace period for what runs).
        let drain = Duration::from_secs(config.server.drain_secs);
        let shutdown = async move {
            shutdown.await;
            draining.start();
            if !drain.is_zero() {
                tracing::info!(
                    drain_secs = drain.as_secs(),
                    "draining: /readyz answers 503 while load balancers take this instance out; still serving"
                );
                tokio::time::sleep(drain).await;
            }
        };
        let served = crate::serve(listener, app, &config.server, shutdown).await;
        tasks.abort_all();
        served?;
        Ok(())
    }

    /// [`Bff::run`], plus the admin listener (`GET /metrics`, see
    /// [`crate::admin`]) on `admin` when given, until the BFF has stopped.
    pub async fn run_with_admin(
        &self,
        config: Config<X>,
        listener: TcpListener,
        admin: Option<TcpListener>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ShellError> {
        let Some(admin) = admin else { return self.run(config, listener, shutdown).await };
        // A few connections suffice for a scraper and an operator.
        let admin_server = ServerConfig { max_connections: 64, ..config.server.clone() };
        // Metrics are served while the BFF drains: the admin listener stops
        // (aborted below) only once the BFF has.
        let admin_task = tokio::spawn(async move {
            crate::serve(admin, crate::admin::router(), &admin_server, std::future::pending()).await
        });
        let served = self.run(config, listener, shutdown).await;
        admin_task.abort();
        served
    }

    /// The whole `main` of the BFF's binary:
    ///
    /// ```text
    /// <bff>                 serve (configuration from <PREFIX>__...)
    /// <bff> openapi         print the OpenAPI document
    /// <bff> config          print the effective configuration (secrets redacted), or what is wrong with it
    /// <bff> <command> ...   the BFF's own commands
    /// ```
    ///
    /// Every failure is one line on stderr and a non-zero exit.
    pub fn main(self) -> ExitCode {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let name = self.entry.name;
        match args.first().map(String::as_str) {
            None | Some("serve") => {
                let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                    Ok(runtime) => runtime,
                    Err(error) => return fail(name, &error),
                };
                runtime.block_on(self.serve_from_env())
            }
            Some("openapi") => {
                print!("{}", openapi::to_json(&self.openapi()));
                ExitCode::SUCCESS
            }
            Some("config") => match self.load() {
                Ok(config) => {
                    let text = serde_json::to_string_pretty(&config.redacted()).unwrap_or_default();
                    println!("{text}");
                    ExitCode::SUCCESS
                }
                Err(error) => fail(name, &error),
            },
            Some("probe") => match self.load() {
                Ok(config) => match crate::probe::ready(config.server.port) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(why) => {
                        eprintln!("{name}: not ready: {why}");
                        ExitCode::FAILURE
                    }
                },
                Err(error) => fail(name, &error),
            },
            Some("-h" | "--help" | "help") => {
                println!("{}", self.usage());
                ExitCode::SUCCESS
            }
            Some(other) => match self.commands.iter().find(|c| c.name == other) {
                Some(command) => (command.run)(&args[1..]),
                None => {
                    eprintln!("{name}: unknown command `{other}`\n{}", self.usage());
                    ExitCode::FAILURE
                }
            },
        }
    }

    fn usage(&self) -> String {
        let name = self.entry.name;
        let prefix = self.entry.env_prefix;
        let mut usage = format!(
            "usage:\n  {name}                 serve (configuration from {prefix}_CONFIG and {prefix}__SECTION__KEY)\n  \
             {name} openapi         print the OpenAPI document\n  \
             {name} config          print the effective configuration (secrets redacted)\n  \
             {name} probe           exit 0 if the instance this configuration describes answers /readyz \
             with 200 (a container health check with no curl in the image)"
        );
        for command in &self.commands {
            usage.push_str(&format!("\n  {name} {} {}", command.name, command.usage));
        }
        usage
    }

    async fn serve_from_env(self) -> ExitCode {
        let name = self.entry.name;
        let config = match self.load() {
            Ok(config) => config,
            Err(error) => return fail(name, &error),
        };
        // Trace export: the standard OTEL_* variables (bff_telemetry::otel),
        // off without an endpoint; a malformed one refuses to start.
        let traces = match bff_telemetry::otel::ExportSettings::from_env(name, self.version)
            .and_then(|settings| settings.map(|s| bff_telemetry::otel::Export::start(&s)).transpose())
        {
            Ok(traces) => traces,
            Err(error) => return fail(name, &error),
        };
        bff_telemetry::init_with_traces(config.server.log_format, "info", traces.as_ref());
        let addr = SocketAddr::new(config.server.host, config.server.port);
        let listener = match TcpListener::bind(addr).await {
            Ok(listener) => listener,
            Err(error) => {
                eprintln!("{name}: cannot bind {addr}: {error}");
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(%addr, "{name} listening");
        let admin = if config.server.admin_port == 0 {
            None
        } else {
            let admin_addr = SocketAddr::new(config.server.admin_host, config.server.admin_port);
            match TcpListener::bind(admin_addr).await {
                Ok(admin) => {
                    tracing::info!(%admin_addr, "{name} metrics on http://{admin_addr}/metrics");
                    Some(admin)
                }
                Err(error) => {
                    eprintln!("{name}: cannot bind the admin listener {admin_addr}: {error}");
                    return ExitCode::FAILURE;
                }
            }
        };
        let served = self.run_with_admin(config, listener, admin, crate::shutdown_signal()).await;
        if let Some(traces) = traces {
            traces.shutdown(Duration::from_secs(2)).await;
        }
        match served {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => fail(name, &error),
        }
    }
}

/// The routers a BFF serves before layering.
struct Routes {
    screens: Router<Backbone>,
    public: Router<Backbone>,
    session: Option<(Router<SessionState>, Router<SessionState>)>,
}

fn fail(name: &str, error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("{name}: {error}");
    ExitCode::FAILURE
}

/// The security schemes of a mode, by the names handlers use in
/// `security((...))`: `bearer`, or `session` and `csrf`.
fn security_schemes(
    entry: &bff_registry::Bff,
) -> Vec<(&'static str, utoipa::openapi::security::SecurityScheme)> {
    let (name, client) = (entry.name, entry.client);
    let bearer = |what: &str| {
        vec![("bearer", openapi::bearer_jwt(&format!("{what} issued to `{client}` (audience `{name}`).")))]
    };
    match entry.auth {
        Auth::Bearer => bearer("An access token"),
        Auth::Device => bearer("An access token obtained with the device authorization grant (RFC 8628),"),
        Auth::ClientCredentials => vec![(
            "bearer",
            openapi::bearer_jwt(&format!(
                "A client-credentials access token: the caller is a machine acting for itself (audience `{name}`)."
            )),
        )],
        Auth::Staff => bearer("A staff access token"),
        Auth::Session => vec![
            (
                "session",
                openapi::cookie(
                    bff_auth::session::SESSION_COOKIE,
                    "The sealed session, set by `/auth/callback`.",
                ),
            ),
            (
                "csrf",
                openapi::header_key("X-CSRF-Token", "The session's CSRF token, from `GET /auth/session`."),
            ),
        ],
    }
}

/// `client-credentials` mode: only machines acting for themselves (the
/// subject is the client); a user's token, even for this audience, is `403`.
/// `Cache-Control: private, no-store` on a screen's answer unless it set its
/// own: the answer is someone's (web home, admin and partner answers had
/// none, so a shared cache in between could have served them to others).
async fn personal(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let public =
        headers.get(axum::http::header::CACHE_CONTROL).and_then(|v| v.to_str().ok()).is_some_and(|v| {
            v.split(',').any(|d| {
                matches!(d.trim().to_ascii_lowercase().as_str(), "public" | "s-maxage")
                    || d.trim().to_ascii_lowercase().starts_with("s-maxage=")
            })
        });
    if public {
        // An authenticated screen's answer is the caller's: never let a
        // shared cache keep it, whatever its handler said.
        tracing::error!("an authenticated screen marked its answer public; sent private, no-store");
        headers.insert(
            axum::http::header::CACHE_CONTROL,
            axum::http::HeaderValue::from_static("private, no-store"),
        );
    }
    headers
        .entry(axum::http::header::CACHE_CONTROL)
        .or_insert(axum::http::HeaderValue::from_static("private, no-store"));
    response
}

/// `Server-Timing` from a composed answer's components (`server.server_timing`).
async fn server_timing(mut response: Response) -> Response {
    let value = response.extensions().get::<bff_telemetry::Composition>().map(|c| c.server_timing());
    if let Some(value) = value.and_then(|v| axum::http::HeaderValue::from_str(&v).ok()) {
        response.headers_mut().insert(axum::http::HeaderName::from_static("server-timing"), value);
    }
    response
}

async fn only_clients(caller: Caller, request: Request, next: Next) -> Response {
    if caller.is_client() {
        next.run(request).await
    } else {
        tracing::info!(subject = %caller.subject, "user token on a client-credentials route");
        ApiError::new(ErrorCode::AuthForbidden)
            .with_detail("this API accepts client-credentials tokens only")
            .into_response()
    }
}

#[derive(Clone)]
struct Staff {
    verifier: Arc<JwtVerifier>,
    roles: &'static [&'static str],
}

/// `staff` mode. Invalid tokens are `401`; a valid token for another
/// audience, or without an allowed role, is `403`. The caller (when known)
/// rides on the response, so a layer around authentication (an audit
/// trail) can name them.
async fn require_staff(State(staff): State<Staff>, mut request: Request, next: Next) -> Response {
    match bff_auth::authenticate(&staff.verifier, request.headers()).await {
        Ok((caller, principal)) => {
            let allowed = staff.roles.iter().any(|role| caller.has_role(role));
            let mut response = if allowed {
                request.extensions_mut().insert(caller.clone());
                request.extensions_mut().insert(principal);
                next.run(request).await
            } else {
                ApiError::new(ErrorCode::AuthForbidden)
                    .with_detail(format!("this API requires one of the roles: {}", staff.roles.join(", ")))
                    .into_response()
            };
            response.extensions_mut().insert(caller);
            response
        }
        Err(error) => match error.foreign_subject().map(str::to_owned) {
            Some(subject) => {
                let mut response = ApiError::new(ErrorCode::AuthForbidden)
                    .with_detail("this token is not for this API")
                    .into_response();
                response.extensions_mut().insert(Caller {
                    subject,
                    client_id: None,
                    scopes: Vec::new(),
                    tenant: None,
                    roles: Vec::new(),
                    claims: Default::default(),
                });
                response
            }
            None => error.rejection().into_response(),
        },
    }
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderValue, header};
    use axum::response::{IntoResponse as _, Response};

    fn with_cache_control(value: &'static str) -> Response {
        let mut response = "body".into_response();
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(value));
        response
    }

    /// No authenticated screen's answer may sit in a shared cache, whatever
    /// its handler said; a private directive of its own is kept.
    #[tokio::test]
    async fn an_authenticated_answer_marked_public_is_sent_private() {
        for public in ["public, max-age=300", "max-age=60, s-maxage=600", "PUBLIC"] {
            let sent = super::personal(with_cache_control(public)).await;
            assert_eq!(sent.headers()[header::CACHE_CONTROL], "private, no-store", "{public}");
        }
        let own = super::personal(with_cache_control("private, no-cache")).await;
        assert_eq!(own.headers()[header::CACHE_CONTROL], "private, no-cache");
        let unsaid = super::personal("body".into_response()).await;
        assert_eq!(unsaid.headers()[header::CACHE_CONTROL], "private, no-store");
    }
}
