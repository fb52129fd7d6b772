//! The connection supervisor: connects in the background, notices loss at
//! once, reconnects on a jittered schedule forever, and never re-publishes.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use futures_core::Stream;
use lapin::options::ConfirmSelectOptions;
use lapin::{Channel, Connection, ConnectionProperties, Event};
use tokio::sync::{Notify, Semaphore, watch};

use super::builder::Settings;
use super::publisher::{Drain, drain};
use super::rpc::Rpc;
use super::topology::declare_exchanges;
use crate::error::ErrorKind;
use crate::tls::tls_cause;

/// One connection's worth of channels. Replaced, never repaired: a lost
/// connection takes its link with it, and the next connection gets a new
/// one with a new generation.
pub(crate) struct Link {
    pub(crate) generation: u64,
    pub(crate) connection: Connection,
    pub(crate) publisher: Channel,
    pub(crate) rpc: Rpc,
    /// Settles the confirms of publishes that ended before them (the RPC
    /// channel has its own).
    pub(crate) drain: Drain,
}

impl Link {
    /// Whether the channels every call uses still work.
    fn healthy(&self) -> bool {
        self.connection.status().connected()
            && self.publisher.status().connected()
            && self.rpc.is_open()
    }
}

/// What the transport's clones, its consumers and the supervisor share.
pub(crate) struct Shared {
    pub(crate) settings: Settings,
    /// The current link; `None` while disconnected.
    pub(crate) link: watch::Sender<Option<Arc<Link>>>,
    /// Whether the broker has blocked publishing (resource alarm).
    pub(crate) blocked: watch::Sender<bool>,
    /// Calls awaiting a confirm or reply.
    pub(crate) window: Arc<Semaphore>,
    /// Set once, when the last transport handle is dropped or closed.
    pub(crate) closing: watch::Sender<bool>,
    /// Rung by anyone who sees the link's own channels fail.
    pub(crate) broken: Notify,
    /// Why the last connection attempt failed, for "not connected" errors:
    /// [`Tls`](ErrorKind::Tls) when the handshake failed,
    /// [`Unavailable`](ErrorKind::Unavailable) otherwise.
    pub(crate) last_failure: Mutex<Option<(ErrorKind, String)>>,
    /// Connection attempts that ended, connected or not.
    pub(crate) attempts: watch::Sender<u64>,
}

impl Shared {
    pub(crate) fn new(settings: Settings) -> Self {
        let window = Arc::new(Semaphore::new(settings.window));
        Self {
            settings,
            link: watch::Sender::new(None),
            blocked: watch::Sender::new(false),
            window,
            closing: watch::Sender::new(false),
            broken: Notify::new(),
            last_failure: Mutex::new(None),
            attempts: watch::Sender::new(0),
        }
    }

    pub(crate) fn current(&self) -> Option<Arc<Link>> {
        self.link.borrow().clone()
    }

    pub(crate) fn last_failure(&self) -> Option<(ErrorKind, String)> {
        self.last_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_last_failure(&self, failure: Option<(ErrorKind, String)>) {
        *self
            .last_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = failure;
    }
}

/// How long a connection must have served before its loss resets the
/// reconnection schedule.
const STABLE: Duration = Duration::from_secs(1);

/// Runs until the transport closes: connect, serve, notice loss, repeat.
pub(crate) async fn supervise(shared: Arc<Shared>) {
    let settings = &shared.settings;
    let schedule = ExponentialBuilder::new()
        .with_min_delay(settings.reconnect_min)
        .with_max_delay(settings.reconnect_max)
        .with_jitter()
        .without_max_times();
    let mut backoff = schedule.build();
    let mut closing = shared.closing.subscribe();
    let mut generation = 0;
    let connection = settings.connection_name.as_str();
    while !*closing.borrow() {
        generation += 1;
        let attempt =
            tokio::time::timeout(settings.connect_timeout * 2, connect(settings, generation));
        let outcome = tokio::select! {
            outcome = attempt => outcome,
            _ = closing.wait_for(|closing| *closing) => break,
        };
        let failure = match outcome {
            Ok(Ok((link, events))) => {
                let connected_at = tokio::time::Instant::now();
                shared.set_last_failure(None);
                let link = Arc::new(link);
                tracing::info!(
                    connection,
                    generation,
                    url = settings.redacted,
                    "connected to RabbitMQ"
                );
                shared.link.send_replace(Some(link.clone()));
                shared.attempts.send_modify(|attempts| *attempts += 1);
                let reason = serve(&shared, &link, events, &mut closing).await;
                shared.link.send_replace(None);
                shared.blocked.send_replace(false);
                link.rpc.pending().fail_all(&reason);
                if *closing.borrow() {
                    let _ = link.connection.close(200, "transport closed".into()).await;
                    break;
                }
                tracing::warn!(
                    connection,
                    generation,
                    reason,
                    "lost the RabbitMQ connection; reconnecting"
                );
                let _ = link.connection.close(320, "reconnecting".into()).await;
                shared.set_last_failure(Some((
                    ErrorKind::Unavailable,
                    format!("connection lost: {reason}"),
                )));
                // A connection that served a while is replaced at once; one
                // that dropped right after opening waits its turn, so a
                // broker that keeps closing us is not hammered.
                if connected_at.elapsed() >= STABLE {
                    backoff = schedule.build();
                    continue;
                }
                (
                    ErrorKind::Unavailable,
                    format!(
                        "connection lost {} ms after opening: {reason}",
                        connected_at.elapsed().as_millis()
                    ),
                )
            }
            Ok(Err(error)) => match tls_cause(&error) {
                Some(tls) => (
                    ErrorKind::Tls,
                    format!(
                        "TLS handshake with the broker failed: {tls} (is the broker's certificate \
                         signed by a CA the system or STAGE7_TLS_CA_FILE trusts, for its host name?)"
                    ),
                ),
                None => (ErrorKind::Unavailable, error.to_string()),
            },
            Err(_) => (
                ErrorKind::Unavailable,
                format!("no connection within {:?}", settings.connect_timeout * 2),
            ),
        };
        let wait = backoff.next().unwrap_or(settings.reconnect_max);
        tracing::warn!(connection, url = settings.redacted, failure = %failure.1, ?wait, "cannot connect to RabbitMQ");
        shared.set_last_failure(Some(failure));
        shared.attempts.send_modify(|attempts| *attempts += 1);
        pause(&mut closing, wait).await;
    }
    shared.link.send_replace(None);
    shared.window.close();
    tracing::debug!(connection, "AMQP supervisor stopped");
}

type Events = Pin<Box<dyn Stream<Item = Event> + Send>>;

async fn connect(settings: &Settings, generation: u64) -> lapin::Result<(Link, Events)> {
    let properties = ConnectionProperties::default()
        .with_connection_name(settings.connection_name.as_str().into());
    let connection = Connection::connect_uri_with_config(
        settings.uri.clone(),
        properties,
        settings.tls.clone(),
        lapin::runtime::default_runtime()?,
    )
    .await?;
    let events: Events = Box::pin(connection.events_listener());
    match open_channels(&connection, generation).await {
        Ok((publisher, rpc)) => Ok((
            Link {
                generation,
                connection,
                publisher,
                rpc,
                drain: drain(),
            },
            events,
        )),
        Err(error) => {
            let _ = connection.close(320, "setup failed".into()).await;
            Err(error)
        }
    }
}

async fn open_channels(connection: &Connection, generation: u64) -> lapin::Result<(Channel, Rpc)> {
    let publisher = connection.create_channel().await?;
    publisher
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    declare_exchanges(connection, &publisher).await?;
    let rpc = Rpc::open(connection, generation).await?;
    Ok((publisher, rpc))
}

/// Watches a live link; returns why it ended.
async fn serve(
    shared: &Shared,
    link: &Link,
    mut events: Events,
    closing: &mut watch::Receiver<bool>,
) -> String {
    loop {
        let event = tokio::select! {
            event = std::future::poll_fn(|cx| events.as_mut().poll_next(cx)) => event,
            () = shared.broken.notified() => {
                if link.healthy() {
                    continue;
                }
                return "a channel of the connection failed".to_owned();
            }
            _ = closing.wait_for(|closing| *closing) => return "transport closed".to_owned(),
        };
        match event {
            Some(Event::Error(error)) if !link.healthy() => return error.to_string(),
            Some(Event::Error(error)) => {
                tracing::debug!(%error, "an AMQP channel failed; the connection is still healthy");
            }
            Some(Event::ConnectionBlocked(reason)) => {
                tracing::warn!(reason, "RabbitMQ blocked publishing; calls wait");
                shared.blocked.send_replace(true);
            }
            Some(Event::ConnectionUnblocked) => {
                tracing::info!("RabbitMQ unblocked publishing");
                shared.blocked.send_replace(false);
            }
            Some(_) => {}
            None => return "the connection's event stream ended".to_owned(),
        }
    }
}

/// Sleeps `wait`, or less if the transport closes.
pub(crate) async fn pause(closing: &mut watch::Receiver<bool>, wait: Duration) {
    tokio::select! {
        _ = tokio::time::sleep(wait) => {}
        _ = closing.wait_for(|closing| *closing) => {}
    }
}
