//! Rails: what a TV browses, and how the expensive ones are made ahead of
//! time.
//!
//! A rail is a titled row of items. Three kinds:
//!
//! * **catalog rails**, the same for everyone: one per category and
//!   "On sale" (products with a list price). Building them takes a call for
//!   the categories, one per category, and one price per product (about
//!   60 calls): far too many for a request, so [`refresh`] builds them in
//!   the background every `rails.refresh_secs` and puts them in the cache
//!   ([`CatalogRails`], global). The same snapshot indexes every product it
//!   saw, so user rails can show product cards without a call per item.
//! * **segment rails**, the same for everyone in a marketing segment:
//!   "Popular with shoppers like you" (recommendations for the segment) and
//!   "Deals" (its promotions), also precomputed ([`SegmentRails`], one
//!   cache entry per segment).
//! * **user rails**, made at request time with exactly one downstream call
//!   each: "Continue shopping" (the cart) and "Recommended for you".
//!
//! The background job acts as the BFF itself (client credentials), never
//! as a user. A failed refresh keeps the last good rails, which are then
//! served marked stale with their age; before the first refresh (a cold
//! start) the precomputed rails are missing and the answer is degraded.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bff_cache::CacheKey;
use bff_compose::CallCtx;
use bff_downstream::model::{Money, Recommendation};
use bff_downstream::{Api, Cacheable, DownstreamError};
use bff_resilience::Deadline;
use bff_server::Backbone;
use bff_telemetry::RequestContext;
use serde::{Deserialize, Serialize};

use crate::RailsConfig;

/// The component (and cache policy) name of the catalog rails.
pub const CATALOG: &str = "catalog";
/// The component (and cache policy) name of a segment's rails.
pub const SEGMENT: &str = "segment";

/// Money, ready to show on a TV.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MoneyVm {
    /// Minor units.
    pub amount_minor: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// E.g. `€19.99`.
    #[schema(examples("€19.99"))]
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

/// One tile of a rail: a product or a promotion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RailItem {
    /// A product id (`p-7`) or a promotion id.
    pub id: String,
    /// What the tile says.
    pub title: String,
    /// The tile's picture, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub image_url: Option<String>,
    /// The price, for products.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub price: Option<MoneyVm>,
    /// A badge (`-20%`), for promotions and products on sale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, examples("-20%"))]
    pub badge: Option<String>,
}

impl From<&Recommendation> for RailItem {
    /// A suggested product's tile.
    fn from(recommendation: &Recommendation) -> Self {
        RailItem {
            id: recommendation.product_id.clone(),
            title: recommendation.name.clone(),
            image_url: Some(recommendation.image_url.clone()),
            price: Some(MoneyVm::from(&recommendation.price)),
            badge: None,
        }
    }
}

/// A rail as computed: its id, title and every item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rail {
    /// Stable id: `continue`, `for-you`, `popular`, `deals`, `on-sale`,
    /// `category-<id>`.
    pub id: String,
    /// Its title.
    pub title: String,
    /// Every item, in order.
    pub items: Vec<RailItem>,
}

/// The catalog rails and the product index, precomputed for everyone.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CatalogRails {
    /// "On sale", then one rail per category.
    pub rails: Vec<Rail>,
    /// Every product seen, as a tile, by id (for user rails).
    pub products: BTreeMap<String, RailItem>,
}

impl Cacheable for CatalogRails {
    const KIND: &'static str = "tv-catalog-rails";
}

/// One segment's precomputed rails.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SegmentRails {
    /// "Popular with shoppers like you", "Deals".
    pub rails: Vec<Rail>,
}

impl Cacheable for SegmentRails {
    const KIND: &'static str = "tv-segment-rails";
}

/// The cache key of the catalog rails.
pub fn catalog_key() -> CacheKey {
    CacheKey::global("tv")
}

/// The cache key of `segment`'s rails.
pub fn segment_key(segment: &str) -> CacheKey {
    CacheKey::segment(segment, "tv")
}

/// The background job: refreshes every rail now, then every
/// `refresh_secs`, until the BFF stops.
pub async fn refresh_forever(config: RailsConfig, backbone: Backbone) {
    loop {
        refresh(&config, &backbone).await;
        tokio::time::sleep(Duration::from_secs(config.refresh_secs)).await;
    }
}

/// One refresh of the catalog rails and of each segment's, each kept only
/// if it fully succeeded (a failure leaves the last good one in the cache).
pub async fn refresh(config: &RailsConfig, backbone: &Backbone) {
    let cx = || CallCtx::on_own_behalf(RequestContext::detached(), Deadline::after(Duration::from_secs(10)));
    match catalog_rails(&backbone.api, cx(), config.per_rail).await {
        Ok(rails) => backbone.cache.put(CATALOG, &catalog_key(), &rails).await,
        Err(error) => tracing::warn!(%error, "catalog rails not refreshed; the last good ones stay"),
    }
    for segment in &config.segments {
        match segment_rails(&backbone.api, cx, segment, config.per_rail).await {
            Ok(rails) => backbone.cache.put(SEGMENT, &segment_key(segment), &rails).await,
            Err(error) => {
                tracing::warn!(%segment, %error, "segment rails not refreshed; the last good ones stay")
            }
        }
    }
}

/// Why a refresh produced nothing to keep.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// A call the rails cannot do without failed.
    #[error(transparent)]
    Downstream(#[from] DownstreamError),
    /// Every price failed: rails without prices are not worth keeping.
    #[error("no product could be priced")]
    NothingPriced,
}

async fn catalog_rails(api: &Api, cx: CallCtx, per_rail: u8) -> Result<CatalogRails, RefreshError> {
    let categories = api.catalog.categories(cx.clone()).await?;
    let mut rails = Vec::new();
    let mut on_sale = Vec::new();
    let mut products = BTreeMap::new();
    for category in &categories.categories {
        let listed = api.catalog.in_category(cx.clone(), &category.id, per_rail).await?;
        // The prices of one category at once (the pricing guard's bulkhead bounds them).
        let mut prices = tokio::task::JoinSet::new();
        for (position, product) in listed.items.iter().enumerate() {
            let (pricing, cx, id) = (api.pricing.clone(), cx.clone(), product.id.clone());
            prices.spawn(async move { (position, pricing.price(cx, &id).await) });
        }
        let mut priced = BTreeMap::new();
        while let Some(joined) = prices.join_next().await {
            match joined {
                Ok((position, Ok(price))) => drop(priced.insert(position, price)),
                Ok((_, Err(error))) => tracing::debug!(%error, "a product left out of its rail: no price"),
                Err(error) => tracing::warn!(%error, "a price lookup did not finish"),
            }
        }
        let mut items = Vec::new();
        for (position, product) in listed.items.iter().enumerate() {
            let Some(price) = priced.get(&position) else { continue };
            let badge =
                price.list_price.as_ref().filter(|list| list.amount_minor > price.price.amount_minor).map(
                    |list| format!("-{}%", 100 - price.price.amount_minor * 100 / list.amount_minor.max(1)),
                );
            let item = RailItem {
                id: product.id.clone(),
                title: product.name.clone(),
                image_url: product.images.first().cloned(),
                price: Some(MoneyVm::from(&price.price)),
                badge: badge.clone(),
            };
            if badge.is_some() {
                on_sale.push(item.clone());
            }
            products.insert(item.id.clone(), item.clone());
            items.push(item);
        }
        rails.push(Rail { id: format!("category-{}", category.id), title: category.name.clone(), items });
    }
    if products.is_empty() {
        return Err(RefreshError::NothingPriced);
    }
    rails.insert(0, Rail { id: "on-sale".to_owned(), title: "On sale".to_owned(), items: on_sale });
    Ok(CatalogRails { rails, products })
}

async fn segment_rails(
    api: &Api,
    cx: impl Fn() -> CallCtx,
    segment: &str,
    per_rail: u8,
) -> Result<SegmentRails, RefreshError> {
    let (popular, deals) = tokio::try_join!(
        api.recommendations.for_segment(cx(), segment, "tv", per_rail),
        api.promotions.for_segment(cx(), segment),
    )?;
    let popular = popular.items.iter().map(RailItem::from).collect();
    let deals = deals
        .promotions
        .iter()
        .map(|p| RailItem {
            id: p.id.clone(),
            title: p.title.clone(),
            image_url: None,
            price: None,
            badge: p.badge.clone(),
        })
        .collect();
    Ok(SegmentRails {
        rails: vec![
            Rail {
                id: "popular".to_owned(),
                title: "Popular with shoppers like you".to_owned(),
                items: popular,
            },
            Rail { id: "deals".to_owned(), title: "Deals".to_owned(), items: deals },
        ],
    })
}

/// Where a page of a rail starts: an opaque token (base64url of the rail's
/// id and an offset), so clients never build one and the server can change
/// what is inside.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    #[serde(rename = "r")]
    rail: String,
    #[serde(rename = "o")]
    offset: usize,
}

impl Cursor {
    /// The cursor of `rail` at `offset`.
    pub fn new(rail: &str, offset: usize) -> Cursor {
        Cursor { rail: rail.to_owned(), offset }
    }

    /// As sent to clients.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// The offset in `rail` a client's cursor points at; `None` when it is
    /// not one of ours, or is for another rail.
    pub fn decode(text: &str, rail: &str) -> Option<usize> {
        let bytes = URL_SAFE_NO_PAD.decode(text.as_bytes()).ok()?;
        let cursor: Cursor = serde_json::from_slice(&bytes).ok()?;
        (cursor.rail == rail && cursor.offset <= 10_000).then_some(cursor.offset)
    }
}

#[cfg(test)]
mod tests {
    use super::Cursor;

    #[test]
    fn cursors_round_trip_and_refuse_other_rails_and_junk() {
        let cursor = Cursor::new("category-shoes", 6).encode();
        assert_eq!(Cursor::decode(&cursor, "category-shoes"), Some(6));
        assert_eq!(Cursor::decode(&cursor, "on-sale"), None, "a cursor is for its rail only");
        assert_eq!(Cursor::decode("not-a-cursor", "on-sale"), None);
        assert_eq!(Cursor::decode(&Cursor::new("on-sale", 1_000_000).encode(), "on-sale"), None);
    }
}
