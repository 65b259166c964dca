//! The web-bff binary: `web-bff --help` lists its commands.

fn main() -> std::process::ExitCode {
    web_bff::bff().main()
}
