//! Two entities in one process: one asks, one answers.
//!
//! `cargo run --example quickstart` starts an `Echo` entity and a `Caller`
//! entity, sends a synchronous request and an asynchronous event from one to
//! the other, and prints which route carried each. With a RabbitMQ at
//! `RABBITMQ_URL` (default `amqp://guest:guest@127.0.0.1:5672/%2f`) the
//! messages go over AMQP; with none, over HTTP, and it says so.

use std::convert::Infallible;
use std::time::Duration;

use serde_json::json;
use stage7_transport::url::redact_url;
use stage7_transport::{Config, Entity, Message, MessageType, Route};
use tokio::sync::mpsc;

/// What the quickstart did: the route of the request and of the event.
#[derive(Debug)]
struct Outcome {
    broker: bool,
    request: Route,
    event: Route,
}

async fn quickstart(config: Config) -> Result<Outcome, stage7_transport::Error> {
    let (events, mut received) = mpsc::unbounded_channel();
    let echo_handler = tower::service_fn(move |message: Message| {
        let events = events.clone();
        async move {
            if message.requires_sync() {
                let content = message.content().cloned().unwrap_or_default();
                Ok::<_, Infallible>(Some(message.reply(json!({"echo": content}))))
            } else {
                let _ = events.send(message);
                Ok(None)
            }
        }
    });
    let echo = Entity::builder("Echo", echo_handler)
        .id("echo-1")
        .config(config.clone())
        .start()
        .await?;
    let broker = echo.amqp().is_connected();
    println!(
        "broker   {}",
        if broker {
            format!("connected at {}", redact_url(config.rabbitmq_url.expose()))
        } else {
            format!(
                "not reachable at {}: using HTTP",
                redact_url(config.rabbitmq_url.expose())
            )
        }
    );
    println!("echo-1   listening at {}", echo.url());

    let caller = Entity::builder(
        "Caller",
        tower::service_fn(|_: Message| async { Ok::<_, Infallible>(None) }),
    )
    .id("caller-1")
    .config(config)
    .route("echo-1", echo.url())
    .route("Echo", echo.url())
    .start()
    .await?;
    let request = caller
        .call(Message::request("echo-1", json!({"text": "hello, Stage7"})))
        .await?;
    let reply = request
        .reply()
        .and_then(|r| r.content())
        .cloned()
        .unwrap_or_default();
    println!(
        "request  caller-1 -> echo-1 via {}: reply {reply}",
        request.route()
    );
    let event = Message::new(MessageType::StatusUpdate)
        .with_recipient("Echo")
        .with_content(json!({"status": "done"}));
    let sent = caller.send(event).await?;
    let arrived = tokio::time::timeout(Duration::from_secs(10), received.recv())
        .await
        .ok()
        .flatten();
    println!(
        "event    caller-1 -> Echo via {}: {}",
        sent.route(),
        match &arrived {
            Some(message) => format!("received by echo-1 from {}", message.sender()),
            None => "not received".to_owned(),
        }
    );

    caller.shutdown().await?;
    echo.shutdown().await?;
    Ok(Outcome {
        broker,
        request: request.route(),
        event: if arrived.is_some() {
            sent.route()
        } else {
            Route::Memory
        },
    })
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("quickstart: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match quickstart(config).await {
        Ok(outcome) => {
            let via = if outcome.broker {
                "RabbitMQ"
            } else {
                "HTTP, the fallback"
            };
            println!(
                "done     request over {}, event over {}: {via}",
                outcome.request, outcome.event
            );
            std::process::ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("quickstart: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_uses_amqp_when_the_broker_answers() {
    let config = Config::from_env().unwrap();
    let outcome = quickstart(config).await.unwrap();
    assert!(
        outcome.broker,
        "this test needs RabbitMQ at RABBITMQ_URL (default 127.0.0.1:5672): start it with \
         `rabbitmq-server -detached` or run scripts/test"
    );
    assert_eq!((outcome.request, outcome.event), (Route::Amqp, Route::Amqp));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_works_over_http_without_a_broker() {
    let config =
        Config::from_vars([("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:1/%2f")]).unwrap();
    let outcome = quickstart(config).await.unwrap();
    assert!(!outcome.broker);
    assert_eq!((outcome.request, outcome.event), (Route::Http, Route::Http));
}
