//! The orders service: a user's history (derived from the seed) and the
//! orders placed since, which it **keeps**: each placed order is one JSON
//! line appended to `orders.jsonl` in the mock's data directory and synced
//! before the answer leaves, so an order and its `Idempotency-Key` survive
//! a restart of the mock (`services-mock --data-dir DIR`; without a data
//! directory, in memory only).
//!
//! Routes:
//!
//! * `GET /orders?user=u-2[&limit=N][&cursor=C]`: newest first, a page of
//!   at most `limit` (default and maximum 50); `nextCursor` while more remain.
//! * `GET /orders/{id}`: one order with its lines; another user's is `403`
//!   (the owner check every service does), an unknown id `404`.
//! * `POST /orders` (body `{"userId", "items": [{"productId", "quantity"}]}`,
//!   header `Idempotency-Key`): places an order (`201`). The key is
//!   enforced durably, per user: the same key and body again is answered
//!   with the first answer (and `idempotency-replayed: true`), the same key
//!   with another body is `422`. Concurrent requests with one key are
//!   serialized by the store's lock, so exactly one order is created.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Mutex, PoisonError};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::MockState;
use crate::faults::error_body;
use crate::seed::{Money, Seed, SeedUser};
use crate::services::{Subject, refuse_unless_owner};

/// The file, in the data directory, that holds placed orders.
pub const FILE_NAME: &str = "orders.jsonl";

/// Lines per order at most, and units per line at most.
const MAX_LINES: usize = 50;
const MAX_QUANTITY: u32 = 99;

/// `GET /orders`: a page of a user's orders, newest first.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrdersBody {
    user_id: String,
    orders: Vec<OrderSummaryBody>,
    /// Present while more orders remain: pass it as `cursor`.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

/// One order in a list.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderSummaryBody {
    id: String,
    placed_at: String,
    status: String,
    item_count: u32,
    total: Money,
}

/// `GET /orders/{id}` and `POST /orders`: one order with its lines.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderBody {
    id: String,
    user_id: String,
    placed_at: String,
    status: String,
    items: Vec<OrderLineBody>,
    total: Money,
}

/// One line of an order.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderLineBody {
    product_id: String,
    name: String,
    quantity: u32,
    unit_price: Money,
}

impl OrderBody {
    fn summary(&self) -> OrderSummaryBody {
        OrderSummaryBody {
            id: self.id.clone(),
            placed_at: self.placed_at.clone(),
            status: self.status.clone(),
            item_count: self.items.iter().map(|line| line.quantity).sum(),
            total: self.total.clone(),
        }
    }
}

/// One placed order as kept on disk: the order, and the key and request
/// body that created it (so a repeat can be recognised after a restart).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Placed {
    key: String,
    request: String,
    order: OrderBody,
}

#[derive(Debug, Default)]
struct Inner {
    placed: Vec<Placed>,
    /// `(user, key)` → index in `placed`.
    by_key: HashMap<(String, String), usize>,
    file: Option<File>,
}

/// The orders placed through the mock, durable when it has a data directory.
#[derive(Debug, Default)]
pub struct OrderStore {
    inner: Mutex<Inner>,
    path: Option<PathBuf>,
}

impl OrderStore {
    /// In memory only: gone when the mock stops.
    pub fn in_memory() -> Self {
        OrderStore::default()
    }

    /// Kept in `dir/orders.jsonl` (created if missing), loading what an
    /// earlier run placed. A torn last line (a crash mid-append) is skipped
    /// with a warning; the rest is kept.
    pub fn open(dir: &FsPath) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(FILE_NAME);
        let mut inner = Inner::default();
        if let Ok(file) = File::open(&path) {
            for (number, line) in BufReader::new(file).lines().enumerate() {
                let line = line?;
                match serde_json::from_str::<Placed>(&line) {
                    Ok(placed) => {
                        let key = (placed.order.user_id.clone(), placed.key.clone());
                        let index = inner.placed.len();
                        inner.by_key.insert(key, index);
                        inner.placed.push(placed);
                    }
                    Err(error) => tracing::warn!(path = %path.display(), line = number + 1, %error,
                        "skipping an unreadable order line"),
                }
            }
        }
        inner.file = Some(OpenOptions::new().create(true).append(true).open(&path)?);
        tracing::info!(path = %path.display(), orders = inner.placed.len(), "orders kept on disk");
        Ok(OrderStore { inner: Mutex::new(inner), path: Some(path) })
    }

    /// Where orders are kept, if anywhere.
    pub fn path(&self) -> Option<&FsPath> {
        self.path.as_deref()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Orders placed by `user`, oldest first.
    fn of(&self, user: &str) -> Vec<OrderBody> {
        self.lock().placed.iter().filter(|p| p.order.user_id == user).map(|p| p.order.clone()).collect()
    }

    fn find(&self, id: &str) -> Option<OrderBody> {
        self.lock().placed.iter().find(|p| p.order.id == id).map(|p| p.order.clone())
    }

    /// Places `order` under `key`, or answers what the key already decided.
    /// Under one lock from lookup to sync: a key can create one order only.
    fn place(
        &self,
        user: &str,
        key: &str,
        request: &str,
        build: impl FnOnce(u64) -> OrderBody,
    ) -> Result<Outcome, std::io::Error> {
        let mut inner = self.lock();
        if let Some(&index) = inner.by_key.get(&(user.to_owned(), key.to_owned())) {
            let earlier = &inner.placed[index];
            return Ok(if earlier.request == request {
                Outcome::Replayed(earlier.order.clone())
            } else {
                Outcome::KeyReused
            });
        }
        let order = build(inner.placed.len() as u64 + 1);
        let placed = Placed { key: key.to_owned(), request: request.to_owned(), order: order.clone() };
        if let Some(file) = inner.file.as_mut() {
            let mut line = serde_json::to_vec(&placed).map_err(std::io::Error::other)?;
            line.push(b'\n');
            file.write_all(&line)?;
            file.sync_data()?;
        }
        let index = inner.placed.len();
        inner.by_key.insert((user.to_owned(), key.to_owned()), index);
        inner.placed.push(placed);
        Ok(Outcome::Created(order))
    }
}

enum Outcome {
    Created(OrderBody),
    Replayed(OrderBody),
    KeyReused,
}

/// The seeded history of `user`: `order_count` orders, oldest first, with
/// ids `o-<user>-<k>` (unique across users).
fn seeded(seed: &Seed, user: &SeedUser, bad: bool) -> Vec<OrderBody> {
    let sign = if bad { -1 } else { 1 };
    (1..=seed.order_count(user))
        .map(|k| {
            let items: Vec<OrderLineBody> = (0..k % 3 + 1)
                .map(|line| {
                    let product = seed.nth_product(k * 11 + line * 5);
                    OrderLineBody {
                        product_id: product.id.clone(),
                        name: product.name.clone(),
                        quantity: 1,
                        unit_price: Money {
                            amount_minor: product.price.amount_minor,
                            currency: user.currency.to_owned(),
                        },
                    }
                })
                .collect();
            let total = items.iter().map(|line| line.unit_price.amount_minor).sum::<i64>() * sign;
            OrderBody {
                id: format!("o-{}-{k}", user.id),
                user_id: user.id.clone(),
                placed_at: format!("2026-{:02}-{:02}T10:00:00Z", (k % 12) + 1, (k * 3 % 28) + 1),
                status: if k == seed.order_count(user) { "shipped" } else { "delivered" }.to_owned(),
                items,
                total: Money { amount_minor: total, currency: user.currency.to_owned() },
            }
        })
        .collect()
}

/// Every order of `user`, newest first: placed ones, then the seeded history.
fn all_of(state: &MockState, user: &SeedUser) -> Vec<OrderBody> {
    let mut orders = seeded(state.seed, user, state.control.faults.bad_data());
    orders.extend(state.orders.of(&user.id));
    orders.reverse();
    orders
}

/// Query of `GET /orders`.
#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    user: String,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// `GET /orders`. The cursor is the offset, in decimal: a mock's, not a
/// design to copy (the BFFs never show it to a client as it is).
pub(crate) async fn list(
    State(state): State<MockState>,
    caller: Option<Extension<Subject>>,
    Query(query): Query<ListQuery>,
) -> Response {
    if let Some(refused) = refuse_unless_owner(caller, &query.user) {
        return refused;
    }
    let Some(user) = state.seed.user(&query.user) else { return not_found("user") };
    let limit = query.limit.unwrap_or(50).clamp(1, 50);
    let Ok(offset) = query.cursor.as_deref().map_or(Ok(0), str::parse::<usize>) else {
        return error_body(StatusCode::BAD_REQUEST, "cursor is not one this service gave");
    };
    let orders = all_of(&state, user);
    let page: Vec<OrderSummaryBody> =
        orders.iter().skip(offset).take(limit).map(OrderBody::summary).collect();
    let next_cursor = (offset + page.len() < orders.len()).then(|| (offset + page.len()).to_string());
    Json(OrdersBody { user_id: user.id.clone(), orders: page, next_cursor }).into_response()
}

/// `GET /orders/{id}`. The owner check comes after the lookup, as a real
/// service's would: `403` for another user's order, `404` for no order.
pub(crate) async fn get_one(
    State(state): State<MockState>,
    caller: Option<Extension<Subject>>,
    Path(id): Path<String>,
) -> Response {
    let order = state.orders.find(&id).or_else(|| {
        let user = id.strip_prefix("o-").and_then(|rest| rest.rsplit_once('-')).map(|(user, _)| user)?;
        let user = state.seed.user(user)?;
        all_of(&state, user).into_iter().find(|order| order.id == id)
    });
    let Some(order) = order else { return not_found("order") };
    if let Some(refused) = refuse_unless_owner(caller, &order.user_id) {
        return refused;
    }
    Json(order).into_response()
}

/// Body of `POST /orders`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PlaceOrder {
    user_id: String,
    items: Vec<PlaceLine>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PlaceLine {
    product_id: String,
    quantity: u32,
}

/// `POST /orders`.
pub(crate) async fn place(
    State(state): State<MockState>,
    caller: Option<Extension<Subject>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Some(key) = headers.get("idempotency-key").and_then(|v| v.to_str().ok()) else {
        return error_body(StatusCode::BAD_REQUEST, "placing an order needs an Idempotency-Key");
    };
    let Ok(request) = serde_json::from_slice::<PlaceOrder>(&body) else {
        return error_body(StatusCode::BAD_REQUEST, "expected {userId, items: [{productId, quantity}]}");
    };
    if let Some(refused) = refuse_unless_owner(caller, &request.user_id) {
        return refused;
    }
    let Some(user) = state.seed.user(&request.user_id) else { return not_found("user") };
    if request.items.is_empty() || request.items.len() > MAX_LINES {
        return error_body(StatusCode::BAD_REQUEST, "an order has 1 to 50 lines");
    }
    let mut lines = Vec::with_capacity(request.items.len());
    for line in &request.items {
        let Some(product) = state.seed.product(&line.product_id) else { return not_found("product") };
        if !(1..=MAX_QUANTITY).contains(&line.quantity) {
            return error_body(StatusCode::BAD_REQUEST, "a quantity is 1 to 99");
        }
        lines.push(OrderLineBody {
            product_id: product.id.clone(),
            name: product.name.clone(),
            quantity: line.quantity,
            unit_price: Money {
                amount_minor: product.price.amount_minor,
                currency: user.currency.to_owned(),
            },
        });
    }
    let request_text = String::from_utf8_lossy(&body).into_owned();
    let placed_at = now_rfc3339();
    let outcome = state.orders.place(&user.id, key, &request_text, |sequence| {
        let total = lines.iter().map(|l| l.unit_price.amount_minor * i64::from(l.quantity)).sum();
        OrderBody {
            id: format!("ord-{sequence:06}"),
            user_id: user.id.clone(),
            placed_at,
            status: "placed".to_owned(),
            items: lines,
            total: Money { amount_minor: total, currency: user.currency.to_owned() },
        }
    });
    match outcome {
        Ok(Outcome::Created(order)) => (StatusCode::CREATED, Json(order)).into_response(),
        Ok(Outcome::Replayed(order)) => {
            let mut response = (StatusCode::CREATED, Json(order)).into_response();
            response.headers_mut().insert("idempotency-replayed", HeaderValue::from_static("true"));
            response
        }
        Ok(Outcome::KeyReused) => error_body(
            StatusCode::UNPROCESSABLE_ENTITY,
            "this Idempotency-Key was used for a different order",
        ),
        Err(error) => {
            tracing::error!(%error, "cannot keep the order");
            let mut response = error_body(StatusCode::SERVICE_UNAVAILABLE, "the order could not be kept");
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
    }
}

fn not_found(what: &str) -> Response {
    error_body(StatusCode::NOT_FOUND, &format!("{what} not found"))
}

/// Now as RFC 3339 UTC, to the second (no date crate for one timestamp).
fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rest / 3600, rest % 3600 / 60, rest % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_places_one_order_and_survives_a_reopen() {
        let dir = std::env::temp_dir().join(format!("orders-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = OrderStore::open(&dir).expect("open");
        let build = |n| OrderBody {
            id: format!("ord-{n:06}"),
            user_id: "u-1".into(),
            placed_at: "2026-12-06T00:00:00Z".into(),
            status: "placed".into(),
            items: Vec::new(),
            total: Money { amount_minor: 1, currency: "GBP".into() },
        };
        assert!(matches!(store.place("u-1", "k1", "a", build), Ok(Outcome::Created(_))));
        assert!(matches!(store.place("u-1", "k1", "b", build), Ok(Outcome::KeyReused)));
        drop(store);
        let reopened = OrderStore::open(&dir).expect("reopen");
        assert!(
            matches!(reopened.place("u-1", "k1", "a", build), Ok(Outcome::Replayed(o)) if o.id == "ord-000001")
        );
        assert!(
            matches!(reopened.place("u-2", "k1", "a", build), Ok(Outcome::Created(o)) if o.id == "ord-000002")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn timestamps_are_rfc3339() {
        let now = now_rfc3339();
        assert_eq!(now.len(), 20, "{now}");
        assert!(now.starts_with("20") && now.ends_with('Z'));
    }
}
