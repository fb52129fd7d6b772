//! Entities end to end: RabbitMQ first, HTTP as the fallback, on a real
//! broker and real sockets.

mod support;

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use stage7_transport::amqp::topology::queue_name;
use stage7_transport::defaults;
use stage7_transport::message::BROADCAST;
use stage7_transport::{Config, Entity, ErrorClass, Message, MessageType, Route};
use support::peer::Peer;
use support::proxy::Mode;
use support::{
    Ledger, Vhost, broker_config, caller, declared_with, eventually, idle, millis, recorder,
    refused_broker, require_broker, unique,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// An entity that answers requests with their content and records every
/// message it handles.
async fn echo(id: &str, config: Config, ledger: Ledger) -> Entity {
    support::entity("Echo", id, recorder(ledger), config)
        .shutdown_grace(Duration::from_secs(5))
        .start()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_broker_up_calls_go_over_amqp() {
    require_broker().await;
    let ledger = Ledger::default();
    let id = unique("echo");
    let callee = echo(&id, broker_config(), ledger.clone()).await;
    let caller = caller(broker_config(), &[(&id, callee.url())]).await;
    assert!(callee.is_consuming());

    let reply = caller
        .call(Message::request(&id, json!("hi")))
        .await
        .unwrap();
    assert_eq!(reply.route(), Route::Amqp);
    let reply = reply.into_reply().unwrap();
    assert_eq!(reply.content(), Some(&json!("hi")));
    assert_eq!(reply.sender(), id);
    let sent = caller
        .send(Message::new(MessageType::Statement).with_recipient(&id))
        .await
        .unwrap();
    assert_eq!(sent.route(), Route::Amqp);

    caller.shutdown().await.unwrap();
    callee.shutdown().await.unwrap();
    assert_eq!(ledger.runs().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_broker_calls_use_http_from_the_first_and_move_to_amqp_when_it_appears() {
    require_broker().await;
    let (proxy, config) = refused_broker().await;
    let ledger = Ledger::default();
    let id = unique("echo");
    let callee = echo(&id, config.clone(), ledger.clone()).await;
    let caller = caller(config, &[(&id, callee.url())]).await;

    let first = caller.call(Message::request(&id, json!(1))).await.unwrap();
    assert_eq!(
        first.route(),
        Route::Http,
        "the first call already succeeds, over HTTP"
    );

    proxy.set(Mode::Pass);
    let mut routes = Vec::new();
    for n in 0..2000 {
        let delivery = caller.call(Message::request(&id, json!(n))).await.unwrap();
        routes.push(delivery.route());
        if delivery.route() == Route::Amqp {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        routes.last(),
        Some(&Route::Amqp),
        "calls move to AMQP once the broker answers"
    );
    for n in 0..20 {
        let delivery = caller.call(Message::request(&id, json!(n))).await.unwrap();
        assert_eq!(delivery.route(), Route::Amqp, "and stay there (call {n})");
    }
    caller.shutdown().await.unwrap();
    callee.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entity_reaches_itself_over_http_when_amqp_cannot_serve() {
    let (_proxy, config) = refused_broker().await;
    let ledger = Ledger::default();
    let id = unique("echo");
    let entity = echo(&id, config, ledger.clone()).await;

    let delivery = entity
        .call(Message::request(&id, json!("me")))
        .await
        .unwrap();
    assert_eq!(delivery.route(), Route::Http);
    assert_eq!(delivery.into_reply().unwrap().content(), Some(&json!("me")));
    entity.shutdown().await.unwrap();
    assert_eq!(ledger.runs().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_http_peer_does_not_matter_while_amqp_serves() {
    require_broker().await;
    let ledger = Ledger::default();
    let id = unique("echo");
    let callee = echo(&id, broker_config(), ledger.clone()).await;
    let dead = "http://127.0.0.1:1";
    let caller = caller(broker_config(), &[(&id, dead)]).await;
    for n in 0..20 {
        let delivery = caller.call(Message::request(&id, json!(n))).await.unwrap();
        assert_eq!(delivery.route(), Route::Amqp);
    }
    caller.shutdown().await.unwrap();
    callee.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_both_paths_down_the_error_says_so_and_nothing_runs() {
    require_broker().await;
    let nobody = unique("nobody");
    let caller = caller(broker_config(), &[(&nobody, "http://127.0.0.1:1")]).await;
    let error = caller
        .call(Message::request(&nobody, json!(1)))
        .await
        .unwrap_err();
    assert_eq!(error.class(), ErrorClass::NotDelivered, "{error}");
    assert_eq!(error.route(), Some(Route::Http));
    let primary = error.fallback_from().expect("the AMQP failure is kept");
    assert_eq!(primary.route(), Some(Route::Amqp));
    let text = error.to_string();
    assert!(text.contains(&nobody), "{text}");
    caller.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_under_load_loses_nothing_acknowledged() {
    require_broker().await;
    let ledger = Ledger::default();
    let id = unique("worker");
    let slow = {
        let ledger = ledger.clone();
        tower::service_fn(move |message: Message| {
            let ledger = ledger.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                ledger.record(message.id());
                Ok::<_, Infallible>(None)
            }
        })
    };
    let first = support::entity("Worker", &id, slow.clone(), broker_config())
        .shutdown_grace(Duration::from_secs(10))
        .start()
        .await
        .unwrap();
    let caller = caller(broker_config(), &[]).await;

    let mut accepted = Vec::new();
    for n in 0..300 {
        let event = Message::new(MessageType::Statement)
            .with_recipient(&id)
            .with_content(json!(n));
        let event_id = event.id().to_owned();
        caller.send(event).await.unwrap();
        accepted.push(event_id);
        if n == 100 {
            first.shutdown().await.unwrap();
        }
    }
    let second = support::entity("Worker", &id, slow, broker_config())
        .start()
        .await
        .unwrap();
    // Whether they all arrived is asserted below, with the count lost.
    eventually(Duration::from_secs(20), || {
        let runs = ledger.runs();
        accepted.iter().all(|id| runs.contains_key(id))
    })
    .await;
    let runs = ledger.runs();
    let lost = accepted.iter().filter(|id| !runs.contains_key(*id)).count();
    assert_eq!(lost, 0, "every message the broker acknowledged was handled");
    assert!(runs.values().all(|n| *n == 1), "and none twice");
    second.shutdown().await.unwrap();
    caller.shutdown().await.unwrap();
}

/// One request the PostOffice received, and whether it accepted it.
struct Registration {
    head: String,
    body: String,
    accepted: bool,
}

/// A tiny PostOffice: refuses the first registration, accepts the next.
/// Reports every complete request it receives; the test checks them.
async fn postoffice() -> (String, tokio::sync::mpsc::UnboundedReceiver<Registration>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (received, registrations) = tokio::sync::mpsc::unbounded_channel();
    let attempts = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let (received, attempts) = (received.clone(), attempts.clone());
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                loop {
                    let n = socket.read(&mut buffer).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buffer[..n]);
                    let text = String::from_utf8_lossy(&request).into_owned();
                    let Some((head, body)) = text.split_once("\r\n\r\n") else {
                        continue;
                    };
                    let length = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if body.len() < length {
                        continue;
                    }
                    let accepted = attempts.fetch_add(1, Ordering::SeqCst) > 0;
                    let status = if accepted {
                        "200 OK"
                    } else {
                        "503 Service Unavailable"
                    };
                    let _ = received.send(Registration {
                        head: head.to_owned(),
                        body: body.to_owned(),
                        accepted,
                    });
                    let response = format!(
                        "HTTP/1.1 {status}\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}"
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                    return;
                }
            });
        }
    });
    (url, registrations)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_with_the_postoffice_retrying_until_it_answers() {
    let (url, mut registrations) = postoffice().await;
    let config = Config::from_vars([
        ("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:1/%2f"),
        ("POSTOFFICE_URL", url.as_str()),
    ])
    .unwrap();
    let entity = echo("echo-registering", config, Ledger::default()).await;
    // The fake PostOffice refuses the first request: an accepted one is a
    // retry.
    let body = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let request = registrations.recv().await.unwrap();
            assert!(
                request.head.starts_with("POST /registerComponent "),
                "{}",
                request.head
            );
            if request.accepted {
                break request.body;
            }
        }
    })
    .await
    .expect("registered after a refusal");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body,
        json!({"id": "echo-registering", "type": "Echo", "url": entity.url()})
    );
    entity.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_queue_expires_sooner_with_a_generated_id_and_is_bounded() {
    require_broker().await;
    let ephemeral = Entity::builder("Echo", support::echo())
        .config(broker_config())
        .start()
        .await
        .unwrap();
    let named = Entity::builder("Echo", support::echo())
        .id(unique("echo"))
        .config(broker_config())
        .start()
        .await
        .unwrap();
    assert!(ephemeral.is_consuming() && named.is_consuming());
    ephemeral.shutdown().await.unwrap();
    named.shutdown().await.unwrap();

    let bound = Some(defaults::AMQP_QUEUE_MAX_LENGTH);
    declared_with(
        &queue_name("Echo", ephemeral.id()),
        Some(millis(defaults::EPHEMERAL_QUEUE_EXPIRY)),
        bound,
    )
    .await
    .expect("a generated id's queue expires soon after its instance is gone");
    declared_with(
        &queue_name("Echo", named.id()),
        Some(millis(defaults::AMQP_QUEUE_EXPIRY)),
        bound,
    )
    .await
    .expect("a chosen id's queue expires days after its last consumer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_that_exists_with_other_arguments_is_used_as_it_is() {
    require_broker().await;
    let id = unique("echo");
    let queue = queue_name("Echo", &id);
    support::declare_queue(&queue, Some(600_000), None)
        .await
        .unwrap();
    // `echo` asks for another expiry: declaring the queue again with it
    // would be refused.
    let callee = echo(&id, broker_config(), Ledger::default()).await;
    assert!(callee.is_consuming());
    let caller = caller(broker_config(), &[]).await;
    let reply = caller
        .call(Message::request(&id, json!("hi")))
        .await
        .unwrap();
    assert_eq!(reply.route(), Route::Amqp);
    caller.shutdown().await.unwrap();
    callee.shutdown().await.unwrap();

    declared_with(&queue, Some(600_000), None)
        .await
        .expect("the queue keeps the arguments it was declared with");
}

/// `GET {url}/healthy` over a plain socket: the status line.
async fn healthy(url: &str) -> String {
    let address = url.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!("GET /healthy HTTP/1.1\r\nhost: {address}\r\nconnection: close\r\n\r\n");
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    socket.read_to_string(&mut response).await.unwrap();
    response.lines().next().unwrap_or_default().to_owned()
}

/// No broker: these entities only listen and advertise.
fn without_broker(vars: &[(&str, &str)]) -> Config {
    let mut all = vec![("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:1/%2f")];
    all.extend_from_slice(vars);
    Config::from_vars(all).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listening_on_every_interface_advertises_an_address_peers_can_reach() {
    let config = without_broker(&[("STAGE7_HTTP_LISTEN", "0.0.0.0:0")]);
    let entity = support::entity("Echo", &unique("echo"), support::echo(), config)
        .start()
        .await
        .unwrap();
    let url = entity.url().to_owned();
    let host = url
        .trim_start_matches("http://")
        .rsplit_once(':')
        .unwrap()
        .0;
    let ip: std::net::IpAddr = host.parse().unwrap();
    assert!(!ip.is_unspecified(), "nobody can connect to {url}");
    assert!(
        !ip.is_loopback(),
        "{url} is reachable from this host only (this test needs a default route)"
    );
    assert_eq!(healthy(&url).await, "HTTP/1.1 200 OK");
    entity.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_and_advertise_come_from_the_environment_unless_the_builder_says() {
    let advertised = "http://echo-1.stage7.example:5070";
    let config = without_broker(&[
        ("STAGE7_HTTP_LISTEN", "0.0.0.0:0"),
        ("STAGE7_HTTP_ADVERTISE", advertised),
    ]);
    let from_env = support::entity("Echo", &unique("echo"), support::echo(), config.clone())
        .start()
        .await
        .unwrap();
    assert_eq!(from_env.url(), advertised);
    from_env.shutdown().await.unwrap();

    let from_builder = support::entity("Echo", &unique("echo"), support::echo(), config)
        .listen("127.0.0.1:0")
        .advertise("http://echo-2.stage7.example:5070")
        .start()
        .await
        .unwrap();
    assert_eq!(from_builder.url(), "http://echo-2.stage7.example:5070");
    from_builder.shutdown().await.unwrap();

    let listen_only = support::entity(
        "Echo",
        &unique("echo"),
        support::echo(),
        without_broker(&[("STAGE7_HTTP_LISTEN", "0.0.0.0:0")]),
    )
    .listen("127.0.0.1:0")
    .start()
    .await
    .unwrap();
    assert!(
        listen_only.url().starts_with("http://127.0.0.1:"),
        "{}",
        listen_only.url()
    );
    assert_eq!(healthy(listen_only.url()).await, "HTTP/1.1 200 OK");
    listen_only.shutdown().await.unwrap();
}

/// A broadcast to `all` reaches every entity, of every type, the sender's
/// own included. In a vhost of its own, so no other test's entity gets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_to_all_reaches_every_entity_once() {
    require_broker().await;
    let vhost = Vhost::create("broadcast");
    let ledgers: Vec<Ledger> = (0..4).map(|_| Ledger::default()).collect();
    let mut entities = Vec::new();
    for (kind, ledger) in ["Brain", "Librarian", "Librarian"]
        .into_iter()
        .zip(&ledgers)
    {
        let entity = support::entity(
            kind,
            &unique("member"),
            recorder(ledger.clone()),
            vhost.config(),
        )
        .start()
        .await
        .unwrap();
        assert!(entity.is_consuming());
        entities.push(entity);
    }
    let sender = support::entity(
        "Caller",
        &unique("caller"),
        recorder(ledgers[3].clone()),
        vhost.config(),
    )
    .start()
    .await
    .unwrap();
    assert!(sender.is_consuming());

    let broadcast = Message::new(MessageType::Statement)
        .with_recipient(BROADCAST)
        .with_content(json!("to everyone"));
    let delivery = sender.send(broadcast.clone()).await.unwrap();
    assert_eq!(delivery.route(), Route::Amqp);
    let reached = eventually(Duration::from_secs(20), || {
        ledgers.iter().all(|ledger| ledger.ran(broadcast.id()) > 0)
    })
    .await;
    let counts: Vec<usize> = ledgers.iter().map(|l| l.ran(broadcast.id())).collect();
    assert!(reached, "every entity gets the broadcast: {counts:?}");
    assert_eq!(counts, [1, 1, 1, 1]);
    for entity in entities.into_iter().chain([sender]) {
        entity.shutdown().await.unwrap();
    }
}

/// Each request a PostOffice received: `METHOD target`, and its
/// `Authorization` header.
type Requests = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// With a token configured, an entity presents it to the PostOffice on
/// registration and on every lookup, as it does to its peers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postoffice_gets_the_bearer_token_on_registration_and_lookups() {
    let seen: Requests = Arc::default();
    let callee_url: Arc<Mutex<String>> = Arc::default();
    let postoffice = {
        let (seen, callee_url) = (seen.clone(), callee_url.clone());
        Peer::start(move |(head, _): support::peer::Received| {
            let authorization = head
                .headers
                .get("authorization")
                .map(|value| value.to_str().unwrap_or("not text").to_owned());
            let target = head.uri.to_string();
            seen.lock()
                .unwrap()
                .push((format!("{} {target}", head.method), authorization));
            if target.starts_with("/requestComponent?id=brain-1") {
                let url = callee_url.lock().unwrap().clone();
                let components =
                    json!({"components": [{"id": "brain-1", "type": "Brain", "url": url}]});
                support::peer::reply(200, &components.to_string())
            } else {
                support::peer::reply(200, "{}")
            }
        })
        .await
    };
    let (_proxy, refused) = support::refused_broker().await;
    let config = |postoffice: Option<&str>| {
        let mut vars = vec![
            (
                "RABBITMQ_URL".to_owned(),
                refused.rabbitmq_url.expose().to_owned(),
            ),
            ("STAGE7_HTTP_TOKEN".to_owned(), "s3cret-token".to_owned()),
        ];
        if let Some(url) = postoffice {
            vars.push(("POSTOFFICE_URL".to_owned(), url.to_owned()));
        }
        Config::from_vars(vars).unwrap()
    };
    let ledger = Ledger::default();
    let brain = support::entity("Brain", "brain-1", recorder(ledger.clone()), config(None))
        .start()
        .await
        .unwrap();
    *callee_url.lock().unwrap() = brain.url().to_owned();
    // A URL the PostOffice names gets the token only when its host is one
    // the caller was configured with.
    let mut caller_config = config(Some(&postoffice.url()));
    caller_config
        .http_token_hosts
        .push(brain.url().trim_start_matches("http://").to_owned());
    let caller = support::entity("Caller", &unique("caller"), idle(), caller_config)
        .start()
        .await
        .unwrap();

    let delivery = caller
        .call(Message::request("brain-1", json!("found you")))
        .await
        .unwrap();
    assert_eq!(delivery.route(), Route::Http);
    assert!(
        eventually(Duration::from_secs(10), || seen
            .lock()
            .unwrap()
            .iter()
            .any(|(request, _)| request.starts_with("POST /registerComponent")))
        .await,
        "the caller registered"
    );
    let requests = seen.lock().unwrap().clone();
    assert!(
        requests
            .iter()
            .any(|(request, _)| request.starts_with("GET /requestComponent?id=brain-1")),
        "{requests:?}"
    );
    for (request, authorization) in &requests {
        assert_eq!(
            authorization.as_deref(),
            Some("Bearer s3cret-token"),
            "{request}"
        );
    }
    assert_eq!(ledger.runs().len(), 1);
    caller.shutdown().await.unwrap();
    brain.shutdown().await.unwrap();
}
