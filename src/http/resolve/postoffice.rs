//! [`PostOfficeResolver`]: recipients found in the PostOffice's registry.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::Uri;
use tokio::time::Instant;

use super::{Resolve, ResolveFuture};
use crate::defaults;
use crate::error::{Error, ErrorClass, ErrorKind, Result};
use crate::http::postoffice_client::{PostOfficeClient, PostOfficeClientBuilder};
use crate::secret::Secret;
use crate::tls::CaBundle;
use crate::url::parse_base;

/// Cached PostOffice answers kept before expired ones are swept.
const CACHE_SWEEP_AT: usize = 1024;

/// Asks the PostOffice's registry where a recipient lives, and remembers
/// the answer for a while.
///
/// The lookup is [`PostOfficeClient::lookup_id`], then, if no component has
/// that id, [`lookup_type`](PostOfficeClient::lookup_type); the first
/// component's `url` is used. An empty list on both lookups means the
/// recipient is unknown: [`NoRoute`](crate::ErrorKind::NoRoute). A
/// PostOffice that cannot be reached, is slow or answers anything else gives
/// an error of class [`NotDelivered`](crate::ErrorClass::NotDelivered) — the
/// message was not sent — which lets a
/// [`ResolverChain`](super::ResolverChain) try its next resolver.
///
/// Answers are cached for
/// [`ROUTE_CACHE_TTL`](crate::defaults::ROUTE_CACHE_TTL), or until the
/// transport cannot connect to the address ([`Resolve::unreachable`]): a
/// component that restarts elsewhere is looked up again on the next call,
/// not after the cache time. Unknown recipients are not cached, so a
/// component that registers is found at once.
/// Calls that need the same recipient while it is being looked up wait for
/// that lookup rather than sending their own: when the broker goes down and
/// every call turns to HTTP at once, the PostOffice gets one query per
/// recipient, not one per call.
///
/// ```no_run
/// use std::time::Duration;
/// use stage7_transport::http::PostOfficeResolver;
///
/// let resolver = PostOfficeResolver::builder("http://postoffice:5020")
///     .ttl(Duration::from_secs(10))
///     .build()?;
/// # Ok::<(), stage7_transport::Error>(())
/// ```
#[derive(Clone)]
pub struct PostOfficeResolver {
    postoffice: PostOfficeClient,
    ttl: Duration,
    cache: Arc<Mutex<HashMap<String, (Uri, Instant)>>>,
    lookups: Arc<Mutex<HashMap<String, Arc<Lookup>>>>,
}

/// One lookup in flight, shared by every call that needs its answer.
type Lookup = tokio::sync::OnceCell<std::result::Result<Uri, Arc<Error>>>;

impl PostOfficeResolver {
    /// Settings for a resolver asking the PostOffice whose base URL is
    /// `url`.
    pub fn builder(url: impl Into<String>) -> PostOfficeResolverBuilder {
        PostOfficeResolverBuilder {
            client: PostOfficeClient::builder(url),
            ttl: defaults::ROUTE_CACHE_TTL,
        }
    }

    fn cached(&self, recipient: &str) -> Option<Uri> {
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        let (uri, fetched) = cache.get(recipient)?;
        (fetched.elapsed() < self.ttl).then(|| uri.clone())
    }

    fn remember(&self, recipient: &str, uri: &Uri) {
        if self.ttl.is_zero() {
            return;
        }
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= CACHE_SWEEP_AT {
            let ttl = self.ttl;
            cache.retain(|_, (_, fetched)| fetched.elapsed() < ttl);
        }
        cache.insert(recipient.to_owned(), (uri.clone(), Instant::now()));
    }

    /// The answer of the lookup in flight for `recipient`, started if there
    /// is none. If the call running it is dropped, a waiting one takes over.
    async fn lookup(self, recipient: String) -> Result<Uri> {
        let lookup = {
            let mut lookups = self.lookups.lock().unwrap_or_else(PoisonError::into_inner);
            // A lookup whose every caller was dropped (a short deadline) has
            // no one left to remove it; the map alone holds it.
            if lookups.len() >= CACHE_SWEEP_AT {
                lookups.retain(|_, lookup| Arc::strong_count(lookup) > 1);
            }
            lookups.entry(recipient.clone()).or_default().clone()
        };
        let answer = lookup
            .get_or_init(|| async {
                let found = self.find(&recipient).await;
                if let Ok(uri) = &found {
                    self.remember(&recipient, uri);
                }
                found.map_err(Arc::new)
            })
            .await
            .clone();
        let mut lookups = self.lookups.lock().unwrap_or_else(PoisonError::into_inner);
        if lookups
            .get(&recipient)
            .is_some_and(|current| Arc::ptr_eq(current, &lookup))
        {
            lookups.remove(&recipient);
        }
        drop(lookups);
        answer.map_err(|error| error.copy_for_another())
    }

    /// By id first, then by type.
    async fn find(&self, recipient: &str) -> Result<Uri> {
        let mut found = self.postoffice.lookup_id(recipient).await?;
        if found.is_empty() {
            found = self.postoffice.lookup_type(recipient).await?;
        }
        let component = found
            .into_iter()
            .next()
            .ok_or_else(|| Error::no_route(recipient))?;
        parse_base(&component.url).map_err(|e| {
            Error::new(
                ErrorKind::Protocol,
                ErrorClass::NotDelivered,
                format!(
                    "the PostOffice's URL for `{recipient}` is unusable: {}",
                    e.detail()
                ),
            )
        })
    }
}

impl Resolve for PostOfficeResolver {
    fn resolve(&self, recipient: &str) -> ResolveFuture {
        match self.cached(recipient) {
            Some(uri) => ResolveFuture::ready(Ok(uri)),
            None => ResolveFuture::new(self.clone().lookup(recipient.to_owned())),
        }
    }

    /// Forgets the cached answer for `recipient` if it is still `base`: the
    /// component may have moved, and the PostOffice knows where.
    fn unreachable(&self, recipient: &str, base: &Uri) {
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache
            .get(recipient)
            .is_some_and(|(cached, _)| cached == base)
        {
            cache.remove(recipient);
            tracing::debug!(recipient, %base, "forgot an address that refused a connection");
        }
    }

    /// The PostOffice's own URL, never the URLs it answers with.
    fn configured_bases(&self) -> Vec<Uri> {
        vec![self.postoffice.base().clone()]
    }
}

impl fmt::Debug for PostOfficeResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostOfficeResolver")
            .field("postoffice", &self.postoffice)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// Settings for a [`PostOfficeResolver`]; see
/// [`PostOfficeResolver::builder`].
#[derive(Clone)]
pub struct PostOfficeResolverBuilder {
    client: PostOfficeClientBuilder,
    ttl: Duration,
}

impl PostOfficeResolverBuilder {
    /// How long an answer is reused. Default
    /// [`ROUTE_CACHE_TTL`](crate::defaults::ROUTE_CACHE_TTL); zero disables
    /// the cache.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The limit on one lookup, connection included. Default
    /// [`LOOKUP_TIMEOUT`](crate::defaults::LOOKUP_TIMEOUT).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.client = self.client.timeout(timeout);
        self
    }

    /// Sends `Authorization: Bearer {token}` with lookups, as
    /// [`PostOfficeClientBuilder::token`] does. Default: none.
    pub fn token(mut self, token: Secret) -> Self {
        self.client = self.client.token(token);
        self
    }

    /// Whether the token may cross plain `http://` to a PostOffice that is
    /// not on loopback. Default: false.
    pub fn allow_plaintext_token(mut self, allow: bool) -> Self {
        self.client = self.client.allow_plaintext_token(allow);
        self
    }

    /// CA certificates trusted besides the system's, for an `https://`
    /// PostOffice. Default: none.
    pub fn tls_ca(mut self, ca: CaBundle) -> Self {
        self.client = self.client.tls_ca(ca);
        self
    }

    /// Checks the settings and builds the resolver.
    ///
    /// # Errors
    ///
    /// [`Config`](crate::ErrorKind::Config) when the URL is not
    /// `http://host[:port][/prefix]` or the token cannot be a header value.
    pub fn build(self) -> Result<PostOfficeResolver> {
        Ok(PostOfficeResolver {
            postoffice: self.client.build()?,
            ttl: self.ttl,
            cache: Arc::default(),
            lookups: Arc::default(),
        })
    }
}

impl fmt::Debug for PostOfficeResolverBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostOfficeResolverBuilder")
            .field("client", &self.client)
            .field("ttl", &self.ttl)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::Context;

    use super::*;

    #[tokio::test]
    async fn lookups_abandoned_by_every_caller_are_swept() {
        // A PostOffice that accepts connections and never answers.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", silent.local_addr().unwrap());
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((connection, _)) = silent.accept().await {
                open.push(connection);
            }
        });
        let resolver = PostOfficeResolver::builder(url).build().unwrap();
        let mut cx = Context::from_waker(std::task::Waker::noop());
        for n in 0..CACHE_SWEEP_AT {
            let mut lookup = resolver.resolve(&format!("gone-{n}"));
            assert!(Pin::new(&mut lookup).poll(&mut cx).is_pending());
        }
        let abandoned = resolver.lookups.lock().unwrap().len();
        assert_eq!(
            abandoned, CACHE_SWEEP_AT,
            "dropped callers leave their lookups behind"
        );
        let mut next = resolver.resolve("next");
        assert!(Pin::new(&mut next).poll(&mut cx).is_pending());
        let kept: Vec<String> = resolver.lookups.lock().unwrap().keys().cloned().collect();
        assert_eq!(kept, ["next"], "only the lookup with a caller is kept");
        held.abort();
    }
}
