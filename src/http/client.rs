//! The pooled hyper client the transport and the PostOffice lookup each
//! build, and the bearer header both send.

use std::time::Duration;

use bytes::Bytes;
use http::header::HeaderValue;
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::error::{Error, Result};
use crate::secret::Secret;

/// hyper-util's pooled HTTP/1 client over plain TCP.
pub(crate) type Client = hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>;

/// A keep-alive client with `TCP_NODELAY` and a connect timeout.
pub(crate) fn new_client(
    connect_timeout: Duration,
    pool_idle_timeout: Duration,
    pool_max_idle_per_host: usize,
) -> Client {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(connect_timeout));
    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(pool_idle_timeout)
        .pool_max_idle_per_host(pool_max_idle_per_host)
        .build(connector)
}

/// `Bearer {token}` as a header value marked sensitive, so hyper never
/// prints it. An empty token is refused: every endpoint would refuse it.
pub(crate) fn bearer(token: &Secret) -> Result<HeaderValue> {
    if token.expose().is_empty() {
        return Err(Error::config("the bearer token is empty"));
    }
    let mut value = HeaderValue::try_from(format!("Bearer {}", token.expose()))
        .map_err(|_| Error::config("the bearer token contains characters a header cannot carry"))?;
    value.set_sensitive(true);
    Ok(value)
}
