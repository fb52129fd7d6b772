//! One id's memory: empty, running, or done with the outcome.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};

use tokio::sync::Notify;

use crate::error::{Error, ErrorClass, ErrorKind};
use crate::message::Message;

/// What the handler did with a message, kept for repeats.
#[derive(Debug)]
pub(crate) enum Outcome {
    Replied(Option<Message>),
    Failed(CachedError),
}

/// An [`Error`] reduced to what can be handed out again.
#[derive(Debug)]
pub(crate) struct CachedError {
    kind: ErrorKind,
    class: ErrorClass,
    text: String,
}

impl Outcome {
    fn of(result: &Result<Option<Message>, Error>) -> Self {
        match result {
            Ok(reply) => Self::Replied(reply.clone()),
            Err(error) => Self::Failed(CachedError {
                kind: error.kind(),
                class: error.class(),
                text: error.detail().to_owned(),
            }),
        }
    }

    fn to_result(&self) -> Result<Option<Message>, Error> {
        match self {
            Self::Replied(reply) => Ok(reply.clone()),
            Self::Failed(e) => Err(Error::new(e.kind, e.class, e.text.clone())),
        }
    }
}

#[derive(Debug)]
enum State {
    Empty,
    Running,
    Done(Outcome),
}

/// What a caller does next.
pub(crate) enum Turn {
    /// Run the handler: nobody has, or the last run failed transiently.
    Run,
    /// Another caller is running it: wait, then look again.
    Wait,
    /// It ran: here is what it did.
    Done(Result<Option<Message>, Error>),
}

/// The memory of one id.
#[derive(Debug)]
pub(crate) struct Slot {
    state: Mutex<State>,
    changed: Notify,
}

impl Slot {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(State::Empty),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn changed(&self) -> &Notify {
        &self.changed
    }

    pub(crate) fn turn(&self) -> Turn {
        let mut state = self.lock();
        match &*state {
            State::Empty => {
                *state = State::Running;
                Turn::Run
            }
            State::Running => Turn::Wait,
            State::Done(outcome) => Turn::Done(outcome.to_result()),
        }
    }

    /// Records how a run ended. Replies and rejections are remembered; an
    /// error that says the handler could not do its work now (its class is
    /// not `Rejected`) is not, so a retry runs the handler again.
    fn finish(&self, result: Option<&Result<Option<Message>, Error>>) {
        let remembered =
            result.filter(|result| result.as_ref().err().is_none_or(Error::is_rejected));
        *self.lock() = match remembered {
            Some(result) => State::Done(Outcome::of(result)),
            None => State::Empty,
        };
        self.changed.notify_waiters();
    }
}

type Handling = Pin<Box<dyn Future<Output = Result<Option<Message>, Error>> + Send>>;

/// A run of the handler for one id. It always ends: if its caller stops
/// waiting (a client that disconnected, a request timeout), the rest of the
/// run goes on in a task of its own and its outcome is still remembered, so
/// a repeat never starts the handler a second time halfway through.
pub(crate) struct Run {
    slot: std::sync::Arc<Slot>,
    handling: Option<Handling>,
}

impl Run {
    pub(crate) fn new(slot: std::sync::Arc<Slot>, handling: Handling) -> Self {
        Self {
            slot,
            handling: Some(handling),
        }
    }
}

impl Future for Run {
    type Output = Result<Option<Message>, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(handling) = self.handling.as_mut() else {
            return Poll::Ready(Err(Error::rejected("a finished run was polled again")));
        };
        let result = ready!(poll_catching_panics(handling.as_mut(), cx));
        self.handling = None;
        self.slot.finish(Some(&result));
        Poll::Ready(result)
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let Some(handling) = self.handling.take() else {
            return;
        };
        let unfinished = Unfinished(Some(self.slot.clone()));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let mut handling = handling;
                let result =
                    std::future::poll_fn(|cx| poll_catching_panics(handling.as_mut(), cx)).await;
                unfinished.finish(&result);
            });
        }
    }
}

/// A run going on without its caller. Dropped before it ends — no runtime,
/// or one shutting down — it forgets the run, so a repeat runs the handler
/// rather than wait for ever.
struct Unfinished(Option<std::sync::Arc<Slot>>);

impl Unfinished {
    fn finish(mut self, result: &Result<Option<Message>, Error>) {
        if let Some(slot) = self.0.take() {
            slot.finish(Some(result));
        }
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if let Some(slot) = self.0.take() {
            slot.finish(None);
        }
    }
}

/// Polls a handler, turning a panic into a rejected error: the caller gets
/// an answer and the receiver goes on.
fn poll_catching_panics(
    handling: Pin<&mut (dyn Future<Output = Result<Option<Message>, Error>> + Send)>,
    cx: &mut Context<'_>,
) -> Poll<Result<Option<Message>, Error>> {
    match std::panic::catch_unwind(AssertUnwindSafe(|| handling.poll(cx))) {
        Ok(poll) => poll,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("no message");
            Poll::Ready(Err(Error::rejected(format!(
                "the handler panicked: {what}"
            ))))
        }
    }
}
