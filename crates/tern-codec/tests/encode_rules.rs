//! Encoding rules: what 3.1/3.1.1 leave out, size limits, and the valid form written where the
//! model could express an invalid one.

use bytes::{Bytes, BytesMut};
use tern_codec::*;

const V4: ProtocolVersion = ProtocolVersion::V3_1_1;
const V5: ProtocolVersion = ProtocolVersion::V5;

fn encoded(packet: &Packet, version: ProtocolVersion) -> Result<Vec<u8>, EncodeError> {
    let mut buf = BytesMut::new();
    let result = encode(packet, version, &mut buf);
    assert_eq!(encoded_len(packet, version), result.clone().map(|()| buf.len()));
    result.map(|()| buf.to_vec())
}

fn pid(value: u16) -> PacketId {
    PacketId::new(value).unwrap()
}

fn connect(client_id: String, password: Option<Bytes>) -> Packet {
    Packet::Connect(Box::new(Connect {
        protocol: V4,
        clean_start: true,
        keep_alive: 0,
        client_id,
        will: None,
        username: Some("u".into()),
        password,
        properties: Properties::default(),
    }))
}

fn publish(qos: QoS, packet_id: Option<u16>, payload: Bytes) -> Publish {
    Publish {
        dup: true,
        qos,
        retain: false,
        topic: TopicName::new("t").unwrap(),
        packet_id: packet_id.map(pid),
        payload,
        properties: Properties::default(),
    }
}

fn reason_string() -> Properties {
    Properties { reason_string: Some("why".into()), ..Properties::default() }
}

#[test]
fn auth_is_not_in_v3() {
    let auth = Packet::Auth(Auth::default());
    assert_eq!(encoded(&auth, V4), Err(EncodeError::NotInVersion { packet: "AUTH", level: 4 }));
    assert_eq!(encoded(&auth, ProtocolVersion::V3_1), Err(EncodeError::NotInVersion { packet: "AUTH", level: 3 }));
}

#[test]
fn strings_and_binary_longer_than_65535_are_refused_mqtt_1_5_3() {
    assert_eq!(encoded(&connect("c".repeat(65_536), None), V4), Err(EncodeError::FieldTooLong(65_536)));
    let password = Bytes::from(vec![0u8; 70_000]);
    assert_eq!(encoded(&connect(String::new(), Some(password)), V4), Err(EncodeError::FieldTooLong(70_000)));
    // The limit itself is fine.
    assert!(encoded(&connect("c".repeat(65_535), None), V4).is_ok());
}

#[test]
fn packet_over_the_remaining_length_limit_is_refused_mqtt_2_2_3() {
    // A zeroed allocation is not touched: nothing here reads or writes the payload.
    let payload = Bytes::from(vec![0u8; MAX_REMAINING_LENGTH]);
    let packet = Packet::Publish(publish(QoS::AtMostOnce, None, payload));
    // Topic "t" (3 bytes) plus the payload.
    assert_eq!(encoded_len(&packet, V4), Err(EncodeError::PacketTooLarge(MAX_REMAINING_LENGTH + 3)));
    let mut buf = BytesMut::new();
    assert_eq!(encode(&packet, V4, &mut buf), Err(EncodeError::PacketTooLarge(MAX_REMAINING_LENGTH + 3)));
    assert!(buf.is_empty(), "a failed encode writes nothing");
}

#[test]
fn failed_encode_leaves_the_buffer_as_it_was() {
    let mut buf = BytesMut::from(&b"previous"[..]);
    assert!(encode(&connect("c".repeat(65_536), None), V4, &mut buf).is_err());
    assert_eq!(&buf[..], b"previous");
}

#[test]
fn encode_appends_to_the_buffer() {
    let mut buf = BytesMut::new();
    encode(&Packet::PingReq, V4, &mut buf).unwrap();
    encode(&Packet::PingResp, V4, &mut buf).unwrap();
    assert_eq!(&buf[..], &[0xC0, 0x00, 0xD0, 0x00]);
}

#[test]
fn v3_leaves_out_acknowledgement_reason_codes_and_properties() {
    let response = PubResponse { packet_id: pid(1), reason_code: 0x80, properties: reason_string() };
    assert_eq!(encoded(&Packet::PubAck(response), V4), Ok(vec![0x40, 0x02, 0x00, 0x01]));
    let disconnect = Disconnect { reason_code: 0x04, properties: reason_string() };
    assert_eq!(encoded(&Packet::Disconnect(disconnect), V4), Ok(vec![0xE0, 0x00]));
    let unsuback = UnsubAck { packet_id: pid(1), reason_codes: vec![0x11], properties: reason_string() };
    assert_eq!(encoded(&Packet::UnsubAck(unsuback), V4), Ok(vec![0xB0, 0x02, 0x00, 0x01]));
}

#[test]
fn v3_leaves_out_publish_properties_and_subscription_options() {
    let mut p = publish(QoS::AtMostOnce, None, Bytes::from_static(b"x"));
    p.properties.message_expiry_interval = Some(5);
    assert_eq!(encoded(&Packet::Publish(p), V4), Ok(vec![0x30, 0x04, 0x00, 0x01, b't', b'x']));
    let sub = Subscribe {
        packet_id: pid(1),
        filters: vec![SubscribeFilter {
            filter: "t".into(),
            options: SubscriptionOptions {
                qos: QoS::AtLeastOnce,
                no_local: true,
                retain_as_published: true,
                retain_handling: RetainHandling::DoNotSend,
            },
        }],
        properties: Properties::default(),
    };
    assert_eq!(encoded(&Packet::Subscribe(sub), V4), Ok(vec![0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b't', 0x01]));
}

#[test]
fn v3_suback_writes_every_failure_as_0x80() {
    let ack = SubAck { packet_id: pid(1), return_codes: vec![0x01, 0x87, 0xA2], properties: Properties::default() };
    assert_eq!(encoded(&Packet::SubAck(ack), V4), Ok(vec![0x90, 0x05, 0x00, 0x01, 0x01, 0x80, 0x80]));
}

#[test]
fn v3_1_connack_has_no_session_present_flag() {
    let ack = ConnAck { session_present: true, code: ConnectReturnCode::ACCEPTED, properties: Properties::default() };
    assert_eq!(encoded(&Packet::ConnAck(ack), ProtocolVersion::V3_1), Ok(vec![0x20, 0x02, 0x00, 0x00]));
}

#[test]
fn qos0_publish_is_written_without_dup_or_packet_id_mqtt_3_3_1_2() {
    let p = publish(QoS::AtMostOnce, Some(7), Bytes::new());
    assert_eq!(encoded(&Packet::Publish(p), V4), Ok(vec![0x30, 0x03, 0x00, 0x01, b't']));
}

#[test]
fn qos1_publish_without_packet_id_is_refused_mqtt_2_3_1_1() {
    let p = publish(QoS::AtLeastOnce, None, Bytes::new());
    assert_eq!(encoded(&Packet::Publish(p), V4), Err(EncodeError::MissingPacketId));
}

#[test]
fn v5_acknowledgement_uses_the_shortest_form_mqtt_3_4_2_1() {
    let plain = PubResponse::new(pid(1));
    assert_eq!(encoded(&Packet::PubAck(plain), V5), Ok(vec![0x40, 0x02, 0x00, 0x01]));
    let reason_only = PubResponse { packet_id: pid(1), reason_code: 0x10, properties: Properties::default() };
    assert_eq!(encoded(&Packet::PubAck(reason_only), V5), Ok(vec![0x40, 0x03, 0x00, 0x01, 0x10]));
    // Properties the packet may not carry are left out, so the short form still applies.
    let foreign = Properties { topic_alias: Some(3), ..Properties::default() };
    let with_foreign = PubResponse { packet_id: pid(1), reason_code: 0, properties: foreign };
    assert_eq!(encoded(&Packet::PubComp(with_foreign), V5), Ok(vec![0x70, 0x02, 0x00, 0x01]));
}

#[test]
fn v5_disconnect_and_auth_short_forms_mqtt_3_14_2_1_mqtt_3_15_2_1() {
    assert_eq!(encoded(&Packet::Disconnect(Disconnect::default()), V5), Ok(vec![0xE0, 0x00]));
    let with_will = Disconnect { reason_code: 0x04, properties: Properties::default() };
    assert_eq!(encoded(&Packet::Disconnect(with_will), V5), Ok(vec![0xE0, 0x01, 0x04]));
    assert_eq!(encoded(&Packet::Auth(Auth::default()), V5), Ok(vec![0xF0, 0x00]));
    let reauth = Auth { reason_code: 0x19, properties: Properties::default() };
    assert_eq!(encoded(&Packet::Auth(reauth), V5), Ok(vec![0xF0, 0x02, 0x19, 0x00]));
}

#[test]
fn v5_subscription_identifier_out_of_range_is_refused() {
    let mut p = publish(QoS::AtMostOnce, None, Bytes::new());
    p.properties.subscription_identifiers = vec![0];
    assert_eq!(encoded(&Packet::Publish(p), V5), Err(EncodeError::SubscriptionIdentifierOutOfRange(0)));
}

#[test]
fn encoded_len_includes_a_multi_byte_remaining_length() {
    let p = publish(QoS::AtMostOnce, None, Bytes::from(vec![0u8; 20_000]));
    // 1 type byte, 3 length bytes, topic "t" (3 bytes) and the payload.
    assert_eq!(encoded_len(&Packet::Publish(p), V4), Ok(1 + 3 + 3 + 20_000));
}
