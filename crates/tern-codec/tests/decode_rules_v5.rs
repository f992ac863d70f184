//! One test per MQTT 5.0 decoding rule: properties (MQTT 5.0 section 2.2.2.2), reason codes
//! and the optional parts of acknowledgements, DISCONNECT and AUTH.

use bytes::BytesMut;
use tern_codec::*;

const V4: ProtocolVersion = ProtocolVersion::V3_1_1;
const V5: ProtocolVersion = ProtocolVersion::V5;

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn decode_v5(bytes: &[u8]) -> Result<Option<Packet>, DecodeError> {
    decode(&mut BytesMut::from(bytes), &DecodeOptions { version: V5, max_packet_size: usize::MAX })
}

fn decode_err(bytes: &[u8]) -> DecodeError {
    match decode_v5(bytes) {
        Err(e) => e,
        other => panic!("expected an error for {bytes:02x?}, got {other:?}"),
    }
}

/// A packet of `first` byte with `body` and the right remaining length (body < 128 bytes).
fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    cat(&[&[first, body.len() as u8], body])
}

/// A 5.0 CONNECT with the given CONNECT properties and payload (client id "c" first).
fn connect(flags: u8, properties: &[u8], rest_of_payload: &[u8]) -> Vec<u8> {
    let body = cat(&[
        &[0x00, 0x04],
        b"MQTT",
        &[0x05, flags, 0x00, 0x00, properties.len() as u8],
        properties,
        &[0x00, 0x01, b'c'],
        rest_of_payload,
    ]);
    packet(0x10, &body)
}

/// A 5.0 QoS 0 PUBLISH to "t" with the given properties and payload "x".
fn publish(properties: &[u8]) -> Vec<u8> {
    packet(0x30, &cat(&[&[0x00, 0x01, b't', properties.len() as u8], properties, b"x"]))
}

fn props_of(result: Result<Option<Packet>, DecodeError>) -> Properties {
    match result {
        Ok(Some(Packet::Publish(p))) => p.properties,
        Ok(Some(Packet::Connect(c))) => c.properties,
        other => panic!("unexpected {other:?}"),
    }
}

// ---- Properties ----

#[test]
fn property_not_allowed_on_connect_is_malformed_mqtt_2_2_2_2() {
    assert_eq!(
        decode_err(&connect(0x02, &[0x23, 0x00, 0x01], &[])),
        DecodeError::PropertyNotAllowed { id: 0x23, packet: "CONNECT" }
    );
}

#[test]
fn will_properties_are_their_own_set_mqtt_3_1_3_2() {
    // Will delay interval is allowed in the will properties...
    let will = cat(&[&[0x05, 0x18, 0x00, 0x00, 0x00, 0x09, 0x00, 0x01], b"w", &[0x00, 0x00]]);
    let Ok(Some(Packet::Connect(c))) = decode_v5(&connect(0x06, &[], &will)) else {
        panic!("CONNECT with will properties should decode");
    };
    assert_eq!(c.will.unwrap().properties.will_delay_interval, Some(9));
    // ...but a reason string is not.
    let will = cat(&[&[0x04, 0x1F, 0x00, 0x01, b'x', 0x00, 0x01], b"w", &[0x00, 0x00]]);
    assert_eq!(
        decode_err(&connect(0x06, &[], &will)),
        DecodeError::PropertyNotAllowed { id: 0x1F, packet: "will properties" }
    );
}

#[test]
fn unknown_property_is_malformed_mqtt_2_2_2_2() {
    assert_eq!(decode_err(&publish(&[0x05, 0x00])), DecodeError::UnknownProperty(0x05));
}

#[test]
fn duplicate_property_is_a_protocol_error() {
    let props = [0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2];
    assert_eq!(decode_err(&connect(0x02, &props, &[])), DecodeError::DuplicateProperty(0x11));
}

#[test]
fn user_property_repeats_and_subscription_identifier_repeats_in_publish() {
    let props = cat(&[
        &[0x26, 0x00, 0x01, b'a', 0x00, 0x01, b'1'],
        &[0x0B, 0x01, 0x0B, 0x80, 0x01],
        &[0x26, 0x00, 0x01, b'a', 0x00, 0x01, b'2'],
    ]);
    let p = props_of(decode_v5(&publish(&props)));
    assert_eq!(p.user_properties, vec![("a".into(), "1".into()), ("a".into(), "2".into())]);
    assert_eq!(p.subscription_identifiers, vec![1, 128]);
}

#[test]
fn subscription_identifier_once_in_subscribe_mqtt_3_8_2_1_2() {
    let body = cat(&[&[0x00, 0x01, 0x04, 0x0B, 0x01, 0x0B, 0x02, 0x00, 0x01], b"a", &[0x00]]);
    assert_eq!(decode_err(&packet(0x82, &body)), DecodeError::DuplicateProperty(0x0B));
}

#[test]
fn subscription_identifier_zero_is_a_protocol_error_mqtt_3_8_2_1_2() {
    assert_eq!(decode_err(&publish(&[0x0B, 0x00])), DecodeError::InvalidPropertyValue(0x0B));
}

#[test]
fn property_values_out_of_range_are_refused() {
    // Payload format indicator 0/1 [MQTT-3.3.2.3.2], topic alias not 0 [MQTT-3.3.2.3.4].
    assert_eq!(decode_err(&publish(&[0x01, 0x02])), DecodeError::InvalidPropertyValue(0x01));
    assert_eq!(decode_err(&publish(&[0x23, 0x00, 0x00])), DecodeError::InvalidPropertyValue(0x23));
    // Receive maximum and maximum packet size not 0, request flags 0/1 [MQTT-3.1.2.11].
    for (props, id) in [
        (&[0x21, 0x00, 0x00][..], 0x21),
        (&[0x27, 0x00, 0x00, 0x00, 0x00], 0x27),
        (&[0x17, 0x02], 0x17),
        (&[0x19, 0x02], 0x19),
    ] {
        assert_eq!(decode_err(&connect(0x02, props, &[])), DecodeError::InvalidPropertyValue(id));
    }
    // Maximum QoS and the *Available flags are 0 or 1 [MQTT-3.2.2.3].
    for id in [0x24u8, 0x25, 0x28, 0x29, 0x2A] {
        let bytes = packet(0x20, &[0x00, 0x00, 0x02, id, 0x02]);
        assert_eq!(decode_err(&bytes), DecodeError::InvalidPropertyValue(id), "{id:#04x}");
    }
}

#[test]
fn property_length_past_the_body_is_truncated() {
    assert_eq!(decode_err(&packet(0x30, &[0x00, 0x01, b't', 0x09, 0x01, 0x01])), DecodeError::Truncated);
}

#[test]
fn property_length_of_five_bytes_is_malformed_mqtt_1_5_5_1() {
    let bytes = packet(0x30, &[0x00, 0x01, b't', 0xFF, 0xFF, 0xFF, 0xFF, 0x01]);
    assert_eq!(decode_err(&bytes), DecodeError::MalformedVariableByteInteger);
}

#[test]
fn property_strings_must_be_utf8_mqtt_1_5_3_1() {
    let props = [0x26, 0x00, 0x01, 0xFF, 0x00, 0x00];
    assert_eq!(decode_err(&publish(&props)), DecodeError::InvalidUtf8);
}

#[test]
fn v3_connection_does_not_read_properties() {
    // The same bytes are a 3.1.1 PUBLISH whose payload starts with what 5.0 reads as properties.
    let bytes = publish(&[0x01, 0x01]);
    let options = DecodeOptions { version: V4, max_packet_size: usize::MAX };
    let Ok(Some(Packet::Publish(p))) = decode(&mut BytesMut::from(&bytes[..]), &options) else {
        panic!("3.1.1 PUBLISH should decode");
    };
    assert_eq!(p.payload.as_ref(), &[0x02, 0x01, 0x01, b'x']);
    assert!(p.properties.is_empty());
}

// ---- Acknowledgements ----

#[test]
fn puback_reason_code_and_properties_are_optional_mqtt_3_4_2_1() {
    let ok = |bytes: &[u8]| match decode_v5(bytes) {
        Ok(Some(Packet::PubAck(r))) => r,
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(ok(&[0x40, 0x02, 0x00, 0x01]).reason_code, 0x00);
    assert_eq!(ok(&[0x40, 0x03, 0x00, 0x01, 0x10]).reason_code, 0x10);
    let with_props = ok(&[0x40, 0x08, 0x00, 0x01, 0x97, 0x04, 0x1F, 0x00, 0x01, b'q']);
    assert_eq!(with_props.reason_code, 0x97);
    assert_eq!(with_props.properties.reason_string.as_deref(), Some("q"));
}

#[test]
fn acknowledgement_reason_codes_are_checked_mqtt_3_4_2_1() {
    // 0x92 (packet identifier not found) belongs to PUBREL/PUBCOMP, 0x10 to PUBACK/PUBREC.
    assert_eq!(decode_err(&[0x40, 0x03, 0x00, 0x01, 0x92]), DecodeError::InvalidReasonCode(0x92));
    assert_eq!(decode_err(&[0x50, 0x03, 0x00, 0x01, 0x01]), DecodeError::InvalidReasonCode(0x01));
    assert_eq!(decode_err(&[0x62, 0x03, 0x00, 0x01, 0x10]), DecodeError::InvalidReasonCode(0x10));
    assert_eq!(decode_err(&[0x70, 0x03, 0x00, 0x01, 0x80]), DecodeError::InvalidReasonCode(0x80));
}

#[test]
fn acknowledgement_bytes_after_properties_are_trailing() {
    assert_eq!(decode_err(&[0x40, 0x05, 0x00, 0x01, 0x00, 0x00, 0xAA]), DecodeError::TrailingBytes(1));
}

#[test]
fn acknowledgement_property_not_allowed() {
    assert_eq!(
        decode_err(&[0x62, 0x07, 0x00, 0x01, 0x00, 0x03, 0x23, 0x00, 0x01]),
        DecodeError::PropertyNotAllowed { id: 0x23, packet: "PUBREL" }
    );
}

// ---- CONNACK ----

#[test]
fn connack_reason_codes_are_v5_codes() {
    assert_eq!(decode_err(&[0x20, 0x03, 0x00, 0x01, 0x00]), DecodeError::InvalidReasonCode(0x01));
    assert!(decode_v5(&[0x20, 0x03, 0x00, 0x9F, 0x00]).is_ok());
}

#[test]
fn connack_without_property_length_is_truncated() {
    assert_eq!(decode_err(&[0x20, 0x02, 0x00, 0x00]), DecodeError::Truncated);
}

// ---- SUBSCRIBE and friends ----

fn subscribe_with_options(options: u8) -> Vec<u8> {
    packet(0x82, &[0x00, 0x01, 0x00, 0x00, 0x01, b'a', options])
}

#[test]
fn subscribe_reserved_option_bits_are_malformed_mqtt_3_8_3_5() {
    for options in [0x40u8, 0x80] {
        assert_eq!(decode_err(&subscribe_with_options(options)), DecodeError::InvalidSubscriptionOptions);
    }
}

#[test]
fn subscribe_retain_handling_3_is_a_protocol_error_mqtt_3_8_3_1() {
    assert_eq!(decode_err(&subscribe_with_options(0x30)), DecodeError::InvalidSubscriptionOptions);
}

#[test]
fn subscribe_qos_3_is_malformed_mqtt_3_8_3_1() {
    assert_eq!(decode_err(&subscribe_with_options(0x03)), DecodeError::InvalidSubscriptionOptions);
}

#[test]
fn subscribe_options_are_decoded() {
    let Ok(Some(Packet::Subscribe(s))) = decode_v5(&subscribe_with_options(0x1E)) else {
        panic!("SUBSCRIBE should decode");
    };
    let expected = SubscriptionOptions {
        qos: QoS::ExactlyOnce,
        no_local: true,
        retain_as_published: true,
        retain_handling: RetainHandling::SendIfNew,
    };
    assert_eq!(s.filters[0].options, expected);
}

#[test]
fn subscribe_without_filters_is_a_protocol_error_mqtt_3_8_3_2() {
    assert_eq!(decode_err(&[0x82, 0x03, 0x00, 0x01, 0x00]), DecodeError::EmptySubscribe);
}

#[test]
fn suback_reason_codes_are_checked_mqtt_3_9_3() {
    assert!(decode_v5(&[0x90, 0x04, 0x00, 0x01, 0x00, 0x87]).is_ok());
    assert_eq!(decode_err(&[0x90, 0x04, 0x00, 0x01, 0x00, 0x03]), DecodeError::InvalidReasonCode(0x03));
}

#[test]
fn unsubscribe_allows_only_user_properties() {
    let body = [0x00, 0x01, 0x04, 0x1F, 0x00, 0x01, b'x', 0x00, 0x01, b'a'];
    assert_eq!(decode_err(&packet(0xA2, &body)), DecodeError::PropertyNotAllowed { id: 0x1F, packet: "UNSUBSCRIBE" });
}

#[test]
fn unsubscribe_without_filters_is_a_protocol_error_mqtt_3_10_3_2() {
    assert_eq!(decode_err(&[0xA2, 0x03, 0x00, 0x01, 0x00]), DecodeError::EmptyUnsubscribe);
}

#[test]
fn unsuback_reason_codes_are_checked_mqtt_3_11_3() {
    assert_eq!(decode_err(&[0xB0, 0x04, 0x00, 0x01, 0x00, 0x01]), DecodeError::InvalidReasonCode(0x01));
}

// ---- DISCONNECT and AUTH ----

#[test]
fn disconnect_without_reason_code_is_normal_disconnection_mqtt_3_14_2_1() {
    assert_eq!(decode_v5(&[0xE0, 0x00]), Ok(Some(Packet::Disconnect(Disconnect::default()))));
}

#[test]
fn disconnect_reason_codes_are_checked_mqtt_3_14_2_1() {
    assert_eq!(decode_err(&[0xE0, 0x01, 0x01]), DecodeError::InvalidReasonCode(0x01));
}

#[test]
fn disconnect_may_carry_server_reference_but_not_auth_method() {
    assert!(decode_v5(&[0xE0, 0x06, 0x9C, 0x04, 0x1C, 0x00, 0x01, b's']).is_ok());
    assert_eq!(
        decode_err(&[0xE0, 0x06, 0x00, 0x04, 0x15, 0x00, 0x01, b's']),
        DecodeError::PropertyNotAllowed { id: 0x15, packet: "DISCONNECT" }
    );
}

#[test]
fn auth_reason_codes_are_checked_mqtt_3_15_2_1() {
    assert_eq!(decode_err(&[0xF0, 0x01, 0x04]), DecodeError::InvalidReasonCode(0x04));
}

#[test]
fn auth_with_flags_is_malformed_mqtt_3_15_1_1() {
    assert_eq!(decode_err(&[0xF1, 0x00]), DecodeError::InvalidFlags { packet_type: 15, flags: 1 });
}

// ---- Reason codes for the broker ----

#[test]
fn decode_errors_map_to_v5_reason_codes() {
    assert_eq!(DecodeError::PacketTooLarge { size: 10, max: 5 }.reason_code(), 0x95);
    assert_eq!(DecodeError::UnsupportedProtocolLevel(6).reason_code(), 0x84);
    assert_eq!(DecodeError::Truncated.reason_code(), 0x81);
    assert_eq!(DecodeError::PropertyNotAllowed { id: 0x23, packet: "CONNECT" }.reason_code(), 0x81);
    assert_eq!(DecodeError::DuplicateProperty(0x11).reason_code(), 0x82);
    assert_eq!(DecodeError::EmptySubscribe.reason_code(), 0x82);
}
