//! One reliable way for services to talk: `transport.call(message)`.
//!
//! `stage7-transport` sends [`Message`]s between services through a
//! [`tower`] stack — deadline, retries with backoff, a circuit breaker per
//! recipient, fallback, metrics and tracing — over interchangeable
//! backends: RabbitMQ (AMQP 0-9-1) first, HTTP as the fallback, and an
//! in-memory bus for tests. It is the Rust side of the Stage7 agent
//! platform's messaging and speaks the same JSON wire format as its
//! TypeScript services.
//!
//! # The stack
//!
//! Outermost first, as [`StackBuilder`] assembles it:
//!
//! | layer | does |
//! |---|---|
//! | [`Metrics`](layer::metrics) (call) | counts and times whole calls, opens a tracing span |
//! | [`Deadline`](layer::deadline) | an overall budget, visible to every layer below |
//! | [`Retry`](layer::retry) | jittered backoff within a budget, only when the error class allows |
//! | [`Fallback`](layer::fallback) | primary branch, then secondary when safe |
//! | [`Metrics`](layer::metrics) (attempt) | per-branch counts and times |
//! | [`CircuitBreaker`](layer::circuit_breaker) | per recipient: closed, open, half-open |
//! | [`Timeout`](layer::timeout) | per attempt |
//! | backend | [`MemoryTransport`], or your own [`Transport`] |
//!
//! What each layer does with a failure depends only on the error's
//! [`ErrorClass`]: [`NotDelivered`](ErrorClass::NotDelivered) is always
//! safe to retry and fall back on, [`UnknownOutcome`](ErrorClass::UnknownOutcome)
//! only because receivers de-duplicate on the message id, and
//! [`Rejected`](ErrorClass::Rejected) never.
//!
//! # Quick start
//!
//! ```
//! use std::convert::Infallible;
//! use serde_json::json;
//! use stage7_transport::{MemoryTransport, Message, Route, Stack};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), stage7_transport::Error> {
//! let bus = MemoryTransport::new();
//! bus.register("brain-1", "Brain", tower::service_fn(|m: Message| async move {
//!     Ok::<_, Infallible>(Some(m.reply(json!({"answer": 42}))))
//! }));
//!
//! let transport = Stack::builder(bus).build()?;
//! let delivery = transport.oneshot(Message::request("Brain", json!({"q": "?"}))).await?;
//! assert_eq!(delivery.route(), Route::Memory);
//! assert_eq!(delivery.reply().and_then(|r| r.content()), Some(&json!({"answer": 42})));
//! # Ok(())
//! # }
//! ```
//!
//! # Features
//!
//! None: there is nothing to turn on or off. The `stage7` binary (`echo`,
//! `call`, `send`, `bench`) is a package of its own, in the repository's
//! `cli/` directory (`cargo install --path cli`), so users of the library
//! compile none of its dependencies.
//!
//! TLS is built in, not a feature: `amqps://` broker URLs, `https://`
//! peers and an endpoint that serves `https://` ([`tls`]), with rustls
//! (its `ring` provider) and the system's root certificates. lapin and
//! hyper-rustls default to rustls as well, and a broker URL from the
//! environment that says `amqps://` should never be refused for a build
//! flag.
//!
//! # Minimum supported Rust version
//!
//! 1.88, the version lapin 4 requires.

// Integration tests and benches unwrap freely; the library and the binary
// must not (a peer or the network can make anything fail).
#![deny(clippy::unwrap_used)]
#![forbid(unsafe_code)]

pub mod amqp;
pub mod config;
pub mod defaults;
pub mod entity;
pub mod error;
#[cfg(any(test, fuzzing))]
#[doc(hidden)]
pub mod fuzz;
pub mod handler;
pub mod http;
pub mod layer;
pub mod memory;
pub mod message;
pub mod route;
pub mod secret;
pub mod stack;
pub mod tls;
pub mod transport;
pub mod url;

pub use crate::amqp::AmqpTransport;
pub use crate::config::Config;
pub use crate::entity::{Entity, EntityBuilder};
pub use crate::error::{BoxError, Error, ErrorBody, ErrorClass, ErrorKind, Result};
pub use crate::handler::{BoxHandler, Handler};
pub use crate::http::{HttpServer, HttpTransport, Resolve};
pub use crate::memory::{Fault, MemoryTransport};
pub use crate::message::{Codec, Message, MessageType};
pub use crate::route::Route;
pub use crate::secret::Secret;
pub use crate::stack::{BranchBuilder, Stack, StackBuilder, StandardStack};
pub use crate::transport::{BoxTransport, Delivery, Transport};

/// The README's examples, compiled (and run where they need no broker) as
/// doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
