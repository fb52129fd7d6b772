//! The broker itself stops and starts (`rabbitmqctl stop_app` / `start_app`).
//! Every test here takes the outage lock: they run one at a time, and this
//! binary runs alone, as cargo runs test binaries one after another.

mod support;

use std::convert::Infallible;
use std::time::Duration;

use serde_json::json;
use stage7_transport::amqp::{AmqpTransport, Subscription};
use stage7_transport::{ErrorKind, Message};
use support::{amqp_url, require_broker, unique};
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
        support::rabbitmqctl(&["start_app"]);
        support::rabbitmqctl(&["await_startup"]);
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
    let echo = tower::service_fn(|m: Message| async move {
        let content = m.content().cloned().unwrap_or_default();
        Ok::<_, Infallible>(Some(m.reply(content)))
    });
    let entity =
        transport.subscribe(Subscription::new(&id, "Echo", echo).expires(Duration::from_secs(120)));
    entity.ready().await;
    transport
        .clone()
        .oneshot(Message::request(&id, json!("before")))
        .await
        .unwrap();

    let outage = Outage::begin();
    tokio::time::timeout(Duration::from_secs(30), async {
        while transport.is_connected() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the loss is noticed");
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
