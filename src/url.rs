//! URL helpers every part shares: base URLs of HTTP peers, paths joined to
//! them, percent-encoding, URLs made safe to log, and the hosts a bearer
//! token may go to.

use std::net::IpAddr;

use http::Uri;
use http::uri::{Authority, PathAndQuery, Scheme};

use crate::error::{Error, Result};

/// `url` with any password replaced by `***`, for logs.
///
/// The password is everything from the first `:` after the scheme to the
/// last `@`, so a password holding an unencoded `/`, `?`, `#`, `:` or `@`
/// is hidden whole. A URL whose path or query holds both a `:` and an `@`
/// loses the text between them too: in a string that is not a valid URL,
/// the two readings cannot be told apart, and hiding too much is the safe
/// one.
///
/// ```
/// use stage7_transport::url::redact_url;
///
/// assert_eq!(redact_url("amqp://user:pw@host:5672/%2f"), "amqp://user:***@host:5672/%2f");
/// assert_eq!(redact_url("amqp://user:p/w?#@host/%2f"), "amqp://user:***@host/%2f");
/// assert_eq!(redact_url("http://host:5070/path"), "http://host:5070/path");
/// ```
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    match (rest.find(':'), rest.rfind('@')) {
        (Some(colon), Some(at)) if colon < at => format!(
            "{}{}:***{}",
            &url[..scheme_end],
            &rest[..colon],
            &rest[at..]
        ),
        _ => url.to_owned(),
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

/// Parses a base URL: `http[s]://host[:port][/prefix]`, trailing `/`
/// ignored.
pub(crate) fn parse_base(url: &str) -> Result<Uri> {
    let trimmed = url.trim().trim_end_matches('/');
    let shown = || redact_url(trimmed);
    let uri: Uri = trimmed
        .parse()
        .map_err(|e| Error::config(format!("`{}` is not a URL: {e}", shown())))?;
    let web = uri.scheme() == Some(&Scheme::HTTP) || uri.scheme() == Some(&Scheme::HTTPS);
    if !web || uri.authority().is_none() {
        return Err(Error::config(format!(
            "`{}` is not an http://host:port or https://host:port URL",
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

/// A host a bearer token may go to: `host` (any port) or `host:port`;
/// names match without case, IPv6 addresses are written in brackets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostPattern {
    host: String,
    port: Option<u16>,
}

impl HostPattern {
    /// Parses `host` or `host:port`.
    ///
    /// # Errors
    ///
    /// [`Config`](crate::ErrorKind::Config) for anything else: a URL, a
    /// port that is not a number, credentials.
    pub(crate) fn parse(text: &str) -> Result<Self> {
        let invalid = || Error::config(format!("`{text}` is not a host or host:port"));
        let authority: Authority = text.trim().parse().map_err(|_| invalid())?;
        let after_host = &authority.as_str()[authority.host().len()..];
        let bad_port = !after_host.is_empty() && authority.port_u16().is_none();
        if authority.as_str().contains('@') || authority.host().is_empty() || bad_port {
            return Err(invalid());
        }
        Ok(Self {
            host: authority.host().to_ascii_lowercase(),
            port: authority.port_u16(),
        })
    }

    /// The host and port `uri` reaches, the scheme's port when it names
    /// none.
    pub(crate) fn of(uri: &Uri) -> Option<Self> {
        Some(Self {
            host: uri.host()?.to_ascii_lowercase(),
            port: effective_port(uri),
        })
    }

    /// Whether `uri` reaches this host (and port, when one is given).
    pub(crate) fn matches(&self, uri: &Uri) -> bool {
        uri.host()
            .is_some_and(|host| host.eq_ignore_ascii_case(&self.host))
            && self
                .port
                .is_none_or(|port| effective_port(uri) == Some(port))
    }
}

/// The port `uri` reaches: its own, or its scheme's.
fn effective_port(uri: &Uri) -> Option<u16> {
    uri.port_u16().or(match uri.scheme_str() {
        Some("http") => Some(80),
        Some("https") => Some(443),
        _ => None,
    })
}

/// Whether `host` (as a URI writes it) is this machine by definition: the
/// name `localhost`, or an address of the loopback range (`127.0.0.0/8`,
/// `[::1]`, IPv4-mapped loopback). Other names are not resolved: what a
/// name points to can change after the check.
pub(crate) fn is_loopback(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let literal = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    match literal.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.is_loopback(),
        Ok(IpAddr::V6(v6)) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns_match_host_and_port() {
        let uri = |text: &str| text.parse::<Uri>().unwrap();
        let any_port = HostPattern::parse("Brain").unwrap();
        assert!(any_port.matches(&uri("http://brain:5070")));
        assert!(any_port.matches(&uri("https://BRAIN")));
        assert!(!any_port.matches(&uri("http://brain.evil:5070")));
        let one_port = HostPattern::parse("brain:5070").unwrap();
        assert!(one_port.matches(&uri("http://brain:5070/x")));
        assert!(!one_port.matches(&uri("http://brain:5071")));
        assert!(
            HostPattern::parse("brain:80")
                .unwrap()
                .matches(&uri("http://brain"))
        );
        assert!(
            HostPattern::parse("brain:443")
                .unwrap()
                .matches(&uri("https://brain"))
        );
        let of = HostPattern::of(&uri("https://po")).unwrap();
        assert_eq!(of, HostPattern::parse("po:443").unwrap());
        let v6 = HostPattern::parse("[::1]:80").unwrap();
        assert!(v6.matches(&uri("http://[::1]")));
        for bad in ["", "http://brain", "brain:port", "u:p@brain", "brain/x"] {
            assert!(HostPattern::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn loopback_hosts() {
        for host in [
            "localhost",
            "LOCALHOST",
            "127.0.0.1",
            "127.1.2.3",
            "[::1]",
            "[::ffff:127.0.0.1]",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "192.0.2.2",
            "0.0.0.0",
            "[::]",
            "localhost.evil",
            "brain",
            "[fd00::2]",
            "127.0.0.1.nip.io",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }

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
        assert_eq!(
            redact_url("amqp://user@host:5672/v"),
            "amqp://user@host:5672/v"
        );
        assert_eq!(redact_url("amqp://u:p@h/%2f"), "amqp://u:***@h/%2f");
        assert_eq!(redact_url("amqp://:p@h"), "amqp://:***@h");
        // Ambiguous: the password may be `p@h/v`; hidden with the rest.
        assert_eq!(redact_url("amqp://u:p@h/v@x"), "amqp://u:***@x");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]

        /// Whatever the password holds, it never shows; a URL whose path
        /// has no `@` keeps everything else.
        #[test]
        fn the_password_never_shows(
            scheme in "(amqp|amqps|http|https)",
            user in "[a-z0-9._~%-]{0,8}",
            password in "[A-Z][ -~]{0,24}",
            host in "[a-z][a-z0-9.-]{0,12}",
            port in proptest::option::of(1u16..),
            path in "(/[a-z0-9%._~!$&'()*+,;=:/?#-]{0,16})?",
        ) {
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            let url = format!("{scheme}://{user}:{password}@{host}{port}{path}");
            let shown = redact_url(&url);
            proptest::prop_assert!(!shown.contains(&password), "{url} -> {shown}");
            proptest::prop_assert_eq!(shown, format!("{scheme}://{user}:***@{host}{port}{path}"));
        }
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(percent_encode("brain-1"), "brain-1");
        assert_eq!(percent_encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }
}
