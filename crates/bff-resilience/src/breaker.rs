//! A circuit breaker that trips on consecutive failures or on a failure
//! ratio over a rolling window, and recovers through half-open probes.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::Verdict;

/// When a breaker opens and how it recovers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// Opens after this many failures in a row, whatever the volume.
    pub consecutive_failures: u32,
    /// Opens when failures / calls within the window reach this ratio...
    pub failure_ratio: f64,
    /// ...provided the window holds at least this many calls (so one failure
    /// out of two calls at night does not trip it).
    pub minimum_calls: u32,
    /// Length of the rolling window for the ratio, in milliseconds.
    pub window_ms: u64,
    /// How long the breaker stays open before letting probes through.
    pub open_ms: u64,
    /// Probe calls let through at once when half-open; all must succeed to close.
    pub half_open_probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            consecutive_failures: 5,
            failure_ratio: 0.5,
            minimum_calls: 20,
            window_ms: 10_000,
            open_ms: 5_000,
            half_open_probes: 1,
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
        if self.open_ms == 0 {
            problems.push("breaker.open_ms must be greater than 0".to_owned());
        }
        if self.half_open_probes == 0 {
            problems.push("breaker.half_open_probes must be at least 1".to_owned());
        }
        problems
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

const BUCKETS: usize = 10;

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    epoch: u64,
    successes: u32,
    failures: u32,
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
    recorded: bool,
}

impl BreakerPermit<'_> {
    /// Records how the call went.
    pub fn record(mut self, verdict: Verdict) {
        self.recorded = true;
        self.breaker.record(self.probe, verdict);
    }
}

impl Drop for BreakerPermit<'_> {
    fn drop(&mut self) {
        if !self.recorded {
            self.breaker.record(self.probe, Verdict::Neutral);
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
                tracing::info!("circuit half-open: letting a probe through");
                inner.state = State::HalfOpen { in_flight: 1, successes: 0 };
                true
            }
            State::HalfOpen { in_flight, .. } => {
                if *in_flight >= self.config.half_open_probes {
                    return Err(Duration::from_millis(self.config.open_ms.min(1_000)));
                }
                *in_flight += 1;
                true
            }
        };
        Ok(BreakerPermit { breaker: self, probe, recorded: false })
    }

    fn record(&self, probe: bool, verdict: Verdict) {
        let now = Instant::now();
        let mut inner = self.lock();
        if probe {
            if let State::HalfOpen { in_flight, successes } = &mut inner.state {
                *in_flight = in_flight.saturating_sub(1);
                match verdict {
                    Verdict::Success => {
                        *successes += 1;
                        if *successes >= self.config.half_open_probes {
                            tracing::info!("circuit closed: probe succeeded");
                            inner.state = State::Closed;
                            inner.consecutive_failures = 0;
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
        let epoch = self.epoch(now);
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
                if self.should_trip(&inner, epoch) {
                    self.open(&mut inner, now);
                }
            }
            Verdict::Neutral => {}
        }
    }

    fn should_trip(&self, inner: &Inner, epoch: u64) -> bool {
        if inner.consecutive_failures >= self.config.consecutive_failures {
            return true;
        }
        let oldest = epoch.saturating_sub(BUCKETS as u64 - 1);
        let (calls, failures) = inner
            .buckets
            .iter()
            .filter(|b| b.epoch >= oldest && b.epoch <= epoch)
            .fold((0u32, 0u32), |(c, f), b| (c + b.successes + b.failures, f + b.failures));
        calls >= self.config.minimum_calls.max(1)
            && f64::from(failures) / f64::from(calls) >= self.config.failure_ratio
    }

    fn open(&self, inner: &mut Inner, now: Instant) {
        tracing::warn!(open_ms = self.config.open_ms, "circuit opened");
        inner.state = State::Open { until: now + Duration::from_millis(self.config.open_ms) };
        inner.consecutive_failures = 0;
    }

    fn epoch(&self, now: Instant) -> u64 {
        let bucket_ms = (self.config.window_ms / BUCKETS as u64).max(1);
        (now.duration_since(self.origin).as_millis() as u64) / bucket_ms + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(config: BreakerConfig) -> CircuitBreaker {
        CircuitBreaker::new(config)
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

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_failures_and_recovers_through_a_probe() {
        let b = breaker(BreakerConfig { consecutive_failures: 3, open_ms: 1_000, ..Default::default() });
        assert!(call(&b, Verdict::Failure));
        assert!(call(&b, Verdict::Success));
        assert!(call(&b, Verdict::Failure));
        assert!(call(&b, Verdict::Failure));
        assert_eq!(b.state(), BreakerState::Closed, "a success in between resets the streak");
        assert!(call(&b, Verdict::Failure));
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!call(&b, Verdict::Success), "open breaker refuses calls");

        tokio::time::advance(Duration::from_millis(1_001)).await;
        let probe = b.try_acquire().expect("probe allowed after open period");
        assert!(b.try_acquire().is_err(), "only one probe at a time");
        probe.record(Verdict::Success);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_reopens() {
        let b = breaker(BreakerConfig { consecutive_failures: 1, open_ms: 500, ..Default::default() });
        assert!(call(&b, Verdict::Failure));
        tokio::time::advance(Duration::from_millis(501)).await;
        assert!(call(&b, Verdict::Failure));
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn opens_on_failure_ratio_once_the_window_has_enough_calls() {
        let b = breaker(BreakerConfig {
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
        let b = breaker(BreakerConfig {
            consecutive_failures: 100,
            minimum_calls: 4,
            window_ms: 1_000,
            ..Default::default()
        });
        for _ in 0..3 {
            assert!(call(&b, Verdict::Failure));
        }
        tokio::time::advance(Duration::from_millis(1_500)).await;
        assert!(call(&b, Verdict::Failure));
        assert_eq!(b.state(), BreakerState::Closed, "only 1 call is in the window now");
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_probe_frees_its_slot() {
        let b = breaker(BreakerConfig { consecutive_failures: 1, open_ms: 100, ..Default::default() });
        assert!(call(&b, Verdict::Failure));
        tokio::time::advance(Duration::from_millis(101)).await;
        drop(b.try_acquire().expect("probe"));
        assert!(b.try_acquire().is_ok(), "dropped probe must not block the next one");
    }
}
