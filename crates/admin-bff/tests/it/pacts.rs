//! Consumer pacts of admin-bff with each service it calls: one [`Read`] per
//! typed-client call its handlers make (see `src/routes.rs`). A handler that
//! starts calling something new adds it here; `cargo xtask contracts` then
//! regenerates `contracts/admin-bff-<service>.json` and verifies it against the mock.

use bff_testkit::pact::{Read, record_all};
use services_mock::Service;

#[tokio::test]
async fn admin_bff_pacts_are_recorded_through_the_real_clients() {
    record_all(
        "admin-bff",
        &[
            (
                Service::User,
                vec![Read::Profile { with_email: true }, Read::UserSearch, Read::LockUser, Read::UnlockUser],
            ),
            (Service::Orders, vec![Read::Orders]),
        ],
    )
    .await;
}
