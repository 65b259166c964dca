//! Consumer pacts of tv-bff with each service it calls: the background
//! job's reads (categories, products per category, prices, segment
//! recommendations and promotions) and the user rails' (cart, user
//! recommendations). `cargo xtask contracts --update` regenerates
//! `contracts/tv-bff-<service>.json`.

use bff_testkit::pact::{Read, record_all};
use services_mock::Service;

/// What the rails read, by service.
fn reads() -> Vec<(Service, Vec<Read>)> {
    vec![
        (Service::Catalog, vec![Read::Categories, Read::ProductsInCategory { limit: 12 }]),
        (Service::Pricing, vec![Read::PriceOnSale]),
        (Service::Cart, vec![Read::Cart]),
        (
            Service::Recommendations,
            vec![
                Read::RecommendationsForSegment { context: "tv", limit: 12 },
                Read::RecommendationsForUser { context: "tv", limit: 12 },
            ],
        ),
        (Service::Promotions, vec![Read::PromotionsForSegment]),
    ]
}

#[tokio::test]
async fn tv_bff_pacts_are_recorded_through_the_real_clients() {
    record_all("tv-bff", &reads()).await;
}
