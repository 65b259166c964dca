//! Orders on the web: placing one (a write with an `Idempotency-Key`,
//! enforced by the shell: replay, `409` in flight, `422` for another
//! request), the order history a page at a time, and one order. Another
//! user's order answers exactly like an unknown one (OWASP API1:2023).
//!
//! The web team's own view models: they look like mobile's today and are
//! still separate types, so one client's change never reshapes the other's.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use bff_auth::Caller;
use bff_compose::Plan;
use bff_downstream::model::{Money, OrderDetail, Orders};
use bff_error::{ApiError, Classify as _, ErrorCode};
use bff_server::extract::{IdempotencyKey, Json, PathId, Query};
use bff_server::{Backbone, cursor};
use serde::{Deserialize, Serialize};

use crate::routes::MoneyVm;

/// One line of an order.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebOrderLine {
    /// Product id, for a link to its page.
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
pub struct WebOrder {
    /// Order id.
    #[schema(examples("ord-000042"))]
    pub id: String,
    /// When it was placed (RFC 3339).
    pub placed_at: String,
    /// `placed`, `shipped`, `delivered`, ...
    pub status: String,
    /// The lines.
    pub lines: Vec<WebOrderLine>,
    /// Units ordered.
    pub item_count: u32,
    /// What is paid (the orders service's total).
    pub total: MoneyVm,
}

impl WebOrder {
    fn new(order: &OrderDetail) -> Self {
        WebOrder {
            id: order.id.clone(),
            placed_at: order.placed_at.clone(),
            status: order.status.clone(),
            lines: order
                .items
                .iter()
                .map(|line| WebOrderLine {
                    product_id: line.product_id.clone(),
                    title: line.name.clone(),
                    quantity: line.quantity,
                    unit_price: MoneyVm::from(&line.unit_price),
                    line_total: MoneyVm::from(&Money {
                        amount_minor: line.unit_price.amount_minor * i64::from(line.quantity),
                        currency: line.unit_price.currency.clone(),
                    }),
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
pub struct WebOrderItem {
    /// The product.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$", examples("p-1"))]
    pub product_id: String,
    /// How many, 1 to 99.
    #[schema(minimum = 1, maximum = 99, examples(1))]
    #[serde(deserialize_with = "bff_server::extract::whole_number")]
    pub quantity: u32,
}

/// Body of `POST /v1/orders`: the lines the shopper confirmed at checkout.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebPlaceOrder {
    /// 1 to 50 lines.
    #[schema(min_items = 1, max_items = 50)]
    pub items: Vec<WebOrderItem>,
}

/// `POST /v1/orders`: places an order.
#[utoipa::path(
    post,
    path = "/v1/orders",
    tag = "orders",
    operation_id = "placeOrder",
    summary = "Place an order",
    description = "A write that must not happen twice: a new `Idempotency-Key` per order, the same key on every retry. \
        A `504 write.outcome_unknown` means the order may have been placed: retry with the same key to find out.",
    security(("session" = ["orders"], "csrf" = [])),
    params(IdempotencyKey),
    request_body(content = WebPlaceOrder, content_type = "application/json"),
    responses(
        (status = 201, description = "Placed: the order. A replay carries `Idempotent-Replayed: true`.", body = WebOrder,
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
    State(backbone): State<Backbone>,
    caller: Caller,
    plan: Plan,
    IdempotencyKey(key): IdempotencyKey,
    Json(body): Json<WebPlaceOrder>,
) -> Result<(StatusCode, HeaderMap, axum::Json<WebOrder>), ApiError> {
    if body.items.is_empty() || body.items.len() > 50 {
        return Err(ApiError::new(ErrorCode::RequestInvalid).with_detail("an order has 1 to 50 lines"));
    }
    if body.items.iter().any(|item| !PathId::is_valid(&item.product_id) || !(1..=99).contains(&item.quantity))
    {
        return Err(ApiError::new(ErrorCode::RequestInvalid)
            .with_detail("each line is a product id and 1 to 99 units"));
    }
    let lines: Vec<(&str, u32)> = body.items.iter().map(|i| (i.product_id.as_str(), i.quantity)).collect();
    let order = backbone
        .api
        .orders
        .place(plan.cx().clone(), &caller.subject, &lines, &key)
        .await
        .map_err(|error| ApiError::from_failure(error.failure()))?;
    let mut headers = HeaderMap::new();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/orders/{}", order.id)) {
        headers.insert(header::LOCATION, location);
    }
    Ok((StatusCode::CREATED, headers, axum::Json(WebOrder::new(&order))))
}

/// One order in the history.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebOrderSummary {
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

/// `GET /v1/orders`: a page of the shopper's orders, newest first.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebOrdersPage {
    /// The orders of this page.
    pub orders: Vec<WebOrderSummary>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub next_cursor: Option<String>,
}

impl WebOrdersPage {
    fn new(orders: &Orders, next_cursor: Option<String>) -> Self {
        WebOrdersPage {
            orders: orders
                .orders
                .iter()
                .map(|order| WebOrderSummary {
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
pub struct WebPage {
    /// Orders per page, 1 to 50 (default 10).
    #[param(minimum = 1, maximum = 50)]
    pub limit: Option<u8>,
    /// The `nextCursor` of the previous page (opaque; only this shopper's
    /// own cursors are accepted).
    #[param(pattern = "^[A-Za-z0-9_-]{1,512}$")]
    pub cursor: Option<String>,
}

/// `GET /v1/orders`: the shopper's orders, newest first, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/orders",
    tag = "orders",
    operation_id = "orders",
    summary = "The shopper's orders",
    security(("session" = ["orders"])),
    params(WebPage),
    responses(
        (status = 200, description = "A page of orders, newest first.", body = WebOrdersPage),
        (status = 400, response = bff_error::openapi::BadRequest),
        (status = 401, response = bff_error::openapi::Unauthenticated),
        (status = 403, response = bff_error::openapi::Forbidden),
        (status = 503, response = bff_error::openapi::Unavailable),
        (status = 504, response = bff_error::openapi::Timeout),
    )
)]
pub async fn orders(
    State(backbone): State<Backbone>,
    caller: Caller,
    plan: Plan,
    Query(page): Query<WebPage>,
) -> Result<axum::Json<WebOrdersPage>, ApiError> {
    let limit = page.limit.unwrap_or(10);
    if !(1..=50).contains(&limit) {
        return Err(ApiError::new(ErrorCode::RequestInvalid).with_detail("limit is 1 to 50"));
    }
    let scope = format!("orders:{}", caller.subject);
    let cursor = page.cursor.as_deref().map(|c| cursor::open(&backbone.cache, &scope, c)).transpose()?;
    let orders = backbone
        .api
        .orders
        .page(plan.cx().clone(), &caller.subject, limit, cursor.as_deref())
        .await
        .map_err(|error| ApiError::from_failure(error.failure()))?;
    let next = orders.next_cursor.as_deref().and_then(|next| cursor::seal(&backbone.cache, &scope, next));
    Ok(axum::Json(WebOrdersPage::new(&orders, next)))
}

/// `GET /v1/orders/{id}`: one of the shopper's orders.
#[utoipa::path(
    get,
    path = "/v1/orders/{id}",
    tag = "orders",
    operation_id = "order",
    summary = "One of the shopper's orders",
    description = "Another user's order answers exactly like an order that does not exist.",
    security(("session" = ["orders"])),
    params(("id" = String, Path, description = "Order id, e.g. `ord-000001`.", pattern = "^[A-Za-z0-9_-]{1,64}$")),
    responses(
        (status = 200, description = "The order.", body = WebOrder),
        (status = 400, response = bff_error::openapi::BadRequest),
        (status = 401, response = bff_error::openapi::Unauthenticated),
        (status = 403, response = bff_error::openapi::Forbidden),
        (status = 404, response = bff_error::openapi::NotFound),
        (status = 503, response = bff_error::openapi::Unavailable),
        (status = 504, response = bff_error::openapi::Timeout),
    )
)]
pub async fn order(
    State(backbone): State<Backbone>,
    caller: Caller,
    plan: Plan,
    PathId(id): PathId,
) -> Result<axum::Json<WebOrder>, ApiError> {
    let order = backbone
        .api
        .orders
        .order_of(plan.cx().clone(), &caller.subject, &id)
        .await
        .map_err(|error| ApiError::from_failure(error.failure()))?;
    Ok(axum::Json(WebOrder::new(&order)))
}
