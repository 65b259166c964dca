//! Consumer pacts of partner-bff with each service it calls: one [`Read`] per
//! typed-client call its handlers make (see `src/routes.rs`). A handler that
//! starts calling something new adds it here; `cargo xtask contracts` then
//! regenerates `contracts/partner-bff-<service>.json` and verifies it against the mock.

use bff_testkit::pact::{Read, record_all};
use services_mock::Service;

#[tokio::test]
async fn partner_bff_pacts_are_recorded_through_the_real_clients() {
    record_all(
        "partner-bff",
        &[
            (
                Service::Catalog,
                vec![Read::Product, Read::ProductMissing, Read::ProductBatch, Read::ProductPage],
            ),
            (Service::Pricing, vec![Read::PriceOnSale, Read::PriceBatch]),
            (Service::Inventory, vec![Read::Stock, Read::StockBatch]),
        ],
    )
    .await;
}
