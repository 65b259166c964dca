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
//! * `GET /openapi.json`: this API's OpenAPI document, public and not audited.
//! * `admin-bff verify-audit <file>`: checks a trail's hash chain.

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
use bff_server::{Backbone, Bff, Section, ShellError, Wrap};
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
    OpenApiRouter::new().routes(routes!(routes::user))
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
        // Around authentication, so denials are recorded too.
        .around_auth(audit_layer)
        .command("verify-audit", "<file>   check an audit trail's hash chain", verify_audit)
}

/// Opens the trail (verifying what is already in it) and records every request.
fn audit_layer(config: &AuditConfig, _: &Backbone) -> Result<Wrap, ShellError> {
    let settings = WriterSettings {
        queue_capacity: config.queue_capacity,
        denial_interval: std::time::Duration::from_millis(config.denial_interval_ms),
    };
    let log = AuditLog::open(&config.path, settings)
        .map_err(|e| ShellError::start("opening the audit trail", e))?;
    Ok(bff_server::route_layer(middleware::from_fn_with_state(Arc::new(log), audit_every_request)))
}

/// Audits every request after its response is made: a known caller's
/// record is on disk before the response leaves (no record, no response);
/// an unauthenticated one is counted and answered at once.
async fn audit_every_request(
    State(audit): State<Arc<AuditLog>>,
    matched: MatchedPath,
    params: RawPathParams,
    request: Request,
    next: Next,
) -> Response {
    let action = format!("{} {}", request.method(), matched.as_str());
    let target: Vec<&str> = params.iter().map(|(_, value)| value).collect();
    let target = (!target.is_empty()).then(|| target.join("/"));
    let caller_request_id = request
        .headers()
        .get(bff_telemetry::REQUEST_ID)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    let source = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|peer| peer.0.ip().to_string());
    let response = next.run(request).await;
    // Staff mode leaves the caller (when known) on the response, and every
    // problem its code: the record says who, and what was decided.
    let caller = response.extensions().get::<Caller>();
    let code = response.extensions().get::<ErrorCode>().copied();
    let entry = Entry {
        request_id: uuid::Uuid::new_v4().to_string(),
        caller_request_id,
        source,
        actor: caller.map(|c| c.subject.clone()),
        role: caller.and_then(|c| ROLES.iter().find(|role| c.has_role(role)).map(|r| (*r).to_owned())),
        action,
        target,
        outcome: Outcome::of(code),
        code: code.map(|code| code.as_str().to_owned()),
        status: response.status().as_u16(),
    };
    if entry.outcome == Outcome::Denied && entry.actor.is_none() {
        // Nobody we know: counted, never a synced line each (a flood of
        // these must not slow staff down or fill the disk).
        audit.count_denial(&entry);
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
