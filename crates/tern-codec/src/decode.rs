//! Bytes to packets.

use bytes::BytesMut;

use crate::error::DecodeError;
use crate::packet::{Packet, ProtocolVersion};

/// What the decoder needs to know about the connection.
#[derive(Debug, Clone, Copy)]
pub struct DecodeOptions {
    /// The connection's protocol version. Before CONNECT has been seen, pass
    /// `ProtocolVersion::V3_1_1`; CONNECT itself is decoded by the level it carries.
    pub version: ProtocolVersion,
    /// The largest whole packet (fixed header included) accepted, checked from the fixed
    /// header before the body is buffered.
    pub max_packet_size: usize,
}

/// Decodes one packet from the front of `buf`, advancing it past the packet.
///
/// Returns `Ok(None)` when `buf` does not yet hold a whole packet (and leaves it untouched).
pub fn decode(buf: &mut BytesMut, options: &DecodeOptions) -> Result<Option<Packet>, DecodeError> {
    let _ = (buf, options);
    Err(DecodeError::Truncated)
}
