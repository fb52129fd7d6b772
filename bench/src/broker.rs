//! What the RabbitMQ load runs share: the broker URL, fresh names, a bare
//! lapin connection, the baselines' queues and the benchmark entity.

use std::pin::Pin;
use std::time::Duration;

use futures_core::Stream;
use lapin::options::{
    BasicPublishOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, PublisherConfirm};
use stage7_transport::amqp::topology::{EXCHANGE, declare_exchange, routing_key};
use stage7_transport::amqp::{AmqpTransport, Subscriber};
use stage7_transport::url::redact_url;
use stage7_transport::{BranchBuilder, Config, Handler, Message, Route, Stack};

/// The broker URL from the environment (`RABBITMQ_URL`, or the
/// `RABBITMQ_DEFAULT_*` variables), as every entity reads it.
pub(crate) fn url() -> Result<String, String> {
    Config::from_env()
        .map(|config| config.rabbitmq_url.expose().to_owned())
        .map_err(|e| e.to_string())
}

/// `prefix` and a suffix no other run uses.
pub(crate) fn name(prefix: &str) -> String {
    format!("{prefix}-{}", &stage7_transport::message::new_id()[24..])
}

/// The next item of `stream`.
pub(crate) async fn next<S: Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)).await
}

/// A bare lapin connection named `connection_name`; the error names the
/// broker without its password.
pub(crate) async fn connect(url: &str, connection_name: &str) -> Result<Connection, String> {
    Connection::connect(
        url,
        ConnectionProperties::default().with_connection_name(connection_name.into()),
    )
    .await
    .map_err(|e| format!("cannot reach RabbitMQ at {}: {e}", redact_url(url)))
}

/// Declares a durable queue named after `recipient`, holding at most
/// `max_length` messages (oldest dropped) when given, and binds it to
/// `recipient`'s routing key on [`EXCHANGE`] (declared first: a fresh broker
/// has none until a transport connects).
///
/// The queue expires an hour after its last use, so an interrupted run
/// leaves nothing behind for long. Publishing is not a use: a queue nobody
/// consumes must outlive the longest run, and the run deletes it itself.
pub(crate) async fn bound_queue(
    channel: &Channel,
    recipient: &str,
    max_length: Option<i64>,
) -> Result<(), String> {
    declare_exchange(channel).await.map_err(|e| e.to_string())?;
    let mut arguments = FieldTable::default();
    arguments.insert("x-expires".into(), AMQPValue::LongLongInt(3_600_000));
    if let Some(max_length) = max_length {
        arguments.insert("x-max-length".into(), AMQPValue::LongLongInt(max_length));
    }
    channel
        .queue_declare(
            recipient.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            arguments,
        )
        .await
        .map_err(|e| e.to_string())?;
    channel
        .queue_bind(
            recipient.into(),
            EXCHANGE.into(),
            routing_key(recipient).into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| e.to_string())
}

/// Ends a run on `connection`: deletes the run's own `queues` on a fresh
/// channel (a failed run may have lost its others), saying so when one
/// cannot be deleted (it then expires an hour after its last use), and
/// closes the connection.
pub(crate) async fn finish(connection: &Connection, queues: &[&str]) {
    match connection.create_channel().await {
        Ok(channel) => {
            for queue in queues {
                if let Err(error) = channel
                    .queue_delete((*queue).into(), QueueDeleteOptions::default())
                    .await
                {
                    eprintln!("stage7 bench: could not delete queue {queue}: {error}");
                }
            }
        }
        Err(error) => eprintln!("stage7 bench: could not delete queues {queues:?}: {error}"),
    }
    let _ = connection.close(200, "bench done".into()).await;
}

/// The properties the baselines publish with: persistent JSON carrying
/// message id `id`, as ours does.
pub(crate) fn raw_properties(id: &str) -> BasicProperties {
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
        .with_message_id(id.into())
}

/// A bare mandatory publish of `body` to `routing_key` on [`EXCHANGE`].
pub(crate) async fn raw_publish(
    channel: &Channel,
    routing_key: &str,
    body: &[u8],
    properties: BasicProperties,
) -> Result<PublisherConfirm, String> {
    let mandatory = BasicPublishOptions {
        mandatory: true,
        ..BasicPublishOptions::default()
    };
    channel
        .basic_publish(
            EXCHANGE.into(),
            routing_key.into(),
            mandatory,
            body,
            properties,
        )
        .await
        .map_err(|e| e.to_string())
}

/// A handler that answers requests with their content, moved into the
/// reply rather than copied, as the baseline's responder sends the request's
/// bytes back.
pub(crate) fn echo_handler() -> impl Handler {
    tower::service_fn(|message: Message| async move {
        let reply = message.reply(serde_json::Value::Null);
        let content = message.into_content().unwrap_or_default();
        Ok::<_, std::convert::Infallible>(Some(reply.with_content(content)))
    })
}

/// Serves entity `id` on `transport` with [`echo_handler`]; returns once it
/// consumes.
pub(crate) async fn echo_entity(transport: &AmqpTransport, id: &str) -> Result<Subscriber, String> {
    let subscriber = Subscriber::builder(transport, id, "Echo", echo_handler())
        .expires(Duration::from_secs(60))
        .start()
        .map_err(|e| e.to_string())?;
    tokio::time::timeout(Duration::from_secs(10), subscriber.ready())
        .await
        .map_err(|_| "the benchmark entity did not start consuming".to_owned())?;
    Ok(subscriber)
}

/// The content of every benchmark request (`peer.js bench` sends the same).
pub(crate) fn payload() -> serde_json::Value {
    serde_json::json!({"prompt": "summarise the mission status", "step": 7, "tags": ["bench", "rpc"]})
}

/// Our side of a request/reply run: a transport named `connection_name`,
/// an echo entity served on it, the stack over it, and the request each
/// call sends a copy of.
pub(crate) struct EchoRun {
    pub(crate) transport: AmqpTransport,
    pub(crate) subscriber: Subscriber,
    pub(crate) stack: Stack<AmqpTransport>,
    pub(crate) template: Message,
}

pub(crate) async fn echo_run(url: &str, connection_name: &str) -> Result<EchoRun, String> {
    let transport = AmqpTransport::builder(url)
        .connection_name(connection_name)
        .build()
        .map_err(|e| e.to_string())?;
    let entity = name("echo");
    let subscriber = echo_entity(&transport, &entity).await?;
    let stack = Stack::builder(transport.clone())
        .primary_branch(BranchBuilder::new(Route::Amqp))
        .build()
        .map_err(|e| e.to_string())?;
    let template = Message::request(&entity, payload()).with_sender("bench");
    Ok(EchoRun {
        transport,
        subscriber,
        stack,
        template,
    })
}
