//! Metrics and tracing around a branch or the whole call.
//!
//! Two scopes, same layer:
//!
//! * [`MetricsLayer::call`] wraps the whole stack and records, per call,
//!   `stage7_transport_calls_total{route,outcome}` and
//!   `stage7_transport_call_duration_seconds{route}`, where `route` is the
//!   route that served (or failed last) and `outcome` is `ok` or the error
//!   class (`not_delivered`, `unknown_outcome`, `rejected`).
//! * [`MetricsLayer::attempts`] wraps one branch and records, per attempt
//!   on that route, `stage7_transport_attempts_total{route,outcome}`. It
//!   reads no clock: two clock reads cost more than the rest of the stack's
//!   success path, and the call duration above already times the route that
//!   served. Errors raised in the branch above its backend (timeouts, open
//!   circuits) are tagged with the branch's route here.
//!
//! Each call also runs inside a `tracing` span (`stage7.call` or
//! `stage7.attempt`, with the message id, type and recipient) and ends with a
//! `debug` event. Failures are not logged louder: the caller gets the error
//! and decides; the metrics count them.
//!
//! Metric handles are registered once, when the layer is built, as the
//! `metrics` crate recommends for hot paths: **install your recorder before
//! building the stack**. With no recorder the handles are no-ops.
//!
//! ```
//! use stage7_transport::layer::metrics::MetricsLayer;
//! use stage7_transport::MemoryTransport;
//! use tower::Layer;
//!
//! let _transport = MetricsLayer::call().layer(MemoryTransport::new());
//! ```

pub mod future;
mod layer;

use std::sync::Arc;
use std::task::{Context, Poll};

use metrics::{Counter, Histogram};
use tokio::time::Instant;
use tower::Service;

pub use self::future::ResponseFuture;
pub use self::layer::MetricsLayer;
use crate::error::{Error, ErrorClass};
use crate::message::Message;
use crate::route::Route;
use crate::transport::Delivery;

/// Records metrics and a tracing span for each call. See the
/// [module docs](self).
#[derive(Debug, Clone)]
pub struct Metrics<S> {
    inner: S,
    handles: Arc<Handles>,
}

impl<S> Metrics<S> {
    pub(crate) fn new(inner: S, handles: Arc<Handles>) -> Self {
        Self { inner, handles }
    }

    crate::layer::inner_accessors!();
}

impl<S> Service<Message> for Metrics<S>
where
    S: Service<Message, Response = Delivery, Error = Error>,
{
    type Response = Delivery;
    type Error = Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut message: Message) -> Self::Future {
        let span = self.handles.span(&message);
        let started = (self.handles.scope == Scope::Call).then(Instant::now);
        if let Some(started) = started {
            message.set_started(started);
        }
        let future = {
            let _entered = span.enter();
            self.inner.call(message)
        };
        ResponseFuture::new(future, self.handles.clone(), span, started)
    }
}

const ROUTES: usize = 4;
const OUTCOMES: usize = 4;
const OUTCOME_NAMES: [&str; OUTCOMES] = ["ok", "not_delivered", "unknown_outcome", "rejected"];

/// What a layer records into; registered once when the layer is built.
#[derive(Debug)]
pub(crate) struct Handles {
    scope: Scope,
    counters: [[Counter; OUTCOMES]; ROUTES],
    /// Only for [`Scope::Call`].
    durations: Option<[Histogram; ROUTES]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    Call,
    Attempt(Route),
}

fn route_index(route: Option<Route>) -> usize {
    match route {
        Some(Route::Amqp) => 0,
        Some(Route::Http) => 1,
        Some(Route::Memory) => 2,
        None => 3,
    }
}

const ROUTE_NAMES: [&str; ROUTES] = ["amqp", "http", "memory", "none"];

fn outcome_index(class: Option<ErrorClass>) -> usize {
    match class {
        None => 0,
        Some(ErrorClass::NotDelivered) => 1,
        Some(ErrorClass::UnknownOutcome) => 2,
        Some(ErrorClass::Rejected) => 3,
    }
}

impl Handles {
    pub(crate) fn new(scope: Scope) -> Self {
        let calls = match scope {
            Scope::Call => "stage7_transport_calls_total",
            Scope::Attempt(_) => "stage7_transport_attempts_total",
        };
        Self {
            scope,
            counters: ROUTE_NAMES.map(|route| {
                OUTCOME_NAMES
                    .map(|outcome| metrics::counter!(calls, "route" => route, "outcome" => outcome))
            }),
            durations: (scope == Scope::Call).then(|| {
                ROUTE_NAMES.map(|route| {
                    metrics::histogram!("stage7_transport_call_duration_seconds", "route" => route)
                })
            }),
        }
    }

    fn span(&self, message: &Message) -> tracing::Span {
        let (id, kind, recipient) = (message.id(), message.kind().as_str(), message.recipient());
        match self.scope {
            Scope::Call => tracing::debug_span!("stage7.call", id, r#type = kind, recipient),
            Scope::Attempt(route) => {
                tracing::debug_span!("stage7.attempt", route = route.as_str(), id, recipient)
            }
        }
    }

    /// Attempt scope knows its route: errors raised above the backend
    /// (timeouts, open circuits) get it too.
    fn tag(&self, result: Result<Delivery, Error>) -> Result<Delivery, Error> {
        match (self.scope, result) {
            (Scope::Attempt(route), Err(error)) if error.route().is_none() => {
                Err(error.with_route(route))
            }
            (_, result) => result,
        }
    }

    fn record(&self, result: &Result<Delivery, Error>, started: Option<Instant>) {
        let (route, class) = match result {
            Ok(delivery) => (Some(delivery.route()), None),
            Err(error) => (error.route(), Some(error.class())),
        };
        let route = match self.scope {
            Scope::Call => route,
            Scope::Attempt(branch) => Some(branch),
        };
        let (r, o) = (route_index(route), outcome_index(class));
        self.counters[r][o].increment(1);
        let elapsed = started.map(|started| started.elapsed());
        if let (Some(durations), Some(elapsed)) = (&self.durations, elapsed) {
            durations[r].record(elapsed.as_secs_f64());
        }
        match result {
            Ok(_) => tracing::debug!(route = ROUTE_NAMES[r], ?elapsed, "delivered"),
            Err(error) if self.scope == Scope::Call => {
                tracing::debug!(route = ROUTE_NAMES[r], ?elapsed, %error, "call failed");
            }
            Err(error) => {
                tracing::debug!(route = ROUTE_NAMES[r], %error, "attempt failed")
            }
        }
    }
}
