//! Settings of an [`AmqpTransport`], validated when built.

use std::fmt;
use std::time::Duration;

use lapin::uri::AMQPUri;

use super::AmqpTransport;
use crate::config::{Secret, redact_url};
use crate::error::{Error, Result};
use crate::message::Codec;

/// Default heartbeat: 10 s, so a dead peer is noticed within ~20 s even
/// when no traffic flows.
pub const DEFAULT_HEARTBEAT: u16 = 10;
/// Default limit on establishing a connection: 2 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default first wait before reconnecting: 20 ms, so a dropped connection
/// is replaced at once.
pub const DEFAULT_RECONNECT_MIN: Duration = Duration::from_millis(20);
/// Default longest wait between reconnection attempts: 500 ms (up to 1 s
/// with jitter), so a broker that returns is in use again within a second.
pub const DEFAULT_RECONNECT_MAX: Duration = Duration::from_millis(500);
/// Default number of calls awaiting the broker's confirm (or a reply) at
/// once, beyond which `poll_ready` waits: 4096. The broker confirms a
/// persistent message once it is on disk, which can take a few hundred
/// milliseconds; a request's reply usually comes first, yet its permit is
/// held until the confirm. At 10 000 calls a second, 1024 ran out. The
/// window also bounds what lapin buffers: at most this many unconfirmed
/// publishes, each up to the codec's message size limit.
pub const DEFAULT_WINDOW: usize = 4096;

/// Settings shared by the transport's supervisor, publisher and consumers.
pub(crate) struct Settings {
    pub(crate) uri: AMQPUri,
    pub(crate) redacted: String,
    pub(crate) connection_name: String,
    pub(crate) connect_timeout: Duration,
    pub(crate) reconnect_min: Duration,
    pub(crate) reconnect_max: Duration,
    pub(crate) window: usize,
    pub(crate) codec: Codec,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("url", &self.redacted)
            .field("connection_name", &self.connection_name)
            .field("connect_timeout", &self.connect_timeout)
            .field("reconnect", &(self.reconnect_min, self.reconnect_max))
            .field("window", &self.window)
            .field("codec", &self.codec)
            .finish()
    }
}

/// Settings for an [`AmqpTransport`]; see
/// [`AmqpTransport::builder`](super::AmqpTransport::builder).
#[derive(Clone)]
pub struct Builder {
    url: Secret,
    connection_name: String,
    heartbeat: u16,
    connect_timeout: Duration,
    reconnect_min: Duration,
    reconnect_max: Duration,
    window: usize,
    codec: Codec,
}

impl Builder {
    pub(crate) fn new(url: Secret) -> Self {
        Self {
            url,
            connection_name: format!("stage7-transport pid {}", std::process::id()),
            heartbeat: DEFAULT_HEARTBEAT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            reconnect_min: DEFAULT_RECONNECT_MIN,
            reconnect_max: DEFAULT_RECONNECT_MAX,
            window: DEFAULT_WINDOW,
            codec: Codec::default(),
        }
    }

    /// The name operators see in the management UI and `rabbitmqctl
    /// list_connections`. Default `stage7-transport pid {pid}`.
    pub fn connection_name(mut self, name: impl Into<String>) -> Self {
        self.connection_name = name.into();
        self
    }

    /// Heartbeat interval in seconds, unless the URL sets `heartbeat`.
    /// Default [`DEFAULT_HEARTBEAT`].
    pub fn heartbeat(mut self, seconds: u16) -> Self {
        self.heartbeat = seconds;
        self
    }

    /// Limit on establishing one connection. Default
    /// [`DEFAULT_CONNECT_TIMEOUT`].
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Waits between reconnection attempts: jittered, growing from `min` to
    /// `max`, never giving up. Default [`DEFAULT_RECONNECT_MIN`] to
    /// [`DEFAULT_RECONNECT_MAX`].
    pub fn reconnect(mut self, min: Duration, max: Duration) -> Self {
        self.reconnect_min = min;
        self.reconnect_max = max;
        self
    }

    /// Calls awaiting a confirm or a reply at once; past it `poll_ready`
    /// waits instead of buffering. Default [`DEFAULT_WINDOW`].
    pub fn window(mut self, calls: usize) -> Self {
        self.window = calls;
        self
    }

    /// How messages are encoded and decoded, and their size limit. Default
    /// [`Codec::default`].
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// Checks the settings and starts the transport: its connection is made
    /// in the background, so this returns at once even if no broker answers.
    ///
    /// # Errors
    ///
    /// [`Config`](crate::ErrorKind::Config) for an invalid URL or setting,
    /// or when called outside a Tokio runtime.
    pub fn build(self) -> Result<AmqpTransport> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::config("the AMQP transport needs a Tokio runtime"));
        }
        Ok(AmqpTransport::start(self.settings()?))
    }

    pub(crate) fn settings(self) -> Result<Settings> {
        let redacted = redact_url(self.url.expose());
        let mut uri: AMQPUri = self
            .url
            .expose()
            .parse()
            .map_err(|e| Error::config(format!("invalid RabbitMQ URL {redacted}: {e}")))?;
        if uri.scheme == lapin::uri::AMQPScheme::AMQPS {
            return Err(Error::config(format!(
                "{redacted}: amqps:// needs TLS, which this build does not include"
            )));
        }
        if self.window == 0 {
            return Err(Error::config(
                "the AMQP window must allow at least one call",
            ));
        }
        if self.connect_timeout.is_zero()
            || self.reconnect_min.is_zero()
            || self.reconnect_max < self.reconnect_min
        {
            return Err(Error::config(format!(
                "AMQP timings must be positive with reconnect min <= max (connect {:?}, reconnect {:?}..{:?})",
                self.connect_timeout, self.reconnect_min, self.reconnect_max
            )));
        }
        uri.query.heartbeat.get_or_insert(self.heartbeat);
        let connect_ms = u64::try_from(self.connect_timeout.as_millis()).unwrap_or(u64::MAX);
        uri.query.connection_timeout.get_or_insert(connect_ms);
        Ok(Settings {
            uri,
            redacted,
            connection_name: self.connection_name,
            connect_timeout: self.connect_timeout,
            reconnect_min: self.reconnect_min,
            reconnect_max: self.reconnect_max,
            window: self.window,
            codec: self.codec,
        })
    }
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("url", &redact_url(self.url.expose()))
            .field("connection_name", &self.connection_name)
            .field("heartbeat", &self.heartbeat)
            .field("connect_timeout", &self.connect_timeout)
            .field("reconnect", &(self.reconnect_min, self.reconnect_max))
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}
