//! The partner catalogue: every product a page at a time, many products by
//! id in one request, and `v2` beside `v1`.
//!
//! * `GET /partner/v1/products?limit=&cursor=`: the catalog in its stable
//!   order (by id, as the catalog keeps it), at most [`MAX_PAGE`] a page
//!   (more is `400`), with an opaque cursor sealed for this partner and
//!   this version (a forged, edited or another partner's cursor is `400`)
//!   and `Link: <...>; rel="next"` while more remain. Walking every page
//!   returns each product exactly once.
//! * `POST /partner/v1/products:batchGet` (`{"ids": [...]}`, up to
//!   [`MAX_BATCH`]): one batched call per service (catalog, pricing,
//!   inventory), whatever the number of ids; ids not found are listed in
//!   `notFound`, never a failure of the whole request.
//! * `GET /partner/v2/products/{id}` and `GET /partner/v2/products`: the
//!   same, with one deliberate change: a price is a decimal string
//!   (`"amount": "19.99"`) instead of minor units (`amountMinor`).
//!
//! A page or a batch costs more of the partner's quota than a single read
//! (`Bff::cost` in `lib.rs`; README, "Partner API").

use std::collections::HashMap;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use bff_auth::Caller;
use bff_compose::{Envelope, Plan};
use bff_downstream::model::{Money, Price, Product, StockBatch};
use bff_error::{ApiError, ErrorCode};
use bff_server::extract::{Json, PathId, Query};
use bff_server::{Backbone, cursor};
use serde::{Deserialize, Serialize};

use crate::routes::{AvailabilityV1, PriceV1, ProductV1};

/// Products per page at most (and the default page is 20).
pub const MAX_PAGE: u8 = 100;
/// Ids per batch request at most.
pub const MAX_BATCH: usize = 100;

/// The catalog entries of one page or batch, priced, with availability.
struct Priced {
    product: Product,
    price: Price,
    availability: AvailabilityV1,
}

/// Prices (critical) and stock (optional: `unknown`) of `products`, one
/// batched call to each service; a product without a price is left out
/// (reported as not found by a batch, skipped by a page).
async fn price_all(
    backbone: &Backbone,
    plan: &Plan,
    products: Vec<Product>,
) -> Result<Vec<Priced>, ApiError> {
    if products.is_empty() {
        return Ok(Vec::new());
    }
    let api = &backbone.api;
    let ids: Vec<&str> = products.iter().map(|p| p.id.as_str()).collect();
    let (prices, stock) = plan
        .run((
            plan.critical("prices", |cx| api.pricing.batch(cx, &ids)),
            plan.optional("availability", |cx| api.inventory.batch(cx, &ids)).or(StockBatch::default()),
        ))
        .await?;
    let mut prices: HashMap<String, Price> =
        prices.prices.into_iter().map(|p| (p.product_id.clone(), p)).collect();
    let levels: HashMap<&str, AvailabilityV1> =
        stock.stock.iter().map(|s| (s.product_id.as_str(), AvailabilityV1::from(s.level()))).collect();
    Ok(products
        .into_iter()
        .filter_map(|product| {
            let price = prices.remove(&product.id)?;
            let availability = levels.get(product.id.as_str()).copied().unwrap_or(AvailabilityV1::Unknown);
            Some(Priced { product, price, availability })
        })
        .collect())
}

impl From<Priced> for ProductV1 {
    fn from(priced: Priced) -> Self {
        ProductV1 {
            id: priced.product.id,
            name: priced.product.name,
            brand: priced.product.brand,
            price: PriceV1::from(&priced.price.price),
            list_price: priced.price.list_price.as_ref().map(PriceV1::from),
            availability: priced.availability,
        }
    }
}

/// Query of the product lists.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Products per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u8>,
    /// The `nextCursor` of the previous page (opaque; only this partner's,
    /// for this version).
    #[param(pattern = "^[A-Za-z0-9_-]{1,512}$")]
    pub cursor: Option<String>,
}

/// One page of the catalog, priced, and the next page's cursor and `Link`.
async fn page<T: From<Priced>>(
    backbone: &Backbone,
    plan: &Plan,
    partner: &str,
    version: &str,
    query: PageQuery,
) -> Result<(HeaderMap, Page<T>), ApiError> {
    let limit = query.limit.unwrap_or(20);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::new(ErrorCode::RequestInvalid).with_detail("limit is 1 to 100"));
    }
    let scope = format!("partner-products:{version}:{partner}");
    let offset = match query.cursor.as_deref() {
        None => 0,
        Some(sealed) => cursor::open(&backbone.cache, &scope, sealed)?.parse::<u32>().map_err(|_| {
            ApiError::new(ErrorCode::RequestInvalid).with_detail("cursor is not one this API gave")
        })?,
    };
    let catalog = &backbone.api.catalog;
    let (products,) = plan.run((plan.critical("products", |cx| catalog.page(cx, offset, limit)),)).await?;
    let next = products.next_offset.and_then(|next| cursor::seal(&backbone.cache, &scope, &next.to_string()));
    let items = price_all(backbone, plan, products.items).await?.into_iter().map(T::from).collect();
    let mut headers = HeaderMap::new();
    if let Some(next) = &next
        && let Ok(link) = HeaderValue::from_str(&format!(
            "</partner/{version}/products?limit={limit}&cursor={next}>; rel=\"next\""
        ))
    {
        headers.insert(header::LINK, link);
    }
    Ok((headers, Page { items, next_cursor: next }))
}

/// A page of products.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    /// The products of this page, in the catalog's stable order.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page (also in `Link: rel="next"`);
    /// absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub next_cursor: Option<String>,
}

/// A page of v1 products (named for the OpenAPI document).
pub type PageV1 = Page<ProductV1>;
/// A page of v1 products, composed (named for the OpenAPI document).
pub type PageV1Envelope = Envelope<PageV1>;

/// `GET /partner/v1/products`: the catalog, a page at a time.
#[utoipa::path(
    get,
    path = "/partner/v1/products",
    tag = "products",
    operation_id = "listProducts",
    summary = "Every product, a page at a time",
    description = "The catalog in a stable order. Follow `nextCursor` (or the `Link: rel=\"next\"` header) until it is absent: \
        each product comes exactly once. A cursor is opaque and only valid for the partner and the version that got it. \
        A page costs 5 requests of the quota.",
    security(("bearer" = ["catalog"])),
    params(PageQuery),
    responses(
        (status = 200, description = "A page; `components.availability` says whether stock is known.", body = PageV1Envelope,
            headers(("Link" = String, description = "`<...>; rel=\"next\"` while more pages remain."))),
        (status = 400, response = bff_error::openapi::BadRequest),
        (status = 401, response = bff_error::openapi::Unauthenticated),
        (status = 503, response = bff_error::openapi::Unavailable),
        (status = 504, response = bff_error::openapi::Timeout),
    )
)]
pub async fn list_v1(
    State(backbone): State<Backbone>,
    caller: Caller,
    plan: Plan,
    Query(query): Query<PageQuery>,
) -> Result<(HeaderMap, Envelope<PageV1>), ApiError> {
    let (headers, page) = page::<ProductV1>(&backbone, &plan, &caller.subject, "v1", query).await?;
    Ok((headers, plan.envelope(page)))
}

/// Body of `POST /partner/v1/products:batchGet`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BatchGet {
    /// 1 to 100 product ids (a repeated id is answered once).
    #[schema(min_items = 1, max_items = 100, examples(json!(["p-1", "p-2", "p-999"])))]
    pub ids: Vec<String>,
}

/// The answer to a batch: what was found, and what was not.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchV1 {
    /// The products found, in the order asked.
    pub items: Vec<ProductV1>,
    /// The ids asked for that name no product (or none with a price).
    pub not_found: Vec<String>,
}

/// A batch's response (named for the OpenAPI document).
pub type BatchV1Envelope = Envelope<BatchV1>;

/// `POST /partner/v1/products:batchGet`: many products by id in one request.
#[utoipa::path(
    post,
    path = "/partner/v1/products:batchGet",
    tag = "products",
    operation_id = "batchGetProducts",
    summary = "Up to 100 products by id",
    description = "One request for many products: the BFF reads each service once for the whole batch. Ids that name no \
        product are listed in `notFound`; the rest are answered. A batch costs 10 requests of the quota.",
    security(("bearer" = ["catalog"])),
    request_body(content = BatchGet, content_type = "application/json"),
    responses(
        (status = 200, description = "The products found and the ids not found.", body = BatchV1Envelope),
        (status = 400, response = bff_error::openapi::BadRequest),
        (status = 401, response = bff_error::openapi::Unauthenticated),
        (status = 413, response = bff_error::openapi::TooLarge),
        (status = 503, response = bff_error::openapi::Unavailable),
        (status = 504, response = bff_error::openapi::Timeout),
    )
)]
pub async fn batch_get_v1(
    State(backbone): State<Backbone>,
    plan: Plan,
    Json(body): Json<BatchGet>,
) -> Result<Envelope<BatchV1>, ApiError> {
    if body.ids.is_empty() || body.ids.len() > MAX_BATCH {
        return Err(ApiError::new(ErrorCode::RequestInvalid).with_detail("ids: 1 to 100 product ids"));
    }
    if body.ids.iter().any(|id| !PathId::is_valid(id)) {
        return Err(ApiError::new(ErrorCode::RequestInvalid).with_detail("ids: each is a product id"));
    }
    let mut asked: Vec<&str> = Vec::with_capacity(body.ids.len());
    for id in &body.ids {
        if !asked.contains(&id.as_str()) {
            asked.push(id);
        }
    }
    let catalog = &backbone.api.catalog;
    let (found,) = plan.run((plan.critical("products", |cx| catalog.batch(cx, &asked)),)).await?;
    let mut priced: HashMap<String, ProductV1> = price_all(&backbone, &plan, found.items)
        .await?
        .into_iter()
        .map(|p| (p.product.id.clone(), ProductV1::from(p)))
        .collect();
    let mut batch = BatchV1 { items: Vec::with_capacity(asked.len()), not_found: Vec::new() };
    for id in asked {
        match priced.remove(id) {
            Some(product) => batch.items.push(product),
            None => batch.not_found.push(id.to_owned()),
        }
    }
    Ok(plan.envelope(batch))
}

/// A v2 price: a decimal string, not minor units (the change from v1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PriceV2 {
    /// The amount as a decimal string, e.g. `"19.99"`.
    #[schema(examples("19.99"))]
    pub amount: String,
    /// ISO 4217 code.
    #[schema(examples("EUR"))]
    pub currency: String,
}

impl From<&Money> for PriceV2 {
    fn from(money: &Money) -> Self {
        // Every currency the services use has two minor digits (see `Money`).
        let (sign, minor) =
            if money.amount_minor < 0 { ("-", -money.amount_minor) } else { ("", money.amount_minor) };
        PriceV2 {
            amount: format!("{sign}{}.{:02}", minor / 100, minor % 100),
            currency: money.currency.clone(),
        }
    }
}

/// A v2 product.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductV2 {
    /// Product id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Brand.
    pub brand: String,
    /// Current price.
    pub price: PriceV2,
    /// Regular price when on sale.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub list_price: Option<PriceV2>,
    /// Availability.
    pub availability: AvailabilityV1,
}

impl From<Priced> for ProductV2 {
    fn from(priced: Priced) -> Self {
        ProductV2 {
            id: priced.product.id,
            name: priced.product.name,
            brand: priced.product.brand,
            price: PriceV2::from(&priced.price.price),
            list_price: priced.price.list_price.as_ref().map(PriceV2::from),
            availability: priced.availability,
        }
    }
}

/// A v2 product's response (named for the OpenAPI document).
pub type ProductV2Envelope = Envelope<ProductV2>;
/// A page of v2 products (named for the OpenAPI document).
pub type PageV2 = Page<ProductV2>;
/// A page of v2 products, composed (named for the OpenAPI document).
pub type PageV2Envelope = Envelope<PageV2>;

/// `GET /partner/v2/products/{id}`.
#[utoipa::path(
    get,
    path = "/partner/v2/products/{id}",
    tag = "products-v2",
    operation_id = "getProductV2",
    summary = "A product with its price (a decimal string) and availability",
    security(("bearer" = ["catalog"])),
    params(("id" = String, Path, description = "Product id, e.g. `p-1`.", pattern = "^[A-Za-z0-9_-]{1,64}$")),
    responses(
        (status = 200, description = "The product; `components.availability` says whether stock is known.", body = ProductV2Envelope),
        (status = 400, response = bff_error::openapi::BadRequest),
        (status = 401, response = bff_error::openapi::Unauthenticated),
        (status = 404, response = bff_error::openapi::NotFound),
        (status = 503, response = bff_error::openapi::Unavailable),
        (status = 504, response = bff_error::openapi::Timeout),
    )
)]
pub async fn product_v2(
    State(backbone): State<Backbone>,
    plan: Plan,
    PathId(id): PathId,
) -> Result<Envelope<ProductV2>, ApiError> {
    let (catalog, ids) = (&backbone.api.catalog, [id.as_str()]);
    let (found,) = plan.run((plan.critical("products", |cx| catalog.batch(cx, &ids)),)).await?;
    let Some(product) = price_all(&backbone, &plan, found.items).await?.into_iter().next() else {
        return Err(ApiError::new(ErrorCode::NotFound));
    };
    Ok(plan.envelope(ProductV2::from(product)))
}

/// `GET /partner/v2/products`: the catalog, a page at a time (v2 prices).
#[utoipa::path(
    get,
    path = "/partner/v2/products",
    tag = "products-v2",
    operation_id = "listProductsV2",
    summary = "Every product, a page at a time (v2)",
    description = "As `GET /partner/v1/products`, with v2 products. Cursors of v1 are not valid here. A page costs 5 \
        requests of the quota.",
    security(("bearer" = ["catalog"])),
    params(PageQuery),
    responses(
        (status = 200, description = "A page.", body = PageV2Envelope,
            headers(("Link" = String, description = "`<...>; rel=\"next\"` while more pages remain."))),
        (status = 400, response = bff_error::openapi::BadRequest),
        (status = 401, response = bff_error::openapi::Unauthenticated),
        (status = 503, response = bff_error::openapi::Unavailable),
        (status = 504, response = bff_error::openapi::Timeout),
    )
)]
pub async fn list_v2(
    State(backbone): State<Backbone>,
    caller: Caller,
    plan: Plan,
    Query(query): Query<PageQuery>,
) -> Result<(HeaderMap, Envelope<PageV2>), ApiError> {
    let (headers, page) = page::<ProductV2>(&backbone, &plan, &caller.subject, "v2", query).await?;
    Ok((headers, plan.envelope(page)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_v2_price_is_a_decimal_string() {
        let money = |amount_minor| Money { amount_minor, currency: "EUR".to_owned() };
        assert_eq!(PriceV2::from(&money(1999)).amount, "19.99");
        assert_eq!(PriceV2::from(&money(5)).amount, "0.05");
        assert_eq!(PriceV2::from(&money(120_000)).amount, "1200.00");
    }
}
