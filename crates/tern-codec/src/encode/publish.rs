//! PUBLISH and its acknowledgements ([MQTT-3.3] to [MQTT-3.7]).

use crate::encode::sink::{put_properties, Sink};
use crate::encode::write_reason_and_properties;
use crate::error::EncodeError;
use crate::packet::{PubResponse, Publish, QoS};
use crate::property_rules::PropertyContext;

pub(super) fn write_publish<S: Sink>(s: &mut S, publish: &Publish, v5: bool) -> Result<(), EncodeError> {
    s.put_string(publish.topic.as_str())?;
    // [MQTT-2.3.1-5]: a packet identifier only for QoS 1 and 2, where it is required.
    if publish.qos != QoS::AtMostOnce {
        let packet_id = publish.packet_id.ok_or(EncodeError::MissingPacketId)?;
        s.put_u16(packet_id.get());
    }
    if v5 {
        put_properties(s, &publish.properties, PropertyContext::Publish)?;
    }
    s.put_slice(&publish.payload);
    Ok(())
}

/// PUBACK, PUBREC, PUBREL or PUBCOMP: the packet identifier, and in 5.0 the reason code and
/// properties when they are not the defaults ([MQTT-3.4.2.1]).
pub(super) fn write_response<S: Sink>(
    s: &mut S,
    response: &PubResponse,
    v5: bool,
    context: PropertyContext,
) -> Result<(), EncodeError> {
    s.put_u16(response.packet_id.get());
    if v5 {
        write_reason_and_properties(s, response.reason_code, &response.properties, context, true)?;
    }
    Ok(())
}
