use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;
use tower::{Service, ServiceExt, service_fn};

use super::*;
use crate::route::Route;
use crate::transport::Delivery;
use crate::{ErrorClass, ErrorKind};

/// Fails with `error()` for the first `failures` calls, counting calls.
fn flaky(
    failures: usize,
    calls: Arc<AtomicUsize>,
    error: fn() -> Error,
) -> impl Service<Message, Response = Delivery, Error = Error, Future: Send> + Clone {
    service_fn(move |_: Message| {
        let n = calls.fetch_add(1, Ordering::SeqCst);
        async move {
            if n < failures {
                Err(error())
            } else {
                Ok(Delivery::new(Route::Memory, None))
            }
        }
    })
}

fn policy() -> RetryPolicyBuilder {
    RetryPolicy::builder().jitter(false).max_retries(3)
}

fn message() -> Message {
    Message::request("brain", json!({}))
}

#[tokio::test(start_paused = true)]
async fn not_delivered_is_retried_on_the_backoff() {
    let calls = Arc::new(AtomicUsize::new(0));
    let retry = Retry::new(
        flaky(2, calls.clone(), || Error::not_delivered("refused")),
        policy().build().unwrap(),
    );
    let started = Instant::now();
    retry.oneshot(message()).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    // 10 ms then 20 ms.
    assert_eq!(started.elapsed(), Duration::from_millis(30));
}

#[tokio::test(start_paused = true)]
async fn gives_up_after_max_retries_with_the_last_error() {
    let calls = Arc::new(AtomicUsize::new(0));
    let retry = Retry::new(
        flaky(100, calls.clone(), || Error::not_delivered("refused")),
        policy().build().unwrap(),
    );
    let error = retry.oneshot(message()).await.unwrap_err();
    assert!(error.is_not_delivered());
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[tokio::test(start_paused = true)]
async fn rejected_is_never_retried() {
    let calls = Arc::new(AtomicUsize::new(0));
    let retry = Retry::new(
        flaky(100, calls.clone(), || Error::rejected("bad input")),
        policy().build().unwrap(),
    );
    assert!(retry.oneshot(message()).await.unwrap_err().is_rejected());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn circuit_open_is_never_retried() {
    let calls = Arc::new(AtomicUsize::new(0));
    let open = || Error::circuit_open("brain", Some(Duration::from_millis(5)));
    let retry = Retry::new(flaky(100, calls.clone(), open), policy().build().unwrap());
    assert!(
        retry
            .oneshot(message())
            .await
            .unwrap_err()
            .is_circuit_open()
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn unknown_outcome_needs_deduplicating_receivers() {
    let calls = Arc::new(AtomicUsize::new(0));
    let lost = || Error::unknown_outcome("connection lost after publish");
    let retry = Retry::new(flaky(1, calls.clone(), lost), policy().build().unwrap());
    retry.oneshot(message()).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    calls.store(0, Ordering::SeqCst);
    let strict = policy().receivers_deduplicate(false).build().unwrap();
    let retry = Retry::new(flaky(1, calls.clone(), lost), strict);
    let error = retry.oneshot(message()).await.unwrap_err();
    assert_eq!(error.class(), ErrorClass::UnknownOutcome);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn never_exceeds_its_budget() {
    let calls = Arc::new(AtomicUsize::new(0));
    let budget = Arc::new(RetryBudget::new(0.25, 0, 100).unwrap());
    let retry = Retry::new(
        flaky(usize::MAX, calls.clone(), || Error::not_delivered("down")),
        policy().budget(budget.clone()).build().unwrap(),
    );
    // Eight calls deposit two tokens: two retries in all, whatever max_retries says.
    for _ in 0..8 {
        assert!(retry.clone().oneshot(message()).await.is_err());
    }
    assert_eq!(calls.load(Ordering::SeqCst), 8 + 2);
    assert_eq!(budget.available(), 0);
}

#[tokio::test(start_paused = true)]
async fn waits_at_least_retry_after() {
    let calls = Arc::new(AtomicUsize::new(0));
    let busy = || {
        Error::new(ErrorKind::Overloaded, ErrorClass::NotDelivered, "429")
            .with_retry_after(Duration::from_millis(700))
    };
    let retry = Retry::new(flaky(1, calls.clone(), busy), policy().build().unwrap());
    let started = Instant::now();
    retry.oneshot(message()).await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_millis(700));
}

#[tokio::test(start_paused = true)]
async fn does_not_start_a_wait_past_the_deadline() {
    let calls = Arc::new(AtomicUsize::new(0));
    let slow_backoff = policy()
        .min_delay(Duration::from_secs(5))
        .max_delay(Duration::from_secs(5))
        .build()
        .unwrap();
    let retry = Retry::new(
        flaky(100, calls.clone(), || Error::not_delivered("down")),
        slow_backoff,
    );
    let mut message = message();
    message.set_deadline(Some(Instant::now() + Duration::from_secs(1)));
    let started = Instant::now();
    assert!(retry.oneshot(message).await.unwrap_err().is_not_delivered());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(started.elapsed(), Duration::ZERO);
}

/// Ready for its first call only; every call times out.
#[derive(Clone)]
struct ReadyOnce(Arc<AtomicUsize>);

impl Service<Message> for ReadyOnce {
    type Response = Delivery;
    type Error = Error;
    type Future = std::future::Ready<Result<Delivery, Error>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Error>> {
        if self.0.load(Ordering::SeqCst) == 0 {
            std::task::Poll::Ready(Ok(()))
        } else {
            std::task::Poll::Pending
        }
    }

    fn call(&mut self, _: Message) -> Self::Future {
        self.0.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Err(Error::timeout("no answer")))
    }
}

#[tokio::test(start_paused = true)]
async fn a_retry_never_sent_reports_the_last_attempts_outcome() {
    let calls = Arc::new(AtomicUsize::new(0));
    let retry = Retry::new(ReadyOnce(calls.clone()), policy().build().unwrap());
    let mut message = message();
    message.set_deadline(Some(Instant::now() + Duration::from_secs(1)));
    let error = retry.oneshot(message).await.unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");
    assert_eq!(error.class(), ErrorClass::UnknownOutcome, "{error}");
}

#[tokio::test(start_paused = true)]
async fn the_policy_drives_towers_retry_too() {
    let calls = Arc::new(AtomicUsize::new(0));
    let retry = tower::retry::Retry::new(
        policy().build().unwrap(),
        flaky(2, calls.clone(), || Error::not_delivered("refused")),
    );
    retry.oneshot(message()).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[test]
fn invalid_settings_are_config_errors() {
    assert!(
        RetryPolicy::builder()
            .factor(0.5)
            .build()
            .unwrap_err()
            .is_config()
    );
    let error = RetryPolicy::builder()
        .min_delay(Duration::from_secs(2))
        .max_delay(Duration::from_secs(1))
        .build()
        .unwrap_err();
    assert!(error.to_string().contains("exceeds max_delay"), "{error}");
}
