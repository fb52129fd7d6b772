//! Names and declarations of the exchanges, queues and bindings (docs/ARCHITECTURE.md, wire format).

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ExchangeKind};

/// The topic exchange every message is published to.
pub const EXCHANGE: &str = "stage7";
/// Where messages that could not be handled go: a fanout exchange…
pub const DEAD_LETTER_EXCHANGE: &str = "stage7.dlx";
/// …bound to this queue.
pub const DEAD_LETTER_QUEUE: &str = "stage7.dead-letter";
/// RabbitMQ's direct reply-to pseudo-queue.
pub const REPLY_TO: &str = "amq.rabbitmq.reply-to";

/// Header naming why a message was dead-lettered.
pub const REASON_HEADER: &str = "x-stage7-reason";
/// Header carrying the [`ErrorKind`](crate::ErrorKind) of a dead letter or
/// an error reply.
pub const ERROR_HEADER: &str = "x-stage7-error";

/// `message.{recipient}`.
pub fn routing_key(recipient: &str) -> String {
    format!("message.{recipient}")
}

/// `{componentType lowercased}-{id}`, the seed's queue name.
pub fn queue_name(component_type: &str, id: &str) -> String {
    format!("{}-{id}", component_type.to_lowercase())
}

/// Most dead letters kept: 100 000, oldest dropped first. Nothing consumes
/// the dead-letter queue on its own, and expired requests land there too.
pub const DEAD_LETTER_LIMIT: i64 = 100_000;

/// Declares [`EXCHANGE`] as the transport does (a durable topic
/// exchange), for tools that publish or bind with bare lapin before any
/// transport has connected. Idempotent.
///
/// # Errors
///
/// lapin's, when the broker refuses (an exchange of that name but another
/// kind or durability) or the channel fails.
pub async fn declare_exchange(channel: &Channel) -> lapin::Result<()> {
    channel
        .exchange_declare(
            EXCHANGE.into(),
            ExchangeKind::Topic,
            durable(),
            FieldTable::default(),
        )
        .await
}

fn durable() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    }
}

/// Declares the exchanges and the dead-letter queue. Idempotent; run on
/// every (re)connection. Never touches the default exchange.
pub(crate) async fn declare_exchanges(
    connection: &Connection,
    channel: &Channel,
) -> lapin::Result<()> {
    declare_exchange(channel).await?;
    channel
        .exchange_declare(
            DEAD_LETTER_EXCHANGE.into(),
            ExchangeKind::Fanout,
            durable(),
            FieldTable::default(),
        )
        .await?;
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-max-length".into(),
        AMQPValue::LongLongInt(DEAD_LETTER_LIMIT),
    );
    arguments.insert(
        "x-overflow".into(),
        AMQPValue::LongString("drop-head".into()),
    );
    declare_and_bind(
        connection,
        DEAD_LETTER_QUEUE,
        arguments,
        &[(DEAD_LETTER_EXCHANGE, "")],
    )
    .await
}

/// Declares durable `queue` (see [`declare_or_use`]) and binds it to each
/// `(exchange, routing key)`, on a channel of its own.
async fn declare_and_bind(
    connection: &Connection,
    queue: &str,
    arguments: FieldTable,
    bindings: &[(&str, &str)],
) -> lapin::Result<()> {
    let channel = declare_or_use(connection, queue, arguments).await?;
    for (exchange, key) in bindings {
        channel
            .queue_bind(
                queue.into(),
                (*exchange).into(),
                (*key).into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    let _ = channel.close(200, "declared".into()).await;
    Ok(())
}

/// Declares durable `queue` with `arguments` on a channel of its own, and
/// returns that channel. A queue that exists with other arguments —
/// declared by an operator, an earlier version, or an instance with another
/// expiry — is used as it is: declaring it again with ours would be refused
/// (`PRECONDITION_FAILED`, which also closes the channel) on every attempt.
async fn declare_or_use(
    connection: &Connection,
    queue: &str,
    arguments: FieldTable,
) -> lapin::Result<Channel> {
    let channel = connection.create_channel().await?;
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    match channel
        .queue_declare(queue.into(), durable, arguments)
        .await
    {
        Ok(_) => Ok(channel),
        Err(error) if is_precondition_failed(&error) => {
            tracing::warn!(
                queue,
                %error,
                "the queue exists with other arguments; using it as it is"
            );
            let channel = connection.create_channel().await?;
            let passive = QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            };
            // If the queue is not there either, the refusal said why.
            channel
                .queue_declare(queue.into(), passive, FieldTable::default())
                .await
                .map_err(|_| error)?;
            Ok(channel)
        }
        Err(error) => Err(error),
    }
}

/// Whether the broker refused a declaration because the queue exists with
/// other arguments (406).
fn is_precondition_failed(error: &lapin::Error) -> bool {
    const PRECONDITION_FAILED: u16 = 406;
    matches!(error.kind(), lapin::ErrorKind::ProtocolError(amqp) if amqp.get_id() == PRECONDITION_FAILED)
}

/// The bounds of an entity's queue or a work queue, as queue arguments.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct QueueLimits {
    /// `x-expires`: deleted after this many milliseconds without a consumer.
    pub(crate) expires_ms: Option<u32>,
    /// `x-max-length`: past this many ready messages the oldest go to the
    /// dead-letter exchange (`x-overflow` = `drop-head`).
    pub(crate) max_length: Option<u32>,
}

/// A durable queue whose rejected, expired and overflowing messages go to
/// the dead-letter exchange, bounded by `limits`, and bound to `keys` on
/// [`EXCHANGE`]. A queue that exists with other arguments is used as it is
/// (see [`declare_or_use`]).
///
/// Overflow drops the oldest message (`drop-head`), never the new one
/// (`reject-publish-dlx`): a publish is routed to every queue bound to its
/// key, and one full queue — typically of an instance that is gone, bound
/// to `message.all` and `message.{type}` — would have the broker nack the
/// publish for all of them, although the live ones stored it. The sender
/// would take a delivered message for an undelivered one and send it again.
pub(crate) async fn declare_queue(
    connection: &Connection,
    queue: &str,
    keys: &[String],
    limits: QueueLimits,
) -> lapin::Result<()> {
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(DEAD_LETTER_EXCHANGE.into()),
    );
    if let Some(ms) = limits.expires_ms {
        arguments.insert("x-expires".into(), AMQPValue::LongUInt(ms));
    }
    if let Some(length) = limits.max_length {
        arguments.insert("x-max-length".into(), AMQPValue::LongUInt(length));
        arguments.insert(
            "x-overflow".into(),
            AMQPValue::LongString("drop-head".into()),
        );
    }
    let bindings: Vec<(&str, &str)> = keys.iter().map(|key| (EXCHANGE, key.as_str())).collect();
    declare_and_bind(connection, queue, arguments, &bindings).await
}
