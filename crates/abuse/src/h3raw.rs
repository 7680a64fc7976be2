//! HTTP/3 written by hand on quinn: what an attacker sends is exactly the
//! bytes we choose, valid or not, which no HTTP/3 library lets us do.
//!
//! * frames (RFC 9114 §7.1): a type and a length (variable-length integers,
//!   RFC 9000 §16) and a payload; [`frame_header`] can declare a length the
//!   payload never reaches;
//! * field sections (RFC 9204 §4.5): [`headers_frame`] writes QPACK literal
//!   field lines with literal names (§4.5.6) after a prefix that references
//!   no dynamic table (§4.5.1), without Huffman coding, which every decoder
//!   accepts;
//! * [`RawConnection`]: a QUIC connection to a pinned server with our control
//!   stream and SETTINGS (RFC 9114 §6.2.1, §7.2.4) open, and requests and
//!   unidirectional streams of any content.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::{Buf, Bytes};
use openrelay_transport::endpoint::{self, Tuning};
use openrelay_types::KeyPin;
pub use openrelay_wire::h3frame::{frame, frame_header, headers_frame};
use openrelay_wire::varint;

/// Frame types (RFC 9114 §7.2, RFC 9297 §2.1).
pub mod frame_type {
    /// DATA (RFC 9114 §7.2.1).
    pub const DATA: u64 = 0x00;
    /// HEADERS (RFC 9114 §7.2.2).
    pub const HEADERS: u64 = 0x01;
    /// SETTINGS (RFC 9114 §7.2.4).
    pub const SETTINGS: u64 = 0x04;
    /// A reserved type (RFC 9114 §7.2.8: `0x1f * N + 0x21`), which a
    /// receiver must skip.
    pub const RESERVED: u64 = 0x1f * 7 + 0x21;
}

/// Unidirectional stream types (RFC 9114 §6.2).
pub mod stream_type {
    /// The control stream (RFC 9114 §6.2.1).
    pub const CONTROL: u64 = 0x00;
    /// A reserved type (RFC 9114 §6.2.3), which a receiver must ignore.
    pub const RESERVED: u64 = 0x1f * 5 + 0x21;
}

/// Settings (RFC 9114 §7.2.4.1, RFC 9220 §3, RFC 9297 §2.1.1).
pub mod setting {
    /// SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 9220 §3).
    pub const ENABLE_CONNECT_PROTOCOL: u64 = 0x08;
    /// SETTINGS_H3_DATAGRAM (RFC 9297 §2.1.1).
    pub const H3_DATAGRAM: u64 = 0x33;
}

/// Appends `value` as a QUIC variable-length integer (RFC 9000 §16).
/// Values above 2^62 - 1 cannot be encoded and are written as that maximum.
pub fn put_varint(value: u64, out: &mut Vec<u8>) {
    let _ = varint::encode(value.min(varint::MAX), out);
}

/// The start of our control stream: its type and a SETTINGS frame
/// announcing HTTP datagrams (RFC 9297 §2.1.1).
pub fn control_stream_start() -> Vec<u8> {
    let mut settings = Vec::new();
    put_varint(setting::H3_DATAGRAM, &mut settings);
    put_varint(1, &mut settings);
    let mut out = Vec::new();
    put_varint(stream_type::CONTROL, &mut out);
    out.extend(frame(frame_type::SETTINGS, &settings));
    out
}

/// The fields of an extended CONNECT for connect-udp (RFC 9298 §3.4, RFC 9220
/// §4) through `authority` to `path` (the URI template's expansion).
pub fn connect_udp_fields<'a>(authority: &'a str, path: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        (":method", "CONNECT"),
        (":protocol", "connect-udp"),
        (":scheme", "https"),
        (":authority", authority),
        (":path", path),
        ("capsule-protocol", "?1"),
    ]
}

/// Why a raw connection failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RawError {
    /// A local socket error.
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    /// TLS setup failed.
    #[error("tls: {0}")]
    Tls(#[from] openrelay_transport::tls::TlsError),
    /// The connection could not be started.
    #[error("connect: {0}")]
    Connect(#[from] quinn::ConnectError),
    /// The connection failed or was refused.
    #[error("connection: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// A stream write failed.
    #[error("write: {0}")]
    Write(#[from] quinn::WriteError),
    /// A stream read failed.
    #[error("read: {0}")]
    Read(#[from] quinn::ReadError),
    /// Did not finish in time.
    #[error("timed out")]
    Timeout,
}

/// A client QUIC endpoint on `bind` (port 0).
pub fn client_endpoint(bind: IpAddr) -> Result<quinn::Endpoint, RawError> {
    Ok(openrelay_transport::udp::endpoint(
        SocketAddr::new(bind, 0),
        None,
    )?)
}

/// A raw HTTP/3 client connection: QUIC to a pinned server, our control
/// stream open with its SETTINGS; requests are written by hand.
#[derive(Debug)]
pub struct RawConnection {
    /// The QUIC connection.
    pub connection: quinn::Connection,
    control: quinn::SendStream,
}

impl RawConnection {
    /// Connects from `endpoint` to `addr`, which must hold `pin`, with
    /// packets of `mtu` bytes and a keep-alive, within `limit`.
    pub async fn connect(
        endpoint: &quinn::Endpoint,
        addr: SocketAddr,
        pin: KeyPin,
        mtu: u16,
        limit: Duration,
    ) -> Result<Self, RawError> {
        Self::connect_with_control(endpoint, addr, pin, mtu, limit, &control_stream_start()).await
    }

    /// As [`RawConnection::connect`], with `control` as the whole start of
    /// the control stream (its type included), valid or not.
    pub async fn connect_with_control(
        endpoint: &quinn::Endpoint,
        addr: SocketAddr,
        pin: KeyPin,
        mtu: u16,
        limit: Duration,
        control: &[u8],
    ) -> Result<Self, RawError> {
        let tuning = Tuning::client(Duration::from_secs(60), Duration::from_secs(10), mtu);
        let config = endpoint::client_config(pin, &tuning)?;
        let connecting = endpoint.connect_with(config, addr, &addr.ip().to_string())?;
        let connection = tokio::time::timeout(limit, connecting)
            .await
            .map_err(|_| RawError::Timeout)??;
        let mut control_stream = connection.open_uni().await?;
        control_stream.write_all(control).await?;
        let control = control_stream;
        Ok(RawConnection {
            connection,
            control,
        })
    }

    /// Writes more bytes on our control stream (e.g. a frame the server
    /// must skip, or one it must reject).
    pub async fn control(&mut self, bytes: &[u8]) -> Result<(), RawError> {
        Ok(self.control.write_all(bytes).await?)
    }

    /// Opens a request stream and writes `bytes` on it.
    pub async fn request(
        &self,
        bytes: &[u8],
    ) -> Result<(quinn::SendStream, quinn::RecvStream), RawError> {
        let (mut send, recv) = self.connection.open_bi().await?;
        send.write_all(bytes).await?;
        Ok((send, recv))
    }

    /// Opens a unidirectional stream and writes `bytes` on it (its type
    /// first, as the caller wrote it).
    pub async fn uni(&self, bytes: &[u8]) -> Result<quinn::SendStream, RawError> {
        let mut send = self.connection.open_uni().await?;
        send.write_all(bytes).await?;
        Ok(send)
    }

    /// Closes the connection with H3_NO_ERROR.
    pub fn close(&self) {
        self.connection
            .close(quinn::VarInt::from_u32(0x100), b"done");
    }
}

/// Reads frames from a response stream until a HEADERS frame has arrived:
/// the response head (its content is not decoded; QPACK's static table and
/// Huffman coding would be needed). `Ok(false)`: the stream ended first.
pub async fn response_head(
    recv: &mut quinn::RecvStream,
    limit: Duration,
) -> Result<bool, RawError> {
    Ok(read_head(recv, limit).await?.is_some())
}

/// As [`response_head`], and whether the response is a success (2xx): a
/// refused request is answered too.
pub async fn response_accepted(
    recv: &mut quinn::RecvStream,
    limit: Duration,
) -> Result<bool, RawError> {
    Ok(read_head(recv, limit)
        .await?
        .is_some_and(|head| status_is_success(&head)))
}

/// Whether an encoded field section's first line is a 2xx `:status` (RFC
/// 9114 §4.3.2: pseudo-header fields come first), as servers without a
/// dynamic table send it: an indexed static line (RFC 9204 §4.5.2;
/// Appendix A: 25 is 200, 64 204, 65 206) or a literal with a static
/// `:status` name reference (§4.5.4, indices 24-28, 63-71) and a plain
/// value. Anything else (a Huffman-coded value included) counts as not
/// a success.
pub fn status_is_success(section: &[u8]) -> bool {
    // Required Insert Count and Delta Base: zero without a dynamic table.
    let Some(line) = section.get(2..) else {
        return false;
    };
    let Some(&first) = line.first() else {
        return false;
    };
    if first & 0xc0 == 0xc0 {
        let index = openrelay_wire::qpack::decode_integer(line, 6)
            .ok()
            .flatten();
        return matches!(index, Some((25 | 64 | 65, _)));
    }
    if first & 0xf0 == 0x50 {
        let Some((index, used)) = openrelay_wire::qpack::decode_integer(line, 4)
            .ok()
            .flatten()
        else {
            return false;
        };
        let is_status = matches!(index, 24..=28 | 63..=71);
        let value = line.get(used..).unwrap_or_default();
        // A plain (not Huffman) 3-byte string value starting with '2'.
        return is_status && value.first() == Some(&3) && value.get(1) == Some(&b'2');
    }
    false
}

/// The payload of the first HEADERS frame of a response stream; `None` if
/// the stream ended first.
async fn read_head(
    recv: &mut quinn::RecvStream,
    limit: Duration,
) -> Result<Option<Vec<u8>>, RawError> {
    let mut reader = FrameReader::default();
    tokio::time::timeout(limit, async {
        loop {
            match recv.read_chunk(16 * 1024, true).await? {
                None => return Ok(None),
                Some(chunk) => {
                    reader.push(chunk.bytes);
                    while let Some((frame_type, payload)) = reader.next_frame() {
                        if frame_type == frame_type::HEADERS {
                            return Ok(Some(payload));
                        }
                    }
                }
            }
        }
    })
    .await
    .map_err(|_| RawError::Timeout)?
}

/// Splits a received stream into frames (RFC 9114 §7.1), buffering at most
/// one frame (the harness reads only small responses).
#[derive(Debug, Default)]
pub struct FrameReader {
    buffer: Vec<u8>,
}

impl FrameReader {
    /// Appends received bytes.
    pub fn push(&mut self, bytes: Bytes) {
        self.buffer.extend_from_slice(bytes.chunk());
    }

    /// The next complete frame: its type and payload.
    pub fn next_frame(&mut self) -> Option<(u64, Vec<u8>)> {
        let (frame_type, type_len) = varint::decode(&self.buffer).ok()?;
        let (length, length_len) = varint::decode(self.buffer.get(type_len..)?).ok()?;
        let start = type_len + length_len;
        let end = start.checked_add(usize::try_from(length).ok()?)?;
        if self.buffer.len() < end {
            return None;
        }
        let payload = self.buffer[start..end].to_vec();
        self.buffer.drain(..end);
        Some((frame_type, payload))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn only_a_2xx_status_is_a_success() {
        // Indexed static lines (RFC 9204 Appendix A): 200, 204; 503, 404.
        assert!(status_is_success(&[0, 0, 0xc0 | 25]));
        assert!(status_is_success(&[0, 0, 0xff, 64 - 63]));
        assert!(!status_is_success(&[0, 0, 0xc0 | 28]));
        assert!(!status_is_success(&[0, 0, 0xc0 | 27]));
        // A literal with the static `:status` name (index 24) and a value.
        assert!(status_is_success(&[
            0,
            0,
            0x5f,
            24 - 15,
            3,
            b'2',
            b'0',
            b'2'
        ]));
        assert!(!status_is_success(&[
            0,
            0,
            0x5f,
            24 - 15,
            3,
            b'4',
            b'2',
            b'9'
        ]));
        // Not a status line first, or nothing at all.
        assert!(!status_is_success(&[0, 0, 0xc0 | 1]));
        assert!(!status_is_success(&[0, 0]));
        assert!(!status_is_success(&[]));
    }

    proptest! {
        #[test]
        fn any_section_is_classified_without_panicking(section in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = status_is_success(&section);
        }
    }

    #[test]
    fn frames_split_again() {
        let mut bytes = frame(frame_type::HEADERS, b"abc");
        bytes.extend(frame(frame_type::DATA, &[7; 300]));
        bytes.extend(frame_header(frame_type::DATA, 1 << 40));
        let mut reader = FrameReader::default();
        reader.push(Bytes::from(bytes));
        assert_eq!(
            reader.next_frame(),
            Some((frame_type::HEADERS, b"abc".to_vec()))
        );
        assert_eq!(reader.next_frame().unwrap().1.len(), 300);
        assert_eq!(reader.next_frame(), None);
    }

    proptest! {
        /// What a target sends back is untrusted: any bytes, in any chunks,
        /// give frames or nothing, never a panic, and whole frames survive
        /// any split.
        #[test]
        fn frame_reader_takes_any_bytes(
            noise in proptest::collection::vec(any::<u8>(), 0..512),
            payload in proptest::collection::vec(any::<u8>(), 0..300),
            split in 0usize..400,
        ) {
            let mut reader = FrameReader::default();
            reader.push(Bytes::from(noise));
            while reader.next_frame().is_some() {}
            let bytes = frame(frame_type::DATA, &payload);
            let split = split.min(bytes.len());
            let mut clean = FrameReader::default();
            clean.push(Bytes::copy_from_slice(&bytes[..split]));
            let early = clean.next_frame();
            clean.push(Bytes::copy_from_slice(&bytes[split..]));
            let frame = early.or_else(|| clean.next_frame());
            prop_assert_eq!(frame, Some((frame_type::DATA, payload)));
        }
    }
}
