//! Deterministic seed data: the same ids and values on every start, so
//! READMEs, tests and demos can name them. Computed from formulas, not a
//! random generator, so a reader can predict any value.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Number of seeded products: `p-1` ..= `p-48`.
pub const PRODUCT_COUNT: usize = 48;

/// An amount of money in minor units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Money {
    /// Minor units (cents).
    pub amount_minor: i64,
    /// ISO 4217 code.
    pub currency: String,
}

impl Money {
    fn new(amount_minor: i64, currency: &str) -> Self {
        Money { amount_minor, currency: currency.to_owned() }
    }
}

/// A seeded product with its price, stock and review figures.
#[derive(Debug, Clone)]
pub struct SeedProduct {
    /// `p-N`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Brand.
    pub brand: String,
    /// Category slug.
    pub category: &'static str,
    /// Current price.
    pub price: Money,
    /// Regular price when on sale (every fifth product).
    pub list_price: Option<Money>,
    /// Units in stock (some are 0, some low).
    pub stock: i64,
    /// Mean rating.
    pub average_rating: f64,
    /// Number of reviews.
    pub review_count: u32,
}

/// A seeded user.
#[derive(Debug, Clone)]
pub struct SeedUser {
    /// `u-N`.
    pub id: String,
    /// Full name.
    pub display_name: &'static str,
    /// E-mail address.
    pub email: String,
    /// Loyalty tier.
    pub tier: &'static str,
    /// Locale.
    pub locale: &'static str,
    /// Country of the default address.
    pub country: &'static str,
    /// Currency of the user's market.
    pub currency: &'static str,
    /// Marketing segment.
    pub segment: &'static str,
    /// Cart lines: (product index 1-based, quantity).
    pub cart: Vec<(usize, u32)>,
}

/// A seeded promotion.
#[derive(Debug, Clone)]
pub struct SeedPromotion {
    /// `promo-N`.
    pub id: &'static str,
    /// Headline.
    pub title: &'static str,
    /// Badge text.
    pub badge: Option<&'static str>,
    /// Segment it targets (`all` for everyone).
    pub segment: &'static str,
}

/// All seeded data.
#[derive(Debug, Clone)]
pub struct Seed {
    /// `p-1` ..= `p-48`.
    pub products: Vec<SeedProduct>,
    /// `u-1` ..= `u-6`.
    pub users: Vec<SeedUser>,
    /// Active promotions.
    pub promotions: Vec<SeedPromotion>,
}

/// The product categories, in catalog order.
pub const CATEGORIES: [&str; 6] = ["shoes", "jackets", "bags", "watches", "headphones", "kitchen"];
const NOUNS: [&str; 6] = ["Runner", "Shell Jacket", "Backpack", "Field Watch", "Headphones", "Knife"];
const ADJECTIVES: [&str; 8] =
    ["Trail", "Urban", "Classic", "Alpine", "Coastal", "Midnight", "Summit", "Everyday"];
const BRANDS: [&str; 6] = ["Northwind", "Acme", "Globex", "Initech", "Umbrella", "Stark"];
const CURRENCIES: [&str; 4] = ["EUR", "EUR", "USD", "GBP"];

impl Seed {
    /// Builds the seed. Pure: same output every time.
    pub fn new() -> Self {
        let products = (1..=PRODUCT_COUNT)
            .map(|i| {
                let category = CATEGORIES[(i - 1) % CATEGORIES.len()];
                let currency = CURRENCIES[i % CURRENCIES.len()];
                // x.99 prices between 9.99 and 209.99.
                let amount = ((i as i64 * 37) % 200 + 10) * 100 - 1;
                let on_sale = i % 5 == 0;
                SeedProduct {
                    id: format!("p-{i}"),
                    name: format!(
                        "{} {}",
                        ADJECTIVES[(i - 1) % ADJECTIVES.len()],
                        NOUNS[(i - 1) % NOUNS.len()]
                    ),
                    brand: BRANDS[(i * 7) % BRANDS.len()].to_owned(),
                    category,
                    price: Money::new(amount, currency),
                    list_price: on_sale.then(|| Money::new(amount * 5 / 4, currency)),
                    stock: (i as i64 * 13) % 40,
                    average_rating: 3.0 + ((i * 3) % 21) as f64 / 10.0,
                    review_count: ((i * 17) % 240) as u32,
                }
            })
            .collect();
        let user =
            |n: usize, display_name, tier, locale, country, currency, segment, cart: Vec<(usize, u32)>| {
                SeedUser {
                    id: format!("u-{n}"),
                    display_name,
                    email: format!(
                        "{}@example.com",
                        display_name.split(' ').next().unwrap_or("user").to_lowercase()
                    ),
                    tier,
                    locale,
                    country,
                    currency,
                    segment,
                    cart,
                }
            };
        let users = vec![
            user(1, "Ada Lovelace", "gold", "en-GB", "GB", "GBP", "frequent", vec![(3, 1), (8, 2), (15, 1)]),
            user(2, "Grace Hopper", "silver", "en-US", "US", "USD", "new", vec![(2, 1), (11, 1)]),
            user(3, "Alan Turing", "bronze", "en-GB", "GB", "GBP", "dormant", vec![]),
            user(4, "Katherine Johnson", "gold", "de-DE", "DE", "EUR", "frequent", vec![(20, 3)]),
            user(
                5,
                "Linus Torvalds",
                "silver",
                "sv-SE",
                "SE",
                "EUR",
                "bargain",
                vec![(5, 1), (40, 1), (42, 2), (47, 1)],
            ),
            user(6, "Margaret Hamilton", "bronze", "de-DE", "DE", "EUR", "new", vec![(1, 1)]),
        ];
        let promotions = vec![
            SeedPromotion { id: "promo-1", title: "Free returns all winter", badge: None, segment: "all" },
            SeedPromotion {
                id: "promo-2",
                title: "20% off trail running",
                badge: Some("-20%"),
                segment: "frequent",
            },
            SeedPromotion {
                id: "promo-3",
                title: "Welcome: 10% off your first order",
                badge: Some("-10%"),
                segment: "new",
            },
            SeedPromotion {
                id: "promo-4",
                title: "We miss you: free shipping this week",
                badge: Some("Free shipping"),
                segment: "dormant",
            },
            SeedPromotion {
                id: "promo-5",
                title: "Outlet prices on last season's jackets",
                badge: Some("Outlet"),
                segment: "bargain",
            },
        ];
        Seed { products, users, promotions }
    }

    /// The one seed of the process: pure and never changed, so every mock,
    /// the identity provider and the command line share it instead of
    /// rebuilding it per lookup.
    pub fn shared() -> &'static Seed {
        static SEED: std::sync::LazyLock<Seed> = std::sync::LazyLock::new(Seed::new);
        &SEED
    }

    /// The product with `id`.
    pub fn product(&self, id: &str) -> Option<&SeedProduct> {
        self.products.iter().find(|p| p.id == id)
    }

    /// The user with `id`.
    pub fn user(&self, id: &str) -> Option<&SeedUser> {
        self.users.iter().find(|u| u.id == id)
    }

    /// How many orders a user has: user `u-N` has N-1 (so `u-1` has none).
    pub fn order_count(&self, user: &SeedUser) -> usize {
        user.id.trim_start_matches("u-").parse::<usize>().unwrap_or(1).saturating_sub(1)
    }

    /// The product at a 1-based index (wrapping), for derived data.
    pub fn nth_product(&self, n: usize) -> &SeedProduct {
        &self.products[(n.max(1) - 1) % self.products.len()]
    }
}

impl Default for Seed {
    fn default() -> Self {
        Seed::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_is_deterministic_and_sane() {
        let a = Seed::new();
        let b = Seed::new();
        assert_eq!(a.products.len(), PRODUCT_COUNT);
        assert_eq!(a.products[7].name, b.products[7].name);
        assert!(a.products.iter().all(|p| p.price.amount_minor > 0));
        assert!(a.products.iter().all(|p| (0.0..=5.0).contains(&p.average_rating)));
        assert!(a.products.iter().any(|p| p.stock == 0), "some product is out of stock");
        let currencies: std::collections::BTreeSet<_> =
            a.products.iter().map(|p| p.price.currency.as_str()).collect();
        assert!(currencies.len() >= 3, "several currencies: {currencies:?}");
        assert_eq!(a.user("u-1").map(|u| u.display_name), Some("Ada Lovelace"));
    }
}
