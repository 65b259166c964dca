//! Past one instance: the partner quota is one quota, however many
//! instances serve the partner and whichever of them restarts: replicas of
//! the real partner-bff binary behind a real HAProxy, sharing a real Redis.

use std::path::Path;
use std::time::Duration;

use bff_testkit::RedisServer;
use bff_testkit::replicas::{Load, Replicas};
use services_mock::Fleet;

/// The quota of the test: 40 requests an hour, so that the refill during
/// the test (about 0.01 request a second) cannot blur the count.
const QUOTA: u64 = 40;

#[tokio::test(flavor = "multi_thread")]
async fn the_partner_quota_holds_across_instances_through_a_rolling_restart() {
    let redis = RedisServer::start();
    let fleet = Fleet::for_bff(partner_bff::ENTRY).await.expect("mocks");
    let env = [
        ("PARTNER_BFF__REDIS__URL".to_owned(), redis.url()),
        ("PARTNER_BFF__RATE_LIMIT__DEFAULT__REQUESTS".to_owned(), QUOTA.to_string()),
        ("PARTNER_BFF__RATE_LIMIT__DEFAULT__WINDOW_SECS".to_owned(), "3600".to_owned()),
    ];
    let mut set =
        Replicas::start(Path::new(env!("CARGO_BIN_EXE_partner-bff")), partner_bff::ENTRY, &fleet, 2, &env)
            .await;
    let token = fleet
        .identity()
        .user_token(partner_bff::ENTRY, "partner-acme", Duration::from_secs(3600))
        .expect("token");
    // Slow enough that the quota lasts into the restarts, so both instances
    // (and their successors) count against it.
    let load = Load::start(&set.base, "/partner/v1/products/p-1", &token, 2, Duration::from_millis(150));
    for i in 0..set.replicas.len() {
        set.restart(i).await;
    }
    let outcomes = load.stop().await;
    let allowed = outcomes.get("200").copied().unwrap_or_default();
    let limited = outcomes.get("429").copied().unwrap_or_default();
    assert_eq!(
        allowed + limited,
        outcomes.values().sum::<u64>(),
        "only 200 and 429, no failure: {outcomes:?}"
    );
    assert!(limited > 0, "the load went past the quota: {outcomes:?}");
    assert!(allowed.abs_diff(QUOTA) <= 1, "{allowed} allowed for a quota of {QUOTA}: {outcomes:?}");
}
