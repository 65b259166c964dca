//! Pact provider states: `POST /__pact/provider-states` on every mock.
//!
//! The Pact verifier calls it before (`"action": "setup"`) and after
//! (`"teardown"`) each interaction that names a state (`"given"` in the
//! pact). The mocks serve a fixed seed, so a data state is **checked, not
//! created**: `product p-1 exists` answers `200` when the seed has `p-1` and
//! `400` naming the state otherwise. A pact that relies on data the mocks do
//! not have therefore fails verification with that message instead of with
//! a puzzling body mismatch. Teardown heals the mock (clears its faults), so
//! one interaction's state cannot leak into the next.
//!
//! Known states (ids are examples):
//!
//! * `product p-1 exists`, `product p-5 is on sale`, `product p-999 does not exist`
//! * `user u-1 exists`
//! * `user u-2 has 2 items in the cart` (cart lines), `user u-3 has an empty cart`
//! * `user u-2 has orders`, `order o-u-2-1 exists`, `order ord-999999 does not exist`

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::MockState;
use crate::faults::error_body;
use crate::seed::Seed;

/// The body the Pact verifier posts.
#[derive(Debug, Deserialize)]
pub struct StateChange {
    /// The state's name, e.g. `product p-1 exists`.
    pub state: String,
    /// `setup` or `teardown`.
    #[serde(default = "setup")]
    pub action: String,
}

fn setup() -> String {
    "setup".to_owned()
}

/// `POST /__pact/provider-states`.
pub async fn change(State(state): State<MockState>, body: axum::body::Bytes) -> Response {
    let Ok(change) = serde_json::from_slice::<StateChange>(&body) else {
        return error_body(StatusCode::BAD_REQUEST, "expected {\"state\": \"...\", \"action\": \"setup\"}");
    };
    if change.action == "teardown" {
        state.control.faults.clear();
        // Writes of one interaction must not change what the next one reads.
        state.carts.reset();
        state.writes.reset();
        state.locks.reset();
        return Json(json!({})).into_response();
    }
    match check(state.seed, &change.state) {
        Ok(()) => Json(json!({})).into_response(),
        Err(reason) => {
            error_body(StatusCode::BAD_REQUEST, &format!("provider state `{}`: {reason}", change.state))
        }
    }
}

/// Whether the seed satisfies `state`; the error says why not (or that the
/// state is unknown, listing the known forms).
pub fn check(seed: &Seed, state: &str) -> Result<(), String> {
    let words: Vec<&str> = state.split_whitespace().collect();
    let user = |id: &str| seed.user(id).ok_or_else(|| format!("the seed has no user {id}"));
    match words.as_slice() {
        ["product", id, "exists"] => {
            seed.product(id).map(|_| ()).ok_or_else(|| format!("the seed has no product {id}"))
        }
        ["product", id, "is", "on", "sale"] => match seed.product(id) {
            Some(product) if product.list_price.is_some() => Ok(()),
            Some(_) => Err(format!("product {id} is not on sale (no list price)")),
            None => Err(format!("the seed has no product {id}")),
        },
        ["product", id, "does", "not", "exist"] => match seed.product(id) {
            Some(_) => Err(format!("the seed has a product {id}")),
            None => Ok(()),
        },
        ["category", id, "exists"] => match seed.products.iter().any(|p| p.category == *id) {
            true => Ok(()),
            false => Err(format!("the seed has no category {id}")),
        },
        ["user", id, "exists"] => user(id).map(|_| ()),
        ["order", id, "exists"] => match seeded_order(seed, id) {
            true => Ok(()),
            false => Err(format!("the seed has no order {id} (seeded ids are o-<user>-<k>)")),
        },
        ["order", id, "does", "not", "exist"] => match seeded_order(seed, id) {
            true => Err(format!("the seed has an order {id}")),
            false => Ok(()),
        },
        ["user", id, "has", "orders"] => match seed.order_count(user(id)?) {
            0 => Err(format!("user {id} has no orders")),
            _ => Ok(()),
        },
        ["user", id, "has", "an", "empty", "cart"] => match user(id)?.cart.len() {
            0 => Ok(()),
            n => Err(format!("user {id} has {n} cart lines")),
        },
        ["user", id, "has", n, "items", "in", "the", "cart"] => {
            let lines = user(id)?.cart.len();
            match n.parse::<usize>() {
                Ok(n) if n == lines => Ok(()),
                _ => Err(format!("user {id} has {lines} cart lines")),
            }
        }
        _ => Err("unknown state; known: `product <id> exists`, `product <id> is on sale`, `product <id> does not exist`, `category <id> exists`, \
                  `user <id> exists`, `user <id> has orders`, `order <id> exists`, `order <id> does not exist`, `user <id> has an empty cart`, \
                  `user <id> has <n> items in the cart`"
            .to_owned()),
    }
}

/// Whether `id` is a seeded order: `o-<user>-<k>` with `k` at most the
/// user's order count.
fn seeded_order(seed: &Seed, id: &str) -> bool {
    let Some((user, k)) = id.strip_prefix("o-").and_then(|rest| rest.rsplit_once('-')) else { return false };
    let (Some(user), Ok(k)) = (seed.user(user), k.parse::<usize>()) else { return false };
    (1..=seed.order_count(user)).contains(&k)
}

#[cfg(test)]
mod tests {
    use super::check;
    use crate::seed::Seed;

    #[test]
    fn states_are_checked_against_the_seed() {
        let seed = Seed::shared();
        assert_eq!(check(seed, "product p-1 exists"), Ok(()));
        assert_eq!(check(seed, "product p-999 does not exist"), Ok(()));
        assert_eq!(check(seed, "user u-2 has 2 items in the cart"), Ok(()));
        assert_eq!(check(seed, "user u-3 has an empty cart"), Ok(()));
        assert_eq!(check(seed, "product p-5 is on sale"), Ok(()));
        assert_eq!(check(seed, "user u-2 has orders"), Ok(()));
        assert!(check(seed, "user u-1 has orders").is_err_and(|e| e.contains("no orders")));
        assert!(check(seed, "product p-1 is on sale").is_err_and(|e| e.contains("not on sale")));
        assert!(check(seed, "product p-999 exists").is_err_and(|e| e.contains("no product p-999")));
        assert!(check(seed, "user u-1 has 2 items in the cart").is_err_and(|e| e.contains("3 cart lines")));
        assert!(check(seed, "the moon is full").is_err_and(|e| e.starts_with("unknown state")));
        assert_eq!(check(seed, "order o-u-2-1 exists"), Ok(()));
        assert!(check(seed, "order o-u-2-2 exists").is_err());
        assert_eq!(check(seed, "order ord-999999 does not exist"), Ok(()));
    }
}
