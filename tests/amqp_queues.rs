//! What an entity's queues hold and how much it takes from them at once,
//! against a real RabbitMQ.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_core::Stream;
use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{FieldTable, ShortString};
use serde_json::json;
use stage7_transport::amqp::topology::DEAD_LETTER_EXCHANGE;
use stage7_transport::amqp::{AmqpTransport, Subscriber};
use stage7_transport::{Error, Message, MessageType};
use support::{
    amqp_url, eventually, idle, queue_counts, queue_counts_reach, raw_channel, require_broker,
    unique,
};
use tower::ServiceExt;

fn transport(name: &str) -> AmqpTransport {
    AmqpTransport::builder(amqp_url())
        .connection_name(name)
        .build()
        .unwrap()
}

fn event(recipient: &str, n: u32) -> Message {
    Message::new(MessageType::Statement)
        .with_recipient(recipient)
        .with_content(json!(n))
}

#[tokio::test]
async fn a_full_queue_sends_its_oldest_to_the_dead_letters_and_every_publish_is_confirmed() {
    require_broker().await;
    let transport = transport(&unique("t-full"));
    let id = unique("gone");
    // An instance that declared its queue, then went away for good.
    let gone = Subscriber::builder(&transport, &id, "Gone", idle())
        .expires(Duration::from_secs(60))
        .max_length(3)
        .start()
        .unwrap();
    gone.ready().await;
    let queue = gone.queue().to_owned();
    gone.shutdown(Duration::ZERO).await;

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
    let mut dead_letters = channel
        .basic_consume(
            tap.as_str().into(),
            ShortString::default(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();

    let mut sent = Vec::new();
    for n in 0..5 {
        let message = event(&id, n);
        sent.push(message.id().to_owned());
        // Confirmed: stored in every queue bound to the key, here one.
        transport.clone().oneshot(message).await.unwrap();
    }
    assert_eq!(queue_counts_reach(&queue, (3, 0)).await, (3, 0));
    let mut dropped = Vec::new();
    while dropped.len() < 2 {
        let next = std::future::poll_fn(|cx| std::pin::Pin::new(&mut dead_letters).poll_next(cx));
        let dead = tokio::time::timeout(Duration::from_secs(10), next)
            .await
            .expect("the overflow is dead-lettered")
            .unwrap()
            .unwrap();
        let id = dead
            .properties
            .message_id()
            .as_ref()
            .map(ShortString::as_str);
        if let Some(id) = id.filter(|id| sent.iter().any(|sent| sent == id)) {
            dropped.push(id.to_owned());
        }
    }
    assert_eq!(dropped, sent[..2], "the oldest go, the newest stay");
    support::delete_queue(&queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_prefetch_bounds_an_entity_across_its_own_queue_and_its_work_queue() {
    require_broker().await;
    let transport = transport(&unique("t-prefetch"));
    let kind = unique("Pool");
    let id = unique("pool");
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let handled = Arc::new(AtomicUsize::new(0));
    let handler = {
        let (gate, running, most, handled) =
            (gate.clone(), running.clone(), most.clone(), handled.clone());
        tower::service_fn(move |_: Message| {
            let (gate, running, most, handled) =
                (gate.clone(), running.clone(), most.clone(), handled.clone());
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                let _pass = gate.acquire().await;
                running.fetch_sub(1, Ordering::SeqCst);
                handled.fetch_add(1, Ordering::SeqCst);
                Ok::<_, Error>(None)
            }
        })
    };
    let subscriber = Subscriber::builder(&transport, &id, &kind, handler)
        .work_queue(true)
        .prefetch(2)
        .expires(Duration::from_secs(60))
        .start()
        .unwrap();
    subscriber.ready().await;
    for n in 0..4 {
        transport.clone().oneshot(event(&id, n)).await.unwrap();
        transport.clone().oneshot(event(&kind, n)).await.unwrap();
    }
    assert!(
        eventually(Duration::from_secs(10), || running.load(Ordering::SeqCst)
            >= 2)
        .await
    );
    // What the broker has handed out, once it has all eight: by the time
    // two `rabbitmqctl` calls have run, a per-consumer prefetch would have
    // given each queue's consumer two.
    let (own, work) = (subscriber.queue().to_owned(), kind.to_lowercase());
    let (ready, unacked) = loop {
        let (own_ready, own_unacked) = queue_counts(&own).await;
        let (work_ready, work_unacked) = queue_counts(&work).await;
        let counts = (own_ready + work_ready, own_unacked + work_unacked);
        if counts.0 + counts.1 == 8 {
            break counts;
        }
    };
    assert_eq!((ready, unacked), (6, 2), "two held by the entity in all");

    gate.add_permits(8);
    assert!(
        eventually(Duration::from_secs(10), || handled.load(Ordering::SeqCst)
            == 8)
        .await
    );
    assert_eq!(
        most.load(Ordering::SeqCst),
        2,
        "never more than two at once"
    );
    subscriber.shutdown(Duration::from_secs(5)).await;
    assert_eq!(queue_counts_reach(&own, (0, 0)).await, (0, 0));
    support::delete_queue(&own).await;
    support::delete_queue(&work).await;
}

#[tokio::test]
async fn bounds_and_reply_patterns_rabbitmq_or_we_would_refuse_are_configuration_errors() {
    // Checked before anything reaches a broker: none is needed.
    let transport = AmqpTransport::builder("amqp://guest:guest@127.0.0.1:1/%2f")
        .connection_name(unique("t-bounds"))
        .build()
        .unwrap();
    let builder = || Subscriber::builder(&transport, unique("idle"), "Idle", idle());
    let refused = builder().max_length(0).start().unwrap_err();
    assert!(refused.is_config(), "{refused}");
    assert!(
        refused.to_string().contains("length bound of 0"),
        "{refused}"
    );
    let refused = builder().reply_queues([""]).start().unwrap_err();
    assert!(refused.is_config(), "{refused}");
    assert!(
        refused.to_string().contains("reply-queue pattern"),
        "{refused}"
    );
    for accepted in [
        builder().max_length(None).expires(None),
        builder().reply_queues(["replies.*"]),
        builder().reply_queues(std::iter::empty::<String>()),
    ] {
        accepted.start().unwrap().shutdown(Duration::ZERO).await;
    }
}
