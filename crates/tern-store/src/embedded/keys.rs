//! The key and value layout of the embedded store.
//!
//! Five keyspaces (fjall's column families), each an ordered map of bytes:
//!
//! | keyspace   | key                          | value                                   |
//! |------------|------------------------------|-----------------------------------------|
//! | `sessions` | client id                    | session record                          |
//! | `retained` | topic                        | retained record                         |
//! | `queue`    | client prefix, seq (u64 BE)  | mark header (3 bytes), queued record    |
//! | `incoming` | client prefix, packet id (BE)| empty                                   |
//! | `counts`   | client id                    | messages (u64 BE), bytes (u64 BE)       |
//!
//! The client prefix is the id's length (u16 BE) then the id: a length, not a separator,
//! keeps ids that are prefixes of one another (or contain any byte) apart, and big-endian
//! numbers sort in numeric order, so one client's queue is one contiguous range in seq order.
//! `counts` keeps each queue's size so `sessions()` never reads queue payloads.

use tern_codec::PacketId;
use tern_core::{ClientId, OutgoingMark, QueueSeq, StoreError};

/// The longest client id a key can hold (fjall keys are at most 64 KiB; MQTT ids are
/// shorter than that anyway).
const MAX_CLIENT_ID: usize = 60_000;

pub const MARK_HEADER: usize = 3;
const HAS_MARK: u8 = 1;
const RELEASED: u8 = 2;

/// The key prefix of everything kept per client in `queue` and `incoming`.
pub fn client_prefix(client_id: &ClientId) -> Result<Vec<u8>, StoreError> {
    let id = client_id.as_str().as_bytes();
    if id.len() > MAX_CLIENT_ID {
        return Err(StoreError::Backend(format!(
            "client id of {} bytes is too long for the embedded store (at most {MAX_CLIENT_ID})",
            id.len()
        )));
    }
    let mut key = Vec::with_capacity(2 + id.len() + 8);
    key.extend_from_slice(&(id.len() as u16).to_be_bytes());
    key.extend_from_slice(id);
    Ok(key)
}

pub fn queue_key(prefix: &[u8], seq: QueueSeq) -> Vec<u8> {
    let mut key = Vec::with_capacity(prefix.len() + 8);
    key.extend_from_slice(prefix);
    key.extend_from_slice(&seq.0.to_be_bytes());
    key
}

pub fn incoming_key(prefix: &[u8], packet_id: PacketId) -> Vec<u8> {
    let mut key = Vec::with_capacity(prefix.len() + 2);
    key.extend_from_slice(prefix);
    key.extend_from_slice(&packet_id.get().to_be_bytes());
    key
}

/// The seq at the end of a `queue` key.
pub fn seq_of(key: &[u8]) -> Result<QueueSeq, StoreError> {
    let tail = key.len().checked_sub(8).map(|start| &key[start..]);
    let bytes: [u8; 8] = tail.and_then(|t| t.try_into().ok()).ok_or_else(|| corrupt("queue key too short"))?;
    Ok(QueueSeq(u64::from_be_bytes(bytes)))
}

/// The packet id at the end of an `incoming` key.
pub fn packet_id_of(key: &[u8]) -> Result<PacketId, StoreError> {
    let tail = key.len().checked_sub(2).map(|start| &key[start..]);
    let bytes: [u8; 2] = tail.and_then(|t| t.try_into().ok()).ok_or_else(|| corrupt("incoming key too short"))?;
    PacketId::new(u16::from_be_bytes(bytes)).ok_or_else(|| corrupt("incoming packet id 0"))
}

/// A queued value: the mark header, then the record.
pub fn queue_value(mark: Option<OutgoingMark>, record: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(MARK_HEADER + record.len());
    match mark {
        Some(mark) => {
            value.push(HAS_MARK | if mark.released { RELEASED } else { 0 });
            value.extend_from_slice(&mark.packet_id.get().to_be_bytes());
        }
        None => value.extend_from_slice(&[0, 0, 0]),
    }
    value.extend_from_slice(record);
    value
}

/// Splits a queued value into its mark and record.
pub fn split_queue_value(value: &[u8]) -> Result<(Option<OutgoingMark>, &[u8]), StoreError> {
    if value.len() < MARK_HEADER {
        return Err(corrupt("queued value shorter than its header"));
    }
    let (header, record) = value.split_at(MARK_HEADER);
    let mark = if header[0] & HAS_MARK != 0 {
        let packet_id =
            PacketId::new(u16::from_be_bytes([header[1], header[2]])).ok_or_else(|| corrupt("mark packet id 0"))?;
        Some(OutgoingMark { packet_id, released: header[0] & RELEASED != 0 })
    } else {
        None
    };
    Ok((mark, record))
}

/// One queue's size as kept in `counts`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub messages: u64,
    pub bytes: u64,
}

impl Counts {
    pub fn encode(self) -> [u8; 16] {
        let mut value = [0u8; 16];
        value[..8].copy_from_slice(&self.messages.to_be_bytes());
        value[8..].copy_from_slice(&self.bytes.to_be_bytes());
        value
    }

    pub fn decode(value: &[u8]) -> Result<Counts, StoreError> {
        let value: [u8; 16] = value.try_into().map_err(|_| corrupt("queue counts of the wrong length"))?;
        let (messages, bytes) = value.split_at(8);
        Ok(Counts {
            messages: u64::from_be_bytes(messages.try_into().map_err(|_| corrupt("queue counts"))?),
            bytes: u64::from_be_bytes(bytes.try_into().map_err(|_| corrupt("queue counts"))?),
        })
    }
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("embedded store: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_of_ids_that_prefix_one_another_do_not_overlap() {
        let a = client_prefix(&ClientId::new("a")).unwrap();
        let ab = client_prefix(&ClientId::new("ab")).unwrap();
        assert!(!ab.starts_with(&a));
        assert!(!queue_key(&ab, QueueSeq(1)).starts_with(&a));
    }

    #[test]
    fn values_round_trip() {
        let mark = OutgoingMark { packet_id: PacketId::new(513).unwrap(), released: true };
        let value = queue_value(Some(mark), b"record");
        assert_eq!(split_queue_value(&value).unwrap(), (Some(mark), &b"record"[..]));
        assert_eq!(split_queue_value(&queue_value(None, b"")).unwrap(), (None, &b""[..]));
        let counts = Counts { messages: 3, bytes: 1 << 40 };
        assert_eq!(Counts::decode(&counts.encode()).unwrap(), counts);
        assert_eq!(seq_of(&queue_key(&[0, 1, b'x'], QueueSeq(77))).unwrap(), QueueSeq(77));
    }
}
