//! The pooled HTTP client, the guarded endpoint per service and the typed
//! clients built on them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bff_error::{Failure, ReasonCode};
use bff_resilience::{CallCtx, Dependency, GuardError, Idempotency, ServiceTokens};
use reqwest::{Method, StatusCode, Url, header};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::model::{
    Cart, Orders, Price, Product, Promotions, Recommendations, ReviewSummary, ShippingEstimate, Stock,
    UserProfile, Validate,
};
use crate::{DownstreamConfig, DownstreamError, Service};

/// One service as seen from this BFF: its base URL, its guard, the shared
/// HTTP client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Endpoint {
    inner: Arc<EndpointInner>,
}

#[derive(Debug)]
struct EndpointInner {
    service: Service,
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
        self.inner.service
    }

    /// The guard of this service (breaker and bulkhead state, for readiness and tests).
    pub fn guard(&self) -> &Dependency {
        &self.inner.guard
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
    /// the *caller's* retry safe, at the service that owns the write.
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
        let service = self.inner.service;
        let json = serde_json::to_vec(body)
            .map_err(|e| DownstreamError::BadRequest { service, problem: format!("body: {e}") })?;
        let payload = Payload { json, idempotency_key: idempotency_key.map(str::to_owned) };
        self.call(cx, Method::POST, segments, &[], Some(payload), Idempotency::NonIdempotent).await
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
        let service = self.inner.service;
        let result = async {
            let url = self.url(segments, query)?;
            let token = self.service_token(cx).await?;
            let attempt =
                |budget| self.send::<T>(cx, method.clone(), url.clone(), body.clone(), token.clone(), budget);
            self.inner.guard.call(cx, idempotency, attempt).await.map_err(|error| match error {
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
        let service = self.inner.service;
        let mut url = self.inner.base.clone();
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
    /// service (before the guard, so an identity-provider failure does not
    /// count against the service's breaker). Unauthenticated requests carry
    /// none.
    async fn service_token(&self, cx: &CallCtx) -> Result<Option<Arc<str>>, DownstreamError> {
        let service = self.inner.service;
        let Some(principal) = cx.principal() else { return Ok(None) };
        let exchange = self.inner.tokens.token_for(principal, service.name(), &self.inner.scopes);
        match tokio::time::timeout(cx.deadline().remaining(), exchange).await {
            Ok(Ok(token)) => Ok(Some(token)),
            Ok(Err(error)) => Err(DownstreamError::Credentials { service, reason: error.0 }),
            Err(_) => Err(DownstreamError::Rejected { service, failure: Failure::new(ReasonCode::Timeout) }),
        }
    }

    async fn send<T>(
        &self,
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
        let service = self.inner.service;
        let mut request =
            self.inner.http.request(method, url).timeout(budget).header(header::ACCEPT, "application/json");
        if let Some(Payload { json, idempotency_key }) = body {
            request = request.header(header::CONTENT_TYPE, "application/json").body(json);
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
        let mut response = request.send().await.map_err(|source| {
            tracing::debug!(error = %source, "transport error");
            DownstreamError::Transport { service, source }
        })?;
        match response.status() {
            status if status.is_success() => {}
            StatusCode::NOT_FOUND => return Err(DownstreamError::NotFound { service }),
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
        let limit = self.inner.max_response_bytes;
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

/// The body of a write, and its `Idempotency-Key`.
#[derive(Debug, Clone)]
struct Payload {
    json: Vec<u8>,
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
}

impl CatalogClient {
    /// `GET /products/{id}`; `not_found` for unknown ids.
    pub async fn product(&self, cx: CallCtx, product_id: &str) -> Result<Product, DownstreamError> {
        self.endpoint.get(&cx, &["products", product_id], &[]).await
    }
}

impl PricingClient {
    /// `GET /prices/{productId}`.
    pub async fn price(&self, cx: CallCtx, product_id: &str) -> Result<Price, DownstreamError> {
        self.endpoint.get(&cx, &["prices", product_id], &[]).await
    }
}

impl InventoryClient {
    /// `GET /stock/{productId}`.
    pub async fn stock(&self, cx: CallCtx, product_id: &str) -> Result<Stock, DownstreamError> {
        self.endpoint.get(&cx, &["stock", product_id], &[]).await
    }
}

impl CartClient {
    /// `GET /carts/{userId}`.
    pub async fn cart(&self, cx: CallCtx, user_id: &str) -> Result<Cart, DownstreamError> {
        self.endpoint.get(&cx, &["carts", user_id], &[]).await
    }

    /// `POST /carts/{userId}/items` with the caller's `Idempotency-Key`:
    /// adds a line; returns the cart. A write: never retried here. The cart
    /// service answers a repeated key with the first answer and a key reused
    /// for another line with `422` (`DownstreamError::Status`).
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
}

impl OrdersClient {
    /// `GET /orders?user=..`: the user's past orders.
    pub async fn for_user(&self, cx: CallCtx, user_id: &str) -> Result<Orders, DownstreamError> {
        self.endpoint.get(&cx, &["orders"], &[("user", user_id)]).await
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
    /// Builds every client. Fails on an invalid configuration, so a bad URL
    /// stops start-up instead of failing requests.
    ///
    /// Calls made for an authenticated caller carry a token from `tokens`
    /// for the called service, never the caller's own token.
    pub fn new(
        config: &DownstreamConfig,
        user_agent: &str,
        tokens: Arc<dyn ServiceTokens>,
    ) -> Result<Self, String> {
        let problems = config.problems();
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        let http = reqwest::Client::builder()
            .user_agent(user_agent)
            .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(64)
            // Egress is an allow-list of base URLs: a redirect could leave it.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        let mut endpoints: HashMap<Service, Endpoint> = HashMap::new();
        for service in Service::ALL {
            let settings = config.service(service).ok_or_else(|| format!("services.{service}: missing"))?;
            let base = settings.parsed_base_url().map_err(|p| format!("services.{service}.{p}"))?;
            let inner = EndpointInner {
                service,
                base,
                guard: Dependency::new(service.name(), &settings.policy()),
                http: http.clone(),
                max_response_bytes: config.max_response_bytes,
                tokens: Arc::clone(&tokens),
                scopes: settings.scopes.clone(),
            };
            endpoints.insert(service, Endpoint { inner: Arc::new(inner) });
        }
        let mut take = |service: Service| {
            endpoints.remove(&service).ok_or_else(|| format!("services.{service}: missing"))
        };
        Ok(Api {
            users: UserClient { endpoint: take(Service::User)? },
            catalog: CatalogClient { endpoint: take(Service::Catalog)? },
            pricing: PricingClient { endpoint: take(Service::Pricing)? },
            inventory: InventoryClient { endpoint: take(Service::Inventory)? },
            cart: CartClient { endpoint: take(Service::Cart)? },
            recommendations: RecommendationsClient { endpoint: take(Service::Recommendations)? },
            promotions: PromotionsClient { endpoint: take(Service::Promotions)? },
            shipping: ShippingClient { endpoint: take(Service::Shipping)? },
            reviews: ReviewsClient { endpoint: take(Service::Reviews)? },
            orders: OrdersClient { endpoint: take(Service::Orders)? },
        })
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
            _: &'a bff_resilience::Principal,
            _: &'a str,
            _: &'a [String],
        ) -> bff_resilience::TokenFuture<'a> {
            Box::pin(async { Err(bff_resilience::TokenUnavailable("none in unit tests".to_owned())) })
        }
    }

    fn api() -> Api {
        Api::new(&DownstreamConfig::default(), "test", Arc::new(NoTokens)).expect("default config builds")
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
