//! SUBSCRIBE, SUBACK, UNSUBSCRIBE and UNSUBACK ([MQTT-3.8] to [MQTT-3.11]).

use crate::decode::properties::decode_properties;
use crate::decode::reader::Reader;
use crate::decode::reason_codes;
use crate::error::DecodeError;
use crate::packet::{
    Packet, ProtocolVersion, QoS, RetainHandling, SubAck, Subscribe, SubscribeFilter, SubscriptionOptions, UnsubAck,
    Unsubscribe,
};
use crate::properties::Properties;
use crate::property_rules::PropertyContext;

/// Properties for 5.0, nothing for earlier versions.
fn properties(r: &mut Reader, version: ProtocolVersion, context: PropertyContext) -> Result<Properties, DecodeError> {
    if version == ProtocolVersion::V5 {
        decode_properties(r, context)
    } else {
        Ok(Properties::default())
    }
}

pub(super) fn decode_subscribe(r: &mut Reader, version: ProtocolVersion) -> Result<Packet, DecodeError> {
    let packet_id = r.packet_id()?;
    let properties = properties(r, version, PropertyContext::Subscribe)?;
    let mut filters = Vec::new();
    while !r.is_empty() {
        let filter = r.string()?;
        let options = subscription_options(r.u8()?, version)?;
        filters.push(SubscribeFilter { filter, options });
    }
    if filters.is_empty() {
        return Err(DecodeError::EmptySubscribe);
    }
    Ok(Packet::Subscribe(Subscribe { packet_id, filters, properties }))
}

/// The subscription options byte ([MQTT-3.8.3.1]).
fn subscription_options(byte: u8, version: ProtocolVersion) -> Result<SubscriptionOptions, DecodeError> {
    // 3.1.1 [MQTT-3-8.3-4]: only the two QoS bits are defined. 5.0 [MQTT-3.8.3-5]: bits 6 and
    // 7 are reserved.
    let reserved = if version == ProtocolVersion::V5 { 0b1100_0000 } else { 0b1111_1100 };
    if byte & reserved != 0 {
        return Err(DecodeError::InvalidSubscriptionOptions);
    }
    let qos = QoS::from_u8(byte & 0b11).ok_or(DecodeError::InvalidSubscriptionOptions)?;
    let retain_handling = match (byte >> 4) & 0b11 {
        0 => RetainHandling::SendAtSubscribe,
        1 => RetainHandling::SendIfNew,
        2 => RetainHandling::DoNotSend,
        // [MQTT-3.8.3.1]: retain handling 3 is a protocol error.
        _ => return Err(DecodeError::InvalidSubscriptionOptions),
    };
    Ok(SubscriptionOptions {
        qos,
        no_local: byte & 0b0100 != 0,
        retain_as_published: byte & 0b1000 != 0,
        retain_handling,
    })
}

/// SUBACK: one return/reason code per filter of the SUBSCRIBE it answers.
pub(super) fn decode_suback(r: &mut Reader, version: ProtocolVersion) -> Result<Packet, DecodeError> {
    let packet_id = r.packet_id()?;
    let properties = properties(r, version, PropertyContext::SubAck)?;
    let allowed = reason_codes::suback(version);
    let return_codes =
        r.rest().iter().map(|&code| reason_codes::check(code, allowed)).collect::<Result<Vec<u8>, DecodeError>>()?;
    Ok(Packet::SubAck(SubAck { packet_id, return_codes, properties }))
}

pub(super) fn decode_unsubscribe(r: &mut Reader, version: ProtocolVersion) -> Result<Packet, DecodeError> {
    let packet_id = r.packet_id()?;
    let properties = properties(r, version, PropertyContext::Unsubscribe)?;
    let mut filters = Vec::new();
    while !r.is_empty() {
        filters.push(r.string()?);
    }
    if filters.is_empty() {
        return Err(DecodeError::EmptyUnsubscribe);
    }
    Ok(Packet::Unsubscribe(Unsubscribe { packet_id, filters, properties }))
}

/// UNSUBACK: just the packet identifier in 3.1/3.1.1; properties and one reason code per
/// filter in 5.0.
pub(super) fn decode_unsuback(r: &mut Reader, version: ProtocolVersion) -> Result<Packet, DecodeError> {
    let packet_id = r.packet_id()?;
    let mut unsuback = UnsubAck { packet_id, reason_codes: Vec::new(), properties: Properties::default() };
    if version == ProtocolVersion::V5 {
        unsuback.properties = decode_properties(r, PropertyContext::UnsubAck)?;
        unsuback.reason_codes = r
            .rest()
            .iter()
            .map(|&code| reason_codes::check(code, reason_codes::UNSUBACK))
            .collect::<Result<Vec<u8>, DecodeError>>()?;
    }
    Ok(Packet::UnsubAck(unsuback))
}
