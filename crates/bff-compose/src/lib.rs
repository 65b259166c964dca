//! The composition engine: the heart of a BFF endpoint.
//!
//! A handler declares the parts of its screen on a [`Plan`] and runs them
//! together. Each part has a name (the key in `components` and in the
//! configuration), a call that produces it, and a role:
//!
//! * [`Plan::critical`]: without it the screen makes no sense. Its failure
//!   fails the request with the taxonomy error of its reason
//!   ([`bff_error::ApiError::from_failure`]): 504 on timeout, 404 on not
//!   found, 503 otherwise; the other parts are cancelled at once.
//! * [`Plan::optional`]: the screen can do without it, and the handler must
//!   say how: [`Optional::or_default`] / [`Optional::or`] substitute a value
//!   (`status: fallback`, `source: default`), [`Optional::omit`] leaves it out
//!   (`status: error`). An optional part with no decision does not compile.
//!
//! All parts run concurrently on the request's task (no spawning, so
//! cancellation and task-locals behave), each under a deadline that is the
//! earlier of the request deadline and the part's configured budget. The
//! outcome is an [`Envelope`]: `degraded`, per-component status with a
//! [`bff_error::ReasonCode`], and the view model.
//!
//! ```text
//! let (profile, cart, reco) = plan.run((
//!     plan.critical("profile", |cx| api.users.profile(cx, &user)),
//!     plan.critical("cart", |cx| api.cart.summary(cx, &user)),
//!     plan.optional("recommendations", |cx| api.reco.for_home(cx, &user)).or_default(),
//! )).await?;
//! Ok(plan.envelope(HomeVm::from_parts(profile, cart, reco)))
//! ```
//!
//! Architecture invariant: this crate knows nothing of HTTP clients or
//! downstream services. A part is any future returning `Result<T, E>` with
//! `E: Classify`; status codes are chosen only by `bff-error`.

mod context;
mod envelope;
mod parts;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts as RequestParts;
use bff_auth::Principal;
use bff_error::{ApiError, Classify};
use bff_resilience::Deadline;
use bff_telemetry::RequestContext;
use serde::{Deserialize, Serialize};

pub use context::CallCtx;
pub use envelope::{ComponentStatus, Envelope, Source};
pub use parts::{Critical, CriticalFailure, Omitted, Optional, Part, PartHandle, Parts, WithFallback};

/// A value computed ahead of the request, as read back: how old it is,
/// and whether it is past its freshness. See [`Plan::precomputed`].
#[derive(Debug, Clone, PartialEq)]
pub struct Precomputed<T> {
    /// The value.
    pub value: T,
    /// Since it was computed.
    pub age: Duration,
    /// Past its freshness: the last refresh failed or has not run.
    pub stale: bool,
}

/// Composition settings of one BFF, keyed by component name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ComposeConfig {
    /// The whole request's deadline, in milliseconds: no part, and no
    /// downstream call, runs past it.
    pub request_deadline_ms: u64,
    /// Per-component settings; a component not listed here is bounded by the
    /// request deadline and its dependency's timeout only.
    pub components: BTreeMap<String, ComponentConfig>,
}

impl Default for ComposeConfig {
    fn default() -> Self {
        ComposeConfig { request_deadline_ms: 300, components: BTreeMap::new() }
    }
}

impl ComposeConfig {
    /// Problems that make this configuration unusable.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.request_deadline_ms == 0 {
            problems.push("request_deadline_ms must be greater than 0".to_owned());
        }
        for (name, component) in &self.components {
            if component.budget_ms == 0 {
                problems.push(format!("components.{name}.budget_ms must be greater than 0"));
            }
            if component.budget_ms > self.request_deadline_ms {
                problems.push(format!(
                    "components.{name}.budget_ms ({}) exceeds request_deadline_ms ({})",
                    component.budget_ms, self.request_deadline_ms
                ));
            }
        }
        problems
    }
}

/// Settings of one component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentConfig {
    /// Latency budget of the component, in milliseconds.
    pub budget_ms: u64,
}

/// A small grace past a part's deadline before the engine itself cuts it.
/// Downstream calls honour the deadline on their own (and report `timeout`
/// to their breaker); this outer cut only catches futures that do not.
const ENGINE_GRACE: Duration = Duration::from_millis(20);

/// The composition of one request. Get it as a handler argument (it is an
/// extractor) and declare the screen's parts on it.
#[derive(Debug, Clone)]
pub struct Plan {
    cx: CallCtx,
    config: Arc<ComposeConfig>,
    report: Arc<Mutex<Vec<parts::Reported>>>,
    started: tokio::time::Instant,
}

impl Plan {
    /// A plan for `request`, starting its deadline now.
    pub fn new(request: RequestContext, config: Arc<ComposeConfig>) -> Self {
        let deadline = Deadline::after(Duration::from_millis(config.request_deadline_ms));
        Plan {
            cx: CallCtx::new(request, deadline),
            config,
            report: Arc::default(),
            started: tokio::time::Instant::now(),
        }
    }

    /// The request-level call context (whole deadline), for calls made
    /// outside of a part.
    pub fn cx(&self) -> &CallCtx {
        &self.cx
    }

    /// Declares a part the screen cannot do without.
    ///
    /// The part's future is boxed here: a screen's parts are large state
    /// machines (every guarded call, its hedge and its retries), and held
    /// inline they were copied whole at every layer that wrapped them
    /// (`memmove` was ~10% of a home request's CPU). One allocation per
    /// part moves pointers instead.
    pub fn critical<F, Fut, T, E>(&self, name: &'static str, call: F) -> Critical<Pin<Box<Fut>>>
    where
        F: FnOnce(CallCtx) -> Fut,
        Fut: Future<Output = Result<T, E>> + Send,
        E: Classify,
    {
        let (slot, cx) = self.slot(name, true);
        Critical::new(slot, Box::pin(call(cx)))
    }

    /// Declares a part the screen can do without; say how with
    /// [`Optional::or_default`], [`Optional::or`] or [`Optional::omit`].
    /// Its future is boxed, as [`Plan::critical`]'s.
    pub fn optional<F, Fut, T, E>(&self, name: &'static str, call: F) -> Optional<Pin<Box<Fut>>>
    where
        F: FnOnce(CallCtx) -> Fut,
        Fut: Future<Output = Result<T, E>> + Send,
        E: Classify,
    {
        let (slot, cx) = self.slot(name, false);
        Optional::new(slot, Box::pin(call(cx)))
    }

    /// Declares a part whose value is already at hand: computed ahead of
    /// the request (by a background job, for an expensive aggregation) and
    /// read from a cache, so no call is made for it here. Its status says
    /// how good it is:
    ///
    /// * fresh: `ok`;
    /// * past its freshness (a refresh failed): served anyway, `fallback`
    ///   from the `cache` with its age and the reason `unavailable`;
    /// * nothing computed yet (a cold start): `None`, `error` with the
    ///   reason `unavailable`; the screen shows it as missing.
    ///
    /// Parts are reported in declaration order, so declare it where it
    /// belongs among the others.
    pub fn precomputed<T>(&self, name: &'static str, found: Option<Precomputed<T>>) -> Option<T> {
        let (slot, _) = self.slot(name, false);
        let handle = parts::PartHandle::from_slot(slot);
        match found {
            Some(Precomputed { value, stale: false, .. }) => {
                handle.report(ComponentStatus::Ok);
                Some(value)
            }
            Some(Precomputed { value, age, stale: true }) => {
                handle.report(ComponentStatus::Fallback {
                    source: Source::Cache,
                    reason: bff_error::ReasonCode::Unavailable,
                    age_ms: Some(age.as_millis() as u64),
                });
                Some(value)
            }
            None => {
                handle.report(ComponentStatus::Error { reason: bff_error::ReasonCode::Unavailable });
                None
            }
        }
    }

    /// Runs all parts concurrently. Returns their values in declaration
    /// order, or the error of the first critical part that failed.
    ///
    /// The parts' futures are boxed here, once per request: a screen's
    /// parts are one state machine holding every downstream call, and left
    /// inline it makes the handler's own future (and, in debug builds, each
    /// poll frame above it) hundreds of kilobytes, enough to overflow a
    /// 2 MiB worker stack.
    pub async fn run<P: Parts>(&self, parts: P) -> Result<P::Output, ApiError> {
        Box::pin(parts.resolve_all()).await.map_err(|critical| {
            // Something that does not exist is an answer (a 404), not a
            // failure: a client asking for it must not write a WARN line.
            if critical.failure.reason == bff_error::ReasonCode::NotFound {
                tracing::debug!(component = critical.component, "critical component not found");
            } else {
                tracing::warn!(
                    component = critical.component,
                    reason = %critical.failure.reason,
                    "critical component failed; failing the request"
                );
            }
            ApiError::from_failure(critical.failure)
        })
    }

    /// Wraps the view model in the envelope with every part's status.
    pub fn envelope<T>(&self, data: T) -> Envelope<T> {
        let report = self.report.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let timings = report.iter().map(|r| r.elapsed).collect();
        let components = report.into_iter().map(|r| (r.name, r.status)).collect();
        Envelope::new(components, data).with_timings(timings)
    }

    fn slot(&self, name: &'static str, critical: bool) -> (parts::Slot, CallCtx) {
        let budget = self.config.components.get(name).map(|c| Duration::from_millis(c.budget_ms));
        let cx = match budget {
            Some(budget) => self.cx.with_budget(budget),
            None => self.cx.clone(),
        };
        let mut report = self.report.lock().unwrap_or_else(|p| p.into_inner());
        if report.iter().any(|existing| existing.name == name) {
            tracing::error!(component = name, "component declared twice in one plan");
        }
        report.push(parts::Reported { name, status: ComponentStatus::Pending, elapsed: None });
        let slot = parts::Slot {
            name,
            critical,
            index: report.len() - 1,
            deadline: cx.deadline(),
            report: Arc::clone(&self.report),
            started: self.started,
        };
        (slot, cx)
    }
}

impl<S> FromRequestParts<S> for Plan
where
    S: Send + Sync,
    Arc<ComposeConfig>: FromRef<S>,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut RequestParts, state: &S) -> Result<Self, Self::Rejection> {
        let request = RequestContext::from_request_parts(parts, state).await?;
        let mut plan = Plan::new(request, Arc::<ComposeConfig>::from_ref(state));
        // Set by the authentication middleware; unauthenticated routes have none.
        let principal = parts.extensions.get::<Arc<Principal>>().cloned();
        plan.cx = plan.cx.with_principal(principal);
        Ok(plan)
    }
}

#[cfg(test)]
mod tests;
