//! A per-attempt timeout whose error is the crate [`Error`].
//!
//! # Differences from `tower::timeout`
//!
//! * The error is [`Error`] with kind [`Timeout`](crate::ErrorKind::Timeout)
//!   and class [`UnknownOutcome`](crate::ErrorClass::UnknownOutcome) (the
//!   message may have been sent), so layers above decide without
//!   downcasting.
//! * The timer never outlives the call [deadline](crate::layer::deadline)
//!   carried by the message.
//! * No timer is created, and the clock is not read, when the inner service
//!   answers at once.
//!
//! ```
//! use std::time::Duration;
//! use stage7_transport::layer::timeout::TimeoutLayer;
//! use stage7_transport::MemoryTransport;
//! use tower::Layer;
//!
//! let _transport = TimeoutLayer::new(Duration::from_secs(2)).layer(MemoryTransport::new());
//! ```

pub mod future;
mod layer;

use std::task::{Context, Poll};
use std::time::Duration;

use tower::Service;

use self::future::Limit;
pub use self::future::ResponseFuture;
pub use self::layer::TimeoutLayer;
use crate::error::Error;
use crate::message::Message;

/// Fails an attempt that takes longer than its timeout. See the
/// [module docs](self).
#[derive(Debug, Clone)]
pub struct Timeout<S> {
    inner: S,
    timeout: Duration,
}

impl<S> Timeout<S> {
    /// Wraps `inner`, giving each call at most `timeout`.
    pub const fn new(inner: S, timeout: Duration) -> Self {
        Self { inner, timeout }
    }

    /// The attempt timeout.
    pub const fn timeout(&self) -> Duration {
        self.timeout
    }

    crate::layer::inner_accessors!();
}

impl<S, T> Service<Message> for Timeout<S>
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
        let limit = Limit::Attempt {
            timeout: self.timeout,
            deadline: message.deadline(),
        };
        ResponseFuture::new(self.inner.call(message), Some(limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::Delivery;
    use crate::{ErrorClass, ErrorKind, MessageType};
    use std::future::pending;
    use tokio::time::Instant;
    use tower::{ServiceExt, service_fn};

    #[tokio::test(start_paused = true)]
    async fn slow_attempt_times_out_as_unknown_outcome() {
        let slow = service_fn(|_: Message| pending::<Result<Delivery, Error>>());
        let started = Instant::now();
        let error = Timeout::new(slow, Duration::from_millis(300))
            .oneshot(Message::new(MessageType::Statement))
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Timeout);
        assert_eq!(error.class(), ErrorClass::UnknownOutcome);
        assert_eq!(started.elapsed(), Duration::from_millis(300));
    }

    #[tokio::test(start_paused = true)]
    async fn call_deadline_caps_the_attempt() {
        let slow = service_fn(|_: Message| pending::<Result<Delivery, Error>>());
        let started = Instant::now();
        let mut message = Message::new(MessageType::Statement);
        message.set_deadline(Some(started + Duration::from_millis(50)));
        let error = Timeout::new(slow, Duration::from_secs(5))
            .oneshot(message)
            .await
            .unwrap_err();
        assert!(error.is_timeout());
        assert_eq!(started.elapsed(), Duration::from_millis(50));
    }
}
