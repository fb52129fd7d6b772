//! The contract every backend and the whole stack meet.
//!
//! A transport is a [`tower::Service`] taking a [`Message`] and answering
//! with a [`Delivery`]: which [`Route`] carried the message and, for
//! synchronous messages, the reply. Backends (AMQP, HTTP,
//! [`MemoryTransport`]) and the assembled stack are all transports, so each
//! can stand in for another — in particular the in-memory one in users'
//! tests.
//!
//! [`MemoryTransport`]: crate::MemoryTransport

use std::fmt;
use std::task::{Context, Poll};

use tower::Service;
use tower::util::BoxCloneSyncService;

use crate::error::Error;
use crate::message::Message;
use crate::route::Route;

/// A transport's answer: the route that carried the message and, for a
/// synchronous message, the reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    route: Route,
    reply: Option<Message>,
}

impl Delivery {
    /// A delivery over `route`, with the reply if the message was
    /// synchronous.
    pub fn new(route: Route, reply: Option<Message>) -> Self {
        Self { route, reply }
    }

    /// The route that carried the message.
    pub fn route(&self) -> Route {
        self.route
    }

    /// The reply to a synchronous message.
    pub fn reply(&self) -> Option<&Message> {
        self.reply.as_ref()
    }

    /// Takes the reply out.
    pub fn into_reply(self) -> Option<Message> {
        self.reply
    }
}

/// A [`Service`] that sends [`Message`]s: what every backend and the whole
/// stack implement. Implemented for every service of the right shape; never
/// implement it by hand.
///
/// ```
/// use stage7_transport::{MemoryTransport, Transport};
///
/// fn takes_any<T: Transport>(_: T) {}
/// takes_any(MemoryTransport::new());
/// ```
pub trait Transport:
    Service<Message, Response = Delivery, Error = Error, Future: Send + 'static>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<T> Transport for T where
    T: Service<Message, Response = Delivery, Error = Error, Future: Send + 'static>
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// A type-erased, clonable [`Transport`], for storing a transport without
/// naming its type. Boxing costs one allocation per call; keep the concrete
/// type on hot paths.
///
/// ```
/// use stage7_transport::{BoxTransport, MemoryTransport};
///
/// let transport = BoxTransport::new(MemoryTransport::new());
/// let _copy = transport.clone();
/// ```
#[derive(Clone)]
pub struct BoxTransport {
    inner: BoxCloneSyncService<Message, Delivery, Error>,
}

impl BoxTransport {
    /// Erases the type of `transport`.
    pub fn new<T: Transport>(transport: T) -> Self {
        Self {
            inner: BoxCloneSyncService::new(transport),
        }
    }
}

impl Service<Message> for BoxTransport {
    type Response = Delivery;
    type Error = Error;
    type Future = <BoxCloneSyncService<Message, Delivery, Error> as Service<Message>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, message: Message) -> Self::Future {
        self.inner.call(message)
    }
}

impl fmt::Debug for BoxTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoxTransport").finish_non_exhaustive()
    }
}
