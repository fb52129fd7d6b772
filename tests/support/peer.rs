//! HTTP helpers: a scripted peer, a connection-counting forwarder, a raw
//! request.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

/// What a scripted peer received: the request head and body.
pub(crate) type Received = (http::request::Parts, Bytes);

/// A bare hyper server on 127.0.0.1 answering every request with
/// `respond`, counting the requests.
pub(crate) struct Peer {
    pub(crate) addr: SocketAddr,
    requests: Arc<AtomicUsize>,
}

impl Peer {
    pub(crate) async fn start<F>(respond: F) -> Self
    where
        F: Fn(Received) -> Response<Full<Bytes>> + Send + Sync + 'static,
    {
        Self::start_on("127.0.0.1:0".parse().unwrap(), respond).await
    }

    /// [`start`](Self::start) on `addr` instead of 127.0.0.1.
    pub(crate) async fn start_on<F>(addr: SocketAddr, respond: F) -> Self
    where
        F: Fn(Received) -> Response<Full<Bytes>> + Send + Sync + 'static,
    {
        let listener = TcpListener::bind(addr).await.expect("bind a peer");
        let addr = listener.local_addr().expect("peer address");
        let requests = Arc::new(AtomicUsize::new(0));
        let (counted, respond) = (requests.clone(), Arc::new(respond));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (counted, respond) = (counted.clone(), respond.clone());
                let service = service_fn(move |request: Request<Incoming>| {
                    counted.fetch_add(1, Ordering::SeqCst);
                    let respond = respond.clone();
                    async move {
                        let (parts, body) = request.into_parts();
                        let body = body
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        Ok::<_, Infallible>(respond((parts, body)))
                    }
                });
                tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
            }
        });
        Self { addr, requests }
    }

    /// `http://{address}:{port}`.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests answered so far.
    pub(crate) fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// A response with `status`, JSON content type and `body`.
pub(crate) fn reply(status: u16, body: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("a valid response")
}

/// [`reply`] with `Retry-After: {seconds}`.
pub(crate) fn reply_retry_after(status: u16, body: &str, seconds: u64) -> Response<Full<Bytes>> {
    let mut response = reply(status, body);
    response.headers_mut().insert("retry-after", seconds.into());
    response
}

/// Forwards 127.0.0.1 connections to `upstream`, counting the connections
/// it accepts.
pub(crate) struct CountingForwarder {
    pub(crate) addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
}

impl CountingForwarder {
    pub(crate) async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a forwarder");
        let addr = listener.local_addr().expect("forwarder address");
        let accepted = Arc::new(AtomicUsize::new(0));
        let counted = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Self { addr, accepted }
    }

    /// Connections accepted so far.
    pub(crate) fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// A request with a hyper client of its own, on a fresh connection: the
/// status, headers and body.
pub(crate) async fn raw(
    addr: SocketAddr,
    request: Request<Full<Bytes>>,
) -> (http::StatusCode, http::HeaderMap, Bytes) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    let response = sender.send_request(request).await.expect("a response");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("a body").to_bytes();
    (parts.status, parts.headers, body)
}
