//! Packets to bytes.
//!
//! For 3.1 and 3.1.1 all 5.0-only content (properties, reason codes of acknowledgements and
//! DISCONNECT) is left out. The body is measured first (see [`sink`]), so the buffer gets one
//! `reserve` and is left unchanged when encoding fails.

mod connect;
mod properties;
mod publish;
mod sink;
mod subscribe;

use bytes::BytesMut;

use crate::error::EncodeError;
use crate::packet::{Packet, ProtocolVersion, QoS};
use crate::property_rules::PropertyContext;
use crate::varint::{self, MAX_REMAINING_LENGTH};
use sink::{property_content_len, Counter, Sink};

/// Appends the encoding of `packet` for a connection of `version` to `buf`.
///
/// CONNECT is encoded for the protocol it names (`Connect::protocol`), whatever `version` is.
/// Where the model can express something the wire format forbids, the encoder writes the
/// valid form rather than a packet the peer must refuse: DUP is only written for QoS 1 and 2
/// ([MQTT-3.3.1-2]), a QoS 0 PUBLISH carries no packet identifier, properties a packet does
/// not allow are left out, and 3.1/3.1.1 SUBACK failure codes are all written as 0x80.
pub fn encode(packet: &Packet, version: ProtocolVersion, buf: &mut BytesMut) -> Result<(), EncodeError> {
    let version = wire_version(packet, version)?;
    let remaining = body_len(packet, version)?;
    buf.reserve(1 + varint::len(remaining) + remaining);
    Sink::put_u8(buf, first_byte(packet));
    Sink::put_varint(buf, remaining);
    let start = buf.len();
    write_body(packet, version, buf)?;
    debug_assert_eq!(buf.len() - start, remaining, "the counting pass disagrees with the writing pass");
    Ok(())
}

/// The size in bytes of the whole encoded packet (fixed header included), used to honour a
/// peer's maximum packet size without encoding.
pub fn encoded_len(packet: &Packet, version: ProtocolVersion) -> Result<usize, EncodeError> {
    let version = wire_version(packet, version)?;
    let remaining = body_len(packet, version)?;
    Ok(1 + varint::len(remaining) + remaining)
}

/// The version whose layout `packet` is written in, or an error if it has none.
fn wire_version(packet: &Packet, version: ProtocolVersion) -> Result<ProtocolVersion, EncodeError> {
    match packet {
        Packet::Connect(connect) => Ok(connect.protocol),
        Packet::Auth(_) if version < ProtocolVersion::V5 => {
            Err(EncodeError::NotInVersion { packet: "AUTH", level: version.level() })
        }
        _ => Ok(version),
    }
}

/// The remaining length: the body measured by a counting pass.
fn body_len(packet: &Packet, version: ProtocolVersion) -> Result<usize, EncodeError> {
    let mut counter = Counter::default();
    write_body(packet, version, &mut counter)?;
    if counter.len > MAX_REMAINING_LENGTH {
        return Err(EncodeError::PacketTooLarge(counter.len));
    }
    Ok(counter.len)
}

/// The first byte of the fixed header: packet type and flags ([MQTT-2.2.1], [MQTT-2.2.2]).
fn first_byte(packet: &Packet) -> u8 {
    let flags = match packet {
        Packet::Publish(p) => {
            let dup = p.dup && p.qos != QoS::AtMostOnce;
            (u8::from(dup) << 3) | ((p.qos as u8) << 1) | u8::from(p.retain)
        }
        Packet::PubRel(_) | Packet::Subscribe(_) | Packet::Unsubscribe(_) => 0b0010,
        _ => 0,
    };
    (packet.packet_type() << 4) | flags
}

fn write_body<S: Sink>(packet: &Packet, version: ProtocolVersion, s: &mut S) -> Result<(), EncodeError> {
    let v5 = version == ProtocolVersion::V5;
    match packet {
        Packet::Connect(connect) => connect::write_connect(s, connect),
        Packet::ConnAck(ack) => connect::write_connack(s, ack, version),
        Packet::Publish(publish) => publish::write_publish(s, publish, v5),
        Packet::PubAck(r) => publish::write_response(s, r, v5, PropertyContext::PubAck),
        Packet::PubRec(r) => publish::write_response(s, r, v5, PropertyContext::PubRec),
        Packet::PubRel(r) => publish::write_response(s, r, v5, PropertyContext::PubRel),
        Packet::PubComp(r) => publish::write_response(s, r, v5, PropertyContext::PubComp),
        Packet::Subscribe(sub) => subscribe::write_subscribe(s, sub, v5),
        Packet::SubAck(ack) => subscribe::write_suback(s, ack, v5),
        Packet::Unsubscribe(unsub) => subscribe::write_unsubscribe(s, unsub, v5),
        Packet::UnsubAck(ack) => subscribe::write_unsuback(s, ack, v5),
        Packet::PingReq | Packet::PingResp => Ok(()),
        // [MQTT-3.14.2.1]: DISCONNECT may stop after its reason code.
        Packet::Disconnect(d) if v5 => {
            write_reason_and_properties(s, d.reason_code, &d.properties, PropertyContext::Disconnect, true)
        }
        Packet::Disconnect(_) => Ok(()),
        Packet::Auth(a) => write_reason_and_properties(s, a.reason_code, &a.properties, PropertyContext::Auth, false),
    }
}

/// The 5.0 tail shared by the acknowledgements, DISCONNECT and AUTH: nothing at all for
/// success without properties, else the reason code, then the properties. With
/// `reason_only_form`, a reason code without properties is written alone (allowed for the
/// acknowledgements and DISCONNECT; AUTH gets an empty property block instead).
fn write_reason_and_properties<S: Sink>(
    s: &mut S,
    reason_code: u8,
    props: &crate::Properties,
    context: PropertyContext,
    reason_only_form: bool,
) -> Result<(), EncodeError> {
    let len = property_content_len(props, context)?;
    if len == 0 && reason_code == 0 {
        return Ok(());
    }
    s.put_u8(reason_code);
    if len == 0 && reason_only_form {
        return Ok(());
    }
    s.put_property_block(len, props, context)
}
