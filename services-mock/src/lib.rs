//! Mock downstream services and identity provider.
//!
//! Each [`Service`] is an axum app on its own port with deterministic seed
//! data ([`seed`]), plus admin routes every mock shares:
//!
//! * `PUT /__faults` (body: [`faults::Faults`]), `GET /__faults`, `DELETE /__faults`
//! * `GET /__stats`, `DELETE /__stats`: requests per route, in flight, and the
//!   recent requests with their `x-request-id` and `traceparent`
//! * `GET /__schemas`: JSON Schema of every response, by route
//! * `POST /__pact/provider-states`: Pact provider states ([`provider_states`])
//! * `GET /healthz`
//!
//! Faults apply to service routes only, never to the admin routes, so a test
//! can always heal a mock it broke. [`fleet::Fleet`] starts every mock
//! in-process on free ports, for tests.

pub mod console;
pub mod credentials;
pub mod device;
pub mod faults;
pub mod fleet;
pub mod identity;
pub mod orders;
pub mod provider_states;
pub mod seed;
pub mod services;

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;

use axum::Json;
use axum::extract::FromRef;
use axum::http::StatusCode;
use axum::routing::get;

use crate::faults::Control;
use crate::identity::Identity;
use crate::seed::Seed;

pub use fleet::Fleet;

/// The routers of this crate carry [`MockState`].
pub(crate) type Router = axum::Router<MockState>;

/// A mock service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    /// Identity provider: JWKS and tokens.
    Identity,
    /// Profiles.
    User,
    /// Products.
    Catalog,
    /// Prices.
    Pricing,
    /// Stock.
    Inventory,
    /// Carts.
    Cart,
    /// Suggestions.
    Recommendations,
    /// Promotions.
    Promotions,
    /// Delivery estimates.
    Shipping,
    /// Ratings.
    Reviews,
    /// Order history.
    Orders,
}

impl Service {
    /// Every mock, identity first, in port order.
    pub const ALL: [Service; 11] = [
        Service::Identity,
        Service::User,
        Service::Catalog,
        Service::Pricing,
        Service::Inventory,
        Service::Cart,
        Service::Recommendations,
        Service::Promotions,
        Service::Shipping,
        Service::Reviews,
        Service::Orders,
    ];

    /// Name on the command line and in logs.
    pub const fn name(self) -> &'static str {
        match self {
            Service::Identity => "identity",
            Service::User => "user",
            Service::Catalog => "catalog",
            Service::Pricing => "pricing",
            Service::Inventory => "inventory",
            Service::Cart => "cart",
            Service::Recommendations => "recommendations",
            Service::Promotions => "promotions",
            Service::Shipping => "shipping",
            Service::Reviews => "reviews",
            Service::Orders => "orders",
        }
    }

    /// Default development port: identity 7000, then 7001..=7010.
    pub const fn default_port(self) -> u16 {
        7000 + self as u16
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Service {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Service::ALL.into_iter().find(|service| service.name() == s).ok_or_else(|| {
            let names: Vec<_> = Service::ALL.iter().map(|s| s.name()).collect();
            format!("unknown service `{s}` (known: {})", names.join(", "))
        })
    }
}

/// State of one running mock.
#[derive(Debug, Clone)]
pub struct MockState {
    /// Faults and stats.
    pub control: Control,
    /// The seed data.
    pub seed: &'static Seed,
    /// The identity provider's keys (every mock has them: later issues make
    /// services validate the tokens they receive).
    pub identity: Arc<Identity>,
    /// Cart writes seen, by `Idempotency-Key`.
    pub writes: services::Writes,
    /// Carts as changed by writes (the seed's until then).
    pub carts: services::Carts,
    /// Orders placed (the orders service's; durable with a data directory).
    pub orders: Arc<orders::OrderStore>,
    /// Locked accounts (the user service's).
    pub locks: services::Locks,
}

impl FromRef<MockState> for Control {
    fn from_ref(state: &MockState) -> Self {
        state.control.clone()
    }
}

impl MockState {
    /// Fresh state: healthy, zero stats.
    pub fn new(issuer: &str) -> anyhow::Result<Self> {
        Ok(MockState {
            control: Control::default(),
            seed: Seed::shared(),
            identity: Arc::new(Identity::new(issuer)?),
            writes: services::Writes::default(),
            carts: services::Carts::default(),
            orders: Arc::new(orders::OrderStore::in_memory()),
            locks: services::Locks::default(),
        })
    }

    /// Fresh state whose orders are kept in `data_dir` (see [`orders`]).
    pub fn with_data_dir(issuer: &str, data_dir: Option<&std::path::Path>) -> anyhow::Result<Self> {
        let mut state = MockState::new(issuer)?;
        if let Some(dir) = data_dir {
            state.orders = Arc::new(orders::OrderStore::open(dir)?);
        }
        Ok(state)
    }
}

/// The complete app of `service`: service routes behind the fault
/// middleware and (except for the identity provider) the service-token
/// check, plus the admin routes.
pub fn app(service: Service, state: MockState) -> axum::Router {
    let mut service_routes = services::routes(service);
    if service != Service::Identity {
        service_routes = service_routes.route_layer(axum::middleware::from_fn_with_state(
            (Arc::clone(&state.identity), service.name()),
            require_service_token,
        ));
    }
    let service_routes = service_routes
        .route_layer(axum::middleware::from_fn_with_state(state.control.clone(), faults::inject));
    let schemas = services::schemas(service);
    Router::new()
        .merge(service_routes)
        .route("/__faults", get(faults::get_faults).put(faults::put_faults).delete(faults::delete_faults))
        .route("/__stats", get(faults::get_stats).delete(faults::delete_stats))
        .route("/__schemas", get(move || async move { Json(schemas) }))
        .route("/__pact/provider-states", axum::routing::post(provider_states::change))
        .route("/healthz", get(|| async { "ok" }))
        .fallback(|| async { faults::error_body(StatusCode::NOT_FOUND, "no such route") })
        .with_state(state)
}

/// Every domain service accepts only tokens issued for it: a valid
/// signature from the identity provider and `aud` equal to its own name
/// (what token exchange produces). A user's own token, or one for another
/// service, is `401`.
async fn require_service_token(
    axum::extract::State((identity, audience)): axum::extract::State<(Arc<Identity>, &'static str)>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let token = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let verdict = match token {
        None => Err("a bearer service token is required".to_owned()),
        Some(token) => identity.verify(token, audience),
    };
    match verdict {
        Ok(claims) => {
            let mut request = request;
            request.extensions_mut().insert(services::Subject { sub: claims.sub, roles: claims.roles });
            next.run(request).await
        }
        Err(reason) => {
            tracing::info!(%audience, %reason, "rejected service token");
            let mut response = faults::error_body(StatusCode::UNAUTHORIZED, "invalid service token");
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
            response.into_response()
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets in-flight
/// requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

/// Binds `addr` and serves `service` on it (the binary's `serve` command);
/// the orders service keeps its orders in `data_dir` when given.
pub async fn run(
    service: Service,
    addr: SocketAddr,
    issuer: &str,
    data_dir: Option<&std::path::Path>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("{service}: cannot bind {addr}: {e}"))?;
    tracing::info!(%service, addr = %listener.local_addr()?, "mock listening");
    let state = if service == Service::Orders {
        MockState::with_data_dir(issuer, data_dir)?
    } else {
        MockState::new(issuer)?
    };
    serve(listener, app(service, state), shutdown).await?;
    Ok(())
}
