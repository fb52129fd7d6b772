//! `stage7 bench http-rpc`: synchronous calls over HTTP on 127.0.0.1.
//!
//! * `baseline`: a bare hyper-util client POSTs the message's JSON to a bare
//!   hyper server that answers `200` with the same bytes.
//! * `transport`: [`HttpTransport`] calls our [`HttpServer`] serving an echo
//!   handler — JSON encoding and decoding both ways, de-duplication.
//! * `stack`: the full [`Stack`] stack over that transport.
//!
//! Each of our calls carries a fresh id, as real callers' messages do, so
//! the endpoint's de-duplication runs the handler every time, with its
//! default memory.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use stage7_transport::http::StaticResolver;
use stage7_transport::{BranchBuilder, HttpServer, HttpTransport, Message, Route, Stack};
use tokio::net::TcpListener;

use super::Options;
use super::harness::{Comparison, Side, compare, service_side};

const SCENARIO: &str = "http-rpc";

/// A bare hyper server answering every request with its own body.
async fn bare_server() -> Result<SocketAddr, String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("binding the bare server: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let echo = service_fn(|request: Request<Incoming>| async move {
                let body = request.into_body().collect().await?.to_bytes();
                let mut response = Response::new(Full::new(body));
                response
                    .headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                Ok::<_, hyper::Error>(response)
            });
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), echo));
        }
    });
    Ok(addr)
}

fn bare_client() -> Client<HttpConnector, Full<Bytes>> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new()).build(connector)
}

pub(crate) async fn run(options: &Options) -> Result<Vec<Comparison>, String> {
    let template = Message::request("echo", json!({"text": "the quick brown fox", "n": 42}))
        .with_sender("bench");
    let payload = template.to_json().map_err(|e| e.to_string())?;
    let bare_uri: Uri = format!("http://{}/message", bare_server().await?)
        .parse()
        .map_err(|e| format!("bare server URI: {e}"))?;

    // Like the bare server, the handler answers with what it received.
    let echo = tower::service_fn(|m: Message| async move { Ok::<_, Infallible>(Some(m)) });
    let server = HttpServer::builder()
        .bind("127.0.0.1:0", echo)
        .await
        .map_err(|e| e.to_string())?;
    let routes = StaticResolver::new([("echo", format!("http://{}", server.local_addr()))])
        .map_err(|e| e.to_string())?;
    let transport = HttpTransport::builder(routes)
        .build()
        .map_err(|e| e.to_string())?;
    let stack = Stack::builder(transport.clone())
        .primary_branch(BranchBuilder::new(Route::Http))
        .build()
        .map_err(|e| e.to_string())?;

    let mut comparisons = Vec::new();
    for &concurrency in &options.concurrency {
        let baseline = {
            let (client, uri, payload) = (bare_client(), bare_uri.clone(), payload.clone());
            Side::new("baseline", move |_| {
                let mut request = Request::new(Full::new(payload.clone()));
                *request.method_mut() = Method::POST;
                *request.uri_mut() = uri.clone();
                request
                    .headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                let response = client.request(request);
                async move {
                    let response = response.await.map_err(|e| e.to_string())?;
                    if response.status() != StatusCode::OK {
                        return Err(format!("bare server answered {}", response.status()));
                    }
                    let body = response
                        .into_body()
                        .collect()
                        .await
                        .map_err(|e| e.to_string())?;
                    if body.to_bytes().is_empty() {
                        return Err("bare server answered an empty body".to_owned());
                    }
                    Ok(())
                }
            })
        };
        let ours = service_side("transport", transport.clone(), template.clone());
        let stacked = service_side("stack", stack.clone(), template.clone());
        comparisons.push(
            compare(
                SCENARIO,
                options.n,
                concurrency,
                options.rounds,
                vec![baseline, ours, stacked],
            )
            .await?,
        );
    }
    server
        .shutdown(Duration::from_secs(5))
        .await
        .map_err(|e| e.to_string())?;
    Ok(comparisons)
}
