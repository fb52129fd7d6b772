//! The accept loop of a running endpoint, then its graceful shutdown.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use super::endpoint::Endpoint;
use crate::defaults;
use crate::error::{Error, ErrorClass, ErrorKind, Result};
use crate::handler::Handler;

/// Pause after a failed `accept` (out of file descriptors, say) so the loop
/// does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// The accept loop, then the graceful shutdown.
pub(super) async fn run<H: Handler>(
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
