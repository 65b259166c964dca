//! admin-bff integration tests: staff tokens, role-based masking and the
//! audit trail, against the real mocks.

mod actions;
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
    let app = bff_testkit::spawn(admin_bff::bff(), |config| {
        config.own.path = path;
        config.own.denial_interval_ms = 100;
    })
    .await;
    Admin { app, audit }
}

impl Admin {
    fn records(&self) -> Vec<AuditRecord> {
        let text = std::fs::read_to_string(&self.audit).unwrap_or_default();
        text.lines().map(|line| serde_json::from_str(line).expect("a record per line")).collect()
    }

    /// The records once there are at least `n` (aggregates are written on
    /// the writer's next interval).
    async fn records_when(&self, n: usize) -> Vec<AuditRecord> {
        for _ in 0..100 {
            let records = self.records();
            if records.len() >= n {
                return records;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        self.records()
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
        ("/admin/v1/users/u-3", Some(app.token("s-2")), 200),
        ("/admin/v1/users/u-99", Some(app.token("s-1")), 404),
        ("/admin/v1/users/u-1", Some(mobile), 403),
        ("/admin/v1/users/u-1", None, 401),
    ];
    for (path, token, status) in &cases {
        let reply =
            app.get_with(path, token.as_deref(), &[("x-request-id", &format!("audit-{status}"))]).await;
        assert_eq!(reply.status.as_u16(), *status, "{path}: {}", reply.text);
    }

    let records = admin.records_when(cases.len()).await;
    assert_eq!(records.len(), cases.len(), "one record per request (the anonymous one as a count of 1)");
    type Summary<'a> = (Option<&'a str>, Option<&'a str>, Option<&'a str>, Outcome, u16);
    let summary: Vec<Summary<'_>> = records
        .iter()
        .map(|r| (r.actor.as_deref(), r.role.as_deref(), r.target.as_deref(), r.outcome, r.status))
        .collect();
    assert_eq!(
        summary,
        vec![
            (Some("s-1"), Some("admin"), Some("u-1"), Outcome::Allowed, 200),
            (Some("s-2"), Some("support"), Some("u-3"), Outcome::Allowed, 200),
            (Some("s-1"), Some("admin"), Some("u-99"), Outcome::Allowed, 404),
            (Some("u-1"), None, Some("u-1"), Outcome::Denied, 403),
            // Nobody we know: aggregated per source, action and code.
            (None, None, None, Outcome::Denied, 401),
        ]
    );
    assert_eq!((records[4].count, records[4].source.as_deref()), (Some(1), Some("127.0.0.1")));
    assert!(records.iter().all(|r| r.action == "GET /admin/v1/users/{id}"));
    // Our own id, with the caller's beside it.
    assert_eq!(records[0].caller_request_id.as_deref(), Some("audit-200"));
    assert_eq!(records[0].request_id.len(), 36, "a UUID: {}", records[0].request_id);
    assert_ne!(records[0].request_id, records[1].request_id);
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
    // Redis: each staff member's quota is shared by every instance.
    assert_eq!(
        config.sections(),
        ["server", "auth", "downstream", "compose", "rate_limit", "redis", "audit"]
    );
    let egress: Vec<&String> = config.downstream.services.keys().collect();
    assert_eq!(egress, ["orders", "user"], "its egress list, nothing else");
    for section in ["cache", "session"] {
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
    bff_testkit::conformance(admin_bff::bff, |config| config.own.path = path.clone()).await;
    let _ = std::fs::remove_file(trail);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unauthenticated_flood_leaves_staff_answered_and_the_trail_small() {
    let admin = spawn_app().await;
    let app = &admin.app;
    // The attacker's run: 1,000 token-less requests with 60,000-character
    // ids, 100 at a time (before: 60 MB of synced lines, staff got 504s).
    // Written as raw bytes, so the flood costs this test's client next to
    // nothing and the BFF's CPU is what is measured.
    let request = format!(
        "GET /admin/v1/users/{} HTTP/1.1\r\nhost: bff\r\nconnection: close\r\n\r\n",
        "9".repeat(60_000)
    );
    let address = app.base.trim_start_matches("http://").to_owned();
    let flood = tokio::spawn(async move {
        let mut refused = 0;
        for _ in 0..10 {
            let mut wave = tokio::task::JoinSet::new();
            for _ in 0..100 {
                let (request, address) = (request.clone(), address.clone());
                wave.spawn(async move {
                    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
                    let mut stream = tokio::net::TcpStream::connect(&address).await.ok()?;
                    stream.write_all(request.as_bytes()).await.ok()?;
                    let mut answer = Vec::new();
                    stream.read_to_end(&mut answer).await.ok()?;
                    Some(answer.starts_with(b"HTTP/1.1 401"))
                });
            }
            refused += wave.join_all().await.into_iter().filter(|refused| *refused == Some(true)).count();
        }
        refused
    });
    let staff = app.token("s-1");
    let mut answered = 0;
    while !flood.is_finished() || answered < 5 {
        let reply = app.get_with("/admin/v1/users/u-2", Some(&staff), &[]).await;
        assert_eq!(reply.status, 200, "a staff request during the flood: {}", reply.text);
        answered += 1;
    }
    assert_eq!(flood.await.expect("flood"), 1_000, "every flood request is refused 401");

    // Staff requests one line each; the flood a handful of aggregates.
    let counted = |records: &[AuditRecord]| -> u64 {
        records.iter().filter(|r| r.actor.is_none()).map(|r| r.count.unwrap_or(0)).sum()
    };
    let mut records = admin.records();
    for _ in 0..100 {
        if counted(&records) >= 1_000 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        records = admin.records();
    }
    assert_eq!(counted(&records), 1_000, "every flood request is counted");
    let staff_records = records.iter().filter(|r| r.actor.as_deref() == Some("s-1")).count();
    assert_eq!(staff_records, answered);
    assert!(records.len() < answered + 50, "{} records for {answered} staff requests", records.len());
    let size = std::fs::metadata(&admin.audit).expect("trail").len();
    assert!(size < 256 * 1024, "the trail grew by {size} bytes");
    assert!(
        records
            .iter()
            .all(|r| r.target.as_deref().is_none_or(|t| t.len() <= admin_bff::audit::MAX_FIELD_CHARS))
    );
    assert_eq!(verify(&admin.audit).expect("chain intact").0, records.len() as u64);
}

#[tokio::test]
async fn a_known_callers_long_target_is_cut_and_marked() {
    let admin = spawn_app().await;
    let app = &admin.app;
    let reply =
        app.get_with(&format!("/admin/v1/users/{}", "u".repeat(5_000)), Some(&app.token("s-1")), &[]).await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    let records = admin.records_when(1).await;
    assert_eq!(records.len(), 1);
    assert!(records[0].truncated);
    assert_eq!(records[0].target.as_deref().map(str::len), Some(admin_bff::audit::MAX_FIELD_CHARS));
    // A malformed id is refused as a request, not "allowed".
    assert_eq!(
        (records[0].outcome, records[0].code.as_deref()),
        (Outcome::Rejected, Some("request.invalid"))
    );
}

#[tokio::test]
async fn requests_the_edge_refuses_are_recorded_too() {
    let admin = spawn_app().await;
    let app = &admin.app;
    let staff = app.token("s-1");
    // An unknown path, a method the route does not have, a body over the
    // limit: refused before a screen, before authentication.
    let unknown = app.get_with("/admin/v1/nope", Some(&staff), &[]).await;
    unknown.assert_problem(404, "resource.not_found");
    let wrong_method = app
        .http
        .delete(format!("{}/admin/v1/users/u-1", app.base))
        .bearer_auth(&staff)
        .send()
        .await
        .expect("reachable");
    assert_eq!(wrong_method.status(), 405);
    let too_large = app
        .http
        .post(format!("{}/admin/v1/users/u-1", app.base))
        .bearer_auth(&staff)
        .body(vec![b'x'; 1024 * 1024])
        .send()
        .await
        .expect("reachable");
    assert_eq!(too_large.status(), 413);
    // Probes and the public document are not the back office's business.
    assert_eq!(app.get("/healthz").await.status, 200);

    let mut records = Vec::new();
    for _ in 0..100 {
        records = admin.records();
        if records.iter().map(|r| r.count.unwrap_or(1)).sum::<u64>() >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut seen: Vec<(Option<&str>, Outcome, u16, Option<u64>)> =
        records.iter().map(|r| (r.code.as_deref(), r.outcome, r.status, r.count)).collect();
    seen.sort_by_key(|(_, _, status, _)| *status);
    assert_eq!(
        seen,
        vec![
            (Some("resource.not_found"), Outcome::Rejected, 404, Some(1)),
            (Some("request.method_not_allowed"), Outcome::Rejected, 405, Some(1)),
            (Some("request.too_large"), Outcome::Rejected, 413, Some(1)),
        ],
        "{records:#?}"
    );
    assert!(records.iter().all(|r| r.source.as_deref() == Some("127.0.0.1")));
    assert_eq!(verify(&admin.audit).expect("chain intact").0, 3);
}
