//! Variable byte integers ([MQTT-1.5.5]): the remaining length of the fixed header, the length
//! of a 5.0 property block, and the 5.0 subscription identifier.

use bytes::BufMut;

/// The largest remaining length MQTT can express ([MQTT-2.2.3]).
pub const MAX_REMAINING_LENGTH: usize = 268_435_455;

/// A variable byte integer uses at most four bytes ([MQTT-1.5.5-1]).
const MAX_LEN: usize = 4;

/// The outcome of reading a variable byte integer from the front of a slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VarInt {
    /// The value and how many bytes it took.
    Complete { value: usize, len: usize },
    /// The slice ends before the last byte of the integer.
    Incomplete,
    /// The fourth byte still has its continuation bit set.
    Malformed,
}

/// Reads a variable byte integer from the front of `bytes`.
///
/// Non-minimal encodings such as `0x80 0x00` are accepted: the spec only bounds the length to
/// four bytes, and common brokers accept them too.
pub(crate) fn read(bytes: &[u8]) -> VarInt {
    let mut value = 0usize;
    for (i, &byte) in bytes.iter().take(MAX_LEN).enumerate() {
        value |= usize::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return VarInt::Complete { value, len: i + 1 };
        }
    }
    // Four bytes, all with the continuation bit: a fifth would be needed, which is malformed
    // whether or not it has arrived yet.
    if bytes.len() >= MAX_LEN {
        VarInt::Malformed
    } else {
        VarInt::Incomplete
    }
}

/// The number of bytes `value` takes in its minimal encoding. `value` must not exceed
/// [`MAX_REMAINING_LENGTH`].
pub(crate) fn len(value: usize) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Writes the minimal encoding of `value`, which must not exceed [`MAX_REMAINING_LENGTH`]
/// (callers check, because only they know which error to report).
pub(crate) fn write<B: BufMut>(mut value: usize, buf: &mut B) {
    debug_assert!(value <= MAX_REMAINING_LENGTH);
    loop {
        // Truncation to the low seven bits is the point of the encoding.
        let mut byte = (value & 0x7F) as u8;
        value >>= 7;
        if value > 0 {
            byte |= 0x80;
        }
        buf.put_u8(byte);
        if value == 0 {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(value: usize) -> Vec<u8> {
        let mut buf = Vec::new();
        write(value, &mut buf);
        buf
    }

    #[test]
    fn boundaries_from_the_spec_table() {
        // [MQTT-1.5.5] table 1-1: the smallest and largest value of each length.
        let table: [(usize, &[u8]); 8] = [
            (0, &[0x00]),
            (127, &[0x7F]),
            (128, &[0x80, 0x01]),
            (16_383, &[0xFF, 0x7F]),
            (16_384, &[0x80, 0x80, 0x01]),
            (2_097_151, &[0xFF, 0xFF, 0x7F]),
            (2_097_152, &[0x80, 0x80, 0x80, 0x01]),
            (268_435_455, &[0xFF, 0xFF, 0xFF, 0x7F]),
        ];
        for (value, bytes) in table {
            assert_eq!(encoded(value), bytes, "{value}");
            assert_eq!(len(value), bytes.len(), "{value}");
            assert_eq!(read(bytes), VarInt::Complete { value, len: bytes.len() }, "{value}");
        }
    }

    #[test]
    fn fifth_byte_is_malformed_even_before_it_arrives() {
        // [MQTT-1.5.5-1]: at most four bytes.
        assert_eq!(read(&[0xFF, 0xFF, 0xFF, 0xFF]), VarInt::Malformed);
        assert_eq!(read(&[0xFF, 0xFF, 0xFF, 0xFF, 0x01]), VarInt::Malformed);
        assert_eq!(read(&[0xFF, 0xFF, 0xFF]), VarInt::Incomplete);
        assert_eq!(read(&[]), VarInt::Incomplete);
    }

    #[test]
    fn non_minimal_encoding_is_accepted() {
        assert_eq!(read(&[0x80, 0x00]), VarInt::Complete { value: 0, len: 2 });
        assert_eq!(read(&[0x81, 0x80, 0x80, 0x00]), VarInt::Complete { value: 1, len: 4 });
    }
}
