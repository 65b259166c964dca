//! The admin-bff binary: `admin-bff --help` lists its commands
//! (`verify-audit <file>` among them).

fn main() -> std::process::ExitCode {
    admin_bff::bff().main()
}
