//! `[[listeners]]`: where clients connect, over which transport, with which limits.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// The transport of a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListenerProtocol {
    /// MQTT over TCP (conventionally port 1883).
    Mqtt,
    /// MQTT over TLS (8883).
    Mqtts,
    /// MQTT over WebSocket (8083, path `/mqtt`).
    Ws,
    /// MQTT over WebSocket over TLS (8084).
    Wss,
}

impl ListenerProtocol {
    pub fn name(self) -> &'static str {
        match self {
            ListenerProtocol::Mqtt => "mqtt",
            ListenerProtocol::Mqtts => "mqtts",
            ListenerProtocol::Ws => "ws",
            ListenerProtocol::Wss => "wss",
        }
    }

    fn uses_tls(self) -> bool {
        matches!(self, ListenerProtocol::Mqtts | ListenerProtocol::Wss)
    }
}

/// Which name of a client certificate becomes the client's user name (mutual TLS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CertificateUsername {
    /// The subject's Common Name.
    Cn,
    /// The first Subject Alternative Name.
    San,
}

/// TLS settings of an `mqtts` or `wss` listener.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM CA certificates that client certificates are verified against (mutual TLS).
    pub client_ca: Option<PathBuf>,
    /// With `client_ca`: refuse clients without a valid certificate (otherwise optional).
    #[serde(default)]
    pub require_client_certificate: bool,
    /// Take the user name from the verified client certificate instead of CONNECT; such a
    /// client needs no password.
    pub username_from_certificate: Option<CertificateUsername>,
}

/// One listener.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    pub protocol: ListenerProtocol,
    pub address: SocketAddr,
    /// Expect a PROXY protocol (v1 or v2) header before anything else; the client's real
    /// address is taken from it.
    #[serde(default)]
    pub proxy_protocol: bool,
    /// Accept clients without credentials here; defaults to `auth.allow_anonymous`.
    pub allow_anonymous: Option<bool>,
    /// Simultaneous connections on this listener; 0 means no limit of its own.
    #[serde(default)]
    pub max_connections: usize,
    /// New connections per second on this listener (bursts of one second's worth); beyond it
    /// connections are closed at once. 0 means no limit.
    #[serde(default)]
    pub max_connection_rate: u32,
    /// The WebSocket path (`ws`, `wss`).
    #[serde(default = "default_path")]
    pub path: String,
    /// Required for `mqtts` and `wss`.
    pub tls: Option<TlsConfig>,
}

fn default_path() -> String {
    "/mqtt".to_string()
}

impl ListenerConfig {
    /// A plain MQTT/TCP listener with default settings.
    pub fn mqtt(address: SocketAddr) -> ListenerConfig {
        ListenerConfig::new(ListenerProtocol::Mqtt, address)
    }

    pub fn new(protocol: ListenerProtocol, address: SocketAddr) -> ListenerConfig {
        ListenerConfig {
            protocol,
            address,
            proxy_protocol: false,
            allow_anonymous: None,
            max_connections: 0,
            max_connection_rate: 0,
            path: default_path(),
            tls: None,
        }
    }

    pub(super) fn validate(&self) -> Result<(), String> {
        match (self.protocol.uses_tls(), &self.tls) {
            (true, None) => return Err(format!("protocol {} needs a [listeners.tls] table", self.protocol.name())),
            (false, Some(_)) => {
                return Err(format!("protocol {} takes no tls settings; use mqtts or wss", self.protocol.name()))
            }
            _ => {}
        }
        if let Some(tls) = &self.tls {
            if tls.require_client_certificate && tls.client_ca.is_none() {
                return Err("tls.require_client_certificate needs tls.client_ca".into());
            }
            if tls.username_from_certificate.is_some() && tls.client_ca.is_none() {
                return Err("tls.username_from_certificate needs tls.client_ca".into());
            }
        }
        if !self.path.starts_with('/') {
            return Err(format!("path must start with '/', not {:?}", self.path));
        }
        Ok(())
    }
}
