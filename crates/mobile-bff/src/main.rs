//! The mobile-bff binary: `mobile-bff --help` lists its commands.

// mimalloc, not glibc's malloc: about a fifth less CPU per composed
// request and a quarter more peak on one core; `no_thp` keeps its resident
// memory per open connection where glibc's is (PERFORMANCE.md, #11).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    mobile_bff::bff().main()
}
