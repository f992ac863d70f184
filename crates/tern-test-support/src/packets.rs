//! Builders for the packets tests send most.

use bytes::Bytes;
use tern_codec::{
    Connect, LastWill, Packet, PacketId, Properties, ProtocolVersion, PubResponse, Publish, QoS, Subscribe,
    SubscribeFilter, SubscriptionOptions, TopicName, Unsubscribe,
};

/// Packet id from a number; panics on 0, which tests never mean.
pub fn pid(id: u16) -> PacketId {
    PacketId::new(id).expect("test packet ids are not 0")
}

pub fn connect(version: ProtocolVersion, client_id: &str, clean_start: bool) -> Connect {
    Connect {
        protocol: version,
        clean_start,
        keep_alive: 60,
        client_id: client_id.to_string(),
        will: None,
        username: None,
        password: None,
        properties: Properties::default(),
    }
}

pub fn will(topic: &str, payload: &'static [u8], qos: QoS, retain: bool) -> LastWill {
    LastWill {
        topic: TopicName::new(topic).expect("valid will topic"),
        payload: Bytes::from_static(payload),
        qos,
        retain,
        properties: Properties::default(),
    }
}

pub fn publish(topic: &str, payload: &[u8], qos: QoS, retain: bool, packet_id: Option<u16>) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain,
        topic: TopicName::new(topic).expect("valid topic"),
        packet_id: packet_id.map(pid),
        payload: Bytes::copy_from_slice(payload),
        properties: Properties::default(),
    })
}

pub fn subscribe(packet_id: u16, filters: &[(&str, QoS)]) -> Packet {
    Packet::Subscribe(Subscribe {
        packet_id: pid(packet_id),
        filters: filters
            .iter()
            .map(|(filter, qos)| SubscribeFilter {
                filter: filter.to_string(),
                options: SubscriptionOptions { qos: *qos, ..Default::default() },
            })
            .collect(),
        properties: Properties::default(),
    })
}

pub fn unsubscribe(packet_id: u16, filters: &[&str]) -> Packet {
    Packet::Unsubscribe(Unsubscribe {
        packet_id: pid(packet_id),
        filters: filters.iter().map(|f| f.to_string()).collect(),
        properties: Properties::default(),
    })
}

pub fn puback(id: u16) -> Packet {
    Packet::PubAck(PubResponse::new(pid(id)))
}

pub fn pubrec(id: u16) -> Packet {
    Packet::PubRec(PubResponse::new(pid(id)))
}

pub fn pubrel(id: u16) -> Packet {
    Packet::PubRel(PubResponse::new(pid(id)))
}

pub fn pubcomp(id: u16) -> Packet {
    Packet::PubComp(PubResponse::new(pid(id)))
}

/// The protocol levels 3.1 and 3.1.1, which every black-box test runs against.
pub const V3_VERSIONS: [ProtocolVersion; 2] = [ProtocolVersion::V3_1, ProtocolVersion::V3_1_1];
