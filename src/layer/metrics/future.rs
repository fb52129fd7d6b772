//! Future types

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::time::Instant;

use super::Handles;
use crate::error::Error;
use crate::transport::Delivery;

pin_project! {
    /// Response future of [`Metrics`](super::Metrics).
    #[must_use = "futures do nothing unless polled"]
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        handles: Arc<Handles>,
        span: tracing::Span,
        started: Option<Instant>,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(
        inner: F,
        handles: Arc<Handles>,
        span: tracing::Span,
        started: Option<Instant>,
    ) -> Self {
        Self {
            inner,
            handles,
            span,
            started,
        }
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Delivery, Error>>,
{
    type Output = Result<Delivery, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let result = this.handles.tag(ready!(this.inner.poll(cx)));
        this.handles.record(&result, *this.started);
        Poll::Ready(result)
    }
}
