//! A bulkhead: bounded concurrency per dependency that fails fast when full.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// At most `capacity` calls in flight; [`Bulkhead::try_enter`] never waits.
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

    /// Calls in flight right now.
    pub fn in_flight(&self) -> usize {
        self.capacity - self.slots.available_permits()
    }

    /// The configured capacity.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}
