//! In-process cost of the stack: a bare service against the full stack over
//! it, plus each layer alone, and tower-resilience's circuit breaker as a
//! peer. The bare service answers at once, so every difference is the cost
//! of the layers themselves.
//!
//! `cargo bench --bench stack`; each benchmark reports time per call.

use std::future::{Ready, ready};
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use stage7_transport::layer::circuit_breaker::CircuitBreakerLayer;
use stage7_transport::layer::deadline::Deadline;
use stage7_transport::layer::fallback::Fallback;
use stage7_transport::layer::metrics::MetricsLayer;
use stage7_transport::layer::retry::{Retry, RetryPolicy};
use stage7_transport::layer::timeout::Timeout;
use stage7_transport::{Delivery, Error, Message, Route, Stack};
use tokio::runtime::Runtime;
use tower::{Layer, Service, ServiceExt};

/// The bare service: answers at once, allocates nothing.
#[derive(Clone, Copy)]
struct Bare;

impl Service<Message> for Bare {
    type Response = Delivery;
    type Error = Error;
    type Future = Ready<Result<Delivery, Error>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Message) -> Self::Future {
        ready(Ok(Delivery::new(Route::Memory, None)))
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Times `iters` sequential calls on one long-lived service, the way a
/// caller that owns its transport uses it.
fn per_call<S>(c: &mut Criterion, name: &str, mut service: S)
where
    S: Service<Message, Response = Delivery>,
    S::Error: std::fmt::Debug,
{
    let rt = runtime();
    let message = Message::request("brain", serde_json::json!({}));
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    let ready = service.ready().await.expect("ready");
                    black_box(ready.call(message.clone()).await.expect("call"));
                }
                started.elapsed()
            })
        })
    });
}

fn stack(c: &mut Criterion) {
    per_call(c, "bare", Bare);
    let full = Stack::builder(Bare).secondary(Bare).build().expect("stack");
    per_call(c, "full_stack", full);

    per_call(c, "layer/metrics_call", MetricsLayer::call().layer(Bare));
    per_call(
        c,
        "layer/metrics_attempt",
        MetricsLayer::attempts(Route::Amqp).layer(Bare),
    );
    // As the stack uses it: stamps the deadline, no timer of its own.
    per_call(
        c,
        "layer/deadline_delegating",
        Deadline::delegating(Bare, Duration::from_secs(30)),
    );
    // Used alone: stamps the deadline and enforces it with a timer.
    per_call(
        c,
        "layer/deadline_enforcing",
        Deadline::new(Bare, Duration::from_secs(30)),
    );
    per_call(c, "layer/retry", Retry::new(Bare, RetryPolicy::default()));
    per_call(c, "layer/fallback", Fallback::new(Bare, Some(Bare)));
    let breaker = CircuitBreakerLayer::new().expect("breaker");
    per_call(c, "layer/circuit_breaker", breaker.layer(Bare));
    per_call(
        c,
        "layer/timeout",
        Timeout::new(Bare, Duration::from_secs(10)),
    );

    let peer = tower_resilience::circuitbreaker::CircuitBreakerLayer::builder()
        .failure_rate_threshold(0.5)
        .sliding_window_size(20)
        .build()
        .expect("tower-resilience breaker");
    per_call(c, "peer/tower_resilience_circuit_breaker", peer.layer(Bare));
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = stack
}
criterion_main!(benches);
