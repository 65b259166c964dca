//! Caller authentication for BFFs.
//!
//! [`JwtVerifier`] validates bearer access tokens (RFC 9068 `at+jwt`) against
//! the identity provider's JWKS, following RFC 8725:
//!
//! * an explicit algorithm allow-list ([`AuthConfig::algorithms`]); `none`
//!   and every HMAC algorithm are refused at start-up and at verification,
//!   and each key is bound to the one algorithm its JWK names, so a token
//!   cannot choose how its own signature is checked;
//! * `iss`, `aud`, `exp`, `nbf` and `typ` are checked, with a small leeway;
//! * keys come only from the configured JWKS URL. `jku`, `x5u` and `jwk`
//!   headers are never followed: no outbound URL ever comes from a token;
//! * the JWKS is cached; an unknown `kid` triggers at most one refresh per
//!   cool-down, and cached keys keep working while the JWKS endpoint is down.
//!
//! [`require_bearer`] is the authentication middleware: a request without a
//! valid token is answered `401 auth.invalid_token` with a
//! `WWW-Authenticate` challenge before any handler runs, so nothing reaches
//! a downstream service. Handlers take the [`Caller`] it established.
//!
//! [`TokenExchanger`] turns the caller's token into short-lived,
//! audience-scoped service tokens (RFC 8693), cached and coalesced; it is the
//! [`ServiceTokens`] every downstream client uses, and it carries the caller
//! as a [`Principal`]. Both talk to the identity provider through
//! [`IdentityProvider`], a guarded egress like any downstream service.
//!
//! [`session`] holds what a BFF needs to keep a browser's login in a sealed
//! cookie instead of a token (the web BFF's mode).

mod credentials;
mod error;
mod exchange;
mod middleware;
mod provider;
pub mod session;
mod verifier;

use std::collections::BTreeMap;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use bff_error::{ApiError, ErrorCode};
use serde::{Deserialize, Serialize};

pub use credentials::{Principal, ServiceTokens, TokenFuture};
pub use error::AuthError;
pub use exchange::{ExchangeConfig, Secret, TokenExchanger};
pub use middleware::{authenticate, bearer_token, require_bearer};
pub use provider::{IdentityProvider, IssuedToken};
pub use verifier::JwtVerifier;

/// How a BFF authenticates its callers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// The only accepted `iss`.
    pub issuer: String,
    /// The only accepted `aud`: this BFF's name, so a token minted for
    /// another BFF is refused here.
    pub audience: String,
    /// Where the identity provider publishes its keys.
    pub jwks_url: String,
    /// Accepted signature algorithms, e.g. `["ES256"]`. HMAC and `none` are refused.
    pub algorithms: Vec<String>,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
    /// Minimum time between two JWKS refreshes triggered by unknown `kid`s.
    pub jwks_refresh_cooldown_secs: u64,
    /// Timeout of one JWKS fetch, in milliseconds.
    pub jwks_timeout_ms: u64,
    /// Longest token lifetime accepted, in seconds: a token whose `exp` is
    /// further than this from its `iat`, or from now, is refused, so a
    /// token minted to last a year is worthless here even when signed.
    pub max_token_lifetime_secs: u64,
    /// Accept tokens whose `aud` lists several audiences (one of them this
    /// BFF). Off: a token good at several BFFs is a token that one of them
    /// could replay at another.
    pub allow_multiple_audiences: bool,
    /// How many verified tokens to remember (0: verify every request's
    /// signature). A remembered token skips the signature check until its
    /// `exp` (never past it, leeway or not), and every one is forgotten
    /// when the key set is fetched again (rotation, revocation). Keyed by a
    /// SHA-256 of the token: the token itself is not kept.
    pub verified_cache_entries: u64,
    /// How this BFF exchanges callers' tokens for service tokens.
    pub exchange: ExchangeConfig,
}

impl AuthConfig {
    /// Local-development settings for the BFF whose tokens carry `audience`.
    /// The BFF is also the OAuth client `audience` for token exchange.
    pub fn local(audience: &str) -> Self {
        AuthConfig {
            audience: audience.to_owned(),
            exchange: ExchangeConfig::local(audience),
            ..AuthConfig::default()
        }
    }

    /// Problems that make this configuration unusable.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.issuer.is_empty() {
            problems.push("issuer must be set".to_owned());
        }
        if self.audience.is_empty() {
            problems.push("audience must be set".to_owned());
        }
        match reqwest::Url::parse(&self.jwks_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => {}
            _ => problems.push(format!("jwks_url `{}` is not an http(s) URL", self.jwks_url)),
        }
        if self.algorithms.is_empty() {
            problems.push("algorithms must name at least one algorithm".to_owned());
        }
        for name in &self.algorithms {
            if let Err(problem) = verifier::parse_allowed_algorithm(name) {
                problems.push(format!("algorithms: {problem}"));
            }
        }
        if self.leeway_secs > 300 {
            problems.push("leeway_secs above 300 defeats expiry".to_owned());
        }
        if self.max_token_lifetime_secs == 0 {
            problems.push("max_token_lifetime_secs must be greater than 0".to_owned());
        }
        if self.jwks_timeout_ms == 0 {
            problems.push("jwks_timeout_ms must be greater than 0".to_owned());
        }
        problems.extend(self.exchange.problems().into_iter().map(|p| format!("exchange.{p}")));
        problems
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            issuer: "http://localhost:7000".to_owned(),
            audience: String::new(),
            jwks_url: "http://127.0.0.1:7000/.well-known/jwks.json".to_owned(),
            algorithms: vec!["ES256".to_owned()],
            leeway_secs: 30,
            jwks_refresh_cooldown_secs: 30,
            jwks_timeout_ms: 2_000,
            // The mock issues 900 s tokens and `cargo xtask token` 3600 s.
            max_token_lifetime_secs: 3_600,
            allow_multiple_audiences: false,
            verified_cache_entries: 10_000,
            exchange: ExchangeConfig::default(),
        }
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The user id (`sub`), or a partner's client id for client-credentials tokens.
    pub subject: String,
    /// The OAuth client the token was issued to, when the token says.
    pub client_id: Option<String>,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// The subject's tenant, when the token says.
    pub tenant: Option<String>,
    /// The subject's roles (e.g. `admin`, `support`).
    pub roles: Vec<String>,
    /// Other string claims of the token (private claims the identity
    /// provider adds, e.g. a marketing `segment`), uninterpreted here: what
    /// they mean is the business of whoever reads them.
    pub claims: BTreeMap<String, String>,
}

impl Caller {
    /// Whether the token grants `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// Whether the subject has `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// The string claim `name`, if the token carries one (see [`Caller::claims`]).
    pub fn claim(&self, name: &str) -> Option<&str> {
        self.claims.get(name).map(String::as_str)
    }

    /// Whether this is a client acting for itself (client credentials:
    /// the subject is the client), rather than a user.
    pub fn is_client(&self) -> bool {
        self.client_id.as_deref() == Some(self.subject.as_str())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    /// The caller established by the authentication middleware. A route
    /// without that middleware has no caller: fail closed with a 401.
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            tracing::error!("Caller extracted on a route without authentication middleware");
            ApiError::new(ErrorCode::AuthInvalidToken).with_challenge("Bearer")
        })
    }
}
