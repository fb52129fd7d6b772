//! Interoperability with a peer that follows the TypeScript services'
//! protocol, written with Node's amqplib (`tests/interop/peer.js`; scripts/test
//! installs the pinned amqplib).

mod support;

use std::convert::Infallible;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use stage7_transport::message::BROADCAST;
use stage7_transport::{Config, Entity, Message, Route};
use support::{Vhost, amqp_url, broker_config, caller, require_broker, unique};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

fn peer_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

fn node(args: &[&str]) -> Command {
    let dir = peer_dir();
    assert!(
        dir.join("node_modules/amqplib").is_dir(),
        "amqplib is not installed for the interop tests: run `npm ci --prefix tests/interop` \
         (scripts/test does)"
    );
    let mut command = Command::new("node");
    command
        .arg(dir.join("peer.js"))
        .args(args)
        .env("RABBITMQ_URL", amqp_url())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    command
}

async fn first_line(child: &mut Child) -> String {
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("the peer answers within 20 s")
        .expect("readable output")
        .expect("a line of output");
    child.stdout = None;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    line
}

/// Starts the peer, or fails the test saying how to install Node.
fn spawn(mut command: Command) -> Child {
    command.spawn().unwrap_or_else(|e| {
        panic!(
            "cannot run node for the interop tests ({e}): install Node.js and npm \
             (`apt-get install nodejs npm`), then run `npm ci --prefix tests/interop`, \
             or run `scripts/test`, which does both"
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_call_reaches_an_amqplib_peer() {
    require_broker().await;
    let id = unique("nodepeer");
    let mut peer = spawn(node(&["serve", &id, "NodePeer"]));
    assert_eq!(first_line(&mut peer).await, "READY");

    let caller = caller(broker_config(), &[]).await;
    for recipient in [id.as_str(), "nodepeer"] {
        let delivery = caller
            .call(Message::request(recipient, json!({"n": 1})))
            .await
            .unwrap();
        assert_eq!(delivery.route(), Route::Amqp);
        let reply = delivery.into_reply().unwrap();
        assert_eq!(reply.sender(), id);
        assert_eq!(
            reply.content(),
            Some(&json!({"echo": {"n": 1}, "by": "amqplib"}))
        );
    }
    caller.shutdown().await.unwrap();
}

async fn echo_entity(id: &str, config: Config) -> Entity {
    let echo = tower::service_fn(|message: Message| async move {
        let content = message.content().cloned().unwrap_or_default();
        Ok::<_, Infallible>(
            message
                .requires_sync()
                .then(|| message.reply(json!({"echo": content, "by": "rust"}))),
        )
    });
    support::entity("Echo", id, echo, config)
        .start()
        .await
        .unwrap()
}

/// In a vhost of its own: a request to `all` reaches every entity there,
/// and here only this one answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entity_answers_an_amqplib_peer_by_id_type_and_all() {
    require_broker().await;
    let vhost = Vhost::create("interop");
    let id = unique("echo");
    let entity = echo_entity(&id, vhost.config()).await;
    assert!(entity.is_consuming());
    for recipient in [id.as_str(), "Echo", "echo", BROADCAST] {
        let mut command = node(&["call", recipient, r#"{"question": 42}"#]);
        command.env("RABBITMQ_URL", vhost.url());
        let mut peer = spawn(command);
        let reply: Value = serde_json::from_str(&first_line(&mut peer).await).unwrap();
        assert_eq!(reply["type"], "response", "to {recipient}");
        assert_eq!(reply["recipient"], "node-peer");
        assert_eq!(
            reply["content"],
            json!({"echo": {"question": 42}, "by": "rust"})
        );
        assert!(peer.wait().await.unwrap().success());
    }
    entity.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_amqplib_event_reaches_an_entity() {
    require_broker().await;
    let id = unique("listener");
    let (seen, mut received) = tokio::sync::mpsc::unbounded_channel();
    let listener = tower::service_fn(move |message: Message| {
        let _ = seen.send(message);
        async { Ok::<_, Infallible>(None) }
    });
    let entity = support::entity("Listener", &id, listener, broker_config())
        .start()
        .await
        .unwrap();
    let mut peer = spawn(node(&["send", &id, r#"{"status": "done"}"#]));
    let sent = first_line(&mut peer).await;
    let message = tokio::time::timeout(Duration::from_secs(10), received.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sent, format!("SENT {}", message.id()));
    assert_eq!(message.sender(), "node-peer");
    assert_eq!(message.content(), Some(&json!({"status": "done"})));
    entity.shutdown().await.unwrap();
}
