//! The HTTP endpoint every entity exposes: `POST /message`, `GET /healthy`,
//! `GET /ready`.
//!
//! [`HttpServer`] serves any [`Handler`] over HTTP/1.1 with keep-alive. A
//! synchronous message is answered `200` with the handler's reply as body,
//! an asynchronous one `202` once the handler has finished with it (so its
//! sender learns of a failure, and a busy endpoint slows its senders down).
//! The handler runs behind de-duplication ([`DedupLayer`]): a message whose
//! `id` was seen recently is not handled again, a synchronous repeat gets the
//! reply the first one got, and a run whose client disconnects or times out
//! still finishes, so a retry never starts it again halfway through.
//!
//! Bad input never costs more than a JSON error ([`ErrorBody`](crate::ErrorBody)):
//!
//! | request | status | `kind` |
//! |---|---|---|
//! | unknown path | `404` | `no_route` |
//! | wrong method | `405` (with `Allow`) | `protocol` |
//! | missing or wrong bearer token, when one is configured | `401` | `unauthorized` |
//! | more than [`max_concurrent_requests`](HttpServer::max_concurrent_requests) in progress | `503` (with `Retry-After`) | `overloaded` |
//! | content type not `application/json` | `415` | `invalid_message` |
//! | body over [`max_body_size`](HttpServer::max_body_size) | `413` | `too_large` |
//! | empty body, malformed JSON, not an object, wrong field types | `400`, naming the problem | `invalid_message` |
//! | not handled within [`request_timeout`](HttpServer::request_timeout) | `504` | `timeout` |
//! | handler error | `422` when rejected (`400`, `403`, `413` for invalid input, refusal, size), `502` otherwise (`504` for a timeout) | the error's |
//! | handler panicked | `422` | `handler` |
//! | synchronous message, handler returned no reply | `422` | `protocol` |
//! | the handler's reply cannot be encoded (too large) | `422` | the encoder's |
//!
//! Clients that send their headers too slowly are disconnected after
//! [`header_read_timeout`](HttpServer::header_read_timeout), which also
//! closes keep-alive connections idle that long.
//!
//! ```no_run
//! use std::convert::Infallible;
//! use std::time::Duration;
//! use stage7_transport::{HttpServer, Message, Secret};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), stage7_transport::Error> {
//! let echo = tower::service_fn(|m: Message| async move {
//!     let content = m.content().cloned().unwrap_or_default();
//!     Ok::<_, Infallible>(Some(m.reply(content)))
//! });
//! let server = HttpServer::new()
//!     .token(Secret::new("s3cret"))
//!     .bind("127.0.0.1:5070", echo)
//!     .await?;
//! println!("listening on {}", server.local_addr());
//! tokio::signal::ctrl_c().await.ok();
//! server.shutdown(Duration::from_secs(5)).await
//! # }
//! ```

mod endpoint;
mod handle;

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::sync::{Semaphore, oneshot};
use tokio::task::JoinSet;
use tower::Layer;

use self::endpoint::Endpoint;
pub use self::handle::ServerHandle;
use crate::defaults;
use crate::error::{Error, ErrorClass, ErrorKind, Result};
use crate::handler::Handler;
use crate::layer::dedup::DedupLayer;
use crate::message::Codec;
use crate::secret::Secret;

/// Pause after a failed `accept` (out of file descriptors, say) so the loop
/// does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Settings of an HTTP endpoint, and [`serve`](Self::serve) to run one. See
/// the [module docs](self).
#[derive(Clone)]
pub struct HttpServer {
    max_body_size: usize,
    token: Option<Secret>,
    header_read_timeout: Duration,
    request_timeout: Duration,
    max_concurrent_requests: usize,
    dedup: Option<DedupLayer>,
}

impl Default for HttpServer {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpServer {
    /// The default settings.
    pub fn new() -> Self {
        Self {
            max_body_size: defaults::MAX_MESSAGE_SIZE,
            token: None,
            header_read_timeout: defaults::SERVER_HEADER_READ_TIMEOUT,
            request_timeout: defaults::SERVER_HANDLER_TIMEOUT,
            max_concurrent_requests: defaults::SERVER_MAX_CONCURRENT_REQUESTS,
            dedup: None,
        }
    }

    /// Largest request body, in bytes; larger ones get `413`. Default
    /// [`MAX_MESSAGE_SIZE`](crate::defaults::MAX_MESSAGE_SIZE).
    pub fn max_body_size(mut self, bytes: usize) -> Self {
        self.max_body_size = bytes;
        self
    }

    /// Requires `Authorization: Bearer {token}` on `POST /message`; others
    /// get `401`. Default: no token required.
    pub fn token(mut self, token: Secret) -> Self {
        self.token = Some(token);
        self
    }

    /// Time a client has to send its request headers; past it the
    /// connection is closed. Also the longest a keep-alive connection stays
    /// idle. Default [`SERVER_HEADER_READ_TIMEOUT`](crate::defaults::SERVER_HEADER_READ_TIMEOUT).
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// Time to read a message body and run the handler; past it the answer
    /// is `504`. Default [`SERVER_HANDLER_TIMEOUT`](crate::defaults::SERVER_HANDLER_TIMEOUT).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Requests in progress at once; more get `503` with `Retry-After` at
    /// once, never a queue. A request stops counting when it is answered,
    /// `504` included, even if its handler run goes on to completion.
    /// Default [`SERVER_MAX_CONCURRENT_REQUESTS`](crate::defaults::SERVER_MAX_CONCURRENT_REQUESTS).
    pub fn max_concurrent_requests(mut self, requests: usize) -> Self {
        self.max_concurrent_requests = requests;
        self
    }

    /// The de-duplication to run the handler behind — pass the one your
    /// other receiving paths use, so a message that arrives over AMQP and
    /// HTTP is handled once. Default: a new [`DedupLayer::new`].
    pub fn dedup(mut self, dedup: DedupLayer) -> Self {
        self.dedup = Some(dedup);
        self
    }

    /// Binds `addr` and serves `handler` there.
    ///
    /// # Errors
    ///
    /// [`Config`](crate::ErrorKind::Config) for invalid settings or an
    /// address that cannot be bound.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub async fn bind<H: Handler>(
        self,
        addr: impl ToSocketAddrs,
        handler: H,
    ) -> Result<ServerHandle> {
        let listener = TcpListener::bind(addr).await.map_err(|e| {
            Error::config(format!("HTTP endpoint: cannot bind: {e}")).with_source(e)
        })?;
        self.serve(listener, handler)
    }

    /// Serves `handler` on the connections `listener` accepts, in a
    /// background task, until the returned handle shuts it down.
    ///
    /// # Errors
    ///
    /// [`Config`](crate::ErrorKind::Config) naming an invalid setting: a
    /// zero size, timeout or limit, or an empty token.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn serve<H: Handler>(self, listener: TcpListener, handler: H) -> Result<ServerHandle> {
        self.validate()?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| Error::config(format!("HTTP endpoint: no local address: {e}")))?;
        let ready = Arc::new(AtomicBool::new(true));
        let endpoint = Arc::new(Endpoint {
            handler: self.dedup.unwrap_or_default().layer(handler),
            codec: Codec::new(self.max_body_size),
            token: self.token,
            permits: Semaphore::new(self.max_concurrent_requests),
            request_timeout: self.request_timeout,
            ready: ready.clone(),
        });
        let mut http = http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(self.header_read_timeout)
            .keep_alive(true);
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(run(listener, endpoint, http, stopped));
        Ok(ServerHandle {
            local_addr,
            ready,
            stop,
            task,
        })
    }

    fn validate(&self) -> Result<()> {
        let invalid = |what: &str| Err(Error::config(format!("HTTP endpoint: {what}")));
        if self.max_body_size == 0 {
            return invalid("body size limit must be positive");
        }
        if self.header_read_timeout.is_zero() || self.request_timeout.is_zero() {
            return invalid("timeouts must be positive");
        }
        if self.max_concurrent_requests == 0
            || self.max_concurrent_requests > Semaphore::MAX_PERMITS
        {
            return invalid("max concurrent requests must be between 1 and 2^61 - 1");
        }
        if self
            .token
            .as_ref()
            .is_some_and(|token| token.expose().is_empty())
        {
            return invalid("the bearer token must not be empty");
        }
        Ok(())
    }
}

impl fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpServer")
            .field("max_body_size", &self.max_body_size)
            .field("token", &self.token)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("max_concurrent_requests", &self.max_concurrent_requests)
            .field("shared_dedup", &self.dedup.is_some())
            .finish()
    }
}

/// The accept loop, then the graceful shutdown.
async fn run<H: Handler>(
    listener: TcpListener,
    endpoint: Arc<Endpoint<H>>,
    http: http1::Builder,
    mut stop: oneshot::Receiver<Duration>,
) -> Result<()> {
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let grace = loop {
        tokio::select! {
            biased;
            grace = &mut stop => break grace.unwrap_or(defaults::SHUTDOWN_GRACE),
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if let Err(error) = stream.set_nodelay(true) {
                        tracing::debug!(%peer, %error, "http endpoint: cannot set TCP_NODELAY");
                    }
                    let endpoint = endpoint.clone();
                    let service = service_fn(move |request| {
                        let endpoint = endpoint.clone();
                        async move { Ok::<_, Infallible>(endpoint.handle(request).await) }
                    });
                    let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
                    connections.spawn(async move {
                        if let Err(error) = connection.await {
                            tracing::debug!(%peer, %error, "http endpoint: connection closed");
                        }
                    });
                    while connections.try_join_next().is_some() {}
                }
                Err(error) => {
                    tracing::warn!(%error, "http endpoint: accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            },
        }
    };
    endpoint.ready.store(false, Ordering::Relaxed);
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_ok()
    {
        return Ok(());
    }
    while connections.try_join_next().is_some() {}
    let cut = connections.len();
    connections.shutdown().await;
    let error = Error::new(
        ErrorKind::Timeout,
        ErrorClass::UnknownOutcome,
        format!(
            "closed {cut} connection(s) still busy after the grace period of {} ms",
            grace.as_millis()
        ),
    );
    tracing::warn!(%error, "http endpoint: shutdown");
    Err(error)
}
