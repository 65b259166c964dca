//! The pooled HTTP client, the guarded endpoint per service and the typed
//! clients built on them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bff_auth::ServiceTokens;
use bff_compose::CallCtx;
use bff_error::{Failure, ReasonCode};
use bff_resilience::{Dependency, GuardError, Idempotency};
use reqwest::{Method, StatusCode, Url, header};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::model::{
    Cart, Categories, LockState, OrderDetail, Orders, Price, PriceBatch, Product, ProductBatch, ProductList,
    ProductPage, Promotions, Recommendations, ReviewList, ReviewSummary, ShippingEstimate, Stock, StockBatch,
    UserPage, UserProfile, Validate,
};
use crate::{DownstreamConfig, DownstreamError, Service};

/// One service as seen from this BFF: its base URL, its guard, the shared
/// HTTP client. Cheap to clone.
///
/// A service that is not on the BFF's egress list (not configured) still
/// has an endpoint, so every typed client exists, but it refuses every call
/// at once with [`DownstreamError::NotOnEgressList`] and sends nothing.
#[derive(Debug, Clone)]
pub struct Endpoint {
    service: Service,
    inner: Option<Arc<EndpointInner>>,
}

#[derive(Debug)]
struct EndpointInner {
    base: Url,
    guard: Dependency,
    http: reqwest::Client,
    max_response_bytes: usize,
    tokens: Arc<dyn ServiceTokens>,
    scopes: Vec<String>,
}

impl Endpoint {
    /// The service this endpoint calls.
    pub fn service(&self) -> Service {
        self.service
    }

    /// The guard of this service (breaker and bulkhead state, for readiness
    /// and tests); `None` when the service is not on the egress list.
    pub fn guard(&self) -> Option<&Dependency> {
        self.inner.as_deref().map(|inner| &inner.guard)
    }

    /// The endpoint's wiring, or the refusal of a service not on the egress list.
    fn wired(&self) -> Result<&EndpointInner, DownstreamError> {
        self.inner.as_deref().ok_or(DownstreamError::NotOnEgressList { service: self.service })
    }

    /// `GET base/segments...?query` under the guard, decoded into `T` and
    /// validated. Segments are percent-encoded, so an id can never change
    /// the host or climb the path.
    pub async fn get<T>(
        &self,
        cx: &CallCtx,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<T, DownstreamError>
    where
        T: DeserializeOwned + Validate,
    {
        // GETs are idempotent: the guard may retry or hedge them.
        self.call(cx, Method::GET, segments, query, None, Idempotency::Idempotent).await
    }

    /// `POST base/segments...` with a JSON body: a write, so it is sent at
    /// most once (never retried, never hedged), under the same guard. The
    /// caller's `Idempotency-Key`, when given, is forwarded: it is what makes
    /// the *caller's* retry safe, at the service that owns the write. A
    /// write whose answer is lost is [`DownstreamError::OutcomeUnknown`].
    pub async fn post<B, T>(
        &self,
        cx: &CallCtx,
        segments: &[&str],
        body: &B,
        idempotency_key: Option<&str>,
    ) -> Result<T, DownstreamError>
    where
        B: Serialize,
        T: DeserializeOwned + Validate,
    {
        self.write(cx, Method::POST, segments, Some(self.json(body)?), idempotency_key).await
    }

    /// `PATCH base/segments...` with a JSON body: a write, as [`Endpoint::post`].
    pub async fn patch<B, T>(
        &self,
        cx: &CallCtx,
        segments: &[&str],
        body: &B,
        idempotency_key: Option<&str>,
    ) -> Result<T, DownstreamError>
    where
        B: Serialize,
        T: DeserializeOwned + Validate,
    {
        self.write(cx, Method::PATCH, segments, Some(self.json(body)?), idempotency_key).await
    }

    /// `DELETE base/segments...`: a write, as [`Endpoint::post`].
    pub async fn delete<T>(
        &self,
        cx: &CallCtx,
        segments: &[&str],
        idempotency_key: Option<&str>,
    ) -> Result<T, DownstreamError>
    where
        T: DeserializeOwned + Validate,
    {
        self.write(cx, Method::DELETE, segments, None, idempotency_key).await
    }

    /// A write's body as JSON (a body that cannot be serialized is a request
    /// not built, never sent).
    fn json<B: Serialize>(&self, body: &B) -> Result<Vec<u8>, DownstreamError> {
        let service = self.service;
        serde_json::to_vec(body)
            .map_err(|e| DownstreamError::BadRequest { service, problem: format!("body: {e}") })
    }

    async fn write<T>(
        &self,
        cx: &CallCtx,
        method: Method,
        segments: &[&str],
        json: Option<Vec<u8>>,
        idempotency_key: Option<&str>,
    ) -> Result<T, DownstreamError>
    where
        T: DeserializeOwned + Validate,
    {
        let payload = Payload { json, idempotency_key: idempotency_key.map(str::to_owned) };
        self.call(cx, method, segments, &[], Some(payload), Idempotency::NonIdempotent).await
    }

    async fn call<T>(
        &self,
        cx: &CallCtx,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<Payload>,
        idempotency: Idempotency,
    ) -> Result<T, DownstreamError>
    where
        T: DeserializeOwned + Validate,
    {
        let service = self.service;
        let result = async {
            let inner = self.wired()?;
            let url = self.url(segments, query)?;
            let token = self.service_token(cx).await?;
            let attempt = |budget| {
                self.send::<T>(inner, cx, method.clone(), url.clone(), body.clone(), token.clone(), budget)
            };
            let write = idempotency == Idempotency::NonIdempotent;
            inner.guard.call(cx.deadline(), idempotency, attempt).await.map_err(|error| match error {
                // A write cut by its timeout, or whose connection broke after
                // it was sent, may have happened: say so, so the caller retries
                // with the same key rather than giving up or writing twice.
                GuardError::Rejected(failure) if write && failure.reason == ReasonCode::Timeout => {
                    DownstreamError::OutcomeUnknown { service, cause: "no answer in time".to_owned() }
                }
                GuardError::Failed(DownstreamError::Transport { source, .. })
                    if write && !source.is_connect() =>
                {
                    DownstreamError::OutcomeUnknown { service, cause: crate::error::causes(&source) }
                }
                GuardError::Rejected(failure) => DownstreamError::Rejected { service, failure },
                GuardError::Failed(error) => error,
            })
        }
        .await;
        match &result {
            // A well-formed "no such entity" is an answer, not a failure.
            Err(error @ DownstreamError::NotFound { .. }) => {
                tracing::debug!(dependency = %service, error = %error, "downstream: not found");
            }
            Err(error) => tracing::warn!(dependency = %service, error = %error, "downstream call failed"),
            Ok(_) => {}
        }
        result
    }

    fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<Url, DownstreamError> {
        let service = self.service;
        let mut url = self.wired()?.base.clone();
        {
            let mut path = url.path_segments_mut().map_err(|()| DownstreamError::BadRequest {
                service,
                problem: "base URL cannot take a path".to_owned(),
            })?;
            path.pop_if_empty();
            for segment in segments {
                if segment.is_empty() || *segment == "." || *segment == ".." {
                    return Err(DownstreamError::BadRequest {
                        service,
                        problem: format!("path segment {segment:?} is not allowed"),
                    });
                }
                path.push(segment);
            }
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    /// The token this call carries: the caller's token exchanged for this
    /// service, or for the BFF's own work its own token (before the guard,
    /// so an identity-provider failure does not count against the service's
    /// breaker). Unauthenticated requests carry none.
    async fn service_token(&self, cx: &CallCtx) -> Result<Option<Arc<str>>, DownstreamError> {
        let service = self.service;
        let inner = self.wired()?;
        let exchange = match cx.principal() {
            Some(principal) => inner.tokens.token_for(principal, service.name(), &inner.scopes),
            None if cx.is_own_behalf() => inner.tokens.own_token(service.name(), &inner.scopes),
            None => return Ok(None),
        };
        match tokio::time::timeout(cx.deadline().remaining(), exchange).await {
            Ok(Ok(token)) => Ok(Some(token)),
            Ok(Err(source)) => Err(DownstreamError::Credentials { service, source: Box::new(source) }),
            Err(_) => Err(DownstreamError::Rejected { service, failure: Failure::new(ReasonCode::Timeout) }),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn send<T>(
        &self,
        inner: &EndpointInner,
        cx: &CallCtx,
        method: Method,
        url: Url,
        body: Option<Payload>,
        token: Option<Arc<str>>,
        budget: Duration,
    ) -> Result<T, DownstreamError>
    where
        T: DeserializeOwned + Validate,
    {
        let service = self.service;
        let method_is_write = body.is_some();
        let mut request =
            inner.http.request(method, url).timeout(budget).header(header::ACCEPT, "application/json");
        if let Some(Payload { json, idempotency_key }) = body {
            if let Some(json) = json {
                request = request.header(header::CONTENT_TYPE, "application/json").body(json);
            }
            if let Some(key) = idempotency_key {
                request = request.header("idempotency-key", key);
            }
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in cx.request().outbound_headers() {
            request = request.header(name, value);
        }
        // One attempt on the wire: the request's fan-out, as the services see it.
        cx.request().note_downstream_call();
        let mut response = request.send().await.map_err(|source| {
            tracing::debug!(error = %source, "transport error");
            DownstreamError::Transport { service, source }
        })?;
        match response.status() {
            status if status.is_success() => {}
            StatusCode::NOT_FOUND => return Err(DownstreamError::NotFound { service }),
            // The service's owner check: to this caller, the entity does not exist.
            StatusCode::FORBIDDEN => return Err(DownstreamError::Forbidden { service }),
            // The service's idempotency check: the key was used for another request.
            StatusCode::UNPROCESSABLE_ENTITY if method_is_write => {
                return Err(DownstreamError::KeyReused { service });
            }
            StatusCode::TOO_MANY_REQUESTS => {
                let retry_after = response
                    .headers()
                    .get(header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                return Err(DownstreamError::RateLimited { service, retry_after });
            }
            status => return Err(DownstreamError::Status { service, status: status.as_u16() }),
        }
        // A proxy's HTML error page with a 200 is not data: say so plainly.
        let content_type = response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        if let Some(content_type) = content_type.filter(|ct| !is_json(ct)) {
            return Err(DownstreamError::Undecodable {
                service,
                problem: format!("content type `{content_type}` is not JSON"),
            });
        }
        let limit = inner.max_response_bytes;
        if response.content_length().is_some_and(|length| length > limit as u64) {
            return Err(DownstreamError::Undecodable {
                service,
                problem: format!("declared body over {limit} bytes"),
            });
        }
        let mut body = Vec::new();
        while let Some(chunk) =
            response.chunk().await.map_err(|source| DownstreamError::Transport { service, source })?
        {
            if body.len() + chunk.len() > limit {
                return Err(DownstreamError::Undecodable {
                    service,
                    problem: format!("body over {limit} bytes"),
                });
            }
            body.extend_from_slice(&chunk);
        }
        let value: T = serde_json::from_slice(&body)
            .map_err(|e| DownstreamError::Undecodable { service, problem: e.to_string() })?;
        value.validate().map_err(|problem| DownstreamError::InvalidData { service, problem })?;
        Ok(value)
    }
}

/// `application/json`, or any `+json` type, whatever the parameters.
fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The body of a write (none for a `DELETE`), and its `Idempotency-Key`.
#[derive(Debug, Clone)]
struct Payload {
    json: Option<Vec<u8>>,
    idempotency_key: Option<String>,
}

macro_rules! typed_client {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name {
            endpoint: Endpoint,
        }

        impl $name {
            /// The underlying endpoint (guard state, service name).
            pub fn endpoint(&self) -> &Endpoint {
                &self.endpoint
            }
        }
    };
}

typed_client!(
    /// The user service.
    UserClient
);
typed_client!(
    /// The catalog service.
    CatalogClient
);
typed_client!(
    /// The pricing service.
    PricingClient
);
typed_client!(
    /// The inventory service.
    InventoryClient
);
typed_client!(
    /// The cart service.
    CartClient
);
typed_client!(
    /// The recommendations service.
    RecommendationsClient
);
typed_client!(
    /// The promotions service.
    PromotionsClient
);
typed_client!(
    /// The shipping service.
    ShippingClient
);
typed_client!(
    /// The reviews service.
    ReviewsClient
);
typed_client!(
    /// The orders service.
    OrdersClient
);

impl UserClient {
    /// `GET /users/{id}`.
    pub async fn profile(&self, cx: CallCtx, user_id: &str) -> Result<UserProfile, DownstreamError> {
        self.endpoint.get(&cx, &["users", user_id], &[]).await
    }

    /// `GET /users?query=..&offset=..&limit=..` (staff): users whose id,
    /// name or e-mail contains `query`, by id, a page at a time.
    pub async fn search(
        &self,
        cx: CallCtx,
        query: &str,
        offset: u32,
        limit: u8,
    ) -> Result<UserPage, DownstreamError> {
        let (offset, limit) = (offset.to_string(), limit.to_string());
        self.endpoint.get(&cx, &["users"], &[("query", query), ("offset", &offset), ("limit", &limit)]).await
    }

    /// `POST /users/{id}/lock` or `/unlock` with the reason (admins): sets
    /// the account's lock state, idempotently; answers it. A write: sent
    /// once. Not an admin is [`DownstreamError::Forbidden`].
    pub async fn set_lock(
        &self,
        cx: CallCtx,
        user_id: &str,
        lock: bool,
        reason: &str,
    ) -> Result<LockState, DownstreamError> {
        let action = if lock { "lock" } else { "unlock" };
        let body = serde_json::json!({ "reason": reason });
        self.endpoint.post(&cx, &["users", user_id, action], &body, None).await
    }
}

impl CatalogClient {
    /// `GET /products/{id}`; `not_found` for unknown ids.
    pub async fn product(&self, cx: CallCtx, product_id: &str) -> Result<Product, DownstreamError> {
        self.endpoint.get(&cx, &["products", product_id], &[]).await
    }

    /// `GET /products/batch?ids=..`: up to 100 products in one call (the
    /// DataLoader pattern: one call per service, not one per id); an
    /// unknown id is absent from the answer.
    pub async fn batch(&self, cx: CallCtx, product_ids: &[&str]) -> Result<ProductBatch, DownstreamError> {
        let ids = product_ids.join(",");
        self.endpoint.get(&cx, &["products", "batch"], &[("ids", &ids)]).await
    }

    /// `GET /products/page?offset=..&limit=..`: the whole catalog in its
    /// stable order, a page at a time.
    pub async fn page(&self, cx: CallCtx, offset: u32, limit: u8) -> Result<ProductPage, DownstreamError> {
        let (offset, limit) = (offset.to_string(), limit.to_string());
        self.endpoint.get(&cx, &["products", "page"], &[("offset", &offset), ("limit", &limit)]).await
    }

    /// `GET /categories`: every category, in catalog order.
    pub async fn categories(&self, cx: CallCtx) -> Result<Categories, DownstreamError> {
        self.endpoint.get(&cx, &["categories"], &[]).await
    }

    /// `GET /products?category=..&limit=..`: a category's products; `not_found`
    /// for an unknown category.
    pub async fn in_category(
        &self,
        cx: CallCtx,
        category: &str,
        limit: u8,
    ) -> Result<ProductList, DownstreamError> {
        let limit = limit.to_string();
        self.endpoint.get(&cx, &["products"], &[("category", category), ("limit", &limit)]).await
    }
}

impl PricingClient {
    /// `GET /prices/{productId}`.
    pub async fn price(&self, cx: CallCtx, product_id: &str) -> Result<Price, DownstreamError> {
        self.endpoint.get(&cx, &["prices", product_id], &[]).await
    }

    /// `GET /prices?ids=..`: the prices of up to 100 products in one call;
    /// an unknown id is absent from the answer.
    pub async fn batch(&self, cx: CallCtx, product_ids: &[&str]) -> Result<PriceBatch, DownstreamError> {
        let ids = product_ids.join(",");
        self.endpoint.get(&cx, &["prices"], &[("ids", &ids)]).await
    }
}

impl InventoryClient {
    /// `GET /stock/{productId}`.
    pub async fn stock(&self, cx: CallCtx, product_id: &str) -> Result<Stock, DownstreamError> {
        self.endpoint.get(&cx, &["stock", product_id], &[]).await
    }

    /// `GET /stock?ids=..`: the stock of up to 100 products in one call; an
    /// unknown id is absent from the answer.
    pub async fn batch(&self, cx: CallCtx, product_ids: &[&str]) -> Result<StockBatch, DownstreamError> {
        let ids = product_ids.join(",");
        self.endpoint.get(&cx, &["stock"], &[("ids", &ids)]).await
    }
}

impl CartClient {
    /// `GET /carts/{userId}`.
    pub async fn cart(&self, cx: CallCtx, user_id: &str) -> Result<Cart, DownstreamError> {
        self.endpoint.get(&cx, &["carts", user_id], &[]).await
    }

    /// `POST /carts/{userId}/items` with the caller's `Idempotency-Key`:
    /// adds a line; returns the cart. A write: never retried here. The cart
    /// service answers a repeated key with the first answer; a key reused
    /// for another request is [`DownstreamError::KeyReused`], an unknown
    /// product [`DownstreamError::NotFound`].
    pub async fn add_item(
        &self,
        cx: CallCtx,
        user_id: &str,
        product_id: &str,
        quantity: u32,
        idempotency_key: &str,
    ) -> Result<Cart, DownstreamError> {
        let body = serde_json::json!({ "productId": product_id, "quantity": quantity });
        self.endpoint.post(&cx, &["carts", user_id, "items"], &body, Some(idempotency_key)).await
    }

    /// `PATCH /carts/{userId}/items/{productId}`: sets a line's quantity;
    /// returns the cart. A product not in the cart is [`DownstreamError::NotFound`].
    pub async fn set_quantity(
        &self,
        cx: CallCtx,
        user_id: &str,
        product_id: &str,
        quantity: u32,
        idempotency_key: &str,
    ) -> Result<Cart, DownstreamError> {
        let body = serde_json::json!({ "quantity": quantity });
        self.endpoint.patch(&cx, &["carts", user_id, "items", product_id], &body, Some(idempotency_key)).await
    }

    /// `DELETE /carts/{userId}/items/{productId}`: removes a line; returns
    /// the cart. A product not in the cart is [`DownstreamError::NotFound`].
    pub async fn remove_item(
        &self,
        cx: CallCtx,
        user_id: &str,
        product_id: &str,
        idempotency_key: &str,
    ) -> Result<Cart, DownstreamError> {
        self.endpoint.delete(&cx, &["carts", user_id, "items", product_id], Some(idempotency_key)).await
    }
}

impl RecommendationsClient {
    /// `GET /recommendations?user=..&context=..&limit=..`. `context` is
    /// `home` or `product:{id}`.
    pub async fn for_user(
        &self,
        cx: CallCtx,
        user_id: &str,
        context: &str,
        limit: u8,
    ) -> Result<Recommendations, DownstreamError> {
        let limit = limit.to_string();
        self.endpoint
            .get(&cx, &["recommendations"], &[("user", user_id), ("context", context), ("limit", &limit)])
            .await
    }
}

impl RecommendationsClient {
    /// `GET /recommendations?segment=..&context=..&limit=..`: suggestions for
    /// everyone in a segment (cacheable per segment, unlike per-user ones).
    pub async fn for_segment(
        &self,
        cx: CallCtx,
        segment: &str,
        context: &str,
        limit: u8,
    ) -> Result<Recommendations, DownstreamError> {
        let limit = limit.to_string();
        self.endpoint
            .get(&cx, &["recommendations"], &[("segment", segment), ("context", context), ("limit", &limit)])
            .await
    }
}

impl PromotionsClient {
    /// `GET /promotions?segment=..`: the promotions of a segment (and for all).
    pub async fn for_segment(&self, cx: CallCtx, segment: &str) -> Result<Promotions, DownstreamError> {
        self.endpoint.get(&cx, &["promotions"], &[("segment", segment)]).await
    }

    /// `GET /promotions?user=..`: the promotions this user is eligible for.
    pub async fn for_user(&self, cx: CallCtx, user_id: &str) -> Result<Promotions, DownstreamError> {
        self.endpoint.get(&cx, &["promotions"], &[("user", user_id)]).await
    }
}

impl ShippingClient {
    /// `GET /estimates?user=..`: delivery estimate to the user's default address.
    pub async fn estimate(&self, cx: CallCtx, user_id: &str) -> Result<ShippingEstimate, DownstreamError> {
        self.endpoint.get(&cx, &["estimates"], &[("user", user_id)]).await
    }
}

impl ReviewsClient {
    /// `GET /reviews/{productId}/summary`.
    pub async fn summary(&self, cx: CallCtx, product_id: &str) -> Result<ReviewSummary, DownstreamError> {
        self.endpoint.get(&cx, &["reviews", product_id, "summary"], &[]).await
    }

    /// `GET /reviews/{productId}?limit=..`: the latest reviews, newest first.
    pub async fn latest(
        &self,
        cx: CallCtx,
        product_id: &str,
        limit: u8,
    ) -> Result<ReviewList, DownstreamError> {
        let limit = limit.to_string();
        self.endpoint.get(&cx, &["reviews", product_id], &[("limit", &limit)]).await
    }
}

impl OrdersClient {
    /// `GET /orders?user=..`: the first page of the user's orders, newest first.
    pub async fn for_user(&self, cx: CallCtx, user_id: &str) -> Result<Orders, DownstreamError> {
        self.endpoint.get(&cx, &["orders"], &[("user", user_id)]).await
    }

    /// `GET /orders?user=..&limit=..[&cursor=..]`: one page of the user's
    /// orders, newest first; `cursor` is the service's `nextCursor`.
    pub async fn page(
        &self,
        cx: CallCtx,
        user_id: &str,
        limit: u8,
        cursor: Option<&str>,
    ) -> Result<Orders, DownstreamError> {
        let limit = limit.to_string();
        let mut query = vec![("user", user_id), ("limit", limit.as_str())];
        if let Some(cursor) = cursor {
            query.push(("cursor", cursor));
        }
        self.endpoint.get(&cx, &["orders"], &query).await
    }

    /// `GET /orders/{id}`: one order with its lines. Another user's order
    /// is [`DownstreamError::Forbidden`] (the service's owner check), an
    /// unknown one [`DownstreamError::NotFound`].
    pub async fn order(&self, cx: CallCtx, order_id: &str) -> Result<OrderDetail, DownstreamError> {
        self.endpoint.get(&cx, &["orders", order_id], &[]).await
    }

    /// `GET /orders/{id}`, for `user_id` only: another user's order is
    /// [`DownstreamError::NotFound`], exactly like an unknown one (OWASP
    /// API1). The service refuses it itself; this checks the owner again,
    /// so a service that forgets cannot become a leak.
    pub async fn order_of(
        &self,
        cx: CallCtx,
        user_id: &str,
        order_id: &str,
    ) -> Result<OrderDetail, DownstreamError> {
        let service = self.endpoint.service;
        match self.order(cx, order_id).await {
            Err(DownstreamError::Forbidden { .. }) => Err(DownstreamError::NotFound { service }),
            Ok(order) if order.user_id != user_id => {
                tracing::warn!(dependency = %service, "the service returned another user's order; not shown");
                Err(DownstreamError::NotFound { service })
            }
            other => other,
        }
    }

    /// `POST /orders` with the caller's `Idempotency-Key`: places an order
    /// of `lines` (`(productId, quantity)`) for `user_id`. The service keeps
    /// the key durably: a repeat is answered with the first order, a key
    /// reused for other lines is [`DownstreamError::KeyReused`]. A lost
    /// answer is [`DownstreamError::OutcomeUnknown`].
    pub async fn place(
        &self,
        cx: CallCtx,
        user_id: &str,
        lines: &[(&str, u32)],
        idempotency_key: &str,
    ) -> Result<OrderDetail, DownstreamError> {
        let items: Vec<serde_json::Value> = lines
            .iter()
            .map(
                |(product_id, quantity)| serde_json::json!({ "productId": product_id, "quantity": quantity }),
            )
            .collect();
        let body = serde_json::json!({ "userId": user_id, "items": items });
        self.endpoint.post(&cx, &["orders"], &body, Some(idempotency_key)).await
    }
}

/// Every typed client, built from one configuration and sharing one
/// connection pool. Build it once at start-up and share it (it is `Clone`).
#[derive(Debug, Clone)]
pub struct Api {
    /// The user service.
    pub users: UserClient,
    /// The catalog service.
    pub catalog: CatalogClient,
    /// The pricing service.
    pub pricing: PricingClient,
    /// The inventory service.
    pub inventory: InventoryClient,
    /// The cart service.
    pub cart: CartClient,
    /// The recommendations service.
    pub recommendations: RecommendationsClient,
    /// The promotions service.
    pub promotions: PromotionsClient,
    /// The shipping service.
    pub shipping: ShippingClient,
    /// The reviews service.
    pub reviews: ReviewsClient,
    /// The orders service.
    pub orders: OrdersClient,
}

impl Api {
    /// Builds every client. Services configured in `config` (the egress
    /// list) get a guarded endpoint; the others refuse every call with
    /// [`DownstreamError::NotOnEgressList`]. Fails on an invalid
    /// configuration, so a bad URL stops start-up instead of failing requests.
    ///
    /// Calls made for an authenticated caller carry a token from `tokens`
    /// for the called service, never the caller's own token.
    pub fn new(
        config: &DownstreamConfig,
        user_agent: &str,
        tokens: Arc<dyn ServiceTokens>,
    ) -> Result<Self, DownstreamError> {
        let problems = config.problems();
        if !problems.is_empty() {
            return Err(DownstreamError::Config(problems));
        }
        let http = reqwest::Client::builder()
            .user_agent(user_agent)
            .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(64)
            // Egress is an allow-list of base URLs: a redirect could leave it.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| DownstreamError::Config(vec![format!("HTTP client: {e}")]))?;
        let mut endpoints: HashMap<Service, Endpoint> = HashMap::new();
        for service in Service::ALL {
            let inner = match config.service(service) {
                None => None,
                Some(settings) => {
                    let base = settings
                        .parsed_base_url()
                        .map_err(|p| DownstreamError::Config(vec![format!("services.{service}.{p}")]))?;
                    Some(Arc::new(EndpointInner {
                        base,
                        guard: Dependency::new(service.name(), &settings.policy()),
                        http: http.clone(),
                        max_response_bytes: config.max_response_bytes,
                        tokens: Arc::clone(&tokens),
                        scopes: settings.scopes.clone(),
                    }))
                }
            };
            endpoints.insert(service, Endpoint { service, inner });
        }
        let mut take =
            |service: Service| endpoints.remove(&service).unwrap_or(Endpoint { service, inner: None });
        Ok(Api {
            users: UserClient { endpoint: take(Service::User) },
            catalog: CatalogClient { endpoint: take(Service::Catalog) },
            pricing: PricingClient { endpoint: take(Service::Pricing) },
            inventory: InventoryClient { endpoint: take(Service::Inventory) },
            cart: CartClient { endpoint: take(Service::Cart) },
            recommendations: RecommendationsClient { endpoint: take(Service::Recommendations) },
            promotions: PromotionsClient { endpoint: take(Service::Promotions) },
            shipping: ShippingClient { endpoint: take(Service::Shipping) },
            reviews: ReviewsClient { endpoint: take(Service::Reviews) },
            orders: OrdersClient { endpoint: take(Service::Orders) },
        })
    }

    /// The services this BFF calls (its egress list), in port order.
    pub fn egress(&self) -> Vec<Service> {
        [
            &self.users.endpoint,
            &self.catalog.endpoint,
            &self.pricing.endpoint,
            &self.inventory.endpoint,
            &self.cart.endpoint,
            &self.recommendations.endpoint,
            &self.promotions.endpoint,
            &self.shipping.endpoint,
            &self.reviews.endpoint,
            &self.orders.endpoint,
        ]
        .into_iter()
        .filter(|endpoint| endpoint.inner.is_some())
        .map(Endpoint::service)
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct NoTokens;

    impl ServiceTokens for NoTokens {
        fn token_for<'a>(
            &'a self,
            _: &'a bff_auth::Principal,
            _: &'a str,
            _: &'a [String],
        ) -> bff_auth::TokenFuture<'a> {
            Box::pin(async { Err(bff_auth::AuthError::MissingCredentials) })
        }

        fn own_token<'a>(&'a self, _: &'a str, _: &'a [String]) -> bff_auth::TokenFuture<'a> {
            Box::pin(async { Err(bff_auth::AuthError::MissingCredentials) })
        }
    }

    fn api() -> Api {
        Api::new(&DownstreamConfig::for_services(&[Service::Catalog]), "test", Arc::new(NoTokens))
            .expect("default config builds")
    }

    #[tokio::test]
    async fn a_service_off_the_egress_list_refuses_at_once_and_sends_nothing() {
        let api = api();
        assert_eq!(api.egress(), vec![Service::Catalog]);
        let cx = CallCtx::new(
            bff_telemetry::RequestContext::detached(),
            bff_resilience::Deadline::after(Duration::from_secs(1)),
        );
        let refused = api.pricing.price(cx, "p-1").await;
        assert!(
            matches!(refused, Err(DownstreamError::NotOnEgressList { service: Service::Pricing })),
            "{refused:?}"
        );
        assert!(api.pricing.endpoint().guard().is_none(), "no guard, no pool, no calls");
    }

    #[test]
    fn json_content_types_are_recognised() {
        for json in ["application/json", "application/json; charset=utf-8", "application/problem+json"] {
            assert!(is_json(json), "{json}");
        }
        for other in ["text/html", "text/plain; charset=utf-8", "application/xml"] {
            assert!(!is_json(other), "{other}");
        }
    }

    #[test]
    fn ids_are_percent_encoded_path_segments() {
        let endpoint = api().catalog.endpoint().clone();
        let url = endpoint.url(&["products", "a/../b?x=1#y"], &[]).expect("url");
        assert_eq!(url.as_str(), "http://127.0.0.1:7002/products/a%2F..%2Fb%3Fx=1%23y");
        assert_eq!(url.host_str(), Some("127.0.0.1"));
    }

    #[test]
    fn dot_segments_are_refused() {
        let endpoint = api().catalog.endpoint().clone();
        assert!(endpoint.url(&["products", ".."], &[]).is_err());
        assert!(endpoint.url(&["products", ""], &[]).is_err());
    }
}
