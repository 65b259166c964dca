//! The OpenAPI documents: generate each BFF's, compare it with the committed
//! `openapi/<bff>.json` byte for byte (the drift check), write it (`--update`).

use std::path::{Path, PathBuf};

use utoipa::openapi::OpenApi;

/// A BFF whose OpenAPI document is generated and checked.
#[derive(Debug, Clone, Copy)]
pub struct Bff {
    /// The crate and binary name (`mobile-bff`); the file is `openapi/<name>.json`.
    pub name: &'static str,
    /// Generates the document from the BFF's router.
    pub openapi: fn() -> OpenApi,
}

/// Every BFF in the workspace. A test fails when a `crates/*-bff` directory
/// is missing here, so a new BFF cannot silently skip its contract checks.
pub const BFFS: [Bff; 4] = [
    Bff { name: "mobile-bff", openapi: mobile_bff::openapi },
    Bff { name: "web-bff", openapi: web_bff::openapi },
    Bff { name: "partner-bff", openapi: partner_bff::openapi },
    Bff { name: "admin-bff", openapi: admin_bff::openapi },
];

impl Bff {
    /// The document as committed: `bff_server::openapi::to_json`.
    pub fn render(&self) -> String {
        bff_server::openapi::to_json(&(self.openapi)())
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
