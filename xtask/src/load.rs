//! `cargo xtask load`: the fault scenarios against release builds, pinned
//! to cores, for the figures in `RELIABILITY.md`.
//!
//! Builds mobile-bff, services-mock and bff-load in release mode, starts
//! the mocks and the load tool on core 1 and mobile-bff alone on core 0
//! (`taskset`), without Redis (the in-process cache tier only). Each
//! scenario runs against a fresh BFF (so `cold-burst` sees a cold instance
//! and no scenario inherits another's open breaker), through `bff-load`
//! with the BFF's pid for its CPU time from `/proc`. The BFF's and mocks'
//! logs go to `target/load/`. `--bin-dir DIR` runs mobile-bff and
//! services-mock from DIR instead (a build of an older commit, for
//! "before" figures).
//!
//! `cargo xtask load bench <scenario>... | all | custom ...` runs the load
//! scenarios (`bff_load::bench`: latency, throughput, errors, degraded rate,
//! calls and CPU per request) the same way, pinned, one fresh BFF per
//! scenario, `peak` first when the others need it; reports go to
//! `target/load/reports/` (JSON, SVG, HTML). `--update-performance`
//! rewrites PERFORMANCE.md's load section from those reports and copies the
//! pictures to `docs/load/`.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::AtomicBool;

use anyhow::{Context as _, bail};

use crate::dev::{Running, ensure_free, shutdown, wait_healthy};
use crate::stack::MOCKS;
use crate::{cargo, root, target_dir};

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    if args.first().is_some_and(|a| a == "bench") {
        return bench(&args[1..]);
    }
    if args.first().is_some_and(|a| a == "hold") {
        return hold(&args[1..]);
    }
    let mut passed = Vec::new();
    let mut bin_dir = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--bin-dir" => bin_dir = Some(PathBuf::from(args.next().context("--bin-dir needs a directory")?)),
            _ => passed.push(arg.clone()),
        }
    }
    let status = cargo()
        .current_dir(root())
        .args(["build", "--release", "--bins", "-p", "mobile-bff", "-p", "services-mock", "-p", "bff-load"])
        .status()
        .context("running cargo build --release")?;
    if !status.success() {
        bail!("cargo build --release failed");
    }
    let release = target_dir().join("release");
    let bins = bin_dir.unwrap_or_else(|| release.clone());
    let cores = Cores::detect();
    let on_core = |core: &str, binary: PathBuf| cores.command(core, binary);
    // Scenario names go one per run, each against a fresh BFF; the rest
    // (--clients, --seconds) goes to every run.
    let list = Command::new(release.join("bff-load")).arg("--list").output().context("bff-load --list")?;
    let known: Vec<String> = String::from_utf8_lossy(&list.stdout).lines().map(str::to_owned).collect();
    let (mut scenarios, mut flags) = (Vec::new(), Vec::new());
    for arg in passed {
        if arg == "all" {
            scenarios.extend(known.iter().cloned());
        } else if known.contains(&arg) {
            scenarios.push(arg);
        } else {
            flags.push(arg);
        }
    }
    if scenarios.is_empty() {
        bail!("name a scenario or `all` (one of: {})", known.join(", "));
    }
    let logs = target_dir().join("load");
    std::fs::create_dir_all(&logs).context("creating target/load")?;
    let log = |name: &str| -> anyhow::Result<std::fs::File> {
        std::fs::File::create(logs.join(format!("{name}.log")))
            .with_context(|| format!("creating {name}.log"))
    };
    let stop = AtomicBool::new(false);
    let mut mocks = Vec::new();
    let mut rows = Vec::new();
    let mut broken = Vec::new();
    let result = (|| -> anyhow::Result<()> {
        start_mocks(on_core("1", bins.join("services-mock")), &log, &mut mocks, &stop)?;
        let mobile = bff_registry::find("mobile").context("no mobile BFF in the registry")?;
        for scenario in &scenarios {
            let child = on_core("0", bins.join(mobile.name))
                .env_remove("REDIS_URL")
                .env(unlimited(mobile), "1000000000")
                .stdout(log(&format!("{}-{scenario}", mobile.name))?)
                .stderr(log(&format!("{}-{scenario}.err", mobile.name))?)
                .spawn()
                .context("starting mobile-bff")?;
            let pid = child.id();
            let mut bff = vec![Running { name: mobile.name.to_owned(), child }];
            let outcome = wait_healthy(mobile.name, mobile.port, &mut bff, &stop).and_then(|()| {
                on_core("1", release.join("bff-load"))
                    .arg(scenario)
                    .args(&flags)
                    .args(["--bff-pid", &pid.to_string()])
                    .output()
                    .context("running bff-load")
            });
            shutdown(&mut bff);
            let output = outcome?;
            let stdout = String::from_utf8_lossy(&output.stdout);
            print!(
                "{}",
                stdout.lines().take_while(|l| !l.is_empty()).map(|l| format!("{l}\n")).collect::<String>()
            );
            eprint!("{}", String::from_utf8_lossy(&output.stderr));
            rows.extend(
                stdout
                    .lines()
                    .filter(|l| l.starts_with("| ") && !l.starts_with("| scenario"))
                    .map(str::to_owned),
            );
            if !output.status.success() {
                broken.push(scenario.clone());
            }
        }
        Ok(())
    })();
    shutdown(&mut mocks);
    result?;
    println!();
    println!(
        "| scenario | requests | failed | failed % | amplification | p99 | bound | BFF CPU ms / 1k req |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for row in rows {
        println!("{row}");
    }
    println!();
    println!("logs of the BFF and the mocks: {}", logs.display());
    if !broken.is_empty() {
        bail!("bounds broken: {}", broken.join(", "));
    }
    Ok(())
}

/// `cargo xtask load hold [--connections N]`: mobile-bff's resident memory
/// idle and holding N open connections (`bff-load hold`), once with the
/// default `server.max_connections` and once with the cap above N, so both
/// the bound and the cost per connection show. Release build, the BFF on
/// core 0 and the tool on core 1; no mocks (`/healthz` needs none).
fn hold(args: &[String]) -> anyhow::Result<()> {
    let mut connections = 10_000usize;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--connections" => {
                connections =
                    args.next().context("--connections needs a number")?.parse().context("--connections")?
            }
            other => bail!("unknown argument `{other}` (cargo xtask load hold [--connections N])"),
        }
    }
    let mobile = bff_registry::find("mobile").context("the registry has no mobile BFF")?;
    ensure_free(mobile.name, mobile.port)?;
    let built = cargo()
        .current_dir(root())
        .args(["build", "--release", "-p", "bff-load", "-p", mobile.name])
        .status()
        .context("running cargo build --release")?;
    if !built.success() {
        bail!("cargo build --release failed");
    }
    let release = target_dir().join("release");
    let cores = Cores::detect();
    let stop = AtomicBool::new(false);
    for cap in [None, Some(connections + 100)] {
        let mut command = cores.command("0", release.join(mobile.name));
        command
            .env_remove("REDIS_URL")
            .env(unlimited(mobile), "1000000000")
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null());
        match cap {
            Some(cap) => {
                println!("== mobile-bff, server.max_connections = {cap}: {connections} connections");
                command.env("MOBILE_BFF__SERVER__MAX_CONNECTIONS", cap.to_string());
            }
            None => println!("== mobile-bff, the default server.max_connections: {connections} connections"),
        }
        let child = command.spawn().context("starting mobile-bff")?;
        let pid = child.id().to_string();
        let mut bff = vec![Running { name: mobile.name.to_owned(), child }];
        let outcome = wait_healthy(mobile.name, mobile.port, &mut bff, &stop).and_then(|()| {
            cores
                .command("1", release.join("bff-load"))
                .args(["hold", "--bff-pid", &pid, "--connections", &connections.to_string()])
                .args(["--bff", &format!("127.0.0.1:{}", mobile.port)])
                .status()
                .context("running bff-load hold")
        });
        shutdown(&mut bff);
        if !outcome?.success() {
            bail!("bff-load hold failed");
        }
    }
    Ok(())
}

/// The markers around the generated part of PERFORMANCE.md.
const BEGIN: &str =
    "<!-- cargo xtask load bench --update-performance: generated from target/load/reports, do not edit -->";
const END: &str = "<!-- end of generated load reports -->";

/// `cargo xtask load bench ...`.
fn bench(args: &[String]) -> anyhow::Result<()> {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        let status = cargo()
            .current_dir(root())
            .args(["run", "-q", "--release", "-p", "bff-load", "--", "bench", "--help"])
            .status()
            .context("running bff-load")?;
        return if status.success() { Ok(()) } else { bail!("bff-load failed") };
    }
    let mut passed = Vec::new();
    let (mut bin_dir, mut update, mut client, mut peak) = (None, false, "mobile".to_owned(), None::<f64>);
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--bin-dir" => bin_dir = Some(PathBuf::from(args.next().context("--bin-dir needs a directory")?)),
            "--update-performance" => update = true,
            "--client" => {
                client = args.next().context("--client needs a name")?.clone();
                passed.extend(["--client".to_owned(), client.clone()]);
            }
            "--peak" => {
                peak = Some(args.next().context("--peak needs a rate")?.parse().context("--peak")?);
            }
            _ => passed.push(arg.clone()),
        }
    }
    let mut packages = vec!["services-mock", "bff-load"];
    packages.extend(bff_registry::BFFS.iter().map(|b| b.name));
    let mut build = cargo();
    build.current_dir(root()).args(["build", "--release", "--bins"]);
    for package in &packages {
        build.args(["-p", package]);
    }
    if !build.status().context("running cargo build --release")?.success() {
        bail!("cargo build --release failed");
    }
    let release = target_dir().join("release");
    let bins = bin_dir.unwrap_or_else(|| release.clone());
    let cores = Cores::detect();
    let on_core = |core: &str, binary: PathBuf| cores.command(core, binary);
    // Scenario names, in `all`'s order (peak first), each against a fresh BFF.
    let known: Vec<String> = {
        let help =
            Command::new(release.join("bff-load")).args(["bench", "--help"]).output().context("bff-load")?;
        let text = String::from_utf8_lossy(&help.stdout).into_owned();
        let line =
            text.lines().find(|l| l.starts_with("scenarios:")).context("bff-load lists its scenarios")?;
        line.trim_start_matches("scenarios:").split_whitespace().map(str::to_owned).collect()
    };
    let (mut scenarios, mut flags) = (Vec::new(), Vec::new());
    for arg in passed {
        if arg == "all" {
            scenarios.extend(known.iter().cloned());
        } else if known.contains(&arg) || arg == "custom" {
            scenarios.push(arg);
        } else {
            flags.push(arg);
        }
    }
    if scenarios.is_empty() {
        bail!("name a load scenario, `all` or `custom` (one of: {})", known.join(", "));
    }
    let relative = scenarios.iter().any(|s| !["peak", "custom"].contains(&s.as_str()));
    if relative && peak.is_none() && !scenarios.iter().any(|s| s == "peak") {
        scenarios.insert(0, "peak".to_owned());
    }
    let reports = target_dir().join("load").join("reports");
    std::fs::create_dir_all(&reports).context("creating target/load/reports")?;
    // A custom run is one-off: its report must not linger into a later
    // table (or PERFORMANCE.md) made of named scenarios.
    if !scenarios.iter().any(|s| s == "custom") {
        for extension in ["json", "svg", "html"] {
            let _ = std::fs::remove_file(reports.join(format!("custom.{extension}")));
        }
    }
    let logs = target_dir().join("load");
    let log = |name: &str| -> anyhow::Result<std::fs::File> {
        std::fs::File::create(logs.join(format!("{name}.log")))
            .with_context(|| format!("creating {name}.log"))
    };
    let stop = AtomicBool::new(false);
    let mut mocks = Vec::new();
    let result = (|| -> anyhow::Result<()> {
        start_mocks(on_core("1", bins.join("services-mock")), &log, &mut mocks, &stop)?;
        let mocks_pid = mocks.first().map(|m| m.child.id().to_string()).context("the mocks' process")?;
        for scenario in &scenarios {
            let entry_name = if scenario == "custom" { client.as_str() } else { "mobile" };
            let entry =
                bff_registry::find(entry_name).with_context(|| format!("no BFF for client {entry_name}"))?;
            let env = if scenario == "custom" {
                String::new()
            } else {
                let out = Command::new(release.join("bff-load")).args(["bench-env", scenario]).output()?;
                String::from_utf8_lossy(&out.stdout).into_owned()
            };
            let mut command = on_core("0", bins.join(entry.name));
            command.env_remove("REDIS_URL").env(unlimited(entry), "1000000000").env("RUST_LOG", "warn");
            for (key, value) in env.lines().filter_map(|l| l.split_once('=')) {
                command.env(key, value);
            }
            let child = command
                .stdout(log(&format!("{}-{scenario}", entry.name))?)
                .stderr(log(&format!("{}-{scenario}.err", entry.name))?)
                .spawn()
                .with_context(|| format!("starting {}", entry.name))?;
            let pid = child.id();
            let mut bff = vec![Running { name: entry.name.to_owned(), child }];
            let mut run = on_core("1", release.join("bff-load"));
            run.args(["bench", scenario]).args(&flags).args(["--bff-pid", &pid.to_string()]);
            run.args(["--mocks-pid", &mocks_pid]);
            run.arg("--out").arg(&reports);
            if let Some(peak) = peak {
                run.args(["--peak", &format!("{peak:.0}")]);
            }
            let outcome = wait_healthy(entry.name, entry.port, &mut bff, &stop).and_then(|()| {
                run.stderr(std::process::Stdio::inherit()).output().context("running bff-load")
            });
            shutdown(&mut bff);
            let output = outcome?;
            if !output.status.success() {
                bail!("bff-load bench {scenario} failed");
            }
            if scenario == "peak" {
                let text = std::fs::read_to_string(reports.join("peak.json")).context("the peak report")?;
                let report: serde_json::Value = serde_json::from_str(&text).context("the peak report")?;
                peak = report["result"]["goodput_per_s"].as_f64();
            }
        }
        Ok(())
    })();
    shutdown(&mut mocks);
    result?;
    let table = Command::new(release.join("bff-load")).arg("bench-table").arg(&reports).output()?;
    let table = String::from_utf8_lossy(&table.stdout).into_owned();
    println!("\n{table}");
    println!("reports (JSON, SVG, HTML): {}", reports.display());
    if update {
        update_performance(&reports, &table)?;
        println!("PERFORMANCE.md and docs/load/ updated");
    }
    Ok(())
}

/// Rewrites PERFORMANCE.md between the markers with `table` and the
/// pictures, copied to `docs/load/`.
fn update_performance(reports: &std::path::Path, table: &str) -> anyhow::Result<()> {
    let docs = root().join("docs").join("load");
    std::fs::create_dir_all(&docs).context("creating docs/load")?;
    let mut pictures = String::new();
    for entry in std::fs::read_dir(reports).context("reading the reports")? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "svg") {
            let name = path.file_name().context("a file name")?.to_string_lossy().into_owned();
            std::fs::copy(&path, docs.join(&name)).with_context(|| format!("copying {name}"))?;
        }
    }
    let mut names: Vec<String> = std::fs::read_dir(&docs)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".svg"))
        .collect();
    names.sort();
    for name in names {
        pictures.push_str(&format!("![{}](docs/load/{name})\n", name.trim_end_matches(".svg")));
    }
    let path = root().join("PERFORMANCE.md");
    let text = std::fs::read_to_string(&path).context("reading PERFORMANCE.md")?;
    let (Some(begin), Some(end)) = (text.find(BEGIN), text.find(END)) else {
        bail!("PERFORMANCE.md has no generated section (the markers `{BEGIN}` and `{END}`)");
    };
    let generated = format!(
        "{BEGIN}\n\n{table}\n<details><summary>Pictures: latency over time and histogram, per scenario</summary>\n\n{pictures}\n</details>\n\n"
    );
    let updated = format!("{}{generated}{}", &text[..begin], &text[end..]);
    std::fs::write(&path, updated).context("writing PERFORMANCE.md")?;
    Ok(())
}

/// Where the measured processes run: the BFF alone on core 0, the mocks
/// and the load on core 1 (`taskset`), when the machine allows it.
pub(crate) struct Cores {
    pinned: bool,
}

impl Cores {
    /// Pinned when there are 2 cores or more and `taskset`; says so when not.
    pub(crate) fn detect() -> Cores {
        let pinned = std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2)
            && Command::new("taskset").arg("--version").output().is_ok_and(|o| o.status.success());
        if !pinned {
            eprintln!("load: fewer than 2 cores or no taskset: running unpinned (figures not comparable)");
        }
        Cores { pinned }
    }

    /// Pinned always (the caller checked for `taskset`).
    pub(crate) fn pinned() -> Cores {
        Cores { pinned: true }
    }

    /// `binary` to run on `core`.
    pub(crate) fn command(&self, core: &str, binary: PathBuf) -> Command {
        if self.pinned {
            let mut command = Command::new("taskset");
            command.args(["-c", core]).arg(binary);
            command
        } else {
            Command::new(binary)
        }
    }
}

/// The variable that sets `bff`'s per-caller quota: a load run is one
/// caller sending thousands of requests a second, which the default quota
/// (`bff_server::DEFAULT_CALLER_QUOTA` a minute) would refuse.
pub(crate) fn unlimited(bff: &bff_registry::Bff) -> String {
    format!("{}__RATE_LIMIT__DEFAULT__REQUESTS", bff.env_prefix)
}

/// Starts every mock (`mocks` is `services-mock` as it should run), logging
/// to `log("services-mock")`, and waits until each answers.
pub(crate) fn start_mocks(
    mut mocks: Command,
    log: &dyn Fn(&str) -> anyhow::Result<std::fs::File>,
    running: &mut Vec<Running>,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    // Another services-mock (`cargo xtask dev`, a run left over) would
    // answer for ours, and its calls and CPU be reported as ours.
    for (name, port) in MOCKS {
        ensure_free(name, *port)?;
    }
    let child = mocks
        .arg("all")
        .stdout(log("services-mock")?)
        .stderr(log("services-mock.err")?)
        .spawn()
        .context("starting the mocks")?;
    running.push(Running { name: "services-mock".to_owned(), child });
    for (name, port) in MOCKS {
        wait_healthy(name, *port, running, stop)?;
    }
    Ok(())
}
