//! Where encoded bytes go: a [`Counter`] that only adds up lengths, or a `BytesMut`.
//!
//! Every packet body is written by one generic function run twice, first into a `Counter` to
//! learn the remaining length (and find any error before a byte is written), then into the
//! buffer. Because both passes run the same code, [`crate::encoded_len`] cannot disagree with
//! [`crate::encode`], and no intermediate buffer is needed for nested lengths.

use bytes::{BufMut, BytesMut};

use crate::encode::properties::write_property_content;
use crate::error::EncodeError;
use crate::properties::Properties;
use crate::property_rules::PropertyContext;
use crate::varint;

/// The longest string or binary field, whose length must fit in two bytes ([MQTT-1.5.3]).
const MAX_FIELD_LEN: usize = u16::MAX as usize;

pub(crate) trait Sink {
    fn put_u8(&mut self, value: u8);
    fn put_u16(&mut self, value: u16);
    fn put_u32(&mut self, value: u32);
    /// `value` must not exceed [`varint::MAX_REMAINING_LENGTH`]; callers check.
    fn put_varint(&mut self, value: usize);
    fn put_slice(&mut self, bytes: &[u8]);

    /// A property block whose content is `len` bytes long (as measured by
    /// [`property_content_len`]): the length, then the content unless only counting.
    fn put_property_block(
        &mut self,
        len: usize,
        props: &Properties,
        context: PropertyContext,
    ) -> Result<(), EncodeError>;

    /// Binary data: two-byte length, then the bytes ([MQTT-1.5.6]).
    fn put_binary(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        let len = u16::try_from(bytes.len()).map_err(|_| EncodeError::FieldTooLong(bytes.len()))?;
        self.put_u16(len);
        self.put_slice(bytes);
        Ok(())
    }

    /// A UTF-8 string, which a `&str` already is ([MQTT-1.5.3]).
    fn put_string(&mut self, text: &str) -> Result<(), EncodeError> {
        self.put_binary(text.as_bytes())
    }
}

/// Adds up the length of what would be written.
#[derive(Debug, Default)]
pub(crate) struct Counter {
    pub(crate) len: usize,
}

impl Sink for Counter {
    fn put_u8(&mut self, _: u8) {
        self.len += 1;
    }

    fn put_u16(&mut self, _: u16) {
        self.len += 2;
    }

    fn put_u32(&mut self, _: u32) {
        self.len += 4;
    }

    fn put_varint(&mut self, value: usize) {
        self.len += varint::len(value);
    }

    fn put_slice(&mut self, bytes: &[u8]) {
        self.len += bytes.len();
    }

    fn put_binary(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        if bytes.len() > MAX_FIELD_LEN {
            return Err(EncodeError::FieldTooLong(bytes.len()));
        }
        self.len += 2 + bytes.len();
        Ok(())
    }

    fn put_property_block(&mut self, len: usize, _: &Properties, _: PropertyContext) -> Result<(), EncodeError> {
        self.len += varint::len(len) + len;
        Ok(())
    }
}

impl Sink for BytesMut {
    fn put_u8(&mut self, value: u8) {
        BufMut::put_u8(self, value);
    }

    fn put_u16(&mut self, value: u16) {
        BufMut::put_u16(self, value);
    }

    fn put_u32(&mut self, value: u32) {
        BufMut::put_u32(self, value);
    }

    fn put_varint(&mut self, value: usize) {
        varint::write(value, self);
    }

    fn put_slice(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }

    fn put_property_block(
        &mut self,
        len: usize,
        props: &Properties,
        context: PropertyContext,
    ) -> Result<(), EncodeError> {
        varint::write(len, self);
        write_property_content(self, props, context)
    }
}

/// The length of the content of a property block for `context` (without its length prefix).
pub(crate) fn property_content_len(props: &Properties, context: PropertyContext) -> Result<usize, EncodeError> {
    let mut counter = Counter::default();
    write_property_content(&mut counter, props, context)?;
    if counter.len > varint::MAX_REMAINING_LENGTH {
        return Err(EncodeError::PacketTooLarge(counter.len));
    }
    Ok(counter.len)
}

/// A whole property block for `context`: length, then content.
pub(crate) fn put_properties<S: Sink>(
    s: &mut S,
    props: &Properties,
    context: PropertyContext,
) -> Result<(), EncodeError> {
    let len = property_content_len(props, context)?;
    s.put_property_block(len, props, context)
}
