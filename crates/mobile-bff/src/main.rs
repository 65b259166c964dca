//! The mobile-bff binary: `mobile-bff --help` lists its commands.

fn main() -> std::process::ExitCode {
    mobile_bff::bff().main()
}
