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

/// Runs the command.
pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let (mut update, mut rebaseline) = (false, false);
    for arg in args {
        match arg.as_str() {
            "--update" => update = true,
            "--rebaseline" => rebaseline = true,
            other => bail!("unknown argument `{other}` (--update, --rebaseline)"),
        }
    }
    let started = Instant::now();
    let root = root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    if rebaseline {
        return checks(&cargo, &["rebaseline".into(), "--root".into(), root.display().to_string()], None);
    }

    let pacts = root.join("target/contracts/pacts");
    if pacts.exists() {
        std::fs::remove_dir_all(&pacts).with_context(|| format!("clearing {}", pacts.display()))?;
    }
    std::fs::create_dir_all(&pacts)?;
    eprintln!(
        "contracts: recording consumer pacts (`pacts::` tests), checking DTO schemas (`schemas::` tests)..."
    );
    let mut test = Command::new(&cargo);
    test.current_dir(&root).env("BFF_PACT_DIR", &pacts).args(["test", "--quiet", "--test", "it"]);
    for package in consumer_packages(&root)? {
        test.args(["--package", &package]);
    }
    test.args(["--package", "bff-downstream", "--", "pacts::", "schemas::"]);
    let status = test.status().context("running the consumer tests")?;
    if !status.success() {
        bail!("a consumer or schema test failed (see above): its pact was not written");
    }
    eprintln!("contracts: consumer DTO schemas match the mocks' published schemas and responses");

    let mut check = vec!["check".to_owned(), "--root".into(), root.display().to_string()];
    check.extend(["--pacts".to_owned(), pacts.display().to_string()]);
    if update {
        check.push("--update".into());
    }
    // The verifier narrates every interaction on stdout: keep that in a file.
    let log = root.join("target/contracts/verifier.log");
    let result = checks(&cargo, &check, Some(std::fs::File::create(&log)?));
    eprintln!("contracts: {:.1} s (the verifier's log: {})", started.elapsed().as_secs_f64(), log.display());
    result
}

/// `cargo run -p bff-contracts -- <args>`, its stdout to `stdout` if given.
fn checks(cargo: &str, args: &[String], stdout: Option<std::fs::File>) -> anyhow::Result<()> {
    let mut command = Command::new(cargo);
    command.current_dir(root()).args(["run", "--quiet", "--package", "bff-contracts", "--"]).args(args);
    if let Some(file) = stdout {
        command.stdout(file);
    }
    let status = command.status().context("running bff-contracts")?;
    if !status.success() {
        bail!("contract checks failed");
    }
    Ok(())
}

/// Every crate with consumer pacts: each `crates/*-bff` (a new BFF is picked
/// up without wiring) and `bff-contracts` (the front ends' pacts).
fn consumer_packages(root: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let mut packages = vec!["bff-contracts".to_owned()];
    for entry in std::fs::read_dir(root.join("crates"))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.ends_with("-bff") {
            packages.push(name);
        }
    }
    packages.sort();
    Ok(packages)
}
