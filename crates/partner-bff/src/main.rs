//! The partner-bff binary: load configuration, then serve until SIGTERM/Ctrl-C.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    bff_server::launch::<partner_bff::Config, _, _>("partner-bff", partner_bff::ENV_PREFIX, partner_bff::run)
        .await
}
