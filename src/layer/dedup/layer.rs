use crate::defaults;
use std::sync::Arc;
use std::time::Duration;

use tower::Layer;

use super::Dedup;
use super::cache::Cache;

/// Applies [`Dedup`] to a handler. Every handler this layer wraps shares one
/// memory of seen ids.
#[derive(Debug, Clone)]
pub struct DedupLayer {
    cache: Arc<Cache>,
}

impl DedupLayer {
    /// Remembers up to [`DEDUP_CAPACITY`](crate::defaults::DEDUP_CAPACITY) ids for [`DEDUP_WINDOW`](crate::defaults::DEDUP_WINDOW).
    pub fn new() -> Self {
        Self::with_limits(defaults::DEDUP_CAPACITY, defaults::DEDUP_WINDOW)
    }

    /// Remembers up to `capacity` ids (at least one), each for `ttl`.
    ///
    /// Both bound the memory, not the runs: an id forgotten while its
    /// handler still runs — a capacity smaller than the messages arriving
    /// within one handler run, or a handler slower than `ttl` — runs again
    /// if it is repeated.
    pub fn with_limits(capacity: usize, ttl: Duration) -> Self {
        Self {
            cache: Arc::new(Cache::new(capacity.max(1), ttl)),
        }
    }

    /// Ids currently remembered.
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    /// Whether no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for DedupLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Layer<S> for DedupLayer {
    type Service = Dedup<S>;

    fn layer(&self, inner: S) -> Dedup<S> {
        Dedup::new(inner, self.cache.clone())
    }
}
