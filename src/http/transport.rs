//! [`HttpTransport`]: `POST {base}/message` over hyper's pooled client.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use tokio::time::Instant;
use tower::Service;

use super::classify;
use super::client::{Bearer, Client, Withheld, new_client};
use super::resolve::{Resolve, ResolverChain};
use super::{APPLICATION_JSON, MESSAGE_PATH, X_REQUEST_ID};
use crate::config::Config;
use crate::defaults;
use crate::error::{Error, ErrorClass, ErrorKind, Result};
use crate::message::{BROADCAST, Codec, Message};
use crate::route::Route;
use crate::secret::Secret;
use crate::tls::CaBundle;
use crate::transport::Delivery;
use crate::url::{HostPattern, join};

/// Sends messages as `POST {base}/message`, the base URL found by a
/// [`Resolve`]r. See the [module docs](super) for the wire contract and how
/// failures are classified.
///
/// Connections are kept alive and pooled per host (`TCP_NODELAY` on), so a
/// steady caller pays no connection set-up.
///
/// # Clone
///
/// Clones share the connection pool, the resolver and the settings.
///
/// ```no_run
/// use serde_json::json;
/// use stage7_transport::http::StaticResolver;
/// use stage7_transport::{HttpTransport, Message, Secret};
/// use tower::ServiceExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), stage7_transport::Error> {
/// let transport = HttpTransport::builder(StaticResolver::new([("brain", "http://127.0.0.1:5070")])?)
///     .token(Secret::new("s3cret"))
///     .build()?;
/// let delivery = transport.oneshot(Message::request("brain", json!({"q": "?"}))).await?;
/// println!("{:?}", delivery.reply());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct HttpTransport {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    resolver: Arc<dyn Resolve>,
    bearer: Option<Bearer>,
    codec: Codec,
    request_timeout: Duration,
}

/// Settings of an [`HttpTransport`]; see [`HttpTransport::builder`].
pub struct HttpTransportBuilder {
    resolver: Arc<dyn Resolve>,
    token: Option<Secret>,
    token_hosts: Vec<String>,
    allow_plaintext_token: bool,
    tls_ca: Option<CaBundle>,
    connect_timeout: Duration,
    request_timeout: Duration,
    pool_idle_timeout: Duration,
    pool_max_idle_per_host: usize,
    max_message_size: usize,
}

impl HttpTransport {
    /// Settings for a transport that finds recipients with `resolver`,
    /// starting from the defaults.
    pub fn builder(resolver: impl Resolve) -> HttpTransportBuilder {
        HttpTransportBuilder {
            resolver: Arc::new(resolver),
            token: None,
            token_hosts: Vec::new(),
            allow_plaintext_token: false,
            tls_ca: None,
            connect_timeout: defaults::HTTP_CONNECT_TIMEOUT,
            request_timeout: defaults::HTTP_REQUEST_TIMEOUT,
            pool_idle_timeout: defaults::HTTP_POOL_IDLE_TIMEOUT,
            pool_max_idle_per_host: defaults::HTTP_POOL_MAX_IDLE_PER_HOST,
            max_message_size: defaults::MAX_MESSAGE_SIZE,
        }
    }

    /// A transport as `config` describes it: its static routes, then its
    /// PostOffice ([`ResolverChain::from_config`]); its bearer token and
    /// the rules for where it goes; its CA bundle; its attempt timeout as
    /// the request timeout; its message size limit.
    ///
    /// # Errors
    ///
    /// [`Config`](crate::ErrorKind::Config) naming the unusable setting.
    pub fn from_config(config: &Config) -> Result<Self> {
        Self::builder(ResolverChain::from_config(config)?)
            .config(config)
            .build()
    }

    async fn send(self, message: Message) -> Result<Delivery> {
        // An unknown recipient fails at once; a caller retrying in a loop
        // must still let the runtime run.
        tokio::task::coop::consume_budget().await;
        let inner = &*self.inner;
        let recipient = message
            .recipient()
            .ok_or_else(|| Error::invalid("message has no recipient"))?;
        if recipient == BROADCAST {
            return Err(Error::new(
                ErrorKind::NoRoute,
                ErrorClass::NotDelivered,
                "a broadcast to `all` cannot go over HTTP, which reaches one receiver per request",
            )
            .with_key(recipient));
        }
        let now = Instant::now();
        let own = now + inner.request_timeout;
        let until = message.deadline().map_or(own, |deadline| deadline.min(own));
        if until <= now {
            return Err(Error::expired());
        }
        let body = inner.codec.encode(&message)?;
        let base = tokio::time::timeout_at(until, inner.resolver.resolve(recipient))
            .await
            .map_err(|_| {
                Error::new(
                    ErrorKind::Timeout,
                    ErrorClass::NotDelivered,
                    format!(
                        "finding `{recipient}` outlasted the request timeout or the call deadline"
                    ),
                )
            })??;
        let (request, withheld) = inner.request(&base, &message, body)?;
        let exchange = async {
            let response = inner.client.request(request).await.map_err(|e| {
                if e.is_connect() {
                    inner.resolver.unreachable(recipient, &base);
                }
                classify::send_error(e, &base)
            })?;
            let (parts, body) = response.into_parts();
            let limit = inner.codec.max_size();
            let body = Limited::new(body, limit)
                .collect()
                .await
                .map_err(|e| classify::body_error(e, limit))?
                .to_bytes();
            Ok::<_, Error>((parts, body))
        };
        let (parts, body) = tokio::time::timeout_at(until, exchange)
            .await
            .map_err(|_| {
                Error::timeout(format!(
                    "no answer from {base} within the request timeout of {} ms or the call deadline",
                    inner.request_timeout.as_millis()
                ))
            })??;
        classify::response(
            parts.status,
            &parts.headers,
            &body,
            message.requires_sync(),
            &inner.codec,
        )
        .map_err(|error| match withheld {
            Some(why) if error.kind() == ErrorKind::Unauthorized => Error::new(
                error.kind(),
                error.class(),
                format!("{}; {}", error.detail(), why.explain(&base)),
            ),
            _ => error,
        })
    }
}

impl Inner {
    /// The request, and why it goes without the token if it does.
    fn request(
        &self,
        base: &Uri,
        message: &Message,
        body: Bytes,
    ) -> Result<(Request<Full<Bytes>>, Option<Withheld>)> {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = message_uri(base)?;
        let headers = request.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(APPLICATION_JSON));
        // Only the endpoint's fallback when the JSON has no id.
        if let Ok(id) = HeaderValue::from_str(message.id()) {
            headers.insert(HeaderName::from_static(X_REQUEST_ID), id);
        }
        let mut withheld = None;
        if let Some(bearer) = &self.bearer {
            match bearer.header_for(base) {
                Ok(authorization) => {
                    headers.insert(AUTHORIZATION, authorization.clone());
                }
                Err(why) => {
                    tracing::debug!(base = %base, reason = why.explain(base), "http transport: token withheld");
                    withheld = Some(why);
                }
            }
        }
        Ok((request, withheld))
    }
}

/// `{base}/message`, without allocating a path for the usual base with none.
fn message_uri(base: &Uri) -> Result<Uri> {
    if !base.path().trim_end_matches('/').is_empty() {
        return join(base, MESSAGE_PATH);
    }
    let mut parts = base.clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::from_static(MESSAGE_PATH));
    Uri::from_parts(parts).map_err(|e| Error::config(format!("base URL {base}: {e}")))
}

/// Response future of [`HttpTransport`].
///
/// Boxed: a call awaits the resolver, the connection pool, the response
/// head and the body in turn, and the allocation is small beside a network
/// round trip.
pub type ResponseFuture = Pin<Box<dyn Future<Output = Result<Delivery>> + Send>>;

impl Service<Message> for HttpTransport {
    type Response = Delivery;
    type Error = Error;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, message: Message) -> ResponseFuture {
        let transport = self.clone();
        Box::pin(async move {
            transport
                .send(message)
                .await
                .map_err(|e| e.with_route(Route::Http))
        })
    }
}

impl fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        f.debug_struct("HttpTransport")
            .field("bearer", &inner.bearer)
            .field("request_timeout", &inner.request_timeout)
            .field("max_message_size", &inner.codec.max_size())
            .finish_non_exhaustive()
    }
}

impl HttpTransportBuilder {
    /// Takes `config`'s bearer token, its token hosts and plain-text rule,
    /// its CA bundle, its attempt timeout as the request timeout and its
    /// message size limit.
    pub fn config(mut self, config: &Config) -> Self {
        self.token.clone_from(&config.http_token);
        self.token_hosts
            .extend(config.http_token_hosts.iter().cloned());
        self.allow_plaintext_token = config.allow_plaintext_token;
        self.tls_ca.clone_from(&config.tls_ca);
        self.request_timeout(config.attempt_timeout)
            .max_message_size(config.max_message_size)
    }

    /// Sends `Authorization: Bearer {token}` with messages — but only where
    /// it stays safe:
    ///
    /// * to the hosts of the resolver's configured base URLs
    ///   ([`Resolve::configured_bases`]: the static routes and the
    ///   PostOffice itself) and of [`token_host`](Self::token_host); a URL
    ///   the PostOffice answers with for any other host is called without
    ///   it, so registering a URL does not collect the token;
    /// * and there over `https://`, or to loopback (`localhost`,
    ///   `127.0.0.0/8`, `[::1]`), unless
    ///   [`allow_plaintext_token`](Self::allow_plaintext_token).
    ///
    /// A call that goes without the token and is refused with `401` says
    /// why the token was not sent. Default: none.
    pub fn token(mut self, token: Secret) -> Self {
        self.token = Some(token);
        self
    }

    /// Another host the token may go to: `host` (any port) or `host:port`
    /// (`STAGE7_HTTP_TOKEN_HOSTS`). Default: none besides the resolver's.
    pub fn token_host(mut self, host: impl Into<String>) -> Self {
        self.token_hosts.push(host.into());
        self
    }

    /// Whether the token may cross plain `http://` to a host that is not
    /// loopback (`STAGE7_ALLOW_PLAINTEXT_TOKEN`): only on a network you
    /// trust. Default: false.
    pub fn allow_plaintext_token(mut self, allow: bool) -> Self {
        self.allow_plaintext_token = allow;
        self
    }

    /// CA certificates trusted besides the system's roots for `https://`
    /// peers (`STAGE7_TLS_CA_FILE`). Default: the system's roots only.
    pub fn tls_ca(mut self, ca: CaBundle) -> Self {
        self.tls_ca = Some(ca);
        self
    }

    /// The limit on opening a connection; past it the message is
    /// [not delivered](crate::ErrorClass::NotDelivered). Default
    /// [`HTTP_CONNECT_TIMEOUT`](crate::defaults::HTTP_CONNECT_TIMEOUT).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The limit on one exchange, from taking a connection to the end of
    /// the reply, capped by the message [deadline](Message::deadline); past
    /// it the outcome is [unknown](crate::ErrorClass::UnknownOutcome) —
    /// conservatively so, even when it passes while connecting. Default
    /// [`HTTP_REQUEST_TIMEOUT`](crate::defaults::HTTP_REQUEST_TIMEOUT).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How long an unused pooled connection stays open. Default
    /// [`HTTP_POOL_IDLE_TIMEOUT`](crate::defaults::HTTP_POOL_IDLE_TIMEOUT).
    pub fn pool_idle_timeout(mut self, timeout: Duration) -> Self {
        self.pool_idle_timeout = timeout;
        self
    }

    /// Idle connections kept per host. Default
    /// [`HTTP_POOL_MAX_IDLE_PER_HOST`](crate::defaults::HTTP_POOL_MAX_IDLE_PER_HOST).
    pub fn pool_max_idle_per_host(mut self, connections: usize) -> Self {
        self.pool_max_idle_per_host = connections;
        self
    }

    /// Largest encoded message sent or reply read, in bytes. Default
    /// [`MAX_MESSAGE_SIZE`](crate::defaults::MAX_MESSAGE_SIZE).
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// Validates the settings and builds the transport.
    ///
    /// # Errors
    ///
    /// [`Config`](crate::ErrorKind::Config) naming the invalid setting: a
    /// zero timeout or size, a token a header cannot carry, a token host
    /// that is not `host` or `host:port`.
    pub fn build(self) -> Result<HttpTransport> {
        for (name, value) in [
            ("connect timeout", self.connect_timeout),
            ("request timeout", self.request_timeout),
        ] {
            if value.is_zero() {
                return Err(Error::config(format!(
                    "HTTP transport: {name} must be positive"
                )));
            }
        }
        if self.max_message_size == 0 {
            return Err(Error::config(
                "HTTP transport: message size limit must be positive",
            ));
        }
        let bearer = match &self.token {
            Some(token) => {
                let mut hosts = self
                    .token_hosts
                    .iter()
                    .map(|host| {
                        HostPattern::parse(host).map_err(|e| {
                            Error::config(format!("HTTP transport: token host: {}", e.detail()))
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                hosts.extend(
                    self.resolver
                        .configured_bases()
                        .iter()
                        .filter_map(HostPattern::of),
                );
                Some(Bearer::new(token, hosts, self.allow_plaintext_token)?)
            }
            None => None,
        };
        Ok(HttpTransport {
            inner: Arc::new(Inner {
                client: new_client(
                    self.connect_timeout,
                    self.pool_idle_timeout,
                    self.pool_max_idle_per_host,
                    self.tls_ca.as_ref(),
                )?,
                resolver: self.resolver,
                bearer,
                codec: Codec::new(self.max_message_size),
                request_timeout: self.request_timeout,
            }),
        })
    }
}

impl fmt::Debug for HttpTransportBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpTransportBuilder")
            .field("token", &self.token)
            .field("token_hosts", &self.token_hosts)
            .field("allow_plaintext_token", &self.allow_plaintext_token)
            .field("tls_ca", &self.tls_ca)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("pool_idle_timeout", &self.pool_idle_timeout)
            .field("pool_max_idle_per_host", &self.pool_max_idle_per_host)
            .field("max_message_size", &self.max_message_size)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::resolve::{Resolve, ResolveFuture};

    #[tokio::test(start_paused = true)]
    async fn a_lookup_that_never_answers_ends_with_the_request_timeout() {
        struct Silent;
        impl Resolve for Silent {
            fn resolve(&self, _: &str) -> ResolveFuture {
                ResolveFuture::new(std::future::pending())
            }
        }
        let transport = HttpTransport::builder(Silent)
            .request_timeout(Duration::from_secs(1))
            .build()
            .unwrap();
        let error = transport
            .send(Message::request("brain", serde_json::json!(1)))
            .await
            .unwrap_err();
        assert_eq!(
            (error.kind(), error.class()),
            (ErrorKind::Timeout, ErrorClass::NotDelivered),
            "{error}"
        );
        assert!(error.detail().contains("finding `brain`"), "{error}");
    }

    #[test]
    fn message_uri_keeps_a_path_prefix() {
        let base: Uri = "http://brain:5070".parse().unwrap();
        assert_eq!(message_uri(&base).unwrap(), "http://brain:5070/message");
        let base: Uri = "http://gateway/brain".parse().unwrap();
        assert_eq!(message_uri(&base).unwrap(), "http://gateway/brain/message");
    }

    #[test]
    fn zero_settings_are_refused() {
        let builder = || HttpTransport::builder(ResolverChain::new());
        let error = builder()
            .request_timeout(Duration::ZERO)
            .build()
            .unwrap_err();
        assert!(error.is_config());
        assert!(error.to_string().contains("request timeout"), "{error}");
        assert!(
            builder()
                .max_message_size(0)
                .build()
                .unwrap_err()
                .is_config()
        );
        let error = builder()
            .token(Secret::new("bad\ntoken"))
            .build()
            .unwrap_err();
        assert!(error.is_config());
        assert!(!error.to_string().contains("bad\ntoken"));
    }

    #[tokio::test]
    async fn a_passed_deadline_is_not_delivered() {
        let routes = crate::http::StaticResolver::new([("brain", "http://127.0.0.1:9")]).unwrap();
        let transport = HttpTransport::builder(routes).build().unwrap();
        let mut message = Message::request("brain", serde_json::json!(1));
        message.set_deadline(Some(Instant::now()));
        let error = tower::ServiceExt::oneshot(transport, message)
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Timeout);
        assert_eq!(error.class(), ErrorClass::NotDelivered);
    }

    #[tokio::test]
    async fn messages_without_recipient_are_invalid() {
        let transport = HttpTransport::builder(ResolverChain::new())
            .build()
            .unwrap();
        let message = Message::new(crate::MessageType::Statement);
        let error = tower::ServiceExt::oneshot(transport, message)
            .await
            .unwrap_err();
        assert_eq!(error.kind(), crate::ErrorKind::InvalidMessage);
        assert_eq!(error.route(), Some(Route::Http));
    }
}
