//! Future types

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower::Service;

use crate::error::Error;
use crate::layer::timeout::future::ReadyBy;
use crate::message::Message;

pin_project! {
    /// Response future of [`Fallback`](super::Fallback).
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<F, S>
    where
        S: Service<Message>,
    {
        #[pin]
        state: State<F, S, S::Future>,
        fallback: Option<(Arc<S>, Message)>,
        primary_error: Option<Error>,
        receivers_deduplicate: bool,
        ready_by: ReadyBy,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, S, G> {
        Primary { #[pin] future: F },
        Ready { service: Box<S>, message: Option<Message> },
        Secondary { #[pin] future: G },
    }
}

impl<F, S: Service<Message>> ResponseFuture<F, S> {
    /// A call sent straight to the secondary.
    pub(crate) fn bypassed(future: S::Future) -> Self {
        Self {
            state: State::Secondary { future },
            fallback: None,
            primary_error: None,
            receivers_deduplicate: true,
            ready_by: ReadyBy::default(),
        }
    }

    pub(crate) fn new(
        future: F,
        fallback: Option<(Arc<S>, Message)>,
        receivers_deduplicate: bool,
    ) -> Self {
        Self {
            state: State::Primary { future },
            fallback,
            primary_error: None,
            receivers_deduplicate,
            ready_by: ReadyBy::default(),
        }
    }
}

impl<F, S, T> Future for ResponseFuture<F, S>
where
    F: Future<Output = Result<T, Error>>,
    S: Service<Message, Response = T, Error = Error> + Clone,
{
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let secondary_error = match this.state.as_mut().project() {
                StateProj::Primary { future } => {
                    let error = match ready!(future.poll(cx)) {
                        Ok(response) => return Poll::Ready(Ok(response)),
                        Err(error) => error,
                    };
                    if !error.is_retryable(*this.receivers_deduplicate) {
                        return Poll::Ready(Err(error));
                    }
                    let Some((spare, message)) = this.fallback.take() else {
                        return Poll::Ready(Err(error));
                    };
                    if message
                        .deadline()
                        .is_some_and(|deadline| deadline <= Instant::now())
                    {
                        return Poll::Ready(Err(error));
                    }
                    let from = error.route().map_or("unknown", |route| route.as_str());
                    tracing::debug!(%error, from, "falling back to the secondary route");
                    metrics::counter!("stage7_transport_fallbacks_total", "from" => from)
                        .increment(1);
                    *this.primary_error = Some(error);
                    this.state.set(State::Ready {
                        service: Box::new((*spare).clone()),
                        message: Some(message),
                    });
                    continue;
                }
                StateProj::Ready { service, message } => match service.poll_ready(cx) {
                    Poll::Pending => {
                        let deadline = message.as_ref().and_then(Message::deadline);
                        ready!(this.ready_by.poll_expired(deadline, cx));
                        Error::expired()
                    }
                    Poll::Ready(Ok(())) => {
                        let message = message
                            .take()
                            .expect("the message waits for the secondary call");
                        let future = service.call(message);
                        this.state.set(State::Secondary { future });
                        continue;
                    }
                    Poll::Ready(Err(error)) => error,
                },
                StateProj::Secondary { future } => match ready!(future.poll(cx)) {
                    Ok(response) => return Poll::Ready(Ok(response)),
                    Err(error) => error,
                },
            };
            return Poll::Ready(Err(match this.primary_error.take() {
                Some(primary) => secondary_error.after(primary),
                None => secondary_error,
            }));
        }
    }
}

impl<F, S: Service<Message>> std::fmt::Debug for ResponseFuture<F, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
