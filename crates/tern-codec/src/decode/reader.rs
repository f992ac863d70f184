//! A cursor over the body of one packet.
//!
//! Every read checks the bytes left first and reports [`DecodeError::Truncated`] instead of
//! panicking, so a hostile peer cannot crash the decoder. Binary fields and the PUBLISH payload
//! are `Bytes` views of the received buffer, not copies.

use bytes::{Buf, Bytes};

use crate::error::DecodeError;
use crate::packet::PacketId;
use crate::varint::{self, VarInt};

pub(crate) struct Reader {
    body: Bytes,
}

impl Reader {
    pub(crate) fn new(body: Bytes) -> Reader {
        Reader { body }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.body.is_empty()
    }

    fn need(&self, n: usize) -> Result<(), DecodeError> {
        if self.body.len() < n {
            Err(DecodeError::Truncated)
        } else {
            Ok(())
        }
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        self.need(1)?;
        Ok(self.body.get_u8())
    }

    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        self.need(2)?;
        Ok(self.body.get_u16())
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        self.need(4)?;
        Ok(self.body.get_u32())
    }

    /// A variable byte integer inside the body (property length, subscription identifier).
    pub(crate) fn varint(&mut self) -> Result<usize, DecodeError> {
        match varint::read(&self.body) {
            VarInt::Complete { value, len } => {
                self.body.advance(len);
                Ok(value)
            }
            VarInt::Incomplete => Err(DecodeError::Truncated),
            VarInt::Malformed => Err(DecodeError::MalformedVariableByteInteger),
        }
    }

    /// A non-zero packet identifier ([MQTT-2.3.1-1]).
    pub(crate) fn packet_id(&mut self) -> Result<PacketId, DecodeError> {
        PacketId::new(self.u16()?).ok_or(DecodeError::ZeroPacketId)
    }

    /// The next `n` bytes, without copying.
    pub(crate) fn bytes(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        self.need(n)?;
        Ok(self.body.split_to(n))
    }

    /// Binary data: a two-byte length and that many bytes ([MQTT-1.5.6]).
    pub(crate) fn binary(&mut self) -> Result<Bytes, DecodeError> {
        let len = self.u16()?;
        self.bytes(usize::from(len))
    }

    /// A UTF-8 encoded string ([MQTT-1.5.3]): well-formed UTF-8 (which rules out the UTF-16
    /// surrogates) and no U+0000. Other control characters and non-characters are allowed
    /// on the wire; the spec only lets a receiver refuse them.
    pub(crate) fn string(&mut self) -> Result<String, DecodeError> {
        let raw = self.binary()?;
        let text = std::str::from_utf8(&raw).map_err(|_| DecodeError::InvalidUtf8)?;
        if text.contains('\0') {
            return Err(DecodeError::NullCharacter);
        }
        Ok(text.to_owned())
    }

    /// A sub-reader over the next `n` bytes (a property block), advancing past them.
    pub(crate) fn take(&mut self, n: usize) -> Result<Reader, DecodeError> {
        Ok(Reader::new(self.bytes(n)?))
    }

    /// Everything left (the PUBLISH payload).
    pub(crate) fn rest(&mut self) -> Bytes {
        std::mem::take(&mut self.body)
    }

    /// Checks that the whole body was read.
    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        if self.body.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes(self.body.len()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(bytes: &'static [u8]) -> Reader {
        Reader::new(Bytes::from_static(bytes))
    }

    #[test]
    fn short_reads_are_truncated_not_panics() {
        assert_eq!(reader(&[]).u8(), Err(DecodeError::Truncated));
        assert_eq!(reader(&[1]).u16(), Err(DecodeError::Truncated));
        assert_eq!(reader(&[1, 2, 3]).u32(), Err(DecodeError::Truncated));
        assert_eq!(reader(&[0, 3, b'a']).string(), Err(DecodeError::Truncated));
        assert_eq!(reader(&[0x80]).varint(), Err(DecodeError::Truncated));
        assert_eq!(reader(&[0, 1]).take(3).err(), Some(DecodeError::Truncated));
    }

    #[test]
    fn strings_must_be_well_formed_utf8_mqtt_1_5_3_1() {
        // An encoded UTF-16 surrogate (U+D800) is not well-formed UTF-8.
        assert_eq!(reader(&[0, 3, 0xED, 0xA0, 0x80]).string(), Err(DecodeError::InvalidUtf8));
        assert_eq!(reader(&[0, 1, 0xFF]).string(), Err(DecodeError::InvalidUtf8));
        assert_eq!(reader(&[0, 2, 0xC3, 0xA9]).string(), Ok("é".to_owned()));
    }

    #[test]
    fn strings_must_not_contain_null_mqtt_1_5_3_2() {
        assert_eq!(reader(&[0, 3, b'a', 0, b'b']).string(), Err(DecodeError::NullCharacter));
    }

    #[test]
    fn subscription_identifier_varint_of_five_bytes_is_malformed() {
        assert_eq!(reader(&[0xFF, 0xFF, 0xFF, 0xFF, 0x01]).varint(), Err(DecodeError::MalformedVariableByteInteger));
    }

    #[test]
    fn finish_counts_trailing_bytes() {
        let mut r = reader(&[0, 1, 2, 3]);
        r.u16().unwrap();
        assert_eq!(r.finish(), Err(DecodeError::TrailingBytes(2)));
    }
}
