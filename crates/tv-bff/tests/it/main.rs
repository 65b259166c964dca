//! tv-bff integration tests: the real app with the mocks it calls, device
//! logins through the identity mock, rails precomputed by the real job.

mod browse;
mod device;
mod pacts;
mod rails;

use std::time::Duration;

use bff_server::Config;
use bff_testkit::{Reply, TestApp};
use tv_bff::RailsConfig;

pub(crate) async fn spawn_app_with(customize: impl FnOnce(&mut Config<RailsConfig>)) -> TestApp {
    bff_testkit::spawn(tv_bff::bff(), customize).await
}

/// Browses until the precomputed rails are there (the job runs at start).
pub(crate) async fn browse_when_precomputed(app: &TestApp) -> Reply {
    for _ in 0..150 {
        let reply = app.get("/tv/v1/browse").await;
        let body = reply.json();
        if body["components"]["catalog"]["status"] == "ok" && body["components"]["segment"]["status"] == "ok"
        {
            return reply;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the rails were not precomputed within 15 s");
}

/// The ids of the rails of a browse answer, top to bottom.
pub(crate) fn rail_ids(body: &serde_json::Value) -> Vec<String> {
    body["data"]["rails"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|rail| rail["id"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn conforms_to_the_shell() {
    bff_testkit::conformance(tv_bff::bff, |_| {}).await;
}
