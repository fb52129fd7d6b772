//! Receiving: an entity's queue, its bindings, and a handler run once per
//! message id, with replies and dead letters.

mod builder;
mod delivery;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_core::Stream;
use lapin::message::Delivery as AmqpDelivery;
use lapin::options::{BasicCancelOptions, BasicQosOptions, ConfirmSelectOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::{Channel, Consumer};
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use self::builder::SubscriberBuilder;
pub(crate) use self::builder::expiry_ms;
#[cfg(any(test, fuzzing))]
pub(crate) use self::delivery::decode;
use super::AmqpTransport;
use super::acks::Acks;
use super::reply_to::ReplyQueues;
use super::supervisor::{Link, Shared, pause};
use super::topology::{QueueLimits, declare_queue};
use crate::handler::{BoxHandler, Handler};
use crate::layer::dedup::Dedup;

/// How long a consumer waits before re-declaring after a failed setup on a
/// live connection: 1 s.
const RETRY_SETUP: Duration = Duration::from_secs(1);

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
    /// Settings for consuming the messages of entity `id` of
    /// `component_type` over `transport`, running `handler`; end with
    /// [`start`](SubscriberBuilder::start).
    ///
    /// The entity's queue is `{type lowercased}-{id}`, bound to
    /// `message.{id}`, `message.{type}` (as written and lowercased) and
    /// `message.all`, the seed's layout. With
    /// [`work_queue`](SubscriberBuilder::work_queue), messages for the type
    /// go to one shared queue `{type lowercased}` instead, so instances
    /// share them.
    pub fn builder<H: Handler>(
        transport: &AmqpTransport,
        id: impl Into<String>,
        component_type: impl Into<String>,
        handler: H,
    ) -> SubscriberBuilder {
        SubscriberBuilder::new(
            transport,
            id.into(),
            component_type.into(),
            BoxHandler::new(handler),
        )
    }

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

pub(super) type Handling = Dedup<BoxHandler>;

/// A queue to consume: its name, routing keys and bounds.
#[derive(Debug)]
struct Queue {
    name: String,
    keys: Vec<String>,
    limits: QueueLimits,
}

async fn run(
    shared: Arc<Shared>,
    subscription: SubscriberBuilder,
    queues: Vec<Queue>,
    reply_queues: ReplyQueues,
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
        let (channels, consumers) = match arm(&link, &subscription, &queues, &reply_queues).await {
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
/// original is acknowledged; and the reply queues it may reply to.
pub(super) struct Channels {
    consume: Channel,
    acks: Acks,
    dead_letters: Channel,
    reply_queues: ReplyQueues,
}

async fn arm(
    link: &Link,
    subscription: &SubscriberBuilder,
    queues: &[Queue],
    reply_queues: &ReplyQueues,
) -> lapin::Result<(Arc<Channels>, Vec<(ShortString, Deliveries)>)> {
    let channel = link.connection.create_channel().await?;
    let dead_letters = link.connection.create_channel().await?;
    dead_letters
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    // RabbitMQ applies a prefetch to each consumer of the channel, or with
    // `global` to all of them together: with a work queue beside its own,
    // an entity would otherwise hold twice its prefetch. One consumer keeps
    // the per-consumer form, which quorum queues also accept.
    channel
        .basic_qos(
            subscription.prefetch,
            BasicQosOptions {
                global: queues.len() > 1,
            },
        )
        .await?;
    let mut consumers = Vec::new();
    for queue in queues {
        declare_queue(&link.connection, &queue.name, &queue.keys, queue.limits).await?;
        // The broker names the consumer: ours could outgrow a short string.
        let consumer: Consumer = channel
            .basic_consume(
                queue.name.as_str().into(),
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
        reply_queues: reply_queues.clone(),
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
                    in_flight.spawn(delivery::handle(delivery, channels.clone(), handler.clone(), codec));
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
