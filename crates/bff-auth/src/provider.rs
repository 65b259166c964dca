//! The identity provider's token endpoint, as this BFF's OAuth client sees
//! it: token exchange (RFC 8693) and authorization-code redemption
//! (RFC 6749 with PKCE), both authenticated with the BFF's client secret.
//!
//! The provider is egress like any downstream service: every call goes
//! through a [`Dependency`] guard named `identity` (timeout, bulkhead,
//! breaker), so a slow or dead identity provider fails requests fast
//! instead of holding them. Token-endpoint calls are never retried (a code
//! is single use). A refusal of the grant itself (`invalid_grant`: a code
//! used twice, an expired subject token) is the caller's problem, not the
//! provider's, and does not count against its breaker.

use std::time::Duration;

use bff_error::{Failure, ReasonCode};
use bff_resilience::{Deadline, Dependency, DependencyPolicy, GuardError, Idempotency};
use serde::Deserialize;

use crate::{AuthError, ExchangeConfig, Secret};

/// The grant type of RFC 8693.
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// The token type of access tokens (RFC 8693 section 3).
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// A token the provider issued.
#[derive(Debug, Clone, Deserialize)]
pub struct IssuedToken {
    /// The access token.
    pub access_token: String,
    /// Its lifetime in seconds, when the provider says.
    #[serde(default)]
    pub expires_in: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: String,
}

/// The identity provider's token endpoint, guarded. Share one per BFF.
#[derive(Debug)]
pub struct IdentityProvider {
    token_url: String,
    client_id: String,
    client_secret: Secret,
    timeout: Duration,
    http: reqwest::Client,
    guard: Dependency,
}

impl IdentityProvider {
    /// The token endpoint of `config`, with this BFF's client credentials.
    pub fn new(config: &ExchangeConfig) -> Result<Self, AuthError> {
        let problems = config.problems();
        if !problems.is_empty() {
            return Err(AuthError::Config(problems));
        }
        let timeout = Duration::from_millis(config.timeout_ms);
        let http = reqwest::Client::builder()
            .timeout(timeout)
            // Egress is an allow-list: a redirect could leave it.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| AuthError::Config(vec![format!("token endpoint client: {e}")]))?;
        let policy = DependencyPolicy {
            timeout_ms: config.timeout_ms,
            retry: bff_resilience::RetryPolicy { max_attempts: 1, ..Default::default() },
            ..DependencyPolicy::default()
        };
        Ok(IdentityProvider {
            token_url: config.token_url.clone(),
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone(),
            timeout,
            http,
            guard: Dependency::new("identity", &policy),
        })
    }

    /// This BFF's OAuth client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The guard of the identity provider (breaker state, for readiness and tests).
    pub fn guard(&self) -> &Dependency {
        &self.guard
    }

    /// RFC 8693: `subject_token` (a token issued to this BFF) for a token
    /// whose audience is `audience`, narrowed to `scope` (space-separated;
    /// empty for the provider's default).
    pub async fn exchange(
        &self,
        subject_token: &str,
        audience: &str,
        scope: &str,
    ) -> Result<IssuedToken, AuthError> {
        let mut form = vec![
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token", subject_token),
            ("subject_token_type", ACCESS_TOKEN_TYPE),
            ("requested_token_type", ACCESS_TOKEN_TYPE),
            ("audience", audience),
        ];
        if !scope.is_empty() {
            form.push(("scope", scope));
        }
        self.token(&form).await
    }

    /// Client credentials for `audience` (a downstream service): a token
    /// whose subject is this BFF itself, for work no caller asked for.
    pub async fn own_token(&self, audience: &str, scope: &str) -> Result<IssuedToken, AuthError> {
        let mut form = vec![("grant_type", "client_credentials"), ("audience", audience)];
        if !scope.is_empty() {
            form.push(("scope", scope));
        }
        self.token(&form).await
    }

    /// Redeems an authorization code obtained with PKCE (`verifier` is the
    /// code verifier whose S256 challenge was sent to `/authorize`).
    pub async fn redeem_code(
        &self,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
    ) -> Result<IssuedToken, AuthError> {
        self.token(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ])
        .await
    }

    /// `POST` to the token endpoint under the guard.
    async fn token(&self, form: &[(&str, &str)]) -> Result<IssuedToken, AuthError> {
        let deadline = Deadline::after(self.timeout);
        // A refused grant is an answer (`Ok(Err(..))`): it must not count
        // against the provider's breaker. Everything else is its failure.
        let attempt = |_budget| async move {
            match self.send(form).await {
                Err(refused @ AuthError::GrantRefused { .. }) => Ok(Err(refused)),
                Err(failed) => Err(failed),
                Ok(token) => Ok(Ok(token)),
            }
        };
        // Boxed: the guard's future (retry, hedge and attempt states) is
        // large, and this one sits under a handler's own (the login callback).
        match Box::pin(self.guard.call(deadline, Idempotency::NonIdempotent, attempt)).await {
            Ok(answer) => answer,
            Err(GuardError::Failed(error)) => Err(error),
            Err(GuardError::Rejected(failure)) => Err(AuthError::ProviderUnavailable {
                reason: format!("call not completed: {}", failure.reason),
                failure,
            }),
        }
    }

    /// One request to the token endpoint.
    async fn send(&self, form: &[(&str, &str)]) -> Result<IssuedToken, AuthError> {
        let unavailable = |reason: String, reason_code| AuthError::ProviderUnavailable {
            reason,
            failure: Failure::new(reason_code),
        };
        let response = self
            .http
            .post(&self.token_url)
            .basic_auth(&self.client_id, Some(self.client_secret.expose()))
            .form(form)
            .send()
            .await
            .map_err(|e| {
                let code = if e.is_timeout() { ReasonCode::Timeout } else { ReasonCode::Unavailable };
                unavailable(format!("token endpoint unreachable: {e}"), code)
            })?;
        let status = response.status();
        if status.is_success() {
            return response.json::<IssuedToken>().await.map_err(|e| {
                unavailable(format!("unreadable token response: {e}"), ReasonCode::InvalidData)
            });
        }
        let error = response.json::<ErrorBody>().await.map(|body| body.error).unwrap_or_default();
        // RFC 6749 section 5.2: 400 is about the grant; 401 is about us (our
        // client credentials), which is a misconfiguration, not the caller.
        if status == reqwest::StatusCode::BAD_REQUEST && !error.is_empty() && error != "invalid_client" {
            tracing::info!(%error, "the identity provider refused a grant");
            return Err(AuthError::GrantRefused { error });
        }
        Err(unavailable(format!("token endpoint answered {status} {error}"), ReasonCode::Unavailable))
    }
}
