//! Receiving: an entity's queue, its bindings, and a handler run once per
//! message id, with replies and dead letters.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_core::Stream;
use lapin::message::Delivery as AmqpDelivery;
use lapin::options::{
    BasicCancelOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Consumer};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::Owner;
use super::acks::{Acks, Settlement};
use super::publisher::{Settle, confirmed};
use super::supervisor::{Link, Shared, pause};
use super::topology::{
    BROADCAST, DEAD_LETTER_EXCHANGE, ERROR_HEADER, REASON_HEADER, declare_queue, queue_name,
    routing_key,
};

use crate::defaults;
use crate::error::{Error, ErrorBody};
use crate::handler::{BoxHandler, Handler, unsendable_reply};
use crate::layer::dedup::{Dedup, DedupLayer};
use crate::message::{APPLICATION_JSON, Codec, Message, is_json};

/// How long a consumer waits before re-declaring after a failed setup on a
/// live connection: 1 s.
const RETRY_SETUP: Duration = Duration::from_secs(1);

/// What to consume and how: an entity's id and component type, and the
/// handler its messages go to.
///
/// The entity's queue is `{type lowercased}-{id}`, bound to `message.{id}`,
/// `message.{type}` (as written and lowercased) and `message.all` (DESIGN
/// §3). With [`work_queue`](Self::work_queue), messages for the type go to
/// one shared queue `{type lowercased}` instead, so instances share them.
///
/// ```no_run
/// use std::convert::Infallible;
/// use stage7_transport::amqp::{AmqpTransport, Subscription};
/// use stage7_transport::Message;
///
/// # async fn run() -> Result<(), stage7_transport::Error> {
/// let transport = AmqpTransport::builder("amqp://guest:guest@127.0.0.1:5672/%2f").build()?;
/// let echo = tower::service_fn(|m: Message| async move {
///     let content = m.content().cloned().unwrap_or_default();
///     Ok::<_, Infallible>(Some(m.reply(content)))
/// });
/// let consumer = transport.subscribe(Subscription::new("echo-1", "Echo", echo))?;
/// consumer.ready().await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Subscription {
    id: String,
    component_type: String,
    handler: BoxHandler,
    prefetch: u16,
    work_queue: bool,
    dedup: Option<DedupLayer>,
    expires: Option<Duration>,
}

impl Subscription {
    /// Consume for entity `id` of `component_type`, running `handler`.
    pub fn new<H: Handler>(
        id: impl Into<String>,
        component_type: impl Into<String>,
        handler: H,
    ) -> Self {
        Self {
            id: id.into(),
            component_type: component_type.into(),
            handler: BoxHandler::new(handler),
            prefetch: defaults::PREFETCH,
            work_queue: false,
            dedup: None,
            expires: None,
        }
    }

    /// Unacknowledged messages held at once, and so handlers run at once.
    /// Default [`PREFETCH`](crate::defaults::PREFETCH).
    pub fn prefetch(mut self, prefetch: u16) -> Self {
        self.prefetch = prefetch.max(1);
        self
    }

    /// Share messages for the component type with other instances through
    /// one work queue instead of each receiving them. Default off (the
    /// seed's layout).
    ///
    /// De-duplication is per instance: a retry or a fallback of a message
    /// sent to the type can reach another instance, which runs it again.
    /// Use work queues for idempotent handlers, or have senders to the type
    /// turn off [`receivers_deduplicate`](crate::TransportBuilder::receivers_deduplicate).
    pub fn work_queue(mut self, shared: bool) -> Self {
        self.work_queue = shared;
        self
    }

    /// The de-duplication memory; pass the one the entity's other
    /// endpoints use so a message arriving both ways runs once. Default: a
    /// fresh [`DedupLayer`].
    pub fn dedup(mut self, dedup: DedupLayer) -> Self {
        self.dedup = Some(dedup);
        self
    }

    /// Let the broker delete the entity's own queue after it has had no
    /// consumer for this long (`x-expires`), between 1 ms and 2³² − 1 ms:
    /// for instances whose id is not reused, whose queue nobody would
    /// consume again. The broker drops what the queue still holds; it does
    /// not dead-letter it. The shared [work queue](Self::work_queue) never
    /// expires. Default: never.
    ///
    /// The expiry is set when the queue is created: a queue that already
    /// exists is used with the arguments it has.
    pub fn expires(mut self, unused_for: Duration) -> Self {
        self.expires = Some(unused_for);
        self
    }

    /// The entity's own queue.
    pub fn queue(&self) -> String {
        queue_name(&self.component_type, &self.id)
    }

    /// Each queue to consume: its name, its routing keys, and its expiry in
    /// milliseconds (`expires_ms` for the own queue, none for the work
    /// queue).
    fn queues(&self, expires_ms: Option<u32>) -> Vec<Queue> {
        let kind = &self.component_type;
        let lower = kind.to_lowercase();
        let mut type_keys = vec![routing_key(kind)];
        if lower != *kind {
            type_keys.push(routing_key(&lower));
        }
        let mut own = vec![routing_key(&self.id), routing_key(BROADCAST)];
        if self.work_queue {
            vec![(self.queue(), own, expires_ms), (lower, type_keys, None)]
        } else {
            own.extend(type_keys);
            vec![(self.queue(), own, expires_ms)]
        }
    }
}

/// A running consumer. It keeps the transport's connection open; dropping
/// it does not stop consuming, [`shutdown`](Self::shutdown) does (or closing
/// the transport).
#[derive(Debug)]
pub struct Subscriber {
    queue: String,
    consuming: watch::Receiver<bool>,
    stop: watch::Sender<Option<Duration>>,
    task: tokio::task::JoinHandle<()>,
}

impl Subscriber {
    /// The entity's queue.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// Whether messages are being consumed now (false while disconnected).
    pub fn is_consuming(&self) -> bool {
        *self.consuming.borrow()
    }

    /// Waits until messages are being consumed: the queue is declared and
    /// bound and the consumer started, on the current connection.
    pub async fn ready(&self) {
        let mut consuming = self.consuming.clone();
        let _ = consuming.wait_for(|consuming| *consuming).await;
    }

    /// Stops taking messages, lets running handlers finish for up to
    /// `grace`, then closes the channel. Messages not yet acknowledged —
    /// those whose handler did not finish, and any whose acknowledgement
    /// was still waiting to go out with another's — go back to the queue:
    /// nothing acknowledged is lost, nothing unacknowledged is dropped.
    pub async fn shutdown(self, grace: Duration) {
        self.stop.send_replace(Some(grace));
        let _ = self.task.await;
    }

    /// Stops as [`shutdown`](Self::shutdown) does, in the background.
    pub(crate) fn stop(self, grace: Duration) {
        self.stop.send_replace(Some(grace));
    }
}

/// `unused` as the milliseconds of an `x-expires` argument.
///
/// # Errors
///
/// [`Config`](crate::ErrorKind::Config) outside what RabbitMQ accepts.
pub(crate) fn expiry_ms(unused: Duration) -> crate::error::Result<u32> {
    u32::try_from(unused.as_millis())
        .ok()
        .filter(|ms| *ms > 0)
        .ok_or_else(|| {
            Error::config(format!(
                "queue expiry of {unused:?} is outside what RabbitMQ accepts: 1 ms to 2^32 - 1 ms"
            ))
        })
}

pub(crate) fn start(
    owner: Arc<Owner>,
    subscription: Subscription,
) -> crate::error::Result<Subscriber> {
    let expires_ms = subscription.expires.map(expiry_ms).transpose()?;
    let queues = subscription.queues(expires_ms);
    for (queue, keys, _) in &queues {
        for name in std::iter::once(queue).chain(keys) {
            if ShortString::try_new(name.as_str()).is_err() {
                return Err(Error::config(format!(
                    "`{name}` is longer than the 255 bytes AMQP allows for queue names and routing keys"
                )));
            }
        }
    }
    let queue = subscription.queue();
    let (consuming_tx, consuming) = watch::channel(false);
    let (stop, stop_rx) = watch::channel(None);
    let task = tokio::spawn(async move {
        run(owner.0.clone(), subscription, queues, consuming_tx, stop_rx).await;
        drop(owner);
    });
    Ok(Subscriber {
        queue,
        consuming,
        stop,
        task,
    })
}

type Handling = Dedup<BoxHandler>;

/// A queue to consume: name, routing keys, expiry in milliseconds.
type Queue = (String, Vec<String>, Option<u32>);

async fn run(
    shared: Arc<Shared>,
    subscription: Subscription,
    queues: Vec<Queue>,
    consuming: watch::Sender<bool>,
    mut stop: watch::Receiver<Option<Duration>>,
) {
    let dedup = subscription.dedup.clone().unwrap_or_default();
    let handler = tower::Layer::layer(&dedup, subscription.handler.clone());
    let mut links = shared.link.subscribe();
    let mut closing = shared.closing.subscribe();
    let mut in_flight = JoinSet::new();
    let queue = subscription.queue();
    let grace = loop {
        let link = tokio::select! {
            link = links.wait_for(Option::is_some) => match link {
                Ok(link) => link.clone(),
                Err(_) => break Duration::ZERO,
            },
            Some(grace) = stopped(&mut stop) => break grace,
            _ = closing.wait_for(|closing| *closing) => break Duration::ZERO,
        };
        let Some(link) = link else { continue };
        let (channels, consumers) = match arm(&link, &subscription, &queues).await {
            Ok(armed) => armed,
            Err(error) => {
                tracing::warn!(queue, %error, "cannot set up the AMQP consumer; retrying");
                pause(&mut closing, RETRY_SETUP).await;
                continue;
            }
        };
        tracing::info!(queue, generation = link.generation, "consuming");
        consuming.send_replace(true);
        let tags: Vec<ShortString> = consumers.iter().map(|(tag, _)| tag.clone()).collect();
        let streams = consumers.into_iter().map(|(_, stream)| stream).collect();
        let ended = consume(
            &shared,
            &channels,
            streams,
            &handler,
            &mut in_flight,
            &mut links,
            &mut stop,
        )
        .await;
        consuming.send_replace(false);
        if let Some(grace) = ended {
            for tag in tags {
                let _ = channels
                    .consume
                    .basic_cancel(tag, BasicCancelOptions::default())
                    .await;
            }
            finish(&mut in_flight, grace).await;
            let _ = channels.consume.close(200, "consumer stopped".into()).await;
            let _ = channels
                .dead_letters
                .close(200, "consumer stopped".into())
                .await;
            tracing::info!(queue, "consumer stopped");
            return;
        }
        tracing::debug!(
            queue,
            "consumer lost its connection; waiting for the next one"
        );
    };
    finish(&mut in_flight, grace).await;
}

/// Waits up to `grace` for running handlers, then abandons the rest
/// unacknowledged (the broker requeues them when the channel closes).
async fn finish(in_flight: &mut JoinSet<()>, grace: Duration) {
    let drained = tokio::time::timeout(grace, async {
        while in_flight.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            abandoned = in_flight.len(),
            "handlers still running at shutdown; their messages go back to the queue"
        );
        in_flight.abort_all();
    }
}

type Deliveries = Pin<Box<dyn Stream<Item = lapin::Result<AmqpDelivery>> + Send>>;

/// A consumer's channels: one to consume, acknowledge and reply on (no
/// confirms: replies are fire-and-forget, their caller waits for them), one
/// in confirm mode for dead letters, which must be stored before the
/// original is acknowledged.
struct Channels {
    consume: Channel,
    acks: Acks,
    dead_letters: Channel,
}

async fn arm(
    link: &Link,
    subscription: &Subscription,
    queues: &[Queue],
) -> lapin::Result<(Arc<Channels>, Vec<(ShortString, Deliveries)>)> {
    let channel = link.connection.create_channel().await?;
    let dead_letters = link.connection.create_channel().await?;
    dead_letters
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    channel
        .basic_qos(subscription.prefetch, BasicQosOptions::default())
        .await?;
    let mut consumers = Vec::new();
    for (queue, keys, expires) in queues {
        declare_queue(&link.connection, queue, keys, *expires).await?;
        // The broker names the consumer: ours could outgrow a short string.
        let consumer: Consumer = channel
            .basic_consume(
                queue.as_str().into(),
                ShortString::default(),
                Default::default(),
                FieldTable::default(),
            )
            .await?;
        consumers.push((consumer.tag(), Box::pin(consumer) as Deliveries));
    }
    let channels = Channels {
        acks: Acks::new(channel.clone()),
        consume: channel,
        dead_letters,
    };
    Ok((Arc::new(channels), consumers))
}

/// Consumes until the connection is replaced (`None`) or a stop is asked
/// (`Some(grace)`).
async fn consume(
    shared: &Arc<Shared>,
    channels: &Arc<Channels>,
    mut consumers: Vec<Deliveries>,
    handler: &Handling,
    in_flight: &mut JoinSet<()>,
    links: &mut watch::Receiver<Option<Arc<Link>>>,
    stop: &mut watch::Receiver<Option<Duration>>,
) -> Option<Duration> {
    let codec = shared.settings.codec;
    let mut first = 0;
    loop {
        // Start with a different queue each time, so a busy own queue cannot
        // starve the shared work queue.
        first = (first + 1) % consumers.len().max(1);
        let next = std::future::poll_fn(|cx| {
            let count = consumers.len();
            for offset in 0..count {
                let consumer = &mut consumers[(first + offset) % count];
                if let std::task::Poll::Ready(item) = consumer.as_mut().poll_next(cx) {
                    return std::task::Poll::Ready(item);
                }
            }
            std::task::Poll::Pending
        });
        tokio::select! {
            item = next => match item {
                Some(Ok(delivery)) => {
                    while in_flight.try_join_next().is_some() {}
                    in_flight.spawn(handle(delivery, channels.clone(), handler.clone(), codec));
                }
                Some(Err(error)) => {
                    tracing::warn!(%error, "AMQP consumer failed");
                    shared.broken.notify_one();
                    return None;
                }
                None => return None,
            },
            _ = links.changed() => return None,
            Some(grace) = stopped(stop) => return Some(grace),
        }
    }
}

/// Resolves with the grace when [`Subscriber::shutdown`] asks for a stop;
/// never resolves once the subscriber is dropped (consuming goes on).
async fn stopped(stop: &mut watch::Receiver<Option<Duration>>) -> Option<Duration> {
    match stop.changed().await {
        Ok(()) => Some(stop.borrow().unwrap_or_default()),
        Err(_) => std::future::pending().await,
    }
}

/// Handles one delivery: decode, run the handler once per id, reply or
/// dead-letter, then acknowledge.
///
/// A synchronous request always gets an answer — the reply, or an error
/// reply — so its caller fails fast rather than at its timeout. Messages
/// that are not valid, and asynchronous messages whose handler failed, are
/// dead-lettered with the reason.
async fn handle(delivery: AmqpDelivery, channels: Arc<Channels>, handler: Handling, codec: Codec) {
    let reply_to = delivery.properties.reply_to().as_ref();
    let (result, poison) = match decode(&delivery, codec) {
        Ok(message) => (handler.handle(message).await, false),
        Err(error) => (Err(error), true),
    };
    if let Some(to) = reply_to {
        let missing;
        let answer = match &result {
            Ok(Some(reply)) => Ok(reply),
            Ok(None) => {
                missing = Error::no_reply();
                Err(&missing)
            }
            Err(error) => Err(error),
        };
        send_reply(&channels.consume, &delivery, to, answer, codec).await;
    }
    let settled = match &result {
        Err(error) if poison || reply_to.is_none() => {
            dead_letter(&channels.dead_letters, &delivery, error).await
        }
        _ => Ok(()),
    };
    let settlement = match settled {
        Ok(()) => Settlement::Ack,
        Err(()) => Settlement::Reject,
    };
    channels
        .acks
        .settle(delivery.delivery_tag, settlement)
        .await;
}

fn decode(delivery: &AmqpDelivery, codec: Codec) -> Result<Message, Error> {
    if let Some(content_type) = delivery.properties.content_type()
        && !is_json(content_type.as_str())
    {
        return Err(Error::invalid(format!(
            "content type `{content_type}` is not {APPLICATION_JSON}"
        )));
    }
    let transport_id = delivery
        .properties
        .message_id()
        .as_ref()
        .map(ShortString::as_str);
    codec.decode_received(&delivery.data, transport_id)
}

async fn send_reply(
    channel: &Channel,
    request: &AmqpDelivery,
    to: &ShortString,
    answer: Result<&Message, &Error>,
    codec: Codec,
) {
    let mut properties = BasicProperties::default().with_content_type(APPLICATION_JSON.into());
    if let Some(correlation) = request.properties.correlation_id() {
        properties = properties.with_correlation_id(correlation.clone());
    }
    let error_body = |properties: BasicProperties, error: &Error| {
        let mut headers = FieldTable::default();
        headers.insert(
            ERROR_HEADER.into(),
            AMQPValue::LongString(error.kind().as_str().into()),
        );
        (properties.with_headers(headers), ErrorBody::json(error))
    };
    let (properties, body) = match answer {
        Ok(reply) => match codec.encode_vec(reply) {
            Ok(body) => match ShortString::try_new(reply.id()) {
                Ok(id) => (properties.with_message_id(id), body),
                Err(_) => (properties, body),
            },
            Err(error) => error_body(properties, &unsendable_reply(&error)),
        },
        Err(error) => error_body(properties, error),
    };
    let sent = channel
        .basic_publish(
            "".into(),
            to.clone(),
            BasicPublishOptions::default(),
            &body,
            properties,
        )
        .await;
    if let Err(error) = sent {
        tracing::warn!(%error, "could not send a reply; the caller will time out");
    }
}

/// Publishes the delivery to the dead-letter exchange with the reason in
/// headers and waits for the broker's confirm. `Err` means it is not stored:
/// the caller rejects the delivery instead, and the queue's own
/// dead-letter exchange catches it (without our reason).
async fn dead_letter(channel: &Channel, delivery: &AmqpDelivery, error: &Error) -> Result<(), ()> {
    let mut headers = delivery.properties.headers().clone().unwrap_or_default();
    headers.insert(
        REASON_HEADER.into(),
        AMQPValue::LongString(error.to_string().into()),
    );
    headers.insert(
        ERROR_HEADER.into(),
        AMQPValue::LongString(error.kind().as_str().into()),
    );
    headers.insert(
        "x-stage7-routing-key".into(),
        AMQPValue::LongString(delivery.routing_key.as_str().into()),
    );
    let properties = delivery.properties.clone().with_headers(headers);
    tracing::warn!(routing_key = delivery.routing_key.as_str(), %error, "dead-lettering a message");
    let published = channel
        .basic_publish(
            DEAD_LETTER_EXCHANGE.into(),
            delivery.routing_key.clone(),
            BasicPublishOptions::default(),
            &delivery.data,
            properties,
        )
        .await;
    let stored = match published {
        Ok(confirm) => Settle::new(confirm, None, None)
            .await
            .ok()
            .and_then(|c| confirmed(c, DEAD_LETTER_EXCHANGE).ok()),
        Err(_) => None,
    };
    stored.ok_or(())
}
