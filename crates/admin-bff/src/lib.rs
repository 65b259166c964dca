//! admin-bff: the Backend-for-Frontend of the back office.
//!
//! Callers are staff with a JWT for audience `admin-bff` and the role
//! `admin` or `support`. A valid token for another BFF (say, the mobile
//! app's) is `403`: the caller is known, just not allowed here. Personal
//! data is masked by role ([`routes::user`]), and **every** request,
//! allowed or denied, appends exactly one record to a tamper-evident audit
//! trail ([`audit`]) before its response leaves; if the record cannot be
//! written, the response is withheld (`503`).
//!
//! * `GET /admin/v1/users/{id}`: profile and recent orders.
//! * `GET /openapi.json`: this API's OpenAPI document ([`openapi`]), public and not audited.

pub mod audit;
pub mod routes;

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRef, MatchedPath, RawPathParams, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use bff_auth::{AuthConfig, Caller, JwtVerifier, Unauthenticated};
use bff_cache::CacheConfig;
use bff_compose::ComposeConfig;
use bff_downstream::DownstreamConfig;
use bff_error::{ApiError, ErrorCode};
use bff_redis::RedisConfig;
use bff_server::config::Validate;
use bff_server::{Backbone, BffConfig, ServerConfig};
use bff_telemetry::RequestContext;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::audit::{AuditLog, Entry, Outcome};

/// The environment prefix: `ADMIN_BFF__AUDIT__PATH=/var/lib/admin-bff/audit.jsonl`.
pub const ENV_PREFIX: &str = "ADMIN_BFF";

/// The roles allowed in, strongest first.
pub const ROLES: [&str; 2] = ["admin", "support"];

/// Where the audit trail goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// The JSON Lines file (created with its directory if missing).
    pub path: PathBuf,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig { path: PathBuf::from(".dev/admin-audit.jsonl") }
    }
}

/// Everything admin-bff can be configured with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// HTTP server.
    pub server: ServerConfig,
    /// Caller authentication and token exchange.
    pub auth: AuthConfig,
    /// Downstream services (the egress allow-list) and their guards.
    pub downstream: DownstreamConfig,
    /// Request deadline and per-component budgets.
    pub compose: ComposeConfig,
    /// Shared state across instances (optional: `$REDIS_URL`).
    pub redis: RedisConfig,
    /// Lifetimes and encryption of cached parts.
    pub cache: CacheConfig,
    /// The audit trail.
    pub audit: AuditConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server: ServerConfig::local(8083),
            auth: AuthConfig::local("admin-bff"),
            downstream: DownstreamConfig::default(),
            compose: ComposeConfig { request_deadline_ms: 400, ..ComposeConfig::default() },
            redis: RedisConfig::default(),
            cache: CacheConfig::default(),
            audit: AuditConfig::default(),
        }
    }
}

impl Validate for Config {
    fn problems(&self) -> Vec<String> {
        let mut problems = self.common_problems();
        if self.audit.path.as_os_str().is_empty() {
            problems.push("audit.path must be set".to_owned());
        }
        problems
    }
}

bff_server::bff_config!(Config);

/// Handler state: the shared backbone plus the audit trail.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Clients, verifier, composition settings.
    pub backbone: Backbone,
    /// The audit trail.
    pub audit: Arc<AuditLog>,
}

impl FromRef<AppState> for Backbone {
    fn from_ref(state: &AppState) -> Self {
        state.backbone.clone()
    }
}

impl FromRef<AppState> for Arc<ComposeConfig> {
    fn from_ref(state: &AppState) -> Self {
        Arc::clone(&state.backbone.compose)
    }
}

/// Authenticates staff. Invalid tokens are `401`; a valid token for another
/// audience, or without an allowed role, is `403`. The caller (when known)
/// rides on the response so the audit layer can name them.
async fn authenticate_staff(
    State(verifier): State<Arc<JwtVerifier>>,
    mut request: Request,
    next: Next,
) -> Response {
    match bff_auth::authenticate(&verifier, request.headers()).await {
        Ok((caller, principal)) => {
            let allowed = ROLES.iter().any(|role| caller.has_role(role));
            let mut response = if allowed {
                request.extensions_mut().insert(caller.clone());
                request.extensions_mut().insert(principal);
                next.run(request).await
            } else {
                ApiError::new(ErrorCode::AuthForbidden)
                    .with_detail("the admin API requires the admin or support role")
                    .into_response()
            };
            response.extensions_mut().insert(caller);
            response
        }
        Err(Unauthenticated::Invalid(error)) if error.foreign_subject().is_some() => {
            let mut response = ApiError::new(ErrorCode::AuthForbidden)
                .with_detail("this token is not for the admin API")
                .into_response();
            let subject = error.foreign_subject().unwrap_or_default().to_owned();
            response.extensions_mut().insert(Caller {
                subject,
                client_id: None,
                scopes: Vec::new(),
                tenant: None,
                roles: Vec::new(),
                segment: None,
            });
            response
        }
        Err(rejection) => rejection.into_api_error().into_response(),
    }
}

/// Appends one audit record per request, after the response is made and
/// before it leaves. No record, no response.
async fn audit_every_request(
    State(audit): State<Arc<AuditLog>>,
    context: RequestContext,
    matched: MatchedPath,
    params: RawPathParams,
    request: Request,
    next: Next,
) -> Response {
    let action = format!("{} {}", request.method(), matched.as_str());
    let target: Vec<&str> = params.iter().map(|(_, value)| value).collect();
    let target = (!target.is_empty()).then(|| target.join("/"));
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let caller = response.extensions().get::<Caller>();
    let entry = Entry {
        request_id: context.request_id,
        actor: caller.map(|c| c.subject.clone()),
        role: caller.and_then(|c| ROLES.iter().find(|role| c.has_role(role)).map(|r| (*r).to_owned())),
        action,
        target,
        outcome: match status {
            401 | 403 => Outcome::Denied,
            s if s >= 500 => Outcome::Failed,
            _ => Outcome::Allowed,
        },
        status,
    };
    match audit.append(entry) {
        Ok(_) => response,
        Err(error) => {
            tracing::error!(%error, "audit record not written; withholding the response");
            ApiError::new(ErrorCode::DependencyUnavailable).into_response()
        }
    }
}

/// The admin routes, each routed together with its OpenAPI operation.
fn admin_routes() -> OpenApiRouter<AppState> {
    let doc = bff_server::openapi::document(
        "admin-bff",
        env!("CARGO_PKG_VERSION"),
        "The BFF of the back office. Callers are staff with a JWT for audience `admin-bff` and the \
         role `admin` or `support`; other callers get `403`. Personal data is masked by role, and \
         every request, allowed or denied, is recorded in a tamper-evident audit trail first (if \
         the record cannot be written, the answer is `503`).",
        [("bearer", bff_server::openapi::bearer_jwt("A staff access token (audience `admin-bff`)."))],
    );
    OpenApiRouter::with_openapi(doc).routes(routes!(routes::user))
}

/// admin-bff's OpenAPI document, as served on `/openapi.json` and committed
/// as `openapi/admin-bff.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    bff_server::openapi::finish(admin_routes().into_openapi())
}

/// The complete app: admin routes behind auditing, authentication and the edge stack.
pub fn app(state: AppState, server: &ServerConfig) -> Router {
    let readiness = state.backbone.readiness();
    let authenticate =
        middleware::from_fn_with_state(Arc::clone(&state.backbone.verifier), authenticate_staff);
    let audit = middleware::from_fn_with_state(Arc::clone(&state.audit), audit_every_request);
    let (routes, doc) = admin_routes().split_for_parts();
    let routes = routes
        // Layers run bottom-up: audit wraps authentication, so denials are recorded too.
        .route_layer(authenticate)
        .route_layer(audit)
        .with_state(state)
        .merge(bff_server::openapi::route(&bff_server::openapi::finish(doc)));
    bff_server::edge(routes, server, readiness)
}

/// Serves admin-bff on `listener` until `shutdown`.
pub async fn run(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let backbone = Backbone::new("admin-bff", config.sections()).await?;
    let audit = Arc::new(AuditLog::open(&config.audit.path)?);
    let app = app(AppState { backbone, audit }, &config.server);
    let grace = std::time::Duration::from_secs(config.server.shutdown_grace_secs);
    bff_server::serve(listener, app, shutdown, grace).await?;
    Ok(())
}
