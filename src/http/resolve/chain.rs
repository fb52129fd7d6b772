//! [`ResolverChain`]: several resolvers tried in turn.

use std::fmt;
use std::sync::Arc;

use http::Uri;

use super::{PostOfficeResolver, Resolve, ResolveFuture, StaticResolver};
use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};

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
    /// [`Config::postoffice_url`] (with [`Config::http_token`], its rules
    /// and [`Config::tls_ca`]) if one is set.
    ///
    /// # Errors
    ///
    /// [`Config`](crate::ErrorKind::Config) naming an unusable URL.
    pub fn from_config(config: &Config) -> Result<Self> {
        let mut chain = Self::new().or(StaticResolver::from_config(config)?);
        if let Some(url) = &config.postoffice_url {
            let mut postoffice = PostOfficeResolver::builder(url)
                .allow_plaintext_token(config.allow_plaintext_token);
            if let Some(token) = &config.http_token {
                postoffice = postoffice.token(token.clone());
            }
            if let Some(ca) = &config.tls_ca {
                postoffice = postoffice.tls_ca(ca.clone());
            }
            chain = chain.or(postoffice.build()?);
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

    /// Tells every resolver of the chain: whichever gave `base` forgets it.
    fn unreachable(&self, recipient: &str, base: &Uri) {
        for resolver in &self.resolvers {
            resolver.unreachable(recipient, base);
        }
    }

    /// Every resolver's.
    fn configured_bases(&self) -> Vec<Uri> {
        self.resolvers
            .iter()
            .flat_map(|resolver| resolver.configured_bases())
            .collect()
    }
}

impl fmt::Debug for ResolverChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResolverChain")
            .field("resolvers", &self.resolvers.len())
            .finish()
    }
}
