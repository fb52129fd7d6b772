use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::error::{Error, ErrorClass, ErrorKind, Result};

/// A running endpoint: its address, its readiness, and the way to stop it.
///
/// Dropping the handle shuts the endpoint down in the background as
/// [`shutdown`](Self::shutdown) with [`SHUTDOWN_GRACE`](crate::defaults::SHUTDOWN_GRACE)
/// would.
pub struct ServerHandle {
    pub(super) local_addr: SocketAddr,
    pub(super) ready: Arc<AtomicBool>,
    pub(super) stop: oneshot::Sender<Duration>,
    pub(super) task: JoinHandle<Result<()>>,
}

impl ServerHandle {
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

impl fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerHandle")
            .field("local_addr", &self.local_addr)
            .field("ready", &self.ready.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}
