//! `services-mock`: run the mock services.
//!
//! ```text
//! services-mock [all] [--host H] [--data-dir D]    every mock on its default port
//! services-mock serve <service> [--host H] [--port P] [--issuer URL] [--data-dir D]
//! services-mock token --client <bff> --user u-1 [--ttl-secs N] [--issuer URL]
//! services-mock token --service catalog [--user u-1]   (a service token)
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
                    println!("{}", web_session(web, user).await?);
                }
                Auth::Device => {
                    let identity = args.flag("identity-url").unwrap_or("http://127.0.0.1:7000");
                    println!("{}", device_flow(identity, bff.client, user).await?);
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
        "all" | "serve" => serve(command, &args).await,
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

/// Runs web-bff's login flow (login, identity provider, callback) like a
/// browser would and returns the `__Host-session=...` cookie pair.
async fn web_session(web: &str, user: &str) -> anyhow::Result<String> {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let cookie = |response: &reqwest::Response, name: &str| {
        response
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with(&format!("{name}=")))
            .and_then(|c| c.split(';').next())
            .map(str::to_owned)
    };
    let location = |response: &reqwest::Response| {
        response.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok()).map(str::to_owned)
    };
    let login = http
        .get(format!("{web}/auth/login"))
        .query(&[("login_hint", user)])
        .send()
        .await
        .with_context(|| format!("is web-bff running at {web}? (cargo xtask dev)"))?;
    let login_cookie = cookie(&login, "__Host-login").context("web-bff set no login cookie")?;
    let to_identity = location(&login).context("web-bff did not redirect to the identity provider")?;
    let authorized = http.get(&to_identity).send().await.context("identity provider unreachable")?;
    let back = location(&authorized).context("the identity provider did not redirect back")?;
    let callback = http.get(&back).header(reqwest::header::COOKIE, login_cookie).send().await?;
    match cookie(&callback, "__Host-session") {
        Some(session) => Ok(session),
        None => bail!("login failed: {} {}", callback.status(), callback.text().await.unwrap_or_default()),
    }
}

/// Runs the device authorization grant (RFC 8628) as a TV would, with the
/// person's approval made through the mock's documented call, and returns
/// the access token.
async fn device_flow(identity: &str, client_id: &str, user: &str) -> anyhow::Result<String> {
    let http = reqwest::Client::new();
    let started: serde_json::Value = http
        .post(format!("{identity}/oauth/device_authorization"))
        .form(&[("client_id", client_id)])
        .send()
        .await
        .with_context(|| format!("is the identity mock running at {identity}? (cargo xtask dev)"))?
        .error_for_status()?
        .json()
        .await?;
    let field = |name: &str| started[name].as_str().map(str::to_owned).with_context(|| format!("no {name}"));
    let (device_code, user_code) = (field("device_code")?, field("user_code")?);
    let mut interval = Duration::from_secs(started["interval"].as_u64().unwrap_or(5));
    eprintln!("device: user code {user_code}; approving it as {user} (POST {identity}/device)");
    http.post(format!("{identity}/device"))
        .form(&[("user_code", user_code.as_str()), ("login_hint", user), ("action", "approve")])
        .send()
        .await?
        .error_for_status()
        .context("the approval was refused")?;
    for _ in 0..60 {
        tokio::time::sleep(interval).await;
        let answer = http
            .post(format!("{identity}/oauth/token"))
            .form(&[
                ("grant_type", services_mock::device::DEVICE_CODE),
                ("device_code", device_code.as_str()),
                ("client_id", client_id),
            ])
            .send()
            .await?;
        let body: serde_json::Value = answer.json().await?;
        if let Some(token) = body["access_token"].as_str() {
            return Ok(token.to_owned());
        }
        match body["error"].as_str() {
            Some("authorization_pending") => {}
            Some("slow_down") => interval += Duration::from_secs(5),
            other => bail!("device flow failed: {}", other.unwrap_or("unreadable answer")),
        }
    }
    bail!("device flow: no token after 60 polls")
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
