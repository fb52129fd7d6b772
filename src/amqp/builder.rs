//! [`AmqpTransportBuilder`]: the settings of an [`AmqpTransport`], validated
//! when built.

use std::fmt;
use std::time::Duration;

use lapin::tcp::OwnedTLSConfig;
use lapin::uri::AMQPUri;

use super::AmqpTransport;
use crate::defaults;
use crate::error::{Error, Result};
use crate::message::Codec;
use crate::secret::Secret;
use crate::tls::CaBundle;
use crate::url::redact_url;

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
    /// Roots trusted besides the system's, for `amqps://`.
    pub(crate) tls: OwnedTLSConfig,
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
            .field("tls_ca", &self.tls.cert_chain.is_some())
            .finish()
    }
}

/// Settings for an [`AmqpTransport`]; see
/// [`AmqpTransport::builder`](super::AmqpTransport::builder).
#[derive(Clone)]
pub struct AmqpTransportBuilder {
    url: Secret,
    connection_name: String,
    heartbeat: u16,
    connect_timeout: Duration,
    reconnect_min: Duration,
    reconnect_max: Duration,
    window: usize,
    codec: Codec,
    tls_ca: Option<CaBundle>,
}

impl AmqpTransportBuilder {
    pub(crate) fn new(url: Secret) -> Self {
        Self {
            url,
            connection_name: format!("stage7-transport pid {}", std::process::id()),
            heartbeat: defaults::AMQP_HEARTBEAT,
            connect_timeout: defaults::AMQP_CONNECT_TIMEOUT,
            reconnect_min: defaults::AMQP_RECONNECT_MIN,
            reconnect_max: defaults::AMQP_RECONNECT_MAX,
            window: defaults::AMQP_WINDOW,
            codec: Codec::default(),
            tls_ca: None,
        }
    }

    /// The name operators see in the management UI and `rabbitmqctl
    /// list_connections`. Default `stage7-transport pid {pid}`.
    pub fn connection_name(mut self, name: impl Into<String>) -> Self {
        self.connection_name = name.into();
        self
    }

    /// Heartbeat interval in seconds, unless the URL sets `heartbeat`.
    /// Default [`AMQP_HEARTBEAT`](crate::defaults::AMQP_HEARTBEAT).
    pub fn heartbeat(mut self, seconds: u16) -> Self {
        self.heartbeat = seconds;
        self
    }

    /// Limit on establishing one connection. Default
    /// [`AMQP_CONNECT_TIMEOUT`](crate::defaults::AMQP_CONNECT_TIMEOUT).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Waits between reconnection attempts: jittered, growing from `min` to
    /// `max`, never giving up. Default [`AMQP_RECONNECT_MIN`](crate::defaults::AMQP_RECONNECT_MIN) to
    /// [`AMQP_RECONNECT_MAX`](crate::defaults::AMQP_RECONNECT_MAX).
    pub fn reconnect(mut self, min: Duration, max: Duration) -> Self {
        self.reconnect_min = min;
        self.reconnect_max = max;
        self
    }

    /// Calls awaiting a confirm or a reply at once; past it `poll_ready`
    /// waits instead of buffering. Default [`AMQP_WINDOW`](crate::defaults::AMQP_WINDOW).
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

    /// For an `amqps://` URL, CA certificates trusted besides the system's
    /// roots: a broker whose certificate a private CA signed. Default: the
    /// system's roots only. See [`tls`](crate::tls).
    pub fn tls_ca(mut self, ca: CaBundle) -> Self {
        self.tls_ca = Some(ca);
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
            tls: OwnedTLSConfig {
                identity: None,
                cert_chain: self.tls_ca.as_ref().map(|ca| ca.pem().to_owned()),
            },
        })
    }
}

impl fmt::Debug for AmqpTransportBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpTransportBuilder")
            .field("url", &redact_url(self.url.expose()))
            .field("connection_name", &self.connection_name)
            .field("heartbeat", &self.heartbeat)
            .field("connect_timeout", &self.connect_timeout)
            .field("reconnect", &(self.reconnect_min, self.reconnect_max))
            .field("window", &self.window)
            .field("tls_ca", &self.tls_ca)
            .finish_non_exhaustive()
    }
}
