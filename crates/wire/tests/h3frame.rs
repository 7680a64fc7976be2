//! Property tests of the HTTP/3 frame tracker and the QPACK stream checks:
//! whatever the chunking, the tracker passes exactly the frames h3 may
//! buffer (and each within its limit), drops the ones it must ignore, and
//! never panics.

#![allow(clippy::unwrap_used)]

use openrelay_wire::h3frame::{
    ErrorScope, FrameError, FrameLimits, FrameTracker, MAX_FIELD_SECTION, Sender, Step, StreamKind,
    StreamTypeReader, UniStreamType, frame_type,
};
use openrelay_wire::qpack::{self, DecoderStreamCheck, EncoderStreamCheck};
use openrelay_wire::varint;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Frame {
    Data(Vec<u8>),
    Headers(Vec<u8>),
    Unknown(u64, Vec<u8>),
}

impl Frame {
    fn encode(&self, out: &mut Vec<u8>) {
        let (frame_type, payload) = match self {
            Frame::Data(p) => (frame_type::DATA, p),
            Frame::Headers(p) => (frame_type::HEADERS, p),
            Frame::Unknown(t, p) => (*t, p),
        };
        varint::encode(frame_type, out).unwrap();
        varint::encode(payload.len() as u64, out).unwrap();
        out.extend_from_slice(payload);
    }
}

/// Reserved types (0x1f * N + 0x21, RFC 9114 §7.2.8) and other unassigned ones.
fn arb_unknown_type() -> impl Strategy<Value = u64> {
    prop_oneof![
        (0u64..1000).prop_map(|n| 0x1f * n + 0x21),
        0x0eu64..0x21,
        0x100u64..=varint::MAX,
    ]
}

fn arb_frame() -> impl Strategy<Value = Frame> {
    let payload = || prop::collection::vec(any::<u8>(), 0..40);
    prop_oneof![
        payload().prop_map(Frame::Data),
        payload().prop_map(Frame::Headers),
        (arb_unknown_type(), payload()).prop_map(|(t, p)| Frame::Unknown(t, p)),
    ]
}

/// Feeds `input` in pieces at `cuts` (offsets); returns what was passed on,
/// or the error.
fn feed_in_pieces(
    tracker: &mut FrameTracker,
    input: &[u8],
    cuts: &[usize],
) -> Result<Vec<u8>, FrameError> {
    let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    bounds.push(input.len());
    bounds.sort_unstable();
    let mut out = Vec::new();
    let mut start = 0;
    for end in bounds {
        let mut rest = &input[start..end];
        start = end;
        while !rest.is_empty() {
            let step = tracker.feed(rest)?;
            let used = match step {
                Step::Pass(n) => {
                    out.extend_from_slice(&rest[..n]);
                    n
                }
                Step::Skip(n) => n,
                Step::PassHeld { consumed, header } => {
                    out.extend_from_slice(header.as_ref());
                    consumed
                }
            };
            assert!(used > 0 && used <= rest.len(), "progress within the input");
            rest = &rest[used..];
        }
    }
    Ok(out)
}

fn request_tracker() -> FrameTracker {
    FrameTracker::new(StreamKind::Request, Sender::Client, FrameLimits::default())
}

/// Frames of `bytes` (type, declared length), as a reference parser sees them.
fn frame_headers(mut bytes: &[u8]) -> Vec<(u64, u64)> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        let Ok((t, a)) = varint::decode(bytes) else {
            break;
        };
        let Ok((len, b)) = varint::decode(&bytes[a..]) else {
            break;
        };
        frames.push((t, len));
        let end = (a + b).saturating_add(len as usize).min(bytes.len());
        bytes = &bytes[end..];
    }
    frames
}

proptest! {
    #[test]
    fn passes_exactly_the_known_frames_whatever_the_chunking(
        frames in prop::collection::vec(arb_frame(), 0..12),
        cuts in prop::collection::vec(any::<usize>(), 0..20),
    ) {
        let mut input = Vec::new();
        let mut want = Vec::new();
        for frame in &frames {
            frame.encode(&mut input);
            if !matches!(frame, Frame::Unknown(..)) {
                frame.encode(&mut want);
            }
        }
        let mut tracker = request_tracker();
        let passed = feed_in_pieces(&mut tracker, &input, &cuts).unwrap();
        prop_assert_eq!(passed, want);
        prop_assert!(tracker.finish().is_ok());
        prop_assert_eq!(
            tracker.head_complete(),
            frames.iter().any(|f| matches!(f, Frame::Headers(_)))
        );
    }

    #[test]
    fn a_cut_inside_a_frame_is_truncation(
        frames in prop::collection::vec(arb_frame(), 1..6),
        cut_back in 1usize..20,
    ) {
        let mut input = Vec::new();
        for frame in &frames {
            frame.encode(&mut input);
        }
        let last_start = {
            let mut before = Vec::new();
            for frame in &frames[..frames.len() - 1] {
                frame.encode(&mut before);
            }
            before.len()
        };
        let end = input.len() - cut_back.min(input.len() - last_start);
        let mut tracker = request_tracker();
        feed_in_pieces(&mut tracker, &input[..end], &[]).unwrap();
        let complete = end == last_start;
        prop_assert_eq!(tracker.finish().is_ok(), complete);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_chunking_never_matters(
        input in prop::collection::vec(any::<u8>(), 0..400),
        cuts in prop::collection::vec(any::<usize>(), 0..30),
        control in any::<bool>(),
        from_server in any::<bool>(),
    ) {
        let kind = if control { StreamKind::Control } else { StreamKind::Request };
        let sender = if from_server { Sender::Server } else { Sender::Client };
        let limits = FrameLimits { max_field_section: 64, max_settings: 32, max_ignored: 128 };
        let whole = feed_in_pieces(&mut FrameTracker::new(kind, sender, limits), &input, &[]);
        let pieces = feed_in_pieces(&mut FrameTracker::new(kind, sender, limits), &input, &cuts);
        prop_assert_eq!(&whole, &pieces);
        if let Ok(passed) = whole {
            // Everything passed is a frame h3 may see, within its limit.
            for (t, len) in frame_headers(&passed) {
                match (kind, t) {
                    (StreamKind::Request, frame_type::DATA) => {}
                    (StreamKind::Request, frame_type::HEADERS) => prop_assert!(len <= 64),
                    (StreamKind::Control, frame_type::SETTINGS) => prop_assert!(len <= 32),
                    (StreamKind::Control, frame_type::GOAWAY | frame_type::CANCEL_PUSH | frame_type::MAX_PUSH_ID) => prop_assert!(len <= 8),
                    other => prop_assert!(false, "passed {:?}", other),
                }
            }
        }
    }

    #[test]
    fn errors_carry_rfc_codes(declared in (MAX_FIELD_SECTION + 1)..=varint::MAX) {
        let mut frame = Vec::new();
        varint::encode(frame_type::HEADERS, &mut frame).unwrap();
        varint::encode(declared, &mut frame).unwrap();
        let error = request_tracker().feed(&frame).unwrap_err();
        prop_assert_eq!(error.scope, ErrorScope::Stream);
        prop_assert_eq!(error.code, 0x0107);
    }

    #[test]
    fn stream_types_read_in_any_pieces(value in 0..=varint::MAX, split in 0usize..8) {
        let mut encoded = Vec::new();
        varint::encode(value, &mut encoded).unwrap();
        encoded.push(0xaa);
        let split = split.min(encoded.len() - 1);
        let mut reader = StreamTypeReader::default();
        let (used, first) = reader.feed(&encoded[..split]);
        prop_assert_eq!(used, split);
        let prefix = match first {
            Some(p) => p,
            None => {
                let (used, prefix) = reader.feed(&encoded[split..]);
                prop_assert_eq!(split + used, encoded.len() - 1);
                prefix.unwrap()
            }
        };
        prop_assert_eq!(prefix.stream_type, UniStreamType::from_value(value));
        prop_assert_eq!(prefix.bytes(), &encoded[..encoded.len() - 1]);
    }

    // ---- QPACK, RFC 9204

    #[test]
    fn integers_round_trip(value in 0..=varint::MAX, prefix in 1u8..=8, tail in any::<u8>()) {
        let mut out = Vec::new();
        qpack::encode_integer(value, prefix, 0, &mut out);
        let len = out.len();
        out.push(tail);
        prop_assert_eq!(qpack::decode_integer(&out, prefix), Ok(Some((value, len))));
        prop_assert_eq!(qpack::decode_integer(&out[..len - 1], prefix), Ok(None));
    }

    /// A HEADERS frame written for a peer that sends what it chooses carries
    /// each field as a literal line with a literal name (RFC 9204 §4.5.6).
    #[test]
    fn written_field_lines_carry_their_bytes(name in "[a-z-]{1,40}", value in "[ -~]{0,300}") {
        let frame = openrelay_wire::h3frame::headers_frame(&[(name.as_str(), value.as_str())]);
        let (kind, used) = varint::decode(&frame).unwrap();
        let (length, more) = varint::decode(&frame[used..]).unwrap();
        prop_assert_eq!(kind, frame_type::HEADERS);
        let section = &frame[used + more..];
        prop_assert_eq!(length as usize, section.len());
        prop_assert_eq!(&section[..2], &[0u8, 0][..]);
        prop_assert_eq!(section[2] & 0xf8, 0x20);
        let (name_len, used) = qpack::decode_integer(&section[2..], 3).unwrap().unwrap();
        let name_end = 2 + used + name_len as usize;
        prop_assert_eq!(&section[2 + used..name_end], name.as_bytes());
        prop_assert_eq!(section[name_end] & 0x80, 0);
        let (value_len, used) = qpack::decode_integer(&section[name_end..], 7).unwrap().unwrap();
        prop_assert_eq!(&section[name_end + used..], value.as_bytes());
        prop_assert_eq!(value_len as usize, value.len());
    }

    #[test]
    fn stream_cancellations_pass_in_any_pieces(
        ids in prop::collection::vec(0..=varint::MAX, 0..10),
        cuts in prop::collection::vec(any::<usize>(), 0..10),
    ) {
        let mut stream = Vec::new();
        for id in ids {
            qpack::encode_integer(id, 6, 0x40, &mut stream);
        }
        let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
        bounds.push(stream.len());
        bounds.sort_unstable();
        let mut check = DecoderStreamCheck::default();
        let mut start = 0;
        for end in bounds {
            prop_assert!(check.feed(&stream[start..end]).is_ok());
            start = end;
        }
    }

    #[test]
    fn qpack_checks_never_panic(input in prop::collection::vec(any::<u8>(), 0..200), prefix in 1u8..=8) {
        let _ = DecoderStreamCheck::default().feed(&input);
        let _ = EncoderStreamCheck.feed(&input);
        let _ = qpack::decode_integer(&input, prefix);
    }
}
