//! The load driver against a real HTTP server: open loop keeps its
//! schedule when the server falls behind (no coordinated omission), closed
//! loop waits for each answer, and the summary counts what came back.

use std::time::Duration;

use bff_load::Target;
use bff_load::bench::{Mode, Summary, drive};
use serde_json::json;
use services_mock::{Fleet, Service};

/// One catalog mock, every answer 20 ms late, asked over one connection:
/// the server can answer at most 50 a second.
async fn slow_catalog() -> (Fleet, Target) {
    let fleet = Fleet::start_only(&[Service::Catalog]).await.expect("the mock");
    fleet.set_faults(Service::Catalog, json!({"latencyMs": 20})).await.expect("faults");
    let token = fleet.service_token(Service::Catalog, "u-1", "mobile-bff");
    let target = Target {
        base: fleet.url(Service::Catalog),
        paths: vec!["/products/p-1".to_owned(), "/products/p-unknown".to_owned()],
        headers: vec![("authorization".to_owned(), format!("Bearer {token}"))],
    };
    (fleet, target)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_sends_on_schedule_and_times_from_when_each_was_due() {
    let _alone = crate::ONE_AT_A_TIME.lock().await;
    let (_fleet, target) = slow_catalog().await;
    // 100 a second for half a second: 50 requests, twice what one
    // connection to a 20 ms server can answer in that time.
    let answers =
        drive(&target, Mode::Open { rate: 100.0 }, 1, Duration::from_millis(500)).await.expect("a run");
    assert_eq!(answers.len(), 50, "every scheduled request is sent, however slow the server");
    for (n, answer) in answers.iter().enumerate() {
        assert_eq!(answer.due, Duration::from_secs_f64(n as f64 / 100.0), "request {n} due on its slot");
    }
    // Served one after another, each at least 20 ms: the last cannot end
    // before 50 x 20 ms = 1 s, and it was due at 0.49 s. A closed-loop
    // tool would report ~20 ms for it; the queue it waited in is counted.
    let last = answers.last().expect("answers");
    assert!(
        last.latency >= Duration::from_millis(510),
        "the last waited behind the others: {:?}",
        last.latency
    );

    let summary = Summary::of(&answers, Duration::from_millis(500)).expect("a summary");
    assert_eq!(summary.requests, 50);
    // p-1 exists, p-unknown does not.
    assert_eq!(summary.statuses.get(&200), Some(&25), "{:?}", summary.statuses);
    assert_eq!(summary.statuses.get(&404), Some(&25), "{:?}", summary.statuses);
    assert!(summary.latency.max >= 510.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_waits_for_each_answer() {
    let _alone = crate::ONE_AT_A_TIME.lock().await;
    let (_fleet, target) = slow_catalog().await;
    let answers = drive(&target, Mode::Closed, 1, Duration::from_millis(500)).await.expect("a run");
    // One client, each answer at least 20 ms: at most 25 in half a second
    // (plus the one in flight at the end).
    assert!((1..=26).contains(&answers.len()), "{} answers", answers.len());
    for pair in answers.windows(2) {
        assert!(pair[1].due >= pair[0].due + pair[0].latency, "the next is sent when the last is answered");
    }
}
