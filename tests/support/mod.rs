//! Helpers shared by the integration tests.
#![allow(dead_code, reason = "each test binary uses a different subset")]

pub(crate) mod peer;
pub(crate) mod proxy;
pub(crate) mod tls;

use stage7_transport::defaults;
use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use stage7_transport::{Config, Entity, EntityBuilder, Handler, Message};

/// Everything every `tracing` event of this test process wrote, at TRACE
/// level, without colours. Installed once per test binary as the global
/// subscriber, so events from background tasks are captured too.
#[derive(Clone)]
pub(crate) struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    /// The captured text so far.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// A position to read from later with [`since`](Self::since).
    pub(crate) fn mark(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// The text captured after `mark`.
    pub(crate) fn since(&self, mark: usize) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()[mark..]).into_owned()
    }
}

struct Writer(Arc<Mutex<Vec<u8>>>);

impl Write for Writer {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the capturing subscriber (once) and returns its buffer.
pub(crate) fn logs() -> Logs {
    static LOGS: OnceLock<Logs> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = buffer.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || Writer(sink.clone()))
            .init();
        Logs(buffer)
    })
    .clone()
}

/// The broker every AMQP test uses: `RABBITMQ_URL`, or the local default.
pub(crate) fn amqp_url() -> String {
    std::env::var("RABBITMQ_URL").unwrap_or_else(|_| defaults::RABBITMQ_URL.to_owned())
}

/// An entity configuration that reaches the broker at [`amqp_url`].
pub(crate) fn broker_config() -> Config {
    Config::from_vars([("RABBITMQ_URL", amqp_url())]).unwrap()
}

/// A handler that answers every message with a reply carrying its content.
pub(crate) fn echo() -> impl Handler {
    tower::service_fn(|m: Message| async move {
        let content = m.content().cloned().unwrap_or_default();
        Ok::<_, Infallible>(Some(m.reply(content)))
    })
}

/// A test entity of `kind` with id `id`: its queue expires two minutes
/// after the test, so repeated runs leave none behind.
pub(crate) fn entity(kind: &str, id: &str, handler: impl Handler, config: Config) -> EntityBuilder {
    Entity::builder(kind, handler)
        .id(id)
        .queue_expires(Some(Duration::from_secs(120)))
        .config(config)
}

/// Handled message ids, and how many times each ran.
#[derive(Clone, Default)]
pub(crate) struct Ledger(Arc<Mutex<HashMap<String, usize>>>);

impl Ledger {
    pub(crate) fn record(&self, id: &str) {
        *self.0.lock().unwrap().entry(id.to_owned()).or_default() += 1;
    }

    pub(crate) fn runs(&self) -> HashMap<String, usize> {
        self.0.lock().unwrap().clone()
    }

    /// How many times message `id` ran.
    pub(crate) fn ran(&self, id: &str) -> usize {
        self.0.lock().unwrap().get(id).copied().unwrap_or(0)
    }
}

/// A handler that records every message it runs in `ledger` and answers
/// requests with their content.
pub(crate) fn recorder(ledger: Ledger) -> impl Handler {
    tower::service_fn(move |message: Message| {
        ledger.record(message.id());
        async move {
            let content = message.content().cloned().unwrap_or_default();
            Ok::<_, Infallible>(message.requires_sync().then(|| message.reply(content)))
        }
    })
}

/// Settings whose broker URL leads to a proxy that refuses connections
/// until told otherwise: a broker that is not there.
pub(crate) async fn refused_broker() -> (proxy::Proxy, Config) {
    let upstream = amqp_url();
    let proxy = proxy::Proxy::start(&host_port(&upstream)).await;
    proxy.set(proxy::Mode::Refuse);
    let config = Config::from_vars([("RABBITMQ_URL", proxy.amqp_url(&upstream))]).unwrap();
    (proxy, config)
}

/// A handler that takes every message and answers none.
pub(crate) fn idle() -> impl Handler {
    tower::service_fn(|_: Message| async { Ok::<_, Infallible>(None) })
}

/// An entity that only calls: it handles nothing, and knows each
/// `(recipient, url)` of `routes` as an HTTP route.
pub(crate) async fn caller(config: Config, routes: &[(&str, &str)]) -> Entity {
    let mut builder = entity("Caller", &unique("caller"), idle(), config);
    for (recipient, url) in routes {
        builder = builder.route(*recipient, *url);
    }
    builder.start().await.unwrap()
}

/// Checks `condition` every few milliseconds until it holds or `limit` has
/// passed; says whether it held.
pub(crate) async fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if condition() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// `host:port` of a URL like `amqp://user:pass@host:port/vhost`.
pub(crate) fn host_port(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5672")
    }
}

/// Fails the test, saying how to start one, when no broker answers.
pub(crate) async fn require_broker() {
    let address = host_port(&amqp_url());
    let connect = tokio::net::TcpStream::connect(&address);
    match tokio::time::timeout(std::time::Duration::from_secs(3), connect).await {
        Ok(Ok(_)) => {}
        _ => panic!(
            "RabbitMQ is not reachable at {address}. This test needs a real broker: start one with \
             `rabbitmq-server -detached` (or run `scripts/test`, which starts it), or point \
             RABBITMQ_URL at one."
        ),
    }
}

/// A name no other test or earlier run uses.
pub(crate) fn unique(prefix: &str) -> String {
    let id = stage7_transport::message::new_id();
    format!("{prefix}-{}", &id[id.len() - 12..])
}

/// Runs `rabbitmqctl` with `args`, returning its standard output; fails the
/// test when it cannot run or fails.
pub(crate) fn rabbitmqctl(args: &[&str]) -> String {
    try_rabbitmqctl(args).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `rabbitmqctl` with `args`: its standard output, or why it failed.
pub(crate) fn try_rabbitmqctl(args: &[&str]) -> Result<String, String> {
    let output = std::process::Command::new("rabbitmqctl")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run rabbitmqctl {args:?}: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "rabbitmqctl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// How many messages `queue` (in the test broker's vhost) holds ready for
/// delivery and delivered but not acknowledged, as the broker counts them
/// now. Needs `rabbitmqctl` for the broker, as the fault tests do.
pub(crate) async fn queue_counts(queue: &str) -> (u64, u64) {
    let vhost = amqp_url()
        .parse::<lapin::uri::AMQPUri>()
        .map_or_else(|_| "/".to_owned(), |uri| uri.vhost);
    let listed = tokio::task::spawn_blocking(move || {
        rabbitmqctl(&[
            "list_queues",
            "-q",
            "--no-table-headers",
            "-p",
            &vhost,
            "name",
            "messages_ready",
            "messages_unacknowledged",
        ])
    })
    .await
    .unwrap();
    let row = listed
        .lines()
        .map(|line| line.split('\t').collect::<Vec<_>>())
        .find(|fields| fields.first() == Some(&queue))
        .unwrap_or_else(|| panic!("queue `{queue}` not listed:\n{listed}"));
    let count = |i: usize| row.get(i).and_then(|n| n.trim().parse().ok()).unwrap();
    (count(1), count(2))
}

/// Polls [`queue_counts`] until it reads `want` or 30 s pass (a hang guard:
/// one `rabbitmqctl` call takes about half a second); returns the last
/// reading.
pub(crate) async fn queue_counts_reach(queue: &str, want: (u64, u64)) -> (u64, u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let counts = queue_counts(queue).await;
        if counts == want || tokio::time::Instant::now() >= deadline {
            return counts;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Closes, from the broker's side, every connection whose client named
/// itself `name`; returns how many.
pub(crate) fn close_connection(name: &str) -> usize {
    let listed = rabbitmqctl(&["list_connections", "pid", "client_properties", "-q"]);
    let wanted = format!("{{\"connection_name\",\"{name}\"}}");
    let mut closed = 0;
    for line in listed.lines() {
        if let Some((pid, properties)) = line.split_once('\t')
            && properties.contains(&wanted)
        {
            rabbitmqctl(&["close_connection", pid, "closed by a test"]);
            closed += 1;
        }
    }
    closed
}

/// A queue's arguments as our consumers declare them: dead letters to
/// `stage7.dlx`, `x-expires` when `expires_ms` is given, and `x-max-length`
/// with overflow `drop-head` when `max_length` is.
pub(crate) fn queue_arguments(
    expires_ms: Option<u32>,
    max_length: Option<u32>,
) -> lapin::types::FieldTable {
    use lapin::types::AMQPValue;
    let mut arguments = lapin::types::FieldTable::default();
    arguments.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(stage7_transport::amqp::topology::DEAD_LETTER_EXCHANGE.into()),
    );
    if let Some(ms) = expires_ms {
        arguments.insert("x-expires".into(), AMQPValue::LongUInt(ms));
    }
    if let Some(length) = max_length {
        arguments.insert("x-max-length".into(), AMQPValue::LongUInt(length));
        arguments.insert(
            "x-overflow".into(),
            AMQPValue::LongString("drop-head".into()),
        );
    }
    arguments
}

/// A bare lapin connection to the test broker and a channel on it.
pub(crate) async fn raw_channel() -> (lapin::Connection, lapin::Channel) {
    raw_channel_at(&amqp_url()).await
}

/// A bare lapin connection to the broker at `url` and a channel on it.
pub(crate) async fn raw_channel_at(url: &str) -> (lapin::Connection, lapin::Channel) {
    let connection = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    (connection, channel)
}

/// Declares durable `queue` with [`queue_arguments`]`(expires_ms,
/// max_length)` on its own connection: `Err` with the broker's words if it
/// refuses.
pub(crate) async fn declare_queue(
    queue: &str,
    expires_ms: Option<u32>,
    max_length: Option<u32>,
) -> Result<(), String> {
    let (connection, channel) = raw_channel().await;
    let declared = channel
        .queue_declare(
            queue.into(),
            lapin::options::QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            queue_arguments(expires_ms, max_length),
        )
        .await
        .map(drop)
        .map_err(|e| e.to_string());
    let _ = connection.close(200, "declared".into()).await;
    declared
}

/// Whether `queue` exists, asked with a passive declaration.
pub(crate) async fn queue_exists(queue: &str) -> bool {
    let (connection, channel) = raw_channel().await;
    let passive = lapin::options::QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let found = channel
        .queue_declare(queue.into(), passive, lapin::types::FieldTable::default())
        .await
        .is_ok();
    let _ = connection.close(200, "checked".into()).await;
    found
}

/// Deletes `queue` if it exists.
pub(crate) async fn delete_queue(queue: &str) {
    let (connection, channel) = raw_channel().await;
    channel
        .queue_delete(queue.into(), lapin::options::QueueDeleteOptions::default())
        .await
        .unwrap();
    let _ = connection.close(200, "deleted".into()).await;
}

/// `Ok` if `queue` exists with [`queue_arguments`]`(expires_ms,
/// max_length)`; otherwise the broker's refusal of a declaration with
/// them, which names an argument the queue has otherwise. Panics if the
/// queue does not exist. The queue is deleted afterwards.
pub(crate) async fn declared_with(
    queue: &str,
    expires_ms: Option<u32>,
    max_length: Option<u32>,
) -> Result<(), String> {
    assert!(queue_exists(queue).await, "queue `{queue}` does not exist");
    let declared = declare_queue(queue, expires_ms, max_length).await;
    delete_queue(queue).await;
    declared
}

/// `duration` in the milliseconds of an `x-expires` argument.
pub(crate) fn millis(duration: Duration) -> u32 {
    u32::try_from(duration.as_millis()).unwrap()
}

/// A virtual host of its own on the test broker, deleted when dropped. A
/// broadcast to `all` reaches every entity of a vhost: in its own, a test
/// reaches only its entities, and no other test's handler sees it.
pub(crate) struct Vhost {
    name: String,
    url: String,
}

impl Vhost {
    /// Creates the vhost and lets the test broker's user use it. Needs
    /// `rabbitmqctl` for the broker, as the fault tests do.
    pub(crate) fn create(prefix: &str) -> Self {
        let name = unique(prefix);
        let url = amqp_url();
        let user = url
            .parse::<lapin::uri::AMQPUri>()
            .map(|uri| uri.authority.userinfo.username)
            .unwrap_or_else(|e| panic!("RABBITMQ_URL is not an AMQP URL: {e}"));
        rabbitmqctl(&["add_vhost", &name]);
        let vhost = Self {
            url: with_vhost(&url, &name),
            name,
        };
        rabbitmqctl(&[
            "set_permissions",
            "-p",
            &vhost.name,
            &user,
            ".*",
            ".*",
            ".*",
        ]);
        vhost
    }

    /// The test broker's URL with this vhost.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// An entity configuration that reaches the broker in this vhost.
    pub(crate) fn config(&self) -> Config {
        Config::from_vars([("RABBITMQ_URL", self.url.as_str())]).unwrap()
    }
}

impl Drop for Vhost {
    fn drop(&mut self) {
        if let Err(error) = try_rabbitmqctl(&["delete_vhost", &self.name]) {
            eprintln!("vhost {} is left behind: {error}", self.name);
        }
    }
}

/// `url` (`amqp://user:pass@host:port/vhost`) with vhost `vhost`.
fn with_vhost(url: &str, vhost: &str) -> String {
    let authority = url.find("://").map_or(0, |at| at + 3);
    let base = url[authority..]
        .find(['/', '?'])
        .map_or(url, |end| &url[..authority + end]);
    format!("{base}/{vhost}")
}

/// The ids of the calls that the fallback layer sent on to the secondary
/// route after the primary's outcome was unknown, read from what it logs
/// (`falling back ...` in the call's span, which names the message id).
pub(crate) fn fell_back_after_unknown(logged: &str) -> HashSet<String> {
    logged
        .lines()
        .filter(|line| {
            line.contains("falling back to the secondary route")
                && line.contains("(outcome unknown)")
        })
        .filter_map(|line| {
            let span = &line[line.find("stage7.call{")? + "stage7.call{".len()..];
            let id = span.strip_prefix("id=")?;
            let end = id.find([' ', '}'])?;
            Some(id[..end].trim_matches('"').to_owned())
        })
        .collect()
}

/// A durable queue, bound to `message.{recipient}`, that records exactly
/// what the broker routed for `recipient`: one copy per publish, below any
/// receiver's de-duplication.
pub(crate) async fn tap(channel: &lapin::Channel, recipient: &str) -> String {
    let queue = tap_queue(channel).await;
    channel
        .queue_bind(
            queue.as_str().into(),
            stage7_transport::amqp::topology::EXCHANGE.into(),
            stage7_transport::amqp::topology::routing_key(recipient).into(),
            lapin::options::QueueBindOptions::default(),
            lapin::types::FieldTable::default(),
        )
        .await
        .unwrap();
    queue
}

/// A durable queue bound to the dead-letter exchange: a copy of every dead
/// letter from now on, other tests' among them.
pub(crate) async fn dead_letter_tap(channel: &lapin::Channel) -> String {
    let queue = tap_queue(channel).await;
    channel
        .queue_bind(
            queue.as_str().into(),
            stage7_transport::amqp::topology::DEAD_LETTER_EXCHANGE.into(),
            "".into(),
            lapin::options::QueueBindOptions::default(),
            lapin::types::FieldTable::default(),
        )
        .await
        .unwrap();
    queue
}

/// A durable queue that expires half an hour after its last use. Messages
/// arriving are no use: a tap must outlive the longest test that fills it.
async fn tap_queue(channel: &lapin::Channel) -> String {
    let queue = unique("tap");
    let mut arguments = lapin::types::FieldTable::default();
    arguments.insert(
        "x-expires".into(),
        lapin::types::AMQPValue::LongLongInt(1_800_000),
    );
    channel
        .queue_declare(
            queue.as_str().into(),
            lapin::options::QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            arguments,
        )
        .await
        .unwrap();
    queue
}

/// Every message id in `queue` and how many times it is there.
pub(crate) async fn drain(channel: &lapin::Channel, queue: &str) -> HashMap<String, usize> {
    let declared = channel
        .queue_declare(
            queue.into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
        .unwrap();
    let expected = declared.message_count() as usize;
    let mut consumer = channel
        .basic_consume(
            queue.into(),
            unique("drain").as_str().into(),
            lapin::options::BasicConsumeOptions::default(),
            lapin::types::FieldTable::default(),
        )
        .await
        .unwrap();
    let mut seen = HashMap::new();
    for _ in 0..expected {
        let delivery = tokio::time::timeout(Duration::from_secs(10), next(&mut consumer))
            .await
            .expect("the queue drains")
            .expect("consumer open")
            .unwrap();
        let id = delivery
            .properties
            .message_id()
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        *seen.entry(id).or_default() += 1;
        delivery
            .ack(lapin::options::BasicAckOptions::default())
            .await
            .unwrap();
    }
    seen
}

/// The next delivery of a lapin consumer.
pub(crate) async fn next(
    consumer: &mut lapin::Consumer,
) -> Option<lapin::Result<lapin::message::Delivery>> {
    std::future::poll_fn(|cx| {
        futures_core::Stream::poll_next(std::pin::Pin::new(&mut *consumer), cx)
    })
    .await
}

/// The next dead letter in `tap` whose message id is `id`, with its
/// `x-stage7-reason` (empty without one) and its headers; other dead
/// letters are skipped. Fails the test after 20 s.
pub(crate) async fn dead_letter(
    channel: &lapin::Channel,
    tap: &str,
    id: &str,
) -> (String, lapin::types::FieldTable) {
    use lapin::types::AMQPValue;
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let got = channel
                .basic_get(tap.into(), lapin::options::BasicGetOptions { no_ack: true })
                .await
                .unwrap();
            let Some(got) = got else {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            let properties = &got.delivery.properties;
            if properties.message_id().as_ref().map(|m| m.as_str()) != Some(id) {
                continue;
            }
            let headers = properties.headers().clone().unwrap_or_default();
            let reason = match headers
                .inner()
                .get(stage7_transport::amqp::topology::REASON_HEADER)
            {
                Some(AMQPValue::LongString(text)) => {
                    String::from_utf8_lossy(text.as_bytes()).into_owned()
                }
                _ => String::new(),
            };
            break (reason, headers);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no dead letter for `{id}` within 20 s"))
}
