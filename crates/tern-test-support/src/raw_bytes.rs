//! Hand-built packet bytes, for the malformed and unusual packets the encoder will not write
//! (reserved flags, unsupported protocol levels, invalid UTF-8, wildcards in topic names).

/// The remaining length field of the fixed header ([MQTT-2.2.3]) for `len`.
pub fn remaining_length(mut len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if len == 0 {
            return out;
        }
    }
}

/// A whole packet: the first byte of the fixed header, the remaining length, then `body`.
pub fn raw_packet(first_byte: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first_byte];
    out.extend(remaining_length(body.len()));
    out.extend_from_slice(body);
    out
}

/// A two-byte length followed by exactly these bytes, whether or not they are valid UTF-8.
pub fn raw_field(bytes: &[u8]) -> Vec<u8> {
    let len = u16::try_from(bytes.len()).expect("test fields fit in 65535 bytes");
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

/// CONNECT with exactly this protocol name, level and connect flags, keep alive 60, and the
/// payload `fields` (client id first), each written with its two-byte length.
pub fn raw_connect(protocol_name: &str, level: u8, flags: u8, fields: &[&[u8]]) -> Vec<u8> {
    let mut body = raw_field(protocol_name.as_bytes());
    body.push(level);
    body.push(flags);
    body.extend_from_slice(&60u16.to_be_bytes());
    for field in fields {
        body.extend(raw_field(field));
    }
    raw_packet(0x10, &body)
}

/// PUBLISH with the fixed header flags (DUP, QoS, RETAIN bits) as given and the topic bytes as
/// given; the packet id is written when `packet_id` is `Some`, whatever the QoS says.
pub fn raw_publish(flags: u8, topic: &[u8], packet_id: Option<u16>, payload: &[u8]) -> Vec<u8> {
    let mut body = raw_field(topic);
    if let Some(id) = packet_id {
        body.extend_from_slice(&id.to_be_bytes());
    }
    body.extend_from_slice(payload);
    raw_packet(0x30 | (flags & 0x0F), &body)
}

/// A 5.0 PUBLISH laid out like [`raw_publish`], with an empty property block after the packet
/// id.
pub fn raw_publish_v5(flags: u8, topic: &[u8], packet_id: Option<u16>, payload: &[u8]) -> Vec<u8> {
    let mut body = raw_field(topic);
    if let Some(id) = packet_id {
        body.extend_from_slice(&id.to_be_bytes());
    }
    body.push(0);
    body.extend_from_slice(payload);
    raw_packet(0x30 | (flags & 0x0F), &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaining_length_matches_the_spec_examples() {
        assert_eq!(remaining_length(0), [0x00]);
        assert_eq!(remaining_length(127), [0x7F]);
        assert_eq!(remaining_length(128), [0x80, 0x01]);
        assert_eq!(remaining_length(16_383), [0xFF, 0x7F]);
        assert_eq!(remaining_length(2_097_152), [0x80, 0x80, 0x80, 0x01]);
    }

    #[test]
    fn raw_publish_lays_out_topic_id_and_payload() {
        assert_eq!(raw_publish(0x02, b"a", Some(7), b"x"), [0x32, 0x06, 0x00, 0x01, b'a', 0x00, 0x07, b'x']);
    }

    #[test]
    fn raw_publish_v5_adds_an_empty_property_block() {
        assert_eq!(raw_publish_v5(0x02, b"a", Some(7), b"x"), [0x32, 0x07, 0x00, 0x01, b'a', 0x00, 0x07, 0x00, b'x']);
    }
}
