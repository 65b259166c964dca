//! The operational shell every BFF binary shares.
//!
//! * [`config`]: typed configuration from defaults, an optional TOML file and
//!   `<PREFIX>__SECTION__KEY` environment variables, validated at start-up so
//!   a typo or a bad value stops the process with a clear message.
//! * [`edge`]: the middleware stack in front of the routes (see
//!   `ARCHITECTURE.md`, "Layer inventory", for the order and why) and the
//!   `/healthz` and `/readyz` endpoints.
//! * [`serve`]: serves until a shutdown signal, then lets in-flight requests
//!   finish within a grace period.
//! * [`extract`]: `Json` and `Path` extractors whose rejections are problem
//!   responses, so malformed input gets the same error shape as everything else.
//! * [`conditional`]: `ETag` / `304 Not Modified` for GETs (opt in).
//! * [`openapi`]: what every BFF's generated OpenAPI document shares, and
//!   `GET /openapi.json`.
//! * [`Backbone`]: what every BFF's handlers share (downstream clients with
//!   token exchange, the token verifier, composition settings), and
//!   [`launch`], the whole `main` of a BFF binary.

mod backbone;
pub mod conditional;
pub mod config;
pub mod edge;
pub mod extract;
pub mod openapi;

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

pub use backbone::{Backbone, BffConfig, Sections, SectionsMut, common_problems, launch};
pub use config::{ConfigError, ServerConfig, load};
pub use edge::{Readiness, edge};

/// Serves `app` on `listener` until `shutdown` resolves. Then the listener
/// closes, in-flight requests finish, and after `grace` whatever is still
/// running is dropped (a stuck request must not block a deploy forever).
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let (stopping_tx, mut stopping_rx) = watch::channel(false);
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.await;
        tracing::info!("shutdown requested; finishing in-flight requests");
        let _ = stopping_tx.send(true);
    });
    let grace_over = async move {
        if stopping_rx.wait_for(|stopping| *stopping).await.is_err() {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = server => result,
        () = grace_over => {
            tracing::warn!(grace_secs = grace.as_secs(), "grace period over; dropping remaining requests");
            Ok(())
        }
    }
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
