//! TLS (1.2 and 1.3) with rustls and the ring provider: loading the server's certificate chain
//! and key, optional or required client certificates, and the identity of a verified client.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::{CertificateIdentity, TransportError};

/// Where a TLS listener finds its certificates, and whether it asks clients for theirs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM file with the server's certificate, followed by any intermediate certificates.
    pub cert_chain: PathBuf,
    /// PEM file with the server's private key: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
    pub private_key: PathBuf,
    /// PEM file with the CA certificates that client certificates are verified against. Without
    /// it, clients are not asked for a certificate.
    pub client_ca: Option<PathBuf>,
    /// Refuse clients that present no certificate. Needs `client_ca`; when false, a client may
    /// connect without a certificate, but one it presents must still verify.
    pub require_client_certificate: bool,
}

/// A loaded TLS server configuration, cheap to clone and share between connection tasks.
#[derive(Clone)]
pub struct TlsAcceptor {
    acceptor: tokio_rustls::TlsAcceptor,
    client_auth: ClientAuth,
}

/// Whether clients are asked for a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// Clients are not asked for a certificate.
    None,
    /// Clients are asked, may decline, and a certificate they present must verify.
    Optional,
    /// Clients without a verified certificate are refused.
    Required,
}

impl fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsAcceptor").field("client_auth", &self.client_auth).finish_non_exhaustive()
    }
}

impl TlsAcceptor {
    /// Loads the certificate chain, the key and the client CAs named by `settings`.
    pub fn new(settings: &TlsSettings) -> Result<Self, TransportError> {
        // The provider is named rather than taken from the process default, so that another
        // crate enabling a second provider cannot make rustls' choice ambiguous.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain = load_certificates(&settings.cert_chain, "certificate chain")?;
        let key = load_private_key(&settings.private_key)?;
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|error| TransportError::Settings(error.to_string()))?;
        let client_auth = match (&settings.client_ca, settings.require_client_certificate) {
            (None, false) => ClientAuth::None,
            (Some(_), false) => ClientAuth::Optional,
            (_, true) => ClientAuth::Required,
        };
        let builder = match &settings.client_ca {
            Some(path) => {
                builder.with_client_cert_verifier(client_verifier(path, settings.require_client_certificate, provider)?)
            }
            None if settings.require_client_certificate => {
                return Err(TransportError::Settings(
                    "a client certificate is required but no client CA is configured".to_owned(),
                ));
            }
            None => builder.with_no_client_auth(),
        };
        let config = builder.with_single_cert(chain, key).map_err(|error| TransportError::Load {
            what: "certificate chain and private key",
            path: format!("{} and {}", settings.cert_chain.display(), settings.private_key.display()),
            reason: error.to_string(),
        })?;
        Ok(TlsAcceptor { acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)), client_auth })
    }

    /// Whether clients are asked for a certificate.
    pub fn client_auth(&self) -> ClientAuth {
        self.client_auth
    }

    /// The rustls configuration in use.
    pub fn config(&self) -> &Arc<ServerConfig> {
        self.acceptor.config()
    }

    /// Runs the server side of the TLS handshake and returns the stream with the identity of
    /// the client's certificate, if it presented one (it has been verified by then).
    pub(crate) async fn accept<S>(
        &self,
        stream: S,
    ) -> Result<(TlsStream<S>, Option<CertificateIdentity>), TransportError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let stream = self.acceptor.accept(stream).await.map_err(|error| TransportError::Tls(error.to_string()))?;
        let identity = match stream.get_ref().1.peer_certificates().and_then(|chain| chain.first()) {
            Some(leaf) => Some(certificate_identity(leaf)?),
            None => None,
        };
        Ok((stream, identity))
    }
}

fn load_certificates(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TransportError> {
    let load_error = |reason: String| TransportError::Load { what, path: path.display().to_string(), reason };
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|error| load_error(error.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| load_error(error.to_string()))?;
    if certificates.is_empty() {
        return Err(load_error("no PEM certificate found".to_owned()));
    }
    Ok(certificates)
}

fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TransportError> {
    PrivateKeyDer::from_pem_file(path).map_err(|error| TransportError::Load {
        what: "private key",
        path: path.display().to_string(),
        reason: match error {
            rustls_pki_types::pem::Error::NoItemsFound => {
                "no PEM private key (PKCS#8, PKCS#1 or SEC1) found".to_owned()
            }
            other => other.to_string(),
        },
    })
}

fn client_verifier(
    ca_path: &Path,
    required: bool,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TransportError> {
    let load_error = |reason: String| TransportError::Load {
        what: "client CA certificates",
        path: ca_path.display().to_string(),
        reason,
    };
    let mut roots = RootCertStore::empty();
    for certificate in load_certificates(ca_path, "client CA certificates")? {
        roots.add(certificate).map_err(|error| load_error(error.to_string()))?;
    }
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
    let builder = if required { builder } else { builder.allow_unauthenticated() };
    builder.build().map_err(|error| load_error(error.to_string()))
}

/// The subject's Common Name and the DNS, e-mail and URI entries of the Subject Alternative
/// Name extension of a (verified) client certificate.
pub(crate) fn certificate_identity(der: &CertificateDer<'_>) -> Result<CertificateIdentity, TransportError> {
    let unreadable = |error: String| TransportError::Tls(format!("cannot read the client certificate: {error}"));
    let (_, certificate) = X509Certificate::from_der(der.as_ref()).map_err(|error| unreadable(error.to_string()))?;
    let common_name =
        certificate.subject().iter_common_name().next().and_then(|name| name.as_str().ok()).map(str::to_owned);
    let mut subject_alt_names = Vec::new();
    if let Some(extension) = certificate.subject_alternative_name().map_err(|error| unreadable(error.to_string()))? {
        for name in &extension.value.general_names {
            match name {
                GeneralName::DNSName(name) | GeneralName::RFC822Name(name) | GeneralName::URI(name) => {
                    subject_alt_names.push((*name).to_owned());
                }
                _ => {}
            }
        }
    }
    Ok(CertificateIdentity { common_name, subject_alt_names })
}
