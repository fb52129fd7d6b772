//! Receiver-side de-duplication: a handler runs once per message id.
//!
//! Retries and fallback make senders repeat messages whose outcome they do
//! not know; this layer is what makes that safe. [`Dedup`] wraps a
//! [`Handler`](crate::Handler) and remembers, for a bounded number of
//! recent ids, the handler's result. A repeat that arrives while the first
//! is still running waits for it; a repeat that arrives later gets the
//! remembered result (the same reply for synchronous messages).
//!
//! A run always finishes: if its caller stops waiting — an HTTP client that
//! disconnected, a request timeout — the rest of the run continues in a task
//! of its own, so a repeat never starts the handler again halfway through.
//! A handler that panics answers with a rejected error.
//!
//! What is remembered: replies and [`Rejected`](crate::ErrorClass::Rejected)
//! errors. An error that says the handler could not do its work now
//! (its downstream was unavailable, it timed out) is not remembered, so a
//! retry runs the handler again.
//!
//! Ids are compared alone, not with the sender: a peer that reuses another's
//! id gets that message's reply. With [`work_queue`](crate::amqp::SubscriberBuilder::work_queue),
//! repeats can reach another instance, whose memory is its own.
//!
//! Share one [`DedupLayer`] between every path a receiver listens on (an
//! [`Entity`](crate) serves AMQP and HTTP through the same one) so a message
//! that arrives both ways still runs once.
//!
//! ```
//! use std::convert::Infallible;
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use stage7_transport::layer::dedup::DedupLayer;
//! use stage7_transport::{Message, MessageType};
//! use tower::{Layer, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let runs = Arc::new(AtomicUsize::new(0));
//! let counted = runs.clone();
//! let handler = DedupLayer::new().layer(tower::service_fn(move |_: Message| {
//!     counted.fetch_add(1, Ordering::SeqCst);
//!     async { Ok::<_, Infallible>(None) }
//! }));
//! let message = Message::new(MessageType::Statement);
//! handler.clone().oneshot(message.clone()).await.unwrap();
//! handler.oneshot(message).await.unwrap();
//! assert_eq!(runs.load(Ordering::SeqCst), 1);
//! # }
//! ```

mod cache;
mod layer;
mod slot;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower::Service;

use self::cache::Cache;
pub use self::layer::DedupLayer;
use self::slot::{Run, Slot, Turn};
use crate::error::{BoxError, Error};
use crate::handler::handler_error;
use crate::message::Message;

/// Runs its handler once per message id. See the [module docs](self).
///
/// # Clone
///
/// Clones share the memory of seen ids.
#[derive(Debug, Clone)]
pub struct Dedup<S> {
    inner: S,
    cache: Arc<Cache>,
}

impl<S> Dedup<S> {
    pub(crate) fn new(inner: S, cache: Arc<Cache>) -> Self {
        Self { inner, cache }
    }

    crate::layer::inner_accessors!();
}

/// Response future of [`Dedup`].
pub type ResponseFuture = Pin<Box<dyn Future<Output = Result<Option<Message>, Error>> + Send>>;

impl<S> Service<Message> for Dedup<S>
where
    S: Service<Message, Response = Option<Message>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = Option<Message>;
    type Error = Error;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx).map_err(handler_error)
    }

    fn call(&mut self, message: Message) -> ResponseFuture {
        let fresh = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, fresh);
        Box::pin(once(ready, self.cache.cell(message.id()), message))
    }
}

impl<S> Dedup<S>
where
    S: Service<Message, Response = Option<Message>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    /// Handles one message with this clone, as `oneshot` would, without the
    /// spare clone of the handler that [`call`](Service::call) leaves
    /// behind for the next call: the receiving paths clone per message.
    pub(crate) async fn handle(mut self, message: Message) -> Result<Option<Message>, Error> {
        std::future::poll_fn(|cx| self.inner.poll_ready(cx))
            .await
            .map_err(handler_error)?;
        once(self.inner, self.cache.cell(message.id()), message).await
    }
}

/// Runs `ready` (a handler that said it is ready) on `message` unless the
/// id's `slot` already has, or is running it.
async fn once<S>(mut ready: S, slot: Arc<Slot>, message: Message) -> Result<Option<Message>, Error>
where
    S: Service<Message, Response = Option<Message>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    loop {
        let changed = slot.changed().notified();
        let mut changed = std::pin::pin!(changed);
        changed.as_mut().enable();
        match slot.turn() {
            Turn::Done(result) => return result,
            Turn::Wait => changed.await,
            Turn::Run => break,
        }
    }
    let handling = ready.call(message);
    Run::new(
        slot,
        Box::pin(async move { handling.await.map_err(handler_error) }),
    )
    .await
}

#[cfg(test)]
mod tests;
