//! An entity: a Stage7 service that receives over both paths and calls
//! through the whole stack (the TypeScript `BaseEntity`).
//!
//! [`Entity::builder`] takes a component type and a handler;
//! [`EntityBuilder::start`] then
//!
//! * serves the [HTTP endpoint](crate::http::server) (`POST /message`,
//!   `GET /healthy`, `GET /ready`),
//! * consumes the entity's AMQP queue `{type}-{id}`, bound to
//!   `message.{id}`, `message.{type}` and `message.all` — at once if the
//!   broker answers, otherwise as soon as it does (the queue expires once
//!   nothing has consumed it for a while, 30 minutes with a generated id,
//!   7 days with a chosen one: [`EntityBuilder::queue_expires`]),
//! * registers with the PostOffice (`POST /registerComponent`) when one is
//!   configured, retrying in the background until it answers,
//! * and assembles the stack for outgoing calls: AMQP first, HTTP second.
//!
//! Both receiving paths share one de-duplication memory, so a message that
//! arrives over AMQP and again over HTTP (a fallback after a lost reply)
//! runs the handler once. A handler error becomes an error reply for a
//! synchronous message; an asynchronous one that fails over AMQP is
//! dead-lettered with the reason, over HTTP its sender gets the error.
//!
//! ```no_run
//! use std::convert::Infallible;
//! use serde_json::json;
//! use stage7_transport::{Config, Entity, Message};
//!
//! # async fn run() -> Result<(), stage7_transport::Error> {
//! let librarian = Entity::builder("Librarian", tower::service_fn(|m: Message| async move {
//!     Ok::<_, Infallible>(Some(m.reply(json!({"stored": true}))))
//! }))
//! .config(Config::from_env()?)
//! .start()
//! .await?;
//!
//! let reply = librarian.request("Brain", json!({"question": "?"})).await?;
//! println!("{:?}", reply.content());
//! librarian.shutdown().await?;
//! # Ok(())
//! # }
//! ```

mod advertise;
mod builder;

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value;
use tokio::task::JoinHandle;
use tower::ServiceExt;

pub use self::builder::EntityBuilder;
use crate::amqp::{AmqpTransport, Subscriber};
use crate::error::{Error, Result};
use crate::handler::{BoxHandler, Handler};
use crate::http::HttpServer;
use crate::message::Message;
use crate::stack::StandardStack;
use crate::transport::Delivery;

/// A running entity. See the [module docs](self).
///
/// # Clone
///
/// Clones share the entity: call from as many tasks as you like. Dropping
/// the last one stops the entity in the background; [`shutdown`](Self::shutdown)
/// stops it and waits.
#[derive(Clone)]
pub struct Entity {
    inner: Arc<Inner>,
}

pub(super) struct Inner {
    id: String,
    component_type: String,
    url: String,
    stack: StandardStack,
    amqp: AmqpTransport,
    server: Mutex<Option<HttpServer>>,
    subscriber: Mutex<Option<Subscriber>>,
    registration: Mutex<Option<JoinHandle<()>>>,
    grace: Duration,
}

impl Entity {
    /// Settings for an entity of `component_type` whose messages go to
    /// `handler`.
    pub fn builder<H: Handler>(component_type: impl Into<String>, handler: H) -> EntityBuilder {
        EntityBuilder::new(component_type.into(), BoxHandler::new(handler))
    }

    /// The entity's id.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The entity's component type.
    pub fn component_type(&self) -> &str {
        &self.inner.component_type
    }

    /// The base URL peers reach the HTTP endpoint at.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// The address the HTTP endpoint listens on.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        lock(&self.inner.server)
            .as_ref()
            .map(HttpServer::local_addr)
    }

    /// The stack the entity calls through, to compose into your own
    /// services.
    pub fn transport(&self) -> StandardStack {
        self.inner.stack.clone()
    }

    /// The AMQP backend, for its connection state.
    pub fn amqp(&self) -> &AmqpTransport {
        &self.inner.amqp
    }

    /// Whether the entity's queue is being consumed now.
    pub fn is_consuming(&self) -> bool {
        lock(&self.inner.subscriber)
            .as_ref()
            .is_some_and(Subscriber::is_consuming)
    }

    /// Sends `message` from this entity — `sender`, `id` and `timestamp`
    /// filled when missing — through the stack, and returns the route and,
    /// for a synchronous message, the reply.
    ///
    /// # Errors
    ///
    /// The stack's [`Error`]: what happened and whether repeating is safe.
    pub async fn call(&self, mut message: Message) -> Result<Delivery> {
        message.stamp(&self.inner.id);
        self.inner.stack.clone().oneshot(message).await
    }

    /// [`call`](Self::call) for a message that expects no reply.
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call).
    pub async fn send(&self, message: Message) -> Result<Delivery> {
        self.call(message.with_sync(false)).await
    }

    /// A synchronous [`Request`](crate::MessageType::Request) to
    /// `recipient`; returns the reply.
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call), or [`Protocol`](crate::ErrorKind::Protocol) when
    /// the peer answered without a reply.
    pub async fn request(&self, recipient: &str, content: Value) -> Result<Message> {
        self.call(Message::request(recipient, content))
            .await?
            .into_reply()
            .ok_or_else(Error::no_reply)
    }

    /// Stops receiving and lets running handlers finish within the
    /// shutdown grace: the endpoint stops taking requests and finishes those
    /// in flight, the AMQP consumer stops and acknowledges what its handlers
    /// finish (the rest goes back to the queue), then the connection closes.
    /// Nothing acknowledged is lost.
    ///
    /// # Errors
    ///
    /// When the HTTP endpoint cannot finish its requests within the grace.
    pub async fn shutdown(&self) -> Result<()> {
        let grace = self.inner.grace;
        if let Some(registration) = lock(&self.inner.registration).take() {
            registration.abort();
        }
        let server = lock(&self.inner.server).take();
        let subscriber = lock(&self.inner.subscriber).take();
        if let Some(server) = &server {
            server.set_ready(false);
        }
        let consumer = async {
            if let Some(subscriber) = subscriber {
                subscriber.shutdown(grace).await;
            }
        };
        let endpoint = async {
            match server {
                Some(server) => server.shutdown(grace).await,
                None => Ok(()),
            }
        };
        let ((), served) = tokio::join!(consumer, endpoint);
        self.inner.amqp.close();
        tracing::info!(id = self.inner.id, "entity stopped");
        served
    }
}

/// The last clone dropped without [`Entity::shutdown`]: everything stops in
/// the background, as `shutdown` would stop it.
impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(registration) = lock(&self.registration).take() {
            registration.abort();
        }
        if let Some(subscriber) = lock(&self.subscriber).take() {
            subscriber.stop(self.grace);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl fmt::Debug for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entity")
            .field("id", &self.inner.id)
            .field("component_type", &self.inner.component_type)
            .field("url", &self.inner.url)
            .field("amqp", &self.inner.amqp)
            .finish_non_exhaustive()
    }
}
