//! Encoding the content of a 5.0 property block ([MQTT-2.2.2]).
//!
//! Properties are written in identifier order, user properties in the order given. A property
//! that `context` does not allow is left out rather than sent, because the peer would have to
//! treat it as a malformed packet ([MQTT-2.2.2.2]); this lets the broker reuse one
//! [`Properties`] value across packets (e.g. publish a will with the will's properties).

use crate::encode::sink::Sink;
use crate::error::EncodeError;
use crate::properties::{Properties, PropertyId};
use crate::property_rules::PropertyContext;
use crate::varint::MAX_REMAINING_LENGTH;

pub(crate) fn write_property_content<S: Sink>(
    s: &mut S,
    p: &Properties,
    context: PropertyContext,
) -> Result<(), EncodeError> {
    use PropertyId as P;
    let mut w = PropertyWriter { s, context };
    w.byte(P::PayloadFormatIndicator, p.payload_format_indicator);
    w.u32(P::MessageExpiryInterval, p.message_expiry_interval);
    w.string(P::ContentType, p.content_type.as_deref())?;
    w.string(P::ResponseTopic, p.response_topic.as_deref())?;
    w.binary(P::CorrelationData, p.correlation_data.as_deref())?;
    if w.allowed(P::SubscriptionIdentifier) {
        // SUBSCRIBE carries at most one; extra values could only produce a packet the peer
        // must refuse, so only the first is written there.
        let count = if context == PropertyContext::Publish { usize::MAX } else { 1 };
        for &id in p.subscription_identifiers.iter().take(count) {
            let value = usize::try_from(id).unwrap_or(usize::MAX);
            if id == 0 || value > MAX_REMAINING_LENGTH {
                return Err(EncodeError::SubscriptionIdentifierOutOfRange(id));
            }
            w.s.put_u8(P::SubscriptionIdentifier as u8);
            w.s.put_varint(value);
        }
    }
    w.u32(P::SessionExpiryInterval, p.session_expiry_interval);
    w.string(P::AssignedClientIdentifier, p.assigned_client_identifier.as_deref())?;
    w.u16(P::ServerKeepAlive, p.server_keep_alive);
    w.string(P::AuthenticationMethod, p.authentication_method.as_deref())?;
    w.binary(P::AuthenticationData, p.authentication_data.as_deref())?;
    w.byte(P::RequestProblemInformation, p.request_problem_information);
    w.u32(P::WillDelayInterval, p.will_delay_interval);
    w.byte(P::RequestResponseInformation, p.request_response_information);
    w.string(P::ResponseInformation, p.response_information.as_deref())?;
    w.string(P::ServerReference, p.server_reference.as_deref())?;
    w.string(P::ReasonString, p.reason_string.as_deref())?;
    w.u16(P::ReceiveMaximum, p.receive_maximum);
    w.u16(P::TopicAliasMaximum, p.topic_alias_maximum);
    w.u16(P::TopicAlias, p.topic_alias);
    w.byte(P::MaximumQoS, p.maximum_qos);
    w.byte(P::RetainAvailable, p.retain_available);
    if w.allowed(P::UserProperty) {
        for (key, value) in &p.user_properties {
            w.s.put_u8(P::UserProperty as u8);
            w.s.put_string(key)?;
            w.s.put_string(value)?;
        }
    }
    w.u32(P::MaximumPacketSize, p.maximum_packet_size);
    w.byte(P::WildcardSubscriptionAvailable, p.wildcard_subscription_available);
    w.byte(P::SubscriptionIdentifierAvailable, p.subscription_identifier_available);
    w.byte(P::SharedSubscriptionAvailable, p.shared_subscription_available);
    Ok(())
}

/// Writes one optional property if it is present and allowed in the context.
struct PropertyWriter<'a, S> {
    s: &'a mut S,
    context: PropertyContext,
}

impl<S: Sink> PropertyWriter<'_, S> {
    fn allowed(&self, id: PropertyId) -> bool {
        self.context.allows(id)
    }

    /// Writes the identifier if the context allows it; returns whether the value follows.
    fn id(&mut self, id: PropertyId) -> bool {
        let allowed = self.allowed(id);
        if allowed {
            self.s.put_u8(id as u8);
        }
        allowed
    }

    fn byte(&mut self, id: PropertyId, value: Option<u8>) {
        if let Some(value) = value {
            if self.id(id) {
                self.s.put_u8(value);
            }
        }
    }

    fn u16(&mut self, id: PropertyId, value: Option<u16>) {
        if let Some(value) = value {
            if self.id(id) {
                self.s.put_u16(value);
            }
        }
    }

    fn u32(&mut self, id: PropertyId, value: Option<u32>) {
        if let Some(value) = value {
            if self.id(id) {
                self.s.put_u32(value);
            }
        }
    }

    fn string(&mut self, id: PropertyId, value: Option<&str>) -> Result<(), EncodeError> {
        self.binary(id, value.map(str::as_bytes))
    }

    fn binary(&mut self, id: PropertyId, value: Option<&[u8]>) -> Result<(), EncodeError> {
        if let Some(value) = value {
            if self.id(id) {
                self.s.put_binary(value)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::sink::Counter;
    use bytes::BytesMut;

    fn content(p: &Properties, context: PropertyContext) -> Result<Vec<u8>, EncodeError> {
        let mut buf = BytesMut::new();
        write_property_content(&mut buf, p, context)?;
        let mut counter = Counter::default();
        write_property_content(&mut counter, p, context)?;
        assert_eq!(counter.len, buf.len());
        Ok(buf.to_vec())
    }

    #[test]
    fn properties_not_allowed_in_the_context_are_left_out() {
        let p = Properties {
            topic_alias: Some(7),
            reason_string: Some("r".into()),
            user_properties: vec![("k".into(), "v".into())],
            ..Properties::default()
        };
        assert_eq!(content(&p, PropertyContext::Publish), Ok(vec![0x23, 0, 7, 0x26, 0, 1, b'k', 0, 1, b'v']));
        assert_eq!(content(&p, PropertyContext::PubAck), Ok(vec![0x1F, 0, 1, b'r', 0x26, 0, 1, b'k', 0, 1, b'v']));
    }

    #[test]
    fn subscription_identifier_is_encoded_as_varint() {
        let p = Properties { subscription_identifiers: vec![1, 268_435_455], ..Properties::default() };
        assert_eq!(content(&p, PropertyContext::Publish), Ok(vec![0x0B, 0x01, 0x0B, 0xFF, 0xFF, 0xFF, 0x7F]));
        assert_eq!(content(&p, PropertyContext::Subscribe), Ok(vec![0x0B, 0x01]));
    }

    #[test]
    fn out_of_range_subscription_identifier_is_refused() {
        for id in [0, 268_435_456] {
            let p = Properties { subscription_identifiers: vec![id], ..Properties::default() };
            assert_eq!(content(&p, PropertyContext::Publish), Err(EncodeError::SubscriptionIdentifierOutOfRange(id)));
        }
    }

    #[test]
    fn overlong_property_string_is_refused() {
        let p = Properties { reason_string: Some("x".repeat(65_536)), ..Properties::default() };
        assert_eq!(content(&p, PropertyContext::PubAck), Err(EncodeError::FieldTooLong(65_536)));
    }
}
