//! The byte streams a bench connection runs over: TCP, TLS (`--tls`), WebSocket (`--ws`)
//! and WebSocket over TLS (both). Every one starts as a TCP socket with TCP_NODELAY set,
//! so that batched writes go out at once.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use anyhow::Context as _;
use bytes::Bytes;
use futures_util::{Sink, Stream as _};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use super::args::LoadArgs;

/// A connected byte stream of any transport.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for T {}

/// How to open a connection: made once per run from the flags, shared by every client.
#[derive(Clone)]
pub struct Connector {
    address: SocketAddr,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    /// The WebSocket URL, when `--ws` is given.
    ws_url: Option<String>,
}

impl Connector {
    pub fn new(args: &LoadArgs, address: SocketAddr) -> anyhow::Result<Connector> {
        let tls = if args.tls {
            let config = client_config(args)?;
            let name = ServerName::try_from(args.host.trim_start_matches('[').trim_end_matches(']').to_owned())
                .with_context(|| format!("'{}' is not a valid TLS server name", args.host))?;
            Some((TlsConnector::from(Arc::new(config)), name))
        } else {
            if args.cafile.is_some() || args.insecure {
                anyhow::bail!("--cafile and --insecure need --tls");
            }
            None
        };
        let ws_url = args.ws.then(|| {
            let scheme = if args.tls { "wss" } else { "ws" };
            let path = if args.ws_path.starts_with('/') { args.ws_path.clone() } else { format!("/{}", args.ws_path) };
            format!("{scheme}://{address}{path}")
        });
        Ok(Connector { address, tls, ws_url })
    }

    /// Opens one connection: TCP, then the TLS and WebSocket handshakes asked for.
    pub async fn connect(&self) -> anyhow::Result<Box<dyn Stream>> {
        let address = self.address;
        let tcp = TcpStream::connect(address).await.with_context(|| format!("cannot connect to {address}"))?;
        tcp.set_nodelay(true).context("cannot set TCP_NODELAY")?;
        match &self.tls {
            None => self.websocket(tcp).await,
            Some((connector, name)) => {
                let tls = connector.connect(name.clone(), tcp).await.context("TLS handshake failed")?;
                self.websocket(tls).await
            }
        }
    }

    async fn websocket<S: Stream>(&self, stream: S) -> anyhow::Result<Box<dyn Stream>> {
        let Some(url) = &self.ws_url else { return Ok(Box::new(stream)) };
        let mut request = url.as_str().into_client_request().with_context(|| format!("bad WebSocket URL {url}"))?;
        request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("mqtt"));
        let (websocket, _) =
            tokio_tungstenite::client_async(request, stream).await.context("WebSocket handshake failed")?;
        Ok(Box::new(WsStream { websocket, incoming: Bytes::new(), unflushed: false }))
    }
}

/// The TLS client settings: the roots of `--cafile`, or no verification with `--insecure`.
fn client_config(args: &LoadArgs) -> anyhow::Result<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("no TLS protocol version")?;
    let config = match (&args.cafile, args.insecure) {
        (Some(_), true) => anyhow::bail!("--cafile and --insecure exclude each other"),
        (None, false) => anyhow::bail!("--tls needs --cafile FILE (the broker's CA) or --insecure"),
        (None, true) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth(),
        (Some(path), false) => {
            let mut roots = RootCertStore::empty();
            let certificates = CertificateDer::pem_file_iter(path)
                .with_context(|| format!("cannot read --cafile {}", path.display()))?;
            for certificate in certificates {
                let certificate = certificate.with_context(|| format!("bad certificate in {}", path.display()))?;
                roots.add(certificate).with_context(|| format!("unusable CA certificate in {}", path.display()))?;
            }
            if roots.is_empty() {
                anyhow::bail!("no certificate in --cafile {}", path.display());
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    Ok(config)
}

/// `--insecure`: any server certificate is accepted (signatures are still checked), for
/// loopback tests against a broker with a throwaway certificate.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A client WebSocket as a byte stream: reads yield the payloads of binary messages, each
/// write is sent as one binary message (a whole batch of packets).
struct WsStream<S> {
    websocket: WebSocketStream<S>,
    /// The unread rest of the binary message being read.
    incoming: Bytes,
    /// A message was queued in tungstenite and not yet flushed to the socket.
    unflushed: bool,
}

fn io_error(error: WsError) -> io::Error {
    match error {
        WsError::Io(error) => error,
        WsError::ConnectionClosed | WsError::AlreadyClosed => io::ErrorKind::BrokenPipe.into(),
        other => io::Error::new(io::ErrorKind::InvalidData, other),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsStream<S> {
    /// Pushes queued messages to the socket; the load loops never call flush themselves,
    /// so this also runs on every read and write.
    fn push(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.unflushed {
            ready!(Pin::new(&mut self.websocket).poll_flush(cx)).map_err(io_error)?;
            self.unflushed = false;
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsStream<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        // A pending flush must not stall reading; its waker is registered either way.
        if let Poll::Ready(Err(error)) = this.push(cx) {
            return Poll::Ready(Err(error));
        }
        loop {
            if !this.incoming.is_empty() {
                let n = this.incoming.len().min(buf.remaining());
                buf.put_slice(&this.incoming[..n]);
                this.incoming = this.incoming.slice(n..);
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut this.websocket).poll_next(cx)) {
                Some(Ok(Message::Binary(data))) => this.incoming = data,
                Some(Ok(Message::Text(_))) => {
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, "text WebSocket message")));
                }
                Some(Ok(_)) => {}
                Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) | None => return Poll::Ready(Ok(())),
                Some(Err(error)) => return Poll::Ready(Err(io_error(error))),
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsStream<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let this = &mut *self;
        ready!(this.push(cx))?;
        let mut websocket = Pin::new(&mut this.websocket);
        ready!(websocket.as_mut().poll_ready(cx)).map_err(io_error)?;
        websocket.start_send(Message::Binary(Bytes::copy_from_slice(buf))).map_err(io_error)?;
        this.unflushed = true;
        // Start sending now; what the socket does not take yet goes with the next poll.
        if let Poll::Ready(Err(error)) = this.push(cx) {
            return Poll::Ready(Err(error));
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.push(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.websocket).poll_close(cx).map_err(io_error)
    }
}
