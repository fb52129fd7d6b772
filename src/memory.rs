//! An in-process transport for tests: handlers on a bus, faults on demand.
//!
//! [`MemoryTransport`] routes like the AMQP topology does: a recipient that
//! is a registered id reaches that handler, a component type reaches every
//! handler of that type (compared without case), and `all` reaches every
//! handler. Messages cross the bus as JSON through a [`Codec`], so size
//! limits and encoding behave as on the wire and handlers never share the
//! sender's copy.
//!
//! A synchronous message is answered by the first matching handler in
//! registration order; the others receive it too and their replies are
//! dropped, as with several consumers bound to one routing key. An
//! asynchronous send resolves once every matching handler has been handed the
//! message; their errors are logged, not returned, as a broker would
//! dead-letter them.
//!
//! [`inject`](MemoryTransport::inject) makes the bus misbehave so you can
//! test your own fallback and retry behaviour: refuse (as a broker that is
//! down), delay, or drop (accepted, never delivered).
//!
//! ```
//! use std::convert::Infallible;
//! use serde_json::json;
//! use stage7_transport::{Fault, MemoryTransport, Message};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let bus = MemoryTransport::new();
//! bus.register("librarian-1", "Librarian", tower::service_fn(|m: Message| async move {
//!     Ok::<_, Infallible>(Some(m.reply(json!("stored"))))
//! }));
//! let reply = bus.clone().oneshot(Message::request("librarian", json!({}))).await.unwrap();
//! assert_eq!(reply.reply().unwrap().content(), Some(&json!("stored")));
//!
//! bus.inject(Fault::Refuse);
//! let error = bus.oneshot(Message::request("librarian-1", json!({}))).await.unwrap_err();
//! assert!(error.is_not_delivered());
//! # }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use tower::{Service, ServiceExt};

use crate::error::{Error, ErrorClass, ErrorKind, Result};
use crate::handler::{BoxHandler, Handler};
use crate::message::{BROADCAST, Codec, Message};
use crate::route::Route;
use crate::transport::Delivery;

/// A misbehaviour to inject into a [`MemoryTransport`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Fail at once with [`NotDelivered`](crate::ErrorClass::NotDelivered),
    /// as a transport whose broker is down.
    Refuse,
    /// Deliver after this long.
    Delay(Duration),
    /// Accept and never deliver: asynchronous sends succeed, synchronous
    /// calls wait forever (until a timeout layer gives up).
    Drop,
}

/// The in-process bus. See the [module docs](self).
///
/// # Clone
///
/// Clones share the bus: register on one, send through another.
#[derive(Clone, Default)]
pub struct MemoryTransport {
    bus: Arc<Bus>,
}

#[derive(Default)]
struct Bus {
    codec: Codec,
    handlers: RwLock<Vec<Registration>>,
    faults: RwLock<Faults>,
}

struct Registration {
    id: String,
    component_type: String,
    handler: BoxHandler,
}

#[derive(Default)]
struct Faults {
    every: Option<Fault>,
    by_recipient: HashMap<String, Fault>,
}

impl MemoryTransport {
    /// An empty bus with the default [`Codec`].
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty bus whose messages cross through `codec`.
    pub fn with_codec(codec: Codec) -> Self {
        Self {
            bus: Arc::new(Bus {
                codec,
                ..Bus::default()
            }),
        }
    }

    /// Registers `handler` as entity `id` of `component_type`, replacing any
    /// handler registered under the same id.
    pub fn register<H: Handler>(
        &self,
        id: impl Into<String>,
        component_type: impl Into<String>,
        handler: H,
    ) {
        let id = id.into();
        let mut handlers = self
            .bus
            .handlers
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        handlers.retain(|registration| registration.id != id);
        handlers.push(Registration {
            id,
            component_type: component_type.into(),
            handler: BoxHandler::new(handler),
        });
    }

    /// Removes entity `id`; returns whether it was registered.
    pub fn unregister(&self, id: &str) -> bool {
        let mut handlers = self
            .bus
            .handlers
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let before = handlers.len();
        handlers.retain(|registration| registration.id != id);
        handlers.len() != before
    }

    /// Applies `fault` to every message until [`clear_faults`](Self::clear_faults).
    pub fn inject(&self, fault: Fault) {
        self.faults_mut().every = Some(fault);
    }

    /// Applies `fault` to messages for `recipient` (exactly as written in the
    /// message); takes precedence over [`inject`](Self::inject).
    pub fn inject_for(&self, recipient: impl Into<String>, fault: Fault) {
        self.faults_mut()
            .by_recipient
            .insert(recipient.into(), fault);
    }

    /// Removes every injected fault.
    pub fn clear_faults(&self) {
        *self.faults_mut() = Faults::default();
    }

    fn faults_mut(&self) -> std::sync::RwLockWriteGuard<'_, Faults> {
        self.bus
            .faults
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn fault_for(&self, recipient: &str) -> Option<Fault> {
        let faults = self
            .bus
            .faults
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        faults.by_recipient.get(recipient).copied().or(faults.every)
    }

    fn targets(&self, recipient: &str) -> Vec<BoxHandler> {
        let handlers = self
            .bus
            .handlers
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        handlers
            .iter()
            .filter(|r| {
                recipient == BROADCAST
                    || r.id == recipient
                    || r.component_type.eq_ignore_ascii_case(recipient)
            })
            .map(|r| r.handler.clone())
            .collect()
    }

    async fn deliver(self, message: Message) -> Result<Delivery> {
        // Refusals complete at once; a caller retrying in a loop must still
        // let the runtime run.
        tokio::task::coop::consume_budget().await;
        let recipient = message
            .recipient()
            .ok_or_else(|| Error::invalid("message has no recipient").with_route(Route::Memory))?
            .to_owned();
        let codec = self.bus.codec;
        let wire = codec
            .encode(&message)
            .map_err(|e| e.with_route(Route::Memory))?;
        match self.fault_for(&recipient) {
            Some(Fault::Refuse) => {
                return Err(Error::new(
                    ErrorKind::Unavailable,
                    ErrorClass::NotDelivered,
                    format!(
                        "memory transport refused the message for `{recipient}` (injected fault)"
                    ),
                )
                .with_route(Route::Memory));
            }
            Some(Fault::Delay(delay)) => tokio::time::sleep(delay).await,
            Some(Fault::Drop) if message.requires_sync() => std::future::pending::<()>().await,
            Some(Fault::Drop) => return Ok(Delivery::new(Route::Memory, None)),
            None => {}
        }
        let mut targets = self.targets(&recipient).into_iter();
        let Some(first) = targets.next() else {
            return Err(Error::no_route(&recipient).with_route(Route::Memory));
        };
        let received = codec
            .decode(&wire)
            .map_err(|e| e.with_route(Route::Memory))?;
        for other in targets {
            tokio::spawn(run_detached(other, received.clone()));
        }
        if !message.requires_sync() {
            tokio::spawn(run_detached(first, received));
            return Ok(Delivery::new(Route::Memory, None));
        }
        match first.oneshot(received).await {
            Ok(Some(reply)) => {
                let reply = codec
                    .encode(&reply)
                    .and_then(|bytes| codec.decode(&bytes))
                    .map_err(|e| e.with_route(Route::Memory))?;
                Ok(Delivery::new(Route::Memory, Some(reply)))
            }
            Ok(None) => Err(Error::new(
                ErrorKind::Protocol,
                ErrorClass::Rejected,
                format!("`{recipient}`: the handler returned no reply to a synchronous message"),
            )
            .with_route(Route::Memory)),
            Err(error) => Err(error.with_route(Route::Memory)),
        }
    }
}

async fn run_detached(handler: BoxHandler, message: Message) {
    let id = message.id().to_owned();
    if let Err(error) = handler.oneshot(message).await {
        tracing::warn!(%error, id, "memory transport: handler failed");
    }
}

/// Response future of [`MemoryTransport`].
pub type ResponseFuture = Pin<Box<dyn Future<Output = Result<Delivery>> + Send>>;

impl Service<Message> for MemoryTransport {
    type Response = Delivery;
    type Error = Error;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, message: Message) -> ResponseFuture {
        Box::pin(self.clone().deliver(message))
    }
}

impl fmt::Debug for MemoryTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let handlers = self
            .bus
            .handlers
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let ids: Vec<&str> = handlers.iter().map(|r| r.id.as_str()).collect();
        f.debug_struct("MemoryTransport")
            .field("handlers", &ids)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::mpsc;

    fn counting(count: Arc<AtomicUsize>) -> impl Handler {
        tower::service_fn(move |m: Message| {
            count.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<_, Infallible>(Some(m.reply(json!("ok")))) }
        })
    }

    #[tokio::test]
    async fn routes_by_id_type_and_all() {
        let bus = MemoryTransport::new();
        let (a, b, c) = (Arc::default(), Arc::default(), Arc::default());
        bus.register("brain-1", "Brain", counting(Arc::clone(&a)));
        bus.register("brain-2", "Brain", counting(Arc::clone(&b)));
        bus.register("lib-1", "Librarian", counting(Arc::clone(&c)));

        bus.clone()
            .oneshot(Message::request("brain-2", json!(1)))
            .await
            .unwrap();
        assert_eq!((a.load(Ordering::SeqCst), b.load(Ordering::SeqCst)), (0, 1));

        let reply = bus
            .clone()
            .oneshot(Message::request("brain", json!(1)))
            .await
            .unwrap();
        assert_eq!(reply.reply().unwrap().sender(), "brain");
        tokio::task::yield_now().await;
        assert_eq!((a.load(Ordering::SeqCst), b.load(Ordering::SeqCst)), (1, 2));

        let event = Message::new(crate::MessageType::Statement).with_recipient(BROADCAST);
        bus.clone().oneshot(event).await.unwrap();
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        let counts = [&a, &b, &c].map(|n| n.load(Ordering::SeqCst));
        assert_eq!(counts, [2, 3, 1]);
    }

    #[tokio::test]
    async fn unknown_recipient_is_not_delivered() {
        let error = MemoryTransport::new()
            .oneshot(Message::request("nobody", json!(null)))
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::NoRoute);
        assert!(error.is_not_delivered());
        assert_eq!(error.route(), Some(Route::Memory));
        assert!(error.to_string().contains("`nobody`"), "{error}");
    }

    #[tokio::test(start_paused = true)]
    async fn faults_refuse_delay_and_drop() {
        let bus = MemoryTransport::new();
        let (tx, mut rx) = mpsc::unbounded_channel();
        bus.register(
            "x",
            "X",
            tower::service_fn(move |m: Message| {
                let _ = tx.send(m.id().to_owned());
                async { Ok::<_, Infallible>(None) }
            }),
        );
        let event = || Message::new(crate::MessageType::Statement).with_recipient("x");

        bus.inject_for("x", Fault::Drop);
        bus.clone().oneshot(event()).await.unwrap();
        tokio::task::yield_now().await;
        assert!(rx.try_recv().is_err(), "dropped messages never arrive");

        bus.inject_for("x", Fault::Delay(Duration::from_secs(2)));
        let started = tokio::time::Instant::now();
        bus.clone().oneshot(event()).await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        assert!(rx.recv().await.is_some());

        bus.clear_faults();
        bus.inject(Fault::Refuse);
        assert!(
            bus.clone()
                .oneshot(event())
                .await
                .unwrap_err()
                .is_not_delivered()
        );
        bus.clear_faults();
        bus.clone().oneshot(event()).await.unwrap();
        assert!(rx.recv().await.is_some());
    }

    #[tokio::test]
    async fn oversize_messages_are_refused_before_delivery() {
        let bus = MemoryTransport::with_codec(Codec::new(100));
        bus.register("x", "X", counting(Arc::default()));
        let big = Message::request("x", json!("y".repeat(200)));
        assert!(bus.oneshot(big).await.unwrap_err().is_too_large());
    }

    #[tokio::test]
    async fn sync_without_reply_is_a_clear_error() {
        let bus = MemoryTransport::new();
        bus.register(
            "x",
            "X",
            tower::service_fn(|_: Message| async { Ok::<_, Infallible>(None) }),
        );
        let error = bus
            .oneshot(Message::request("x", json!(1)))
            .await
            .unwrap_err();
        assert!(error.is_rejected());
        assert!(error.to_string().contains("returned no reply"), "{error}");
        assert!(error.to_string().contains("`x`"), "{error}");
    }
}
