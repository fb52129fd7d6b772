//! One side of a comparison and how it runs `n` calls.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use stage7_transport::{Delivery, Error, Message};
use tower::{Service, ServiceExt};

use super::series::{Series, histogram, record};

/// Runs `n` calls with `concurrency` in flight; every call must succeed.
pub(crate) async fn measure<F, Fut>(n: usize, concurrency: usize, call: F) -> Result<Series, String>
where
    F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (next, call) = (next.clone(), call.clone());
        workers.spawn(async move {
            let mut latencies = histogram();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, String>(latencies);
                }
                let t0 = Instant::now();
                call(i).await?;
                record(&mut latencies, t0.elapsed());
            }
        });
    }
    let mut series = Series::new();
    while let Some(done) = workers.join_next().await {
        let latencies = done.map_err(|e| format!("worker panicked: {e}"))??;
        series
            .latencies
            .add(&latencies)
            .map_err(|e| format!("merging histograms: {e}"))?;
    }
    series.elapsed = started.elapsed();
    series.calls = n as u64;
    Ok(series)
}

type CallFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
type Call = Arc<dyn Fn(usize) -> CallFuture + Send + Sync>;
pub(super) type RoundFuture = Pin<Box<dyn Future<Output = Result<Series, String>> + Send>>;
pub(super) type Round = Box<dyn Fn(usize, usize) -> RoundFuture + Send + Sync>;

/// One side of a comparison: a label and how to run a round of `n` calls
/// with `concurrency` in flight.
pub(crate) struct Side {
    pub(super) label: &'static str,
    pub(super) round: Round,
    /// Whether the calls run in this process, so its CPU time is theirs.
    pub(super) in_process: bool,
}

impl Side {
    /// A side making `call` (given the call's index) in this process. Every
    /// in-process side pays the same boxing, so the ratio is fair.
    pub(crate) fn new<F, Fut>(label: &'static str, call: F) -> Self
    where
        F: Fn(usize) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let call: Call = Arc::new(move |i| Box::pin(call(i)));
        Self {
            label,
            round: Box::new(move |n, concurrency| {
                let call = call.clone();
                Box::pin(measure(n, concurrency, move |i| call(i)))
            }),
            in_process: true,
        }
    }

    /// A side whose calls another process makes: `round(n, concurrency)`
    /// runs them and reports their latencies.
    pub(crate) fn external<F, Fut>(label: &'static str, round: F) -> Self
    where
        F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Series, String>> + Send + 'static,
    {
        Self {
            label,
            round: Box::new(move |n, concurrency| Box::pin(round(n, concurrency))),
            in_process: false,
        }
    }
}

/// A side that sends a copy of `template` with a [`fresh`] id through
/// `service`. A request must come back with a reply; anything else need
/// only be delivered.
pub(crate) fn service_side<S>(label: &'static str, service: S, template: Message) -> Side
where
    S: Service<Message, Response = Delivery, Error = Error> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
{
    let wants_reply = template.requires_sync();
    Side::new(label, move |_| {
        let call = service.clone().oneshot(fresh(&template));
        async move {
            let delivery = call.await.map_err(|e| e.to_string())?;
            if wants_reply && delivery.reply().is_none() {
                return Err("no reply".to_owned());
            }
            Ok(())
        }
    })
}

/// `template` with a fresh id, so the endpoint's de-duplication never
/// answers from its cache. Cloning a template rather than building a new
/// message keeps id generation (a UUID) out of the measurement: it is the
/// caller's cost, not the transport's.
pub(crate) fn fresh(template: &Message) -> Message {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    template.clone().with_id(format!("bench-{id}"))
}
