//! `spawn_app()`: mobile-bff on a loopback port with the mocks behind it.

pub(crate) use bff_testkit::{TestApp, status_of};
use mobile_bff::Config;
use services_mock::Fleet;
use services_mock::identity::ClientKind;

pub(crate) async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub(crate) async fn spawn_app_with(customize: impl FnOnce(&mut Config)) -> TestApp {
    let fleet = Fleet::start().await.expect("mocks start");
    let mut config = Config::default();
    bff_testkit::wire(&fleet, &mut config);
    customize(&mut config);
    bff_testkit::spawn(fleet, ClientKind::Mobile, |listener, shutdown| {
        mobile_bff::run(config, listener, shutdown)
    })
    .await
}

/// Asserts the body names no internal service, host or port.
pub(crate) fn assert_no_internals(reply: &bff_testkit::Reply, app: &TestApp) {
    bff_testkit::assert_no_internals(reply, &app.fleet);
}
