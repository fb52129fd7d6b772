//! Future types

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;

use super::registry::{Registry, Ticket};
use crate::error::Error;

pin_project! {
    /// Response future of [`CircuitBreaker`](super::CircuitBreaker).
    ///
    /// Reports the outcome to the breaker when it completes; dropped before
    /// completing, it frees its half-open probe slot.
    #[must_use = "futures do nothing unless polled"]
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    #[derive(Debug)]
    enum State<F> {
        Admitted { #[pin] future: F, guard: Guard },
        Refused { error: Option<Error> },
    }
}

/// Holds an admitted call's ticket until its outcome is reported.
#[derive(Debug)]
struct Guard {
    registry: Arc<Registry>,
    ticket: Option<Ticket>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.registry.release(ticket);
        }
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn admitted(future: F, registry: Arc<Registry>, ticket: Ticket) -> Self {
        Self {
            state: State::Admitted {
                future,
                guard: Guard {
                    registry,
                    ticket: Some(ticket),
                },
            },
        }
    }

    pub(crate) fn refused(error: Error) -> Self {
        Self {
            state: State::Refused { error: Some(error) },
        }
    }
}

impl<F, T> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, Error>>,
{
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Admitted { future, guard } => {
                let result = ready!(future.poll(cx));
                if let Some(ticket) = guard.ticket.take() {
                    guard.registry.complete(ticket, result.as_ref().err());
                }
                Poll::Ready(result)
            }
            StateProj::Refused { error } => {
                Poll::Ready(Err(error.take().expect("polled after completion")))
            }
        }
    }
}
