//! The web-bff binary: `web-bff --help` lists its commands.

// The allocator every BFF binary uses: PERFORMANCE.md says why.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    web_bff::bff().main()
}
