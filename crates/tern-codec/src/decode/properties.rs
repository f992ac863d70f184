//! Decoding a 5.0 property block ([MQTT-2.2.2]): a variable byte integer length, then
//! identifier/value pairs.

use crate::decode::reader::Reader;
use crate::error::DecodeError;
use crate::properties::{Properties, PropertyId};
use crate::property_rules::PropertyContext;

/// Reads a property block for `context`, refusing unknown identifiers, identifiers the context
/// does not allow, repeats of properties that may appear only once, and out-of-range values.
pub(crate) fn decode_properties(r: &mut Reader, context: PropertyContext) -> Result<Properties, DecodeError> {
    let len = r.varint()?;
    let mut block = r.take(len)?;
    let mut props = Properties::default();
    // Identifiers are below 0x40, so one bit each in a u64 records which were seen.
    let mut seen = 0u64;
    while !block.is_empty() {
        // The identifier is formally a variable byte integer, but every defined identifier
        // fits in one byte, so a byte with the continuation bit is an unknown property.
        let raw = block.u8()?;
        let id = PropertyId::from_u8(raw).ok_or(DecodeError::UnknownProperty(raw))?;
        if !context.allows(id) {
            return Err(DecodeError::PropertyNotAllowed { id: raw, packet: context.name() });
        }
        let bit = 1u64 << raw;
        if seen & bit != 0 && !context.allows_repeated(id) {
            return Err(DecodeError::DuplicateProperty(raw));
        }
        seen |= bit;
        read_value(&mut block, id, &mut props)?;
    }
    Ok(props)
}

/// A byte that must be 0 or 1 (the payload format indicator and the boolean properties).
fn flag(r: &mut Reader, id: PropertyId) -> Result<Option<u8>, DecodeError> {
    match r.u8()? {
        value @ (0 | 1) => Ok(Some(value)),
        _ => Err(DecodeError::InvalidPropertyValue(id as u8)),
    }
}

/// A two-byte integer for which 0 is a protocol error.
fn non_zero_u16(r: &mut Reader, id: PropertyId) -> Result<Option<u16>, DecodeError> {
    match r.u16()? {
        0 => Err(DecodeError::InvalidPropertyValue(id as u8)),
        value => Ok(Some(value)),
    }
}

fn read_value(r: &mut Reader, id: PropertyId, p: &mut Properties) -> Result<(), DecodeError> {
    use PropertyId as P;
    match id {
        P::PayloadFormatIndicator => p.payload_format_indicator = flag(r, id)?,
        P::MessageExpiryInterval => p.message_expiry_interval = Some(r.u32()?),
        P::ContentType => p.content_type = Some(r.string()?),
        P::ResponseTopic => p.response_topic = Some(r.string()?),
        P::CorrelationData => p.correlation_data = Some(r.binary()?),
        P::SubscriptionIdentifier => {
            // [MQTT-3.8.2.1.2]: 1..=268435455; the variable byte integer cannot exceed the
            // upper bound, so only zero needs refusing.
            let value = r.varint()?;
            let value =
                u32::try_from(value).ok().filter(|v| *v != 0).ok_or(DecodeError::InvalidPropertyValue(id as u8))?;
            p.subscription_identifiers.push(value);
        }
        P::SessionExpiryInterval => p.session_expiry_interval = Some(r.u32()?),
        P::AssignedClientIdentifier => p.assigned_client_identifier = Some(r.string()?),
        P::ServerKeepAlive => p.server_keep_alive = Some(r.u16()?),
        P::AuthenticationMethod => p.authentication_method = Some(r.string()?),
        P::AuthenticationData => p.authentication_data = Some(r.binary()?),
        P::RequestProblemInformation => p.request_problem_information = flag(r, id)?,
        P::WillDelayInterval => p.will_delay_interval = Some(r.u32()?),
        P::RequestResponseInformation => p.request_response_information = flag(r, id)?,
        P::ResponseInformation => p.response_information = Some(r.string()?),
        P::ServerReference => p.server_reference = Some(r.string()?),
        P::ReasonString => p.reason_string = Some(r.string()?),
        // [MQTT-3.1.2.11.3], [MQTT-3.2.2.3.3]: a receive maximum of 0 is a protocol error.
        P::ReceiveMaximum => p.receive_maximum = non_zero_u16(r, id)?,
        P::TopicAliasMaximum => p.topic_alias_maximum = Some(r.u16()?),
        // [MQTT-3.3.2.3.4]: a topic alias of 0 is not permitted.
        P::TopicAlias => p.topic_alias = non_zero_u16(r, id)?,
        P::MaximumQoS => p.maximum_qos = flag(r, id)?,
        P::RetainAvailable => p.retain_available = flag(r, id)?,
        P::UserProperty => {
            let key = r.string()?;
            let value = r.string()?;
            p.user_properties.push((key, value));
        }
        // [MQTT-3.1.2.11.4], [MQTT-3.2.2.3.6]: a maximum packet size of 0 is a protocol error.
        P::MaximumPacketSize => match r.u32()? {
            0 => return Err(DecodeError::InvalidPropertyValue(id as u8)),
            value => p.maximum_packet_size = Some(value),
        },
        P::WildcardSubscriptionAvailable => p.wildcard_subscription_available = flag(r, id)?,
        P::SubscriptionIdentifierAvailable => p.subscription_identifier_available = flag(r, id)?,
        P::SharedSubscriptionAvailable => p.shared_subscription_available = flag(r, id)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn decode(bytes: &'static [u8], context: PropertyContext) -> Result<Properties, DecodeError> {
        let mut r = Reader::new(Bytes::from_static(bytes));
        let props = decode_properties(&mut r, context)?;
        r.finish()?;
        Ok(props)
    }

    #[test]
    fn empty_block() {
        assert_eq!(decode(&[0], PropertyContext::Connect), Ok(Properties::default()));
    }

    #[test]
    fn user_properties_repeat_in_order() {
        let props = decode(&[13, 0x26, 0, 1, b'a', 0, 1, b'1', 0x26, 0, 1, b'a', 0, 0], PropertyContext::PubAck);
        let expected = vec![("a".into(), "1".into()), ("a".into(), String::new())];
        assert_eq!(props.map(|p| p.user_properties), Ok(expected));
    }

    #[test]
    fn unknown_property_mqtt_2_2_2_2() {
        assert_eq!(decode(&[2, 0x04, 0], PropertyContext::Publish), Err(DecodeError::UnknownProperty(4)));
        assert_eq!(decode(&[2, 0x81, 0x01], PropertyContext::Publish), Err(DecodeError::UnknownProperty(0x81)));
    }

    #[test]
    fn property_on_the_wrong_packet_is_refused_mqtt_2_2_2_2() {
        // Topic alias belongs to PUBLISH only.
        assert_eq!(
            decode(&[3, 0x23, 0, 1], PropertyContext::Connect),
            Err(DecodeError::PropertyNotAllowed { id: 0x23, packet: "CONNECT" })
        );
        // Will delay interval belongs to the will properties, not CONNECT's own.
        assert_eq!(
            decode(&[5, 0x18, 0, 0, 0, 1], PropertyContext::Connect),
            Err(DecodeError::PropertyNotAllowed { id: 0x18, packet: "CONNECT" })
        );
    }

    #[test]
    fn duplicate_property_is_a_protocol_error() {
        assert_eq!(
            decode(&[6, 0x21, 0, 1, 0x21, 0, 2], PropertyContext::Connect),
            Err(DecodeError::DuplicateProperty(0x21))
        );
    }

    #[test]
    fn subscription_identifier_repeats_in_publish_only() {
        let publish = decode(&[4, 0x0B, 1, 0x0B, 2], PropertyContext::Publish);
        assert_eq!(publish.map(|p| p.subscription_identifiers), Ok(vec![1, 2]));
        assert_eq!(
            decode(&[4, 0x0B, 1, 0x0B, 2], PropertyContext::Subscribe),
            Err(DecodeError::DuplicateProperty(0x0B))
        );
    }

    #[test]
    fn subscription_identifier_zero_is_a_protocol_error_mqtt_3_8_2_1_2() {
        assert_eq!(decode(&[2, 0x0B, 0], PropertyContext::Subscribe), Err(DecodeError::InvalidPropertyValue(0x0B)));
    }

    #[test]
    fn value_range_checks() {
        use PropertyContext::*;
        let cases: [(&'static [u8], PropertyContext, u8); 9] = [
            (&[2, 0x01, 2], Publish, 0x01),
            (&[2, 0x17, 2], Connect, 0x17),
            (&[2, 0x19, 2], Connect, 0x19),
            (&[2, 0x24, 2], ConnAck, 0x24),
            (&[2, 0x2A, 2], ConnAck, 0x2A),
            (&[3, 0x21, 0, 0], Connect, 0x21),
            (&[5, 0x27, 0, 0, 0, 0], ConnAck, 0x27),
            (&[3, 0x23, 0, 0], Publish, 0x23),
            (&[2, 0x25, 7], ConnAck, 0x25),
        ];
        for (bytes, context, id) in cases {
            assert_eq!(decode(bytes, context), Err(DecodeError::InvalidPropertyValue(id)), "{id:#x}");
        }
    }

    #[test]
    fn property_block_longer_than_body_is_truncated() {
        assert_eq!(decode(&[5, 0x01, 1], PropertyContext::Publish), Err(DecodeError::Truncated));
        // A value running past the end of its block is truncated too, even if the body goes on.
        assert_eq!(decode(&[2, 0x02, 0, 0, 0], PropertyContext::Publish), Err(DecodeError::Truncated));
    }
}
