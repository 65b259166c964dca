//! admin-bff: the Backend-for-Frontend of the back office.
//!
//! Callers are staff with a JWT for audience `admin-bff` and the role
//! `admin` or `support` (the shell's `staff` mode). A valid token for
//! another BFF (say, the mobile app's) is `403`: the caller is known, just
//! not allowed here. Personal data is masked by role ([`routes::user`]),
//! and **every** request to a screen is audited ([`audit`]): a request by
//! a known caller appends one record to a tamper-evident trail before its
//! response leaves (if the record cannot be written, the response is
//! withheld: `503`); requests nobody authenticated are counted into one
//! record per source, action and code per interval, so a flood of them
//! costs the trail a few lines, not one synced line each. The trail's
//! settings are this BFF's own section, [`AuditConfig`].
//!
//! * `GET /admin/v1/users/{id}`: profile and recent orders.
//! * `GET /admin/v1/users?query=`, `POST /admin/v1/users/{id}/lock|unlock`,
//!   `GET /admin/v1/audit`: search, account actions (admins, with a reason
//!   that is audited), the trail's queries ([`actions`]).
//! * `GET /openapi.json`: this API's OpenAPI document, public and not audited.
//! * `admin-bff verify-audit <file>`: checks a trail's hash chain.

pub mod actions;
pub mod audit;
pub mod routes;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, MatchedPath, RawPathParams, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use bff_auth::Caller;
use bff_error::{ApiError, ErrorCode};
use bff_server::shell::DEFAULT_STAFF_ROLES;
use bff_server::{Backbone, Bff, Section, ShellError};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::audit::{AuditLog, Entry, Outcome, WriterSettings};

/// This BFF's registry entry: port 8083, staff tokens.
pub const ENTRY: &bff_registry::Bff = bff_registry::entry("admin-bff");

/// The roles allowed in, strongest first.
pub const ROLES: &[&str] = DEFAULT_STAFF_ROLES;

/// Where the audit trail goes: the `audit` section
/// (`ADMIN_BFF__AUDIT__PATH=/var/lib/admin-bff/audit.jsonl`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// The JSON Lines file (created with its directory if missing).
    pub path: PathBuf,
    /// Records waiting for the writer, at most; past it a request fails
    /// closed (`503`) rather than going unaudited.
    pub queue_capacity: usize,
    /// How often the counts of unauthenticated requests are written, in
    /// milliseconds (a crash loses at most this much of them).
    pub denial_interval_ms: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            path: PathBuf::from(".dev/admin-audit.jsonl"),
            queue_capacity: 1024,
            denial_interval_ms: 1000,
        }
    }
}

impl Section for AuditConfig {
    const KEY: &'static str = "audit";

    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.path.as_os_str().is_empty() {
            problems.push("path must be set".to_owned());
        }
        if self.queue_capacity == 0 {
            problems.push("queue_capacity must be greater than 0".to_owned());
        }
        if self.denial_interval_ms == 0 {
            problems.push("denial_interval_ms must be greater than 0".to_owned());
        }
        problems
    }
}

/// The admin routes, each routed together with its OpenAPI operation.
fn screens() -> OpenApiRouter<Backbone> {
    OpenApiRouter::new()
        .routes(routes!(routes::user))
        .routes(routes!(actions::search_users))
        .routes(routes!(actions::lock_user))
        .routes(routes!(actions::unlock_user))
        .routes(routes!(actions::audit))
}

/// admin-bff.
pub fn bff() -> Bff<AuditConfig> {
    Bff::new(ENTRY, env!("CARGO_PKG_VERSION"))
        .describe(
            "The BFF of the back office. Callers are staff with a JWT for audience `admin-bff` and the \
             role `admin` or `support`; other callers get `403`. Personal data is masked by role, and \
             every request, allowed or denied, is recorded in a tamper-evident audit trail first (if \
             the record cannot be written, the answer is `503`).",
        )
        .deadline_ms(400)
        .staff_roles(ROLES)
        .screens(screens)
        // The audit query reads the trail this process writes.
        .inside_auth(|config: &AuditConfig, _: &Backbone| {
            let path = actions::TrailPath(config.path.clone());
            Ok(bff_server::route_layer(axum::Extension(path)))
        })
        // Around authentication: says which action and target a request
        // to a screen was, for the record.
        .around_auth(|_, _| Ok(bff_server::route_layer(middleware::from_fn(name_the_action))))
        // Around the edge: every request that reaches us is recorded, those
        // refused before routing (unknown paths, 405, 413) too.
        .around_edge(audit_layer)
        .command("verify-audit", "<file>   check an audit trail's hash chain", verify_audit)
}

/// What a screen's route says about a request, for its audit record.
#[derive(Debug, Clone)]
struct Action {
    /// `METHOD /route/{param}`.
    action: String,
    /// The path parameters, joined by `/`.
    target: Option<String>,
}

/// Puts the matched route and its parameters on the response.
async fn name_the_action(
    matched: MatchedPath,
    params: RawPathParams,
    request: Request,
    next: Next,
) -> Response {
    let action = format!("{} {}", request.method(), matched.as_str());
    let target: Vec<&str> = params.iter().map(|(_, value)| value).collect();
    let target = (!target.is_empty()).then(|| target.join("/"));
    let mut response = next.run(request).await;
    response.extensions_mut().insert(Action { action, target });
    response
}

/// Paths that are not the back office's business: probes and the public
/// document. Not audited.
const UNAUDITED: &[&str] = &["/healthz", "/readyz", "/openapi.json"];

/// Opens the trail (verifying what is already in it) and records every request.
fn audit_layer(config: &AuditConfig, _: &Backbone) -> Result<bff_server::WrapApp, ShellError> {
    let settings = WriterSettings {
        queue_capacity: config.queue_capacity,
        denial_interval: std::time::Duration::from_millis(config.denial_interval_ms),
    };
    let log = AuditLog::open(&config.path, settings)
        .map_err(|e| ShellError::start("opening the audit trail", e))?;
    let layer = middleware::from_fn_with_state(Arc::new(log), audit_every_request);
    Ok(Box::new(move |app| app.layer(layer)))
}

/// Audits every request after its response is made: a known caller's
/// record is on disk before the response leaves (no record, no response);
/// one whose caller nobody established (no or a bad token, or refused by
/// the edge before authentication) is counted and answered at once.
async fn audit_every_request(State(audit): State<Arc<AuditLog>>, request: Request, next: Next) -> Response {
    if UNAUDITED.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let caller_request_id = request
        .headers()
        .get(bff_telemetry::REQUEST_ID)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    let source = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|peer| peer.0.ip().to_string());
    let response = next.run(request).await;
    // Staff mode leaves the caller (when known) on the response, every
    // problem its code, and a screen's route its action: the record says
    // who, what, and what was decided.
    let caller = response.extensions().get::<Caller>();
    let code = response.extensions().get::<ErrorCode>().copied();
    let mut outcome = Outcome::of(code);
    let (action, target) = match response.extensions().get::<Action>() {
        Some(named) => (named.action.clone(), named.target.clone()),
        // Refused before routing: the action is the method, the target the
        // path as sent (bounded by the trail), and any problem (an unknown
        // path too) a rejection of the request.
        None => {
            if code.is_some() && outcome == Outcome::Allowed {
                outcome = Outcome::Rejected;
            }
            (format!("{method} (unrouted)"), Some(path))
        }
    };
    let entry = Entry {
        request_id: uuid::Uuid::new_v4().to_string(),
        caller_request_id,
        source,
        actor: caller.map(|c| c.subject.clone()),
        role: caller.and_then(|c| ROLES.iter().find(|role| c.has_role(role)).map(|r| (*r).to_owned())),
        action,
        target,
        outcome,
        code: code.map(|code| code.as_str().to_owned()),
        status: response.status().as_u16(),
        reason: response.extensions().get::<audit::Reason>().map(|reason| reason.0.clone()),
    };
    if entry.actor.is_none() {
        // Nobody we know: counted, never a synced line each (a flood of
        // these must not slow staff down or fill the disk).
        audit.count_anonymous(&entry);
        return response;
    }
    let audit_id = entry.request_id.clone();
    match audit.record(entry).await {
        Ok(()) => {
            tracing::debug!(%audit_id, "audited");
            response
        }
        Err(error) => {
            tracing::error!(%error, %audit_id, "audit record not written; withholding the response");
            ApiError::new(ErrorCode::DependencyUnavailable)
                .with_detail("the audit trail cannot record this request now; nothing was answered")
                .into_response()
        }
    }
}

/// `admin-bff verify-audit <file>`.
fn verify_audit(args: &[String]) -> ExitCode {
    let Some(path) = args.first() else {
        eprintln!("usage: admin-bff verify-audit <file>");
        return ExitCode::FAILURE;
    };
    match audit::verify(std::path::Path::new(path)) {
        Ok((records, last)) => {
            println!("ok: {records} records, chain intact, last hash {last}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("admin-bff: {error}");
            ExitCode::FAILURE
        }
    }
}
