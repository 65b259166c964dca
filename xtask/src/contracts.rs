//! `cargo xtask contracts`: what client teams run in CI on every change.
//!
//! 1. The consumer tests (every `pacts::` test of the BFF crates and of
//!    `bff-contracts`) write fresh pacts to `target/contracts/pacts/`, and
//!    `bff-downstream`'s `schemas::` tests check every field the typed
//!    clients read against the mocks' published JSON Schemas and validate
//!    the mocks' real responses against them.
//! 2. `bff-contracts check` compares the generated OpenAPI documents and the
//!    fresh pacts with the committed ones (drift), each document with its
//!    released baseline (breaking changes), verifies every pact against its
//!    provider and prints the consumer × provider matrix.
//!
//! `--update` rewrites `openapi/<bff>.json` and `contracts/` instead of
//! failing on drift; `--rebaseline` makes the current documents the released
//! baselines (run it when a version ships to clients).

use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, bail};

use crate::root;

const HELP: &str = "usage: cargo xtask contracts [--update | --rebaseline [<bff>]]

Records the consumer pacts (every `pacts::` test) and checks the DTO schemas
(`schemas::`), then: OpenAPI drift, breaking changes against openapi/baseline/
(acknowledged in openapi/accepted-breaks.toml), pact drift against contracts/,
and verification of every pact against its provider, with a consumer x
provider matrix. Non-zero exit on any failure.

  --update      rewrite openapi/<bff>.json and contracts/*.json from the code
  --rebaseline  the current documents become the released baselines (at a release);
                with a BFF's name, only its document (one BFF's API released alone)";

/// Runs the command.
pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let (mut update, mut rebaseline, mut only) = (false, false, None);
    for arg in args {
        match arg.as_str() {
            "--update" => update = true,
            "--rebaseline" => rebaseline = true,
            name if rebaseline && only.is_none() && bff_registry::find(name).is_some() => {
                only = bff_registry::find(name).map(|bff| bff.name);
            }
            "-h" | "--help" => {
                println!("{HELP}");
                return Ok(());
            }
            other => bail!("unknown argument `{other}`\n\n{HELP}"),
        }
    }
    let started = Instant::now();
    let root = root();
    if rebaseline {
        // Nothing was built for this run: let cargo build the binary.
        let mut run = crate::cargo();
        cargo_build_bffs()?;
        run.args(["run", "--quiet", "--package", "bff-contracts", "--", "rebaseline", "--root"]).arg(&root);
        run.arg("--bin-dir").arg(crate::bin_dir());
        if let Some(name) = only {
            run.args(["--only", name]);
        }
        return succeed(run);
    }

    let pacts = root.join("target/contracts/pacts");
    if pacts.exists() {
        std::fs::remove_dir_all(&pacts).with_context(|| format!("clearing {}", pacts.display()))?;
    }
    std::fs::create_dir_all(&pacts)?;
    eprintln!(
        "contracts: recording consumer pacts (`pacts::` tests), checking DTO schemas (`schemas::` tests)..."
    );
    // The whole workspace, as `cargo test --workspace` builds it: a package
    // subset would unify dependency features differently and rebuild them.
    // Every crate's `it` binary runs, filtered to the consumer and schema
    // tests, so a new BFF's `pacts::` tests are picked up without wiring.
    let mut test = crate::cargo();
    test.current_dir(&root).env("BFF_PACT_DIR", &pacts);
    test.args(["test", "--quiet", "--workspace", "--test", "it", "--", "pacts::", "schemas::"]);
    let status = test.status().context("running the consumer tests")?;
    if !status.success() {
        bail!("a consumer or schema test failed (see above): its pact was not written");
    }
    eprintln!("contracts: consumer DTO schemas match the mocks' published schemas and responses");

    let mut check = vec!["check".to_owned(), "--root".into(), root.display().to_string()];
    // The test run above built every BFF binary (cargo builds a package's
    // binaries for its integration tests): the checks run them.
    check.extend(["--bin-dir".to_owned(), crate::bin_dir().display().to_string()]);
    check.extend(["--pacts".to_owned(), pacts.display().to_string()]);
    if update {
        check.push("--update".into());
    }
    // The verifier narrates every interaction on stdout: keep that in a file.
    let log = root.join("target/contracts/verifier.log");
    // The test run above has just built the `bff-contracts` binary (cargo
    // builds the binaries of crates with integration tests, and it has one)
    // with the test build's features; `cargo run -p` would resolve other
    // features and rebuild much of the dependency tree (minutes on a cold CI).
    let mut binary = Command::new(crate::bin_dir().join("bff-contracts"));
    binary.args(&check).stdout(std::fs::File::create(&log)?);
    let result = succeed(binary);
    eprintln!("contracts: {:.1} s (the verifier's log: {})", started.elapsed().as_secs_f64(), log.display());
    result
}

/// Builds every BFF's binary (the rebaseline reads their documents).
fn cargo_build_bffs() -> anyhow::Result<()> {
    let names: Vec<&str> = bff_registry::BFFS.iter().map(|bff| bff.name).collect();
    crate::cargo_build(&names, true)
}

/// Runs `command` in the workspace root; an error unless it succeeds.
fn succeed(mut command: Command) -> anyhow::Result<()> {
    let status = command.current_dir(root()).status().context("running bff-contracts")?;
    if !status.success() {
        bail!("contract checks failed");
    }
    Ok(())
}
