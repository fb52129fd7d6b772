//! The pooled hyper client the transport and the PostOffice client each
//! build (`http://` and `https://`), and the bearer token with the rules for
//! where it may go.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http::header::HeaderValue;
use http::uri::Scheme;
use http_body_util::Full;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::error::{Error, Result};
use crate::secret::Secret;
use crate::tls::{CaBundle, client_config};
use crate::url::{HostPattern, is_loopback};

/// hyper-util's pooled HTTP/1 client over TCP, with rustls for `https://`.
/// A plain `http://` connection is the TCP stream itself, one enum variant
/// away.
pub(crate) type Client =
    hyper_util::client::legacy::Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A keep-alive client with `TCP_NODELAY` and a connect timeout, trusting
/// the system's roots and `tls_ca`'s for `https://`.
///
/// # Errors
///
/// [`Config`](crate::ErrorKind::Config) if rustls refuses the TLS settings.
pub(crate) fn new_client(
    connect_timeout: Duration,
    pool_idle_timeout: Duration,
    pool_max_idle_per_host: usize,
    tls_ca: Option<&CaBundle>,
) -> Result<Client> {
    let mut tcp = HttpConnector::new();
    tcp.set_nodelay(true);
    tcp.set_connect_timeout(Some(connect_timeout));
    tcp.enforce_http(false);
    let connector = HttpsConnectorBuilder::new()
        .with_tls_config(client_config(tls_ca)?)
        .https_or_http()
        .enable_http1()
        .wrap_connector(tcp);
    Ok(
        hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(pool_idle_timeout)
            .pool_max_idle_per_host(pool_max_idle_per_host)
            .build(connector),
    )
}

/// The bearer token and where it may go: only to `hosts`, and there only
/// over `https://` or to loopback unless plain text is allowed.
#[derive(Clone)]
pub(crate) struct Bearer {
    header: HeaderValue,
    hosts: Arc<[HostPattern]>,
    plaintext: bool,
}

/// Why a request goes without the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Withheld {
    /// The host is not one the token may go to.
    Foreign,
    /// Plain `http://` to a host that is not loopback.
    Plaintext,
}

impl Bearer {
    /// `Bearer {token}` as a header value marked sensitive, so hyper never
    /// prints it, for `hosts`. An empty token is refused: every endpoint
    /// would refuse it.
    ///
    /// # Errors
    ///
    /// [`Config`](crate::ErrorKind::Config) for an empty token or one a
    /// header cannot carry.
    pub(crate) fn new(token: &Secret, hosts: Vec<HostPattern>, plaintext: bool) -> Result<Self> {
        if token.expose().is_empty() {
            return Err(Error::config("the bearer token is empty"));
        }
        let mut header =
            HeaderValue::try_from(format!("Bearer {}", token.expose())).map_err(|_| {
                Error::config("the bearer token contains characters a header cannot carry")
            })?;
        header.set_sensitive(true);
        Ok(Self {
            header,
            hosts: hosts.into(),
            plaintext,
        })
    }

    /// The `Authorization` value for a request to `uri`, or why the token
    /// stays home.
    pub(crate) fn header_for(&self, uri: &Uri) -> std::result::Result<&HeaderValue, Withheld> {
        if !self.hosts.iter().any(|host| host.matches(uri)) {
            return Err(Withheld::Foreign);
        }
        let encrypted = uri.scheme() == Some(&Scheme::HTTPS);
        if !encrypted && !self.plaintext && !uri.host().is_some_and(is_loopback) {
            return Err(Withheld::Plaintext);
        }
        Ok(&self.header)
    }
}

impl Withheld {
    /// What to tell the operator whose call to `uri` went without the token.
    pub(crate) fn explain(self, uri: &Uri) -> String {
        let host = uri.host().unwrap_or_default();
        match self {
            Self::Foreign => format!(
                "the bearer token was not sent: `{host}` is not a host of the configured routes, \
                 the PostOffice or STAGE7_HTTP_TOKEN_HOSTS"
            ),
            Self::Plaintext => format!(
                "the bearer token was not sent: plain http:// to `{host}`, which is not loopback \
                 (use https://, or set STAGE7_ALLOW_PLAINTEXT_TOKEN=1 on a trusted network)"
            ),
        }
    }
}

impl fmt::Debug for Bearer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bearer")
            .field("token", &"***")
            .field("hosts", &self.hosts)
            .field("plaintext", &self.plaintext)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(hosts: &[&str], plaintext: bool) -> Bearer {
        let hosts = hosts
            .iter()
            .map(|h| HostPattern::parse(h).unwrap())
            .collect();
        Bearer::new(&Secret::new("tok"), hosts, plaintext).unwrap()
    }

    #[test]
    fn the_token_goes_only_to_listed_hosts_over_tls_or_loopback() {
        let uri = |text: &str| text.parse::<Uri>().unwrap();
        let strict = bearer(&["brain", "127.0.0.1:5070", "localhost"], false);
        assert!(strict.header_for(&uri("https://brain:5070")).is_ok());
        assert!(strict.header_for(&uri("http://127.0.0.1:5070")).is_ok());
        assert!(strict.header_for(&uri("http://localhost:1")).is_ok());
        assert_eq!(
            strict.header_for(&uri("http://brain:5070")),
            Err(Withheld::Plaintext)
        );
        assert_eq!(
            strict.header_for(&uri("https://evil:5070")),
            Err(Withheld::Foreign)
        );
        assert_eq!(
            strict.header_for(&uri("http://127.0.0.1:5071")),
            Err(Withheld::Foreign)
        );
        let relaxed = bearer(&["brain"], true);
        assert!(relaxed.header_for(&uri("http://brain:5070")).is_ok());
        assert_eq!(
            relaxed.header_for(&uri("http://evil:5070")),
            Err(Withheld::Foreign)
        );
        let why = Withheld::Plaintext.explain(&uri("http://brain:5070"));
        assert!(why.contains("STAGE7_ALLOW_PLAINTEXT_TOKEN"), "{why}");
        assert!(!format!("{strict:?}").contains("tok\""));
    }

    #[test]
    fn unusable_tokens_are_refused() {
        for token in ["", "bad\ntoken"] {
            let error = Bearer::new(&Secret::new(token), Vec::new(), false).unwrap_err();
            assert!(error.is_config());
            assert!(!error.to_string().contains("bad\ntoken"));
        }
    }
}
