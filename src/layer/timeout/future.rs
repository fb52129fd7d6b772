//! Future types

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep, sleep_until};

use crate::error::Error;

/// When a [`ResponseFuture`] gives up.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Limit {
    /// An attempt timeout: the clock starts when the inner future first
    /// returns `Pending` (a ready answer never reads the clock), capped by the
    /// call deadline.
    Attempt {
        timeout: Duration,
        deadline: Option<Instant>,
    },
    /// The call deadline set by the [`Deadline`](crate::layer::deadline) layer.
    Call { budget: Duration, deadline: Instant },
}

impl Limit {
    fn deadline(self) -> Instant {
        match self {
            Self::Attempt { timeout, deadline } => {
                let attempt = Instant::now() + timeout;
                deadline.map_or(attempt, |deadline| deadline.min(attempt))
            }
            Self::Call { deadline, .. } => deadline,
        }
    }

    fn error(self) -> Error {
        match self {
            Self::Attempt { timeout, .. } => Error::timeout(format!(
                "no answer within the attempt timeout of {} ms or the call deadline",
                timeout.as_millis()
            )),
            Self::Call { budget, .. } => Error::timeout(format!(
                "call deadline of {} ms exceeded",
                budget.as_millis()
            )),
        }
    }
}

pin_project! {
    /// Response future of [`Timeout`](super::Timeout) and
    /// [`Deadline`](crate::layer::deadline::Deadline): the inner future raced
    /// against a timer.
    ///
    /// The timer is created only if the inner future is not ready at once,
    /// and lives on the heap: an answer that is ready at once costs no timer
    /// and no allocation, and the future stays small to move, which matters
    /// more than the allocation for answers that travel the network.
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
        Running {
            #[pin]
            inner: F,
            sleep: Option<Pin<Box<Sleep>>>,
            // `None`: no timer; every wait below is bounded already.
            limit: Option<Limit>,
        },
        Expired { error: Option<Error> },
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, limit: Option<Limit>) -> Self {
        Self {
            state: State::Running {
                inner,
                sleep: None,
                limit,
            },
        }
    }

    pub(crate) fn expired(error: Error) -> Self {
        Self {
            state: State::Expired { error: Some(error) },
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
            StateProj::Running {
                inner,
                sleep,
                limit,
            } => {
                if let Poll::Ready(result) = inner.poll(cx) {
                    return Poll::Ready(result);
                }
                let Some(limit) = limit else {
                    return Poll::Pending;
                };
                let sleep = sleep.get_or_insert_with(|| Box::pin(sleep_until(limit.deadline())));
                ready!(sleep.as_mut().poll(cx));
                Poll::Ready(Err(limit.error()))
            }
            StateProj::Expired { error } => {
                Poll::Ready(Err(error.take().expect("polled after completion")))
            }
        }
    }
}

/// Bounds a wait for a service's readiness by the message deadline, arming
/// a timer only once the wait has begun: the retry and fallback futures use
/// it so no wait escapes the deadline when the deadline layer has no timer of
/// its own.
#[derive(Debug, Default)]
pub(crate) struct ReadyBy {
    sleep: Option<Pin<Box<Sleep>>>,
}

impl ReadyBy {
    /// `Ready` once `deadline` has passed; never without a deadline.
    pub(crate) fn poll_expired(
        &mut self,
        deadline: Option<Instant>,
        cx: &mut Context<'_>,
    ) -> Poll<()> {
        let Some(deadline) = deadline else {
            return Poll::Pending;
        };
        self.sleep
            .get_or_insert_with(|| Box::pin(sleep_until(deadline)))
            .as_mut()
            .poll(cx)
    }
}
