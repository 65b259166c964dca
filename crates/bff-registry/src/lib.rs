//! The registry: the one list of BFFs in this workspace.
//!
//! Each [`Bff`] entry says what everything outside the BFF's own crate
//! needs to know about it: its name (crate, binary, token audience and the
//! OAuth client it exchanges tokens as), its port, its configuration's
//! environment prefix, how its callers authenticate ([`Auth`]), which
//! identity-provider client they get tokens from, which downstream services
//! it may call (its egress list) and how to smoke-test it.
//!
//! Who reads it:
//!
//! * `bff-server`'s shell: defaults (port, audience, client id), the
//!   authentication mode, the egress list (typed clients, token-exchange
//!   scopes, per-dependency guards);
//! * `services-mock`: the identity provider's seeded clients;
//! * `xtask`: `dev`, `token`, `smoke`, `contracts`, `compose`, `new-bff`;
//! * `bff-contracts`: which documents to check and which BFFs to verify.
//!
//! Adding a BFF is its crate plus one entry in [`BFFS`]; `cargo xtask
//! new-bff` writes both. This crate has no dependencies so that reading it
//! costs nothing.

pub mod balancer;

use std::fmt;
use std::str::FromStr;

/// How a BFF's callers authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// An OAuth bearer JWT of an app (authorization code + PKCE).
    Bearer,
    /// A sealed session cookie set by the BFF's own login (the BFF is the
    /// OAuth client), plus a CSRF token on writes.
    Session,
    /// A client-credentials bearer JWT: the caller is a machine (a partner).
    ClientCredentials,
    /// A staff bearer JWT with an allowed role.
    Staff,
    /// A bearer JWT obtained with the device authorization grant (RFC 8628).
    Device,
}

impl Auth {
    /// Every mode.
    pub const ALL: [Auth; 5] =
        [Auth::Bearer, Auth::Session, Auth::ClientCredentials, Auth::Staff, Auth::Device];

    /// The mode's name (`--auth <name>`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Auth::Bearer => "bearer",
            Auth::Session => "session",
            Auth::ClientCredentials => "client-credentials",
            Auth::Staff => "staff",
            Auth::Device => "device",
        }
    }

    /// The Rust path of the mode (`Auth::ClientCredentials`), for generated code.
    pub const fn variant(self) -> &'static str {
        match self {
            Auth::Bearer => "Bearer",
            Auth::Session => "Session",
            Auth::ClientCredentials => "ClientCredentials",
            Auth::Staff => "Staff",
            Auth::Device => "Device",
        }
    }

    /// Whether callers present a bearer token (every mode but `session`).
    pub const fn is_bearer(self) -> bool {
        !matches!(self, Auth::Session)
    }
}

impl fmt::Display for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Auth {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Auth::ALL.into_iter().find(|mode| mode.as_str() == s).ok_or_else(|| {
            let known: Vec<_> = Auth::ALL.iter().map(|m| m.as_str()).collect();
            format!("unknown authentication mode `{s}` (one of: {})", known.join(", "))
        })
    }
}

/// One request that shows a running BFF works (`cargo xtask smoke`, CI).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Smoke {
    /// `GET` this path.
    pub path: &'static str,
    /// As this seeded user or staff member (ignored for client credentials).
    pub caller: &'static str,
    /// The answer is `200` and its body contains this text.
    pub expect: &'static str,
}

/// A BFF of the workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bff {
    /// Crate and binary name, the audience of its callers' tokens and the
    /// OAuth client id it exchanges tokens as (`mobile-bff`).
    pub name: &'static str,
    /// Default port, on loopback in development.
    pub port: u16,
    /// Prefix of its configuration's environment variables
    /// (`MOBILE_BFF__SERVER__PORT`): the name, upper case, `-` as `_`.
    pub env_prefix: &'static str,
    /// How its callers authenticate.
    pub auth: Auth,
    /// The identity-provider client its callers obtain tokens from
    /// (`mobile-app`; for `session`, the BFF itself).
    pub client: &'static str,
    /// The downstream services it may call, by name: its egress list.
    pub calls: &'static [&'static str],
    /// Its main routes, for the table `cargo xtask dev` prints.
    pub routes: &'static str,
    /// How to smoke-test it.
    pub smoke: Smoke,
    /// In containers: a volume for what the BFF writes (admin's audit
    /// trail), mounted at `/var/lib/<name>`; `None` for stateless BFFs.
    pub volume: Option<&'static str>,
    /// In containers: extra settings, `SECTION__KEY` without the prefix
    /// (e.g. where the volume is written).
    pub container_env: &'static [(&'static str, &'static str)],
    /// In the local stacks (`cargo xtask dev` and compose): extra settings,
    /// `SECTION__KEY` without the prefix (e.g. `Server-Timing` on).
    pub local_env: &'static [(&'static str, &'static str)],
    /// Path prefixes of API versions that are served and frozen
    /// (`/partner/v1/`): a breaking change that reaches one of their
    /// operations fails `cargo xtask contracts` and cannot be accepted.
    /// A version leaves this list when it stops being served.
    pub frozen: &'static [&'static str],
    /// Whether it caches composed parts (its crate calls `.cache()`): a
    /// deployment then gives it a cache encryption key from a Secret
    /// (`deploy/k8s`). Its conformance test checks the two agree.
    pub cache: bool,
}

impl Bff {
    /// The fields most entries leave as they are: `..Bff::DEFAULTS`.
    pub const DEFAULTS: Bff = Bff {
        name: "",
        port: 0,
        env_prefix: "",
        auth: Auth::Bearer,
        client: "",
        calls: &[],
        routes: "",
        smoke: Smoke { path: "/healthz", caller: "u-1", expect: "ok" },
        volume: None,
        container_env: &[],
        local_env: &[],
        frozen: &[],
        cache: false,
    };

    /// The short name used on command lines (`mobile` for `mobile-bff`).
    pub fn short_name(&self) -> &'static str {
        self.name.strip_suffix("-bff").unwrap_or(self.name)
    }

    /// The environment prefix a BFF named `name` gets: upper case, `-` as `_`.
    pub fn env_prefix_of(name: &str) -> String {
        name.to_ascii_uppercase().replace('-', "_")
    }

    /// The port of its admin listener (`GET /metrics`): its port + 1000,
    /// so the two never collide and Prometheus's targets follow from the
    /// registry (`deploy/prometheus/prometheus.yml`).
    pub const fn admin_port(&self) -> u16 {
        self.port.saturating_add(1000)
    }

    /// Whether it may call the service `name`.
    pub fn calls(&self, service: &str) -> bool {
        self.calls.contains(&service)
    }
}

/// The port of the dev console that `cargo xtask dev` serves on loopback
/// (`services-mock console`): the BFFs' local pages link to it.
pub const DEV_CONSOLE_PORT: u16 = 7100;

/// Every BFF, in port order. `cargo xtask new-bff` appends entries before
/// the marker line at the end; keep the marker.
pub const BFFS: &[Bff] = &[
    Bff {
        name: "web-bff",
        port: 8080,
        env_prefix: "WEB_BFF",
        auth: Auth::Session,
        client: "web-bff",
        calls: &[
            "user",
            "catalog",
            "pricing",
            "inventory",
            "cart",
            "recommendations",
            "promotions",
            "shipping",
            "reviews",
            "orders",
        ],
        routes: "GET /auth/login, GET /v1/home, GET /v1/product-page/{id}, POST /v1/orders, GET /v1/categories (public)",
        smoke: Smoke { path: "/v1/home", caller: "u-2", expect: r#""greeting":"Welcome back, Grace""# },
        // The waterfall in the browser's devtools.
        local_env: &[("SERVER__SERVER_TIMING", "true")],
        cache: true,
        ..Bff::DEFAULTS
    },
    Bff {
        name: "mobile-bff",
        port: 8081,
        env_prefix: "MOBILE_BFF",
        auth: Auth::Bearer,
        client: "mobile-app",
        calls: &[
            "user",
            "catalog",
            "pricing",
            "inventory",
            "cart",
            "recommendations",
            "promotions",
            "shipping",
            "reviews",
            "orders",
        ],
        routes: "GET /v1/home, GET /v1/product-page/{id}, GET /v1/cart, POST /v1/orders, GET /v1/orders",
        smoke: Smoke { path: "/v1/home", caller: "u-1", expect: r#""degraded":false"# },
        local_env: &[("SERVER__SERVER_TIMING", "true")],
        cache: true,
        ..Bff::DEFAULTS
    },
    Bff {
        name: "partner-bff",
        port: 8082,
        env_prefix: "PARTNER_BFF",
        auth: Auth::ClientCredentials,
        client: "partner-acme",
        calls: &["catalog", "pricing", "inventory"],
        routes: "GET /partner/v1/products[/{id}], POST /partner/v1/products:batchGet, GET /partner/v2/products[/{id}]",
        smoke: Smoke {
            path: "/partner/v1/products/p-1",
            caller: "partner-acme",
            expect: r#""availability":"in_stock""#,
        },
        // Deprecated, served until its sunset: it must not break meanwhile.
        frozen: &["/partner/v1/"],
        cache: true,
        ..Bff::DEFAULTS
    },
    Bff {
        name: "admin-bff",
        port: 8083,
        env_prefix: "ADMIN_BFF",
        auth: Auth::Staff,
        client: "admin-console",
        calls: &["user", "orders"],
        routes: "GET /admin/v1/users/{id}",
        smoke: Smoke { path: "/admin/v1/users/u-1", caller: "s-2", expect: r#""email":"a***@example.com""# },
        volume: Some("admin-audit"),
        container_env: &[("AUDIT__PATH", "/var/lib/admin-bff/audit.jsonl")],
        ..Bff::DEFAULTS
    },
    Bff {
        name: "tv-bff",
        port: 8084,
        env_prefix: "TV_BFF",
        auth: Auth::Device,
        client: "tv-app",
        calls: &["catalog", "pricing", "cart", "recommendations", "promotions"],
        routes: "GET /tv/v1/browse, GET /tv/v1/rails/{id}?cursor=",
        smoke: Smoke { path: "/tv/v1/browse", caller: "u-1", expect: r#""id":"on-sale""# },
        cache: true,
        ..Bff::DEFAULTS
    },
    // cargo xtask new-bff: new entries go above this line.
];

/// The entry named `name`. In a `const` (`const ME: &Bff = bff_registry::entry("x-bff")`)
/// a missing name is a compile error, so a BFF crate cannot start without
/// its entry.
pub const fn entry(name: &str) -> &'static Bff {
    let mut i = 0;
    while i < BFFS.len() {
        if str_eq(BFFS[i].name, name) {
            return &BFFS[i];
        }
        i += 1;
    }
    panic!("no such BFF in the registry (crates/bff-registry/src/lib.rs)")
}

/// The entry named `name`, or its short name (`mobile`), at run time.
pub fn find(name: &str) -> Option<&'static Bff> {
    BFFS.iter().find(|bff| bff.name == name || bff.short_name() == name)
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_ports_prefixes_and_clients_are_unique_and_consistent() {
        for (i, bff) in BFFS.iter().enumerate() {
            assert!(bff.name.ends_with("-bff"), "{}: a BFF's name ends in -bff", bff.name);
            assert_eq!(bff.env_prefix, Bff::env_prefix_of(bff.name), "{}", bff.name);
            assert!(!bff.calls.is_empty(), "{}: calls nothing", bff.name);
            assert_eq!(
                bff.auth == Auth::Session,
                bff.client == bff.name,
                "{}: a session BFF is its own client",
                bff.name
            );
            for other in &BFFS[i + 1..] {
                assert_ne!(bff.name, other.name);
                assert_ne!(bff.port, other.port, "{} and {} share a port", bff.name, other.name);
                assert_ne!(bff.client, other.client, "{} and {} share a client", bff.name, other.name);
            }
        }
    }

    #[test]
    fn entries_are_found_by_name_and_short_name() {
        const MOBILE: &Bff = entry("mobile-bff");
        assert_eq!(MOBILE.port, 8081);
        assert_eq!(find("mobile").map(|b| b.name), Some("mobile-bff"));
        assert_eq!(find("partner-bff").map(|b| b.auth), Some(Auth::ClientCredentials));
        assert!(find("nope").is_none());
    }

    #[test]
    fn modes_parse_from_their_names() {
        for mode in Auth::ALL {
            assert_eq!(mode.as_str().parse::<Auth>(), Ok(mode));
        }
        assert!("oauth".parse::<Auth>().is_err());
    }
}
