//! Which 5.0 property may appear where, and how often ([MQTT-2.2.2.2], table 2-4).
//!
//! The decoder refuses what this table forbids, and the encoder leaves it out, so the two can
//! never disagree about what a valid packet is.

use crate::properties::PropertyId;

/// The property sets of MQTT 5.0: one per packet type that has properties, plus the will
/// properties inside CONNECT's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PropertyContext {
    Connect,
    Will,
    ConnAck,
    Publish,
    PubAck,
    PubRec,
    PubRel,
    PubComp,
    Subscribe,
    SubAck,
    Unsubscribe,
    UnsubAck,
    Disconnect,
    Auth,
}

impl PropertyContext {
    /// The name used in [`crate::DecodeError::PropertyNotAllowed`].
    pub(crate) fn name(self) -> &'static str {
        use PropertyContext::*;
        match self {
            Connect => "CONNECT",
            Will => "will properties",
            ConnAck => "CONNACK",
            Publish => "PUBLISH",
            PubAck => "PUBACK",
            PubRec => "PUBREC",
            PubRel => "PUBREL",
            PubComp => "PUBCOMP",
            Subscribe => "SUBSCRIBE",
            SubAck => "SUBACK",
            Unsubscribe => "UNSUBSCRIBE",
            UnsubAck => "UNSUBACK",
            Disconnect => "DISCONNECT",
            Auth => "AUTH",
        }
    }

    /// Whether `id` may appear in this property set.
    pub(crate) fn allows(self, id: PropertyId) -> bool {
        use PropertyContext::*;
        use PropertyId as P;
        match id {
            P::PayloadFormatIndicator
            | P::MessageExpiryInterval
            | P::ContentType
            | P::ResponseTopic
            | P::CorrelationData => matches!(self, Publish | Will),
            P::SubscriptionIdentifier => matches!(self, Publish | Subscribe),
            P::SessionExpiryInterval => matches!(self, Connect | ConnAck | Disconnect),
            P::AssignedClientIdentifier
            | P::ServerKeepAlive
            | P::ResponseInformation
            | P::MaximumQoS
            | P::RetainAvailable
            | P::WildcardSubscriptionAvailable
            | P::SubscriptionIdentifierAvailable
            | P::SharedSubscriptionAvailable => self == ConnAck,
            P::AuthenticationMethod | P::AuthenticationData => {
                matches!(self, Connect | ConnAck | Auth)
            }
            P::RequestProblemInformation | P::RequestResponseInformation => self == Connect,
            P::WillDelayInterval => self == Will,
            P::ServerReference => matches!(self, ConnAck | Disconnect),
            P::ReasonString => !matches!(self, Connect | Will | Publish | Subscribe | Unsubscribe),
            P::ReceiveMaximum | P::TopicAliasMaximum | P::MaximumPacketSize => {
                matches!(self, Connect | ConnAck)
            }
            P::TopicAlias => self == Publish,
            P::UserProperty => true,
        }
    }

    /// Whether `id` may appear more than once: user properties everywhere, subscription
    /// identifiers in PUBLISH (one per matching subscription) but not in SUBSCRIBE.
    pub(crate) fn allows_repeated(self, id: PropertyId) -> bool {
        match id {
            PropertyId::UserProperty => true,
            PropertyId::SubscriptionIdentifier => self == PropertyContext::Publish,
            _ => false,
        }
    }
}

impl PropertyId {
    /// Every property identifier, in ascending order.
    pub const ALL: [PropertyId; 27] = [
        PropertyId::PayloadFormatIndicator,
        PropertyId::MessageExpiryInterval,
        PropertyId::ContentType,
        PropertyId::ResponseTopic,
        PropertyId::CorrelationData,
        PropertyId::SubscriptionIdentifier,
        PropertyId::SessionExpiryInterval,
        PropertyId::AssignedClientIdentifier,
        PropertyId::ServerKeepAlive,
        PropertyId::AuthenticationMethod,
        PropertyId::AuthenticationData,
        PropertyId::RequestProblemInformation,
        PropertyId::WillDelayInterval,
        PropertyId::RequestResponseInformation,
        PropertyId::ResponseInformation,
        PropertyId::ServerReference,
        PropertyId::ReasonString,
        PropertyId::ReceiveMaximum,
        PropertyId::TopicAliasMaximum,
        PropertyId::TopicAlias,
        PropertyId::MaximumQoS,
        PropertyId::RetainAvailable,
        PropertyId::UserProperty,
        PropertyId::MaximumPacketSize,
        PropertyId::WildcardSubscriptionAvailable,
        PropertyId::SubscriptionIdentifierAvailable,
        PropertyId::SharedSubscriptionAvailable,
    ];

    /// The property with identifier `id`, if there is one.
    pub fn from_u8(id: u8) -> Option<PropertyId> {
        PropertyId::ALL.into_iter().find(|p| *p as u8 == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_u8_round_trips_every_identifier() {
        for id in PropertyId::ALL {
            assert_eq!(PropertyId::from_u8(id as u8), Some(id));
        }
        assert_eq!(PropertyId::from_u8(0x00), None);
        assert_eq!(PropertyId::from_u8(0x04), None);
        assert_eq!(PropertyId::from_u8(0x2B), None);
    }

    #[test]
    fn table_2_4_spot_checks() {
        use PropertyContext::*;
        assert!(Will.allows(PropertyId::WillDelayInterval));
        assert!(!Connect.allows(PropertyId::WillDelayInterval));
        assert!(!Unsubscribe.allows(PropertyId::ReasonString));
        assert!(Unsubscribe.allows(PropertyId::UserProperty));
        assert!(PubRel.allows(PropertyId::ReasonString));
        assert!(!Publish.allows(PropertyId::ReasonString));
        assert!(Subscribe.allows(PropertyId::SubscriptionIdentifier));
        assert!(!Subscribe.allows_repeated(PropertyId::SubscriptionIdentifier));
        assert!(Publish.allows_repeated(PropertyId::SubscriptionIdentifier));
        assert!(Auth.allows(PropertyId::AuthenticationData));
        assert!(!Disconnect.allows(PropertyId::AuthenticationMethod));
    }
}
