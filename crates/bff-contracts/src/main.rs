//! `bff-contracts`: the checks `cargo xtask contracts` runs once the consumer
//! tests have written fresh pacts. Not meant to be run by hand; see
//! `cargo xtask contracts --help`. `check` writes its report to stderr;
//! stdout is the Pact verifier's own per-interaction log.
//!
//! ```text
//! bff-contracts check --root <workspace> --bin-dir <target/debug> --pacts <dir> [--update]
//! bff-contracts rebaseline --root <workspace> --bin-dir <target/debug> [--only <bff>]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use bff_contracts::check::{self, Options};

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("bff-contracts: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> anyhow::Result<bool> {
    let mut args = std::env::args().skip(1);
    let command = args.next().unwrap_or_default();
    let (mut root, mut pacts, mut update, mut bin_dir, mut only) = (None, None, false, None, None);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--root" => root = args.next().map(PathBuf::from),
            "--bin-dir" => bin_dir = args.next().map(PathBuf::from),
            "--pacts" => pacts = args.next().map(PathBuf::from),
            "--update" => update = true,
            "--only" => only = args.next(),
            other => anyhow::bail!("unknown argument `{other}`"),
        }
    }
    let root = root.ok_or_else(|| anyhow::anyhow!("--root is required"))?;
    let bin_dir = bin_dir.ok_or_else(|| anyhow::anyhow!("--bin-dir is required"))?;
    match command.as_str() {
        "check" => {
            let fresh_pacts = pacts.ok_or_else(|| anyhow::anyhow!("--pacts is required"))?;
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            let outcome = runtime.block_on(check::run(&Options { root, fresh_pacts, update, bin_dir }))?;
            // stdout carries the Pact verifier's own log of every
            // interaction (xtask keeps it in a file); the report is ours.
            eprint!("{}", outcome.report);
            Ok(outcome.passed)
        }
        "rebaseline" => {
            print!("{}", check::rebaseline(&root, &bin_dir, only.as_deref())?);
            Ok(true)
        }
        other => anyhow::bail!("unknown command `{other}` (check, rebaseline)"),
    }
}
