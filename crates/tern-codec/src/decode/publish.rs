//! PUBLISH and its acknowledgements PUBACK, PUBREC, PUBREL, PUBCOMP ([MQTT-3.3] to
//! [MQTT-3.7]).

use crate::decode::connect::topic_name;
use crate::decode::properties::decode_properties;
use crate::decode::reader::Reader;
use crate::decode::{optional_reason_and_properties, reason_codes};
use crate::error::DecodeError;
use crate::packet::{Packet, ProtocolVersion, PubResponse, Publish, QoS};
use crate::properties::Properties;
use crate::property_rules::PropertyContext;

/// PUBLISH; `flags` were checked by the fixed header already.
pub(super) fn decode_publish(r: &mut Reader, flags: u8, version: ProtocolVersion) -> Result<Publish, DecodeError> {
    let qos = QoS::from_u8((flags >> 1) & 0b11).ok_or(DecodeError::InvalidQoS)?;
    let topic = topic_name(r)?;
    // [MQTT-2.3.1-5]: a packet identifier exactly when QoS > 0, and never zero.
    let packet_id = if qos == QoS::AtMostOnce { None } else { Some(r.packet_id()?) };
    let properties = if version == ProtocolVersion::V5 {
        decode_properties(r, PropertyContext::Publish)?
    } else {
        Properties::default()
    };
    Ok(Publish {
        dup: flags & 0b1000 != 0,
        qos,
        retain: flags & 0b0001 != 0,
        topic,
        packet_id,
        // The payload is whatever the remaining length leaves ([MQTT-3.3.3]); it may be empty.
        payload: r.rest(),
        properties,
    })
}

/// PUBACK, PUBREC, PUBREL or PUBCOMP (packet types 4 to 7). In 3.1/3.1.1 the body is exactly
/// the packet identifier; in 5.0 the reason code and properties may each be left off
/// (remaining length 2 or 3).
pub(super) fn decode_response(
    r: &mut Reader,
    version: ProtocolVersion,
    packet_type: u8,
) -> Result<Packet, DecodeError> {
    // PUBACK and PUBREC share their reason codes, as do PUBREL and PUBCOMP.
    let (wrap, context, allowed): (fn(PubResponse) -> Packet, _, _) = match packet_type {
        4 => (Packet::PubAck, PropertyContext::PubAck, reason_codes::PUBACK),
        5 => (Packet::PubRec, PropertyContext::PubRec, reason_codes::PUBACK),
        6 => (Packet::PubRel, PropertyContext::PubRel, reason_codes::PUBREL),
        _ => (Packet::PubComp, PropertyContext::PubComp, reason_codes::PUBREL),
    };
    let packet_id = r.packet_id()?;
    if version < ProtocolVersion::V5 {
        return Ok(wrap(PubResponse::new(packet_id)));
    }
    let (reason_code, properties) = optional_reason_and_properties(r, allowed, context)?;
    Ok(wrap(PubResponse { packet_id, reason_code, properties }))
}
