//! The stack description agrees with the code, and docker-compose.yml is
//! what the registry generates. (Whether each BFF's real configuration
//! accepts its compose environment is checked by every BFF's conformance
//! test, `bff_testkit::conformance`.)

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{MOCKS, compose, prometheus};
use crate::root;

#[derive(Debug, Deserialize)]
struct Compose {
    services: BTreeMap<String, ComposeService>,
}

#[derive(Debug, Deserialize)]
struct ComposeService {
    #[serde(default)]
    command: Vec<String>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    #[serde(default)]
    ports: Vec<String>,
    #[serde(default)]
    depends_on: BTreeMap<String, DependsOn>,
    healthcheck: Option<Healthcheck>,
}

#[derive(Debug, Deserialize)]
struct DependsOn {
    condition: String,
}

#[derive(Debug, Deserialize)]
struct Healthcheck {
    test: Vec<String>,
}

#[test]
fn mocks_listed_here_are_the_mock_crate_services() {
    let from_code: Vec<(&str, u16)> =
        services_mock::Service::ALL.iter().map(|s| (s.name(), s.default_port())).collect();
    assert_eq!(MOCKS, from_code.as_slice());
    assert!(
        MOCKS.iter().all(|(_, port)| *port != crate::dev::CONSOLE_PORT),
        "the console's port is a mock's"
    );
}

#[test]
fn the_committed_compose_file_is_the_generated_one() {
    let committed = std::fs::read_to_string(root().join("docker-compose.yml")).expect("docker-compose.yml");
    assert!(committed == compose(), "docker-compose.yml is out of date: run `cargo xtask compose`");
}

#[test]
fn the_committed_prometheus_config_is_the_generated_one_and_scrapes_every_admin_listener() {
    let path = root().join("deploy/prometheus/prometheus.yml");
    let committed = std::fs::read_to_string(&path).expect("prometheus.yml");
    assert!(committed == prometheus(), "{} is out of date: run `cargo xtask compose`", path.display());
    let config: serde_norway::Value = serde_norway::from_str(&committed).expect("YAML");
    let jobs = config["scrape_configs"].as_sequence().expect("scrape_configs");
    assert_eq!(jobs.len(), bff_registry::BFFS.len());
    for (job, bff) in jobs.iter().zip(bff_registry::BFFS) {
        assert_eq!(job["job_name"].as_str(), Some(bff.name));
        let target = format!("127.0.0.1:{}", bff.admin_port());
        assert_eq!(job["static_configs"][0]["targets"][0].as_str(), Some(target.as_str()));
    }
}

#[test]
fn compose_runs_every_bff_and_mock_on_its_port_with_what_it_calls() {
    let compose: Compose = serde_norway::from_str(&compose()).expect("generated compose parses");
    for bff in bff_registry::BFFS {
        let service = compose.services.get(bff.name).unwrap_or_else(|| panic!("compose lacks {}", bff.name));
        let admin = bff.admin_port();
        assert_eq!(
            service.ports,
            vec![format!("{0}:{0}", bff.port), format!("{admin}:{admin}")],
            "{}",
            bff.name
        );
        assert_eq!(service.command, vec![bff.name.to_owned()], "{} command", bff.name);
        // Its own probe (GET /readyz on its configured port).
        let probe = service.healthcheck.as_ref().map(|h| h.test.clone());
        assert_eq!(
            probe,
            Some(vec!["CMD".to_owned(), bff.name.to_owned(), "probe".to_owned()]),
            "{}",
            bff.name
        );
        for needed in ["redis", "identity"].iter().chain(bff.calls) {
            let condition = service.depends_on.get(*needed).map(|d| d.condition.as_str());
            assert_eq!(condition, Some("service_healthy"), "{} should wait for a healthy {needed}", bff.name);
        }
    }
    for (name, port) in MOCKS {
        let service = compose.services.get(*name).unwrap_or_else(|| panic!("compose lacks {name}"));
        assert_eq!(service.ports, vec![format!("{port}:{port}")], "{name} ports");
        assert_eq!(service.command.get(2).map(String::as_str), Some(*name), "{name} command");
        let probe = service.healthcheck.as_ref().map(|h| h.test.join(" "));
        assert_eq!(probe, Some(format!("CMD services-mock probe --port {port}")), "{name}");
    }
    let redis = compose.services.get("redis").expect("compose has Redis");
    assert!(
        redis.healthcheck.as_ref().is_some_and(|h| h.test.contains(&"ping".to_owned())),
        "Redis is probed"
    );
}

#[test]
fn compose_redis_is_closed_with_the_acl_the_tests_use() {
    let text = std::fs::read_to_string(root().join("docker-compose.yml")).expect("docker-compose.yml");
    let compose: Compose = serde_norway::from_str(&text).expect("parses");
    let redis = &compose.services["redis"];
    let password = bff_server::shell::LOCAL_REDIS_PASSWORD;
    let mut expected = vec!["redis-server".to_owned()];
    expected.extend(bff_testkit::redis_acl_args(password));
    assert_eq!(redis.command, expected, "the rules partner-bff's password-Redis test runs under");
    assert!(redis.ports.is_empty(), "Redis is not published on the host");
    assert_eq!(
        super::COMPOSE_REDIS_URL,
        format!("redis://{}:{password}@redis:6379", bff_testkit::REDIS_ACL_USER)
    );
    for bff in bff_registry::BFFS {
        assert_eq!(
            compose.services[bff.name].environment.get("REDIS_URL").map(String::as_str),
            Some(super::COMPOSE_REDIS_URL),
            "{}",
            bff.name
        );
    }
}

#[test]
fn the_haproxy_configuration_of_dev_replicas_is_valid_for_haproxy() {
    use bff_registry::balancer::{Frontend, Retries, haproxy_config, replica_port};
    let frontends: Vec<Frontend> = bff_registry::BFFS
        .iter()
        .map(|bff| Frontend {
            name: bff.name.to_owned(),
            listen: bff.port,
            servers: (1..=3).map(|i| replica_port(bff.port, i)).collect(),
        })
        .collect();
    let path = std::env::temp_dir().join(format!("xtask-haproxy-{}.cfg", std::process::id()));
    for retries in [Retries::ConnectionFailures, Retries::None] {
        std::fs::write(&path, haproxy_config("127.0.0.1", &frontends, Some(8404), retries)).expect("written");
        // `haproxy -c`: HAProxy's own check of a configuration (installed by `cargo xtask test`).
        let checked =
            std::process::Command::new("haproxy").arg("-c").arg("-f").arg(&path).output().expect("haproxy");
        assert!(checked.status.success(), "{retries:?}: {}", String::from_utf8_lossy(&checked.stderr));
    }
    let _ = std::fs::remove_file(&path);
}

#[test]
fn the_committed_kubernetes_manifests_are_the_generated_ones() {
    let dir = root().join("deploy/k8s");
    for (path, generated) in crate::k8s::files() {
        let committed = std::fs::read_to_string(dir.join(&path)).unwrap_or_default();
        assert!(committed == generated, "deploy/k8s/{path} is out of date: run `cargo xtask compose`");
    }
}

#[test]
fn every_bff_is_deployed_and_the_kustomization_lists_every_manifest() {
    let files = crate::k8s::files();
    let kustomization =
        files.iter().find(|(path, _)| path == "base/kustomization.yaml").expect("kustomization");
    let listed: serde_norway::Value = serde_norway::from_str(&kustomization.1).expect("YAML");
    let resources: Vec<&str> =
        listed["resources"].as_sequence().expect("resources").iter().filter_map(|r| r.as_str()).collect();
    for bff in bff_registry::BFFS {
        let file = format!("{}.yaml", bff.name);
        assert!(resources.contains(&file.as_str()), "{file} not in the kustomization");
        assert!(files.iter().any(|(path, _)| *path == format!("base/{file}")), "{file} not generated");
    }
    assert!(resources.contains(&"redis.yaml"));
}
