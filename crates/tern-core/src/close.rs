//! Why a connection ends, and what that means for its will.

use tern_codec::DecodeError;

/// Protocol violations found by the session logic (the codec finds the malformed packets).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("[MQTT-3.1.0-2] second CONNECT on a connection")]
    SecondConnect,
    #[error("[MQTT-3.1.0-1] first packet was {0}, not CONNECT")]
    NotConnectFirst(&'static str),
    #[error("{0} is sent by servers only")]
    ServerOnlyPacket(&'static str),
    #[error("[MQTT-4.7.3-1] PUBLISH with an empty topic name")]
    EmptyTopicName,
    #[error("[MQTT-4.7.3-1] will topic is empty")]
    EmptyWillTopic,
}

/// Why a connection is closing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloseReason {
    #[error("client sent DISCONNECT")]
    ClientDisconnect,
    #[error("client closed the connection")]
    ConnectionLost,
    #[error("[MQTT-3.1.2-24] keep alive timed out")]
    KeepAliveTimeout,
    #[error("[MQTT-3.1.4-2] session taken over by a new connection")]
    TakenOver,
    #[error("protocol error: {0}")]
    Protocol(#[from] ProtocolError),
    #[error("malformed packet: {0}")]
    Malformed(#[from] DecodeError),
    #[error("server shutting down")]
    ServerShutdown,
}

impl CloseReason {
    /// The will is published on every close except a DISCONNECT from the client
    /// ([MQTT-3.1.2-8], [MQTT-3.1.2-10]).
    pub fn publishes_will(&self) -> bool {
        !matches!(self, CloseReason::ClientDisconnect)
    }
}
