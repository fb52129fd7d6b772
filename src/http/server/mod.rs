//! The HTTP endpoint every entity exposes: `POST /message`, `GET /healthy`,
//! `GET /ready`.
//!
//! [`HttpServer`] serves any [`Handler`](crate::Handler) over HTTP/1.1 with keep-alive. A
//! synchronous message is answered `200` with the handler's reply as body,
//! an asynchronous one `202` once the handler has finished with it (so its
//! sender learns of a failure, and a busy endpoint slows its senders down).
//! The handler runs behind de-duplication ([`DedupLayer`](crate::layer::dedup::DedupLayer)): a message whose
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
//! | more than [`max_concurrent_requests`](HttpServerBuilder::max_concurrent_requests) in progress | `503` (with `Retry-After`) | `overloaded` |
//! | content type not `application/json` | `415` | `invalid_message` |
//! | body over [`max_body_size`](HttpServerBuilder::max_body_size) | `413` | `too_large` |
//! | empty body, malformed JSON, not an object, wrong field types | `400`, naming the problem | `invalid_message` |
//! | not handled within [`request_timeout`](HttpServerBuilder::request_timeout) | `504` | `timeout` |
//! | handler error | `422` when rejected (`400`, `403`, `413` for invalid input, refusal, size), `502` otherwise (`504` for a timeout) | the error's |
//! | handler panicked | `422` | `handler` |
//! | synchronous message, handler returned no reply | `422` | `protocol` |
//! | the handler's reply cannot be encoded (too large) | `422` | the encoder's |
//!
//! With [`tls`](HttpServerBuilder::tls) the endpoint serves `https://`
//! only; a client whose TLS handshake does not end within the header read
//! timeout is disconnected. With [`token`](HttpServerBuilder::token) it
//! requires one of its tokens on `POST /message` (`/healthy` and `/ready`
//! stay open, for probes).
//!
//! Clients that send their headers too slowly are disconnected after
//! [`header_read_timeout`](HttpServerBuilder::header_read_timeout), which also
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
//! let server = HttpServer::builder()
//!     .token(Secret::new("s3cret"))
//!     .bind("127.0.0.1:5070", echo)
//!     .await?;
//! println!("listening on {}", server.local_addr());
//! tokio::signal::ctrl_c().await.ok();
//! server.shutdown(Duration::from_secs(5)).await
//! # }
//! ```

mod accept;
mod builder;
mod endpoint;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use self::builder::HttpServerBuilder;
use crate::error::{Error, ErrorClass, ErrorKind, Result};

/// A running endpoint: its address, its readiness, and the way to stop it.
///
/// Dropping the handle shuts the endpoint down in the background as
/// [`shutdown`](Self::shutdown) with [`SHUTDOWN_GRACE`](crate::defaults::SHUTDOWN_GRACE)
/// would.
pub struct HttpServer {
    pub(super) local_addr: SocketAddr,
    pub(super) ready: Arc<AtomicBool>,
    pub(super) stop: oneshot::Sender<Duration>,
    pub(super) task: JoinHandle<Result<()>>,
}

impl HttpServer {
    /// Settings for an endpoint, starting from the defaults; end with
    /// [`bind`](HttpServerBuilder::bind) or [`serve`](HttpServerBuilder::serve).
    pub fn builder() -> HttpServerBuilder {
        HttpServerBuilder::new()
    }

    /// The address the endpoint listens on: the port picked for
    /// `127.0.0.1:0`.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Sets what `GET /ready` answers: `200` when ready (the default),
    /// `503` when not — say, while the entity's other connections are down.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Stops accepting connections, lets requests in progress finish within
    /// `grace`, then closes every connection. `GET /ready` answers `503`
    /// from the start of the shutdown.
    ///
    /// # Errors
    ///
    /// [`Timeout`](crate::ErrorKind::Timeout) when some requests were still
    /// in progress after `grace` and their connections were cut.
    pub async fn shutdown(self, grace: Duration) -> Result<()> {
        // An error means the server already stopped; its task says why.
        let _ = self.stop.send(grace);
        self.task.await.map_err(|e| {
            Error::new(
                ErrorKind::Closed,
                ErrorClass::NotDelivered,
                format!("the HTTP endpoint's task failed: {e}"),
            )
        })?
    }
}

/// The bearer token the fuzzed endpoint accepts.
#[cfg(any(test, fuzzing))]
pub(crate) const FUZZ_TOKEN: &str = "fuzz-token";

/// Serves one in-memory connection that sends `data` and then closes its
/// side, as the endpoint serves a real one (token [`FUZZ_TOKEN`], an echo
/// handler, a 64 KiB body limit); returns what the endpoint wrote back.
/// For `cargo fuzz` (`fuzz/`) and the test that replays its corpus.
#[cfg(any(test, fuzzing))]
pub(crate) async fn fuzz_connection(data: &[u8]) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let echo = tower::service_fn(|m: crate::message::Message| async move {
        let content = m.content().cloned().unwrap_or_default();
        Ok::<_, std::convert::Infallible>(Some(m.reply(content)))
    });
    let (endpoint, mut http) = HttpServer::builder()
        .token(crate::secret::Secret::new(FUZZ_TOKEN))
        .max_body_size(64 * 1024)
        .parts(echo);
    // The input ends with the client's end of stream; answer what came
    // before it, as a client that waits would see.
    http.half_close(true);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let (mut client, server) = tokio::io::duplex(16 * 1024);
    let serving = accept::serve(server, endpoint, &http, graceful.watcher());
    let talking = async move {
        // Either side may stop early; what was written back is the answer.
        let _ = client.write_all(data).await;
        let _ = client.shutdown().await;
        let mut answer = Vec::new();
        let _ = client.read_to_end(&mut answer).await;
        answer
    };
    let (_, answer) = tokio::join!(serving, talking);
    answer
}

impl fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpServer")
            .field("local_addr", &self.local_addr)
            .field("ready", &self.ready.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}
