//! Privileged actions, fully audited: search (masked for support), lock and
//! unlock (admins, with a reason that lands in the trail; support is 403
//! and recorded as denied), and the trail's own queries.

use bff_testkit::Reply;
use serde_json::{Value, json};
use services_mock::Service;

use crate::spawn_app;

async fn post(app: &bff_testkit::TestApp, token: &str, path: &str, body: Value) -> Reply {
    let request = app.http.post(format!("{}{path}", app.base)).bearer_auth(token).json(&body);
    Reply::read(request.send().await.expect("the BFF answers")).await
}

#[tokio::test]
async fn search_finds_users_masked_for_support_page_by_page() {
    let admin = spawn_app().await;
    let app = &admin.app;
    let (root, support) = (app.token("s-1"), app.token("s-2"));
    let found = app.get_with("/admin/v1/users?query=ada", Some(&root), &[]).await;
    assert_eq!(found.status, 200, "{}", found.text);
    assert_eq!(found.json()["items"][0]["email"], "ada@example.com");
    let masked = app.get_with("/admin/v1/users?query=ada", Some(&support), &[]).await.json();
    assert_eq!(masked["items"][0]["email"], "a***@example.com");
    assert_eq!(masked["masked"], json!(["email"]));

    let mut ids = Vec::new();
    let mut path = "/admin/v1/users?limit=4".to_owned();
    loop {
        let page = app.get_with(&path, Some(&root), &[]).await.json();
        ids.extend(
            page["items"]
                .as_array()
                .expect("items")
                .iter()
                .filter_map(|u| u["id"].as_str().map(str::to_owned)),
        );
        match page["nextCursor"].as_str() {
            Some(cursor) => {
                // Another staff member cannot use it.
                app.get_with(&format!("/admin/v1/users?limit=4&cursor={cursor}"), Some(&support), &[])
                    .await
                    .assert_problem(400, "request.invalid");
                path = format!("/admin/v1/users?limit=4&cursor={cursor}");
            }
            None => break,
        }
    }
    assert_eq!(ids, ["u-1", "u-2", "u-3", "u-4", "u-5", "u-6"], "every seeded user once, by id");
}

#[tokio::test]
async fn only_admins_lock_accounts_idempotently_and_every_attempt_is_audited_with_its_reason() {
    let admin = spawn_app().await;
    let app = &admin.app;
    let (root, support) = (app.token("s-1"), app.token("s-2"));
    let reason = json!({"reason": "chargeback fraud, ticket SUP-1234"});

    // Support may not: 403, nothing reaches the user service, recorded as denied.
    post(app, &support, "/admin/v1/users/u-4/lock", reason.clone())
        .await
        .assert_problem(403, "auth.forbidden");
    assert_eq!(
        app.fleet.stats(Service::User).await.expect("stats")["routes"]["POST /users/{id}/lock"],
        Value::Null
    );

    let locked = post(app, &root, "/admin/v1/users/u-4/lock", reason.clone()).await;
    assert_eq!(locked.status, 200, "{}", locked.text);
    assert_eq!(
        locked.json(),
        json!({"id": "u-4", "locked": true, "reason": "chargeback fraud, ticket SUP-1234"})
    );
    // Idempotent: locking again answers the same state (the first reason stands).
    let again =
        post(app, &root, "/admin/v1/users/u-4/lock", json!({"reason": "second look, same ticket"})).await;
    assert_eq!(again.json()["locked"], true);
    assert_eq!(again.json()["reason"], "chargeback fraud, ticket SUP-1234");
    let unlocked =
        post(app, &root, "/admin/v1/users/u-4/unlock", json!({"reason": "refund confirmed by bank"})).await;
    assert_eq!(unlocked.json(), json!({"id": "u-4", "locked": false}));

    post(app, &root, "/admin/v1/users/u-4/lock", json!({"reason": "short"}))
        .await
        .assert_problem(400, "request.invalid");
    post(app, &root, "/admin/v1/users/u-4/lock", json!({})).await.assert_problem(400, "request.invalid");
    post(app, &root, "/admin/v1/users/u-99/lock", reason.clone())
        .await
        .assert_problem(404, "resource.not_found");

    let records = admin.records_when(7).await;
    let locks: Vec<&admin_bff::audit::AuditRecord> =
        records.iter().filter(|r| r.action.starts_with("POST /admin/v1/users/{id}/")).collect();
    let denied = locks.iter().find(|r| r.actor.as_deref() == Some("s-2")).expect("support's attempt");
    assert_eq!(denied.outcome, admin_bff::audit::Outcome::Denied);
    assert_eq!(denied.reason.as_deref(), Some("chargeback fraud, ticket SUP-1234"));
    assert_eq!(denied.target.as_deref(), Some("u-4"));
    let done: Vec<_> =
        locks.iter().filter(|r| r.actor.as_deref() == Some("s-1") && r.status == 200).collect();
    assert_eq!(done.len(), 3);
    assert_eq!(done[2].reason.as_deref(), Some("refund confirmed by bank"));
    assert!(admin_bff::audit::verify(&admin.audit).is_ok(), "the chain holds with reasons in it");
}

#[tokio::test]
async fn admins_query_the_trail_by_actor_target_outcome_and_time_and_support_cannot() {
    let admin = spawn_app().await;
    let app = &admin.app;
    let (root, support) = (app.token("s-1"), app.token("s-2"));
    let started = app.get_with("/admin/v1/users/u-1", Some(&support), &[]).await;
    assert_eq!(started.status, 200);
    for user in ["u-2", "u-3", "u-2"] {
        app.get_with(&format!("/admin/v1/users/{user}"), Some(&root), &[]).await;
    }
    post(app, &support, "/admin/v1/users/u-2/lock", json!({"reason": "support tried this one"})).await;
    admin.records_when(5).await;

    app.get_with("/admin/v1/audit", Some(&support), &[]).await.assert_problem(403, "auth.forbidden");

    let by_target = app.get_with("/admin/v1/audit?target=u-2", Some(&root), &[]).await;
    assert_eq!(by_target.status, 200, "{}", by_target.text);
    let records = by_target.json()["records"].as_array().cloned().expect("records");
    assert_eq!(records.len(), 3, "two reads and one denied lock of u-2: {records:?}");
    assert!(records.windows(2).all(|w| w[0]["seq"].as_u64() > w[1]["seq"].as_u64()), "newest first");

    let denied = app.get_with("/admin/v1/audit?outcome=denied&actor=s-2", Some(&root), &[]).await.json();
    let denied = denied["records"].as_array().cloned().expect("records");
    assert!(
        denied
            .iter()
            .any(|r| r["action"] == "POST /admin/v1/users/{id}/lock"
                && r["reason"] == "support tried this one"),
        "{denied:?}"
    );
    assert!(denied.iter().all(|r| r["outcome"] == "denied" && r["actor"] == "s-2"));

    // Paged: two at a time, each record once.
    let mut seqs = Vec::new();
    let mut path = "/admin/v1/audit?actor=s-1&limit=2".to_owned();
    loop {
        let page = app.get_with(&path, Some(&root), &[]).await.json();
        seqs.extend(page["records"].as_array().expect("records").iter().filter_map(|r| r["seq"].as_u64()));
        match page["nextCursor"].as_str() {
            Some(cursor) => path = format!("/admin/v1/audit?actor=s-1&limit=2&cursor={cursor}"),
            None => break,
        }
    }
    let unique: std::collections::BTreeSet<u64> = seqs.iter().copied().collect();
    assert_eq!(unique.len(), seqs.len(), "no record twice: {seqs:?}");
    assert!(seqs.len() >= 4, "s-1's reads and audit queries: {seqs:?}");

    let future = app.get_with("/admin/v1/audit?since=2999-01-01T00:00:00Z", Some(&root), &[]).await.json();
    assert_eq!(future["records"], json!([]));
    app.get_with("/admin/v1/audit?since=yesterday", Some(&root), &[])
        .await
        .assert_problem(400, "request.invalid");
    app.get_with("/admin/v1/audit?outcome=maybe", Some(&root), &[])
        .await
        .assert_problem(400, "request.invalid");
}

/// Staff are scoped to customer markets (their token's `tenants`): Sam
/// (support, UK and EU desks) cannot tell a US customer from no customer;
/// Alice (admin, all markets) sees them.
#[tokio::test]
async fn another_tenants_customer_answers_exactly_like_an_unknown_one() {
    let admin = spawn_app().await;
    let app = &admin.app;
    let (root, support) = (app.token("s-1"), app.token("s-2"));
    // u-2 is in the US market; u-3 in the UK one.
    assert_eq!(app.get_with("/admin/v1/users/u-3", Some(&support), &[]).await.status, 200);
    let theirs = app.get_with("/admin/v1/users/u-2", Some(&support), &[]).await;
    let nobody = app.get_with("/admin/v1/users/u-99", Some(&support), &[]).await;
    theirs.assert_problem(404, "resource.not_found");
    assert_eq!((theirs.status, &theirs.text), (nobody.status, &nobody.text), "the same answer");
    assert_eq!(app.get_with("/admin/v1/users/u-2", Some(&root), &[]).await.status, 200);

    let found = app.get_with("/admin/v1/users?query=grace", Some(&support), &[]).await.json();
    assert_eq!(found["items"], json!([]), "a search leaves other tenants out");
    let all = app.get_with("/admin/v1/users?query=grace", Some(&root), &[]).await.json();
    assert_eq!(all["items"][0]["id"], "u-2");

    // A token without the claim sees nobody (scoped staff fail closed).
    let identity = app.fleet.identity();
    let mut claims = identity.user_claims(app.bff, "s-1", std::time::Duration::from_secs(300));
    claims.tenants = None;
    let unscoped = identity.sign(&claims).expect("a token");
    app.get_with("/admin/v1/users/u-3", Some(&unscoped), &[]).await.assert_problem(404, "resource.not_found");
}

/// An admin scoped to some markets cannot lock another market's customer:
/// the lock answers as for no customer and never reaches the user service.
#[tokio::test]
async fn a_lock_outside_the_callers_tenants_is_not_found_and_not_sent() {
    let admin = spawn_app().await;
    let app = &admin.app;
    let identity = app.fleet.identity();
    let mut claims = identity.user_claims(app.bff, "s-1", std::time::Duration::from_secs(300));
    claims.tenants = Some("uk".to_owned());
    let uk_admin = identity.sign(&claims).expect("a token");
    let reason = json!({"reason": "chargeback fraud, ticket SUP-1234"});
    // u-2 is a US customer.
    post(app, &uk_admin, "/admin/v1/users/u-2/lock", reason.clone())
        .await
        .assert_problem(404, "resource.not_found");
    let stats = app.fleet.stats(Service::User).await.expect("stats");
    assert_eq!(stats["routes"]["POST /users/{id}/lock"], Value::Null, "nothing was locked");
    assert_eq!(
        post(app, &uk_admin, "/admin/v1/users/u-3/lock", reason).await.status,
        200,
        "u-3 is in the UK"
    );
}
