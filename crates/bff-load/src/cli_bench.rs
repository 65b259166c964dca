//! `bff-load bench`: the load scenarios of `bff_load::bench` against a
//! running BFF, with reports. `cargo xtask load bench` is the way in: it
//! builds release binaries, pins the BFF to one core and runs this on the
//! other, one fresh BFF per scenario.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use bff_load::Target;
use bff_load::bench::{self, BenchScenario, Mode, Summary};
use bff_registry::Auth;
use serde_json::{Value, json};
use services_mock::Service;
use services_mock::identity::{DEFAULT_ISSUER, Identity};

const USAGE: &str = "usage: bff-load bench <scenario>... | all | custom [options]
       bff-load bench-env <scenario>        the BFF's environment for a scenario (KEY=VALUE lines)
       bff-load bench-table <dir>           PERFORMANCE.md's table from the JSON reports in <dir>

scenarios: {scenarios}
  --peak R         the peak (req/s) the open-loop scenarios are relative to (else `peak` must run first)
  --seconds S      how long each runs (10)
  --bff URL        the BFF (http://127.0.0.1:<its port>)     --admin URL   its admin listener (port + 1000)
  --bff-pid PID    report the BFF's CPU time per request, from /proc
  --mocks-pid PID  report the mocks' CPU time per call they answered, from /proc
  --out DIR        where the JSON, SVG and HTML reports go (load-reports)
custom runs (one screen of any client; a token or session is made for it):
  --client NAME    mobile, web, partner, admin, tv (mobile)   --user ID   the caller (u-1, staff s-1)
  --path P         a path to ask; repeat for several (/v1/home)
  --rate R         open loop at R req/s   |   --closed   closed loop (finds the peak)
  --connections C  in flight at most / clients (64)";

/// The usage text, with the scenario names from the code.
pub(crate) fn usage() -> String {
    let names: Vec<&str> = BenchScenario::all().iter().map(|s| s.name).collect();
    USAGE.replace("{scenarios}", &names.join(" "))
}

#[derive(Debug)]
struct Options {
    scenarios: Vec<String>,
    peak: Option<f64>,
    seconds: u64,
    bff: Option<String>,
    admin: Option<String>,
    pid: Option<u32>,
    mocks_pid: Option<u32>,
    out: PathBuf,
    client: String,
    user: Option<String>,
    paths: Vec<String>,
    rate: Option<f64>,
    closed: bool,
    connections: Option<usize>,
}

fn options(args: &[String]) -> anyhow::Result<Options> {
    let mut options = Options {
        scenarios: Vec::new(),
        peak: None,
        seconds: 10,
        bff: None,
        admin: None,
        pid: None,
        mocks_pid: None,
        out: PathBuf::from("load-reports"),
        client: "mobile".to_owned(),
        user: None,
        paths: Vec::new(),
        rate: None,
        closed: false,
        connections: None,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value =
            |name: &str| args.next().cloned().with_context(|| format!("{name} needs a value\n{}", usage()));
        match arg.as_str() {
            "--peak" => options.peak = Some(value("--peak")?.parse().context("--peak")?),
            "--seconds" => options.seconds = value("--seconds")?.parse().context("--seconds")?,
            "--bff" => options.bff = Some(value("--bff")?),
            "--admin" => options.admin = Some(value("--admin")?),
            "--bff-pid" => options.pid = Some(value("--bff-pid")?.parse().context("--bff-pid")?),
            "--mocks-pid" => options.mocks_pid = Some(value("--mocks-pid")?.parse().context("--mocks-pid")?),
            "--out" => options.out = PathBuf::from(value("--out")?),
            "--client" => options.client = value("--client")?,
            "--user" => options.user = Some(value("--user")?),
            "--path" => options.paths.push(value("--path")?),
            "--rate" => options.rate = Some(value("--rate")?.parse().context("--rate")?),
            "--closed" => options.closed = true,
            "--connections" => {
                options.connections = Some(value("--connections")?.parse().context("--connections")?)
            }
            "-h" | "--help" => {
                println!("{}", usage());
                std::process::exit(0);
            }
            "all" => options.scenarios.extend(BenchScenario::all().iter().map(|s| s.name.to_owned())),
            "custom" => options.scenarios.push("custom".to_owned()),
            name if BenchScenario::named(name).is_some() => options.scenarios.push(name.to_owned()),
            other => bail!("unknown argument `{other}`\n{}", usage()),
        }
    }
    if options.scenarios.is_empty() {
        bail!("name a scenario, `all` or `custom`\n{}", usage());
    }
    Ok(options)
}

/// `bff-load bench-env <scenario>`.
pub(crate) fn env(name: &str) -> anyhow::Result<()> {
    let scenario = BenchScenario::named(name).with_context(|| format!("no load scenario `{name}`"))?;
    for (key, value) in scenario.bff_env {
        println!("{key}={value}");
    }
    Ok(())
}

/// `bff-load bench ...`.
pub(crate) async fn run(args: &[String]) -> anyhow::Result<()> {
    let options = options(args)?;
    std::fs::create_dir_all(&options.out).with_context(|| format!("creating {}", options.out.display()))?;
    let mut peak = options.peak;
    let mut rows = Vec::new();
    for name in &options.scenarios {
        let scenario =
            if name == "custom" { custom(&options)? } else { BenchScenario::named(name).context("known")? };
        let client = if name == "custom" { options.client.as_str() } else { "mobile" };
        let entry = bff_registry::find(client).with_context(|| format!("no client `{client}`"))?;
        let base = options.bff.clone().unwrap_or_else(|| format!("http://127.0.0.1:{}", entry.port));
        let admin =
            options.admin.clone().unwrap_or_else(|| format!("http://127.0.0.1:{}", entry.port + 1000));
        let target = Target {
            base,
            paths: scenario.paths.clone(),
            headers: credentials(entry, options.user.as_deref()).await?,
        };
        let mode = match (scenario.of_peak, options.rate, options.closed) {
            (_, _, true) | (None, None, _) => Mode::Closed,
            (_, Some(rate), false) => Mode::Open { rate },
            (Some(share), None, false) => match peak {
                Some(peak) => Mode::Open { rate: (peak * share).max(1.0) },
                None => bail!("`{name}` runs at {share} x the peak: pass --peak or run `peak` first"),
            },
        };
        let connections = options.connections.unwrap_or(scenario.connections);
        // Warm at the run's own rate (at most half the peak, so an overload
        // run starts from a working BFF, not an already collapsed one).
        let warm = match (mode, peak) {
            (Mode::Open { rate }, Some(peak)) => Mode::Open { rate: rate.min(peak * 0.5) },
            (mode, _) => mode,
        };
        let report = play(&scenario, client, &target, &admin, (warm, mode), connections, &options).await?;
        if scenario.name == "peak" {
            peak = report["result"]["goodput_per_s"].as_f64();
        }
        rows.push(report);
    }
    println!("{}", table(&rows));
    println!("reports (JSON, SVG, HTML): {}", options.out.display());
    Ok(())
}

fn custom(options: &Options) -> anyhow::Result<BenchScenario> {
    let paths = if options.paths.is_empty() { vec!["/v1/home".to_owned()] } else { options.paths.clone() };
    if !options.closed && options.rate.is_none() {
        bail!("a custom run needs --rate R (open loop) or --closed");
    }
    Ok(BenchScenario {
        name: "custom",
        about: "a custom run",
        paths,
        of_peak: None,
        connections: 64,
        faults: Vec::new(),
        bff_env: Vec::new(),
        injected_ms: None,
        count_calls_to: None,
    })
}

/// What a caller of `entry` presents: a token minted with the development
/// key, or (web) a session cookie from a real login, or (TV) a token from
/// the device flow, both through `services-mock token`.
async fn credentials(entry: &bff_registry::Bff, user: Option<&str>) -> anyhow::Result<Vec<(String, String)>> {
    let user = user.unwrap_or(if entry.auth == Auth::Staff { "s-1" } else { "u-1" });
    match entry.auth {
        Auth::Bearer | Auth::Staff | Auth::ClientCredentials => {
            let token = Identity::new(DEFAULT_ISSUER)?.user_token(entry, user, Duration::from_secs(3600))?;
            Ok(vec![("authorization".to_owned(), format!("Bearer {token}"))])
        }
        Auth::Session | Auth::Device => {
            let mocks = std::env::current_exe()?.with_file_name("services-mock");
            let output = std::process::Command::new(&mocks)
                .args(["token", "--client", entry.short_name(), "--user", user])
                .output()
                .with_context(|| format!("running {}", mocks.display()))?;
            if !output.status.success() {
                bail!("no credentials for {}: {}", entry.name, String::from_utf8_lossy(&output.stderr));
            }
            let minted = String::from_utf8_lossy(&output.stdout).trim().to_owned();
            Ok(vec![if entry.auth == Auth::Session {
                ("cookie".to_owned(), minted)
            } else {
                ("authorization".to_owned(), format!("Bearer {minted}"))
            }])
        }
    }
}

fn mock(name: &str) -> anyhow::Result<String> {
    let service: Service = name.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(format!("http://127.0.0.1:{}", service.default_port()))
}

/// Every domain mock's request count (the identity provider's excluded:
/// token exchanges are not the screen's calls).
async fn mock_calls(
    http: &reqwest::Client,
) -> anyhow::Result<(u64, std::collections::BTreeMap<String, u64>)> {
    let mut total = 0;
    let mut by = std::collections::BTreeMap::new();
    for service in Service::ALL.into_iter().filter(|s| *s != Service::Identity) {
        let url = format!("http://127.0.0.1:{}/__stats", service.default_port());
        let stats: Value = http.get(url).send().await?.json().await?;
        let count = stats["total"].as_u64().unwrap_or_default();
        total += count;
        by.insert(service.name().to_owned(), count);
    }
    Ok((total, by))
}

async fn bff_calls(http: &reqwest::Client, admin: &str) -> Option<(f64, f64)> {
    let text = http.get(format!("{admin}/metrics")).send().await.ok()?.text().await.ok()?;
    Some((
        bench::metric_sum(&text, "bff_downstream_calls_per_request_sum"),
        bench::metric_sum(&text, "bff_downstream_calls_per_request_count"),
    ))
}

/// Plays one scenario: warm up, set the faults, measure, heal, report.
///
/// The warm-up runs at the measured run's rate and connections (`modes`:
/// warm-up, run) for two seconds: with a gentler one, the first second of
/// the run was the BFF growing its connection pools to the services (a
/// burst of connects and a 50-250 ms stall, seen in every scenario's
/// timeline), which is a cold start, not the steady state a scenario
/// measures.
async fn play(
    scenario: &BenchScenario,
    client: &str,
    target: &Target,
    admin: &str,
    (warm, mode): (Mode, Mode),
    connections: usize,
    options: &Options,
) -> anyhow::Result<Value> {
    let http = reqwest::Client::new();
    // Warm: tokens exchanged, parts cached, connections open.
    bench::drive(target, Mode::Closed, 4, Duration::from_secs(1)).await?;
    bench::drive(target, warm, connections, Duration::from_secs(2)).await?;
    for (service, faults) in &scenario.faults {
        let reply = http.put(format!("{}/__faults", mock(service)?)).json(faults).send().await?;
        if !reply.status().is_success() {
            bail!("{service} refused faults {faults}: {}", reply.text().await.unwrap_or_default());
        }
    }
    let (mocks_before, by_before) = mock_calls(&http).await?;
    let bff_before = bff_calls(&http, admin).await;
    let cpu_before = options.pid.map(crate::cpu_time).transpose()?;
    let mocks_cpu_before = options.mocks_pid.map(crate::cpu_time).transpose()?;
    eprintln!("{}: {}", scenario.name, scenario.about);
    let duration = Duration::from_secs(options.seconds.max(1));
    let answers = bench::drive(target, mode, connections, duration).await;
    let cpu = cpu_since(options.pid, cpu_before)?;
    let mocks_cpu = cpu_since(options.mocks_pid, mocks_cpu_before)?;
    let (mocks_after, by_after) = mock_calls(&http).await?;
    let bff_after = bff_calls(&http, admin).await;
    for (service, _) in &scenario.faults {
        http.delete(format!("{}/__faults", mock(service)?)).send().await?.error_for_status()?;
    }
    let answers = answers?;
    let summary = Summary::of(&answers, duration)?;
    let requests = summary.requests.max(1) as f64;
    let round = |v: f64| (v * 1000.0).round() / 1000.0;
    let mock_total = mocks_after.saturating_sub(mocks_before) as f64;
    let mut calls = json!({
        "mocks": mock_total,
        "mocks_per_request": round(mock_total / requests),
    });
    if let (Some((sum_before, count_before)), Some((sum_after, count_after))) = (bff_before, bff_after) {
        let counted = sum_after - sum_before;
        let per = counted / (count_after - count_before).max(1.0);
        calls["bff_metrics"] = json!(counted);
        calls["bff_per_request"] = json!(round(per));
        // Equal but for the background refreshes of stale cached parts,
        // which reach the mocks after their request was counted.
        calls["agree"] = json!((counted - mock_total).abs() <= (0.01 * mock_total).max(2.0));
    }
    let mut report = json!({
        "scenario": scenario.name,
        "about": scenario.about,
        "client": client,
        "paths": target.paths,
        "load": match mode {
            Mode::Open { rate } => json!({"mode": "open", "rate_per_s": round(rate), "connections": connections, "seconds": duration.as_secs()}),
            Mode::Closed => json!({"mode": "closed", "connections": connections, "seconds": duration.as_secs()}),
        },
        "faults": scenario.faults.iter().map(|(s, f)| (s.to_string(), f.clone())).collect::<serde_json::Map<_, _>>(),
        "bff_env": scenario.bff_env.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "result": summary.json(),
        "calls": calls,
    });
    if let Some(cpu) = cpu {
        report["cpu"] = json!({
            "bff_ms": round(cpu.as_secs_f64() * 1000.0),
            "us_per_request": round(cpu.as_secs_f64() * 1e6 / requests),
            "method": "utime+stime of the BFF from /proc/<pid>/stat over the run (10 ms ticks)",
        });
    }
    if let Some(cpu) = mocks_cpu {
        report["mocks_cpu"] = json!({
            "ms": round(cpu.as_secs_f64() * 1000.0),
            "us_per_call": round(cpu.as_secs_f64() * 1e6 / mock_total.max(1.0)),
            "method": "utime+stime of the mocks' process from /proc/<pid>/stat over the run, per call they answered",
        });
    }
    if let Some(injected) = scenario.injected_ms {
        report["added_latency_ms"] = json!({
            "over": injected,
            "p50": round(summary.latency.p50 - injected),
            "p99": round(summary.latency.p99 - injected),
        });
    }
    if let Some(service) = scenario.count_calls_to {
        let calls = by_after
            .get(service)
            .copied()
            .unwrap_or(0)
            .saturating_sub(by_before.get(service).copied().unwrap_or(0));
        report["calls_to"] = json!({
            "service": service,
            "calls": calls,
            "per_request": round(calls as f64 / requests),
            "extra_percent": round((calls as f64 / requests - 1.0) * 100.0),
        });
    }
    write(&options.out, scenario.name, &report, &summary)?;
    eprintln!("{}", line(&report));
    Ok(report)
}

/// The CPU time `pid` used since it had used `before` (both or neither).
fn cpu_since(pid: Option<u32>, before: Option<Duration>) -> anyhow::Result<Option<Duration>> {
    match (pid, before) {
        (Some(pid), Some(before)) => Ok(Some(crate::cpu_time(pid)?.saturating_sub(before))),
        _ => Ok(None),
    }
}

fn write(dir: &Path, name: &str, report: &Value, summary: &Summary) -> anyhow::Result<()> {
    let picture =
        bff_load::report::svg(&format!("{name}: {}", report["about"].as_str().unwrap_or("")), summary);
    let json = serde_json::to_string_pretty(report)?;
    std::fs::write(dir.join(format!("{name}.json")), json + "\n").context("writing the JSON report")?;
    std::fs::write(dir.join(format!("{name}.svg")), &picture).context("writing the SVG")?;
    std::fs::write(dir.join(format!("{name}.html")), bff_load::report::html(report, &picture))
        .context("writing the HTML report")?;
    Ok(())
}

/// One line per run, for the terminal.
fn line(report: &Value) -> String {
    let r = &report["result"];
    format!(
        "{}: {} requests, {:.0} req/s ({:.0} ok/s), p50 {} ms, p99 {} ms, p99.9 {} ms, max {} ms, errors {:.2}%, degraded {:.2}%",
        report["scenario"].as_str().unwrap_or(""),
        r["requests"],
        r["throughput_per_s"].as_f64().unwrap_or_default(),
        r["goodput_per_s"].as_f64().unwrap_or_default(),
        r["latency_ms"]["p50"],
        r["latency_ms"]["p99"],
        r["latency_ms"]["p99_9"],
        r["latency_ms"]["max"],
        100.0 * r["error_rate"].as_f64().unwrap_or_default(),
        100.0 * r["degraded"]["rate"].as_f64().unwrap_or_default(),
    )
}

/// The markdown table of `reports`, as PERFORMANCE.md shows it.
pub(crate) fn table(reports: &[Value]) -> String {
    let mut out = String::from(
        "| scenario | load | req/s (ok/s) | p50 | p90 | p99 | p99.9 | max | not 200 | degraded | calls/req mocks · BFF | BFF CPU µs/req | mocks CPU µs/call |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for report in reports {
        let r = &report["result"];
        let load = &report["load"];
        let load = match load["mode"].as_str() {
            Some("open") => format!("open {} /s", load["rate_per_s"]),
            _ => format!("closed, {} clients", load["connections"]),
        };
        let ms = |key: &str| format!("{} ms", r["latency_ms"][key]);
        let mut codes: Vec<String> = r["problem_codes"]
            .as_object()
            .map(|c| c.iter().map(|(code, n)| format!("{n} {code}")).collect())
            .unwrap_or_default();
        codes.truncate(2);
        let errors = format!(
            "{:.2}%{}",
            100.0 * r["error_rate"].as_f64().unwrap_or_default(),
            if codes.is_empty() { String::new() } else { format!(" ({})", codes.join(", ")) }
        );
        let degraded = match r["degraded"]["by_component"].as_object().filter(|c| !c.is_empty()) {
            Some(by) => format!(
                "{:.2}% ({})",
                100.0 * r["degraded"]["rate"].as_f64().unwrap_or_default(),
                by.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
            None => "0%".to_owned(),
        };
        let calls =
            format!("{} · {}", report["calls"]["mocks_per_request"], report["calls"]["bff_per_request"]);
        let cpu = report["cpu"]["us_per_request"].as_f64().map_or("–".to_owned(), |us| format!("{us:.0}"));
        let mocks_cpu =
            report["mocks_cpu"]["us_per_call"].as_f64().map_or("–".to_owned(), |us| format!("{us:.0}"));
        out.push_str(&format!(
            "| {} | {load} | {:.0} ({:.0}) | {} | {} | {} | {} | {} | {errors} | {degraded} | {calls} | {cpu} | {mocks_cpu} |\n",
            report["scenario"].as_str().unwrap_or(""),
            r["throughput_per_s"].as_f64().unwrap_or_default(),
            r["goodput_per_s"].as_f64().unwrap_or_default(),
            ms("p50"),
            ms("p90"),
            ms("p99"),
            ms("p99_9"),
            ms("max"),
        ));
    }
    let extras: Vec<String> = reports
        .iter()
        .filter_map(|report| {
            let name = report["scenario"].as_str()?;
            if let Some(added) = report.get("added_latency_ms") {
                return Some(format!(
                    "* `{name}`: the BFF adds {} ms at p50 and {} ms at p99 over its slowest dependency ({} ms).",
                    added["p50"], added["p99"], added["over"]
                ));
            }
            if report["calls"]["agree"] == json!(false) {
                return Some(format!(
                    "* `{name}`: the BFF counted {} calls per request, the mocks received {}: the BFF counts an \
                     attempt when it starts it, and when a critical part fails the other parts are cancelled, \
                     most before their request reaches the service.",
                    report["calls"]["bff_per_request"], report["calls"]["mocks_per_request"]
                ));
            }
            let calls = report.get("calls_to")?;
            Some(format!(
                "* `{name}`: {} calls to {} per request ({}% extra).",
                calls["per_request"], calls["service"].as_str().unwrap_or(""), calls["extra_percent"]
            ))
        })
        .collect();
    if !extras.is_empty() {
        out.push('\n');
        out.push_str(&extras.join("\n"));
        out.push('\n');
    }
    out
}

/// `bff-load bench-table <dir>`: the table of the reports in `dir`, in the
/// scenarios' order, the last `custom` run last.
pub(crate) fn table_of(dir: &Path) -> anyhow::Result<String> {
    let mut reports = Vec::new();
    let names = BenchScenario::all().into_iter().map(|s| s.name).chain(["custom"]);
    for name in names {
        let path = dir.join(format!("{name}.json"));
        if let Ok(text) = std::fs::read_to_string(&path) {
            reports.push(
                serde_json::from_str::<Value>(&text)
                    .with_context(|| format!("reading {}", path.display()))?,
            );
        }
    }
    if reports.is_empty() {
        bail!("no reports in {}", dir.display());
    }
    Ok(table(&reports))
}
