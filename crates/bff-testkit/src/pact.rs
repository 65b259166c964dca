//! Consumer-driven contracts, consumer side: what a BFF's downstream calls
//! expect of each service, as Pact V4 files.
//!
//! Each BFF declares the calls its handlers make as a list of [`Read`]s
//! per service (its `tests/it/pacts.rs`). [`record`] turns each into a Pact
//! interaction — a provider state, the request the shared typed client
//! sends, and the response fields its DTO reads, with type/regex/each-like
//! matchers instead of literal values — starts the Pact mock server, and
//! **runs the real client code against it** (`bff_downstream::Api`), so a
//! pact cannot claim a request the client does not make or a field it does
//! not parse. When the mock server stops, Pact checks every interaction was
//! exercised and writes `<consumer>-<service>.json` to [`output_dir`].
//!
//! Only what the client reads is in a pact: providers may add fields
//! freely, and optional fields the BFF does not depend on are left out.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bff_auth::{Principal, ServiceTokens, TokenFuture};
use bff_compose::CallCtx;
use bff_downstream::model::Money;
use bff_downstream::{Api, DownstreamConfig, DownstreamError};
use bff_resilience::Deadline;
use bff_telemetry::RequestContext;
use pact_consumer::prelude::*;
use services_mock::Service;

/// The environment variable `cargo xtask contracts` sets to collect fresh
/// pacts in a directory of its own.
pub const PACT_DIR_ENV: &str = "BFF_PACT_DIR";

/// Where pacts are written: `$BFF_PACT_DIR` when set, else
/// `<workspace>/target/pacts` (so a plain `cargo test` never rewrites the
/// committed `contracts/`).
pub fn output_dir() -> PathBuf {
    match std::env::var_os(PACT_DIR_ENV) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/pacts"),
    }
}

/// A V4 pact between `consumer` and `provider`, written to [`output_dir`].
pub fn pact(consumer: &str, provider: &str) -> PactBuilder {
    let mut builder = PactBuilder::new_v4(consumer, provider);
    builder.with_output_dir(output_dir());
    builder
}

/// One call a BFF makes, by typed-client method. The ids are the seeded
/// ones the provider states name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// `users.profile("u-1")`; `with_email` when the BFF reads the e-mail.
    Profile {
        /// Whether the BFF reads `email`.
        with_email: bool,
    },
    /// `cart.cart("u-2")`: two lines.
    Cart,
    /// `cart.add_item("u-2", "p-1", 1, key)`: a write with an `Idempotency-Key`.
    AddItem,
    /// `users.search("ada", 0, 20)`: staff searching users.
    UserSearch,
    /// `users.set_lock("u-4", true, reason)`: an admin locking an account.
    LockUser,
    /// `users.set_lock("u-4", false, reason)`: an admin unlocking one.
    UnlockUser,
    /// `cart.set_quantity("u-2", "p-2", 3, key)`: a write to a line in the cart.
    SetQuantity,
    /// `cart.remove_item("u-2", "p-11", key)`: a write removing a line.
    RemoveItem,
    /// `catalog.product("p-1")`.
    Product,
    /// `catalog.product("p-999")`: the BFF relies on `404` meaning "no such product".
    ProductMissing,
    /// `catalog.batch(["p-1", "p-999"])`: one call for many; unknown ids absent.
    ProductBatch,
    /// `catalog.page(0, 20)`: the catalog in its stable order, a page.
    ProductPage,
    /// `pricing.batch(["p-1", "p-999"])`.
    PriceBatch,
    /// `inventory.batch(["p-1", "p-999"])`.
    StockBatch,
    /// `pricing.price("p-5")`, a product on sale (`listPrice` read too).
    PriceOnSale,
    /// `inventory.stock("p-1")`.
    Stock,
    /// `recommendations.for_segment("frequent", context, limit)`.
    RecommendationsForSegment {
        /// The `context` the BFF asks for (`home`, `tv`).
        context: &'static str,
        /// The `limit` the BFF asks for.
        limit: u8,
    },
    /// `recommendations.for_user("u-1", context, limit)`.
    RecommendationsForUser {
        /// The `context` the BFF asks for (`product:p-1`, `tv`).
        context: &'static str,
        /// The `limit` the BFF asks for.
        limit: u8,
    },
    /// `catalog.categories()`.
    Categories,
    /// `catalog.in_category("shoes", limit)`.
    ProductsInCategory {
        /// The `limit` the BFF asks for.
        limit: u8,
    },
    /// `promotions.for_segment("frequent")`.
    PromotionsForSegment,
    /// `shipping.estimate("u-1")`, with the free-shipping threshold.
    Estimate,
    /// `reviews.summary("p-1")`.
    ReviewSummary,
    /// `reviews.latest("p-1", 5)`: the latest reviews.
    ReviewList,
    /// `orders.for_user("u-2")` (`u-1` has none).
    Orders,
    /// `orders.page("u-2", 10, None)`: a page, newest first, with the
    /// service's cursor when more remain.
    OrdersPage,
    /// `orders.order("o-u-2-1")`: one order with its lines.
    Order,
    /// `orders.order("ord-999999")`: the BFF relies on `404` meaning "no such order".
    OrderMissing,
    /// `orders.place("u-2", [("p-1", 1)], key)`: placing an order, a write
    /// with an `Idempotency-Key`.
    PlaceOrder,
}

impl Read {
    /// The service this call goes to.
    pub fn service(self) -> Service {
        match self {
            Read::Profile { .. } | Read::UserSearch | Read::LockUser | Read::UnlockUser => Service::User,
            Read::Cart | Read::AddItem | Read::SetQuantity | Read::RemoveItem => Service::Cart,
            Read::Product
            | Read::ProductMissing
            | Read::ProductBatch
            | Read::ProductPage
            | Read::Categories
            | Read::ProductsInCategory { .. } => Service::Catalog,
            Read::PriceOnSale | Read::PriceBatch => Service::Pricing,
            Read::Stock | Read::StockBatch => Service::Inventory,
            Read::RecommendationsForSegment { .. } | Read::RecommendationsForUser { .. } => {
                Service::Recommendations
            }
            Read::PromotionsForSegment => Service::Promotions,
            Read::Estimate => Service::Shipping,
            Read::ReviewSummary | Read::ReviewList => Service::Reviews,
            Read::Orders | Read::OrdersPage | Read::Order | Read::OrderMissing | Read::PlaceOrder => {
                Service::Orders
            }
        }
    }

    fn interaction(self, builder: &mut PactBuilder) {
        let description = self.description();
        builder.interaction(description.as_str(), "", |mut i| {
            let (state, path, query, body, status): Expect = match self {
                    Read::Profile { with_email } => {
                        let mut body = json_pattern!({
                            "id": like!("u-1"),
                            "displayName": like!("Ada Lovelace"),
                            "tier": like!("gold"),
                            "locale": like!("en-GB"),
                        });
                        if with_email && let JsonPattern::Object(fields) = &mut body {
                            fields.insert("email".to_owned(), term!("^[^@]+@[^@]+$", "ada@example.com").into());
                            // The back office reads the market its staff are scoped to.
                            fields.insert("market".to_owned(), term!("^[a-z]{2}$", "uk").into());
                        }
                        ("user u-1 exists", "/users/u-1".into(), vec![], Some(body), 200)
                    }
                    Read::UserSearch => (
                        "user u-1 exists",
                        "/users".into(),
                        vec![("query", "ada".into()), ("offset", "0".into()), ("limit", "20".into())],
                        Some(json_pattern!({
                            "items": each_like!({
                                "id": like!("u-1"),
                                "displayName": like!("Ada Lovelace"),
                                "tier": like!("gold"),
                                "locale": like!("en-GB"),
                                "email": term!("^[^@]+@[^@]+$", "ada@example.com"),
                                "market": term!("^[a-z]{2}$", "uk"),
                            }),
                        })),
                        200,
                    ),
                    Read::LockUser => (
                        "user u-4 exists",
                        "/users/u-4/lock".into(),
                        vec![],
                        Some(json_pattern!({ "id": like!("u-4"), "locked": true, "reason": like!("chargeback fraud") })),
                        200,
                    ),
                    Read::UnlockUser => (
                        "user u-4 exists",
                        "/users/u-4/unlock".into(),
                        vec![],
                        Some(json_pattern!({ "id": like!("u-4"), "locked": false })),
                        200,
                    ),
                    Read::Cart => (
                        "user u-2 has 2 items in the cart",
                        "/carts/u-2".into(),
                        vec![],
                        Some(json_pattern!({
                            "items": each_like!(cart_line("p-2"), min = 2),
                            "total": money(2998),
                        })),
                        200,
                    ),
                    Read::AddItem => (
                        "product p-1 exists",
                        "/carts/u-2/items".into(),
                        vec![],
                        Some(json_pattern!({
                            "items": each_like!(cart_line("p-1")),
                            "total": money(2998),
                        })),
                        201,
                    ),
                    Read::SetQuantity => (
                        "user u-2 has 2 items in the cart",
                        "/carts/u-2/items/p-2".into(),
                        vec![],
                        Some(json_pattern!({ "items": each_like!(cart_line("p-2")), "total": money(2998) })),
                        200,
                    ),
                    Read::RemoveItem => (
                        "user u-2 has 2 items in the cart",
                        "/carts/u-2/items/p-11".into(),
                        vec![],
                        Some(json_pattern!({ "items": each_like!(cart_line("p-2")), "total": money(2998) })),
                        200,
                    ),
                    Read::Product => (
                        "product p-1 exists",
                        "/products/p-1".into(),
                        vec![],
                        Some(json_pattern!({
                            "id": like!("p-1"),
                            "name": like!("Amber Lamp"),
                            "brand": like!("Nordlys"),
                            "description": like!("A lamp."),
                            "images": each_like!("https://img.example/p-1/1.jpg"),
                        })),
                        200,
                    ),
                    Read::ProductMissing => {
                        ("product p-999 does not exist", "/products/p-999".into(), vec![], None, 404)
                    }
                    Read::ProductBatch => (
                        "product p-1 exists",
                        "/products/batch".into(),
                        vec![("ids", "p-1,p-999".into())],
                        Some(json_pattern!({ "items": each_like!(product_pattern()) })),
                        200,
                    ),
                    Read::ProductPage => (
                        "product p-1 exists",
                        "/products/page".into(),
                        vec![("offset", "0".into()), ("limit", "20".into())],
                        Some(json_pattern!({ "items": each_like!(product_pattern()), "nextOffset": like!(20) })),
                        200,
                    ),
                    Read::PriceBatch => (
                        "product p-1 exists",
                        "/prices".into(),
                        vec![("ids", "p-1,p-999".into())],
                        Some(json_pattern!({
                            "prices": each_like!({ "productId": like!("p-1"), "price": money(1999) }),
                        })),
                        200,
                    ),
                    Read::StockBatch => (
                        "product p-1 exists",
                        "/stock".into(),
                        vec![("ids", "p-1,p-999".into())],
                        Some(json_pattern!({
                            "stock": each_like!({ "productId": like!("p-1"), "available": like!(13) }),
                        })),
                        200,
                    ),
                    Read::PriceOnSale => (
                        "product p-5 is on sale",
                        "/prices/p-5".into(),
                        vec![],
                        Some(json_pattern!({
                            "productId": like!("p-5"),
                            "price": money(1999),
                            "listPrice": money(2499),
                        })),
                        200,
                    ),
                    Read::Stock => (
                        "product p-1 exists",
                        "/stock/p-1".into(),
                        vec![],
                        Some(json_pattern!({ "productId": like!("p-1"), "available": like!(13) })),
                        200,
                    ),
                    Read::RecommendationsForSegment { context, limit } => (
                        "user u-1 exists",
                        "/recommendations".into(),
                        vec![("segment", "frequent".into()), ("context", context.into()), ("limit", limit.to_string())],
                        Some(recommendations()),
                        200,
                    ),
                    Read::RecommendationsForUser { context, limit } => (
                        "user u-1 exists",
                        "/recommendations".into(),
                        vec![("user", "u-1".into()), ("context", context.into()), ("limit", limit.to_string())],
                        Some(recommendations()),
                        200,
                    ),
                    Read::Categories => (
                        "category shoes exists",
                        "/categories".into(),
                        vec![],
                        Some(json_pattern!({
                            "categories": each_like!({ "id": like!("shoes"), "name": like!("Shoes") }),
                        })),
                        200,
                    ),
                    Read::ProductsInCategory { limit } => (
                        "category shoes exists",
                        "/products".into(),
                        vec![("category", "shoes".into()), ("limit", limit.to_string())],
                        Some(json_pattern!({
                            "items": each_like!({
                                "id": like!("p-1"),
                                "name": like!("Trail Runner"),
                                "brand": like!("Northwind"),
                                "description": like!("A shoe."),
                                "images": each_like!("https://img.example/p-1/1.jpg"),
                            }),
                        })),
                        200,
                    ),
                    Read::PromotionsForSegment => (
                        "user u-1 exists",
                        "/promotions".into(),
                        vec![("segment", "frequent".into())],
                        Some(json_pattern!({
                            "promotions": each_like!({ "id": like!("promo-1"), "title": like!("Free returns all winter") }),
                        })),
                        200,
                    ),
                    Read::Estimate => (
                        "user u-1 exists",
                        "/estimates".into(),
                        vec![("user", "u-1".into())],
                        Some(json_pattern!({
                            "minDays": like!(2),
                            "maxDays": like!(4),
                            "freeShippingOver": money(4000),
                        })),
                        200,
                    ),
                    Read::ReviewSummary => (
                        "product p-1 exists",
                        "/reviews/p-1/summary".into(),
                        vec![],
                        Some(json_pattern!({ "averageRating": like!(4.2), "count": like!(17) })),
                        200,
                    ),
                    Read::ReviewList => (
                        "product p-1 exists",
                        "/reviews/p-1".into(),
                        vec![("limit", "5".into())],
                        Some(json_pattern!({
                            "reviews": each_like!({
                                "id": like!("r-p-1-1"),
                                "rating": like!(5),
                                "title": like!("Solid"),
                                "author": like!("Ada"),
                                "createdAt": term!("^\\d{4}-\\d{2}-\\d{2}T.*$", "2026-11-28T12:00:00Z"),
                            }),
                        })),
                        200,
                    ),
                    Read::Orders => (
                        "user u-2 has orders",
                        "/orders".into(),
                        vec![("user", "u-2".into())],
                        Some(json_pattern!({
                            "orders": each_like!({
                                "id": like!("o-1-1"),
                                "placedAt": term!("^\\d{4}-\\d{2}-\\d{2}T.*$", "2026-10-01T09:30:00Z"),
                                "status": like!("delivered"),
                                "itemCount": like!(2),
                                "total": money(5998),
                            }),
                        })),
                        200,
                    ),
                    Read::OrdersPage => (
                        "user u-2 has orders",
                        "/orders".into(),
                        vec![("user", "u-2".into()), ("limit", "10".into())],
                        Some(json_pattern!({
                            "orders": each_like!({
                                "id": like!("o-u-2-1"),
                                "placedAt": term!("^\\d{4}-\\d{2}-\\d{2}T.*$", "2026-10-01T09:30:00Z"),
                                "status": like!("delivered"),
                                "itemCount": like!(2),
                                "total": money(5998),
                            }),
                        })),
                        200,
                    ),
                    Read::Order => (
                        "order o-u-2-1 exists",
                        "/orders/o-u-2-1".into(),
                        vec![],
                        Some(order_detail("o-u-2-1")),
                        200,
                    ),
                    Read::OrderMissing => {
                        ("order ord-999999 does not exist", "/orders/ord-999999".into(), vec![], None, 404)
                    }
                    Read::PlaceOrder => ("product p-1 exists", "/orders".into(), vec![], Some(order_detail("ord-000001")), 201),
                };
            i.given(state);
            i.request.path(path).header("accept", "application/json").header(
                "authorization",
                term!("^Bearer [A-Za-z0-9._~+/=-]+$", "Bearer service-token"),
            );
            // A write: its method and body, and the caller's key (any well-formed one).
            let key = || term!("^[A-Za-z0-9_.:-]{8,128}$", "key-0000-0001");
            match self {
                Read::AddItem => {
                    i.given("user u-2 exists");
                    i.request
                        .post()
                        .header("idempotency-key", key())
                        .content_type("application/json")
                        .json_body(json_pattern!({ "productId": "p-1", "quantity": 1 }));
                }
                Read::SetQuantity => {
                    i.request
                        .method("PATCH")
                        .header("idempotency-key", key())
                        .content_type("application/json")
                        .json_body(json_pattern!({ "quantity": 3 }));
                }
                Read::RemoveItem => {
                    i.request.method("DELETE").header("idempotency-key", key());
                }
                Read::LockUser | Read::UnlockUser => {
                    i.request
                        .post()
                        .content_type("application/json")
                        .json_body(json_pattern!({ "reason": like!("chargeback fraud") }));
                }
                Read::PlaceOrder => {
                    i.given("user u-2 exists");
                    i.request
                        .post()
                        .header("idempotency-key", key())
                        .content_type("application/json")
                        .json_body(json_pattern!({ "userId": "u-2", "items": [{ "productId": "p-1", "quantity": 1 }] }));
                }
                _ => {
                    i.request.get();
                }
            }
            for (key, value) in query {
                i.request.query_param(key, value);
            }
            i.response.status(status);
            if let Some(body) = body {
                i.response.content_type("application/json").json_body(body);
            }
            i
        });
    }

    fn description(self) -> String {
        match self {
            Read::Profile { with_email: true } => "a user's profile, with e-mail".into(),
            Read::Profile { with_email: false } => "a user's profile".into(),
            Read::Cart => "a user's cart".into(),
            Read::UserSearch => "staff searching users".into(),
            Read::LockUser => "an admin locking an account, with a reason".into(),
            Read::UnlockUser => "an admin unlocking an account, with a reason".into(),
            Read::AddItem => "adding a line to a user's cart, with an Idempotency-Key".into(),
            Read::Product => "a product".into(),
            Read::ProductMissing => "an unknown product".into(),
            Read::PriceOnSale => "the price of a product on sale".into(),
            Read::ProductBatch => "products by id, in one call".into(),
            Read::ProductPage => "a page of the whole catalog".into(),
            Read::PriceBatch => "prices by product id, in one call".into(),
            Read::StockBatch => "stock by product id, in one call".into(),
            Read::Stock => "a product's stock".into(),
            Read::RecommendationsForSegment { context, limit } => {
                format!("{limit} recommendations for a segment's {context}")
            }
            Read::RecommendationsForUser { context, limit } => match context.strip_prefix("product:") {
                Some(_) => format!("{limit} recommendations for a user on a product"),
                None => format!("{limit} recommendations for a user on {context}"),
            },
            Read::Categories => "the catalog's categories".into(),
            Read::ProductsInCategory { limit } => format!("up to {limit} products of a category"),
            Read::PromotionsForSegment => "a segment's promotions".into(),
            Read::Estimate => "a user's delivery estimate".into(),
            Read::ReviewSummary => "a product's review summary".into(),
            Read::ReviewList => "a product's latest reviews".into(),
            Read::Orders => "a user's orders".into(),
            Read::SetQuantity => "changing a cart line's quantity, with an Idempotency-Key".into(),
            Read::RemoveItem => "removing a cart line, with an Idempotency-Key".into(),
            Read::OrdersPage => "a page of a user's orders".into(),
            Read::Order => "one order with its lines".into(),
            Read::OrderMissing => "an unknown order".into(),
            Read::PlaceOrder => "placing an order, with an Idempotency-Key".into(),
        }
    }

    /// Calls the real typed client and checks what it parsed: the pact's
    /// example values must make it through the client's decoding and
    /// validation.
    async fn exercise(self, api: &Api) -> Result<(), String> {
        let show = |e: DownstreamError| e.to_string();
        match self {
            Read::Profile { with_email } => {
                let profile = api.users.profile(cx(), "u-1").await.map_err(show)?;
                check(profile.display_name == "Ada Lovelace", "displayName")?;
                check(profile.email.is_some() == with_email, "email")?;
                check(profile.market.is_some() == with_email, "market")
            }
            Read::UserSearch => {
                let page = api.users.search(cx(), "ada", 0, 20).await.map_err(show)?;
                check(
                    page.items.len() == 1 && page.items[0].market.as_deref() == Some("uk"),
                    "items and market",
                )
            }
            Read::LockUser => {
                let state = api.users.set_lock(cx(), "u-4", true, "chargeback fraud").await.map_err(show)?;
                check(
                    state.locked && state.reason.as_deref() == Some("chargeback fraud"),
                    "locked and reason",
                )
            }
            Read::UnlockUser => {
                let state = api.users.set_lock(cx(), "u-4", false, "chargeback fraud").await.map_err(show)?;
                check(!state.locked, "locked")
            }
            Read::Cart => {
                let cart = api.cart.cart(cx(), "u-2").await.map_err(show)?;
                check(cart.items.len() == 2 && cart.total == gbp(2998), "items and total")
            }
            Read::AddItem => {
                let cart = api.cart.add_item(cx(), "u-2", "p-1", 1, "key-0000-0001").await.map_err(show)?;
                check(cart.items.len() == 1 && cart.total == gbp(2998), "items and total")
            }
            Read::Product => {
                let product = api.catalog.product(cx(), "p-1").await.map_err(show)?;
                check(product.name == "Amber Lamp" && product.images.len() == 1, "name and images")
            }
            Read::ProductMissing => match api.catalog.product(cx(), "p-999").await {
                Err(DownstreamError::NotFound { .. }) => Ok(()),
                other => Err(format!("expected not found, got {other:?}")),
            },
            Read::ProductBatch => {
                let found = api.catalog.batch(cx(), &["p-1", "p-999"]).await.map_err(show)?;
                check(found.items.len() == 1 && found.items[0].id == "p-1", "items")
            }
            Read::ProductPage => {
                let page = api.catalog.page(cx(), 0, 20).await.map_err(show)?;
                check(page.items.len() == 1 && page.next_offset == Some(20), "items and nextOffset")
            }
            Read::PriceBatch => {
                let found = api.pricing.batch(cx(), &["p-1", "p-999"]).await.map_err(show)?;
                check(found.prices.len() == 1 && found.prices[0].price == gbp(1999), "prices")
            }
            Read::StockBatch => {
                let found = api.inventory.batch(cx(), &["p-1", "p-999"]).await.map_err(show)?;
                check(found.stock.len() == 1 && found.stock[0].available == 13, "stock")
            }
            Read::PriceOnSale => {
                let price = api.pricing.price(cx(), "p-5").await.map_err(show)?;
                check(price.list_price == Some(gbp(2499)), "listPrice")
            }
            Read::Stock => {
                let stock = api.inventory.stock(cx(), "p-1").await.map_err(show)?;
                check(stock.available == 13, "available")
            }
            Read::RecommendationsForSegment { context, limit } => {
                let found =
                    api.recommendations.for_segment(cx(), "frequent", context, limit).await.map_err(show)?;
                check(found.items.len() == 1, "items")
            }
            Read::RecommendationsForUser { context, limit } => {
                let found = api.recommendations.for_user(cx(), "u-1", context, limit).await.map_err(show)?;
                check(found.items.len() == 1, "items")
            }
            Read::Categories => {
                let found = api.catalog.categories(cx()).await.map_err(show)?;
                check(found.categories.len() == 1 && found.categories[0].id == "shoes", "categories")
            }
            Read::ProductsInCategory { limit } => {
                let found = api.catalog.in_category(cx(), "shoes", limit).await.map_err(show)?;
                check(found.items.len() == 1 && found.items[0].name == "Trail Runner", "items")
            }
            Read::PromotionsForSegment => {
                let found = api.promotions.for_segment(cx(), "frequent").await.map_err(show)?;
                check(found.promotions.len() == 1, "promotions")
            }
            Read::Estimate => {
                let estimate = api.shipping.estimate(cx(), "u-1").await.map_err(show)?;
                check(estimate.free_shipping_over == Some(gbp(4000)), "freeShippingOver")
            }
            Read::ReviewSummary => {
                let summary = api.reviews.summary(cx(), "p-1").await.map_err(show)?;
                check(summary.count == 17, "count")
            }
            Read::ReviewList => {
                let list = api.reviews.latest(cx(), "p-1", 5).await.map_err(show)?;
                check(list.reviews.len() == 1 && list.reviews[0].rating == 5, "reviews")
            }
            Read::Orders => {
                let orders = api.orders.for_user(cx(), "u-2").await.map_err(show)?;
                check(orders.orders.len() == 1 && orders.orders[0].item_count == 2, "orders")
            }
            Read::SetQuantity => {
                let cart =
                    api.cart.set_quantity(cx(), "u-2", "p-2", 3, "key-0000-0001").await.map_err(show)?;
                check(cart.items.len() == 1 && cart.items[0].name == "Amber Lamp", "items")
            }
            Read::RemoveItem => {
                let cart = api.cart.remove_item(cx(), "u-2", "p-11", "key-0000-0001").await.map_err(show)?;
                check(cart.items.len() == 1 && cart.total == gbp(2998), "items and total")
            }
            Read::OrdersPage => {
                let page = api.orders.page(cx(), "u-2", 10, None).await.map_err(show)?;
                check(page.orders.len() == 1 && page.next_cursor.is_none(), "orders")
            }
            Read::Order => {
                let order = api.orders.order(cx(), "o-u-2-1").await.map_err(show)?;
                check(order.user_id == "u-2" && order.items.len() == 1, "userId and items")
            }
            Read::OrderMissing => match api.orders.order(cx(), "ord-999999").await {
                Err(DownstreamError::NotFound { .. }) => Ok(()),
                other => Err(format!("expected not found, got {other:?}")),
            },
            Read::PlaceOrder => {
                let order =
                    api.orders.place(cx(), "u-2", &[("p-1", 1)], "key-0000-0001").await.map_err(show)?;
                check(order.id == "ord-000001" && order.total == gbp(2998), "id and total")
            }
        }
    }
}

/// One interaction's expectations: provider state, request path and query,
/// response body (if any) and status.
type Expect = (&'static str, String, Vec<(&'static str, String)>, Option<JsonPattern>, u16);

fn check(ok: bool, what: &str) -> Result<(), String> {
    if ok { Ok(()) } else { Err(format!("the client did not read {what} as the pact says")) }
}

fn gbp(amount_minor: i64) -> Money {
    Money { amount_minor, currency: "GBP".to_owned() }
}

fn money(amount_minor: i64) -> JsonPattern {
    json_pattern!({ "amountMinor": like!(amount_minor), "currency": term!("^[A-Z]{3}$", "GBP") })
}

fn product_pattern() -> JsonPattern {
    json_pattern!({
        "id": like!("p-1"),
        "name": like!("Amber Lamp"),
        "brand": like!("Nordlys"),
        "description": like!("A lamp."),
        "images": each_like!("https://img.example/p-1/1.jpg"),
    })
}

fn cart_line(product_id: &str) -> JsonPattern {
    json_pattern!({
        "productId": like!(product_id),
        "name": like!("Amber Lamp"),
        "quantity": like!(1),
        "unitPrice": money(1499),
    })
}

fn order_detail(id: &str) -> JsonPattern {
    json_pattern!({
        "id": like!(id),
        "userId": like!("u-2"),
        "placedAt": term!("^\\d{4}-\\d{2}-\\d{2}T.*$", "2026-10-01T09:30:00Z"),
        "status": like!("placed"),
        "items": each_like!({
            "productId": like!("p-1"),
            "name": like!("Amber Lamp"),
            "quantity": like!(1),
            "unitPrice": money(2998),
        }),
        "total": money(2998),
    })
}

fn recommendations() -> JsonPattern {
    json_pattern!({
        "items": each_like!({
            "productId": like!("p-7"),
            "name": like!("Amber Lamp"),
            "imageUrl": like!("https://img.example/p-7/1.jpg"),
            "price": money(2499),
        }),
    })
}

fn cx() -> CallCtx {
    CallCtx::new(RequestContext::detached(), Deadline::after(Duration::from_secs(10)))
        .with_principal(Some(Arc::new(Principal::new("u-1", "caller-token"))))
}

/// Hands out a fixed token: the Pact mock server only checks its shape; the
/// verifier replaces it with a real one for the provider.
#[derive(Debug)]
struct FixedToken;

impl ServiceTokens for FixedToken {
    fn token_for<'a>(&'a self, _: &'a Principal, _: &'a str, _: &'a [String]) -> TokenFuture<'a> {
        Box::pin(async { Ok(Arc::from("service-token")) })
    }

    fn own_token<'a>(&'a self, _: &'a str, _: &'a [String]) -> TokenFuture<'a> {
        Box::pin(async { Ok(Arc::from("service-token")) })
    }
}

/// Records `consumer`'s pact with `service`: one interaction per read,
/// each exercised through the real typed client. Errors name the read.
pub async fn record(consumer: &str, service: Service, reads: &[Read]) -> Result<(), String> {
    let mut builder = pact(consumer, service.name());
    for read in reads {
        if read.service() != service {
            return Err(format!("{read:?} goes to {}, not {service}", read.service()));
        }
        read.interaction(&mut builder);
    }
    // The sync start runs the mock server on a runtime and thread of its own
    // (the async one is not offered for `PactBuilder`).
    let server = builder.start_mock_server(None, None);
    let mut config = DownstreamConfig::default();
    let name = service.name().parse().map_err(|e| format!("{e:?}"))?;
    config.set_base_url(name, server.url().as_str().trim_end_matches('/'));
    if let Some(settings) = config.services.get_mut(service.name()) {
        // One attempt, no hedge: the pact records what one call looks like.
        settings.timeout_ms = 5_000;
    }
    let api = Api::new(&config, consumer, Arc::new(FixedToken)).map_err(|e| e.to_string())?;
    for read in reads {
        read.exercise(&api)
            .await
            .map_err(|e| format!("{consumer} -> {service}: {}: {e}", read.description()))?;
    }
    // Dropping the server checks every interaction was met and writes the file.
    drop(server);
    Ok(())
}

/// [`record`] for each service a BFF calls; panics with the first error
/// (for `#[tokio::test]`s), or when a service is not on the consumer's
/// egress list in the registry (a pact for a call the BFF cannot make).
pub async fn record_all(consumer: &str, reads: &[(Service, Vec<Read>)]) {
    if let Some(entry) = bff_registry::find(consumer) {
        for (service, _) in reads {
            assert!(
                entry.calls(service.name()),
                "{consumer} records a pact with {service}, which is not on its egress list (crates/bff-registry)"
            );
        }
    }
    for (service, reads) in reads {
        if let Err(error) = record(consumer, *service, reads).await {
            panic!("{error}");
        }
    }
}
