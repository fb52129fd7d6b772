//! When and how long to wait before retrying.

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use tokio::time::{Instant, Sleep, sleep};

use super::budget::RetryBudget;
use crate::defaults;
use crate::error::{Error, Result};
use crate::message::Message;

/// Decides which failed calls to repeat, and when.
///
/// * [`NotDelivered`](crate::ErrorClass::NotDelivered) errors are retried,
///   except [`CircuitOpen`](crate::ErrorKind::CircuitOpen): the breaker
///   already said the recipient is failing, and the fallback layer below has
///   already tried the other branch.
/// * [`UnknownOutcome`](crate::ErrorClass::UnknownOutcome) errors are retried
///   only when receivers de-duplicate on the message `id`, which every
///   receiver built with this crate does (the default; switch it off with
///   [`RetryPolicyBuilder::receivers_deduplicate`] for other receivers).
/// * [`Rejected`](crate::ErrorClass::Rejected) errors are never retried.
///
/// Delays follow a jittered exponential [`backon`] schedule, are stretched to
/// a peer's `Retry-After`, and are skipped when they would end past the
/// message [deadline](Message::deadline). Every retry takes a token from a
/// shared [`RetryBudget`].
///
/// Implements [`tower::retry::Policy`], so it also drives tower's own
/// `Retry`.
///
/// # Clone
///
/// A clone shares the settings and the budget and starts a fresh schedule:
/// it is the policy of a new request.
///
/// ```
/// use std::time::Duration;
/// use stage7_transport::layer::retry::RetryPolicy;
///
/// let policy = RetryPolicy::builder()
///     .max_retries(5)
///     .min_delay(Duration::from_millis(20))
///     .build()?;
/// let _retry = tower::retry::RetryLayer::new(policy);
/// # Ok::<(), stage7_transport::Error>(())
/// ```
#[derive(Debug)]
pub struct RetryPolicy {
    settings: Arc<Settings>,
    schedule: Option<Box<ExponentialBackoff>>,
}

#[derive(Debug)]
struct Settings {
    backoff: ExponentialBuilder,
    receivers_deduplicate: bool,
    budget: Arc<RetryBudget>,
}

impl RetryPolicy {
    /// Settings for a policy, starting from the defaults.
    pub fn builder() -> RetryPolicyBuilder {
        RetryPolicyBuilder::default()
    }

    /// The budget retries draw from.
    pub fn budget(&self) -> &Arc<RetryBudget> {
        &self.settings.budget
    }

    /// Records a new call in the budget. Called once per call, before the
    /// first attempt.
    pub(crate) fn on_call(&self) {
        self.settings.budget.deposit();
    }

    /// The delay before retrying `message` after `error`, or `None` to give
    /// up and return the error.
    pub(crate) fn delay(&mut self, message: &Message, error: &Error) -> Option<Duration> {
        if !error.is_retryable(self.settings.receivers_deduplicate) || error.is_circuit_open() {
            return None;
        }
        let backoff = &self.settings.backoff;
        let mut delay = self
            .schedule
            .get_or_insert_with(|| Box::new(backoff.build()))
            .next()?;
        if let Some(asked) = error.retry_after() {
            delay = delay.max(asked);
        }
        if let Some(deadline) = message.deadline()
            && Instant::now() + delay >= deadline
        {
            tracing::debug!(
                id = message.id(),
                ?delay,
                "not retrying: the wait would outlast the deadline"
            );
            return None;
        }
        if !self.settings.budget.withdraw() {
            tracing::warn!(id = message.id(), %error, "not retrying: retry budget exhausted");
            metrics::counter!("stage7_transport_retry_budget_exhausted_total").increment(1);
            return None;
        }
        tracing::debug!(id = message.id(), %error, ?delay, "retrying");
        metrics::counter!("stage7_transport_retries_total").increment(1);
        Some(delay)
    }
}

impl Clone for RetryPolicy {
    fn clone(&self) -> Self {
        Self {
            settings: self.settings.clone(),
            schedule: None,
        }
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicyBuilder::default().assemble()
    }
}

impl<Res> tower::retry::Policy<Message, Res, Error> for RetryPolicy {
    type Future = Sleep;

    fn retry(&mut self, message: &mut Message, result: &mut Result<Res, Error>) -> Option<Sleep> {
        let error = result.as_ref().err()?;
        self.delay(message, error).map(sleep)
    }

    fn clone_request(&mut self, message: &Message) -> Option<Message> {
        if self.schedule.is_none() {
            self.on_call();
        }
        Some(message.clone())
    }
}

/// Settings for a [`RetryPolicy`], validated by [`build`](Self::build).
#[derive(Debug, Clone)]
pub struct RetryPolicyBuilder {
    min_delay: Duration,
    max_delay: Duration,
    factor: f32,
    max_retries: usize,
    jitter: bool,
    receivers_deduplicate: bool,
    budget: Option<Arc<RetryBudget>>,
}

impl Default for RetryPolicyBuilder {
    fn default() -> Self {
        Self {
            min_delay: defaults::RETRY_MIN_DELAY,
            max_delay: defaults::RETRY_MAX_DELAY,
            factor: defaults::RETRY_FACTOR,
            max_retries: defaults::MAX_RETRIES,
            jitter: true,
            receivers_deduplicate: true,
            budget: None,
        }
    }
}

impl RetryPolicyBuilder {
    /// The delay before the first retry. Default [`RETRY_MIN_DELAY`](crate::defaults::RETRY_MIN_DELAY).
    pub fn min_delay(mut self, delay: Duration) -> Self {
        self.min_delay = delay;
        self
    }

    /// The longest delay between retries. Default [`RETRY_MAX_DELAY`](crate::defaults::RETRY_MAX_DELAY).
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// How much each delay grows over the previous one. Default
    /// [`RETRY_FACTOR`](crate::defaults::RETRY_FACTOR).
    pub fn factor(mut self, factor: f32) -> Self {
        self.factor = factor;
        self
    }

    /// Retries after the first attempt; 0 disables retrying. Default
    /// [`MAX_RETRIES`](crate::defaults::MAX_RETRIES).
    pub fn max_retries(mut self, retries: usize) -> Self {
        self.max_retries = retries;
        self
    }

    /// Whether each delay gets a random extra of up to 100 %, so clients that
    /// failed together do not retry together. Default on.
    pub fn jitter(mut self, jitter: bool) -> Self {
        self.jitter = jitter;
        self
    }

    /// Whether receivers drop repeated message ids, which makes retrying an
    /// [`UnknownOutcome`](crate::ErrorClass::UnknownOutcome) safe. Default
    /// true: every receiver built with this crate does.
    pub fn receivers_deduplicate(mut self, deduplicate: bool) -> Self {
        self.receivers_deduplicate = deduplicate;
        self
    }

    /// The budget retries draw from. Default: a fresh
    /// [`RetryBudget::default`] per built policy.
    pub fn budget(mut self, budget: Arc<RetryBudget>) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Checks the settings and builds the policy.
    ///
    /// # Errors
    ///
    /// [`Config`](crate::ErrorKind::Config) when `factor` is below 1 or not
    /// finite, or `min_delay` exceeds `max_delay`.
    pub fn build(self) -> Result<RetryPolicy> {
        if !self.factor.is_finite() || self.factor < 1.0 {
            return Err(Error::config(format!(
                "retry backoff factor must be a finite number >= 1, got {}",
                self.factor
            )));
        }
        if self.min_delay > self.max_delay {
            return Err(Error::config(format!(
                "retry min_delay ({:?}) exceeds max_delay ({:?})",
                self.min_delay, self.max_delay
            )));
        }
        Ok(self.assemble())
    }

    fn assemble(self) -> RetryPolicy {
        let mut backoff = ExponentialBuilder::new()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_factor(self.factor)
            .with_max_times(self.max_retries);
        if self.jitter {
            backoff = backoff.with_jitter();
        }
        RetryPolicy {
            settings: Arc::new(Settings {
                backoff,
                receivers_deduplicate: self.receivers_deduplicate,
                budget: self.budget.unwrap_or_default(),
            }),
            schedule: None,
        }
    }
}
