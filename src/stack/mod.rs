//! Assembling the layers over one or two backends.

mod branch;
mod standard;

use std::fmt;
use std::task::{Context, Poll};
use std::time::Duration;

use tower::{Layer, Service};

pub use self::branch::{Branch, BranchBuilder};
pub use self::standard::StandardStack;
pub(crate) use self::standard::standard_stack;
use crate::defaults;
use crate::error::{Error, Result};
use crate::layer::circuit_breaker::BreakerHandle;
use crate::layer::deadline::Deadline;
use crate::layer::fallback::Fallback;
use crate::layer::metrics::{Metrics, MetricsLayer};
use crate::layer::retry::{Retry, RetryPolicy, RetryPolicyBuilder};
use crate::message::Message;
use crate::route::Route;
use crate::transport::Delivery;

type Layers<P, S> = Metrics<Deadline<Retry<RetryPolicy, Fallback<Branch<P>, Branch<S>>>>>;

/// Builds a [`Stack`]: the layers of docs/ARCHITECTURE.md (the path of one call) over a primary backend and an
/// optional secondary one.
///
/// # Order
///
/// Outermost first: call metrics, deadline, retry, fallback; then per branch:
/// attempt metrics, circuit breaker, attempt timeout, backend.
///
/// ```
/// use std::time::Duration;
/// use stage7_transport::{BranchBuilder, MemoryTransport, Route, Stack};
/// use stage7_transport::layer::retry::RetryPolicy;
///
/// let primary = MemoryTransport::new();
/// let secondary = MemoryTransport::new();
/// let stack = Stack::builder(primary)
///     .secondary(secondary)
///     .secondary_branch(BranchBuilder::new(Route::Memory).attempt_timeout(Duration::from_secs(1)))
///     .deadline(Duration::from_secs(5))
///     .retry(RetryPolicy::builder().max_retries(2))
///     .build()?;
/// # Ok::<(), stage7_transport::Error>(())
/// ```
#[derive(Debug)]
pub struct StackBuilder<P, S = P> {
    primary: P,
    primary_branch: BranchBuilder,
    secondary: Option<(S, BranchBuilder)>,
    deadline: Duration,
    retry: RetryPolicyBuilder,
    receivers_deduplicate: bool,
}

impl<P> Stack<P> {
    /// Settings for a stack over `primary` alone, starting from the
    /// defaults. The primary branch is labelled [`Route::Memory`] until
    /// [`primary_branch`](StackBuilder::primary_branch) says otherwise.
    pub fn builder(primary: P) -> StackBuilder<P> {
        StackBuilder {
            primary,
            primary_branch: BranchBuilder::new(Route::Memory),
            secondary: None,
            deadline: defaults::CALL_DEADLINE,
            retry: RetryPolicy::builder(),
            receivers_deduplicate: true,
        }
    }
}

impl<P, S> StackBuilder<P, S> {
    /// Falls back to `secondary` when the primary fails in a way that makes
    /// sending again safe.
    pub fn secondary<S2>(self, secondary: S2) -> StackBuilder<P, S2> {
        let config = match self.secondary {
            Some((_, config)) => config,
            None => BranchBuilder::new(Route::Memory),
        };
        StackBuilder {
            primary: self.primary,
            primary_branch: self.primary_branch,
            secondary: Some((secondary, config)),
            deadline: self.deadline,
            retry: self.retry,
            receivers_deduplicate: self.receivers_deduplicate,
        }
    }

    /// Settings of the primary branch.
    pub fn primary_branch(mut self, config: BranchBuilder) -> Self {
        self.primary_branch = config;
        self
    }

    /// Settings of the secondary branch; ignored without a secondary.
    pub fn secondary_branch(mut self, config: BranchBuilder) -> Self {
        if let Some((_, slot)) = &mut self.secondary {
            *slot = config;
        }
        self
    }

    /// The overall budget of a call. Default [`CALL_DEADLINE`](crate::defaults::CALL_DEADLINE).
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// The retry policy's settings. Default [`RetryPolicy::builder`].
    pub fn retry(mut self, retry: RetryPolicyBuilder) -> Self {
        self.retry = retry;
        self
    }

    /// Whether receivers drop repeated message ids, which makes retrying and
    /// falling back after an [`UnknownOutcome`](crate::ErrorClass::UnknownOutcome)
    /// safe. Default true: every receiver built with this crate does. Applies
    /// to both the retry policy and the fallback.
    pub fn receivers_deduplicate(mut self, deduplicate: bool) -> Self {
        self.receivers_deduplicate = deduplicate;
        self
    }

    /// Validates the settings and assembles the stack.
    ///
    /// # Errors
    ///
    /// [`Config`](crate::ErrorKind::Config) naming the invalid setting.
    pub fn build(self) -> Result<Stack<P, S>>
    where
        P: Clone,
        S: Clone,
    {
        if self.deadline.is_zero() {
            return Err(Error::config("call deadline must be positive"));
        }
        let primary = self.primary_branch.assemble(self.primary)?;
        let secondary = match self.secondary {
            Some((backend, config)) => Some(config.assemble(backend)?),
            None => None,
        };
        let policy = self
            .retry
            .receivers_deduplicate(self.receivers_deduplicate)
            .build()?;
        let fallback =
            Fallback::new(primary, secondary).receivers_deduplicate(self.receivers_deduplicate);
        let inner = MetricsLayer::call().layer(Deadline::delegating(
            Retry::new(fallback, policy),
            self.deadline,
        ));
        Ok(Stack { inner })
    }
}

/// The assembled stack: a [`Transport`](crate::Transport) built by
/// [`StackBuilder`].
///
/// # Clone
///
/// Clones share circuit breakers, retry budget and metric handles.
pub struct Stack<P, S = P> {
    inner: Layers<P, S>,
}

impl<P, S> Stack<P, S> {
    fn fallback(&self) -> &Fallback<Branch<P>, Branch<S>> {
        self.inner.get_ref().get_ref().get_ref()
    }

    /// The primary branch's circuit breaker.
    pub fn primary_breaker(&self) -> &BreakerHandle {
        self.fallback().primary().get_ref().circuits()
    }

    /// The secondary branch's circuit breaker, if there is a secondary.
    pub fn secondary_breaker(&self) -> Option<&BreakerHandle> {
        self.fallback()
            .secondary()
            .map(|branch| branch.get_ref().circuits())
    }
}

impl<P: Clone, S: Clone> Clone for Stack<P, S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<P, S> Service<Message> for Stack<P, S>
where
    P: Service<Message, Response = Delivery, Error = Error> + Clone,
    S: Service<Message, Response = Delivery, Error = Error> + Clone,
{
    type Response = Delivery;
    type Error = Error;
    type Future = <Layers<P, S> as Service<Message>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, message: Message) -> Self::Future {
        self.inner.call(message)
    }
}

impl<P, S> fmt::Debug for Stack<P, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stack")
            .field("primary_breaker", self.primary_breaker())
            .field("secondary_breaker", &self.secondary_breaker())
            .finish_non_exhaustive()
    }
}
