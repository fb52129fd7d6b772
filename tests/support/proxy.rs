//! A TCP proxy between a client and the broker that can misbehave on demand.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Forward everything.
    Pass,
    /// Forward everything, each chunk this much later.
    Delay(Duration),
    /// Keep connections open but forward nothing.
    BlackHole,
    /// Stop listening: new connections are refused.
    Refuse,
}

pub(crate) struct Proxy {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
    connections: Arc<Mutex<JoinSet<()>>>,
    accepts: watch::Receiver<usize>,
    _task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Listens on 127.0.0.1 and forwards to `upstream` (`host:port`).
    pub(crate) async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (mode, mode_rx) = watch::channel(Mode::Pass);
        let (accepted, accepts) = watch::channel(0);
        let connections = Arc::new(Mutex::new(JoinSet::new()));
        let task = tokio::spawn(accept_loop(
            listener,
            addr,
            upstream.to_owned(),
            mode_rx,
            connections.clone(),
            accepted,
        ));
        Self {
            addr,
            mode,
            connections,
            accepts,
            _task: task,
        }
    }

    /// An AMQP URL through the proxy, with the credentials of `url`.
    pub(crate) fn amqp_url(&self, url: &str) -> String {
        let upstream = super::host_port(url);
        url.replacen(&upstream, &self.addr.to_string(), 1).replacen(
            "localhost:5672",
            &self.addr.to_string(),
            1,
        )
    }

    pub(crate) fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    /// Connections accepted so far.
    pub(crate) fn accepted(&self) -> usize {
        *self.accepts.borrow()
    }

    /// Resets every open connection (RST to both sides).
    pub(crate) fn reset(&self) {
        self.connections.lock().unwrap().abort_all();
    }
}

async fn accept_loop(
    mut listener: TcpListener,
    addr: SocketAddr,
    upstream: String,
    mut mode: watch::Receiver<Mode>,
    connections: Arc<Mutex<JoinSet<()>>>,
    accepted: watch::Sender<usize>,
) {
    loop {
        if *mode.borrow() == Mode::Refuse {
            drop(listener);
            let _ = mode.wait_for(|m| *m != Mode::Refuse).await;
            let socket = TcpSocket::new_v4().unwrap();
            socket.set_reuseaddr(true).unwrap();
            socket.bind(addr).unwrap();
            listener = socket.listen(128).unwrap();
            continue;
        }
        let accepted_stream = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = mode.changed() => continue,
        };
        let Ok((client, _)) = accepted_stream else {
            continue;
        };
        // Set to refuse while this connection was being accepted.
        if *mode.borrow() == Mode::Refuse {
            drop(client);
            continue;
        }
        accepted.send_modify(|n| *n += 1);
        let upstream = upstream.clone();
        let mode = mode.clone();
        let mut connections = connections.lock().unwrap();
        while connections.try_join_next().is_some() {}
        connections.spawn(async move {
            let Ok(server) = TcpStream::connect(&upstream).await else {
                return;
            };
            // Linger 0 makes a reset send RST at once; it never blocks on drop.
            #[allow(deprecated, reason = "SO_LINGER 0 resets at once instead of blocking")]
            {
                let _ = client.set_linger(Some(Duration::ZERO));
                let _ = server.set_linger(Some(Duration::ZERO));
            }
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::select! {
                () = pump(client_read, server_write, mode.clone()) => {}
                () = pump(server_read, client_write, mode) => {}
            }
        });
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mode: watch::Receiver<Mode>,
) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let current = *mode.borrow();
        match current {
            Mode::Pass | Mode::Refuse => {}
            Mode::Delay(delay) => tokio::time::sleep(delay).await,
            Mode::BlackHole => continue,
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}
