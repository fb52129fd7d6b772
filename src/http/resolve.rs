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
//!   the answer for a while.
//! * your own: implement [`Resolve`].
//!
//! A recipient nobody knows is an error of kind
//! [`NoRoute`](crate::ErrorKind::NoRoute) naming it, class
//! [`NotDelivered`](crate::ErrorClass::NotDelivered): nothing was sent.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, HeaderValue};
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use tokio::time::Instant;

use super::classify::causes;
use super::client::{Client, bearer, new_client};
use crate::config::Config;
use crate::defaults;
use crate::error::{Error, ErrorClass, ErrorKind, Result};
use crate::secret::Secret;
use crate::url::{join, parse_base, percent_encode};

/// Largest PostOffice answer read: 64 KiB.
const MAX_LOOKUP_BODY: usize = 64 * 1024;
/// Cached PostOffice answers kept before expired ones are swept.
const CACHE_SWEEP_AT: usize = 1024;
/// Idle connections to the PostOffice kept open: lookups are rare.
const LOOKUP_IDLE_CONNECTIONS: usize = 4;

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

/// Compares names as `{NAME}_URL` variables are matched: without case, `-`
/// and `_` alike, so `capabilities-manager` finds `CAPABILITIES_MANAGER_URL`.
fn same_name(a: &str, b: &str) -> bool {
    let fold = |byte: u8| match byte {
        b'-' => b'_',
        other => other.to_ascii_lowercase(),
    };
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| fold(x) == fold(y))
}

/// A fixed table of recipient → base URL, matched without case and with `-`
/// and `_` alike.
///
/// ```
/// use stage7_transport::Config;
/// use stage7_transport::http::{Resolve, StaticResolver};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), stage7_transport::Error> {
/// let config = Config::from_vars([("CAPABILITIES_MANAGER_URL", "http://caps:5060")])?;
/// let routes = StaticResolver::from_config(&config)?;
/// let base = routes.resolve("capabilities-manager").await?;
/// assert_eq!(base, "http://caps:5060");
/// assert!(routes.resolve("brain").await.is_err());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct StaticResolver {
    routes: Arc<[(Box<str>, Uri)]>,
}

impl StaticResolver {
    /// A table of `(recipient, base URL)` pairs.
    ///
    /// # Errors
    ///
    /// [`Config`](crate::ErrorKind::Config) naming a route whose URL is not
    /// `http://host[:port][/prefix]`.
    pub fn new<I, K, V>(routes: I) -> Result<Self>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let routes = routes
            .into_iter()
            .map(|(name, url)| {
                let name = name.as_ref();
                parse_base(url.as_ref())
                    .map(|uri| (Box::from(name), uri))
                    .map_err(|e| Error::config(format!("route `{name}`: {}", e.detail())))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            routes: routes.into(),
        })
    }

    /// The routes of `config`: its `{NAME}_URL` variables
    /// ([`Config::http_routes`]), found as `name` — an entity id
    /// (`BRAIN_1_URL` for `brain-1`) or a component type (`BRAIN_URL` for
    /// `Brain`).
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new).
    pub fn from_config(config: &Config) -> Result<Self> {
        Self::new(&config.http_routes)
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether there is no route.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

impl Resolve for StaticResolver {
    fn resolve(&self, recipient: &str) -> ResolveFuture {
        let found = self
            .routes
            .iter()
            .find(|(name, _)| same_name(name, recipient));
        ResolveFuture::ready(match found {
            Some((_, uri)) => Ok(uri.clone()),
            None => Err(Error::no_route(recipient)),
        })
    }
}

/// Asks the PostOffice's registry where a recipient lives, and remembers
/// the answer for a while.
///
/// The lookup is `GET {postoffice}/requestComponent?id={recipient}`, then,
/// if no component has that id, `?type={recipient}`. The PostOffice answers
/// `200` with `{"components":[{"id":"…","type":"…","url":"http://host:port"}]}`;
/// the first component's `url` is used. An empty list on both lookups means
/// the recipient is unknown: [`NoRoute`](crate::ErrorKind::NoRoute). A
/// PostOffice that cannot be reached, is slow or answers anything else gives
/// an error of class [`NotDelivered`](crate::ErrorClass::NotDelivered) — the
/// message was not sent — which lets a [`ResolverChain`] try its next
/// resolver.
///
/// Answers are cached for [`ROUTE_CACHE_TTL`](crate::defaults::ROUTE_CACHE_TTL); unknown recipients are not, so a
/// component that registers is found at once. Calls that need the same
/// recipient while it is being looked up wait for that lookup rather than
/// sending their own: when the broker goes down and every call turns to
/// HTTP at once, the PostOffice gets one query per recipient, not one per
/// call.
///
/// ```no_run
/// use std::time::Duration;
/// use stage7_transport::http::PostOfficeResolver;
///
/// let resolver = PostOfficeResolver::new("http://postoffice:5020")?
///     .with_ttl(Duration::from_secs(10));
/// # Ok::<(), stage7_transport::Error>(())
/// ```
#[derive(Clone)]
pub struct PostOfficeResolver {
    base: Uri,
    client: Client,
    authorization: Option<HeaderValue>,
    ttl: Duration,
    timeout: Duration,
    cache: Arc<Mutex<HashMap<String, (Uri, Instant)>>>,
    lookups: Arc<Mutex<HashMap<String, Arc<Lookup>>>>,
}

/// One lookup in flight, shared by every call that needs its answer.
type Lookup = tokio::sync::OnceCell<std::result::Result<Uri, Arc<Error>>>;

impl PostOfficeResolver {
    /// Looks recipients up at the PostOffice whose base URL is `url`.
    ///
    /// # Errors
    ///
    /// [`Config`](crate::ErrorKind::Config) when `url` is not
    /// `http://host[:port][/prefix]`.
    pub fn new(url: &str) -> Result<Self> {
        let base = parse_base(url)
            .map_err(|e| Error::config(format!("PostOffice URL: {}", e.detail())))?;
        Ok(Self {
            base,
            client: new_client(
                defaults::HTTP_CONNECT_TIMEOUT,
                defaults::HTTP_POOL_IDLE_TIMEOUT,
                LOOKUP_IDLE_CONNECTIONS,
            ),
            authorization: None,
            ttl: defaults::ROUTE_CACHE_TTL,
            timeout: defaults::LOOKUP_TIMEOUT,
            cache: Arc::default(),
            lookups: Arc::default(),
        })
    }

    /// How long an answer is reused. Default [`ROUTE_CACHE_TTL`](crate::defaults::ROUTE_CACHE_TTL); zero disables
    /// the cache.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The limit on one lookup, connection included. Default
    /// [`LOOKUP_TIMEOUT`](crate::defaults::LOOKUP_TIMEOUT).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sends `Authorization: Bearer {token}` with lookups. Default: none.
    ///
    /// # Errors
    ///
    /// [`Config`](crate::ErrorKind::Config) when the token cannot be a
    /// header value.
    pub fn with_token(mut self, token: &Secret) -> Result<Self> {
        self.authorization = Some(bearer(token)?);
        Ok(self)
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
                let found = tokio::time::timeout(self.timeout, self.find(&recipient))
                    .await
                    .unwrap_or_else(|_| {
                        let waited = self.timeout.as_millis();
                        Err(self.unavailable(&recipient, format!("no answer within {waited} ms")))
                    });
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
        match self.query("id", recipient).await? {
            Some(uri) => Ok(uri),
            None => self
                .query("type", recipient)
                .await?
                .ok_or_else(|| Error::no_route(recipient)),
        }
    }

    fn unavailable(&self, recipient: &str, why: String) -> Error {
        Error::new(
            ErrorKind::Unavailable,
            ErrorClass::NotDelivered,
            format!(
                "cannot resolve `{recipient}` at the PostOffice {}: {why}",
                self.base
            ),
        )
    }

    /// One `requestComponent` query: the first component's URL, if any.
    async fn query(&self, field: &str, recipient: &str) -> Result<Option<Uri>> {
        let path = format!("/requestComponent?{field}={}", percent_encode(recipient));
        let mut request = Request::new(Full::new(Bytes::new()));
        *request.uri_mut() = join(&self.base, &path)
            .map_err(|e| self.unavailable(recipient, format!("bad lookup URL: {}", e.detail())))?;
        let headers = request.headers_mut();
        headers.insert(ACCEPT, HeaderValue::from_static(super::APPLICATION_JSON));
        if let Some(authorization) = &self.authorization {
            headers.insert(AUTHORIZATION, authorization.clone());
        }
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| self.unavailable(recipient, causes(&e)).with_source(e))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_LOOKUP_BODY)
            .collect()
            .await
            .map_err(|e| {
                self.unavailable(recipient, format!("reading the answer: {}", causes(&*e)))
                    .with_source(e)
            })?
            .to_bytes();
        if status != StatusCode::OK {
            return Err(self.unavailable(recipient, format!("the PostOffice answered {status}")));
        }
        let answer: Components = serde_json::from_slice(&body).map_err(|e| {
            Error::new(
                ErrorKind::Protocol,
                ErrorClass::NotDelivered,
                format!("the PostOffice's answer for `{recipient}` is not a component list: {e}"),
            )
        })?;
        match answer.components.into_iter().next() {
            Some(component) => parse_base(&component.url).map(Some).map_err(|e| {
                Error::new(
                    ErrorKind::Protocol,
                    ErrorClass::NotDelivered,
                    format!(
                        "the PostOffice's URL for `{recipient}` is unusable: {}",
                        e.detail()
                    ),
                )
            }),
            None => Ok(None),
        }
    }
}

#[derive(serde::Deserialize)]
struct Components {
    components: Vec<Component>,
}

#[derive(serde::Deserialize)]
struct Component {
    url: String,
}

impl Resolve for PostOfficeResolver {
    fn resolve(&self, recipient: &str) -> ResolveFuture {
        match self.cached(recipient) {
            Some(uri) => ResolveFuture::ready(Ok(uri)),
            None => ResolveFuture::new(self.clone().lookup(recipient.to_owned())),
        }
    }
}

impl fmt::Debug for PostOfficeResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostOfficeResolver")
            .field("base", &self.base)
            .field("token", &self.authorization.as_ref().map(|_| "***"))
            .field("ttl", &self.ttl)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Tries resolvers in order: the first base URL found wins.
///
/// A resolver that does not know the recipient
/// ([`NoRoute`](crate::ErrorKind::NoRoute)) or cannot find out (any other
/// error) passes to the next. When none finds it, the error is the first
/// that was not `NoRoute` — the PostOffice being down says more than a
/// table not knowing the name — or else `NoRoute` for the recipient.
///
/// ```
/// use stage7_transport::http::{ResolverChain, StaticResolver};
///
/// let chain = ResolverChain::new()
///     .or(StaticResolver::new([("brain", "http://brain:5070")])?)
///     .or(StaticResolver::new([("librarian", "http://librarian:5040")])?);
/// # Ok::<(), stage7_transport::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct ResolverChain {
    resolvers: Vec<Arc<dyn Resolve>>,
}

impl ResolverChain {
    /// A chain that knows nobody yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `resolver`, tried after those already added.
    pub fn or(mut self, resolver: impl Resolve) -> Self {
        self.resolvers.push(Arc::new(resolver));
        self
    }

    /// The resolvers of `config`: its static routes, then the PostOffice at
    /// [`Config::postoffice_url`] (with [`Config::http_token`]) if one is
    /// set.
    ///
    /// # Errors
    ///
    /// [`Config`](crate::ErrorKind::Config) naming an unusable URL.
    pub fn from_config(config: &Config) -> Result<Self> {
        let mut chain = Self::new().or(StaticResolver::from_config(config)?);
        if let Some(url) = &config.postoffice_url {
            let mut postoffice = PostOfficeResolver::new(url)?;
            if let Some(token) = &config.http_token {
                postoffice = postoffice.with_token(token)?;
            }
            chain = chain.or(postoffice);
        }
        Ok(chain)
    }
}

/// Remembers the most telling failure while a chain runs.
fn keep_first_telling(kept: &mut Option<Error>, error: Error) {
    let telling = |e: &Error| e.kind() != ErrorKind::NoRoute;
    if kept.is_none() || (telling(&error) && !kept.as_ref().is_some_and(telling)) {
        *kept = Some(error);
    }
}

impl Resolve for ResolverChain {
    fn resolve(&self, recipient: &str) -> ResolveFuture {
        let mut failure = None;
        for (at, resolver) in self.resolvers.iter().enumerate() {
            match resolver.resolve(recipient).now_or_later() {
                Ok(Ok(uri)) => return ResolveFuture::ready(Ok(uri)),
                Ok(Err(error)) => keep_first_telling(&mut failure, error),
                Err(pending) => {
                    let rest = self.resolvers[at + 1..].to_vec();
                    let recipient = recipient.to_owned();
                    return ResolveFuture::new(async move {
                        match pending.await {
                            Ok(uri) => return Ok(uri),
                            Err(error) => keep_first_telling(&mut failure, error),
                        }
                        for resolver in rest {
                            match resolver.resolve(&recipient).await {
                                Ok(uri) => return Ok(uri),
                                Err(error) => keep_first_telling(&mut failure, error),
                            }
                        }
                        Err(failure.unwrap_or_else(|| Error::no_route(&recipient)))
                    });
                }
            }
        }
        ResolveFuture::ready(Err(failure.unwrap_or_else(|| Error::no_route(recipient))))
    }
}

impl fmt::Debug for ResolverChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResolverChain")
            .field("resolvers", &self.resolvers.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve_now(resolver: &impl Resolve, recipient: &str) -> Result<Uri> {
        match resolver.resolve(recipient).now_or_later() {
            Ok(result) => result,
            Err(_) => panic!("a table lookup is ready at once"),
        }
    }

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
        let resolver = PostOfficeResolver::new(&url).unwrap();
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
        for url in ["https://x", "ftp://x", "http://", "x y", "http://x/?q=1"] {
            let error = StaticResolver::new([("brain", url)]).unwrap_err();
            assert!(error.is_config(), "{url}: {error}");
            assert!(error.to_string().contains("route `brain`"), "{error}");
        }
        assert!(
            PostOfficeResolver::new("postoffice:5020")
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
