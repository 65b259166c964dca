//! Engine behaviour on plain futures (no HTTP): parallelism, deadlines,
//! fallbacks and the mapping of critical failures.

use std::time::Duration;

use axum::http::StatusCode;
use bff_error::{Failure, ReasonCode};
use serde_json::json;

use super::*;

fn plan(deadline_ms: u64, components: &[(&str, u64)]) -> Plan {
    let config = ComposeConfig {
        request_deadline_ms: deadline_ms,
        components: components
            .iter()
            .map(|(name, ms)| ((*name).to_owned(), ComponentConfig { budget_ms: *ms }))
            .collect(),
    };
    Plan::new(RequestContext::detached(), Arc::new(config))
}

async fn after(ms: u64, result: Result<u32, Failure>) -> Result<u32, Failure> {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    result
}

#[tokio::test(start_paused = true)]
async fn parts_run_concurrently() {
    let plan = plan(1_000, &[]);
    let started = tokio::time::Instant::now();
    let (a, b, c) = plan
        .run((
            plan.critical("a", |_| after(100, Ok(1))),
            plan.critical("b", |_| after(100, Ok(2))),
            plan.optional("c", |_| after(100, Ok(3))).or_default(),
        ))
        .await
        .expect("all succeed");
    assert_eq!((a, b, c), (1, 2, 3));
    assert_eq!(started.elapsed(), Duration::from_millis(100), "not 300: they overlapped");
    let envelope = plan.envelope(());
    assert!(!envelope.degraded());
}

#[tokio::test(start_paused = true)]
async fn an_optional_part_past_its_budget_falls_back_without_waiting() {
    let plan = plan(1_000, &[("slow", 50)]);
    let started = tokio::time::Instant::now();
    let (fast, slow) = plan
        .run((
            plan.critical("fast", |_| after(10, Ok(1))),
            plan.optional("slow", |_| after(10_000, Ok(2))).or(7),
        ))
        .await
        .expect("optional failures do not fail the request");
    assert_eq!((fast, slow), (1, 7));
    assert!(started.elapsed() < Duration::from_millis(100));
    let body = serde_json::to_value(plan.envelope("vm")).expect("serializable");
    assert_eq!(
        body,
        json!({
            "degraded": true,
            "components": {
                "fast": {"status": "ok"},
                "slow": {"status": "fallback", "source": "default", "reasonCode": "timeout"}
            },
            "data": "vm"
        })
    );
}

#[tokio::test(start_paused = true)]
async fn an_omitted_part_reports_error_with_its_reason() {
    let plan = plan(1_000, &[]);
    let (value,) = plan
        .run((plan.optional("promo", |_| after(1, Err(Failure::new(ReasonCode::CircuitOpen)))).omit(),))
        .await
        .expect("optional");
    assert_eq!(value, None);
    assert_eq!(
        plan.envelope(()).status("promo"),
        Some(ComponentStatus::Error { reason: ReasonCode::CircuitOpen })
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_critical_part_fails_fast_and_cancels_the_rest() {
    let plan = plan(10_000, &[]);
    let started = tokio::time::Instant::now();
    let error = plan
        .run((
            plan.critical("cart", |_| after(10, Err(Failure::new(ReasonCode::Unavailable)))),
            plan.optional("slow", |_| after(5_000, Ok(1))).or_default(),
        ))
        .await
        .expect_err("critical failure");
    assert_eq!(error.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error.code().as_str(), "dependency.unavailable");
    assert_eq!(started.elapsed(), Duration::from_millis(10));
}

#[tokio::test(start_paused = true)]
async fn the_request_deadline_bounds_every_part() {
    let plan = plan(100, &[]);
    let error = plan.run((plan.critical("profile", |_| after(10_000, Ok(1))),)).await.expect_err("deadline");
    assert_eq!(error.status(), StatusCode::GATEWAY_TIMEOUT);
}

#[tokio::test(start_paused = true)]
async fn the_call_context_carries_the_component_budget() {
    let plan = plan(1_000, &[("budgeted", 80)]);
    let (remaining, whole) = plan
        .run((
            plan.critical("budgeted", |cx| async move { Ok::<_, Failure>(cx.deadline().remaining()) }),
            plan.critical("whole", |cx| async move { Ok::<_, Failure>(cx.deadline().remaining()) }),
        ))
        .await
        .expect("ok");
    assert_eq!(remaining, Duration::from_millis(80));
    assert_eq!(whole, Duration::from_millis(1_000));
}

#[test]
fn budgets_larger_than_the_deadline_are_rejected() {
    let config = ComposeConfig {
        request_deadline_ms: 100,
        components: [("x".to_owned(), ComponentConfig { budget_ms: 200 })].into(),
    };
    assert_eq!(config.problems().len(), 1);
}
