//! Retries that are safe, on a jittered backoff, within a budget.
//!
//! [`Retry`] repeats a failed call when its [`RetryPolicy`] says the error
//! class allows it (see the policy for the rules), waiting on a [`backon`]
//! exponential schedule with jitter, never past the message deadline, and
//! never beyond the shared [`RetryBudget`].
//!
//! # Differences from `tower::retry::Retry`
//!
//! tower's `Retry` clones the whole inner service into every response
//! future. This one keeps a spare clone of the inner service and takes a
//! fresh clone from it only when a retry actually happens, so the success
//! path costs two reference-count increments instead of one per layer below.
//! Any [`tower::retry::Policy`] works with either; [`RetryPolicy`] is the
//! one this crate's stack uses.
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

pub use self::budget::{
    DEFAULT_MAX_TOKENS, DEFAULT_MIN_RETRIES_PER_SEC, DEFAULT_RETRY_RATIO, RetryBudget,
};
pub use self::future::ResponseFuture;
pub use self::layer::RetryLayer;
pub use self::policy::{
    DEFAULT_FACTOR, DEFAULT_MAX_DELAY, DEFAULT_MAX_RETRIES, DEFAULT_MIN_DELAY, RetryPolicy,
    RetryPolicyBuilder,
};
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
    spare: Arc<S>,
    policy: P,
}

impl<P, S: Clone> Retry<P, S> {
    /// Wraps `inner`, retrying as `policy` decides.
    pub fn new(inner: S, policy: P) -> Self {
        let spare = Arc::new(inner.clone());
        Self {
            inner,
            spare,
            policy,
        }
    }

    /// The policy.
    pub fn policy(&self) -> &P {
        &self.policy
    }

    crate::layer::inner_accessors!();
}

impl<P: Clone, S: Clone> Clone for Retry<P, S> {
    fn clone(&self) -> Self {
        Self {
            inner: (*self.spare).clone(),
            spare: self.spare.clone(),
            policy: self.policy.clone(),
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
        let mut policy = self.policy.clone();
        let copy = policy.clone_request(&message);
        let future = self.inner.call(message);
        ResponseFuture::new(future, copy, policy, self.spare.clone())
    }
}

#[cfg(test)]
mod tests;
