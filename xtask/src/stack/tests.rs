//! The stack description agrees with the code, and docker-compose.yml agrees
//! with both: same services, ports, commands, and environment overrides that
//! the BFF's configuration really accepts.

use std::collections::BTreeMap;

use figment::Figment;
use figment::providers::Serialized;
use serde::Deserialize;

use super::{BFFS, MOCKS};
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
    ports: Vec<String>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    #[serde(default)]
    depends_on: Vec<String>,
}

fn compose() -> Compose {
    let text =
        std::fs::read_to_string(root().join("docker-compose.yml")).expect("docker-compose.yml is readable");
    serde_norway::from_str(&text).expect("docker-compose.yml parses")
}

#[test]
fn mocks_listed_here_are_the_mock_crate_services() {
    let from_code: Vec<(&str, u16)> =
        services_mock::Service::ALL.iter().map(|s| (s.name(), s.default_port())).collect();
    assert_eq!(MOCKS, from_code.as_slice());
}

#[test]
fn bff_ports_match_their_configuration_defaults() {
    let mobile = BFFS.iter().find(|b| b.package == "mobile-bff").expect("mobile-bff listed");
    assert_eq!(mobile.port, mobile_bff::Config::default().server.port);
    assert_eq!(mobile.env_prefix, mobile_bff::ENV_PREFIX);
}

#[test]
fn compose_runs_every_mock_on_its_default_port() {
    let compose = compose();
    for (name, port) in MOCKS {
        let service = compose.services.get(*name).unwrap_or_else(|| panic!("compose lacks {name}"));
        assert_eq!(service.ports, vec![format!("{port}:{port}")], "{name} ports");
        let port = port.to_string();
        let expected = ["services-mock", "serve", name, "--host", "0.0.0.0", "--port", port.as_str()];
        assert_eq!(
            service.command.get(..expected.len()),
            Some(&expected.map(str::to_owned)[..]),
            "{name} command"
        );
    }
    assert!(compose.services.contains_key("redis"), "compose has Redis");
}

#[test]
fn compose_runs_every_bff_wired_to_the_mocks() {
    let compose = compose();
    for bff in BFFS {
        let service =
            compose.services.get(bff.package).unwrap_or_else(|| panic!("compose lacks {}", bff.package));
        assert_eq!(service.ports, vec![format!("{0}:{0}", bff.port)], "{} ports", bff.package);
        assert_eq!(service.command, vec![bff.package.to_owned()], "{} command", bff.package);
        for (mock, _) in MOCKS {
            assert!(service.depends_on.iter().any(|d| d == mock), "{} should depend on {mock}", bff.package);
        }
    }
    // The environment must be accepted by the real configuration type and
    // point every downstream at its compose service.
    let mobile = compose.services.get("mobile-bff").expect("mobile-bff in compose");
    let mut figment = Figment::from(Serialized::defaults(mobile_bff::Config::default()));
    for (key, value) in &mobile.environment {
        let path = key
            .strip_prefix("MOBILE_BFF__")
            .unwrap_or_else(|| panic!("{key} lacks the MOBILE_BFF__ prefix"))
            .to_lowercase()
            .replace("__", ".");
        figment = figment.merge(Serialized::default(&path, value));
    }
    let config: mobile_bff::Config = bff_server::config::from_figment(figment)
        .unwrap_or_else(|e| panic!("compose environment rejected: {e}"));
    assert_eq!(config.server.host.to_string(), "0.0.0.0");
    assert_eq!(config.auth.jwks_url, "http://identity:7000/.well-known/jwks.json");
    for (mock, port) in MOCKS.iter().filter(|(name, _)| *name != "identity") {
        let settings = config.downstream.services.get(*mock).unwrap_or_else(|| panic!("{mock} configured"));
        assert_eq!(settings.base_url, format!("http://{mock}:{port}"), "{mock} base_url");
    }
}
