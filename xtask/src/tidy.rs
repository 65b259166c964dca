//! Tidy: the rules ARCHITECTURE.md states, as tests (in the spirit of
//! rust-analyzer's `tidy`). Each rule is a function over source text or
//! `cargo metadata`, so each is also tested on a violating fixture: a rule
//! that cannot fail is not a rule.
//!
//! * Only `bff-error` maps errors to HTTP statuses. Elsewhere no code
//!   chooses an error status or branches on one: no 4xx/5xx `StatusCode`
//!   constants, no `is_client_error`/`is_server_error`/`from_u16`, no
//!   comparisons or match arms on 4xx/5xx numbers. Reading a *provider's*
//!   status is the business of the protocol boundaries (`bff-downstream`,
//!   `bff-auth`'s identity-provider client), which turn it into typed errors.
//! * Dependency direction: shared crates never depend on a BFF crate or on
//!   `services-mock` outside dev-dependencies; BFF crates never depend on
//!   each other; each shared crate depends only on crates listed above it in
//!   ARCHITECTURE.md's codemap.
//! * One error type per library crate (thiserror), and no `anyhow` or
//!   `Result<_, String>` in library APIs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::root;

/// Crates that are tools or test support, not libraries a BFF is built
/// from: they may use `anyhow`, read or set statuses freely, and depend on
/// the mocks.
const TOOLS: &[&str] = &["bff-testkit", "bff-contracts", "bff-load", "xtask", "services-mock"];

/// Crates at a protocol boundary: they read their providers' statuses.
const BOUNDARIES: &[&str] = &["bff-error", "bff-downstream", "bff-auth"];

/// Statuses a handler or layer may choose: successes and redirects.
const SUCCESS_CONSTANTS: &[&str] =
    &["OK", "CREATED", "ACCEPTED", "NO_CONTENT", "SEE_OTHER", "FOUND", "NOT_MODIFIED", "TEMPORARY_REDIRECT"];

/// The part of a source file that is not test code: everything before its
/// first `#[cfg(test)]`.
fn non_test(source: &str) -> &str {
    source.find("#[cfg(test)]").map_or(source, |at| &source[..at])
}

/// The `.rs` files under `dir`, recursively.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Every crate under `crates/`: `(name, its directory)`.
fn crates() -> Vec<(String, PathBuf)> {
    let mut crates: Vec<(String, PathBuf)> = std::fs::read_dir(root().join("crates"))
        .expect("crates/")
        .flatten()
        .filter(|e| e.path().join("Cargo.toml").exists())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    crates.sort();
    crates
}

/// Where `source` decides or reads an error status, one line each.
fn status_violations(source: &str) -> Vec<String> {
    let mut found = Vec::new();
    let lines: Vec<&str> = non_test(source).lines().collect();
    for (number, line) in lines.iter().enumerate() {
        let code = line.split("//").next().unwrap_or_default();
        let mut rest = code;
        while let Some(at) = rest.find("StatusCode::") {
            let name: String =
                rest[at + 12..].chars().take_while(|c| c.is_ascii_uppercase() || *c == '_').collect();
            if !name.is_empty() && !SUCCESS_CONSTANTS.contains(&name.as_str()) {
                found.push(format!("line {}: StatusCode::{name}", number + 1));
            }
            rest = &rest[at + 12..];
        }
        for call in ["is_client_error(", "is_server_error(", "from_u16("] {
            if code.contains(call) {
                found.push(format!("line {}: {call}", number + 1));
            }
        }
        let bytes = code.as_bytes();
        for (at, window) in bytes.windows(3).enumerate() {
            let is_error_status = (window[0] == b'4' || window[0] == b'5')
                && window[1].is_ascii_digit()
                && window[2].is_ascii_digit()
                && (at == 0 || !bytes[at - 1].is_ascii_alphanumeric())
                && bytes.get(at + 3).is_none_or(|b| !b.is_ascii_alphanumeric() && *b != b'_');
            if !is_error_status {
                continue;
            }
            let before = code[..at].trim_end();
            let after = code[at + 3..].trim_start();
            // `x.status() == 404`, `status: 422` (a pattern), `status = 503`
            // (but not utoipa's documented `(status = 404, response = ..)`).
            let subject = before.trim_end_matches(['=', '!', '<', '>', ' ']);
            let compared = ["==", "!=", ">=", "<="].iter().any(|op| before.ends_with(op))
                && (subject.ends_with("status()")
                    || subject.ends_with("status")
                    || subject.ends_with("as_u16()"));
            let assigned = before.ends_with("status:")
                || (before.ends_with("status =") && !before.ends_with("(status ="));
            // A match arm on statuses: `401 | 403 =>` under a `match` on a status.
            let arm = (after.starts_with("=>") || after.starts_with('|'))
                && lines[number.saturating_sub(5)..=number]
                    .iter()
                    .any(|l| l.contains("match") && l.contains("status"));
            if compared || assigned || arm {
                found.push(format!(
                    "line {}: compares or matches the status {}",
                    number + 1,
                    &code[at..at + 3]
                ));
            }
        }
    }
    found
}

#[test]
fn only_bff_error_maps_errors_to_statuses() {
    let mut violations = Vec::new();
    for (name, dir) in crates() {
        if TOOLS.contains(&name.as_str()) || BOUNDARIES.contains(&name.as_str()) {
            continue;
        }
        // `tests.rs` files are test modules (`#[cfg(test)] mod tests;`).
        for file in rust_files(&dir.join("src")).into_iter().filter(|f| !f.ends_with("tests.rs")) {
            let source = std::fs::read_to_string(&file).expect("readable source");
            for found in status_violations(&source) {
                violations.push(format!("{}: {found}", file.strip_prefix(root()).unwrap_or(&file).display()));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "only bff-error maps errors to HTTP statuses (give the lower crate a typed error, answer an ApiError):\n  {}",
        violations.join("\n  ")
    );
}

#[test]
fn the_status_rule_catches_each_way_of_breaking_it() {
    for bad in [
        "return StatusCode::INTERNAL_SERVER_ERROR.into_response();",
        "DownstreamError::Status { status: 422, .. } => x,",
        "Ok(response) if response.status() == 400 => {}",
        "if status.is_server_error() { }",
        "let s = StatusCode::from_u16(503);",
        "match status { 401 | 403 => Denied, _ => Allowed }",
    ] {
        assert!(!status_violations(bad).is_empty(), "not caught: {bad}");
    }
    for fine in [
        "let mut response = StatusCode::SEE_OTHER.into_response();",
        "ApiError::new(ErrorCode::Internal).into_response()",
        "status: response.status().as_u16(),",
        "let limit = 4096; let port = 8080;",
        "if path.len() <= 512 { }",
        "        (status = 404, response = bff_error::openapi::NotFound),",
        "#[cfg(test)]\nmod tests { fn x() { assert_eq!(s, StatusCode::BAD_REQUEST); } }",
    ] {
        assert_eq!(status_violations(fine), Vec::<String>::new(), "flagged: {fine}");
    }
}

/// A workspace package as `cargo metadata` sees it: its name and its
/// dependencies on other workspace crates, with their kind (`normal`,
/// `dev`, `build`).
#[derive(Debug, Clone)]
struct Package {
    name: String,
    dependencies: Vec<(String, String)>,
}

fn metadata() -> Vec<Package> {
    let output = crate::cargo()
        .current_dir(root())
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .output()
        .expect("cargo metadata runs");
    assert!(output.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&output.stderr));
    let json: Value = serde_json::from_slice(&output.stdout).expect("cargo metadata JSON");
    let members: Vec<String> = json["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect();
    json["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|package| Package {
            name: package["name"].as_str().unwrap_or_default().to_owned(),
            dependencies: package["dependencies"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|d| d["name"].as_str().map(|n| (n, d["kind"].as_str().unwrap_or("normal"))))
                .filter(|(name, _)| members.iter().any(|m| m == name))
                .map(|(name, kind)| (name.to_owned(), kind.to_owned()))
                .collect(),
        })
        .collect()
}

/// The crates in ARCHITECTURE.md's codemap, in order: every `crates/<x>`
/// named in a `### ` heading.
fn codemap_order(architecture: &str) -> Vec<String> {
    let mut order = Vec::new();
    for line in architecture.lines().filter(|l| l.starts_with("### ")) {
        let mut rest = line;
        while let Some(at) = rest.find("crates/") {
            let name: String = rest[at + 7..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
                .collect();
            if !name.is_empty() && !order.contains(&name) {
                order.push(name);
            }
            rest = &rest[at + 7..];
        }
    }
    order
}

/// What is wrong with the dependency graph `packages`, given the codemap's order.
fn dependency_violations(packages: &[Package], order: &[String]) -> Vec<String> {
    let is_bff = |name: &str| name.ends_with("-bff");
    // The top of the graph: tools that run the BFFs and may depend on them.
    let shared = |name: &str| !is_bff(name) && !matches!(name, "services-mock" | "xtask" | "bff-load");
    let tool = |name: &str| TOOLS.contains(&name);
    let mut found = Vec::new();
    for package in packages {
        for (dependency, kind) in &package.dependencies {
            let forbidden = is_bff(dependency) || (dependency == "services-mock" && !tool(&package.name));
            if shared(&package.name) && forbidden && kind != "dev" {
                found.push(format!(
                    "{} depends on {dependency} ({kind}): shared crates may only dev-depend on it",
                    package.name
                ));
            }
            if is_bff(&package.name) && is_bff(dependency) {
                found.push(format!(
                    "{} depends on {dependency}: BFF crates never depend on each other",
                    package.name
                ));
            }
        }
        if !shared(&package.name) {
            continue;
        }
        let Some(position) = order.iter().position(|name| *name == package.name) else {
            found.push(format!("{} is not in ARCHITECTURE.md's codemap", package.name));
            continue;
        };
        for (dependency, kind) in package.dependencies.iter().filter(|(_, kind)| kind == "normal") {
            if !shared(dependency) {
                continue;
            }
            if order.iter().position(|name| name == dependency).is_none_or(|at| at > position) {
                found.push(format!(
                    "{} depends on {dependency} ({kind}), which ARCHITECTURE.md lists below it (crates are listed bottom-up)",
                    package.name
                ));
            }
        }
    }
    found
}

#[test]
fn dependencies_point_the_way_architecture_md_says() {
    let architecture = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let violations = dependency_violations(&metadata(), &codemap_order(&architecture));
    assert!(violations.is_empty(), "dependency rules broken:\n  {}", violations.join("\n  "));
}

#[test]
fn the_dependency_rules_catch_each_way_of_breaking_them() {
    let package = |name: &str, deps: &[(&str, &str)]| Package {
        name: name.to_owned(),
        dependencies: deps.iter().map(|(n, k)| ((*n).to_owned(), (*k).to_owned())).collect(),
    };
    let order: Vec<String> = ["bff-error", "bff-auth", "bff-server"].map(str::to_owned).to_vec();
    let packages = vec![
        package("bff-error", &[]),
        package("bff-auth", &[("bff-server", "normal")]),
        package("bff-server", &[("mobile-bff", "normal"), ("services-mock", "normal"), ("web-bff", "dev")]),
        package("mobile-bff", &[("web-bff", "dev"), ("bff-server", "normal")]),
        package("bff-new", &[]),
    ];
    let found = dependency_violations(&packages, &order).join("\n");
    assert!(found.contains("bff-auth depends on bff-server"), "{found}");
    assert!(found.contains("bff-server depends on mobile-bff"), "{found}");
    assert!(found.contains("bff-server depends on services-mock"), "{found}");
    assert!(!found.contains("web-bff (dev)"), "a dev-dependency on a BFF is allowed: {found}");
    assert!(found.contains("mobile-bff depends on web-bff"), "{found}");
    assert!(found.contains("bff-new is not in ARCHITECTURE.md"), "{found}");
    assert_eq!(
        codemap_order("### `crates/bff-redis` and `crates/bff-ratelimit`\n### x"),
        ["bff-redis", "bff-ratelimit"]
    );
}

/// What breaks "one error type, no anyhow, no `Result<_, String>`" in one
/// crate's non-test sources.
fn error_violations(sources: &BTreeMap<String, String>) -> Vec<String> {
    let mut found = Vec::new();
    let mut error_types = Vec::new();
    for (file, source) in sources {
        let code = non_test(source);
        if code.contains("anyhow") {
            found.push(format!("{file}: uses anyhow (libraries return their own error type)"));
        }
        if code.contains("thiserror::Error") {
            error_types.push(file.clone());
        }
        for start in ["pub fn ", "pub async fn "] {
            let mut rest = code;
            while let Some(at) = rest.find(start) {
                let signature = &rest[at..];
                let end = signature.find(['{', ';']).unwrap_or(signature.len());
                let signature: String = signature[..end].split_whitespace().collect::<Vec<_>>().join(" ");
                if signature.contains("-> Result<") && signature.trim_end().ends_with(", String>") {
                    found.push(format!("{file}: `{signature}` returns a String error"));
                }
                rest = &rest[at + start.len()..];
            }
        }
    }
    if error_types.len() > 1 {
        found.push(format!("{} error types (one per crate): {}", error_types.len(), error_types.join(", ")));
    }
    found
}

#[test]
fn each_library_crate_has_one_error_type_and_no_anyhow_or_string_errors() {
    let mut violations = Vec::new();
    for (name, dir) in crates() {
        if TOOLS.contains(&name.as_str()) {
            continue;
        }
        let sources: BTreeMap<String, String> = rust_files(&dir.join("src"))
            .into_iter()
            .filter(|file| file.file_name().is_some_and(|n| n != "main.rs"))
            .map(|file| {
                let text = std::fs::read_to_string(&file).expect("readable source");
                (file.strip_prefix(root()).unwrap_or(&file).display().to_string(), text)
            })
            .collect();
        violations.extend(error_violations(&sources));
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).expect("Cargo.toml");
        let dependencies = manifest.split("[dependencies]").nth(1).unwrap_or_default();
        let dependencies = dependencies.split("\n[").next().unwrap_or_default();
        if dependencies.lines().any(|line| line.trim_start().starts_with("anyhow")) {
            violations.push(format!("{name}: anyhow in [dependencies]"));
        }
    }
    assert!(violations.is_empty(), "error rules broken:\n  {}", violations.join("\n  "));
}

#[test]
fn the_error_rules_catch_each_way_of_breaking_them() {
    let sources: BTreeMap<String, String> = [
        ("a.rs", "pub fn new(config: Config)\n    -> Result<Self, String> {\n}\n#[derive(Debug, thiserror::Error)]\npub enum A {}"),
        ("b.rs", "pub async fn run() -> anyhow::Result<()> { Ok(()) }\n#[derive(Debug, thiserror::Error)]\npub enum B {}"),
        ("c.rs", "pub fn fine() -> Result<(), MyError> { Ok(()) }\n#[cfg(test)]\nmod tests { fn x() -> anyhow::Result<()> { Ok(()) } }"),
    ]
    .into_iter()
    .map(|(f, s)| (f.to_owned(), s.to_owned()))
    .collect();
    let found = error_violations(&sources).join("\n");
    assert!(found.contains("a.rs: `pub fn new(config: Config) -> Result<Self, String>`"), "{found}");
    assert!(found.contains("b.rs: uses anyhow"), "{found}");
    assert!(found.contains("2 error types"), "{found}");
    assert!(!found.contains("c.rs"), "test code and typed errors are fine: {found}");
}

/// axum's own extractors that answer a bad request in plain text: a BFF
/// uses `bff_server::extract`'s, which answer problem+json (schema-driven
/// fuzzing found tv-bff's cursor query answering `text/plain`).
fn plain_text_extractors(source: &str) -> Vec<String> {
    let code = non_test(source);
    // (`axum::Json` is also a response type, so only these are caught.)
    let mut found: Vec<String> = ["axum::extract::Query", "axum::extract::Path"]
        .into_iter()
        .filter(|pattern| code.contains(pattern))
        .map(str::to_owned)
        .collect();
    for group in code.split("axum::extract::{").skip(1) {
        let names = group.split('}').next().unwrap_or_default();
        for name in names.split(',').map(str::trim).filter(|n| matches!(*n, "Query" | "Path")) {
            found.push(format!("axum::extract::{{{name}}}"));
        }
    }
    found
}

#[test]
fn bffs_refuse_bad_requests_as_problems() {
    let mut violations = Vec::new();
    for (name, dir) in crates() {
        for file in rust_files(&dir.join("src")) {
            let source = std::fs::read_to_string(&file).expect("readable source");
            let found = plain_text_extractors(&source);
            // bff-server's extractors wrap axum's; the load tool is a client.
            let wraps = file.ends_with("bff-server/src/extract.rs") || name == "bff-load";
            if !found.is_empty() && !wraps {
                let file = file.strip_prefix(root()).unwrap_or(&file).display().to_string();
                violations.push(format!("{file}: {}", found.join(", ")));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "use bff_server::extract::{{Path, Query}} (problem+json refusals), not axum's:\n  {}",
        violations.join("\n  ")
    );
    assert_eq!(plain_text_extractors("use axum::extract::{State, Query};"), ["axum::extract::{Query}"]);
    assert_eq!(plain_text_extractors("q: axum::extract::Path<String>"), ["axum::extract::Path"]);
    assert!(plain_text_extractors("use bff_server::extract::{Json, Query};").is_empty());
}

/// Where `source` serves HTTP with `axum::serve` (no timer: no header-read
/// or idle timeout, no connection cap).
fn unbounded_serve(source: &str) -> bool {
    non_test(source).contains("axum::serve(")
}

#[test]
fn every_bff_is_served_by_the_bounded_accept_loop() {
    let mut violations = Vec::new();
    for (_, dir) in crates() {
        for file in rust_files(&dir.join("src")) {
            let source = std::fs::read_to_string(&file).expect("readable source");
            if unbounded_serve(&source) {
                violations.push(file.strip_prefix(root()).unwrap_or(&file).display().to_string());
            }
        }
    }
    assert!(
        violations.is_empty(),
        "serve with bff_server::serve (timeouts and a connection cap), not axum::serve:\n  {}",
        violations.join("\n  ")
    );
    assert!(unbounded_serve("let server = axum::serve(listener, app);"));
    assert!(!unbounded_serve("bff_server::serve(listener, app, &config.server, shutdown)"));
}
