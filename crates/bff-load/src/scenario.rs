//! The named fault scenarios: what each does to a screen's dependencies,
//! for how long, and the bound its failed requests must stay within.
//!
//! Every bound is a count relative to the fault window (how many requests
//! were in flight, how many started while it lasted), never a speed, so the
//! same scenario can be a test on a debug build and a measurement on a
//! release build.
//!
//! | scenario | fault | bound |
//! |---|---|---|
//! | `blip-50ms`, `blip-200ms` | the critical dependency 100 ms past its timeout, for 50 / 200 ms | failed ≤ in flight during the blip + one timeout's worth of traffic; no `503` (no breaker opened) |
//! | `brownout` | the critical dependency at 90% of its timeout for 10 s | ≤ 1% of the requests started in the window fail |
//! | `hard-down` | the critical dependency answers errors for 10 s | from 2 s in (the breaker waits for 1.5 s of sustained failures) it sees no more than probe traffic and failures are fast; from 1 s after it heals, nothing fails |
//! | `flapping` | 1 s of errors, 1 s healthy, for 20 s | failed ≤ the requests started in the bad seconds (+ 1 s of traffic for the switches) |
//! | `slow-optional` | an optional dependency 10× its timeout for 5 s | nothing fails; the p99 stays within the deadline |
//!
//! The cold burst (200 first requests at once) is [`crate::burst`]; its
//! bound (all answered, one call per coalesced key) needs the mocks' counts
//! and lives with its test.

use std::time::Duration;

use serde_json::json;

use crate::{Run, Schedule, Step};

/// The screen a scenario is played on: its critical and its optional
/// dependency, their timeouts, and the screen's deadline.
#[derive(Debug, Clone)]
pub struct Subject {
    /// The critical dependency faults go to (`pricing` on the product page).
    pub critical: String,
    /// Its per-call timeout.
    pub critical_timeout: Duration,
    /// An optional dependency of the same screen (`recommendations`).
    pub optional: String,
    /// Its per-call timeout.
    pub optional_timeout: Duration,
    /// The screen's request deadline.
    pub deadline: Duration,
    /// How many calls a failing dependency may still get per second once
    /// its breaker is open: probes per open period over the shortest one
    /// (the first, shortened by all its jitter).
    pub probes_per_sec: f64,
    /// Every dependency of the screen (one token exchange each).
    pub services: Vec<String>,
}

impl Subject {
    /// mobile-bff's product page under `config`: pricing is critical,
    /// recommendations optional; the page also calls the catalog, inventory
    /// and reviews.
    pub fn product_page<X: bff_server::Section>(config: &bff_server::Config<X>) -> Subject {
        let services = &config.downstream.services;
        let timeout = |name: &str| Duration::from_millis(services.get(name).map_or(0, |s| s.timeout_ms));
        let breaker = services.get("pricing").map(|s| s.breaker.clone()).unwrap_or_default();
        Subject {
            critical: "pricing".to_owned(),
            critical_timeout: timeout("pricing"),
            optional: "recommendations".to_owned(),
            optional_timeout: timeout("recommendations"),
            deadline: Duration::from_millis(config.compose.request_deadline_ms),
            probes_per_sec: f64::from(breaker.half_open_probes) * 1000.0
                / (breaker.open_ms as f64 * (1.0 - breaker.jitter)).max(1.0),
            services: ["catalog", "pricing", "inventory", "recommendations", "reviews"]
                .map(String::from)
                .to_vec(),
        }
    }
}

/// A named scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// The critical dependency 100 ms past its timeout for 50 ms.
    Blip50,
    /// The same for 200 ms.
    Blip200,
    /// The critical dependency at 90% of its timeout for 10 s.
    Brownout,
    /// The critical dependency failing for 10 s, then healthy.
    HardDown,
    /// 1 s failing, 1 s healthy, for 20 s.
    Flapping,
    /// An optional dependency 10× its timeout for 5 s.
    SlowOptional,
}

/// When the fault starts in every scenario: after a second of steady load.
const FAULT_AT: Duration = Duration::from_secs(1);

/// How long into a hard-down fault the breaker must have opened: the
/// default breaker waits for 1.5 s of sustained failures (a blip must not
/// open it), and the last of those is reported up to one timeout later.
const OPENED_BY: Duration = Duration::from_secs(2);

impl Scenario {
    /// Every scenario, in the order of the table.
    pub const ALL: [Scenario; 6] = [
        Scenario::Blip50,
        Scenario::Blip200,
        Scenario::Brownout,
        Scenario::HardDown,
        Scenario::Flapping,
        Scenario::SlowOptional,
    ];

    /// Its name (`blip-50ms`).
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Blip50 => "blip-50ms",
            Scenario::Blip200 => "blip-200ms",
            Scenario::Brownout => "brownout",
            Scenario::HardDown => "hard-down",
            Scenario::Flapping => "flapping",
            Scenario::SlowOptional => "slow-optional",
        }
    }

    /// The scenario named `name`.
    pub fn named(name: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|s| s.name() == name)
    }

    /// How long the dependency misbehaves in all (the fault-seconds).
    pub fn fault(self) -> Duration {
        match self {
            Scenario::Blip50 => Duration::from_millis(50),
            Scenario::Blip200 => Duration::from_millis(200),
            Scenario::Brownout | Scenario::HardDown | Scenario::Flapping => Duration::from_secs(10),
            Scenario::SlowOptional => Duration::from_secs(5),
        }
    }

    /// How long the load runs: a second before the fault, the fault, and
    /// time after it to see the recovery.
    pub fn duration(self) -> Duration {
        match self {
            Scenario::Blip50 | Scenario::Blip200 => Duration::from_secs(3),
            Scenario::Brownout => Duration::from_secs(12),
            Scenario::HardDown => Duration::from_secs(14),
            Scenario::Flapping => Duration::from_secs(22),
            Scenario::SlowOptional => Duration::from_secs(7),
        }
    }

    /// What happens to the mocks, and when.
    pub fn schedule(self, subject: &Subject) -> Schedule {
        let critical = || subject.critical.clone();
        let faults = |service: String, faults| Step::Faults { service, faults };
        let heal = |service: String| Step::Heal { service };
        let ms = |d: Duration| d.as_millis() as u64;
        let end = FAULT_AT + self.fault();
        let steps = match self {
            Scenario::Blip50 | Scenario::Blip200 => vec![
                (FAULT_AT, faults(critical(), json!({ "latencyMs": ms(subject.critical_timeout) + 100 }))),
                (end, heal(critical())),
            ],
            Scenario::Brownout => vec![
                (FAULT_AT, faults(critical(), json!({ "latencyMs": ms(subject.critical_timeout) * 9 / 10 }))),
                (end, heal(critical())),
            ],
            Scenario::HardDown => vec![
                (FAULT_AT, faults(critical(), json!({ "errorRatio": 1.0 }))),
                (FAULT_AT + OPENED_BY, Step::Count { service: critical(), label: "down".into() }),
                (end, Step::Count { service: critical(), label: "healed".into() }),
                (end, heal(critical())),
            ],
            Scenario::Flapping => (0..10u32)
                .flat_map(|n| {
                    let bad = FAULT_AT + Duration::from_secs(2 * u64::from(n));
                    [
                        (bad, faults(critical(), json!({ "errorRatio": 1.0 }))),
                        (bad + Duration::from_secs(1), heal(critical())),
                    ]
                })
                .collect(),
            Scenario::SlowOptional => vec![
                (
                    FAULT_AT,
                    faults(
                        subject.optional.clone(),
                        json!({ "latencyMs": ms(subject.optional_timeout) * 10 }),
                    ),
                ),
                (end, heal(subject.optional.clone())),
            ],
        };
        Schedule(steps)
    }

    /// Whether `run` kept within the scenario's bound: `Ok` with a one-line
    /// summary, `Err` saying what broke it.
    pub fn check(self, subject: &Subject, run: &Run) -> Result<String, String> {
        let end = FAULT_AT + self.fault();
        let failed = run.failed();
        let summary = format!(
            "{}: {} requests ({:.0}/s), {} failed ({:.2}%), amplification {:.2}",
            self.name(),
            run.total(),
            run.rate(),
            failed,
            100.0 * failed as f64 / run.total().max(1) as f64,
            run.amplification(self.fault()),
        );
        let refuse = |why: String| Err(format!("{summary}\n  bound broken: {why}"));
        match self {
            Scenario::Blip50 | Scenario::Blip200 => {
                let in_flight = run.overlapping(FAULT_AT, end);
                let one_timeout = (run.rate() * subject.critical_timeout.as_secs_f64()).ceil() as usize;
                if failed > in_flight + one_timeout {
                    return refuse(format!(
                        "{failed} failed > {in_flight} in flight during the blip + {one_timeout} (one timeout's worth)"
                    ));
                }
                let opened = run.with_status(503);
                if opened > 0 {
                    return refuse(format!(
                        "{opened} answers were 503: a breaker opened or a bulkhead was full"
                    ));
                }
            }
            Scenario::Brownout => {
                let during = run.started_between(FAULT_AT, end);
                let failed = during.iter().filter(|s| s.failed()).count();
                let allowed = during.len() / 100;
                if failed > allowed {
                    return refuse(format!(
                        "{failed} of {} requests in the brownout failed (> 1%)",
                        during.len()
                    ));
                }
            }
            Scenario::HardDown => {
                let (down, healed) = (run.counts.get("down"), run.counts.get("healed"));
                let (Some(down), Some(healed)) = (down, healed) else {
                    return refuse("the dependency's request counts were not read".to_owned());
                };
                let calls = healed.saturating_sub(*down);
                let seconds = (self.fault() - OPENED_BY).as_secs_f64();
                let probes = (subject.probes_per_sec * seconds).ceil() as u64 + 10;
                if calls > probes {
                    return refuse(format!(
                        "the dependency got {calls} calls while down (more than probe traffic: {probes})"
                    ));
                }
                let while_down = run.started_between(FAULT_AT + OPENED_BY, end);
                let failed_while_down: Vec<_> = while_down.iter().filter(|s| s.failed()).copied().collect();
                let p99 = Run::latency_quantile(&failed_while_down, 0.99);
                if p99 >= subject.critical_timeout {
                    return refuse(format!("failures took {p99:?} at p99 while down: not failing fast"));
                }
                let after = run.failed_between(end + Duration::from_secs(1), run.duration);
                if after > 0 {
                    return refuse(format!(
                        "{after} requests failed more than 1 s after the dependency healed"
                    ));
                }
            }
            Scenario::Flapping => {
                let bad: usize = (0..10u32)
                    .map(|n| {
                        let from = FAULT_AT + Duration::from_secs(2 * u64::from(n));
                        run.started_between(from, from + Duration::from_secs(1)).len()
                    })
                    .sum();
                let grace = run.rate().ceil() as usize;
                if failed > bad + grace {
                    return refuse(format!(
                        "{failed} failed > {bad} started in the bad seconds + {grace} (one second of traffic)"
                    ));
                }
            }
            Scenario::SlowOptional => {
                if failed > 0 {
                    return refuse(format!(
                        "{failed} requests failed: a slow optional part must only degrade"
                    ));
                }
                let during = run.started_between(FAULT_AT, end);
                let p99 = Run::latency_quantile(&during, 0.99);
                // The engine's own grace past a deadline is 20 ms; the rest is the answer itself.
                let allowed = subject.deadline + Duration::from_millis(50);
                if p99 > allowed {
                    return refuse(format!("p99 {p99:?} > the deadline {:?} (+50 ms)", subject.deadline));
                }
            }
        }
        Ok(summary)
    }
}
