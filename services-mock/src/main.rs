//! `services-mock`: run the mock services.
//!
//! ```text
//! services-mock [all] [--host H] [--data-dir D]    every mock on its default port
//! services-mock serve <service> [--host H] [--port P] [--issuer URL] [--data-dir D]
//! services-mock token --client <bff> --user u-1 [--ttl-secs N] [--issuer URL]
//! services-mock token --service catalog [--user u-1]   (a service token)
//! services-mock console [--port 7100]              the dev console (loopback only)
//! services-mock ids                                seeded users and products
//! ```

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{Context as _, bail};
use bff_registry::Auth;
use services_mock::identity::{DEFAULT_ISSUER, Identity};
use services_mock::seed::Seed;
use services_mock::{Service, run};
use tokio::sync::watch;

// The BFFs' allocator, so a load test's mocks cost what they would.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage:
  services-mock [all] [--host H] [--issuer URL] [--data-dir D]
  services-mock serve <service> [--host H] [--port P] [--issuer URL] [--data-dir D]
                      --data-dir D: the orders service keeps placed orders (and their
                      Idempotency-Keys) in D/orders.jsonl; without it, in memory only
  services-mock token --client <bff> --user <id> [--ttl-secs N] [--issuer URL]
                      <bff> is a BFF of the registry, by name or short name (mobile, web, partner, admin, ...):
                      bearer, staff and client-credentials BFFs get a token signed with the development key;
                      session BFFs (web) are logged in through the running BFF [--web-url URL], which prints its cookie;
                      device BFFs (tv) run the device flow against the running identity mock [--identity-url URL]
  services-mock token --service <name> [--user <id>]   a service token, to call one mock directly
  services-mock console [--port 7100]
                      the dev console for the local stack (every mock and BFF on its default port),
                      on 127.0.0.1 only; refused under BFF_ENV=production
  services-mock probe --port P     exit 0 if the mock on 127.0.0.1:P answers /healthz (container health check)
  services-mock ids";

struct Args {
    positional: Vec<String>,
    flags: Vec<(String, String)>,
}

impl Args {
    fn parse() -> anyhow::Result<Args> {
        let mut positional = Vec::new();
        let mut flags = Vec::new();
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            if arg == "-h" || arg == "--help" {
                println!("{USAGE}");
                std::process::exit(0);
            }
            if let Some(name) = arg.strip_prefix("--") {
                let value = args.next().with_context(|| format!("--{name} needs a value\n{USAGE}"))?;
                flags.push((name.to_owned(), value));
            } else {
                positional.push(arg);
            }
        }
        Ok(Args { positional, flags })
    }

    fn flag(&self, name: &str) -> Option<&str> {
        self.flags.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn check_flags(&self, allowed: &[&str]) -> anyhow::Result<()> {
        for (name, _) in &self.flags {
            if !allowed.contains(&name.as_str()) {
                bail!("unknown flag --{name}\n{USAGE}");
            }
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run_command().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("services-mock: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run_command() -> anyhow::Result<()> {
    let args = Args::parse()?;
    let command = args.positional.first().map(String::as_str).unwrap_or("all");
    // The identity mock signs with a development key published in this
    // repository, and the console mints tokens for anyone: neither may run
    // where BFF_ENV says production.
    if std::env::var("BFF_ENV").is_ok_and(|env| env.trim().eq_ignore_ascii_case("production")) {
        bail!("mock services and development tokens are refused under BFF_ENV=production");
    }
    match command {
        "token" => {
            args.check_flags(&[
                "client",
                "user",
                "ttl-secs",
                "issuer",
                "service",
                "web-url",
                "identity-url",
            ])?;
            if let Some(service) = args.flag("service") {
                // A service token, as token exchange would issue it to a BFF:
                // for calling one mock directly.
                let service: Service = service.parse().map_err(anyhow::Error::msg)?;
                let identity = Identity::new(args.flag("issuer").unwrap_or(DEFAULT_ISSUER))?;
                let actor = bff_registry::find(args.flag("client").unwrap_or("mobile"))
                    .map(|bff| bff.name)
                    .context("--client names no BFF of the registry")?;
                println!(
                    "{}",
                    identity.service_token(service.name(), args.flag("user").unwrap_or("u-1"), actor)?
                );
                return Ok(());
            }
            let name = args.flag("client").unwrap_or("mobile");
            let Some(bff) = bff_registry::find(name) else {
                let known: Vec<_> = bff_registry::BFFS.iter().map(|b| b.short_name()).collect();
                bail!("unknown client `{name}` (one of: {})", known.join(", "));
            };
            let user = args.flag("user").unwrap_or(if bff.auth == Auth::Staff { "s-1" } else { "u-1" });
            if bff.auth != Auth::ClientCredentials && services_mock::identity::person(user).is_none() {
                let customers = Seed::shared().users.len();
                bail!(
                    "unknown user `{user}`: customers are u-1 ..= u-{customers}, staff s-1 (admin), s-2 (support), s-3 (no role)"
                );
            }
            match bff.auth {
                Auth::Session => {
                    // The browser never holds a token: log in through the
                    // BFF and print its session cookie instead.
                    let default_url = format!("http://127.0.0.1:{}", bff.port);
                    let web = args.flag("web-url").unwrap_or(&default_url);
                    println!("{}", services_mock::credentials::web_session(web, user).await?);
                }
                Auth::Device => {
                    let identity = args.flag("identity-url").unwrap_or("http://127.0.0.1:7000");
                    println!(
                        "{}",
                        services_mock::credentials::device_flow(identity, bff.client, user).await?
                    );
                }
                Auth::Bearer | Auth::Staff | Auth::ClientCredentials => {
                    let ttl: u64 = args.flag("ttl-secs").unwrap_or("3600").parse().context("--ttl-secs")?;
                    let identity = Identity::new(args.flag("issuer").unwrap_or(DEFAULT_ISSUER))?;
                    println!("{}", identity.user_token(bff, user, Duration::from_secs(ttl))?);
                }
            }
            Ok(())
        }
        "ids" => {
            let seed = Seed::shared();
            let mut out = String::new();
            for user in &seed.users {
                out += &format!("{}\t{}\t{}\t{}\n", user.id, user.display_name, user.country, user.segment);
            }
            for product in &seed.products {
                let price = &product.price;
                out +=
                    &format!("{}\t{}\t{} {}\n", product.id, product.name, price.amount_minor, price.currency);
            }
            // A closed pipe (`| head`) is not an error worth a panic.
            let _ = std::io::Write::write_all(&mut std::io::stdout(), out.as_bytes());
            Ok(())
        }
        "probe" => {
            // A container health check with no HTTP client in the image.
            args.check_flags(&["port"])?;
            let port: u16 = args.flag("port").context("probe needs --port")?.parse().context("--port")?;
            probe(port)
        }
        "all" | "serve" => serve(command, &args).await,
        "console" => {
            args.check_flags(&["port"])?;
            init_logging();
            let port = match args.flag("port") {
                Some(port) => port.parse().context("--port")?,
                None => services_mock::console::DEFAULT_PORT,
            };
            let addr = SocketAddr::new(IpAddr::from([127, 0, 0, 1]), port);
            services_mock::console::run(addr, services_mock::console::Targets::local(), shutdown_signal())
                .await
        }
        other => bail!("unknown command `{other}`\n{USAGE}"),
    }
}

async fn serve(command: &str, args: &Args) -> anyhow::Result<()> {
    init_logging();
    let host: IpAddr = args.flag("host").unwrap_or("127.0.0.1").parse().context("--host")?;
    let issuer = args.flag("issuer").unwrap_or(DEFAULT_ISSUER).to_owned();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let services: Vec<(Service, u16)> = if command == "all" {
        args.check_flags(&["host", "issuer", "data-dir"])?;
        Service::ALL.iter().map(|s| (*s, s.default_port())).collect()
    } else {
        args.check_flags(&["host", "port", "issuer", "data-dir"])?;
        let name = args.positional.get(1).with_context(|| format!("serve needs a service\n{USAGE}"))?;
        let service: Service = name.parse().map_err(anyhow::Error::msg)?;
        let port = match args.flag("port") {
            Some(port) => port.parse().context("--port")?,
            None => service.default_port(),
        };
        vec![(service, port)]
    };
    let data_dir = args.flag("data-dir").map(std::path::PathBuf::from);
    if data_dir.is_none() && services.iter().any(|(s, _)| *s == Service::Orders) {
        tracing::info!("no --data-dir: placed orders are kept in memory only");
    }
    for (service, port) in services {
        let mut stop = stop_rx.clone();
        let issuer = issuer.clone();
        let data_dir = data_dir.clone();
        tasks.spawn(async move {
            let shutdown = async move {
                let _ = stop.wait_for(|stopped| *stopped).await;
            };
            run(service, SocketAddr::new(host, port), &issuer, data_dir.as_deref(), shutdown).await
        });
    }
    tokio::select! {
        _ = shutdown_signal() => {
            tracing::info!("shutting down");
            let _ = stop_tx.send(true);
        }
        Some(result) = tasks.join_next() => {
            // A mock that stops on its own (e.g. its port is taken) stops all.
            let _ = stop_tx.send(true);
            result.context("mock task panicked")??;
        }
    }
    while let Some(result) = tasks.join_next().await {
        result.context("mock task panicked")??;
    }
    Ok(())
}

/// `GET /healthz` on 127.0.0.1:`port` over a plain TCP connection: `Ok`
/// on `200`. (The mocks share no code with the BFF crates, hence not
/// `<bff> probe`'s.)
fn probe(port: u16) -> anyhow::Result<()> {
    use std::io::{Read as _, Write as _};
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let timeout = Duration::from_secs(2);
    let mut stream =
        std::net::TcpStream::connect_timeout(&addr, timeout).with_context(|| format!("{addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.write_all(
        format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )?;
    let mut head = [0_u8; 12];
    stream.read_exact(&mut head).context("no answer")?;
    if &head != b"HTTP/1.1 200" {
        bail!("{addr} answered `{}`", String::from_utf8_lossy(&head));
    }
    Ok(())
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).try_init();
}

/// The mocks stand in for other teams' services and deliberately share no
/// code with the BFF crates (so contract checks compare two independent
/// sides); hence this copy of `bff_server::shutdown_signal`.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
