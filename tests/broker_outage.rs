//! The broker itself stops and starts (`rabbitmqctl stop_app` / `start_app`).
//! Every test here takes the outage lock: they run one at a time, and this
//! binary runs alone, as cargo runs test binaries one after another.

mod support;

use std::time::Duration;

use serde_json::json;
use stage7_transport::amqp::{AmqpTransport, Subscriber};
use stage7_transport::{ErrorKind, Message};
use support::{amqp_url, echo, eventually, require_broker, unique};
use tower::ServiceExt;

/// Restarts the broker's application when dropped, whatever the test did.
struct Outage;

impl Outage {
    fn begin() -> Self {
        support::rabbitmqctl(&["stop_app"]);
        Self
    }
}

impl Drop for Outage {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The test already failed: bring the broker back if we can, but
            // a second panic here would abort and hide the first.
            if let Err(error) = support::try_rabbitmqctl(&["start_app"])
                .and_then(|_| support::try_rabbitmqctl(&["await_startup"]))
            {
                eprintln!("the broker could not be restarted after the failure: {error}");
            }
        } else {
            support::rabbitmqctl(&["start_app"]);
            support::rabbitmqctl(&["await_startup"]);
        }
    }
}

static OUTAGES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_fail_fast_while_the_broker_is_down_and_the_transport_comes_back() {
    require_broker().await;
    let _serial = OUTAGES.lock().await;
    let transport = AmqpTransport::builder(amqp_url())
        .connection_name(unique("t-outage"))
        .build()
        .unwrap();
    let id = unique("echo");
    let entity = Subscriber::builder(&transport, &id, "Echo", echo())
        .expires(Duration::from_secs(120))
        .start()
        .unwrap();
    entity.ready().await;
    transport
        .clone()
        .oneshot(Message::request(&id, json!("before")))
        .await
        .unwrap();

    let outage = Outage::begin();
    assert!(
        eventually(Duration::from_secs(30), || !transport.is_connected()).await,
        "the loss is noticed"
    );
    for _ in 0..20 {
        let error = transport
            .clone()
            .oneshot(Message::request(&id, json!("during")))
            .await
            .unwrap_err();
        assert!(error.is_not_delivered(), "{error}");
        assert_eq!(error.kind(), ErrorKind::Unavailable);
    }
    drop(outage);

    tokio::time::timeout(Duration::from_secs(30), transport.connected())
        .await
        .expect("the transport reconnects by itself");
    tokio::time::timeout(Duration::from_secs(30), entity.ready())
        .await
        .expect("the consumer is re-armed");
    let reply = transport
        .oneshot(Message::request(&id, json!("after")))
        .await
        .unwrap();
    assert_eq!(reply.reply().unwrap().content(), Some(&json!("after")));
}

mod entities {
    use std::collections::{HashMap, HashSet};
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use serde_json::json;
    use stage7_transport::{Message, MessageType, Route};

    use super::{OUTAGES, Outage};
    use crate::support::{self, broker_config, caller, eventually, require_broker, unique};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn broker_stopped_under_load_no_failure_no_loss_no_double_run() {
        require_broker().await;
        let _serial = OUTAGES.lock().await;
        let logs = support::logs();
        let config = broker_config();
        let ledger: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let handled = ledger.clone();
        // Requests take a while, so some are always waiting for their reply
        // when the broker stops: their outcome is unknown, HTTP carries
        // them, and the receiver must recognise the copy.
        let handler = tower::service_fn(move |message: Message| {
            *handled
                .lock()
                .unwrap()
                .entry(message.id().to_owned())
                .or_default() += 1;
            async move {
                if !message.requires_sync() {
                    return Ok::<_, Infallible>(None);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok(Some(message.reply(json!("ok"))))
            }
        });
        let id = unique("echo");
        let callee = support::entity("Echo", &id, handler, config.clone())
            .start()
            .await
            .unwrap();
        let caller = caller(config, &[(&id, callee.url())]).await;

        let mark = logs.mark();
        let stop = Arc::new(AtomicBool::new(false));
        let finished = Arc::new(AtomicUsize::new(0));
        let mut workers = tokio::task::JoinSet::new();
        for worker in 0..8 {
            let (caller, id, stop, finished) =
                (caller.clone(), id.clone(), stop.clone(), finished.clone());
            workers.spawn(async move {
                let mut sent = Vec::new();
                let mut failures = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let message = if worker % 2 == 0 {
                        Message::request(&id, json!(worker))
                    } else {
                        Message::new(MessageType::Statement).with_recipient(&id)
                    };
                    let message_id = message.id().to_owned();
                    let outcome = caller.call(message).await;
                    let order = finished.fetch_add(1, Ordering::SeqCst);
                    match outcome {
                        Ok(delivery) => sent.push((order, message_id, delivery.route())),
                        Err(error) => failures.push(error.to_string()),
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                (sent, failures)
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let outage = Outage::begin();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        drop(outage);
        assert!(
            eventually(Duration::from_secs(30), || caller.amqp().is_connected()
                && callee.is_consuming())
            .await,
            "both entities are back on AMQP"
        );
        tokio::time::sleep(Duration::from_millis(1500)).await;
        stop.store(true, Ordering::SeqCst);

        let (mut sent, mut failures) = (Vec::new(), Vec::new());
        while let Some(done) = workers.join_next().await {
            let (s, f) = done.unwrap();
            sent.extend(s);
            failures.extend(f);
        }
        // Whether they all arrived is asserted below, with the count lost.
        eventually(Duration::from_secs(10), || {
            let runs = ledger.lock().unwrap();
            sent.iter().all(|(_, id, _)| runs.contains_key(id))
        })
        .await;
        let runs = ledger.lock().unwrap().clone();
        let lost = sent
            .iter()
            .filter(|(_, id, _)| !runs.contains_key(id))
            .count();
        let duplicated = runs.values().filter(|n| **n > 1).count();
        let over = |route| sent.iter().filter(|(_, _, r)| *r == route).count();
        let over_http: HashSet<&String> = sent
            .iter()
            .filter(|(_, _, route)| *route == Route::Http)
            .map(|(_, id, _)| id)
            .collect();
        let unknown_then_http: Vec<String> = support::fell_back_after_unknown(&logs.since(mark))
            .into_iter()
            .filter(|id| over_http.contains(id))
            .collect();
        println!(
            "broker outage: sent={} failures={} lost={lost} duplicated={duplicated} amqp={} http={} \
             unknown-then-http={}",
            sent.len(),
            failures.len(),
            over(Route::Amqp),
            over(Route::Http),
            unknown_then_http.len()
        );
        assert!(
            failures.is_empty(),
            "no caller-visible failure: {failures:?}"
        );
        assert_eq!(lost, 0);
        assert_eq!(duplicated, 0);
        assert!(over(Route::Http) > 0, "HTTP carried the outage");
        assert!(
            !unknown_then_http.is_empty(),
            "HTTP carried calls whose AMQP outcome was unknown, and each ran once"
        );
        let last = sent.iter().max_by_key(|(order, _, _)| *order);
        assert!(
            last.is_some_and(|(_, _, route)| *route == Route::Amqp),
            "and AMQP is back: the last call went over {last:?}"
        );
        caller.shutdown().await.unwrap();
        callee.shutdown().await.unwrap();
    }
}
