//! Primary, then secondary — only when the error says it is safe.
//!
//! [`Fallback`] sends each message through the primary service. When that
//! fails with an error whose class allows sending again — always for
//! [`NotDelivered`](crate::ErrorClass::NotDelivered) (connection down, nack,
//! unroutable, circuit open), for
//! [`UnknownOutcome`](crate::ErrorClass::UnknownOutcome) only when receivers
//! de-duplicate on `id` — the same message goes through the secondary,
//! unless the message [deadline](crate::Message::deadline) has already
//! passed. The [`Delivery`](crate::Delivery) says which route served. A
//! [`Rejected`](crate::ErrorClass::Rejected) error is returned as is: the
//! receiver said no, and asking another way would not change that.
//!
//! When both fail, the secondary's error is returned with the primary's
//! attached ([`Error::fallback_from`](crate::Error::fallback_from)), and its
//! class is the more cautious of the two: if the primary attempt may have
//! arrived, so may the call.
//!
//! The secondary service is cloned only when a fallback happens, from a
//! spare kept aside, so the success path pays one reference count for it.
//!
//! # Readiness
//!
//! The stack is ready when the primary is. When the primary is not ready —
//! the broker has blocked publishing, its window of calls in flight is full
//! — and the secondary is, the next call goes straight to the secondary
//! instead of waiting: a primary that cannot take work is treated like one
//! that failed to deliver.
//!
//! ```
//! use stage7_transport::layer::fallback::FallbackLayer;
//! use stage7_transport::MemoryTransport;
//! use tower::Layer;
//!
//! let secondary = MemoryTransport::new();
//! let _transport = FallbackLayer::new(secondary).layer(MemoryTransport::new());
//! ```

pub mod future;
mod layer;

use std::sync::Arc;
use std::task::{Context, Poll};

use tower::Service;

pub use self::future::ResponseFuture;
pub use self::layer::FallbackLayer;
use crate::error::Error;
use crate::message::Message;

/// Sends through `primary`, falling back to `secondary` when safe. See the
/// [module docs](self).
///
/// With no secondary (`secondary: None`) it passes calls through, so a stack
/// has the same type with or without a fallback branch.
#[derive(Debug)]
pub struct Fallback<P, S> {
    primary: P,
    secondary: Option<Arc<S>>,
    standby: Standby<S>,
    receivers_deduplicate: bool,
}

/// A clone of the secondary polled because the primary was not ready, kept
/// across polls so its wake-up registration is not lost.
#[derive(Debug)]
enum Standby<S> {
    Idle,
    Polling(S),
    /// Ready: the next call goes to it.
    Ready(S),
}

impl<P, S> Fallback<P, S> {
    /// Falls back from `primary` to `secondary`.
    pub fn new(primary: P, secondary: Option<S>) -> Self {
        Self {
            primary,
            secondary: secondary.map(Arc::new),
            standby: Standby::Idle,
            receivers_deduplicate: true,
        }
    }

    /// Whether receivers drop repeated message ids, which makes falling back
    /// after an [`UnknownOutcome`](crate::ErrorClass::UnknownOutcome) safe.
    /// Default true.
    pub fn receivers_deduplicate(mut self, deduplicate: bool) -> Self {
        self.receivers_deduplicate = deduplicate;
        self
    }

    /// The primary service.
    pub fn primary(&self) -> &P {
        &self.primary
    }

    /// The secondary service, if any.
    pub fn secondary(&self) -> Option<&S> {
        self.secondary.as_deref()
    }
}

impl<P: Clone, S> Clone for Fallback<P, S> {
    fn clone(&self) -> Self {
        Self {
            primary: self.primary.clone(),
            secondary: self.secondary.clone(),
            standby: Standby::Idle,
            receivers_deduplicate: self.receivers_deduplicate,
        }
    }
}

impl<P, S, T> Service<Message> for Fallback<P, S>
where
    P: Service<Message, Response = T, Error = Error>,
    S: Service<Message, Response = T, Error = Error> + Clone,
{
    type Response = T;
    type Error = Error;
    type Future = ResponseFuture<P::Future, S>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if matches!(self.standby, Standby::Ready(_)) {
            return Poll::Ready(Ok(()));
        }
        let primary = self.primary.poll_ready(cx);
        let Some(spare) = self.secondary.as_ref().filter(|_| primary.is_pending()) else {
            self.standby = Standby::Idle;
            return primary;
        };
        let mut standby = match std::mem::replace(&mut self.standby, Standby::Idle) {
            Standby::Polling(standby) => standby,
            _ => (**spare).clone(),
        };
        match standby.poll_ready(cx) {
            Poll::Ready(Ok(())) => {
                tracing::debug!(
                    "the primary route is not ready; the next call takes the secondary"
                );
                self.standby = Standby::Ready(standby);
                Poll::Ready(Ok(()))
            }
            // Not an error of the stack: the primary may still get ready.
            Poll::Ready(Err(error)) => {
                tracing::debug!(%error, "neither route is ready");
                Poll::Pending
            }
            Poll::Pending => {
                self.standby = Standby::Polling(standby);
                Poll::Pending
            }
        }
    }

    #[inline]
    fn call(&mut self, message: Message) -> Self::Future {
        // Looked at before it is moved: the common call leaves it in place.
        if matches!(self.standby, Standby::Ready(_))
            && let Standby::Ready(mut secondary) =
                std::mem::replace(&mut self.standby, Standby::Idle)
        {
            return ResponseFuture::bypassed(secondary.call(message));
        }
        let fallback = self
            .secondary
            .as_ref()
            .map(|secondary| (secondary.clone(), message.clone()));
        ResponseFuture::new(
            self.primary.call(message),
            fallback,
            self.receivers_deduplicate,
        )
    }
}

#[cfg(test)]
mod tests;
