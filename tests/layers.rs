//! The assembled stack over in-process backends: readiness contract,
//! fallback, breaker and retry working together, and what they report.

mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use serde_json::json;
use stage7_transport::layer::circuit_breaker::{CircuitBreakerLayer, State};
use stage7_transport::layer::retry::RetryPolicy;
use stage7_transport::{
    BranchBuilder, Delivery, Error, Fault, MemoryTransport, Message, Route, Stack,
};
use tower::{Service, ServiceExt};

/// A backend that enforces tower's readiness contract: a clone starts
/// un-ready, `call` panics unless `poll_ready` said ready since the last
/// call. It fails the first `failures` calls as not delivered.
struct Probe {
    route: Route,
    ready: bool,
    calls: Arc<AtomicUsize>,
    failures: usize,
}

impl Probe {
    fn new(route: Route, failures: usize) -> (Self, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let probe = Self {
            route,
            ready: false,
            calls: calls.clone(),
            failures,
        };
        (probe, calls)
    }
}

impl Clone for Probe {
    fn clone(&self) -> Self {
        Self {
            route: self.route,
            ready: false,
            calls: self.calls.clone(),
            failures: self.failures,
        }
    }
}

impl Service<Message> for Probe {
    type Response = Delivery;
    type Error = Error;
    type Future = std::future::Ready<Result<Delivery, Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.ready = true;
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Message) -> Self::Future {
        assert!(self.ready, "call without poll_ready on this clone");
        self.ready = false;
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        std::future::ready(if n < self.failures {
            Err(Error::not_delivered("probe refuses").with_route(self.route))
        } else {
            Ok(Delivery::new(self.route, None))
        })
    }
}

fn fast_retry() -> stage7_transport::layer::retry::RetryPolicyBuilder {
    RetryPolicy::builder()
        .min_delay(Duration::from_millis(1))
        .max_delay(Duration::from_millis(2))
}

#[tokio::test]
async fn every_layer_honours_the_readiness_contract() {
    let (primary, primary_calls) = Probe::new(Route::Amqp, 30);
    let (secondary, secondary_calls) = Probe::new(Route::Http, 0);
    let never_trips = CircuitBreakerLayer::builder()
        .consecutive_failures(Some(1000))
        .failure_rate(None);
    let stack = Stack::builder(primary)
        .primary_branch(BranchBuilder::new(Route::Amqp).breaker(never_trips))
        .secondary(secondary)
        .secondary_branch(BranchBuilder::new(Route::Http))
        .retry(fast_retry())
        .build()
        .unwrap();
    let mut calls = tokio::task::JoinSet::new();
    for n in 0..64 {
        let stack = stack.clone();
        calls.spawn(async move {
            stack
                .oneshot(Message::request(format!("r{}", n % 4), json!(n)))
                .await
        });
    }
    let mut routes = Vec::new();
    while let Some(done) = calls.join_next().await {
        routes.push(done.expect("no readiness panic").unwrap().route());
    }
    assert_eq!(routes.len(), 64);
    assert!(
        routes.contains(&Route::Http),
        "the failing primary was fallen back from"
    );
    assert!(primary_calls.load(Ordering::SeqCst) >= 30);
    assert!(secondary_calls.load(Ordering::SeqCst) >= 1);
}

#[tokio::test]
async fn secondary_serves_only_while_the_primary_is_down() {
    let primary = MemoryTransport::new();
    let secondary = MemoryTransport::new();
    let served_primary = Arc::new(AtomicUsize::new(0));
    let served_secondary = Arc::new(AtomicUsize::new(0));
    for (bus, count) in [(&primary, &served_primary), (&secondary, &served_secondary)] {
        let count = count.clone();
        bus.register(
            "brain-1",
            "Brain",
            tower::service_fn(move |m: Message| {
                count.fetch_add(1, Ordering::SeqCst);
                async move { Ok::<_, Infallible>(Some(m.reply(json!("ok")))) }
            }),
        );
    }
    let stack = Stack::builder(primary.clone())
        .secondary(secondary)
        .retry(fast_retry())
        .build()
        .unwrap();

    let delivery = stack
        .clone()
        .oneshot(Message::request("brain-1", json!(1)))
        .await
        .unwrap();
    assert_eq!(served_primary.load(Ordering::SeqCst), 1);
    assert_eq!(served_secondary.load(Ordering::SeqCst), 0);
    assert!(delivery.reply().is_some());

    primary.inject(Fault::Refuse);
    stack
        .clone()
        .oneshot(Message::request("brain-1", json!(2)))
        .await
        .unwrap();
    assert_eq!(served_secondary.load(Ordering::SeqCst), 1);

    primary.clear_faults();
    stack
        .clone()
        .oneshot(Message::request("brain-1", json!(3)))
        .await
        .unwrap();
    assert_eq!(served_primary.load(Ordering::SeqCst), 2);
    assert_eq!(served_secondary.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_open_primary_breaker_sends_calls_straight_to_the_secondary() {
    let (primary, primary_calls) = Probe::new(Route::Amqp, usize::MAX);
    let (secondary, secondary_calls) = Probe::new(Route::Http, 0);
    let breaker = CircuitBreakerLayer::builder()
        .consecutive_failures(Some(3))
        .failure_rate(None)
        .break_duration(Duration::from_secs(60))
        .max_break(Duration::from_secs(60));
    let stack = Stack::builder(primary)
        .primary_branch(BranchBuilder::new(Route::Amqp).breaker(breaker))
        .secondary(secondary)
        .retry(fast_retry().max_retries(0))
        .build()
        .unwrap();
    for n in 0..10 {
        let delivery = stack
            .clone()
            .oneshot(Message::request("brain", json!(n)))
            .await
            .unwrap();
        assert_eq!(delivery.route(), Route::Http);
    }
    assert_eq!(
        primary_calls.load(Ordering::SeqCst),
        3,
        "after the breaker opened the primary was not called"
    );
    assert_eq!(secondary_calls.load(Ordering::SeqCst), 10);
    assert_eq!(stack.primary_breaker().state("brain"), Some(State::Open));
    let secondary = stack.secondary_breaker().expect("a secondary branch");
    assert_eq!(secondary.state("brain"), Some(State::Closed));
    assert_ne!(secondary.name(), stack.primary_breaker().name());
}

#[tokio::test]
async fn a_rejected_call_is_neither_retried_nor_fallen_back() {
    let primary = MemoryTransport::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    primary.register(
        "x",
        "X",
        tower::service_fn(move |_: Message| {
            counted.fetch_add(1, Ordering::SeqCst);
            async { Err::<Option<Message>, _>("bad request") }
        }),
    );
    let (secondary, secondary_calls) = Probe::new(Route::Http, 0);
    let stack = Stack::builder(primary)
        .secondary(secondary)
        .retry(fast_retry())
        .build()
        .unwrap();
    let error = stack
        .oneshot(Message::request("x", json!(1)))
        .await
        .unwrap_err();
    assert!(error.is_rejected(), "{error}");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(secondary_calls.load(Ordering::SeqCst), 0);
}

#[test]
fn breaker_transitions_and_calls_are_counted_and_logged() {
    let logs = support::logs();
    let mark = logs.mark();
    // Other tests open `amqp` breakers too: a recipient of this test's own
    // tells its log line apart.
    let recipient = support::unique("breaker-log");
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (primary, _) = Probe::new(Route::Amqp, usize::MAX);
            let (secondary, _) = Probe::new(Route::Http, 0);
            let breaker = CircuitBreakerLayer::builder()
                .consecutive_failures(Some(2))
                .failure_rate(None);
            let stack = Stack::builder(primary)
                .primary_branch(BranchBuilder::new(Route::Amqp).breaker(breaker))
                .secondary(secondary)
                .secondary_branch(BranchBuilder::new(Route::Http))
                .retry(fast_retry().max_retries(0))
                .build()
                .unwrap();
            for _ in 0..3 {
                stack
                    .clone()
                    .oneshot(Message::request(&recipient, json!(1)))
                    .await
                    .unwrap();
            }
        });
    });
    let text = logs.since(mark);
    assert!(text.contains("circuit breaker opened"), "{text}");
    assert!(
        text.contains("breaker=\"amqp\"") || text.contains("breaker=amqp"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|line| line.contains("circuit breaker opened")
                && (line.contains("breaker=\"amqp\"") || line.contains("breaker=amqp"))
                && (line.contains(&format!("key=\"{recipient}\""))
                    || line.contains(&format!("key={recipient}")))),
        "one line says this test's breaker opened, for its recipient: {text}"
    );

    let snapshot = snapshotter.snapshot().into_vec();
    let value = |name: &str, labels: &[(&str, &str)]| -> Option<&DebugValue> {
        snapshot
            .iter()
            .find(|(key, _, _, _)| {
                key.key().name() == name
                    && labels
                        .iter()
                        .all(|(k, v)| key.key().labels().any(|l| l.key() == *k && l.value() == *v))
            })
            .map(|(_, _, _, value)| value)
    };
    assert_eq!(
        value(
            "stage7_transport_breaker_transitions_total",
            &[("breaker", "amqp"), ("to", "open")]
        ),
        Some(&DebugValue::Counter(1))
    );
    assert_eq!(
        value(
            "stage7_transport_calls_total",
            &[("route", "http"), ("outcome", "ok")]
        ),
        Some(&DebugValue::Counter(3))
    );
    assert_eq!(
        value(
            "stage7_transport_attempts_total",
            &[("route", "amqp"), ("outcome", "not_delivered")]
        ),
        Some(&DebugValue::Counter(3)),
        "two failures, then one refused by the open breaker"
    );
    assert_eq!(
        value("stage7_transport_fallbacks_total", &[("from", "amqp")]),
        Some(&DebugValue::Counter(3))
    );
    assert!(matches!(
        value(
            "stage7_transport_breaker_state",
            &[("breaker", "amqp"), ("key", recipient.as_str())]
        ),
        Some(DebugValue::Gauge(state)) if state.into_inner() == 1.0
    ));
}

#[tokio::test(start_paused = true)]
async fn the_deadline_bounds_retries_and_fallback_together() {
    let primary = MemoryTransport::new();
    let secondary = MemoryTransport::new();
    primary.inject(Fault::Drop);
    secondary.inject(Fault::Drop);
    let stack = Stack::builder(primary)
        .secondary(secondary)
        .primary_branch(BranchBuilder::new(Route::Amqp).attempt_timeout(Duration::from_secs(2)))
        .secondary_branch(BranchBuilder::new(Route::Http).attempt_timeout(Duration::from_secs(2)))
        .deadline(Duration::from_secs(5))
        .build()
        .unwrap();
    let started = tokio::time::Instant::now();
    let error = stack
        .oneshot(Message::request("anyone", json!(1)))
        .await
        .unwrap_err();
    assert!(error.is_timeout(), "{error}");
    assert!(
        started.elapsed() <= Duration::from_secs(5),
        "never past the deadline"
    );
}

/// A backend that is never ready.
#[derive(Clone)]
struct NeverReady;

impl Service<Message> for NeverReady {
    type Response = Delivery;
    type Error = Error;
    type Future = std::future::Ready<Result<Delivery, Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Pending
    }

    fn call(&mut self, _: Message) -> Self::Future {
        unreachable!("never ready, never called")
    }
}

#[tokio::test(start_paused = true)]
async fn waiting_for_a_backend_to_be_ready_ends_at_the_deadline() {
    let (primary, _) = Probe::new(Route::Amqp, usize::MAX);
    let stack = Stack::builder(primary)
        .secondary(NeverReady)
        .deadline(Duration::from_secs(1))
        .retry(fast_retry().max_retries(0))
        .build()
        .unwrap();
    let started = tokio::time::Instant::now();
    let error = stack
        .oneshot(Message::request("brain", json!(1)))
        .await
        .unwrap_err();
    assert!(error.is_timeout(), "{error}");
    assert_eq!(started.elapsed(), Duration::from_secs(1));
}
