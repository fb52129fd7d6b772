//! HTTP: the fallback path ([`HttpTransport`]) and the receiving side
//! ([`HttpServer`]).
//!
//! # Wire contract (docs/ARCHITECTURE.md, wire format)
//!
//! `POST {base}/message` with the message as JSON, `Content-Type:
//! application/json`, `X-Request-ID: {id}` and, when a token is configured
//! and the base's host may have it
//! ([`HttpTransportBuilder::token`]), `Authorization: Bearer {token}`. The
//! base is `http://` or `https://` ([`tls`](crate::tls)). A synchronous message is answered `200`
//! with the reply message as body, an asynchronous one `202`. Errors are
//! JSON [`ErrorBody`](crate::ErrorBody)s, `{"error": "...", "kind": "..."}`;
//! the [`server`] module lists which status each failure gets.
//!
//! # How the transport classifies failures
//!
//! What the retry, fallback and circuit-breaker layers do depends on the
//! error's [`ErrorClass`](crate::ErrorClass):
//!
//! | outcome | class |
//! |---|---|
//! | connection refused, connect timeout, connection closed before the request was written | [`NotDelivered`](crate::ErrorClass::NotDelivered) (`unavailable`) |
//! | TLS handshake failed: certificate not trusted, wrong name, expired | `NotDelivered` (`tls`) |
//! | `404`: no `/message` there, or no such recipient | `NotDelivered` (`no_route`) |
//! | `429`, or `503` with our endpoint's refusal body (overloaded, not ready) | `NotDelivered`, with the peer's `Retry-After` |
//! | other `4xx` | [`Rejected`](crate::ErrorClass::Rejected), with the peer's error text — never retried |
//! | other `5xx` (a `503` without our body too), connection lost after sending, request timeout | [`UnknownOutcome`](crate::ErrorClass::UnknownOutcome) — repeated only because receivers de-duplicate |
//!
//! `404` and `429` are the `4xx` that are not `Rejected`: like AMQP's
//! unroutable return, they mean nobody received the message. An answer
//! proves delivery, so an error body cannot claim more: a `404`, `429` or
//! `503` whose body names another kind, or a class other than
//! `not_delivered`, is not one of our endpoint's refusals and is read as
//! any other `4xx` or `5xx`. An unknown recipient in
//! the [`Resolve`]r is `NotDelivered` too, kind `no_route`, naming it, and
//! so is a broadcast to `all`: a request reaches one receiver, so HTTP does
//! not carry broadcasts, rather than deliver one to whichever receiver a
//! route names. Every error carries [`Route::Http`](crate::Route::Http).
//!
//! ```
//! use std::convert::Infallible;
//! use std::time::Duration;
//! use serde_json::json;
//! use stage7_transport::http::StaticResolver;
//! use stage7_transport::{HttpServer, HttpTransport, Message};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), stage7_transport::Error> {
//! let echo = tower::service_fn(|m: Message| async move {
//!     let content = m.content().cloned().unwrap_or_default();
//!     Ok::<_, Infallible>(Some(m.reply(content)))
//! });
//! let server = HttpServer::builder().bind("127.0.0.1:0", echo).await?;
//!
//! let base = format!("http://{}", server.local_addr());
//! let transport = HttpTransport::builder(StaticResolver::new([("echo", base)])?).build()?;
//! let delivery = transport.oneshot(Message::request("echo", json!({"hi": 1}))).await?;
//! assert_eq!(delivery.reply().and_then(|r| r.content()), Some(&json!({"hi": 1})));
//!
//! server.shutdown(Duration::from_secs(1)).await
//! # }
//! ```

mod classify;
pub(crate) mod client;
pub mod postoffice_client;
pub mod resolve;
pub mod server;
mod transport;

pub use self::postoffice_client::{Component, PostOfficeClient, PostOfficeClientBuilder};
pub use self::resolve::{
    PostOfficeResolver, PostOfficeResolverBuilder, Resolve, ResolveFuture, ResolverChain,
    StaticResolver,
};
pub use self::server::{HttpServer, HttpServerBuilder};
pub use self::transport::{HttpTransport, HttpTransportBuilder, ResponseFuture};
use crate::message::APPLICATION_JSON;

const MESSAGE_PATH: &str = "/message";
const X_REQUEST_ID: &str = "x-request-id";
