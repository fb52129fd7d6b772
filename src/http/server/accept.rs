//! The accept loop of a running endpoint, each connection (its TLS
//! handshake first, when the endpoint serves `https://`), then the graceful
//! shutdown.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::endpoint::Endpoint;
use crate::defaults;
use crate::error::{BoxError, Error, ErrorClass, ErrorKind, Result};
use crate::handler::Handler;

/// Pause after a failed `accept` (out of file descriptors, say) so the loop
/// does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// The accept loop, then the graceful shutdown.
pub(super) async fn run<H: Handler>(
    listener: TcpListener,
    endpoint: Arc<Endpoint<H>>,
    http: http1::Builder,
    tls: Option<TlsAcceptor>,
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
                    let connection = connection(
                        stream,
                        endpoint.clone(),
                        http.clone(),
                        tls.clone(),
                        graceful.watcher(),
                    );
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

/// One accepted connection: the TLS handshake (within the header read
/// timeout) when the endpoint serves `https://`, then HTTP/1.1 until either
/// side closes it or the endpoint shuts down.
async fn connection<H: Handler>(
    stream: TcpStream,
    endpoint: Arc<Endpoint<H>>,
    http: http1::Builder,
    tls: Option<TlsAcceptor>,
    watcher: Watcher,
) -> std::result::Result<(), BoxError> {
    let Some(tls) = tls else {
        return serve(stream, endpoint, &http, watcher).await;
    };
    let handshake = tokio::time::timeout(endpoint.header_read_timeout, tls.accept(stream))
        .await
        .map_err(|_| "the TLS handshake did not end within the header read timeout")??;
    serve(handshake, endpoint, &http, watcher).await
}

/// HTTP/1.1 over `io`, every request answered by `endpoint`.
pub(super) async fn serve<H, I>(
    io: I,
    endpoint: Arc<Endpoint<H>>,
    http: &http1::Builder,
    watcher: Watcher,
) -> std::result::Result<(), BoxError>
where
    H: Handler,
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request| {
        let endpoint = endpoint.clone();
        async move { Ok::<_, Infallible>(endpoint.handle(request).await) }
    });
    watcher
        .watch(http.serve_connection(TokioIo::new(io), service))
        .await?;
    Ok(())
}
