//! Steady load on a BFF while a fault schedule plays on its mocks, and what
//! came of it: the named fault scenarios of `RELIABILITY.md`.
//!
//! * [`run`] keeps `concurrency` clients busy on a BFF for a while (each
//!   sends its next request as soon as the last is answered), while a
//!   [`Schedule`] changes the mocks' faults (`PUT/DELETE /__faults`) and
//!   reads their request counts (`GET /__stats`) at set times. Every request
//!   is kept as a [`Sample`]: when it started and ended, and its status.
//! * [`Run`] answers the questions the scenarios ask: how many failed, when,
//!   how fast failed answers came, the **amplification factor** (failed
//!   request-seconds over fault-seconds: how many seconds' worth of traffic
//!   failed for each second a dependency misbehaved).
//! * [`scenario`] names the scenarios, their schedules and their bounds,
//!   stated as counts relative to the fault window, so tests assert
//!   behaviour, not speed. The crate's tests run them against a debug build
//!   in-process; the `bff-load` binary runs them against real processes
//!   (release builds, pinned to cores) for the figures.
//!
//! * [`bench`]: latency and throughput under open- or closed-loop load,
//!   with HDR percentiles and the named load scenarios (`bff-load bench`,
//!   `cargo xtask load bench`); [`report`] draws them.
//!
//! A tool, not a library a BFF is built from: it uses `anyhow`.

pub mod bench;
pub mod report;
pub mod scenario;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::Value;
use tokio::time::Instant;

/// The BFF under load: where it is, what to ask, with which credentials.
#[derive(Debug, Clone)]
pub struct Target {
    /// `http://127.0.0.1:8081`.
    pub base: String,
    /// Paths asked in turn (`/v1/product-page/p-1`, ...).
    pub paths: Vec<String>,
    /// Headers of every request (credentials).
    pub headers: Vec<(String, String)>,
}

/// The mocks a schedule acts on, by service name (`pricing` → its base URL).
pub type Mocks = BTreeMap<String, String>;

/// One change at one time of a run.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// `PUT /__faults` on a mock.
    Faults {
        /// The service.
        service: String,
        /// The fault configuration (`{"latencyMs": 180}`).
        faults: Value,
    },
    /// `DELETE /__faults` on a mock: healthy again.
    Heal {
        /// The service.
        service: String,
    },
    /// Reads a mock's request count (`/__stats` `total`), under a label.
    Count {
        /// The service.
        service: String,
        /// What the count is called in [`Run::counts`].
        label: String,
    },
}

/// Steps at times from the start of a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Schedule(pub Vec<(Duration, Step)>);

/// One request of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// When it was sent, from the start of the run.
    pub start: Duration,
    /// When its answer was read.
    pub end: Duration,
    /// Its status; 0 when it got no answer (a transport error).
    pub status: u16,
}

impl Sample {
    /// Whether it failed (anything but `200`).
    pub fn failed(&self) -> bool {
        self.status != 200
    }
}

/// What a run produced.
#[derive(Debug, Clone, Default)]
pub struct Run {
    /// Every request, in the order they ended.
    pub samples: Vec<Sample>,
    /// How long the load ran.
    pub duration: Duration,
    /// The counts of [`Step::Count`], by label.
    pub counts: BTreeMap<String, u64>,
}

impl Run {
    /// Requests made.
    pub fn total(&self) -> usize {
        self.samples.len()
    }

    /// Requests that failed.
    pub fn failed(&self) -> usize {
        self.samples.iter().filter(|s| s.failed()).count()
    }

    /// Requests answered with `status`.
    pub fn with_status(&self, status: u16) -> usize {
        self.samples.iter().filter(|s| s.status == status).count()
    }

    /// Requests per second over the run.
    pub fn rate(&self) -> f64 {
        self.total() as f64 / self.duration.as_secs_f64().max(1e-9)
    }

    /// Requests that were in flight at some time in `[from, to]`.
    pub fn overlapping(&self, from: Duration, to: Duration) -> usize {
        self.samples.iter().filter(|s| s.start <= to && s.end >= from).count()
    }

    /// Requests that started in `[from, to)`.
    pub fn started_between(&self, from: Duration, to: Duration) -> Vec<Sample> {
        self.samples.iter().filter(|s| s.start >= from && s.start < to).copied().collect()
    }

    /// Failed requests that started in `[from, to)`.
    pub fn failed_between(&self, from: Duration, to: Duration) -> usize {
        self.started_between(from, to).iter().filter(|s| s.failed()).count()
    }

    /// The amplification factor: failed request-seconds (the failed requests
    /// as seconds of this run's traffic, `failed / rate`) over the seconds
    /// the dependency misbehaved. 1 means a second of fault cost a second of
    /// failures; the blip before this work cost about 100.
    pub fn amplification(&self, fault: Duration) -> f64 {
        let failed_seconds = self.failed() as f64 / self.rate().max(1e-9);
        failed_seconds / fault.as_secs_f64().max(1e-9)
    }

    /// The `q` quantile (0..=1) of answer latency among `samples`.
    pub fn latency_quantile(samples: &[Sample], q: f64) -> Duration {
        let mut latencies: Vec<Duration> = samples.iter().map(|s| s.end.saturating_sub(s.start)).collect();
        latencies.sort_unstable();
        let at = ((latencies.len() as f64 - 1.0) * q.clamp(0.0, 1.0)).round() as usize;
        latencies.get(at).copied().unwrap_or_default()
    }
}

/// Keeps `concurrency` clients busy on `target` for `duration` while
/// `schedule` plays on `mocks`. The mocks are healed at the end.
pub async fn run(
    target: &Target,
    mocks: &Mocks,
    concurrency: usize,
    duration: Duration,
    schedule: &Schedule,
) -> anyhow::Result<Run> {
    if target.paths.is_empty() || concurrency == 0 {
        bail!("a load needs at least one path and one client");
    }
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(30))
        .build()?;
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    let target = Arc::new(target.clone());
    for worker in 0..concurrency {
        let (http, target) = (http.clone(), Arc::clone(&target));
        workers.spawn(async move {
            let mut samples = Vec::new();
            let mut next = worker;
            while started.elapsed() < duration {
                let path = &target.paths[next % target.paths.len()];
                next += 1;
                samples.push(one(&http, &target, path, started).await);
            }
            samples
        });
    }
    let counts = play(&http, mocks, schedule, started).await?;
    let mut samples = Vec::new();
    while let Some(done) = workers.join_next().await {
        samples.extend(done.context("a load client panicked")?);
    }
    for service in schedule.0.iter().filter_map(|(_, step)| match step {
        Step::Faults { service, .. } => Some(service),
        _ => None,
    }) {
        heal(&http, mocks, service).await?;
    }
    samples.sort_by_key(|s| s.end);
    Ok(Run { samples, duration: started.elapsed().max(duration), counts })
}

/// One request, timed from `started`.
async fn one(http: &reqwest::Client, target: &Target, path: &str, started: Instant) -> Sample {
    let start = started.elapsed();
    let mut request = http.get(format!("{}{path}", target.base));
    for (name, value) in &target.headers {
        request = request.header(name, value);
    }
    let status = match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            // Read the answer whole: a request ends when its body has arrived.
            match response.bytes().await {
                Ok(_) => status,
                Err(_) => 0,
            }
        }
        Err(_) => 0,
    };
    Sample { start, end: started.elapsed(), status }
}

/// The schedule, in time; the counts it read.
async fn play(
    http: &reqwest::Client,
    mocks: &Mocks,
    schedule: &Schedule,
    started: Instant,
) -> anyhow::Result<BTreeMap<String, u64>> {
    let mut counts = BTreeMap::new();
    let mut steps = schedule.0.clone();
    steps.sort_by_key(|(at, _)| *at);
    for (at, step) in steps {
        tokio::time::sleep_until(started + at).await;
        match step {
            Step::Faults { service, faults } => {
                let response =
                    http.put(format!("{}/__faults", base(mocks, &service)?)).json(&faults).send().await?;
                if !response.status().is_success() {
                    bail!("{service} refused faults {faults}: {}", response.text().await.unwrap_or_default());
                }
            }
            Step::Heal { service } => heal(http, mocks, &service).await?,
            Step::Count { service, label } => {
                let stats: Value =
                    http.get(format!("{}/__stats", base(mocks, &service)?)).send().await?.json().await?;
                counts.insert(label, stats["total"].as_u64().unwrap_or_default());
            }
        }
    }
    Ok(counts)
}

async fn heal(http: &reqwest::Client, mocks: &Mocks, service: &str) -> anyhow::Result<()> {
    http.delete(format!("{}/__faults", base(mocks, service)?)).send().await?.error_for_status()?;
    Ok(())
}

fn base<'a>(mocks: &'a Mocks, service: &str) -> anyhow::Result<&'a str> {
    mocks.get(service).map(String::as_str).with_context(|| format!("no mock named {service}"))
}

/// Fires `count` requests at once (each client one request), as the first
/// traffic a fresh instance sees.
pub async fn burst(target: &Target, count: usize) -> anyhow::Result<Run> {
    let http =
        reqwest::Client::builder().pool_max_idle_per_host(count).timeout(Duration::from_secs(30)).build()?;
    let started = Instant::now();
    let target = Arc::new(target.clone());
    let barrier = Arc::new(tokio::sync::Barrier::new(count));
    let mut clients = tokio::task::JoinSet::new();
    for n in 0..count {
        let (http, target, barrier) = (http.clone(), Arc::clone(&target), Arc::clone(&barrier));
        clients.spawn(async move {
            barrier.wait().await;
            let path = &target.paths[n % target.paths.len()];
            one(&http, &target, path, started).await
        });
    }
    let mut samples = Vec::new();
    while let Some(done) = clients.join_next().await {
        samples.push(done.context("a burst client panicked")?);
    }
    samples.sort_by_key(|s| s.end);
    Ok(Run { samples, duration: started.elapsed(), counts: BTreeMap::new() })
}

/// The cold burst: `count` first requests at once to an instance that has
/// served nothing yet. Resets the identity provider's and the catalog's
/// counts, fires the burst, and checks its bound: every request answered
/// `200`, one token exchange per audience of the screen (the subject's
/// `services`) and one catalog call per product (per path), however many
/// requests wanted them at once.
pub async fn cold_burst(
    target: &Target,
    mocks: &Mocks,
    subject: &scenario::Subject,
    count: usize,
) -> anyhow::Result<(Run, Result<String, String>)> {
    let http = reqwest::Client::new();
    for service in ["identity", "catalog"] {
        http.delete(format!("{}/__stats", base(mocks, service)?)).send().await?.error_for_status()?;
    }
    let run = burst(target, count).await?;
    let stats = |service: &'static str| {
        let http = http.clone();
        async move {
            let url = format!("{}/__stats", base(mocks, service)?);
            anyhow::Ok(http.get(url).send().await?.json::<Value>().await?)
        }
    };
    let exchanges = stats("identity").await?["routes"]["POST /oauth/token"].as_u64().unwrap_or_default();
    let catalog = stats("catalog").await?["total"].as_u64().unwrap_or_default();
    let (audiences, products) = (subject.services.len() as u64, target.paths.len() as u64);
    let ok = run.with_status(200);
    let mut statuses = BTreeMap::<u16, usize>::new();
    for sample in &run.samples {
        *statuses.entry(sample.status).or_default() += 1;
    }
    let statuses: Vec<String> = statuses.iter().map(|(status, n)| format!("{n}× {status}")).collect();
    let summary = format!(
        "cold-burst: {count} requests at once ({}), {exchanges} token exchanges ({audiences} audiences), \
         {catalog} catalog calls ({products} products)",
        statuses.join(", ")
    );
    let verdict = if ok < count {
        Err(format!("{summary}\n  bound broken: {} requests were not answered 200", count - ok))
    } else if exchanges > audiences {
        Err(format!("{summary}\n  bound broken: more than one token exchange per audience"))
    } else if catalog > products {
        Err(format!("{summary}\n  bound broken: more than one catalog call per product"))
    } else {
        Ok(summary)
    };
    Ok((run, verdict))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(start: u64, end: u64, status: u16) -> Sample {
        Sample { start: Duration::from_millis(start), end: Duration::from_millis(end), status }
    }

    #[test]
    fn a_run_counts_overlaps_failures_and_amplification() {
        let run = Run {
            samples: vec![
                sample(0, 10, 200),
                sample(5, 100, 504),
                sample(50, 60, 503),
                sample(200, 210, 200),
            ],
            duration: Duration::from_secs(1),
            counts: BTreeMap::new(),
        };
        assert_eq!((run.total(), run.failed(), run.with_status(503)), (4, 2, 1));
        assert_eq!(run.overlapping(Duration::from_millis(40), Duration::from_millis(55)), 2);
        assert_eq!(run.failed_between(Duration::ZERO, Duration::from_millis(40)), 1);
        // 2 failed at 4 req/s is half a second of traffic; over a 0.1 s fault, 5x.
        assert!((run.amplification(Duration::from_millis(100)) - 5.0).abs() < 1e-9);
        assert_eq!(Run::latency_quantile(&run.samples, 1.0), Duration::from_millis(95));
    }
}
