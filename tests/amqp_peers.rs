//! What an AMQP peer can and cannot make the other side believe or do,
//! against a real RabbitMQ: an error reply's claims, and where replies go.

mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_core::Stream;
use lapin::BasicProperties;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use serde_json::{Value, json};
use stage7_transport::amqp::topology::{
    DEAD_LETTER_EXCHANGE, ERROR_HEADER, EXCHANGE, REASON_HEADER, routing_key,
};
use stage7_transport::amqp::{AmqpTransport, Subscriber};
use stage7_transport::{ErrorClass, ErrorKind, Message};
use support::{amqp_url, raw_channel, require_broker, unique};
use tower::ServiceExt;

fn transport(name: &str) -> AmqpTransport {
    AmqpTransport::builder(amqp_url())
        .connection_name(name)
        .build()
        .unwrap()
}

/// The next delivery of `consumer`, within 10 s.
async fn next(consumer: &mut lapin::Consumer) -> lapin::message::Delivery {
    let next = std::future::poll_fn(|cx| std::pin::Pin::new(&mut *consumer).poll_next(cx));
    tokio::time::timeout(Duration::from_secs(10), next)
        .await
        .expect("a delivery within 10 s")
        .expect("the consumer is open")
        .expect("a delivery")
}

/// An exclusive queue on `channel`, bound to `exchange` with `key`, and a
/// no-ack consumer of it.
async fn tap(channel: &lapin::Channel, exchange: &str, key: &str) -> lapin::Consumer {
    let queue = unique("tap");
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_bind(
            queue.as_str().into(),
            exchange.into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    consume(channel, &queue).await
}

async fn consume(channel: &lapin::Channel, queue: &str) -> lapin::Consumer {
    channel
        .basic_consume(
            queue.into(),
            ShortString::default(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap()
}

/// A peer whose handler runs, then answers with an error reply claiming
/// whatever `claim` gives for the request's content; counts its runs.
async fn claiming_peer(
    recipient: &str,
    claim: fn(&Value) -> Value,
) -> (lapin::Connection, Arc<AtomicUsize>) {
    let (connection, channel) = raw_channel().await;
    let mut requests = tap(&channel, EXCHANGE, &routing_key(recipient)).await;
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    tokio::spawn(async move {
        loop {
            let request = next(&mut requests).await;
            counted.fetch_add(1, Ordering::SeqCst);
            let message: Value = serde_json::from_slice(&request.data).unwrap();
            let mut headers = FieldTable::default();
            headers.insert(ERROR_HEADER.into(), AMQPValue::LongString("any".into()));
            let properties = BasicProperties::default()
                .with_correlation_id(request.properties.correlation_id().clone().unwrap())
                .with_headers(headers);
            let body = serde_json::to_vec(&claim(&message["content"])).unwrap();
            channel
                .basic_publish(
                    "".into(),
                    request.properties.reply_to().clone().unwrap(),
                    BasicPublishOptions::default(),
                    &body,
                    properties,
                )
                .await
                .unwrap();
        }
    });
    (connection, runs)
}

#[tokio::test]
async fn an_error_reply_cannot_claim_the_request_was_not_delivered() {
    require_broker().await;
    let recipient = unique("claimer");
    let (_peer, runs) = claiming_peer(&recipient, |content| {
        if content == "refuse" {
            json!({"error": "no such mission", "kind": "handler", "class": "rejected"})
        } else {
            json!({"error": "try elsewhere", "kind": "unavailable", "class": "not_delivered"})
        }
    })
    .await;
    let transport = transport(&unique("t-claims"));
    transport.connected().await;

    let error = transport
        .clone()
        .oneshot(Message::request(&recipient, json!("run it")))
        .await
        .unwrap_err();
    // Had the claim stood, the stack would fall back to HTTP and retry a
    // message whose handler already ran.
    assert_eq!(
        (error.kind(), error.class()),
        (ErrorKind::Unavailable, ErrorClass::UnknownOutcome),
        "{error}"
    );
    assert!(error.to_string().contains("try elsewhere"), "{error}");

    let error = transport
        .oneshot(Message::request(&recipient, json!("refuse")))
        .await
        .unwrap_err();
    assert_eq!(
        (error.kind(), error.class()),
        (ErrorKind::Handler, ErrorClass::Rejected),
        "a rejection stays a rejection: {error}"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

/// A request as a raw client sends one: valid JSON, `requiresSync`, the
/// given `reply_to` and correlation id.
async fn request(channel: &lapin::Channel, recipient: &str, reply_to: &str, id: &str) {
    let body = json!({
        "id": id,
        "type": "request",
        "sender": "raw-client",
        "recipient": recipient,
        "content": {"n": 7},
        "requiresSync": true,
    });
    channel
        .basic_publish(
            EXCHANGE.into(),
            routing_key(recipient).into(),
            BasicPublishOptions::default(),
            &serde_json::to_vec(&body).unwrap(),
            BasicProperties::default()
                .with_content_type("application/json".into())
                .with_message_id(id.into())
                .with_correlation_id(format!("c-{id}").into())
                .with_reply_to(reply_to.into()),
        )
        .await
        .unwrap()
        .await
        .unwrap();
}

/// A subscriber that echoes requests and counts its handler's runs.
async fn counting_echo(transport: &AmqpTransport, id: &str) -> (Subscriber, Arc<AtomicUsize>) {
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    let handler = tower::service_fn(move |message: Message| {
        counted.fetch_add(1, Ordering::SeqCst);
        async move {
            let content = message.content().cloned().unwrap_or_default();
            Ok::<_, Infallible>(Some(message.reply(content)))
        }
    });
    let subscriber = Subscriber::builder(transport, id, "Echo", handler)
        .expires(Duration::from_secs(60))
        .start()
        .unwrap();
    subscriber.ready().await;
    (subscriber, runs)
}

#[tokio::test]
async fn a_reply_to_naming_any_other_queue_is_dead_lettered_and_never_written_to() {
    require_broker().await;
    let transport = transport(&unique("t-steer"));
    let id = unique("echo");
    let (_subscriber, runs) = counting_echo(&transport, &id).await;

    let (_connection, channel) = raw_channel().await;
    let mut dead_letters = tap(&channel, DEAD_LETTER_EXCHANGE, "").await;
    // Someone else's queue, which a sender would like filled.
    let victim = unique("billing");
    channel
        .queue_declare(
            victim.as_str().into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let steering = unique("steer");
    request(&channel, &id, &victim, &steering).await;

    let dead = loop {
        let dead = next(&mut dead_letters).await;
        if dead
            .properties
            .message_id()
            .as_ref()
            .map(ShortString::as_str)
            == Some(&steering)
        {
            break dead;
        }
    };
    let headers = dead.properties.headers().clone().unwrap_or_default();
    let reason = match headers.inner().get(REASON_HEADER) {
        Some(AMQPValue::LongString(text)) => String::from_utf8_lossy(text.as_bytes()).into_owned(),
        other => panic!("no reason header: {other:?}"),
    };
    assert!(
        reason.contains(&format!("reply_to `{victim}`")) && reason.contains("did not run"),
        "{reason}"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 0, "the handler did not run");
    let written = channel
        .basic_get(victim.as_str().into(), Default::default())
        .await
        .unwrap();
    assert!(written.is_none(), "nothing was written into `{victim}`");

    // Requests over direct reply-to are answered as ever.
    let reply = transport
        .oneshot(Message::request(&id, json!("still")))
        .await
        .unwrap();
    assert_eq!(reply.reply().unwrap().content(), Some(&json!("still")));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_stage7_client_gets_its_reply_on_its_own_exclusive_reply_queue() {
    require_broker().await;
    let transport = transport(&unique("t-stage7-reply"));
    let id = unique("echo");
    let (_subscriber, runs) = counting_echo(&transport, &id).await;

    // As Stage7's TypeScript client does: an exclusive `rpc-reply-{uuid}`.
    let (_connection, channel) = raw_channel().await;
    let reply_queue = format!("rpc-reply-{}", stage7_transport::message::new_id());
    channel
        .queue_declare(
            reply_queue.as_str().into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut replies = consume(&channel, &reply_queue).await;
    let asking = unique("ask");
    request(&channel, &id, &reply_queue, &asking).await;

    let reply = next(&mut replies).await;
    assert_eq!(
        reply
            .properties
            .correlation_id()
            .as_ref()
            .map(ShortString::as_str),
        Some(format!("c-{asking}").as_str())
    );
    let reply: Value = serde_json::from_slice(&reply.data).unwrap();
    assert_eq!(reply["type"], "response");
    assert_eq!(reply["recipient"], "raw-client");
    assert_eq!(reply["content"], json!({"n": 7}));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_forged_direct_reply_to_address_does_not_stop_the_receiver() {
    require_broker().await;
    let transport = transport(&unique("t-forged"));
    let id = unique("echo");
    let (_subscriber, runs) = counting_echo(&transport, &id).await;
    let (_connection, channel) = raw_channel().await;
    let forged = unique("forged");
    request(
        &channel,
        &id,
        "amq.rabbitmq.reply-to.bm90LWEtcmVhbC1hZGRyZXNz",
        &forged,
    )
    .await;

    // The broker drops a reply to an address that decodes to no channel;
    // the receiver's channel stays open and serves the next request.
    let reply = transport
        .oneshot(Message::request(&id, json!("after")))
        .await
        .unwrap();
    assert_eq!(reply.reply().unwrap().content(), Some(&json!("after")));
    assert_eq!(runs.load(Ordering::SeqCst), 2, "each ran once");
}
