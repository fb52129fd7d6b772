//! What the stack reports to your metrics recorder.
//!
//! The layers record through the [`metrics`](https://docs.rs/metrics) crate,
//! so any recorder works (Prometheus, StatsD, OpenTelemetry exporters…).
//! Install it **before** building the stack: the layers register their
//! handles once, when they are built, to keep the hot path free of lookups.
//!
//! This example installs `metrics-util`'s debugging recorder, makes three
//! calls that succeed and two while the peer refuses everything, and prints
//! every series the stack recorded.
//!
//! `cargo run --example metrics` prints them; `cargo test --example
//! metrics` checks the counts.

use std::collections::BTreeMap;
use std::convert::Infallible;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use serde_json::json;
use stage7_transport::layer::retry::RetryPolicy;
use stage7_transport::{Error, Fault, MemoryTransport, Message, Stack};
use tower::ServiceExt;

/// Each series as `name{label=value,…}` with its value: a count, a gauge
/// reading, or how many samples a histogram holds.
fn series(snapshotter: &Snapshotter) -> BTreeMap<String, String> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let labels: Vec<String> = key
                .labels()
                .map(|label| format!("{}={}", label.key(), label.value()))
                .collect();
            let value = match value {
                DebugValue::Counter(count) => count.to_string(),
                DebugValue::Gauge(reading) => reading.to_string(),
                DebugValue::Histogram(samples) => format!("{} samples", samples.len()),
            };
            (format!("{}{{{}}}", key.name(), labels.join(",")), value)
        })
        .collect()
}

async fn scenario(snapshotter: &Snapshotter) -> Result<BTreeMap<String, String>, Error> {
    let bus = MemoryTransport::new();
    bus.register(
        "brain-1",
        "Brain",
        tower::service_fn(
            |m: Message| async move { Ok::<_, Infallible>(Some(m.reply(json!("ok")))) },
        ),
    );
    let stack = Stack::builder(bus.clone())
        .retry(RetryPolicy::builder().max_retries(1))
        .build()?;

    for _ in 0..3 {
        stack
            .clone()
            .oneshot(Message::request("Brain", json!("?")))
            .await?;
    }
    bus.inject(Fault::Refuse);
    for _ in 0..2 {
        let refused = stack
            .clone()
            .oneshot(Message::request("Brain", json!("?")))
            .await;
        assert!(refused.is_err_and(|e| e.is_not_delivered()));
    }
    Ok(series(snapshotter))
}

/// The process's recorder, installed once.
fn install_recorder() -> Snapshotter {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("no other recorder is installed in this process");
    snapshotter
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let snapshotter = install_recorder();
    // Every series is registered up front; the ones still at zero are
    // left out here.
    for (series, value) in scenario(&snapshotter).await? {
        if value != "0" && value != "0 samples" {
            println!("{series} {value}");
        }
    }
    Ok(())
}

#[tokio::test]
async fn the_stack_counts_calls_attempts_and_retries() {
    let snapshotter = install_recorder();
    let series = scenario(&snapshotter).await.expect("the scenario runs");
    let value = |name: &str| series.get(name).map(String::as_str);
    assert_eq!(
        value("stage7_transport_calls_total{route=memory,outcome=ok}"),
        Some("3"),
        "{series:#?}"
    );
    assert_eq!(
        value("stage7_transport_calls_total{route=memory,outcome=not_delivered}"),
        Some("2")
    );
    assert_eq!(
        value("stage7_transport_attempts_total{route=memory,outcome=not_delivered}"),
        Some("4"),
        "each refused call was tried twice"
    );
    assert_eq!(value("stage7_transport_retries_total{}"), Some("2"));
    assert_eq!(
        value("stage7_transport_call_duration_seconds{route=memory}"),
        Some("5 samples")
    );
}
