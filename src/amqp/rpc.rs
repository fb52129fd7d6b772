//! Request/reply over RabbitMQ's direct reply-to.
//!
//! One channel per connection carries every request and one no-ack consumer
//! of `amq.rabbitmq.reply-to`; a correlation map pairs replies with waiting
//! calls. The correlation id and reply address travel as AMQP properties,
//! never in the JSON body. When the channel or connection fails, every
//! waiting call fails at once with an
//! [`UnknownOutcome`](crate::ErrorClass::UnknownOutcome) error and the map is
//! left empty.

use std::collections::HashMap;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures_core::Stream;
use lapin::message::Delivery as AmqpDelivery;
use lapin::options::{BasicConsumeOptions, ConfirmSelectOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::{Channel, Connection, Consumer};
use tokio::sync::{OwnedSemaphorePermit, oneshot};

use super::publisher::{Drain, Envelope, Settle, confirmed, drain, lost, mandatory, not_sent};
use super::topology::{ERROR_HEADER, EXCHANGE, REPLY_TO};
use crate::error::{Error, ErrorBody, ErrorClass, ErrorKind};
use crate::message::{Codec, Message};
use crate::route::Route;
use crate::transport::Delivery;

type Waiter = oneshot::Sender<Result<AmqpDelivery, Error>>;

/// The request channel of one connection and the calls waiting on it.
pub(crate) struct Rpc {
    channel: Channel,
    pending: Arc<Pending>,
    /// Settles the confirms of calls that ended first. The channel's own:
    /// behind another channel's slow confirm, permits whose confirms have
    /// arrived would be held back.
    drain: Drain,
}

/// Calls waiting for a reply, by the sequence number in their correlation
/// id (`{generation:x}.{sequence:x}`: a reply for an earlier connection's
/// request is recognised as late).
pub(crate) struct Pending {
    state: Mutex<State>,
    next: AtomicU64,
    generation: u64,
}

struct State {
    open: bool,
    waiting: HashMap<u64, Waiter, foldhash::fast::RandomState>,
}

impl Pending {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn register(
        self: &Arc<Self>,
    ) -> Result<(Registration, oneshot::Receiver<Result<AmqpDelivery, Error>>), Error> {
        let sequence = self.next.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = oneshot::channel();
        let mut state = self.lock();
        if !state.open {
            return Err(Error::new(
                ErrorKind::Unavailable,
                ErrorClass::NotDelivered,
                "the AMQP connection is closing; request not sent",
            )
            .with_route(Route::Amqp));
        }
        state.waiting.insert(sequence, sender);
        drop(state);
        Ok((
            Registration {
                pending: self.clone(),
                sequence,
                answered: false,
            },
            receiver,
        ))
    }

    /// The correlation id of request `sequence`.
    fn correlation(&self, sequence: u64) -> ShortString {
        format!("{:x}.{sequence:x}", self.generation).into()
    }

    fn resolve(&self, delivery: AmqpDelivery) {
        let Some(correlation) = delivery.properties.correlation_id().as_ref() else {
            tracing::debug!("reply without a correlation id dropped");
            return;
        };
        let sequence = correlation
            .as_str()
            .split_once('.')
            .filter(|(generation, _)| u64::from_str_radix(generation, 16) == Ok(self.generation))
            .and_then(|(_, sequence)| u64::from_str_radix(sequence, 16).ok());
        let waiter = sequence.and_then(|sequence| self.lock().waiting.remove(&sequence));
        match waiter {
            Some(waiter) => {
                let _ = waiter.send(Ok(delivery));
            }
            None => tracing::debug!(
                correlation = correlation.as_str(),
                "late, duplicate or foreign reply dropped"
            ),
        }
    }

    /// Fails every waiting call at once and refuses new ones.
    pub(crate) fn fail_all(&self, reason: &str) {
        let waiting = {
            let mut state = self.lock();
            state.open = false;
            std::mem::take(&mut state.waiting)
        };
        if !waiting.is_empty() {
            tracing::warn!(
                calls = waiting.len(),
                reason,
                "failing calls waiting for AMQP replies"
            );
        }
        for (_, waiter) in waiting {
            let _ = waiter.send(Err(Error::new(
                ErrorKind::ConnectionLost,
                ErrorClass::UnknownOutcome,
                format!("the AMQP connection was lost while waiting for the reply: {reason}"),
            )
            .with_route(Route::Amqp)));
        }
    }

    /// Calls waiting for a reply now.
    pub(crate) fn len(&self) -> usize {
        self.lock().waiting.len()
    }
}

/// A waiting call's entry; removed when the call ends, however it ends.
struct Registration {
    pending: Arc<Pending>,
    sequence: u64,
    /// An answer came — the reply, or the failure of every waiting call —
    /// and with it the entry went.
    answered: bool,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if !self.answered {
            self.pending.lock().waiting.remove(&self.sequence);
        }
    }
}

impl Rpc {
    /// Opens the request channel and its reply consumer on `connection`.
    pub(crate) async fn open(connection: &Connection, generation: u64) -> lapin::Result<Self> {
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let consumer = channel
            .basic_consume(
                REPLY_TO.into(),
                format!("stage7-replies-{generation}").into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        let pending = Arc::new(Pending {
            state: Mutex::new(State {
                open: true,
                waiting: HashMap::default(),
            }),
            next: AtomicU64::new(0),
            generation,
        });
        tokio::spawn(dispatch(consumer, pending.clone()));
        Ok(Self {
            channel,
            pending,
            drain: drain(),
        })
    }

    pub(crate) fn pending(&self) -> &Arc<Pending> {
        &self.pending
    }

    /// Whether requests can still be sent and replies still arrive.
    pub(crate) fn is_open(&self) -> bool {
        self.channel.status().connected() && self.pending.lock().open
    }

    /// Publishes a request and waits for its reply. A return (no queue for
    /// the recipient) or a nack ends the call at once. `permit` is held
    /// until the call ends or, if later, its confirm settles.
    pub(crate) async fn call(
        &self,
        permit: Option<OwnedSemaphorePermit>,
        message: &Message,
        envelope: Envelope,
        body: &[u8],
        codec: Codec,
    ) -> Result<Delivery, Error> {
        let recipient = message.recipient().unwrap_or_default();
        let (mut registration, reply) = self.pending.register()?;
        let mut request = envelope
            .properties
            .with_correlation_id(self.pending.correlation(registration.sequence))
            .with_reply_to(REPLY_TO.into());
        if let Some(remaining) = message.remaining() {
            let ms = remaining.as_millis().max(1);
            request = request.with_expiration(ms.to_string().into());
        }
        let confirm = self
            .channel
            .basic_publish(
                EXCHANGE.into(),
                envelope.routing_key,
                mandatory(),
                body,
                request,
            )
            .await
            .map_err(not_sent)?;
        // The reply usually beats the confirm (a persistent message is
        // confirmed after it is written to disk); the confirm is still
        // settled, in the background, when the call ends first.
        let mut confirm = Settle::new(confirm, Some(&self.drain), permit);
        let mut reply = pin!(reply);
        let delivery = loop {
            tokio::select! {
                biased;
                delivered = &mut reply => break delivered,
                confirmation = &mut confirm, if !confirm.is_done() => {
                    confirmed(confirmation.map_err(|e| lost(e, "broker's confirm"))?, recipient)?;
                }
            }
        };
        registration.answered = delivery.is_ok();
        drop(registration);
        let delivery = delivery.map_err(|_| {
            Error::new(
                ErrorKind::ConnectionLost,
                ErrorClass::UnknownOutcome,
                "the reply consumer stopped while waiting for the reply",
            )
            .with_route(Route::Amqp)
        })??;
        read_reply(&delivery, codec).map(|reply| Delivery::new(Route::Amqp, Some(reply)))
    }
}

/// A reply is a message, or an error reply: an [`ErrorBody`] marked by the
/// [`ERROR_HEADER`] header.
///
/// A reply proves that the request was delivered, so what an error reply
/// may claim is capped: [`Rejected`](ErrorClass::Rejected) stays rejected,
/// every other class becomes [`UnknownOutcome`](ErrorClass::UnknownOutcome).
/// A peer answering "not delivered" after its handler ran would otherwise
/// have the caller fall back and run the message a second time.
pub(super) fn read_reply(delivery: &AmqpDelivery, codec: Codec) -> Result<Message, Error> {
    let is_error = delivery
        .properties
        .headers()
        .as_ref()
        .is_some_and(|headers| headers.inner().contains_key(ERROR_HEADER));
    if is_error {
        let body: ErrorBody = serde_json::from_slice(&delivery.data).map_err(|e| {
            Error::new(
                ErrorKind::Protocol,
                ErrorClass::Rejected,
                format!("unreadable error reply: {e}"),
            )
            .with_route(Route::Amqp)
        })?;
        let error = body.into_error();
        let class = error.class().answered();
        return Err(error.with_class(class).with_route(Route::Amqp));
    }
    codec.decode(&delivery.data).map_err(|e| {
        Error::new(
            ErrorKind::Protocol,
            ErrorClass::Rejected,
            format!("the reply is not a valid message: {}", e.detail()),
        )
        .with_route(Route::Amqp)
    })
}

async fn dispatch(mut consumer: Consumer, pending: Arc<Pending>) {
    loop {
        match std::future::poll_fn(|cx| Pin::new(&mut consumer).poll_next(cx)).await {
            Some(Ok(delivery)) => pending.resolve(delivery),
            Some(Err(error)) => {
                pending.fail_all(&error.to_string());
                return;
            }
            None => {
                pending.fail_all("reply consumer cancelled");
                return;
            }
        }
    }
}
