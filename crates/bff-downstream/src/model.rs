//! What BFFs read from downstream services: consumer-side DTOs holding only
//! the fields a BFF uses (unknown fields are ignored, so providers can add
//! freely), each with the invariants we rely on.
//!
//! They serialize too (camelCase, as read), so cacheable ones can be stored,
//! and describe themselves as JSON Schemas, so tests can check every field
//! we read against the schema the provider publishes.
//!
//! These are deliberately *not* the providers' types: the gap between what a
//! provider sends and what we read is exactly what contract tests check.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Types that may be cached by `bff-cache`. Implemented here, beside each
/// model, because whether data may be shown a little old is a property of
/// the data: only for what is safe to show stale and is not transactional,
/// never for carts, prices, stock, payments or orders. Those do not
/// implement it, so caching them does not compile:
///
/// ```compile_fail,E0277
/// fn cache<T: bff_downstream::Cacheable>(_: T) {}
/// fn cart(cart: bff_downstream::model::Cart) { cache(cart) } // error: Cart is not Cacheable
/// ```
///
/// while the same code with a cacheable type compiles:
///
/// ```
/// fn cache<T: bff_downstream::Cacheable>(_: T) {}
/// fn reco(reco: bff_downstream::model::Recommendations) { cache(reco) }
/// ```
pub trait Cacheable: Serialize + serde::de::DeserializeOwned + Clone + Send + Sync + 'static {
    /// The kind, part of every key.
    const KIND: &'static str;
}

/// Checks the invariants a BFF relies on. A violation makes the call fail
/// with `invalid_data`: bad data is never shown to a user.
pub trait Validate {
    /// `Err` names the first broken invariant.
    fn validate(&self) -> Result<(), String>;
}

/// An amount of money in minor units (cents) of an ISO 4217 currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Money {
    /// The amount in minor units; never negative.
    pub amount_minor: i64,
    /// Three upper-case letters.
    pub currency: String,
}

impl Money {
    /// The amount for display: `€59.97`, `$5.00`, `£0.05`, `SEK 12.50`
    /// (symbol for EUR, USD and GBP, the code otherwise; two decimals, the
    /// minor unit of every currency the services use).
    pub fn formatted(&self) -> String {
        let symbol = match self.currency.as_str() {
            "EUR" => "€".to_owned(),
            "USD" => "$".to_owned(),
            "GBP" => "£".to_owned(),
            other => format!("{other} "),
        };
        let sign = if self.amount_minor < 0 { "-" } else { "" };
        let amount = self.amount_minor.unsigned_abs();
        format!("{sign}{symbol}{}.{:02}", amount / 100, amount % 100)
    }
}

impl Validate for Money {
    fn validate(&self) -> Result<(), String> {
        if self.amount_minor < 0 {
            return Err(format!("negative amount {}", self.amount_minor));
        }
        if self.currency.len() != 3 || !self.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(format!("currency {:?} is not an ISO 4217 code", self.currency));
        }
        Ok(())
    }
}

fn non_empty(field: &str, value: &str) -> Result<(), String> {
    if value.trim().is_empty() { Err(format!("{field} is empty")) } else { Ok(()) }
}

/// A user's profile (user service).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserProfile {
    /// The user id, e.g. `u-1`.
    pub id: String,
    /// The name to greet the user with.
    pub display_name: String,
    /// Loyalty tier, e.g. `gold`.
    pub tier: String,
    /// BCP 47 locale, e.g. `de-DE`.
    pub locale: String,
    /// E-mail address (personal data: only privileged BFFs show it, masked by role).
    #[serde(default)]
    pub email: Option<String>,
    /// The customer's market (`uk`, `us`, `eu`): the tenant back-office
    /// staff are scoped to (only the back office reads it).
    #[serde(default)]
    pub market: Option<String>,
}

impl Validate for UserProfile {
    fn validate(&self) -> Result<(), String> {
        non_empty("id", &self.id)?;
        non_empty("displayName", &self.display_name)
    }
}

/// A page of users found by a search (user service, staff only).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserPage {
    /// The users of this page, by id.
    pub items: Vec<UserProfile>,
    /// Where the next page starts; absent on the last.
    #[serde(default)]
    pub next_offset: Option<u32>,
}

impl Validate for UserPage {
    fn validate(&self) -> Result<(), String> {
        self.items.iter().try_for_each(Validate::validate)
    }
}

/// An account's lock state (user service).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LockState {
    /// The user id.
    pub id: String,
    /// Whether the account is locked.
    pub locked: bool,
    /// Why, while locked.
    #[serde(default)]
    pub reason: Option<String>,
}

impl Validate for LockState {
    fn validate(&self) -> Result<(), String> {
        non_empty("id", &self.id)
    }
}

/// One line of a cart.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CartLine {
    /// The product id.
    pub product_id: String,
    /// The product's name.
    pub name: String,
    /// How many; at least 1.
    pub quantity: u32,
    /// Price of one, in the cart's currency.
    pub unit_price: Money,
}

/// A user's cart (cart service). Totals are the cart service's truth; the
/// BFF shows them, it never recomputes them.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Cart {
    /// The lines.
    pub items: Vec<CartLine>,
    /// The cart total.
    pub total: Money,
}

impl Validate for Cart {
    fn validate(&self) -> Result<(), String> {
        if let Some(line) = self.items.iter().find(|line| line.quantity == 0) {
            return Err(format!("line {} has quantity 0", line.product_id));
        }
        self.items.iter().try_for_each(|line| line.unit_price.validate())?;
        self.total.validate()
    }
}

/// A product (catalog service).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Product {
    /// The product id, e.g. `p-1`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Brand name.
    pub brand: String,
    /// Long description.
    pub description: String,
    /// Image URLs, best first.
    pub images: Vec<String>,
}

impl Cacheable for Product {
    const KIND: &'static str = "product";
}

impl Validate for Product {
    fn validate(&self) -> Result<(), String> {
        non_empty("id", &self.id)?;
        non_empty("name", &self.name)
    }
}

/// The catalog's categories (catalog service).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Categories {
    /// In catalog order.
    pub categories: Vec<Category>,
}

/// One category.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Category {
    /// Its id, e.g. `shoes`.
    pub id: String,
    /// Display name.
    pub name: String,
}

impl Validate for Categories {
    fn validate(&self) -> Result<(), String> {
        self.categories
            .iter()
            .try_for_each(|c| non_empty("id", &c.id).and_then(|()| non_empty("name", &c.name)))
    }
}

/// The products of one category (catalog service).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductList {
    /// The products, in catalog order.
    pub items: Vec<Product>,
}

impl Validate for ProductList {
    fn validate(&self) -> Result<(), String> {
        self.items.iter().try_for_each(Validate::validate)
    }
}

/// Products by id, read in one call (catalog service): those found, in the
/// order asked; an id it does not know is simply absent.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductBatch {
    /// The products found.
    pub items: Vec<Product>,
}

impl Validate for ProductBatch {
    fn validate(&self) -> Result<(), String> {
        self.items.iter().try_for_each(Validate::validate)
    }
}

/// One page of the whole catalog in its stable order (catalog service).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductPage {
    /// The products of this page.
    pub items: Vec<Product>,
    /// Where the next page starts; absent on the last.
    #[serde(default)]
    pub next_offset: Option<u32>,
}

impl Validate for ProductPage {
    fn validate(&self) -> Result<(), String> {
        self.items.iter().try_for_each(Validate::validate)
    }
}

/// Prices by product id, read in one call (pricing service).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PriceBatch {
    /// The prices found.
    pub prices: Vec<Price>,
}

impl Validate for PriceBatch {
    fn validate(&self) -> Result<(), String> {
        self.prices.iter().try_for_each(Validate::validate)
    }
}

/// Stock by product id, read in one call (inventory service).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StockBatch {
    /// The stock found.
    pub stock: Vec<Stock>,
}

impl Validate for StockBatch {
    fn validate(&self) -> Result<(), String> {
        self.stock.iter().try_for_each(Validate::validate)
    }
}

/// A product's price (pricing service).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Price {
    /// The product id.
    pub product_id: String,
    /// What the customer pays now.
    pub price: Money,
    /// The regular price when on sale.
    pub list_price: Option<Money>,
}

impl Validate for Price {
    fn validate(&self) -> Result<(), String> {
        self.price.validate()?;
        if let Some(list) = &self.list_price {
            list.validate()?;
            if list.currency != self.price.currency {
                return Err("listPrice and price have different currencies".to_owned());
            }
        }
        Ok(())
    }
}

/// Stock of a product (inventory service).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Stock {
    /// The product id.
    pub product_id: String,
    /// Units available to sell; never negative.
    pub available: i64,
}

/// How much of a product is left, bucketed: the one rule every client's
/// availability label is derived from (exact counts are never shown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StockLevel {
    /// More than [`Stock::PLENTY`] units.
    Plenty,
    /// One to [`Stock::PLENTY`] units.
    Few,
    /// None.
    None,
}

impl Stock {
    /// Above this many units a product simply counts as in stock.
    pub const PLENTY: i64 = 10;

    /// The bucket of this stock level.
    pub fn level(&self) -> StockLevel {
        match self.available {
            n if n > Self::PLENTY => StockLevel::Plenty,
            n if n > 0 => StockLevel::Few,
            _ => StockLevel::None,
        }
    }
}

impl Validate for Stock {
    fn validate(&self) -> Result<(), String> {
        if self.available < 0 { Err(format!("negative stock {}", self.available)) } else { Ok(()) }
    }
}

/// A suggested product (recommendations service).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Recommendation {
    /// The product id.
    pub product_id: String,
    /// Display name.
    pub name: String,
    /// Thumbnail URL.
    pub image_url: String,
    /// Current price.
    pub price: Money,
}

/// Suggestions for a user in a context (home, a product page).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Recommendations {
    /// Best first.
    pub items: Vec<Recommendation>,
}

impl Cacheable for Recommendations {
    const KIND: &'static str = "recommendations";
}

impl Validate for Recommendations {
    fn validate(&self) -> Result<(), String> {
        self.items.iter().try_for_each(|item| {
            non_empty("productId", &item.product_id)?;
            item.price.validate()
        })
    }
}

/// An active promotion (promotions service).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Promotion {
    /// Promotion id.
    pub id: String,
    /// Headline.
    pub title: String,
    /// Short badge text, e.g. `-20%`.
    pub badge: Option<String>,
}

/// The promotions shown to one user.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Promotions {
    /// Active promotions, most relevant first.
    pub promotions: Vec<Promotion>,
}

impl Cacheable for Promotions {
    const KIND: &'static str = "promotions";
}

impl Validate for Promotions {
    fn validate(&self) -> Result<(), String> {
        self.promotions.iter().try_for_each(|p| non_empty("title", &p.title))
    }
}

/// A delivery estimate for a user's default address (shipping service).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShippingEstimate {
    /// Fastest delivery, in days.
    pub min_days: u32,
    /// Slowest delivery, in days.
    pub max_days: u32,
    /// Orders above this ship free.
    pub free_shipping_over: Option<Money>,
}

impl Validate for ShippingEstimate {
    fn validate(&self) -> Result<(), String> {
        if self.min_days > self.max_days {
            return Err(format!("minDays {} > maxDays {}", self.min_days, self.max_days));
        }
        self.free_shipping_over.as_ref().map_or(Ok(()), Validate::validate)
    }
}

/// One past order (orders service).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    /// Order id.
    pub id: String,
    /// When it was placed (RFC 3339).
    pub placed_at: String,
    /// `placed`, `shipped`, `delivered`, ...
    pub status: String,
    /// Units ordered.
    pub item_count: u32,
    /// What was paid.
    pub total: Money,
}

/// A page of a user's order history, newest first.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Orders {
    /// The orders.
    pub orders: Vec<Order>,
    /// The service's cursor for the next page; absent on the last one.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

impl Validate for Orders {
    fn validate(&self) -> Result<(), String> {
        self.orders.iter().try_for_each(|order| {
            non_empty("id", &order.id)?;
            order.total.validate()
        })
    }
}

/// One line of a placed order.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderLine {
    /// The product id.
    pub product_id: String,
    /// Its name when ordered.
    pub name: String,
    /// How many; at least 1.
    pub quantity: u32,
    /// Price of one, when ordered.
    pub unit_price: Money,
}

/// One order with its lines (orders service): what `GET /orders/{id}`
/// and `POST /orders` answer. Never cached: it is a user's, and a write's.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderDetail {
    /// Order id.
    pub id: String,
    /// Whose order it is: the BFF checks it against the caller.
    pub user_id: String,
    /// When it was placed (RFC 3339).
    pub placed_at: String,
    /// `placed`, `shipped`, `delivered`, ...
    pub status: String,
    /// The lines.
    pub items: Vec<OrderLine>,
    /// What is paid.
    pub total: Money,
}

impl Validate for OrderDetail {
    fn validate(&self) -> Result<(), String> {
        non_empty("id", &self.id)?;
        non_empty("userId", &self.user_id)?;
        if let Some(line) = self.items.iter().find(|line| line.quantity == 0) {
            return Err(format!("line {} has quantity 0", line.product_id));
        }
        self.items.iter().try_for_each(|line| line.unit_price.validate())?;
        self.total.validate()
    }
}

/// Rating summary of a product (reviews service).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReviewSummary {
    /// Mean rating, 0 to 5.
    pub average_rating: f64,
    /// Number of reviews.
    pub count: u32,
}

impl Cacheable for ReviewSummary {
    const KIND: &'static str = "reviews";
}

/// One review (reviews service).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Review {
    /// Review id.
    pub id: String,
    /// 1 to 5 stars.
    pub rating: u8,
    /// Headline.
    pub title: String,
    /// Who wrote it (a display name).
    pub author: String,
    /// When (RFC 3339).
    pub created_at: String,
}

/// The latest reviews of a product, newest first (reviews service).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReviewList {
    /// The reviews.
    pub reviews: Vec<Review>,
}

impl Validate for ReviewList {
    fn validate(&self) -> Result<(), String> {
        self.reviews.iter().try_for_each(|review| {
            non_empty("id", &review.id)?;
            if (1..=5).contains(&review.rating) {
                Ok(())
            } else {
                Err(format!("rating {} outside 1..=5", review.rating))
            }
        })
    }
}

impl Validate for ReviewSummary {
    fn validate(&self) -> Result<(), String> {
        if !(0.0..=5.0).contains(&self.average_rating) {
            return Err(format!("averageRating {} outside 0..=5", self.average_rating));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_rejects_negative_amounts_and_bad_currencies() {
        let money = |amount_minor, currency: &str| Money { amount_minor, currency: currency.to_owned() };
        assert!(money(0, "EUR").validate().is_ok());
        assert!(money(-1, "EUR").validate().is_err());
        assert!(money(100, "eur").validate().is_err());
        assert!(money(100, "EURO").validate().is_err());
    }

    #[test]
    fn money_is_formatted_with_symbol_and_two_decimals() {
        let money = |amount_minor, currency: &str| Money { amount_minor, currency: currency.to_owned() };
        assert_eq!(money(5997, "EUR").formatted(), "€59.97");
        assert_eq!(money(5, "GBP").formatted(), "£0.05");
        assert_eq!(money(1250, "SEK").formatted(), "SEK 12.50");
        assert_eq!(money(-1250, "USD").formatted(), "-$12.50");
    }

    #[test]
    fn stock_is_bucketed() {
        let level = |available| Stock { product_id: "p-1".to_owned(), available }.level();
        assert_eq!(level(0), StockLevel::None);
        assert_eq!(level(3), StockLevel::Few);
        assert_eq!(level(10), StockLevel::Few);
        assert_eq!(level(11), StockLevel::Plenty);
    }

    #[test]
    fn prices_with_mixed_currencies_are_invalid() {
        let price = Price {
            product_id: "p-1".to_owned(),
            price: Money { amount_minor: 100, currency: "EUR".to_owned() },
            list_price: Some(Money { amount_minor: 200, currency: "USD".to_owned() }),
        };
        assert!(price.validate().is_err());
    }
}
