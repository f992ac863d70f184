//! Byte-exact vectors for every MQTT 3.1.1 packet (and CONNECT of 3.1): each packet encodes to
//! the hand-written bytes, and the bytes decode back to the packet.

use bytes::{Bytes, BytesMut};
use tern_codec::*;

/// Concatenates byte pieces, so that strings can be written as `b"MQTT"`.
fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn pid(value: u16) -> PacketId {
    PacketId::new(value).unwrap()
}

fn topic(name: &str) -> TopicName {
    TopicName::new(name).unwrap()
}

/// Asserts `packet` encodes to exactly `expected` for `version` and decodes back from it.
fn assert_vector(packet: Packet, version: ProtocolVersion, expected: &[u8]) {
    let mut buf = BytesMut::new();
    encode(&packet, version, &mut buf).unwrap();
    assert_eq!(&buf[..], expected, "encoding of {packet:?}");
    assert_eq!(encoded_len(&packet, version), Ok(expected.len()));

    // Trailing bytes of the next packet must stay in the buffer.
    let mut buf = BytesMut::from(&cat(&[expected, &[0xC0]])[..]);
    let options = DecodeOptions { version, max_packet_size: usize::MAX };
    assert_eq!(decode(&mut buf, &options), Ok(Some(packet)));
    assert_eq!(&buf[..], &[0xC0]);
}

const V4: ProtocolVersion = ProtocolVersion::V3_1_1;

#[test]
fn connect_minimal() {
    let connect = Connect {
        protocol: V4,
        clean_start: true,
        keep_alive: 60,
        client_id: String::new(),
        will: None,
        username: None,
        password: None,
        properties: Properties::default(),
    };
    let expected = cat(&[&[0x10, 0x0C, 0x00, 0x04], b"MQTT", &[0x04, 0x02, 0x00, 0x3C, 0x00, 0x00]]);
    assert_vector(Packet::Connect(Box::new(connect)), V4, &expected);
}

#[test]
fn connect_with_will_username_password_spec_figure_3_6() {
    // The flags 0xCE and keep alive 10 of the spec's non-normative example (figure 3.6).
    let connect = Connect {
        protocol: V4,
        clean_start: true,
        keep_alive: 10,
        client_id: "c1".into(),
        will: Some(LastWill {
            topic: topic("w"),
            payload: Bytes::from_static(b"bye"),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: Properties::default(),
        }),
        username: Some("u".into()),
        password: Some(Bytes::from_static(b"p")),
        properties: Properties::default(),
    };
    let expected = cat(&[
        &[0x10, 0x1C, 0x00, 0x04],
        b"MQTT",
        &[0x04, 0xCE, 0x00, 0x0A],
        &[0x00, 0x02],
        b"c1",
        &[0x00, 0x01],
        b"w",
        &[0x00, 0x03],
        b"bye",
        &[0x00, 0x01],
        b"u",
        &[0x00, 0x01],
        b"p",
    ]);
    assert_vector(Packet::Connect(Box::new(connect)), V4, &expected);
}

#[test]
fn connect_will_retain_qos2() {
    let connect = Connect {
        protocol: V4,
        clean_start: false,
        keep_alive: 0,
        client_id: "x".into(),
        will: Some(LastWill {
            topic: topic("a/b"),
            payload: Bytes::new(),
            qos: QoS::ExactlyOnce,
            retain: true,
            properties: Properties::default(),
        }),
        username: None,
        password: None,
        properties: Properties::default(),
    };
    // Flags: will retain 0x20 | will QoS 2 0x10 | will 0x04.
    let expected = cat(&[
        &[0x10, 0x14, 0x00, 0x04],
        b"MQTT",
        &[0x04, 0x34, 0x00, 0x00, 0x00, 0x01],
        b"x",
        &[0x00, 0x03],
        b"a/b",
        &[0x00, 0x00],
    ]);
    assert_vector(Packet::Connect(Box::new(connect)), V4, &expected);
}

#[test]
fn connect_mqtt_3_1_uses_mqisdp_level_3() {
    let connect = Connect {
        protocol: ProtocolVersion::V3_1,
        clean_start: true,
        keep_alive: 60,
        client_id: "abc".into(),
        will: None,
        username: Some("user".into()),
        password: Some(Bytes::from_static(b"pw")),
        properties: Properties::default(),
    };
    let expected = cat(&[
        &[0x10, 0x1B, 0x00, 0x06],
        b"MQIsdp",
        &[0x03, 0xC2, 0x00, 0x3C, 0x00, 0x03],
        b"abc",
        &[0x00, 0x04],
        b"user",
        &[0x00, 0x02],
        b"pw",
    ]);
    // CONNECT is decoded by the level it carries, whatever the connection assumed.
    assert_vector(Packet::Connect(Box::new(connect.clone())), V4, &expected);
    assert_vector(Packet::Connect(Box::new(connect)), ProtocolVersion::V3_1, &expected);
}

#[test]
fn connack() {
    let accepted =
        ConnAck { session_present: true, code: ConnectReturnCode::ACCEPTED, properties: Properties::default() };
    assert_vector(Packet::ConnAck(accepted), V4, &[0x20, 0x02, 0x01, 0x00]);
    let refused =
        ConnAck { session_present: false, code: ConnectReturnCode::NOT_AUTHORIZED, properties: Properties::default() };
    assert_vector(Packet::ConnAck(refused), V4, &[0x20, 0x02, 0x00, 0x05]);
}

fn publish(qos: QoS, packet_id: Option<u16>, dup: bool, retain: bool) -> Packet {
    Packet::Publish(Publish {
        dup,
        qos,
        retain,
        topic: topic("a/b"),
        packet_id: packet_id.map(pid),
        payload: Bytes::from_static(b"hi"),
        properties: Properties::default(),
    })
}

#[test]
fn publish_qos0() {
    let expected = cat(&[&[0x30, 0x07, 0x00, 0x03], b"a/b", b"hi"]);
    assert_vector(publish(QoS::AtMostOnce, None, false, false), V4, &expected);
}

#[test]
fn publish_qos1_dup_retain() {
    let expected = cat(&[&[0x3B, 0x09, 0x00, 0x03], b"a/b", &[0x00, 0x0A], b"hi"]);
    assert_vector(publish(QoS::AtLeastOnce, Some(10), true, true), V4, &expected);
}

#[test]
fn publish_qos2() {
    let expected = cat(&[&[0x34, 0x09, 0x00, 0x03], b"a/b", &[0xFF, 0xFF], b"hi"]);
    assert_vector(publish(QoS::ExactlyOnce, Some(65535), false, false), V4, &expected);
}

#[test]
fn publish_with_empty_payload_and_two_byte_remaining_length() {
    let name = "t".repeat(200);
    let packet = Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: topic(&name),
        packet_id: None,
        payload: Bytes::new(),
        properties: Properties::default(),
    });
    // Remaining length 202 = 0xCA 0x01.
    let expected = cat(&[&[0x30, 0xCA, 0x01, 0x00, 0xC8], name.as_bytes()]);
    assert_vector(packet, V4, &expected);
}

#[test]
fn publish_acknowledgements() {
    let r = PubResponse::new(pid(10));
    assert_vector(Packet::PubAck(r.clone()), V4, &[0x40, 0x02, 0x00, 0x0A]);
    assert_vector(Packet::PubRec(r.clone()), V4, &[0x50, 0x02, 0x00, 0x0A]);
    assert_vector(Packet::PubRel(r.clone()), V4, &[0x62, 0x02, 0x00, 0x0A]);
    assert_vector(Packet::PubComp(r), V4, &[0x70, 0x02, 0x00, 0x0A]);
}

#[test]
fn subscribe() {
    let packet = Packet::Subscribe(Subscribe {
        packet_id: pid(10),
        filters: vec![
            SubscribeFilter {
                filter: "a/b".into(),
                options: SubscriptionOptions { qos: QoS::AtLeastOnce, ..Default::default() },
            },
            SubscribeFilter {
                filter: "#".into(),
                options: SubscriptionOptions { qos: QoS::ExactlyOnce, ..Default::default() },
            },
        ],
        properties: Properties::default(),
    });
    let expected = cat(&[&[0x82, 0x0C, 0x00, 0x0A, 0x00, 0x03], b"a/b", &[0x01, 0x00, 0x01], b"#", &[0x02]]);
    assert_vector(packet, V4, &expected);
}

#[test]
fn suback() {
    let packet = Packet::SubAck(SubAck {
        packet_id: pid(10),
        return_codes: vec![0x00, 0x01, 0x02, 0x80],
        properties: Properties::default(),
    });
    assert_vector(packet, V4, &[0x90, 0x06, 0x00, 0x0A, 0x00, 0x01, 0x02, 0x80]);
}

#[test]
fn unsubscribe() {
    let packet = Packet::Unsubscribe(Unsubscribe {
        packet_id: pid(11),
        filters: vec!["a/b".into(), "#".into()],
        properties: Properties::default(),
    });
    let expected = cat(&[&[0xA2, 0x0A, 0x00, 0x0B, 0x00, 0x03], b"a/b", &[0x00, 0x01], b"#"]);
    assert_vector(packet, V4, &expected);
}

#[test]
fn unsuback() {
    let packet =
        Packet::UnsubAck(UnsubAck { packet_id: pid(11), reason_codes: Vec::new(), properties: Properties::default() });
    assert_vector(packet, V4, &[0xB0, 0x02, 0x00, 0x0B]);
}

#[test]
fn ping_and_disconnect() {
    assert_vector(Packet::PingReq, V4, &[0xC0, 0x00]);
    assert_vector(Packet::PingResp, V4, &[0xD0, 0x00]);
    assert_vector(Packet::Disconnect(Disconnect::default()), V4, &[0xE0, 0x00]);
}

#[test]
fn non_minimal_remaining_length_is_accepted() {
    // 0x80 0x00 is remaining length 0 in two bytes instead of one ([MQTT-1.5.5]).
    let mut buf = BytesMut::from(&[0xC0, 0x80, 0x00][..]);
    let options = DecodeOptions { version: V4, max_packet_size: usize::MAX };
    assert_eq!(decode(&mut buf, &options), Ok(Some(Packet::PingReq)));
    assert!(buf.is_empty());
}
