//! HAProxy in front of replicas: the configuration `cargo xtask dev
//! --replicas N` runs and the rolling-restart tests use, so what is tested
//! is what a developer runs. Plain text, no dependencies (this crate has
//! none).
//!
//! What it encodes, and why:
//!
//! * health checks on `GET /readyz` every 500 ms, out after 2 failures, back
//!   after 2 passes: a draining instance (`/readyz` 503 at SIGTERM) is out
//!   within about a second, so a drain of 2 s covers it
//!   ([`RECOMMENDED_DRAIN_SECS`]);
//! * with [`Retries::ConnectionFailures`] (what `cargo xtask dev` runs), a
//!   request whose connection to an instance failed before it was sent is
//!   sent to another (`retry-on conn-failure`, `option redispatch`): never
//!   a request an instance may have received, so never a write twice (a
//!   client's own retry is the Idempotency-Key's business). The
//!   scale-out tests run with [`Retries::None`], so that a rolling restart
//!   without errors is the instances' own doing (their drain), not the
//!   balancer's: without the drain they see `503`s (measured: 23 of 401
//!   requests during three restarts with a drain of 0).
//! * `balance roundrobin`, HTTP/1.1 keep-alive to the servers.

use std::fmt::Write as _;

/// The drain period that fits [`haproxy_config`]'s checks: 500 ms × 2
/// failures to take an instance out, with margin.
pub const RECOMMENDED_DRAIN_SECS: u64 = 2;

/// Whether HAProxy sends a request elsewhere when it could not reach an
/// instance (see the module's notes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retries {
    /// Never: an instance that refuses the connection is a `503`.
    None,
    /// A connection that failed before the request was sent: up to 3
    /// times, on another instance.
    ConnectionFailures,
}

/// One balanced service: HAProxy listens on `listen` and spreads requests
/// over `servers` (ports on 127.0.0.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frontend {
    /// Name of the frontend and backend (e.g. the BFF's name).
    pub name: String,
    /// The public port, where clients connect.
    pub listen: u16,
    /// The replicas' ports.
    pub servers: Vec<u16>,
}

/// The port of replica `index` (1-based) of a BFF whose public port is
/// `port`: `port + 100 × index` (8181, 8281, … for mobile-bff's 8081);
/// its admin listener is that + 1000, as for any BFF.
pub const fn replica_port(port: u16, index: u16) -> u16 {
    port + 100 * index
}

/// An HAProxy configuration (2.6+) for `frontends`, bound on `host`
/// (servers are always on loopback), with HAProxy's statistics page on
/// `stats` when given (`/stats`; `/stats;csv` for scripts).
pub fn haproxy_config(host: &str, frontends: &[Frontend], stats: Option<u16>, retries: Retries) -> String {
    let retry = match retries {
        Retries::None => "  retries 0\n  retry-on none\n",
        Retries::ConnectionFailures => "  option redispatch\n  retries 3\n  retry-on conn-failure\n",
    };
    let mut out = String::from(
        "# Generated (bff_registry::balancer): HAProxy in front of BFF replicas.\n\
         global\n  maxconn 8192\n\n\
         defaults\n  mode http\n  timeout connect 1s\n  timeout client 60s\n  timeout server 60s\n  \
         timeout http-keep-alive 10s\n  default-server inter 500ms fall 2 rise 2\n",
    );
    out.push_str(retry);
    if let Some(port) = stats {
        let _ = write!(
            out,
            "\nlisten stats\n  bind {host}:{port}\n  stats enable\n  stats uri /stats\n  stats refresh 2s\n"
        );
    }
    for frontend in frontends {
        let name = &frontend.name;
        let _ = write!(
            out,
            "\nfrontend {name}\n  bind {host}:{}\n  default_backend {name}\n\n\
             backend {name}\n  balance roundrobin\n  option httpchk GET /readyz\n  http-check expect status 200\n",
            frontend.listen
        );
        for (i, port) in frontend.servers.iter().enumerate() {
            let _ = writeln!(out, "  server {name}-{} 127.0.0.1:{port} check", i + 1);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_frontend_and_backend_per_service_with_readiness_checks() {
        let config = haproxy_config(
            "127.0.0.1",
            &[Frontend { name: "mobile-bff".to_owned(), listen: 8081, servers: vec![8181, 8281] }],
            Some(8404),
            Retries::ConnectionFailures,
        );
        assert!(config.contains("  retry-on conn-failure\n"));
        assert!(config.contains("listen stats\n  bind 127.0.0.1:8404\n"));
        assert!(
            config.contains("frontend mobile-bff\n  bind 127.0.0.1:8081\n  default_backend mobile-bff\n")
        );
        assert!(config.contains("option httpchk GET /readyz\n"));
        assert!(config.contains(
            "  server mobile-bff-1 127.0.0.1:8181 check\n  server mobile-bff-2 127.0.0.1:8281 check\n"
        ));
        assert_eq!(replica_port(8081, 2), 8281);
    }
}
