//! `cargo xtask profile`: where mobile-bff's CPU goes under load, as a
//! flame graph anyone can regenerate.
//!
//! 1. Builds mobile-bff, the mocks and bff-load in release mode with line
//!    tables (`CARGO_PROFILE_RELEASE_DEBUG=line-tables-only`) into
//!    `target/profile/`, so the normal release build is left alone.
//! 2. Starts the mocks on core 1 and mobile-bff alone on core 0 (`taskset`),
//!    without Redis.
//! 3. Sends open-loop load (`bff-load bench custom`, on core 1) while
//!    `perf record --call-graph dwarf` samples the BFF (DWARF unwinding:
//!    the standard library has no frame pointers, so frame-pointer call
//!    graphs would stop at its first frame).
//! 4. Writes `target/profile/flamegraph.svg` (with `inferno`, the Rust port
//!    of the FlameGraph scripts: `cargo install inferno`) and the top
//!    symbols by self time to `target/profile/top.txt`.
//!
//! Needs `perf` (Debian's `linux-perf`) and a `perf_event_paranoid` that
//! lets a user profile its own processes (2 does).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;

use anyhow::{Context as _, bail};

use crate::dev::{Running, shutdown, wait_healthy};
use crate::load::{Cores, start_mocks};
use crate::{cargo, root, target_dir};

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let (mut path, mut rate, mut seconds) = ("/v1/home".to_owned(), "1500".to_owned(), "15".to_owned());
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().cloned().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--path" => path = value("--path")?,
            "--rate" => rate = value("--rate")?,
            "--seconds" => seconds = value("--seconds")?,
            other => bail!("unknown argument `{other}` (profile [--path P] [--rate R] [--seconds S])"),
        }
    }
    for (tool, hint) in [
        ("perf", "apt-get install linux-perf"),
        ("inferno-collapse-perf", "cargo install inferno"),
        ("taskset", "apt-get install util-linux"),
    ] {
        let found = Command::new("sh").args(["-c", &format!("command -v {tool}")]).output();
        if !found.is_ok_and(|o| o.status.success()) {
            bail!("`{tool}` is needed: {hint}");
        }
    }
    let out = target_dir().join("profile");
    let status = cargo()
        .current_dir(root())
        .env("CARGO_TARGET_DIR", &out)
        .env("CARGO_PROFILE_RELEASE_DEBUG", "line-tables-only")
        .args(["build", "--release", "--bins", "-p", "mobile-bff", "-p", "services-mock", "-p", "bff-load"])
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("the profiling build failed");
    }
    let bins = out.join("release");
    let log = |name: &str| std::fs::File::create(out.join(format!("{name}.log"))).context("a log file");
    let cores = Cores::pinned();
    let on_core = |core: &str, binary: PathBuf| cores.command(core, binary);
    let stop = AtomicBool::new(false);
    let mut processes = Vec::new();
    let result = (|| -> anyhow::Result<()> {
        start_mocks(on_core("1", bins.join("services-mock")), &log, &mut processes, &stop)?;
        let mobile = bff_registry::find("mobile").context("no mobile BFF in the registry")?;
        let bff = on_core("0", bins.join(mobile.name))
            .env_remove("REDIS_URL")
            .env(crate::load::unlimited(mobile), "1000000000")
            .env("RUST_LOG", "warn")
            .stdout(log(mobile.name)?)
            .stderr(log(&format!("{}.err", mobile.name))?)
            .spawn()
            .context("starting mobile-bff")?;
        let pid = bff.id();
        processes.push(Running { name: mobile.name.to_owned(), child: bff });
        wait_healthy(mobile.name, mobile.port, &mut processes, &stop)?;
        let data = out.join("perf.data");
        let mut load = on_core("1", bins.join("bff-load"))
            .args(["bench", "custom", "--path", &path, "--rate", &rate, "--seconds", &seconds])
            .arg("--out")
            .arg(out.join("load"))
            .stdout(Stdio::null())
            .spawn()
            .context("starting the load")?;
        // Let the load's warm-up pass, then sample for most of the run.
        std::thread::sleep(std::time::Duration::from_secs(2));
        let sample_secs = seconds.parse::<u64>().unwrap_or(15).saturating_sub(2).max(1).to_string();
        let recorded = Command::new("perf")
            .args(["record", "-F", "499", "--call-graph", "dwarf,16384", "-p", &pid.to_string(), "-o"])
            .arg(&data)
            .args(["--", "sleep", &sample_secs])
            .stdout(Stdio::null())
            .status()
            .context("running perf record")?;
        let loaded = load.wait().context("waiting for the load")?;
        if !recorded.success() || !loaded.success() {
            bail!("perf record or the load failed");
        }
        let script = Command::new("perf")
            .args(["script", "-i"])
            .arg(&data)
            .stderr(Stdio::null())
            .output()
            .context("perf script")?;
        let folded_path = out.join("stacks.folded");
        let mut collapse = Command::new("inferno-collapse-perf")
            .stdin(Stdio::piped())
            .stdout(std::fs::File::create(&folded_path).context("stacks.folded")?)
            .spawn()
            .context("inferno-collapse-perf")?;
        {
            use std::io::Write as _;
            let mut input = collapse.stdin.take().context("a pipe")?;
            input.write_all(&script.stdout).context("feeding inferno")?;
        }
        collapse.wait().context("inferno-collapse-perf")?;
        let svg = out.join("flamegraph.svg");
        let drawn = Command::new("inferno-flamegraph")
            .args(["--title", &format!("mobile-bff: GET {path} at {rate} req/s (core 0)")])
            .arg(&folded_path)
            .stdout(std::fs::File::create(&svg).context("flamegraph.svg")?)
            .status()
            .context("inferno-flamegraph")?;
        if !drawn.success() {
            bail!("inferno-flamegraph failed");
        }
        let top = Command::new("perf")
            .args(["report", "--no-children", "--stdio", "--percent-limit", "1", "-g", "none", "-i"])
            .arg(&data)
            .stderr(Stdio::null())
            .output()
            .context("perf report")?;
        std::fs::write(out.join("top.txt"), &top.stdout).context("top.txt")?;
        let text = String::from_utf8_lossy(&top.stdout);
        println!("top symbols by self time (target/profile/top.txt):");
        for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).take(25) {
            println!("{line}");
        }
        println!("\nflame graph: {}", svg.display());
        Ok(())
    })();
    shutdown(&mut processes);
    result
}
