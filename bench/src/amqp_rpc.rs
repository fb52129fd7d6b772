//! `stage7 bench amqp-rpc`: request/reply through RabbitMQ.
//!
//! * `baseline`: bare lapin on both sides — a client publishing persistent,
//!   mandatory requests with `correlation_id`/`reply_to` on a confirm-mode
//!   channel and reading replies from `amq.rabbitmq.reply-to`, and a
//!   responder echoing each request to its `reply_to` and acknowledging it.
//! * `transport`: our [`AmqpTransport`](stage7_transport::amqp::AmqpTransport)
//!   calling an entity served by its
//!   [`Subscriber`](stage7_transport::amqp::Subscriber)
//!   (decode, de-duplication, handler, reply).
//! * `stack`: the full stack over the same transport.
//! * `entity`: [`Entity::call`] from an echo entity to itself: its stack,
//!   its consumer and one connection, as the baseline's client and
//!   responder share one; the call stamped (sender, timestamp) as every
//!   entity's call is. Calls its stack spills to HTTP (AMQP not ready)
//!   still count, and their number is reported.
//!
//! Same broker, same payload, interleaved rounds. The baseline sends the
//! request's bytes encoded once; ours gets a copy of a template message with
//! a fresh id and encodes it, as it must.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lapin::message::Delivery as AmqpDelivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, Consumer};
use stage7_transport::amqp::topology::{REPLY_TO, routing_key};
use stage7_transport::{Config, Entity, Message, Route};
use tokio::sync::oneshot;

use super::Options;
use super::broker::{
    EchoRun, bound_queue, connect, echo_handler, echo_run, finish, name, next, payload,
    raw_properties, raw_publish, url,
};
use super::harness::{Comparison, Side, compare, fresh, service_side};

/// The bare-lapin client: one confirm-mode channel, a reply consumer and a
/// correlation map, nothing else.
#[derive(Clone)]
struct RawClient {
    channel: Channel,
    waiting: Arc<Mutex<HashMap<String, oneshot::Sender<Vec<u8>>>>>,
    next: Arc<AtomicU64>,
}

impl RawClient {
    async fn connect(connection: &Connection) -> Result<Self, String> {
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| e.to_string())?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        let no_ack = BasicConsumeOptions {
            no_ack: true,
            ..BasicConsumeOptions::default()
        };
        let mut replies: Consumer = channel
            .basic_consume(
                REPLY_TO.into(),
                "raw-replies".into(),
                no_ack,
                FieldTable::default(),
            )
            .await
            .map_err(|e| e.to_string())?;
        let waiting: Arc<Mutex<HashMap<String, oneshot::Sender<Vec<u8>>>>> = Arc::default();
        let dispatch = waiting.clone();
        tokio::spawn(async move {
            while let Some(Ok(delivery)) = next(&mut replies).await {
                let AmqpDelivery {
                    properties, data, ..
                } = delivery;
                let waiter = properties
                    .correlation_id()
                    .as_ref()
                    .and_then(|id| dispatch.lock().ok()?.remove(id.as_str()));
                if let Some(waiter) = waiter {
                    let _ = waiter.send(data);
                }
            }
        });
        Ok(Self {
            channel,
            waiting,
            next: Arc::default(),
        })
    }

    async fn call(&self, routing_key: &str, body: &[u8], id: &str) -> Result<(), String> {
        let correlation = self.next.fetch_add(1, Ordering::Relaxed).to_string();
        let (sender, receiver) = oneshot::channel();
        self.waiting
            .lock()
            .map_err(|e| e.to_string())?
            .insert(correlation.clone(), sender);
        let properties = raw_properties(id)
            .with_correlation_id(correlation.into())
            .with_reply_to(REPLY_TO.into());
        let confirm = raw_publish(&self.channel, routing_key, body, properties).await?;
        // Settled in the background, as ours does when the reply comes first:
        // lapin keeps dropped unresolved confirms until the channel closes.
        tokio::spawn(async move {
            let _ = confirm.await;
        });
        receiver.await.map(drop).map_err(|e| e.to_string())
    }
}

/// The bare-lapin responder: echoes every request to its `reply_to`.
async fn raw_responder(connection: &Connection, queue: &str, prefetch: u16) -> Result<(), String> {
    let channel = connection
        .create_channel()
        .await
        .map_err(|e| e.to_string())?;
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    bound_queue(&channel, queue, None).await?;
    let mut requests = channel
        .basic_consume(
            queue.into(),
            "raw-responder".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        while let Some(Ok(delivery)) = next(&mut requests).await {
            let channel = channel.clone();
            tokio::spawn(async move {
                let properties = delivery.properties.clone();
                let (Some(reply_to), Some(correlation)) =
                    (properties.reply_to(), properties.correlation_id())
                else {
                    return;
                };
                let reply = BasicProperties::default()
                    .with_content_type("application/json".into())
                    .with_correlation_id(correlation.clone());
                let _ = channel
                    .basic_publish(
                        "".into(),
                        reply_to.clone(),
                        BasicPublishOptions::default(),
                        &delivery.data,
                        reply,
                    )
                    .await;
                let _ = delivery.ack(BasicAckOptions::default()).await;
            });
        }
    });
    Ok(())
}

pub(crate) async fn run(options: &Options) -> Result<Vec<Comparison>, String> {
    let url = url()?;
    let connection = connect(&url, "bench-raw").await?;
    let raw_queue = name("raw-echo");
    let compared = compare_all(options, &url, &connection, &raw_queue).await;
    finish(&connection, &[&raw_queue]).await;
    compared
}

/// Every comparison of the run; the baseline's responder consumes
/// `raw_queue` on `connection`.
async fn compare_all(
    options: &Options,
    url: &str,
    connection: &Connection,
    raw_queue: &str,
) -> Result<Vec<Comparison>, String> {
    raw_responder(connection, raw_queue, 64).await?;
    let raw = RawClient::connect(connection).await?;

    let EchoRun {
        transport,
        subscriber,
        stack,
        template,
    } = echo_run(url, "bench-transport").await?;
    let caller = Entity::builder("Echo", echo_handler())
        .id(name("bench-entity"))
        .queue_expires(Some(Duration::from_secs(60)))
        .config(Config::from_vars([("RABBITMQ_URL", url)]).map_err(|e| e.to_string())?)
        .start()
        .await
        .map_err(|e| e.to_string())?;
    if !caller.is_consuming() {
        return Err("the benchmark entity did not start consuming".to_owned());
    }
    let to_itself = Message::request(caller.id(), payload());

    let raw_body = template.to_json().map_err(|e| e.to_string())?;
    let raw_key = routing_key(raw_queue);
    // Calls the entity's stack spilled to HTTP while AMQP was not ready (its
    // window full of unconfirmed calls, or the broker blocking): reported,
    // as they did not go over AMQP.
    let over_http = Arc::new(AtomicUsize::new(0));
    let mut comparisons = Vec::new();
    for &concurrency in &options.concurrency {
        let sides = vec![
            Side::new("baseline", {
                let (raw, key, body) = (raw.clone(), raw_key.clone(), raw_body.clone());
                move |i| {
                    let (raw, key, body) = (raw.clone(), key.clone(), body.clone());
                    async move { raw.call(&key, &body, &i.to_string()).await }
                }
            }),
            service_side("transport", transport.clone(), template.clone()),
            service_side("stack", stack.clone(), template.clone()),
            Side::new("entity", {
                let (caller, template) = (caller.clone(), to_itself.clone());
                let over_http = over_http.clone();
                move |_| {
                    let (caller, message) = (caller.clone(), fresh(&template));
                    let over_http = over_http.clone();
                    async move {
                        let delivery = caller.call(message).await.map_err(|e| e.to_string())?;
                        if delivery.reply().is_none() {
                            return Err(format!("no reply over {}", delivery.route()));
                        }
                        if delivery.route() == Route::Http {
                            over_http.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(())
                    }
                }
            }),
        ];
        let mut comparison =
            compare("amqp-rpc", options.n, concurrency, options.rounds, sides).await?;
        let spilled = over_http.swap(0, Ordering::Relaxed);
        if spilled > 0 {
            comparison.notes.push(format!(
                "{spilled} entity calls (warm-up included) went over HTTP: AMQP was not ready \
                 (window full of unconfirmed calls, or the broker blocking) and the stack \
                 spilled them to the fallback"
            ));
        }
        comparisons.push(comparison);
    }
    caller.shutdown().await.map_err(|e| e.to_string())?;
    subscriber.shutdown(Duration::from_secs(1)).await;
    Ok(comparisons)
}
