//! QUIC variable-length integers, RFC 9000 §16.
//!
//! The two most significant bits of the first byte give the length of the
//! encoding (1, 2, 4 or 8 bytes); the remaining bits, in network byte order,
//! hold the value.

use bytes::BufMut;

/// The largest value a variable-length integer can hold, 2^62 - 1
/// (RFC 9000 §16).
pub const MAX: u64 = (1 << 62) - 1;

/// Why a variable-length integer could not be decoded or encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VarIntError {
    /// The buffer ends before the integer does.
    #[error("truncated variable-length integer")]
    Truncated,
    /// The value is above [`MAX`] and has no encoding.
    #[error("value too large for a variable-length integer")]
    TooLarge,
    /// The output buffer cannot grow to hold the encoding.
    #[error("output buffer too small")]
    BufferTooSmall,
}

/// Decodes one variable-length integer from the start of `buf`
/// (RFC 9000 §16), returning the value and the number of bytes consumed.
///
/// Non-minimal encodings are accepted, as RFC 9000 §16 allows ("values do
/// not need to be encoded on the minimum number of bytes").
pub fn decode(buf: &[u8]) -> Result<(u64, usize), VarIntError> {
    let first = *buf.first().ok_or(VarIntError::Truncated)?;
    let len = 1usize << (first >> 6);
    let bytes = buf.get(..len).ok_or(VarIntError::Truncated)?;
    let value = bytes
        .iter()
        .skip(1)
        .fold(u64::from(first & 0x3f), |acc, &b| (acc << 8) | u64::from(b));
    Ok((value, len))
}

/// Encodes `value` on the minimal number of bytes (RFC 9000 §16).
///
/// Nothing is written on error.
pub fn encode(value: u64, out: &mut impl BufMut) -> Result<(), VarIntError> {
    if value > MAX {
        return Err(VarIntError::TooLarge);
    }
    let len = encoded_len(value);
    // `BufMut::put_*` panics on a full fixed-size buffer; refuse instead.
    if out.remaining_mut() < len {
        return Err(VarIntError::BufferTooSmall);
    }
    match len {
        1 => out.put_u8(value as u8),
        2 => out.put_u16(0x4000 | value as u16),
        4 => out.put_u32(0x8000_0000 | value as u32),
        _ => out.put_u64(0xc000_0000_0000_0000 | value),
    }
    Ok(())
}

/// The number of bytes [`encode`] writes for `value`: 1, 2, 4 or 8.
///
/// A value above [`MAX`] has no encoding; this returns 8 for it, the length
/// of the longest encoding, and [`encode`] rejects it.
pub fn encoded_len(value: u64) -> usize {
    match value {
        0..=0x3f => 1,
        0x40..=0x3fff => 2,
        0x4000..=0x3fff_ffff => 4,
        _ => 8,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// RFC 9000 §A.1 sample encodings.
    const RFC_SAMPLES: &[(&[u8], u64)] = &[
        (
            &[0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c],
            151_288_809_941_952_652,
        ),
        (&[0x9d, 0x7f, 0x3e, 0x7d], 494_878_333),
        (&[0x7b, 0xbd], 15_293),
        (&[0x25], 37),
    ];

    #[test]
    fn rfc9000_a1_samples_decode() {
        for &(bytes, value) in RFC_SAMPLES {
            assert_eq!(decode(bytes).unwrap(), (value, bytes.len()));
        }
    }

    #[test]
    fn rfc9000_a1_samples_encode() {
        for &(bytes, value) in RFC_SAMPLES {
            let mut out = Vec::new();
            encode(value, &mut out).unwrap();
            assert_eq!(out, bytes);
            assert_eq!(encoded_len(value), bytes.len());
        }
    }

    #[test]
    fn rfc9000_a1_non_minimal_decodes() {
        // "the two-byte sequence 0x40 0x25 also decodes to 37"
        assert_eq!(decode(&[0x40, 0x25]).unwrap(), (37, 2));
    }

    #[test]
    fn decode_ignores_trailing_bytes() {
        assert_eq!(decode(&[0x25, 0xff, 0xff]).unwrap(), (37, 1));
    }

    #[test]
    fn truncated() {
        assert_eq!(decode(&[]), Err(VarIntError::Truncated));
        assert_eq!(decode(&[0x40]), Err(VarIntError::Truncated));
        assert_eq!(decode(&[0x80, 0, 0]), Err(VarIntError::Truncated));
        assert_eq!(
            decode(&[0xc0, 0, 0, 0, 0, 0, 0]),
            Err(VarIntError::Truncated)
        );
    }

    #[test]
    fn boundaries() {
        for (value, len) in [
            (0, 1),
            (63, 1),
            (64, 2),
            (16_383, 2),
            (16_384, 4),
            (1_073_741_823, 4),
            (1_073_741_824, 8),
            (MAX, 8),
        ] {
            let mut out = Vec::new();
            encode(value, &mut out).unwrap();
            assert_eq!(out.len(), len, "{value}");
            assert_eq!(decode(&out).unwrap(), (value, len));
        }
    }

    #[test]
    fn too_large() {
        let mut out = Vec::new();
        assert_eq!(encode(MAX + 1, &mut out), Err(VarIntError::TooLarge));
        assert_eq!(encode(u64::MAX, &mut out), Err(VarIntError::TooLarge));
        assert!(out.is_empty());
    }

    #[test]
    fn fixed_buffer_too_small_does_not_panic() {
        let mut storage = [0u8; 1];
        let mut out = &mut storage[..];
        assert_eq!(encode(64, &mut out), Err(VarIntError::BufferTooSmall));
        assert_eq!(encode(63, &mut out), Ok(()));
        assert_eq!(storage, [63]);
    }
}
