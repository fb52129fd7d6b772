//! Future types

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tower::Service;
use tower::retry::Policy;

use crate::error::Error;
use crate::message::Message;

pin_project! {
    /// Response future of [`Retry`](super::Retry).
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<P, S>
    where
        P: Policy<Message, S::Response, Error>,
        S: Service<Message>,
    {
        #[pin]
        state: State<S::Future, P::Future>,
        copy: Option<Message>,
        policy: P,
        spare: Arc<S>,
        service: Option<S>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, W> {
        Called { #[pin] future: F },
        Waiting { #[pin] wait: W },
        Retrying,
    }
}

impl<P, S> ResponseFuture<P, S>
where
    P: Policy<Message, S::Response, Error>,
    S: Service<Message>,
{
    pub(crate) fn new(future: S::Future, copy: Option<Message>, policy: P, spare: Arc<S>) -> Self {
        Self {
            state: State::Called { future },
            copy,
            policy,
            spare,
            service: None,
        }
    }
}

impl<P, S> Future for ResponseFuture<P, S>
where
    P: Policy<Message, S::Response, Error>,
    S: Service<Message, Error = Error> + Clone,
{
    type Output = Result<S::Response, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Called { future } => {
                    let mut result = ready!(future.poll(cx));
                    let Some(copy) = this.copy.as_mut() else {
                        return Poll::Ready(result);
                    };
                    match this.policy.retry(copy, &mut result) {
                        Some(wait) => this.state.set(State::Waiting { wait }),
                        None => return Poll::Ready(result),
                    }
                }
                StateProj::Waiting { wait } => {
                    ready!(wait.poll(cx));
                    this.state.set(State::Retrying);
                }
                StateProj::Retrying => {
                    let spare = &**this.spare;
                    let service = this.service.get_or_insert_with(|| spare.clone());
                    ready!(service.poll_ready(cx))?;
                    let Some(message) = this.copy.take() else {
                        return Poll::Ready(Err(Error::rejected(
                            "retry without a copy of the message",
                        )));
                    };
                    *this.copy = this.policy.clone_request(&message);
                    let future = service.call(message);
                    this.state.set(State::Called { future });
                }
            }
        }
    }
}

impl<P, S> std::fmt::Debug for ResponseFuture<P, S>
where
    P: Policy<Message, S::Response, Error>,
    S: Service<Message>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
