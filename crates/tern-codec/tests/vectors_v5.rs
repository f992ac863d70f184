//! Byte-exact vectors for every MQTT 5.0 packet: each packet encodes to the hand-written bytes,
//! and the bytes decode back to the packet.

use bytes::{Bytes, BytesMut};
use tern_codec::*;

const V5: ProtocolVersion = ProtocolVersion::V5;

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn pid(value: u16) -> PacketId {
    PacketId::new(value).unwrap()
}

fn assert_vector(packet: Packet, expected: &[u8]) {
    let mut buf = BytesMut::new();
    encode(&packet, V5, &mut buf).unwrap();
    assert_eq!(&buf[..], expected, "encoding of {packet:?}");
    assert_eq!(encoded_len(&packet, V5), Ok(expected.len()));
    let mut buf = BytesMut::from(expected);
    let options = DecodeOptions { version: V5, max_packet_size: usize::MAX };
    assert_eq!(decode(&mut buf, &options), Ok(Some(packet)));
    assert!(buf.is_empty());
}

/// Asserts `bytes` decode to `packet` (for wire forms the encoder does not produce).
fn assert_decodes(bytes: &[u8], packet: Packet) {
    let options = DecodeOptions { version: V5, max_packet_size: usize::MAX };
    assert_eq!(decode(&mut BytesMut::from(bytes), &options), Ok(Some(packet)));
}

#[test]
fn connect_spec_example_with_will_properties() {
    // Flags 0xCE, keep alive 10 and session expiry interval 10 as in the spec's non-normative
    // variable header example ([MQTT-3.1.2.12]), plus a will with a will delay interval.
    let connect = Connect {
        protocol: V5,
        clean_start: true,
        keep_alive: 10,
        client_id: "c1".into(),
        will: Some(LastWill {
            topic: TopicName::new("w").unwrap(),
            payload: Bytes::from_static(b"bye"),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: Properties { will_delay_interval: Some(5), ..Properties::default() },
        }),
        username: Some("u".into()),
        password: Some(Bytes::from_static(b"p")),
        properties: Properties { session_expiry_interval: Some(10), ..Properties::default() },
    };
    let expected = cat(&[
        &[0x10, 0x28, 0x00, 0x04],
        b"MQTT",
        &[0x05, 0xCE, 0x00, 0x0A],
        &[0x05, 0x11, 0x00, 0x00, 0x00, 0x0A],
        &[0x00, 0x02],
        b"c1",
        &[0x05, 0x18, 0x00, 0x00, 0x00, 0x05],
        &[0x00, 0x01],
        b"w",
        &[0x00, 0x03],
        b"bye",
        &[0x00, 0x01],
        b"u",
        &[0x00, 0x01],
        b"p",
    ]);
    assert_vector(Packet::Connect(Box::new(connect)), &expected);
}

#[test]
fn connect_password_without_username_is_allowed_in_v5() {
    let connect = Connect {
        protocol: V5,
        clean_start: false,
        keep_alive: 0,
        client_id: String::new(),
        will: None,
        username: None,
        password: Some(Bytes::from_static(b"tok")),
        properties: Properties {
            receive_maximum: Some(20),
            request_problem_information: Some(0),
            authentication_method: Some("K".into()),
            ..Properties::default()
        },
    };
    // Properties: auth method (0x15), request problem information (0x17), receive maximum (0x21).
    let expected = cat(&[
        &[0x10, 0x1B, 0x00, 0x04],
        b"MQTT",
        &[0x05, 0x40, 0x00, 0x00],
        &[0x09, 0x15, 0x00, 0x01, b'K', 0x17, 0x00, 0x21, 0x00, 0x14],
        &[0x00, 0x00],
        &[0x00, 0x03],
        b"tok",
    ]);
    assert_vector(Packet::Connect(Box::new(connect)), &expected);
}

#[test]
fn connack_with_server_properties() {
    let ack = ConnAck {
        session_present: false,
        code: ConnectReturnCode::ACCEPTED,
        properties: Properties {
            assigned_client_identifier: Some("abc".into()),
            receive_maximum: Some(10),
            topic_alias_maximum: Some(5),
            maximum_qos: Some(1),
            retain_available: Some(0),
            ..Properties::default()
        },
    };
    let expected = cat(&[
        &[0x20, 0x13, 0x00, 0x00, 0x10],
        &[0x12, 0x00, 0x03],
        b"abc",
        &[0x21, 0x00, 0x0A, 0x22, 0x00, 0x05, 0x24, 0x01, 0x25, 0x00],
    ]);
    assert_vector(Packet::ConnAck(ack), &expected);
}

#[test]
fn connack_failure() {
    let ack = ConnAck { session_present: false, code: ConnectReturnCode(0x87), properties: Properties::default() };
    assert_vector(Packet::ConnAck(ack), &[0x20, 0x03, 0x00, 0x87, 0x00]);
}

#[test]
fn publish_qos1_with_every_publish_property() {
    let publish = Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: TopicName::new("a/b").unwrap(),
        packet_id: Some(pid(10)),
        payload: Bytes::from_static(b"hi"),
        properties: Properties {
            payload_format_indicator: Some(1),
            message_expiry_interval: Some(60),
            content_type: Some("text".into()),
            response_topic: Some("r".into()),
            correlation_data: Some(Bytes::from_static(&[1, 2])),
            subscription_identifiers: vec![5],
            topic_alias: Some(1),
            user_properties: vec![("k".into(), "v".into())],
            ..Properties::default()
        },
    };
    let expected = cat(&[
        &[0x32, 0x2D, 0x00, 0x03],
        b"a/b",
        &[0x00, 0x0A, 0x23],
        &[0x01, 0x01],
        &[0x02, 0x00, 0x00, 0x00, 0x3C],
        &[0x03, 0x00, 0x04],
        b"text",
        &[0x08, 0x00, 0x01, b'r'],
        &[0x09, 0x00, 0x02, 0x01, 0x02],
        &[0x0B, 0x05],
        &[0x23, 0x00, 0x01],
        &[0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v'],
        b"hi",
    ]);
    assert_vector(Packet::Publish(publish), &expected);
}

#[test]
fn publish_qos0_with_empty_topic_for_an_alias() {
    let publish = Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: true,
        topic: TopicName::new("").unwrap(),
        packet_id: None,
        payload: Bytes::from_static(b"hi"),
        properties: Properties { topic_alias: Some(2), ..Properties::default() },
    };
    assert_vector(Packet::Publish(publish), &[0x31, 0x08, 0x00, 0x00, 0x03, 0x23, 0x00, 0x02, b'h', b'i']);
}

#[test]
fn publish_acknowledgements() {
    let plain = PubResponse::new(pid(10));
    assert_vector(Packet::PubAck(plain.clone()), &[0x40, 0x02, 0x00, 0x0A]);
    assert_vector(Packet::PubComp(plain), &[0x70, 0x02, 0x00, 0x0A]);
    let no_subscribers = PubResponse { packet_id: pid(10), reason_code: 0x10, properties: Properties::default() };
    assert_vector(Packet::PubAck(no_subscribers), &[0x40, 0x03, 0x00, 0x0A, 0x10]);
    let refused = PubResponse {
        packet_id: pid(10),
        reason_code: 0x80,
        properties: Properties { reason_string: Some("nope".into()), ..Properties::default() },
    };
    let expected = cat(&[&[0x50, 0x0B, 0x00, 0x0A, 0x80, 0x07, 0x1F, 0x00, 0x04], b"nope"]);
    assert_vector(Packet::PubRec(refused), &expected);
    let not_found = PubResponse { packet_id: pid(10), reason_code: 0x92, properties: Properties::default() };
    assert_vector(Packet::PubRel(not_found), &[0x62, 0x03, 0x00, 0x0A, 0x92]);
}

#[test]
fn acknowledgement_with_success_and_empty_property_block_decodes() {
    // Remaining length 4: reason code 0 and a property length of 0, written by some clients.
    assert_decodes(&[0x40, 0x04, 0x00, 0x0A, 0x00, 0x00], Packet::PubAck(PubResponse::new(pid(10))));
}

#[test]
fn subscribe_with_all_options_and_identifier() {
    let subscribe = Subscribe {
        packet_id: pid(10),
        filters: vec![
            SubscribeFilter {
                filter: "a/b".into(),
                options: SubscriptionOptions {
                    qos: QoS::AtLeastOnce,
                    no_local: true,
                    retain_as_published: true,
                    retain_handling: RetainHandling::DoNotSend,
                },
            },
            SubscribeFilter {
                filter: "#".into(),
                options: SubscriptionOptions {
                    qos: QoS::AtMostOnce,
                    retain_handling: RetainHandling::SendIfNew,
                    ..Default::default()
                },
            },
        ],
        properties: Properties { subscription_identifiers: vec![7], ..Properties::default() },
    };
    let expected =
        cat(&[&[0x82, 0x0F, 0x00, 0x0A, 0x02, 0x0B, 0x07, 0x00, 0x03], b"a/b", &[0x2D, 0x00, 0x01], b"#", &[0x10]]);
    assert_vector(Packet::Subscribe(subscribe), &expected);
}

#[test]
fn suback_with_v5_reason_codes() {
    let ack = SubAck { packet_id: pid(10), return_codes: vec![0x01, 0xA2], properties: Properties::default() };
    assert_vector(Packet::SubAck(ack), &[0x90, 0x05, 0x00, 0x0A, 0x00, 0x01, 0xA2]);
}

#[test]
fn unsubscribe_with_user_property() {
    let unsubscribe = Unsubscribe {
        packet_id: pid(11),
        filters: vec!["a/b".into()],
        properties: Properties { user_properties: vec![("k".into(), "v".into())], ..Properties::default() },
    };
    let expected =
        cat(&[&[0xA2, 0x0F, 0x00, 0x0B, 0x07, 0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v', 0x00, 0x03], b"a/b"]);
    assert_vector(Packet::Unsubscribe(unsubscribe), &expected);
}

#[test]
fn unsuback_with_reason_codes() {
    let ack = UnsubAck { packet_id: pid(11), reason_codes: vec![0x00, 0x11], properties: Properties::default() };
    assert_vector(Packet::UnsubAck(ack), &[0xB0, 0x05, 0x00, 0x0B, 0x00, 0x00, 0x11]);
}

#[test]
fn ping() {
    assert_vector(Packet::PingReq, &[0xC0, 0x00]);
    assert_vector(Packet::PingResp, &[0xD0, 0x00]);
}

#[test]
fn disconnect_forms() {
    assert_vector(Packet::Disconnect(Disconnect::default()), &[0xE0, 0x00]);
    let with_will = Disconnect { reason_code: 0x04, properties: Properties::default() };
    assert_vector(Packet::Disconnect(with_will), &[0xE0, 0x01, 0x04]);
    let expiry = Disconnect {
        reason_code: 0x00,
        properties: Properties { session_expiry_interval: Some(0), ..Properties::default() },
    };
    assert_vector(Packet::Disconnect(expiry), &[0xE0, 0x07, 0x00, 0x05, 0x11, 0x00, 0x00, 0x00, 0x00]);
}

#[test]
fn auth_forms() {
    assert_vector(Packet::Auth(Auth::default()), &[0xF0, 0x00]);
    let continue_auth = Auth {
        reason_code: 0x18,
        properties: Properties {
            authentication_method: Some("SCRAM".into()),
            authentication_data: Some(Bytes::from_static(&[1, 2])),
            ..Properties::default()
        },
    };
    let expected = cat(&[&[0xF0, 0x0F, 0x18, 0x0D, 0x15, 0x00, 0x05], b"SCRAM", &[0x16, 0x00, 0x02, 0x01, 0x02]]);
    assert_vector(Packet::Auth(continue_auth), &expected);
    // A reason code alone (remaining length 1) is accepted too.
    assert_decodes(&[0xF0, 0x01, 0x19], Packet::Auth(Auth { reason_code: 0x19, properties: Properties::default() }));
}
