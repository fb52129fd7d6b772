//! The PostOffice's registry as a client sees it: finding components and
//! registering one.
//!
//! Stage7's PostOffice keeps a registry of components. This module speaks
//! its HTTP API, the same one the TypeScript services use:
//!
//! | call | request | answer |
//! |---|---|---|
//! | [`lookup`](PostOfficeClient::lookup) | `GET {postoffice}/requestComponent?id=…` or `?type=…` | `200 {"components":[{"id","type","url"}]}` |
//! | [`register`](PostOfficeClient::register) | `POST {postoffice}/registerComponent` with `{"id","type","url"}` | `2xx` |
//!
//! The [`PostOfficeResolver`](super::PostOfficeResolver) finds recipients
//! through [`lookup`](PostOfficeClient::lookup) and an
//! [`Entity`](crate::Entity) registers through
//! [`register_until_accepted`](PostOfficeClient::register_until_accepted).
//!
//! ```no_run
//! use stage7_transport::http::{Component, PostOfficeClient};
//!
//! # async fn run() -> Result<(), stage7_transport::Error> {
//! let postoffice = PostOfficeClient::builder("http://postoffice:5020").build()?;
//! postoffice.register(&Component::new("librarian-1", "Librarian", "http://librarian:5040")).await?;
//! let found = postoffice.lookup_type("Librarian").await?;
//! assert_eq!(found[0].id, "librarian-1");
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use serde::{Deserialize, Serialize};

use super::classify::causes;
use super::client::{Bearer, Client, Withheld, new_client};
use crate::defaults;
use crate::error::{Error, ErrorClass, ErrorKind, Result};
use crate::message::APPLICATION_JSON;
use crate::secret::Secret;
use crate::tls::{CaBundle, tls_cause};
use crate::url::{HostPattern, join, parse_base, percent_encode, redact_url};

/// Largest registry answer read: 64 KiB.
const MAX_ANSWER_BODY: usize = 64 * 1024;
/// Idle connections to the PostOffice kept open: lookups are rare.
const IDLE_CONNECTIONS: usize = 4;
/// Longest wait between registration attempts.
const REGISTER_MAX_WAIT: Duration = Duration::from_secs(5);

/// One component of the registry: what registration sends and lookups
/// answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Component {
    /// The component's id, e.g. `librarian-1`.
    pub id: String,
    /// Its component type, e.g. `Librarian`.
    #[serde(rename = "type")]
    pub component_type: String,
    /// The base URL of its HTTP endpoint.
    pub url: String,
}

impl Component {
    /// A component `id` of `component_type` served at `url`.
    pub fn new(
        id: impl Into<String>,
        component_type: impl Into<String>,
        url: impl Into<String>,
    ) -> Self {
        Self {
            id: id.into(),
            component_type: component_type.into(),
            url: url.into(),
        }
    }
}

#[derive(Deserialize)]
struct Components {
    components: Vec<Component>,
}

/// A client of the PostOffice's registry. See the [module docs](self).
///
/// # Clone
///
/// Clones share the connection pool.
#[derive(Clone)]
pub struct PostOfficeClient {
    base: Uri,
    client: Client,
    bearer: Option<Bearer>,
    timeout: Duration,
}

impl PostOfficeClient {
    /// Settings for a client of the PostOffice whose base URL is `url`.
    pub fn builder(url: impl Into<String>) -> PostOfficeClientBuilder {
        PostOfficeClientBuilder {
            url: url.into(),
            token: None,
            allow_plaintext_token: false,
            tls_ca: None,
            timeout: defaults::LOOKUP_TIMEOUT,
        }
    }

    /// The PostOffice's base URL.
    pub fn base(&self) -> &Uri {
        &self.base
    }

    /// The components whose id is `id` (at most one, in a sane registry).
    ///
    /// # Errors
    ///
    /// As [`lookup`](Self::lookup).
    pub async fn lookup_id(&self, id: &str) -> Result<Vec<Component>> {
        self.lookup("id", id).await
    }

    /// The components of type `component_type`.
    ///
    /// # Errors
    ///
    /// As [`lookup`](Self::lookup).
    pub async fn lookup_type(&self, component_type: &str) -> Result<Vec<Component>> {
        self.lookup("type", component_type).await
    }

    /// `GET /requestComponent?{field}={value}`: the components that match.
    /// The seed answers `404` when none does; that is an empty list here.
    ///
    /// # Errors
    ///
    /// Class [`NotDelivered`](ErrorClass::NotDelivered) — no message was
    /// sent — kind [`Unavailable`](ErrorKind::Unavailable) when the
    /// PostOffice cannot be reached, is slow, or answers another status,
    /// [`Tls`](ErrorKind::Tls) when its certificate is not trusted, and
    /// [`Protocol`](ErrorKind::Protocol) when its answer is not a component
    /// list.
    pub async fn lookup(&self, field: &str, value: &str) -> Result<Vec<Component>> {
        let path = format!("/requestComponent?{field}={}", percent_encode(value));
        let action = format!("resolve `{value}`");
        let target = join(&self.base, &path)
            .map_err(|e| self.unavailable(&action, format!("bad lookup URL: {}", e.detail())))?;
        let (request, withheld) = self.request(Method::GET, target, Bytes::new());
        let (status, body) = self.exchange(request, &action).await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(Vec::new());
        }
        if status != StatusCode::OK {
            return Err(self.unavailable(&action, self.refusal(status, withheld)));
        }
        let answer: Components = serde_json::from_slice(&body).map_err(|e| {
            Error::new(
                ErrorKind::Protocol,
                ErrorClass::NotDelivered,
                format!("the PostOffice's answer for `{value}` is not a component list: {e}"),
            )
        })?;
        Ok(answer.components)
    }

    /// `POST /registerComponent`: one attempt to register `component`.
    ///
    /// # Errors
    ///
    /// [`Unavailable`](ErrorKind::Unavailable) when the PostOffice cannot be
    /// reached or does not answer in time; a rejected error naming the
    /// status when it refuses.
    pub async fn register(&self, component: &Component) -> Result<()> {
        let body = serde_json::to_vec(component)
            .map_err(|e| Error::invalid(format!("component cannot be encoded: {e}")))?;
        let target = join(&self.base, "/registerComponent")?;
        let (request, withheld) = self.request(Method::POST, target, Bytes::from(body));
        let action = format!("register `{}`", component.id);
        let (status, _) = self.exchange(request, &action).await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(Error::rejected(format!(
                "the PostOffice {}",
                self.refusal(status, withheld)
            )))
        }
    }

    /// Registers `component`, retrying on a jittered schedule (100 ms to
    /// 5 s) until the PostOffice accepts it. Logs each failure at `warn`.
    pub async fn register_until_accepted(self, component: Component) {
        let shown = redact_url(&self.base.to_string());
        let mut backoff = ExponentialBuilder::new()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(REGISTER_MAX_WAIT)
            .with_jitter()
            .without_max_times()
            .build();
        loop {
            match self.register(&component).await {
                Ok(()) => {
                    tracing::info!(
                        postoffice = shown,
                        id = component.id,
                        "registered with the PostOffice"
                    );
                    return;
                }
                Err(error) => {
                    let wait = backoff.next().unwrap_or(REGISTER_MAX_WAIT);
                    tracing::warn!(postoffice = shown, %error, ?wait, "PostOffice registration failed; retrying");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// The request, and why it goes without the token if it does.
    fn request(
        &self,
        method: Method,
        target: Uri,
        body: Bytes,
    ) -> (Request<Full<Bytes>>, Option<Withheld>) {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = method;
        let headers = request.headers_mut();
        headers.insert(ACCEPT, HeaderValue::from_static(APPLICATION_JSON));
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(APPLICATION_JSON));
        let mut withheld = None;
        if let Some(bearer) = &self.bearer {
            match bearer.header_for(&target) {
                Ok(authorization) => {
                    headers.insert(AUTHORIZATION, authorization.clone());
                }
                Err(why) => withheld = Some(why),
            }
        }
        *request.uri_mut() = target;
        (request, withheld)
    }

    /// "answered {status}", and why the token was not sent if that may be
    /// the reason.
    fn refusal(&self, status: StatusCode, withheld: Option<Withheld>) -> String {
        match withheld {
            Some(why) if status == StatusCode::UNAUTHORIZED => {
                format!("answered {status}; {}", why.explain(&self.base))
            }
            _ => format!("answered {status}"),
        }
    }

    /// Sends `request` and reads the answer, within the timeout; `action`
    /// names what it is for in errors.
    async fn exchange(
        &self,
        request: Request<Full<Bytes>>,
        action: &str,
    ) -> Result<(StatusCode, Bytes)> {
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| {
                let kind = if tls_cause(&e).is_some() {
                    ErrorKind::Tls
                } else {
                    ErrorKind::Unavailable
                };
                self.failed(kind, action, causes(&e)).with_source(e)
            })?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_ANSWER_BODY)
                .collect()
                .await
                .map_err(|e| {
                    self.unavailable(action, format!("reading the answer: {}", causes(&*e)))
                        .with_source(e)
                })?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .unwrap_or_else(|_| {
                let waited = self.timeout.as_millis();
                Err(self.unavailable(action, format!("no answer within {waited} ms")))
            })
    }

    fn unavailable(&self, action: &str, why: String) -> Error {
        self.failed(ErrorKind::Unavailable, action, why)
    }

    fn failed(&self, kind: ErrorKind, action: &str, why: String) -> Error {
        Error::new(
            kind,
            ErrorClass::NotDelivered,
            format!("cannot {action} at the PostOffice {}: {why}", self.base),
        )
    }
}

impl fmt::Debug for PostOfficeClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostOfficeClient")
            .field("base", &self.base)
            .field("bearer", &self.bearer)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Settings for a [`PostOfficeClient`]; see [`PostOfficeClient::builder`].
#[derive(Clone)]
pub struct PostOfficeClientBuilder {
    url: String,
    token: Option<Secret>,
    allow_plaintext_token: bool,
    tls_ca: Option<CaBundle>,
    timeout: Duration,
}

impl PostOfficeClientBuilder {
    /// Sends `Authorization: Bearer {token}` with every request — over
    /// `https://`, or to a PostOffice on loopback, unless
    /// [`allow_plaintext_token`](Self::allow_plaintext_token). Default:
    /// none.
    pub fn token(mut self, token: Secret) -> Self {
        self.token = Some(token);
        self
    }

    /// Whether the token may cross plain `http://` to a PostOffice that is
    /// not on loopback (`STAGE7_ALLOW_PLAINTEXT_TOKEN`). Default: false.
    pub fn allow_plaintext_token(mut self, allow: bool) -> Self {
        self.allow_plaintext_token = allow;
        self
    }

    /// CA certificates trusted besides the system's, for an `https://`
    /// PostOffice. Default: none.
    pub fn tls_ca(mut self, ca: CaBundle) -> Self {
        self.tls_ca = Some(ca);
        self
    }

    /// The limit on one exchange, connection included. Default
    /// [`LOOKUP_TIMEOUT`](crate::defaults::LOOKUP_TIMEOUT).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Checks the settings and builds the client.
    ///
    /// # Errors
    ///
    /// [`Config`](crate::ErrorKind::Config) when the URL is not
    /// `http[s]://host[:port][/prefix]` or the token cannot be a header
    /// value.
    pub fn build(self) -> Result<PostOfficeClient> {
        let base = parse_base(&self.url)
            .map_err(|e| Error::config(format!("PostOffice URL: {}", e.detail())))?;
        let bearer = self
            .token
            .as_ref()
            .map(|token| {
                let home = HostPattern::of(&base).into_iter().collect();
                Bearer::new(token, home, self.allow_plaintext_token)
            })
            .transpose()?;
        Ok(PostOfficeClient {
            client: new_client(
                defaults::HTTP_CONNECT_TIMEOUT,
                defaults::HTTP_POOL_IDLE_TIMEOUT,
                IDLE_CONNECTIONS,
                self.tls_ca.as_ref(),
            )?,
            base,
            bearer,
            timeout: self.timeout,
        })
    }
}

impl fmt::Debug for PostOfficeClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostOfficeClientBuilder")
            .field("url", &redact_url(&self.url))
            .field("token", &self.token)
            .field("allow_plaintext_token", &self.allow_plaintext_token)
            .field("tls_ca", &self.tls_ca)
            .field("timeout", &self.timeout)
            .finish()
    }
}
