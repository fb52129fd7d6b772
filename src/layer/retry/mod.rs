//! Retries that are safe, on a jittered backoff, within a budget.
//!
//! [`Retry`] repeats a failed call when its [`RetryPolicy`] says the error
//! class allows it (see the policy for the rules), waiting on a [`backon`]
//! exponential schedule with jitter, never past the message deadline, and
//! never beyond the shared [`RetryBudget`].
//!
//! # Differences from `tower::retry::Retry`
//!
//! tower's `Retry` clones the whole inner service and the policy into every
//! response future. This one keeps a spare inner service and a spare policy
//! aside and clones them only when a call fails, so the success path costs
//! two reference-count increments (the message copy and the spare) instead of
//! one per layer below. Any [`tower::retry::Policy`] works with either;
//! [`RetryPolicy`] is the one this crate's stack uses.
//!
//! Two consequences: [`Policy::retry`] is consulted for errors only, and
//! the first [`Policy::clone_request`] of each call runs on the layer's own
//! policy rather than on a per-call copy. A policy that would retry a
//! successful [`Delivery`](crate::Delivery), or that keeps per-call state in
//! `clone_request`, needs tower's `Retry`.
//!
//! ```
//! use stage7_transport::layer::retry::{RetryLayer, RetryPolicy};
//! use stage7_transport::MemoryTransport;
//! use tower::Layer;
//!
//! let _transport = RetryLayer::new(RetryPolicy::default()).layer(MemoryTransport::new());
//! ```

mod budget;
pub mod future;
mod layer;
mod policy;

use std::sync::Arc;
use std::task::{Context, Poll};

use tower::Service;
use tower::retry::Policy;

pub use self::budget::RetryBudget;
pub use self::future::ResponseFuture;
pub use self::layer::RetryLayer;
pub use self::policy::{RetryPolicy, RetryPolicyBuilder};
use crate::error::Error;
use crate::message::Message;

/// Retries failed calls as its policy allows. See the [module docs](self).
///
/// # Clone
///
/// Clones share the spare service and the policy's budget; each clone's own
/// inner service starts un-ready, as tower requires.
#[derive(Debug)]
pub struct Retry<P, S> {
    inner: S,
    policy: P,
    shared: Arc<Shared<P, S>>,
}

/// What a response future needs only when it retries: a pristine inner
/// service to clone and a pristine policy for the new request.
#[derive(Debug)]
pub(crate) struct Shared<P, S> {
    spare: S,
    policy: P,
}

impl<P: Clone, S: Clone> Retry<P, S> {
    /// Wraps `inner`, retrying as `policy` decides.
    pub fn new(inner: S, policy: P) -> Self {
        let shared = Arc::new(Shared {
            spare: inner.clone(),
            policy: policy.clone(),
        });
        Self {
            inner,
            policy,
            shared,
        }
    }
}

impl<P, S> Retry<P, S> {
    /// The policy.
    pub fn policy(&self) -> &P {
        &self.policy
    }

    crate::layer::inner_accessors!();
}

impl<P: Clone, S: Clone> Clone for Retry<P, S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.shared.spare.clone(),
            policy: self.policy.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<P, S> Service<Message> for Retry<P, S>
where
    P: Policy<Message, S::Response, Error> + Clone,
    S: Service<Message, Error = Error> + Clone,
{
    type Response = S::Response;
    type Error = Error;
    type Future = ResponseFuture<P, S>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, message: Message) -> Self::Future {
        let copy = self.policy.clone_request(&message);
        let future = self.inner.call(message);
        ResponseFuture::new(future, copy, self.shared.clone())
    }
}

#[cfg(test)]
mod tests;
