//! [`Transport`]: the kinds of listener, and the handshake that turns an accepted TCP socket
//! into a [`BoxStream`] and a [`Peer`].

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;

use crate::proxy::{self, Rewind};
use crate::tls::{TlsAcceptor, TlsSettings};
use crate::{websocket, BoxStream, Peer, TransportError};

/// What a listener speaks on top of TCP.
#[derive(Debug, Clone)]
pub enum Transport {
    /// MQTT straight over TCP.
    Tcp,
    /// MQTT over TLS.
    Tls(TlsAcceptor),
    /// MQTT over WebSocket, served at `path` (conventionally `/mqtt`).
    WebSocket { path: String },
    /// MQTT over WebSocket over TLS.
    WebSocketTls { tls: TlsAcceptor, path: String },
}

impl Transport {
    /// Loads certificates and keys (PEM) for the TLS kinds; errors name the file.
    pub fn tls(settings: &TlsSettings) -> Result<TlsAcceptor, TransportError> {
        TlsAcceptor::new(settings)
    }

    /// Runs in the connection task: the PROXY header when `proxy_protocol` is set, then the TLS
    /// and WebSocket handshakes of this transport, all within `timeout`.
    ///
    /// `socket_peer` is the accepted socket's peer address; it is the client's address unless a
    /// PROXY header names another.
    pub async fn handshake(
        &self,
        tcp: TcpStream,
        socket_peer: SocketAddr,
        proxy_protocol: bool,
        timeout: Duration,
    ) -> Result<(BoxStream, Peer), TransportError> {
        tokio::time::timeout(timeout, self.handshake_untimed(tcp, socket_peer, proxy_protocol))
            .await
            .map_err(|_| TransportError::Timeout)?
    }

    async fn handshake_untimed(
        &self,
        mut tcp: TcpStream,
        socket_peer: SocketAddr,
        proxy_protocol: bool,
    ) -> Result<(BoxStream, Peer), TransportError> {
        let (addr, stream) = if proxy_protocol {
            let (source, rest) = proxy::read_header(&mut tcp).await?;
            tracing::debug!(%socket_peer, source = ?source, "PROXY protocol header");
            (source.unwrap_or(socket_peer), Rewind::new(rest, tcp))
        } else {
            (socket_peer, Rewind::new(Vec::new(), tcp))
        };
        let (stream, certificate): (BoxStream, _) = match self {
            Transport::Tcp => (Box::new(stream), None),
            Transport::Tls(tls) => {
                let (stream, certificate) = tls.accept(stream).await?;
                (Box::new(stream), certificate)
            }
            Transport::WebSocket { path } => (Box::new(websocket::accept(stream, path).await?), None),
            Transport::WebSocketTls { tls, path } => {
                let (stream, certificate) = tls.accept(stream).await?;
                (Box::new(websocket::accept(stream, path).await?), certificate)
            }
        };
        Ok((stream, Peer { addr, certificate }))
    }
}
