//! The credentials a downstream call is made with: who the caller is
//! ([`Principal`]) and how their token becomes a token for one service
//! ([`ServiceTokens`], implemented by [`crate::TokenExchanger`]).
//!
//! These live with authentication because they *are* authentication: the
//! resilience and composition crates carry a principal along without
//! knowing what is inside it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::AuthError;

/// The authenticated caller on whose behalf downstream calls are made: its
/// subject and the access token it presented. The token is only ever
/// *exchanged* for service tokens ([`ServiceTokens`]), never forwarded.
#[derive(Clone)]
pub struct Principal {
    subject: String,
    token: Arc<str>,
}

impl Principal {
    /// A principal for `subject`, authenticated by `token`.
    pub fn new(subject: impl Into<String>, token: impl Into<Arc<str>>) -> Self {
        Principal { subject: subject.into(), token: token.into() }
    }

    /// The subject (`sub`): a user id or a partner's client id.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The caller's own access token: input to token exchange, nothing else.
    pub fn token(&self) -> &str {
        &self.token
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the token: Debug output ends up in logs.
        f.debug_struct("Principal").field("subject", &self.subject).field("token", &"<redacted>").finish()
    }
}

/// The future of [`ServiceTokens::token_for`].
pub type TokenFuture<'a> = Pin<Box<dyn Future<Output = Result<Arc<str>, AuthError>> + Send + 'a>>;

/// Obtains the credential a downstream call carries: a token for one
/// service, on behalf of a principal (RFC 8693 token exchange). Downstream
/// clients ask for tokens through this trait without depending on how they
/// are made; tests substitute their own.
pub trait ServiceTokens: Send + Sync + fmt::Debug {
    /// A token whose audience is `service`, for `principal`, with `scopes`.
    fn token_for<'a>(
        &'a self,
        principal: &'a Principal,
        service: &'a str,
        scopes: &'a [String],
    ) -> TokenFuture<'a>;

    /// A token whose audience is `service` and whose subject is the BFF
    /// itself, for work no caller asked for (a background refresh).
    fn own_token<'a>(&'a self, service: &'a str, scopes: &'a [String]) -> TokenFuture<'a>;
}
