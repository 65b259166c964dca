//! The screens of the TV: few requests, large rails, a remote control.

use axum::Extension;
use axum::extract::State;
use bff_auth::Caller;
use bff_cache::Segment;
use bff_compose::{Envelope, Plan, Precomputed};
use bff_error::{ApiError, ErrorCode};
use bff_server::Backbone;
use bff_server::extract::{Path, Query};
use serde::{Deserialize, Serialize};

use crate::RailsConfig;
use crate::rails::{self, CATALOG, CatalogRails, Cursor, Rail, RailItem, SEGMENT, SegmentRails};

/// One rail as shown: a page of its items, where the next page starts, and
/// how old it is.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RailVm {
    /// Stable id, for `GET /tv/v1/rails/{id}`.
    #[schema(examples("category-shoes"))]
    pub id: String,
    /// Its title.
    pub title: String,
    /// This page of its items.
    pub items: Vec<RailItem>,
    /// The cursor of the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub next_cursor: Option<String>,
    /// Seconds since the rail was computed (0 for rails made for this request).
    pub age_secs: u64,
    /// The rail is older than it should be (its last refresh failed).
    pub stale: bool,
}

/// `GET /tv/v1/browse`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BrowseVm {
    /// The rails, top to bottom; a missing part leaves its rails out.
    pub rails: Vec<RailVm>,
}

/// The browse screen's response (named for the OpenAPI document).
pub type BrowseEnvelope = Envelope<BrowseVm>;

/// The rail screen's response (named for the OpenAPI document).
pub type RailEnvelope = Envelope<RailVm>;

/// A page of `rail` from `offset`, `limit` items long.
fn page(rail: &Rail, offset: usize, limit: usize, age_secs: u64, stale: bool) -> RailVm {
    let end = (offset + limit).min(rail.items.len());
    let items = rail.items.get(offset..end).map(<[RailItem]>::to_vec).unwrap_or_default();
    RailVm {
        id: rail.id.clone(),
        title: rail.title.clone(),
        items,
        next_cursor: (end < rail.items.len()).then(|| Cursor::new(&rail.id, end).encode()),
        age_secs,
        stale,
    }
}

/// A precomputed value's rails, with their age.
fn aged<T>(found: &Option<Precomputed<T>>, rails: impl Fn(&T) -> &[Rail]) -> Vec<(Rail, u64, bool)> {
    found
        .iter()
        .flat_map(|p| rails(&p.value).iter().map(|rail| (rail.clone(), p.age.as_secs(), p.stale)))
        .collect()
}

/// The segment whose precomputed rails the caller sees: theirs when it is
/// precomputed, else `all`.
fn segment_of(config: &RailsConfig, segment: &Segment) -> String {
    if config.segments.iter().any(|s| s == segment.as_str()) { segment.0.clone() } else { "all".to_owned() }
}

/// "Continue shopping": the caller's cart, as product tiles from the
/// catalog snapshot (one call: the cart).
fn continue_rail(cart: &bff_downstream::model::Cart, catalog: Option<&CatalogRails>) -> Rail {
    let items = cart
        .items
        .iter()
        .map(|line| match catalog.and_then(|c| c.products.get(&line.product_id)) {
            Some(tile) => tile.clone(),
            None => RailItem {
                id: line.product_id.clone(),
                title: line.product_id.clone(),
                image_url: None,
                price: None,
                badge: None,
            },
        })
        .collect();
    Rail { id: "continue".to_owned(), title: "Continue shopping".to_owned(), items }
}

/// "Recommended for you" (one call: the user's recommendations).
fn for_you_rail(recommendations: &bff_downstream::model::Recommendations) -> Rail {
    let items = recommendations.items.iter().map(RailItem::from).collect();
    Rail { id: "for-you".to_owned(), title: "Recommended for you".to_owned(), items }
}

/// `GET /tv/v1/browse`: every rail's first page.
///
/// | component | critical | when missing |
/// |---|---|---|
/// | `continue` | no | rail left out (`error`); one call: the cart |
/// | `forYou` | no | rail left out (`error`); one call: recommendations |
/// | `segment` | no | precomputed: stale rails marked (`fallback`, `ageMs`); none yet: left out (`error`) |
/// | `catalog` | no | precomputed: as `segment` |
#[utoipa::path(
    get,
    path = "/tv/v1/browse",
    tag = "screens",
    operation_id = "browse",
    summary = "The browse screen: every rail's first page",
    security(("bearer" = ["catalog"])),
    responses(
        (status = 200, description = "The rails; `components` says which are missing or stale.", body = BrowseEnvelope),
        (status = 401, response = bff_error::openapi::Unauthenticated),
        (status = 503, response = bff_error::openapi::Unavailable),
        (status = 504, response = bff_error::openapi::Timeout),
    )
)]
pub async fn browse(
    State(backbone): State<Backbone>,
    Extension(config): Extension<RailsConfig>,
    caller: Caller,
    segment: Segment,
    plan: Plan,
) -> Result<Envelope<BrowseVm>, ApiError> {
    let (api, user) = (&backbone.api, caller.subject.as_str());
    let catalog = backbone.cache.peek::<CatalogRails>(&rails::catalog_key()).await;
    let segment =
        backbone.cache.peek::<SegmentRails>(&rails::segment_key(&segment_of(&config, &segment))).await;
    let (cart, recommendations) = plan
        .run((
            plan.optional("continue", |cx| api.cart.cart(cx, user)).omit(),
            plan.optional("forYou", |cx| api.recommendations.for_user(cx, user, "tv", config.per_rail))
                .omit(),
        ))
        .await?;
    let mut rails = Vec::new();
    if let Some(cart) = &cart {
        rails.push((continue_rail(cart, catalog.as_ref().map(|c| &c.value)), 0, false));
    }
    if let Some(recommendations) = &recommendations {
        rails.push((for_you_rail(recommendations), 0, false));
    }
    rails.extend(aged(&segment, |s| &s.rails));
    rails.extend(aged(&catalog, |c| &c.rails));
    plan.precomputed(SEGMENT, segment.map(|p| Precomputed { value: (), age: p.age, stale: p.stale }));
    plan.precomputed(CATALOG, catalog.map(|p| Precomputed { value: (), age: p.age, stale: p.stale }));
    let rails =
        rails.iter().map(|(rail, age, stale)| page(rail, 0, config.page_size, *age, *stale)).collect();
    Ok(plan.envelope(BrowseVm { rails }))
}

/// Query of `GET /tv/v1/rails/{id}`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RailQuery {
    /// Where to continue: a rail's `nextCursor`, as this BFF issued it. It
    /// is opaque: any other value is `400 request.invalid`. Absent: the
    /// first page.
    cursor: Option<String>,
    /// Items per page, 1 to 24 (default: the configured page size).
    #[param(minimum = 1, maximum = 24)]
    limit: Option<usize>,
}

/// `GET /tv/v1/rails/{id}?cursor=..&limit=..`: one rail, a page at a
/// time, for scrolling deeper. Precomputed rails make no call; `continue`
/// and `for-you` make one.
#[utoipa::path(
    get,
    path = "/tv/v1/rails/{id}",
    tag = "screens",
    operation_id = "rail",
    summary = "One rail, paginated with an opaque cursor",
    security(("bearer" = ["catalog"])),
    params(
        ("id" = String, Path, description = "A rail id from `/tv/v1/browse`, e.g. `category-shoes`.",
            pattern = "^[a-z0-9-]{1,64}$"),
        RailQuery,
    ),
    responses(
        (status = 200, description = "A page of the rail.", body = RailEnvelope),
        (status = 400, response = bff_error::openapi::BadRequest),
        (status = 401, response = bff_error::openapi::Unauthenticated),
        (status = 404, response = bff_error::openapi::NotFound),
        (status = 503, response = bff_error::openapi::Unavailable),
        (status = 504, response = bff_error::openapi::Timeout),
    )
)]
pub async fn rail(
    State(backbone): State<Backbone>,
    Extension(config): Extension<RailsConfig>,
    caller: Caller,
    segment: Segment,
    plan: Plan,
    Path(id): Path<String>,
    Query(query): Query<RailQuery>,
) -> Result<Envelope<RailVm>, ApiError> {
    let invalid = |detail: &'static str| ApiError::new(ErrorCode::RequestInvalid).with_detail(detail);
    if id.is_empty()
        || id.len() > 64
        || !id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(invalid("not a rail id"));
    }
    let limit = query.limit.unwrap_or(config.page_size);
    if !(1..=24).contains(&limit) {
        return Err(invalid("limit is 1 to 24"));
    }
    let offset = match query.cursor.as_deref() {
        None => 0,
        Some(cursor) => {
            Cursor::decode(cursor, &id).ok_or_else(|| invalid("the cursor is not one of this rail's"))?
        }
    };
    let (api, user) = (&backbone.api, caller.subject.as_str());
    let not_found = || ApiError::new(ErrorCode::NotFound).with_detail("no such rail");
    let (rail, age, stale) = match id.as_str() {
        "continue" => {
            let catalog = backbone.cache.peek::<CatalogRails>(&rails::catalog_key()).await;
            let (cart,) = plan.run((plan.critical("continue", |cx| api.cart.cart(cx, user)),)).await?;
            (continue_rail(&cart, catalog.as_ref().map(|c| &c.value)), 0, false)
        }
        "for-you" => {
            let (recommendations,) = plan
                .run((plan
                    .critical("forYou", |cx| api.recommendations.for_user(cx, user, "tv", config.per_rail)),))
                .await?;
            (for_you_rail(&recommendations), 0, false)
        }
        "popular" | "deals" => {
            let key = rails::segment_key(&segment_of(&config, &segment));
            let found = backbone.cache.peek::<SegmentRails>(&key).await;
            precomputed_rail(&plan, SEGMENT, found, |s| &s.rails, &id).ok_or_else(not_found)??
        }
        _ => {
            let found = backbone.cache.peek::<CatalogRails>(&rails::catalog_key()).await;
            precomputed_rail(&plan, CATALOG, found, |c| &c.rails, &id).ok_or_else(not_found)??
        }
    };
    if offset > rail.items.len() {
        return Err(invalid("the cursor is past the end of the rail"));
    }
    Ok(plan.envelope(page(&rail, offset, limit, age, stale)))
}

/// A precomputed rail by id: `None` when no such rail exists, an error
/// when nothing is computed yet (a cold start: `503`, try again).
fn precomputed_rail<T>(
    plan: &Plan,
    component: &'static str,
    found: Option<Precomputed<T>>,
    rails: impl Fn(&T) -> &[Rail],
    id: &str,
) -> Option<Result<(Rail, u64, bool), ApiError>> {
    let Some(found) = found else {
        plan.precomputed::<()>(component, None);
        let unavailable = ApiError::new(ErrorCode::DependencyUnavailable)
            .with_detail("the rails are being prepared: try again shortly")
            .with_retry_after(std::time::Duration::from_secs(1));
        return Some(Err(unavailable));
    };
    let rail = rails(&found.value).iter().find(|rail| rail.id == id)?.clone();
    let (age, stale) = (found.age.as_secs(), found.stale);
    plan.precomputed(component, Some(Precomputed { value: (), age: found.age, stale }));
    Some(Ok((rail, age, stale)))
}
