//! Clients for the downstream services a BFF composes.
//!
//! * **Egress allow-list.** The only URLs this crate ever calls are the
//!   configured base URLs of the known [`Service`]s plus fixed paths; ids from
//!   callers go into path segments percent-encoded, never into the host. No
//!   redirects are followed.
//! * **One pooled HTTP client** (`reqwest`, rustls) for all services.
//! * **Every call is guarded** by its service's [`bff_resilience::Dependency`]
//!   (breaker, bulkhead, timeout bounded by the caller's deadline) and carries
//!   `x-request-id`, a child `traceparent` and `tracestate`.
//! * **Typed DTOs, validated.** Responses are read into the structs of
//!   [`model`], holding only what BFFs read, then checked ([`Validate`]):
//!   a negative price or an unknown currency is `invalid_data`, never passed
//!   through to a client.
//!
//! Errors ([`DownstreamError`]) name the service and the cause for logs; the
//! response side only ever sees their [`bff_error::ReasonCode`].

mod client;
mod config;
mod error;
pub mod model;
pub mod schema_check;

pub use bff_resilience::{BreakerConfig, HedgePolicy, RetryPolicy};
pub use client::{
    Api, CartClient, CatalogClient, Endpoint, InventoryClient, OrdersClient, PricingClient, PromotionsClient,
    RecommendationsClient, ReviewsClient, ShippingClient, UserClient,
};
pub use config::{DownstreamConfig, Service, ServiceConfig};
pub use error::DownstreamError;
pub use model::{Cacheable, Validate};
