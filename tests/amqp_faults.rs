//! The AMQP backend while the connection is killed under it: from the
//! broker's side (`rabbitmqctl close_connection`) and on the wire (a proxy
//! that resets connections).

mod support;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use lapin::options::{BasicAckOptions, BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties};
use serde_json::json;
use stage7_transport::amqp::topology::{EXCHANGE, routing_key};
use stage7_transport::amqp::{AmqpTransport, Subscriber};
use stage7_transport::{Error, ErrorKind, Message, MessageType};
use support::proxy::{Mode, Proxy};
use support::{amqp_url, close_connection, eventually, host_port, require_broker, unique};
use tower::ServiceExt;

/// How long a test waits for progress it needs before it fails, rather than
/// hanging.
const LIVENESS: Duration = Duration::from_secs(60);

/// A durable queue, bound to `message.{recipient}`, that records exactly
/// what the broker routed for `recipient`.
async fn tap(channel: &lapin::Channel, recipient: &str) -> String {
    let queue = unique("tap");
    let mut arguments = FieldTable::default();
    arguments.insert("x-expires".into(), AMQPValue::LongLongInt(120_000));
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            arguments,
        )
        .await
        .unwrap();
    channel
        .queue_bind(
            queue.as_str().into(),
            EXCHANGE.into(),
            routing_key(recipient).into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    queue
}

/// Every message id in `queue` and how many times it is there.
async fn drain(channel: &lapin::Channel, queue: &str) -> HashMap<String, usize> {
    let declared = channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let expected = declared.message_count() as usize;
    let mut consumer = channel
        .basic_consume(
            queue.into(),
            unique("drain").as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut seen = HashMap::new();
    for _ in 0..expected {
        let delivery = tokio::time::timeout(
            Duration::from_secs(10),
            std::future::poll_fn(|cx| {
                futures_core::Stream::poll_next(std::pin::Pin::new(&mut consumer), cx)
            }),
        )
        .await
        .expect("the queue drains")
        .expect("consumer open")
        .unwrap();
        let id = delivery
            .properties
            .message_id()
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        *seen.entry(id).or_default() += 1;
        delivery.ack(BasicAckOptions::default()).await.unwrap();
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_close_mid_load_fails_pending_calls_fast_and_recovers() {
    require_broker().await;
    let name = unique("t-forced");
    let transport = AmqpTransport::builder(amqp_url())
        .connection_name(&name)
        .build()
        .unwrap();
    let id = unique("echo");
    let echo = tower::service_fn(|message: Message| async move {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let content = message.content().cloned().unwrap_or_default();
        Ok::<_, Infallible>(Some(message.reply(content)))
    });
    let entity = Subscriber::builder(&transport, &id, "Echo", echo)
        .expires(Duration::from_secs(60))
        .start()
        .unwrap();
    entity.ready().await;
    let (_connection, channel) = support::raw_channel().await;
    let published = tap(&channel, &id).await;

    let succeeded = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (transport, id, succeeded, stop) = (
            transport.clone(),
            id.clone(),
            succeeded.clone(),
            stop.clone(),
        );
        workers.spawn(async move {
            let mut errors = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let call = transport.clone().oneshot(Message::request(&id, json!(1)));
                match tokio::time::timeout(Duration::from_secs(20), call).await {
                    Ok(Ok(_)) => {
                        succeeded.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(Err(error)) => errors.push(error),
                    Err(_) => panic!("a call hung until the test's own timeout"),
                }
            }
            errors
        });
    }
    assert!(
        eventually(LIVENESS, || succeeded.load(Ordering::SeqCst) >= 200).await,
        "calls succeed before the close"
    );
    assert_eq!(
        close_connection(&name),
        1,
        "our connection is found by its name"
    );
    let before = succeeded.load(Ordering::SeqCst);
    assert!(
        eventually(LIVENESS, || succeeded.load(Ordering::SeqCst)
            >= before + 200)
        .await,
        "calls succeed again after the close"
    );
    stop.store(true, Ordering::SeqCst);
    let mut errors: Vec<Error> = Vec::new();
    while let Some(done) = workers.join_next().await {
        errors.extend(done.unwrap());
    }
    assert!(!errors.is_empty(), "the close interrupted calls");
    for error in &errors {
        assert!(
            matches!(
                error.kind(),
                ErrorKind::ConnectionLost | ErrorKind::Unavailable
            ),
            "calls fail at once as lost or not delivered, never by waiting: {error}"
        );
        assert!(!error.is_timeout());
    }
    assert_eq!(transport.pending_replies(), 0);
    assert!(
        entity.is_consuming(),
        "the consumer is back on the new connection"
    );

    let seen = drain(&channel, &published).await;
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "the client never publishes a message twice: {twice:?}"
    );
    assert!(seen.len() >= 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_confirmed_messages_lost_over_a_hundred_faults() {
    require_broker().await;
    let upstream = amqp_url();
    let proxy = Proxy::start(&host_port(&upstream)).await;
    let name = unique("t-zeroloss");
    let transport = AmqpTransport::builder(proxy.amqp_url(&upstream))
        .connection_name(&name)
        .build()
        .unwrap();
    transport.connected().await;
    let connection = Connection::connect(&upstream, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let recipient = unique("ledger");
    let queue = tap(&channel, &recipient).await;

    let confirmed = Arc::new(std::sync::Mutex::new(Vec::new()));
    let unknown = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut publishers = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (transport, recipient) = (transport.clone(), recipient.clone());
        let (confirmed, unknown, refused, stop) = (
            confirmed.clone(),
            unknown.clone(),
            refused.clone(),
            stop.clone(),
        );
        publishers.spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let message = Message::new(MessageType::Statement).with_recipient(&recipient);
                let id = message.id().to_owned();
                match tokio::time::timeout(
                    Duration::from_secs(20),
                    transport.clone().oneshot(message),
                )
                .await
                {
                    Ok(Ok(_)) => confirmed.lock().unwrap().push(id),
                    Ok(Err(error)) if error.is_not_delivered() => {
                        refused.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    Ok(Err(_)) => {
                        unknown.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(_) => panic!("a publish hung"),
                }
            }
        });
    }

    let mut faults = 0;
    let mut round = 0;
    while faults < 110 {
        round += 1;
        let target = confirmed.lock().unwrap().len() + 10;
        assert!(
            eventually(LIVENESS, || confirmed.lock().unwrap().len() >= target).await,
            "publishes are confirmed again after {faults} faults"
        );
        if round % 10 == 0 {
            // Ten confirms just arrived, but a reset may have raced them:
            // closing finds nothing while the transport reconnects.
            faults += close_connection(&name);
        } else {
            proxy.reset();
            faults += 1;
        }
    }
    let target = confirmed.lock().unwrap().len() + 10;
    assert!(
        eventually(LIVENESS, || confirmed.lock().unwrap().len() >= target).await,
        "publishes are confirmed after the last fault"
    );
    stop.store(true, Ordering::SeqCst);
    while publishers.join_next().await.is_some() {}
    proxy.set(Mode::Pass);

    let seen = drain(&channel, &queue).await;
    let confirmed = confirmed.lock().unwrap().clone();
    let lost = confirmed
        .iter()
        .filter(|id| !seen.contains_key(*id))
        .count();
    let duplicated = seen.values().filter(|n| **n > 1).count();
    let unconfirmed = unknown.load(Ordering::SeqCst);
    println!(
        "zero-loss: faults={faults} confirmed={} lost={lost} duplicated={duplicated} unconfirmed={unconfirmed} \
         refused={} stored={}",
        confirmed.len(),
        refused.load(Ordering::SeqCst),
        seen.len()
    );
    assert!(faults >= 100, "{faults} faults injected");
    assert_eq!(lost, 0, "every confirmed message is in the queue");
    assert_eq!(duplicated, 0, "nothing was published twice");
    assert!(
        seen.len() <= confirmed.len() + unconfirmed,
        "only confirmed or unconfirmed messages are stored"
    );
}
