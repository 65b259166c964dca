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

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::AtomicBool;

use anyhow::{Context as _, bail};

use crate::dev::{Running, shutdown, wait_healthy};
use crate::stack::MOCKS;
use crate::{cargo, root, target_dir};

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
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
    let pinned = std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2)
        && Command::new("taskset").arg("--version").output().is_ok_and(|o| o.status.success());
    if !pinned {
        eprintln!("load: fewer than 2 cores or no taskset: running unpinned (figures not comparable)");
    }
    let on_core = |core: &str, binary: PathBuf| {
        if pinned {
            let mut command = Command::new("taskset");
            command.args(["-c", core]).arg(binary);
            command
        } else {
            Command::new(binary)
        }
    };
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
        let child = on_core("1", bins.join("services-mock"))
            .arg("all")
            .stdout(log("services-mock")?)
            .stderr(log("services-mock.err")?)
            .spawn()
            .context("starting the mocks")?;
        mocks.push(Running { name: "services-mock".to_owned(), child });
        for (name, port) in MOCKS {
            wait_healthy(name, *port, &mut mocks, &stop)?;
        }
        let mobile = bff_registry::find("mobile").context("no mobile BFF in the registry")?;
        for scenario in &scenarios {
            let child = on_core("0", bins.join(mobile.name))
                .env_remove("REDIS_URL")
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
