//! Latency and throughput of one screen, the way a client team asks about
//! it: how fast at this rate, how much can it take, what does it cost.
//!
//! * [`drive`] sends load in one of two [`Mode`]s. **Open loop** sends
//!   request *n* at `n / rate` seconds whatever the server does, and times
//!   each from when it *should* have been sent, so a server that stalls
//!   shows its stall in every request that waited behind it (no coordinated
//!   omission, as in wrk2). At most `connections` are in flight; a request
//!   waiting for one is still on the clock. **Closed loop** keeps
//!   `connections` clients busy, each sending when the last answer came:
//!   the way to find peak throughput, not to measure latency.
//! * [`Summary`] turns the answers into what the report shows: HDR
//!   percentiles (`hdrhistogram`, microsecond resolution), throughput and
//!   goodput, errors by status and problem code, the degraded rate by
//!   component and reason, and latency over time.
//! * [`BenchScenario`]: the named scenarios (healthy, a slow optional
//!   dependency, 2% slow calls with hedging on and off, a critical
//!   dependency down, twice the peak with the default concurrency limit and
//!   with one sized to the machine, added latency at half the peak).
//! * [`report`]: the JSON report and a picture (SVG: percentiles over time
//!   and the latency histogram), and an HTML page holding both.
//!
//! Written on `hdrhistogram` and our own driver rather than `goose`: goose
//! is closed-loop by design (users with think time), which is exactly the
//! coordinated omission an open-loop measurement must avoid, and it would
//! bring a second HTTP stack and its own reporting.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::Target;

/// How requests are sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// A constant arrival rate, in requests per second.
    Open {
        /// Requests per second.
        rate: f64,
    },
    /// Each of `connections` clients sends its next request when answered.
    Closed,
}

/// One answered (or failed) request.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// When it was due, from the start of the run (open loop: its slot;
    /// closed loop: when it was sent).
    pub due: Duration,
    /// From due to the whole body read.
    pub latency: Duration,
    /// HTTP status; 0 when no answer came (transport error or timeout).
    pub status: u16,
    /// The problem document's `code`, for an error.
    pub code: Option<String>,
    /// `(component, reasonCode)` of each component that was not `ok`.
    pub degraded: Vec<(String, String)>,
}

/// Sends load on `target` for `duration` in `mode`, with at most
/// `connections` requests in flight; shows a progress bar on a terminal.
pub async fn drive(
    target: &Target,
    mode: Mode,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<Vec<Answer>> {
    if target.paths.is_empty() || connections == 0 {
        bail!("a load needs at least one path and one connection");
    }
    if let Mode::Open { rate } = mode
        && !(rate > 0.0 && rate.is_finite())
    {
        bail!("the rate must be above 0");
    }
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .timeout(Duration::from_secs(30))
        .build()?;
    let target = Arc::new(target.clone());
    let progress = Progress::start(duration);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    match mode {
        Mode::Open { rate } => {
            let slots = Arc::new(Semaphore::new(connections));
            let total = (rate * duration.as_secs_f64()).round() as u64;
            let mut sent = 0u64;
            while sent < total {
                let now = (started.elapsed().as_secs_f64() * rate) as u64 + 1;
                while sent < now.min(total) {
                    let due = Duration::from_secs_f64(sent as f64 / rate);
                    let (http, target, slots, counts) =
                        (http.clone(), Arc::clone(&target), Arc::clone(&slots), Arc::clone(&progress.counts));
                    let path = target.paths[(sent as usize) % target.paths.len()].clone();
                    tasks.spawn(async move {
                        // Waiting for a connection is part of the latency.
                        let _slot = slots.acquire().await;
                        let answer = one(&http, &target, &path, started, due).await;
                        counts.note(&answer);
                        vec![answer]
                    });
                    sent += 1;
                }
                tokio::time::sleep_until(started + Duration::from_secs_f64(sent as f64 / rate)).await;
            }
        }
        Mode::Closed => {
            for client in 0..connections {
                let (http, target, counts) =
                    (http.clone(), Arc::clone(&target), Arc::clone(&progress.counts));
                tasks.spawn(async move {
                    let mut answers = Vec::new();
                    let mut next = client;
                    while started.elapsed() < duration {
                        let path = &target.paths[next % target.paths.len()];
                        next += 1;
                        let answer = one(&http, &target, path, started, started.elapsed()).await;
                        counts.note(&answer);
                        answers.push(answer);
                    }
                    answers
                });
            }
        }
    }
    let mut answers = Vec::new();
    while let Some(done) = tasks.join_next().await {
        answers.extend(done.context("a load task panicked")?);
    }
    progress.finish();
    answers.sort_by_key(|a| a.due);
    Ok(answers)
}

/// One request, timed from `due`.
async fn one(http: &reqwest::Client, target: &Target, path: &str, started: Instant, due: Duration) -> Answer {
    let mut request = http.get(format!("{}{path}", target.base));
    for (name, value) in &target.headers {
        request = request.header(name, value);
    }
    let (mut status, mut code, mut degraded) = (0, None, Vec::new());
    if let Ok(response) = request.send().await {
        let answered = response.status().as_u16();
        if let Ok(body) = response.bytes().await {
            status = answered;
            if answered >= 400 {
                code = serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|problem| problem["code"].as_str().map(str::to_owned));
            } else if says_degraded(&body) {
                degraded = degraded_components(&body);
            }
        }
    }
    let latency = started.elapsed().saturating_sub(due);
    Answer { due, latency, status, code, degraded }
}

/// Whether the envelope says `"degraded": true` (cheap check first: most
/// answers are not degraded and need no parsing).
fn says_degraded(body: &[u8]) -> bool {
    let has = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    has(b"\"degraded\":true") || has(b"\"degraded\": true")
}

fn degraded_components(body: &[u8]) -> Vec<(String, String)> {
    let Ok(envelope) = serde_json::from_slice::<Value>(body) else { return Vec::new() };
    let Some(components) = envelope["components"].as_object() else { return Vec::new() };
    components
        .iter()
        .filter(|(_, c)| c["status"].as_str() != Some("ok"))
        .map(|(name, c)| (name.clone(), c["reasonCode"].as_str().unwrap_or("unknown").to_owned()))
        .collect()
}

/// Running counts for the progress bar.
#[derive(Debug, Default)]
struct Counts {
    answered: AtomicU64,
    failed: AtomicU64,
}

impl Counts {
    fn note(&self, answer: &Answer) {
        self.answered.fetch_add(1, Ordering::Relaxed);
        if answer.status != 200 {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A progress bar over the run's seconds (on stderr; hidden when it is not
/// a terminal).
struct Progress {
    counts: Arc<Counts>,
    ticker: tokio::task::JoinHandle<()>,
    bar: indicatif::ProgressBar,
}

impl Progress {
    fn start(duration: Duration) -> Progress {
        let bar = indicatif::ProgressBar::new(duration.as_millis() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        let counts = Arc::new(Counts::default());
        let (shown, ticking) = (bar.clone(), Arc::clone(&counts));
        let ticker = tokio::spawn(async move {
            let started = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let answered = ticking.answered.load(Ordering::Relaxed);
                let failed = ticking.failed.load(Ordering::Relaxed);
                let rate = answered as f64 / started.elapsed().as_secs_f64().max(1e-3);
                shown.set_position(started.elapsed().as_millis() as u64);
                shown.set_message(format!("{answered} answered, {failed} not 200, {rate:.0} req/s"));
            }
        });
        Progress { counts, ticker, bar }
    }

    fn finish(self) {
        self.ticker.abort();
        self.bar.finish_and_clear();
    }
}

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th.
    pub p90: f64,
    /// 99th.
    pub p99: f64,
    /// 99.9th.
    pub p999: f64,
    /// The slowest.
    pub max: f64,
    /// The mean.
    pub mean: f64,
}

impl Percentiles {
    fn of(histogram: &Histogram<u64>) -> Percentiles {
        let ms = |us: u64| us as f64 / 1000.0;
        if histogram.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            p50: ms(histogram.value_at_quantile(0.5)),
            p90: ms(histogram.value_at_quantile(0.9)),
            p99: ms(histogram.value_at_quantile(0.99)),
            p999: ms(histogram.value_at_quantile(0.999)),
            max: ms(histogram.max()),
            mean: histogram.mean() / 1000.0,
        }
    }

    fn json(&self) -> Value {
        let r = |v: f64| (v * 100.0).round() / 100.0;
        json!({"p50": r(self.p50), "p90": r(self.p90), "p99": r(self.p99), "p99_9": r(self.p999),
               "max": r(self.max), "mean": r(self.mean)})
    }
}

/// What a run's answers say.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Requests sent.
    pub requests: u64,
    /// How long the load ran.
    pub seconds: f64,
    /// Answers of any kind per second.
    pub throughput: f64,
    /// `200` answers per second.
    pub goodput: f64,
    /// Latency of every request.
    pub latency: Percentiles,
    /// Latency of the `200` answers only.
    pub latency_ok: Percentiles,
    /// Count by HTTP status (`0`: no answer).
    pub statuses: BTreeMap<u16, u64>,
    /// Count by problem code.
    pub codes: BTreeMap<String, u64>,
    /// `200` answers that were degraded.
    pub degraded: u64,
    /// Degraded components: component → reason → count.
    pub degraded_by: BTreeMap<String, BTreeMap<String, u64>>,
    /// Per second of the run: `(second, requests, p50, p90, p99)` in ms.
    pub timeline: Vec<(u64, u64, f64, f64, f64)>,
    /// Latency histogram: `(upper bound ms, count)`, log-spaced buckets.
    pub histogram: Vec<(f64, u64)>,
}

/// A histogram of 1 µs .. 60 s at 3 significant digits.
fn new_histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 60_000_000, 3).context("histogram bounds")
}

impl Summary {
    /// Summarises `answers` of a run that lasted `duration`.
    pub fn of(answers: &[Answer], duration: Duration) -> anyhow::Result<Summary> {
        let mut all = new_histogram()?;
        let mut ok = new_histogram()?;
        let mut seconds: BTreeMap<u64, Histogram<u64>> = BTreeMap::new();
        let (mut statuses, mut codes) = (BTreeMap::new(), BTreeMap::new());
        let (mut degraded, mut degraded_by) = (0, BTreeMap::<String, BTreeMap<String, u64>>::new());
        for answer in answers {
            let us = (answer.latency.as_micros() as u64).clamp(1, 60_000_000);
            all.record(us).context("recording a latency")?;
            let second = seconds.entry(answer.due.as_secs()).or_insert(new_histogram()?);
            second.record(us).context("recording a latency")?;
            *statuses.entry(answer.status).or_insert(0) += 1;
            if let Some(code) = &answer.code {
                *codes.entry(code.clone()).or_insert(0) += 1;
            }
            if answer.status == 200 {
                ok.record(us).context("recording a latency")?;
            }
            if !answer.degraded.is_empty() {
                degraded += 1;
            }
            for (component, reason) in &answer.degraded {
                *degraded_by.entry(component.clone()).or_default().entry(reason.clone()).or_insert(0) += 1;
            }
        }
        let secs = duration.as_secs_f64().max(1e-9);
        let requests = answers.len() as u64;
        let answered = requests - statuses.get(&0).copied().unwrap_or(0);
        let good = statuses.get(&200).copied().unwrap_or(0);
        let timeline = seconds
            .iter()
            .map(|(second, h)| {
                let p = Percentiles::of(h);
                (*second, h.len(), p.p50, p.p90, p.p99)
            })
            .collect();
        // Log-spaced (1-2-5) buckets from 0.5 ms to 60 s, for the picture.
        let mut histogram = Vec::new();
        let mut lower_us = 0u64;
        for upper_ms in [
            0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0,
            60000.0,
        ] {
            let upper_us = (upper_ms * 1000.0) as u64;
            let from = if lower_us == 0 { 0 } else { lower_us + 1 };
            histogram.push((upper_ms, all.count_between(from, upper_us)));
            lower_us = upper_us;
        }
        Ok(Summary {
            requests,
            seconds: secs,
            throughput: answered as f64 / secs,
            goodput: good as f64 / secs,
            latency: Percentiles::of(&all),
            latency_ok: Percentiles::of(&ok),
            statuses,
            codes,
            degraded,
            degraded_by,
            timeline,
            histogram,
        })
    }

    /// Share of `200` answers that were degraded.
    pub fn degraded_rate(&self) -> f64 {
        self.degraded as f64 / self.statuses.get(&200).copied().unwrap_or(0).max(1) as f64
    }

    /// Share of requests not answered `200`.
    pub fn error_rate(&self) -> f64 {
        let good = self.statuses.get(&200).copied().unwrap_or(0);
        (self.requests - good) as f64 / self.requests.max(1) as f64
    }

    /// The summary as JSON (the report's `result`).
    pub fn json(&self) -> Value {
        let r = |v: f64| (v * 1000.0).round() / 1000.0;
        json!({
            "requests": self.requests,
            "seconds": r(self.seconds),
            "throughput_per_s": r(self.throughput),
            "goodput_per_s": r(self.goodput),
            "latency_ms": self.latency.json(),
            "latency_ok_ms": self.latency_ok.json(),
            "error_rate": r(self.error_rate()),
            "statuses": self.statuses.iter().map(|(s, n)| (s.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
            "problem_codes": self.codes,
            "degraded": {"responses": self.degraded, "rate": r(self.degraded_rate()), "by_component": self.degraded_by},
            "timeline": self.timeline.iter().map(|(s, n, p50, p90, p99)| json!({"second": s, "requests": n, "p50": r(*p50), "p90": r(*p90), "p99": r(*p99)})).collect::<Vec<_>>(),
            "histogram_ms": self.histogram.iter().map(|(upper, n)| json!({"le": upper, "count": n})).collect::<Vec<_>>(),
        })
    }
}

/// Sums a metric's samples (every label set) in a Prometheus exposition.
pub fn metric_sum(exposition: &str, name: &str) -> f64 {
    exposition
        .lines()
        .filter(|line| {
            line.strip_prefix(name).is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A named load scenario: a screen, a rate relative to the measured peak,
/// the mocks' faults during the run and the BFF's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchScenario {
    /// Its name on the command line.
    pub name: &'static str,
    /// What it shows, for the report.
    pub about: &'static str,
    /// The screen's paths, asked in turn.
    pub paths: Vec<String>,
    /// `None`: closed loop (finds the peak); `Some(f)`: open loop at `f` × peak.
    pub of_peak: Option<f64>,
    /// Requests in flight at most (open loop) or clients (closed loop).
    pub connections: usize,
    /// `PUT /__faults` bodies by mock, for the run.
    pub faults: Vec<(&'static str, Value)>,
    /// Environment of the BFF for the run (configuration overrides).
    pub bff_env: Vec<(&'static str, &'static str)>,
    /// The latency every dependency of the screen was given, to report the
    /// latency the BFF adds over the slowest one.
    pub injected_ms: Option<f64>,
    /// A mock whose calls per request the report states (hedging's cost).
    pub count_calls_to: Option<&'static str>,
}

/// mobile-bff's home dependencies.
const HOME: [&str; 5] = ["user", "cart", "recommendations", "promotions", "shipping"];

impl BenchScenario {
    /// Every named scenario, in the order `all` runs them (`peak` first:
    /// the others are set relative to it).
    pub fn all() -> Vec<BenchScenario> {
        let home = vec!["/v1/home".to_owned()];
        let products: Vec<String> = (1..=8).map(|n| format!("/v1/product-page/p-{n}")).collect();
        // Closed loop: 64 clients. Open loop: up to 256 in flight, so the
        // queue forms at the BFF (as with many independent devices), not in
        // the load tool's connection pool.
        let base = |name, about, paths: &Vec<String>, of_peak: Option<f64>| BenchScenario {
            name,
            about,
            paths: paths.clone(),
            of_peak,
            connections: if of_peak.is_some() { 256 } else { 64 },
            faults: Vec::new(),
            bff_env: Vec::new(),
            injected_ms: None,
            count_calls_to: None,
        };
        // #11's tail case: 2% of recommendation calls 100 ms slow.
        let two_percent_slow = json!({"slowRatio": 0.02, "slowMs": 100});
        vec![
            base("peak", "closed loop, 64 clients: the most /v1/home answers per second", &home, None),
            base("healthy", "/v1/home at half the peak, healthy mocks", &home, Some(0.5)),
            BenchScenario {
                faults: HOME.iter().map(|s| (*s, json!({"latencyMs": 20}))).collect(),
                injected_ms: Some(20.0),
                ..base(
                    "added-latency",
                    "/v1/home at half the peak, every dependency +20 ms: what the BFF adds over the slowest",
                    &home,
                    Some(0.5),
                )
            },
            BenchScenario {
                // Shipping: optional and not cached (recommendations would be
                // served from the cache and show nothing).
                faults: vec![("shipping", json!({"latencyMs": 2000}))],
                ..base(
                    "slow-optional",
                    "/v1/home at half the peak, shipping (optional, uncached) 2 s slow: degraded, not slow",
                    &home,
                    Some(0.5),
                )
            },
            BenchScenario {
                count_calls_to: Some("recommendations"),
                ..base(
                    "product-page",
                    "product pages at a quarter of the peak, healthy: the tail hedging is measured against",
                    &products,
                    Some(0.25),
                )
            },
            BenchScenario {
                faults: vec![("recommendations", two_percent_slow.clone())],
                bff_env: vec![("MOBILE_BFF__DOWNSTREAM__SERVICES__RECOMMENDATIONS__HEDGE__ENABLED", "false")],
                count_calls_to: Some("recommendations"),
                ..base(
                    "hedging-off",
                    "product pages at a quarter of the peak, 2% of recommendation calls +100 ms, no hedging",
                    &products,
                    Some(0.25),
                )
            },
            BenchScenario {
                faults: vec![("recommendations", two_percent_slow)],
                bff_env: vec![("MOBILE_BFF__DOWNSTREAM__SERVICES__RECOMMENDATIONS__HEDGE__ENABLED", "true")],
                count_calls_to: Some("recommendations"),
                ..base(
                    "hedging-on",
                    "product pages at a quarter of the peak, 2% of recommendation calls +100 ms, hedged",
                    &products,
                    Some(0.25),
                )
            },
            BenchScenario {
                faults: vec![("cart", json!({"errorRatio": 1.0}))],
                ..base(
                    "critical-down",
                    "/v1/home at half the peak, cart (critical) answering 503: fast, clear errors",
                    &home,
                    Some(0.5),
                )
            },
            BenchScenario {
                connections: 1024,
                ..base(
                    "overload-2x",
                    "/v1/home offered at twice the peak, default limit (512 at once): goodput and what is shed",
                    &home,
                    Some(2.0),
                )
            },
            BenchScenario {
                connections: 1024,
                bff_env: vec![("MOBILE_BFF__SERVER__MAX_CONCURRENT_REQUESTS", "96")],
                ..base(
                    "overload-2x-limit-96",
                    "/v1/home offered at twice the peak, at most 96 at once (about peak x 35 ms): the rest shed",
                    &home,
                    Some(2.0),
                )
            },
        ]
    }

    /// The scenario called `name`.
    pub fn named(name: &str) -> Option<BenchScenario> {
        Self::all().into_iter().find(|s| s.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn degraded_envelopes_name_their_components_and_reasons() {
        let body = br#"{"degraded":true,"components":{"profile":{"status":"ok"},"recommendations":{"status":"fallback","reasonCode":"timeout"}}}"#;
        assert!(says_degraded(body));
        assert_eq!(degraded_components(body), vec![("recommendations".to_owned(), "timeout".to_owned())]);
        assert!(!says_degraded(br#"{"degraded":false,"components":{}}"#));
    }

    #[test]
    fn a_summary_counts_statuses_codes_and_degraded_parts_by_second() {
        let answer = |ms: u64, status: u16, code: Option<&str>, degraded: &[(&str, &str)]| Answer {
            due: Duration::from_millis(ms),
            latency: Duration::from_millis(10),
            status,
            code: code.map(str::to_owned),
            degraded: degraded.iter().map(|(c, r)| ((*c).to_owned(), (*r).to_owned())).collect(),
        };
        let answers = vec![
            answer(0, 200, None, &[]),
            answer(500, 200, None, &[("recommendations", "timeout")]),
            answer(1200, 503, Some("overloaded"), &[]),
            answer(1500, 0, None, &[]),
        ];
        let summary = Summary::of(&answers, Duration::from_secs(2)).expect("a summary");
        assert_eq!((summary.requests, summary.degraded), (4, 1));
        assert_eq!(summary.codes.get("overloaded"), Some(&1));
        assert_eq!(summary.degraded_by["recommendations"]["timeout"], 1);
        assert_eq!(summary.timeline.iter().map(|t| (t.0, t.1)).collect::<Vec<_>>(), vec![(0, 2), (1, 2)]);
        assert!((summary.throughput - 1.5).abs() < 1e-9, "three answered in 2 s");
        assert!((summary.goodput - 1.0).abs() < 1e-9);
        assert!((summary.degraded_rate() - 0.5).abs() < 1e-9);
        assert!((summary.latency.p50 - 10.0).abs() < 0.1);
    }

    #[test]
    fn metric_sums_add_every_label_set_of_one_name_only() {
        let exposition = "# TYPE x counter\nbff_calls_sum{route=\"/a\"} 3\nbff_calls_sum{route=\"/b\"} 4.5\nbff_calls_sum_other 100\nbff_calls_sum 1\n";
        assert!((metric_sum(exposition, "bff_calls_sum") - 8.5).abs() < 1e-9);
    }
}
