//! MQTT 5.0 helpers: packets with properties, subscription options and identifiers, and the
//! broker's DISCONNECT with a reason code before it closes a connection.

use std::net::SocketAddr;

use bytes::Bytes;
use tern_codec::{
    ConnAck, Connect, Disconnect, Packet, Properties, ProtocolVersion, PubResponse, Publish, QoS, SubAck, Subscribe,
    SubscribeFilter, SubscriptionOptions, TopicName, UnsubAck,
};

use crate::packets::{self, pid};
use crate::raw_client::RawClient;

/// A 5.0 CONNECT with keep alive 60 and these properties.
pub fn connect_v5(client_id: &str, clean_start: bool, properties: Properties) -> Connect {
    Connect { properties, ..packets::connect(ProtocolVersion::V5, client_id, clean_start) }
}

/// A PUBLISH with properties. The topic may be empty (for a topic alias).
pub fn publish_v5(
    topic: &str,
    payload: &[u8],
    qos: QoS,
    retain: bool,
    packet_id: Option<u16>,
    properties: Properties,
) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain,
        topic: TopicName::new(topic).expect("valid topic"),
        packet_id: packet_id.map(pid),
        payload: Bytes::copy_from_slice(payload),
        properties,
    })
}

/// Subscription options with `qos` and every 5.0 option at its default.
pub fn options(qos: QoS) -> SubscriptionOptions {
    SubscriptionOptions { qos, ..Default::default() }
}

/// A SUBSCRIBE with 5.0 options per filter and, if given, a subscription identifier.
pub fn subscribe_v5(packet_id: u16, filters: &[(&str, SubscriptionOptions)], subscription_id: Option<u32>) -> Packet {
    Packet::Subscribe(Subscribe {
        packet_id: pid(packet_id),
        filters: filters
            .iter()
            .map(|(filter, options)| SubscribeFilter { filter: filter.to_string(), options: *options })
            .collect(),
        properties: Properties {
            subscription_identifiers: subscription_id.into_iter().collect(),
            ..Default::default()
        },
    })
}

/// A DISCONNECT with a reason code and properties.
pub fn disconnect_v5(reason_code: u8, properties: Properties) -> Packet {
    Packet::Disconnect(Disconnect { reason_code, properties })
}

/// A PUBACK, PUBREC, PUBREL or PUBCOMP body with a reason code.
pub fn pub_response(id: u16, reason_code: u8) -> PubResponse {
    PubResponse { packet_id: pid(id), reason_code, properties: Properties::default() }
}

impl RawClient {
    /// Connects with a 5.0 CONNECT carrying `properties`; asserts the CONNACK accepts.
    pub async fn connect_v5(
        addr: SocketAddr,
        client_id: &str,
        clean_start: bool,
        properties: Properties,
    ) -> (RawClient, ConnAck) {
        let (client, connack) = RawClient::connect_with(addr, connect_v5(client_id, clean_start, properties)).await;
        assert_eq!(connack.code.0, 0, "CONNACK refused for {client_id}: {connack:?}");
        (client, connack)
    }

    /// Sends a 5.0 SUBSCRIBE and returns its SUBACK (checked to answer this packet id).
    pub async fn subscribe_v5(
        &mut self,
        packet_id: u16,
        filters: &[(&str, SubscriptionOptions)],
        subscription_id: Option<u32>,
    ) -> SubAck {
        self.send(subscribe_v5(packet_id, filters, subscription_id)).await;
        let suback = self.expect_suback().await;
        assert_eq!(suback.packet_id.get(), packet_id, "SUBACK for another packet: {suback:?}");
        suback
    }

    pub async fn expect_suback(&mut self) -> SubAck {
        match self.recv().await {
            Packet::SubAck(suback) => suback,
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    pub async fn expect_unsuback(&mut self) -> UnsubAck {
        match self.recv().await {
            Packet::UnsubAck(unsuback) => unsuback,
            other => panic!("expected UNSUBACK, got {other:?}"),
        }
    }

    pub async fn expect_puback(&mut self) -> PubResponse {
        match self.recv().await {
            Packet::PubAck(ack) => ack,
            other => panic!("expected PUBACK, got {other:?}"),
        }
    }

    pub async fn expect_pubrec(&mut self) -> PubResponse {
        match self.recv().await {
            Packet::PubRec(ack) => ack,
            other => panic!("expected PUBREC, got {other:?}"),
        }
    }

    pub async fn expect_pubcomp(&mut self) -> PubResponse {
        match self.recv().await {
            Packet::PubComp(ack) => ack,
            other => panic!("expected PUBCOMP, got {other:?}"),
        }
    }

    /// Asserts that the next packet is a DISCONNECT with `reason_code` and that the broker then
    /// closes the connection without sending anything else; returns the DISCONNECT.
    pub async fn expect_disconnect(&mut self, reason_code: u8) -> Disconnect {
        let disconnect = match self.recv().await {
            Packet::Disconnect(disconnect) => disconnect,
            other => panic!("expected DISCONNECT 0x{reason_code:02X}, got {other:?}"),
        };
        assert_eq!(
            disconnect.reason_code, reason_code,
            "DISCONNECT 0x{:02X}, expected 0x{reason_code:02X}: {disconnect:?}",
            disconnect.reason_code
        );
        let after = self.expect_closed().await;
        assert!(after.is_empty(), "packets after DISCONNECT: {after:?}");
        disconnect
    }

    /// Publishes a 5.0 PUBLISH with QoS 1 and returns the broker's PUBACK.
    pub async fn publish_qos1_v5(
        &mut self,
        topic: &str,
        payload: &[u8],
        packet_id: u16,
        properties: Properties,
    ) -> PubResponse {
        self.send(publish_v5(topic, payload, QoS::AtLeastOnce, false, Some(packet_id), properties)).await;
        let ack = self.expect_puback().await;
        assert_eq!(ack.packet_id.get(), packet_id, "PUBACK for another packet: {ack:?}");
        ack
    }
}
