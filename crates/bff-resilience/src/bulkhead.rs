//! A bulkhead: bounded concurrency per dependency. When it is full a call
//! waits a short, bounded time for a slot (a burst is absorbed, not
//! refused), and is refused at once when it has no time to wait.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// At most `capacity` calls in flight; [`Bulkhead::try_enter`] never waits,
/// [`Bulkhead::enter`] waits up to a given time (first come, first served).
#[derive(Debug, Clone)]
pub struct Bulkhead {
    capacity: usize,
    slots: Arc<Semaphore>,
}

/// A slot in the bulkhead, released when dropped.
#[derive(Debug)]
pub struct BulkheadSlot {
    _permit: OwnedSemaphorePermit,
}

impl Bulkhead {
    /// A bulkhead with `capacity` slots.
    pub fn new(capacity: usize) -> Self {
        Bulkhead { capacity, slots: Arc::new(Semaphore::new(capacity)) }
    }

    /// Takes a slot, or `None` at once if all are taken.
    pub fn try_enter(&self) -> Option<BulkheadSlot> {
        Arc::clone(&self.slots).try_acquire_owned().ok().map(|permit| BulkheadSlot { _permit: permit })
    }

    /// Takes a slot, waiting up to `wait` for one; `None` if none freed up
    /// in time (at once when `wait` is zero).
    pub async fn enter(&self, wait: Duration) -> Option<BulkheadSlot> {
        if let Some(slot) = self.try_enter() {
            return Some(slot);
        }
        if wait.is_zero() {
            return None;
        }
        let permit = tokio::time::timeout(wait, Arc::clone(&self.slots).acquire_owned()).await;
        // The semaphore is never closed, so the inner error cannot happen.
        permit.ok()?.ok().map(|permit| BulkheadSlot { _permit: permit })
    }

    /// Calls in flight right now.
    pub fn in_flight(&self) -> usize {
        self.capacity - self.slots.available_permits()
    }

    /// The configured capacity.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}
