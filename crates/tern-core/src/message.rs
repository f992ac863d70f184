//! An application message as the broker routes it.

use std::sync::Arc;

use bytes::Bytes;
use tern_codec::{Properties, Publish, QoS, TopicName};

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
    pub properties: Properties,
}

impl Message {
    pub fn from_publish(publish: Publish) -> Message {
        Message {
            topic: publish.topic,
            payload: publish.payload,
            qos: publish.qos,
            retain: publish.retain,
            properties: publish.properties,
        }
    }

    /// Bytes the message costs in a queue budget.
    pub fn cost(&self) -> usize {
        self.payload.len() + self.topic.as_str().len()
    }
}

/// One message on its way to one session.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub message: Arc<Message>,
    /// The minimum of the published QoS and the subscription's ([MQTT-3.8.4-6]).
    pub qos: QoS,
    /// The retain flag on the outgoing PUBLISH: set only for retained messages sent because of
    /// a new subscription ([MQTT-3.3.1-8], [MQTT-3.3.1-9]).
    pub retain: bool,
}
