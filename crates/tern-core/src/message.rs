//! An application message as the broker routes it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tern_codec::{LastWill, Properties, Publish, QoS, TopicName};

use crate::client_id::ClientId;

/// A published message. It is stored once and shared by reference (`Arc<Message>`) with every
/// subscriber it is delivered to; what differs per subscriber travels in [`Delivery`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: TopicName,
    pub payload: Bytes,
    /// The QoS it was published with.
    pub qos: QoS,
    /// The retain flag it was published with.
    pub retain: bool,
    /// The 5.0 properties forwarded unaltered ([MQTT-3.3.2-4], [MQTT-3.3.2-17..20]): payload
    /// format, content type, response topic, correlation data, user properties. Per-hop
    /// properties (topic alias, subscription identifiers, message expiry) are not kept here.
    pub properties: Properties,
    /// When the message expires; it is not delivered after that ([MQTT-3.3.2-5]).
    pub expires_at: Option<Instant>,
    /// The session that published it, for the no local option.
    pub origin: Option<ClientId>,
}

/// The forwarded part of incoming properties, and the expiry deadline.
fn forwarded(mut properties: Properties, now: Instant) -> (Properties, Option<Instant>) {
    let expires_at = properties.message_expiry_interval.take().map(|secs| now + Duration::from_secs(u64::from(secs)));
    properties.topic_alias = None;
    properties.subscription_identifiers.clear();
    (properties, expires_at)
}

impl Message {
    /// The message of a PUBLISH from `origin`, received at `now`. `topic` is the resolved
    /// topic (after a 5.0 topic alias).
    pub fn from_publish(publish: Publish, topic: TopicName, origin: Option<ClientId>, now: Instant) -> Message {
        let (properties, expires_at) = forwarded(publish.properties, now);
        Message {
            topic,
            payload: publish.payload,
            qos: publish.qos,
            retain: publish.retain,
            properties,
            expires_at,
            origin,
        }
    }

    /// The message a will becomes when it is published at `now`.
    pub fn from_will(will: LastWill, origin: Option<ClientId>, now: Instant) -> Message {
        let (mut properties, expires_at) = forwarded(will.properties, now);
        properties.will_delay_interval = None;
        Message {
            topic: will.topic,
            payload: will.payload,
            qos: will.qos,
            retain: will.retain,
            properties,
            expires_at,
            origin,
        }
    }

    /// Bytes the message costs in a queue budget.
    pub fn cost(&self) -> usize {
        self.payload.len() + self.topic.as_str().len()
    }

    pub fn is_expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// The Message Expiry Interval to forward: the time left, in whole seconds rounded up
    /// ([MQTT-3.3.2-6]).
    pub fn remaining_expiry(&self, now: Instant) -> Option<u32> {
        self.expires_at.map(|at| {
            let left = at.saturating_duration_since(now);
            let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            u32::try_from(secs).unwrap_or(u32::MAX)
        })
    }
}

/// One message on its way to one session.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub message: Arc<Message>,
    /// The minimum of the published QoS and the subscription's ([MQTT-3.8.4-6]).
    pub qos: QoS,
    /// The retain flag on the outgoing PUBLISH: set for retained messages sent because of a
    /// new subscription ([MQTT-3.3.1-8]) and, with retain as published, for live ones
    /// ([MQTT-3.3.1-12]); clear otherwise ([MQTT-3.3.1-9]).
    pub retain: bool,
    /// Identifiers of every subscription that matched (5.0) ([MQTT-3.3.4-3]).
    pub subscription_identifiers: Vec<u32>,
    /// The shared subscription group this delivery was chosen for, so it can be handed to
    /// another member if this one leaves before completing it.
    pub shared_group: Option<crate::shared::GroupKey>,
    /// Where the delivery is kept in its session's stored queue, if it is.
    pub stored: Option<StoredAt>,
}

/// A delivery's place in a persistent session's stored queue, and the length of its record
/// (for the stored-bytes budget).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredAt {
    pub seq: crate::store::QueueSeq,
    pub len: u64,
}
