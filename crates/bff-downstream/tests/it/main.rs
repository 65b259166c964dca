//! The downstream clients against the real mocks: reads may be retried,
//! writes are sent exactly once, whatever fails.

use std::sync::Arc;
use std::time::Duration;

mod edges;
mod schemas;

use bff_auth::{AuthError, Principal, ServiceTokens, TokenFuture};
use bff_compose::CallCtx;
use bff_downstream::{Api, DownstreamConfig, Service as Downstream};
use bff_resilience::Deadline;
use bff_telemetry::RequestContext;
use serde_json::json;
use services_mock::{Fleet, Service};

/// Hands out real service tokens minted by the identity mock, as token
/// exchange would.
#[derive(Debug)]
struct MintedTokens(Arc<Fleet>);

impl ServiceTokens for MintedTokens {
    fn token_for<'a>(
        &'a self,
        principal: &'a Principal,
        service: &'a str,
        _: &'a [String],
    ) -> TokenFuture<'a> {
        let token = service
            .parse::<Service>()
            .map(|service| self.0.service_token(service, principal.subject(), "test-bff"))
            .map_err(|e| AuthError::Config(vec![e]));
        Box::pin(async move { token.map(Arc::from) })
    }

    fn own_token<'a>(&'a self, service: &'a str, _: &'a [String]) -> TokenFuture<'a> {
        let token = service
            .parse::<Service>()
            .map(|service| self.0.service_token(service, "test-bff", "test-bff"))
            .map_err(|e| AuthError::Config(vec![e]));
        Box::pin(async move { token.map(Arc::from) })
    }
}

fn api(fleet: &Arc<Fleet>) -> Api {
    let mut config = DownstreamConfig::default();
    for service in Service::ALL.into_iter().filter(|s| *s != Service::Identity) {
        let name: Downstream = service.name().parse().expect("known service");
        config.set_base_url(name, fleet.url(service));
    }
    Api::new(&config, "test", Arc::new(MintedTokens(Arc::clone(fleet)))).expect("api")
}

fn cx() -> CallCtx {
    CallCtx::new(RequestContext::detached(), Deadline::after(Duration::from_secs(5)))
        .with_principal(Some(Arc::new(Principal::new("u-1", "caller-token"))))
}

#[tokio::test]
async fn a_failed_write_is_sent_exactly_once_and_a_failed_read_is_retried() {
    let fleet = Arc::new(Fleet::start().await.expect("mocks"));
    let api = api(&fleet);
    fleet.set_faults(Service::Cart, json!({"errorRatio": 1.0})).await.expect("faults");

    assert!(api.cart.add_item(cx(), "u-1", "p-2", 1, "key-once-0001").await.is_err());
    let stats = fleet.stats(Service::Cart).await.expect("stats");
    assert_eq!(stats["routes"]["POST /carts/{user}/items"], 1, "a write is never retried");

    assert!(api.cart.cart(cx(), "u-1").await.is_err());
    let stats = fleet.stats(Service::Cart).await.expect("stats");
    assert_eq!(stats["routes"]["GET /carts/{user}"], 2, "a read is retried once");
}

#[tokio::test]
async fn a_write_carries_a_service_token_and_returns_the_validated_cart() {
    let fleet = Arc::new(Fleet::start().await.expect("mocks"));
    // The caller's own cart: the mock refuses a token for another subject.
    let cart = api(&fleet).cart.add_item(cx(), "u-1", "p-2", 2, "key-once-0002").await.expect("added");
    // The seeded cart, with the new line last.
    assert_eq!(cart.items.last().map(|item| (item.product_id.as_str(), item.quantity)), Some(("p-2", 2)));
    let stats = fleet.stats(Service::Cart).await.expect("stats");
    assert_eq!(stats["recent"][0]["token"]["aud"], "cart");
}
