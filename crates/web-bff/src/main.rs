//! The web-bff binary: load configuration, then serve until SIGTERM/Ctrl-C.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    bff_server::launch::<web_bff::Config, _, _>("web-bff", web_bff::ENV_PREFIX, web_bff::run).await
}
