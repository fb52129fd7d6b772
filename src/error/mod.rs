//! The crate's one error type.
//!
//! Every layer and backend returns [`Error`], so reordering layers never nests
//! error types. An error says two things:
//!
//! * **what happened** — its [`ErrorKind`] (`Timeout`, `CircuitOpen`,
//!   `NoRoute`, `Handler`, …), and
//! * **what is safe to do next** — its [`ErrorClass`]:
//!   [`NotDelivered`](ErrorClass::NotDelivered) (the message certainly did not
//!   reach a receiver: falling back and retrying are safe),
//!   [`UnknownOutcome`](ErrorClass::UnknownOutcome) (it may have arrived:
//!   repeating it is safe only because receivers de-duplicate on the message
//!   `id`) or [`Rejected`](ErrorClass::Rejected) (a receiver or the input said
//!   no: repeating it cannot help).
//!
//! The retry, fallback and circuit-breaker layers decide from the class alone.
//!
//! ```
//! use stage7_transport::{Error, ErrorClass};
//!
//! let error = Error::not_delivered("peer refused the connection");
//! assert!(error.is_not_delivered());
//! assert_eq!(error.class(), ErrorClass::NotDelivered);
//! assert!(error.is_retryable(false));
//! ```

mod body;
mod class;
mod kind;

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

pub use self::body::ErrorBody;
pub use self::class::ErrorClass;
pub use self::kind::ErrorKind;
use crate::route::Route;

/// A type-erased error, as tower uses for `Service::Error` bounds.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// `Result` with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The error of every transport, layer and endpoint in this crate.
///
/// One pointer wide; cheap to move through `Result`s. Inspect it with the
/// predicates ([`is_not_delivered`](Self::is_not_delivered),
/// [`is_timeout`](Self::is_timeout), …) or [`kind`](Self::kind) and
/// [`class`](Self::class); the underlying cause, if any, is its
/// [`source`](StdError::source).
pub struct Error {
    inner: Box<Inner>,
}

struct Inner {
    kind: ErrorKind,
    class: ErrorClass,
    route: Option<Route>,
    detail: Cow<'static, str>,
    key: Option<Box<str>>,
    retry_after: Option<Duration>,
    source: Option<BoxError>,
    fallback_from: Option<Error>,
}

impl Error {
    /// An error of the given kind and class. Prefer the class constructors
    /// ([`not_delivered`](Self::not_delivered), …) unless the kind matters.
    pub fn new(kind: ErrorKind, class: ErrorClass, detail: impl Into<Cow<'static, str>>) -> Self {
        Self {
            inner: Box::new(Inner {
                kind,
                class,
                route: None,
                detail: detail.into(),
                key: None,
                retry_after: None,
                source: None,
                fallback_from: None,
            }),
        }
    }

    /// The message did not reach a receiver (kind
    /// [`Unavailable`](ErrorKind::Unavailable)). For custom backends.
    pub fn not_delivered(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Unavailable, ErrorClass::NotDelivered, detail)
    }

    /// The message may have reached a receiver (kind
    /// [`ConnectionLost`](ErrorKind::ConnectionLost)). For custom backends.
    pub fn unknown_outcome(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(
            ErrorKind::ConnectionLost,
            ErrorClass::UnknownOutcome,
            detail,
        )
    }

    /// A receiver refused the message (kind [`Handler`](ErrorKind::Handler)).
    /// For custom backends and handlers.
    pub fn rejected(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Handler, ErrorClass::Rejected, detail)
    }

    pub(crate) fn timeout(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Timeout, ErrorClass::UnknownOutcome, detail)
    }

    /// The call deadline passed before the message was sent.
    pub(crate) fn expired() -> Self {
        Self::new(
            ErrorKind::Timeout,
            ErrorClass::NotDelivered,
            "call deadline passed before the message was sent",
        )
    }

    /// A handler answered a synchronous message with no reply.
    pub(crate) fn no_reply() -> Self {
        Self::new(
            ErrorKind::Protocol,
            ErrorClass::Rejected,
            "the handler returned no reply to a synchronous message",
        )
    }

    pub(crate) fn config(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Config, ErrorClass::Rejected, detail)
    }

    pub(crate) fn too_large(size: usize, limit: usize) -> Self {
        Self::new(
            ErrorKind::TooLarge,
            ErrorClass::Rejected,
            format!("message of {size} bytes exceeds the limit of {limit} bytes"),
        )
    }

    /// A body (`what`: "body", "reply", "message") that outgrew `limit`
    /// while being read or encoded, its whole size unknown.
    pub(crate) fn over_limit(what: &str, limit: usize) -> Self {
        Self::new(
            ErrorKind::TooLarge,
            ErrorClass::Rejected,
            format!("the {what} exceeds the limit of {limit} bytes"),
        )
    }

    pub(crate) fn invalid(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::InvalidMessage, ErrorClass::Rejected, detail)
    }

    pub(crate) fn no_route(recipient: &str) -> Self {
        Self::new(
            ErrorKind::NoRoute,
            ErrorClass::NotDelivered,
            format!("no receiver for recipient `{recipient}`"),
        )
        .with_key(recipient)
    }

    pub(crate) fn circuit_open(key: &str, retry_after: Option<Duration>) -> Self {
        let detail = match retry_after {
            Some(wait) => format!(
                "circuit open for `{key}`; next attempt allowed in {} ms",
                wait.as_millis()
            ),
            None => format!("circuit open for `{key}`"),
        };
        let error =
            Self::new(ErrorKind::CircuitOpen, ErrorClass::NotDelivered, detail).with_key(key);
        match retry_after {
            Some(wait) => error.with_retry_after(wait),
            None => error,
        }
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.inner.source = Some(source.into());
        self
    }

    /// Records which route produced the error.
    pub fn with_route(mut self, route: Route) -> Self {
        self.inner.route = Some(route);
        self
    }

    /// Records how long the peer asked us to wait before trying again.
    pub fn with_retry_after(mut self, retry_after: Duration) -> Self {
        self.inner.retry_after = Some(retry_after);
        self
    }

    /// Records that this error came from the fallback route after `primary`
    /// failed. The class becomes the more cautious of the two: if the
    /// primary attempt may have arrived, so may the call.
    pub(crate) fn after(mut self, primary: Error) -> Self {
        if self.inner.class != ErrorClass::Rejected && primary.is_unknown_outcome() {
            self.inner.class = ErrorClass::UnknownOutcome;
        }
        self.inner.fallback_from = Some(primary);
        self
    }

    /// Overrides the class, where the context knows better than the kind:
    /// an HTTP `4xx` reply is rejected whatever kind its body names.
    pub(crate) fn with_class(mut self, class: ErrorClass) -> Self {
        self.inner.class = class;
        self
    }

    /// The same error for another caller: everything but its source and
    /// the error it fell back from, which cannot be shared.
    pub(crate) fn copy_for_another(&self) -> Self {
        let inner = &self.inner;
        Self {
            inner: Box::new(Inner {
                kind: inner.kind,
                class: inner.class,
                route: inner.route,
                detail: inner.detail.clone(),
                key: inner.key.clone(),
                retry_after: inner.retry_after,
                source: None,
                fallback_from: None,
            }),
        }
    }

    pub(crate) fn with_key(mut self, key: &str) -> Self {
        self.inner.key = Some(key.into());
        self
    }

    /// What happened.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// What is safe to do next.
    pub fn class(&self) -> ErrorClass {
        self.inner.class
    }

    /// The route that produced the error, when a backend did.
    pub fn route(&self) -> Option<Route> {
        self.inner.route
    }

    /// The human-readable description, without route or class.
    pub fn detail(&self) -> &str {
        &self.inner.detail
    }

    /// The breaker key for [`CircuitOpen`](ErrorKind::CircuitOpen), or the
    /// recipient for [`NoRoute`](ErrorKind::NoRoute).
    pub fn circuit_key(&self) -> Option<&str> {
        self.inner.key.as_deref()
    }

    /// How long to wait before trying again: the remaining break of an open
    /// circuit, or a peer's `Retry-After`.
    pub fn retry_after(&self) -> Option<Duration> {
        self.inner.retry_after
    }

    /// The primary route's error, when this error comes from the fallback
    /// route.
    pub fn fallback_from(&self) -> Option<&Error> {
        self.inner.fallback_from.as_ref()
    }

    /// The message certainly did not reach a receiver: safe to fall back and
    /// retry.
    pub fn is_not_delivered(&self) -> bool {
        self.inner.class == ErrorClass::NotDelivered
    }

    /// The message may have reached a receiver.
    pub fn is_unknown_outcome(&self) -> bool {
        self.inner.class == ErrorClass::UnknownOutcome
    }

    /// A receiver or the input refused the message; never worth repeating.
    pub fn is_rejected(&self) -> bool {
        self.inner.class == ErrorClass::Rejected
    }

    /// A circuit breaker refused the call without trying.
    pub fn is_circuit_open(&self) -> bool {
        self.inner.kind == ErrorKind::CircuitOpen
    }

    /// An attempt timeout or the call deadline elapsed.
    pub fn is_timeout(&self) -> bool {
        self.inner.kind == ErrorKind::Timeout
    }

    /// The message exceeds the size limit.
    pub fn is_too_large(&self) -> bool {
        self.inner.kind == ErrorKind::TooLarge
    }

    /// Invalid configuration.
    pub fn is_config(&self) -> bool {
        self.inner.kind == ErrorKind::Config
    }

    /// Whether sending the same message again could succeed without running
    /// a handler twice. `receivers_deduplicate` says whether receivers drop
    /// repeated `id`s (true for every receiver built with this crate).
    pub fn is_retryable(&self, receivers_deduplicate: bool) -> bool {
        match self.inner.class {
            ErrorClass::NotDelivered => true,
            ErrorClass::UnknownOutcome => receivers_deduplicate,
            ErrorClass::Rejected => false,
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.inner.kind)
            .field("class", &self.inner.class);
        if let Some(route) = self.inner.route {
            d.field("route", &route);
        }
        d.field("detail", &self.inner.detail);
        if let Some(key) = &self.inner.key {
            d.field("key", key);
        }
        if let Some(retry_after) = self.inner.retry_after {
            d.field("retry_after", &retry_after);
        }
        if let Some(source) = &self.inner.source {
            d.field("source", source);
        }
        if let Some(primary) = &self.inner.fallback_from {
            d.field("fallback_from", primary);
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(route) = self.inner.route {
            write!(f, "{route}: ")?;
        }
        write!(f, "{} ({})", self.inner.detail, self.inner.class)?;
        if let Some(primary) = &self.inner.fallback_from {
            write!(f, "; after {primary}")?;
        }
        Ok(())
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|source| source as &(dyn StdError + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_is_send_sync() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<Error>();
    }

    #[test]
    fn error_size_of() {
        assert_eq!(std::mem::size_of::<Error>(), std::mem::size_of::<usize>());
        assert_eq!(
            std::mem::size_of::<Result<()>>(),
            std::mem::size_of::<usize>()
        );
    }

    #[test]
    fn class_decides_retry() {
        let lost = Error::unknown_outcome("connection reset after publish");
        assert!(lost.is_retryable(true));
        assert!(!lost.is_retryable(false));
        assert!(!Error::rejected("handler failed").is_retryable(true));
        assert!(Error::not_delivered("refused").is_retryable(false));
    }

    #[test]
    fn circuit_open_names_key_and_wait() {
        let error = Error::circuit_open("brain", Some(Duration::from_millis(250)));
        assert!(error.is_circuit_open());
        assert!(error.is_not_delivered());
        assert_eq!(error.circuit_key(), Some("brain"));
        assert_eq!(error.retry_after(), Some(Duration::from_millis(250)));
        assert_eq!(
            error.to_string(),
            "circuit open for `brain`; next attempt allowed in 250 ms (not delivered)"
        );
    }

    #[test]
    fn display_names_route_and_source_chains() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let error = Error::not_delivered("connect failed")
            .with_route(Route::Http)
            .with_source(io);
        assert_eq!(error.to_string(), "http: connect failed (not delivered)");
        let source = error.source().map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("refused"));
    }

    #[test]
    fn kind_and_class_names_round_trip() {
        for kind in ErrorKind::ALL {
            assert_eq!(ErrorKind::parse(kind.as_str()), Some(*kind));
        }
        assert_eq!(ErrorKind::parse("nonsense"), None);
        for class in [
            ErrorClass::NotDelivered,
            ErrorClass::UnknownOutcome,
            ErrorClass::Rejected,
        ] {
            assert_eq!(ErrorClass::parse(class.as_str()), Some(class));
        }
    }
}
