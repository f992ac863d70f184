//! The packet model shared by every protocol version.
//!
//! Fields that exist only in MQTT 5.0 (properties, reason codes) are present for every version;
//! the encoder leaves them out for 3.1 and 3.1.1 and the decoder fills them with defaults.

use std::fmt;
use std::num::NonZeroU16;

use bytes::Bytes;

use crate::properties::Properties;
use crate::topic::TopicName;

/// The protocol level of a connection, taken from its CONNECT packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProtocolVersion {
    /// MQTT 3.1: protocol name "MQIsdp", level 3.
    V3_1,
    /// MQTT 3.1.1: protocol name "MQTT", level 4.
    V3_1_1,
    /// MQTT 5.0: protocol name "MQTT", level 5.
    V5,
}

impl ProtocolVersion {
    /// The protocol level byte of CONNECT.
    pub fn level(self) -> u8 {
        match self {
            ProtocolVersion::V3_1 => 3,
            ProtocolVersion::V3_1_1 => 4,
            ProtocolVersion::V5 => 5,
        }
    }

    /// The protocol name string of CONNECT.
    pub fn protocol_name(self) -> &'static str {
        match self {
            ProtocolVersion::V3_1 => "MQIsdp",
            _ => "MQTT",
        }
    }
}

/// Quality of service of a message or a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum QoS {
    #[default]
    AtMostOnce = 0,
    AtLeastOnce = 1,
    ExactlyOnce = 2,
}

impl QoS {
    pub fn from_u8(value: u8) -> Option<QoS> {
        match value {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }
}

/// A packet identifier, never zero ([MQTT-2.3.1-1]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PacketId(NonZeroU16);

impl PacketId {
    pub fn new(value: u16) -> Option<PacketId> {
        NonZeroU16::new(value).map(PacketId)
    }

    pub fn get(self) -> u16 {
        self.0.get()
    }

    /// The next identifier, wrapping from 65535 to 1.
    pub fn next(self) -> PacketId {
        PacketId::new(self.get().wrapping_add(1)).unwrap_or(PacketId(NonZeroU16::MIN))
    }
}

impl fmt::Display for PacketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A will message carried in CONNECT.
#[derive(Clone, PartialEq, Eq)]
pub struct LastWill {
    pub topic: TopicName,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    /// Will properties (5.0 only).
    pub properties: Properties,
}

impl fmt::Debug for LastWill {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LastWill")
            .field("topic", &self.topic)
            .field("payload_len", &self.payload.len())
            .field("qos", &self.qos)
            .field("retain", &self.retain)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct Connect {
    pub protocol: ProtocolVersion,
    /// The clean session flag (3.1, 3.1.1) or clean start flag (5.0).
    pub clean_start: bool,
    /// Keep alive in seconds; 0 turns it off.
    pub keep_alive: u16,
    /// The client identifier exactly as sent; may be empty. Validated by the broker, which
    /// knows the rules that depend on the clean session flag.
    pub client_id: String,
    pub will: Option<LastWill>,
    pub username: Option<String>,
    pub password: Option<Bytes>,
    pub properties: Properties,
}

impl fmt::Debug for Connect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connect")
            .field("protocol", &self.protocol)
            .field("clean_start", &self.clean_start)
            .field("keep_alive", &self.keep_alive)
            .field("client_id", &self.client_id)
            .field("will", &self.will)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .finish_non_exhaustive()
    }
}

/// CONNACK. `code` is the 3.1.1 return code or the 5.0 reason code; both use 0 for success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnAck {
    pub session_present: bool,
    pub code: ConnectReturnCode,
    pub properties: Properties,
}

/// The CONNACK result byte. For 3.1/3.1.1 only the values 0..=5 are used; 5.0 uses its reason
/// codes (0x80 and above for failures).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnectReturnCode(pub u8);

impl ConnectReturnCode {
    pub const ACCEPTED: Self = Self(0x00);
    /// 3.1.1: the server does not support the level of the protocol requested ([MQTT-3.1.2-2]).
    pub const UNACCEPTABLE_PROTOCOL_VERSION: Self = Self(0x01);
    /// 3.1.1: the client identifier is correct UTF-8 but not allowed.
    pub const IDENTIFIER_REJECTED: Self = Self(0x02);
    pub const SERVER_UNAVAILABLE: Self = Self(0x03);
    pub const BAD_USERNAME_OR_PASSWORD: Self = Self(0x04);
    pub const NOT_AUTHORIZED: Self = Self(0x05);
}

#[derive(Clone, PartialEq, Eq)]
pub struct Publish {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    /// The topic as sent. May be empty only in 5.0 when a topic alias is used; the broker
    /// enforces that ([MQTT-4.7.3-1]).
    pub topic: TopicName,
    /// Present exactly when `qos` is 1 or 2.
    pub packet_id: Option<PacketId>,
    pub payload: Bytes,
    pub properties: Properties,
}

impl fmt::Debug for Publish {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publish")
            .field("dup", &self.dup)
            .field("qos", &self.qos)
            .field("retain", &self.retain)
            .field("topic", &self.topic)
            .field("packet_id", &self.packet_id)
            .field("payload_len", &self.payload.len())
            .field("properties", &self.properties)
            .finish()
    }
}

/// PUBACK, PUBREC, PUBREL and PUBCOMP share this shape. `reason_code` is 0 (success) for
/// 3.1/3.1.1 and is only written in 5.0 when it is not 0 or there are properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubResponse {
    pub packet_id: PacketId,
    pub reason_code: u8,
    pub properties: Properties,
}

impl PubResponse {
    pub fn new(packet_id: PacketId) -> Self {
        PubResponse { packet_id, reason_code: 0, properties: Properties::default() }
    }
}

/// 5.0 retain handling subscription option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RetainHandling {
    /// Send retained messages at the time of the subscribe.
    #[default]
    SendAtSubscribe = 0,
    /// Send retained messages only if the subscription does not currently exist.
    SendIfNew = 1,
    /// Do not send retained messages.
    DoNotSend = 2,
}

/// Subscription options; 3.1/3.1.1 use only `qos`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SubscriptionOptions {
    pub qos: QoS,
    pub no_local: bool,
    pub retain_as_published: bool,
    pub retain_handling: RetainHandling,
}

/// One filter of a SUBSCRIBE. The filter is well-formed UTF-8 as sent; its wildcard rules are
/// checked by the broker so that a bad filter can get its own SUBACK failure code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeFilter {
    pub filter: String,
    pub options: SubscriptionOptions,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    pub packet_id: PacketId,
    /// At least one ([MQTT-3.8.3-3]).
    pub filters: Vec<SubscribeFilter>,
    pub properties: Properties,
}

/// SUBACK: one return/reason code per filter, in order ([MQTT-3.8.4-5]).
/// 3.1.1 codes: 0x00, 0x01, 0x02 granted QoS, 0x80 failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    pub packet_id: PacketId,
    pub return_codes: Vec<u8>,
    pub properties: Properties,
}

impl SubAck {
    pub const FAILURE: u8 = 0x80;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    pub packet_id: PacketId,
    /// At least one ([MQTT-3.10.3-2]).
    pub filters: Vec<String>,
    pub properties: Properties,
}

/// UNSUBACK. `reason_codes` is empty for 3.1/3.1.1, one per filter in 5.0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubAck {
    pub packet_id: PacketId,
    pub reason_codes: Vec<u8>,
    pub properties: Properties,
}

/// DISCONNECT; `reason_code` and properties are 5.0 only.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Disconnect {
    pub reason_code: u8,
    pub properties: Properties,
}

/// AUTH (5.0 only).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Auth {
    pub reason_code: u8,
    pub properties: Properties,
}

/// Every MQTT control packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    Connect(Box<Connect>),
    ConnAck(ConnAck),
    Publish(Publish),
    PubAck(PubResponse),
    PubRec(PubResponse),
    PubRel(PubResponse),
    PubComp(PubResponse),
    Subscribe(Subscribe),
    SubAck(SubAck),
    Unsubscribe(Unsubscribe),
    UnsubAck(UnsubAck),
    PingReq,
    PingResp,
    Disconnect(Disconnect),
    Auth(Auth),
}

impl Packet {
    /// The control packet type from the fixed header (1..=15).
    pub fn packet_type(&self) -> u8 {
        match self {
            Packet::Connect(_) => 1,
            Packet::ConnAck(_) => 2,
            Packet::Publish(_) => 3,
            Packet::PubAck(_) => 4,
            Packet::PubRec(_) => 5,
            Packet::PubRel(_) => 6,
            Packet::PubComp(_) => 7,
            Packet::Subscribe(_) => 8,
            Packet::SubAck(_) => 9,
            Packet::Unsubscribe(_) => 10,
            Packet::UnsubAck(_) => 11,
            Packet::PingReq => 12,
            Packet::PingResp => 13,
            Packet::Disconnect(_) => 14,
            Packet::Auth(_) => 15,
        }
    }

    /// The packet type's name in the spec, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Packet::Connect(_) => "CONNECT",
            Packet::ConnAck(_) => "CONNACK",
            Packet::Publish(_) => "PUBLISH",
            Packet::PubAck(_) => "PUBACK",
            Packet::PubRec(_) => "PUBREC",
            Packet::PubRel(_) => "PUBREL",
            Packet::PubComp(_) => "PUBCOMP",
            Packet::Subscribe(_) => "SUBSCRIBE",
            Packet::SubAck(_) => "SUBACK",
            Packet::Unsubscribe(_) => "UNSUBSCRIBE",
            Packet::UnsubAck(_) => "UNSUBACK",
            Packet::PingReq => "PINGREQ",
            Packet::PingResp => "PINGRESP",
            Packet::Disconnect(_) => "DISCONNECT",
            Packet::Auth(_) => "AUTH",
        }
    }
}
