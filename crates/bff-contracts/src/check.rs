//! The whole `cargo xtask contracts` run, after the consumer tests have
//! written fresh pacts: drift, breaking changes, verification, the matrix.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde_json::Value;

use crate::baseline::{self, ACCEPTED_FILE, BASELINE_DIR};
use crate::openapi::{bffs, drift};
use crate::verify::{self, PactFile, Providers, States, Verdict};

/// Where the contracts live, relative to the workspace root.
pub const CONTRACTS_DIR: &str = "contracts";
/// Where the OpenAPI documents live, relative to the workspace root.
pub const OPENAPI_DIR: &str = "openapi";
/// The front ends whose consumer pacts must exist (besides every BFF's).
pub const FRONTENDS: [&str; 2] = ["mobile-app", "web-app"];
/// The command that rewrites generated files.
pub const UPDATE_COMMAND: &str = "cargo xtask contracts --update";

/// What to check.
#[derive(Debug, Clone)]
pub struct Options {
    /// The workspace root.
    pub root: PathBuf,
    /// The pacts the consumer tests just wrote.
    pub fresh_pacts: PathBuf,
    /// Rewrite `openapi/<bff>.json` and `contracts/` instead of failing on drift.
    pub update: bool,
    /// Where the BFF binaries are (cargo's `target/debug`).
    pub bin_dir: PathBuf,
}

/// The outcome: a report for humans and whether everything passed.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The text to print.
    pub report: String,
    /// Every check passed.
    pub passed: bool,
}

/// Runs every check; `Err` only when the checks themselves cannot run.
pub async fn run(options: &Options) -> anyhow::Result<Outcome> {
    let mut out = String::new();
    let mut failed = 0usize;
    failed += openapi_drift(options, &mut out)?;
    failed += breaking(options, &mut out)?;
    failed += pact_drift(options, &mut out)?;
    failed += verification(options, &mut out).await?;
    let passed = failed == 0;
    let _ = writeln!(
        out,
        "\n{}",
        if passed {
            "contracts: all checks passed".to_owned()
        } else {
            format!("contracts: {failed} failed")
        }
    );
    Ok(Outcome { report: out, passed })
}

fn openapi_drift(options: &Options, out: &mut String) -> anyhow::Result<usize> {
    let _ = writeln!(out, "== OpenAPI documents (generated from the code vs committed)");
    let mut failed = 0;
    for bff in bffs(&options.bin_dir) {
        let file = bff.file(&options.root.join(OPENAPI_DIR));
        let generated = bff.render()?;
        let committed = std::fs::read_to_string(&file).ok();
        match drift(committed.as_deref(), &generated) {
            None => {
                let _ = writeln!(out, "  ok      {}", rel(options, &file));
            }
            Some(_) if options.update => {
                std::fs::write(&file, &generated).with_context(|| format!("writing {}", file.display()))?;
                let _ = writeln!(out, "  updated {}", rel(options, &file));
            }
            Some(difference) => {
                failed += 1;
                let _ = writeln!(
                    out,
                    "  DRIFT   {} {difference}\n          run `{UPDATE_COMMAND}` and commit the file",
                    rel(options, &file)
                );
            }
        }
    }
    Ok(failed)
}

fn breaking(options: &Options, out: &mut String) -> anyhow::Result<usize> {
    let _ = writeln!(out, "\n== Breaking changes (vs the released baseline, {BASELINE_DIR}/)");
    let accepted = baseline::read_accepted(&options.root.join(ACCEPTED_FILE)).map_err(anyhow::Error::msg)?;
    let mut failed = 0;
    for bff in bffs(&options.bin_dir) {
        let baseline_file = bff.file(&options.root.join(BASELINE_DIR));
        let Ok(base) = std::fs::read_to_string(&baseline_file) else {
            let _ = writeln!(out, "  new     {}: no baseline (nothing released yet)", bff.name);
            continue;
        };
        let base: Value = serde_json::from_str(&base)
            .with_context(|| format!("{} is not JSON", baseline_file.display()))?;
        let head: Value = bff.document()?;
        let frozen = bff_registry::find(bff.name).map(|entry| entry.frozen).unwrap_or_default();
        let breaks = crate::breaking::breaking_changes(&base, &head);
        let triage = baseline::triage(bff.name, breaks, &accepted, frozen);
        if triage.unaccepted.is_empty() && triage.stale.is_empty() {
            let _ = writeln!(out, "  ok      {} ({} accepted)", bff.name, triage.accepted.len());
        }
        for (found, reason) in &triage.accepted {
            let _ = writeln!(out, "  accepted {}: {found}\n           reason: {reason}", bff.name);
        }
        for found in &triage.unaccepted {
            failed += 1;
            let _ = writeln!(
                out,
                "  BREAK   {}: {}\n          at {}\n          {}{}",
                bff.name,
                found.rule,
                found.pointer,
                found.message,
                via(&found.operations)
            );
            if let Some(prefix) = baseline::frozen_by(found, frozen) {
                let _ = writeln!(
                    out,
                    "          {prefix} is frozen while it is served (bff-registry `frozen`): it cannot break; change the next version instead"
                );
            }
        }
        for entry in &triage.stale {
            failed += 1;
            let _ = writeln!(
                out,
                "  STALE   {ACCEPTED_FILE}: {} {} at {} matches no break: delete the entry",
                entry.bff, entry.rule, entry.pointer
            );
        }
    }
    if failed > 0 {
        let _ = writeln!(
            out,
            "          a break clients have agreed to lands with an entry in {ACCEPTED_FILE} (see its header)"
        );
    }
    Ok(failed)
}

fn via(operations: &BTreeSet<String>) -> String {
    if operations.is_empty() {
        String::new()
    } else {
        format!(" (via {})", operations.iter().cloned().collect::<Vec<_>>().join(", "))
    }
}

fn pact_drift(options: &Options, out: &mut String) -> anyhow::Result<usize> {
    let _ =
        writeln!(out, "\n== Pact files (regenerated by the consumer tests vs committed in {CONTRACTS_DIR}/)");
    let committed_dir = options.root.join(CONTRACTS_DIR);
    let names = |dir: &Path| -> BTreeSet<String> {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".json"))
            .collect()
    };
    let (fresh, committed) = (names(&options.fresh_pacts), names(&committed_dir));
    if fresh.is_empty() {
        anyhow::bail!("the consumer tests wrote no pacts to {}", options.fresh_pacts.display());
    }
    let (mut failed, mut changed) = (0, 0);
    for name in fresh.union(&committed) {
        let new = std::fs::read(options.fresh_pacts.join(name)).ok();
        let old = std::fs::read(committed_dir.join(name)).ok();
        let state = match (&new, &old) {
            (Some(a), Some(b)) if a == b => "ok",
            (Some(_), Some(_)) => "changed",
            (Some(_), None) => "new",
            (None, _) => "gone",
        };
        if state == "ok" {
            continue;
        }
        changed += 1;
        if options.update {
            match new {
                Some(bytes) => std::fs::write(committed_dir.join(name), bytes)?,
                None => std::fs::remove_file(committed_dir.join(name))?,
            }
            let _ = writeln!(out, "  updated {CONTRACTS_DIR}/{name} ({state})");
        } else {
            failed += 1;
            let _ = writeln!(out, "  DRIFT   {CONTRACTS_DIR}/{name}: {state} since the last commit");
        }
    }
    if failed > 0 {
        let _ = writeln!(out, "          run `{UPDATE_COMMAND}` and commit {CONTRACTS_DIR}/");
    } else if changed == 0 {
        let _ = writeln!(out, "  ok      {} pacts", fresh.len());
    }
    Ok(failed)
}

async fn verification(options: &Options, out: &mut String) -> anyhow::Result<usize> {
    let pacts = verify::pact_files(&options.fresh_pacts)?;
    let wanted: BTreeSet<&str> = pacts.iter().map(|pact| pact.provider.as_str()).collect();
    let providers = Providers::start(&options.bin_dir, &wanted).await?;
    let mut verdicts = Vec::new();
    let mut unverifiable = Vec::new();
    for pact in &pacts {
        match providers.target(&pact.provider) {
            Some(target) => {
                let states = States::new(&providers.fleet, &pact.provider);
                verdicts.push(verify::verify(pact, target, states).await);
            }
            None => unverifiable.push(pact.clone()),
        }
    }
    drop(providers);
    let expected: Vec<String> = bff_registry::BFFS
        .iter()
        .map(|b| b.name.to_owned())
        .chain(FRONTENDS.iter().map(|f| (*f).to_owned()))
        .collect();
    let (matrix, failed) = matrix(&verdicts, &unverifiable, &expected);
    let _ = writeln!(out, "\n== Provider verification (consumer x provider)\n{matrix}");
    Ok(failed)
}

/// One cell of the matrix.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Cell {
    Verified(usize),
    Failed(usize, usize),
    Missing(String),
}

/// Renders the consumer × provider matrix and the failures explained;
/// returns the text and how many pacts failed or are missing.
pub fn matrix(verdicts: &[Verdict], unverifiable: &[PactFile], expected: &[String]) -> (String, usize) {
    let mut cells: BTreeMap<(String, String), Cell> = BTreeMap::new();
    for verdict in verdicts {
        let cell = if verdict.passed() {
            Cell::Verified(verdict.verified)
        } else {
            Cell::Failed(verdict.failures.len().max(1), verdict.pact.interactions)
        };
        cells.insert((verdict.pact.consumer.clone(), verdict.pact.provider.clone()), cell);
    }
    for pact in unverifiable {
        cells.insert(
            (pact.consumer.clone(), pact.provider.clone()),
            Cell::Missing(format!("no provider named {} runs here", pact.provider)),
        );
    }
    let mut consumers: Vec<String> = expected.to_vec();
    consumers.extend(cells.keys().map(|(c, _)| c.clone()).filter(|c| !expected.contains(c)));
    let providers: BTreeSet<String> = cells.keys().map(|(_, p)| p.clone()).collect();
    let width = consumers.iter().map(String::len).max().unwrap_or(8).max(8);
    let mut text = format!("  {:width$}", "");
    for provider in &providers {
        let _ = write!(text, " {provider:>12}");
    }
    text.push('\n');
    let mut failed = 0;
    let mut explanations = String::new();
    for consumer in &consumers {
        let _ = write!(text, "  {consumer:width$}");
        let mut any = false;
        for provider in &providers {
            let shown = match cells.get(&(consumer.clone(), provider.clone())) {
                None => "·".to_owned(),
                Some(Cell::Verified(n)) => {
                    any = true;
                    format!("ok {n}")
                }
                Some(Cell::Failed(bad, all)) => {
                    any = true;
                    failed += 1;
                    format!("FAIL {bad}/{all}")
                }
                Some(Cell::Missing(why)) => {
                    any = true;
                    failed += 1;
                    let _ = writeln!(explanations, "  {consumer} -> {provider}: MISSING: {why}");
                    "MISSING".to_owned()
                }
            };
            let _ = write!(text, " {shown:>12}");
        }
        if !any {
            failed += 1;
            let _ = write!(text, "   MISSING: no pacts");
            let _ = writeln!(
                explanations,
                "  {consumer}: MISSING: no consumer pacts (its `pacts::` tests wrote none)"
            );
        }
        text.push('\n');
    }
    let _ =
        writeln!(text, "  (ok n: n interactions verified · FAIL: failed/total · ·: no pact between them)");
    for verdict in verdicts.iter().filter(|v| !v.passed()) {
        let pact = &verdict.pact;
        let _ = writeln!(
            explanations,
            "  {} -> {} ({}): {} of {} interactions replayed",
            pact.consumer,
            pact.provider,
            pact.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            verdict.verified,
            pact.interactions
        );
        for failure in &verdict.failures {
            let _ = writeln!(explanations, "    interaction: {}", failure.interaction);
            for problem in &failure.problems {
                let _ = writeln!(explanations, "      - {problem}");
            }
        }
    }
    if !explanations.is_empty() {
        let _ = write!(text, "\nFailures:\n{explanations}");
    }
    (text, failed)
}

fn rel(options: &Options, path: &Path) -> String {
    path.strip_prefix(&options.root).unwrap_or(path).display().to_string()
}

/// `--rebaseline`: the current documents become the released baselines and
/// the acknowledgements are cleared. Run when a version ships to clients;
/// `only` a BFF when one BFF's API ships on its own (a partner API version),
/// which clears its acknowledgements and keeps the others'.
pub fn rebaseline(root: &Path, bin_dir: &Path, only: Option<&str>) -> anyhow::Result<String> {
    let dir = root.join(BASELINE_DIR);
    std::fs::create_dir_all(&dir)?;
    let mut out = String::new();
    let mut found = false;
    for bff in bffs(bin_dir).into_iter().filter(|bff| only.is_none_or(|name| bff.name == name)) {
        found = true;
        std::fs::write(bff.file(&dir), bff.render()?)?;
        let _ = writeln!(out, "baseline {}", bff.file(&dir).strip_prefix(root).unwrap_or(&dir).display());
    }
    let accepted = root.join(ACCEPTED_FILE);
    match only {
        None => std::fs::write(&accepted, baseline::EMPTY_ACCEPTED)?,
        Some(name) if found => {
            let kept =
                baseline::without_entries_of(&std::fs::read_to_string(&accepted).unwrap_or_default(), name);
            std::fs::write(&accepted, kept)?;
        }
        Some(name) => anyhow::bail!("no BFF named {name}"),
    }
    let _ = writeln!(
        out,
        "cleared {ACCEPTED_FILE}{}",
        only.map(|n| format!(" of {n}'s entries")).unwrap_or_default()
    );
    Ok(out)
}
