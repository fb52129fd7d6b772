//! `stage7 bench stack`: the full stack over a bare service, in process.
//!
//! Both sides are called in a loop on one task — `ready().await` then
//! `call()` on the same long-lived service, as a caller that owns its
//! transport does — in interleaved rounds. The bare service answers at once,
//! so the difference is the stack's own cost per call.

use std::future::ready;
use std::time::Instant;

use stage7_transport::{Delivery, Error, Message, Route, Stack};
use tower::{Service, ServiceExt, service_fn};

use super::Options;
use super::harness::{Comparison, Series};

fn bare() -> impl Service<Message, Response = Delivery, Error = Error, Future: Send>
+ Clone
+ Send
+ Sync
+ 'static {
    service_fn(|_: Message| ready(Ok::<_, Error>(Delivery::new(Route::Memory, None))))
}

async fn run_series<S>(
    service: &mut S,
    message: &Message,
    n: usize,
    into: &mut Series,
) -> Result<f64, String>
where
    S: Service<Message, Response = Delivery, Error = Error>,
{
    let started = Instant::now();
    for _ in 0..n {
        let t0 = Instant::now();
        service.ready().await.map_err(|e| e.to_string())?;
        service
            .call(message.clone())
            .await
            .map_err(|e| e.to_string())?;
        into.record(t0.elapsed());
    }
    let elapsed = started.elapsed();
    into.add_elapsed(elapsed, n);
    Ok(n as f64 / elapsed.as_secs_f64().max(f64::MIN_POSITIVE))
}

pub(crate) async fn run(options: &Options) -> Result<Vec<Comparison>, String> {
    let mut baseline = bare();
    let mut stack = Stack::builder(bare())
        .secondary(bare())
        .build()
        .map_err(|e| e.to_string())?;
    let message = Message::request("bench", serde_json::json!({}));
    let (mut base, mut ours) = (Series::new(), Series::new());
    let rounds = options.rounds.max(1);
    let per_round = (options.n / rounds).max(1);
    run_series(&mut baseline, &message, per_round / 5, &mut Series::new()).await?;
    run_series(&mut stack, &message, per_round / 5, &mut Series::new()).await?;
    let mut round_rates = vec![Vec::with_capacity(rounds), Vec::with_capacity(rounds)];
    for round in 1..=rounds {
        eprintln!("  [stack] round {round}/{rounds} ({per_round} calls per side)");
        round_rates[0].push(run_series(&mut baseline, &message, per_round, &mut base).await?);
        round_rates[1].push(run_series(&mut stack, &message, per_round, &mut ours).await?);
    }
    Ok(vec![Comparison {
        scenario: "stack".to_owned(),
        concurrency: 1,
        baseline: ("baseline".to_owned(), base),
        candidates: vec![("stack".to_owned(), ours)],
        round_rates,
        notes: Vec::new(),
    }])
}
