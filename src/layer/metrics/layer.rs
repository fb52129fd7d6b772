use std::sync::Arc;

use tower::Layer;

use super::{Handles, Metrics, Scope};
use crate::route::Route;

/// Applies [`Metrics`] to a service.
#[derive(Debug, Clone)]
pub struct MetricsLayer {
    handles: Arc<Handles>,
}

impl MetricsLayer {
    /// Records whole calls: put it outermost.
    pub fn call() -> Self {
        Self {
            handles: Arc::new(Handles::new(Scope::Call)),
        }
    }

    /// Records attempts on one route: put it around that route's branch.
    pub fn attempts(route: Route) -> Self {
        Self {
            handles: Arc::new(Handles::new(Scope::Attempt(route))),
        }
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = Metrics<S>;

    fn layer(&self, inner: S) -> Metrics<S> {
        Metrics::new(inner, self.handles.clone())
    }
}
