use std::fmt;
use std::sync::Arc;

use super::registry::Registry;
use super::state::State;

/// Reads and steers a breaker's circuits from outside the call path: for
/// health endpoints, admin commands and tests.
///
/// Forcing a key that has not been called yet creates its circuit, so a
/// recipient can be isolated before the first call.
///
/// ```
/// use stage7_transport::layer::circuit_breaker::{CircuitBreakerLayer, State};
///
/// let layer = CircuitBreakerLayer::builder().build()?;
/// let handle = layer.handle();
/// handle.force_open("brain");
/// assert_eq!(handle.state("brain"), Some(State::ForcedOpen));
/// handle.reset("brain");
/// assert_eq!(handle.state("brain"), Some(State::Closed));
/// # Ok::<(), stage7_transport::Error>(())
/// ```
#[derive(Clone)]
pub struct BreakerHandle {
    registry: Arc<Registry>,
}

impl BreakerHandle {
    pub(crate) fn new(registry: Arc<Registry>) -> Self {
        Self { registry }
    }

    pub(crate) fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// The breaker's name.
    pub fn name(&self) -> &str {
        self.registry.name()
    }

    /// The state of `key`'s circuit, `None` if it has none yet.
    pub fn state(&self, key: &str) -> Option<State> {
        self.registry.state(key)
    }

    /// Every circuit and its state, sorted by key; includes the overflow
    /// circuit.
    pub fn states(&self) -> Vec<(String, State)> {
        self.registry.states()
    }

    /// Holds `key`'s circuit open until [`reset`](Self::reset).
    pub fn force_open(&self, key: &str) {
        self.registry.force(key, State::ForcedOpen);
    }

    /// Holds `key`'s circuit closed, counting nothing, until
    /// [`reset`](Self::reset).
    pub fn force_closed(&self, key: &str) {
        self.registry.force(key, State::ForcedClosed);
    }

    /// Closes `key`'s circuit and clears its counters and break growth.
    pub fn reset(&self, key: &str) {
        self.registry.force(key, State::Closed);
    }
}

impl fmt::Debug for BreakerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerHandle")
            .field("name", &self.registry.name())
            .finish_non_exhaustive()
    }
}
