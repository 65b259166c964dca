//! Replicas of a BFF binary behind a real HAProxy, for scale-out tests:
//! real processes (started from the binary the test names), real health
//! checks on `/readyz`, the configuration `cargo xtask dev --replicas N`
//! runs ([`bff_registry::balancer`]) but for the balancer's retries, which
//! are off here. `haproxy` must be installed (`cargo
//! xtask test` installs it).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bff_registry::balancer::{Frontend, RECOMMENDED_DRAIN_SECS, Retries, haproxy_config};
use services_mock::Fleet;

use crate::wire_env;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

/// One instance: its process (while running) and its ports.
#[derive(Debug)]
pub struct Replica {
    child: Option<Child>,
    /// Its own port (the balancer's server).
    pub port: u16,
    /// Its admin listener.
    pub admin_port: u16,
    /// How many times it was started.
    pub starts: u32,
}

/// N instances of one BFF binary and HAProxy in front; everything is
/// stopped when dropped.
#[derive(Debug)]
pub struct Replicas {
    bin: PathBuf,
    env: Vec<(String, String)>,
    bff: &'static bff_registry::Bff,
    /// The instances, in the balancer's order.
    pub replicas: Vec<Replica>,
    balancer: Child,
    _config: TempFile,
    /// Where clients connect: the balancer, `http://127.0.0.1:<port>`.
    pub base: String,
    stats: String,
    http: reqwest::Client,
}

/// A file removed when dropped.
#[derive(Debug)]
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Replicas {
    /// Starts `n` instances of `bin` (the binary of `bff`) pointed at
    /// `fleet`, each with `env` and a drain of
    /// [`RECOMMENDED_DRAIN_SECS`], waits until each is ready, then HAProxy
    /// in front of them, and waits until it sees every one up.
    pub async fn start(
        bin: &Path,
        bff: &'static bff_registry::Bff,
        fleet: &Fleet,
        n: usize,
        env: &[(String, String)],
    ) -> Replicas {
        let prefix = bff.env_prefix;
        assert!(n > 0, "at least one replica");
        let replicas: Vec<Replica> = (0..n)
            .map(|_| Replica { child: None, port: free_port(), admin_port: free_port(), starts: 0 })
            .collect();
        // Everything but the ports is the same for every instance.
        let mut common: Vec<(String, String)> = wire_env(fleet, bff, replicas[0].port)
            .into_iter()
            .filter(|(key, _)| !key.ends_with("__SERVER__PORT") && !key.ends_with("__SESSION__PUBLIC_URL"))
            .collect();
        common.push((format!("{prefix}__SERVER__DRAIN_SECS"), RECOMMENDED_DRAIN_SECS.to_string()));
        common.extend(env.iter().cloned());
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
        let listen = free_port();
        let stats_port = free_port();
        let frontends = [Frontend {
            name: bff.name.to_owned(),
            listen,
            servers: replicas.iter().map(|r| r.port).collect(),
        }];
        // No retries by the balancer: zero errors through a rolling restart
        // must be the instances' own doing (see `bff_registry::balancer`).
        let config = haproxy_config("127.0.0.1", &frontends, Some(stats_port), Retries::None);
        let path =
            std::env::temp_dir().join(format!("bff-testkit-haproxy-{}-{listen}.cfg", std::process::id()));
        std::fs::write(&path, config).expect("haproxy configuration written");
        let mut set = Replicas {
            bin: bin.to_owned(),
            env: common,
            bff,
            replicas,
            balancer: Command::new("haproxy")
                .arg("-db")
                .arg("-f")
                .arg(&path)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("haproxy (Debian: apt-get install haproxy; `cargo xtask test` installs it)"),
            _config: TempFile(path),
            base: format!("http://127.0.0.1:{listen}"),
            stats: format!("http://127.0.0.1:{stats_port}/stats;csv"),
            http,
        };
        for i in 0..n {
            set.launch(i).await;
        }
        for i in 0..n {
            set.wait_balanced(i, "UP").await;
        }
        set
    }

    /// Starts instance `i` and waits until it answers `/readyz` with 200.
    async fn launch(&mut self, i: usize) {
        let prefix = self.bff.env_prefix;
        let replica = &mut self.replicas[i];
        let child = Command::new(&self.bin)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env(format!("{prefix}__SERVER__PORT"), replica.port.to_string())
            .env(format!("{prefix}__SERVER__ADMIN_PORT"), replica.admin_port.to_string())
            .env_remove("REDIS_URL")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the BFF binary starts");
        replica.child = Some(child);
        replica.starts += 1;
        let url = format!("http://127.0.0.1:{}/readyz", replica.port);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(reply) = self.http.get(&url).send().await
                && reply.status().is_success()
            {
                return;
            }
            if let Some(Ok(Some(status))) = self.replicas[i].child.as_mut().map(Child::try_wait) {
                panic!(
                    "{} replica {} exited at start ({status}): port {} taken?",
                    self.bff.name,
                    i + 1,
                    self.replicas[i].port
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{} replica {} not ready within 30 s", self.bff.name, i + 1);
    }

    /// Waits until HAProxy reports instance `i` as `status` (`UP`, `DOWN`).
    pub async fn wait_balanced(&self, i: usize, status: &str) {
        let server = format!("{}-{}", self.bff.name, i + 1);
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = String::new();
        while Instant::now() < deadline {
            if let Ok(reply) = self.http.get(&self.stats).send().await
                && let Ok(csv) = reply.text().await
            {
                // `# pxname,svname,...,status (the 18th column),...`
                let seen = csv.lines().find_map(|line| {
                    let fields: Vec<&str> = line.split(',').collect();
                    (fields.get(1) == Some(&server.as_str()))
                        .then(|| fields.get(17).copied().unwrap_or_default())
                });
                if let Some(seen) = seen {
                    if seen == status {
                        return;
                    }
                    seen.clone_into(&mut last);
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("HAProxy did not see {server} {status} within 30 s (last: {last})");
    }

    /// A rolling restart's step for instance `i`: SIGTERM (it drains, then
    /// stops), wait for it to exit, start it again, wait until it is ready
    /// and the balancer has it back.
    pub async fn restart(&mut self, i: usize) {
        let mut child = self.replicas[i].child.take().expect("a running replica");
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if child.try_wait().expect("polling a replica").is_some() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} replica {} did not stop within 60 s",
                self.bff.name,
                i + 1
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.launch(i).await;
        self.wait_balanced(i, "UP").await;
    }

    /// The base URL of instance `i` itself, bypassing the balancer.
    pub fn instance(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.replicas[i].port)
    }
}

/// A constant load through the balancer: `workers` clients, each sending
/// `GET path` with a bearer token one after another (a pause of `pause`
/// between), until [`Load::stop`], counting every outcome.
#[derive(Debug)]
pub struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    workers: tokio::task::JoinSet<std::collections::BTreeMap<String, u64>>,
}

impl Load {
    /// Starts the load on `base` (the balancer).
    pub fn start(base: &str, path: &str, token: &str, workers: usize, pause: Duration) -> Load {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..workers {
            let (stop, url, token) =
                (std::sync::Arc::clone(&stop), format!("{base}{path}"), token.to_owned());
            set.spawn(async move {
                // Keep-alive connections, as a real client's: the ones a
                // stopping instance closes are the hard case.
                let http =
                    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
                let mut outcomes = std::collections::BTreeMap::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let outcome = match http.get(&url).bearer_auth(&token).send().await {
                        Ok(reply) => {
                            let status = reply.status().as_u16().to_string();
                            // Read the whole body: a cut-off answer is a failure too.
                            match reply.bytes().await {
                                Ok(_) => status,
                                Err(error) => format!("{status} with a broken body: {error}"),
                            }
                        }
                        Err(error) => format!("transport error: {error}"),
                    };
                    *outcomes.entry(outcome).or_insert(0) += 1;
                    tokio::time::sleep(pause).await;
                }
                outcomes
            });
        }
        Load { stop, workers: set }
    }

    /// Stops the load; every outcome (`"200"`, `"429"`, `"transport error: …"`) and its count.
    pub async fn stop(mut self) -> std::collections::BTreeMap<String, u64> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut all = std::collections::BTreeMap::new();
        while let Some(outcomes) = self.workers.join_next().await {
            for (outcome, count) in outcomes.expect("a load worker") {
                *all.entry(outcome).or_insert(0) += count;
            }
        }
        all
    }
}

impl Drop for Replicas {
    fn drop(&mut self) {
        for replica in &mut self.replicas {
            if let Some(child) = replica.child.as_mut() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let _ = self.balancer.kill();
        let _ = self.balancer.wait();
    }
}
