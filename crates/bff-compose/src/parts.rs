//! The parts a plan runs, and running several of them at once.

use std::future::Future;
use std::sync::{Arc, Mutex};

use bff_error::{Classify, Failure, ReasonCode};
use bff_resilience::Deadline;
use tracing::Instrument;

use crate::ENGINE_GRACE;
use crate::envelope::{ComponentStatus, Source};

/// A critical part's failure: which component and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CriticalFailure {
    /// The component's name.
    pub component: &'static str,
    /// Why it failed.
    pub failure: Failure,
}

/// One component's entry in a plan's report.
#[derive(Debug, Clone)]
pub(crate) struct Reported {
    pub(crate) name: &'static str,
    pub(crate) status: ComponentStatus,
    /// When it was reported, from the plan's start.
    pub(crate) elapsed: Option<std::time::Duration>,
}

/// The bookkeeping shared by every kind of part: where to report, under
/// which deadline.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) name: &'static str,
    pub(crate) critical: bool,
    pub(crate) index: usize,
    pub(crate) deadline: Deadline,
    pub(crate) report: Arc<Mutex<Vec<Reported>>>,
    /// When the plan started (for the component's timing).
    pub(crate) started: tokio::time::Instant,
}

impl Slot {
    /// Records a critical failure and makes the error that fails the plan.
    fn fail(&self, failure: Failure) -> CriticalFailure {
        self.report(ComponentStatus::Error { reason: failure.reason });
        CriticalFailure { component: self.name, failure }
    }

    fn report(&self, status: ComponentStatus) {
        let elapsed = self.started.elapsed();
        let mut report = self.report.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = report.get_mut(self.index) {
            entry.status = status;
            entry.elapsed = Some(elapsed);
        }
    }

    /// The part's `component` span: one per component in a trace, with its
    /// budget, outcome and, for a cached part, how the cache served it.
    fn span(&self) -> tracing::Span {
        tracing::debug_span!(
            "component",
            component = self.name,
            critical = self.critical,
            budget_ms = self.deadline.remaining().as_millis() as u64,
            outcome = tracing::field::Empty,
            cache = tracing::field::Empty,
        )
    }

    /// Runs the part's future under its deadline (plus a small grace) inside
    /// a `component` span, reducing any error to its [`Failure`].
    async fn execute<T, E, Fut>(&self, future: Fut) -> Result<T, Failure>
    where
        E: Classify,
        Fut: Future<Output = Result<T, E>>,
    {
        let span = self.span();
        self.execute_in(&span, future).instrument(span.clone()).await
    }

    /// [`Self::execute`] for a caller already running inside `span`.
    async fn execute_in<T, E, Fut>(&self, span: &tracing::Span, future: Fut) -> Result<T, Failure>
    where
        E: Classify,
        Fut: Future<Output = Result<T, E>>,
    {
        let cut_at = self.deadline.instant() + ENGINE_GRACE;
        let result = match tokio::time::timeout_at(cut_at, future).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(error.failure()),
            Err(_elapsed) => Err(Failure::new(ReasonCode::Timeout)),
        };
        let outcome = match &result {
            Ok(_) => "ok",
            Err(failure) => failure.reason.as_str(),
        };
        span.record("outcome", outcome);
        result
    }
}

/// Something a [`crate::Plan`] can run: it yields its value or, for critical
/// parts only, fails the request.
pub trait Part: Send {
    /// What the part contributes to the view model.
    type Output: Send;
    /// Runs the part and records its status.
    fn resolve(self) -> impl Future<Output = Result<Self::Output, CriticalFailure>> + Send;
}

/// A part without which the response fails. See [`crate::Plan::critical`].
#[must_use = "a part does nothing until passed to Plan::run"]
#[derive(Debug)]
pub struct Critical<Fut> {
    slot: Slot,
    future: Fut,
}

impl<Fut> Critical<Fut> {
    pub(crate) fn new(slot: Slot, future: Fut) -> Self {
        Critical { slot, future }
    }

    /// Takes the part apart, for crates that build their own kind of part
    /// (e.g. `bff-cache`): see [`PartHandle`].
    pub fn into_handle(self) -> (PartHandle, Fut) {
        (PartHandle { slot: self.slot }, self.future)
    }
}

impl<Fut, T, E> Part for Critical<Fut>
where
    Fut: Future<Output = Result<T, E>> + Send,
    T: Send,
    E: Classify,
{
    type Output = T;

    async fn resolve(self) -> Result<T, CriticalFailure> {
        match self.slot.execute(self.future).await {
            Ok(value) => {
                self.slot.report(ComponentStatus::Ok);
                Ok(value)
            }
            Err(failure) => Err(self.slot.fail(failure)),
        }
    }
}

/// A part the response can do without, awaiting the decision of what to do
/// when it is missing. Only the decided forms ([`WithFallback`], [`Omitted`])
/// can be run.
#[must_use = "decide what happens when the part is missing: or_default, or, omit"]
#[derive(Debug)]
pub struct Optional<Fut> {
    slot: Slot,
    future: Fut,
}

impl<Fut, T, E> Optional<Fut>
where
    Fut: Future<Output = Result<T, E>>,
{
    pub(crate) fn new(slot: Slot, future: Fut) -> Self {
        Optional { slot, future }
    }

    /// When missing, use `T::default()` (`status: fallback`, `source: default`).
    pub fn or_default(self) -> WithFallback<Fut, T>
    where
        T: Default,
    {
        self.or(T::default())
    }

    /// When missing, use `value` (`status: fallback`, `source: default`).
    pub fn or(self, value: T) -> WithFallback<Fut, T> {
        WithFallback { part: self, fallback: value }
    }

    /// When missing, leave it out: the part yields `None` (`status: error`).
    pub fn omit(self) -> Omitted<Fut> {
        Omitted { part: self }
    }

    /// Takes the part apart, for crates that build their own kind of part
    /// (e.g. `bff-cache`'s stale-from-cache): the handle runs the future
    /// under the part's deadline and reports its status.
    pub fn into_handle(self) -> (PartHandle, Fut) {
        (PartHandle { slot: self.slot }, self.future)
    }
}

/// A part's bookkeeping, for parts built outside this crate.
#[derive(Debug)]
pub struct PartHandle {
    slot: Slot,
}

impl PartHandle {
    /// The component's name.
    pub fn name(&self) -> &'static str {
        self.slot.name
    }

    pub(crate) fn from_slot(slot: Slot) -> Self {
        PartHandle { slot }
    }

    /// Runs `future` under the part's deadline, in its span; any error is
    /// reduced to its [`Failure`].
    pub async fn execute<T, E, F>(&self, future: F) -> Result<T, Failure>
    where
        E: Classify,
        F: Future<Output = Result<T, E>>,
    {
        self.slot.execute(future).await
    }

    /// The component's span, for a part that does work of its own around
    /// the call (a cache lookup): run the whole part inside it
    /// (`.instrument(span.clone())`), call [`Self::execute_in`] with it and
    /// record `cache` on it, so a component has one span however it was
    /// served.
    pub fn span(&self) -> tracing::Span {
        self.slot.span()
    }

    /// [`Self::execute`] for a part already running inside `span` (from
    /// [`Self::span`]): records the outcome there instead of opening a
    /// second span.
    pub async fn execute_in<T, E, F>(&self, span: &tracing::Span, future: F) -> Result<T, Failure>
    where
        E: Classify,
        F: Future<Output = Result<T, E>>,
    {
        self.slot.execute_in(span, future).await
    }

    /// Records the part's outcome in the envelope.
    pub fn report(&self, status: ComponentStatus) {
        self.slot.report(status);
    }

    /// Whether the part was declared critical.
    pub fn is_critical(&self) -> bool {
        self.slot.critical
    }

    /// Records a critical part's failure and makes the error that fails
    /// the plan.
    pub fn fail(&self, failure: Failure) -> CriticalFailure {
        self.slot.fail(failure)
    }
}

/// An optional part with a substitute value. See [`Optional::or`].
#[must_use = "a part does nothing until passed to Plan::run"]
#[derive(Debug)]
pub struct WithFallback<Fut, T> {
    part: Optional<Fut>,
    fallback: T,
}

impl<Fut, T, E> Part for WithFallback<Fut, T>
where
    Fut: Future<Output = Result<T, E>> + Send,
    T: Send,
    E: Classify,
{
    type Output = T;

    async fn resolve(self) -> Result<T, CriticalFailure> {
        let WithFallback { part, fallback } = self;
        Ok(match part.slot.execute(part.future).await {
            Ok(value) => {
                part.slot.report(ComponentStatus::Ok);
                value
            }
            Err(failure) => {
                part.slot.report(ComponentStatus::Fallback {
                    source: Source::Default,
                    reason: failure.reason,
                    age_ms: None,
                });
                fallback
            }
        })
    }
}

/// An optional part left out when missing. See [`Optional::omit`].
#[must_use = "a part does nothing until passed to Plan::run"]
#[derive(Debug)]
pub struct Omitted<Fut> {
    part: Optional<Fut>,
}

impl<Fut, T, E> Part for Omitted<Fut>
where
    Fut: Future<Output = Result<T, E>> + Send,
    T: Send,
    E: Classify,
{
    type Output = Option<T>;

    async fn resolve(self) -> Result<Option<T>, CriticalFailure> {
        let part = self.part;
        Ok(match part.slot.execute(part.future).await {
            Ok(value) => {
                part.slot.report(ComponentStatus::Ok);
                Some(value)
            }
            Err(failure) => {
                part.slot.report(ComponentStatus::Error { reason: failure.reason });
                None
            }
        })
    }
}

/// A tuple of parts run concurrently by [`crate::Plan::run`] (1 to 8 parts).
pub trait Parts: Send {
    /// The tuple of the parts' outputs.
    type Output;
    /// Runs every part; fails as soon as a critical one fails, dropping
    /// (cancelling) the others.
    fn resolve_all(self) -> impl Future<Output = Result<Self::Output, CriticalFailure>> + Send;
}

macro_rules! impl_parts {
    ($($part:ident),+) => {
        impl<$($part: Part),+> Parts for ($($part,)+) {
            type Output = ($($part::Output,)+);

            #[allow(non_snake_case)]
            async fn resolve_all(self) -> Result<Self::Output, CriticalFailure> {
                let ($($part,)+) = self;
                tokio::try_join!($($part.resolve()),+)
            }
        }
    };
}

impl_parts!(A);
impl_parts!(A, B);
impl_parts!(A, B, C);
impl_parts!(A, B, C, D);
impl_parts!(A, B, C, D, E);
impl_parts!(A, B, C, D, E, F);
impl_parts!(A, B, C, D, E, F, G);
impl_parts!(A, B, C, D, E, F, G, H);
