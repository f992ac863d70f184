//! CONNECT and CONNACK bodies ([MQTT-3.1], [MQTT-3.2]).

use crate::encode::sink::{put_properties, Sink};
use crate::error::EncodeError;
use crate::packet::{ConnAck, Connect, ProtocolVersion};
use crate::property_rules::PropertyContext;

/// CONNECT in the layout of `connect.protocol`: 3.1 and 3.1.1 share one, 5.0 adds the two
/// property blocks.
pub(super) fn write_connect<S: Sink>(s: &mut S, connect: &Connect) -> Result<(), EncodeError> {
    let protocol = connect.protocol;
    let v5 = protocol == ProtocolVersion::V5;
    s.put_string(protocol.protocol_name())?;
    s.put_u8(protocol.level());

    // Connect flags ([MQTT-3.1.2.3]); bit 0 is reserved and stays 0.
    let mut flags = 0u8;
    if connect.clean_start {
        flags |= 0b0000_0010;
    }
    if let Some(will) = &connect.will {
        flags |= 0b0000_0100 | ((will.qos as u8) << 3);
        if will.retain {
            flags |= 0b0010_0000;
        }
    }
    if connect.password.is_some() {
        flags |= 0b0100_0000;
    }
    if connect.username.is_some() {
        flags |= 0b1000_0000;
    }
    s.put_u8(flags);
    s.put_u16(connect.keep_alive);
    if v5 {
        put_properties(s, &connect.properties, PropertyContext::Connect)?;
    }

    s.put_string(&connect.client_id)?;
    if let Some(will) = &connect.will {
        if v5 {
            put_properties(s, &will.properties, PropertyContext::Will)?;
        }
        s.put_string(will.topic.as_str())?;
        s.put_binary(&will.payload)?;
    }
    if let Some(username) = &connect.username {
        s.put_string(username)?;
    }
    if let Some(password) = &connect.password {
        s.put_binary(password)?;
    }
    Ok(())
}

/// CONNACK: acknowledge flags, return/reason code, then properties in 5.0.
pub(super) fn write_connack<S: Sink>(s: &mut S, ack: &ConnAck, version: ProtocolVersion) -> Result<(), EncodeError> {
    // 3.1 has no session present flag: its first byte is reserved and must be 0.
    let session_present = ack.session_present && version != ProtocolVersion::V3_1;
    s.put_u8(u8::from(session_present));
    s.put_u8(ack.code.0);
    if version == ProtocolVersion::V5 {
        put_properties(s, &ack.properties, PropertyContext::ConnAck)?;
    }
    Ok(())
}
