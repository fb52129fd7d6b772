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

use lapin::Channel;
use lapin::Confirmation;
use lapin::options::ConfirmSelectOptions;
use stage7_transport::amqp::AmqpTransport;
use stage7_transport::amqp::topology::routing_key;
use stage7_transport::{Message, MessageType};

use super::Options;
use super::broker::{bound_queue, connect, finish, name, raw_properties, raw_publish, url};
use super::harness::{Comparison, Side, compare, service_side};

/// The most messages each sink queue holds.
const SINK_LENGTH: i64 = 10_000;

fn event(recipient: &str) -> Message {
    Message::new(MessageType::StatusUpdate)
        .with_recipient(recipient)
        .with_sender("bench")
        .with_content(serde_json::json!({"status": "running", "progress": 0.42, "step": "publish"}))
}

pub(crate) async fn run(options: &Options) -> Result<Vec<Comparison>, String> {
    let url = url()?;
    let connection = connect(&url, "bench-raw").await?;
    let channel = connection
        .create_channel()
        .await
        .map_err(|e| e.to_string())?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    let (raw_target, our_target) = (name("raw-sink"), name("sink"));
    bound_queue(&channel, &raw_target, Some(SINK_LENGTH)).await?;
    bound_queue(&channel, &our_target, Some(SINK_LENGTH)).await?;

    let compared = compare_all(options, &url, &channel, &raw_target, &our_target).await;
    finish(&connection, &[&raw_target, &our_target]).await;
    compared
}

/// Every comparison of the run, into the sinks `raw_target` and `our_target`.
async fn compare_all(
    options: &Options,
    url: &str,
    channel: &Channel,
    raw_target: &str,
    our_target: &str,
) -> Result<Vec<Comparison>, String> {
    let transport = AmqpTransport::builder(url)
        .connection_name("bench-transport")
        .build()
        .map_err(|e| e.to_string())?;
    transport.connected().await;
    let raw_body = event(raw_target).to_json().map_err(|e| e.to_string())?;
    let raw_key = routing_key(raw_target);

    let mut comparisons = Vec::new();
    for &concurrency in &options.concurrency {
        let sides = vec![
            Side::new("baseline", {
                let (channel, key, body) = (channel.clone(), raw_key.clone(), raw_body.clone());
                move |i| {
                    let (channel, key, body) = (channel.clone(), key.clone(), body.clone());
                    async move {
                        let properties = raw_properties(&i.to_string());
                        let confirm = raw_publish(&channel, &key, &body, properties).await?;
                        match confirm.await.map_err(|e| e.to_string())? {
                            Confirmation::Ack(None) => Ok(()),
                            other => Err(format!("unexpected confirmation {other:?}")),
                        }
                    }
                }
            }),
            service_side("transport", transport.clone(), event(our_target)),
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
    Ok(comparisons)
}
