//! [`HttpServerBuilder`]: an endpoint's settings, validated when it starts.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::TokioTimer;
use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::sync::{Semaphore, oneshot};
use tower::Layer;

use super::HttpServer;
use super::accept;
use super::endpoint::Endpoint;
use crate::defaults;
use crate::error::{Error, Result};
use crate::handler::Handler;
use crate::layer::dedup::DedupLayer;
use crate::message::Codec;
use crate::secret::Secret;
use crate::tls::TlsIdentity;

/// Settings of an HTTP endpoint, and [`bind`](Self::bind) or
/// [`serve`](Self::serve) to run one; see [`HttpServer::builder`].
#[derive(Clone)]
pub struct HttpServerBuilder {
    max_body_size: usize,
    tokens: Vec<Secret>,
    tls: Option<TlsIdentity>,
    header_read_timeout: Duration,
    request_timeout: Duration,
    max_concurrent_requests: usize,
    dedup: Option<DedupLayer>,
}

impl HttpServerBuilder {
    pub(super) fn new() -> Self {
        Self {
            max_body_size: defaults::MAX_MESSAGE_SIZE,
            tokens: Vec::new(),
            tls: None,
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
    /// get `401`. Call it again to accept several tokens — the old and the
    /// new one while rotating (`STAGE7_HTTP_TOKENS`); each is compared in
    /// constant time, and all of them every time. Default: no token
    /// required.
    pub fn token(mut self, token: Secret) -> Self {
        self.tokens.push(token);
        self
    }

    /// Serves `https://` with `identity`'s certificate and key
    /// (`STAGE7_TLS_CERT_FILE`, `STAGE7_TLS_KEY_FILE`); plain `http://`
    /// is then refused. The handshake must end within the
    /// [`header_read_timeout`](Self::header_read_timeout). Default: plain
    /// `http://`.
    pub fn tls(mut self, identity: TlsIdentity) -> Self {
        self.tls = Some(identity);
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
    ) -> Result<HttpServer> {
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
    pub fn serve<H: Handler>(self, listener: TcpListener, handler: H) -> Result<HttpServer> {
        self.validate()?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| Error::config(format!("HTTP endpoint: no local address: {e}")))?;
        let tls = self.tls.as_ref().map(TlsIdentity::acceptor);
        let (endpoint, http) = self.parts(handler);
        let ready = endpoint.ready.clone();
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(accept::run(listener, endpoint, http, tls, stopped));
        Ok(HttpServer {
            local_addr,
            ready,
            stop,
            task,
        })
    }

    /// What every connection shares: the endpoint and hyper's settings.
    pub(super) fn parts<H: Handler>(self, handler: H) -> (Arc<Endpoint<H>>, http1::Builder) {
        let endpoint = Arc::new(Endpoint {
            handler: self.dedup.unwrap_or_default().layer(handler),
            codec: Codec::new(self.max_body_size),
            tokens: self.tokens.into(),
            permits: Semaphore::new(self.max_concurrent_requests),
            request_timeout: self.request_timeout,
            header_read_timeout: self.header_read_timeout,
            ready: Arc::new(AtomicBool::new(true)),
        });
        let mut http = http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(self.header_read_timeout)
            .keep_alive(true);
        (endpoint, http)
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
        if self.tokens.iter().any(|token| token.expose().is_empty()) {
            return invalid("a bearer token must not be empty");
        }
        Ok(())
    }
}

impl fmt::Debug for HttpServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpServerBuilder")
            .field("max_body_size", &self.max_body_size)
            .field("tokens", &self.tokens)
            .field("tls", &self.tls.is_some())
            .field("header_read_timeout", &self.header_read_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("max_concurrent_requests", &self.max_concurrent_requests)
            .field("shared_dedup", &self.dedup.is_some())
            .finish()
    }
}
