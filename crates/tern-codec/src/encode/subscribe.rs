//! SUBSCRIBE, SUBACK, UNSUBSCRIBE and UNSUBACK ([MQTT-3.8] to [MQTT-3.11]).

use crate::encode::sink::{put_properties, Sink};
use crate::error::EncodeError;
use crate::packet::{SubAck, Subscribe, SubscriptionOptions, UnsubAck, Unsubscribe};
use crate::property_rules::PropertyContext;

pub(super) fn write_subscribe<S: Sink>(s: &mut S, sub: &Subscribe, v5: bool) -> Result<(), EncodeError> {
    s.put_u16(sub.packet_id.get());
    if v5 {
        put_properties(s, &sub.properties, PropertyContext::Subscribe)?;
    }
    for filter in &sub.filters {
        s.put_string(&filter.filter)?;
        s.put_u8(options_byte(&filter.options, v5));
    }
    Ok(())
}

/// The subscription options byte ([MQTT-3.8.3.1]); 3.1/3.1.1 only have the QoS bits.
fn options_byte(options: &SubscriptionOptions, v5: bool) -> u8 {
    let mut byte = options.qos as u8;
    if v5 {
        byte |= u8::from(options.no_local) << 2;
        byte |= u8::from(options.retain_as_published) << 3;
        byte |= (options.retain_handling as u8) << 4;
    }
    byte
}

pub(super) fn write_suback<S: Sink>(s: &mut S, ack: &SubAck, v5: bool) -> Result<(), EncodeError> {
    s.put_u16(ack.packet_id.get());
    if v5 {
        put_properties(s, &ack.properties, PropertyContext::SubAck)?;
        s.put_slice(&ack.return_codes);
    } else {
        // 3.1.1 has a single failure code; every 5.0 failure reason maps onto it.
        for &code in &ack.return_codes {
            s.put_u8(if code >= SubAck::FAILURE { SubAck::FAILURE } else { code });
        }
    }
    Ok(())
}

pub(super) fn write_unsubscribe<S: Sink>(s: &mut S, unsub: &Unsubscribe, v5: bool) -> Result<(), EncodeError> {
    s.put_u16(unsub.packet_id.get());
    if v5 {
        put_properties(s, &unsub.properties, PropertyContext::Unsubscribe)?;
    }
    for filter in &unsub.filters {
        s.put_string(filter)?;
    }
    Ok(())
}

/// UNSUBACK: the packet identifier, plus properties and reason codes in 5.0 ([MQTT-3.11]).
pub(super) fn write_unsuback<S: Sink>(s: &mut S, ack: &UnsubAck, v5: bool) -> Result<(), EncodeError> {
    s.put_u16(ack.packet_id.get());
    if v5 {
        put_properties(s, &ack.properties, PropertyContext::UnsubAck)?;
        s.put_slice(&ack.reason_codes);
    }
    Ok(())
}
