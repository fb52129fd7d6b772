//! Future types

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tower::Service;
use tower::retry::Policy;

use super::Shared;
use crate::error::Error;
use crate::layer::timeout::future::ReadyBy;
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
        shared: Arc<Shared<P, S>>,
        policy: Option<P>,
        service: Option<Box<S>>,
        ready_by: ReadyBy,
        last: Option<Error>,
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
    pub(crate) fn new(future: S::Future, copy: Option<Message>, shared: Arc<Shared<P, S>>) -> Self {
        Self {
            state: State::Called { future },
            copy,
            shared,
            policy: None,
            service: None,
            ready_by: ReadyBy::default(),
            last: None,
        }
    }
}

impl<P, S> Future for ResponseFuture<P, S>
where
    P: Policy<Message, S::Response, Error> + Clone,
    S: Service<Message, Error = Error> + Clone,
{
    type Output = Result<S::Response, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Called { future } => {
                    let mut result = ready!(future.poll(cx));
                    let (Err(_), Some(copy)) = (&result, this.copy.as_mut()) else {
                        return Poll::Ready(result);
                    };
                    let shared = &**this.shared;
                    let policy = this.policy.get_or_insert_with(|| shared.policy.clone());
                    match policy.retry(copy, &mut result) {
                        Some(wait) => {
                            *this.last = result.err();
                            this.state.set(State::Waiting { wait });
                        }
                        None => return Poll::Ready(result),
                    }
                }
                StateProj::Waiting { wait } => {
                    ready!(wait.poll(cx));
                    this.state.set(State::Retrying);
                }
                StateProj::Retrying => {
                    let shared = &**this.shared;
                    let service = this
                        .service
                        .get_or_insert_with(|| Box::new(shared.spare.clone()));
                    if service.poll_ready(cx)?.is_pending() {
                        let deadline = this.copy.as_ref().and_then(Message::deadline);
                        ready!(this.ready_by.poll_expired(deadline, cx));
                        // The last attempt's error says more, and may be an
                        // unknown outcome that "not sent" would hide.
                        return Poll::Ready(Err(this.last.take().unwrap_or_else(Error::expired)));
                    }
                    let (Some(message), Some(policy)) = (this.copy.take(), this.policy.as_mut())
                    else {
                        unreachable!("a retry is scheduled only with a copy and a policy");
                    };
                    *this.copy = policy.clone_request(&message);
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
