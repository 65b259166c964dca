//! The shell every BFF is built in: a client team's crate declares its
//! screens and what is its own, [`Bff`] does the rest (see [`shell`]).
//!
//! * [`shell`]: the [`Bff`] builder: configuration, authentication mode,
//!   egress, OpenAPI, readiness, the edge, serving, the binary's commands.
//! * [`config`]: typed configuration from defaults, an optional TOML file and
//!   `<PREFIX>__SECTION__KEY` environment variables, validated at start-up so
//!   a typo or a bad value stops the process with a clear message.
//! * [`session`]: the `session` authentication mode (login through the BFF,
//!   sealed cookies, CSRF, CORS).
//! * [`edge`]: the middleware stack in front of the routes (see
//!   `ARCHITECTURE.md`, "Layer inventory", for the order and why) and the
//!   `/healthz` and `/readyz` endpoints.
//! * [`admin`]: the admin listener (`GET /metrics`), apart from the public port.
//! * [`serve`]: serves until a shutdown signal, then lets in-flight requests
//!   finish within a grace period.
//! * [`extract`]: `Json` and `Path` extractors whose rejections are problem
//!   responses, so malformed input gets the same error shape as everything else.
//! * [`conditional`]: `ETag` / `304 Not Modified` for GETs (opt in).
//! * [`openapi`]: what every BFF's generated OpenAPI document shares, and
//!   `GET /openapi.json`.
//! * [`Backbone`]: what every BFF's handlers share (downstream clients with
//!   token exchange, the token verifier, composition settings, the cache).
//!
//! [`ShellError`] is the crate's one error type.

pub mod admin;
mod backbone;
pub mod conditional;
pub mod config;
pub mod cursor;
pub mod deprecation;
pub mod edge;
pub mod extract;
pub mod idempotency;
pub mod listen;
pub mod openapi;
mod probe;
mod scopes;
pub mod session;
pub mod shell;

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

pub use backbone::Backbone;
pub use config::{Config, Environment, Section, ServerConfig};
pub use edge::{Draining, Readiness, edge};
pub use shell::{Bff, EdgeHook, Hook, Task, Wrap, WrapApp, route_layer};

/// Why a BFF could not be configured, built or served. Start-up errors are
/// printed as one line and the process exits non-zero.
#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    /// A configuration source could not be read, or a value has the wrong
    /// type (the message names the key).
    #[error("configuration could not be read: {0}")]
    ConfigUnreadable(Box<figment::Error>),
    /// A configuration key that is not a section of this BFF.
    #[error("configuration has an unknown section `{key}` (this BFF has: {})", known.join(", "))]
    UnknownSection {
        /// The key as written (lower case).
        key: String,
        /// The sections this BFF has.
        known: Vec<&'static str>,
    },
    /// Configuration values were read but make no sense (each as `key: problem`).
    #[error("configuration is invalid:\n  - {}", .0.join("\n  - "))]
    InvalidConfig(Vec<String>),
    /// Authentication could not be set up (or, for readiness, keys are missing).
    #[error(transparent)]
    Auth(#[from] bff_auth::AuthError),
    /// The downstream clients could not be built.
    #[error(transparent)]
    Downstream(#[from] bff_downstream::DownstreamError),
    /// The cache could not be built.
    #[error(transparent)]
    Cache(#[from] bff_cache::CacheError),
    /// Binding or serving failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// Shutting down: not ready while it drains (see [`Draining`]).
    #[error("shutting down: draining")]
    Draining,
    /// A BFF's own start-up step failed (a hook: opening its audit trail, ...).
    #[error("{what}: {source}")]
    Start {
        /// What was being started.
        what: &'static str,
        /// Why it failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl ShellError {
    /// A failed start-up step of a BFF's own (for its hooks).
    pub fn start(what: &'static str, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        ShellError::Start { what, source: Box::new(source) }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, within the
/// connection limits of `server` (header-read, idle and request timeouts, a
/// cap on open connections: see [`listen`]). Then the listener closes,
/// in-flight requests finish, and after the grace period whatever is still
/// running is dropped (a stuck request must not block a deploy forever).
/// (The shell's [`Bff::run`] first drains: `shutdown` resolves only after
/// `server.drain_secs` of serving with `/readyz` at `503`.)
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    server: &ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let grace = Duration::from_secs(server.shutdown_grace_secs);
    let (stopping_tx, stopping_rx) = watch::channel(false);
    let mut accepting =
        std::pin::pin!(listen::accept_loop(listener, app, listen::Limits::of(server), stopping_rx));
    tokio::select! {
        () = accepting.as_mut() => return Ok(()),
        () = shutdown => {}
    }
    tracing::info!("shutdown requested; finishing in-flight requests");
    let _ = stopping_tx.send(true);
    tokio::select! {
        () = accepting => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!(grace_secs = grace.as_secs(), "grace period over; dropping remaining requests");
        }
    }
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
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
