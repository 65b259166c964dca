//! `cargo xtask dev`: the whole stack on this machine, no Docker.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use bff_registry::{Auth, BFFS};

use crate::stack::MOCKS;
use crate::{bin_dir, cargo_build};

/// A process the xtask started and stops.
pub(crate) struct Running {
    pub(crate) name: String,
    pub(crate) child: Child,
}

/// Builds, starts mocks then BFFs, waits for each to be healthy, prints the
/// table, and runs until Ctrl-C/SIGTERM or until any process dies.
pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let build = match args.first().map(String::as_str) {
        None => true,
        // CI and the scaffold's self-test run the stack right after the test
        // build made every binary: building again with other features would
        // only recompile the dependencies.
        Some("--no-build") if args.len() == 1 => false,
        Some(extra) => bail!("`dev` takes no arguments but --no-build (got `{extra}`)"),
    };
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop)).context("installing signal handler")?;
    }

    let mut packages = vec!["services-mock"];
    packages.extend(BFFS.iter().map(|bff| bff.name));
    if build {
        cargo_build(&packages, false)?;
    } else if let Some(missing) = packages.iter().find(|p| !bin_dir().join(p).exists()) {
        bail!("--no-build, but {missing} is not built: run `cargo xtask dev` without it");
    }

    let mut running: Vec<Running> = Vec::new();
    let result = start_all(&mut running, &stop).and_then(|()| {
        print_table();
        supervise(&mut running, &stop)
    });
    shutdown(&mut running);
    result
}

fn start_all(running: &mut Vec<Running>, stop: &AtomicBool) -> anyhow::Result<()> {
    let bin = bin_dir();
    // Orders placed locally survive a restart of the stack (and keep their
    // Idempotency-Keys): `rm -r target/mock-data` starts afresh.
    let data = crate::target_dir().join("mock-data");
    let mocks = Command::new(bin.join("services-mock"))
        .arg("all")
        .arg("--data-dir")
        .arg(&data)
        .spawn()
        .context("starting services-mock")?;
    running.push(Running { name: "services-mock".to_owned(), child: mocks });
    for (name, port) in MOCKS {
        wait_healthy(name, *port, running, stop)?;
    }
    for bff in BFFS {
        let child = Command::new(bin.join(bff.name))
            .envs(bff.local_env.iter().map(|(key, value)| (format!("{}__{key}", bff.env_prefix), *value)))
            .spawn()
            .with_context(|| format!("starting {}", bff.name))?;
        running.push(Running { name: bff.name.to_owned(), child });
        wait_healthy(bff.name, bff.port, running, stop)?;
    }
    // The dev console (services_mock::console): on loopback, only here.
    let console = Command::new(bin.join("services-mock"))
        .args(["console", "--port", &CONSOLE_PORT.to_string()])
        .spawn()
        .context("starting the dev console")?;
    running.push(Running { name: "dev console".to_owned(), child: console });
    wait_healthy("dev console", CONSOLE_PORT, running, stop)?;
    Ok(())
}

/// The dev console's port.
pub(crate) const CONSOLE_PORT: u16 = bff_registry::DEV_CONSOLE_PORT;

/// Polls `GET /healthz` until it answers 200, a process dies, or 60 s pass.
pub(crate) fn wait_healthy(
    name: &str,
    port: u16,
    running: &mut [Running],
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if healthz(port) {
            return Ok(());
        }
        check_alive(running)?;
        if stop.load(Ordering::Relaxed) {
            bail!("interrupted while starting {name}");
        }
        if Instant::now() > deadline {
            bail!("{name} did not become healthy on port {port} within 60 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Fails when something already answers on `port`: a process started for
/// it would fail to bind while the other one passed its health checks in
/// its place (and, under load, was measured as it).
pub(crate) fn ensure_free(name: &str, port: u16) -> anyhow::Result<()> {
    if TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok() {
        bail!("port {port} ({name}) is already served: stop the other stack (`cargo xtask dev`?) first");
    }
    Ok(())
}

fn healthz(port: u16) -> bool {
    let Ok(mut stream) =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
    else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let request = format!("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.starts_with("HTTP/1.1 200")
}

fn check_alive(running: &mut [Running]) -> anyhow::Result<()> {
    for process in running.iter_mut() {
        if let Some(status) = process.child.try_wait().context("polling a child")? {
            bail!("{} exited ({status}); see its output above", process.name);
        }
    }
    Ok(())
}

fn print_table() {
    println!();
    println!("  {:<16} {:<24} notes", "service", "url");
    println!("  {:<16} {:<24} -----", "-------", "---");
    println!(
        "  {:<16} {:<24} open in a browser: screens as tiles, faults per mock (loopback only)",
        "dev console",
        format!("http://127.0.0.1:{CONSOLE_PORT}")
    );
    for (name, port) in MOCKS {
        let note =
            if *name == "identity" { "JWKS at /.well-known/jwks.json" } else { "faults: PUT /__faults" };
        println!("  {name:<16} {:<24} {note}", format!("http://127.0.0.1:{port}"));
    }
    for bff in BFFS {
        println!("  {:<16} {:<24} {}", bff.name, format!("http://127.0.0.1:{}", bff.port), bff.routes);
    }
    println!();
    println!("  placed orders are kept in {}", crate::target_dir().join("mock-data").display());
    println!();
    println!("  try:");
    for bff in BFFS {
        let url = format!("http://127.0.0.1:{}{}", bff.port, bff.smoke.path);
        let token = match bff.auth {
            // A machine is its own caller: no user to name.
            Auth::ClientCredentials => format!("cargo xtask token --client {}", bff.short_name()),
            _ => format!("cargo xtask token --client {} --user {}", bff.short_name(), bff.smoke.caller),
        };
        match bff.auth {
            Auth::Session => println!("    curl -b \"$({token})\" {url}"),
            _ => println!("    curl -H \"Authorization: Bearer $({token})\" {url}"),
        }
    }
    for bff in BFFS {
        println!("  configure {}: {}__SECTION__KEY=value (see README)", bff.name, bff.env_prefix);
    }
    let metrics: Vec<String> =
        BFFS.iter().map(|bff| format!("http://127.0.0.1:{}/metrics", bff.admin_port())).collect();
    println!("  metrics (admin listeners): {}", metrics.join(" "));
    println!(
        "  prometheus: cd deploy/prometheus && prometheus --config.file=prometheus.yml (SLO rules and alerts)"
    );
    println!("  stop: Ctrl-C");
    println!();
    let _ = std::io::stdout().flush();
}

fn supervise(running: &mut [Running], stop: &AtomicBool) -> anyhow::Result<()> {
    while !stop.load(Ordering::Relaxed) {
        check_alive(running)?;
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("stopping…");
    Ok(())
}

/// SIGTERM to everything still running (graceful in every binary), then a
/// kill for whatever has not exited after 15 s.
pub(crate) fn shutdown(running: &mut [Running]) {
    for process in running.iter_mut().rev() {
        if matches!(process.child.try_wait(), Ok(None)) {
            let _ = Command::new("kill").args(["-TERM", &process.child.id().to_string()]).status();
        }
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    for process in running.iter_mut() {
        while matches!(process.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if matches!(process.child.try_wait(), Ok(None)) {
            eprintln!("{} did not stop in time; killing it", process.name);
            let _ = process.child.kill();
            let _ = process.child.wait();
        }
    }
}
