//! Key names and value encodings of the Redis store (the layout is in ARCHITECTURE.md).
//!
//! Client ids are arbitrary UTF-8 (they may contain `:`, `*`, spaces or NUL, and one may be a
//! prefix of another), so a client's own keys carry its id hex-encoded: `{prefix}:c:{hex}:q`
//! cannot be confused with the keys of any other id. Queue seqs are u64; they are stored as 16
//! lowercase hex digits, big-endian, so lexicographic order (ZRANGEBYLEX) is numeric order over
//! the whole u64 range, which sorted-set scores (f64, exact only to 2^53) would not give.

use tern_codec::PacketId;
use tern_core::{ClientId, OutgoingMark, QueueSeq, StoreError};

/// The keys one prefix uses that are not a client's.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

/// The keys of one client's queue, marks and incoming QoS 2 ids, in the order the Lua scripts
/// take them (see `scripts.rs`).
#[derive(Debug, Clone)]
pub(crate) struct ClientKeys {
    /// Hash seq → record.
    pub queue: String,
    /// Sorted set of seqs, all with score 0, ordered by member (ZRANGEBYLEX).
    pub index: String,
    /// Hash seq → outgoing mark.
    pub marks: String,
    /// String: the sum of the queued records' lengths.
    pub bytes: String,
    /// Set of packet ids (decimal).
    pub incoming_qos2: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        Keys { prefix: prefix.to_string() }
    }

    /// Hash client id → session record.
    pub fn sessions(&self) -> String {
        format!("{}:sessions", self.prefix)
    }

    /// Hash topic → retained record.
    pub fn retained(&self) -> String {
        format!("{}:retained", self.prefix)
    }

    /// What comes before the hex-encoded client id in a client's keys; the sessions script
    /// builds the same names from it.
    pub fn client_prefix(&self) -> String {
        format!("{}:c:", self.prefix)
    }

    pub fn client(&self, client_id: &ClientId) -> ClientKeys {
        let base = format!("{}{}", self.client_prefix(), hex(client_id.as_str().as_bytes()));
        ClientKeys {
            queue: format!("{base}:q"),
            index: format!("{base}:qi"),
            marks: format!("{base}:m"),
            bytes: format!("{base}:qb"),
            incoming_qos2: format!("{base}:in2"),
        }
    }
}

impl ClientKeys {
    pub fn all(&self) -> [&str; 5] {
        [&self.queue, &self.index, &self.marks, &self.bytes, &self.incoming_qos2]
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, byte| {
        let _ = write!(out, "{byte:02x}");
        out
    })
}

/// A seq as a sorted-set member and hash field: 16 hex digits, so byte order is seq order.
pub(crate) fn seq_member(seq: QueueSeq) -> String {
    format!("{:016x}", seq.0)
}

pub(crate) fn parse_seq(member: &[u8]) -> Result<QueueSeq, StoreError> {
    std::str::from_utf8(member)
        .ok()
        .filter(|text| text.len() == 16)
        .and_then(|text| u64::from_str_radix(text, 16).ok())
        .map(QueueSeq)
        .ok_or_else(|| {
            StoreError::Corrupt(format!("queue seq {:?} is not 16 hex digits", String::from_utf8_lossy(member)))
        })
}

/// A mark as stored: `{packet id}` or `{packet id}r` once released.
pub(crate) fn encode_mark(mark: OutgoingMark) -> String {
    format!("{}{}", mark.packet_id.get(), if mark.released { "r" } else { "" })
}

pub(crate) fn decode_mark(value: &[u8]) -> Result<OutgoingMark, StoreError> {
    let corrupt = || StoreError::Corrupt(format!("outgoing mark {:?}", String::from_utf8_lossy(value)));
    let text = std::str::from_utf8(value).map_err(|_| corrupt())?;
    let (number, released) = match text.strip_suffix('r') {
        Some(number) => (number, true),
        None => (text, false),
    };
    let packet_id = parse_packet_id(number.as_bytes()).map_err(|_| corrupt())?;
    Ok(OutgoingMark { packet_id, released })
}

pub(crate) fn parse_packet_id(value: &[u8]) -> Result<PacketId, StoreError> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|text| text.parse::<u16>().ok())
        .and_then(PacketId::new)
        .ok_or_else(|| StoreError::Corrupt(format!("packet id {:?}", String::from_utf8_lossy(value))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_keys_are_unambiguous() {
        let keys = Keys::new("tern");
        let a = keys.client(&ClientId::new("a"));
        let ab = keys.client(&ClientId::new("a:b"));
        assert_eq!(a.queue, "tern:c:61:q");
        assert_eq!(ab.queue, "tern:c:613a62:q");
    }

    #[test]
    fn seqs_sort_as_numbers() {
        assert!(seq_member(QueueSeq(9)) < seq_member(QueueSeq(10)));
        assert!(seq_member(QueueSeq(1 << 53)) < seq_member(QueueSeq((1 << 53) + 1)));
        assert_eq!(parse_seq(seq_member(QueueSeq(u64::MAX)).as_bytes()), Ok(QueueSeq(u64::MAX)));
    }

    #[test]
    fn marks_round_trip() {
        for released in [false, true] {
            let mark = OutgoingMark { packet_id: PacketId::new(65535).expect("non-zero"), released };
            assert_eq!(decode_mark(encode_mark(mark).as_bytes()), Ok(mark));
        }
        assert!(decode_mark(b"0").is_err());
    }
}
