//! The Capsule Protocol, RFC 9297 §3.2: type-length-value records sent on
//! the data stream of a request once the request has been upgraded.
//!
//! ```text
//! Capsule {
//!   Capsule Type (i),
//!   Capsule Length (i),
//!   Capsule Value (..),
//! }
//! ```

use std::fmt;

use bytes::BufMut;

use crate::varint;

/// The DATAGRAM capsule (RFC 9297 §3.5): its value is an HTTP Datagram
/// Payload, e.g. a Context ID and a UDP payload for connect-udp.
pub const DATAGRAM: u64 = 0x00;

/// The largest Capsule Length we accept or produce, 64 KiB.
///
/// RFC 9297 §3.2 allows lengths up to 2^62 - 1; a streaming receiver has to
/// buffer a whole capsule before it can act on it, so without a cap a peer
/// could make us buffer without bound. No capsule we use needs more: a
/// DATAGRAM capsule carries at most one UDP payload (< 64 KiB).
pub const MAX_CAPSULE_LEN: usize = 64 * 1024;

/// Why a capsule could not be decoded or encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CapsuleError {
    /// The Capsule Length is above [`MAX_CAPSULE_LEN`].
    #[error("capsule length above the 64 KiB limit")]
    TooLong,
    /// The Capsule Type is above the variable-length integer maximum.
    #[error("capsule type too large")]
    TypeTooLarge,
    /// The output buffer cannot grow to hold the capsule.
    #[error("output buffer too small")]
    BufferTooSmall,
}

/// One capsule, borrowing its value from the input.
///
/// `Debug` prints only the value length: a DATAGRAM capsule carries user
/// traffic.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Capsule<'a> {
    /// The Capsule Type; unknown types are to be skipped (RFC 9297 §3.2).
    pub capsule_type: u64,
    /// The Capsule Value.
    pub value: &'a [u8],
}

impl fmt::Debug for Capsule<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Capsule")
            .field("capsule_type", &self.capsule_type)
            .field("value_len", &self.value.len())
            .finish()
    }
}

/// Decodes the capsule at the start of `buf` (RFC 9297 §3.2), returning it
/// and the number of bytes it occupies.
///
/// This is a streaming parser: `Ok(None)` means `buf` holds only part of a
/// capsule and the caller should read more and call again with the longer
/// buffer. The length is checked against [`MAX_CAPSULE_LEN`] as soon as it
/// is known, before the value arrives, so the caller never buffers more
/// than the cap plus a 16-byte header.
pub fn decode(buf: &[u8]) -> Result<Option<(Capsule<'_>, usize)>, CapsuleError> {
    let Ok((capsule_type, type_len)) = varint::decode(buf) else {
        return Ok(None);
    };
    let rest = buf.get(type_len..).unwrap_or_default();
    let Ok((length, length_len)) = varint::decode(rest) else {
        return Ok(None);
    };
    let length = match usize::try_from(length) {
        Ok(length) if length <= MAX_CAPSULE_LEN => length,
        _ => return Err(CapsuleError::TooLong),
    };
    let header_len = type_len + length_len;
    let Some(value) = buf.get(header_len..header_len + length) else {
        return Ok(None);
    };
    Ok(Some((
        Capsule {
            capsule_type,
            value,
        },
        header_len + length,
    )))
}

/// Encodes one capsule (RFC 9297 §3.2). Nothing is written on error.
pub fn encode(capsule_type: u64, value: &[u8], out: &mut impl BufMut) -> Result<(), CapsuleError> {
    if capsule_type > varint::MAX {
        return Err(CapsuleError::TypeTooLarge);
    }
    // Symmetric with `decode`, so a peer using this crate accepts what we send.
    if value.len() > MAX_CAPSULE_LEN {
        return Err(CapsuleError::TooLong);
    }
    let length = value.len() as u64;
    let total = varint::encoded_len(capsule_type) + varint::encoded_len(length) + value.len();
    if out.remaining_mut() < total {
        return Err(CapsuleError::BufferTooSmall);
    }
    varint::encode(capsule_type, out).map_err(|_| CapsuleError::BufferTooSmall)?;
    varint::encode(length, out).map_err(|_| CapsuleError::BufferTooSmall)?;
    out.put_slice(value);
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn datagram_capsule() {
        let mut out = Vec::new();
        encode(DATAGRAM, &[0x00, 1, 2, 3], &mut out).unwrap();
        assert_eq!(out, [0x00, 0x04, 0x00, 1, 2, 3]);
        let (c, n) = decode(&out).unwrap().unwrap();
        assert_eq!(n, 6);
        assert_eq!(c.capsule_type, DATAGRAM);
        assert_eq!(c.value, [0x00, 1, 2, 3]);
    }

    #[test]
    fn streaming_needs_more_at_every_prefix() {
        let mut out = Vec::new();
        encode(0x1234, &[7u8; 300], &mut out).unwrap();
        for cut in 0..out.len() {
            assert_eq!(decode(&out[..cut]), Ok(None), "cut at {cut}");
        }
        let (c, n) = decode(&out).unwrap().unwrap();
        assert_eq!((c.capsule_type, c.value.len(), n), (0x1234, 300, out.len()));
    }

    #[test]
    fn decode_leaves_following_capsule() {
        let mut out = Vec::new();
        encode(1, b"a", &mut out).unwrap();
        encode(2, b"", &mut out).unwrap();
        let (first, n) = decode(&out).unwrap().unwrap();
        assert_eq!((first.capsule_type, first.value), (1, &b"a"[..]));
        let (second, m) = decode(&out[n..]).unwrap().unwrap();
        assert_eq!((second.capsule_type, second.value, m), (2, &b""[..], 2));
    }

    #[test]
    fn oversized_length_is_rejected_before_the_value_arrives() {
        let mut header = vec![0x00];
        varint::encode(MAX_CAPSULE_LEN as u64 + 1, &mut header).unwrap();
        assert_eq!(decode(&header), Err(CapsuleError::TooLong));
        let mut header = vec![0x00];
        varint::encode(varint::MAX, &mut header).unwrap();
        assert_eq!(decode(&header), Err(CapsuleError::TooLong));
        // Exactly the cap is fine, and merely incomplete.
        let mut header = vec![0x00];
        varint::encode(MAX_CAPSULE_LEN as u64, &mut header).unwrap();
        assert_eq!(decode(&header), Ok(None));
    }

    #[test]
    fn encode_rejects() {
        let mut out = Vec::new();
        assert_eq!(
            encode(0, &vec![0; MAX_CAPSULE_LEN + 1], &mut out),
            Err(CapsuleError::TooLong)
        );
        assert_eq!(
            encode(varint::MAX + 1, b"", &mut out),
            Err(CapsuleError::TypeTooLarge)
        );
        assert!(out.is_empty());
        let mut storage = [0u8; 3];
        let mut small = &mut storage[..];
        assert_eq!(
            encode(0, b"ab", &mut small),
            Err(CapsuleError::BufferTooSmall)
        );
    }
}
