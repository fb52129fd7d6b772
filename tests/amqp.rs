//! The AMQP backend against a real RabbitMQ.

mod support;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use lapin::BasicProperties;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use serde_json::json;
use stage7_transport::amqp::topology::{
    DEAD_LETTER_EXCHANGE, ERROR_HEADER, EXCHANGE, REASON_HEADER, REPLY_TO, queue_name, routing_key,
};
use stage7_transport::amqp::{AmqpTransport, Subscriber};
use stage7_transport::defaults;
use stage7_transport::layer::retry::RetryPolicy;
use stage7_transport::{
    BranchBuilder, Codec, Error, ErrorClass, ErrorKind, Message, MessageType, Route, Stack,
};
use support::{
    amqp_url, dead_letter, dead_letter_tap, drain, eventually, idle, queue_counts_reach,
    raw_channel, require_broker, tap, unique,
};
use tokio::sync::mpsc;
use tower::ServiceExt;

fn transport(name: &str) -> AmqpTransport {
    AmqpTransport::builder(amqp_url())
        .connection_name(name)
        .build()
        .unwrap()
}

/// An entity that echoes the content of requests and reports every message
/// it handles on `seen`.
async fn echo_entity(
    transport: &AmqpTransport,
    id: &str,
    seen: mpsc::UnboundedSender<Message>,
) -> Subscriber {
    let handler = tower::service_fn(move |message: Message| {
        let _ = seen.send(message.clone());
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
    subscriber
}

#[tokio::test]
async fn async_send_arrives_once() {
    require_broker().await;
    let transport = transport(&unique("t-send"));
    let id = unique("echo");
    let (seen, mut received) = mpsc::unbounded_channel();
    let entity = echo_entity(&transport, &id, seen).await;
    let (_connection, channel) = raw_channel().await;
    let routed = tap(&channel, &id).await;

    let event = Message::new(MessageType::Statement)
        .with_recipient(&id)
        .with_content(json!("hello"));
    let delivery = transport.clone().oneshot(event.clone()).await.unwrap();
    assert_eq!(delivery.route(), Route::Amqp);
    assert!(delivery.reply().is_none());

    let arrived = received.recv().await.unwrap();
    assert_eq!(arrived.id(), event.id());
    assert_eq!(arrived.content(), Some(&json!("hello")));
    // Below the entity's de-duplication, which would hide a second copy:
    // the tap, bound as the entity's queue is, holds one copy per publish,
    // and the entity's queue ends with nothing ready or unacknowledged, so
    // no copy waits for redelivery.
    assert_eq!(
        drain(&channel, &routed).await,
        HashMap::from([(event.id().to_owned(), 1)]),
        "copies the broker routed"
    );
    assert_eq!(queue_counts_reach(entity.queue(), (0, 0)).await, (0, 0));
    assert!(received.try_recv().is_err());
}

#[tokio::test]
async fn rpc_returns_the_reply() {
    require_broker().await;
    let transport = transport(&unique("t-rpc"));
    let id = unique("echo");
    let (seen, _received) = mpsc::unbounded_channel();
    let _entity = echo_entity(&transport, &id, seen).await;

    let request = Message::request(&id, json!({"question": 6 * 7})).with_sender("tester");
    let delivery = transport.clone().oneshot(request).await.unwrap();
    assert_eq!(delivery.route(), Route::Amqp);
    let reply = delivery.reply().unwrap();
    assert_eq!(reply.content(), Some(&json!({"question": 42})));
    assert_eq!(reply.recipient(), Some("tester"));
    assert_eq!(transport.pending_replies(), 0);
}

#[tokio::test]
async fn a_thousand_concurrent_rpcs_are_all_answered() {
    require_broker().await;
    let transport = transport(&unique("t-rpc1000"));
    let id = unique("echo");
    let (seen, _received) = mpsc::unbounded_channel();
    let _entity = echo_entity(&transport, &id, seen).await;

    let mut calls = tokio::task::JoinSet::new();
    for n in 0..1000 {
        let transport = transport.clone();
        let id = id.clone();
        calls.spawn(async move {
            let delivery = transport.oneshot(Message::request(&id, json!(n))).await?;
            Ok::<_, Error>((n, delivery.into_reply().and_then(|r| r.content().cloned())))
        });
    }
    let mut answered = 0;
    while let Some(done) = calls.join_next().await {
        let (n, content) = done.unwrap().unwrap();
        assert_eq!(content, Some(json!(n)));
        answered += 1;
    }
    assert_eq!(answered, 1000);
    assert_eq!(
        transport.pending_replies(),
        0,
        "the correlation map is empty afterwards"
    );
}

#[tokio::test]
async fn unroutable_recipient_is_not_delivered() {
    require_broker().await;
    let transport = transport(&unique("t-noroute"));
    transport.connected().await;
    let nobody = unique("nobody");
    for sync in [false, true] {
        let message = Message::new(MessageType::Request)
            .with_recipient(&nobody)
            .with_sync(sync);
        let error = transport.clone().oneshot(message).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::NoRoute, "{error}");
        assert_eq!(error.class(), ErrorClass::NotDelivered);
        assert_eq!(error.route(), Some(Route::Amqp));
        assert!(error.to_string().contains(&nobody), "{error}");
    }
    assert_eq!(transport.pending_replies(), 0);
}

#[tokio::test]
async fn oversize_message_is_refused_before_publish() {
    require_broker().await;
    let transport = AmqpTransport::builder(amqp_url())
        .connection_name(unique("t-size"))
        .codec(Codec::new(1024))
        .build()
        .unwrap();
    transport.connected().await;
    let big = Message::request(unique("anyone"), json!("x".repeat(4096)));
    let error = transport.oneshot(big).await.unwrap_err();
    assert!(error.is_too_large(), "{error}");
    assert!(error.is_rejected());
}

#[tokio::test]
async fn a_reply_too_large_to_send_is_a_rejection_for_the_caller() {
    require_broker().await;
    let receiver = AmqpTransport::builder(amqp_url())
        .connection_name(unique("t-big-reply"))
        .codec(Codec::new(1024))
        .build()
        .unwrap();
    let id = unique("verbose");
    let handler = tower::service_fn(|message: Message| async move {
        Ok::<_, Infallible>(Some(message.reply(json!("x".repeat(4096)))))
    });
    let subscriber = Subscriber::builder(&receiver, &id, "Verbose", handler)
        .expires(Duration::from_secs(60))
        .start()
        .unwrap();
    subscriber.ready().await;

    let caller = transport(&unique("t-big-reply-caller"));
    caller.connected().await;
    let error = caller
        .oneshot(Message::request(&id, json!("tell me everything")))
        .await
        .unwrap_err();
    assert_eq!(
        (error.kind(), error.class()),
        (ErrorKind::TooLarge, ErrorClass::Rejected),
        "{error}"
    );
    assert!(
        error
            .detail()
            .contains("the handler's reply cannot be sent"),
        "{error}"
    );
}

#[tokio::test]
async fn first_attempt_says_whether_the_broker_answered() {
    require_broker().await;
    let up = transport(&unique("t-first"));
    let down = AmqpTransport::builder("amqp://guest:guest@127.0.0.1:1/%2f")
        .connection_name(unique("t-first-down"))
        .build()
        .unwrap();
    let limit = Duration::from_secs(30);
    assert!(
        tokio::time::timeout(limit, up.first_attempt())
            .await
            .unwrap()
    );
    assert!(
        !tokio::time::timeout(limit, down.first_attempt())
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn missing_broker_at_start_fails_fast_as_not_delivered() {
    let transport = AmqpTransport::builder("amqp://guest:guest@127.0.0.1:1/%2f")
        .connection_name(unique("t-nobroker"))
        .build()
        .unwrap();
    let error = transport
        .oneshot(Message::request("anyone", json!(1)))
        .await
        .unwrap_err();
    assert!(error.is_not_delivered(), "{error}");
    assert_eq!(error.kind(), ErrorKind::Unavailable);
}

/// Publishes raw bodies to an entity, as a misbehaving peer would.
async fn publish_raw(
    channel: &lapin::Channel,
    recipient: &str,
    body: &[u8],
    properties: BasicProperties,
) {
    channel
        .basic_publish(
            EXCHANGE.into(),
            routing_key(recipient).into(),
            BasicPublishOptions::default(),
            body,
            properties,
        )
        .await
        .unwrap()
        .await
        .unwrap();
}

#[tokio::test]
async fn poison_messages_are_dead_lettered_with_a_reason_and_the_consumer_keeps_serving() {
    require_broker().await;
    let transport = transport(&unique("t-poison"));
    let id = unique("echo");
    let failing = tower::service_fn(|message: Message| async move {
        if message.content() == Some(&json!("fail")) {
            Err("the handler refuses this one")
        } else {
            let content = message.content().cloned().unwrap_or_default();
            Ok(Some(message.reply(content)))
        }
    });
    let _entity = Subscriber::builder(&transport, &id, "Echo", failing)
        .expires(Duration::from_secs(60))
        .start()
        .unwrap();
    _entity.ready().await;

    let (_connection, channel) = raw_channel().await;
    let tap = unique("dead-letter-tap");
    channel
        .queue_declare(
            tap.as_str().into(),
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
            tap.as_str().into(),
            DEAD_LETTER_EXCHANGE.into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();

    let json = BasicProperties::default().with_content_type("application/json".into());
    publish_raw(
        &channel,
        &id,
        b"{not json",
        json.clone().with_message_id("p1".into()),
    )
    .await;
    publish_raw(
        &channel,
        &id,
        br#"{"type":"statement","sender":7}"#,
        json.clone().with_message_id("p2".into()),
    )
    .await;
    publish_raw(
        &channel,
        &id,
        br#"[1,2,3]"#,
        json.clone().with_message_id("p3".into()),
    )
    .await;
    let fail = Message::new(MessageType::Statement)
        .with_recipient(&id)
        .with_content(json!("fail"));
    transport.clone().oneshot(fail.clone()).await.unwrap();
    publish_raw(
        &channel,
        &id,
        br#"{"type":"statement","sender":"s"}"#,
        BasicProperties::default()
            .with_content_type("text/plain".into())
            .with_message_id("p5".into()),
    )
    .await;

    let mut reasons = HashMap::new();
    while reasons.len() < 5 {
        let got = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Some(message) = channel
                    .basic_get(tap.as_str().into(), Default::default())
                    .await
                    .unwrap()
                {
                    break message;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("the dead letters arrive");
        let headers = got
            .delivery
            .properties
            .headers()
            .clone()
            .unwrap_or_default();
        let reason = match headers.inner().get(REASON_HEADER) {
            Some(AMQPValue::LongString(text)) => {
                String::from_utf8_lossy(text.as_bytes()).into_owned()
            }
            other => panic!("no reason header: {other:?}"),
        };
        let key = got
            .delivery
            .properties
            .message_id()
            .as_ref()
            .map(|id| id.to_string())
            .unwrap_or_default();
        reasons.insert(key, reason);
    }
    assert!(reasons["p1"].contains("malformed JSON"), "{reasons:?}");
    assert!(reasons["p2"].contains("field `sender`"), "{reasons:?}");
    assert!(reasons["p3"].contains("invalid message"), "{reasons:?}");
    assert!(
        reasons[fail.id()].contains("the handler refuses this one"),
        "{reasons:?}"
    );
    assert!(reasons["p5"].contains("text/plain"), "{reasons:?}");

    let reply = transport
        .oneshot(Message::request(&id, json!("still here")))
        .await
        .unwrap();
    assert_eq!(reply.reply().unwrap().content(), Some(&json!("still here")));
}

/// Acknowledgements are gathered into `multiple` acks, yet a handler that
/// takes its time holds back no other delivery: the rest are acknowledged,
/// so the consumer goes on past its prefetch, with a dead letter among
/// them, and the broker never closes the channel over a tag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_handler_holds_back_no_other_acknowledgement() {
    require_broker().await;
    let logs = support::logs();
    let mark = logs.mark();
    let transport = transport(&unique("t-acks"));
    let id = unique("acks");
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let handled = Arc::new(AtomicUsize::new(0));
    let handler = {
        let (gate, handled) = (gate.clone(), handled.clone());
        tower::service_fn(move |message: Message| {
            let (gate, handled) = (gate.clone(), handled.clone());
            async move {
                if message.content() == Some(&json!("slow")) {
                    gate.acquire().await.map(|permit| permit.forget())?;
                }
                handled.fetch_add(1, Ordering::SeqCst);
                Ok::<_, tokio::sync::AcquireError>(None)
            }
        })
    };
    let subscription = Subscriber::builder(&transport, &id, "Acks", handler)
        .prefetch(8)
        .expires(Duration::from_secs(60));
    let subscriber = subscription.start().unwrap();
    subscriber.ready().await;
    let queue = subscriber.queue().to_owned();
    let statement = |content| {
        Message::new(MessageType::Statement)
            .with_recipient(&id)
            .with_content(content)
    };
    let (_connection, channel) = raw_channel().await;
    let poison = BasicProperties::default().with_content_type("application/json".into());

    // Before the slow one, deliveries settle in runs that `multiple` acks
    // cover; after it, above the gap, they are acked one by one.
    for i in 0..120 {
        let content = if i == 20 { json!("slow") } else { json!(i) };
        transport.clone().oneshot(statement(content)).await.unwrap();
        if i == 70 {
            publish_raw(&channel, &id, b"{not json", poison.clone()).await;
        }
    }
    let past_prefetch = eventually(Duration::from_secs(20), || {
        handled.load(Ordering::SeqCst) == 119
    })
    .await;
    assert!(
        past_prefetch,
        "only {} of 119 handled: acknowledgements wait behind the slow handler",
        handled.load(Ordering::SeqCst)
    );
    assert_eq!(
        queue_counts_reach(&queue, (0, 1)).await,
        (0, 1),
        "(ready, unacknowledged): only the slow one is held"
    );
    gate.add_permits(1);
    assert_eq!(
        queue_counts_reach(&queue, (0, 0)).await,
        (0, 0),
        "(ready, unacknowledged) once the slow one ends"
    );
    assert_eq!(handled.load(Ordering::SeqCst), 120);

    let logged = logs.since(mark);
    let armed = logged
        .lines()
        .filter(|line| line.contains("consuming") && line.contains(&queue))
        .count();
    assert_eq!(armed, 1, "the consumer was set up again:\n{logged}");
    assert!(!logged.contains("unknown delivery tag"), "{logged}");
}

#[tokio::test]
async fn a_handler_error_comes_back_to_the_caller_as_rejected() {
    require_broker().await;
    let transport = transport(&unique("t-herr"));
    let id = unique("grumpy");
    let grumpy =
        tower::service_fn(|_: Message| async { Err::<Option<Message>, _>("no such mission") });
    let entity = Subscriber::builder(&transport, &id, "Grumpy", grumpy)
        .expires(Duration::from_secs(60))
        .start()
        .unwrap();
    entity.ready().await;
    let error = transport
        .oneshot(Message::request(&id, json!({})))
        .await
        .unwrap_err();
    assert!(error.is_rejected(), "{error}");
    assert_eq!(error.kind(), ErrorKind::Handler);
    assert!(error.to_string().contains("no such mission"), "{error}");
}

#[tokio::test]
async fn a_duplicate_id_runs_the_handler_once() {
    require_broker().await;
    let transport = transport(&unique("t-dup"));
    let id = unique("counter");
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    let counter = tower::service_fn(move |message: Message| {
        counted.fetch_add(1, Ordering::SeqCst);
        async move { Ok::<_, Infallible>(Some(message.reply(json!("done")))) }
    });
    let entity = Subscriber::builder(&transport, &id, "Counter", counter)
        .expires(Duration::from_secs(60))
        .start()
        .unwrap();
    entity.ready().await;

    let event = Message::new(MessageType::Statement).with_recipient(&id);
    transport.clone().oneshot(event.clone()).await.unwrap();
    transport.clone().oneshot(event.clone()).await.unwrap();
    let request = Message::request(&id, json!(1));
    let first = transport.clone().oneshot(request.clone()).await.unwrap();
    let second = transport.clone().oneshot(request.clone()).await.unwrap();
    assert_eq!(
        first.reply(),
        second.reply(),
        "the repeat gets the remembered reply"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 2, "one run per distinct id");
}

#[tokio::test]
async fn credentials_never_appear_in_logs_or_debug() {
    require_broker().await;
    let logs = support::logs();
    let mark = logs.mark();
    let secret_url = "amqp://guest:hunter2-not-real@127.0.0.1:1/%2f";
    let connection = unique("t-secret");
    let unreachable = AmqpTransport::builder(secret_url)
        .connection_name(&connection)
        .build()
        .unwrap();
    let _ = unreachable
        .clone()
        .oneshot(Message::request("x", json!(1)))
        .await;
    // The failed attempt is logged before it counts as ended.
    let connected = tokio::time::timeout(Duration::from_secs(30), unreachable.first_attempt())
        .await
        .expect("the first connection attempt ends");
    assert!(!connected);
    assert!(!format!("{unreachable:?}").contains("hunter2"));
    let real = transport(&unique("t-secret-ok"));
    real.connected().await;
    let name = format!("{real:?}");
    assert!(!name.contains("guest:guest"), "{name}");
    let text = logs.since(mark);
    assert!(
        text.contains("cannot connect to RabbitMQ"),
        "the failure is logged: {text}"
    );
    // Other tests in this binary log too: the line must be this
    // transport's, and name the broker with its password hidden.
    assert!(
        text.lines()
            .any(|line| line.contains("cannot connect to RabbitMQ")
                && line.contains(&connection)
                && line.contains("guest:***@127.0.0.1:1/")),
        "the failure is logged with the connection's name and the redacted URL: {text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
    assert!(!text.contains("guest:guest"), "{text}");
}

#[tokio::test]
async fn fields_too_long_for_amqp_are_refused_not_panicked_on() {
    require_broker().await;
    let transport = transport(&unique("t-long"));
    transport.connected().await;
    for message in [
        Message::request("x".repeat(300), json!(1)),
        Message::request("brain", json!(1)).with_id("i".repeat(300)),
        Message::new(MessageType::Statement)
            .with_recipient("brain")
            .with_sender("s".repeat(300)),
    ] {
        let error = transport.clone().oneshot(message).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidMessage, "{error}");
        assert!(
            error.to_string().contains("cannot travel over AMQP"),
            "{error}"
        );
    }
    let error = Subscriber::builder(&transport, "e".repeat(300), "Echo", idle())
        .start()
        .unwrap_err();
    assert!(error.is_config(), "{error}");
}

#[tokio::test]
async fn a_dropped_subscriber_keeps_consuming() {
    require_broker().await;
    let transport = transport(&unique("t-drop"));
    let id = unique("echo");
    let (seen, mut received) = mpsc::unbounded_channel();
    drop(echo_entity(&transport, &id, seen).await);
    let reply = transport
        .clone()
        .oneshot(Message::request(&id, json!("still")))
        .await
        .unwrap();
    assert_eq!(reply.reply().unwrap().content(), Some(&json!("still")));
    assert!(received.recv().await.is_some());
}

#[tokio::test]
async fn a_work_queue_shares_the_types_messages_between_instances() {
    require_broker().await;
    let transport = transport(&unique("t-work"));
    let kind = unique("Pool");
    let (seen, mut received) = mpsc::unbounded_channel();
    let mut instances = Vec::new();
    for instance in 0..2 {
        let seen = seen.clone();
        let handler = tower::service_fn(move |message: Message| {
            let _ = seen.send((instance, message.id().to_owned()));
            async { Ok::<_, Infallible>(None) }
        });
        let subscriber = Subscriber::builder(&transport, unique("pool"), &kind, handler)
            .work_queue(true)
            .expires(Duration::from_secs(60))
            .start()
            .unwrap();
        subscriber.ready().await;
        instances.push(subscriber);
    }

    let sent = 40;
    for n in 0..sent {
        let event = Message::new(MessageType::Statement)
            .with_recipient(&kind)
            .with_content(json!(n));
        transport.clone().oneshot(event).await.unwrap();
    }
    let mut runs: HashMap<String, usize> = HashMap::new();
    let mut by_instance = [0; 2];
    while runs.len() < sent {
        let (instance, id) = tokio::time::timeout(Duration::from_secs(30), received.recv())
            .await
            .expect("every message reaches an instance")
            .unwrap();
        *runs.entry(id).or_default() += 1;
        by_instance[instance] += 1;
    }
    // A copy per instance, had the type also been bound to their own
    // queues, would be in one of them: once every queue is empty and
    // nothing is unacknowledged, every copy has been handled (a handler
    // reports before its message is acknowledged).
    let queues = instances
        .iter()
        .map(|subscriber| subscriber.queue().to_owned())
        .chain([kind.to_lowercase()]);
    for queue in queues {
        assert_eq!(queue_counts_reach(&queue, (0, 0)).await, (0, 0), "{queue}");
    }
    while let Ok((instance, id)) = received.try_recv() {
        *runs.entry(id).or_default() += 1;
        by_instance[instance] += 1;
    }
    assert!(
        runs.values().all(|&n| n == 1),
        "each handled once: {runs:?}"
    );
    assert!(by_instance.iter().all(|&n| n > 0), "{by_instance:?}");

    let own_queue = instances[0].queue().to_owned();
    for subscriber in instances {
        subscriber.shutdown(Duration::from_secs(5)).await;
    }
    let bound = Some(stage7_transport::defaults::AMQP_QUEUE_MAX_LENGTH);
    support::declared_with(&own_queue, Some(60_000), bound)
        .await
        .expect("the own queue has the expiry asked for");
    let shared = support::millis(stage7_transport::defaults::AMQP_QUEUE_EXPIRY);
    support::declared_with(&kind.to_lowercase(), Some(shared), bound)
        .await
        .expect("the shared work queue expires days after its last consumer");
}

#[tokio::test]
async fn an_expiry_rabbitmq_would_refuse_is_a_configuration_error() {
    // Checked before anything reaches a broker: none is needed, and none is
    // left with a queue that lives for weeks.
    let transport = AmqpTransport::builder("amqp://guest:guest@127.0.0.1:1/%2f")
        .connection_name(unique("t-expiry"))
        .build()
        .unwrap();
    for expiry in [
        Duration::ZERO,
        Duration::from_micros(500),
        Duration::from_secs(50 * 86_400),
    ] {
        let refused = Subscriber::builder(&transport, unique("idle"), "Idle", idle())
            .expires(expiry)
            .start()
            .unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::Config, "{refused}");
        assert!(
            refused.to_string().contains("1 ms to 2^32 - 1 ms"),
            "{refused}"
        );
    }
    for expiry in [
        Duration::from_millis(1),
        Duration::from_millis(u64::from(u32::MAX)),
    ] {
        let accepted = Subscriber::builder(&transport, unique("idle"), "Idle", idle())
            .expires(expiry)
            .start();
        let subscriber = accepted.unwrap_or_else(|e| panic!("{expiry:?}: {e}"));
        subscriber.shutdown(Duration::ZERO).await;
    }
}

/// A field of the first `x-death` entry the broker adds to a dead letter.
fn x_death(headers: &FieldTable, field: &str) -> Option<String> {
    let Some(AMQPValue::FieldArray(deaths)) = headers.inner().get("x-death") else {
        return None;
    };
    let Some(AMQPValue::FieldTable(death)) = deaths.as_slice().first() else {
        return None;
    };
    match death.inner().get(field)? {
        AMQPValue::LongString(text) => Some(String::from_utf8_lossy(text.as_bytes()).into_owned()),
        AMQPValue::ShortString(text) => Some(text.to_string()),
        other => Some(format!("{other:?}")),
    }
}

/// A handler that records the id of every message it runs and answers
/// requests with their content.
fn recording(ran: mpsc::UnboundedSender<String>) -> impl stage7_transport::Handler {
    tower::service_fn(move |message: Message| {
        let _ = ran.send(message.id().to_owned());
        async move {
            let content = message.content().cloned().unwrap_or_default();
            Ok::<_, Infallible>(Some(message.reply(content)))
        }
    })
}

/// A request's expiration is the time left before its deadline: one that
/// waits past it in a queue nobody consumes is dead-lettered by the broker
/// and never handled, however late a consumer comes.
#[tokio::test]
async fn a_request_that_outlives_its_deadline_in_a_queue_is_dead_lettered_never_handled() {
    require_broker().await;
    let id = unique("late");
    let queue = queue_name("Late", &id);
    support::declare_queue(&queue, Some(60_000), Some(defaults::AMQP_QUEUE_MAX_LENGTH))
        .await
        .unwrap();
    let (_connection, channel) = raw_channel().await;
    channel
        .queue_bind(
            queue.as_str().into(),
            EXCHANGE.into(),
            routing_key(&id).into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let dead = dead_letter_tap(&channel).await;
    let transport = transport(&unique("t-expire"));
    transport.connected().await;
    let stack = Stack::builder(transport.clone())
        .primary_branch(BranchBuilder::new(Route::Amqp))
        .deadline(Duration::from_millis(300))
        .retry(RetryPolicy::builder().max_retries(0))
        .build()
        .unwrap();

    let request = Message::request(&id, json!("too late"));
    let error = stack.oneshot(request.clone()).await.unwrap_err();
    assert_eq!(error.class(), ErrorClass::UnknownOutcome, "{error}");
    let (_, headers) = dead_letter(&channel, &dead, request.id()).await;
    assert_eq!(x_death(&headers, "reason").as_deref(), Some("expired"));
    assert_eq!(x_death(&headers, "queue"), Some(queue.clone()));
    let expiration: u64 = x_death(&headers, "original-expiration")
        .and_then(|ms| ms.parse().ok())
        .expect("the request carried an expiration");
    assert!(
        (1..=300).contains(&expiration),
        "the expiration is the time left of the 300 ms deadline: {expiration} ms"
    );

    let (ran, mut handled) = mpsc::unbounded_channel();
    let subscriber = Subscriber::builder(&transport, &id, "Late", recording(ran))
        .expires(Duration::from_secs(60))
        .start()
        .unwrap();
    subscriber.ready().await;
    let marker = Message::request(&id, json!("on time"));
    transport.clone().oneshot(marker.clone()).await.unwrap();
    assert_eq!(handled.recv().await.as_deref(), Some(marker.id()));
    assert!(handled.try_recv().is_err(), "only the request on time ran");
    subscriber.shutdown(Duration::from_secs(1)).await;
}

/// A bare peer's request channel: it consumes direct reply-to, as amqplib
/// peers do.
async fn requester() -> (lapin::Connection, lapin::Channel, lapin::Consumer) {
    let (connection, channel) = raw_channel().await;
    let replies = channel
        .basic_consume(
            REPLY_TO.into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    (connection, channel, replies)
}

/// Publishes `body` to `recipient` as a request, with `properties` and a
/// reply address, and returns the reply; fails the test after 20 s.
async fn raw_request(
    channel: &lapin::Channel,
    replies: &mut lapin::Consumer,
    recipient: &str,
    body: &[u8],
    properties: BasicProperties,
) -> lapin::message::Delivery {
    let correlation = unique("corr");
    let properties = properties
        .with_reply_to(REPLY_TO.into())
        .with_correlation_id(correlation.as_str().into());
    publish_raw(channel, recipient, body, properties).await;
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let reply = support::next(replies).await.unwrap().unwrap();
            if reply
                .properties
                .correlation_id()
                .as_ref()
                .map(|c| c.as_str())
                == Some(correlation.as_str())
            {
                break reply;
            }
        }
    })
    .await
    .expect("the request is answered")
}

/// The error kind and text of an error reply, or `None` for a reply.
fn error_reply(reply: &lapin::message::Delivery) -> Option<(String, String)> {
    let headers = reply.properties.headers().clone().unwrap_or_default();
    let kind = match headers.inner().get(ERROR_HEADER)? {
        AMQPValue::LongString(kind) => String::from_utf8_lossy(kind.as_bytes()).into_owned(),
        other => format!("{other:?}"),
    };
    let body: stage7_transport::ErrorBody = serde_json::from_slice(&reply.data).unwrap();
    assert_eq!(body.kind, kind, "the header and the body agree");
    Some((kind, body.error))
}

#[tokio::test]
async fn a_body_over_the_limit_is_dead_lettered_and_its_requester_told_at_once() {
    require_broker().await;
    let transport = AmqpTransport::builder(amqp_url())
        .connection_name(unique("t-big-in"))
        .codec(Codec::new(1024))
        .build()
        .unwrap();
    let id = unique("small");
    let (ran, mut handled) = mpsc::unbounded_channel();
    let subscriber = Subscriber::builder(&transport, &id, "Small", recording(ran))
        .expires(Duration::from_secs(60))
        .start()
        .unwrap();
    subscriber.ready().await;
    let (_connection, channel, mut replies) = requester().await;
    let dead = dead_letter_tap(&channel).await;
    let big = serde_json::to_vec(
        &json!({"type": "statement", "sender": "peer", "content": "x".repeat(4096)}),
    )
    .unwrap();
    let json = BasicProperties::default().with_content_type("application/json".into());

    let event = unique("big-event");
    publish_raw(
        &channel,
        &id,
        &big,
        json.clone().with_message_id(event.as_str().into()),
    )
    .await;
    let (reason, _) = dead_letter(&channel, &dead, &event).await;
    assert!(
        reason.contains("exceeds the limit of 1024 bytes"),
        "{reason}"
    );

    let request = unique("big-request");
    let reply = raw_request(
        &channel,
        &mut replies,
        &id,
        &big,
        json.with_message_id(request.as_str().into()),
    )
    .await;
    let (kind, text) = error_reply(&reply).expect("an error reply");
    assert_eq!(kind, "too_large", "{text}");
    let (reason, _) = dead_letter(&channel, &dead, &request).await;
    assert!(
        reason.contains("exceeds the limit of 1024 bytes"),
        "{reason}"
    );

    let marker = Message::request(&id, json!("small"));
    transport.clone().oneshot(marker.clone()).await.unwrap();
    assert_eq!(handled.recv().await.as_deref(), Some(marker.id()));
    assert!(handled.try_recv().is_err(), "neither big message ran");
    subscriber.shutdown(Duration::from_secs(1)).await;
}

/// amqplib peers often publish without a content type: the body is read as
/// JSON, and a request is answered.
#[tokio::test]
async fn a_request_without_a_content_type_is_read_as_json_and_answered() {
    require_broker().await;
    let transport = transport(&unique("t-no-type"));
    let id = unique("echo");
    let (seen, mut received) = mpsc::unbounded_channel();
    let _entity = echo_entity(&transport, &id, seen).await;
    let (_connection, channel, mut replies) = requester().await;
    let message_id = unique("untyped");
    let reply = raw_request(
        &channel,
        &mut replies,
        &id,
        br#"{"type":"request","sender":"peer","content":{"n":7},"requiresSync":true}"#,
        BasicProperties::default().with_message_id(message_id.as_str().into()),
    )
    .await;
    assert_eq!(error_reply(&reply), None);
    let reply: Message = serde_json::from_slice(&reply.data).unwrap();
    assert_eq!(reply.content(), Some(&json!({"n": 7})));
    let handled = received.recv().await.unwrap();
    assert_eq!(handled.id(), message_id);
}

/// A request that is not a valid message gets an error reply at once, so
/// its caller need not wait for its timeout, and is dead-lettered with the
/// reason like any poison message.
#[tokio::test]
async fn a_poison_request_gets_an_error_reply_and_a_dead_letter() {
    require_broker().await;
    let transport = transport(&unique("t-poison-rpc"));
    let id = unique("echo");
    let (seen, mut received) = mpsc::unbounded_channel();
    let _entity = echo_entity(&transport, &id, seen).await;
    let (_connection, channel, mut replies) = requester().await;
    let dead = dead_letter_tap(&channel).await;
    let poison = unique("poison");
    let reply = raw_request(
        &channel,
        &mut replies,
        &id,
        b"{not json",
        BasicProperties::default()
            .with_content_type("application/json".into())
            .with_message_id(poison.as_str().into()),
    )
    .await;
    let (kind, text) = error_reply(&reply).expect("an error reply");
    assert_eq!(kind, "invalid_message", "{text}");
    assert!(text.contains("malformed JSON"), "{text}");
    let (reason, _) = dead_letter(&channel, &dead, &poison).await;
    assert!(reason.contains("malformed JSON"), "{reason}");
    assert!(received.try_recv().is_err(), "the handler never saw it");
}

/// When the broker cancels a consumer — its queue deleted under it — the
/// subscriber declares the queue again and consumes it, on the same
/// connection.
#[tokio::test]
async fn a_consumer_the_broker_cancels_is_armed_again() {
    require_broker().await;
    let logs = support::logs();
    let transport = transport(&unique("t-cancel"));
    let id = unique("echo");
    let (seen, _received) = mpsc::unbounded_channel();
    let mark = logs.mark();
    let entity = echo_entity(&transport, &id, seen).await;
    support::delete_queue(entity.queue()).await;

    // Until the queue is back, nothing is bound for the entity.
    let mut outcomes = Vec::new();
    let answered = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match transport
                .clone()
                .oneshot(Message::request(&id, json!("again")))
                .await
            {
                Ok(delivery) => break delivery,
                Err(error) => outcomes.push(error.kind()),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the consumer is back within 20 s");
    assert_eq!(answered.reply().unwrap().content(), Some(&json!("again")));
    assert!(
        outcomes.iter().all(|kind| *kind == ErrorKind::NoRoute),
        "{outcomes:?}"
    );
    let logged = logs.since(mark);
    let armed = logged
        .lines()
        .filter(|line| line.contains("consuming") && line.contains(entity.queue()))
        .count();
    assert_eq!(armed, 2, "{logged}");
    assert!(transport.is_connected());
}
