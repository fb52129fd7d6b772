//! [`StaticResolver`]: a fixed table of recipients.

use std::sync::Arc;

use http::Uri;

use super::{Resolve, ResolveFuture};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::url::parse_base;

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
    /// `http[s]://host[:port][/prefix]`.
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

    /// Every route's URL.
    fn configured_bases(&self) -> Vec<Uri> {
        self.routes.iter().map(|(_, uri)| uri.clone()).collect()
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
