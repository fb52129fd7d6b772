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

/// One slot per route, and one for errors raised before any route.
const ROUTES: usize = Route::ALL.len() + 1;
/// One slot for success, then one per error class.
const OUTCOMES: usize = ErrorClass::ALL.len() + 1;

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
    route.map_or(Route::ALL.len(), |route| route as usize)
}

fn route_name(index: usize) -> &'static str {
    Route::ALL.get(index).map_or("none", |route| route.as_str())
}

fn outcome_index(class: Option<ErrorClass>) -> usize {
    class.map_or(0, |class| class as usize + 1)
}

fn outcome_name(index: usize) -> &'static str {
    index
        .checked_sub(1)
        .and_then(|class| ErrorClass::ALL.get(class))
        .map_or("ok", |class| class.as_str())
}

impl Handles {
    pub(crate) fn new(scope: Scope) -> Self {
        let calls = match scope {
            Scope::Call => "stage7_transport_calls_total",
            Scope::Attempt(_) => "stage7_transport_attempts_total",
        };
        Self {
            scope,
            counters: std::array::from_fn(|route| {
                std::array::from_fn(|outcome| {
                    metrics::counter!(
                        calls,
                        "route" => route_name(route),
                        "outcome" => outcome_name(outcome)
                    )
                })
            }),
            durations: (scope == Scope::Call).then(|| {
                std::array::from_fn(|route| {
                    metrics::histogram!(
                        "stage7_transport_call_duration_seconds",
                        "route" => route_name(route)
                    )
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
            Ok(_) => tracing::debug!(route = route_name(r), ?elapsed, "delivered"),
            Err(error) if self.scope == Scope::Call => {
                tracing::debug!(route = route_name(r), ?elapsed, %error, "call failed");
            }
            Err(error) => {
                tracing::debug!(route = route_name(r), %error, "attempt failed")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_come_from_the_enums() {
        for route in Route::ALL {
            assert_eq!(route_name(route_index(Some(route))), route.as_str());
        }
        assert_eq!(route_name(route_index(None)), "none");
        for class in ErrorClass::ALL {
            assert_eq!(outcome_name(outcome_index(Some(class))), class.as_str());
        }
        assert_eq!(outcome_name(outcome_index(None)), "ok");
        let mut names: Vec<_> = (0..ROUTES).map(route_name).collect();
        names.dedup();
        assert_eq!(names.len(), ROUTES, "one slot per route name");
    }
}
