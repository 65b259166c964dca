//! The mobile-bff binary: load configuration, then serve until SIGTERM/Ctrl-C.

use std::net::SocketAddr;
use std::process::ExitCode;

use mobile_bff::{Config, ENV_PREFIX, run};

#[tokio::main]
async fn main() -> ExitCode {
    let config: Config = match bff_server::load(ENV_PREFIX) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("mobile-bff: {error}");
            return ExitCode::FAILURE;
        }
    };
    bff_telemetry::init(config.server.log_format, "info");
    let addr = SocketAddr::new(config.server.host, config.server.port);
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("mobile-bff: cannot bind {addr}: {error}");
            return ExitCode::FAILURE;
        }
    };
    match run(config, listener, bff_server::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("mobile-bff: {error:#}");
            ExitCode::FAILURE
        }
    }
}
