//! The tv-bff binary: `tv-bff --help` lists its commands.

fn main() -> std::process::ExitCode {
    tv_bff::bff().main()
}
