//! Why a connection ends, what that means for its will, and the 5.0 reason code the server
//! sends in DISCONNECT for it: the one place where closes map to reason codes.

use tern_codec::DecodeError;

/// Protocol violations found by the session logic (the codec finds the malformed packets).
/// All are closed with 5.0 reason code 0x82 (Protocol Error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("[MQTT-3.1.0-2] second CONNECT on a connection")]
    SecondConnect,
    #[error("[MQTT-3.1.0-1] first packet was {0}, not CONNECT")]
    NotConnectFirst(&'static str),
    #[error("{0} is sent by servers only")]
    ServerOnlyPacket(&'static str),
    #[error("[MQTT-4.7.3-1] PUBLISH with an empty topic name and no topic alias")]
    EmptyTopicName,
    #[error("[MQTT-4.7.3-1] will topic is empty")]
    EmptyWillTopic,
    #[error("[MQTT-3.3.2-12] topic alias {0} is not set on this connection")]
    TopicAliasUnknown(u16),
    #[error("[MQTT-3.3.4-6] PUBLISH from a client carries a subscription identifier")]
    SubscriptionIdentifierFromClient,
    #[error("[MQTT-3.14.2-2] DISCONNECT sets a session expiry after CONNECT set 0")]
    SessionExpiryAfterZero,
    #[error("[MQTT-3.3.2-14] response topic contains a wildcard")]
    WildcardInResponseTopic,
    #[error("[MQTT-3.8.3-4] no local option on a shared subscription")]
    NoLocalOnSharedSubscription,
    #[error("[MQTT-4.12.0-1] AUTH without enhanced authentication in progress")]
    UnexpectedAuth,
}

/// Why a connection is closing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloseReason {
    #[error("client sent DISCONNECT")]
    ClientDisconnect,
    #[error("client sent DISCONNECT asking for its will to be published")]
    ClientDisconnectWithWill,
    #[error("client closed the connection")]
    ConnectionLost,
    #[error("[MQTT-3.1.2-24] keep alive timed out")]
    KeepAliveTimeout,
    #[error("[MQTT-3.1.4-2] session taken over by a new connection")]
    TakenOver,
    #[error("protocol error: {0}")]
    Protocol(#[from] ProtocolError),
    /// A packet the codec refused: malformed (0x81) or a protocol error it can see (0x82),
    /// or too large (0x95); [`DecodeError::reason_code`] tells which.
    #[error("invalid packet: {0}")]
    Malformed(#[from] DecodeError),
    #[error("[MQTT-3.3.4-9] client exceeded the receive maximum")]
    ReceiveMaximumExceeded,
    #[error("[MQTT-3.3.2-9] topic alias {0} is 0 or above the maximum")]
    TopicAliasInvalid(u16),
    #[error("client exceeded its publish rate")]
    MessageRateTooHigh,
    #[error("topic name longer or deeper than the broker allows")]
    TopicNameInvalid,
    #[error("server shutting down")]
    ServerShutdown,
    /// The store failed to keep what the client sent; nothing it was to make safe was
    /// acknowledged, so the client sends it again on its next connection.
    #[error("the broker's storage failed")]
    StorageFailed,
}

impl CloseReason {
    /// The will is published on every close except a normal DISCONNECT from the client
    /// ([MQTT-3.1.2-8], [MQTT-3.1.2-10]); 5.0's reason 0x04 asks for it explicitly.
    pub fn publishes_will(&self) -> bool {
        !matches!(self, CloseReason::ClientDisconnect)
    }

    /// The reason code of the DISCONNECT the server sends a 5.0 client before closing, or
    /// `None` when the client ended the connection itself ([MQTT-4.13]).
    pub fn disconnect_reason_code(&self) -> Option<u8> {
        match self {
            CloseReason::ClientDisconnect | CloseReason::ClientDisconnectWithWill | CloseReason::ConnectionLost => None,
            CloseReason::KeepAliveTimeout => Some(0x8D),
            CloseReason::TakenOver => Some(0x8E),
            CloseReason::Protocol(_) => Some(0x82),
            CloseReason::Malformed(error) => Some(error.reason_code()),
            CloseReason::ReceiveMaximumExceeded => Some(0x93),
            CloseReason::TopicAliasInvalid(_) => Some(0x94),
            CloseReason::MessageRateTooHigh => Some(0x96),
            CloseReason::TopicNameInvalid => Some(0x90),
            CloseReason::ServerShutdown => Some(0x8B),
            CloseReason::StorageFailed => Some(0x80),
        }
    }
}
