//! The context every downstream call is made under: the request it serves
//! and the deadline it must meet.

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

/// What a downstream call needs to know about its caller: the request
/// (id, trace) to propagate and the deadline to respect. Cheap to clone.
#[derive(Debug, Clone)]
pub struct CallCtx {
    request: RequestContext,
    deadline: Deadline,
}

impl CallCtx {
    /// A context for a call made on behalf of `request` before `deadline`.
    pub fn new(request: RequestContext, deadline: Deadline) -> Self {
        CallCtx { request, deadline }
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
        CallCtx { request: self.request.clone(), deadline: self.deadline.tightened(budget) }
    }
}
