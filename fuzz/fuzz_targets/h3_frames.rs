//! HTTP/3 frames on a received stream (RFC 9114 §7.1), unidirectional
//! stream types (§6.2) and QPACK encoder/decoder streams (RFC 9204 §4.3,
//! §4.4), as the h3 guard reads them from peers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use openrelay_wire::h3frame::{
    FrameLimits, FrameTracker, Sender, Step, StreamKind, StreamTypeReader, frame_type,
};
use openrelay_wire::qpack::{DecoderStreamCheck, EncoderStreamCheck};
use openrelay_wire::varint;

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let Some((&chunk, input)) = rest.split_first() else {
        return;
    };
    let kind = if control & 1 == 0 {
        StreamKind::Request
    } else {
        StreamKind::Control
    };
    let sender = if control & 2 == 0 {
        Sender::Client
    } else {
        Sender::Server
    };
    let limits = FrameLimits {
        max_field_section: 256,
        max_settings: 64,
        max_ignored: 512,
    };
    let mut tracker = FrameTracker::new(kind, sender, limits);
    // Feed in chunks of 1..=256 bytes, as QUIC would deliver them.
    let chunk = usize::from(chunk) + 1;
    let mut passed = Vec::new();
    'chunks: for piece in input.chunks(chunk) {
        let mut rest = piece;
        while !rest.is_empty() {
            let used = match tracker.feed(rest) {
                Ok(Step::Pass(n)) => {
                    passed.extend_from_slice(&rest[..n]);
                    n
                }
                Ok(Step::Skip(n)) => n,
                Ok(Step::PassHeld { consumed, header }) => {
                    assert!(header.as_ref().len() <= 16);
                    passed.extend_from_slice(header.as_ref());
                    consumed
                }
                Err(_) => break 'chunks,
            };
            assert!(used > 0 && used <= rest.len());
            rest = &rest[used..];
        }
    }
    // Everything passed is a frame its stream allows, within its limit.
    let mut out = passed.as_slice();
    while let Ok((t, a)) = varint::decode(out) {
        let Ok((len, b)) = varint::decode(&out[a..]) else {
            break;
        };
        match (kind, t) {
            (StreamKind::Request, frame_type::DATA) => {}
            (StreamKind::Request, frame_type::HEADERS) => assert!(len <= 256),
            (StreamKind::Control, frame_type::SETTINGS) => assert!(len <= 64),
            (
                StreamKind::Control,
                frame_type::GOAWAY | frame_type::CANCEL_PUSH | frame_type::MAX_PUSH_ID,
            ) => assert!(len <= 8),
            other => panic!("passed {other:?}"),
        }
        let end = (a + b).saturating_add(usize::try_from(len).unwrap_or(usize::MAX));
        out = out.get(end..).unwrap_or_default();
    }
    let _ = tracker.finish();

    let mut reader = StreamTypeReader::default();
    let (used, _) = reader.feed(input);
    assert!(used <= 8 && used <= input.len());
    let _ = EncoderStreamCheck.feed(input);
    let _ = DecoderStreamCheck::default().feed(input);
});
