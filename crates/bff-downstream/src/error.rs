//! The one error type of downstream calls.

use std::time::Duration;

use bff_error::{Classify, Failure, ReasonCode};

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
    /// Connecting, sending or reading failed.
    #[error("{service}: transport error: {source}")]
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
    #[error("{service}: no service token: {reason}")]
    Credentials {
        /// The service that would have been called.
        service: Service,
        /// Why.
        reason: String,
    },
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
            DownstreamError::Transport { source, .. } if source.is_timeout() => {
                Failure::new(ReasonCode::Timeout)
            }
            DownstreamError::Transport { .. }
            | DownstreamError::Status { .. }
            | DownstreamError::Credentials { .. }
            | DownstreamError::BadRequest { .. } => Failure::new(ReasonCode::Unavailable),
            DownstreamError::RateLimited { retry_after, .. } => {
                Failure { reason: ReasonCode::RateLimited, retry_after: *retry_after }
            }
            DownstreamError::NotFound { .. } => Failure::new(ReasonCode::NotFound),
            DownstreamError::Undecodable { .. } | DownstreamError::InvalidData { .. } => {
                Failure::new(ReasonCode::InvalidData)
            }
        }
    }
}
