//! Confirmed, mandatory, persistent publishing, and what its outcomes mean.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{SystemTime, UNIX_EPOCH};

use futures_core::Stream;
use futures_util::stream::FuturesUnordered;
use lapin::options::BasicPublishOptions;
use lapin::types::ShortString;
use lapin::{BasicProperties, Channel, Confirmation, PublisherConfirm};
use tokio::sync::{OwnedSemaphorePermit, mpsc};

use super::topology::{EXCHANGE, routing_key};
use crate::error::{Error, ErrorClass, ErrorKind};
use crate::message::{APPLICATION_JSON, Message};
use crate::route::Route;
use crate::transport::Delivery;

const PERSISTENT: u8 = 2;

/// An AMQP short string (at most 255 bytes), or an error naming the
/// message field that does not fit.
pub(crate) fn short(field: &str, value: impl Into<String>) -> Result<ShortString, Error> {
    let value = value.into();
    ShortString::try_new(value).map_err(|e| {
        Error::invalid(format!("`{field}` cannot travel over AMQP: {e}")).with_route(Route::Amqp)
    })
}

/// Where and how a message is published: its routing key and the
/// properties of docs/ARCHITECTURE.md (wire format) (persistent, JSON, `message_id` = id,
/// `timestamp`, `app_id` = sender). Building it checks every field that
/// becomes an AMQP short string, so a long id or recipient is a clear
/// error, not a panic in the client library.
pub(crate) struct Envelope {
    pub(crate) routing_key: ShortString,
    pub(crate) properties: BasicProperties,
}

impl Envelope {
    pub(crate) fn of(message: &Message) -> Result<Self, Error> {
        let recipient = message
            .recipient()
            .ok_or_else(|| Error::invalid("message has no recipient").with_route(Route::Amqp))?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        let mut properties = BasicProperties::default()
            .with_delivery_mode(PERSISTENT)
            .with_content_type(APPLICATION_JSON.into())
            .with_message_id(short("id", message.id())?)
            .with_timestamp(now);
        if !message.sender().is_empty() {
            properties = properties.with_app_id(short("sender", message.sender())?);
        }
        Ok(Self {
            routing_key: short("recipient", routing_key(recipient))?,
            properties,
        })
    }
}

/// A confirm nobody waits for any more, and the window permit of its call.
type Unsettled = (PublisherConfirm, Option<OwnedSemaphorePermit>);

/// Where confirms nobody waits for any more go to be awaited: one task per
/// confirm channel rather than one per call.
pub(crate) type Drain = mpsc::UnboundedSender<Unsettled>;

/// Starts the task that awaits the confirms sent to the returned [`Drain`],
/// releasing each one's permit when it settles.
pub(crate) fn drain() -> Drain {
    let (drain, confirms) = mpsc::unbounded_channel::<Unsettled>();
    tokio::spawn(settle_all(confirms));
    drain
}

/// Awaits every confirm received, all at once: each permit is released as
/// soon as its own confirm settles, whatever order they settle in. A
/// persistent message waits for the disk, a transient or unroutable one
/// does not; awaited in turn, one slow confirm would hold every later
/// permit. Ends once the sender is gone and every confirm has settled.
async fn settle_all<C: Future + Send>(
    mut confirms: mpsc::UnboundedReceiver<(C, Option<OwnedSemaphorePermit>)>,
) {
    let mut settling = FuturesUnordered::new();
    let mut open = true;
    poll_fn(|cx| {
        loop {
            while open {
                match confirms.poll_recv(cx) {
                    Poll::Ready(Some((confirm, permit))) => settling.push(async move {
                        let _ = confirm.await;
                        drop(permit);
                    }),
                    Poll::Ready(None) => open = false,
                    Poll::Pending => break,
                }
            }
            match Pin::new(&mut settling).poll_next(cx) {
                Poll::Ready(Some(())) => {}
                Poll::Ready(None) if !open => return Poll::Ready(()),
                Poll::Ready(None) | Poll::Pending => return Poll::Pending,
            }
        }
    })
    .await;
}

/// A publisher confirm that is awaited even when nobody waits for it any
/// more: lapin keeps every confirm dropped unresolved until its channel
/// closes, so dropping them leaks memory call after call. The call's window
/// permit is held until the confirm settles, so calls that time out cannot
/// pile up unconfirmed publishes past the window.
pub(crate) struct Settle<'a> {
    confirm: Option<PublisherConfirm>,
    drain: Option<&'a Drain>,
    permit: Option<OwnedSemaphorePermit>,
}

impl<'a> Settle<'a> {
    /// Settles `confirm` through `drain` if it is dropped unresolved, or in a
    /// task of its own without one; `permit` is released once it settles.
    pub(crate) fn new(
        confirm: PublisherConfirm,
        drain: Option<&'a Drain>,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Self {
        Self {
            confirm: Some(confirm),
            drain,
            permit,
        }
    }

    /// Whether the confirm has arrived (and been handed out).
    pub(crate) fn is_done(&self) -> bool {
        self.confirm.is_none()
    }
}

impl Future for Settle<'_> {
    type Output = lapin::Result<Confirmation>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(confirm) = self.confirm.as_mut() else {
            return Poll::Pending;
        };
        let confirmation = ready!(Pin::new(confirm).poll(cx));
        self.confirm = None;
        Poll::Ready(confirmation)
    }
}

impl Drop for Settle<'_> {
    fn drop(&mut self) {
        let Some(confirm) = self.confirm.take() else {
            return;
        };
        let unsettled = (confirm, self.permit.take());
        let (confirm, permit) = match self.drain {
            Some(drain) => match drain.send(unsettled) {
                Ok(()) => return,
                Err(unsent) => unsent.0,
            },
            None => unsettled,
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = confirm.await;
                drop(permit);
            });
        }
    }
}

pub(crate) fn mandatory() -> BasicPublishOptions {
    BasicPublishOptions {
        mandatory: true,
        ..BasicPublishOptions::default()
    }
}

/// The message never left: the connection or channel failed before the
/// frames were written.
pub(crate) fn not_sent(error: lapin::Error) -> Error {
    Error::new(
        ErrorKind::Unavailable,
        ErrorClass::NotDelivered,
        format!("publish failed before the message was sent: {error}"),
    )
    .with_route(Route::Amqp)
    .with_source(error)
}

/// The message was written but the broker's answer never came.
pub(crate) fn lost(error: lapin::Error, waiting_for: &str) -> Error {
    Error::new(
        ErrorKind::ConnectionLost,
        ErrorClass::UnknownOutcome,
        format!("connection lost while waiting for the {waiting_for}: {error}"),
    )
    .with_route(Route::Amqp)
    .with_source(error)
}

/// What a broker confirm says about delivery: an ack without a return is
/// the only success.
pub(crate) fn confirmed(confirmation: Confirmation, recipient: &str) -> Result<(), Error> {
    match confirmation {
        Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
        Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)) => Err(Error::new(
            ErrorKind::NoRoute,
            ErrorClass::NotDelivered,
            format!(
                "no queue is bound for recipient `{recipient}`: the broker returned the message ({} {})",
                returned.reply_code, returned.reply_text
            ),
        )
        .with_key(recipient)
        .with_route(Route::Amqp)),
        Confirmation::Nack(None) => Err(Error::new(
            ErrorKind::Overloaded,
            ErrorClass::NotDelivered,
            "the broker refused the message (nack)",
        )
        .with_route(Route::Amqp)),
    }
}

/// Publishes an asynchronous message and waits for the broker's confirm;
/// `permit` is held until the confirm settles, even if the call is dropped.
pub(crate) async fn publish(
    channel: &Channel,
    drain: &Drain,
    permit: Option<OwnedSemaphorePermit>,
    message: &Message,
    envelope: Envelope,
    body: &[u8],
) -> Result<Delivery, Error> {
    let confirm = channel
        .basic_publish(
            EXCHANGE.into(),
            envelope.routing_key,
            mandatory(),
            body,
            envelope.properties,
        )
        .await
        .map_err(not_sent)?;
    let confirmation = Settle::new(confirm, Some(drain), permit)
        .await
        .map_err(|e| lost(e, "broker's confirm"))?;
    confirmed(confirmation, message.recipient().unwrap_or_default())?;
    Ok(Delivery::new(Route::Amqp, None))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::sync::{Semaphore, mpsc, oneshot};

    use super::settle_all;

    #[tokio::test(start_paused = true)]
    async fn a_confirm_that_never_settles_holds_only_its_own_permit() {
        let window = Arc::new(Semaphore::new(3));
        let (drain, confirms) = mpsc::unbounded_channel();
        let settling = tokio::spawn(settle_all(confirms));
        let (held, slow) = oneshot::channel::<()>();
        let (fast_done, fast) = oneshot::channel::<()>();
        drain
            .send((slow, Some(window.clone().try_acquire_owned().unwrap())))
            .unwrap();
        drain
            .send((fast, Some(window.clone().try_acquire_owned().unwrap())))
            .unwrap();
        assert_eq!(window.available_permits(), 1);

        fast_done.send(()).unwrap();
        // Paused time moves only when every task waits: this times out
        // only if the fast confirm's permit is never released.
        let released = tokio::time::timeout(Duration::from_secs(60), window.acquire_many(2)).await;
        assert!(
            released.is_ok(),
            "the fast confirm waits behind the slow one"
        );
        drop(released);
        assert_eq!(
            window.available_permits(),
            2,
            "the slow one still holds its own"
        );

        drop(drain);
        held.send(()).unwrap();
        settling.await.unwrap();
        assert_eq!(window.available_permits(), 3);
    }
}
