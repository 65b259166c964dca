//! The domain services: routes, provider-side response types (with JSON
//! Schemas) and handlers over the seed. `badData` faults corrupt each
//! service's answer in its own way (documented on each handler).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json};
use schemars::{JsonSchema, Schema, schema_for};
use serde::{Deserialize, Serialize};

use crate::faults::error_body;
use crate::seed::{Money, SeedProduct};
use crate::{MockState, Router, Service};

/// Who a verified service token acts for (set by the token check): its
/// subject and roles.
#[derive(Debug, Clone)]
pub(crate) struct Subject {
    pub(crate) sub: String,
    pub(crate) roles: Vec<String>,
}

/// Staff roles that may read any user's data (the back office).
const STAFF_ROLES: &[&str] = &["admin", "support"];

/// A `403` unless the token's subject is `user` or staff: u-1's cart token
/// must not read `/carts/u-2`. (No subject: the route is not behind the
/// token check, as in a unit test of the router.)
pub(crate) fn refuse_unless_owner(caller: Option<Extension<Subject>>, user: &str) -> Option<Response> {
    let Extension(caller) = caller?;
    if caller.sub == user || caller.roles.iter().any(|role| STAFF_ROLES.contains(&role.as_str())) {
        return None;
    }
    tracing::info!(subject = %caller.sub, %user, "refused: not the owner");
    Some(error_body(StatusCode::FORBIDDEN, "this token's subject may not access another user's data"))
}

/// The service routes of `service` (without the admin routes).
pub(crate) fn routes(service: Service) -> Router {
    match service {
        Service::Identity => crate::identity::routes(),
        Service::User => Router::new()
            .route("/users/{id}", get(user))
            .route("/users", get(search_users))
            .route("/users/{id}/lock", axum::routing::post(lock_user))
            .route("/users/{id}/unlock", axum::routing::post(unlock_user)),
        Service::Catalog => Router::new()
            .route("/products/{id}", get(product))
            .route("/products/batch", get(products_batch))
            .route("/products/page", get(products_page))
            .route("/products", get(products_in_category))
            .route("/categories", get(categories)),
        Service::Pricing => {
            Router::new().route("/prices/{id}", get(price)).route("/prices", get(prices_batch))
        }
        Service::Inventory => {
            Router::new().route("/stock/{id}", get(stock)).route("/stock", get(stock_batch))
        }
        Service::Cart => Router::new()
            .route("/carts/{user}", get(cart))
            .route("/carts/{user}/items", axum::routing::post(add_item))
            .route("/carts/{user}/items/{product}", axum::routing::patch(set_quantity).delete(remove_item)),
        Service::Recommendations => Router::new().route("/recommendations", get(recommendations)),
        Service::Promotions => Router::new().route("/promotions", get(promotions)),
        Service::Shipping => Router::new().route("/estimates", get(estimate)),
        Service::Reviews => Router::new()
            .route("/reviews/{id}/summary", get(reviews))
            .route("/reviews/{id}", get(review_list)),
        Service::Orders => Router::new()
            .route("/orders", get(crate::orders::list).post(crate::orders::place))
            .route("/orders/{id}", get(crate::orders::get_one)),
    }
}

/// The JSON Schema of every response of `service`, by route.
pub(crate) fn schemas(service: Service) -> BTreeMap<&'static str, Schema> {
    let mut schemas = BTreeMap::new();
    match service {
        Service::Identity => {}
        Service::User => {
            schemas.insert("GET /users/{id}", schema_for!(UserBody));
            schemas.insert("GET /users", schema_for!(UserPageBody));
            schemas.insert("POST /users/{id}/lock", schema_for!(LockBody));
            schemas.insert("POST /users/{id}/unlock", schema_for!(LockBody));
        }
        Service::Catalog => {
            schemas.insert("GET /products/{id}", schema_for!(ProductBody));
            schemas.insert("GET /products", schema_for!(ProductListBody));
            schemas.insert("GET /categories", schema_for!(CategoriesBody));
            schemas.insert("GET /products/batch", schema_for!(ProductBatchBody));
            schemas.insert("GET /products/page", schema_for!(ProductPageBody));
        }
        Service::Pricing => {
            schemas.insert("GET /prices/{id}", schema_for!(PriceBody));
            schemas.insert("GET /prices", schema_for!(PriceBatchBody));
        }
        Service::Inventory => {
            schemas.insert("GET /stock/{id}", schema_for!(StockBody));
            schemas.insert("GET /stock", schema_for!(StockBatchBody));
        }
        Service::Cart => {
            schemas.insert("GET /carts/{user}", schema_for!(CartBody));
            schemas.insert("POST /carts/{user}/items", schema_for!(CartBody));
            schemas.insert("PATCH /carts/{user}/items/{product}", schema_for!(CartBody));
            schemas.insert("DELETE /carts/{user}/items/{product}", schema_for!(CartBody));
        }
        Service::Recommendations => {
            drop(schemas.insert("GET /recommendations", schema_for!(RecommendationsBody)))
        }
        Service::Promotions => drop(schemas.insert("GET /promotions", schema_for!(PromotionsBody))),
        Service::Shipping => drop(schemas.insert("GET /estimates", schema_for!(EstimateBody))),
        Service::Reviews => {
            schemas.insert("GET /reviews/{id}/summary", schema_for!(ReviewsBody));
            schemas.insert("GET /reviews/{id}", schema_for!(ReviewListBody));
        }
        Service::Orders => {
            schemas.insert("GET /orders", schema_for!(crate::orders::OrdersBody));
            schemas.insert("GET /orders/{id}", schema_for!(crate::orders::OrderBody));
            schemas.insert("POST /orders", schema_for!(crate::orders::OrderBody));
        }
    }
    schemas
}

fn not_found(what: &str) -> Response {
    error_body(StatusCode::NOT_FOUND, &format!("{what} not found"))
}

/// `GET /users/{id}`.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserBody {
    id: String,
    display_name: String,
    email: String,
    tier: String,
    locale: String,
    country: String,
    segment: String,
    /// The market the customer belongs to (`uk`, `us`, `eu`): the tenant
    /// back-office staff are scoped to.
    market: String,
}

/// The market (back-office tenant) of a customer in `country`.
pub fn market_of(country: &str) -> &'static str {
    match country {
        "GB" => "uk",
        "US" => "us",
        _ => "eu",
    }
}

/// A `403` unless the token's subject has the `admin` role (account
/// actions are admins' alone).
fn refuse_unless_admin(caller: Option<Extension<Subject>>) -> Option<Response> {
    let Extension(caller) = caller?;
    if caller.roles.iter().any(|role| role == "admin") {
        return None;
    }
    Some(error_body(StatusCode::FORBIDDEN, "only admins may lock or unlock accounts"))
}

/// Locked accounts: user id → (reason, by whom). In memory.
#[derive(Debug, Clone, Default)]
pub struct Locks(Arc<Mutex<HashMap<String, (String, String)>>>);

impl Locks {
    /// Every account unlocked (a Pact provider state's teardown).
    pub fn reset(&self) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }
}

/// `GET /users?query=..&offset=..&limit=..` (staff only): users whose id,
/// name or e-mail contains `query` (any case), by id, a page at a time.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserPageBody {
    items: Vec<UserBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_offset: Option<usize>,
}

/// Query of `GET /users`.
#[derive(Debug, Deserialize)]
pub(crate) struct UserSearchQuery {
    query: Option<String>,
    offset: Option<usize>,
    limit: Option<usize>,
}

fn user_body(user: &crate::seed::SeedUser) -> UserBody {
    UserBody {
        id: user.id.clone(),
        display_name: user.display_name.to_owned(),
        email: user.email.clone(),
        tier: user.tier.to_owned(),
        locale: user.locale.to_owned(),
        country: user.country.to_owned(),
        segment: user.segment.to_owned(),
        market: market_of(user.country).to_owned(),
    }
}

async fn search_users(
    State(state): State<MockState>,
    caller: Option<Extension<Subject>>,
    Query(query): Query<UserSearchQuery>,
) -> Response {
    if let Some(Extension(subject)) = &caller
        && !subject.roles.iter().any(|role| STAFF_ROLES.contains(&role.as_str()))
    {
        return error_body(StatusCode::FORBIDDEN, "only staff may search users");
    }
    let needle = query.query.unwrap_or_default().to_lowercase();
    let matching: Vec<&crate::seed::SeedUser> = state
        .seed
        .users
        .iter()
        .filter(|u| {
            needle.is_empty()
                || u.id.contains(&needle)
                || u.display_name.to_lowercase().contains(&needle)
                || u.email.to_lowercase().contains(&needle)
        })
        .collect();
    let (offset, limit) = (query.offset.unwrap_or(0), query.limit.unwrap_or(20).clamp(1, 100));
    let items: Vec<UserBody> = matching.iter().skip(offset).take(limit).map(|u| user_body(u)).collect();
    let next_offset = (offset + items.len() < matching.len()).then_some(offset + items.len());
    Json(UserPageBody { items, next_offset }).into_response()
}

/// `POST /users/{id}/lock` and `/unlock` (`{"reason"}`, admins only): an
/// account's lock state, set idempotently (locking a locked account
/// changes nothing and answers its state).
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LockBody {
    id: String,
    locked: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    locked_by: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LockRequest {
    reason: String,
}

async fn lock_user(
    state: State<MockState>,
    caller: Option<Extension<Subject>>,
    id: Path<String>,
    body: axum::body::Bytes,
) -> Response {
    set_lock(state, caller, id, body, true).await
}

async fn unlock_user(
    state: State<MockState>,
    caller: Option<Extension<Subject>>,
    id: Path<String>,
    body: axum::body::Bytes,
) -> Response {
    set_lock(state, caller, id, body, false).await
}

async fn set_lock(
    State(state): State<MockState>,
    caller: Option<Extension<Subject>>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
    lock: bool,
) -> Response {
    let actor = caller.as_ref().map(|Extension(s)| s.sub.clone()).unwrap_or_default();
    if let Some(refused) = refuse_unless_admin(caller) {
        return refused;
    }
    let Ok(request) = serde_json::from_slice::<LockRequest>(&body) else {
        return error_body(StatusCode::BAD_REQUEST, "expected {reason}");
    };
    if state.seed.user(&id).is_none() {
        return not_found("user");
    }
    let mut locks = state.locks.0.lock().unwrap_or_else(PoisonError::into_inner);
    if lock {
        locks.entry(id.clone()).or_insert_with(|| (request.reason, actor));
    } else {
        locks.remove(&id);
    }
    let held = locks.get(&id).cloned();
    Json(LockBody {
        id,
        locked: held.is_some(),
        reason: held.as_ref().map(|(reason, _)| reason.clone()),
        locked_by: held.map(|(_, by)| by),
    })
    .into_response()
}

/// Bad data: an empty display name.
async fn user(
    State(state): State<MockState>,
    caller: Option<Extension<Subject>>,
    Path(id): Path<String>,
) -> Response {
    if let Some(refused) = refuse_unless_owner(caller, &id) {
        return refused;
    }
    let Some(user) = state.seed.user(&id) else { return not_found("user") };
    let bad = state.control.faults.bad_data();
    Json(UserBody {
        id: user.id.clone(),
        display_name: if bad { String::new() } else { user.display_name.to_owned() },
        email: user.email.clone(),
        tier: user.tier.to_owned(),
        locale: user.locale.to_owned(),
        country: user.country.to_owned(),
        segment: user.segment.to_owned(),
        market: market_of(user.country).to_owned(),
    })
    .into_response()
}

/// `GET /products/{id}`.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductBody {
    id: String,
    name: String,
    brand: String,
    category: String,
    description: String,
    images: Vec<String>,
    tags: Vec<String>,
}

fn images(product: &SeedProduct, count: usize) -> Vec<String> {
    (1..=count).map(|n| format!("https://img.example.com/{}/{n}.jpg", product.id)).collect()
}

/// Bad data: an empty product name.
async fn product(State(state): State<MockState>, Path(id): Path<String>) -> Response {
    let Some(product) = state.seed.product(&id) else { return not_found("product") };
    Json(product_body(product, state.control.faults.bad_data())).into_response()
}

fn product_body(product: &SeedProduct, bad: bool) -> ProductBody {
    ProductBody {
        id: product.id.clone(),
        name: if bad { String::new() } else { product.name.clone() },
        brand: product.brand.clone(),
        category: product.category.to_owned(),
        description: format!(
            "The {} by {}: built for every day, tested in the worst weather.",
            product.name, product.brand
        ),
        images: images(product, 4),
        tags: vec![product.category.to_owned(), product.brand.to_lowercase()],
    }
}

/// `GET /categories`.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CategoriesBody {
    categories: Vec<CategoryBody>,
}

/// One category.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CategoryBody {
    id: String,
    name: String,
    product_count: usize,
}

/// Every category, in catalog order. Bad data: empty names.
async fn categories(State(state): State<MockState>) -> Response {
    let bad = state.control.faults.bad_data();
    let categories = crate::seed::CATEGORIES
        .iter()
        .map(|id| CategoryBody {
            id: (*id).to_owned(),
            name: if bad { String::new() } else { format!("{}{}", id[..1].to_uppercase(), &id[1..]) },
            product_count: state.seed.products.iter().filter(|p| p.category == *id).count(),
        })
        .collect();
    Json(CategoriesBody { categories }).into_response()
}

/// `GET /products?category=..&limit=..`.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductListBody {
    category: String,
    items: Vec<ProductBody>,
}

/// Query of `GET /products`.
#[derive(Debug, Deserialize)]
pub(crate) struct ProductListQuery {
    category: Option<String>,
    limit: Option<usize>,
}

/// The products of a category, in catalog order, at most `limit` (default
/// 20, at most 50); an unknown category is 404. Bad data: empty names.
async fn products_in_category(
    State(state): State<MockState>,
    Query(query): Query<ProductListQuery>,
) -> Response {
    let Some(category) = query.category.filter(|c| crate::seed::CATEGORIES.contains(&c.as_str())) else {
        return not_found("category");
    };
    let bad = state.control.faults.bad_data();
    let items = state
        .seed
        .products
        .iter()
        .filter(|p| p.category == category)
        .take(query.limit.unwrap_or(20).min(50))
        .map(|p| product_body(p, bad))
        .collect();
    Json(ProductListBody { category, items }).into_response()
}

/// `GET /prices/{id}`.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PriceBody {
    product_id: String,
    price: Money,
    #[serde(skip_serializing_if = "Option::is_none")]
    list_price: Option<Money>,
}

/// Bad data: a negative price.
async fn price(State(state): State<MockState>, Path(id): Path<String>) -> Response {
    let Some(product) = state.seed.product(&id) else { return not_found("price") };
    let mut price = product.price.clone();
    if state.control.faults.bad_data() {
        price.amount_minor = -price.amount_minor;
    }
    Json(PriceBody { product_id: product.id.clone(), price, list_price: product.list_price.clone() })
        .into_response()
}

/// Query of the batch reads: `ids=p-1,p-2,...` (at most [`MAX_BATCH`]).
#[derive(Debug, Deserialize)]
pub(crate) struct BatchQuery {
    ids: String,
}

/// Ids per batch read at most.
pub const MAX_BATCH: usize = 100;

/// The ids of a batch read; `None` for none, or more than [`MAX_BATCH`].
fn batch_ids(query: &BatchQuery) -> Option<Vec<&str>> {
    let ids: Vec<&str> = query.ids.split(',').filter(|id| !id.is_empty()).collect();
    (!ids.is_empty() && ids.len() <= MAX_BATCH).then_some(ids)
}

fn bad_batch() -> Response {
    error_body(StatusCode::BAD_REQUEST, "ids: 1 to 100 comma-separated ids")
}

/// `GET /products/batch?ids=..`: the products found, in the order asked;
/// unknown ids are left out (the caller lists them as not found).
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductBatchBody {
    items: Vec<ProductBody>,
}

/// Bad data: empty names.
async fn products_batch(State(state): State<MockState>, Query(query): Query<BatchQuery>) -> Response {
    let Some(ids) = batch_ids(&query) else { return bad_batch() };
    let bad = state.control.faults.bad_data();
    let items = ids.iter().filter_map(|id| state.seed.product(id)).map(|p| product_body(p, bad)).collect();
    Json(ProductBatchBody { items }).into_response()
}

/// `GET /products/page?offset=..&limit=..`: every product in catalog order
/// (a stable order: by id), a page at a time; `nextOffset` while more remain.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductPageBody {
    items: Vec<ProductBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_offset: Option<usize>,
}

/// Query of `GET /products/page`.
#[derive(Debug, Deserialize)]
pub(crate) struct PageQuery {
    offset: Option<usize>,
    limit: Option<usize>,
}

/// At most 100 a page (default 20). Bad data: empty names.
async fn products_page(State(state): State<MockState>, Query(query): Query<PageQuery>) -> Response {
    let (offset, limit) = (query.offset.unwrap_or(0), query.limit.unwrap_or(20).clamp(1, MAX_BATCH));
    let bad = state.control.faults.bad_data();
    let all = &state.seed.products;
    let items: Vec<ProductBody> = all.iter().skip(offset).take(limit).map(|p| product_body(p, bad)).collect();
    let next_offset = (offset + items.len() < all.len()).then_some(offset + items.len());
    Json(ProductPageBody { items, next_offset }).into_response()
}

/// `GET /prices?ids=..`: the prices found; unknown ids left out.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PriceBatchBody {
    prices: Vec<PriceBody>,
}

/// Bad data: negative prices.
async fn prices_batch(State(state): State<MockState>, Query(query): Query<BatchQuery>) -> Response {
    let Some(ids) = batch_ids(&query) else { return bad_batch() };
    let bad = state.control.faults.bad_data();
    let prices = ids
        .iter()
        .filter_map(|id| state.seed.product(id))
        .map(|product| {
            let mut price = product.price.clone();
            if bad {
                price.amount_minor = -price.amount_minor;
            }
            PriceBody { product_id: product.id.clone(), price, list_price: product.list_price.clone() }
        })
        .collect();
    Json(PriceBatchBody { prices }).into_response()
}

/// `GET /stock?ids=..`: the stock found; unknown ids left out.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StockBatchBody {
    stock: Vec<StockBody>,
}

/// Bad data: negative stock.
async fn stock_batch(State(state): State<MockState>, Query(query): Query<BatchQuery>) -> Response {
    let Some(ids) = batch_ids(&query) else { return bad_batch() };
    let bad = state.control.faults.bad_data();
    let stock = ids
        .iter()
        .filter_map(|id| state.seed.product(id))
        .map(|product| StockBody {
            product_id: product.id.clone(),
            available: if bad { -5 } else { product.stock },
            warehouse: "fra-1".to_owned(),
        })
        .collect();
    Json(StockBatchBody { stock }).into_response()
}

/// `GET /stock/{id}`.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StockBody {
    product_id: String,
    available: i64,
    warehouse: String,
}

/// Bad data: negative stock.
async fn stock(State(state): State<MockState>, Path(id): Path<String>) -> Response {
    let Some(product) = state.seed.product(&id) else { return not_found("stock") };
    let available = if state.control.faults.bad_data() { -5 } else { product.stock };
    Json(StockBody { product_id: product.id.clone(), available, warehouse: "fra-1".to_owned() })
        .into_response()
}

/// `GET /carts/{user}`.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CartBody {
    user_id: String,
    items: Vec<CartItemBody>,
    total: Money,
}

/// One cart line.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CartItemBody {
    product_id: String,
    name: String,
    quantity: u32,
    unit_price: Money,
}

/// A cart's lines as the cart service keeps them: `(productId, quantity)`.
type Lines = Vec<(String, u32)>;

/// Every cart the mock has changed, by user; a user's first write starts
/// from the seeded cart. In memory: a restart of the mock restores the seed
/// (carts are not what the durability tests are about; orders are).
#[derive(Debug, Clone, Default)]
pub struct Carts(Arc<Mutex<HashMap<String, Lines>>>);

impl Carts {
    fn lines(&self, seed: &crate::seed::Seed, user: &crate::seed::SeedUser) -> Lines {
        let carts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        carts.get(&user.id).cloned().unwrap_or_else(|| {
            user.cart
                .iter()
                .map(|(index, quantity)| (seed.nth_product(*index).id.clone(), *quantity))
                .collect()
        })
    }

    fn set(&self, user: &str, lines: Lines) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).insert(user.to_owned(), lines);
    }

    /// Back to the seed (a Pact provider state's teardown).
    pub fn reset(&self) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }
}

/// The cart of `user` with `lines`, priced in the user's market currency
/// (the seed's price list amounts, relabelled). Bad data: a negative total.
fn cart_body(state: &MockState, user: &crate::seed::SeedUser, lines: &Lines) -> CartBody {
    let items: Vec<CartItemBody> = lines
        .iter()
        .filter_map(|(id, quantity)| {
            let product = state.seed.product(id)?;
            Some(CartItemBody {
                product_id: product.id.clone(),
                name: product.name.clone(),
                quantity: *quantity,
                unit_price: Money {
                    amount_minor: product.price.amount_minor,
                    currency: user.currency.to_owned(),
                },
            })
        })
        .collect();
    let mut total: i64 = items.iter().map(|i| i.unit_price.amount_minor * i64::from(i.quantity)).sum();
    if state.control.faults.bad_data() {
        total = -total - 1;
    }
    CartBody {
        user_id: user.id.clone(),
        items,
        total: Money { amount_minor: total, currency: user.currency.to_owned() },
    }
}

/// `GET /carts/{user}`.
async fn cart(
    State(state): State<MockState>,
    caller: Option<Extension<Subject>>,
    Path(user_id): Path<String>,
) -> Response {
    if let Some(refused) = refuse_unless_owner(caller, &user_id) {
        return refused;
    }
    let Some(user) = state.seed.user(&user_id) else { return not_found("cart") };
    Json(cart_body(&state, user, &state.carts.lines(state.seed, user))).into_response()
}

/// Body of `POST /carts/{user}/items`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AddItem {
    product_id: String,
    quantity: u32,
}

/// Body of `PATCH /carts/{user}/items/{productId}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SetQuantity {
    quantity: u32,
}

/// Cart writes by `Idempotency-Key` (scoped by user): what the request
/// was and the answer given, so a repeat gets the same answer. Bounded:
/// past [`Writes::CAPACITY`] keys the oldest half is forgotten (a mock,
/// not a store).
#[derive(Debug, Clone, Default)]
pub struct Writes(Arc<Mutex<WriteLog>>);

#[derive(Debug, Default)]
struct WriteLog {
    answers: HashMap<String, (Vec<u8>, Vec<u8>)>,
    order: VecDeque<String>,
}

impl Writes {
    /// Keys remembered at most.
    pub const CAPACITY: usize = 10_000;

    /// Forgets every key (a Pact provider state's teardown: interactions
    /// may use the same example key for different writes).
    pub fn reset(&self) {
        let mut log = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        log.answers.clear();
        log.order.clear();
    }

    fn lookup(&self, key: &str) -> Option<(Vec<u8>, Vec<u8>)> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).answers.get(key).cloned()
    }

    fn remember(&self, key: String, request: Vec<u8>, answer: Vec<u8>) {
        let mut log = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if log.order.len() >= Self::CAPACITY {
            for _ in 0..Self::CAPACITY / 2 {
                if let Some(old) = log.order.pop_front() {
                    log.answers.remove(&old);
                }
            }
        }
        log.order.push_back(key.clone());
        log.answers.insert(key, (request, answer));
    }
}

/// One cart write: needs an `Idempotency-Key` (`400` without); a repeat of
/// the same key and request (method, path and body) is answered with the
/// first answer and `idempotency-replayed: true`, the same key for another
/// request is `422`. `change` edits the lines or refuses; a success answers
/// the whole cart (`201` for an added line, `200` otherwise).
async fn cart_write(
    state: MockState,
    caller: Option<Extension<Subject>>,
    user_id: &str,
    headers: &axum::http::HeaderMap,
    request: Vec<u8>,
    created: StatusCode,
    change: impl FnOnce(&mut Lines) -> Result<(), (StatusCode, &'static str)>,
) -> Response {
    if let Some(refused) = refuse_unless_owner(caller, user_id) {
        return refused;
    }
    let Some(key) = headers.get("idempotency-key").and_then(|v| v.to_str().ok()) else {
        return error_body(StatusCode::BAD_REQUEST, "cart writes need an Idempotency-Key");
    };
    let json = [(axum::http::header::CONTENT_TYPE, "application/json")];
    let scoped = format!("{user_id}:{key}");
    // One lock from lookup to remember would serialize every cart; a mock
    // can afford the race (the BFF in front holds the key while in flight).
    if let Some((earlier, answer)) = state.writes.lookup(&scoped) {
        if earlier != request {
            return error_body(
                StatusCode::UNPROCESSABLE_ENTITY,
                "this Idempotency-Key was used for a different request",
            );
        }
        let mut replay = (created, json, answer).into_response();
        replay.headers_mut().insert("idempotency-replayed", axum::http::HeaderValue::from_static("true"));
        return replay;
    }
    let Some(user) = state.seed.user(user_id) else { return not_found("user") };
    let mut lines = state.carts.lines(state.seed, user);
    if let Err((status, why)) = change(&mut lines) {
        return error_body(status, why);
    }
    let cart = cart_body(&state, user, &lines);
    let Ok(answer) = serde_json::to_vec(&cart) else {
        return error_body(StatusCode::INTERNAL_SERVER_ERROR, "cannot serialize the cart");
    };
    state.carts.set(user_id, lines);
    state.writes.remember(scoped, request, answer.clone());
    (created, json, answer).into_response()
}

/// The fingerprint of a write: method, path and body.
fn fingerprint(method: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!("{method} {path}\n").into_bytes();
    request.extend_from_slice(body);
    request
}

/// `POST /carts/{user}/items`: adds the product (or adds to its line's
/// quantity) and answers the cart (`201`). An unknown product is `404`.
async fn add_item(
    State(state): State<MockState>,
    caller: Option<Extension<Subject>>,
    Path(user_id): Path<String>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let parsed = serde_json::from_slice::<AddItem>(&body);
    let request = fingerprint("POST", &user_id, &body);
    let seed = state.seed;
    cart_write(state, caller, &user_id, &headers, request, StatusCode::CREATED, |lines| {
        let Ok(item) = parsed else {
            return Err((StatusCode::BAD_REQUEST, "expected {productId, quantity}"));
        };
        if seed.product(&item.product_id).is_none() {
            return Err((StatusCode::NOT_FOUND, "product not found"));
        }
        if !(1..=99).contains(&item.quantity) {
            return Err((StatusCode::BAD_REQUEST, "quantity must be 1 to 99"));
        }
        match lines.iter_mut().find(|(id, _)| *id == item.product_id) {
            Some((_, quantity)) => *quantity = (*quantity + item.quantity).min(99),
            None => lines.push((item.product_id, item.quantity)),
        }
        Ok(())
    })
    .await
}

/// `PATCH /carts/{user}/items/{productId}` (`{"quantity": n}`): sets a
/// line's quantity; a product not in the cart is `404`.
async fn set_quantity(
    State(state): State<MockState>,
    caller: Option<Extension<Subject>>,
    Path((user_id, product_id)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let parsed = serde_json::from_slice::<SetQuantity>(&body);
    let request = fingerprint("PATCH", &format!("{user_id}/{product_id}"), &body);
    cart_write(state, caller, &user_id, &headers, request, StatusCode::OK, |lines| {
        let Ok(change) = parsed else {
            return Err((StatusCode::BAD_REQUEST, "expected {quantity}"));
        };
        if !(1..=99).contains(&change.quantity) {
            return Err((StatusCode::BAD_REQUEST, "quantity must be 1 to 99"));
        }
        match lines.iter_mut().find(|(id, _)| *id == product_id) {
            Some((_, quantity)) => *quantity = change.quantity,
            None => return Err((StatusCode::NOT_FOUND, "cart line not found")),
        }
        Ok(())
    })
    .await
}

/// `DELETE /carts/{user}/items/{productId}`: removes a line; a product not
/// in the cart is `404`.
async fn remove_item(
    State(state): State<MockState>,
    caller: Option<Extension<Subject>>,
    Path((user_id, product_id)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
) -> Response {
    let request = fingerprint("DELETE", &format!("{user_id}/{product_id}"), &[]);
    cart_write(state, caller, &user_id, &headers, request, StatusCode::OK, |lines| {
        let before = lines.len();
        lines.retain(|(id, _)| *id != product_id);
        if lines.len() == before { Err((StatusCode::NOT_FOUND, "cart line not found")) } else { Ok(()) }
    })
    .await
}

/// Query of `GET /recommendations`.
#[derive(Debug, Deserialize)]
struct RecommendationsQuery {
    user: Option<String>,
    segment: Option<String>,
    context: Option<String>,
    limit: Option<usize>,
}

/// `GET /recommendations`.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecommendationsBody {
    context: String,
    items: Vec<RecommendationBody>,
}

/// One suggestion.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecommendationBody {
    product_id: String,
    name: String,
    image_url: String,
    price: Money,
    score: f64,
}

/// Deterministic per (user, context). Bad data: negative prices.
async fn recommendations(
    State(state): State<MockState>,
    Query(query): Query<RecommendationsQuery>,
) -> Response {
    let context = query.context.unwrap_or_else(|| "home".to_owned());
    let limit = query.limit.unwrap_or(8).clamp(1, 20);
    let who = query.user.as_deref().or(query.segment.as_deref()).unwrap_or("");
    let salt = who.len() * 7 + context.bytes().map(usize::from).sum::<usize>();
    let bad = state.control.faults.bad_data();
    let items = (0..limit)
        .map(|k| {
            let product = state.seed.nth_product(salt + k * 5 + 1);
            let mut price = product.price.clone();
            if bad {
                price.amount_minor = -price.amount_minor;
            }
            RecommendationBody {
                product_id: product.id.clone(),
                name: product.name.clone(),
                image_url: images(product, 1).remove(0),
                price,
                score: 1.0 - k as f64 / 20.0,
            }
        })
        .collect();
    Json(RecommendationsBody { context, items }).into_response()
}

/// Query naming a user.
#[derive(Debug, Deserialize)]
struct UserQuery {
    user: String,
}

/// Query naming a user or a segment.
#[derive(Debug, Deserialize)]
struct AudienceQuery {
    user: Option<String>,
    segment: Option<String>,
}

/// `GET /promotions`.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromotionsBody {
    promotions: Vec<PromotionBody>,
}

/// One promotion.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromotionBody {
    id: String,
    title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    badge: Option<String>,
    segment: String,
    ends_at: String,
}

/// The promotions of a segment (given, or the user's) plus those for
/// everyone. Bad data: empty titles.
async fn promotions(State(state): State<MockState>, Query(query): Query<AudienceQuery>) -> Response {
    let segment = match (&query.segment, &query.user) {
        (Some(segment), _) => segment.clone(),
        (None, Some(user)) => match state.seed.user(user) {
            Some(user) => user.segment.to_owned(),
            None => return not_found("user"),
        },
        (None, None) => return error_body(StatusCode::BAD_REQUEST, "user or segment is required"),
    };
    let bad = state.control.faults.bad_data();
    let promotions = state
        .seed
        .promotions
        .iter()
        .filter(|p| p.segment == "all" || p.segment == segment)
        .map(|p| PromotionBody {
            id: p.id.to_owned(),
            title: if bad { String::new() } else { p.title.to_owned() },
            badge: p.badge.map(str::to_owned),
            segment: p.segment.to_owned(),
            ends_at: "2026-12-31T23:59:59Z".to_owned(),
        })
        .collect();
    Json(PromotionsBody { promotions }).into_response()
}

/// `GET /estimates`.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EstimateBody {
    country: String,
    carrier: String,
    min_days: u32,
    max_days: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    free_shipping_over: Option<Money>,
}

/// Delivery estimate to the user's country. Bad data: `minDays > maxDays`.
async fn estimate(State(state): State<MockState>, Query(query): Query<UserQuery>) -> Response {
    let Some(user) = state.seed.user(&query.user) else { return not_found("user") };
    let (carrier, min_days, max_days, free_over) = match user.country {
        "DE" => ("DHL", 1, 3, Some(5_000)),
        "GB" => ("Royal Mail", 2, 4, Some(4_000)),
        "US" => ("UPS", 3, 5, None),
        _ => ("PostNord", 2, 5, Some(6_000)),
    };
    let (min_days, max_days) =
        if state.control.faults.bad_data() { (max_days + 3, min_days) } else { (min_days, max_days) };
    Json(EstimateBody {
        country: user.country.to_owned(),
        carrier: carrier.to_owned(),
        min_days,
        max_days,
        free_shipping_over: free_over
            .map(|amount_minor| Money { amount_minor, currency: user.currency.to_owned() }),
    })
    .into_response()
}

/// `GET /reviews/{id}/summary`.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReviewsBody {
    product_id: String,
    average_rating: f64,
    count: u32,
}

/// `GET /reviews/{id}?limit=..`: the latest reviews of a product.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReviewListBody {
    product_id: String,
    reviews: Vec<ReviewBody>,
}

/// One review.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReviewBody {
    id: String,
    rating: u8,
    title: String,
    author: String,
    created_at: String,
}

/// Query of `GET /reviews/{id}`.
#[derive(Debug, Deserialize)]
pub(crate) struct ReviewListQuery {
    limit: Option<usize>,
}

/// Deterministic: up to `min(count, limit)` reviews (limit default 5, at
/// most 20), newest first. Bad data: a rating of 9.
async fn review_list(
    State(state): State<MockState>,
    Path(id): Path<String>,
    Query(query): Query<ReviewListQuery>,
) -> Response {
    let Some(product) = state.seed.product(&id) else { return not_found("product") };
    const TITLES: [&str; 5] =
        ["Does the job", "Better than expected", "Solid", "Would buy again", "A bit pricey"];
    const AUTHORS: [&str; 5] = ["Ada", "Grace", "Alan", "Katherine", "Linus"];
    let bad = state.control.faults.bad_data();
    let count = (product.review_count as usize).min(query.limit.unwrap_or(5).clamp(1, 20));
    let reviews = (0..count)
        .map(|k| ReviewBody {
            id: format!("r-{}-{}", product.id, k + 1),
            rating: if bad { 9 } else { (5 - (k % 3)) as u8 },
            title: TITLES[k % TITLES.len()].to_owned(),
            author: AUTHORS[(k + product.review_count as usize) % AUTHORS.len()].to_owned(),
            created_at: format!("2026-{:02}-{:02}T12:00:00Z", 11 - (k / 28).min(10), 28 - (k % 28)),
        })
        .collect();
    Json(ReviewListBody { product_id: product.id.clone(), reviews }).into_response()
}

/// Bad data: a rating of 7.5 out of 5.
async fn reviews(State(state): State<MockState>, Path(id): Path<String>) -> Response {
    let Some(product) = state.seed.product(&id) else { return not_found("product") };
    let average_rating = if state.control.faults.bad_data() { 7.5 } else { product.average_rating };
    Json(ReviewsBody { product_id: product.id.clone(), average_rating, count: product.review_count })
        .into_response()
}
