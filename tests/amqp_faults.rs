//! The AMQP backend while the connection is killed under it: from the
//! broker's side (`rabbitmqctl close_connection`) and on the wire (a proxy
//! that resets connections).

mod support;

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use lapin::{Connection, ConnectionProperties};
use serde_json::json;
use stage7_transport::amqp::{AmqpTransport, Subscriber};
use stage7_transport::{Error, ErrorClass, ErrorKind, Message, MessageType};
use support::proxy::{Mode, Proxy};
use support::{
    amqp_url, close_connection, drain, eventually, host_port, require_broker, tap, unique,
};
use tower::ServiceExt;

/// How long a test waits for progress it needs before it fails, rather than
/// hanging.
const LIVENESS: Duration = Duration::from_secs(60);

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
    let unknown = Arc::new(std::sync::Mutex::new(Vec::new()));
    let refused = Arc::new(std::sync::Mutex::new(Vec::new()));
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
                        refused.lock().unwrap().push(id);
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    Ok(Err(_)) => unknown.lock().unwrap().push(id),
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
    let confirmed: HashSet<String> = confirmed.lock().unwrap().iter().cloned().collect();
    let unknown: HashSet<String> = unknown.lock().unwrap().iter().cloned().collect();
    let refused: HashSet<String> = refused.lock().unwrap().iter().cloned().collect();
    let lost = confirmed
        .iter()
        .filter(|id| !seen.contains_key(*id))
        .count();
    let duplicated = seen.values().filter(|n| **n > 1).count();
    // A message reported not delivered that is in the queue all the same
    // would reach its recipient twice once a fallback sends it again.
    let stored_though_refused: Vec<_> = seen.keys().filter(|id| refused.contains(*id)).collect();
    let stored_unaccounted: Vec<_> = seen
        .keys()
        .filter(|id| !confirmed.contains(*id) && !unknown.contains(*id) && !refused.contains(*id))
        .collect();
    println!(
        "zero-loss: faults={faults} confirmed={} lost={lost} duplicated={duplicated} unknown={} \
         refused={} stored={} (unknown outcome but stored: {})",
        confirmed.len(),
        unknown.len(),
        refused.len(),
        seen.len(),
        seen.keys().filter(|id| unknown.contains(*id)).count(),
    );
    assert!(faults >= 100, "{faults} faults injected");
    assert!(
        !refused.is_empty(),
        "some publishes were refused while the link was down"
    );
    assert_eq!(lost, 0, "every confirmed message is in the queue");
    assert_eq!(duplicated, 0, "nothing was published twice");
    assert!(
        stored_though_refused.is_empty(),
        "reported not delivered, yet stored: {stored_though_refused:?}"
    );
    assert!(
        stored_unaccounted.is_empty(),
        "stored, yet never published: {stored_unaccounted:?}"
    );
}

/// A link that goes silent — no data, no close, as when a network drops
/// packets — is noticed by the missing heartbeats: the request waiting on
/// it fails as an unknown outcome (it reached the handler), not at some
/// TCP timeout minutes later, and the transport connects again once the
/// partition ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_partition_fails_the_waiting_request_once_heartbeats_go_missing() {
    require_broker().await;
    let upstream = amqp_url();
    let proxy = Proxy::start(&host_port(&upstream)).await;
    let client = AmqpTransport::builder(proxy.amqp_url(&upstream))
        .connection_name(unique("t-partition"))
        .heartbeat(1)
        .build()
        .unwrap();
    let server = AmqpTransport::builder(&upstream)
        .connection_name(unique("t-partition-server"))
        .build()
        .unwrap();
    let id = unique("held");
    let (started, mut handling) = tokio::sync::mpsc::unbounded_channel();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let handler = {
        let gate = gate.clone();
        tower::service_fn(move |message: Message| {
            let _ = started.send(message.id().to_owned());
            let gate = gate.clone();
            async move {
                if message.content() == Some(&json!("hold")) {
                    let _ = gate.acquire().await.map(|permit| permit.forget());
                }
                Ok::<_, Infallible>(Some(message.reply(json!("done"))))
            }
        })
    };
    let subscriber = Subscriber::builder(&server, &id, "Held", handler)
        .expires(Duration::from_secs(60))
        .start()
        .unwrap();
    subscriber.ready().await;
    client.connected().await;

    let request = Message::request(&id, json!("hold"));
    let waiting = tokio::spawn(client.clone().oneshot(request.clone()));
    let reached = tokio::time::timeout(LIVENESS, handling.recv())
        .await
        .unwrap();
    assert_eq!(reached.as_deref(), Some(request.id()));
    proxy.set(Mode::BlackHole);
    gate.add_permits(1);
    // Generous next to heartbeats of 1 s (lost after 2 s of silence), far
    // below what TCP would take to give up on a silent peer.
    let error = tokio::time::timeout(Duration::from_secs(20), waiting)
        .await
        .expect("the silent link is noticed while the request waits")
        .unwrap()
        .unwrap_err();
    assert_eq!(
        (error.kind(), error.class()),
        (ErrorKind::ConnectionLost, ErrorClass::UnknownOutcome),
        "{error}"
    );
    assert!(error.to_string().contains("heartbeat"), "{error}");
    assert_eq!(client.pending_replies(), 0);
    assert!(!client.is_connected());

    proxy.set(Mode::Pass);
    tokio::time::timeout(LIVENESS, client.connected())
        .await
        .expect("the transport connects again after the partition");
    let reply = client
        .oneshot(Message::request(&id, json!("after")))
        .await
        .unwrap();
    assert_eq!(reply.reply().unwrap().content(), Some(&json!("done")));
    subscriber.shutdown(Duration::from_secs(1)).await;
}
