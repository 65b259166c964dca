//! mobile-bff integration tests: the real app on a loopback port, the real
//! mocks (each its own HTTP server) behind it, real ES256-signed tokens.
//! Each test gets its own app and mocks, so tests run in parallel.

mod auth;
mod bandwidth;
mod caching;
mod console;
mod helpers;
mod home;
mod metrics;
mod operations;
mod orders;
mod pacts;
mod product_page;
mod resilience;
mod scale_out;
mod token_exchange;
mod traces;
mod versions;

#[tokio::test]
async fn conforms_to_the_shell() {
    bff_testkit::conformance(mobile_bff::bff, |_| {}).await;
}
