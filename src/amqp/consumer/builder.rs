//! [`SubscriberBuilder`]: which queues an entity consumes, and how.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use lapin::types::ShortString;
use tokio::sync::watch;

use super::{Queue, Subscriber};
use crate::amqp::reply_to::ReplyQueues;
use crate::amqp::topology::{QueueLimits, queue_name, routing_key};
use crate::amqp::{AmqpTransport, Owner};
use crate::defaults;
use crate::error::{Error, Result};
use crate::handler::BoxHandler;
use crate::layer::dedup::DedupLayer;
use crate::message::BROADCAST;

/// What to consume and how: an entity's id and component type, the handler
/// its messages go to, and the queue's settings; see [`Subscriber::builder`].
///
/// The entity's queue is `{type lowercased}-{id}`, bound to `message.{id}`,
/// `message.{type}` (as written and lowercased) and `message.all` (docs/ARCHITECTURE.md,
/// wire format). With [`work_queue`](Self::work_queue), messages for the type go to
/// one shared queue `{type lowercased}` instead, so instances share them.
///
/// ```no_run
/// use std::convert::Infallible;
/// use stage7_transport::amqp::{AmqpTransport, Subscriber};
/// use stage7_transport::Message;
///
/// # async fn run() -> Result<(), stage7_transport::Error> {
/// let transport = AmqpTransport::builder("amqp://guest:guest@127.0.0.1:5672/%2f").build()?;
/// let echo = tower::service_fn(|m: Message| async move {
///     let content = m.content().cloned().unwrap_or_default();
///     Ok::<_, Infallible>(Some(m.reply(content)))
/// });
/// let consumer = Subscriber::builder(&transport, "echo-1", "Echo", echo).start()?;
/// consumer.ready().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct SubscriberBuilder {
    pub(super) owner: Arc<Owner>,
    pub(super) id: String,
    pub(super) component_type: String,
    pub(super) handler: BoxHandler,
    pub(super) prefetch: u16,
    pub(super) work_queue: bool,
    pub(super) dedup: Option<DedupLayer>,
    pub(super) expires: Option<Duration>,
    pub(super) max_length: Option<u32>,
    pub(super) reply_queues: Vec<String>,
}

impl SubscriberBuilder {
    pub(super) fn new(
        transport: &AmqpTransport,
        id: String,
        component_type: String,
        handler: BoxHandler,
    ) -> Self {
        Self {
            owner: transport.owner.clone(),
            id,
            component_type,
            handler,
            prefetch: defaults::PREFETCH,
            work_queue: false,
            dedup: None,
            expires: Some(defaults::AMQP_QUEUE_EXPIRY),
            max_length: Some(defaults::AMQP_QUEUE_MAX_LENGTH),
            reply_queues: defaults::AMQP_REPLY_QUEUES
                .iter()
                .map(|&pattern| pattern.to_owned())
                .collect(),
        }
    }

    /// Unacknowledged messages held at once, from the entity's own queue
    /// and its [work queue](Self::work_queue) together, and so handlers run
    /// at once. Default [`PREFETCH`](crate::defaults::PREFETCH).
    ///
    /// This also bounds the memory deliveries take: the client library
    /// reads a whole message before this crate sees its size, so up to
    /// `prefetch` messages of up to the broker's `max_message_size` (a
    /// node-wide setting, 128 MiB by default on RabbitMQ 3.x) are held at
    /// once; those over the codec's limit are then refused unread.
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
    /// turn off [`receivers_deduplicate`](crate::StackBuilder::receivers_deduplicate).
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
    /// consumer for this long (`x-expires`), between 1 ms and 2³² − 1 ms
    /// (49 days); `None` keeps it for ever. The broker drops what the
    /// queue still holds; it does not dead-letter it. The shared
    /// [work queue](Self::work_queue), which other instances share, expires
    /// after the longer of this and
    /// [`AMQP_QUEUE_EXPIRY`](crate::defaults::AMQP_QUEUE_EXPIRY) (never, with
    /// `None`). Default [`AMQP_QUEUE_EXPIRY`](crate::defaults::AMQP_QUEUE_EXPIRY):
    /// the queue of an id nobody uses any more does not collect the type's
    /// and `all`'s messages for ever.
    ///
    /// The expiry is set when the queue is created: a queue that already
    /// exists is used with the arguments it has.
    pub fn expires(mut self, unused_for: impl Into<Option<Duration>>) -> Self {
        self.expires = unused_for.into();
        self
    }

    /// Ready messages each queue holds (`x-max-length`) before the oldest
    /// go to the dead-letter queue `stage7.dead-letter`; `None` for no
    /// bound. Messages being handled do not count. Default
    /// [`AMQP_QUEUE_MAX_LENGTH`](crate::defaults::AMQP_QUEUE_MAX_LENGTH).
    ///
    /// The oldest are dropped rather than new publishes refused
    /// (`drop-head`, not `reject-publish-dlx`), so a publisher's confirm
    /// keeps one meaning: the message is stored in every queue bound to its
    /// routing key. Refusing would have one full queue nack a broadcast all
    /// the others stored, and its sender send it again. Set when the queue
    /// is created, as the expiry is.
    pub fn max_length(mut self, messages: impl Into<Option<u32>>) -> Self {
        self.max_length = messages.into();
        self
    }

    /// The reply queues this entity answers requests on, besides RabbitMQ's
    /// direct reply-to (`amq.rabbitmq.reply-to.…`), which is always
    /// answered: queue names in which `{uuid}` stands for a UUID and `*` for
    /// any run of characters. Replaces the list. Default
    /// [`AMQP_REPLY_QUEUES`](crate::defaults::AMQP_REPLY_QUEUES), Stage7's
    /// `rpc-reply-{uuid}`.
    ///
    /// A request naming any other `reply_to` is dead-lettered with the
    /// reason, and its handler does not run: a reply goes to whatever queue
    /// `reply_to` names, so answering any name would let a sender have this
    /// entity write into any queue; and a request that cannot be answered
    /// should have no effect its sender never hears of.
    pub fn reply_queues<P: Into<String>>(mut self, patterns: impl IntoIterator<Item = P>) -> Self {
        self.reply_queues = patterns.into_iter().map(Into::into).collect();
        self
    }

    /// The entity's own queue.
    pub fn queue(&self) -> String {
        queue_name(&self.component_type, &self.id)
    }

    /// Each queue to consume: its name, its routing keys, and its bounds
    /// (`own` for the entity's queue, `shared` for the work queue).
    fn queues(&self, own: QueueLimits, shared: QueueLimits) -> Vec<Queue> {
        let kind = &self.component_type;
        let lower = kind.to_lowercase();
        let mut type_keys = vec![routing_key(kind)];
        if lower != *kind {
            type_keys.push(routing_key(&lower));
        }
        let mut own_keys = vec![routing_key(&self.id), routing_key(BROADCAST)];
        let queue = |name, keys, limits| Queue { name, keys, limits };
        if self.work_queue {
            vec![
                queue(self.queue(), own_keys, own),
                queue(lower, type_keys, shared),
            ]
        } else {
            own_keys.extend(type_keys);
            vec![queue(self.queue(), own_keys, own)]
        }
    }

    /// Declares the queues and starts consuming: at once if the broker
    /// answers, otherwise as soon as it does. Works while disconnected; the
    /// consumer is re-armed on every new connection.
    ///
    /// # Errors
    ///
    /// [`Config`](crate::ErrorKind::Config) when the entity's id or type makes a
    /// queue name or routing key longer than AMQP allows, the expiry is
    /// out of range, the length bound is zero or a reply-queue pattern is
    /// empty or too long.
    pub fn start(self) -> Result<Subscriber> {
        let owner = self.owner.clone();
        let expires_ms = self.expires.map(expiry_ms).transpose()?;
        if self.max_length == Some(0) {
            return Err(Error::config(
                "a queue length bound of 0 would send every message to the dead letters",
            ));
        }
        let reply_queues = ReplyQueues::new(&self.reply_queues)?;
        let own = QueueLimits {
            expires_ms,
            max_length: self.max_length,
        };
        let shared_ms = self
            .expires
            .map(|unused| expiry_ms(unused.max(defaults::AMQP_QUEUE_EXPIRY)))
            .transpose()?;
        let shared = QueueLimits {
            expires_ms: shared_ms,
            ..own
        };
        let queues = self.queues(own, shared);
        for queue in &queues {
            for name in std::iter::once(&queue.name).chain(&queue.keys) {
                if ShortString::try_new(name.as_str()).is_err() {
                    return Err(Error::config(format!(
                        "`{name}` is longer than the 255 bytes AMQP allows for queue names and routing keys"
                    )));
                }
            }
        }
        let queue = self.queue();
        let (consuming_tx, consuming) = watch::channel(false);
        let (stop, stop_rx) = watch::channel(None);
        let task = tokio::spawn(async move {
            super::run(
                owner.0.clone(),
                self,
                queues,
                reply_queues,
                consuming_tx,
                stop_rx,
            )
            .await;
            drop(owner);
        });
        Ok(Subscriber {
            queue,
            consuming,
            stop,
            task,
        })
    }
}

impl fmt::Debug for SubscriberBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubscriberBuilder")
            .field("id", &self.id)
            .field("component_type", &self.component_type)
            .field("prefetch", &self.prefetch)
            .field("work_queue", &self.work_queue)
            .field("expires", &self.expires)
            .field("max_length", &self.max_length)
            .field("reply_queues", &self.reply_queues)
            .finish_non_exhaustive()
    }
}

/// `unused` as the milliseconds of an `x-expires` argument.
///
/// # Errors
///
/// [`Config`](crate::ErrorKind::Config) outside what RabbitMQ accepts.
pub(crate) fn expiry_ms(unused: Duration) -> Result<u32> {
    u32::try_from(unused.as_millis())
        .ok()
        .filter(|ms| *ms > 0)
        .ok_or_else(|| {
            Error::config(format!(
                "queue expiry of {unused:?} is outside what RabbitMQ accepts: 1 ms to 2^32 - 1 ms"
            ))
        })
}
