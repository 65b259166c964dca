//! The cart and orders: the app's writes, and the orders a user may see.
//!
//! Every write declares `params(IdempotencyKey)`, so the shell enforces the
//! key (replay, `409` in flight, `422` for another request; see
//! `bff_server::idempotency`) and the handler forwards it to the service
//! that owns the write, which keeps it too. Writes are never retried,
//! hedged or cached by the BFF; a lost answer is `504
//! write.outcome_unknown`, which tells the app to retry with the same key.
//!
//! Orders are a user's own: another user's order answers exactly like an
//! unknown one (`404 resource.not_found`, no detail, one service call
//! either way), OWASP API1:2023. The orders service refuses another user's
//! order itself (its owner check) and the BFF checks the owner again.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use bff_auth::Caller;
use bff_compose::{Envelope, Plan};
use bff_downstream::model::{Cart, Money, OrderDetail, Orders, ShippingEstimate};
use bff_error::{ApiError, Classify as _, ErrorCode};
use bff_server::extract::{IdempotencyKey, Json, PathId, Query};
use bff_server::{Backbone, cursor};
use serde::{Deserialize, Serialize};

use crate::view::MoneyVm;

/// Lines per order at most; units per line at most.
const MAX_LINES: usize = 50;
const MAX_QUANTITY: u32 = 99;

/// One cart line, ready to show.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CartLineVm {
    /// Product id, for navigation and for changing the line.
    pub product_id: String,
    /// Product name.
    pub title: String,
    /// Units.
    pub quantity: u32,
    /// Price of one.
    pub unit_price: MoneyVm,
    /// `quantity` × `unitPrice`.
    pub line_total: MoneyVm,
}

/// The cart: what `GET /v1/cart` shows and every cart write answers.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CartVm {
    /// The lines, in the order they were added.
    pub items: Vec<CartLineVm>,
    /// Units in the cart (the badge).
    pub item_count: u32,
    /// The cart service's total (never recomputed here).
    pub total: MoneyVm,
}

fn times(money: &Money, quantity: u32) -> MoneyVm {
    MoneyVm::from(&Money {
        amount_minor: money.amount_minor * i64::from(quantity),
        currency: money.currency.clone(),
    })
}

impl CartVm {
    fn new(cart: &Cart) -> Self {
        CartVm {
            items: cart
                .items
                .iter()
                .map(|line| CartLineVm {
                    product_id: line.product_id.clone(),
                    title: line.name.clone(),
                    quantity: line.quantity,
                    unit_price: MoneyVm::from(&line.unit_price),
                    line_total: times(&line.unit_price, line.quantity),
                })
                .collect(),
            item_count: cart.items.iter().map(|line| line.quantity).sum(),
            total: MoneyVm::from(&cart.total),
        }
    }
}

/// `GET /v1/cart`: the cart, and how far it is from free delivery.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CartScreenVm {
    /// The cart.
    pub cart: CartVm,
    /// "Delivery in 2–4 days · £12.03 to free delivery"; absent when
    /// the shipping service is unavailable.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, examples("Delivery in 2–4 days · free delivery"))]
    pub delivery: Option<String>,
}

fn delivery_line(cart: &Cart, estimate: &ShippingEstimate) -> String {
    let days = format!("Delivery in {}–{} days", estimate.min_days, estimate.max_days);
    match &estimate.free_shipping_over {
        Some(threshold) if threshold.currency == cart.total.currency => {
            let missing = threshold.amount_minor - cart.total.amount_minor;
            if missing <= 0 {
                format!("{days} · free delivery")
            } else {
                let missing = Money { amount_minor: missing, currency: threshold.currency.clone() };
                format!("{days} · {} to free delivery", missing.formatted())
            }
        }
        _ => days,
    }
}

/// The cart screen's response (named for the OpenAPI document).
pub type CartEnvelope = Envelope<CartScreenVm>;

/// `GET /v1/cart`: the cart screen.
///
/// | component | critical | when missing |
/// |---|---|---|
/// | `cart` | yes | 503/504 |
/// | `shipping` | no | no delivery line (`error`, omitted) |
#[utoipa::path(
    get,
    path = "/v1/cart",
    tag = "cart",
    operation_id = "cart",
    summary = "The cart screen",
    security(("bearer" = ["cart"])),
    params(super::IfNoneMatch),
    responses(
        (status = 200, description = "The cart; `components` says which parts are missing.", body = CartEnvelope,
            headers(("ETag" = String, description = "Weak validator of this body."))),
        (status = 304, description = "Unchanged since the `If-None-Match` validator."),
        (status = 401, response = bff_error::openapi::Unauthenticated),
        (status = 403, response = bff_error::openapi::Forbidden),
        (status = 503, response = bff_error::openapi::Unavailable),
        (status = 504, response = bff_error::openapi::Timeout),
    )
)]
pub async fn cart(
    State(state): State<Backbone>,
    caller: Caller,
    plan: Plan,
) -> Result<Envelope<CartScreenVm>, ApiError> {
    let (api, user) = (&state.api, caller.subject.as_str());
    let (cart, shipping) = plan
        .run((
            plan.critical("cart", |cx| api.cart.cart(cx, user)),
            plan.optional("shipping", |cx| api.shipping.estimate(cx, user)).omit(),
        ))
        .await?;
    let delivery = shipping.as_ref().map(|estimate| delivery_line(&cart, estimate));
    Ok(plan.envelope(CartScreenVm { cart: CartVm::new(&cart), delivery }))
}

/// Body of `POST /v1/cart/items`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddItem {
    /// The product to add (added to its line when already in the cart).
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$", examples("p-1"))]
    pub product_id: String,
    /// How many, 1 to 99.
    #[schema(minimum = 1, maximum = 99, examples(1))]
    #[serde(deserialize_with = "bff_server::extract::whole_number")]
    pub quantity: u32,
}

/// Body of `PATCH /v1/cart/items/{productId}`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetQuantity {
    /// The line's new quantity, 1 to 99 (remove a line with `DELETE`).
    #[schema(minimum = 1, maximum = 99, examples(2))]
    #[serde(deserialize_with = "bff_server::extract::whole_number")]
    pub quantity: u32,
}

fn check_line(product_id: &str, quantity: u32) -> Result<(), ApiError> {
    if !PathId::is_valid(product_id) {
        return Err(ApiError::new(ErrorCode::RequestInvalid).with_detail("productId is not a product id"));
    }
    if !(1..=MAX_QUANTITY).contains(&quantity) {
        return Err(ApiError::new(ErrorCode::RequestInvalid).with_detail("quantity is 1 to 99"));
    }
    Ok(())
}

/// A failed write's answer: the service's own refusals keep their codes
/// (`404` for an unknown product or line, `422` for a reused key); a lost
/// answer is `write.outcome_unknown`.
fn write_error(error: &bff_downstream::DownstreamError, not_found: &'static str) -> ApiError {
    let error = ApiError::from_failure(error.failure());
    if error.code() == ErrorCode::NotFound { error.with_detail(not_found) } else { error }
}

/// `POST /v1/cart/items`: adds a product to the cart.
#[utoipa::path(
    post,
    path = "/v1/cart/items",
    tag = "cart",
    operation_id = "addToCart",
    summary = "Add a product to the cart",
    security(("bearer" = ["cart"])),
    params(IdempotencyKey),
    request_body(content = AddItem, content_type = "application/json"),
    responses(
        (status = 201, description = "Added: the cart after the write. A replay carries `Idempotent-Replayed: true`.", body = CartVm),
        (status = 400, response = bff_error::openapi::BadWrite),
        (status = 401, response = bff_error::openapi::Unauthenticated),
        (status = 403, response = bff_error::openapi::Forbidden),
        (status = 404, response = bff_error::openapi::NotFound),
        (status = 409, response = bff_error::openapi::InFlight),
        (status = 413, response = bff_error::openapi::TooLarge),
        (status = 422, response = bff_error::openapi::KeyReused),
        (status = 503, response = bff_error::openapi::Unavailable),
        (status = 504, response = bff_error::openapi::WriteTimeout),
    )
)]
pub async fn add_to_cart(
    State(state): State<Backbone>,
    caller: Caller,
    plan: Plan,
    IdempotencyKey(key): IdempotencyKey,
    Json(body): Json<AddItem>,
) -> Result<(StatusCode, axum::Json<CartVm>), ApiError> {
    check_line(&body.product_id, body.quantity)?;
    let cart = state
        .api
        .cart
        .add_item(plan.cx().clone(), &caller.subject, &body.product_id, body.quantity, &key)
        .await
        .map_err(|error| write_error(&error, "no such product"))?;
    Ok((StatusCode::CREATED, axum::Json(CartVm::new(&cart))))
}

/// `PATCH /v1/cart/items/{productId}`: sets a line's quantity.
#[utoipa::path(
    patch,
    path = "/v1/cart/items/{productId}",
    tag = "cart",
    operation_id = "setCartQuantity",
    summary = "Change a cart line's quantity",
    security(("bearer" = ["cart"])),
    params(("productId" = String, Path, description = "The line's product id.", pattern = "^[A-Za-z0-9_-]{1,64}$"), IdempotencyKey),
    request_body(content = SetQuantity, content_type = "application/json"),
    responses(
        (status = 200, description = "Changed: the cart after the write.", body = CartVm),
        (status = 400, response = bff_error::openapi::BadWrite),
        (status = 401, response = bff_error::openapi::Unauthenticated),
        (status = 403, response = bff_error::openapi::Forbidden),
        (status = 404, response = bff_error::openapi::NotFound),
        (status = 409, response = bff_error::openapi::InFlight),
        (status = 413, response = bff_error::openapi::TooLarge),
        (status = 422, response = bff_error::openapi::KeyReused),
        (status = 503, response = bff_error::openapi::Unavailable),
        (status = 504, response = bff_error::openapi::WriteTimeout),
    )
)]
pub async fn set_cart_quantity(
    State(state): State<Backbone>,
    caller: Caller,
    plan: Plan,
    PathId(product_id): PathId,
    IdempotencyKey(key): IdempotencyKey,
    Json(body): Json<SetQuantity>,
) -> Result<axum::Json<CartVm>, ApiError> {
    check_line(&product_id, body.quantity)?;
    let cart = state
        .api
        .cart
        .set_quantity(plan.cx().clone(), &caller.subject, &product_id, body.quantity, &key)
        .await
        .map_err(|error| write_error(&error, "this product is not in the cart"))?;
    Ok(axum::Json(CartVm::new(&cart)))
}

/// `DELETE /v1/cart/items/{productId}`: removes a line.
#[utoipa::path(
    delete,
    path = "/v1/cart/items/{productId}",
    tag = "cart",
    operation_id = "removeFromCart",
    summary = "Remove a line from the cart",
    security(("bearer" = ["cart"])),
    params(("productId" = String, Path, description = "The line's product id.", pattern = "^[A-Za-z0-9_-]{1,64}$"), IdempotencyKey),
    responses(
        (status = 200, description = "Removed: the cart after the write.", body = CartVm),
        (status = 400, response = bff_error::openapi::BadWrite),
        (status = 401, response = bff_error::openapi::Unauthenticated),
        (status = 403, response = bff_error::openapi::Forbidden),
        (status = 404, response = bff_error::openapi::NotFound),
        (status = 409, response = bff_error::openapi::InFlight),
        (status = 422, response = bff_error::openapi::KeyReused),
        (status = 503, response = bff_error::openapi::Unavailable),
        (status = 504, response = bff_error::openapi::WriteTimeout),
    )
)]
pub async fn remove_from_cart(
    State(state): State<Backbone>,
    caller: Caller,
    plan: Plan,
    PathId(product_id): PathId,
    IdempotencyKey(key): IdempotencyKey,
) -> Result<axum::Json<CartVm>, ApiError> {
    let cart = state
        .api
        .cart
        .remove_item(plan.cx().clone(), &caller.subject, &product_id, &key)
        .await
        .map_err(|error| write_error(&error, "this product is not in the cart"))?;
    Ok(axum::Json(CartVm::new(&cart)))
}

/// One line of an order.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderLineVm {
    /// Product id.
    pub product_id: String,
    /// Product name when ordered.
    pub title: String,
    /// Units.
    pub quantity: u32,
    /// Price of one when ordered.
    pub unit_price: MoneyVm,
    /// `quantity` × `unitPrice`.
    pub line_total: MoneyVm,
}

/// One order with its lines.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderVm {
    /// Order id.
    #[schema(examples("ord-000042"))]
    pub id: String,
    /// When it was placed (RFC 3339).
    pub placed_at: String,
    /// `placed`, `shipped`, `delivered`, ...
    pub status: String,
    /// The lines.
    pub items: Vec<OrderLineVm>,
    /// Units ordered.
    pub item_count: u32,
    /// What is paid (the orders service's total).
    pub total: MoneyVm,
}

impl OrderVm {
    fn new(order: &OrderDetail) -> Self {
        OrderVm {
            id: order.id.clone(),
            placed_at: order.placed_at.clone(),
            status: order.status.clone(),
            items: order
                .items
                .iter()
                .map(|line| OrderLineVm {
                    product_id: line.product_id.clone(),
                    title: line.name.clone(),
                    quantity: line.quantity,
                    unit_price: MoneyVm::from(&line.unit_price),
                    line_total: times(&line.unit_price, line.quantity),
                })
                .collect(),
            item_count: order.items.iter().map(|line| line.quantity).sum(),
            total: MoneyVm::from(&order.total),
        }
    }
}

/// One line of `POST /v1/orders`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrderItem {
    /// The product.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$", examples("p-1"))]
    pub product_id: String,
    /// How many, 1 to 99.
    #[schema(minimum = 1, maximum = 99, examples(1))]
    #[serde(deserialize_with = "bff_server::extract::whole_number")]
    pub quantity: u32,
}

/// Body of `POST /v1/orders`: the lines the user confirmed (the cart as
/// shown). The orders service prices them; the cart is emptied by the
/// commerce domain, not by the BFF.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlaceOrder {
    /// 1 to 50 lines.
    #[schema(min_items = 1, max_items = 50)]
    pub items: Vec<OrderItem>,
}

/// `POST /v1/orders`: places an order.
#[utoipa::path(
    post,
    path = "/v1/orders",
    tag = "orders",
    operation_id = "placeOrder",
    summary = "Place an order",
    description = "A write that must not happen twice: send a new `Idempotency-Key` per order and the same key on every retry. \
        A retry of a placed order answers the same order (`Idempotent-Replayed: true`); a `504 write.outcome_unknown` \
        means the order may have been placed: retry with the same key to find out.",
    security(("bearer" = ["orders"])),
    params(IdempotencyKey),
    request_body(content = PlaceOrder, content_type = "application/json"),
    responses(
        (status = 201, description = "Placed: the order.", body = OrderVm,
            headers(("Location" = String, description = "The order's URL, `/v1/orders/{id}`."))),
        (status = 400, response = bff_error::openapi::BadWrite),
        (status = 401, response = bff_error::openapi::Unauthenticated),
        (status = 403, response = bff_error::openapi::Forbidden),
        (status = 404, response = bff_error::openapi::NotFound),
        (status = 409, response = bff_error::openapi::InFlight),
        (status = 413, response = bff_error::openapi::TooLarge),
        (status = 422, response = bff_error::openapi::KeyReused),
        (status = 503, response = bff_error::openapi::Unavailable),
        (status = 504, response = bff_error::openapi::WriteTimeout),
    )
)]
pub async fn place_order(
    State(state): State<Backbone>,
    caller: Caller,
    plan: Plan,
    IdempotencyKey(key): IdempotencyKey,
    Json(body): Json<PlaceOrder>,
) -> Result<(StatusCode, HeaderMap, axum::Json<OrderVm>), ApiError> {
    if body.items.is_empty() || body.items.len() > MAX_LINES {
        return Err(ApiError::new(ErrorCode::RequestInvalid).with_detail("an order has 1 to 50 lines"));
    }
    for item in &body.items {
        check_line(&item.product_id, item.quantity)?;
    }
    let lines: Vec<(&str, u32)> = body.items.iter().map(|i| (i.product_id.as_str(), i.quantity)).collect();
    let order = state
        .api
        .orders
        .place(plan.cx().clone(), &caller.subject, &lines, &key)
        .await
        .map_err(|error| write_error(&error, "no such product"))?;
    let mut headers = HeaderMap::new();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/orders/{}", order.id)) {
        headers.insert(header::LOCATION, location);
    }
    Ok((StatusCode::CREATED, headers, axum::Json(OrderVm::new(&order))))
}

/// One order in the list.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderSummaryVm {
    /// Order id.
    pub id: String,
    /// When it was placed (RFC 3339).
    pub placed_at: String,
    /// Status.
    pub status: String,
    /// Units ordered.
    pub item_count: u32,
    /// What was paid.
    pub total: MoneyVm,
}

/// `GET /v1/orders`: a page of the caller's orders, newest first.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrdersPageVm {
    /// The orders of this page.
    pub orders: Vec<OrderSummaryVm>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub next_cursor: Option<String>,
}

impl OrdersPageVm {
    fn new(orders: &Orders, next_cursor: Option<String>) -> Self {
        OrdersPageVm {
            orders: orders
                .orders
                .iter()
                .map(|order| OrderSummaryVm {
                    id: order.id.clone(),
                    placed_at: order.placed_at.clone(),
                    status: order.status.clone(),
                    item_count: order.item_count,
                    total: MoneyVm::from(&order.total),
                })
                .collect(),
            next_cursor,
        }
    }
}

/// Query of `GET /v1/orders`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// Orders per page, 1 to 50 (default 20).
    #[param(minimum = 1, maximum = 50)]
    pub limit: Option<u8>,
    /// The `nextCursor` of the previous page (opaque; only this caller's
    /// own cursors are accepted).
    #[param(pattern = "^[A-Za-z0-9_-]{1,512}$")]
    pub cursor: Option<String>,
}

/// `GET /v1/orders`: the caller's orders, newest first, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/orders",
    tag = "orders",
    operation_id = "orders",
    summary = "The caller's orders",
    security(("bearer" = ["orders"])),
    params(Page, super::IfNoneMatch),
    responses(
        (status = 200, description = "A page of orders, newest first.", body = OrdersPageVm,
            headers(("ETag" = String, description = "Weak validator of this body."))),
        (status = 304, description = "Unchanged since the `If-None-Match` validator."),
        (status = 400, response = bff_error::openapi::BadRequest),
        (status = 401, response = bff_error::openapi::Unauthenticated),
        (status = 403, response = bff_error::openapi::Forbidden),
        (status = 503, response = bff_error::openapi::Unavailable),
        (status = 504, response = bff_error::openapi::Timeout),
    )
)]
pub async fn orders(
    State(state): State<Backbone>,
    caller: Caller,
    plan: Plan,
    Query(page): Query<Page>,
) -> Result<axum::Json<OrdersPageVm>, ApiError> {
    let limit = page.limit.unwrap_or(20);
    if !(1..=50).contains(&limit) {
        return Err(ApiError::new(ErrorCode::RequestInvalid).with_detail("limit is 1 to 50"));
    }
    // Sealed for this caller and this list: a forged, edited or another
    // caller's cursor is refused here and never reaches the service.
    let scope = format!("orders:{}", caller.subject);
    let cursor = page.cursor.as_deref().map(|c| cursor::open(&state.cache, &scope, c)).transpose()?;
    let orders = state
        .api
        .orders
        .page(plan.cx().clone(), &caller.subject, limit, cursor.as_deref())
        .await
        .map_err(|error| ApiError::from_failure(error.failure()))?;
    let next = orders.next_cursor.as_deref().and_then(|next| cursor::seal(&state.cache, &scope, next));
    Ok(axum::Json(OrdersPageVm::new(&orders, next)))
}

/// `GET /v1/orders/{id}`: one of the caller's orders.
#[utoipa::path(
    get,
    path = "/v1/orders/{id}",
    tag = "orders",
    operation_id = "order",
    summary = "One of the caller's orders",
    description = "Another user's order answers exactly like an order that does not exist.",
    security(("bearer" = ["orders"])),
    params(("id" = String, Path, description = "Order id, e.g. `ord-000001`.", pattern = "^[A-Za-z0-9_-]{1,64}$"), super::IfNoneMatch),
    responses(
        (status = 200, description = "The order.", body = OrderVm,
            headers(("ETag" = String, description = "Weak validator of this body."))),
        (status = 304, description = "Unchanged since the `If-None-Match` validator."),
        (status = 400, response = bff_error::openapi::BadRequest),
        (status = 401, response = bff_error::openapi::Unauthenticated),
        (status = 403, response = bff_error::openapi::Forbidden),
        (status = 404, response = bff_error::openapi::NotFound),
        (status = 503, response = bff_error::openapi::Unavailable),
        (status = 504, response = bff_error::openapi::Timeout),
    )
)]
pub async fn order(
    State(state): State<Backbone>,
    caller: Caller,
    plan: Plan,
    PathId(id): PathId,
) -> Result<axum::Json<OrderVm>, ApiError> {
    let order = state
        .api
        .orders
        .order_of(plan.cx().clone(), &caller.subject, &id)
        .await
        .map_err(|error| ApiError::from_failure(error.failure()))?;
    Ok(axum::Json(OrderVm::new(&order)))
}
