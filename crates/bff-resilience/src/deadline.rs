//! The deadline every downstream call is made under.

use std::time::Duration;

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
