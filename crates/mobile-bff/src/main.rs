//! The mobile-bff binary: load configuration, then serve until SIGTERM/Ctrl-C.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    bff_server::launch::<mobile_bff::Config, _, _>("mobile-bff", mobile_bff::ENV_PREFIX, mobile_bff::run)
        .await
}
