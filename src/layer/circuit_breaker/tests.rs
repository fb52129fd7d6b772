use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use tokio::time::advance;
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_test::mock;

use super::*;
use crate::ErrorKind;
use crate::handler::handler_error;
use crate::route::Route;
use crate::transport::Delivery;

fn request(to: &str) -> Message {
    Message::request(to, json!({}))
}

fn layer(probes: u32) -> CircuitBreakerLayer {
    CircuitBreakerLayer::builder()
        .name("test")
        .consecutive_failures(Some(2))
        .failure_rate(None)
        .break_duration(Duration::from_secs(1))
        .max_break(Duration::from_secs(10))
        .half_open_probes(probes)
        .build()
        .unwrap()
}

/// Fails while `failing` is set, counting calls.
fn switchable(
    failing: Arc<AtomicUsize>,
    calls: Arc<AtomicUsize>,
) -> impl Service<Message, Response = Delivery, Error = Error, Future: Send> + Clone {
    service_fn(move |_: Message| {
        calls.fetch_add(1, Ordering::SeqCst);
        let fail = failing.load(Ordering::SeqCst) == 1;
        async move {
            if fail {
                Err(Error::not_delivered("refused"))
            } else {
                Ok(Delivery::new(Route::Memory, None))
            }
        }
    })
}

#[tokio::test(start_paused = true)]
async fn exact_transition_flow_through_the_service() {
    let (failing, calls) = (Arc::new(AtomicUsize::new(1)), Arc::new(AtomicUsize::new(0)));
    let layer = layer(1);
    let handle = layer.handle();
    let breaker = layer.layer(switchable(failing.clone(), calls.clone()));
    let call = || breaker.clone().oneshot(request("brain"));

    assert!(!call().await.unwrap_err().is_circuit_open());
    assert_eq!(handle.state("brain"), Some(State::Closed));
    assert!(!call().await.unwrap_err().is_circuit_open());
    assert_eq!(handle.state("brain"), Some(State::Open));

    let refused = call().await.unwrap_err();
    assert!(refused.is_circuit_open());
    assert_eq!(refused.retry_after(), Some(Duration::from_secs(1)));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "an open circuit does not call"
    );

    advance(Duration::from_secs(1)).await;
    assert!(
        !call().await.unwrap_err().is_circuit_open(),
        "the probe is admitted"
    );
    assert_eq!(
        handle.state("brain"),
        Some(State::Open),
        "the probe failed: open again"
    );

    advance(Duration::from_secs(1)).await;
    assert!(
        call().await.unwrap_err().is_circuit_open(),
        "the second break is twice as long"
    );
    advance(Duration::from_secs(1)).await;
    failing.store(0, Ordering::SeqCst);
    call().await.unwrap();
    assert_eq!(handle.state("brain"), Some(State::Closed));
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[tokio::test(start_paused = true)]
async fn keys_are_independent() {
    let (failing, calls) = (Arc::new(AtomicUsize::new(1)), Arc::new(AtomicUsize::new(0)));
    let breaker = layer(1).layer(switchable(failing.clone(), calls));
    for _ in 0..2 {
        let _ = breaker.clone().oneshot(request("brain")).await;
    }
    failing.store(0, Ordering::SeqCst);
    assert!(
        breaker
            .clone()
            .oneshot(request("brain"))
            .await
            .unwrap_err()
            .is_circuit_open()
    );
    breaker.clone().oneshot(request("librarian")).await.unwrap();
}

/// A `tower-test` mock whose errors are the crate's.
#[derive(Clone)]
struct Mocked(mock::Mock<Message, Delivery>);

impl Service<Message> for Mocked {
    type Response = Delivery;
    type Error = Error;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<Delivery, Error>> + Send>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Error>> {
        self.0.poll_ready(cx).map_err(handler_error)
    }

    fn call(&mut self, message: Message) -> Self::Future {
        let future = self.0.call(message);
        Box::pin(async move { future.await.map_err(handler_error) })
    }
}

fn mocked(
    layer: &CircuitBreakerLayer,
) -> (CircuitBreaker<Mocked>, mock::Handle<Message, Delivery>) {
    let (service, handle) = mock::pair::<Message, Delivery>();
    (layer.layer(Mocked(service)), handle)
}

async fn trip(layer: &CircuitBreakerLayer, key: &str) {
    let failing =
        service_fn(|_: Message| async { Err::<Delivery, _>(Error::not_delivered("down")) });
    let breaker = layer.layer(failing);
    for _ in 0..2 {
        let _ = breaker.clone().oneshot(request(key)).await;
    }
    assert_eq!(layer.handle().state(key), Some(State::Open));
}

#[tokio::test(start_paused = true)]
async fn exactly_n_probes_under_64_concurrent_callers() {
    let layer = layer(3);
    trip(&layer, "brain").await;
    advance(Duration::from_secs(1)).await;

    let (breaker, mut handle) = mocked(&layer);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let breaker = breaker.clone();
        tasks.spawn(async move { breaker.oneshot(request("brain")).await });
    }
    let mut probes = Vec::new();
    let mut refused = 0;
    while probes.len() < 3 || refused < 61 {
        tokio::select! {
            Some(request) = handle.next_request() => probes.push(request),
            Some(done) = tasks.join_next() => {
                let error = done.unwrap().unwrap_err();
                assert_eq!(error.kind(), ErrorKind::CircuitOpen);
                refused += 1;
            }
        }
    }
    assert_eq!((probes.len(), refused), (3, 61));
    assert_eq!(layer.handle().state("brain"), Some(State::HalfOpen));
    for (_, reply) in probes {
        reply.send_response(Delivery::new(Route::Memory, None));
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap().unwrap();
    }
    assert_eq!(layer.handle().state("brain"), Some(State::Closed));
}

#[tokio::test(start_paused = true)]
async fn dropped_probe_frees_its_slot() {
    let layer = layer(1);
    trip(&layer, "brain").await;
    advance(Duration::from_secs(1)).await;
    let (mut breaker, mut handle) = mocked(&layer);

    breaker.ready().await.unwrap();
    let probe = breaker.call(request("brain"));
    let (_, _reply) = handle.next_request().await.unwrap();
    assert!(
        layer
            .layer(service_fn(|_: Message| async {
                Ok::<_, Error>(Delivery::new(Route::Memory, None))
            }))
            .oneshot(request("brain"))
            .await
            .unwrap_err()
            .is_circuit_open(),
        "the only probe slot is taken"
    );
    drop(probe);

    let ok = service_fn(|_: Message| async { Ok::<_, Error>(Delivery::new(Route::Memory, None)) });
    layer.layer(ok).oneshot(request("brain")).await.unwrap();
    assert_eq!(layer.handle().state("brain"), Some(State::Closed));
}

#[tokio::test(start_paused = true)]
async fn rejected_errors_do_not_trip() {
    let layer = layer(1);
    let rejecting =
        service_fn(|_: Message| async { Err::<Delivery, _>(Error::rejected("bad input")) });
    let breaker = layer.layer(rejecting);
    for _ in 0..10 {
        assert!(
            breaker
                .clone()
                .oneshot(request("brain"))
                .await
                .unwrap_err()
                .is_rejected()
        );
    }
    assert_eq!(layer.handle().state("brain"), Some(State::Closed));
}

#[tokio::test(start_paused = true)]
async fn key_limit_recycles_closed_circuits_then_overflows() {
    let layer = CircuitBreakerLayer::builder()
        .consecutive_failures(Some(1))
        .failure_rate(None)
        .max_keys(2)
        .build()
        .unwrap();
    let ok = service_fn(|_: Message| async { Ok::<_, Error>(Delivery::new(Route::Memory, None)) });
    let breaker = layer.layer(ok);
    for key in ["a", "b", "c"] {
        breaker.clone().oneshot(request(key)).await.unwrap();
    }
    let handle = layer.handle();
    assert_eq!(
        handle.state("a"),
        None,
        "least recently used closed circuit recycled"
    );
    assert_eq!(handle.state("c"), Some(State::Closed));

    handle.force_open("b");
    handle.force_open("c");
    breaker.clone().oneshot(request("d")).await.unwrap();
    assert_eq!(
        handle.state("d"),
        None,
        "no closed circuit to recycle: d shares the overflow circuit"
    );
    assert_eq!(handle.state(OVERFLOW_KEY), Some(State::Closed));
}

#[test]
fn invalid_settings_name_the_problem() {
    let error = CircuitBreakerLayer::builder()
        .consecutive_failures(None)
        .failure_rate(None)
        .build()
        .unwrap_err();
    assert!(error.is_config());
    assert!(error.to_string().contains("needs a trip rule"), "{error}");
    let error = CircuitBreakerLayer::builder()
        .failure_rate(Some((0.5, 5, 10)))
        .build()
        .unwrap_err();
    assert!(error.to_string().contains("min_calls"), "{error}");
    let error = CircuitBreakerLayer::builder()
        .half_open_probes(0)
        .build()
        .unwrap_err();
    assert!(error.is_config());
}
