//! admin-bff integration tests: staff tokens, role-based masking and the
//! audit trail, against the real mocks.

mod pacts;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use admin_bff::audit::{AuditRecord, Outcome, verify};
use bff_testkit::TestApp;

struct Admin {
    app: TestApp,
    audit: PathBuf,
}

async fn spawn_app() -> Admin {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let audit = std::env::temp_dir().join(format!(
        "admin-bff-it-{}-{}.jsonl",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_file(&audit);
    let path = audit.clone();
    let app = bff_testkit::spawn(admin_bff::bff(), |config| config.own.path = path).await;
    Admin { app, audit }
}

impl Admin {
    fn records(&self) -> Vec<AuditRecord> {
        let text = std::fs::read_to_string(&self.audit).unwrap_or_default();
        text.lines().map(|line| serde_json::from_str(line).expect("a record per line")).collect()
    }
}

impl Drop for Admin {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.audit);
    }
}

#[tokio::test]
async fn support_sees_masked_personal_data_and_admin_sees_it_whole() {
    let admin = spawn_app().await;
    let app = &admin.app;

    let support = app.token("s-2");
    let reply = app.get_with("/admin/v1/users/u-3", Some(&support), &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["data"]["email"], "a***@example.com");
    assert_eq!(body["data"]["masked"], serde_json::json!(["email"]));
    assert!(!reply.text.contains("alan@example.com"));
    // u-3 has two orders (seed: u-N has N-1).
    assert_eq!(body["data"]["recentOrders"].as_array().map(Vec::len), Some(2));

    let whole = app.get_with("/admin/v1/users/u-3", Some(&app.token("s-1")), &[]).await.json();
    assert_eq!(whole["data"]["email"], "alan@example.com");
    assert_eq!(whole["data"]["masked"], serde_json::json!([]));
}

#[tokio::test]
async fn other_tokens_are_refused_and_nothing_is_forwarded() {
    let admin = spawn_app().await;
    let app = &admin.app;
    let mobile = app.token_for(bff_registry::entry("mobile-bff"), "u-1");
    app.get_with("/admin/v1/users/u-1", Some(&mobile), &[]).await.assert_problem(403, "auth.forbidden");
    let viewer = app.token("s-3");
    app.get_with("/admin/v1/users/u-1", Some(&viewer), &[]).await.assert_problem(403, "auth.forbidden");
    app.get_with("/admin/v1/users/u-1", None, &[]).await.assert_problem(401, "auth.invalid_token");
    assert_eq!(app.fleet.domain_requests().await.expect("stats"), 0);
}

#[tokio::test]
async fn every_request_allowed_or_denied_writes_exactly_one_chained_record() {
    let admin = spawn_app().await;
    let app = &admin.app;
    let mobile = app.token_for(bff_registry::entry("mobile-bff"), "u-1");
    let cases: [(&str, Option<String>, u16); 5] = [
        ("/admin/v1/users/u-1", Some(app.token("s-1")), 200),
        ("/admin/v1/users/u-2", Some(app.token("s-2")), 200),
        ("/admin/v1/users/u-99", Some(app.token("s-1")), 404),
        ("/admin/v1/users/u-1", Some(mobile), 403),
        ("/admin/v1/users/u-1", None, 401),
    ];
    for (path, token, status) in &cases {
        let reply =
            app.get_with(path, token.as_deref(), &[("x-request-id", &format!("audit-{status}"))]).await;
        assert_eq!(reply.status.as_u16(), *status, "{path}: {}", reply.text);
    }

    let records = admin.records();
    assert_eq!(records.len(), cases.len(), "one record per request");
    type Summary<'a> = (Option<&'a str>, Option<&'a str>, Option<&'a str>, Outcome, u16);
    let summary: Vec<Summary<'_>> = records
        .iter()
        .map(|r| (r.actor.as_deref(), r.role.as_deref(), r.target.as_deref(), r.outcome, r.status))
        .collect();
    assert_eq!(
        summary,
        vec![
            (Some("s-1"), Some("admin"), Some("u-1"), Outcome::Allowed, 200),
            (Some("s-2"), Some("support"), Some("u-2"), Outcome::Allowed, 200),
            (Some("s-1"), Some("admin"), Some("u-99"), Outcome::Allowed, 404),
            (Some("u-1"), None, Some("u-1"), Outcome::Denied, 403),
            (None, None, Some("u-1"), Outcome::Denied, 401),
        ]
    );
    assert!(records.iter().all(|r| r.action == "GET /admin/v1/users/{id}"));
    assert_eq!(records[0].request_id, "audit-200");
    assert_eq!(verify(&admin.audit).expect("chain intact").0, 5);

    // Tampering with any record is evident.
    let text = std::fs::read_to_string(&admin.audit).expect("read");
    std::fs::write(&admin.audit, text.replacen("\"actor\":\"s-2\"", "\"actor\":\"s-1\"", 1)).expect("write");
    let error = verify(&admin.audit).expect_err("modified record");
    assert!(error.to_string().contains("line 2"), "{error}");
}

#[tokio::test]
async fn the_openapi_document_is_public_and_is_the_generated_one() {
    let admin = spawn_app().await;
    let reply = admin.app.get_with("/openapi.json", None, &[]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text, bff_server::openapi::to_json(&admin_bff::bff().openapi()));
    // Documentation is not personal data: reading it is not audited.
    assert!(admin.records().is_empty());
}

#[test]
fn the_back_office_configures_only_what_it_uses() {
    use figment::Figment;
    use figment::providers::{Format, Toml};

    let bff = admin_bff::bff();
    let config = bff.defaults();
    assert_eq!(config.sections(), ["server", "auth", "downstream", "compose", "audit"]);
    let egress: Vec<&String> = config.downstream.services.keys().collect();
    assert_eq!(egress, ["orders", "user"], "its egress list, nothing else");
    for section in ["cache", "redis", "session"] {
        let error = bff
            .load_from(Figment::from(Toml::string(&format!("[{section}]\nurl = \"x\"\n"))))
            .expect_err("a section admin does not have");
        assert!(error.to_string().contains(&format!("unknown section `{section}`")), "{error}");
    }
    let audit = bff
        .load_from(Figment::from(Toml::string("[audit]\npath = \"/tmp/a.jsonl\"\n")))
        .expect("own section");
    assert_eq!(audit.own.path, std::path::PathBuf::from("/tmp/a.jsonl"));
}

#[tokio::test]
async fn conforms_to_the_shell() {
    let trail = std::env::temp_dir().join(format!("admin-bff-conformance-{}.jsonl", std::process::id()));
    let path = trail.clone();
    bff_testkit::conformance(admin_bff::bff, |config| config.own.path = path).await;
    let _ = std::fs::remove_file(trail);
}
