//! HTTP/3 frame boundaries on a received stream (RFC 9114 §7.1), tracked as
//! the bytes go by, so the HTTP/3 layer above never buffers an unbounded
//! frame.
//!
//! ```text
//! HTTP/3 Frame Format {
//!   Type (i),
//!   Length (i),
//!   Frame Payload (..),
//! }
//! ```
//!
//! The `h3` crate buffers every frame but DATA whole before it decodes it,
//! and a peer may declare any length up to 2^62 - 1: a HEADERS frame that
//! never ends grows the receiver's memory at line rate. [`FrameTracker`]
//! reads only frame headers and decides, from the type and the declared
//! length, before any payload arrives:
//!
//! * DATA payloads stream through (the application reads them at its pace);
//! * HEADERS, SETTINGS and the one-integer control frames pass only if their
//!   declared length fits their limit ([`FrameLimits`]);
//! * unknown and reserved frame types are consumed here and never passed on
//!   (RFC 9114 §7.2.8: they have no meaning), within a per-stream allowance;
//! * frames that may not appear on the stream, HTTP/2 frame types and server
//!   push (we never send MAX_PUSH_ID) are errors with the code RFC 9114 §8.1
//!   names, as a stream or a connection error ([`ErrorScope`]).
//!
//! It holds at most one frame header (16 bytes) and never copies a payload.
//! [`StreamTypeReader`] reads the type that starts a unidirectional stream
//! (RFC 9114 §6.2).

use std::fmt;

use crate::varint;

/// HTTP/3 and QPACK error codes (RFC 9114 §8.1, RFC 9204 §6).
pub mod code {
    /// No error; also "stop sending, the response is complete" (RFC 9114 §4.1.1).
    pub const H3_NO_ERROR: u64 = 0x0100;
    /// A peer created a stream that will not be accepted.
    pub const H3_STREAM_CREATION_ERROR: u64 = 0x0103;
    /// A stream required by the connection was closed or reset.
    pub const H3_CLOSED_CRITICAL_STREAM: u64 = 0x0104;
    /// A frame not permitted in the current state or on the current stream.
    pub const H3_FRAME_UNEXPECTED: u64 = 0x0105;
    /// A frame that fails its layout requirements or has an invalid size.
    pub const H3_FRAME_ERROR: u64 = 0x0106;
    /// The peer exhibits behaviour that might be generating excessive load.
    pub const H3_EXCESSIVE_LOAD: u64 = 0x0107;
    /// A stream ID or push ID was used incorrectly.
    pub const H3_ID_ERROR: u64 = 0x0108;
    /// The request was rejected without any application processing.
    pub const H3_REQUEST_REJECTED: u64 = 0x010b;
    /// The request or its response is cancelled.
    pub const H3_REQUEST_CANCELLED: u64 = 0x010c;
    /// An HTTP message was malformed and cannot be processed.
    pub const H3_MESSAGE_ERROR: u64 = 0x010e;
    /// The encoder stream carried an instruction the decoder cannot accept.
    pub const QPACK_ENCODER_STREAM_ERROR: u64 = 0x0201;
    /// The decoder stream carried an instruction the encoder cannot accept.
    pub const QPACK_DECODER_STREAM_ERROR: u64 = 0x0202;
}

/// Frame types (RFC 9114 §7.2, §11.2.1).
pub mod frame_type {
    /// DATA (§7.2.1).
    pub const DATA: u64 = 0x00;
    /// HEADERS (§7.2.2).
    pub const HEADERS: u64 = 0x01;
    /// CANCEL_PUSH (§7.2.3).
    pub const CANCEL_PUSH: u64 = 0x03;
    /// SETTINGS (§7.2.4).
    pub const SETTINGS: u64 = 0x04;
    /// PUSH_PROMISE (§7.2.5).
    pub const PUSH_PROMISE: u64 = 0x05;
    /// GOAWAY (§7.2.6).
    pub const GOAWAY: u64 = 0x07;
    /// MAX_PUSH_ID (§7.2.7).
    pub const MAX_PUSH_ID: u64 = 0x0d;
    /// Types HTTP/2 used that HTTP/3 reserves and forbids (§7.2.8):
    /// PRIORITY, PING, WINDOW_UPDATE, CONTINUATION.
    pub const HTTP2_ONLY: [u64; 4] = [0x02, 0x06, 0x08, 0x09];
}

/// The longest frame header: two 8-byte variable-length integers.
pub const MAX_HEADER_LEN: usize = 16;

/// The largest HEADERS payload accepted, and the `SETTINGS_MAX_FIELD_SECTION_SIZE`
/// (RFC 9114 §4.2.2) every openrelay endpoint advertises: 16 KiB. Our own
/// requests and responses carry a few hundred bytes; nginx and h2 default to
/// 8 to 16 KiB for whole request heads.
pub const MAX_FIELD_SECTION: u64 = 16 * 1024;

/// Size limits of the frames a [`FrameTracker`] lets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLimits {
    /// Largest HEADERS payload (an encoded field section, RFC 9204 §4.5).
    pub max_field_section: u64,
    /// Largest SETTINGS payload: identifier/value pairs; implementations
    /// send a few dozen bytes.
    pub max_settings: u64,
    /// Bytes of unknown and reserved frames (headers included) one stream
    /// may carry in total. They are discarded unread, but a stream of
    /// endless padding is load without purpose (RFC 9114 §10.5).
    pub max_ignored: u64,
}

impl Default for FrameLimits {
    fn default() -> Self {
        FrameLimits {
            max_field_section: MAX_FIELD_SECTION,
            max_settings: 4 * 1024,
            max_ignored: 64 * 1024,
        }
    }
}

/// The stream a tracker reads, which decides the frames allowed on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// A request stream (bidirectional; RFC 9114 §4.1): HEADERS and DATA.
    Request,
    /// The peer's control stream, after its stream type (RFC 9114 §6.2.1).
    Control,
}

/// Who sent the frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    /// The client: we are the server.
    Client,
    /// The server: we are the client.
    Server,
}

/// Whether an error ends one stream or the whole connection (RFC 9114 §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorScope {
    /// Reset and stop the stream with the code.
    Stream,
    /// Close the connection with the code.
    Connection,
}

/// What a peer did wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameViolation {
    /// A HEADERS or SETTINGS frame declared longer than its limit.
    TooLarge,
    /// Unknown or reserved frames beyond the stream's allowance.
    TooMuchIgnored,
    /// A frame whose declared length cannot hold what its type defines.
    Malformed,
    /// A frame type that may not appear on this stream, or an HTTP/2 type.
    Unexpected,
    /// A server push, which we never allow (no MAX_PUSH_ID is ever sent).
    Push,
    /// The stream ended inside a frame.
    Truncated,
}

impl FrameViolation {
    /// A fixed name for logs.
    pub fn kind_name(self) -> &'static str {
        match self {
            FrameViolation::TooLarge => "frame_too_large",
            FrameViolation::TooMuchIgnored => "too_many_ignored_frames",
            FrameViolation::Malformed => "malformed_frame",
            FrameViolation::Unexpected => "unexpected_frame",
            FrameViolation::Push => "server_push",
            FrameViolation::Truncated => "truncated_frame",
        }
    }
}

/// A violation with the error code and scope that answer it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("HTTP/3 {} ({scope:?} error {code:#x})", .violation.kind_name())]
pub struct FrameError {
    /// What happened.
    pub violation: FrameViolation,
    /// The HTTP/3 error code ([`code`]).
    pub code: u64,
    /// Stream or connection error.
    pub scope: ErrorScope,
}

impl FrameError {
    fn connection(violation: FrameViolation, code: u64) -> Self {
        FrameError {
            violation,
            code,
            scope: ErrorScope::Connection,
        }
    }
}

/// A frame header whose bytes arrived in several pieces, held until it was
/// complete; passed on as a whole.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HeldHeader {
    bytes: [u8; MAX_HEADER_LEN],
    len: u8,
}

impl HeldHeader {
    const EMPTY: HeldHeader = HeldHeader {
        bytes: [0; MAX_HEADER_LEN],
        len: 0,
    };

    fn from_slice(bytes: &[u8]) -> Self {
        let mut held = HeldHeader::EMPTY;
        let len = bytes.len().min(MAX_HEADER_LEN);
        held.bytes[..len].copy_from_slice(&bytes[..len]);
        held.len = len as u8;
        held
    }
}

impl AsRef<[u8]> for HeldHeader {
    fn as_ref(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl fmt::Debug for HeldHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HeldHeader({} bytes)", self.len)
    }
}

/// What to do with the start of the input given to [`FrameTracker::feed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Hand the first `n` input bytes to the HTTP/3 layer unchanged.
    Pass(usize),
    /// Drop the first `n` input bytes: an ignored frame, or the start of a
    /// frame header held until it is complete.
    Skip(usize),
    /// The first `consumed` input bytes completed a frame header that began
    /// in an earlier input: hand `header` (the whole header) to the HTTP/3
    /// layer instead of those bytes.
    PassHeld {
        /// Input bytes used.
        consumed: usize,
        /// The complete frame header.
        header: HeldHeader,
    },
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Reading a frame header; `held` has its first bytes.
    Header,
    /// Inside a frame's payload.
    Payload {
        remaining: u64,
        pass: bool,
        headers: bool,
    },
    Failed(FrameError),
}

/// Follows the frames of one received stream; see the [module
/// documentation](self).
#[derive(Debug, Clone)]
pub struct FrameTracker {
    stream: StreamKind,
    sender: Sender,
    limits: FrameLimits,
    state: State,
    held: HeldHeader,
    ignored: u64,
    head_complete: bool,
}

impl FrameTracker {
    /// A tracker for the frames `sender` sends on a `stream`.
    pub fn new(stream: StreamKind, sender: Sender, limits: FrameLimits) -> Self {
        FrameTracker {
            stream,
            sender,
            limits,
            state: State::Header,
            held: HeldHeader::EMPTY,
            ignored: 0,
            head_complete: false,
        }
    }

    /// Whether a whole HEADERS frame has been passed on (a request or
    /// response head is complete).
    pub fn head_complete(&self) -> bool {
        self.head_complete
    }

    /// Reads the start of `input` (the stream's next bytes) and says what to
    /// do with it. The caller applies the step, then feeds the rest of the
    /// input again until none is left. Empty input gives `Skip(0)`.
    ///
    /// After an error every call returns the same error.
    pub fn feed(&mut self, input: &[u8]) -> Result<Step, FrameError> {
        match self.state {
            State::Failed(error) => Err(error),
            _ if input.is_empty() => Ok(Step::Skip(0)),
            State::Payload { .. } => Ok(self.payload(input.len())),
            State::Header => self.header(input),
        }
    }

    /// Checks that the stream may end here (it ended cleanly after what was
    /// fed): RFC 9114 §7.1 makes a truncated last frame a connection error
    /// of type H3_FRAME_ERROR.
    pub fn finish(&self) -> Result<(), FrameError> {
        match self.state {
            State::Failed(error) => Err(error),
            State::Header if self.held.len == 0 => Ok(()),
            _ => Err(FrameError::connection(
                FrameViolation::Truncated,
                code::H3_FRAME_ERROR,
            )),
        }
    }

    /// Consumes up to `available` payload bytes of the current frame.
    fn payload(&mut self, available: usize) -> Step {
        let State::Payload {
            remaining,
            pass,
            headers,
        } = self.state
        else {
            return Step::Skip(0);
        };
        // `n` fits in usize: it is at most `available`.
        let n = remaining.min(available as u64);
        if n == remaining {
            self.end_frame(headers);
        } else {
            self.state = State::Payload {
                remaining: remaining - n,
                pass,
                headers,
            };
        }
        let n = n as usize;
        if pass { Step::Pass(n) } else { Step::Skip(n) }
    }

    fn end_frame(&mut self, headers: bool) {
        self.head_complete |= headers;
        self.state = State::Header;
    }

    fn header(&mut self, input: &[u8]) -> Result<Step, FrameError> {
        let held = usize::from(self.held.len);
        let mut window = [0u8; MAX_HEADER_LEN];
        window[..held].copy_from_slice(self.held.as_ref());
        let take = input.len().min(MAX_HEADER_LEN - held);
        window[held..held + take].copy_from_slice(&input[..take]);
        let window = &window[..held + take];
        let parsed = varint::decode(window).and_then(|(frame_type, type_len)| {
            varint::decode(&window[type_len..])
                .map(|(length, length_len)| (frame_type, length, type_len + length_len))
        });
        let Ok((frame_type, length, header_len)) = parsed else {
            // Only part of a header so far (a header fits in 16 bytes, so
            // this is all of the input): hold it.
            self.held = HeldHeader::from_slice(window);
            return Ok(Step::Skip(take));
        };
        let consumed = header_len - held;
        let pass = match self.admit(frame_type, length, header_len as u64) {
            Ok(pass) => pass,
            Err(error) => {
                self.state = State::Failed(error);
                return Err(error);
            }
        };
        let header = HeldHeader::from_slice(&window[..header_len]);
        self.held = HeldHeader::EMPTY;
        self.state = State::Payload {
            remaining: length,
            pass,
            headers: frame_type == frame_type::HEADERS,
        };
        if held > 0 {
            if length == 0 {
                self.payload(0);
            }
            return Ok(if pass {
                Step::PassHeld { consumed, header }
            } else {
                Step::Skip(consumed)
            });
        }
        // The whole header is in this input: take the payload that follows
        // in the same step.
        let body = match self.payload(input.len() - consumed) {
            Step::Pass(n) | Step::Skip(n) => n,
            Step::PassHeld { .. } => 0,
        };
        Ok(if pass {
            Step::Pass(consumed + body)
        } else {
            Step::Skip(consumed + body)
        })
    }

    /// Whether a frame of `frame_type` declaring `length` payload bytes is
    /// passed on (`true`) or consumed here (`false`), or why it is refused.
    fn admit(&mut self, frame_type: u64, length: u64, header_len: u64) -> Result<bool, FrameError> {
        use FrameViolation::*;
        let request = self.stream == StreamKind::Request;
        // Too much of something on a request stream ends that stream; on the
        // control stream, which cannot be closed (§6.2.1), the connection.
        let load = |violation| FrameError {
            violation,
            code: code::H3_EXCESSIVE_LOAD,
            scope: if request {
                ErrorScope::Stream
            } else {
                ErrorScope::Connection
            },
        };
        let unexpected = FrameError::connection(Unexpected, code::H3_FRAME_UNEXPECTED);
        match frame_type {
            // §7.2.1: DATA only on request streams, streamed to the reader.
            frame_type::DATA if request => Ok(true),
            // §7.2.2, §4.2.2: a field section we accept; larger is refused
            // before it is buffered.
            frame_type::HEADERS if request => match length <= self.limits.max_field_section {
                true => Ok(true),
                false => Err(load(TooLarge)),
            },
            // §7.2.4: SETTINGS only on the control stream.
            frame_type::SETTINGS if !request => match length <= self.limits.max_settings {
                true => Ok(true),
                false => Err(load(TooLarge)),
            },
            // §7.2.3, §7.2.6, §7.2.7: one variable-length integer each;
            // §7.1: a longer payload is a connection error H3_FRAME_ERROR.
            frame_type::CANCEL_PUSH | frame_type::GOAWAY | frame_type::MAX_PUSH_ID if !request => {
                match length <= varint::encoded_len(varint::MAX) as u64 {
                    true => Ok(true),
                    false => Err(FrameError::connection(Malformed, code::H3_FRAME_ERROR)),
                }
            }
            // §7.2.5: a server MUST treat PUSH_PROMISE as H3_FRAME_UNEXPECTED
            // (as must anyone on the control stream); a client that never
            // sent MAX_PUSH_ID treats any push ID as H3_ID_ERROR (§4.6).
            frame_type::PUSH_PROMISE if request && self.sender == Sender::Server => {
                Err(FrameError::connection(Push, code::H3_ID_ERROR))
            }
            frame_type::DATA
            | frame_type::HEADERS
            | frame_type::SETTINGS
            | frame_type::CANCEL_PUSH
            | frame_type::GOAWAY
            | frame_type::MAX_PUSH_ID
            | frame_type::PUSH_PROMISE => Err(unexpected),
            // §7.2.8: HTTP/2 frame types are a connection error.
            t if frame_type::HTTP2_ONLY.contains(&t) => Err(unexpected),
            // §7.2.8, §9: unknown and reserved types are ignored: consumed
            // here within the stream's allowance, never handed on.
            _ => {
                let total = self
                    .ignored
                    .saturating_add(header_len)
                    .saturating_add(length);
                if total > self.limits.max_ignored {
                    return Err(load(TooMuchIgnored));
                }
                self.ignored = total;
                Ok(false)
            }
        }
    }
}

/// Unidirectional stream types (RFC 9114 §6.2, RFC 9204 §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UniStreamType {
    /// 0x00, the control stream (RFC 9114 §6.2.1).
    Control,
    /// 0x01, a push stream (RFC 9114 §6.2.2).
    Push,
    /// 0x02, the QPACK encoder stream (RFC 9204 §4.2).
    QpackEncoder,
    /// 0x03, the QPACK decoder stream (RFC 9204 §4.2).
    QpackDecoder,
    /// Anything else, reserved types included (RFC 9114 §6.2.3).
    Other(u64),
}

impl UniStreamType {
    /// The type for a stream type value.
    pub fn from_value(value: u64) -> Self {
        match value {
            0x00 => UniStreamType::Control,
            0x01 => UniStreamType::Push,
            0x02 => UniStreamType::QpackEncoder,
            0x03 => UniStreamType::QpackDecoder,
            other => UniStreamType::Other(other),
        }
    }

    /// The stream type value.
    pub fn value(self) -> u64 {
        match self {
            UniStreamType::Control => 0x00,
            UniStreamType::Push => 0x01,
            UniStreamType::QpackEncoder => 0x02,
            UniStreamType::QpackDecoder => 0x03,
            UniStreamType::Other(value) => value,
        }
    }
}

/// A frame header declaring `length` bytes of payload (§7.1), whether or not
/// they follow: the writing side, for peers that send what they choose (the
/// torture harness, tests). Values past 2^62 - 1 are written as that
/// maximum.
pub fn frame_header(frame_type: u64, length: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAX_HEADER_LEN);
    for value in [frame_type, length] {
        // Cannot fail once clamped to the varint range.
        let _ = varint::encode(value.min(varint::MAX), &mut out);
    }
    out
}

/// A whole frame: [`frame_header`] and `payload`.
pub fn frame(frame_type: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = frame_header(frame_type, payload.len() as u64);
    out.extend_from_slice(payload);
    out
}

/// A HEADERS frame (§7.2.2) carrying `fields` as QPACK literals in the
/// order given, exactly as given (pseudo-header fields too, valid or not;
/// [`crate::qpack::encode_literal_field_section`]).
pub fn headers_frame(fields: &[(&str, &str)]) -> Vec<u8> {
    let fields: Vec<(&[u8], &[u8])> = fields
        .iter()
        .map(|(name, value)| (name.as_bytes(), value.as_bytes()))
        .collect();
    let mut section = Vec::new();
    crate::qpack::encode_literal_field_section(&fields, &mut section);
    frame(frame_type::HEADERS, &section)
}

/// Reads the variable-length integer that starts a unidirectional stream
/// (RFC 9114 §6.2), whatever pieces it arrives in.
#[derive(Debug, Clone, Default)]
pub struct StreamTypeReader {
    held: [u8; 8],
    len: usize,
}

/// A stream type, and the bytes that encoded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamTypePrefix {
    /// The type.
    pub stream_type: UniStreamType,
    bytes: [u8; 8],
    len: usize,
}

impl StreamTypePrefix {
    /// The encoding of the type, as received.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl StreamTypeReader {
    /// Takes bytes from the start of `input`; returns how many it used and,
    /// once the type is complete, the type. Never uses more than the type's
    /// own bytes.
    pub fn feed(&mut self, input: &[u8]) -> (usize, Option<StreamTypePrefix>) {
        let take = input.len().min(self.held.len() - self.len);
        let mut window = self.held;
        window[self.len..self.len + take].copy_from_slice(&input[..take]);
        match varint::decode(&window[..self.len + take]) {
            Ok((value, len)) => {
                let used = len - self.len;
                self.len = len;
                self.held = window;
                let prefix = StreamTypePrefix {
                    stream_type: UniStreamType::from_value(value),
                    bytes: window,
                    len,
                };
                (used, Some(prefix))
            }
            Err(_) => {
                self.held = window;
                self.len += take;
                (take, None)
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn header(frame_type: u64, length: u64) -> Vec<u8> {
        let mut out = Vec::new();
        varint::encode(frame_type, &mut out).unwrap();
        varint::encode(length, &mut out).unwrap();
        out
    }

    fn request() -> FrameTracker {
        FrameTracker::new(StreamKind::Request, Sender::Client, FrameLimits::default())
    }

    fn control() -> FrameTracker {
        FrameTracker::new(StreamKind::Control, Sender::Client, FrameLimits::default())
    }

    /// Feeds `input` whole; returns the passed bytes.
    fn run(tracker: &mut FrameTracker, input: &[u8]) -> Result<Vec<u8>, FrameError> {
        let mut out = Vec::new();
        let mut rest = input;
        while !rest.is_empty() {
            match tracker.feed(rest)? {
                Step::Pass(n) => {
                    out.extend_from_slice(&rest[..n]);
                    rest = &rest[n..];
                }
                Step::Skip(n) => rest = &rest[n..],
                Step::PassHeld { consumed, header } => {
                    out.extend_from_slice(header.as_ref());
                    rest = &rest[consumed..];
                }
            }
        }
        Ok(out)
    }

    #[test]
    fn a_request_passes_whole_and_unknown_frames_are_dropped() {
        let mut stream = header(frame_type::HEADERS, 3);
        stream.extend_from_slice(b"abc");
        let grease = header(0x21, 2);
        stream.extend_from_slice(&grease);
        stream.extend_from_slice(b"zz");
        stream.extend_from_slice(&header(frame_type::DATA, 4));
        stream.extend_from_slice(b"body");
        let mut want = header(frame_type::HEADERS, 3);
        want.extend_from_slice(b"abc");
        want.extend_from_slice(&header(frame_type::DATA, 4));
        want.extend_from_slice(b"body");
        let mut tracker = request();
        assert_eq!(run(&mut tracker, &stream).unwrap(), want);
        assert!(tracker.head_complete());
        assert_eq!(tracker.finish(), Ok(()));
    }

    #[test]
    fn an_oversized_headers_frame_is_refused_at_its_header() {
        let mut tracker = request();
        let error = tracker
            .feed(&header(frame_type::HEADERS, 1 << 32))
            .unwrap_err();
        assert_eq!(error.violation, FrameViolation::TooLarge);
        assert_eq!(error.code, code::H3_EXCESSIVE_LOAD);
        assert_eq!(error.scope, ErrorScope::Stream);
        assert_eq!(tracker.feed(b"\0"), Err(error), "stays failed");
        let largest = header(frame_type::HEADERS, MAX_FIELD_SECTION);
        assert_eq!(
            request().feed(&largest),
            Ok(Step::Pass(largest.len())),
            "the limit itself passes"
        );
    }

    #[test]
    fn an_endless_unknown_frame_is_refused_at_its_header() {
        let error = request().feed(&header(0x21, 1 << 32)).unwrap_err();
        assert_eq!(error.violation, FrameViolation::TooMuchIgnored);
        assert_eq!(error.scope, ErrorScope::Stream);
        // On the control stream the connection pays.
        let error = control().feed(&header(0x21, 1 << 32)).unwrap_err();
        assert_eq!(error.scope, ErrorScope::Connection);
        assert_eq!(error.code, code::H3_EXCESSIVE_LOAD);
    }

    #[test]
    fn many_small_unknown_frames_exhaust_the_allowance() {
        let mut tracker = request();
        let frame = header(0x21, 0);
        let mut fed = 0u64;
        let error = loop {
            match run(&mut tracker, &frame) {
                Ok(passed) => assert!(passed.is_empty()),
                Err(e) => break e,
            }
            fed += frame.len() as u64;
            assert!(fed <= FrameLimits::default().max_ignored);
        };
        assert_eq!(error.violation, FrameViolation::TooMuchIgnored);
    }

    #[test]
    fn frames_out_of_place_are_connection_errors() {
        for (mut tracker, frame_type, code) in [
            (request(), frame_type::SETTINGS, code::H3_FRAME_UNEXPECTED),
            (request(), frame_type::GOAWAY, code::H3_FRAME_UNEXPECTED),
            (request(), 0x02, code::H3_FRAME_UNEXPECTED),
            (
                request(),
                frame_type::PUSH_PROMISE,
                code::H3_FRAME_UNEXPECTED,
            ),
            (control(), frame_type::DATA, code::H3_FRAME_UNEXPECTED),
            (control(), frame_type::HEADERS, code::H3_FRAME_UNEXPECTED),
            (control(), 0x09, code::H3_FRAME_UNEXPECTED),
            (
                FrameTracker::new(StreamKind::Request, Sender::Server, FrameLimits::default()),
                frame_type::PUSH_PROMISE,
                code::H3_ID_ERROR,
            ),
        ] {
            let error = tracker.feed(&header(frame_type, 1)).unwrap_err();
            assert_eq!((error.code, error.scope), (code, ErrorScope::Connection));
        }
        let error = control().feed(&header(frame_type::GOAWAY, 9)).unwrap_err();
        assert_eq!(error.code, code::H3_FRAME_ERROR);
        let error = control()
            .feed(&header(frame_type::SETTINGS, 1 << 20))
            .unwrap_err();
        assert_eq!(
            (error.code, error.scope),
            (code::H3_EXCESSIVE_LOAD, ErrorScope::Connection)
        );
    }

    #[test]
    fn a_header_in_pieces_is_held_then_passed_whole() {
        let full = header(frame_type::HEADERS, 300);
        assert_eq!(full.len(), 3);
        let mut tracker = request();
        assert_eq!(tracker.feed(&full[..1]), Ok(Step::Skip(1)));
        assert_eq!(
            tracker.finish().unwrap_err().violation,
            FrameViolation::Truncated
        );
        let mut rest = full[1..].to_vec();
        rest.extend_from_slice(&[7; 10]);
        match tracker.feed(&rest).unwrap() {
            Step::PassHeld { consumed, header } => {
                assert_eq!(consumed, 2);
                assert_eq!(header.as_ref(), &full[..]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(tracker.feed(&rest[2..]), Ok(Step::Pass(10)));
        assert!(!tracker.head_complete());
        assert_eq!(tracker.finish().unwrap_err().code, code::H3_FRAME_ERROR);
    }

    #[test]
    fn stream_types_are_read_in_pieces() {
        let mut reader = StreamTypeReader::default();
        // 0x21 on two bytes (a non-minimal encoding is allowed).
        assert_eq!(reader.feed(&[0x40]), (1, None));
        let (used, prefix) = reader.feed(&[0x21, 0xff]);
        let prefix = prefix.unwrap();
        assert_eq!(used, 1);
        assert_eq!(prefix.stream_type, UniStreamType::Other(0x21));
        assert_eq!(prefix.bytes(), &[0x40, 0x21]);
        let (used, prefix) = StreamTypeReader::default().feed(&[0x00, 0x04]);
        assert_eq!(
            (used, prefix.unwrap().stream_type),
            (1, UniStreamType::Control)
        );
    }
}
