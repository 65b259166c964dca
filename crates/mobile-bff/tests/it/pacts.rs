//! Consumer pacts of mobile-bff with each service it calls: one
//! [`Read`] per typed-client call its screens make (see `src/routes`).
//! A screen that starts calling something new adds it here; `cargo xtask
//! contracts` then regenerates `contracts/mobile-bff-<service>.json` and
//! verifies it against the mock.

use bff_testkit::pact::{Read, record_all};
use services_mock::Service;

/// What the screens read and the cart and orders write, by service.
fn reads() -> Vec<(Service, Vec<Read>)> {
    vec![
        (Service::User, vec![Read::Profile { with_email: false }]),
        (Service::Cart, vec![Read::Cart, Read::AddItem, Read::SetQuantity, Read::RemoveItem]),
        (Service::Catalog, vec![Read::Product, Read::ProductMissing]),
        (Service::Pricing, vec![Read::PriceOnSale]),
        (Service::Inventory, vec![Read::Stock]),
        (
            Service::Recommendations,
            vec![
                Read::RecommendationsForSegment { context: "home", limit: 6 },
                Read::RecommendationsForUser { context: "product:p-1", limit: 6 },
            ],
        ),
        (Service::Promotions, vec![Read::PromotionsForSegment]),
        (Service::Shipping, vec![Read::Estimate]),
        (Service::Reviews, vec![Read::ReviewSummary]),
        (Service::Orders, vec![Read::OrdersPage, Read::Order, Read::OrderMissing, Read::PlaceOrder]),
    ]
}

#[tokio::test]
async fn mobile_bff_pacts_are_recorded_through_the_real_clients() {
    record_all("mobile-bff", &reads()).await;
}
