//! One branch of a stack: metrics, circuit breaker and attempt timeout over
//! a backend, and its settings.

use std::time::Duration;

use tower::Layer;

use crate::defaults;
use crate::error::{Error, Result};
use crate::layer::circuit_breaker::{CircuitBreaker, CircuitBreakerBuilder, CircuitBreakerLayer};
use crate::layer::metrics::{Metrics, MetricsLayer};
use crate::layer::timeout::Timeout;
use crate::route::Route;

/// Settings of one branch: its attempt timeout and its circuit breaker.
///
/// ```
/// use std::time::Duration;
/// use stage7_transport::{BranchBuilder, Route};
/// use stage7_transport::layer::circuit_breaker::CircuitBreakerLayer;
///
/// let amqp = BranchBuilder::new(Route::Amqp)
///     .attempt_timeout(Duration::from_secs(2))
///     .breaker(CircuitBreakerLayer::builder().consecutive_failures(Some(3)));
/// ```
#[derive(Debug, Clone)]
pub struct BranchBuilder {
    route: Route,
    attempt_timeout: Option<Duration>,
    breaker: CircuitBreakerBuilder,
}

impl BranchBuilder {
    /// Defaults for a branch that delivers over `route`.
    pub fn new(route: Route) -> Self {
        Self {
            route,
            attempt_timeout: None,
            breaker: CircuitBreakerLayer::builder(),
        }
    }

    /// The timeout of one attempt. Default [`ATTEMPT_TIMEOUT`](crate::defaults::ATTEMPT_TIMEOUT).
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = Some(timeout);
        self
    }

    /// Sets the attempt timeout unless it was set already.
    pub(crate) fn default_attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout.get_or_insert(timeout);
        self
    }

    /// The circuit breaker's settings. Default: [`CircuitBreakerBuilder`]'s
    /// defaults. Unless named otherwise, the breaker is named after the route.
    pub fn breaker(mut self, breaker: CircuitBreakerBuilder) -> Self {
        self.breaker = breaker;
        self
    }

    pub(super) fn assemble<B>(self, backend: B) -> Result<Branch<B>> {
        let attempt_timeout = self.attempt_timeout.unwrap_or(defaults::ATTEMPT_TIMEOUT);
        if attempt_timeout.is_zero() {
            return Err(Error::config(format!(
                "{} branch: attempt timeout must be positive",
                self.route
            )));
        }
        let breaker = self.breaker.default_name(self.route.as_str()).build()?;
        Ok(MetricsLayer::attempts(self.route)
            .layer(breaker.layer(Timeout::new(backend, attempt_timeout))))
    }
}

/// One branch: metrics, circuit breaker and attempt timeout over a backend.
pub type Branch<B> = Metrics<CircuitBreaker<Timeout<B>>>;
