//! Baselines and acknowledgements for the breaking-change check.
//!
//! **Baseline: the released document, committed** as
//! `openapi/baseline/<bff>.json`, not the merge base with main. Clients run
//! against what was released, so that is what a change must stay compatible
//! with; and a committed file works in any checkout (CI's shallow clone of
//! main has no merge base to compare with, and on main itself the merge base
//! *is* the change, so that check could never fail there). When a version is
//! released to clients, `cargo xtask contracts --rebaseline` copies the
//! current documents over the baselines and clears the acknowledgements.
//!
//! **Acknowledgements** (`openapi/accepted-breaks.toml`) are how an
//! intentional break lands: one reviewed entry per break, naming the BFF,
//! the rule, the JSON pointer and a reason. Nothing else silences the check:
//! there is no flag, an entry without a reason is an error, and an entry that
//! matches no current break is an error too (stale entries would otherwise
//! pile up and hide the next break at the same place).

use std::path::Path;

use figment::Figment;
use figment::providers::{Format as _, Toml};
use serde::Deserialize;

use crate::breaking::Break;

/// The acknowledgements file, relative to the workspace root.
pub const ACCEPTED_FILE: &str = "openapi/accepted-breaks.toml";
/// The baselines directory, relative to the workspace root.
pub const BASELINE_DIR: &str = "openapi/baseline";

/// One accepted break.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Accepted {
    /// The BFF (`mobile-bff`).
    pub bff: String,
    /// The rule id, as the check printed it.
    pub rule: String,
    /// The JSON pointer, as the check printed it.
    pub pointer: String,
    /// Why the break is acceptable (who agreed, which clients are ready).
    pub reason: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AcceptedFile {
    #[serde(default)]
    accepted: Vec<Accepted>,
}

/// Reads the acknowledgements (none when the file does not exist).
pub fn read_accepted(path: &Path) -> Result<Vec<Accepted>, String> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let file: AcceptedFile =
        Figment::from(Toml::file(path)).extract().map_err(|e| format!("{}: {e}", path.display()))?;
    for entry in &file.accepted {
        if entry.reason.trim().is_empty() {
            return Err(format!(
                "{}: the entry for {} {} at {} has no reason",
                path.display(),
                entry.bff,
                entry.rule,
                entry.pointer
            ));
        }
    }
    Ok(file.accepted)
}

/// The breaks of one BFF split into unacknowledged and acknowledged, plus
/// the acknowledgements for this BFF that matched nothing (stale).
#[derive(Debug, Default)]
pub struct Triage {
    /// Breaks nobody accepted: the check fails.
    pub unaccepted: Vec<Break>,
    /// Breaks accepted with a reason.
    pub accepted: Vec<(Break, String)>,
    /// Acknowledgements that match no break: the check fails.
    pub stale: Vec<Accepted>,
}

/// The frozen path prefix (`/partner/v1/`) an operation of `found`
/// (`GET /partner/v1/products -> 200`) is under, if any.
pub fn frozen_by<'a>(found: &Break, frozen: &[&'a str]) -> Option<&'a str> {
    found.operations.iter().find_map(|operation| {
        let path = operation.split_whitespace().nth(1)?;
        frozen.iter().copied().find(|prefix| path.starts_with(prefix))
    })
}

/// Sorts `breaks` of `bff` against the acknowledgements. A break that
/// reaches a frozen version (`frozen`: path prefixes, the registry's
/// `Bff::frozen`) stays unaccepted whatever the acknowledgements say.
pub fn triage(bff: &str, breaks: Vec<Break>, accepted: &[Accepted], frozen: &[&str]) -> Triage {
    let mine: Vec<&Accepted> = accepted.iter().filter(|a| a.bff == bff).collect();
    let mut triage = Triage::default();
    for found in breaks {
        if frozen_by(&found, frozen).is_some() {
            triage.unaccepted.push(found);
            continue;
        }
        match mine.iter().find(|a| a.rule == found.rule && a.pointer == found.pointer) {
            Some(entry) => triage.accepted.push((found, entry.reason.clone())),
            None => triage.unaccepted.push(found),
        }
    }
    for entry in mine {
        let used = triage.accepted.iter().any(|(b, _)| b.rule == entry.rule && b.pointer == entry.pointer);
        if !used {
            triage.stale.push(entry.clone());
        }
    }
    triage
}

/// The acknowledgements file `text` without the entries of `bff` (a release
/// of that BFF alone): each `[[accepted]]` block whose `bff` is it is dropped,
/// the header and the other entries kept as written.
pub fn without_entries_of(text: &str, bff: &str) -> String {
    let marker = "[[accepted]]";
    let mut blocks = text.split(marker);
    let mut kept = blocks.next().unwrap_or_default().to_owned();
    let own = format!("bff = \"{bff}\"");
    for block in blocks {
        if !block.lines().any(|line| line.trim() == own) {
            kept.push_str(marker);
            kept.push_str(block);
        }
    }
    kept
}

/// The acknowledgements file after a release: no entries, the explanation kept.
pub const EMPTY_ACCEPTED: &str = "\
# Breaking changes to a BFF's API accepted on purpose, each reviewed.
#
# `cargo xtask contracts` compares each openapi/<bff>.json with its released
# baseline (openapi/baseline/<bff>.json) and fails on every breaking change
# not listed here. To land one, add the entry the check printed, with a
# reason your reviewers agree with:
#
# [[accepted]]
# bff = \"mobile-bff\"
# rule = \"response-property-removed\"
# pointer = \"/components/schemas/HomeVm/properties/tier\"
# reason = \"tier moved to /v1/profile; app >= 5.2 (98% of sessions) no longer reads it\"
#
# `cargo xtask contracts --rebaseline` (run when a version is released)
# clears this list.
";

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::{Accepted, triage};
    use crate::breaking::Break;

    fn found(rule: &str, pointer: &str) -> Break {
        Break {
            rule: rule.to_owned(),
            pointer: pointer.to_owned(),
            message: String::new(),
            operations: BTreeSet::new(),
        }
    }

    fn accepted(bff: &str, rule: &str, pointer: &str) -> Accepted {
        Accepted { bff: bff.into(), rule: rule.into(), pointer: pointer.into(), reason: "agreed".into() }
    }

    #[test]
    fn only_an_exact_entry_for_the_same_bff_accepts_a_break() {
        let entries = [
            accepted("mobile-bff", "response-property-removed", "/a"),
            accepted("web-bff", "response-property-removed", "/b"),
            accepted("mobile-bff", "response-property-removed", "/stale"),
        ];
        let result = triage(
            "mobile-bff",
            vec![found("response-property-removed", "/a"), found("response-property-removed", "/b")],
            &entries,
            &[],
        );
        assert_eq!(result.accepted.len(), 1);
        assert_eq!(result.unaccepted, vec![found("response-property-removed", "/b")]);
        assert_eq!(result.stale, vec![entries[2].clone()]);
    }

    #[test]
    fn a_release_of_one_bff_drops_only_its_entries() {
        let text = "# header\n\n[[accepted]]\nbff = \"a\"\nrule = \"r\"\n\n[[accepted]]\nbff = \"b\"\nrule = \"r\"\n";
        assert_eq!(
            super::without_entries_of(text, "a"),
            "# header\n\n[[accepted]]\nbff = \"b\"\nrule = \"r\"\n"
        );
    }

    #[test]
    fn a_break_that_reaches_a_frozen_version_cannot_be_accepted() {
        let mut reaching = found("response-property-removed", "/a");
        reaching.operations.insert("GET /partner/v1/products/{id} -> 200".to_owned());
        let entries = [accepted("partner-bff", "response-property-removed", "/a")];
        let frozen = triage("partner-bff", vec![reaching.clone()], &entries, &["/partner/v1/"]);
        assert_eq!(frozen.unaccepted, vec![reaching.clone()]);
        let served = triage("partner-bff", vec![reaching], &entries, &["/partner/v2/"]);
        assert_eq!(served.accepted.len(), 1, "v2 is not frozen");
    }
}
