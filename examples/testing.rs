//! Testing your own service with the in-memory transport.
//!
//! `MissionPlanner` is "your" code: it takes any [`Transport`], so production
//! passes the AMQP/HTTP stack and tests pass a [`MemoryTransport`] with
//! fake peers registered on it. Faults injected into the bus let the test
//! check the planner's own fallback: here, a cached plan when the Brain is
//! unreachable.
//!
//! `cargo run --example testing` runs the scenario and prints what
//! happened; `cargo test --example testing` runs it as a test.

use std::convert::Infallible;

use serde_json::{Value, json};
use stage7_transport::{Fault, MemoryTransport, Message, Stack, Transport};
use tower::ServiceExt;

/// Your service: asks the Brain for a plan, falls back to a cached one.
struct MissionPlanner<T> {
    transport: T,
    cached_plan: Value,
}

impl<T: Transport> MissionPlanner<T> {
    async fn plan(&self, goal: &str) -> (Value, &'static str) {
        let request = Message::request("Brain", json!({"goal": goal})).with_sender("planner-1");
        match self.transport.clone().oneshot(request).await {
            Ok(delivery) => {
                let plan = delivery
                    .into_reply()
                    .and_then(|r| r.content().cloned())
                    .unwrap_or_default();
                (plan, "brain")
            }
            Err(error) if error.is_not_delivered() => (self.cached_plan.clone(), "cache"),
            Err(error) => panic!("unexpected failure: {error}"),
        }
    }
}

/// A fake Brain answering with a one-step plan.
fn fake_brain() -> impl stage7_transport::Handler {
    tower::service_fn(|request: Message| async move {
        let goal = request
            .content()
            .and_then(|c| c["goal"].as_str())
            .unwrap_or("?")
            .to_owned();
        Ok::<_, Infallible>(Some(
            request.reply(json!({"steps": [format!("research {goal}")]})),
        ))
    })
}

async fn scenario() -> Vec<(Value, &'static str)> {
    let bus = MemoryTransport::new();
    bus.register("brain-1", "Brain", fake_brain());
    let transport = Stack::builder(bus.clone())
        .retry(stage7_transport::layer::retry::RetryPolicy::builder().max_retries(0))
        .build()
        .expect("valid settings");
    let planner = MissionPlanner {
        transport,
        cached_plan: json!({"steps": ["use the last known plan"]}),
    };

    let mut outcomes = vec![planner.plan("rust transports").await];
    bus.inject(Fault::Refuse);
    outcomes.push(planner.plan("rust transports").await);
    bus.clear_faults();
    outcomes.push(planner.plan("tower layers").await);
    outcomes
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    for (plan, source) in scenario().await {
        println!("plan from {source}: {plan}");
    }
}

#[tokio::test]
async fn planner_falls_back_to_the_cache_only_while_the_brain_is_unreachable() {
    let outcomes = scenario().await;
    let sources: Vec<_> = outcomes.iter().map(|(_, source)| *source).collect();
    assert_eq!(sources, ["brain", "cache", "brain"]);
    assert_eq!(
        outcomes[0].0,
        json!({"steps": ["research rust transports"]})
    );
    assert_eq!(outcomes[2].0, json!({"steps": ["research tower layers"]}));
}
