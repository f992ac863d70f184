//! Test certificates (generated per test run, never stored), PEM files in a scratch directory,
//! TLS clients and a loopback listener whose accepted socket goes through a [`Transport`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, SupportedProtocolVersion};
use tern_transport::{BoxStream, Peer, TlsSettings, Transport, TransportError};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::client::TlsStream;

pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A certificate and its key, both in DER.
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key_pkcs8: Vec<u8>,
}

impl Identity {
    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_pkcs8.clone()))
    }
}

/// A CA, a server certificate for localhost and 127.0.0.1 issued by it, and a way to issue
/// client certificates.
pub struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
    pub server: Identity,
}

impl Pki {
    pub fn new(ca_name: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.distinguished_name.push(DnType::CommonName, ca_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key")).expect("CA certificate");
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).expect("server parameters");
        params.distinguished_name.push(DnType::CommonName, "localhost");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server = issue(&ca, params);
        Pki { ca, server }
    }

    pub fn ca_der(&self) -> CertificateDer<'static> {
        self.ca.der().clone()
    }

    /// A client certificate with `common_name` and the given SANs (DNS names unless they hold
    /// '@' (e-mail) or ':' (URI)).
    pub fn client(&self, common_name: &str, alt_names: &[&str]) -> Identity {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client parameters");
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.subject_alt_names = alt_names
            .iter()
            .map(|name| {
                let ia5 = (*name).try_into().expect("ASCII name");
                if name.contains('@') {
                    SanType::Rfc822Name(ia5)
                } else if name.contains(':') {
                    SanType::URI(ia5)
                } else {
                    SanType::DnsName(ia5)
                }
            })
            .collect();
        issue(&self.ca, params)
    }
}

fn issue(ca: &CertifiedIssuer<'static, KeyPair>, params: CertificateParams) -> Identity {
    let key = KeyPair::generate().expect("key");
    let certificate = params.signed_by(&key, ca).expect("certificate");
    Identity { chain: vec![certificate.der().clone(), ca.der().clone()], key_pkcs8: key.serialize_der() }
}

/// A scratch directory for PEM files, removed on drop.
pub struct Scratch {
    pub dir: PathBuf,
}

impl Scratch {
    pub fn new() -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tern-transport-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        Scratch { dir }
    }

    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, contents).expect("write PEM file");
        path
    }

    /// TLS settings for the PKI's server certificate; with `client_ca`, clients are verified
    /// against the PKI's CA.
    pub fn tls_settings(&self, pki: &Pki, client_ca: bool, require_client_certificate: bool) -> TlsSettings {
        let chain = pki.server.chain.iter().map(|der| pem("CERTIFICATE", der)).collect::<String>();
        TlsSettings {
            cert_chain: self.write("server.pem", &chain),
            private_key: self.write("server.key", &pem("PRIVATE KEY", &pki.server.key_pkcs8)),
            client_ca: client_ca.then(|| self.write("ca.pem", &pem("CERTIFICATE", &pki.ca_der()))),
            require_client_certificate,
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// PEM text of one DER item.
pub fn pem(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut base64 = String::new();
    for chunk in der.chunks(3) {
        let bytes = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let bits = u32::from(bytes[0]) << 16 | u32::from(bytes[1]) << 8 | u32::from(bytes[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                base64.push(char::from(ALPHABET[(bits >> (18 - 6 * i) & 0x3f) as usize]));
            } else {
                base64.push('=');
            }
        }
    }
    let mut text = format!("-----BEGIN {label}-----\n");
    for line in base64.as_bytes().chunks(64) {
        text.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        text.push('\n');
    }
    text.push_str(&format!("-----END {label}-----\n"));
    text
}

/// A TLS client trusting the PKI's CA, speaking only `version`, presenting `identity` if any.
pub fn client_config(
    pki: &Pki,
    version: &'static SupportedProtocolVersion,
    identity: Option<&Identity>,
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(pki.ca_der()).expect("CA root");
    let builder = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[version])
        .expect("protocol versions")
        .with_root_certificates(roots);
    let config = match identity {
        Some(identity) => builder.with_client_auth_cert(identity.chain.clone(), identity.key()).expect("client key"),
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

pub async fn tls_connect(config: Arc<ClientConfig>, addr: SocketAddr) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").expect("server name");
    tokio_rustls::TlsConnector::from(config).connect(name, tcp).await
}

/// A listener on 127.0.0.1 whose first accepted connection is handed to `transport`.
pub async fn serve_once(
    transport: Transport,
    proxy_protocol: bool,
    timeout: Duration,
) -> (SocketAddr, JoinHandle<Result<(BoxStream, Peer), TransportError>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local address");
    let server = tokio::spawn(async move {
        let (tcp, socket_peer) = listener.accept().await?;
        transport.handshake(tcp, socket_peer, proxy_protocol, timeout).await
    });
    (addr, server)
}

/// Awaits `future`, failing the test instead of hanging if it takes more than ten seconds.
pub async fn within<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), future).await.expect("timed out")
}
