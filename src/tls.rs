//! TLS for both paths: which certificate authorities a client trusts
//! ([`CaBundle`]) and the certificate an HTTP endpoint serves
//! ([`TlsIdentity`]).
//!
//! `amqps://` broker URLs and `https://` peers are verified against the
//! system's root certificates (the OS store, as `rustls-native-certs` reads
//! it: `/etc/ssl/certs` on Debian, or `SSL_CERT_FILE`), plus the
//! certificates of a [`CaBundle`] when one is given
//! (`STAGE7_TLS_CA_FILE`): a private CA is trusted *in addition to* the
//! system's. The crypto is rustls with the `ring` provider, chosen
//! explicitly, so another crate enabling rustls's other provider changes
//! nothing here.
//!
//! A handshake that fails — an unknown issuer (the wrong CA), a name the
//! certificate does not cover, an expired certificate, a peer that does not
//! speak TLS — is an error of kind [`Tls`](crate::ErrorKind::Tls), class
//! [`NotDelivered`](crate::ErrorClass::NotDelivered): nothing was sent.
//!
//! ```no_run
//! use stage7_transport::tls::{CaBundle, TlsIdentity};
//!
//! let ca = CaBundle::from_file("/etc/stage7/ca.pem")?;
//! let identity = TlsIdentity::from_files("/etc/stage7/cert.pem", "/etc/stage7/key.pem")?;
//! # Ok::<(), stage7_transport::Error>(())
//! ```

use std::error::Error as StdError;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::error::{Error, Result};

/// Certificate authorities a client trusts beyond the system's roots: a
/// private CA's certificates, in PEM.
///
/// # Clone
///
/// Clones share the certificates.
#[derive(Clone)]
pub struct CaBundle {
    inner: Arc<Bundle>,
}

struct Bundle {
    pem: String,
    certs: Vec<CertificateDer<'static>>,
    client: OnceLock<std::result::Result<ClientConfig, rustls::Error>>,
}

impl CaBundle {
    /// The certificates in `pem` (`-----BEGIN CERTIFICATE-----` blocks;
    /// anything else in it is ignored).
    ///
    /// # Errors
    ///
    /// [`Config`](crate::ErrorKind::Config) when `pem` holds no
    /// certificate or a malformed one.
    pub fn from_pem(pem: impl Into<String>) -> Result<Self> {
        let pem = pem.into();
        let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::config(format!("CA bundle: malformed PEM: {e}")))?;
        if certs.is_empty() {
            return Err(Error::config("CA bundle: no certificate in the PEM"));
        }
        Ok(Self {
            inner: Arc::new(Bundle {
                pem,
                certs,
                client: OnceLock::new(),
            }),
        })
    }

    /// The certificates in the PEM file at `path`.
    ///
    /// # Errors
    ///
    /// [`Config`](crate::ErrorKind::Config) naming the file when it cannot
    /// be read or holds no valid certificate.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let pem = std::fs::read_to_string(path).map_err(|e| {
            Error::config(format!("cannot read CA file {}: {e}", path.display())).with_source(e)
        })?;
        Self::from_pem(pem)
            .map_err(|e| Error::config(format!("CA file {}: {}", path.display(), e.detail())))
    }

    /// Number of certificates.
    pub fn len(&self) -> usize {
        self.inner.certs.len()
    }

    /// Always false: a bundle holds at least one certificate.
    pub fn is_empty(&self) -> bool {
        self.inner.certs.is_empty()
    }

    /// The PEM text, as lapin takes extra roots.
    pub(crate) fn pem(&self) -> &str {
        &self.inner.pem
    }
}

impl fmt::Debug for CaBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaBundle")
            .field("certificates", &self.len())
            .finish()
    }
}

/// The certificate chain and private key an HTTP endpoint serves TLS with.
///
/// # Clone
///
/// Clones share the key.
#[derive(Clone)]
pub struct TlsIdentity {
    config: Arc<ServerConfig>,
}

impl TlsIdentity {
    /// The chain in `cert_pem` (the endpoint's certificate first, then any
    /// intermediates) and the private key in `key_pem` (PKCS#8, PKCS#1 or
    /// SEC1).
    ///
    /// # Errors
    ///
    /// [`Config`](crate::ErrorKind::Config) when either is malformed or
    /// missing, or the key does not match the certificate.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self> {
        let chain = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::config(format!("TLS certificate: malformed PEM: {e}")))?;
        if chain.is_empty() {
            return Err(Error::config("TLS certificate: no certificate in the PEM"));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|e| Error::config(format!("TLS key: no usable private key: {e}")))?;
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::config(format!("TLS: {e}")))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| Error::config(format!("TLS certificate and key: {e}")))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            config: Arc::new(config),
        })
    }

    /// The chain and key in the PEM files at `cert` and `key`.
    ///
    /// # Errors
    ///
    /// [`Config`](crate::ErrorKind::Config) naming the file that cannot be
    /// read, or as [`from_pem`](Self::from_pem).
    pub fn from_files(cert: impl AsRef<Path>, key: impl AsRef<Path>) -> Result<Self> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|e| {
                Error::config(format!("cannot read {}: {e}", path.display())).with_source(e)
            })
        };
        Self::from_pem(&read(cert.as_ref())?, &read(key.as_ref())?)
    }

    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.clone())
    }
}

impl fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsIdentity").finish_non_exhaustive()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The system's root certificates, read once per process. Certificates the
/// store holds but rustls cannot use are skipped, with a warning.
fn system_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for error in &found.errors {
            tracing::warn!(%error, "TLS: could not read some system root certificates");
        }
        let mut roots = RootCertStore::empty();
        let (_, ignored) = roots.add_parsable_certificates(found.certs);
        if ignored > 0 {
            tracing::debug!(ignored, "TLS: skipped unusable system root certificates");
        }
        if roots.is_empty() {
            tracing::warn!(
                "TLS: no system root certificates found (install ca-certificates, or set \
                 STAGE7_TLS_CA_FILE); only a configured CA bundle is trusted"
            );
        }
        roots
    })
}

/// A client configuration trusting the system's roots and `extra`'s; built
/// once per bundle (and once for none), cloned for each client.
///
/// # Errors
///
/// [`Config`](crate::ErrorKind::Config) if rustls refuses the settings,
/// which ring's provider never makes it do.
pub(crate) fn client_config(extra: Option<&CaBundle>) -> Result<ClientConfig> {
    type Built = std::result::Result<ClientConfig, rustls::Error>;
    let build = |extra: &[CertificateDer<'static>]| -> Built {
        let mut roots = system_roots().clone();
        roots.add_parsable_certificates(extra.iter().cloned());
        Ok(ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth())
    };
    static SYSTEM_ONLY: OnceLock<Built> = OnceLock::new();
    let built = match extra {
        None => SYSTEM_ONLY.get_or_init(|| build(&[])),
        Some(bundle) => bundle
            .inner
            .client
            .get_or_init(|| build(&bundle.inner.certs)),
    };
    built
        .clone()
        .map_err(|e| Error::config(format!("TLS client settings: {e}")))
}

/// The TLS failure somewhere in `error`'s chain of causes, if any:
/// rustls's own error, or one an I/O error wraps (an I/O error's `source`
/// skips the error it wraps, so the chain goes through `get_ref`).
pub(crate) fn tls_cause<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        current = match error.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|inner| inner as &(dyn StdError + 'static)),
            None => error.source(),
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_causes_are_found_through_io_errors() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let wrapped = std::io::Error::other(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            tls.clone(),
        ));
        assert_eq!(tls_cause(&wrapped), Some(&tls));
        assert_eq!(tls_cause(&std::io::Error::other("refused")), None);
    }

    #[test]
    fn bundles_and_identities_refuse_bad_pem() {
        let error = CaBundle::from_pem("not a certificate").unwrap_err();
        assert!(error.is_config());
        assert!(error.to_string().contains("no certificate"), "{error}");
        let error = CaBundle::from_file("/nonexistent/ca.pem").unwrap_err();
        assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
        let error = TlsIdentity::from_pem(b"", b"").unwrap_err();
        assert!(error.to_string().contains("no certificate"), "{error}");
    }

    #[test]
    fn a_generated_identity_and_its_ca_load() {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = params.self_signed(&ca_key).unwrap();
        let bundle = CaBundle::from_pem(ca.pem()).unwrap();
        assert_eq!(bundle.len(), 1);
        let key = rcgen::KeyPair::generate().unwrap();
        let issuer = rcgen::Issuer::new(params, ca_key);
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        TlsIdentity::from_pem(cert.pem().as_bytes(), key.serialize_pem().as_bytes()).unwrap();
        let other = rcgen::KeyPair::generate().unwrap();
        let error = TlsIdentity::from_pem(cert.pem().as_bytes(), other.serialize_pem().as_bytes())
            .unwrap_err();
        assert!(error.is_config(), "{error}");
    }
}
