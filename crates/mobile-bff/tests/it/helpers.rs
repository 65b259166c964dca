//! `spawn_app()`: mobile-bff on a loopback port with the mocks it calls behind it.

use bff_server::Config;
pub(crate) use bff_testkit::{TestApp, status_of};

pub(crate) async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub(crate) async fn spawn_app_with(customize: impl FnOnce(&mut Config)) -> TestApp {
    bff_testkit::spawn(mobile_bff::bff(), customize).await
}

/// Asserts the body names no internal service, host or port.
pub(crate) fn assert_no_internals(reply: &bff_testkit::Reply, app: &TestApp) {
    bff_testkit::assert_no_internals(reply, &app.fleet);
}
