//! Which base URL serves a recipient.
//!
//! [`HttpTransport`](super::HttpTransport) asks a [`Resolve`] for the base
//! URL of each message's recipient and posts to `{base}/message`. Three
//! resolvers come with the crate, and [`ResolverChain`] tries several in
//! turn:
//!
//! * [`StaticResolver`]: a fixed table, typically the `{NAME}_URL` variables
//!   of [`Config::http_routes`](crate::Config::http_routes).
//! * [`PostOfficeResolver`]: asks the PostOffice's registry
//!   (`GET {postoffice}/requestComponent?id=…`, then `?type=…`) and caches
//!   the answer for a while, forgetting it as soon as the address it names
//!   cannot be connected to ([`Resolve::unreachable`]).
//! * your own: implement [`Resolve`].
//!
//! A recipient nobody knows is an error of kind
//! [`NoRoute`](crate::ErrorKind::NoRoute) naming it, class
//! [`NotDelivered`](crate::ErrorClass::NotDelivered): nothing was sent.

mod chain;
mod postoffice;
mod table;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Uri;

pub use self::chain::ResolverChain;
pub use self::postoffice::{PostOfficeResolver, PostOfficeResolverBuilder};
pub use self::table::StaticResolver;
use crate::error::Result;

/// Finds the base URL (`http://host:port`, perhaps with a path prefix) that
/// serves a recipient: an entity id, a component type, or any name your
/// resolver understands.
///
/// Object safe: the transport keeps an `Arc<dyn Resolve>`.
///
/// ```
/// use stage7_transport::http::{Resolve, ResolveFuture};
///
/// /// Every recipient lives on one host.
/// struct OneHost(http::Uri);
///
/// impl Resolve for OneHost {
///     fn resolve(&self, _recipient: &str) -> ResolveFuture {
///         ResolveFuture::ready(Ok(self.0.clone()))
///     }
/// }
/// ```
pub trait Resolve: Send + Sync + 'static {
    /// The base URL serving `recipient`.
    ///
    /// # Errors
    ///
    /// [`NoRoute`](crate::ErrorKind::NoRoute) for a recipient this resolver
    /// does not know; any other error when it could not find out.
    fn resolve(&self, recipient: &str) -> ResolveFuture;

    /// Hears that `base`, which [`resolve`](Self::resolve) gave for
    /// `recipient`, could not be connected to (refused, unreachable, timed
    /// out): the transport calls it before failing the message. A resolver
    /// that remembers answers forgets this one, so the next call asks
    /// again instead of reusing an address that has stopped answering.
    /// Default: nothing (a fixed table has nothing to forget).
    fn unreachable(&self, recipient: &str, base: &Uri) {
        let _ = (recipient, base);
    }

    /// The base URLs this resolver was configured with, as opposed to those
    /// it finds at run time: the hosts the transport's bearer token may go
    /// to (see [`HttpTransportBuilder::token`](super::HttpTransportBuilder::token)).
    /// A registry's answers are not among them, so whoever registers a URL
    /// does not collect the token. Default: none.
    fn configured_bases(&self) -> Vec<Uri> {
        Vec::new()
    }
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<Uri>> + Send>>;

/// Future returned by [`Resolve::resolve`]: an answer known at once (a table
/// lookup, a cache hit) costs no allocation; a lookup over the network is
/// boxed.
#[must_use = "futures do nothing unless polled"]
pub struct ResolveFuture {
    state: State,
}

enum State {
    Ready(Option<Result<Uri>>),
    Pending(BoxFuture),
}

impl ResolveFuture {
    /// An answer known now.
    pub fn ready(result: Result<Uri>) -> Self {
        Self {
            state: State::Ready(Some(result)),
        }
    }

    /// An answer that needs waiting for.
    pub fn new(future: impl Future<Output = Result<Uri>> + Send + 'static) -> Self {
        Self {
            state: State::Pending(Box::pin(future)),
        }
    }

    /// The answer if it is known without waiting, or the future back.
    fn now_or_later(self) -> std::result::Result<Result<Uri>, BoxFuture> {
        match self.state {
            State::Ready(Some(result)) => Ok(result),
            State::Ready(None) => panic!("resolve future polled after completion"),
            State::Pending(future) => Err(future),
        }
    }
}

impl Future for ResolveFuture {
    type Output = Result<Uri>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Uri>> {
        match &mut self.state {
            State::Ready(result) => Poll::Ready(
                result
                    .take()
                    .expect("resolve future polled after completion"),
            ),
            State::Pending(future) => future.as_mut().poll(cx),
        }
    }
}

impl fmt::Debug for ResolveFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Ready(_) => "ready",
            State::Pending(_) => "pending",
        };
        f.debug_struct("ResolveFuture")
            .field("state", &state)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::error::{Error, ErrorClass, ErrorKind};

    fn resolve_now(resolver: &impl Resolve, recipient: &str) -> Result<Uri> {
        match resolver.resolve(recipient).now_or_later() {
            Ok(result) => result,
            Err(_) => panic!("a table lookup is ready at once"),
        }
    }

    #[test]
    fn names_match_without_case_and_dash_or_underscore() {
        let table = StaticResolver::new([("capabilities_manager", "http://caps:5060/")]).unwrap();
        for name in [
            "capabilities-manager",
            "CAPABILITIES_MANAGER",
            "Capabilities_Manager",
        ] {
            assert_eq!(resolve_now(&table, name).unwrap(), "http://caps:5060");
        }
        let error = resolve_now(&table, "capabilities").unwrap_err();
        assert_eq!(error.kind(), ErrorKind::NoRoute);
        assert_eq!(error.class(), ErrorClass::NotDelivered);
        assert!(error.to_string().contains("`capabilities`"), "{error}");
    }

    #[test]
    fn config_routes_become_the_table() {
        let config = Config::from_vars([
            ("BRAIN_URL", "http://brain:5070"),
            ("BRAIN_1_URL", "http://brain-one:5070/api/"),
            ("POSTOFFICE_URL", "http://po:5020"),
        ])
        .unwrap();
        let table = StaticResolver::from_config(&config).unwrap();
        assert_eq!(table.len(), 2);
        assert_eq!(resolve_now(&table, "Brain").unwrap(), "http://brain:5070");
        let one = resolve_now(&table, "brain-1").unwrap();
        assert_eq!(one.path(), "/api");
        assert_eq!(
            resolve_now(&table, "postoffice").unwrap_err().kind(),
            ErrorKind::NoRoute
        );
    }

    #[test]
    fn unusable_urls_are_config_errors() {
        for url in [
            "ftp://x",
            "http://",
            "x y",
            "http://x/?q=1",
            "https://u:p@x",
        ] {
            let error = StaticResolver::new([("brain", url)]).unwrap_err();
            assert!(error.is_config(), "{url}: {error}");
            assert!(error.to_string().contains("route `brain`"), "{error}");
        }
        assert!(
            PostOfficeResolver::builder("postoffice:5020")
                .build()
                .unwrap_err()
                .is_config()
        );
    }

    #[test]
    fn a_chain_prefers_the_telling_error() {
        let down: fn(&str) -> Error = |_| Error::not_delivered("registry down");
        struct Down(fn(&str) -> Error);
        impl Resolve for Down {
            fn resolve(&self, recipient: &str) -> ResolveFuture {
                ResolveFuture::ready(Err((self.0)(recipient)))
            }
        }
        let chain = ResolverChain::new()
            .or(StaticResolver::default())
            .or(Down(down))
            .or(StaticResolver::new([("brain", "http://brain:1")]).unwrap());
        assert_eq!(resolve_now(&chain, "brain").unwrap(), "http://brain:1");
        let error = resolve_now(&chain, "nobody").unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Unavailable);
        let empty = resolve_now(&ResolverChain::new(), "nobody").unwrap_err();
        assert_eq!(empty.kind(), ErrorKind::NoRoute);
    }
}
