//! URL helpers every part shares: base URLs of HTTP peers, paths joined to
//! them, percent-encoding, and URLs made safe to log.

use http::Uri;
use http::uri::PathAndQuery;

use crate::error::{Error, Result};

/// `url` with any password replaced by `***`, for logs.
///
/// ```
/// assert_eq!(
///     stage7_transport::url::redact_url("amqp://user:pw@host:5672/%2f"),
///     "amqp://user:***@host:5672/%2f"
/// );
/// ```
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    match rest[..at].find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme_end],
            &rest[..colon],
            &rest[at..]
        ),
        None => url.to_owned(),
    }
}

/// `text` with everything but unreserved characters percent-encoded, for
/// URL user info, paths and query values.
pub(crate) fn percent_encode(text: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// Parses a base URL: `http://host[:port][/prefix]`, trailing `/` ignored.
pub(crate) fn parse_base(url: &str) -> Result<Uri> {
    let trimmed = url.trim().trim_end_matches('/');
    let shown = || redact_url(trimmed);
    let uri: Uri = trimmed
        .parse()
        .map_err(|e| Error::config(format!("`{}` is not a URL: {e}", shown())))?;
    if uri.scheme() != Some(&http::uri::Scheme::HTTP) || uri.authority().is_none() {
        return Err(Error::config(format!(
            "`{}` is not an http://host:port URL (https is not supported)",
            shown()
        )));
    }
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(Error::config(format!(
            "`{}`: a base URL cannot carry credentials; set STAGE7_HTTP_TOKEN instead",
            shown()
        )));
    }
    if uri.query().is_some() {
        return Err(Error::config(format!(
            "`{}`: a base URL cannot have a query",
            shown()
        )));
    }
    Ok(uri)
}

/// `{base}{path}`: `path` (a query may follow it) after the base URL's own
/// path, as a base like `http://host/prefix` means.
///
/// # Errors
///
/// [`Config`](crate::ErrorKind::Config) when the result is not a URI.
pub(crate) fn join(base: &Uri, path: &str) -> Result<Uri> {
    let invalid = |e: &dyn std::fmt::Display| Error::config(format!("{base} + {path}: {e}"));
    let mut parts = base.clone().into_parts();
    let prefix = base.path().trim_end_matches('/');
    parts.path_and_query =
        Some(PathAndQuery::try_from(format!("{prefix}{path}")).map_err(|e| invalid(&e))?);
    Uri::from_parts(parts).map_err(|e| invalid(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_join_after_the_base_path() {
        let join_to = |base: &str, path: &str| join(&parse_base(base).unwrap(), path).unwrap();
        assert_eq!(
            join_to("http://po:5020/", "/registerComponent"),
            "http://po:5020/registerComponent"
        );
        assert_eq!(
            join_to("http://po:5020/stage7/", "/requestComponent?id=a%20b"),
            "http://po:5020/stage7/requestComponent?id=a%20b"
        );
    }

    #[test]
    fn redacts_only_the_password() {
        assert_eq!(redact_url("amqp://host:5672"), "amqp://host:5672");
        assert_eq!(redact_url("amqp://user@host"), "amqp://user@host");
        assert_eq!(redact_url("amqp://u:p@h/v@x"), "amqp://u:***@h/v@x");
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(percent_encode("brain-1"), "brain-1");
        assert_eq!(percent_encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }
}
