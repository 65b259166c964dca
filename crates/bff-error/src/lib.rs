//! The error taxonomy shared by every BFF.
//!
//! Two closed vocabularies live here, and nowhere else:
//!
//! * [`ErrorCode`]: the stable machine `code` of an RFC 9457
//!   `application/problem+json` response. Clients switch on it; it never
//!   changes meaning once released. [`ErrorCode::status`] is **the one place**
//!   in the workspace that chooses an HTTP status for an error.
//! * [`ReasonCode`]: why one component of a composed response is not `ok`
//!   (`timeout`, `circuit_open`, ...). It appears as `reasonCode` in the
//!   envelope and drives which [`ErrorCode`] a failed *critical* component
//!   becomes (see [`ApiError::from_failure`]).
//!
//! [`ApiError`] is what handlers return. Its response body carries only the
//! code, a title and a caller-safe detail: internal service names, URLs and
//! causes are logged by whoever creates the error and never serialized.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

pub mod openapi;

/// The media type of every error body (RFC 9457).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Stable machine codes of error responses, one per kind of failure a caller
/// can act on. Adding a code is a minor change; renaming or removing one
/// breaks clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Credentials are missing, malformed, expired or not signed by a trusted key (401).
    AuthInvalidToken,
    /// The caller is authenticated but not allowed to do this (403).
    AuthForbidden,
    /// The request is malformed: bad JSON, bad parameter, bad path id (400).
    RequestInvalid,
    /// The request body is larger than the configured limit (413).
    RequestTooLarge,
    /// The method is not supported on this route (405).
    MethodNotAllowed,
    /// A write was sent without the required `Idempotency-Key` header (400).
    IdempotencyKeyMissing,
    /// The `Idempotency-Key` was already used for a different request (422).
    IdempotencyKeyReused,
    /// A request with this `Idempotency-Key` is still being processed: wait
    /// `Retry-After` and send the same request again (409).
    IdempotencyInFlight,
    /// The route or the addressed resource does not exist (404).
    NotFound,
    /// The caller exceeded its rate limit; `Retry-After` says when to come back (429).
    RateLimited,
    /// A dependency the response cannot do without failed (503).
    DependencyUnavailable,
    /// A dependency the response cannot do without did not answer in time (504).
    DependencyTimeout,
    /// The BFF itself is at capacity and shed the request (503).
    Overloaded,
    /// A bug on our side. Never carries details (500).
    Internal,
    /// The client app is older than the oldest version still served: it
    /// must be updated (426; the problem's `Link` says where to read why).
    ClientUpgradeRequired,
    /// A write was sent but its answer did not come back in time (or the
    /// connection broke after sending): it may or may not have happened.
    /// Retry with the **same** `Idempotency-Key`, which makes the retry
    /// safe (504).
    WriteOutcomeUnknown,
}

impl ErrorCode {
    /// Every code, for documentation and exhaustiveness tests.
    pub const ALL: [ErrorCode; 16] = [
        ErrorCode::AuthInvalidToken,
        ErrorCode::AuthForbidden,
        ErrorCode::RequestInvalid,
        ErrorCode::RequestTooLarge,
        ErrorCode::MethodNotAllowed,
        ErrorCode::IdempotencyKeyMissing,
        ErrorCode::IdempotencyKeyReused,
        ErrorCode::IdempotencyInFlight,
        ErrorCode::NotFound,
        ErrorCode::RateLimited,
        ErrorCode::DependencyUnavailable,
        ErrorCode::DependencyTimeout,
        ErrorCode::Overloaded,
        ErrorCode::Internal,
        ErrorCode::WriteOutcomeUnknown,
        ErrorCode::ClientUpgradeRequired,
    ];

    /// The machine code as it appears in the `code` member of a problem body.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::AuthInvalidToken => "auth.invalid_token",
            ErrorCode::AuthForbidden => "auth.forbidden",
            ErrorCode::RequestInvalid => "request.invalid",
            ErrorCode::RequestTooLarge => "request.too_large",
            ErrorCode::MethodNotAllowed => "request.method_not_allowed",
            ErrorCode::IdempotencyKeyMissing => "idempotency.key_missing",
            ErrorCode::IdempotencyKeyReused => "idempotency.key_reused",
            ErrorCode::IdempotencyInFlight => "idempotency.in_flight",
            ErrorCode::NotFound => "resource.not_found",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::DependencyUnavailable => "dependency.unavailable",
            ErrorCode::DependencyTimeout => "dependency.timeout",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::Internal => "internal",
            ErrorCode::WriteOutcomeUnknown => "write.outcome_unknown",
            ErrorCode::ClientUpgradeRequired => "client.upgrade_required",
        }
    }

    /// The HTTP status for this code. This match is the only place in the
    /// workspace where an error becomes a status code.
    pub const fn status(self) -> StatusCode {
        match self {
            ErrorCode::AuthInvalidToken => StatusCode::UNAUTHORIZED,
            ErrorCode::AuthForbidden => StatusCode::FORBIDDEN,
            ErrorCode::RequestInvalid | ErrorCode::IdempotencyKeyMissing => StatusCode::BAD_REQUEST,
            ErrorCode::RequestTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::IdempotencyInFlight => StatusCode::CONFLICT,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::DependencyUnavailable | ErrorCode::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::DependencyTimeout | ErrorCode::WriteOutcomeUnknown => StatusCode::GATEWAY_TIMEOUT,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::ClientUpgradeRequired => StatusCode::UPGRADE_REQUIRED,
        }
    }

    /// A short, fixed, human-readable summary (the problem `title`).
    pub const fn title(self) -> &'static str {
        match self {
            ErrorCode::AuthInvalidToken => "The access token is missing or invalid",
            ErrorCode::AuthForbidden => "The caller may not access this resource",
            ErrorCode::RequestInvalid => "The request is invalid",
            ErrorCode::RequestTooLarge => "The request body is too large",
            ErrorCode::MethodNotAllowed => "The method is not allowed on this resource",
            ErrorCode::IdempotencyKeyMissing => "An Idempotency-Key header is required",
            ErrorCode::IdempotencyKeyReused => "The Idempotency-Key was already used for a different request",
            ErrorCode::IdempotencyInFlight => "A request with this Idempotency-Key is still in progress",
            ErrorCode::NotFound => "The resource does not exist",
            ErrorCode::RateLimited => "Too many requests",
            ErrorCode::DependencyUnavailable => "A required part of the response is unavailable",
            ErrorCode::DependencyTimeout => "A required part of the response timed out",
            ErrorCode::Overloaded => "The service is overloaded",
            ErrorCode::Internal => "Internal error",
            ErrorCode::WriteOutcomeUnknown => {
                "The write may or may not have happened: retry with the same Idempotency-Key"
            }
            ErrorCode::ClientUpgradeRequired => "This app version is no longer supported: update the app",
        }
    }
}

impl ErrorCode {
    /// The caller was refused: not authenticated, or not allowed.
    pub const fn is_denial(self) -> bool {
        matches!(self, ErrorCode::AuthInvalidToken | ErrorCode::AuthForbidden)
    }

    /// The BFF or what it depends on failed (the caller did nothing wrong).
    pub fn is_server_fault(self) -> bool {
        self.status().is_server_error()
    }

    /// Whether a write answered with this code is *settled*: the same
    /// request, sent again with the same `Idempotency-Key`, must get this
    /// same answer (the IETF Idempotency-Key draft's stored response).
    /// True only for what the service that owns the write decided about
    /// the request (no such product, the key reused for another request).
    /// False for a request refused before anything ran (invalid, too
    /// large: as at Stripe, fixing the request may reuse the key), for
    /// what depends on the moment (credentials, rate, a request still in
    /// flight) and for every server fault and unknown outcome: those
    /// release the key, and the retry runs.
    pub const fn settles_write(self) -> bool {
        match self {
            ErrorCode::NotFound | ErrorCode::IdempotencyKeyReused => true,
            ErrorCode::RequestInvalid
            | ErrorCode::RequestTooLarge
            | ErrorCode::MethodNotAllowed
            | ErrorCode::IdempotencyKeyMissing
            | ErrorCode::AuthInvalidToken
            | ErrorCode::AuthForbidden
            | ErrorCode::IdempotencyInFlight
            | ErrorCode::RateLimited
            | ErrorCode::DependencyUnavailable
            | ErrorCode::DependencyTimeout
            | ErrorCode::Overloaded
            | ErrorCode::Internal
            | ErrorCode::WriteOutcomeUnknown
            | ErrorCode::ClientUpgradeRequired => false,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a component of a composed response is not `ok`. A closed taxonomy:
/// clients may switch on it, and the composition engine maps each reason of a
/// failed critical component onto exactly one [`ErrorCode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasonCode {
    /// The call did not finish within its latency budget or the request deadline.
    Timeout,
    /// The dependency's circuit breaker is open: the call was not attempted.
    CircuitOpen,
    /// The dependency's bulkhead (concurrency limit) was full: the call was not attempted.
    BulkheadFull,
    /// The dependency failed: connection error, 5xx, or an answer we cannot read.
    Unavailable,
    /// The dependency asked us to slow down (429), or is cooling down after doing so.
    RateLimited,
    /// The dependency answered with data that breaks its contract (e.g. a negative price).
    InvalidData,
    /// The dependency says the addressed entity does not exist.
    NotFound,
}

impl ReasonCode {
    /// Every reason, for documentation and exhaustiveness tests.
    pub const ALL: [ReasonCode; 7] = [
        ReasonCode::Timeout,
        ReasonCode::CircuitOpen,
        ReasonCode::BulkheadFull,
        ReasonCode::Unavailable,
        ReasonCode::RateLimited,
        ReasonCode::InvalidData,
        ReasonCode::NotFound,
    ];

    /// The reason as it appears in `reasonCode`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ReasonCode::Timeout => "timeout",
            ReasonCode::CircuitOpen => "circuit_open",
            ReasonCode::BulkheadFull => "bulkhead_full",
            ReasonCode::Unavailable => "unavailable",
            ReasonCode::RateLimited => "rate_limited",
            ReasonCode::InvalidData => "invalid_data",
            ReasonCode::NotFound => "not_found",
        }
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure of one dependency call, reduced to what the taxonomy needs:
/// the reason and, where the failing side told us, when to try again.
///
/// Error types of lower crates implement [`Classify`] to produce one, so the
/// composition engine never has to know their variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// Why the call failed.
    pub reason: ReasonCode,
    /// How long the caller should wait before retrying, when known
    /// (an open breaker's remaining time, a downstream `Retry-After`).
    pub retry_after: Option<Duration>,
    /// Set when the dependency did not fail but *refused the caller's own
    /// request* (e.g. an `Idempotency-Key` reused for another write): the
    /// answer the caller gets, decided by the dependency's typed client.
    /// Such a refusal says nothing about the dependency's health.
    pub refusal: Option<ErrorCode>,
}

impl Failure {
    /// A failure with no retry hint.
    pub const fn new(reason: ReasonCode) -> Self {
        Failure { reason, retry_after: None, refusal: None }
    }

    /// A failure with a retry hint (an open breaker's remaining time, a
    /// downstream `Retry-After`).
    pub const fn retry_after(reason: ReasonCode, after: Duration) -> Self {
        Failure { reason, retry_after: Some(after), refusal: None }
    }

    /// The dependency refused the caller's request with `code`: the caller
    /// is answered with that code (a component shows `reason`).
    pub const fn refused(reason: ReasonCode, code: ErrorCode) -> Self {
        Failure { reason, retry_after: None, refusal: Some(code) }
    }
}

/// Implemented by error types that can say which [`ReasonCode`] they are.
pub trait Classify {
    /// The taxonomy view of this error.
    fn failure(&self) -> Failure;
}

impl Classify for Failure {
    fn failure(&self) -> Failure {
        *self
    }
}

/// The error every handler returns. Serialized as an RFC 9457 problem with
/// the code's status, title and a caller-safe `detail`.
#[derive(Debug, Clone)]
pub struct ApiError {
    code: ErrorCode,
    detail: Option<Cow<'static, str>>,
    retry_after: Option<Duration>,
    www_authenticate: Option<Cow<'static, str>>,
}

impl ApiError {
    /// An error with the code's default title and no detail.
    pub const fn new(code: ErrorCode) -> Self {
        ApiError { code, detail: None, retry_after: None, www_authenticate: None }
    }

    /// Adds a caller-safe explanation. Never put internal names, URLs or
    /// upstream messages here: they would reach the client.
    #[must_use]
    pub fn with_detail(mut self, detail: impl Into<Cow<'static, str>>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Adds a `Retry-After` header (whole seconds, rounded up, at least 1).
    #[must_use]
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// Sets the `WWW-Authenticate` challenge sent with a 401.
    #[must_use]
    pub fn with_challenge(mut self, challenge: impl Into<Cow<'static, str>>) -> Self {
        self.www_authenticate = Some(challenge.into());
        self
    }

    /// A 401 `auth.invalid_token` with an RFC 6750 bearer challenge.
    /// `description` is public: say what is wrong, not why verification failed internally.
    pub fn invalid_token(description: &'static str) -> Self {
        ApiError::new(ErrorCode::AuthInvalidToken)
            .with_detail(description)
            .with_challenge(format!(r#"Bearer error="invalid_token", error_description="{description}""#))
    }

    /// The error for a *critical* component that failed for `failure`.
    ///
    /// `timeout` becomes 504 `dependency.timeout`, `not_found` becomes 404
    /// `resource.not_found`, everything else 503 `dependency.unavailable`.
    /// A `Retry-After` is sent where waiting helps: the failure's own hint, or
    /// one second for transient states (open breaker, full bulkhead, 429).
    ///
    /// A [`Failure::refusal`] is answered with its own code instead: the
    /// dependency refused the caller's request, it did not fail.
    pub fn from_failure(failure: Failure) -> Self {
        if let Some(code) = failure.refusal {
            return ApiError::new(code);
        }
        match failure.reason {
            ReasonCode::Timeout => ApiError::new(ErrorCode::DependencyTimeout),
            ReasonCode::NotFound => ApiError::new(ErrorCode::NotFound),
            ReasonCode::CircuitOpen | ReasonCode::BulkheadFull | ReasonCode::RateLimited => {
                ApiError::new(ErrorCode::DependencyUnavailable)
                    .with_retry_after(failure.retry_after.unwrap_or(Duration::from_secs(1)))
            }
            ReasonCode::Unavailable | ReasonCode::InvalidData => {
                let error = ApiError::new(ErrorCode::DependencyUnavailable);
                match failure.retry_after {
                    Some(after) => error.with_retry_after(after),
                    None => error,
                }
            }
        }
    }

    /// The machine code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The HTTP status this error is sent with.
    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    /// The body that will be sent.
    pub fn problem(&self) -> Problem {
        Problem {
            kind: format!("urn:problem:bff:{}", self.code.as_str()),
            title: self.code.title(),
            status: self.code.status().as_u16(),
            code: self.code.as_str(),
            detail: self.detail.as_deref().map(str::to_owned),
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.detail {
            Some(detail) => write!(f, "{}: {detail}", self.code),
            None => write!(f, "{}", self.code),
        }
    }
}

impl std::error::Error for ApiError {}

impl From<ErrorCode> for ApiError {
    fn from(code: ErrorCode) -> Self {
        ApiError::new(code)
    }
}

/// An RFC 9457 problem details body, with our `code` extension member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// A URI naming the problem type: `urn:problem:bff:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Fixed summary of the problem type.
    pub title: &'static str,
    /// The HTTP status, repeated for clients that only see the body.
    pub status: u16,
    /// The stable machine code clients switch on.
    pub code: &'static str,
    /// Caller-safe explanation of this occurrence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.problem()).unwrap_or_else(|_| {
            // Serializing a struct of strings and numbers cannot fail; keep a
            // valid body anyway rather than panic on the error path.
            br#"{"type":"urn:problem:bff:internal","title":"Internal error","status":500,"code":"internal"}"#
                .to_vec()
        });
        let mut response = (self.status(), body).into_response();
        // The code rides along for layers that record outcomes (an audit
        // trail): they read what was decided, not the status it became.
        response.extensions_mut().insert(self.code);
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(after) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs(after)));
        }
        if let Some(value) = self.www_authenticate.as_deref().and_then(|c| HeaderValue::from_str(c).ok()) {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

/// Whole seconds for a `Retry-After` header: rounded up, never 0 (a 0 would
/// invite an immediate retry storm).
pub fn retry_after_secs(after: Duration) -> u64 {
    let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_dotted_lowercase() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "duplicate code {code}");
            assert!(code.as_str().chars().all(|c| c.is_ascii_lowercase() || c == '.' || c == '_'));
        }
    }

    #[test]
    fn critical_failures_map_onto_the_documented_codes() {
        let cases = [
            (ReasonCode::Timeout, StatusCode::GATEWAY_TIMEOUT, "dependency.timeout"),
            (ReasonCode::NotFound, StatusCode::NOT_FOUND, "resource.not_found"),
            (ReasonCode::CircuitOpen, StatusCode::SERVICE_UNAVAILABLE, "dependency.unavailable"),
            (ReasonCode::BulkheadFull, StatusCode::SERVICE_UNAVAILABLE, "dependency.unavailable"),
            (ReasonCode::Unavailable, StatusCode::SERVICE_UNAVAILABLE, "dependency.unavailable"),
            (ReasonCode::RateLimited, StatusCode::SERVICE_UNAVAILABLE, "dependency.unavailable"),
            (ReasonCode::InvalidData, StatusCode::SERVICE_UNAVAILABLE, "dependency.unavailable"),
        ];
        assert_eq!(cases.len(), ReasonCode::ALL.len());
        for (reason, status, code) in cases {
            let error = ApiError::from_failure(Failure::new(reason));
            assert_eq!(error.status(), status, "{reason}");
            assert_eq!(error.code().as_str(), code, "{reason}");
        }
    }

    #[test]
    fn problem_body_has_rfc9457_members_and_headers() {
        let response = ApiError::from_failure(Failure::retry_after(
            ReasonCode::CircuitOpen,
            Duration::from_millis(2500),
        ))
        .into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(response.headers()[header::RETRY_AFTER], "3");
    }

    #[test]
    fn a_refusal_is_answered_with_its_own_code_whatever_the_reason() {
        let refused = Failure::refused(ReasonCode::Unavailable, ErrorCode::IdempotencyKeyReused);
        assert_eq!(ApiError::from_failure(refused).code(), ErrorCode::IdempotencyKeyReused);
    }

    #[test]
    fn no_server_fault_and_no_denial_settles_a_write() {
        for code in ErrorCode::ALL {
            if code.is_server_fault() || code.is_denial() {
                assert!(!code.settles_write(), "{code} would pin a transient failure to its key");
            }
        }
        assert!(ErrorCode::NotFound.settles_write());
        assert!(!ErrorCode::IdempotencyInFlight.settles_write());
        assert!(
            !ErrorCode::RequestInvalid.settles_write(),
            "nothing ran: the fixed request may reuse the key"
        );
    }

    #[test]
    fn retry_after_is_never_zero() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
    }
}
