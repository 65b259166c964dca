//! The admin-bff binary.
//!
//! ```text
//! admin-bff                       serve (configuration from ADMIN_BFF__...)
//! admin-bff verify-audit <file>   check an audit trail's hash chain
//! ```

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None => {
            bff_server::launch::<admin_bff::Config, _, _>("admin-bff", admin_bff::ENV_PREFIX, admin_bff::run)
                .await
        }
        Some("verify-audit") => match args.get(1) {
            Some(path) => match admin_bff::audit::verify(std::path::Path::new(path)) {
                Ok((records, last)) => {
                    println!("ok: {records} records, chain intact, last hash {last}");
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("admin-bff: {error}");
                    ExitCode::FAILURE
                }
            },
            None => {
                eprintln!("usage: admin-bff verify-audit <file>");
                ExitCode::FAILURE
            }
        },
        Some(other) => {
            eprintln!("admin-bff: unknown argument `{other}`\nusage: admin-bff [verify-audit <file>]");
            ExitCode::FAILURE
        }
    }
}
