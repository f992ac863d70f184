//! Codec errors. Each decode error names the rule it enforces; the broker maps them to
//! closing the connection (3.1.1) or DISCONNECT 0x81/0x82/0x95 (5.0).

/// Why bytes could not be decoded into a packet. The connection must be closed after any of
/// these; [`DecodeError::reason_code`] gives the 5.0 reason to close it with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("[MQTT-2.2] reserved packet type {0}")]
    ReservedPacketType(u8),
    #[error("[MQTT-2.2.2-2] invalid fixed header flags {flags:#06b} for packet type {packet_type}")]
    InvalidFlags { packet_type: u8, flags: u8 },
    #[error("[MQTT-2.2.3] malformed remaining length")]
    MalformedRemainingLength,
    /// A property length or subscription identifier that needs more than four bytes.
    #[error("[MQTT-1.5.5-1] malformed variable byte integer")]
    MalformedVariableByteInteger,
    #[error("packet of {size} bytes exceeds the maximum packet size {max}")]
    PacketTooLarge { size: usize, max: usize },
    #[error("packet body ends early")]
    Truncated,
    #[error("packet has {0} unexpected bytes after its body")]
    TrailingBytes(usize),
    #[error("[MQTT-1.5.3-1] string is not well-formed UTF-8")]
    InvalidUtf8,
    #[error("[MQTT-1.5.3-2] string contains U+0000")]
    NullCharacter,
    #[error("[MQTT-3.1.2-1] invalid protocol name")]
    InvalidProtocolName,
    /// Not a malformed packet: the broker answers CONNACK 0x01 (3.1.1) or 0x84 (5.0).
    #[error("[MQTT-3.1.2-2] unsupported protocol level {0}")]
    UnsupportedProtocolLevel(u8),
    #[error("[MQTT-3.1.2-3] CONNECT reserved flag is set")]
    ConnectReservedFlag,
    #[error("[MQTT-3.1.2-11] will flags are inconsistent")]
    InvalidWillFlags,
    #[error("[MQTT-3.1.2-22] password flag set without username flag")]
    PasswordWithoutUsername,
    #[error("[MQTT-3.3.1-4] PUBLISH with QoS 3")]
    InvalidQoS,
    /// Refused from the fixed header alone, before the body arrives.
    #[error("[MQTT-3.3.1-2] PUBLISH with QoS 0 has the DUP flag set")]
    DupWithQoS0,
    /// Bits 7-1 of the CONNACK acknowledge flags must be 0.
    #[error("[MQTT-3.2.2-1] CONNACK reserved flag bits are set")]
    ConnAckReservedFlags,
    #[error("[MQTT-2.3.1-1] packet identifier is zero")]
    ZeroPacketId,
    #[error("[MQTT-3.3.2-2] PUBLISH topic name contains a wildcard")]
    WildcardInTopicName,
    #[error("[MQTT-3.8.3-3] SUBSCRIBE with no topic filter")]
    EmptySubscribe,
    #[error("[MQTT-3.10.3-2] UNSUBSCRIBE with no topic filter")]
    EmptyUnsubscribe,
    #[error("[MQTT-3.8.3-4] SUBSCRIBE options reserved bits set or invalid QoS")]
    InvalidSubscriptionOptions,
    #[error("invalid reason code {0:#04x}")]
    InvalidReasonCode(u8),
    #[error("[MQTT-2.2.2] property {0:#04x} is unknown")]
    UnknownProperty(u8),
    #[error("[MQTT-2.2.2] property {id:#04x} is not allowed on {packet}")]
    PropertyNotAllowed { id: u8, packet: &'static str },
    #[error("[MQTT-2.2.2] property {0:#04x} appears more than once")]
    DuplicateProperty(u8),
    #[error("[MQTT-2.2.2] property {0:#04x} has an invalid value")]
    InvalidPropertyValue(u8),
    /// Packet type 15 on a 3.1/3.1.1 connection, where it is reserved ([MQTT-2.2.1]).
    #[error("AUTH is not a packet of protocol level {0}")]
    AuthBeforeV5(u8),
}

impl DecodeError {
    /// Whether the packet exceeded the maximum packet size (5.0 reason 0x95) rather than being
    /// malformed or a protocol error.
    pub fn is_packet_too_large(&self) -> bool {
        matches!(self, DecodeError::PacketTooLarge { .. })
    }

    /// The 5.0 reason code the broker answers with: in CONNACK for an error in CONNECT, in
    /// DISCONNECT otherwise. This is the one place where each violation is classed as a
    /// malformed packet (0x81), a protocol error (0x82), an unsupported protocol version (0x84)
    /// or a packet too large (0x95), following the wording of each clause in MQTT 5.0.
    pub fn reason_code(&self) -> u8 {
        use DecodeError::*;
        match self {
            UnsupportedProtocolLevel(_) => 0x84,
            PacketTooLarge { .. } => 0x95,
            // A Topic Alias of 0 ([MQTT-3.3.2-8]) is a "Topic Alias invalid".
            InvalidPropertyValue(0x23) => 0x94,
            // MQTT 5.0 calls these a "Protocol Error" rather than a malformed packet.
            PasswordWithoutUsername
            | ZeroPacketId
            | WildcardInTopicName
            | EmptySubscribe
            | EmptyUnsubscribe
            | InvalidReasonCode(_)
            | DuplicateProperty(_)
            | InvalidPropertyValue(_)
            | AuthBeforeV5(_) => 0x82,
            ReservedPacketType(_)
            | InvalidFlags { .. }
            | MalformedRemainingLength
            | MalformedVariableByteInteger
            | Truncated
            | TrailingBytes(_)
            | InvalidUtf8
            | NullCharacter
            | InvalidProtocolName
            | ConnectReservedFlag
            | InvalidWillFlags
            | InvalidQoS
            | DupWithQoS0
            | ConnAckReservedFlags
            | InvalidSubscriptionOptions
            | UnknownProperty(_)
            | PropertyNotAllowed { .. } => 0x81,
        }
    }
}

/// Why a packet could not be encoded. The buffer is left as it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("string or binary field of {0} bytes is longer than 65535")]
    FieldTooLong(usize),
    #[error("packet of {0} bytes is larger than MQTT's remaining length allows")]
    PacketTooLarge(usize),
    #[error("{packet} is not a packet of protocol level {level}")]
    NotInVersion { packet: &'static str, level: u8 },
    /// `Publish::packet_id` is `None` although `qos` is 1 or 2.
    #[error("[MQTT-2.3.1-1] PUBLISH with QoS 1 or 2 has no packet identifier")]
    MissingPacketId,
    /// A 5.0 subscription identifier of 0 or above the variable byte integer range.
    #[error("[MQTT-3.8.2.1.2] subscription identifier {0} is outside 1..=268435455")]
    SubscriptionIdentifierOutOfRange(u32),
}
