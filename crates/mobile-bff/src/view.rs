//! View models: what the mobile screens render, shaped for them and no
//! bigger. Nothing here is a domain rule: totals, prices and stock come from
//! their services; the BFF only selects, labels and formats.

use bff_downstream::model::{
    Cart, Money, Price, Product, Promotions, Recommendations, ReviewSummary, ShippingEstimate, StockLevel,
    UserProfile,
};
use serde::Serialize;

/// Money, ready to show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MoneyVm {
    /// Minor units, for arithmetic-free comparisons on the client.
    #[schema(examples(5997))]
    pub amount_minor: i64,
    /// ISO 4217 code.
    #[schema(examples("EUR"))]
    pub currency: String,
    /// E.g. `€59.97`, `SEK 12.50`.
    #[schema(examples("€59.97"))]
    pub formatted: String,
}

impl From<&Money> for MoneyVm {
    fn from(money: &Money) -> Self {
        MoneyVm {
            amount_minor: money.amount_minor,
            currency: money.currency.clone(),
            formatted: money.formatted(),
        }
    }
}

/// A product in a carousel.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductTile {
    /// Product id, for navigation.
    pub id: String,
    /// Display name.
    pub title: String,
    /// Thumbnail.
    pub image_url: String,
    /// Current price.
    pub price: MoneyVm,
}

fn tiles(recommendations: &Recommendations) -> Vec<ProductTile> {
    recommendations
        .items
        .iter()
        .map(|item| ProductTile {
            id: item.product_id.clone(),
            title: item.name.clone(),
            image_url: item.image_url.clone(),
            price: MoneyVm::from(&item.price),
        })
        .collect()
}

/// The cart badge of the home screen.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CartBadge {
    /// Units in the cart.
    pub item_count: u32,
    /// The cart service's total.
    pub total: MoneyVm,
}

/// A promotion banner.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromotionVm {
    /// Promotion id, for tracking taps.
    pub id: String,
    /// Headline.
    pub title: String,
    /// Badge, when the promotion has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, examples("-20%"))]
    pub badge: Option<String>,
}

/// `GET /v1/home`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HomeVm {
    /// "Hi Ada".
    #[schema(examples("Hi Ada"))]
    pub greeting: String,
    /// Loyalty tier, for the badge colour.
    #[schema(examples("gold"))]
    pub tier: String,
    /// Cart badge.
    pub cart: CartBadge,
    /// Suggested products (empty when unavailable).
    pub recommendations: Vec<ProductTile>,
    /// Promotion banners (empty when unavailable).
    pub promotions: Vec<PromotionVm>,
    /// Delivery banner; absent when unavailable.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, examples("Delivery in 2–4 days · free over £40.00"))]
    pub shipping_banner: Option<String>,
}

impl HomeVm {
    /// Composes the home screen from its parts.
    pub fn new(
        profile: &UserProfile,
        cart: &Cart,
        recommendations: &Recommendations,
        promotions: &Promotions,
        shipping: Option<&ShippingEstimate>,
    ) -> Self {
        let first_name = profile.display_name.split_whitespace().next().unwrap_or(&profile.display_name);
        HomeVm {
            greeting: format!("Hi {first_name}"),
            tier: profile.tier.clone(),
            cart: CartBadge {
                item_count: cart.items.iter().map(|line| line.quantity).sum(),
                total: MoneyVm::from(&cart.total),
            },
            recommendations: tiles(recommendations),
            promotions: promotions
                .promotions
                .iter()
                .map(|p| PromotionVm { id: p.id.clone(), title: p.title.clone(), badge: p.badge.clone() })
                .collect(),
            shipping_banner: shipping.map(|estimate| {
                let days = if estimate.min_days == estimate.max_days {
                    format!("{} days", estimate.min_days)
                } else {
                    format!("{}–{} days", estimate.min_days, estimate.max_days)
                };
                match &estimate.free_shipping_over {
                    Some(threshold) => {
                        format!("Delivery in {days} · free over {}", MoneyVm::from(threshold).formatted)
                    }
                    None => format!("Delivery in {days}"),
                }
            }),
        }
    }
}

/// How available a product is. Deliberately coarse: an exact count is
/// competitive information and goes stale, so clients never see one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)] // The names mirror the labels users see.
pub enum Availability {
    /// Plenty.
    InStock,
    /// A few left, or unknown right now (the inventory part is missing).
    LimitedStock,
    /// None.
    OutOfStock,
}

impl From<StockLevel> for Availability {
    fn from(level: StockLevel) -> Self {
        match level {
            StockLevel::Plenty => Availability::InStock,
            StockLevel::Few => Availability::LimitedStock,
            StockLevel::None => Availability::OutOfStock,
        }
    }
}

impl Serialize for Availability {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Shown {
            code: &'static str,
            label: &'static str,
            can_buy: bool,
        }
        let shown = match self {
            Availability::InStock => Shown { code: "in_stock", label: "In stock", can_buy: true },
            Availability::LimitedStock => {
                Shown { code: "limited_stock", label: "Limited stock", can_buy: true }
            }
            Availability::OutOfStock => Shown { code: "out_of_stock", label: "Out of stock", can_buy: false },
        };
        shown.serialize(serializer)
    }
}

impl utoipa::PartialSchema for Availability {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let string = || ObjectBuilder::new().schema_type(Type::String);
        ObjectBuilder::new()
            .description(Some("How available a product is; never an exact count."))
            .property("code", string().enum_values(Some(["in_stock", "limited_stock", "out_of_stock"])))
            .required("code")
            .property("label", string().description(Some("What to show, e.g. `Limited stock`.")))
            .required("label")
            .property("canBuy", ObjectBuilder::new().schema_type(Type::Boolean))
            .required("canBuy")
            .into()
    }
}

impl utoipa::ToSchema for Availability {}

/// The price block of a product page.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PriceVm {
    /// What the customer pays.
    pub current: MoneyVm,
    /// The crossed-out regular price, when on sale.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub was: Option<MoneyVm>,
}

/// The rating line of a product page.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RatingVm {
    /// Mean rating, one decimal.
    pub average: f64,
    /// Number of reviews.
    pub count: u32,
}

/// `GET /v1/product-page/{id}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductPageVm {
    /// Product id.
    pub id: String,
    /// Display name.
    pub title: String,
    /// Brand.
    pub brand: String,
    /// Description.
    pub description: String,
    /// Up to three images: a phone shows no more above the fold.
    pub images: Vec<String>,
    /// Price block.
    pub price: PriceVm,
    /// Availability label.
    pub availability: Availability,
    /// "You may also like" (empty when unavailable).
    pub recommendations: Vec<ProductTile>,
    /// Rating; absent when unavailable.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub rating: Option<RatingVm>,
}

impl ProductPageVm {
    /// Composes the product page from its parts.
    pub fn new(
        product: &Product,
        price: &Price,
        availability: Availability,
        recommendations: &Recommendations,
        reviews: Option<&ReviewSummary>,
    ) -> Self {
        ProductPageVm {
            id: product.id.clone(),
            title: product.name.clone(),
            brand: product.brand.clone(),
            description: product.description.clone(),
            images: product.images.iter().take(3).cloned().collect(),
            price: PriceVm {
                current: MoneyVm::from(&price.price),
                was: price.list_price.as_ref().map(MoneyVm::from),
            },
            availability,
            recommendations: tiles(recommendations)
                .into_iter()
                .filter(|tile| tile.id != product.id)
                .collect(),
            rating: reviews
                .map(|r| RatingVm { average: (r.average_rating * 10.0).round() / 10.0, count: r.count }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stock_is_bucketed_never_exact() {
        assert_eq!(Availability::from(StockLevel::None), Availability::OutOfStock);
        assert_eq!(Availability::from(StockLevel::Few), Availability::LimitedStock);
        assert_eq!(Availability::from(StockLevel::Plenty), Availability::InStock);
    }
}
