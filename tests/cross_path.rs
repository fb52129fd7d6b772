//! One entity, two paths: what the AMQP path cannot deliver, or may have
//! delivered, the HTTP path carries, and the entity's handler runs once.
//! Real broker, real sockets; the fault proxy makes the link to the broker
//! slow, silent or refusing.

mod support;

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::time::Duration;

use lapin::options::QueueDeclareOptions;
use lapin::types::AMQPValue;
use serde_json::json;
use stage7_transport::amqp::topology::queue_name;
use stage7_transport::http::StaticResolver;
use stage7_transport::message::BROADCAST;
use stage7_transport::{
    AmqpTransport, BranchBuilder, Config, Entity, ErrorClass, ErrorKind, HttpTransport, Message,
    MessageType, Route,
};
use support::proxy::{Mode, Proxy};
use support::{
    Ledger, Vhost, amqp_url, broker_config, caller, eventually, fell_back_after_unknown, host_port,
    idle, queue_counts_reach, recorder, require_broker, unique,
};
use tower::ServiceExt;

/// How long a test waits for progress it needs before it fails, rather than
/// hanging.
const LIVENESS: Duration = Duration::from_secs(60);

/// An entity that answers requests with their content and records every
/// message it handles.
async fn echo(id: &str, config: Config, ledger: Ledger) -> Entity {
    support::entity("Echo", id, recorder(ledger), config)
        .start()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_message_over_amqp_and_over_http_runs_the_handler_once() {
    require_broker().await;
    let ledger = Ledger::default();
    let id = unique("echo");
    let callee = echo(&id, broker_config(), ledger.clone()).await;
    let amqp = AmqpTransport::builder(amqp_url())
        .connection_name(unique("t-both"))
        .build()
        .unwrap();
    amqp.connected().await;
    let http = HttpTransport::builder(StaticResolver::new([(id.as_str(), callee.url())]).unwrap())
        .build()
        .unwrap();

    let mut sent = Vec::new();
    for order in [[Route::Amqp, Route::Http], [Route::Http, Route::Amqp]] {
        for sync in [false, true] {
            let message = Message::new(MessageType::Request)
                .with_recipient(&id)
                .with_sender("tester")
                .with_sync(sync)
                .with_content(json!({"order": format!("{order:?}"), "sync": sync}));
            let mut replies = Vec::new();
            for route in order {
                let copy = message.clone();
                let delivery = match route {
                    Route::Amqp => amqp.clone().oneshot(copy).await,
                    _ => http.clone().oneshot(copy).await,
                }
                .unwrap();
                assert_eq!(delivery.route(), route);
                replies.push(delivery.into_reply());
            }
            assert_eq!(replies[0].is_some(), sync);
            assert_eq!(
                replies[0], replies[1],
                "the second copy gets the first's reply"
            );
            sent.push(message.id().to_owned());
        }
    }
    // Every AMQP copy has been consumed and acknowledged, so handled or
    // recognised as a repeat; every HTTP copy was answered.
    let queue = queue_name("Echo", &id);
    assert_eq!(queue_counts_reach(&queue, (0, 0)).await, (0, 0));
    let runs = ledger.runs();
    for id in &sent {
        assert_eq!(runs.get(id), Some(&1), "{id} ran once: {runs:?}");
    }
    assert_eq!(runs.len(), sent.len());
    callee.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rpc_that_times_out_on_amqp_is_answered_over_http_and_runs_once() {
    require_broker().await;
    let logs = support::logs();
    let ledger = Ledger::default();
    let id = unique("slow");
    // Slower than the caller's AMQP attempt: the HTTP copy arrives while
    // the AMQP one still runs, and waits for its reply.
    let slow = {
        let ledger = ledger.clone();
        tower::service_fn(move |message: Message| {
            ledger.record(message.id());
            async move {
                tokio::time::sleep(Duration::from_millis(800)).await;
                Ok::<_, Infallible>(Some(message.reply(json!("slow but sure"))))
            }
        })
    };
    let callee = support::entity("Slow", &id, slow, broker_config())
        .start()
        .await
        .unwrap();
    let caller = support::entity("Caller", &unique("caller"), idle(), broker_config())
        .route(&id, callee.url())
        .amqp_branch(BranchBuilder::new(Route::Amqp).attempt_timeout(Duration::from_millis(200)))
        .start()
        .await
        .unwrap();
    assert!(caller.amqp().is_connected() && callee.is_consuming());

    let mark = logs.mark();
    let request = Message::request(&id, json!("take your time"));
    let delivery = caller.call(request.clone()).await.unwrap();
    assert_eq!(delivery.route(), Route::Http);
    assert_eq!(
        delivery.into_reply().unwrap().content(),
        Some(&json!("slow but sure"))
    );
    assert!(
        fell_back_after_unknown(&logs.since(mark)).contains(request.id()),
        "the AMQP attempt timed out, outcome unknown, and HTTP took the call"
    );
    assert_eq!(
        queue_counts_reach(&queue_name("Slow", &id), (0, 0)).await,
        (0, 0)
    );
    assert_eq!(ledger.runs(), HashMap::from([(request.id().to_owned(), 1)]));
    caller.shutdown().await.unwrap();
    callee.shutdown().await.unwrap();
}

/// Declares `queue` in the broker at `url` as our consumers do (dead
/// letters to `stage7.dlx`, expiring two minutes after its last consumer)
/// but holding nothing: `x-max-length` 0 with `x-overflow:
/// reject-publish`, so the broker nacks every message routed to it — a
/// broadcast, or one to the entity's type, too.
async fn full_queue(url: &str, queue: &str) {
    let (connection, channel) = support::raw_channel_at(url).await;
    let mut arguments = support::queue_arguments(Some(120_000), None);
    arguments.insert("x-max-length".into(), AMQPValue::LongLongInt(0));
    arguments.insert(
        "x-overflow".into(),
        AMQPValue::LongString("reject-publish".into()),
    );
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            arguments,
        )
        .await
        .unwrap();
    let _ = connection.close(200, "declared".into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_the_broker_nacks_is_delivered_over_http_once() {
    require_broker().await;
    // Its own vhost: messages to every Echo, or to all, would be nacked too.
    let vhost = Vhost::create("nack");
    let ledger = Ledger::default();
    let id = unique("echo");
    full_queue(vhost.url(), &queue_name("Echo", &id)).await;
    let callee = echo(&id, vhost.config(), ledger.clone()).await;
    assert!(callee.is_consuming());

    let bare = AmqpTransport::builder(vhost.url())
        .connection_name(unique("t-nack"))
        .build()
        .unwrap();
    bare.connected().await;
    let refused = Message::new(MessageType::Statement).with_recipient(&id);
    let error = bare.oneshot(refused.clone()).await.unwrap_err();
    assert_eq!(
        (error.kind(), error.class()),
        (ErrorKind::Overloaded, ErrorClass::NotDelivered),
        "{error}"
    );

    let caller = caller(vhost.config(), &[(&id, callee.url())]).await;
    let mut sent = Vec::new();
    for sync in [false, true] {
        let message = Message::new(MessageType::Request)
            .with_recipient(&id)
            .with_sync(sync)
            .with_content(json!(sync));
        let delivery = caller.call(message.clone()).await.unwrap();
        assert_eq!(delivery.route(), Route::Http, "the nack let HTTP take it");
        sent.push(message.id().to_owned());
    }
    let runs = ledger.runs();
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert!(sent.iter().all(|id| runs.get(id) == Some(&1)), "{runs:?}");
    assert_eq!(
        ledger.ran(refused.id()),
        0,
        "a nacked message is not delivered"
    );
    caller.shutdown().await.unwrap();
    callee.shutdown().await.unwrap();
}

/// One call of [`drive`]: the message id and the route that served it, or
/// what went wrong.
type Outcome = (String, Result<Route, String>);

/// Calls `recipient` from `caller` one call after another, requests and
/// events in turn, until `done` holds for the outcomes so far; fails the
/// test if that takes longer than [`LIVENESS`].
async fn drive(
    caller: &Entity,
    recipient: &str,
    outcomes: &mut Vec<Outcome>,
    mut done: impl FnMut(&[Outcome]) -> bool,
) {
    let driving = async {
        while !done(outcomes) {
            let message = if outcomes.len().is_multiple_of(2) {
                Message::request(recipient, json!(outcomes.len()))
            } else {
                Message::new(MessageType::Statement).with_recipient(recipient)
            };
            let id = message.id().to_owned();
            let result = caller.call(message).await;
            outcomes.push((id, result.map(|d| d.route()).map_err(|e| e.to_string())));
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    tokio::time::timeout(LIVENESS, driving)
        .await
        .expect("the calls make progress");
}

/// How many of the last outcomes, counted back from the end, were served
/// over `route`.
fn last_over(outcomes: &[Outcome], route: Route) -> usize {
    outcomes
        .iter()
        .rev()
        .take_while(|(_, result)| result.as_ref() == Ok(&route))
        .count()
}

/// What every fault run checks at the end: no call failed, every message
/// ran exactly once, HTTP carried calls whose AMQP outcome was unknown,
/// and the last calls went over AMQP again.
async fn assert_carried_once(outcomes: &[Outcome], ledger: &Ledger, logged: &str) {
    let failures: Vec<_> = outcomes.iter().filter(|(_, r)| r.is_err()).collect();
    assert!(
        failures.is_empty(),
        "no caller-visible failure: {failures:?}"
    );
    // Events run after their confirm; wait for the last of them.
    eventually(LIVENESS, || {
        let runs = ledger.runs();
        outcomes.iter().all(|(id, _)| runs.contains_key(id))
    })
    .await;
    let runs = ledger.runs();
    let wrong: Vec<_> = outcomes
        .iter()
        .map(|(id, _)| (id, runs.get(id).copied().unwrap_or(0)))
        .filter(|(_, n)| *n != 1)
        .collect();
    assert!(
        wrong.is_empty(),
        "ids that did not run exactly once: {wrong:?}"
    );
    let over_http: HashSet<&String> = outcomes
        .iter()
        .filter(|(_, r)| *r == Ok(Route::Http))
        .map(|(id, _)| id)
        .collect();
    let unknown_then_http: Vec<_> = fell_back_after_unknown(logged)
        .into_iter()
        .filter(|id| over_http.contains(id))
        .collect();
    assert!(
        !unknown_then_http.is_empty(),
        "HTTP carried a call whose AMQP outcome was unknown"
    );
    assert_eq!(
        outcomes.last().map(|(_, r)| r.clone()),
        Some(Ok(Route::Amqp)),
        "and AMQP is back"
    );
}

/// A silent partition between the caller and the broker: the caller's
/// heartbeats (1 s here) go unanswered, so it gives the link up; the call
/// waiting on it fails as an unknown outcome and goes over HTTP, as do the
/// calls after it; once the partition ends, calls are back on AMQP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_partition_moves_calls_to_http_and_back_each_run_once() {
    require_broker().await;
    let logs = support::logs();
    let upstream = amqp_url();
    let proxy = Proxy::start(&host_port(&upstream)).await;
    let through_proxy = format!("{}?heartbeat=1", proxy.amqp_url(&upstream));
    let config = Config::from_vars([("RABBITMQ_URL", through_proxy)]).unwrap();
    let ledger = Ledger::default();
    let id = unique("echo");
    let callee = echo(&id, broker_config(), ledger.clone()).await;
    let caller = caller(config, &[(&id, callee.url())]).await;
    assert!(caller.amqp().is_connected());

    let mark = logs.mark();
    let mut outcomes = Vec::new();
    drive(&caller, &id, &mut outcomes, |o| {
        last_over(o, Route::Amqp) >= 5
    })
    .await;
    proxy.set(Mode::BlackHole);
    let partitioned = outcomes.len();
    drive(&caller, &id, &mut outcomes, |o| {
        !caller.amqp().is_connected()
            && o[partitioned..]
                .iter()
                .filter(|(_, r)| *r == Ok(Route::Http))
                .count()
                >= 5
    })
    .await;
    proxy.set(Mode::Pass);
    drive(&caller, &id, &mut outcomes, |o| {
        last_over(o, Route::Amqp) >= 5
    })
    .await;

    assert_carried_once(&outcomes, &ledger, &logs.since(mark)).await;
    caller.shutdown().await.unwrap();
    callee.shutdown().await.unwrap();
}

/// A slow link to the broker — every byte late, slower than the AMQP
/// attempt timeout — moves calls to HTTP without dropping the connection
/// (heartbeats still arrive, late), and the late AMQP copies run nothing
/// twice; once the link is fast again, calls are back on AMQP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_link_moves_calls_to_http_and_back_each_run_once() {
    require_broker().await;
    let logs = support::logs();
    let upstream = amqp_url();
    let proxy = Proxy::start(&host_port(&upstream)).await;
    let config = Config::from_vars([("RABBITMQ_URL", proxy.amqp_url(&upstream))]).unwrap();
    let ledger = Ledger::default();
    let id = unique("echo");
    let callee = echo(&id, broker_config(), ledger.clone()).await;
    let caller_id = unique("caller");
    let caller = support::entity("Caller", &caller_id, idle(), config)
        .route(&id, callee.url())
        .amqp_branch(BranchBuilder::new(Route::Amqp).attempt_timeout(Duration::from_millis(300)))
        .start()
        .await
        .unwrap();
    assert!(caller.amqp().is_connected());

    let mark = logs.mark();
    let mut outcomes = Vec::new();
    drive(&caller, &id, &mut outcomes, |o| {
        last_over(o, Route::Amqp) >= 5
    })
    .await;
    proxy.set(Mode::Delay(Duration::from_millis(600)));
    drive(&caller, &id, &mut outcomes, |o| {
        last_over(o, Route::Http) >= 10
    })
    .await;
    proxy.set(Mode::Pass);
    drive(&caller, &id, &mut outcomes, |o| {
        last_over(o, Route::Amqp) >= 5
    })
    .await;

    let logged = logs.since(mark);
    assert_carried_once(&outcomes, &ledger, &logged).await;
    let connection = format!("Caller:{caller_id}");
    assert!(
        !logged
            .lines()
            .any(|line| line.contains("lost the RabbitMQ connection") && line.contains(&connection)),
        "a slow link is not taken for a dead one"
    );
    caller.shutdown().await.unwrap();
    callee.shutdown().await.unwrap();
}

/// A broadcast reaches every entity over AMQP. HTTP reaches one receiver
/// per request, so a broadcast does not fall back to it — even where a
/// route for `all` is configured — and the sender gets a clear
/// not-delivered error instead of a silent delivery to one entity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_never_falls_back_to_one_receiver_over_http() {
    let (_proxy, config) = support::refused_broker().await;
    let ledger = Ledger::default();
    let one = echo(&unique("echo"), config.clone(), ledger.clone()).await;
    let caller = caller(config, &[(BROADCAST, one.url())]).await;
    let broadcast = Message::new(MessageType::Statement).with_recipient(BROADCAST);
    let error = caller.send(broadcast).await.unwrap_err();
    assert_eq!(
        (error.kind(), error.class(), error.route()),
        (
            ErrorKind::NoRoute,
            ErrorClass::NotDelivered,
            Some(Route::Http)
        ),
        "{error}"
    );
    assert!(error.to_string().contains("broadcast"), "{error}");
    let primary = error.fallback_from().expect("the AMQP failure is kept");
    assert_eq!(primary.route(), Some(Route::Amqp));
    assert!(ledger.runs().is_empty(), "{:?}", ledger.runs());
    caller.shutdown().await.unwrap();
    one.shutdown().await.unwrap();
}
