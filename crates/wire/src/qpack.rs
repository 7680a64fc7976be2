//! QPACK (RFC 9204) as openrelay uses it: without a dynamic table.
//!
//! No openrelay endpoint advertises `SETTINGS_QPACK_MAX_TABLE_CAPACITY`, so
//! its peers' dynamic table capacity is 0 (RFC 9204 §5) and the QPACK
//! streams carry almost nothing (RFC 9204 §4.2):
//!
//! * the peer's encoder stream may only say "capacity 0" ([`EncoderStreamCheck`]):
//!   any insertion is larger than a zero-capacity table, a connection error
//!   of type QPACK_ENCODER_STREAM_ERROR (§3.2.2, §4.3);
//! * the peer's decoder stream may only cancel streams ([`DecoderStreamCheck`]):
//!   we never send a field section that references the dynamic table, so a
//!   Section Acknowledgment or an Insert Count Increment is a connection
//!   error of type QPACK_DECODER_STREAM_ERROR (§4.4.1, §4.4.3).
//!
//! Both checks read the stream as it arrives and keep no more than one
//! partial integer. [`encode_literal_field_section`] writes a field section
//! of literal lines (§4.5.6), enough to speak to an HTTP/3 server without a
//! QPACK library.

use crate::varint;

/// Why a QPACK stream or integer was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QpackError {
    /// An encoder-stream instruction other than "capacity 0".
    #[error("encoder stream instruction needs a dynamic table")]
    EncoderInstruction,
    /// A decoder-stream instruction other than Stream Cancellation.
    #[error("decoder stream instruction refers to a dynamic table")]
    DecoderInstruction,
    /// A prefixed integer longer than 62 bits.
    #[error("prefixed integer too large")]
    IntegerTooLarge,
}

/// Decodes a prefixed integer (RFC 9204 §4.1.1, RFC 7541 §5.1) whose prefix
/// is the low `prefix_bits` bits of the first byte. `Ok(None)` means the
/// input ends inside it.
pub fn decode_integer(buf: &[u8], prefix_bits: u8) -> Result<Option<(u64, usize)>, QpackError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let mut reader = IntegerReader::start(first, prefix_bits);
    for (i, &byte) in buf.iter().enumerate().skip(1) {
        if let Some(value) = reader.value() {
            return Ok(Some((value, i)));
        }
        reader.push(byte)?;
    }
    Ok(reader.value().map(|value| (value, buf.len())))
}

/// Encodes `value` as a prefixed integer in the low `prefix_bits` bits of a
/// first byte whose high bits are `flags` (RFC 7541 §5.1).
pub fn encode_integer(value: u64, prefix_bits: u8, flags: u8, out: &mut Vec<u8>) {
    let max_prefix = (1u64 << prefix_bits) - 1;
    if value < max_prefix {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | max_prefix as u8);
    let mut rest = value - max_prefix;
    while rest >= 0x80 {
        out.push(0x80 | (rest & 0x7f) as u8);
        rest >>= 7;
    }
    out.push(rest as u8);
}

/// An integer being read byte by byte.
#[derive(Debug, Clone, Copy)]
struct IntegerReader {
    value: u64,
    shift: u32,
    done: bool,
}

impl IntegerReader {
    fn start(first: u8, prefix_bits: u8) -> Self {
        let max_prefix = (1u64 << prefix_bits) - 1;
        let prefix = u64::from(first) & max_prefix;
        IntegerReader {
            value: prefix,
            shift: 0,
            done: prefix < max_prefix,
        }
    }

    fn value(&self) -> Option<u64> {
        self.done.then_some(self.value)
    }

    fn push(&mut self, byte: u8) -> Result<(), QpackError> {
        let part = u64::from(byte & 0x7f)
            .checked_shl(self.shift)
            .filter(|part| self.shift < 63 && part >> self.shift == u64::from(byte & 0x7f))
            .ok_or(QpackError::IntegerTooLarge)?;
        self.value = self
            .value
            .checked_add(part)
            .filter(|v| *v <= varint::MAX)
            .ok_or(QpackError::IntegerTooLarge)?;
        self.shift += 7;
        self.done = byte & 0x80 == 0;
        Ok(())
    }
}

/// The only encoder-stream instruction valid towards a zero-capacity table:
/// Set Dynamic Table Capacity to 0, `001` and a 5-bit prefix of 0 (§4.3.1).
const SET_CAPACITY_ZERO: u8 = 0x20;

/// Checks a peer's QPACK encoder stream (after its stream type).
#[derive(Debug, Clone, Default)]
pub struct EncoderStreamCheck;

impl EncoderStreamCheck {
    /// Checks the next bytes of the stream.
    pub fn feed(&mut self, input: &[u8]) -> Result<(), QpackError> {
        match input.iter().all(|&b| b == SET_CAPACITY_ZERO) {
            true => Ok(()),
            false => Err(QpackError::EncoderInstruction),
        }
    }
}

/// Checks a peer's QPACK decoder stream (after its stream type): only
/// Stream Cancellations (`01` and a 6-bit prefixed stream ID, §4.4.2).
#[derive(Debug, Clone, Default)]
pub struct DecoderStreamCheck {
    partial: Option<IntegerReader>,
}

impl DecoderStreamCheck {
    /// Checks the next bytes of the stream.
    pub fn feed(&mut self, input: &[u8]) -> Result<(), QpackError> {
        for &byte in input {
            match &mut self.partial {
                Some(reader) => reader.push(byte)?,
                None if byte & 0xc0 == 0x40 => self.partial = Some(IntegerReader::start(byte, 6)),
                // Section Acknowledgment (1xxxxxxx, §4.4.1) or Insert Count
                // Increment (00xxxxxx, §4.4.3).
                None => return Err(QpackError::DecoderInstruction),
            }
            if self.partial.is_some_and(|r| r.value().is_some()) {
                self.partial = None;
            }
        }
        Ok(())
    }
}

/// Writes an encoded field section (RFC 9204 §4.5) of `fields`, each as a
/// Literal Field Line with Literal Name (§4.5.6), no Huffman coding, after
/// a prefix saying no dynamic table is used (Required Insert Count 0, Delta
/// Base 0, §4.5.1).
pub fn encode_literal_field_section(fields: &[(&[u8], &[u8])], out: &mut Vec<u8>) {
    out.extend_from_slice(&[0x00, 0x00]);
    for (name, value) in fields {
        // `001` N=0 H=0, then the name length on 3 bits.
        encode_integer(name.len() as u64, 3, 0x20, out);
        out.extend_from_slice(name);
        // H=0, then the value length on 7 bits.
        encode_integer(value.len() as u64, 7, 0x00, out);
        out.extend_from_slice(value);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rfc7541_c1_integer_examples() {
        // C.1.1: 10 in a 5-bit prefix; C.1.2: 1337 in a 5-bit prefix;
        // C.1.3: 42 in an 8-bit prefix.
        for (value, prefix, bytes) in [
            (10u64, 5u8, vec![0x0a]),
            (1337, 5, vec![0x1f, 0x9a, 0x0a]),
            (42, 8, vec![0x2a]),
        ] {
            let mut out = Vec::new();
            encode_integer(value, prefix, 0, &mut out);
            assert_eq!(out, bytes);
            assert_eq!(
                decode_integer(&bytes, prefix),
                Ok(Some((value, bytes.len())))
            );
            assert_eq!(decode_integer(&bytes[..bytes.len() - 1], prefix), Ok(None));
        }
    }

    #[test]
    fn an_endless_integer_is_refused() {
        let mut bytes = vec![0x1f];
        bytes.extend([0xff; 12]);
        assert_eq!(decode_integer(&bytes, 5), Err(QpackError::IntegerTooLarge));
    }

    #[test]
    fn encoder_stream_allows_only_capacity_zero() {
        let mut check = EncoderStreamCheck;
        assert_eq!(check.feed(&[0x20, 0x20]), Ok(()));
        // Capacity 1, Insert with Name Reference, with Literal Name, Duplicate.
        for bad in [[0x21], [0xc0], [0x40], [0x00]] {
            assert_eq!(check.feed(&bad), Err(QpackError::EncoderInstruction));
        }
    }

    #[test]
    fn decoder_stream_allows_only_stream_cancellations() {
        let mut check = DecoderStreamCheck::default();
        // Cancel stream 4, then stream 1000 split across two calls.
        let mut cancel = Vec::new();
        encode_integer(4, 6, 0x40, &mut cancel);
        encode_integer(1000, 6, 0x40, &mut cancel);
        assert_eq!(check.feed(&cancel[..2]), Ok(()));
        assert_eq!(check.feed(&cancel[2..]), Ok(()));
        assert!(check.partial.is_none());
        for bad in [[0x84], [0x01]] {
            assert_eq!(
                DecoderStreamCheck::default().feed(&bad),
                Err(QpackError::DecoderInstruction)
            );
        }
    }

    #[test]
    fn literal_field_sections_use_literal_names() {
        let mut out = Vec::new();
        encode_literal_field_section(&[(b":method", b"GET")], &mut out);
        // Prefix, then 0x27 = 001 0 0 111 (length 7, which fills the 3-bit
        // prefix: 7 - 7 = 0 follows), the name, 0x03 and the value.
        assert_eq!(out, b"\x00\x00\x27\x00:method\x03GET");
    }
}
