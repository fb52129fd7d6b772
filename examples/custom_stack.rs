//! Tuning the stack per service, and composing the layers by hand.
//!
//! A Librarian calls two peers that need different treatment:
//!
//! * the **Brain** answers requests the Librarian waits for: the default
//!   stack from [`StackBuilder`], tuned — a shorter deadline, a breaker
//!   that opens after three failures in a row, two retries at most;
//! * the **Logger** only takes events: a stack built by hand with
//!   `tower::ServiceBuilder`, mixing this crate's layers with tower's own
//!   (a concurrency limit), never retrying a message whose fate is unknown,
//!   and a breaker that opens on a failure *rate*.
//!
//! Both run over the in-memory bus here; in production the same code takes
//! an [`AmqpTransport`](stage7_transport::AmqpTransport) or an
//! [`HttpTransport`](stage7_transport::HttpTransport). The breaker handles
//! let an operator force a circuit open (here: the Logger is being
//! redeployed) and hand it back to the breaker's own judgement.
//!
//! `cargo run --example custom_stack` prints what happens; `cargo test
//! --example custom_stack` checks it.

use std::convert::Infallible;
use std::time::Duration;

use serde_json::json;
use stage7_transport::layer::circuit_breaker::CircuitBreakerLayer;
use stage7_transport::layer::deadline::DeadlineLayer;
use stage7_transport::layer::metrics::MetricsLayer;
use stage7_transport::layer::retry::{RetryLayer, RetryPolicy};
use stage7_transport::layer::timeout::TimeoutLayer;
use stage7_transport::{BranchBuilder, Error, MemoryTransport, Message, MessageType, Route, Stack};
use tower::{ServiceBuilder, ServiceExt};

/// What each call did, in order.
#[derive(Debug, PartialEq)]
enum Outcome {
    Reply(serde_json::Value),
    Logged,
    CircuitOpen,
}

async fn scenario() -> Result<Vec<Outcome>, Error> {
    let bus = MemoryTransport::new();
    bus.register(
        "brain-1",
        "Brain",
        tower::service_fn(|m: Message| async move {
            Ok::<_, Infallible>(Some(m.reply(json!({"answer": 42}))))
        }),
    );
    bus.register(
        "logger-1",
        "Logger",
        tower::service_fn(|_: Message| async { Ok::<_, Infallible>(None) }),
    );

    let brain = Stack::builder(bus.clone())
        .primary_branch(
            BranchBuilder::new(Route::Memory)
                .attempt_timeout(Duration::from_secs(2))
                .breaker(CircuitBreakerLayer::builder().consecutive_failures(Some(3))),
        )
        .deadline(Duration::from_secs(10))
        .retry(RetryPolicy::builder().max_retries(2))
        .build()?;

    let logger_breaker = CircuitBreakerLayer::builder()
        .name("logger")
        .consecutive_failures(None)
        // Open when half the calls of the last 20 failed, after 10 calls.
        .failure_rate(Some((0.5, 20, 10)))
        .break_duration(Duration::from_secs(1))
        .max_break(Duration::from_secs(30))
        .build()?;
    let logger_circuits = logger_breaker.handle();
    let logger = ServiceBuilder::new()
        .layer(MetricsLayer::call())
        .layer(DeadlineLayer::new(Duration::from_millis(500)))
        .layer(RetryLayer::new(
            RetryPolicy::builder()
                .receivers_deduplicate(false)
                .build()?,
        ))
        .layer(tower::limit::ConcurrencyLimitLayer::new(32))
        .layer(logger_breaker)
        .layer(TimeoutLayer::new(Duration::from_millis(200)))
        .service(bus.clone());

    let mut outcomes = Vec::new();
    let question = Message::request("Brain", json!({"question": "?"})).with_sender("librarian-1");
    let reply = brain.clone().oneshot(question).await?.into_reply();
    outcomes.push(Outcome::Reply(
        reply.and_then(|r| r.content().cloned()).unwrap_or_default(),
    ));

    let event = || {
        Message::new(MessageType::Statement)
            .with_recipient("Logger")
            .with_sender("librarian-1")
            .with_content(json!({"stored": "book-7"}))
    };
    logger.clone().oneshot(event()).await?;
    outcomes.push(Outcome::Logged);

    logger_circuits.force_open("Logger");
    match logger.clone().oneshot(event()).await {
        Err(error) if error.is_circuit_open() => outcomes.push(Outcome::CircuitOpen),
        other => panic!("the forced-open circuit should refuse at once, got {other:?}"),
    }
    logger_circuits.reset("Logger");
    logger.oneshot(event()).await?;
    outcomes.push(Outcome::Logged);
    Ok(outcomes)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    for outcome in scenario().await? {
        println!("{outcome:?}");
    }
    Ok(())
}

#[tokio::test]
async fn each_service_gets_its_own_tuning_and_operators_can_force_a_circuit() {
    let outcomes = scenario().await.expect("the scenario runs");
    assert_eq!(
        outcomes,
        [
            Outcome::Reply(json!({"answer": 42})),
            Outcome::Logged,
            Outcome::CircuitOpen,
            Outcome::Logged,
        ]
    );
}
