//! Names and declarations of the exchanges, queues and bindings (DESIGN §3).

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Channel, Connection, ExchangeKind};

/// The topic exchange every message is published to.
pub const EXCHANGE: &str = "stage7";
/// Where messages that could not be handled go: a fanout exchange…
pub const DEAD_LETTER_EXCHANGE: &str = "stage7.dlx";
/// …bound to this queue.
pub const DEAD_LETTER_QUEUE: &str = "stage7.dead-letter";
/// RabbitMQ's direct reply-to pseudo-queue.
pub const REPLY_TO: &str = "amq.rabbitmq.reply-to";
/// The recipient that reaches every entity.
pub const BROADCAST: &str = "all";

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

/// Declares the exchanges and the dead-letter queue. Idempotent; run on
/// every (re)connection. Never touches the default exchange.
///
/// The dead-letter queue is declared with a length limit only when it does
/// not exist yet: one that an operator (or an earlier version) declared
/// with other arguments is used as it is rather than refused.
pub(crate) async fn declare_exchanges(
    connection: &Connection,
    channel: &Channel,
) -> lapin::Result<()> {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    channel
        .exchange_declare(
            EXCHANGE.into(),
            ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        )
        .await?;
    channel
        .exchange_declare(
            DEAD_LETTER_EXCHANGE.into(),
            ExchangeKind::Fanout,
            durable,
            FieldTable::default(),
        )
        .await?;
    if !exists(connection, DEAD_LETTER_QUEUE).await? {
        let mut arguments = FieldTable::default();
        arguments.insert(
            "x-max-length".into(),
            AMQPValue::LongLongInt(DEAD_LETTER_LIMIT),
        );
        arguments.insert(
            "x-overflow".into(),
            AMQPValue::LongString("drop-head".into()),
        );
        let durable_queue = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        channel
            .queue_declare(DEAD_LETTER_QUEUE.into(), durable_queue, arguments)
            .await?;
    }
    channel
        .queue_bind(
            DEAD_LETTER_QUEUE.into(),
            DEAD_LETTER_EXCHANGE.into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
}

/// Whether `queue` exists, asked on a channel of its own: the broker closes
/// the channel of a passive declaration that finds nothing.
async fn exists(connection: &Connection, queue: &str) -> lapin::Result<bool> {
    let probe = connection.create_channel().await?;
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let found = probe
        .queue_declare(queue.into(), passive, FieldTable::default())
        .await
        .is_ok();
    if found {
        let _ = probe.close(200, "checked".into()).await;
    }
    Ok(found)
}

/// A durable queue whose rejected and expired messages go to the
/// dead-letter exchange, deleted by the broker after `expires_ms` without a
/// consumer if given, and bound to `keys` on [`EXCHANGE`].
///
/// A queue that already exists is used as it is: declared by an operator,
/// an earlier version or an instance with another expiry, its arguments
/// may differ, and declaring it again with ours would be refused
/// (`PRECONDITION_FAILED`) on every attempt.
pub(crate) async fn declare_queue(
    connection: &Connection,
    channel: &Channel,
    queue: &str,
    keys: &[String],
    expires_ms: Option<u32>,
) -> lapin::Result<()> {
    if !exists(connection, queue).await? {
        let mut arguments = FieldTable::default();
        arguments.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(DEAD_LETTER_EXCHANGE.into()),
        );
        if let Some(ms) = expires_ms {
            arguments.insert("x-expires".into(), AMQPValue::LongUInt(ms));
        }
        channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                arguments,
            )
            .await?;
    }
    for key in keys {
        channel
            .queue_bind(
                ShortString::from(queue),
                EXCHANGE.into(),
                key.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    Ok(())
}
