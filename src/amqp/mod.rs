//! RabbitMQ over AMQP 0-9-1 (lapin): the primary route.
//!
//! [`AmqpTransport`] is a [`Transport`](crate::Transport):
//!
//! * **Asynchronous messages** are published to exchange `stage7` with
//!   routing key `message.{recipient}`, persistent and `mandatory`, on a
//!   channel in confirm mode; the call resolves on the broker's ack (see
//!   [what a confirm promises](self#what-a-confirm-promises)). An
//!   unroutable message (returned) or a nack is
//!   [`NotDelivered`](crate::ErrorClass::NotDelivered).
//! * **Synchronous messages** are requests over direct reply-to (see
//!   [`rpc`](self#request-and-reply)); the message expiration is the time
//!   left before the call [deadline](crate::Message::deadline).
//! * **The connection** is made in the background and replaced whenever it
//!   is lost, on a jittered schedule that starts at 20 ms and never gives
//!   up. While there is none, calls fail at once as
//!   [`NotDelivered`](crate::ErrorClass::NotDelivered) so the fallback route
//!   takes them; a missing broker at start is not an error. Nothing is
//!   re-published on reconnect: what was in flight fails, and the layers
//!   above decide.
//! * **Back-pressure**: at most [`window`](AmqpTransportBuilder::window) calls
//!   wait for a confirm or reply; beyond that, and while the broker blocks
//!   the connection, `poll_ready` waits instead of buffering.
//!
//! # What a confirm promises
//!
//! The broker's ack of a `mandatory` publish, without a return, says that
//! the message is stored — on disk, for these persistent messages and
//! durable queues — in every queue bound to its routing key, and that there
//! was at least one. It does not say that anyone will read it: a queue
//! whose consumer is gone keeps the message until the queue expires
//! (`x-expires`; [`AMQP_QUEUE_EXPIRY`](crate::defaults::AMQP_QUEUE_EXPIRY),
//! 7 days after the last consumer for a chosen id or a work queue,
//! [`EPHEMERAL_QUEUE_EXPIRY`](crate::defaults::EPHEMERAL_QUEUE_EXPIRY) for
//! a generated id) and the broker drops it, or until newer messages push it
//! out of a full queue
//! ([`AMQP_QUEUE_MAX_LENGTH`](crate::defaults::AMQP_QUEUE_MAX_LENGTH)) into
//! `stage7.dead-letter`. Nor does it say that a handler ran: only a reply
//! does. A sender that must know uses a request.
//!
//! A full queue drops its oldest message (`drop-head`) rather than refusing
//! the new one (`reject-publish-dlx`). Refusing would make the broker nack a
//! publish that was routed to several queues — `message.all`, a type bound
//! to many instances — when one of them is full, though the others stored
//! it: the sender would be told "not delivered" for a delivered message,
//! and its fallback and retries would deliver it again. Dropping the oldest
//! keeps an ack meaning the same everywhere, and what is dropped waits in
//! the dead letters, with RabbitMQ's `x-death` reason `maxlen`, for an
//! operator.
//!
//! # Request and reply
//!
//! One channel per connection carries every request and one no-ack consumer
//! of `amq.rabbitmq.reply-to`. Requests carry `correlation_id` and
//! `reply_to` as AMQP properties; replies come back on the default exchange.
//! When the channel or connection fails, every waiting call fails at once
//! with [`UnknownOutcome`](crate::ErrorClass::UnknownOutcome). A reply
//! proves delivery: an error reply claiming anything but
//! [`Rejected`](crate::ErrorClass::Rejected) is an
//! [`UnknownOutcome`](crate::ErrorClass::UnknownOutcome), whatever it names,
//! so a peer cannot make its caller run a message twice by answering "not
//! delivered".
//!
//! # Receiving
//!
//! [`Subscriber::builder`] declares an entity's queue and bindings and
//! runs a handler for its messages: once per message id, acknowledging after
//! the handler finishes, replying to requests, and dead-lettering what
//! cannot be handled to `stage7.dlx` / `stage7.dead-letter` with the reason
//! in the `x-stage7-reason` header. Consumers are re-armed on every new
//! connection.
//!
//! * **Replies** go only to direct reply-to addresses and to queues named
//!   as [`reply_queues`](SubscriberBuilder::reply_queues) allows (Stage7's
//!   `rpc-reply-{uuid}` by default). A request naming any other `reply_to`
//!   is dead-lettered and its handler does not run: a reply is published to
//!   whatever queue `reply_to` names, and a sender must not be able to have
//!   a receiver write into any queue.
//! * **Queues** expire after their last consumer and hold a bounded number
//!   of ready messages ([`expires`](SubscriberBuilder::expires),
//!   [`max_length`](SubscriberBuilder::max_length)). A queue that already
//!   exists with other arguments is used as it is.
//! * **Prefetch** bounds the messages an entity holds, from its own queue
//!   and its work queue together. lapin reads a whole message before this
//!   crate sees it, so the size limit is checked after a delivery is in
//!   memory: at most [`prefetch`](SubscriberBuilder::prefetch) deliveries
//!   of up to the broker's `max_message_size` (node-wide, 128 MiB by
//!   default on RabbitMQ 3.x; set it near your message limit) are held at
//!   once.
//!
//! ```no_run
//! use serde_json::json;
//! use stage7_transport::amqp::AmqpTransport;
//! use stage7_transport::Message;
//! use tower::ServiceExt;
//!
//! # async fn run() -> Result<(), stage7_transport::Error> {
//! let transport = AmqpTransport::builder("amqp://guest:guest@127.0.0.1:5672/%2f")
//!     .connection_name("librarian-1")
//!     .build()?;
//! let reply = transport.oneshot(Message::request("Brain", json!({"q": "?"}))).await?;
//! # Ok(())
//! # }
//! ```

mod acks;
mod builder;
mod consumer;
mod publisher;
mod reply_to;
mod rpc;
mod supervisor;
pub mod topology;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::TryAcquireError;
use tower::Service;

pub use self::builder::AmqpTransportBuilder;
pub(crate) use self::consumer::expiry_ms;
pub use self::consumer::{Subscriber, SubscriberBuilder};
use self::supervisor::Shared;
use crate::error::{Error, ErrorClass, ErrorKind, Result};
use crate::message::Message;
use crate::route::Route;
use crate::secret::Secret;
use crate::transport::Delivery;

/// The AMQP backend. See the [module docs](self).
///
/// # Clone
///
/// Clones share the connection; each starts un-ready. The connection closes
/// when the last clone, the last call in flight and the last
/// [`Subscriber`] are gone, or when [`close`](Self::close) is called.
pub struct AmqpTransport {
    owner: Arc<Owner>,
    permit: Option<OwnedSemaphorePermit>,
    waiting: Option<Pin<Box<dyn Future<Output = Option<OwnedSemaphorePermit>> + Send + Sync>>>,
}

/// Closes the connection when the last handle goes. Handles reach the
/// shared state through it: one reference count per clone and per call.
pub(crate) struct Owner(Arc<Shared>);

impl std::ops::Deref for Owner {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.0.closing.send_replace(true);
    }
}

impl AmqpTransport {
    /// Settings for a transport to the broker at `url`
    /// (`amqp://user:pass@host:port/vhost`).
    pub fn builder(url: impl Into<String>) -> AmqpTransportBuilder {
        AmqpTransportBuilder::new(Secret::new(url))
    }

    pub(crate) fn start(settings: builder::Settings) -> Self {
        let shared = Arc::new(Shared::new(settings));
        tokio::spawn(supervisor::supervise(shared.clone()));
        Self {
            owner: Arc::new(Owner(shared)),
            permit: None,
            waiting: None,
        }
    }

    /// Whether a connection is up now.
    pub fn is_connected(&self) -> bool {
        self.owner.current().is_some()
    }

    /// Waits until a connection is up.
    pub async fn connected(&self) {
        let mut link = self.owner.link.subscribe();
        let _ = link.wait_for(Option::is_some).await;
    }

    /// Waits for the first connection attempt to end, and says whether it
    /// connected. Lets a service that starts with the broker up use it from
    /// its first call, without waiting when the broker is down.
    pub async fn first_attempt(&self) -> bool {
        let mut attempts = self.owner.attempts.subscribe();
        let _ = attempts.wait_for(|attempts| *attempts > 0).await;
        self.is_connected()
    }

    /// Requests waiting for a reply on the current connection.
    pub fn pending_replies(&self) -> usize {
        self.owner
            .current()
            .map_or(0, |link| link.rpc.pending().len())
    }

    /// Closes the connection now, for every clone. Calls fail afterwards
    /// with [`Closed`](ErrorKind::Closed).
    pub fn close(&self) {
        self.owner.closing.send_replace(true);
    }

    fn not_connected(&self) -> Error {
        if *self.owner.closing.borrow() {
            return Error::new(
                ErrorKind::Closed,
                ErrorClass::NotDelivered,
                "the AMQP transport is closed",
            )
            .with_route(Route::Amqp);
        }
        let (kind, why) = self
            .owner
            .last_failure()
            .unwrap_or_else(|| (ErrorKind::Unavailable, "still connecting".to_owned()));
        Error::new(
            kind,
            ErrorClass::NotDelivered,
            format!("not connected to RabbitMQ ({why})"),
        )
        .with_route(Route::Amqp)
    }
}

impl Clone for AmqpTransport {
    fn clone(&self) -> Self {
        Self {
            owner: self.owner.clone(),
            permit: None,
            waiting: None,
        }
    }
}

/// Response future of [`AmqpTransport`]: boxed, because the call awaits
/// lapin's own futures; the allocation is small next to a network round
/// trip.
pub type ResponseFuture = Pin<Box<dyn Future<Output = Result<Delivery>> + Send>>;

impl Service<Message> for AmqpTransport {
    type Response = Delivery;
    type Error = Error;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        loop {
            if let Some(waiting) = &mut self.waiting {
                let permit = ready!(waiting.as_mut().poll(cx));
                self.waiting = None;
                if permit.is_some() {
                    self.permit = permit;
                }
                continue;
            }
            if *self.owner.blocked.borrow() {
                let mut blocked = self.owner.blocked.subscribe();
                self.waiting = Some(Box::pin(async move {
                    let _ = blocked.wait_for(|blocked| !*blocked).await;
                    None
                }));
                continue;
            }
            if self.permit.is_some() {
                return Poll::Ready(Ok(()));
            }
            match self.owner.window.clone().try_acquire_owned() {
                Ok(permit) => self.permit = Some(permit),
                Err(TryAcquireError::NoPermits) => {
                    let window = self.owner.window.clone();
                    self.waiting = Some(Box::pin(async move { window.acquire_owned().await.ok() }));
                }
                Err(TryAcquireError::Closed) => return Poll::Ready(Err(self.not_connected())),
            }
        }
    }

    fn call(&mut self, message: Message) -> ResponseFuture {
        let permit = self.permit.take();
        let link = self.owner.current().ok_or_else(|| self.not_connected());
        let codec = self.owner.settings.codec;
        let owner = self.owner.clone();
        Box::pin(async move {
            // A failing call completes at once; a caller retrying in a loop
            // must still let the runtime run (the supervisor among others).
            tokio::task::coop::consume_budget().await;
            let link = link?;
            let envelope = publisher::Envelope::of(&message)?;
            let body = codec
                .encode_vec(&message)
                .map_err(|e| e.with_route(Route::Amqp))?;
            let result = if message.requires_sync() {
                link.rpc
                    .call(permit, &message, envelope, &body, codec)
                    .await
            } else {
                publisher::publish(
                    &link.publisher,
                    &link.drain,
                    permit,
                    &message,
                    envelope,
                    &body,
                )
                .await
            };
            if result.as_ref().is_err_and(Error::is_not_delivered) && !link.rpc.is_open() {
                owner.broken.notify_one();
            }
            result
        })
    }
}

impl fmt::Debug for AmqpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpTransport")
            .field("settings", &self.owner.settings)
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}

/// Decodes a delivery as the consumer decodes a message and the reply
/// consumer a reply, from `data`: a big-endian `u16` length, that many bytes
/// of AMQP basic properties as they arrive in a content header, then the
/// body. Neither may panic, whatever the bytes. For `cargo fuzz` (`fuzz/`)
/// and the test that replays its corpus.
#[cfg(any(test, fuzzing))]
pub(crate) fn fuzz_delivery(data: &[u8]) {
    let Some((length, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let (properties, body) =
        rest.split_at(usize::from(u16::from_be_bytes(*length)).min(rest.len()));
    let Ok((_, properties)) = lapin::protocol::basic::parse_properties(properties) else {
        return;
    };
    let mut delivery =
        lapin::message::Delivery::mock(1, "".into(), "message.fuzz".into(), false, body.to_vec());
    delivery.properties = properties;
    let codec = crate::message::Codec::new(64 * 1024);
    let _ = consumer::decode(&delivery, codec);
    let _ = rpc::read_reply(&delivery, codec);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tower::Service;

    use super::{AmqpTransport, Subscriber};
    use crate::message::Message;

    #[tokio::test]
    async fn the_connection_closes_when_the_last_handle_call_and_subscriber_are_gone() {
        // Nothing listens on port 1: the supervisor keeps trying, which is
        // all this test needs of it.
        let transport = AmqpTransport::builder("amqp://guest:guest@127.0.0.1:1/%2f")
            .build()
            .unwrap();
        let closing = transport.owner.0.closing.subscribe();
        let mut clone = transport.clone();
        let subscriber = Subscriber::builder(
            &transport,
            "closing-1",
            "Closing",
            tower::service_fn(|_: Message| async { Ok::<_, std::convert::Infallible>(None) }),
        )
        .start()
        .unwrap();
        drop(transport);
        // On this single-threaded runtime, lets the consumer task start and
        // settle into waiting for a connection.
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        let call = clone.call(Message::request("anyone", serde_json::json!({})));
        drop(clone);
        assert!(
            !*closing.borrow(),
            "a call in flight and a subscriber hold it"
        );
        drop(call);
        assert!(!*closing.borrow(), "the subscriber holds it");
        subscriber.shutdown(Duration::ZERO).await;
        assert!(*closing.borrow(), "nothing holds it any more");
    }
}
