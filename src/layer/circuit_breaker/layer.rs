use std::fmt;
use std::sync::Arc;

use tower::Layer;

use super::CircuitBreaker;
use super::config::Builder;
use super::handle::BreakerHandle;
use super::registry::Registry;
use crate::error::Result;

/// Applies [`CircuitBreaker`] to a service.
///
/// Every service this layer wraps shares its circuits, so one
/// [`handle`](Self::handle) observes them all.
#[derive(Clone)]
pub struct CircuitBreakerLayer {
    registry: Arc<Registry>,
}

impl CircuitBreakerLayer {
    /// Settings for a breaker, starting from the defaults.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// A breaker with the default settings.
    ///
    /// # Errors
    ///
    /// None in practice: the defaults are valid.
    pub fn new() -> Result<Self> {
        Builder::default().build()
    }

    pub(crate) fn from_registry(registry: Arc<Registry>) -> Self {
        Self { registry }
    }

    /// A handle to read and force the circuits.
    pub fn handle(&self) -> BreakerHandle {
        BreakerHandle::new(self.registry.clone())
    }
}

impl<S> Layer<S> for CircuitBreakerLayer {
    type Service = CircuitBreaker<S>;

    fn layer(&self, inner: S) -> CircuitBreaker<S> {
        CircuitBreaker::new(inner, self.registry.clone())
    }
}

impl fmt::Debug for CircuitBreakerLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerLayer")
            .field("name", &self.registry.name())
            .finish_non_exhaustive()
    }
}
