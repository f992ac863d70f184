//! CONNECT and CONNACK bodies ([MQTT-3.1], [MQTT-3.2]).

use crate::decode::properties::decode_properties;
use crate::decode::reader::Reader;
use crate::decode::reason_codes;
use crate::error::DecodeError;
use crate::packet::{ConnAck, Connect, ConnectReturnCode, LastWill, Packet, ProtocolVersion, QoS};
use crate::properties::Properties;
use crate::property_rules::PropertyContext;
use crate::topic::{TopicName, TopicNameError};

/// CONNECT flag bits ([MQTT-3.1.2.3]).
const RESERVED: u8 = 0b0000_0001;
const CLEAN_START: u8 = 0b0000_0010;
const WILL: u8 = 0b0000_0100;
const WILL_QOS_SHIFT: u8 = 3;
const WILL_RETAIN: u8 = 0b0010_0000;
const PASSWORD: u8 = 0b0100_0000;
const USERNAME: u8 = 0b1000_0000;

/// CONNECT is decoded by the protocol name and level it carries, whatever the connection's
/// version was assumed to be.
pub(super) fn decode_connect(r: &mut Reader) -> Result<Packet, DecodeError> {
    let protocol = protocol_version(r)?;
    let v5 = protocol == ProtocolVersion::V5;

    let flags = r.u8()?;
    if flags & RESERVED != 0 {
        return Err(DecodeError::ConnectReservedFlag);
    }
    let will_flag = flags & WILL != 0;
    let will_qos = (flags >> WILL_QOS_SHIFT) & 0b11;
    let will_retain = flags & WILL_RETAIN != 0;
    // [MQTT-3.1.2-11], [MQTT-3.1.2-13], [MQTT-3.1.2-15]: without a will, its QoS and retain
    // must be 0; [MQTT-3.1.2-14]: with one, QoS 3 is invalid.
    if !will_flag && (will_qos != 0 || will_retain) {
        return Err(DecodeError::InvalidWillFlags);
    }
    let will_qos = QoS::from_u8(will_qos).ok_or(DecodeError::InvalidWillFlags)?;
    let has_username = flags & USERNAME != 0;
    let has_password = flags & PASSWORD != 0;
    // [MQTT-3.1.2-22] applies to 3.1 and 3.1.1; 5.0 allows a password alone (3.1.2.9).
    if has_password && !has_username && !v5 {
        return Err(DecodeError::PasswordWithoutUsername);
    }

    let keep_alive = r.u16()?;
    let properties = if v5 { decode_properties(r, PropertyContext::Connect)? } else { Properties::default() };

    // The payload, in the order of [MQTT-3.1.3-1].
    let client_id = r.string()?;
    let will = if will_flag {
        let properties = if v5 { decode_properties(r, PropertyContext::Will)? } else { Properties::default() };
        let topic = topic_name(r)?;
        let payload = r.binary()?;
        Some(LastWill { topic, payload, qos: will_qos, retain: will_retain, properties })
    } else {
        None
    };
    let username = if has_username { Some(r.string()?) } else { None };
    let password = if has_password { Some(r.binary()?) } else { None };

    Ok(Packet::Connect(Box::new(Connect {
        protocol,
        clean_start: flags & CLEAN_START != 0,
        keep_alive,
        client_id,
        will,
        username,
        password,
        properties,
    })))
}

/// Reads the protocol name and level ([MQTT-3.1.2.1], [MQTT-3.1.2.2]). The name is compared
/// as raw bytes so that a name which is not even UTF-8 is an invalid name, not a string error.
fn protocol_version(r: &mut Reader) -> Result<ProtocolVersion, DecodeError> {
    let name = r.binary()?;
    let level = r.u8()?;
    match (&name[..], level) {
        (b"MQTT", 4) => Ok(ProtocolVersion::V3_1_1),
        (b"MQTT", 5) => Ok(ProtocolVersion::V5),
        (b"MQIsdp", 3) => Ok(ProtocolVersion::V3_1),
        (b"MQTT" | b"MQIsdp", _) => Err(DecodeError::UnsupportedProtocolLevel(level)),
        _ => Err(DecodeError::InvalidProtocolName),
    }
}

/// A topic name: a string without wildcards ([MQTT-3.3.2-2]).
pub(super) fn topic_name(r: &mut Reader) -> Result<TopicName, DecodeError> {
    let name = r.string()?;
    TopicName::new(&name).map_err(|e| match e {
        TopicNameError::Wildcard => DecodeError::WildcardInTopicName,
        TopicNameError::NullCharacter => DecodeError::NullCharacter,
        // Cannot happen: a string with a two-byte length is at most 65535 bytes. Mapping it
        // keeps the match total without a panic path.
        TopicNameError::TooLong => DecodeError::Truncated,
    })
}

/// CONNACK: acknowledge flags and return/reason code, then properties in 5.0.
pub(super) fn decode_connack(r: &mut Reader, version: ProtocolVersion) -> Result<Packet, DecodeError> {
    let flags = r.u8()?;
    // [MQTT-3.2.2-1]: bits 7-1 are reserved.
    if flags & 0b1111_1110 != 0 {
        return Err(DecodeError::ConnAckReservedFlags);
    }
    let code = reason_codes::check(r.u8()?, reason_codes::connack(version))?;
    let properties = if version == ProtocolVersion::V5 {
        decode_properties(r, PropertyContext::ConnAck)?
    } else {
        Properties::default()
    };
    Ok(Packet::ConnAck(ConnAck {
        // 3.1 has no session present flag; its first byte is reserved and unused, so the bit
        // is ignored rather than refused.
        session_present: flags & 1 != 0 && version != ProtocolVersion::V3_1,
        code: ConnectReturnCode(code),
        properties,
    }))
}
