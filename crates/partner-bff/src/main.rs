//! The partner-bff binary: `partner-bff --help` lists its commands.

fn main() -> std::process::ExitCode {
    partner_bff::bff().main()
}
