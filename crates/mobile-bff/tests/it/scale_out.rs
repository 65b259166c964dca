//! Past one instance: replicas of the real mobile-bff binary behind a real
//! HAProxy (`bff_testkit::replicas`, the configuration of `cargo xtask dev
//! --replicas N`), sharing a real Redis.

use std::path::Path;
use std::time::Duration;

use bff_testkit::RedisServer;
use bff_testkit::cluster::RedisCluster;
use bff_testkit::replicas::{Load, Replicas};
use services_mock::{Fleet, Service};

const BIN: &str = env!("CARGO_BIN_EXE_mobile-bff");

/// mobile-bff (in-process) sharing its state through `cluster`.
async fn on_cluster(cluster: &RedisCluster) -> bff_testkit::TestApp {
    let nodes = cluster.urls();
    crate::helpers::spawn_app_with(move |config| {
        config.redis.url = None;
        config.redis.cluster_nodes = nodes;
    })
    .await
}

async fn replicas(n: usize, redis: &RedisServer, fleet: &Fleet) -> Replicas {
    let env = [("MOBILE_BFF__REDIS__URL".to_owned(), redis.url())];
    Replicas::start(Path::new(BIN), mobile_bff::ENTRY, fleet, n, &env).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rolling_restart_under_constant_load_fails_no_request() {
    let redis = RedisServer::start();
    let fleet = Fleet::for_bff(mobile_bff::ENTRY).await.expect("mocks");
    let mut set = replicas(3, &redis, &fleet).await;
    let token =
        fleet.identity().user_token(mobile_bff::ENTRY, "u-1", Duration::from_secs(3600)).expect("token");
    let load = Load::start(&set.base, "/v1/home", &token, 4, Duration::from_millis(5));
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Every instance, one after another: SIGTERM (it drains: /readyz 503,
    // still serving), it exits, it starts again, the balancer has it back.
    for i in 0..set.replicas.len() {
        set.restart(i).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let outcomes = load.stop().await;
    let total: u64 = outcomes.values().sum();
    assert_eq!(outcomes.keys().collect::<Vec<_>>(), ["200"], "every request answered 200: {outcomes:?}");
    // Not a throughput figure: proof that requests kept flowing throughout
    // (three restarts take 10 s or more).
    assert!(total >= 200, "the load ran: {outcomes:?}");
    assert!(set.replicas.iter().all(|r| r.starts == 2), "each instance restarted once");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cache_entry_written_by_one_instance_is_served_by_another() {
    let redis = RedisServer::start();
    let fleet = Fleet::for_bff(mobile_bff::ENTRY).await.expect("mocks");
    let set = replicas(2, &redis, &fleet).await;
    let http = reqwest::Client::new();
    let token =
        fleet.identity().user_token(mobile_bff::ENTRY, "u-1", Duration::from_secs(600)).expect("token");
    let home = |i: usize| http.get(format!("{}/v1/home", set.instance(i))).bearer_auth(&token).send();
    let first: serde_json::Value = home(0).await.expect("instance 1").json().await.expect("json");
    assert_eq!(first["degraded"], false, "{first}");
    assert_eq!(fleet.requests(Service::Promotions).await.expect("stats"), 1);
    assert_eq!(fleet.requests(Service::Recommendations).await.expect("stats"), 1);
    // Instance 2 has never seen them (its memory tier is empty): the
    // entries come from Redis, where instance 1 wrote them (the user's own
    // recommendations sealed for u-1, promotions shared).
    let second: serde_json::Value = home(1).await.expect("instance 2").json().await.expect("json");
    assert_eq!(second["degraded"], false, "{second}");
    assert_eq!(second["data"]["promotions"], first["data"]["promotions"]);
    assert_eq!(second["data"]["recommendations"], first["data"]["recommendations"]);
    assert_eq!(fleet.requests(Service::Promotions).await.expect("stats"), 1, "served from the shared tier");
    assert_eq!(
        fleet.requests(Service::Recommendations).await.expect("stats"),
        1,
        "served from the shared tier"
    );
    assert_eq!(fleet.requests(Service::Cart).await.expect("stats"), 2, "carts are never cached");
}

/// `mobile-bff probe` (the compose health check): 0 when the instance its
/// configuration names answers `/readyz` with 200, not 0 otherwise.
#[tokio::test(flavor = "multi_thread")]
async fn the_probe_tells_a_ready_instance_from_a_missing_one() {
    let redis = RedisServer::start();
    let fleet = Fleet::for_bff(mobile_bff::ENTRY).await.expect("mocks");
    let set = replicas(1, &redis, &fleet).await;
    let probe = |port: u16| {
        std::process::Command::new(BIN)
            .arg("probe")
            .env("MOBILE_BFF__SERVER__PORT", port.to_string())
            .output()
            .expect("the binary runs")
    };
    let ready = probe(set.replicas[0].port);
    assert!(ready.status.success(), "{}", String::from_utf8_lossy(&ready.stderr));
    let nobody =
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
    let missing = probe(nobody);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not ready"), "{missing:?}");
}

/// One region's instance calls its own region only: a downstream service or
/// Redis named in another region stops start-up (ARCHITECTURE.md, "Regions").
#[test]
fn an_instance_refuses_dependencies_outside_its_region() {
    use figment::providers::Serialized;
    let load = |catalog: &str, redis: &str| {
        let figment = figment::Figment::new()
            .merge(Serialized::default("server.region", "eu-west-1"))
            .merge(Serialized::default("downstream.services.catalog.base_url", catalog))
            .merge(Serialized::default("redis.url", redis));
        mobile_bff::bff().load_from(figment)
    };
    // The defaults (loopback names) are cluster-local; so are in-cluster names.
    assert!(load("http://catalog", "redis://redis:6379").is_ok());
    assert!(
        load("https://catalog.eu-west-1.example.internal", "rediss://redis.eu-west-1.example.com:6379")
            .is_ok()
    );
    let error =
        load("https://catalog.us-east-1.example.internal", "rediss://redis.us-east-1.example.com:6379")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
    assert!(
        error.contains("downstream.services.catalog.base_url: catalog.us-east-1.example.internal is not in region eu-west-1"),
        "{error}"
    );
    assert!(error.contains("redis.url: redis.us-east-1.example.com is not in region eu-west-1"), "{error}");
}

/// A Redis Cluster (3 masters, 3 replicas, real processes) loses a master
/// to SIGKILL under constant load: no request fails (the shared state falls
/// back locally meanwhile), the replica takes over, and the BFF writes to
/// the cluster again without a restart. Prints how long each took.
#[tokio::test(flavor = "multi_thread")]
async fn losing_a_redis_cluster_master_fails_no_request_and_the_cluster_is_used_again() {
    use std::time::Instant;
    let mut cluster = RedisCluster::start(3);
    let app = on_cluster(&cluster).await;
    let token = app.token("u-1");
    let load = Load::start(&app.base, "/v1/home", &token, 4, Duration::from_millis(5));

    // The caller's quota cell, written on every request: where it lives.
    let deadline = Instant::now() + Duration::from_secs(10);
    let key = loop {
        if let Some(key) = cluster.keys("bff:ratelimit:*").into_iter().next() {
            break key;
        }
        assert!(Instant::now() < deadline, "the BFF never wrote its quota to the cluster");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let master = cluster.master_of(&key);
    tokio::time::sleep(Duration::from_millis(500)).await;

    let killed = Instant::now();
    cluster.kill(master);
    let failover = tokio::task::block_in_place(|| cluster.wait_ok(Duration::from_secs(30)));
    assert_ne!(cluster.master_of(&key), master, "a replica serves the slot now");
    // The BFF writes the cell again (its value moves) on the new master.
    let promoted = cluster.get(&key);
    let deadline = Instant::now() + Duration::from_secs(30);
    while cluster.get(&key) == promoted {
        assert!(
            Instant::now() < deadline,
            "the BFF did not use the cluster again within 30 s of the failover"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let recovered = killed.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let outcomes = load.stop().await;

    assert_eq!(outcomes.keys().collect::<Vec<_>>(), ["200"], "every request answered 200: {outcomes:?}");
    eprintln!(
        "redis cluster failover: replica promoted {:.1} s after the kill; the BFF writing to it again after {:.1} s; {} requests",
        failover.as_secs_f64(),
        recovered.as_secs_f64(),
        outcomes.values().sum::<u64>()
    );
}

/// What the BFF shares lives in the cluster when one is configured: cached
/// parts and Idempotency-Keys (a retried order is replayed from the
/// cluster, the orders service reached once).
#[tokio::test(flavor = "multi_thread")]
async fn cached_parts_and_idempotency_keys_live_in_a_redis_cluster() {
    let cluster = RedisCluster::start(3);
    let app = on_cluster(&cluster).await;
    let token = app.token("u-1");
    assert_eq!(app.get("/v1/home").await.status, 200);
    let order = || {
        app.http
            .post(format!("{}/v1/orders", app.base))
            .bearer_auth(&token)
            .header("Idempotency-Key", "cluster-order-0001")
            .json(&serde_json::json!({"items": [{"productId": "p-1", "quantity": 1}]}))
            .send()
    };
    let first = order().await.expect("first");
    assert_eq!(first.status().as_u16(), 201);
    let again = order().await.expect("again");
    assert_eq!(again.status().as_u16(), 201);
    assert_eq!(again.headers().get("idempotent-replayed").and_then(|v| v.to_str().ok()), Some("true"));
    let stats = app.fleet.stats(Service::Orders).await.expect("stats");
    assert_eq!(stats["routes"]["POST /orders"], 1, "the retry was answered from the cluster: {stats}");
    // (Quota cells: the failover test above; with the test kit's huge quota
    // a cell expires within microseconds of its write.)
    for pattern in ["bff:cache:*", "bff:idem:*"] {
        assert!(!cluster.keys(pattern).is_empty(), "nothing like {pattern} in the cluster");
    }
}
