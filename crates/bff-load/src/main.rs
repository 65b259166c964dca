//! `bff-load`: the fault scenarios against running processes, for figures.
//!
//! ```text
//! bff-load [<scenario>... | all] [--bff URL] [--clients N] [--seconds S] [--bff-pid PID]
//! bff-load bench <load scenario>... | all | custom [...]     (see `bff-load bench --help`)
//! bff-load hold --bff-pid PID [--connections N]              (memory under many open connections)
//! ```
//!
//! Plays each named scenario (see `bff_load::scenario`; `cold-burst` too)
//! on mobile-bff's product page (`/v1/product-page/p-1` … `p-8`) with the
//! mocks on their local ports, and prints one line per scenario and a
//! markdown table: requests, failed, the amplification factor, p99, whether
//! the bound held, and, with `--bff-pid`, the BFF's CPU time per thousand
//! requests (utime + stime from `/proc/<pid>/stat`). `RELIABILITY.md` says
//! how to pin the processes for figures worth comparing.
//!
//! The screen's timeouts and deadline are read from mobile-bff's own
//! defaults, so the bounds follow the configuration the BFF runs with
//! (start it without overrides).

mod cli_bench;
mod cli_hold;

use std::time::Duration;

use anyhow::{Context as _, bail};
use bff_load::scenario::{Scenario, Subject};
use bff_load::{Mocks, Run, Target};
use services_mock::Service;
use services_mock::identity::{DEFAULT_ISSUER, Identity};

const USAGE: &str =
    "usage: bff-load [<scenario>... | all] [--bff URL] [--clients N] [--seconds S] [--bff-pid PID]
       bff-load --list

scenarios: blip-50ms blip-200ms brownout hard-down flapping slow-optional cold-burst
  --bff URL      mobile-bff's base URL (http://127.0.0.1:8081)
  --clients N    concurrent clients, each sending its next request when answered (32)
  --seconds S    run each fault scenario at least S seconds (the fault still starts at 1 s)
  --bff-pid PID  also report the BFF's CPU time per 1,000 requests, from /proc
cold-burst needs a BFF that has served nothing yet: start one, then run it first.
load scenarios (latency, throughput, reports): bff-load bench --help
memory under many open connections: bff-load hold --help";

struct Options {
    scenarios: Vec<String>,
    bff: String,
    clients: usize,
    seconds: Option<u64>,
    pid: Option<u32>,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options {
        scenarios: Vec::new(),
        bff: format!("http://127.0.0.1:{}", mobile_entry()?.port),
        clients: 32,
        seconds: None,
        pid: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value\n{USAGE}"));
        match arg.as_str() {
            "--bff" => options.bff = value("--bff")?,
            "--clients" => options.clients = value("--clients")?.parse().context("--clients")?,
            "--seconds" => options.seconds = Some(value("--seconds")?.parse().context("--seconds")?),
            "--bff-pid" => options.pid = Some(value("--bff-pid")?.parse().context("--bff-pid")?),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "--list" => {
                println!("cold-burst");
                for scenario in Scenario::ALL {
                    println!("{}", scenario.name());
                }
                std::process::exit(0);
            }
            "all" => {
                options.scenarios.push("cold-burst".to_owned());
                options.scenarios.extend(Scenario::ALL.iter().map(|s| s.name().to_owned()));
            }
            name if name == "cold-burst" || Scenario::named(name).is_some() => {
                options.scenarios.push(name.to_owned())
            }
            other => bail!("unknown argument `{other}`\n{USAGE}"),
        }
    }
    if options.scenarios.is_empty() {
        bail!("name a scenario\n{USAGE}");
    }
    Ok(options)
}

fn mobile_entry() -> anyhow::Result<&'static bff_registry::Bff> {
    bff_registry::find("mobile").context("the registry has no mobile BFF")
}

fn mock(service: Service) -> String {
    format!("http://127.0.0.1:{}", service.default_port())
}

/// utime + stime of `pid`, from `/proc/<pid>/stat` (in clock ticks of 10 ms).
fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).context("reading /proc/<pid>/stat")?;
    // The command name may hold spaces; the fields after it are fixed.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).context("unreadable /proc/<pid>/stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |at: usize| -> anyhow::Result<u64> {
        fields.get(at).context("short /proc/<pid>/stat")?.parse().context("unreadable /proc/<pid>/stat")
    };
    // Fields 14 and 15 of stat(5); `after` starts at field 3.
    Ok(Duration::from_millis((ticks(11)? + ticks(12)?) * 10))
}

struct Row {
    name: String,
    run: Run,
    fault: Duration,
    verdict: Result<String, String>,
    cpu: Option<Duration>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("bench") => return cli_bench::run(&args[1..]).await,
        Some("hold") => return cli_hold::run(&args[1..]).await,
        Some("bench-env") => return cli_bench::env(args.get(1).context("bench-env <scenario>")?),
        Some("bench-table") => {
            let dir = args.get(1).context("bench-table <dir>")?;
            print!("{}", cli_bench::table_of(std::path::Path::new(dir))?);
            return Ok(());
        }
        _ => {}
    }
    let options = options()?;
    let entry = mobile_entry()?;
    let config = mobile_bff::bff().defaults();
    let subject = Subject::product_page(&config);
    let token = Identity::new(DEFAULT_ISSUER)?.user_token(entry, "u-1", Duration::from_secs(3600))?;
    let target = Target {
        base: options.bff.clone(),
        paths: (1..=8).map(|n| format!("/v1/product-page/p-{n}")).collect(),
        headers: vec![("authorization".to_owned(), format!("Bearer {token}"))],
    };
    let mocks: Mocks = [Service::Pricing, Service::Recommendations, Service::Catalog, Service::Identity]
        .into_iter()
        .map(|service| (service.name().to_owned(), mock(service)))
        .collect();
    let mut rows = Vec::new();
    for name in &options.scenarios {
        let cpu_before = options.pid.map(cpu_time).transpose()?;
        let row = if name == "cold-burst" {
            let (run, verdict) = bff_load::cold_burst(&target, &mocks, &subject, 200).await?;
            Row { name: name.clone(), run, fault: Duration::ZERO, verdict, cpu: None }
        } else {
            let scenario = Scenario::named(name).context("unknown scenario")?;
            // Warm: tokens exchanged, catalog snippets cached, connections open.
            for path in &target.paths {
                let warm = Target { paths: vec![path.clone()], ..target.clone() };
                bff_load::burst(&warm, 1).await?;
            }
            let seconds = Duration::from_secs(options.seconds.unwrap_or(0));
            let duration = scenario.duration().max(seconds);
            let run = bff_load::run(&target, &mocks, options.clients, duration, &scenario.schedule(&subject))
                .await?;
            let verdict = scenario.check(&subject, &run);
            Row { name: name.clone(), run, fault: scenario.fault(), verdict, cpu: None }
        };
        let cpu = match (options.pid, cpu_before) {
            (Some(pid), Some(before)) => Some(cpu_time(pid)?.saturating_sub(before)),
            _ => None,
        };
        match &row.verdict {
            Ok(summary) => println!("ok   {summary}"),
            Err(why) => println!("FAIL {why}"),
        }
        rows.push(Row { cpu, ..row });
        // Let breakers close and caches settle between scenarios.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    println!();
    println!(
        "| scenario | requests | failed | failed % | amplification | p99 | bound | BFF CPU ms / 1k req |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for row in &rows {
        let run = &row.run;
        let amplification = if row.fault.is_zero() {
            "–".to_owned()
        } else {
            format!("{:.2}", run.amplification(row.fault))
        };
        let cpu = row
            .cpu
            .map(|cpu| format!("{:.0}", cpu.as_secs_f64() * 1e6 / run.total().max(1) as f64))
            .unwrap_or_else(|| "–".to_owned());
        println!(
            "| {} | {} | {} | {:.2}% | {} | {} ms | {} | {} |",
            row.name,
            run.total(),
            run.failed(),
            100.0 * run.failed() as f64 / run.total().max(1) as f64,
            amplification,
            Run::latency_quantile(&run.samples, 0.99).as_millis(),
            if row.verdict.is_ok() { "met" } else { "**broken**" },
            cpu,
        );
    }
    if rows.iter().any(|row| row.verdict.is_err()) {
        std::process::exit(1);
    }
    Ok(())
}
