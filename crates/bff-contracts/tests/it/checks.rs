//! Each contract check can fail, and says why: fixtures derived from the
//! committed files, never edits to them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bff_contracts::breaking::breaking_changes;
use bff_contracts::check::matrix;
use bff_contracts::openapi::{Drift, drift};
use bff_contracts::verify::{self, PactFile, Providers, States};
use serde_json::{Value, json};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A scratch directory under `target/`, fresh for each test.
fn scratch(name: &str) -> PathBuf {
    let dir = root().join("target/contracts-tests").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn write_pact(dir: &Path, name: &str, pact: &Value) -> PactFile {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec_pretty(pact).expect("json")).expect("write fixture");
    verify::pact_files(dir).expect("readable").into_iter().find(|p| p.path == path).expect("listed")
}

#[test]
fn every_bff_crate_is_in_the_registry_and_every_entry_has_a_crate() {
    let mut crates: Vec<String> = std::fs::read_dir(root().join("crates"))
        .expect("crates/")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with("-bff"))
        .collect();
    crates.sort();
    let mut listed: Vec<String> = bff_registry::BFFS.iter().map(|b| b.name.to_owned()).collect();
    listed.sort();
    assert_eq!(
        crates, listed,
        "a BFF crate is an entry in crates/bff-registry (cargo xtask new-bff writes both)"
    );
}

#[test]
fn a_hand_edit_of_a_committed_document_is_drift_at_its_line() {
    let committed =
        std::fs::read_to_string(root().join("openapi/mobile-bff.json")).expect("committed document");
    let generated = bff_server::openapi::to_json(&mobile_bff::bff().openapi());
    assert_eq!(drift(Some(&committed), &generated), None, "run `cargo xtask contracts --update`");

    // A hand edit: one description changed.
    let edited = committed.replacen("\"description\": \"", "\"description\": \"Edited: ", 1);
    let line = committed.lines().position(|l| l.contains("\"description\": \"")).expect("a description") + 1;
    match drift(Some(&edited), &generated) {
        Some(Drift::Differs { line: at, committed, generated }) => {
            assert_eq!(at, line);
            assert!(committed.contains("Edited: ") && !generated.contains("Edited: "));
        }
        other => panic!("expected drift at line {line}, got {other:?}"),
    }
    assert_eq!(drift(None, &generated), Some(Drift::Missing));
}

#[test]
fn the_released_baselines_have_no_unaccepted_breaks() {
    // Each BFF's own tests prove its committed document is the generated one.
    let accepted = bff_contracts::baseline::read_accepted(&root().join("openapi/accepted-breaks.toml"))
        .expect("readable acknowledgements");
    for bff in bff_registry::BFFS {
        let Ok(base) = std::fs::read_to_string(root().join(format!("openapi/baseline/{}.json", bff.name)))
        else {
            continue; // not released yet
        };
        let base: Value = serde_json::from_str(&base).expect("baseline JSON");
        let head = read_json(&root().join(format!("openapi/{}.json", bff.name)));
        let triage =
            bff_contracts::baseline::triage(bff.name, breaking_changes(&base, &head), &accepted, bff.frozen);
        assert!(triage.unaccepted.is_empty() && triage.stale.is_empty(), "{}: {triage:?}", bff.name);
    }
}

/// partner-bff serves v1 until its sunset: a break of v1 fails the check
/// even with an acknowledgement; the same change in v2 is a break like any.
#[test]
fn partner_v1_cannot_break_while_it_is_served() {
    let base = serde_json::to_value(partner_bff::bff().openapi()).expect("json");
    let mut head = base.clone();
    if let Some(properties) =
        head.pointer_mut("/components/schemas/ProductV1/properties").and_then(Value::as_object_mut)
    {
        properties.remove("brand");
    }
    let breaks = breaking_changes(&base, &head);
    assert!(!breaks.is_empty(), "removing a v1 property is a break");
    let acknowledged: Vec<bff_contracts::baseline::Accepted> = breaks
        .iter()
        .map(|b| bff_contracts::baseline::Accepted {
            bff: "partner-bff".to_owned(),
            rule: b.rule.clone(),
            pointer: b.pointer.clone(),
            reason: "a reviewer agreed".to_owned(),
        })
        .collect();
    let frozen = bff_registry::entry("partner-bff").frozen;
    assert_eq!(frozen, ["/partner/v1/"]);
    let triage = bff_contracts::baseline::triage("partner-bff", breaks, &acknowledged, frozen);
    assert!(!triage.unaccepted.is_empty(), "acknowledged, but v1 is frozen: {triage:?}");
    assert!(triage.accepted.is_empty());
}

/// mobile-bff's document, generated, as JSON to edit.
fn mobile() -> Value {
    serde_json::to_value(mobile_bff::bff().openapi()).expect("json")
}

#[test]
fn removing_a_property_of_a_real_screen_is_a_named_break() {
    let base = mobile();
    let mut head = base.clone();
    if let Some(properties) =
        head.pointer_mut("/components/schemas/HomeVm/properties").and_then(Value::as_object_mut)
    {
        properties.remove("tier");
    }
    let breaks = breaking_changes(&base, &head);
    assert_eq!(breaks.len(), 1, "{breaks:?}");
    assert_eq!(breaks[0].rule, "response-property-removed");
    assert_eq!(breaks[0].pointer, "/components/schemas/HomeVm/properties/tier");
    assert!(breaks[0].operations.contains("GET /v1/home -> 200"), "{breaks:?}");
}

#[test]
fn adding_an_optional_property_to_a_real_screen_passes() {
    let base = mobile();
    let mut head = base.clone();
    if let Some(properties) =
        head.pointer_mut("/components/schemas/HomeVm/properties").and_then(Value::as_object_mut)
    {
        properties.insert("banner".into(), json!({ "type": "string" }));
    }
    assert_eq!(breaking_changes(&base, &head), vec![]);
}

#[test]
fn a_new_required_header_on_a_real_screen_is_a_named_break() {
    let base = mobile();
    let mut head = base.clone();
    if let Some(parameters) =
        head.pointer_mut("/paths/~1v1~1home/get/parameters").and_then(Value::as_array_mut)
    {
        parameters.push(json!({ "name": "X-App-Version", "in": "header", "required": true, "schema": { "type": "string" } }));
    }
    let breaks = breaking_changes(&base, &head);
    let rules: Vec<&str> = breaks.iter().map(|b| b.rule.as_str()).collect();
    assert_eq!(rules, ["new-required-request-parameter"]);
}

/// The committed partner → catalog pact, with `edit` applied.
fn catalog_pact(dir: &Path, edit: impl FnOnce(&mut Value)) -> PactFile {
    let mut pact = read_json(&root().join("contracts/partner-bff-catalog.json"));
    edit(&mut pact);
    write_pact(dir, "partner-bff-catalog.json", &pact)
}

#[tokio::test]
async fn a_provider_missing_a_field_the_pact_needs_fails_verification_readably() {
    let providers = Providers::mocks().await.expect("providers");
    let states = States::new(&providers.fleet, "catalog");
    let target = providers.target("catalog").expect("catalog runs");

    // The committed pact verifies.
    let dir = scratch("missing-field");
    let pact = catalog_pact(&dir, |_| {});
    let verdict = verify::verify(&pact, target, Arc::clone(&states)).await;
    assert!(verdict.passed(), "{verdict:?}");
    assert_eq!(verdict.verified, 4);

    // A consumer that needs `rating`, which the catalog does not send.
    let pact = catalog_pact(&dir, |pact| {
        if let Some(body) =
            pact.pointer_mut("/interactions/1/response/body/content").and_then(Value::as_object_mut)
        {
            body.insert("rating".into(), json!(4.5));
        }
    });
    let verdict = verify::verify(&pact, target, Arc::clone(&states)).await;
    assert!(!verdict.passed());
    assert_eq!(verdict.failures.len(), 1, "{verdict:?}");
    let failure = &verdict.failures[0];
    assert_eq!(failure.interaction, "a product (given product p-1 exists)");
    assert!(
        failure.problems.iter().any(|p| p.contains("missing the following keys: rating")),
        "{:?}",
        failure.problems
    );
    let (text, failed) = matrix(std::slice::from_ref(&verdict), &[], &[]);
    assert_eq!(failed, 1);
    assert!(text.contains("FAIL 1/4") && text.contains("missing the following keys: rating"), "{text}");
}

#[tokio::test]
async fn an_unknown_provider_state_fails_verification_with_its_name() {
    let providers = Providers::mocks().await.expect("providers");
    let states = States::new(&providers.fleet, "catalog");
    let target = providers.target("catalog").expect("catalog runs");
    let dir = scratch("unknown-state");
    let pact = catalog_pact(&dir, |pact| {
        if let Some(state) = pact.pointer_mut("/interactions/0/providerStates/0/name") {
            *state = json!("product p-1 is discontinued");
        }
    });
    let verdict = verify::verify(&pact, target, states).await;
    assert!(!verdict.passed());
    let problems = verdict.failures.iter().flat_map(|f| f.problems.iter()).cloned().collect::<Vec<_>>();
    assert!(problems.iter().any(|p| p.contains("product p-1 is discontinued")), "{problems:?}");
}

#[tokio::test]
async fn a_pact_that_checks_nothing_does_not_pass() {
    let providers = Providers::mocks().await.expect("providers");
    let states = States::new(&providers.fleet, "catalog");
    let target = providers.target("catalog").expect("catalog runs");
    let dir = scratch("empty-pact");
    let pact = catalog_pact(&dir, |pact| pact["interactions"] = json!([]));
    let verdict = verify::verify(&pact, target, states).await;
    assert!(!verdict.passed(), "{verdict:?}");
}

#[test]
fn a_consumer_without_pacts_is_missing_from_the_matrix() {
    let (text, failed) = matrix(&[], &[], &["mobile-app".to_owned()]);
    assert_eq!(failed, 1);
    assert!(text.contains("mobile-app") && text.contains("MISSING: no pacts"), "{text}");
}
