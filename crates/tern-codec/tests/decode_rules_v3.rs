//! One test per decoding rule of MQTT 3.1/3.1.1 (and the fixed header rules common to all
//! versions), named after the behaviour and citing the spec clause.

use bytes::BytesMut;
use tern_codec::*;

const V3: ProtocolVersion = ProtocolVersion::V3_1;
const V4: ProtocolVersion = ProtocolVersion::V3_1_1;

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn options(version: ProtocolVersion) -> DecodeOptions {
    DecodeOptions { version, max_packet_size: usize::MAX }
}

fn decode_bytes(bytes: &[u8], version: ProtocolVersion) -> Result<Option<Packet>, DecodeError> {
    decode(&mut BytesMut::from(bytes), &options(version))
}

fn decode_err(bytes: &[u8], version: ProtocolVersion) -> DecodeError {
    match decode_bytes(bytes, version) {
        Err(e) => e,
        other => panic!("expected an error for {bytes:02x?}, got {other:?}"),
    }
}

/// A CONNECT body after the fixed header: protocol name, level, flags, keep alive 60, then
/// `payload`.
fn connect(name: &[u8], level: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
    let body = cat(&[&[0x00, name.len() as u8], name, &[level, flags, 0x00, 0x3C], payload]);
    cat(&[&[0x10, body.len() as u8], &body])
}

// ---- Fixed header ----

#[test]
fn reserved_packet_type_0_is_malformed_mqtt_2_2() {
    assert_eq!(decode_err(&[0x00, 0x00], V4), DecodeError::ReservedPacketType(0));
}

#[test]
fn packet_type_15_is_reserved_before_v5() {
    assert_eq!(decode_err(&[0xF0, 0x00], V4), DecodeError::AuthBeforeV5(4));
    assert_eq!(decode_err(&[0xF0, 0x00], V3), DecodeError::AuthBeforeV5(3));
}

#[test]
fn pubrel_with_wrong_flags_is_malformed_mqtt_2_2_2_2() {
    assert_eq!(decode_err(&[0x60, 0x02, 0x00, 0x01], V4), DecodeError::InvalidFlags { packet_type: 6, flags: 0 });
}

#[test]
fn subscribe_and_unsubscribe_with_wrong_flags_are_malformed_mqtt_2_2_2_2() {
    let sub = cat(&[&[0x80, 0x06, 0x00, 0x01, 0x00, 0x01], b"a", &[0x00]]);
    assert_eq!(decode_err(&sub, V4), DecodeError::InvalidFlags { packet_type: 8, flags: 0 });
    let unsub = cat(&[&[0xA3, 0x05, 0x00, 0x01, 0x00, 0x01], b"a"]);
    assert_eq!(decode_err(&unsub, V4), DecodeError::InvalidFlags { packet_type: 10, flags: 3 });
}

#[test]
fn every_wrong_flag_combination_is_refused_mqtt_2_2_2_2() {
    for packet_type in [1u8, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14] {
        let expected = if matches!(packet_type, 6 | 8 | 10) { 0b0010 } else { 0 };
        for flags in (0..16u8).filter(|f| *f != expected) {
            // Only the first byte is given: the flags are refused before anything else.
            assert_eq!(
                decode_err(&[(packet_type << 4) | flags], V4),
                DecodeError::InvalidFlags { packet_type, flags },
                "type {packet_type} flags {flags:#06b}"
            );
        }
    }
}

#[test]
fn publish_qos3_is_malformed_mqtt_3_3_1_4() {
    assert_eq!(decode_err(&[0x36], V4), DecodeError::InvalidQoS);
}

#[test]
fn publish_qos0_with_dup_is_malformed_mqtt_3_3_1_2() {
    let bytes = cat(&[&[0x38, 0x03, 0x00, 0x01], b"a"]);
    assert_eq!(decode_err(&bytes, V4), DecodeError::DupWithQoS0);
}

// ---- Remaining length and buffering ----

#[test]
fn remaining_length_of_five_bytes_is_malformed_mqtt_2_2_3() {
    assert_eq!(decode_err(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], V4), DecodeError::MalformedRemainingLength);
    // The fourth byte's continuation bit already says a fifth would follow.
    assert_eq!(decode_err(&[0x30, 0x80, 0x80, 0x80, 0x80], V4), DecodeError::MalformedRemainingLength);
}

#[test]
fn largest_remaining_length_waits_for_the_body() {
    assert_eq!(decode_bytes(&[0x30, 0xFF, 0xFF, 0xFF, 0x7F], V4), Ok(None));
}

#[test]
fn max_packet_size_checked_before_body_arrives() {
    let mut buf = BytesMut::from(&[0x30, 0x64][..]);
    let options = DecodeOptions { version: V4, max_packet_size: 50 };
    assert_eq!(decode(&mut buf, &options), Err(DecodeError::PacketTooLarge { size: 102, max: 50 }));
}

#[test]
fn max_packet_size_counts_the_fixed_header() {
    let bytes = cat(&[&[0x30, 0x05, 0x00, 0x01], b"a", b"hi"]);
    let fits = DecodeOptions { version: V4, max_packet_size: 7 };
    assert!(matches!(decode(&mut BytesMut::from(&bytes[..]), &fits), Ok(Some(_))));
    let too_small = DecodeOptions { version: V4, max_packet_size: 6 };
    assert_eq!(
        decode(&mut BytesMut::from(&bytes[..]), &too_small),
        Err(DecodeError::PacketTooLarge { size: 7, max: 6 })
    );
}

#[test]
fn short_buffer_returns_none_and_leaves_it_untouched() {
    let bytes = cat(&[&[0x32, 0x08, 0x00, 0x03], b"a/b", &[0x00, 0x01], b"x"]);
    for cut in 0..bytes.len() {
        let mut buf = BytesMut::from(&bytes[..cut]);
        assert_eq!(decode(&mut buf, &options(V4)), Ok(None), "prefix of {cut} bytes");
        assert_eq!(&buf[..], &bytes[..cut]);
    }
}

#[test]
fn decode_consumes_exactly_one_packet() {
    let mut buf = BytesMut::from(&[0xC0, 0x00, 0xD0, 0x00, 0xE0][..]);
    assert_eq!(decode(&mut buf, &options(V4)), Ok(Some(Packet::PingReq)));
    assert_eq!(decode(&mut buf, &options(V4)), Ok(Some(Packet::PingResp)));
    assert_eq!(decode(&mut buf, &options(V4)), Ok(None));
    assert_eq!(&buf[..], &[0xE0]);
}

// ---- Exact bodies ----

#[test]
fn puback_with_an_extra_byte_has_trailing_bytes_in_v3() {
    assert_eq!(decode_err(&[0x40, 0x03, 0x00, 0x01, 0x00], V4), DecodeError::TrailingBytes(1));
    assert_eq!(decode_err(&[0x70, 0x04, 0x00, 0x01, 0x00, 0x00], V3), DecodeError::TrailingBytes(2));
}

#[test]
fn puback_shorter_than_its_packet_id_is_truncated() {
    assert_eq!(decode_err(&[0x40, 0x01, 0x00], V4), DecodeError::Truncated);
    assert_eq!(decode_err(&[0x40, 0x00], V4), DecodeError::Truncated);
}

#[test]
fn pingreq_pingresp_and_v3_disconnect_have_no_body() {
    assert_eq!(decode_err(&[0xC0, 0x01, 0x00], V4), DecodeError::TrailingBytes(1));
    assert_eq!(decode_err(&[0xD0, 0x01, 0x00], V4), DecodeError::TrailingBytes(1));
    // A 5.0-style DISCONNECT with a reason code is not 3.1.1.
    assert_eq!(decode_err(&[0xE0, 0x01, 0x00], V4), DecodeError::TrailingBytes(1));
}

#[test]
fn v3_unsuback_is_exactly_the_packet_id() {
    assert_eq!(decode_err(&[0xB0, 0x03, 0x00, 0x01, 0x00], V4), DecodeError::TrailingBytes(1));
}

#[test]
fn connect_with_bytes_after_the_payload_has_trailing_bytes() {
    let bytes = connect(b"MQTT", 4, 0x02, &[0x00, 0x00, 0xAA]);
    assert_eq!(decode_err(&bytes, V4), DecodeError::TrailingBytes(1));
}

#[test]
fn string_length_past_the_body_is_truncated() {
    // Topic length says 5 but the remaining length leaves 2 bytes.
    assert_eq!(decode_err(&[0x30, 0x04, 0x00, 0x05, b'a', b'b', 0xC0, 0x00], V4), DecodeError::Truncated);
}

// ---- Strings ----

#[test]
fn topic_with_invalid_utf8_is_malformed_mqtt_1_5_3_1() {
    assert_eq!(decode_err(&[0x30, 0x03, 0x00, 0x01, 0xFF], V4), DecodeError::InvalidUtf8);
}

#[test]
fn client_id_with_a_surrogate_is_malformed_mqtt_1_5_3_1() {
    let bytes = connect(b"MQTT", 4, 0x02, &[0x00, 0x03, 0xED, 0xB0, 0x80]);
    assert_eq!(decode_err(&bytes, V4), DecodeError::InvalidUtf8);
}

#[test]
fn topic_with_null_is_malformed_mqtt_1_5_3_2() {
    assert_eq!(decode_err(&[0x30, 0x04, 0x00, 0x02, b'a', 0x00], V4), DecodeError::NullCharacter);
}

#[test]
fn subscribe_filter_with_null_is_malformed_mqtt_1_5_3_2() {
    let bytes = [0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00];
    assert_eq!(decode_err(&bytes, V4), DecodeError::NullCharacter);
}

#[test]
fn password_and_will_payload_are_binary_not_utf8() {
    // Will flag, will QoS 0, username and password flags.
    let payload = cat(&[
        &[0x00, 0x01],
        b"c",
        &[0x00, 0x01],
        b"w",
        &[0x00, 0x02, 0xFF, 0x00],
        &[0x00, 0x01],
        b"u",
        &[0x00, 0x02, 0xC0, 0x00],
    ]);
    let bytes = connect(b"MQTT", 4, 0xC4, &payload);
    let Ok(Some(Packet::Connect(c))) = decode_bytes(&bytes, V4) else {
        panic!("CONNECT with binary will payload and password should decode");
    };
    assert_eq!(c.will.unwrap().payload.as_ref(), &[0xFF, 0x00]);
    assert_eq!(c.password.unwrap().as_ref(), &[0xC0, 0x00]);
}

// ---- CONNECT ----

#[test]
fn unknown_protocol_name_is_refused_mqtt_3_1_2_1() {
    let bytes = connect(b"MQTX", 4, 0x02, &[0x00, 0x00]);
    assert_eq!(decode_err(&bytes, V4), DecodeError::InvalidProtocolName);
    let not_utf8 = connect(&[0xFF, 0xFE], 4, 0x02, &[0x00, 0x00]);
    assert_eq!(decode_err(&not_utf8, V4), DecodeError::InvalidProtocolName);
}

#[test]
fn known_name_with_other_level_is_unsupported_mqtt_3_1_2_2() {
    for (name, level) in [(&b"MQTT"[..], 3u8), (b"MQTT", 6), (b"MQTT", 0), (b"MQIsdp", 4), (b"MQIsdp", 5)] {
        let bytes = connect(name, level, 0x02, &[0x00, 0x00]);
        assert_eq!(decode_err(&bytes, V4), DecodeError::UnsupportedProtocolLevel(level));
    }
}

#[test]
fn connect_is_decoded_by_its_own_level_not_the_connection_version() {
    let bytes = connect(b"MQTT", 4, 0x02, &[0x00, 0x00]);
    for assumed in [V3, V4, ProtocolVersion::V5] {
        let Ok(Some(Packet::Connect(c))) = decode_bytes(&bytes, assumed) else {
            panic!("CONNECT should decode");
        };
        assert_eq!(c.protocol, V4);
    }
}

#[test]
fn connect_reserved_flag_is_malformed_mqtt_3_1_2_3() {
    let bytes = connect(b"MQTT", 4, 0x03, &[0x00, 0x00]);
    assert_eq!(decode_err(&bytes, V4), DecodeError::ConnectReservedFlag);
}

#[test]
fn will_qos_without_will_flag_is_malformed_mqtt_3_1_2_13() {
    let bytes = connect(b"MQTT", 4, 0x0A, &[0x00, 0x00]);
    assert_eq!(decode_err(&bytes, V4), DecodeError::InvalidWillFlags);
}

#[test]
fn will_retain_without_will_flag_is_malformed_mqtt_3_1_2_15() {
    let bytes = connect(b"MQTT", 4, 0x22, &[0x00, 0x00]);
    assert_eq!(decode_err(&bytes, V4), DecodeError::InvalidWillFlags);
}

#[test]
fn will_qos_3_is_malformed_mqtt_3_1_2_14() {
    let payload = cat(&[&[0x00, 0x00, 0x00, 0x01], b"w", &[0x00, 0x00]]);
    let bytes = connect(b"MQTT", 4, 0x1E, &payload);
    assert_eq!(decode_err(&bytes, V4), DecodeError::InvalidWillFlags);
}

#[test]
fn password_without_username_is_refused_in_v3_mqtt_3_1_2_22() {
    let payload = cat(&[&[0x00, 0x00], &[0x00, 0x01], b"p"]);
    assert_eq!(decode_err(&connect(b"MQTT", 4, 0x42, &payload), V4), DecodeError::PasswordWithoutUsername);
    assert_eq!(decode_err(&connect(b"MQIsdp", 3, 0x42, &payload), V4), DecodeError::PasswordWithoutUsername);
}

#[test]
fn will_topic_with_wildcard_is_refused_mqtt_3_1_2_9() {
    let payload = cat(&[&[0x00, 0x00, 0x00, 0x03], b"a/#", &[0x00, 0x00]]);
    let bytes = connect(b"MQTT", 4, 0x06, &payload);
    assert_eq!(decode_err(&bytes, V4), DecodeError::WildcardInTopicName);
}

#[test]
fn connect_missing_its_username_is_truncated() {
    let bytes = connect(b"MQTT", 4, 0x82, &[0x00, 0x00]);
    assert_eq!(decode_err(&bytes, V4), DecodeError::Truncated);
}

// ---- CONNACK ----

#[test]
fn connack_reserved_flags_are_malformed_mqtt_3_2_2_1() {
    assert_eq!(decode_err(&[0x20, 0x02, 0x02, 0x00], V4), DecodeError::ConnAckReservedFlags);
}

#[test]
fn connack_return_code_above_5_is_refused() {
    assert_eq!(decode_err(&[0x20, 0x02, 0x00, 0x06], V4), DecodeError::InvalidReasonCode(6));
}

// ---- PUBLISH ----

#[test]
fn publish_topic_with_wildcard_is_refused_mqtt_3_3_2_2() {
    assert_eq!(decode_err(&cat(&[&[0x30, 0x05, 0x00, 0x03], b"a/+"]), V4), DecodeError::WildcardInTopicName);
    assert_eq!(decode_err(&cat(&[&[0x30, 0x03, 0x00, 0x01], b"#"]), V4), DecodeError::WildcardInTopicName);
}

#[test]
fn publish_qos1_with_zero_packet_id_is_refused_mqtt_2_3_1_1() {
    let bytes = cat(&[&[0x32, 0x05, 0x00, 0x01], b"a", &[0x00, 0x00]]);
    assert_eq!(decode_err(&bytes, V4), DecodeError::ZeroPacketId);
}

#[test]
fn publish_qos0_has_no_packet_id_mqtt_2_3_1_5() {
    let bytes = cat(&[&[0x30, 0x05, 0x00, 0x01], b"a", &[0x00, 0x00]]);
    let Ok(Some(Packet::Publish(p))) = decode_bytes(&bytes, V4) else {
        panic!("QoS 0 PUBLISH should decode");
    };
    assert_eq!(p.packet_id, None);
    assert_eq!(p.payload.as_ref(), &[0x00, 0x00]);
}

#[test]
fn publish_payload_is_not_copied() {
    let bytes = cat(&[&[0x30, 0x0B, 0x00, 0x01], b"a", b"payload!"]);
    let mut buf = BytesMut::from(&bytes[..]);
    let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
    let Ok(Some(Packet::Publish(p))) = decode(&mut buf, &options(V4)) else {
        panic!("PUBLISH should decode");
    };
    assert_eq!(p.payload.as_ref(), b"payload!");
    assert!(range.contains(&(p.payload.as_ptr() as usize)), "payload should point into the read buffer");
}

// ---- Packet identifiers ----

#[test]
fn zero_packet_id_is_refused_everywhere_mqtt_2_3_1_1() {
    let cases: [&[u8]; 8] = [
        &[0x40, 0x02, 0x00, 0x00],
        &[0x50, 0x02, 0x00, 0x00],
        &[0x62, 0x02, 0x00, 0x00],
        &[0x70, 0x02, 0x00, 0x00],
        &[0x82, 0x06, 0x00, 0x00, 0x00, 0x01, b'a', 0x00],
        &[0x90, 0x03, 0x00, 0x00, 0x00],
        &[0xA2, 0x05, 0x00, 0x00, 0x00, 0x01, b'a'],
        &[0xB0, 0x02, 0x00, 0x00],
    ];
    for bytes in cases {
        assert_eq!(decode_err(bytes, V4), DecodeError::ZeroPacketId, "{bytes:02x?}");
    }
}

// ---- SUBSCRIBE, SUBACK, UNSUBSCRIBE ----

#[test]
fn subscribe_without_filters_is_refused_mqtt_3_8_3_3() {
    assert_eq!(decode_err(&[0x82, 0x02, 0x00, 0x01], V4), DecodeError::EmptySubscribe);
}

#[test]
fn subscribe_options_upper_bits_are_reserved_in_v3_mqtt_3_8_3_4() {
    // 0x04 is no local in 5.0 but reserved in 3.1.1.
    for options in [0x04u8, 0x08, 0x10, 0x40, 0x80] {
        let bytes = [0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', options];
        assert_eq!(decode_err(&bytes, V4), DecodeError::InvalidSubscriptionOptions, "{options:#04x}");
    }
}

#[test]
fn subscribe_qos_3_is_refused_mqtt_3_8_3_4() {
    let bytes = [0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x03];
    assert_eq!(decode_err(&bytes, V4), DecodeError::InvalidSubscriptionOptions);
}

#[test]
fn subscribe_filter_without_options_byte_is_truncated() {
    let bytes = [0x82, 0x05, 0x00, 0x01, 0x00, 0x01, b'a'];
    assert_eq!(decode_err(&bytes, V4), DecodeError::Truncated);
}

#[test]
fn subscribe_filters_are_not_wildcard_checked_by_the_codec() {
    // The broker answers a bad filter with a SUBACK failure, so the codec passes it on.
    let bytes = cat(&[&[0x82, 0x0A, 0x00, 0x01, 0x00, 0x05], b"a/#/b", &[0x00]]);
    let Ok(Some(Packet::Subscribe(s))) = decode_bytes(&bytes, V4) else {
        panic!("SUBSCRIBE should decode");
    };
    assert_eq!(s.filters[0].filter, "a/#/b");
}

#[test]
fn suback_return_codes_are_0_1_2_or_0x80_in_v3_mqtt_3_9_3() {
    for code in [0x03u8, 0x81, 0x87, 0xFF] {
        assert_eq!(decode_err(&[0x90, 0x03, 0x00, 0x01, code], V4), DecodeError::InvalidReasonCode(code));
    }
}

#[test]
fn unsubscribe_without_filters_is_refused_mqtt_3_10_3_2() {
    assert_eq!(decode_err(&[0xA2, 0x02, 0x00, 0x01], V4), DecodeError::EmptyUnsubscribe);
}
