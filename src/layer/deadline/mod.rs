//! An overall time budget for a call, visible to every layer below.
//!
//! [`Deadline`] stamps the message with `now + budget` (or keeps an earlier
//! deadline the caller set). Made with [`Deadline::new`] it fails the call
//! with a [`Timeout`](crate::ErrorKind::Timeout) error when the deadline
//! passes, whatever the layers below are doing; made with
//! [`Deadline::delegating`] (as [`StackBuilder`](crate::StackBuilder)
//! makes it) it leaves that to the layers below, and the caller gets their
//! error — the attempt's timeout, or the last attempt's error.
//! Layers below read [`Message::deadline`]: the retry layer does not start a
//! wait it cannot finish, attempt timeouts are capped by it, and the AMQP
//! backend turns the remaining time into the message expiration so the
//! broker drops requests nobody waits for.
//!
//! ```
//! use std::time::Duration;
//! use stage7_transport::layer::deadline::DeadlineLayer;
//! use stage7_transport::MemoryTransport;
//! use tower::Layer;
//!
//! let _transport = DeadlineLayer::new(Duration::from_secs(10)).layer(MemoryTransport::new());
//! ```

mod layer;

use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;
use tower::Service;

pub use self::layer::DeadlineLayer;
use crate::error::Error;
use crate::layer::timeout::ResponseFuture;
use crate::layer::timeout::future::Limit;
use crate::message::Message;

/// Gives each call an overall budget. See the [module docs](self).
///
/// Its response future is [`timeout::ResponseFuture`](crate::layer::timeout::ResponseFuture).
#[derive(Debug, Clone)]
pub struct Deadline<S> {
    inner: S,
    budget: Duration,
    enforce: bool,
}

impl<S> Deadline<S> {
    /// Wraps `inner`, giving each call at most `budget` in total.
    pub const fn new(inner: S, budget: Duration) -> Self {
        Self {
            inner,
            budget,
            enforce: true,
        }
    }

    /// Sets each call's deadline on its message without a timer of its own,
    /// for stacks whose every wait below is already bounded by it — as
    /// [`StackBuilder`](crate::StackBuilder)'s are: each attempt's
    /// timeout is capped by the deadline, the retry policy does not start a
    /// wait that would end past it, and the retry and fallback layers bound
    /// their waits for readiness by it. One timer per call fewer is ~10 % of
    /// throughput at 64 calls in flight on a two-core machine.
    pub const fn delegating(inner: S, budget: Duration) -> Self {
        Self {
            inner,
            budget,
            enforce: false,
        }
    }

    /// The budget per call.
    pub const fn budget(&self) -> Duration {
        self.budget
    }

    crate::layer::inner_accessors!();
}

impl<S, T> Service<Message> for Deadline<S>
where
    S: Service<Message, Response = T, Error = Error>,
{
    type Response = T;
    type Error = Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut message: Message) -> Self::Future {
        let now = message.take_started().unwrap_or_else(Instant::now);
        let own = now + self.budget;
        let deadline = message.deadline().map_or(own, |earlier| earlier.min(own));
        let limit = self.enforce.then_some(Limit::Call {
            budget: self.budget,
            deadline,
        });
        if deadline <= now {
            return ResponseFuture::expired(Error::expired());
        }
        message.set_deadline(Some(deadline));
        ResponseFuture::new(self.inner.call(message), limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::Route;
    use crate::transport::Delivery;
    use crate::{ErrorClass, MessageType};
    use std::future::pending;
    use tower::{ServiceExt, service_fn};

    #[tokio::test(start_paused = true)]
    async fn inner_layers_see_the_remaining_time() {
        let inner = service_fn(|message: Message| async move {
            assert_eq!(message.remaining(), Some(Duration::from_secs(3)));
            Ok::<_, Error>(Delivery::new(Route::Memory, None))
        });
        Deadline::new(inner, Duration::from_secs(3))
            .oneshot(Message::new(MessageType::Statement))
            .await
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn earlier_caller_deadline_wins() {
        let inner = service_fn(|_: Message| pending::<Result<Delivery, Error>>());
        let started = Instant::now();
        let mut message = Message::new(MessageType::Statement);
        message.set_deadline(Some(started + Duration::from_millis(20)));
        let error = Deadline::new(inner, Duration::from_secs(3))
            .oneshot(message)
            .await
            .unwrap_err();
        assert!(error.is_timeout());
        assert_eq!(error.class(), ErrorClass::UnknownOutcome);
        assert_eq!(started.elapsed(), Duration::from_millis(20));
        assert!(error.to_string().contains("call deadline"), "{error}");
    }
}
