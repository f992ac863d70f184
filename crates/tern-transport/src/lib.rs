//! Transports: what turns an accepted TCP socket into a byte stream that carries MQTT.
//!
//! Each listener has a [`Transport`]: plain TCP, TLS (optionally requiring a client
//! certificate), WebSocket or WebSocket over TLS, each optionally preceded by a PROXY protocol
//! header. [`Transport::handshake`] runs in the connection's own task, so a slow handshake
//! never holds up the accept loop. tern-transport knows nothing of MQTT
//! beyond the WebSocket subprotocol names and the rule that MQTT travels in binary messages.

mod handshake;
mod proxy;
mod stream;
mod tls;
mod websocket;

pub use handshake::Transport;
pub use stream::{BoxStream, Stream};
pub use tls::{ClientAuth, TlsAcceptor, TlsSettings};
pub use websocket::SUBPROTOCOLS;

use std::net::SocketAddr;

/// Who is on the other end, as the transport established it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The client's real address: from the PROXY header when the listener expects one, else
    /// the socket's peer address.
    pub addr: SocketAddr,
    /// The verified client certificate's identity (mutual TLS), if any.
    pub certificate: Option<CertificateIdentity>,
}

/// Names from a verified client certificate.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CertificateIdentity {
    /// The subject's Common Name.
    pub common_name: Option<String>,
    /// DNS names, e-mail addresses and URIs of the Subject Alternative Name extension.
    pub subject_alt_names: Vec<String>,
}

/// Why a listener could not be set up or a connection's handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("I/O error during the handshake: {0}")]
    Io(#[from] std::io::Error),
    #[error("handshake timed out")]
    Timeout,
    #[error("invalid PROXY protocol header: {0}")]
    ProxyHeader(String),
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    #[error("WebSocket handshake failed: {0}")]
    WebSocket(String),
    #[error("cannot load {what} from {path}: {reason}")]
    Load { what: &'static str, path: String, reason: String },
    #[error("invalid TLS settings: {0}")]
    Settings(String),
}
