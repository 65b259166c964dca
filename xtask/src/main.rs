//! `cargo xtask <command>`: the workspace's automation, in Rust so that it
//! runs from a fresh clone with nothing but cargo.
//!
//! * `dev`: build and run the whole stack locally (no Docker), print where
//!   everything listens, stop everything on Ctrl-C.
//! * `token --client mobile --user u-1`: print an access token that the
//!   running stack accepts.
//! * `smoke`: one request per BFF against the running stack.
//! * `fuzz-api`: requests generated from each BFF's OpenAPI document
//!   against the running stack, by schemathesis (see `fuzz_api.rs`).
//! * `test`: the whole test suite, with its set-up (see `test.rs`).
//! * `contracts [--update | --rebaseline]`: regenerate pacts, verify every
//!   provider, check OpenAPI drift and breaking changes (see `contracts.rs`).
//! * `compose [--check]`: regenerate `docker-compose.yml` from the registry.
//! * `new-bff <name> --port <p> --auth <mode>`: scaffold a BFF (see `new_bff.rs`).
//! * `load [<scenario>... | all]`: the fault scenarios on release builds
//!   pinned to cores, for figures; `load bench ...` the load scenarios (see
//!   `load.rs`).
//! * `profile`: a CPU profile of mobile-bff under load, as a flame graph
//!   (see `profile.rs`).
//!
//! Which BFFs exist comes from one place, `crates/bff-registry`.

mod contracts;
mod dev;
mod fuzz_api;
mod k8s;
mod load;
mod new_bff;
mod profile;
mod smoke;
mod stack;
mod test;
#[cfg(test)]
mod tidy;

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{Context as _, bail};

const USAGE: &str = "usage: cargo xtask <command>

commands:
  dev [--no-build]                      build and run every mock and BFF; Ctrl-C stops them
                                        (--no-build: the binaries the test build made, as in CI)
  token --client <bff> --user <id> [--ttl-secs N]
                                        print what a BFF's callers present for a seeded user: a token,
                                        or for a session BFF (web) its session cookie; <bff> is a name
                                        from crates/bff-registry (mobile, web, partner, admin, ...)
  smoke                                 one request per BFF against the running stack (`dev`)
  fuzz-api [<bff>...] [--examples N] [--seed S]
                                        requests generated from each BFF's OpenAPI document against the
                                        running stack (schemathesis): no 5xx, answers as documented
  test                                  the whole test suite: installs what it needs (redis-server)
                                        or says how, then `cargo test --workspace`
  contracts [--update | --rebaseline]   consumer pacts, provider verification, OpenAPI drift and
                                        breaking changes; --update rewrites the generated files,
                                        --rebaseline makes the current OpenAPI the released one
  compose [--check]                     write docker-compose.yml from the registry (or check it)
  new-bff <name> --port <p> --auth <bearer|session|client-credentials|staff|device>
                                        scaffold a BFF crate and its registry entry
  new-bff --selftest                    the scaffold's end-to-end test (part of `test`)
  load [<scenario>... | all] [--clients N] [--seconds S] [--bin-dir DIR]
                                        the fault scenarios (RELIABILITY.md) on release builds, mobile-bff
                                        pinned to core 0, mocks and load to core 1; --bin-dir runs the
                                        BFF and mocks built elsewhere (an older commit: 'before' figures)
  load bench [<scenario>... | all | custom ...] [--seconds S] [--peak R] [--update-performance]
                                        the load scenarios (latency, throughput, CPU per request; JSON,
                                        SVG and HTML reports); `cargo xtask load bench --help` for more
  profile [--path P] [--rate R] [--seconds S]
                                        perf profile of mobile-bff (pinned) under open-loop load:
                                        target/profile/flamegraph.svg and the top symbols";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("dev") => dev::run(&args[1..]),
        Some("token") => token(&args[1..]),
        Some("contracts") => contracts::run(&args[1..]),
        Some("smoke") => smoke::run(&args[1..]),
        Some("test") => test::run(&args[1..]),
        Some("compose") => stack::run(&args[1..]),
        Some("new-bff") => new_bff::run(&args[1..]),
        Some("load") => load::run(&args[1..]),
        Some("fuzz-api") => fuzz_api::run(&args[1..]),
        Some("profile") => profile::run(&args[1..]),
        Some("-h" | "--help") | None => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown command `{other}`\n\n{USAGE}"),
    }
}

/// The workspace root (xtask lives one level below it).
pub(crate) fn root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// Where cargo builds (`$CARGO_TARGET_DIR`, else `<root>/target`).
pub(crate) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"))
}

/// Where cargo puts debug binaries.
pub(crate) fn bin_dir() -> PathBuf {
    target_dir().join("debug")
}

/// A `cargo` command as if typed in a shell. `cargo run` (which is how
/// `cargo xtask` runs) sets `CARGO_MANIFEST_DIR`, `CARGO_PKG_NAME` and the
/// like for xtask; a cargo started with them passes them on to build
/// scripts' `rerun-if-env-changed` checks (`ring` declares those), and then
/// it rebuilds `ring` and everything above it whenever it alternates with a
/// cargo started from a shell. So they are removed.
pub(crate) fn cargo() -> Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(cargo);
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let per_package = name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_MANIFEST_")
            || matches!(
                name.as_ref(),
                "CARGO_CRATE_NAME" | "CARGO_BIN_NAME" | "CARGO_PRIMARY_PACKAGE" | "OUT_DIR"
            );
        if per_package {
            command.env_remove(name.as_ref());
        }
    }
    command
}

/// `cargo build` of the given packages' binaries.
pub(crate) fn cargo_build(packages: &[&str], quiet: bool) -> anyhow::Result<()> {
    let mut command = cargo();
    command.current_dir(root()).args(["build", "--bins"]);
    if quiet {
        command.arg("--quiet");
    }
    for package in packages {
        command.args(["--package", package]);
    }
    let status = command.status().context("running cargo build")?;
    if !status.success() {
        bail!("cargo build failed");
    }
    Ok(())
}

/// Minting is the identity provider's business: delegate to the mock's CLI,
/// which signs with the same development key the running identity mock
/// publishes, so the token works against `cargo xtask dev` (and offline).
fn token(args: &[String]) -> anyhow::Result<()> {
    cargo_build(&["services-mock"], true)?;
    let status = Command::new(bin_dir().join("services-mock"))
        .arg("token")
        .args(args)
        .status()
        .context("running services-mock token")?;
    if !status.success() {
        bail!("token not minted");
    }
    Ok(())
}
