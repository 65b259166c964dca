//! The one error type of this crate.

use bff_error::{ApiError, Classify, ErrorCode, Failure, ReasonCode};
use jsonwebtoken::Algorithm;

/// Why authentication, a token exchange or a call to the identity provider
/// failed. The `Display` text is for logs; callers of a BFF only ever see
/// [`AuthError::rejection`] (a `401` with a caller-safe description) or,
/// for the identity provider's own failures, the taxonomy's
/// `dependency.*` codes through [`Classify`].
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The request carries no credentials (no `Authorization` header, no
    /// session cookie).
    #[error("no credentials")]
    MissingCredentials,
    /// An `Authorization` header that is not `Bearer <token>`.
    #[error("the Authorization header is not a bearer token")]
    NotBearer,
    /// Not a well-formed JWT, or a header we refuse (size, `kid`, `typ`).
    #[error("malformed token: {0}")]
    Malformed(String),
    /// The header names an algorithm outside the allow-list (or `none`).
    #[error("algorithm {0:?} is not allowed")]
    DisallowedAlgorithm(Algorithm),
    /// No key with this `kid`, even after a refresh.
    #[error("unknown key id {0:?}")]
    UnknownKey(String),
    /// The key's algorithm differs from the token's.
    #[error("key {kid:?} is for {key:?}, token says {token:?}")]
    AlgorithmMismatch {
        /// The key id.
        kid: String,
        /// The key's algorithm.
        key: Algorithm,
        /// The token's algorithm.
        token: Algorithm,
    },
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// `exp` is past (beyond the leeway).
    #[error("expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("not yet valid")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("wrong issuer")]
    WrongIssuer,
    /// `aud` is not this BFF (the signature did verify).
    #[error("wrong audience")]
    WrongAudience {
        /// The token's subject, for audit only.
        subject: Option<String>,
    },
    /// A required claim is missing.
    #[error("missing claim {0}")]
    MissingClaim(String),
    /// The header marks extensions critical (`crit`, RFC 7515 §4.1.11) and
    /// this verifier understands none: the token must be refused.
    #[error("critical header extensions not understood: {0:?}")]
    CriticalExtension(Vec<String>),
    /// The token is meant to live longer than the configured maximum
    /// (`exp - iat`, or `exp - now`).
    #[error("lifetime of {lifetime_secs} s is over the {max_secs} s allowed")]
    TooLongLived {
        /// The longer of `exp - iat` and `exp - now`.
        lifetime_secs: u64,
        /// `max_token_lifetime_secs`.
        max_secs: u64,
    },
    /// `aud` lists several audiences and that is not allowed here.
    #[error("the token is for {0} audiences; one is allowed")]
    SeveralAudiences(usize),
    /// The keys could not be fetched and none are cached.
    #[error("no keys available: {0}")]
    KeysUnavailable(String),
    /// The identity provider refused a grant (RFC 6749 `invalid_grant` and
    /// friends): an authorization code used twice or expired, a subject
    /// token it no longer accepts. Not a failure of the provider.
    #[error("the identity provider refused the grant: {error}")]
    GrantRefused {
        /// The RFC 6749 / 8693 `error` code.
        error: String,
    },
    /// The identity provider could not be asked (connection, timeout, open
    /// breaker, 5xx, unreadable answer).
    #[error("the identity provider is unavailable: {reason}")]
    ProviderUnavailable {
        /// What went wrong, for logs.
        reason: String,
        /// The taxonomy view (timeout, circuit_open, unavailable, ...).
        failure: Failure,
    },
    /// Settings that cannot work, each as `key: what is wrong`.
    #[error("invalid authentication settings: {}", .0.join("; "))]
    Config(Vec<String>),
}

impl AuthError {
    /// For a token whose signature verified but whose audience is another
    /// service's: its subject, read without further checks. Lets a BFF say
    /// *who* knocked on the wrong door (audit), never to let them in.
    pub fn foreign_subject(&self) -> Option<&str> {
        match self {
            AuthError::WrongAudience { subject } => subject.as_deref(),
            _ => None,
        }
    }

    /// What the client is told (RFC 6750 `error_description`): enough to act
    /// on (refresh an expired token), nothing about our checks.
    pub fn public_description(&self) -> &'static str {
        match self {
            AuthError::MissingCredentials => "a bearer access token is required",
            AuthError::NotBearer => "the Authorization header is not a bearer token",
            AuthError::Expired => "the access token expired",
            AuthError::KeysUnavailable(_) => "the access token cannot be verified right now",
            _ => "the access token is invalid",
        }
    }

    /// The answer to a request that failed authentication: `401
    /// auth.invalid_token` with an RFC 6750 challenge. Logged here, once.
    pub fn rejection(self) -> ApiError {
        match self {
            AuthError::MissingCredentials => ApiError::new(ErrorCode::AuthInvalidToken)
                .with_detail(self.public_description())
                .with_challenge("Bearer"),
            other => {
                tracing::info!(reason = %other, "rejected access token");
                ApiError::invalid_token(other.public_description())
            }
        }
    }
}

impl Classify for AuthError {
    /// How a failed identity-provider call counts for a request that needed
    /// it: a downstream call without a service token is `unavailable`.
    fn failure(&self) -> Failure {
        match self {
            AuthError::ProviderUnavailable { failure, .. } => *failure,
            _ => Failure::new(ReasonCode::Unavailable),
        }
    }
}
