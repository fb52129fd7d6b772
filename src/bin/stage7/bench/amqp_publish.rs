//! `stage7 bench amqp-publish`: confirmed, persistent, mandatory publishes,
//! pipelined (`--concurrency` publishes awaiting their confirm at once).
//!
//! * `baseline`: bare lapin on a confirm-mode channel, each publish awaiting
//!   its own confirm.
//! * `transport`: our [`AmqpTransport`] sending asynchronous messages.
//!
//! Both publish the same message to their own durable queue (capped at
//! 10 000 messages, oldest dropped, so the broker does the same work for
//! both). The baseline sends the message's bytes encoded once; ours gets a
//! copy of a template message with a fresh id and encodes it, as it must.

use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use stage7_transport::amqp::AmqpTransport;
use stage7_transport::amqp::topology::EXCHANGE;
use stage7_transport::{Message, MessageType};
use tower::ServiceExt;

use super::Options;
use super::amqp_rpc::{name, url};
use super::harness::{Comparison, Side, compare, fresh};

async fn capped_queue(channel: &Channel, recipient: &str) -> Result<(), String> {
    let mut arguments = FieldTable::default();
    arguments.insert("x-max-length".into(), AMQPValue::LongLongInt(10_000));
    arguments.insert("x-expires".into(), AMQPValue::LongLongInt(60_000));
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
            format!("message.{recipient}").into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| e.to_string())
}

fn event(recipient: &str) -> Message {
    Message::new(MessageType::StatusUpdate)
        .with_recipient(recipient)
        .with_sender("bench")
        .with_content(serde_json::json!({"status": "running", "progress": 0.42, "step": "publish"}))
}

pub(crate) async fn run(options: &Options) -> Result<Vec<Comparison>, String> {
    let url = url()?;
    let connection = Connection::connect(
        &url,
        ConnectionProperties::default().with_connection_name("bench-raw".into()),
    )
    .await
    .map_err(|e| {
        format!(
            "cannot reach RabbitMQ at {}: {e}",
            stage7_transport::config::redact_url(&url)
        )
    })?;
    let channel = connection
        .create_channel()
        .await
        .map_err(|e| e.to_string())?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    let (raw_target, our_target) = (name("raw-sink"), name("sink"));
    capped_queue(&channel, &raw_target).await?;
    capped_queue(&channel, &our_target).await?;

    let transport = AmqpTransport::builder(url)
        .connection_name("bench-transport")
        .build()
        .map_err(|e| e.to_string())?;
    transport.connected().await;
    let raw_body = event(&raw_target).to_json().map_err(|e| e.to_string())?;
    let raw_key = format!("message.{raw_target}");

    let mut comparisons = Vec::new();
    for &concurrency in &options.concurrency {
        let sides = vec![
            Side::new("baseline", {
                let (channel, key, body) = (channel.clone(), raw_key.clone(), raw_body.clone());
                move |i| {
                    let (channel, key, body) = (channel.clone(), key.clone(), body.clone());
                    async move {
                        let properties = BasicProperties::default()
                            .with_delivery_mode(2)
                            .with_content_type("application/json".into())
                            .with_message_id(i.to_string().into());
                        let mandatory = BasicPublishOptions {
                            mandatory: true,
                            ..BasicPublishOptions::default()
                        };
                        let confirm = channel
                            .basic_publish(
                                EXCHANGE.into(),
                                key.as_str().into(),
                                mandatory,
                                &body,
                                properties,
                            )
                            .await
                            .map_err(|e| e.to_string())?;
                        match confirm.await.map_err(|e| e.to_string())? {
                            Confirmation::Ack(None) => Ok(()),
                            other => Err(format!("unexpected confirmation {other:?}")),
                        }
                    }
                }
            }),
            Side::new("transport", {
                let (transport, template) = (transport.clone(), event(&our_target));
                move |_| {
                    let call = transport.clone().oneshot(fresh(&template));
                    async move { call.await.map(drop).map_err(|e| e.to_string()) }
                }
            }),
        ];
        comparisons.push(
            compare(
                "amqp-publish",
                options.n,
                concurrency,
                options.rounds,
                sides,
            )
            .await?,
        );
    }
    let _ = connection.close(200, "bench done".into()).await;
    Ok(comparisons)
}
