//! A real Redis Cluster on loopback for tests: `masters` × (1 + replicas)
//! `redis-server --cluster-enabled yes` processes, joined by `redis-cli
//! --cluster create`, with a short `cluster-node-timeout` so that a
//! killed master's replica takes over in about a second.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a node may be unreachable before the cluster fails it over.
pub const NODE_TIMEOUT_MS: u64 = 1_000;

/// One node: its process (until killed), port and working directory.
#[derive(Debug)]
struct Node {
    child: Option<Child>,
    port: u16,
}

/// A running Redis Cluster; every node is killed when dropped.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<Node>,
    dir: std::path::PathBuf,
}

/// A port whose cluster bus port (+10000) is free too.
fn free_cluster_port() -> u16 {
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        if port < 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

fn cli(port: u16, args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli on the PATH (it comes with redis-server)");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

impl RedisCluster {
    /// Starts `masters` masters with one replica each and waits until the
    /// cluster is `ok` from every node.
    pub fn start(masters: usize) -> RedisCluster {
        let dir = std::env::temp_dir().join(format!(
            "bff-testkit-cluster-{}-{}",
            std::process::id(),
            free_cluster_port()
        ));
        std::fs::create_dir_all(&dir).expect("cluster directory");
        let mut nodes = Vec::new();
        for _ in 0..masters * 2 {
            let port = free_cluster_port();
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string()])
                .args(crate::EPHEMERAL_REDIS)
                .args(["--cluster-enabled", "yes", "--cluster-node-timeout", &NODE_TIMEOUT_MS.to_string()])
                .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
                .current_dir(&dir)
                .stdout(Stdio::null())
                .spawn()
                .expect("redis-server on the PATH (apt-get install -y redis-server)");
            nodes.push(Node { child: Some(child), port });
        }
        let cluster = RedisCluster { nodes, dir };
        for node in &cluster.nodes {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !cli(node.port, &["PING"]).contains("PONG") {
                assert!(Instant::now() < deadline, "redis node {} did not start", node.port);
                std::thread::sleep(Duration::from_millis(25));
            }
        }
        let addresses: Vec<String> = cluster.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        let created = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("redis-cli --cluster create");
        assert!(created.status.success(), "cluster create: {}", String::from_utf8_lossy(&created.stdout));
        cluster.wait_ok(Duration::from_secs(30));
        // Every replica in sync with its master: a replica that never was
        // refuses to take over (its data counts as too old).
        let deadline = Instant::now() + Duration::from_secs(30);
        for node in &cluster.nodes {
            loop {
                let replication = cli(node.port, &["INFO", "replication"]);
                if replication.contains("role:master") || replication.contains("master_link_status:up") {
                    break;
                }
                assert!(Instant::now() < deadline, "replica {} never synced:\n{replication}", node.port);
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        cluster
    }

    /// The nodes' URLs (what `redis.cluster_nodes` takes).
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| format!("redis://127.0.0.1:{}", n.port)).collect()
    }

    /// Waits until every running node says `cluster_state:ok` and sees as
    /// many masters serving slots as the cluster started with, all of them
    /// running; answers how long that took.
    pub fn wait_ok(&self, within: Duration) -> Duration {
        let started = Instant::now();
        let masters = self.nodes.len() / 2;
        loop {
            let running: Vec<u16> = self.nodes.iter().filter(|n| n.child.is_some()).map(|n| n.port).collect();
            let all_ok =
                running.iter().all(|port| cli(*port, &["CLUSTER", "INFO"]).contains("cluster_state:ok"));
            // Every slot served by a running master (a killed one still
            // counts as a master until the others agree it failed).
            let serving = |port: &u16| {
                let live = self.masters_from(*port);
                live.len() == masters && live.iter().all(|master| running.contains(master))
            };
            if all_ok && running.iter().all(serving) {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < within,
                "the cluster was not ok within {within:?}:\n{}",
                cli(self.any_running(), &["CLUSTER", "NODES"])
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The ports of the live masters that serve slots, as `port` sees them.
    fn masters_from(&self, port: u16) -> Vec<u16> {
        cli(port, &["CLUSTER", "NODES"])
            .lines()
            .filter(|line| {
                let flags = line.split(' ').nth(2).unwrap_or_default();
                flags.contains("master") && !flags.contains("fail") && line.split(' ').count() > 8
            })
            .filter_map(|line| line.split(' ').nth(1)?.split(['@', ':']).nth(1)?.parse().ok())
            .collect()
    }

    /// The port of the master that serves `key` now.
    pub fn master_of(&self, key: &str) -> u16 {
        let slot: u16 = cli(self.any_running(), &["CLUSTER", "KEYSLOT", key]).trim().parse().expect("a slot");
        let nodes = cli(self.any_running(), &["CLUSTER", "NODES"]);
        nodes
            .lines()
            .filter(|line| line.split(' ').nth(2).is_some_and(|flags| flags.contains("master")))
            .find(|line| {
                line.split(' ').skip(8).any(|range| {
                    let mut bounds = range.split('-').filter_map(|b| b.parse::<u16>().ok());
                    match (bounds.next(), bounds.next()) {
                        (Some(low), Some(high)) => (low..=high).contains(&slot),
                        (Some(only), None) => only == slot,
                        _ => false,
                    }
                })
            })
            .and_then(|line| line.split(' ').nth(1)?.split(['@', ':']).nth(1)?.parse().ok())
            .unwrap_or_else(|| panic!("no master serves slot {slot}:\n{nodes}"))
    }

    fn any_running(&self) -> u16 {
        self.nodes.iter().find(|n| n.child.is_some()).map(|n| n.port).expect("a running node")
    }

    /// `GET key` from the master that serves it (`-c`: follows a redirect).
    pub fn get(&self, key: &str) -> String {
        cli(self.any_running(), &["-c", "GET", key]).trim().to_owned()
    }

    /// Every key matching `pattern`, from every running master.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        let mut keys: Vec<String> = self
            .masters_from(self.any_running())
            .into_iter()
            .flat_map(|port| {
                cli(port, &["--scan", "--pattern", pattern]).lines().map(str::to_owned).collect::<Vec<_>>()
            })
            .collect();
        keys.sort();
        keys
    }

    /// SIGKILLs the node on `port` (a master, to see a failover).
    pub fn kill(&mut self, port: u16) {
        let node = self.nodes.iter_mut().find(|n| n.port == port).expect("a node of this cluster");
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
