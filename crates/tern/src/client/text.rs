//! Packets and reason codes in words, for `-d` output and error messages.

use tern_codec::{Packet, PacketId, ProtocolVersion, PubResponse};

/// One line (one per filter for SUBSCRIBE) in mosquitto's `-d` style; payloads are not shown.
pub(super) fn describe(packet: &Packet) -> Vec<String> {
    let response = |name: &str, r: &PubResponse| format!("{name} (Mid: {}, RC:{})", r.packet_id, r.reason_code);
    match packet {
        Packet::ConnAck(connack) => vec![format!("CONNACK ({})", connack.code.0)],
        Packet::Publish(p) => vec![format!(
            "PUBLISH (d{}, q{}, r{}, m{}, '{}', ... ({} bytes))",
            u8::from(p.dup),
            p.qos as u8,
            u8::from(p.retain),
            p.packet_id.map_or(0, PacketId::get),
            p.topic,
            p.payload.len()
        )],
        Packet::PubAck(r) => vec![response("PUBACK", r)],
        Packet::PubRec(r) => vec![response("PUBREC", r)],
        Packet::PubRel(r) => vec![response("PUBREL", r)],
        Packet::PubComp(r) => vec![response("PUBCOMP", r)],
        Packet::Subscribe(s) => s
            .filters
            .iter()
            .map(|f| format!("SUBSCRIBE (Mid: {}, Topic: {}, QoS: {})", s.packet_id, f.filter, f.options.qos as u8))
            .collect(),
        Packet::SubAck(s) => vec![format!("SUBACK (Mid: {}, Codes: {:?})", s.packet_id, s.return_codes)],
        Packet::Disconnect(d) => vec![format!("DISCONNECT ({})", d.reason_code)],
        other => vec![other.name().to_owned()],
    }
}

/// A CONNACK return code in words: 3.1/3.1.1 codes 1 to 5, or a 5.0 reason code.
pub fn connack_text(version: ProtocolVersion, code: u8) -> &'static str {
    if version == ProtocolVersion::V5 {
        return reason_text(code);
    }
    match code {
        0x00 => "accepted",
        0x01 => "unacceptable protocol version",
        0x02 => "identifier rejected",
        0x03 => "server unavailable",
        0x04 => "bad user name or password",
        0x05 => "not authorised",
        _ => "unknown return code",
    }
}

/// An MQTT 5.0 reason code in words ([MQTT-2.4]). 3.1.1's SUBACK failure 0x80 reads the same.
pub fn reason_text(code: u8) -> &'static str {
    match code {
        0x00 => "success",
        0x01 | 0x02 => "granted",
        0x04 => "disconnect with will message",
        0x10 => "no matching subscribers",
        0x80 => "unspecified error",
        0x81 => "malformed packet",
        0x82 => "protocol error",
        0x83 => "implementation specific error",
        0x84 => "unsupported protocol version",
        0x85 => "client identifier not valid",
        0x86 => "bad user name or password",
        0x87 => "not authorized",
        0x88 => "server unavailable",
        0x89 => "server busy",
        0x8A => "banned",
        0x8B => "server shutting down",
        0x8C => "bad authentication method",
        0x8D => "keep alive timeout",
        0x8E => "session taken over",
        0x8F => "topic filter invalid",
        0x90 => "topic name invalid",
        0x91 => "packet identifier in use",
        0x92 => "packet identifier not found",
        0x93 => "receive maximum exceeded",
        0x94 => "topic alias invalid",
        0x95 => "packet too large",
        0x96 => "message rate too high",
        0x97 => "quota exceeded",
        0x98 => "administrative action",
        0x99 => "payload format invalid",
        0x9A => "retain not supported",
        0x9B => "QoS not supported",
        0x9C => "use another server",
        0x9D => "server moved",
        0x9E => "shared subscriptions not supported",
        0x9F => "connection rate exceeded",
        0xA0 => "maximum connect time",
        0xA1 => "subscription identifiers not supported",
        0xA2 => "wildcard subscriptions not supported",
        _ => "unknown reason code",
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use tern_codec::{Properties, Publish, QoS, TopicName};

    use super::*;

    #[test]
    fn connack_codes_read_as_words() {
        assert_eq!(connack_text(ProtocolVersion::V3_1_1, 4), "bad user name or password");
        assert_eq!(connack_text(ProtocolVersion::V3_1, 2), "identifier rejected");
        assert_eq!(connack_text(ProtocolVersion::V5, 0x86), "bad user name or password");
        assert_eq!(connack_text(ProtocolVersion::V5, 0x87), "not authorized");
    }

    #[test]
    fn publish_is_described_without_its_payload() {
        let publish = Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: true,
            topic: TopicName::new("a/b").unwrap(),
            packet_id: PacketId::new(7),
            payload: Bytes::from_static(b"secret"),
            properties: Properties::default(),
        };
        let lines = describe(&Packet::Publish(publish));
        assert_eq!(lines, ["PUBLISH (d0, q1, r1, m7, 'a/b', ... (6 bytes))"]);
    }
}
