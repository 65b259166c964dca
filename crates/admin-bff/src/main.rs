//! The admin-bff binary: `admin-bff --help` lists its commands
//! (`verify-audit <file>` among them).

// The allocator every BFF binary uses: PERFORMANCE.md says why.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    admin_bff::bff().main()
}
