use tower::Layer;

use super::Fallback;

/// Wraps a primary service in [`Fallback`] to `secondary`.
#[derive(Debug, Clone)]
pub struct FallbackLayer<S> {
    secondary: S,
    receivers_deduplicate: bool,
}

impl<S> FallbackLayer<S> {
    /// Falls back to `secondary`.
    pub const fn new(secondary: S) -> Self {
        Self {
            secondary,
            receivers_deduplicate: true,
        }
    }

    /// See [`Fallback::receivers_deduplicate`]. Default true.
    pub fn receivers_deduplicate(mut self, deduplicate: bool) -> Self {
        self.receivers_deduplicate = deduplicate;
        self
    }
}

impl<P, S: Clone> Layer<P> for FallbackLayer<S> {
    type Service = Fallback<P, S>;

    fn layer(&self, primary: P) -> Fallback<P, S> {
        Fallback::new(primary, Some(self.secondary.clone()))
            .receivers_deduplicate(self.receivers_deduplicate)
    }
}
