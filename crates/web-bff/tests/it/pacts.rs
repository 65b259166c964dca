//! Consumer pacts of web-bff with each service it calls: one [`Read`] per
//! typed-client call its handlers make (see `src/routes.rs`). A handler that
//! starts calling something new adds it here; `cargo xtask contracts` then
//! regenerates `contracts/web-bff-<service>.json` and verifies it against the mock.

use bff_testkit::pact::{Read, record_all};
use services_mock::Service;

#[tokio::test]
async fn web_bff_pacts_are_recorded_through_the_real_clients() {
    record_all(
        "web-bff",
        &[
            (Service::User, vec![Read::Profile { with_email: false }]),
            (Service::Cart, vec![Read::Cart, Read::AddItem]),
            (Service::Catalog, vec![Read::Product, Read::ProductMissing, Read::Categories]),
            (Service::Pricing, vec![Read::PriceOnSale]),
            (Service::Inventory, vec![Read::Stock]),
            (Service::Reviews, vec![Read::ReviewSummary, Read::ReviewList]),
            (
                Service::Recommendations,
                vec![
                    Read::RecommendationsForSegment { context: "home", limit: 12 },
                    Read::RecommendationsForUser { context: "product:p-1", limit: 12 },
                    Read::RecommendationsForUser { context: "home", limit: 6 },
                ],
            ),
            (Service::Promotions, vec![Read::PromotionsForSegment]),
            (Service::Shipping, vec![Read::Estimate]),
            (
                Service::Orders,
                vec![Read::Orders, Read::OrdersPage, Read::Order, Read::OrderMissing, Read::PlaceOrder],
            ),
        ],
    )
    .await;
}
