//! HTTP Datagrams carried in QUIC DATAGRAM frames (RFC 9297 §2.1), with the
//! Context ID that connect-udp puts at the start of the HTTP Datagram
//! Payload (RFC 9298 §5).
//!
//! ```text
//! HTTP/3 Datagram {
//!   Quarter Stream ID (i),
//!   HTTP Datagram Payload {      -- RFC 9298 §5
//!     Context ID (i),
//!     Payload (..),
//!   },
//! }
//! ```

use std::fmt;

use bytes::BufMut;

use crate::varint;

/// Context ID 0: the payload is a whole UDP payload (RFC 9298 §4).
pub const UDP_PAYLOAD_CONTEXT: u64 = 0;

/// The largest legal Quarter Stream ID, 2^60 - 1: the largest QUIC stream ID
/// is 2^62 - 1 (RFC 9297 §2.1).
pub const MAX_QUARTER_STREAM_ID: u64 = (1 << 60) - 1;

/// Why an HTTP Datagram could not be decoded or encoded, or a stream ID
/// mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DatagramError {
    /// The datagram ends inside the Quarter Stream ID.
    #[error("truncated quarter stream ID")]
    TruncatedQuarterStreamId,
    /// The datagram ends inside the Context ID.
    #[error("truncated context ID")]
    TruncatedContextId,
    /// The Quarter Stream ID is above 2^60 - 1. RFC 9297 §2.1 makes
    /// receiving one an HTTP/3 connection error of type H3_DATAGRAM_ERROR.
    #[error("quarter stream ID above 2^60 - 1")]
    QuarterStreamIdTooLarge,
    /// The Context ID is above the variable-length integer maximum.
    #[error("context ID too large")]
    ContextIdTooLarge,
    /// The stream is not client-initiated bidirectional, so it carries no
    /// request and cannot be associated with datagrams (RFC 9297 §2.1).
    #[error("not a client-initiated bidirectional stream")]
    NotClientBidiStream,
    /// The stream ID is above the largest QUIC stream ID, 2^62 - 1.
    #[error("stream ID above 2^62 - 1")]
    StreamIdTooLarge,
    /// The output buffer cannot grow to hold the header.
    #[error("output buffer too small")]
    BufferTooSmall,
}

/// A decoded HTTP Datagram (RFC 9297 §2.1) whose payload starts with a
/// connect-udp Context ID (RFC 9298 §5).
///
/// `Debug` prints only the payload length: the payload is user traffic.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HttpDatagram<'a> {
    /// The client-initiated bidirectional stream ID of the request, divided
    /// by four.
    pub quarter_stream_id: u64,
    /// Which context of the request the payload belongs to;
    /// [`UDP_PAYLOAD_CONTEXT`] for a UDP payload.
    pub context_id: u64,
    /// The rest of the datagram; may be empty.
    pub payload: &'a [u8],
}

impl fmt::Debug for HttpDatagram<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpDatagram")
            .field("quarter_stream_id", &self.quarter_stream_id)
            .field("context_id", &self.context_id)
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

/// Decodes the payload of a QUIC DATAGRAM frame as an HTTP Datagram
/// (RFC 9297 §2.1) with a Context ID (RFC 9298 §5).
///
/// A Quarter Stream ID above [`MAX_QUARTER_STREAM_ID`] is an error, which
/// RFC 9297 §2.1 says to treat as a connection error (H3_DATAGRAM_ERROR).
/// Unknown Context IDs are not an error here: RFC 9298 §5 says to drop
/// (or buffer) them, which is the caller's decision.
pub fn decode(buf: &[u8]) -> Result<HttpDatagram<'_>, DatagramError> {
    let (quarter_stream_id, n) =
        varint::decode(buf).map_err(|_| DatagramError::TruncatedQuarterStreamId)?;
    if quarter_stream_id > MAX_QUARTER_STREAM_ID {
        return Err(DatagramError::QuarterStreamIdTooLarge);
    }
    let rest = buf.get(n..).unwrap_or_default();
    let (context_id, m) = varint::decode(rest).map_err(|_| DatagramError::TruncatedContextId)?;
    let payload = rest.get(m..).unwrap_or_default();
    Ok(HttpDatagram {
        quarter_stream_id,
        context_id,
        payload,
    })
}

/// Writes the Quarter Stream ID and Context ID that precede a payload
/// (RFC 9297 §2.1, RFC 9298 §5). The caller appends the payload.
///
/// Nothing is written on error.
pub fn encode_header(
    quarter_stream_id: u64,
    context_id: u64,
    out: &mut impl BufMut,
) -> Result<(), DatagramError> {
    if quarter_stream_id > MAX_QUARTER_STREAM_ID {
        return Err(DatagramError::QuarterStreamIdTooLarge);
    }
    if context_id > varint::MAX {
        return Err(DatagramError::ContextIdTooLarge);
    }
    if out.remaining_mut() < header_len(quarter_stream_id, context_id) {
        return Err(DatagramError::BufferTooSmall);
    }
    // Both values were checked above, and the buffer has room for both, so
    // these cannot fail; map anyway rather than unwrap.
    varint::encode(quarter_stream_id, out).map_err(|_| DatagramError::BufferTooSmall)?;
    varint::encode(context_id, out).map_err(|_| DatagramError::BufferTooSmall)?;
    Ok(())
}

/// The number of bytes [`encode_header`] writes.
pub fn header_len(quarter_stream_id: u64, context_id: u64) -> usize {
    varint::encoded_len(quarter_stream_id) + varint::encoded_len(context_id)
}

/// The Quarter Stream ID of a request stream: `stream_id / 4`.
///
/// RFC 9297 §2.1: only client-initiated bidirectional streams
/// (`stream_id % 4 == 0`, RFC 9000 §2.1) carry requests, so any other stream
/// is an error.
pub fn quarter_stream_id(stream_id: u64) -> Result<u64, DatagramError> {
    if stream_id > varint::MAX {
        return Err(DatagramError::StreamIdTooLarge);
    }
    if !stream_id.is_multiple_of(4) {
        return Err(DatagramError::NotClientBidiStream);
    }
    Ok(stream_id / 4)
}

/// The stream ID of a Quarter Stream ID: `quarter_stream_id * 4`
/// (RFC 9297 §2.1). Errors if that exceeds the largest QUIC stream ID.
pub fn stream_id(quarter_stream_id: u64) -> Result<u64, DatagramError> {
    if quarter_stream_id > MAX_QUARTER_STREAM_ID {
        return Err(DatagramError::QuarterStreamIdTooLarge);
    }
    Ok(quarter_stream_id * 4)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn decode_udp_payload() {
        let d = decode(&[0x01, 0x00, b'h', b'i']).unwrap();
        assert_eq!(d.quarter_stream_id, 1);
        assert_eq!(d.context_id, UDP_PAYLOAD_CONTEXT);
        assert_eq!(d.payload, b"hi");
    }

    #[test]
    fn empty_payload_is_fine() {
        let d = decode(&[0x40, 0x41, 0x05]).unwrap();
        assert_eq!(d.quarter_stream_id, 0x41);
        assert_eq!(d.context_id, 5);
        assert!(d.payload.is_empty());
    }

    #[test]
    fn truncations() {
        assert_eq!(decode(&[]), Err(DatagramError::TruncatedQuarterStreamId));
        assert_eq!(
            decode(&[0x40]),
            Err(DatagramError::TruncatedQuarterStreamId)
        );
        assert_eq!(decode(&[0x00]), Err(DatagramError::TruncatedContextId));
        assert_eq!(
            decode(&[0x00, 0x80, 0x00]),
            Err(DatagramError::TruncatedContextId)
        );
    }

    #[test]
    fn quarter_stream_id_above_2_60_is_rejected() {
        let mut buf = Vec::new();
        varint::encode(MAX_QUARTER_STREAM_ID + 1, &mut buf).unwrap();
        buf.push(0);
        assert_eq!(decode(&buf), Err(DatagramError::QuarterStreamIdTooLarge));

        let mut buf = Vec::new();
        varint::encode(MAX_QUARTER_STREAM_ID, &mut buf).unwrap();
        buf.push(0);
        assert_eq!(
            decode(&buf).unwrap().quarter_stream_id,
            MAX_QUARTER_STREAM_ID
        );
    }

    #[test]
    fn header_round_trip() {
        let mut out = Vec::new();
        encode_header(7, 0, &mut out).unwrap();
        assert_eq!(out, [0x07, 0x00]);
        assert_eq!(header_len(7, 0), 2);
        out.extend_from_slice(b"payload");
        let d = decode(&out).unwrap();
        assert_eq!(
            (d.quarter_stream_id, d.context_id, d.payload),
            (7, 0, &b"payload"[..])
        );
    }

    #[test]
    fn encode_header_rejects_out_of_range() {
        let mut out = Vec::new();
        assert_eq!(
            encode_header(MAX_QUARTER_STREAM_ID + 1, 0, &mut out),
            Err(DatagramError::QuarterStreamIdTooLarge)
        );
        assert_eq!(
            encode_header(0, varint::MAX + 1, &mut out),
            Err(DatagramError::ContextIdTooLarge)
        );
        assert!(out.is_empty());
        let mut storage = [0u8; 1];
        let mut small = &mut storage[..];
        assert_eq!(
            encode_header(0, 0, &mut small),
            Err(DatagramError::BufferTooSmall)
        );
    }

    #[test]
    fn stream_id_mapping() {
        assert_eq!(quarter_stream_id(0), Ok(0));
        assert_eq!(quarter_stream_id(4), Ok(1));
        assert_eq!(quarter_stream_id(400), Ok(100));
        for server_or_uni in [1, 2, 3, 5, 6, 7] {
            assert_eq!(
                quarter_stream_id(server_or_uni),
                Err(DatagramError::NotClientBidiStream)
            );
        }
        assert_eq!(
            quarter_stream_id(varint::MAX + 1),
            Err(DatagramError::StreamIdTooLarge)
        );
        assert_eq!(stream_id(100), Ok(400));
        assert_eq!(stream_id(MAX_QUARTER_STREAM_ID), Ok(varint::MAX - 3));
        assert_eq!(
            stream_id(MAX_QUARTER_STREAM_ID + 1),
            Err(DatagramError::QuarterStreamIdTooLarge)
        );
    }

    #[test]
    fn debug_hides_payload() {
        let d = decode(&[0x00, 0x00, b's', b'e', b'c', b'r', b'e', b't']).unwrap();
        let s = format!("{d:?}");
        assert!(!s.contains("115"), "{s}"); // b's'
        assert!(s.contains("payload_len: 6"), "{s}");
    }
}
