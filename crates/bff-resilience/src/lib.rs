//! Resilience primitives for calls from a BFF to its dependencies.
//!
//! Every downstream call runs through a [`Dependency`] guard, which applies,
//! in this order:
//!
//! 1. the **circuit breaker** ([`CircuitBreaker`]): while open, the call is not
//!    attempted (`circuit_open`), so a failing dependency gets room to recover;
//! 2. the **bulkhead** ([`Bulkhead`]): at most N calls in flight per
//!    dependency; the N+1st fails at once (`bulkhead_full`) instead of queuing,
//!    so one slow dependency cannot take every task of the BFF with it;
//! 3. the **timeout**: the smaller of the dependency's own timeout and what is
//!    left of the caller's [`Deadline`] (`timeout`).
//!
//! Each call gets one `downstream` span with `dependency`, `budget_ms` and
//! `outcome`.
//!
//! Why hand-rolled and not tower layers: the budget of each call comes from
//! the request's deadline, which a static `tower::timeout` cannot express, and
//! no well-kept crate offers an async breaker with both consecutive-failure
//! and failure-ratio trips. The bulkhead is a `tokio::sync::Semaphore`.

mod breaker;
mod bulkhead;
mod context;

use std::future::Future;
use std::time::Duration;

use bff_error::{Classify, Failure, ReasonCode};
use serde::{Deserialize, Serialize};
use tracing::Instrument;

pub use breaker::{BreakerConfig, BreakerState, CircuitBreaker};
pub use bulkhead::Bulkhead;
pub use context::{CallCtx, Deadline, Principal, ServiceTokens, TokenFuture, TokenUnavailable};

/// The resilience settings of one dependency, from configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DependencyPolicy {
    /// Longest a single call may take, in milliseconds, even when the
    /// request deadline would allow more.
    pub timeout_ms: u64,
    /// Calls allowed in flight at once (the bulkhead size).
    pub max_concurrent: usize,
    /// When the breaker opens and how it recovers.
    pub breaker: BreakerConfig,
}

impl Default for DependencyPolicy {
    fn default() -> Self {
        DependencyPolicy { timeout_ms: 120, max_concurrent: 64, breaker: BreakerConfig::default() }
    }
}

impl DependencyPolicy {
    /// A policy with the given timeout and the other settings at their defaults.
    pub fn with_timeout_ms(timeout_ms: u64) -> Self {
        DependencyPolicy { timeout_ms, ..DependencyPolicy::default() }
    }

    /// Problems that make this policy unusable, for start-up validation.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.timeout_ms == 0 {
            problems.push("timeout_ms must be greater than 0".to_owned());
        }
        if self.max_concurrent == 0 {
            problems.push("max_concurrent must be greater than 0".to_owned());
        }
        problems.extend(self.breaker.problems());
        problems
    }
}

/// How a finished call counts for the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The dependency did its job (including a well-formed "not found").
    Success,
    /// The dependency failed: 5xx, connection error, timeout, broken data.
    Failure,
    /// Says nothing about the dependency's health (e.g. we were rate limited).
    Neutral,
}

impl Verdict {
    /// The verdict for a failure reason: only reasons that say the dependency
    /// is unhealthy count against it.
    pub fn of(reason: ReasonCode) -> Verdict {
        match reason {
            ReasonCode::Timeout | ReasonCode::Unavailable | ReasonCode::InvalidData => Verdict::Failure,
            ReasonCode::NotFound => Verdict::Success,
            ReasonCode::CircuitOpen | ReasonCode::BulkheadFull | ReasonCode::RateLimited => Verdict::Neutral,
        }
    }
}

/// Why a guarded call produced no value.
#[derive(Debug)]
pub enum GuardError<E> {
    /// The guard refused or cut the call: open breaker, full bulkhead, or timeout.
    Rejected(Failure),
    /// The call ran and failed with its own error.
    Failed(E),
}

impl<E: Classify> Classify for GuardError<E> {
    fn failure(&self) -> Failure {
        match self {
            GuardError::Rejected(failure) => *failure,
            GuardError::Failed(error) => error.failure(),
        }
    }
}

/// One dependency's guard: its breaker, bulkhead and timeout, shared by every
/// call to it from this process.
#[derive(Debug)]
pub struct Dependency {
    name: String,
    timeout: Duration,
    breaker: CircuitBreaker,
    bulkhead: Bulkhead,
}

impl Dependency {
    /// A guard for the dependency `name` with `policy`.
    pub fn new(name: impl Into<String>, policy: &DependencyPolicy) -> Self {
        Dependency {
            name: name.into(),
            timeout: Duration::from_millis(policy.timeout_ms),
            breaker: CircuitBreaker::new(policy.breaker.clone()),
            bulkhead: Bulkhead::new(policy.max_concurrent),
        }
    }

    /// The dependency's name (internal: for logs and metrics, never for responses).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The breaker, for readiness reports and tests.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// The bulkhead, for readiness reports and tests.
    pub fn bulkhead(&self) -> &Bulkhead {
        &self.bulkhead
    }

    /// Runs `call` under this guard. `call` receives the time it may take;
    /// it is also enforced here, so a call that ignores it is still cut.
    pub async fn call<T, E, F, Fut>(&self, cx: &CallCtx, call: F) -> Result<T, GuardError<E>>
    where
        E: Classify,
        F: FnOnce(Duration) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let budget = cx.deadline().remaining().min(self.timeout);
        let span = tracing::info_span!(
            "downstream",
            dependency = %self.name,
            budget_ms = budget.as_millis() as u64,
            outcome = tracing::field::Empty,
        );
        let result = self.call_inner(budget, call).instrument(span.clone()).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(error) => error.failure().reason.as_str(),
        };
        span.record("outcome", outcome);
        span.in_scope(|| tracing::debug!(outcome, "downstream call finished"));
        result
    }

    async fn call_inner<T, E, F, Fut>(&self, budget: Duration, call: F) -> Result<T, GuardError<E>>
    where
        E: Classify,
        F: FnOnce(Duration) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let permit = self.breaker.try_acquire().map_err(|retry_after| {
            GuardError::Rejected(Failure { reason: ReasonCode::CircuitOpen, retry_after: Some(retry_after) })
        })?;
        let Some(_slot) = self.bulkhead.try_enter() else {
            permit.record(Verdict::Neutral);
            return Err(GuardError::Rejected(Failure::new(ReasonCode::BulkheadFull)));
        };
        if budget.is_zero() {
            permit.record(Verdict::Neutral);
            return Err(GuardError::Rejected(Failure::new(ReasonCode::Timeout)));
        }
        match tokio::time::timeout(budget, call(budget)).await {
            Ok(Ok(value)) => {
                permit.record(Verdict::Success);
                Ok(value)
            }
            Ok(Err(error)) => {
                permit.record(Verdict::of(error.failure().reason));
                Err(GuardError::Failed(error))
            }
            Err(_elapsed) => {
                permit.record(Verdict::Failure);
                Err(GuardError::Rejected(Failure::new(ReasonCode::Timeout)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx(ms: u64) -> CallCtx {
        CallCtx::new(bff_telemetry::RequestContext::detached(), Deadline::after(Duration::from_millis(ms)))
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_call_is_cut_at_the_smaller_of_timeout_and_deadline() {
        let dependency = Dependency::new("slow", &DependencyPolicy::with_timeout_ms(100));
        let seen_budget = std::sync::Mutex::new(Duration::ZERO);
        let seen = &seen_budget;
        let result: Result<(), _> = dependency
            .call(&cx(50), |budget| async move {
                *seen.lock().expect("lock") = budget;
                tokio::time::sleep(Duration::from_secs(10)).await;
                Ok::<_, Failure>(())
            })
            .await;
        assert!(matches!(result, Err(GuardError::Rejected(f)) if f.reason == ReasonCode::Timeout));
        assert_eq!(*seen_budget.lock().expect("lock"), Duration::from_millis(50));
    }

    #[tokio::test]
    async fn a_full_bulkhead_fails_fast_without_calling() {
        let policy = DependencyPolicy { max_concurrent: 1, ..DependencyPolicy::with_timeout_ms(1000) };
        let dependency = Dependency::new("narrow", &policy);
        let (entered_tx, entered_rx) = tokio::sync::oneshot::channel::<()>();
        let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
        let context = cx(1000);
        let first = dependency.call(&context, |_| async move {
            let _ = entered_tx.send(());
            let _ = release_rx.await;
            Ok::<_, Failure>(1)
        });
        let second = async {
            let _ = entered_rx.await;
            let called = std::sync::atomic::AtomicBool::new(false);
            let result = dependency
                .call(&context, |_| async {
                    called.store(true, std::sync::atomic::Ordering::SeqCst);
                    Ok::<_, Failure>(2)
                })
                .await;
            let _ = release_tx.send(());
            (result, called.load(std::sync::atomic::Ordering::SeqCst))
        };
        let (first, (second, called)) = tokio::join!(first, second);
        assert_eq!(first.ok(), Some(1));
        assert!(matches!(second, Err(GuardError::Rejected(f)) if f.reason == ReasonCode::BulkheadFull));
        assert!(!called, "the rejected call must not run");
    }

    #[tokio::test]
    async fn an_open_breaker_rejects_with_a_retry_hint() {
        let policy = DependencyPolicy {
            breaker: BreakerConfig { consecutive_failures: 2, ..BreakerConfig::default() },
            ..DependencyPolicy::with_timeout_ms(1000)
        };
        let dependency = Dependency::new("flaky", &policy);
        let context = cx(1000);
        for _ in 0..2 {
            let _ = dependency
                .call(&context, |_| async { Err::<(), _>(Failure::new(ReasonCode::Unavailable)) })
                .await;
        }
        let result = dependency.call(&context, |_| async { Ok::<_, Failure>(()) }).await;
        match result {
            Err(GuardError::Rejected(failure)) => {
                assert_eq!(failure.reason, ReasonCode::CircuitOpen);
                assert!(failure.retry_after.is_some());
            }
            other => panic!("expected circuit_open, got {other:?}"),
        }
    }
}
