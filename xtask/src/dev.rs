//! `cargo xtask dev`: the whole stack on this machine, no Docker.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::PathBuf;
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

/// How to start a replica again (`--replicas`: one that exits is
/// restarted, as an orchestrator would, so a rolling restart can be tried
/// by hand with `kill -TERM`).
struct Launch {
    name: String,
    program: PathBuf,
    env: Vec<(String, String)>,
    dir: PathBuf,
    port: u16,
}

impl Launch {
    fn spawn(&self) -> anyhow::Result<Child> {
        Command::new(&self.program)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(&self.dir)
            .spawn()
            .with_context(|| format!("starting {}", self.name))
    }
}

/// What `cargo xtask dev` was asked for.
struct Options {
    build: bool,
    /// 1: each BFF on its port. More: that many instances of each behind
    /// HAProxy on the same public ports.
    replicas: u16,
}

fn options(args: &[String]) -> anyhow::Result<Options> {
    let mut options = Options { build: true, replicas: 1 };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            // CI and the scaffold's self-test run the stack right after the test
            // build made every binary: building again with other features would
            // only recompile the dependencies.
            "--no-build" => options.build = false,
            "--replicas" => {
                let n = args.next().context("--replicas needs a number")?;
                options.replicas = n
                    .parse()
                    .ok()
                    .filter(|n| (1..=9).contains(n))
                    .with_context(|| format!("--replicas takes 1 to 9 (got `{n}`)"))?;
            }
            extra => bail!("`dev` takes --no-build and --replicas N (got `{extra}`)"),
        }
    }
    Ok(options)
}

/// Builds, starts mocks then BFFs, waits for each to be healthy, prints the
/// table, and runs until Ctrl-C/SIGTERM or until any process dies (with
/// `--replicas`, a BFF instance that exits is started again instead).
pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let options = options(args)?;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop)).context("installing signal handler")?;
    }

    let mut packages = vec!["services-mock"];
    packages.extend(BFFS.iter().map(|bff| bff.name));
    if options.build {
        cargo_build(&packages, false)?;
    } else if let Some(missing) = packages.iter().find(|p| !bin_dir().join(p).exists()) {
        bail!("--no-build, but {missing} is not built: run `cargo xtask dev` without it");
    }

    let mut running: Vec<Running> = Vec::new();
    let mut launches: Vec<Launch> = Vec::new();
    let result = start_all(&mut running, &mut launches, options.replicas, &stop).and_then(|redis| {
        print_table(options.replicas, redis.as_deref());
        supervise(&mut running, &launches, &stop)
    });
    shutdown(&mut running);
    result
}

/// The Redis the replicas share when `REDIS_URL` names none: a throwaway
/// `redis-server` on this port (nothing saved).
const REPLICAS_REDIS_PORT: u16 = 6390;

/// HAProxy's statistics page (`--replicas`).
const HAPROXY_STATS_PORT: u16 = 8404;

/// Starts everything; with replicas, answers the Redis URL they share (if any).
fn start_all(
    running: &mut Vec<Running>,
    launches: &mut Vec<Launch>,
    replicas: u16,
    stop: &AtomicBool,
) -> anyhow::Result<Option<String>> {
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
    let redis = if replicas > 1 {
        start_replicas(running, launches, replicas, stop)?
    } else {
        for bff in BFFS {
            let child = Command::new(bin.join(bff.name))
                .envs(bff.local_env.iter().map(|(key, value)| (format!("{}__{key}", bff.env_prefix), *value)))
                .spawn()
                .with_context(|| format!("starting {}", bff.name))?;
            running.push(Running { name: bff.name.to_owned(), child });
            wait_healthy(bff.name, bff.port, running, stop)?;
        }
        None
    };
    // The dev console (services_mock::console): on loopback, only here.
    let console = Command::new(bin.join("services-mock"))
        .args(["console", "--port", &CONSOLE_PORT.to_string()])
        .spawn()
        .context("starting the dev console")?;
    running.push(Running { name: "dev console".to_owned(), child: console });
    wait_healthy("dev console", CONSOLE_PORT, running, stop)?;
    Ok(redis)
}

/// `replicas` instances of every BFF (ports from
/// [`bff_registry::balancer::replica_port`], each in its own working
/// directory under `target/replicas/`, so files a BFF writes by relative
/// path are its own), a shared Redis, and HAProxy on the public ports.
fn start_replicas(
    running: &mut Vec<Running>,
    launches: &mut Vec<Launch>,
    replicas: u16,
    stop: &AtomicBool,
) -> anyhow::Result<Option<String>> {
    use bff_registry::balancer::{Frontend, RECOMMENDED_DRAIN_SECS, Retries, haproxy_config, replica_port};
    if Command::new("haproxy").arg("-v").output().is_err() {
        bail!(
            "--replicas runs HAProxy in front of the BFFs: install it first (Debian: apt-get install haproxy)"
        );
    }
    let redis = match std::env::var("REDIS_URL") {
        Ok(url) => Some(url),
        Err(_) if Command::new("redis-server").arg("--version").output().is_ok() => {
            ensure_free("redis", REPLICAS_REDIS_PORT)?;
            let child = Command::new("redis-server")
                .args(["--port", &REPLICAS_REDIS_PORT.to_string(), "--bind", "127.0.0.1", "--save", ""])
                .args(["--appendonly", "no"])
                .stdout(std::process::Stdio::null())
                .spawn()
                .context("starting redis-server")?;
            running.push(Running { name: "redis".to_owned(), child });
            Some(format!("redis://127.0.0.1:{REPLICAS_REDIS_PORT}"))
        }
        Err(_) => {
            eprintln!(
                "warning: no REDIS_URL and no redis-server: each replica keeps its own quotas, idempotency keys \
                 and cache (install redis-server, or set REDIS_URL)"
            );
            None
        }
    };
    let mut frontends = Vec::new();
    for bff in BFFS {
        let mut servers = Vec::new();
        for index in 1..=replicas {
            let port = replica_port(bff.port, index);
            let name = format!("{}#{index}", bff.name);
            ensure_free(&name, port)?;
            let prefix = bff.env_prefix;
            let mut env: Vec<(String, String)> = bff
                .local_env
                .iter()
                .map(|(key, value)| (format!("{prefix}__{key}"), (*value).to_owned()))
                .collect();
            env.push((format!("{prefix}__SERVER__PORT"), port.to_string()));
            env.push((format!("{prefix}__SERVER__ADMIN_PORT"), (port + 1000).to_string()));
            env.push((format!("{prefix}__SERVER__DRAIN_SECS"), RECOMMENDED_DRAIN_SECS.to_string()));
            if let Some(url) = &redis {
                env.push(("REDIS_URL".to_owned(), url.clone()));
            }
            let dir = crate::target_dir().join("replicas").join(format!("{}-{index}", bff.name));
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let launch = Launch { name: name.clone(), program: bin_dir().join(bff.name), env, dir, port };
            running.push(Running { name: name.clone(), child: launch.spawn()? });
            launches.push(launch);
            wait_healthy(&name, port, running, stop)?;
            servers.push(port);
        }
        frontends.push(Frontend { name: bff.name.to_owned(), listen: bff.port, servers });
    }
    let config = crate::target_dir().join("dev-haproxy.cfg");
    let text = haproxy_config("127.0.0.1", &frontends, Some(HAPROXY_STATS_PORT), Retries::ConnectionFailures);
    std::fs::write(&config, text).with_context(|| format!("writing {}", config.display()))?;
    for frontend in &frontends {
        ensure_free(&frontend.name, frontend.listen)?;
    }
    let haproxy =
        Command::new("haproxy").arg("-db").arg("-f").arg(&config).spawn().context("starting haproxy")?;
    running.push(Running { name: "haproxy".to_owned(), child: haproxy });
    for bff in BFFS {
        wait_healthy(bff.name, bff.port, running, stop)?;
    }
    Ok(redis)
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

fn print_table(replicas: u16, redis: Option<&str>) {
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
        if replicas > 1 {
            let ports: Vec<String> = (1..=replicas)
                .map(|i| bff_registry::balancer::replica_port(bff.port, i).to_string())
                .collect();
            println!("  {:<16} {:<24} via HAProxy: instances on {}", "", "", ports.join(", "));
        }
    }
    if replicas > 1 {
        println!(
            "  {:<16} {:<24} HAProxy's view of every instance (checks on /readyz)",
            "haproxy stats",
            format!("http://127.0.0.1:{HAPROXY_STATS_PORT}/stats")
        );
        match redis {
            Some(url) => println!("  {:<16} {:<24} shared by the replicas", "redis", url),
            None => println!("  {:<16} {:<24} none: each replica keeps its own state", "redis", "-"),
        }
        println!();
        println!(
            "  rolling restart by hand: kill -TERM <pid of an instance>: it drains (/readyz 503) and stops,"
        );
        println!("  and is started again here; requests through the public ports keep being answered");
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
    // Each instance has its own admin listener (its port + 1000).
    let metrics: Vec<String> = BFFS
        .iter()
        .flat_map(|bff| match replicas {
            1 => vec![bff.admin_port()],
            n => (1..=n).map(|i| bff_registry::balancer::replica_port(bff.port, i) + 1000).collect(),
        })
        .map(|port| format!("http://127.0.0.1:{port}/metrics"))
        .collect();
    println!("  metrics (admin listeners): {}", metrics.join(" "));
    println!(
        "  prometheus: cd deploy/prometheus && prometheus --config.file=prometheus.yml (SLO rules and alerts)"
    );
    println!("  stop: Ctrl-C");
    println!();
    let _ = std::io::stdout().flush();
}

fn supervise(running: &mut [Running], launches: &[Launch], stop: &AtomicBool) -> anyhow::Result<()> {
    while !stop.load(Ordering::Relaxed) {
        for process in running.iter_mut() {
            let Some(status) = process.child.try_wait().context("polling a child")? else { continue };
            // A replica that stops is started again, as an orchestrator would.
            let Some(launch) = launches.iter().find(|l| l.name == process.name) else {
                bail!("{} exited ({status}); see its output above", process.name);
            };
            println!("{} exited ({status}); starting it again on port {}", launch.name, launch.port);
            process.child = launch.spawn()?;
        }
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
