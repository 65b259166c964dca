//! A circuit breaker that opens on a **sustained** failure rate, not on a
//! blip, and whose open periods grow while the dependency keeps failing.
//!
//! Outcomes go into a sliding window of time buckets ([`BUCKETS`] of
//! `window_ms / BUCKETS` each), filed under the time the call **started**:
//! the timeouts of every call caught by one 50 ms hiccup land in the one or
//! two buckets of the hiccup, whenever they are reported. The breaker opens
//! when, at the report of a failure,
//!
//! 1. the window is bad enough: at least `minimum_calls` calls with a
//!    failure share of at least `failure_ratio`, or `consecutive_failures`
//!    failures in a row (for low traffic, where the window stays small); and
//! 2. it has been bad for long enough: the newest buckets that hold any
//!    calls are all "bad" (failure share ≥ `failure_ratio`) over at least
//!    `sustained_ms`, counted from the start of the oldest bad bucket of
//!    that run to the end of the newest. One burst of timeouts is one run of
//!    one or two buckets, however many calls it caught.
//!
//! Open, it refuses calls for an open period that starts at `open_ms` and
//! doubles each time a probe finds the dependency still failing, up to
//! `max_open_ms`, each period up to `jitter` shorter at random (so
//! instances that opened together do not probe together). Then it is
//! half-open: `half_open_probes` calls go through; when that many have
//! succeeded it closes (and the next open period starts at `open_ms`
//! again), and one failure reopens it.
//!
//! Why not a crate: no well-kept async breaker offers a time-based window
//! keyed by start time with a sustained-run condition; resilience4j's
//! design (sliding window, minimum calls, failure rate, half-open probes)
//! is the model, the sustained condition is ours.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::Verdict;

/// When a breaker opens and how it recovers. The defaults and the
/// measurements behind them are in `RELIABILITY.md`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// Failures in a row that make the window bad enough whatever its
    /// volume (still subject to `sustained_ms`).
    pub consecutive_failures: u32,
    /// The failure share, within the window and within a bucket, that
    /// counts as bad.
    pub failure_ratio: f64,
    /// Calls the window must hold before its failure share counts (so one
    /// failure out of two calls at night does not trip it).
    pub minimum_calls: u32,
    /// Length of the sliding window, in milliseconds.
    pub window_ms: u64,
    /// How long the dependency must have been failing, without a healthy
    /// stretch, before the breaker opens: what tells an outage from a blip.
    /// `0` opens as soon as the window is bad enough.
    pub sustained_ms: u64,
    /// The first open period, in milliseconds.
    pub open_ms: u64,
    /// The longest open period: each failed probe doubles the period up to
    /// this. It bounds how long a recovered dependency waits for traffic.
    pub max_open_ms: u64,
    /// Each open period is shortened by up to this share, at random.
    pub jitter: f64,
    /// Probe calls let through when half-open; this many successes close it.
    pub half_open_probes: u32,
}

impl Default for BreakerConfig {
    /// Chosen with the fault-scenario suite (`RELIABILITY.md`): a 200 ms
    /// blip never opens it, 1 s bad / 1 s good flapping does not either,
    /// a hard-down dependency is cut off within about 1.5 s, and recovers
    /// within a second of health returning.
    fn default() -> Self {
        BreakerConfig {
            consecutive_failures: 5,
            failure_ratio: 0.5,
            minimum_calls: 20,
            window_ms: 3_000,
            sustained_ms: 1_500,
            open_ms: 200,
            max_open_ms: 800,
            jitter: 0.2,
            half_open_probes: 3,
        }
    }
}

impl BreakerConfig {
    /// Problems that make this configuration unusable.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.consecutive_failures == 0 {
            problems.push("breaker.consecutive_failures must be at least 1".to_owned());
        }
        if !(self.failure_ratio > 0.0 && self.failure_ratio <= 1.0) {
            problems.push("breaker.failure_ratio must be in (0, 1]".to_owned());
        }
        if self.window_ms < BUCKETS as u64 {
            problems.push(format!("breaker.window_ms must be at least {BUCKETS}"));
        }
        if self.sustained_ms + self.bucket_ms() > self.window_ms {
            problems.push(format!(
                "breaker.sustained_ms must be at most window_ms minus one bucket ({} ms): a longer run \
                 cannot fit in the window, and the breaker would never open",
                self.window_ms.saturating_sub(self.bucket_ms())
            ));
        }
        if self.open_ms == 0 {
            problems.push("breaker.open_ms must be greater than 0".to_owned());
        }
        if self.max_open_ms < self.open_ms {
            problems.push("breaker.max_open_ms must be at least open_ms".to_owned());
        }
        if !(0.0..1.0).contains(&self.jitter) {
            problems.push("breaker.jitter must be in [0, 1)".to_owned());
        }
        if self.half_open_probes == 0 {
            problems.push("breaker.half_open_probes must be at least 1".to_owned());
        }
        problems
    }

    fn bucket_ms(&self) -> u64 {
        (self.window_ms / BUCKETS as u64).max(1)
    }
}

/// The externally visible state of a breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls flow; outcomes are counted.
    Closed,
    /// Calls are refused until the open period ends.
    Open,
    /// A limited number of probe calls decide whether to close again.
    HalfOpen,
}

impl BreakerState {
    /// The state as a breaker-state gauge reads it: 0 closed, 1 half-open,
    /// 2 open (`bff_dependency_breaker_state`, `bff_redis_breaker_state`).
    pub fn as_gauge(self) -> f64 {
        match self {
            BreakerState::Closed => 0.0,
            BreakerState::HalfOpen => 1.0,
            BreakerState::Open => 2.0,
        }
    }
}

/// Buckets of the sliding window.
const BUCKETS: usize = 20;

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    epoch: u64,
    successes: u32,
    failures: u32,
}

impl Bucket {
    fn calls(&self) -> u32 {
        self.successes + self.failures
    }
}

#[derive(Debug)]
enum State {
    Closed,
    Open { until: Instant },
    HalfOpen { in_flight: u32, successes: u32 },
}

#[derive(Debug)]
struct Inner {
    state: State,
    consecutive_failures: u32,
    /// Open periods since the breaker was last closed: the next one lasts
    /// `open_ms * 2^opened`, capped.
    opened: u32,
    buckets: [Bucket; BUCKETS],
}

/// A circuit breaker for one dependency. Thread-safe; the lock is held for a
/// few arithmetic operations only, never across an await.
#[derive(Debug)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    origin: Instant,
    inner: Mutex<Inner>,
}

/// Permission to make one call. Record its [`Verdict`]; a permit dropped
/// without a verdict (the call was cancelled) counts as neutral.
#[derive(Debug)]
pub struct BreakerPermit<'a> {
    breaker: &'a CircuitBreaker,
    probe: bool,
    started: Instant,
    recorded: bool,
}

impl BreakerPermit<'_> {
    /// Records how the call went. The outcome is filed under the time the
    /// permit was taken (when the call started).
    pub fn record(mut self, verdict: Verdict) {
        self.recorded = true;
        self.breaker.record(self.probe, self.started, verdict);
    }
}

impl BreakerPermit<'_> {
    /// The call starts now, not when the permit was taken (it waited for a
    /// bulkhead slot in between): its outcome is filed under now.
    pub(crate) fn starting_now(&mut self) {
        self.started = Instant::now();
    }
}

impl Drop for BreakerPermit<'_> {
    fn drop(&mut self) {
        if !self.recorded {
            self.breaker.record(self.probe, self.started, Verdict::Neutral);
        }
    }
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Self {
        CircuitBreaker {
            config,
            origin: Instant::now(),
            inner: Mutex::new(Inner {
                state: State::Closed,
                consecutive_failures: 0,
                opened: 0,
                buckets: [Bucket::default(); BUCKETS],
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the counters in a
        // state worse than stale, so a poisoned lock is used as is.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The current state (an open breaker whose time is up reports half-open).
    pub fn state(&self) -> BreakerState {
        let inner = self.lock();
        match inner.state {
            State::Closed => BreakerState::Closed,
            State::Open { until } if Instant::now() < until => BreakerState::Open,
            State::Open { .. } | State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Asks to make a call. `Err` carries how long until the breaker lets a
    /// probe through.
    pub fn try_acquire(&self) -> Result<BreakerPermit<'_>, Duration> {
        let now = Instant::now();
        let mut inner = self.lock();
        let probe = match &mut inner.state {
            State::Closed => false,
            State::Open { until } => {
                if now < *until {
                    return Err(*until - now);
                }
                tracing::info!("circuit half-open: letting probes through");
                inner.state = State::HalfOpen { in_flight: 1, successes: 0 };
                true
            }
            State::HalfOpen { in_flight, successes } => {
                if *in_flight + *successes >= self.config.half_open_probes {
                    return Err(Duration::from_millis(self.config.open_ms));
                }
                *in_flight += 1;
                true
            }
        };
        Ok(BreakerPermit { breaker: self, probe, started: now, recorded: false })
    }

    fn record(&self, probe: bool, started: Instant, verdict: Verdict) {
        let now = Instant::now();
        let mut inner = self.lock();
        if probe {
            if let State::HalfOpen { in_flight, successes } = &mut inner.state {
                *in_flight = in_flight.saturating_sub(1);
                match verdict {
                    Verdict::Success => {
                        *successes += 1;
                        if *successes >= self.config.half_open_probes {
                            tracing::info!("circuit closed: probes succeeded");
                            inner.state = State::Closed;
                            inner.consecutive_failures = 0;
                            inner.opened = 0;
                            inner.buckets = [Bucket::default(); BUCKETS];
                        }
                    }
                    Verdict::Failure => self.open(&mut inner, now),
                    Verdict::Neutral => {}
                }
            }
            return;
        }
        if !matches!(inner.state, State::Closed) {
            // A call admitted before the breaker opened: its outcome is old news.
            return;
        }
        let current = self.epoch(now);
        // A call that started before the window is filed in its oldest bucket.
        let epoch = self.epoch(started).max(current.saturating_sub(BUCKETS as u64 - 1));
        let bucket = &mut inner.buckets[(epoch % BUCKETS as u64) as usize];
        if bucket.epoch != epoch {
            *bucket = Bucket { epoch, ..Bucket::default() };
        }
        match verdict {
            Verdict::Success => {
                bucket.successes += 1;
                inner.consecutive_failures = 0;
            }
            Verdict::Failure => {
                bucket.failures += 1;
                inner.consecutive_failures += 1;
                if self.should_trip(&inner, current) {
                    self.open(&mut inner, now);
                }
            }
            Verdict::Neutral => {}
        }
    }

    fn should_trip(&self, inner: &Inner, current: u64) -> bool {
        let oldest = current.saturating_sub(BUCKETS as u64 - 1);
        let live = |epoch: u64| {
            let bucket = inner.buckets[(epoch % BUCKETS as u64) as usize];
            if bucket.epoch == epoch { bucket } else { Bucket::default() }
        };
        let (calls, failures) = (oldest..=current)
            .map(live)
            .fold((0u32, 0u32), |(calls, failures), b| (calls + b.calls(), failures + b.failures));
        let volume = calls >= self.config.minimum_calls.max(1)
            && f64::from(failures) / f64::from(calls) >= self.config.failure_ratio;
        let streak = inner.consecutive_failures >= self.config.consecutive_failures;
        if !(volume || streak) {
            return false;
        }
        if self.config.sustained_ms == 0 {
            return true;
        }
        // The run of bad buckets that ends at the newest bucket with calls
        // (buckets without calls neither break nor extend it).
        let bad =
            |b: Bucket| f64::from(b.failures) / f64::from(b.calls().max(1)) >= self.config.failure_ratio;
        let mut run: Option<(u64, u64)> = None;
        for epoch in (oldest..=current).rev() {
            let bucket = live(epoch);
            if bucket.calls() == 0 {
                continue;
            }
            if !bad(bucket) {
                break;
            }
            run = Some(run.map_or((epoch, epoch), |(_, newest)| (epoch, newest)));
        }
        run.is_some_and(|(first, last)| {
            (last - first + 1) * self.config.bucket_ms() >= self.config.sustained_ms
        })
    }

    fn open(&self, inner: &mut Inner, now: Instant) {
        let doubled = self.config.open_ms.saturating_mul(1 << inner.opened.min(16));
        let period = doubled.min(self.config.max_open_ms);
        let period = (period as f64 * (1.0 - self.config.jitter * fastrand::f64())).max(1.0) as u64;
        tracing::warn!(open_ms = period, "circuit opened");
        inner.state = State::Open { until: now + Duration::from_millis(period) };
        inner.consecutive_failures = 0;
        inner.opened = inner.opened.saturating_add(1);
    }

    fn epoch(&self, at: Instant) -> u64 {
        (at.saturating_duration_since(self.origin).as_millis() as u64) / self.config.bucket_ms() + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No sustained condition, no jitter: the old trip rules, for tests of them.
    fn eager(config: BreakerConfig) -> CircuitBreaker {
        CircuitBreaker::new(BreakerConfig { sustained_ms: 0, jitter: 0.0, half_open_probes: 1, ..config })
    }

    fn call(b: &CircuitBreaker, verdict: Verdict) -> bool {
        match b.try_acquire() {
            Ok(permit) => {
                permit.record(verdict);
                true
            }
            Err(_) => false,
        }
    }

    async fn ms(n: u64) {
        tokio::time::advance(Duration::from_millis(n)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_failures_and_recovers_through_a_probe() {
        let b = eager(BreakerConfig { consecutive_failures: 3, open_ms: 1_000, ..Default::default() });
        assert!(call(&b, Verdict::Failure));
        assert!(call(&b, Verdict::Success));
        assert!(call(&b, Verdict::Failure));
        assert!(call(&b, Verdict::Failure));
        assert_eq!(b.state(), BreakerState::Closed, "a success in between resets the streak");
        assert!(call(&b, Verdict::Failure));
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!call(&b, Verdict::Success), "open breaker refuses calls");

        ms(1_001).await;
        let probe = b.try_acquire().expect("probe allowed after open period");
        assert!(b.try_acquire().is_err(), "only one probe at a time");
        probe.record(Verdict::Success);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn opens_on_failure_ratio_once_the_window_has_enough_calls() {
        let b = eager(BreakerConfig {
            consecutive_failures: 100,
            failure_ratio: 0.5,
            minimum_calls: 10,
            ..Default::default()
        });
        for i in 0..9 {
            let verdict = if i % 2 == 0 { Verdict::Failure } else { Verdict::Success };
            assert!(call(&b, verdict));
        }
        assert_eq!(b.state(), BreakerState::Closed, "9 calls are below minimum_calls");
        assert!(call(&b, Verdict::Failure)); // 6 failures of 10
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn old_failures_leave_the_window() {
        let b = eager(BreakerConfig {
            consecutive_failures: 100,
            minimum_calls: 4,
            window_ms: 1_000,
            ..Default::default()
        });
        for _ in 0..3 {
            assert!(call(&b, Verdict::Failure));
        }
        ms(1_500).await;
        assert!(call(&b, Verdict::Failure));
        assert_eq!(b.state(), BreakerState::Closed, "only 1 call is in the window now");
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_failures_that_started_together_is_one_event() {
        let b = CircuitBreaker::new(BreakerConfig::default());
        // 200 calls start within 50 ms (a blip catches them all) and fail
        // 80 ms later: every one failed, far past minimum_calls and the streak.
        let mut permits = Vec::new();
        for _ in 0..5 {
            for _ in 0..40 {
                permits.push(b.try_acquire().expect("closed"));
            }
            ms(10).await;
        }
        ms(80).await;
        for permit in permits {
            permit.record(Verdict::Failure);
        }
        assert_eq!(b.state(), BreakerState::Closed, "one blip, however many calls it caught");
        // The traffic after the blip is healthy; a straggler failing later
        // does not open it either.
        for _ in 0..20 {
            assert!(call(&b, Verdict::Success));
            ms(50).await;
        }
        assert!(call(&b, Verdict::Failure));
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn it_opens_once_failures_are_sustained_and_not_before() {
        let b = CircuitBreaker::new(BreakerConfig::default());
        let sustained = BreakerConfig::default().sustained_ms;
        // A hard-down dependency at 100 calls/s: every call fails.
        let mut elapsed = 0;
        while b.state() == BreakerState::Closed {
            assert!(call(&b, Verdict::Failure));
            ms(10).await;
            elapsed += 10;
            assert!(elapsed <= sustained + 200, "still closed after {elapsed} ms of failures");
        }
        assert!(elapsed >= sustained - 150, "opened after {elapsed} ms: before failures were sustained");
    }

    #[tokio::test(start_paused = true)]
    async fn a_healthy_stretch_breaks_the_run() {
        let b = CircuitBreaker::new(BreakerConfig::default());
        // Flapping: 1 s failing, 1 s healthy, at 100 calls/s, for 10 s.
        for cycle in 0..5 {
            for _ in 0..100 {
                assert!(call(&b, Verdict::Failure), "cycle {cycle}: refused while failing");
                ms(10).await;
            }
            for _ in 0..100 {
                assert!(call(&b, Verdict::Success), "cycle {cycle}: refused while healthy");
                ms(10).await;
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn open_periods_double_while_probes_fail_and_reset_on_close() {
        let b = CircuitBreaker::new(BreakerConfig {
            sustained_ms: 0,
            consecutive_failures: 1,
            open_ms: 100,
            max_open_ms: 350,
            jitter: 0.0,
            half_open_probes: 2,
            ..Default::default()
        });
        assert!(call(&b, Verdict::Failure));
        // 100, 200, then capped at 350, 350.
        for period in [100, 200, 350, 350] {
            ms(period - 1).await;
            assert!(b.try_acquire().is_err(), "still open just before {period} ms");
            ms(1).await;
            assert!(call(&b, Verdict::Failure), "a probe after {period} ms");
        }
        ms(350).await;
        let (first, second) = (b.try_acquire().expect("probe"), b.try_acquire().expect("second probe"));
        assert!(b.try_acquire().is_err(), "two probes at most");
        first.record(Verdict::Success);
        assert_eq!(b.state(), BreakerState::HalfOpen, "one success of two");
        assert!(b.try_acquire().is_err(), "a succeeded probe does not free a slot for a third");
        second.record(Verdict::Success);
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(call(&b, Verdict::Failure));
        ms(99).await;
        assert!(b.try_acquire().is_err());
        ms(1).await;
        assert!(b.try_acquire().is_ok(), "the period starts short again after a close");
    }

    #[tokio::test(start_paused = true)]
    async fn jitter_only_shortens_the_open_period() {
        for _ in 0..50 {
            let b = CircuitBreaker::new(BreakerConfig {
                sustained_ms: 0,
                consecutive_failures: 1,
                open_ms: 1_000,
                max_open_ms: 1_000,
                jitter: 0.2,
                ..Default::default()
            });
            assert!(call(&b, Verdict::Failure));
            let wait = b.try_acquire().expect_err("open");
            assert!(wait <= Duration::from_millis(1_000) && wait >= Duration::from_millis(800), "{wait:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_probe_frees_its_slot() {
        let b = eager(BreakerConfig { consecutive_failures: 1, open_ms: 100, ..Default::default() });
        assert!(call(&b, Verdict::Failure));
        ms(101).await;
        drop(b.try_acquire().expect("probe"));
        assert!(b.try_acquire().is_ok(), "dropped probe must not block the next one");
    }

    #[test]
    fn a_sustained_time_longer_than_the_window_is_a_problem() {
        let config = BreakerConfig { window_ms: 1_000, sustained_ms: 1_000, ..Default::default() };
        assert!(config.problems().iter().any(|p| p.contains("sustained_ms")), "{:?}", config.problems());
        assert!(BreakerConfig::default().problems().is_empty());
        let config = BreakerConfig { open_ms: 500, max_open_ms: 100, jitter: 1.0, ..Default::default() };
        assert_eq!(config.problems().len(), 2, "{:?}", config.problems());
    }
}
