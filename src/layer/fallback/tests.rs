use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;
use tower::{Service, ServiceExt, service_fn};

use super::*;
use crate::ErrorClass;
use crate::route::Route;
use crate::transport::Delivery;

fn backend(
    route: Route,
    calls: Arc<AtomicUsize>,
    result: fn() -> Result<(), Error>,
) -> impl Service<Message, Response = Delivery, Error = Error, Future: Send> + Clone {
    service_fn(move |_: Message| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move {
            result()
                .map(|()| Delivery::new(route, None))
                .map_err(|e| e.with_route(route))
        }
    })
}

fn message() -> Message {
    Message::request("brain", json!({}))
}

struct Case {
    primary: fn() -> Result<(), Error>,
    secondary: fn() -> Result<(), Error>,
    deduplicate: bool,
}

async fn run(case: Case) -> (Result<Delivery, Error>, usize, usize) {
    let (p, s) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let fallback = Fallback::new(
        backend(Route::Amqp, p.clone(), case.primary),
        Some(backend(Route::Http, s.clone(), case.secondary)),
    )
    .receivers_deduplicate(case.deduplicate);
    let result = fallback.oneshot(message()).await;
    (result, p.load(Ordering::SeqCst), s.load(Ordering::SeqCst))
}

fn ok() -> Result<(), Error> {
    Ok(())
}
fn down() -> Result<(), Error> {
    Err(Error::not_delivered("connection refused"))
}
fn lost() -> Result<(), Error> {
    Err(Error::unknown_outcome(
        "connection lost with a reply pending",
    ))
}
fn no() -> Result<(), Error> {
    Err(Error::rejected("handler failed"))
}

#[tokio::test]
async fn primary_serves_when_it_can() {
    let (result, p, s) = run(Case {
        primary: ok,
        secondary: ok,
        deduplicate: true,
    })
    .await;
    assert_eq!(result.unwrap().route(), Route::Amqp);
    assert_eq!((p, s), (1, 0));
}

#[tokio::test]
async fn secondary_serves_when_the_primary_is_down() {
    let (result, p, s) = run(Case {
        primary: down,
        secondary: ok,
        deduplicate: false,
    })
    .await;
    assert_eq!(result.unwrap().route(), Route::Http);
    assert_eq!((p, s), (1, 1));
}

#[tokio::test]
async fn rejected_never_falls_back() {
    let (result, _, s) = run(Case {
        primary: no,
        secondary: ok,
        deduplicate: true,
    })
    .await;
    assert!(result.unwrap_err().is_rejected());
    assert_eq!(s, 0);
}

#[tokio::test]
async fn unknown_outcome_falls_back_only_with_deduplicating_receivers() {
    let (result, _, s) = run(Case {
        primary: lost,
        secondary: ok,
        deduplicate: true,
    })
    .await;
    assert_eq!(result.unwrap().route(), Route::Http);
    assert_eq!(s, 1);
    let (result, _, s) = run(Case {
        primary: lost,
        secondary: ok,
        deduplicate: false,
    })
    .await;
    assert!(result.unwrap_err().is_unknown_outcome());
    assert_eq!(s, 0);
}

#[tokio::test]
async fn both_failing_reports_both_and_stays_cautious() {
    let (result, _, _) = run(Case {
        primary: lost,
        secondary: down,
        deduplicate: true,
    })
    .await;
    let error = result.unwrap_err();
    assert_eq!(error.route(), Some(Route::Http));
    assert_eq!(
        error.class(),
        ErrorClass::UnknownOutcome,
        "the primary attempt may have arrived"
    );
    assert_eq!(
        error.fallback_from().and_then(Error::route),
        Some(Route::Amqp)
    );
    assert_eq!(
        error.to_string(),
        "http: connection refused (outcome unknown); after amqp: connection lost with a reply pending (outcome unknown)"
    );
}

#[tokio::test]
async fn without_a_secondary_it_passes_through() {
    let p = Arc::new(AtomicUsize::new(0));
    let fallback: Fallback<_, tower::util::BoxCloneSyncService<Message, Delivery, Error>> =
        Fallback::new(backend(Route::Amqp, p.clone(), down), None);
    let error = fallback.oneshot(message()).await.unwrap_err();
    assert!(error.is_not_delivered());
    assert!(error.fallback_from().is_none());
}

/// A service that is never ready.
#[derive(Clone)]
struct Stuck;

impl Service<Message> for Stuck {
    type Response = Delivery;
    type Error = Error;
    type Future = std::future::Ready<Result<Delivery, Error>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Error>> {
        std::task::Poll::Pending
    }

    fn call(&mut self, _: Message) -> Self::Future {
        panic!("called without being ready");
    }
}

#[tokio::test]
async fn a_primary_that_cannot_take_work_sends_calls_to_the_secondary() {
    let s = Arc::new(AtomicUsize::new(0));
    let fallback = Fallback::new(Stuck, Some(backend(Route::Http, s.clone(), ok)));
    let delivery = fallback.oneshot(message()).await.unwrap();
    assert_eq!(delivery.route(), Route::Http);
    assert_eq!(s.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_secondary_that_gets_ready_later_wakes_the_waiting_call() {
    let s = Arc::new(AtomicUsize::new(0));
    let limited = tower::limit::ConcurrencyLimit::new(backend(Route::Http, s.clone(), ok), 1);
    let mut holder = limited.clone();
    holder.ready().await.unwrap();
    let call = tokio::spawn(Fallback::new(Stuck, Some(limited)).oneshot(message()));
    tokio::task::yield_now().await;
    assert!(!call.is_finished(), "the only permit is held");
    drop(holder);
    let delivery = tokio::time::timeout(std::time::Duration::from_secs(10), call)
        .await
        .expect("the freed secondary wakes the call")
        .unwrap()
        .unwrap();
    assert_eq!(delivery.route(), Route::Http);
    assert_eq!(s.load(Ordering::SeqCst), 1);
}
