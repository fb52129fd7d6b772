//! The receiving side's contract: what runs when a message arrives.
//!
//! A handler is any [`tower::Service`] taking a [`Message`] and answering with
//! an optional reply. The reply is sent back for synchronous messages and
//! ignored for the rest; an error becomes an error reply (synchronous) or a
//! dead letter (asynchronous). Errors may be any type: see [`handler_error`]
//! for what the sender is told.
//!
//! ```
//! use std::convert::Infallible;
//! use serde_json::json;
//! use stage7_transport::{BoxHandler, Message};
//!
//! let echo = tower::service_fn(|message: Message| async move {
//!     let content = message.content().cloned().unwrap_or_default();
//!     Ok::<_, Infallible>(Some(message.reply(content)))
//! });
//! let _handler = BoxHandler::new(echo);
//! ```

use std::any::Any;
use std::fmt;
use std::task::{Context, Poll};

use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceExt};

use crate::error::{BoxError, Error, ErrorClass};
use crate::message::Message;

/// A [`Service`] that receives messages. Implemented for every service of the
/// right shape.
pub trait Handler:
    Service<Message, Response = Option<Message>, Error: Into<BoxError>, Future: Send + 'static>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<H> Handler for H where
    H: Service<Message, Response = Option<Message>, Error: Into<BoxError>, Future: Send + 'static>
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// Turns a handler's error into the crate [`Error`]: a crate error keeps its
/// kind, anything else becomes a rejected [`Handler`](crate::ErrorKind::Handler)
/// error carrying its text.
///
/// A crate error of class [`NotDelivered`](crate::ErrorClass::NotDelivered)
/// — typically the handler's own downstream call failing — becomes
/// [`UnknownOutcome`](crate::ErrorClass::UnknownOutcome): the message *was*
/// delivered, to this handler, which may have acted before it failed.
pub fn handler_error(error: impl Into<BoxError>) -> Error {
    match error.into().downcast::<Error>() {
        Ok(error) if error.is_not_delivered() => error.with_class(ErrorClass::UnknownOutcome),
        Ok(error) => *error,
        Err(other) => Error::rejected(format!("handler failed: {other}")).with_source(other),
    }
}

/// The error a sender gets when the handler's reply cannot be encoded
/// (typically too large). Rejected: the receiver remembers the reply for its
/// `id`, so a retry would fail the same way. Logged as a warning: the
/// handler's author has a bug to hear about.
pub(crate) fn unsendable_reply(error: &Error) -> Error {
    let error = Error::new(
        error.kind(),
        ErrorClass::Rejected,
        format!("the handler's reply cannot be sent: {}", error.detail()),
    );
    tracing::warn!(%error, "a handler's reply was refused");
    error
}

/// A type-erased, clonable [`Handler`] whose errors are the crate [`Error`].
#[derive(Clone)]
pub struct BoxHandler {
    inner: BoxCloneSyncService<Message, Option<Message>, Error>,
}

impl BoxHandler {
    /// Erases the type of `handler`. A `BoxHandler` is not boxed a second
    /// time: each box costs an allocation per message.
    pub fn new<H: Handler>(handler: H) -> Self {
        if let Some(boxed) = (&handler as &dyn Any).downcast_ref::<Self>() {
            return boxed.clone();
        }
        Self {
            inner: BoxCloneSyncService::new(handler.map_err(handler_error)),
        }
    }
}

impl Service<Message> for BoxHandler {
    type Response = Option<Message>;
    type Error = Error;
    type Future =
        <BoxCloneSyncService<Message, Option<Message>, Error> as Service<Message>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, message: Message) -> Self::Future {
        self.inner.call(message)
    }
}

impl fmt::Debug for BoxHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoxHandler").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn crate_errors_keep_their_kind() {
        let error = handler_error(Error::not_delivered("busy"));
        assert_eq!(error.kind(), ErrorKind::Unavailable);
        assert!(error.is_unknown_outcome(), "it reached the handler");
        let error = handler_error("disk full");
        assert_eq!(error.kind(), ErrorKind::Handler);
        assert!(error.is_rejected());
        assert_eq!(error.detail(), "handler failed: disk full");
    }
}
