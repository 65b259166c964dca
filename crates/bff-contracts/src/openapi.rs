//! The OpenAPI documents: generate each BFF's, compare it with the committed
//! `openapi/<bff>.json` byte for byte (the drift check), write it (`--update`).
//!
//! Which BFFs there are comes from the registry (`bff-registry`), and each
//! document from the BFF's own binary (`<bff> openapi`): this crate links no
//! BFF, so a new one is checked with no edit here.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

/// A BFF whose OpenAPI document is generated and checked.
#[derive(Debug, Clone)]
pub struct Bff {
    /// The crate and binary name (`mobile-bff`); the file is `openapi/<name>.json`.
    pub name: &'static str,
    /// Its built binary.
    pub binary: PathBuf,
}

/// Every BFF of the registry, with its binary in `bin_dir` (cargo's
/// `target/debug`).
pub fn bffs(bin_dir: &Path) -> Vec<Bff> {
    bff_registry::BFFS.iter().map(|bff| Bff { name: bff.name, binary: bin_dir.join(bff.name) }).collect()
}

impl Bff {
    /// The document as committed: what `<bff> openapi` prints.
    pub fn render(&self) -> anyhow::Result<String> {
        let output = Command::new(&self.binary).arg("openapi").output().with_context(|| {
            format!("running {} openapi (is it built? `cargo build --bins`)", self.binary.display())
        })?;
        if !output.status.success() {
            bail!("{} openapi failed: {}", self.name, String::from_utf8_lossy(&output.stderr));
        }
        String::from_utf8(output.stdout).with_context(|| format!("{} openapi printed no UTF-8", self.name))
    }

    /// The document as JSON.
    pub fn document(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_str(&self.render()?)
            .with_context(|| format!("{} openapi printed no JSON", self.name))
    }

    /// `<dir>/<name>.json`.
    pub fn file(&self, dir: &Path) -> PathBuf {
        dir.join(format!("{}.json", self.name))
    }
}

/// How a committed document differs from the generated one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// No committed file.
    Missing,
    /// The committed file differs; the first differing line (1-based) and
    /// both versions of it.
    Differs {
        /// 1-based line number.
        line: usize,
        /// The committed line (empty past its end).
        committed: String,
        /// The generated line (empty past its end).
        generated: String,
    },
}

/// Compares `committed` (the file's content, if any) with `generated`, byte
/// for byte; `None` when they are equal.
pub fn drift(committed: Option<&str>, generated: &str) -> Option<Drift> {
    let committed = match committed {
        None => return Some(Drift::Missing),
        Some(committed) if committed == generated => return None,
        Some(committed) => committed,
    };
    let (mut old, mut new) = (committed.split('\n'), generated.split('\n'));
    let mut line = 0;
    loop {
        line += 1;
        match (old.next(), new.next()) {
            (Some(a), Some(b)) if a == b => continue,
            (a, b) => {
                return Some(Drift::Differs {
                    line,
                    committed: a.unwrap_or_default().to_owned(),
                    generated: b.unwrap_or_default().to_owned(),
                });
            }
        }
    }
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Drift::Missing => f.write_str("not committed"),
            Drift::Differs { line, committed, generated } => write!(
                f,
                "differs from the code at line {line}:\n      committed: {}\n      generated: {}",
                committed.trim(),
                generated.trim()
            ),
        }
    }
}
