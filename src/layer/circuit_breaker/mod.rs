//! A circuit breaker keyed by recipient.
//!
//! Each recipient gets its own circuit (up to a bounded number of keys), so
//! one failing service does not cut off the others. A circuit trips on
//! consecutive failures or on a failure rate over a count window, refuses
//! calls for a break that grows with each open in a row (capped), then admits
//! a bounded number of half-open probes whose outcomes close or reopen it.
//! Refused calls fail at once with a
//! [`CircuitOpen`](crate::ErrorKind::CircuitOpen) error that names the key
//! and carries [`retry_after`](crate::Error::retry_after); its class is
//! [`NotDelivered`](crate::ErrorClass::NotDelivered), so the fallback layer
//! sends the message the other way.
//!
//! The parts are kept apart as in Polly and resilience4j: [`state`] is the
//! pure state machine, [`classify`] decides what counts as a failure,
//! [`CircuitBreakerBuilder`] validates the trip policy, [`BreakerHandle`] reads and forces
//! circuits, and transitions are logged with `tracing` and counted with
//! `metrics` (`stage7_transport_breaker_transitions_total{breaker,to}`,
//! `stage7_transport_breaker_state{breaker,key}`) after the lock is released.
//!
//! ```
//! use std::convert::Infallible;
//! use stage7_transport::layer::circuit_breaker::CircuitBreakerLayer;
//! use stage7_transport::{Delivery, Error, Message, Route};
//! use tower::{Layer, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Error> {
//! let layer = CircuitBreakerLayer::builder().consecutive_failures(Some(1)).build()?;
//! let handle = layer.handle();
//! let failing = tower::service_fn(|_: Message| async {
//!     Err::<Delivery, _>(Error::not_delivered("connection refused"))
//! });
//! let breaker = layer.layer(failing);
//! let message = Message::request("brain", serde_json::json!({}));
//! assert!(breaker.clone().oneshot(message.clone()).await.is_err());
//! let refused = breaker.oneshot(message).await.unwrap_err();
//! assert!(refused.is_circuit_open());
//! assert_eq!(refused.circuit_key(), Some("brain"));
//! # let _ = handle;
//! # Ok(())
//! # }
//! ```

pub mod future;
mod handle;
mod layer;
mod outcome;
mod registry;
pub mod state;

use std::sync::Arc;
use std::task::{Context, Poll};

use tower::Service;

pub use self::future::ResponseFuture;
pub use self::handle::BreakerHandle;
pub use self::layer::{CircuitBreakerBuilder, CircuitBreakerLayer};
pub use self::outcome::{Outcome, classify};
pub use self::registry::OVERFLOW_KEY;
use self::registry::Registry;
pub use self::state::State;
use crate::error::Error;
use crate::message::Message;

/// The key of messages without a recipient.
pub const NO_RECIPIENT_KEY: &str = "<none>";

/// Refuses calls to recipients whose circuit is open. See the
/// [module docs](self).
///
/// # Clone
///
/// Clones share the circuits.
#[derive(Debug, Clone)]
pub struct CircuitBreaker<S> {
    inner: S,
    circuits: BreakerHandle,
}

impl<S> CircuitBreaker<S> {
    fn new(inner: S, registry: Arc<Registry>) -> Self {
        Self {
            inner,
            circuits: BreakerHandle::new(registry),
        }
    }

    /// A handle to read and force the circuits.
    pub fn handle(&self) -> BreakerHandle {
        self.circuits.clone()
    }

    /// The handle, lent: [`Stack`](crate::Stack) hands out references.
    pub(crate) fn circuits(&self) -> &BreakerHandle {
        &self.circuits
    }

    crate::layer::inner_accessors!();
}

impl<S, T> Service<Message> for CircuitBreaker<S>
where
    S: Service<Message, Response = T, Error = Error>,
{
    type Response = T;
    type Error = Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, message: Message) -> Self::Future {
        let key = message.recipient().unwrap_or(NO_RECIPIENT_KEY);
        let registry = self.circuits.registry();
        match registry.acquire(key) {
            Ok(ticket) => {
                ResponseFuture::admitted(self.inner.call(message), registry.clone(), ticket)
            }
            Err(error) => ResponseFuture::refused(error),
        }
    }
}

#[cfg(test)]
mod tests;
