use tower::Layer;

use super::Retry;

/// Applies [`Retry`] to a service.
#[derive(Debug, Clone)]
pub struct RetryLayer<P> {
    policy: P,
}

impl<P> RetryLayer<P> {
    /// Retries as `policy` decides.
    pub const fn new(policy: P) -> Self {
        Self { policy }
    }
}

impl<P: Clone, S: Clone> Layer<S> for RetryLayer<P> {
    type Service = Retry<P, S>;

    fn layer(&self, inner: S) -> Retry<P, S> {
        Retry::new(inner, self.policy.clone())
    }
}
