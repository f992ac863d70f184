//! The payload of a bench message.
//!
//! Layout (all big-endian), padded with zeros up to `--size`:
//!
//! | bytes    | field                                                          |
//! |----------|----------------------------------------------------------------|
//! | 0..4     | publisher index (u32)                                          |
//! | 4..12    | sequence number (u64), 0 for the first message of a publisher |
//! | 12..20   | send time (u64): nanoseconds, see [`Clock`]                    |
//!
//! The send time is read from a monotonic clock and offset to the Unix epoch once, when the
//! run starts. Within one process (`pubsub`) latencies are therefore exact; between a
//! `tern bench pub` and a `tern bench sub` on the same host they are as good as the two
//! processes' view of the wall clock when each started.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Bytes of the header at the start of every bench payload; the smallest `--size`.
pub const HEADER_LEN: usize = 20;

/// The header of one bench message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub publisher: u32,
    pub sequence: u64,
    pub sent_at_nanos: u64,
}

impl Header {
    /// The payload carrying this header, zero-padded to `size` (at least [`HEADER_LEN`]).
    pub fn payload(&self, size: usize) -> Bytes {
        let mut buf = BytesMut::with_capacity(size.max(HEADER_LEN));
        buf.put_u32(self.publisher);
        buf.put_u64(self.sequence);
        buf.put_u64(self.sent_at_nanos);
        buf.resize(size.max(HEADER_LEN), 0);
        buf.freeze()
    }

    /// The header of `payload`, or `None` if it is too short to be a bench message.
    pub fn parse(mut payload: &[u8]) -> Option<Header> {
        if payload.len() < HEADER_LEN {
            return None;
        }
        Some(Header { publisher: payload.get_u32(), sequence: payload.get_u64(), sent_at_nanos: payload.get_u64() })
    }
}

/// Monotonic nanoseconds, offset to the Unix epoch when the clock was made.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
    start_unix_nanos: u64,
}

impl Clock {
    pub fn new() -> Clock {
        let unix = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        Clock { start: Instant::now(), start_unix_nanos: u64::try_from(unix.as_nanos()).unwrap_or(u64::MAX) }
    }

    pub fn now_nanos(&self) -> u64 {
        let elapsed = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.start_unix_nanos.saturating_add(elapsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_pads() {
        let header = Header { publisher: 7, sequence: 1 << 40, sent_at_nanos: 123_456_789 };
        let payload = header.payload(64);
        assert_eq!(payload.len(), 64);
        assert_eq!(Header::parse(&payload), Some(header));
        assert!(payload[HEADER_LEN..].iter().all(|&byte| byte == 0));
    }

    #[test]
    fn short_payload_is_not_a_bench_message() {
        assert_eq!(Header::parse(b"hello"), None);
        assert_eq!(Header { publisher: 1, sequence: 2, sent_at_nanos: 3 }.payload(4).len(), HEADER_LEN);
    }

    #[test]
    fn clock_does_not_go_back() {
        let clock = Clock::new();
        let first = clock.now_nanos();
        assert!(clock.now_nanos() >= first);
    }
}
