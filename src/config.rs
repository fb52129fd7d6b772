//! Settings from the environment or an env file; secrets never printed.
//!
//! The variable names are the TypeScript services' (docs/ARCHITECTURE.md, wire format) plus a few of
//! our own:
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `RABBITMQ_URL` | broker URL | built from the next five |
//! | `RABBITMQ_HOST` / `RABBITMQ_PORT` | broker host and port | `127.0.0.1` / `5672` |
//! | `RABBITMQ_DEFAULT_USER` / `_PASS` / `_VHOST` | broker credentials and vhost | `guest` / `guest` / `/` |
//! | `POSTOFFICE_URL` | PostOffice base URL, for registry lookups | none |
//! | `{NAME}_URL` | static HTTP route for recipient `name` (e.g. `BRAIN_URL`) | none |
//! | `STAGE7_HTTP_TOKEN` | bearer token for HTTP calls and the endpoint | none |
//! | `STAGE7_HTTP_LISTEN` | where an entity's HTTP endpoint listens, `host:port` | `127.0.0.1:0` |
//! | `STAGE7_HTTP_ADVERTISE` | the base URL peers reach that endpoint at | from the listen address |
//! | `STAGE7_HTTP_TOKENS` | more tokens the endpoint accepts, comma-separated (rotation) | none |
//! | `STAGE7_HTTP_TOKEN_HOSTS` | more hosts the token may go to, comma-separated `host` or `host:port` | none |
//! | `STAGE7_ALLOW_PLAINTEXT_TOKEN` | `1`: send the token over plain `http://` to other hosts than loopback | `0` |
//! | `STAGE7_TLS_CA_FILE` | PEM file of CA certificates trusted besides the system's, for `amqps://` and `https://` | none |
//! | `STAGE7_TLS_CERT_FILE` / `_KEY_FILE` | PEM certificate chain and private key: the endpoint serves `https://` | none |
//! | `STAGE7_DEADLINE_MS` | overall budget of a call | 30000 |
//! | `STAGE7_ATTEMPT_TIMEOUT_MS` | timeout of one attempt | 10000 |
//! | `STAGE7_MAX_MESSAGE_BYTES` | largest encoded message | 1048576 |
//!
//! The bearer token goes only to the hosts of the configuration — those of
//! the `{NAME}_URL` routes, `POSTOFFICE_URL` and `STAGE7_HTTP_TOKEN_HOSTS`
//! — and only over `https://` or to loopback, unless
//! `STAGE7_ALLOW_PLAINTEXT_TOKEN=1`; see
//! [`HttpTransportBuilder::token`](crate::http::HttpTransportBuilder::token).
//! A URL the PostOffice returns for another host is called without it.
//!
//! ```
//! use stage7_transport::Config;
//!
//! let config = Config::from_vars([
//!     ("RABBITMQ_URL", "amqp://svc:s3cret@rabbit:5672/%2f"),
//!     ("BRAIN_URL", "http://brain:5070"),
//! ])?;
//! assert_eq!(config.http_routes["brain"], "http://brain:5070");
//! assert!(!format!("{config:?}").contains("s3cret"));
//! # Ok::<(), stage7_transport::Error>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use crate::defaults;
use crate::error::{Error, Result};
use crate::secret::Secret;
use crate::tls::{CaBundle, TlsIdentity};
use crate::url::{HostPattern, parse_base, percent_encode, redact_url};

const KNOWN_URLS: &[&str] = &["RABBITMQ_URL", "POSTOFFICE_URL"];

/// Where to find the broker and peers, and the stack's main budgets.
#[derive(Clone)]
#[non_exhaustive]
pub struct Config {
    /// The broker URL, credentials included.
    pub rabbitmq_url: Secret,
    /// The PostOffice's base URL.
    pub postoffice_url: Option<String>,
    /// Static HTTP routes: lowercased `{NAME}` of `{NAME}_URL` → base URL.
    pub http_routes: BTreeMap<String, String>,
    /// Bearer token for HTTP calls and the HTTP endpoint.
    pub http_token: Option<Secret>,
    /// Where an entity's HTTP endpoint listens (`host:port`), unless its
    /// builder says; see [`EntityBuilder::listen`](crate::EntityBuilder::listen).
    pub http_listen: Option<String>,
    /// The base URL peers use to reach an entity's endpoint, unless its
    /// builder says; see
    /// [`EntityBuilder::advertise`](crate::EntityBuilder::advertise).
    pub http_advertise: Option<String>,
    /// More tokens the HTTP endpoint accepts besides
    /// [`http_token`](Self::http_token): the old or new ones while rotating.
    pub http_accepted_tokens: Vec<Secret>,
    /// Hosts (`host` or `host:port`) the token may go to besides those of
    /// the routes and the PostOffice.
    pub http_token_hosts: Vec<String>,
    /// Whether the token may cross plain `http://` to a host that is not
    /// loopback.
    pub allow_plaintext_token: bool,
    /// CA certificates trusted besides the system's, for `amqps://` and
    /// `https://`.
    pub tls_ca: Option<CaBundle>,
    /// The certificate and key the HTTP endpoint serves `https://` with.
    pub tls_identity: Option<TlsIdentity>,
    /// Overall budget of a call.
    pub deadline: Duration,
    /// Timeout of one attempt.
    pub attempt_timeout: Duration,
    /// Largest encoded message, in bytes.
    pub max_message_size: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            rabbitmq_url: Secret::new(defaults::RABBITMQ_URL),
            postoffice_url: None,
            http_routes: BTreeMap::new(),
            http_token: None,
            http_listen: None,
            http_advertise: None,
            http_accepted_tokens: Vec::new(),
            http_token_hosts: Vec::new(),
            allow_plaintext_token: false,
            tls_ca: None,
            tls_identity: None,
            deadline: defaults::CALL_DEADLINE,
            attempt_timeout: defaults::ATTEMPT_TIMEOUT,
            max_message_size: defaults::MAX_MESSAGE_SIZE,
        }
    }
}

impl Config {
    /// Reads the process environment.
    ///
    /// # Errors
    ///
    /// [`Config`](crate::ErrorKind::Config) naming a variable whose value
    /// cannot be used.
    pub fn from_env() -> Result<Self> {
        Self::from_vars(std::env::vars())
    }

    /// Reads a file of `NAME=value` lines (`#` comments, optional quotes), as
    /// docker-compose `.env` files are written.
    ///
    /// # Errors
    ///
    /// [`Config`](crate::ErrorKind::Config) when the file cannot be read or
    /// a line or value is invalid.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::config(format!("cannot read {}: {e}", path.display())).with_source(e)
        })?;
        let mut vars = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let line = line.strip_prefix("export ").unwrap_or(line);
            let Some((name, value)) = line.split_once('=') else {
                return Err(Error::config(format!(
                    "{}:{}: expected NAME=value",
                    path.display(),
                    number + 1
                )));
            };
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(value);
            vars.push((name.trim().to_owned(), value.to_owned()));
        }
        Self::from_vars(vars)
    }

    /// Reads `NAME=value` pairs; what [`from_env`](Self::from_env) and
    /// [`from_file`](Self::from_file) share.
    ///
    /// # Errors
    ///
    /// [`Config`](crate::ErrorKind::Config) naming a variable whose value
    /// cannot be used.
    pub fn from_vars<K, V>(vars: impl IntoIterator<Item = (K, V)>) -> Result<Self>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let vars: BTreeMap<String, String> = vars
            .into_iter()
            .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned()))
            .collect();
        let get = |name: &str| vars.get(name).map(String::as_str).filter(|v| !v.is_empty());
        let rabbitmq_url = Secret::new(match get("RABBITMQ_URL") {
            Some(url) => url.to_owned(),
            None => {
                let user = get("RABBITMQ_DEFAULT_USER").unwrap_or("guest");
                let pass = get("RABBITMQ_DEFAULT_PASS").unwrap_or("guest");
                let vhost = get("RABBITMQ_DEFAULT_VHOST").unwrap_or("/");
                let host = get("RABBITMQ_HOST").unwrap_or("127.0.0.1");
                if host.contains(['/', '@', '?', '#']) || host.chars().any(char::is_whitespace) {
                    return Err(Error::config(format!(
                        "RABBITMQ_HOST must be a host name or address, got `{host}`"
                    )));
                }
                let host = if host.contains(':') && !host.starts_with('[') {
                    format!("[{host}]")
                } else {
                    host.to_owned()
                };
                let port = match get("RABBITMQ_PORT") {
                    Some(port) => port
                        .trim()
                        .parse::<u16>()
                        .ok()
                        .filter(|p| *p > 0)
                        .ok_or_else(|| {
                            Error::config(format!(
                                "RABBITMQ_PORT must be a port number (1 to 65535), got `{port}`"
                            ))
                        })?,
                    None => 5672,
                };
                format!(
                    "amqp://{}:{}@{host}:{port}/{}",
                    percent_encode(user),
                    percent_encode(pass),
                    percent_encode(vhost)
                )
            }
        });
        if !["amqp://", "amqps://"]
            .iter()
            .any(|scheme| rabbitmq_url.expose().starts_with(scheme))
        {
            return Err(Error::config(format!(
                "RABBITMQ_URL must start with amqp:// or amqps://, got {}",
                redact_url(rabbitmq_url.expose())
            )));
        }
        let defaults = Self::default();
        let millis = |name: &str, default: Duration| {
            number(get(name), name).map(|ms| ms.map_or(default, Duration::from_millis))
        };
        let max_message_size =
            match number(get("STAGE7_MAX_MESSAGE_BYTES"), "STAGE7_MAX_MESSAGE_BYTES")? {
                Some(bytes) => usize::try_from(bytes)
                    .map_err(|_| Error::config("STAGE7_MAX_MESSAGE_BYTES is too large"))?,
                None => defaults.max_message_size,
            };
        let http_routes = vars
            .iter()
            .filter_map(|(name, value)| {
                let prefix = name.strip_suffix("_URL")?;
                let candidate = !KNOWN_URLS.contains(&name.as_str()) && !prefix.is_empty();
                // Other programs' `*_URL` variables (https, databases,
                // credentials in the URL) are not routes; they are skipped,
                // never fatal.
                let route = candidate && parse_base(value).is_ok();
                if candidate && !route {
                    tracing::debug!(
                        variable = name.as_str(),
                        "not an HTTP route: needs http[s]://host[:port] without credentials"
                    );
                }
                route.then(|| {
                    (
                        prefix.to_ascii_lowercase(),
                        value.trim_end_matches('/').to_owned(),
                    )
                })
            })
            .collect();
        Ok(Self {
            rabbitmq_url,
            postoffice_url: get("POSTOFFICE_URL").map(|url| url.trim_end_matches('/').to_owned()),
            http_routes,
            http_token: get("STAGE7_HTTP_TOKEN").map(Secret::new),
            http_listen: get("STAGE7_HTTP_LISTEN").map(listen_address).transpose()?,
            http_advertise: get("STAGE7_HTTP_ADVERTISE")
                .map(advertised_url)
                .transpose()?,
            http_accepted_tokens: list(get("STAGE7_HTTP_TOKENS")).map(Secret::new).collect(),
            http_token_hosts: list(get("STAGE7_HTTP_TOKEN_HOSTS"))
                .map(|host| {
                    HostPattern::parse(host)
                        .map(|_| host.to_owned())
                        .map_err(|e| {
                            Error::config(format!("STAGE7_HTTP_TOKEN_HOSTS: {}", e.detail()))
                        })
                })
                .collect::<Result<_>>()?,
            allow_plaintext_token: flag(
                get("STAGE7_ALLOW_PLAINTEXT_TOKEN"),
                "STAGE7_ALLOW_PLAINTEXT_TOKEN",
            )?,
            tls_ca: get("STAGE7_TLS_CA_FILE")
                .map(|path| {
                    CaBundle::from_file(path)
                        .map_err(|e| Error::config(format!("STAGE7_TLS_CA_FILE: {}", e.detail())))
                })
                .transpose()?,
            tls_identity: match (get("STAGE7_TLS_CERT_FILE"), get("STAGE7_TLS_KEY_FILE")) {
                (Some(cert), Some(key)) => {
                    Some(TlsIdentity::from_files(cert, key).map_err(|e| {
                        Error::config(format!(
                            "STAGE7_TLS_CERT_FILE / STAGE7_TLS_KEY_FILE: {}",
                            e.detail()
                        ))
                    })?)
                }
                (None, None) => None,
                _ => {
                    return Err(Error::config(
                        "STAGE7_TLS_CERT_FILE and STAGE7_TLS_KEY_FILE go together: set both or neither",
                    ));
                }
            },
            deadline: millis("STAGE7_DEADLINE_MS", defaults.deadline)?,
            attempt_timeout: millis("STAGE7_ATTEMPT_TIMEOUT_MS", defaults.attempt_timeout)?,
            max_message_size,
        })
    }
}

/// `STAGE7_HTTP_LISTEN`: `host:port`, the port a number (0 for any free one).
fn listen_address(value: &str) -> Result<String> {
    let value = value.trim();
    match value.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
            Ok(value.to_owned())
        }
        _ => Err(Error::config(format!(
            "STAGE7_HTTP_LISTEN must be host:port (e.g. 0.0.0.0:5070), got `{value}`"
        ))),
    }
}

/// The non-empty items of a comma-separated list.
fn list(value: Option<&str>) -> impl Iterator<Item = &str> {
    value
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

/// `1`/`true`/`yes` or `0`/`false`/`no`; unset is false.
fn flag(value: Option<&str>, name: &str) -> Result<bool> {
    match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None | Some("0" | "false" | "no") => Ok(false),
        Some("1" | "true" | "yes") => Ok(true),
        Some(other) => Err(Error::config(format!(
            "{name} must be 1 or 0 (true/false, yes/no), got `{other}`"
        ))),
    }
}

/// `STAGE7_HTTP_ADVERTISE`: an `http://` or `https://` URL with a host.
fn advertised_url(value: &str) -> Result<String> {
    let value = value.trim().trim_end_matches('/');
    let usable = value
        .parse::<http::Uri>()
        .ok()
        .filter(|uri| matches!(uri.scheme_str(), Some("http" | "https")))
        .is_some_and(|uri| uri.host().is_some_and(|host| !host.is_empty()));
    if usable {
        Ok(value.to_owned())
    } else {
        Err(Error::config(format!(
            "STAGE7_HTTP_ADVERTISE must be a base URL such as http://brain:5070, got `{}`",
            redact_url(value)
        )))
    }
}

fn number(value: Option<&str>, name: &str) -> Result<Option<u64>> {
    value
        .map(|v| {
            v.trim()
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    Error::config(format!("{name} must be a positive whole number, got `{v}`"))
                })
        })
        .transpose()
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("rabbitmq_url", &redact_url(self.rabbitmq_url.expose()))
            .field(
                "postoffice_url",
                &self.postoffice_url.as_deref().map(redact_url),
            )
            .field("http_routes", &self.http_routes)
            .field("http_token", &self.http_token)
            .field("http_listen", &self.http_listen)
            .field(
                "http_advertise",
                &self.http_advertise.as_deref().map(redact_url),
            )
            .field("http_accepted_tokens", &self.http_accepted_tokens)
            .field("http_token_hosts", &self.http_token_hosts)
            .field("allow_plaintext_token", &self.allow_plaintext_token)
            .field("tls_ca", &self.tls_ca)
            .field("tls_identity", &self.tls_identity.is_some())
            .field("deadline", &self.deadline)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("max_message_size", &self.max_message_size)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_url_from_seed_variables() {
        let config = Config::from_vars([
            ("RABBITMQ_DEFAULT_USER", "stage7"),
            ("RABBITMQ_DEFAULT_PASS", "p@ss/word"),
            ("RABBITMQ_DEFAULT_VHOST", "/"),
        ])
        .unwrap();
        assert_eq!(
            config.rabbitmq_url.expose(),
            "amqp://stage7:p%40ss%2Fword@127.0.0.1:5672/%2F"
        );
        let shown = format!("{config:?}");
        assert!(!shown.contains("p%40ss"), "{shown}");
        assert!(shown.contains("stage7:***@127.0.0.1"), "{shown}");
    }

    #[test]
    fn the_composed_url_takes_the_brokers_host_and_port() {
        let config = Config::from_vars([
            ("RABBITMQ_HOST", "rabbitmq"),
            ("RABBITMQ_PORT", "5673"),
            ("RABBITMQ_DEFAULT_USER", "stage7"),
            ("RABBITMQ_DEFAULT_PASS", "stage7password"),
        ])
        .unwrap();
        assert_eq!(
            config.rabbitmq_url.expose(),
            "amqp://stage7:stage7password@rabbitmq:5673/%2F"
        );
        let config = Config::from_vars([("RABBITMQ_HOST", "fd00::5")]).unwrap();
        assert_eq!(
            config.rabbitmq_url.expose(),
            "amqp://guest:guest@[fd00::5]:5672/%2F"
        );
        // RABBITMQ_URL, when given, wins.
        let config = Config::from_vars([
            ("RABBITMQ_URL", "amqp://a:b@h:1/%2f"),
            ("RABBITMQ_HOST", "rabbitmq"),
        ])
        .unwrap();
        assert_eq!(config.rabbitmq_url.expose(), "amqp://a:b@h:1/%2f");
        for (name, value) in [
            ("RABBITMQ_PORT", "0"),
            ("RABBITMQ_PORT", "70000"),
            ("RABBITMQ_PORT", "amqp"),
            ("RABBITMQ_HOST", "user@rabbitmq"),
            ("RABBITMQ_HOST", "rabbit mq"),
        ] {
            let error = Config::from_vars([(name, value)]).unwrap_err();
            assert!(error.is_config(), "{error}");
            assert!(error.to_string().contains(name), "{error}");
        }
    }

    #[test]
    fn listen_and_advertise_are_read_and_checked() {
        let config = Config::from_vars([
            ("STAGE7_HTTP_LISTEN", "0.0.0.0:5070"),
            ("STAGE7_HTTP_ADVERTISE", "http://brain-1.stage7:5070/"),
        ])
        .unwrap();
        assert_eq!(config.http_listen.as_deref(), Some("0.0.0.0:5070"));
        assert_eq!(
            config.http_advertise.as_deref(),
            Some("http://brain-1.stage7:5070")
        );
        let config = Config::from_vars([("STAGE7_HTTP_LISTEN", "[::]:0")]).unwrap();
        assert_eq!(config.http_listen.as_deref(), Some("[::]:0"));
        assert_eq!(Config::default().http_listen, None);
        for (name, value) in [
            ("STAGE7_HTTP_LISTEN", "5070"),
            ("STAGE7_HTTP_LISTEN", ":5070"),
            ("STAGE7_HTTP_LISTEN", "0.0.0.0:http"),
            ("STAGE7_HTTP_ADVERTISE", "brain:5070"),
            ("STAGE7_HTTP_ADVERTISE", "ftp://brain"),
            ("STAGE7_HTTP_ADVERTISE", "http://"),
        ] {
            let error = Config::from_vars([(name, value)]).unwrap_err();
            assert!(error.is_config(), "{value}: {error}");
            assert!(error.to_string().contains(name), "{error}");
        }
    }

    #[test]
    fn token_is_redacted_and_numbers_checked() {
        let config = Config::from_vars([
            ("STAGE7_HTTP_TOKEN", "tok-123"),
            ("STAGE7_DEADLINE_MS", "1500"),
        ])
        .unwrap();
        assert_eq!(config.deadline, Duration::from_millis(1500));
        assert!(!format!("{config:?}").contains("tok-123"));
        let error = Config::from_vars([("STAGE7_DEADLINE_MS", "soon")]).unwrap_err();
        assert!(error.is_config());
        assert!(error.to_string().contains("STAGE7_DEADLINE_MS"), "{error}");
        let error = Config::from_vars([("RABBITMQ_URL", "http://x:secret@y")]).unwrap_err();
        assert!(!error.to_string().contains("secret"), "{error}");
    }

    #[test]
    fn env_file_lines() {
        let dir = std::env::temp_dir().join(format!("stage7-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(".env");
        std::fs::write(
            &path,
            "# comment\nexport RABBITMQ_URL=\"amqp://a:b@h:5672/%2f\"\nLIBRARIAN_URL='http://lib:5040/'\n",
        )
        .unwrap();
        let config = Config::from_file(&path).unwrap();
        assert_eq!(config.rabbitmq_url.expose(), "amqp://a:b@h:5672/%2f");
        assert_eq!(config.http_routes["librarian"], "http://lib:5040");
        std::fs::write(&path, "NOT A PAIR\n").unwrap();
        let error = Config::from_file(&path).unwrap_err();
        assert!(
            error.to_string().contains(":1: expected NAME=value"),
            "{error}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_plain_http_bases_become_routes() {
        let config = Config::from_vars([
            ("BRAIN_URL", "http://brain:5070"),
            ("GITHUB_SERVER_URL", "https://github.com"),
            ("FTP_URL", "ftp://files"),
            ("DATABASE_URL", "postgres://u:p@db/x"),
            ("SECRET_URL", "http://user:pw@host"),
            ("QUERY_URL", "http://host/?q=1"),
            ("SPACE_URL", "http://a b"),
        ])
        .unwrap();
        assert_eq!(config.http_routes.len(), 2);
        assert_eq!(config.http_routes["brain"], "http://brain:5070");
        assert_eq!(config.http_routes["github_server"], "https://github.com");
        for url in config.http_routes.values() {
            parse_base(url).expect("every route the config keeps is a valid base");
        }
        let config = Config::from_vars([("RABBITMQ_URL", "amqps://h")]).unwrap();
        assert_eq!(config.rabbitmq_url.expose(), "amqps://h");
        let error = Config::from_vars([("RABBITMQ_URL", "ftp://h")]).unwrap_err();
        assert!(error.to_string().contains("amqp:// or amqps://"), "{error}");
    }

    #[test]
    fn token_settings() {
        let config = Config::from_vars([
            ("STAGE7_HTTP_TOKENS", " old-1 ,, new-2 "),
            ("STAGE7_HTTP_TOKEN_HOSTS", "brain, librarian:5040 ,[::1]:80"),
            ("STAGE7_ALLOW_PLAINTEXT_TOKEN", "1"),
        ])
        .unwrap();
        let accepted: Vec<_> = config
            .http_accepted_tokens
            .iter()
            .map(Secret::expose)
            .collect();
        assert_eq!(accepted, ["old-1", "new-2"]);
        assert_eq!(
            config.http_token_hosts,
            ["brain", "librarian:5040", "[::1]:80"]
        );
        assert!(config.allow_plaintext_token);
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("old-1") && !shown.contains("new-2"),
            "{shown}"
        );
        assert!(!Config::default().allow_plaintext_token);
        for (name, value) in [
            ("STAGE7_ALLOW_PLAINTEXT_TOKEN", "maybe"),
            ("STAGE7_HTTP_TOKEN_HOSTS", "http://brain"),
            ("STAGE7_HTTP_TOKEN_HOSTS", "brain:port"),
        ] {
            let error = Config::from_vars([(name, value)]).unwrap_err();
            assert!(error.is_config());
            assert!(error.to_string().contains(name), "{error}");
        }
    }

    #[test]
    fn tls_files_are_read_and_checked() {
        let error = Config::from_vars([("STAGE7_TLS_CA_FILE", "/nonexistent/ca.pem")]).unwrap_err();
        assert!(error.to_string().contains("STAGE7_TLS_CA_FILE"), "{error}");
        assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
        let error = Config::from_vars([("STAGE7_TLS_CERT_FILE", "/x/cert.pem")]).unwrap_err();
        assert!(error.to_string().contains("set both or neither"), "{error}");
        let error = Config::from_vars([
            ("STAGE7_TLS_CERT_FILE", "/nonexistent/cert.pem"),
            ("STAGE7_TLS_KEY_FILE", "/nonexistent/key.pem"),
        ])
        .unwrap_err();
        assert!(
            error.to_string().contains("/nonexistent/cert.pem"),
            "{error}"
        );
    }
}
