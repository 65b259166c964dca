//! Resilience primitives for calls from a BFF to its dependencies.
//!
//! Every downstream call runs through a [`Dependency`] guard, which applies,
//! in this order:
//!
//! 1. the **circuit breaker** ([`CircuitBreaker`]): while open, the call is not
//!    attempted (`circuit_open`), so a failing dependency gets room to recover;
//! 2. the **bulkhead** ([`Bulkhead`]): at most N calls in flight per
//!    dependency, so one slow dependency cannot take every task of the BFF
//!    with it; the N+1st waits for a slot at most `max_wait_ms` and at most
//!    half of what is left of its deadline (a burst is absorbed), and fails
//!    (`bulkhead_full`) when none frees up in time, at once when it has no
//!    time to wait;
//! 3. the **timeout**: the smaller of the dependency's own timeout and what is
//!    left of the caller's [`Deadline`] (`timeout`), counted from when the
//!    call got its slot.
//!
//! What counts against the breaker is what says the dependency is unhealthy
//! ([`Verdict::of`]); time the BFF lost on its own is never charged to it:
//! waiting for a bulkhead slot, a timeout cut short by the request's own
//! deadline, a call cancelled because a sibling critical part failed.
//!
//! Around those, for **idempotent** calls only ([`Idempotency`]):
//!
//! * **retries** on transient failures (timeout, unavailable), with
//!   exponential backoff and jitter, never past the deadline, paid for from
//!   a retry budget so that retries cannot multiply an outage;
//! * **hedging** (opt-in per dependency): when an attempt is slower than the
//!   dependency's observed p95, a second one starts and the first answer
//!   wins; hedges are paid for from their own budget (5% by default).
//!
//! A `429` puts the dependency in a **cool-down** for its `Retry-After`
//! (1 s if absent, 60 s at most): calls fail at once with `rate_limited`
//! until it ends, so we stop hammering a service that asked for air.
//!
//! Each call gets one `downstream` span with `dependency`, `budget_ms`,
//! `outcome`, `attempts` and `hedged`, and is counted in the metrics
//! (`bff_telemetry::metrics`): its outcome and duration, the breaker's
//! state after it, bulkhead occupancy, retries spent and refused, hedges.
//!
//! Why hand-rolled and not tower layers: the budget of each call comes from
//! the request's deadline, which a static `tower::timeout` cannot express, and
//! no well-kept crate offers an async breaker that tells a sustained failure
//! from a blip (see [`CircuitBreaker`]). The bulkhead is a
//! `tokio::sync::Semaphore`.

mod adaptive;
mod breaker;
mod bulkhead;
mod deadline;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tower::retry::budget::{Budget as _, TpsBudget};

use bff_error::{Classify, Failure, ReasonCode};
use bff_telemetry::metrics::{
    BREAKER_STATE, DEPENDENCY_CALLS, DEPENDENCY_DURATION, DEPENDENCY_IN_FLIGHT, HEDGES, Held, RETRIES,
    THROTTLED,
};
use serde::{Deserialize, Serialize};
use tracing::Instrument;

pub use adaptive::{HedgePolicy, RetryPolicy};
pub use breaker::{BreakerConfig, BreakerState, CircuitBreaker};
pub use bulkhead::Bulkhead;
pub use deadline::Deadline;

/// The resilience settings of one dependency, from configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DependencyPolicy {
    /// Longest a single call may take, in milliseconds, even when the
    /// request deadline would allow more.
    pub timeout_ms: u64,
    /// Calls allowed in flight at once (the bulkhead size).
    pub max_concurrent: usize,
    /// Longest a call waits for a bulkhead slot when all are taken, in
    /// milliseconds (it also waits at most half of its remaining deadline).
    pub max_wait_ms: u64,
    /// When the breaker opens and how it recovers.
    pub breaker: BreakerConfig,
    /// Retries of idempotent calls.
    pub retry: RetryPolicy,
    /// Hedging of idempotent calls.
    pub hedge: HedgePolicy,
    /// Most calls per second this process sends the dependency (every
    /// attempt counts: retries and hedges too), with a burst of as many;
    /// 0 for no limit. A call over it is not sent: it fails as a `429`
    /// would (`rate_limited`), without counting against the breaker.
    pub max_rate_per_sec: u32,
}

impl Default for DependencyPolicy {
    fn default() -> Self {
        DependencyPolicy {
            timeout_ms: 120,
            max_concurrent: 64,
            // 200 cold requests at once on one core (RELIABILITY.md,
            // cold-burst, release build): 0 ms lost 35-68% of them, 50 ms
            // lost 3-9% in 4 runs of 10, 100 ms none in 10 of 10. The
            // half-of-the-remaining-deadline cap keeps it from eating a
            // call's own time.
            max_wait_ms: 100,
            breaker: BreakerConfig::default(),
            retry: RetryPolicy::default(),
            hedge: HedgePolicy::default(),
            max_rate_per_sec: 0,
        }
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
        problems.extend(adaptive::policy_problems(&self.retry, &self.hedge));
        problems
    }
}

/// Whether a call may be repeated: only idempotent calls are ever retried
/// or hedged. Writes are not, whatever the configuration says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// Safe to send twice (reads).
    Idempotent,
    /// Must be sent at most once (writes).
    NonIdempotent,
}

/// What a dependency's guard did, for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuardStats {
    /// Retries sent.
    pub retries: u64,
    /// Retries wanted but refused by the budget.
    pub retries_refused: u64,
    /// Hedges sent.
    pub hedges: u64,
    /// Calls refused during a 429 cool-down.
    pub cooled_down: u64,
    /// Attempts not sent: over the dependency's `max_rate_per_sec`.
    pub throttled: u64,
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
    /// The verdict for a failure: only reasons that say the dependency is
    /// unhealthy count against it, and a refusal of the caller's own request
    /// never does.
    pub fn of(failure: Failure) -> Verdict {
        if failure.refusal.is_some() {
            return Verdict::Neutral;
        }
        match failure.reason {
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

/// One dependency's guard: its breaker, bulkhead, timeout, cool-down,
/// retry and hedge budgets, shared by every call to it from this process.
pub struct Dependency {
    name: String,
    /// The name as a metrics label (cheap to clone).
    label: metrics::SharedString,
    timeout: Duration,
    max_wait: Duration,
    breaker: Arc<CircuitBreaker>,
    bulkhead: Bulkhead,
    retry: RetryPolicy,
    hedge: HedgePolicy,
    retry_budget: TpsBudget,
    hedge_budget: TpsBudget,
    latency: adaptive::LatencyRecord,
    cooldown_until: Mutex<Option<Instant>>,
    outbound: Option<governor::DefaultDirectRateLimiter>,
    throttled: AtomicU64,
    retries: AtomicU64,
    retries_refused: AtomicU64,
    hedges: AtomicU64,
    cooled_down: AtomicU64,
}

impl std::fmt::Debug for Dependency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dependency")
            .field("name", &self.name)
            .field("timeout", &self.timeout)
            .field("breaker", &self.breaker.state())
            .field("in_flight", &self.bulkhead.in_flight())
            .field("stats", &self.stats())
            .finish()
    }
}

/// What one call did, for its span.
#[derive(Debug, Default)]
struct Tally {
    attempts: u32,
    hedged: bool,
}

/// Longest cool-down a `Retry-After` can impose.
const MAX_COOLDOWN: Duration = Duration::from_secs(60);

impl Dependency {
    /// A guard for the dependency `name` with `policy` (validate the policy
    /// first: see [`DependencyPolicy::problems`]).
    pub fn new(name: impl Into<String>, policy: &DependencyPolicy) -> Self {
        // tower's budget asserts on out-of-range values; clamp so that an
        // unvalidated policy degrades instead of panicking.
        let retry_percent = policy.retry.budget_percent.clamp(0.0, 1000.0);
        let hedge_percent = policy.hedge.budget_percent.clamp(0.0, 1.0);
        let name = name.into();
        let label = metrics::SharedString::from(name.clone());
        let breaker = Arc::new(CircuitBreaker::new(policy.breaker.clone()));
        // The state gauge is read at each scrape, not only at calls: an
        // open period that ends while nothing calls shows as half-open, and
        // a guard that never called shows as closed from the start.
        // (The handle is looked up at each scrape: a guard made before the
        // recorder was installed still reports.)
        let watched = Arc::downgrade(&breaker);
        let dependency = label.clone();
        bff_telemetry::metrics::refresh_before_render(move || match watched.upgrade() {
            Some(breaker) => {
                metrics::gauge!(BREAKER_STATE, "dependency" => dependency.clone())
                    .set(breaker.state().as_gauge());
                true
            }
            None => false,
        });
        Dependency {
            label,
            name,
            timeout: Duration::from_millis(policy.timeout_ms),
            max_wait: Duration::from_millis(policy.max_wait_ms),
            breaker,
            bulkhead: Bulkhead::new(policy.max_concurrent),
            retry: policy.retry.clone(),
            hedge: policy.hedge.clone(),
            retry_budget: adaptive::budget(retry_percent, policy.retry.budget_min_per_sec.min(1_000_000)),
            hedge_budget: adaptive::budget(hedge_percent, 0),
            latency: adaptive::LatencyRecord::new(policy.hedge.percentile.clamp(0.5, 0.999)),
            cooldown_until: Mutex::new(None),
            outbound: std::num::NonZeroU32::new(policy.max_rate_per_sec)
                .map(|rate| governor::RateLimiter::direct(governor::Quota::per_second(rate))),
            throttled: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            retries_refused: AtomicU64::new(0),
            hedges: AtomicU64::new(0),
            cooled_down: AtomicU64::new(0),
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

    /// One guarded call's metrics: its outcome, duration and the breaker's
    /// state after it.
    fn record(&self, outcome: &'static str, elapsed: Duration) {
        let dependency = self.label.clone();
        metrics::counter!(DEPENDENCY_CALLS, "dependency" => dependency.clone(), "outcome" => outcome)
            .increment(1);
        metrics::histogram!(DEPENDENCY_DURATION, "dependency" => dependency.clone())
            .record(elapsed.as_secs_f64());
        metrics::gauge!(BREAKER_STATE, "dependency" => dependency).set(self.breaker.state().as_gauge());
    }

    /// Counters of retries, hedges and cool-down refusals so far.
    pub fn stats(&self) -> GuardStats {
        GuardStats {
            retries: self.retries.load(Ordering::Relaxed),
            retries_refused: self.retries_refused.load(Ordering::Relaxed),
            hedges: self.hedges.load(Ordering::Relaxed),
            cooled_down: self.cooled_down.load(Ordering::Relaxed),
            throttled: self.throttled.load(Ordering::Relaxed),
        }
    }

    /// Runs `call` under this guard. `call` receives the time one attempt
    /// may take (it is also enforced here, so a call that ignores it is
    /// still cut); it is called again for a retry or a hedge, which only
    /// happen for [`Idempotency::Idempotent`] calls.
    pub async fn call<T, E, F, Fut>(
        &self,
        deadline: Deadline,
        idempotency: Idempotency,
        call: F,
    ) -> Result<T, GuardError<E>>
    where
        E: Classify,
        F: Fn(Duration) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let span = tracing::debug_span!(
            "downstream",
            dependency = %self.name,
            budget_ms = deadline.remaining().min(self.timeout).as_millis() as u64,
            outcome = tracing::field::Empty,
            attempts = tracing::field::Empty,
            hedged = tracing::field::Empty,
        );
        let mut tally = Tally::default();
        let started = Instant::now();
        let result = self.run(deadline, idempotency, &call, &mut tally).instrument(span.clone()).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(error) => error.failure().reason.as_str(),
        };
        self.record(outcome, started.elapsed());
        span.record("outcome", outcome);
        span.record("attempts", tally.attempts);
        span.record("hedged", tally.hedged);
        span.in_scope(|| tracing::debug!(outcome, "downstream call finished"));
        result
    }

    async fn run<T, E, F, Fut>(
        &self,
        deadline: Deadline,
        idempotency: Idempotency,
        call: &F,
        tally: &mut Tally,
    ) -> Result<T, GuardError<E>>
    where
        E: Classify,
        F: Fn(Duration) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        if let Some(remaining) = self.cooling_down() {
            self.cooled_down.fetch_add(1, Ordering::Relaxed);
            return Err(GuardError::Rejected(Failure::retry_after(ReasonCode::RateLimited, remaining)));
        }
        let idempotent = idempotency == Idempotency::Idempotent;
        if idempotent {
            self.retry_budget.deposit();
        }
        let mut attempt = 1;
        loop {
            tally.attempts = attempt;
            let result = if idempotent && self.hedge.enabled {
                self.hedged_attempt(deadline, call, tally).await
            } else {
                self.attempt(deadline, call, attempt, false).await
            };
            let Err(error) = &result else { return result };
            let transient = matches!(error.failure().reason, ReasonCode::Timeout | ReasonCode::Unavailable);
            if !idempotent || !transient || attempt >= self.retry.max_attempts {
                return result;
            }
            let pause = adaptive::backoff(&self.retry, attempt);
            // A retry needs time left for itself, not just for the pause.
            if deadline.remaining() <= pause + Duration::from_millis(5) {
                return result;
            }
            if !self.retry_budget.withdraw() {
                self.retries_refused.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(RETRIES, "dependency" => self.label.clone(), "budget" => "refused")
                    .increment(1);
                tracing::debug!("retry budget exhausted; not retrying");
                return result;
            }
            self.retries.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(RETRIES, "dependency" => self.label.clone(), "budget" => "spent").increment(1);
            tokio::time::sleep(pause).await;
            attempt += 1;
        }
    }

    /// One attempt, plus a hedge if it is slower than usual.
    async fn hedged_attempt<T, E, F, Fut>(
        &self,
        deadline: Deadline,
        call: &F,
        tally: &mut Tally,
    ) -> Result<T, GuardError<E>>
    where
        E: Classify,
        F: Fn(Duration) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let number = tally.attempts;
        let Some(delay) = self.latency.hedge_delay(&self.hedge) else {
            return self.attempt(deadline, call, number, false).await;
        };
        self.hedge_budget.deposit();
        let first = self.attempt(deadline, call, number, false);
        tokio::pin!(first);
        tokio::select! {
            result = &mut first => return result,
            () = tokio::time::sleep(delay) => {}
        }
        if !self.hedge_budget.withdraw() {
            metrics::counter!(HEDGES, "dependency" => self.label.clone(), "budget" => "refused").increment(1);
            return first.await;
        }
        self.hedges.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(HEDGES, "dependency" => self.label.clone(), "budget" => "spent").increment(1);
        tally.hedged = true;
        let second = self.attempt(deadline, call, number, true);
        tokio::pin!(second);
        // The first success wins and the other attempt is dropped (cancelled).
        tokio::select! {
            result = &mut first => match result {
                Ok(value) => Ok(value),
                Err(_) => second.await,
            },
            result = &mut second => match result {
                Ok(value) => Ok(value),
                Err(_) => first.await,
            },
        }
    }

    /// One attempt: breaker, bulkhead, timeout. `number` counts retries
    /// from 1; `hedge` says it is the hedge sent beside attempt `number`.
    /// An attempt that is let through gets its own `attempt` span (a client
    /// span in a trace), the current span while `call` builds its request.
    async fn attempt<T, E, F, Fut>(
        &self,
        deadline: Deadline,
        call: &F,
        number: u32,
        hedge: bool,
    ) -> Result<T, GuardError<E>>
    where
        E: Classify,
        F: Fn(Duration) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        // Our own outbound limit first: what is over it is never sent, and
        // degrades like the dependency's own 429 would.
        if let Some(limiter) = &self.outbound
            && let Err(not_until) = limiter.check()
        {
            self.throttled.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(THROTTLED, "dependency" => self.label.clone()).increment(1);
            let wait = not_until
                .wait_time_from(governor::clock::Clock::now(&governor::clock::DefaultClock::default()));
            return Err(GuardError::Rejected(Failure::retry_after(ReasonCode::RateLimited, wait)));
        }
        let mut permit = self.breaker.try_acquire().map_err(|retry_after| {
            GuardError::Rejected(Failure::retry_after(ReasonCode::CircuitOpen, retry_after))
        })?;
        // A burst waits a little for a slot; half the remaining time at most,
        // so the call keeps the other half.
        let wait = self.max_wait.min(deadline.remaining() / 2);
        let Some(_slot) = self.bulkhead.enter(wait).await else {
            permit.record(Verdict::Neutral);
            return Err(GuardError::Rejected(Failure::new(ReasonCode::BulkheadFull)));
        };
        // The slot as the `bff_dependency_in_flight` gauge sees it, however
        // the attempt ends (a cancelled one too).
        let _occupied = Held::hold(metrics::gauge!(DEPENDENCY_IN_FLIGHT, "dependency" => self.label.clone()));
        permit.starting_now();
        let remaining = deadline.remaining();
        let budget = remaining.min(self.timeout);
        if budget.is_zero() {
            permit.record(Verdict::Neutral);
            return Err(GuardError::Rejected(Failure::new(ReasonCode::Timeout)));
        }
        // A timeout is the dependency's only when it had its whole timeout:
        // one cut short by the request's deadline is the request's.
        let cut_short = remaining < self.timeout;
        let timed_out = |verdict: Verdict| if cut_short { Verdict::Neutral } else { verdict };
        let span = tracing::debug_span!(
            "attempt",
            otel.kind = "client",
            dependency = %self.name,
            attempt = number,
            hedge,
            budget_ms = budget.as_millis() as u64,
            outcome = tracing::field::Empty,
        );
        let started = Instant::now();
        let future = span.in_scope(|| call(budget));
        let result = tokio::time::timeout(budget, future).instrument(span.clone()).await;
        span.record(
            "outcome",
            match &result {
                Ok(Ok(_)) => "ok",
                Ok(Err(error)) => error.failure().reason.as_str(),
                Err(_elapsed) => ReasonCode::Timeout.as_str(),
            },
        );
        match result {
            Ok(Ok(value)) => {
                permit.record(Verdict::Success);
                self.latency.record(started.elapsed());
                Ok(value)
            }
            Ok(Err(error)) => {
                let failure = error.failure();
                tracing::debug!(reason = %failure.reason, "attempt failed");
                if failure.reason == ReasonCode::RateLimited {
                    self.start_cooldown(failure.retry_after);
                }
                let verdict = Verdict::of(failure);
                permit.record(if failure.reason == ReasonCode::Timeout {
                    timed_out(verdict)
                } else {
                    verdict
                });
                Err(GuardError::Failed(error))
            }
            Err(_elapsed) => {
                permit.record(timed_out(Verdict::Failure));
                Err(GuardError::Rejected(Failure::new(ReasonCode::Timeout)))
            }
        }
    }

    fn cooling_down(&self) -> Option<Duration> {
        let until = *self.cooldown_until.lock().unwrap_or_else(|p| p.into_inner());
        until.and_then(|until| until.checked_duration_since(Instant::now())).filter(|d| !d.is_zero())
    }

    fn start_cooldown(&self, retry_after: Option<Duration>) {
        let pause = retry_after.unwrap_or(Duration::from_secs(1)).min(MAX_COOLDOWN);
        tracing::warn!(dependency = %self.name, pause_ms = pause.as_millis() as u64, "rate limited: cooling down");
        let until = Instant::now() + pause;
        let mut slot = self.cooldown_until.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none_or(|current| current < until) {
            *slot = Some(until);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU32;

    use super::*;

    fn deadline_in(ms: u64) -> Deadline {
        Deadline::after(Duration::from_millis(ms))
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_call_is_cut_at_the_smaller_of_timeout_and_deadline() {
        let dependency = Dependency::new("slow", &DependencyPolicy::with_timeout_ms(100));
        let seen_budget = std::sync::Mutex::new(Duration::ZERO);
        let seen = &seen_budget;
        let result: Result<(), _> = dependency
            .call(deadline_in(50), Idempotency::NonIdempotent, |budget| async move {
                *seen.lock().expect("lock") = budget;
                tokio::time::sleep(Duration::from_secs(10)).await;
                Ok::<_, Failure>(())
            })
            .await;
        assert!(matches!(result, Err(GuardError::Rejected(f)) if f.reason == ReasonCode::Timeout));
        assert_eq!(*seen_budget.lock().expect("lock"), Duration::from_millis(50));
    }

    #[tokio::test]
    async fn a_full_bulkhead_without_wait_fails_fast_without_calling() {
        let policy =
            DependencyPolicy { max_concurrent: 1, max_wait_ms: 0, ..DependencyPolicy::with_timeout_ms(1000) };
        let dependency = Dependency::new("narrow", &policy);
        let entered = tokio::sync::Notify::new();
        let release = tokio::sync::Notify::new();
        let context = deadline_in(1000);
        let first = dependency.call(context, Idempotency::NonIdempotent, |_| async {
            entered.notify_one();
            release.notified().await;
            Ok::<_, Failure>(1)
        });
        let second = async {
            entered.notified().await;
            let called = AtomicU32::new(0);
            let result = dependency
                .call(context, Idempotency::NonIdempotent, |_| async {
                    called.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, Failure>(2)
                })
                .await;
            release.notify_one();
            (result, called.load(Ordering::SeqCst))
        };
        let (first, (second, called)) = tokio::join!(first, second);
        assert_eq!(first.ok(), Some(1));
        assert!(matches!(second, Err(GuardError::Rejected(f)) if f.reason == ReasonCode::BulkheadFull));
        assert_eq!(called, 0, "the rejected call must not run");
    }

    #[tokio::test]
    async fn over_the_outbound_rate_nothing_is_sent_and_the_breaker_stays_closed() {
        let policy = DependencyPolicy { max_rate_per_sec: 3, ..DependencyPolicy::with_timeout_ms(1000) };
        let dependency = Dependency::new("limited", &policy);
        let sent = AtomicU32::new(0);
        let mut outcomes = Vec::new();
        for _ in 0..10 {
            let result = dependency
                .call(deadline_in(1000), Idempotency::Idempotent, |_| async {
                    sent.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, Failure>(())
                })
                .await;
            outcomes.push(match result {
                Ok(()) => "sent",
                Err(GuardError::Rejected(f)) if f.reason == ReasonCode::RateLimited => "throttled",
                Err(_) => "other",
            });
        }
        assert_eq!(sent.load(Ordering::SeqCst), 3, "a burst of the rate, then nothing: {outcomes:?}");
        assert_eq!(outcomes.iter().filter(|o| **o == "throttled").count(), 7);
        assert_eq!(dependency.stats().throttled, 7);
        assert_eq!(dependency.breaker().state(), BreakerState::Closed, "our own limit is not its failure");
    }

    #[tokio::test]
    async fn an_open_breaker_rejects_with_a_retry_hint() {
        let policy = DependencyPolicy {
            breaker: BreakerConfig { consecutive_failures: 2, sustained_ms: 0, ..BreakerConfig::default() },
            ..DependencyPolicy::with_timeout_ms(1000)
        };
        let dependency = Dependency::new("flaky", &policy);
        let context = deadline_in(1000);
        for _ in 0..2 {
            let _ = dependency
                .call(context, Idempotency::NonIdempotent, |_| async {
                    Err::<(), _>(Failure::new(ReasonCode::Unavailable))
                })
                .await;
        }
        let result =
            dependency.call(context, Idempotency::NonIdempotent, |_| async { Ok::<_, Failure>(()) }).await;
        match result {
            Err(GuardError::Rejected(failure)) => {
                assert_eq!(failure.reason, ReasonCode::CircuitOpen);
                assert!(failure.retry_after.is_some());
            }
            other => panic!("expected circuit_open, got {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_waits_for_a_slot_within_its_wait_and_half_its_budget() {
        let policy = DependencyPolicy {
            max_concurrent: 1,
            max_wait_ms: 50,
            ..DependencyPolicy::with_timeout_ms(1000)
        };
        let dependency = Dependency::new("narrow", &policy);
        let busy = |ms: u64| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok::<_, Failure>(ms)
        };
        // The second call waits 30 ms for the first to finish, then runs.
        let (first, second) = tokio::join!(
            dependency.call(deadline_in(1000), Idempotency::NonIdempotent, |_| busy(30)),
            dependency.call(deadline_in(1000), Idempotency::NonIdempotent, |_| busy(1)),
        );
        assert_eq!((first.ok(), second.ok()), (Some(30), Some(1)), "a burst of two is absorbed");

        // A slot that frees up after 60 ms is too late for a 50 ms wait...
        let (first, second) = tokio::join!(
            dependency.call(deadline_in(1000), Idempotency::NonIdempotent, |_| busy(60)),
            dependency.call(deadline_in(1000), Idempotency::NonIdempotent, |_| busy(1)),
        );
        assert!(first.is_ok());
        assert!(matches!(second, Err(GuardError::Rejected(f)) if f.reason == ReasonCode::BulkheadFull));

        // ...and a call with 40 ms left waits 20 ms at most, keeping the rest.
        let started = Instant::now();
        let (_, second) = tokio::join!(
            dependency.call(deadline_in(1000), Idempotency::NonIdempotent, |_| busy(30)),
            dependency.call(deadline_in(40), Idempotency::NonIdempotent, |_| busy(1)),
        );
        assert!(matches!(second, Err(GuardError::Rejected(f)) if f.reason == ReasonCode::BulkheadFull));
        assert_eq!(dependency.breaker().state(), BreakerState::Closed);
        assert!(started.elapsed() >= Duration::from_millis(30));
    }

    #[tokio::test(start_paused = true)]
    async fn a_timeout_cut_short_by_the_deadline_is_not_the_dependency_s_failure() {
        let policy = DependencyPolicy {
            breaker: BreakerConfig { consecutive_failures: 1, sustained_ms: 0, ..BreakerConfig::default() },
            ..DependencyPolicy::with_timeout_ms(100)
        };
        let dependency = Dependency::new("slowish", &policy);
        let slow = |_| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, Failure>(())
        };
        // 60 ms left of the request: the call is cut at 60, not at its 100.
        let result = dependency.call(deadline_in(60), Idempotency::NonIdempotent, slow).await;
        assert!(matches!(result, Err(GuardError::Rejected(f)) if f.reason == ReasonCode::Timeout));
        assert_eq!(
            dependency.breaker().state(),
            BreakerState::Closed,
            "the request's deadline, not the dependency"
        );
        // With its whole timeout, a timeout is the dependency's.
        let result = dependency.call(deadline_in(1000), Idempotency::NonIdempotent, slow).await;
        assert!(result.is_err());
        assert_eq!(dependency.breaker().state(), BreakerState::Open);
    }

    /// The breaker gauge is read at each scrape: closed from the start,
    /// open after a failure, half-open once the open period has passed,
    /// though nothing called in between.
    #[tokio::test(start_paused = true)]
    async fn the_breaker_gauge_follows_the_breaker_between_calls() {
        let policy = DependencyPolicy {
            breaker: BreakerConfig {
                consecutive_failures: 1,
                sustained_ms: 0,
                open_ms: 1_000,
                jitter: 0.0,
                ..BreakerConfig::default()
            },
            ..DependencyPolicy::with_timeout_ms(100)
        };
        let dependency = Dependency::new("gauge-watched", &policy);
        let gauge = || {
            let text = bff_telemetry::metrics::render();
            let line = text
                .lines()
                .find(|l| l.starts_with("bff_dependency_breaker_state{dependency=\"gauge-watched\"}"))
                .map(str::to_owned);
            line.and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        };
        assert_eq!(gauge(), Some(0.0), "closed before any call");
        let failing = |_| async { Err::<(), _>(Failure::new(ReasonCode::Unavailable)) };
        let _ = dependency.call(deadline_in(1000), Idempotency::NonIdempotent, failing).await;
        assert_eq!(gauge(), Some(2.0), "open after the failure");
        tokio::time::advance(Duration::from_millis(1_500)).await;
        assert_eq!(gauge(), Some(1.0), "half-open once the open period is over, with no call");
        drop(dependency);
        // The refresher of a dropped guard is forgotten (no panic, no update).
        let _ = bff_telemetry::metrics::render();
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_cancelled_by_its_caller_is_not_the_dependency_s_failure() {
        let policy = DependencyPolicy {
            breaker: BreakerConfig { consecutive_failures: 1, sustained_ms: 0, ..BreakerConfig::default() },
            ..DependencyPolicy::with_timeout_ms(100)
        };
        let dependency = Dependency::new("cancelled", &policy);
        let call = dependency.call(deadline_in(1000), Idempotency::NonIdempotent, |_| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, Failure>(())
        });
        // A sibling critical part failed: the request drops this call.
        assert!(tokio::time::timeout(Duration::from_millis(10), call).await.is_err());
        assert_eq!(dependency.breaker().state(), BreakerState::Closed);
        assert_eq!(dependency.bulkhead().in_flight(), 0, "its slot is free again");
    }

    async fn failing_then_ok(calls: &AtomicU32, failures: u32) -> Result<u32, Failure> {
        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
        if n <= failures { Err(Failure::new(ReasonCode::Unavailable)) } else { Ok(n) }
    }

    #[tokio::test(start_paused = true)]
    async fn idempotent_calls_are_retried_on_transient_failures_and_writes_never() {
        let dependency = Dependency::new("flaky", &DependencyPolicy::with_timeout_ms(1000));
        let calls = AtomicU32::new(0);
        let read =
            dependency.call(deadline_in(1000), Idempotency::Idempotent, |_| failing_then_ok(&calls, 1)).await;
        assert_eq!(read.ok(), Some(2), "one retry turned a failure into a success");

        let calls = AtomicU32::new(0);
        let write = dependency
            .call(deadline_in(1000), Idempotency::NonIdempotent, |_| failing_then_ok(&calls, 1))
            .await;
        assert!(write.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1, "a write is sent exactly once");
        assert_eq!(dependency.stats().retries, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn not_found_and_bad_data_are_not_retried() {
        let dependency = Dependency::new("exact", &DependencyPolicy::with_timeout_ms(1000));
        for reason in [ReasonCode::NotFound, ReasonCode::InvalidData, ReasonCode::RateLimited] {
            let calls = AtomicU32::new(0);
            let _ = dependency
                .call(deadline_in(1000), Idempotency::Idempotent, |_| async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err::<(), _>(Failure::new(reason))
                })
                .await;
            assert_eq!(calls.load(Ordering::SeqCst), 1, "{reason}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_retry_budget_stops_retries_in_a_total_outage() {
        let policy = DependencyPolicy {
            retry: RetryPolicy { budget_percent: 0.1, budget_min_per_sec: 0, ..RetryPolicy::default() },
            breaker: BreakerConfig {
                consecutive_failures: 10_000,
                minimum_calls: 10_000,
                ..BreakerConfig::default()
            },
            ..DependencyPolicy::with_timeout_ms(1000)
        };
        let dependency = Dependency::new("down", &policy);
        let calls = AtomicU32::new(0);
        for _ in 0..100 {
            let _ = dependency
                .call(deadline_in(1000), Idempotency::Idempotent, |_| failing_then_ok(&calls, u32::MAX))
                .await;
        }
        let sent = calls.load(Ordering::SeqCst);
        assert!((100..=111).contains(&sent), "100 calls and about 10% retries, not 200: {sent}");
        assert!(dependency.stats().retries_refused >= 89);
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_cools_the_dependency_down_for_its_retry_after() {
        let dependency = Dependency::new("busy", &DependencyPolicy::with_timeout_ms(1000));
        let calls = AtomicU32::new(0);
        let rate_limited = |_| async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(Failure::retry_after(ReasonCode::RateLimited, Duration::from_secs(3)))
        };
        let _ = dependency.call(deadline_in(1000), Idempotency::Idempotent, rate_limited).await;
        let refused = dependency.call(deadline_in(1000), Idempotency::Idempotent, rate_limited).await;
        match refused {
            Err(GuardError::Rejected(failure)) => {
                assert_eq!(failure.reason, ReasonCode::RateLimited);
                assert!(failure.retry_after.is_some_and(|d| d <= Duration::from_secs(3)));
            }
            other => panic!("expected a cool-down refusal, got {other:?}"),
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1, "no call during the cool-down");
        tokio::time::advance(Duration::from_secs(4)).await;
        let _ = dependency.call(deadline_in(1000), Idempotency::Idempotent, rate_limited).await;
        assert_eq!(calls.load(Ordering::SeqCst), 2, "calls resume after it");
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_attempt_is_hedged_and_the_fast_answer_wins() {
        let policy = DependencyPolicy {
            hedge: HedgePolicy {
                enabled: true,
                min_samples: 10,
                min_delay_ms: 15,
                budget_percent: 0.5,
                ..HedgePolicy::default()
            },
            ..DependencyPolicy::with_timeout_ms(10_000)
        };
        let dependency = Dependency::new("tail", &policy);
        let calls = AtomicU32::new(0);
        // Calls take 10 ms, except the 21st, which takes 5 s.
        let call = |_| async {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            let ms = if n == 21 { 5_000 } else { 10 };
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok::<_, Failure>(n)
        };
        for _ in 0..20 {
            dependency.call(deadline_in(60_000), Idempotency::Idempotent, call).await.expect("fast");
        }
        let started = Instant::now();
        let value =
            dependency.call(deadline_in(60_000), Idempotency::Idempotent, call).await.expect("hedged");
        assert_eq!(value, 22, "the hedge (call 22) answered first");
        assert!(started.elapsed() < Duration::from_millis(100));
        assert_eq!(dependency.stats().hedges, 1);
    }

    /// With the hedge budget empty, a slow call is not hedged, and the
    /// refusal is counted where an operator sees it.
    #[tokio::test(start_paused = true)]
    async fn a_hedge_the_budget_refuses_is_not_sent_and_is_counted() {
        bff_telemetry::metrics::install();
        let policy = DependencyPolicy {
            hedge: HedgePolicy {
                enabled: true,
                min_samples: 10,
                min_delay_ms: 15,
                budget_percent: 0.0,
                ..HedgePolicy::default()
            },
            ..DependencyPolicy::with_timeout_ms(10_000)
        };
        let dependency = Dependency::new("tail-refused", &policy);
        let calls = AtomicU32::new(0);
        let call = |_| async {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::time::sleep(Duration::from_millis(if n == 21 { 500 } else { 10 })).await;
            Ok::<_, Failure>(n)
        };
        for _ in 0..20 {
            dependency.call(deadline_in(60_000), Idempotency::Idempotent, call).await.expect("fast");
        }
        let value = dependency.call(deadline_in(60_000), Idempotency::Idempotent, call).await.expect("slow");
        assert_eq!(value, 21, "the slow call itself answered: no hedge");
        assert_eq!(dependency.stats().hedges, 0);
        let text = bff_telemetry::metrics::render();
        let refused = text.lines().find(|l| {
            l.starts_with("bff_dependency_hedges_total{")
                && l.contains("dependency=\"tail-refused\"")
                && l.contains("budget=\"refused\"")
        });
        assert_eq!(refused.and_then(|l| l.rsplit(' ').next()), Some("1"), "{text}");
    }
}
