//! Certificates made at test time and the client side of the broker's TLS and WebSocket
//! listeners: a TLS stream, and a WebSocket bridged back to a byte stream, so that
//! [`RawClient::over`](crate::RawClient::over) speaks raw MQTT over either.
//!
//! Keys are generated per test run and written only into the directory a test gives (a
//! temporary one); none is ever stored in the repository.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, SupportedProtocolVersion};
use tern_server::TlsConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{header, HeaderValue};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use crate::DEFAULT_TIMEOUT;

pub use rustls::version::{TLS12, TLS13};

/// A client certificate and its key.
pub struct ClientIdentity {
    chain: Vec<CertificateDer<'static>>,
    key_pkcs8: Vec<u8>,
}

/// A CA, a server certificate for `localhost` and 127.0.0.1 issued by it, and client
/// certificates on demand.
pub struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
    server_cert: String,
    server_key: String,
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
        let key = KeyPair::generate().expect("server key");
        let certificate = params.signed_by(&key, &ca).expect("server certificate");
        Pki { server_cert: certificate.pem() + &ca.pem(), server_key: key.serialize_pem(), ca }
    }

    /// Writes the server certificate chain, its key and (with `client_ca`) the CA into `dir`
    /// and returns listener TLS settings naming them; client certificates are then verified
    /// against this CA.
    pub fn tls_config(&self, dir: &Path, client_ca: bool) -> TlsConfig {
        let write = |name: &str, contents: &str| {
            let path = dir.join(name);
            std::fs::write(&path, contents).expect("write PEM file");
            path
        };
        TlsConfig {
            cert: write("server.pem", &self.server_cert),
            key: write("server.key", &self.server_key),
            client_ca: client_ca.then(|| write("ca.pem", &self.ca.pem())),
            require_client_certificate: false,
            username_from_certificate: None,
        }
    }

    /// A client certificate whose subject Common Name is `common_name`.
    pub fn client(&self, common_name: &str) -> ClientIdentity {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client parameters");
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().expect("client key");
        let certificate = params.signed_by(&key, &self.ca).expect("client certificate");
        ClientIdentity { chain: vec![certificate.der().clone(), self.ca.der().clone()], key_pkcs8: key.serialize_der() }
    }

    /// A TLS client trusting this CA, speaking only `version`, presenting `identity` if any.
    pub fn client_config(
        &self,
        version: &'static SupportedProtocolVersion,
        identity: Option<&ClientIdentity>,
    ) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.der().clone()).expect("CA root");
        let builder = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[version])
            .expect("protocol versions")
            .with_root_certificates(roots);
        let config = match identity {
            Some(identity) => {
                let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(identity.key_pkcs8.clone()));
                builder.with_client_auth_cert(identity.chain.clone(), key).expect("client key")
            }
            None => builder.with_no_client_auth(),
        };
        Arc::new(config)
    }
}

/// Opens a TLS connection to `addr` as `localhost`; the handshake's error, if any, is returned.
pub async fn tls_connect(addr: SocketAddr, config: Arc<ClientConfig>) -> std::io::Result<TlsStream<TcpStream>> {
    let connect = async {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let name = ServerName::try_from("localhost").expect("server name");
        tokio_rustls::TlsConnector::from(config).connect(name, tcp).await
    };
    tokio::time::timeout(DEFAULT_TIMEOUT, connect).await.expect("TLS connect timed out")
}

/// Opens a WebSocket to `uri` (such as `ws://127.0.0.1/mqtt`) over `stream`, offering
/// `subprotocol` if any, and returns it as a byte stream (each write one binary message, reads
/// the payloads of binary messages) with the subprotocol the server chose. A refused opening
/// handshake (a wrong path) is returned as the error.
pub async fn websocket<S>(
    stream: S,
    uri: &str,
    subprotocol: Option<&str>,
) -> Result<(DuplexStream, Option<String>), WsError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut request = uri.into_client_request()?;
    if let Some(subprotocol) = subprotocol {
        let value = HeaderValue::from_str(subprotocol).expect("header value");
        request.headers_mut().insert(header::SEC_WEBSOCKET_PROTOCOL, value);
    }
    let handshake = tokio_tungstenite::client_async(request, stream);
    let (websocket, response) =
        tokio::time::timeout(DEFAULT_TIMEOUT, handshake).await.expect("WebSocket handshake timed out")?;
    let chosen = response
        .headers()
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .map(|value| value.to_str().expect("ASCII subprotocol").to_owned());
    Ok((bridge(websocket), chosen))
}

/// Pumps bytes between a duplex pipe and `websocket` in a task of its own; when either side
/// closes, so does the other, so a client sees the broker's close as the end of its stream.
fn bridge<S>(websocket: WebSocketStream<S>) -> DuplexStream
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        let (mut to_client, mut from_client) = (theirs, vec![0u8; 16 * 1024]);
        let (mut sink, mut messages) = websocket.split();
        loop {
            tokio::select! {
                read = to_client.read(&mut from_client) => match read {
                    Ok(0) | Err(_) => {
                        let _ = sink.close().await;
                        break;
                    }
                    Ok(n) => {
                        if sink.send(Message::binary(from_client[..n].to_vec())).await.is_err() {
                            break;
                        }
                    }
                },
                message = messages.next() => match message {
                    Some(Ok(Message::Binary(data))) => {
                        if to_client.write_all(&data).await.is_err() {
                            break;
                        }
                    }
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                    Some(Ok(_)) => {}
                },
            }
        }
    });
    ours
}
