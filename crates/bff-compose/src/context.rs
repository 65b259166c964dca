//! The context every part's call is made under: the request it serves, the
//! deadline it must meet and the caller it acts for.

use std::sync::Arc;
use std::time::Duration;

use bff_auth::Principal;
use bff_resilience::Deadline;
use bff_telemetry::RequestContext;

/// What a downstream call needs to know about its caller: the request it
/// serves (id, trace) to propagate, the deadline to respect and, for
/// authenticated requests, the principal it acts for. Cheap to clone.
#[derive(Debug, Clone)]
pub struct CallCtx {
    request: RequestContext,
    deadline: Deadline,
    principal: Option<Arc<Principal>>,
    own_behalf: bool,
}

impl CallCtx {
    /// A context for a call made on behalf of `request` before `deadline`.
    pub fn new(request: RequestContext, deadline: Deadline) -> Self {
        CallCtx { request, deadline, principal: None, own_behalf: false }
    }

    /// A context for work the BFF does for itself, no caller involved (a
    /// background refresh): its calls carry the BFF's own service tokens
    /// (client credentials), never a user's.
    pub fn on_own_behalf(request: RequestContext, deadline: Deadline) -> Self {
        CallCtx { request, deadline, principal: None, own_behalf: true }
    }

    /// Whether calls act for the BFF itself ([`CallCtx::on_own_behalf`]).
    pub fn is_own_behalf(&self) -> bool {
        self.own_behalf
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
            own_behalf: self.own_behalf,
        }
    }
}
