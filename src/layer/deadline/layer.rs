use std::time::Duration;

use tower::Layer;

use super::Deadline;

/// Applies [`Deadline`] to a service.
#[derive(Debug, Clone, Copy)]
pub struct DeadlineLayer {
    budget: Duration,
}

impl DeadlineLayer {
    /// Each call through the wrapped service gets at most `budget` in total.
    pub const fn new(budget: Duration) -> Self {
        Self { budget }
    }
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Deadline<S> {
        Deadline::new(inner, self.budget)
    }
}
