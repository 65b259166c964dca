//! The one error type of downstream calls.

use std::time::Duration;

use bff_auth::AuthError;
use bff_error::{Classify, ErrorCode, Failure, ReasonCode};

use crate::Service;

/// Why a downstream call produced no value. The `Display` text names the
/// service and the cause, for logs only; responses see [`Classify::failure`].
#[derive(Debug, thiserror::Error)]
pub enum DownstreamError {
    /// The guard refused or cut the call (open breaker, full bulkhead, timeout).
    #[error("{service}: call not completed: {}", failure.reason)]
    Rejected {
        /// The service called.
        service: Service,
        /// The guard's verdict.
        failure: Failure,
    },
    /// Connecting, sending or reading failed. The text carries the whole
    /// cause chain: reqwest's own line ("error sending request for url")
    /// does not say whether the connection was refused, reset or closed.
    #[error("{service}: transport error: {}", causes(source))]
    Transport {
        /// The service called.
        service: Service,
        /// The client's error.
        #[source]
        source: reqwest::Error,
    },
    /// The service answered with a status we do not treat as data.
    #[error("{service}: unexpected status {status}")]
    Status {
        /// The service called.
        service: Service,
        /// The status it answered with.
        status: u16,
    },
    /// The service answered 429.
    #[error("{service}: rate limited us (retry after {retry_after:?})")]
    RateLimited {
        /// The service called.
        service: Service,
        /// Its `Retry-After`, if it sent a usable one.
        retry_after: Option<Duration>,
    },
    /// The service says the entity does not exist (404).
    #[error("{service}: not found")]
    NotFound {
        /// The service called.
        service: Service,
    },
    /// The body is not the JSON we expect, or is too large to read.
    #[error("{service}: unreadable body: {problem}")]
    Undecodable {
        /// The service called.
        service: Service,
        /// What was wrong with it.
        problem: String,
    },
    /// The body is well-formed but breaks the contract (e.g. a negative price).
    #[error("{service}: invalid data: {problem}")]
    InvalidData {
        /// The service called.
        service: Service,
        /// The broken invariant.
        problem: String,
    },
    /// No service token could be obtained (token exchange failed). The
    /// call was not made: the caller's own token is never sent instead.
    #[error("{service}: no service token: {source}")]
    Credentials {
        /// The service that would have been called.
        service: Service,
        /// Why (boxed: this error is in every part's state machine).
        #[source]
        source: Box<AuthError>,
    },
    /// The service refused a write because its `Idempotency-Key` was already
    /// used for a different request (the service answered `422`).
    #[error("{service}: idempotency key reused for another request")]
    KeyReused {
        /// The service that refused.
        service: Service,
    },
    /// The service refused this caller access to the entity (it answered
    /// `403`: e.g. another user's order). To the caller, such an entity
    /// does not exist: answered like an unknown id, never counted against
    /// the service's health.
    #[error("{service}: refused the caller access")]
    Forbidden {
        /// The service that refused.
        service: Service,
    },
    /// A write was sent, but whether it took effect is unknown: its answer
    /// did not come back in time, or the connection broke after sending.
    /// The caller should retry with the same `Idempotency-Key`.
    #[error("{service}: write sent, outcome unknown ({cause})")]
    OutcomeUnknown {
        /// The service written to.
        service: Service,
        /// What happened, for logs.
        cause: String,
    },
    /// The service is not on this BFF's egress list: nothing was sent.
    #[error("{service}: not on this BFF's egress list (a programming error: declare it in the registry)")]
    NotOnEgressList {
        /// The service that was asked for.
        service: Service,
    },
    /// The clients cannot be built from this configuration.
    #[error("downstream configuration is invalid: {}", .0.join("; "))]
    Config(Vec<String>),
    /// The request could not be built (e.g. an id that cannot be a path segment).
    #[error("{service}: request not built: {problem}")]
    BadRequest {
        /// The service that would have been called.
        service: Service,
        /// Why.
        problem: String,
    },
}

impl Classify for DownstreamError {
    fn failure(&self) -> Failure {
        match self {
            DownstreamError::Rejected { failure, .. } => *failure,
            DownstreamError::KeyReused { .. } => {
                Failure::refused(ReasonCode::Unavailable, ErrorCode::IdempotencyKeyReused)
            }
            DownstreamError::Forbidden { .. } => Failure::refused(ReasonCode::NotFound, ErrorCode::NotFound),
            DownstreamError::OutcomeUnknown { .. } => Failure {
                reason: ReasonCode::Timeout,
                retry_after: None,
                refusal: Some(ErrorCode::WriteOutcomeUnknown),
            },
            DownstreamError::Credentials { source, .. } => source.failure(),
            DownstreamError::NotOnEgressList { .. } | DownstreamError::Config(_) => {
                Failure::new(ReasonCode::Unavailable)
            }
            DownstreamError::Transport { source, .. } if source.is_timeout() => {
                Failure::new(ReasonCode::Timeout)
            }
            DownstreamError::Transport { .. }
            | DownstreamError::Status { .. }
            | DownstreamError::BadRequest { .. } => Failure::new(ReasonCode::Unavailable),
            DownstreamError::RateLimited { retry_after, .. } => {
                Failure { reason: ReasonCode::RateLimited, retry_after: *retry_after, refusal: None }
            }
            DownstreamError::NotFound { .. } => Failure::new(ReasonCode::NotFound),
            DownstreamError::Undecodable { .. } | DownstreamError::InvalidData { .. } => {
                Failure::new(ReasonCode::InvalidData)
            }
        }
    }
}

/// An error and its sources, joined with ": ".
pub(crate) fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        next = cause.source();
    }
    text
}
