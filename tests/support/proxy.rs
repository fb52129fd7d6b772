//! A TCP proxy between a client and the broker that can misbehave on demand.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Forward everything.
    Pass,
    /// Forward everything, each chunk this much after it was read: a slow
    /// link, not a narrow one.
    Delay(Duration),
    /// A silent partition: keep connections open, new ones too, but forward
    /// nothing, not even a close from the other side.
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
            let mut black_hole = mode.clone();
            tokio::select! {
                _ = pump(client_read, server_write, mode.clone()) => {}
                client_write = pump(server_read, client_write, mode) => {
                    // A black hole forwards no close either: the client keeps
                    // a silent connection until the partition ends.
                    let _ = black_hole.wait_for(|mode| *mode != Mode::BlackHole).await;
                    drop(client_write);
                }
            }
        });
    }
}

/// Forwards `from` to `to` as the mode says, chunk by chunk, until `from`
/// ends or `to` fails; returns `to`, still open. A delay holds each chunk
/// back from the moment it was read, so the link is slow but not narrow.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mode: watch::Receiver<Mode>,
) -> OwnedWriteHalf {
    let (chunks, mut due) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let read = async move {
        let mut buffer = vec![0u8; 64 * 1024];
        while let Ok(n @ 1..) = from.read(&mut buffer).await {
            let at = match *mode.borrow() {
                Mode::Pass | Mode::Refuse => Instant::now(),
                Mode::Delay(delay) => Instant::now() + delay,
                Mode::BlackHole => continue,
            };
            if chunks.send((at, buffer[..n].to_vec())).is_err() {
                break;
            }
        }
        drop(chunks);
        std::future::pending::<()>().await;
    };
    // Ends once everything read is written and the reader has ended, or
    // when writing fails.
    let write = async {
        while let Some((at, chunk)) = due.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        () = read => {}
        () = write => {}
    }
    to
}
