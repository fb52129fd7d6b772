use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use tokio::sync::Notify;
use tower::{Layer, Service, ServiceExt, service_fn};

use super::*;
use crate::{ErrorKind, MessageType};

fn counting(
    runs: Arc<AtomicUsize>,
    gate: Arc<Notify>,
) -> impl Service<Message, Response = Option<Message>, Error = Error, Future: Send> + Clone + Send {
    service_fn(move |m: Message| {
        let n = runs.fetch_add(1, Ordering::SeqCst);
        let gate = gate.clone();
        async move {
            gate.notified().await;
            Ok::<_, Error>(Some(m.reply(json!(n))))
        }
    })
}

#[tokio::test]
async fn concurrent_repeats_share_one_run_and_one_reply() {
    let (runs, gate) = (Arc::new(AtomicUsize::new(0)), Arc::new(Notify::new()));
    let handler = DedupLayer::new().layer(counting(runs.clone(), gate.clone()));
    let message = Message::request("x", json!(1));
    let first = tokio::spawn(handler.clone().oneshot(message.clone()));
    let second = tokio::spawn(handler.clone().oneshot(message.clone()));
    tokio::task::yield_now().await;
    gate.notify_waiters();
    let (a, b) = (
        first.await.unwrap().unwrap(),
        second.await.unwrap().unwrap(),
    );
    assert_eq!(a, b);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_dropped_first_run_still_finishes_and_the_repeat_gets_its_reply() {
    let (runs, gate) = (Arc::new(AtomicUsize::new(0)), Arc::new(Notify::new()));
    let mut handler = DedupLayer::new().layer(counting(runs.clone(), gate.clone()));
    let message = Message::request("x", json!(1));
    handler.ready().await.unwrap();
    let mut first = handler.call(message.clone());
    assert!(futures_poll_once(&mut first).await.is_none());
    drop(first);
    let repeat = tokio::spawn(handler.clone().oneshot(message));
    tokio::task::yield_now().await;
    gate.notify_waiters();
    let reply = repeat.await.unwrap().unwrap().unwrap();
    assert_eq!(reply.content(), Some(&json!(0)), "the first run's reply");
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "the handler ran once, to the end"
    );
}

async fn futures_poll_once(future: &mut ResponseFuture) -> Option<Result<Option<Message>, Error>> {
    std::future::poll_fn(|cx| match future.as_mut().poll(cx) {
        Poll::Ready(result) => Poll::Ready(Some(result)),
        Poll::Pending => Poll::Ready(None),
    })
    .await
}

#[tokio::test]
async fn rejections_are_remembered_too() {
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    let handler = DedupLayer::new().layer(service_fn(move |_: Message| {
        counted.fetch_add(1, Ordering::SeqCst);
        async { Err::<Option<Message>, _>("disk full") }
    }));
    let message = Message::new(MessageType::Statement);
    for _ in 0..3 {
        let error = handler.clone().oneshot(message.clone()).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Handler);
        assert!(error.to_string().contains("disk full"), "{error}");
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn transient_failures_are_not_remembered() {
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    let handler = DedupLayer::new().layer(service_fn(move |_: Message| {
        let n = counted.fetch_add(1, Ordering::SeqCst);
        async move {
            if n == 0 {
                Err(Error::not_delivered("the database is down"))
            } else {
                Ok(None)
            }
        }
    }));
    let message = Message::new(MessageType::Statement);
    let error = handler.clone().oneshot(message.clone()).await.unwrap_err();
    assert!(
        error.is_unknown_outcome(),
        "the handler ran: not 'not delivered' for the sender: {error}"
    );
    handler.clone().oneshot(message.clone()).await.unwrap();
    handler.clone().oneshot(message).await.unwrap();
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "the retry ran; the success is remembered"
    );
}

#[tokio::test]
async fn a_panicking_handler_answers_with_a_rejection() {
    let handler = DedupLayer::new().layer(service_fn(|_: Message| async {
        if true {
            panic!("bug in the handler");
        }
        Ok::<Option<Message>, Error>(None)
    }));
    let error = handler
        .oneshot(Message::new(MessageType::Statement))
        .await
        .unwrap_err();
    assert!(error.is_rejected());
    assert!(error.to_string().contains("bug in the handler"), "{error}");
}

#[tokio::test(start_paused = true)]
async fn memory_is_bounded_by_capacity_and_ttl() {
    let layer = DedupLayer::with_limits(3, Duration::from_secs(60));
    let handler = layer.layer(service_fn(|_: Message| async { Ok::<_, Error>(None) }));
    for _ in 0..5 {
        handler
            .clone()
            .oneshot(Message::new(MessageType::Statement))
            .await
            .unwrap();
    }
    assert_eq!(layer.len(), 3);
    tokio::time::advance(Duration::from_secs(61)).await;
    handler
        .clone()
        .oneshot(Message::new(MessageType::Statement))
        .await
        .unwrap();
    assert_eq!(layer.len(), 1);
}

#[test]
fn a_run_cut_short_by_runtime_shutdown_is_forgotten() {
    let slot = Arc::new(slot::Slot::new());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        assert!(matches!(slot.turn(), Turn::Run));
        drop(Run::new(slot.clone(), Box::pin(std::future::pending())));
    });
    drop(runtime);
    assert!(
        matches!(slot.turn(), Turn::Run),
        "a repeat must run the handler, not wait for a run that will never end"
    );
}
