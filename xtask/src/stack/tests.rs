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

fn bff(package: &str) -> &'static super::Bff {
    BFFS.iter().find(|b| b.package == package).unwrap_or_else(|| panic!("{package} listed in BFFS"))
}

/// The BFF's defaults agree with the stack list, and compose's environment
/// for it is accepted by its real configuration type and points it at the
/// compose services.
fn check_bff<C: bff_server::BffConfig>(compose: &Compose, package: &str, env_prefix: &str) {
    let listed = bff(package);
    assert_eq!(listed.port, C::default().server().port, "{package} port");
    assert_eq!(listed.env_prefix, env_prefix, "{package} env prefix");

    let service = compose.services.get(package).unwrap_or_else(|| panic!("compose lacks {package}"));
    assert_eq!(service.ports, vec![format!("{0}:{0}", listed.port)], "{package} ports");
    assert_eq!(service.command, vec![package.to_owned()], "{package} command");
    for (mock, _) in MOCKS {
        assert!(service.depends_on.iter().any(|d| d == mock), "{package} should depend on {mock}");
    }
    let mut figment = Figment::from(Serialized::defaults(C::default()));
    for (key, value) in &service.environment {
        let path = key
            .strip_prefix(&format!("{env_prefix}__"))
            .unwrap_or_else(|| panic!("{key} lacks the {env_prefix}__ prefix"))
            .to_lowercase()
            .replace("__", ".");
        figment = figment.merge(Serialized::default(&path, value));
    }
    let config: C = bff_server::config::from_figment(figment)
        .unwrap_or_else(|e| panic!("{package}: compose environment rejected: {e}"));
    let config = serde_json::to_value(&config).expect("config serializes");
    assert_eq!(config["server"]["host"], "0.0.0.0", "{package}");
    assert_eq!(config["auth"]["jwks_url"], "http://identity:7000/.well-known/jwks.json", "{package}");
    assert_eq!(config["auth"]["exchange"]["token_url"], "http://identity:7000/oauth/token", "{package}");
    for (mock, port) in MOCKS.iter().filter(|(name, _)| *name != "identity") {
        let base_url = &config["downstream"]["services"][*mock]["base_url"];
        assert_eq!(base_url, &format!("http://{mock}:{port}"), "{package}: {mock} base_url");
    }
}

#[test]
fn compose_runs_every_bff_with_an_environment_its_configuration_accepts() {
    let compose = compose();
    check_bff::<web_bff::Config>(&compose, "web-bff", web_bff::ENV_PREFIX);
    check_bff::<mobile_bff::Config>(&compose, "mobile-bff", mobile_bff::ENV_PREFIX);
    check_bff::<partner_bff::Config>(&compose, "partner-bff", partner_bff::ENV_PREFIX);
    check_bff::<admin_bff::Config>(&compose, "admin-bff", admin_bff::ENV_PREFIX);
    assert_eq!(BFFS.len(), 4, "a new BFF needs a check_bff line here");
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
