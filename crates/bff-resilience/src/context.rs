//! The context every downstream call is made under: the request it serves
//! and the deadline it must meet.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bff_telemetry::RequestContext;
use tokio::time::Instant;

/// The instant by which a piece of work must be done. Budgets of nested work
/// are taken from it, so a request never outlives its deadline however many
/// calls it makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline {
    at: Instant,
}

impl Deadline {
    /// A deadline `budget` from now.
    pub fn after(budget: Duration) -> Self {
        Deadline { at: Instant::now() + budget }
    }

    /// Time left; zero once passed.
    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// The earlier of this deadline and `budget` from now.
    pub fn tightened(&self, budget: Duration) -> Deadline {
        (*self).min(Deadline::after(budget))
    }

    /// The instant itself, for `tokio::time::timeout_at`.
    pub fn instant(&self) -> Instant {
        self.at
    }
}

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

/// Why no service token could be obtained. The text is for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenUnavailable(pub String);

impl fmt::Display for TokenUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The future of [`ServiceTokens::token_for`].
pub type TokenFuture<'a> = Pin<Box<dyn Future<Output = Result<Arc<str>, TokenUnavailable>> + Send + 'a>>;

/// Obtains the credential a downstream call carries: a token for one
/// service, on behalf of a principal (RFC 8693 token exchange in
/// `bff-auth`). Defined here so that clients can ask for tokens without
/// depending on how they are made.
pub trait ServiceTokens: Send + Sync + fmt::Debug {
    /// A token whose audience is `service`, for `principal`, with `scopes`.
    fn token_for<'a>(
        &'a self,
        principal: &'a Principal,
        service: &'a str,
        scopes: &'a [String],
    ) -> TokenFuture<'a>;
}

/// What a downstream call needs to know about its caller: the request it
/// serves (id, trace) to propagate, the deadline to respect and, for
/// authenticated requests, the principal it acts for. Cheap to clone.
#[derive(Debug, Clone)]
pub struct CallCtx {
    request: RequestContext,
    deadline: Deadline,
    principal: Option<Arc<Principal>>,
}

impl CallCtx {
    /// A context for a call made on behalf of `request` before `deadline`.
    pub fn new(request: RequestContext, deadline: Deadline) -> Self {
        CallCtx { request, deadline, principal: None }
    }

    /// The same context acting for `principal`.
    #[must_use]
    pub fn with_principal(mut self, principal: Option<Arc<Principal>>) -> Self {
        self.principal = principal;
        self
    }

    /// The caller the call acts for, if the request was authenticated.
    pub fn principal(&self) -> Option<&Principal> {
        self.principal.as_deref()
    }

    /// The request this call serves.
    pub fn request(&self) -> &RequestContext {
        &self.request
    }

    /// The deadline this call must meet.
    pub fn deadline(&self) -> Deadline {
        self.deadline
    }

    /// The same context with a deadline no later than `budget` from now.
    pub fn with_budget(&self, budget: Duration) -> CallCtx {
        CallCtx {
            request: self.request.clone(),
            deadline: self.deadline.tightened(budget),
            principal: self.principal.clone(),
        }
    }
}
