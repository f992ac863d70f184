//! Bytes to packets.
//!
//! [`decode`] reads the fixed header first and refuses what it can from it alone (reserved
//! packet types, wrong flags, a malformed remaining length, a packet over the size limit)
//! before the body has arrived. Only then does it wait for the whole packet, split it off the
//! buffer and hand the body to the per-packet decoder, which must consume it exactly.

mod connect;
mod properties;
mod publish;
mod reader;
mod reason_codes;
mod subscribe;

use bytes::{Buf, BytesMut};

use crate::error::DecodeError;
use crate::packet::{Auth, Disconnect, Packet, ProtocolVersion, QoS};
use crate::property_rules::PropertyContext;
use crate::varint::{self, VarInt};
use properties::decode_properties;
use reader::Reader;

/// What the decoder needs to know about the connection.
#[derive(Debug, Clone, Copy)]
pub struct DecodeOptions {
    /// The connection's protocol version. Before CONNECT has been seen, pass
    /// `ProtocolVersion::V3_1_1`; CONNECT itself is decoded by the level it carries.
    pub version: ProtocolVersion,
    /// The largest whole packet (fixed header included) accepted, checked from the fixed
    /// header before the body is buffered.
    pub max_packet_size: usize,
}

/// Decodes one packet from the front of `buf`, advancing it past the packet.
///
/// Returns `Ok(None)` when `buf` does not yet hold a whole packet (and leaves it untouched).
/// Errors that the fixed header already shows are returned before the body arrives. After an
/// error the buffer's contents are unspecified: the connection must be closed.
pub fn decode(buf: &mut BytesMut, options: &DecodeOptions) -> Result<Option<Packet>, DecodeError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let packet_type = first >> 4;
    let flags = first & 0x0F;
    check_fixed_header(packet_type, flags, options.version)?;

    let (remaining_len, len_len) = match varint::read(&buf[1..]) {
        VarInt::Complete { value, len } => (value, len),
        VarInt::Incomplete => return Ok(None),
        VarInt::Malformed => return Err(DecodeError::MalformedRemainingLength),
    };
    let header_len = 1 + len_len;
    let size = header_len + remaining_len;
    if size > options.max_packet_size {
        return Err(DecodeError::PacketTooLarge { size, max: options.max_packet_size });
    }
    if buf.len() < size {
        return Ok(None);
    }

    // Splitting and freezing hands the packet over without copying; the PUBLISH payload and
    // binary fields stay views of this allocation.
    let mut packet = buf.split_to(size).freeze();
    packet.advance(header_len);
    let mut r = Reader::new(packet);
    let version = options.version;
    let decoded = match packet_type {
        1 => connect::decode_connect(&mut r)?,
        2 => connect::decode_connack(&mut r, version)?,
        3 => Packet::Publish(publish::decode_publish(&mut r, flags, version)?),
        4..=7 => publish::decode_response(&mut r, version, packet_type)?,
        8 => subscribe::decode_subscribe(&mut r, version)?,
        9 => subscribe::decode_suback(&mut r, version)?,
        10 => subscribe::decode_unsubscribe(&mut r, version)?,
        11 => subscribe::decode_unsuback(&mut r, version)?,
        12 => Packet::PingReq,
        13 => Packet::PingResp,
        14 => Packet::Disconnect(decode_disconnect(&mut r, version)?),
        15 => Packet::Auth(decode_auth(&mut r)?),
        // check_fixed_header refused type 0 already; this arm only keeps the match total.
        _ => return Err(DecodeError::ReservedPacketType(packet_type)),
    };
    r.finish()?;
    Ok(Some(decoded))
}

/// Checks the first byte of the fixed header ([MQTT-2.2.1], [MQTT-2.2.2]).
fn check_fixed_header(packet_type: u8, flags: u8, version: ProtocolVersion) -> Result<(), DecodeError> {
    let expected = match packet_type {
        0 => return Err(DecodeError::ReservedPacketType(0)),
        15 if version < ProtocolVersion::V5 => {
            return Err(DecodeError::AuthBeforeV5(version.level()));
        }
        3 => return check_publish_flags(flags),
        // [MQTT-3.6.1-1], [MQTT-3.8.1-1], [MQTT-3.10.1-1].
        6 | 8 | 10 => 0b0010,
        _ => 0b0000,
    };
    if flags == expected {
        Ok(())
    } else {
        Err(DecodeError::InvalidFlags { packet_type, flags })
    }
}

/// PUBLISH flags are DUP, QoS (two bits) and RETAIN ([MQTT-3.3.1]).
fn check_publish_flags(flags: u8) -> Result<(), DecodeError> {
    let qos = QoS::from_u8((flags >> 1) & 0b11).ok_or(DecodeError::InvalidQoS)?;
    if qos == QoS::AtMostOnce && flags & 0b1000 != 0 {
        return Err(DecodeError::DupWithQoS0);
    }
    Ok(())
}

/// Reads the optional reason code and properties that end DISCONNECT and AUTH (5.0) and
/// the acknowledgements: a missing reason code means 0x00, missing properties mean none.
fn optional_reason_and_properties(
    r: &mut Reader,
    allowed: &[u8],
    context: PropertyContext,
) -> Result<(u8, crate::Properties), DecodeError> {
    if r.is_empty() {
        return Ok((0, crate::Properties::default()));
    }
    let reason_code = reason_codes::check(r.u8()?, allowed)?;
    if r.is_empty() {
        return Ok((reason_code, crate::Properties::default()));
    }
    Ok((reason_code, decode_properties(r, context)?))
}

/// DISCONNECT: nothing in 3.1/3.1.1 ([MQTT-3.14.1]); in 5.0 an optional reason code and
/// optional properties ([MQTT-3.14.2.1], [MQTT-3.14.2.2]).
fn decode_disconnect(r: &mut Reader, version: ProtocolVersion) -> Result<Disconnect, DecodeError> {
    if version < ProtocolVersion::V5 {
        return Ok(Disconnect::default());
    }
    let (reason_code, properties) =
        optional_reason_and_properties(r, reason_codes::DISCONNECT, PropertyContext::Disconnect)?;
    Ok(Disconnect { reason_code, properties })
}

/// AUTH (5.0 only): remaining length 0 means success without properties ([MQTT-3.15.2.1]).
fn decode_auth(r: &mut Reader) -> Result<Auth, DecodeError> {
    let (reason_code, properties) = optional_reason_and_properties(r, reason_codes::AUTH, PropertyContext::Auth)?;
    Ok(Auth { reason_code, properties })
}
