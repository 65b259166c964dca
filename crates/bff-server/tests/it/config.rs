//! A BFF's configuration: its sections, its own section, overrides one key
//! at a time, and what stops start-up.

use bff_server::{Bff, Section};
use figment::Figment;
use figment::providers::{Format, Toml};
use serde::{Deserialize, Serialize};

/// A BFF's own section, for these tests.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Widgets {
    size: u32,
}

impl Section for Widgets {
    const KEY: &'static str = "widgets";

    fn problems(&self) -> Vec<String> {
        if self.size > 10 { vec!["size is at most 10".to_owned()] } else { Vec::new() }
    }
}

fn partner() -> Bff<Widgets> {
    Bff::new(bff_registry::entry("partner-bff"), "0.0.0").shared_state()
}

fn load(bff: &Bff<Widgets>, toml: &str) -> Result<bff_server::Config<Widgets>, String> {
    bff.load_from(Figment::from(Toml::string(toml))).map_err(|e| e.to_string())
}

#[test]
fn a_bff_has_exactly_the_sections_it_uses() {
    let bff = partner();
    assert_eq!(
        bff.defaults().sections(),
        ["server", "auth", "downstream", "compose", "rate_limit", "redis", "widgets"]
    );
    let web: Bff = Bff::new(bff_registry::entry("web-bff"), "0.0.0").cache();
    assert_eq!(
        web.defaults().sections(),
        ["server", "auth", "downstream", "compose", "rate_limit", "redis", "cache", "session"]
    );
    let message = load(&bff, "[cache]\nmemory_capacity = 1\n").expect_err("partner keeps no cache here");
    assert!(message.contains("unknown section `cache`"), "{message}");
}

#[test]
fn its_own_section_loads_and_is_validated_under_its_key() {
    let bff = partner();
    assert_eq!(load(&bff, "[widgets]\nsize = 3\n").expect("valid").own, Widgets { size: 3 });
    let message = load(&bff, "[widgets]\nsize = 30\n").expect_err("invalid");
    assert!(message.contains("widgets.size is at most 10"), "{message}");
    let message = load(&bff, "[widgets]\ncolour = 3\n").expect_err("unknown key");
    assert!(message.contains("colour"), "{message}");
}

#[test]
fn the_egress_list_is_the_registrys_and_nothing_else() {
    let bff = partner();
    let config = bff.defaults();
    let services: Vec<&String> = config.downstream.services.keys().collect();
    assert_eq!(services, ["catalog", "inventory", "pricing"]);
    let message =
        load(&bff, "[downstream.services.orders]\nbase_url = \"http://orders\"\n").expect_err("not called");
    assert!(message.contains("partner-bff does not call orders"), "{message}");
    let one_key = load(&bff, "[downstream.services.pricing]\ntimeout_ms = 55\n").expect("one key alone");
    assert_eq!(one_key.downstream.services["pricing"].timeout_ms, 55);
    assert_eq!(one_key.downstream.services["pricing"].base_url, "http://127.0.0.1:7003");
}

#[test]
fn printed_configuration_hides_secrets() {
    let web: Bff = Bff::new(bff_registry::entry("web-bff"), "0.0.0").cache();
    let mut config = web.defaults();
    // Keys being rotated out are secrets too.
    config.session.previous_cookie_keys = vec![bff_auth::Secret::new("an-old-cookie-key")];
    config.cache.previous_encryption_keys = vec!["an-old-cache-key".to_owned()];
    let printed = config.redacted().to_string();
    for secret in [
        "web-bff-dev-secret",
        bff_server::session::DEV_COOKIE_KEY,
        bff_cache::DEV_ENCRYPTION_KEY,
        "an-old-cookie-key",
        "an-old-cache-key",
    ] {
        assert!(!printed.contains(secret), "{secret} printed");
    }
    assert!(printed.contains("<redacted>"));
}

#[test]
fn outside_local_development_public_development_values_stop_start_up_by_name() {
    let web: Bff = Bff::new(bff_registry::entry("web-bff"), "0.0.0").cache();
    let load = |toml: &str| web.load_from(Figment::from(Toml::string(toml))).map_err(|e| e.to_string());
    // Listening beyond loopback with every development value: each is named.
    let message = load("[server]\nhost = \"0.0.0.0\"\n").expect_err("development keys on 0.0.0.0");
    for key in [
        "auth.issuer",
        "auth.exchange.client_secret: the public development client secret",
        "session.cookie_key",
        "cache.encryption_key",
        "set WEB_BFF__SESSION__COOKIE_KEY",
    ] {
        assert!(message.contains(key), "{key} not named in:\n{message}");
    }
    // Said to be production, even on loopback.
    assert!(load("[server]\nenvironment = \"production\"\n").is_err());
    // The local stack says development explicitly: allowed on 0.0.0.0.
    assert!(load("[server]\nhost = \"0.0.0.0\"\nenvironment = \"development\"\n").is_ok());
    // A deployment with its own values starts.
    let own = r#"
        [server]
        host = "0.0.0.0"
        [auth]
        issuer = "https://id.example.com"
        [auth.exchange]
        client_secret = "a-real-secret"
        [session]
        cookie_key = "Zm9yLXRlc3RzLW9ubHktbm90LXRoZS1kZXYta2V5LWJ1dC1sb25nLWVub3VnaC10by1iZS1hLWtleS1mb3Itc2VhbGluZw=="
        [cache]
        encryption_key = "a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s="
    "#;
    let loaded = load(own);
    assert!(loaded.is_ok(), "{loaded:?}");
}
