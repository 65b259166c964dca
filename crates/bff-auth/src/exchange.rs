//! RFC 8693 token exchange: the caller's token in, a short-lived token for
//! one downstream service out (`aud` = the service, `sub` = the caller,
//! `act` = this BFF, only the scopes that service needs).
//!
//! Exchanged tokens are cached per (subject, audience, scopes) until
//! `refresh_margin_secs` before they expire, and concurrent misses for one
//! key share a single exchange (moka's `try_get_with` coalesces them). A
//! failed exchange is not cached and fails the call: the caller's token is
//! never sent downstream as a fallback.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::future::Cache;
use serde::{Deserialize, Serialize};

use crate::{AuthError, IdentityProvider, Principal, ServiceTokens, TokenFuture};

/// A configuration secret: deserialized like a string, never printed.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// How a BFF exchanges tokens at the identity provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExchangeConfig {
    /// The identity provider's token endpoint.
    pub token_url: String,
    /// This BFF's OAuth client id (it becomes `act.sub` of exchanged tokens).
    pub client_id: String,
    /// This BFF's client secret.
    pub client_secret: Secret,
    /// Exchanged tokens are renewed this long before they expire, in seconds.
    pub refresh_margin_secs: u64,
    /// Timeout of one exchange, in milliseconds (the request deadline also applies).
    pub timeout_ms: u64,
    /// Most exchanged tokens kept in memory.
    pub cache_capacity: u64,
}

impl Default for ExchangeConfig {
    fn default() -> Self {
        ExchangeConfig {
            token_url: "http://127.0.0.1:7000/oauth/token".to_owned(),
            client_id: String::new(),
            client_secret: Secret::default(),
            refresh_margin_secs: 30,
            timeout_ms: 1_000,
            cache_capacity: 10_000,
        }
    }
}

impl ExchangeConfig {
    /// Local-development settings for the BFF client `client_id`, with the
    /// identity mock's development secret (`<client_id>-dev-secret`).
    pub fn local(client_id: &str) -> Self {
        ExchangeConfig {
            client_id: client_id.to_owned(),
            client_secret: Secret::new(Self::development_secret(client_id)),
            ..ExchangeConfig::default()
        }
    }

    /// The identity mock's public development secret of `client_id`.
    pub fn development_secret(client_id: &str) -> String {
        format!("{client_id}-dev-secret")
    }

    /// Whether the secret is still the public development one.
    pub fn has_development_secret(&self) -> bool {
        self.client_secret.expose() == Self::development_secret(&self.client_id)
    }

    /// Problems that make this configuration unusable.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        match reqwest::Url::parse(&self.token_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => {}
            _ => problems.push(format!("token_url `{}` is not an http(s) URL", self.token_url)),
        }
        if self.client_id.is_empty() {
            problems.push("client_id must be set".to_owned());
        }
        if self.client_secret.expose().is_empty() {
            problems.push("client_secret must be set".to_owned());
        }
        if self.timeout_ms == 0 {
            problems.push("timeout_ms must be greater than 0".to_owned());
        }
        problems
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    subject: String,
    audience: String,
    scopes: String,
}

#[derive(Debug)]
struct Exchanged {
    token: Arc<str>,
    refresh_at: Instant,
}

/// Each cached token lives until its own refresh time.
struct UntilRefresh;

impl Expiry<Key, Arc<Exchanged>> for UntilRefresh {
    fn expire_after_create(
        &self,
        _key: &Key,
        value: &Arc<Exchanged>,
        created_at: Instant,
    ) -> Option<Duration> {
        Some(value.refresh_at.saturating_duration_since(created_at))
    }
}

/// Exchanges callers' tokens for service tokens; share one per BFF.
pub struct TokenExchanger {
    config: ExchangeConfig,
    provider: Arc<IdentityProvider>,
    cache: Cache<Key, Arc<Exchanged>>,
}

impl fmt::Debug for TokenExchanger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenExchanger")
            .field("token_url", &self.config.token_url)
            .field("client_id", &self.config.client_id)
            .field("cached", &self.cache.entry_count())
            .finish()
    }
}

impl TokenExchanger {
    /// An exchanger with an empty cache, exchanging at `provider` (the
    /// guarded token endpoint this BFF shares with its login, if any).
    pub fn new(config: ExchangeConfig, provider: Arc<IdentityProvider>) -> Result<Self, AuthError> {
        let problems = config.problems();
        if !problems.is_empty() {
            return Err(AuthError::Config(problems));
        }
        let cache = Cache::builder().max_capacity(config.cache_capacity).expire_after(UntilRefresh).build();
        Ok(TokenExchanger { config, provider, cache })
    }

    /// A token for `audience` on behalf of `principal`: cached, or obtained
    /// by one exchange shared by every concurrent caller asking the same.
    pub async fn exchange(
        &self,
        principal: &Principal,
        audience: &str,
        scopes: &[String],
    ) -> Result<Arc<str>, AuthError> {
        let key = Key {
            subject: principal.subject().to_owned(),
            audience: audience.to_owned(),
            scopes: scopes.join(" "),
        };
        self.cached(key, Some(principal.token()), audience).await
    }

    /// A token for `audience` with this BFF as its subject (client
    /// credentials), cached and coalesced like exchanged ones.
    pub async fn own(&self, audience: &str, scopes: &[String]) -> Result<Arc<str>, AuthError> {
        // The empty subject cannot be a caller's (verified tokens have one).
        let key = Key { subject: String::new(), audience: audience.to_owned(), scopes: scopes.join(" ") };
        self.cached(key, None, audience).await
    }

    /// The token for `key` from the cache, or from one [`Self::fetch`]
    /// shared by every concurrent caller asking the same; counted as
    /// `cached`, `exchanged` (this caller's fetch ran) or `error`.
    async fn cached(
        &self,
        key: Key,
        subject_token: Option<&str>,
        audience: &str,
    ) -> Result<Arc<str>, AuthError> {
        let scope = key.scopes.clone();
        let fetched = std::sync::atomic::AtomicBool::new(false);
        let fetch = async {
            fetched.store(true, std::sync::atomic::Ordering::Relaxed);
            self.fetch(subject_token, audience, scope).await
        };
        let result = self.cache.try_get_with(key, fetch).await;
        let label = match (&result, fetched.load(std::sync::atomic::Ordering::Relaxed)) {
            (Err(_), _) => "error",
            (Ok(_), true) => "exchanged",
            (Ok(_), false) => "cached",
        };
        metrics::counter!(bff_telemetry::metrics::TOKEN_EXCHANGES, "result" => label).increment(1);
        result.map(|exchanged| Arc::clone(&exchanged.token)).map_err(|error| rebuild(&error))
    }

    /// Exchanges `subject_token` (or, without one, asks for the BFF's own token).
    async fn fetch(
        &self,
        subject_token: Option<&str>,
        audience: &str,
        scope: String,
    ) -> Result<Arc<Exchanged>, AuthError> {
        let started = Instant::now();
        let issued = match subject_token {
            Some(subject_token) => self.provider.exchange(subject_token, audience, &scope).await,
            None => self.provider.own_token(audience, &scope).await,
        }
        .inspect_err(|error| {
            tracing::warn!(%audience, %error, "token exchange failed");
        })?;
        let lifetime = Duration::from_secs(issued.expires_in.unwrap_or(0));
        let margin = Duration::from_secs(self.config.refresh_margin_secs);
        tracing::debug!(%audience, latency_ms = started.elapsed().as_millis() as u64, "token exchanged");
        Ok(Arc::new(Exchanged {
            token: issued.access_token.into(),
            refresh_at: started + lifetime.saturating_sub(margin),
        }))
    }
}

/// Coalesced callers share one error: each gets its own copy.
fn rebuild(error: &AuthError) -> AuthError {
    match error {
        AuthError::GrantRefused { error } => AuthError::GrantRefused { error: error.clone() },
        AuthError::ProviderUnavailable { reason, failure } => {
            AuthError::ProviderUnavailable { reason: reason.clone(), failure: *failure }
        }
        other => AuthError::ProviderUnavailable {
            reason: other.to_string(),
            failure: bff_error::Failure::new(bff_error::ReasonCode::Unavailable),
        },
    }
}

impl ServiceTokens for TokenExchanger {
    fn token_for<'a>(
        &'a self,
        principal: &'a Principal,
        service: &'a str,
        scopes: &'a [String],
    ) -> TokenFuture<'a> {
        Box::pin(self.exchange(principal, service, scopes))
    }

    fn own_token<'a>(&'a self, service: &'a str, scopes: &'a [String]) -> TokenFuture<'a> {
        Box::pin(self.own(service, scopes))
    }
}
