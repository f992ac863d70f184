//! MQTT packets to and from bytes, for protocol 3.1 ("MQIsdp", level 3), 3.1.1 (level 4) and
//! 5.0 (level 5).
//!
//! This crate is the wire format and nothing else: no tokio, no sockets, no clock. There is one
//! packet model for every protocol version ([`Packet`]); version differences live inside
//! [`decode`] and [`encode`], which take the connection's [`ProtocolVersion`].
//!
//! [`decode`] returns `Ok(None)` while the buffer holds less than a whole packet, and checks the
//! maximum packet size from the fixed header before the body is buffered, so a peer cannot make
//! the broker buffer an oversized packet.

mod decode;
mod encode;
mod error;
mod packet;
mod properties;
mod property_rules;
mod topic;
mod varint;

pub use decode::{decode, DecodeOptions};
pub use encode::{encode, encoded_len};
pub use error::{DecodeError, EncodeError};
pub use packet::*;
pub use properties::{Properties, PropertyId};
pub use topic::{TopicFilter, TopicFilterError, TopicName, TopicNameError};
pub use varint::MAX_REMAINING_LENGTH;
