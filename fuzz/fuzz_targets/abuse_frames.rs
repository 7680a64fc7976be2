//! The torture harness's reader of what a target sends back: HTTP/3 frames
//! (RFC 9114 §7.1) from any bytes, in any chunks.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use openrelay_abuse::h3raw::FrameReader;

fuzz_target!(|data: &[u8]| {
    // The first byte picks where the input is split in two chunks.
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let split = usize::from(split).min(rest.len());
    let mut whole = FrameReader::default();
    whole.push(Bytes::copy_from_slice(rest));
    let mut frames = Vec::new();
    while let Some(frame) = whole.next_frame() {
        frames.push(frame);
    }
    // Split delivery yields the same frames.
    let mut chunked = FrameReader::default();
    let mut again = Vec::new();
    chunked.push(Bytes::copy_from_slice(&rest[..split]));
    while let Some(frame) = chunked.next_frame() {
        again.push(frame);
    }
    chunked.push(Bytes::copy_from_slice(&rest[split..]));
    while let Some(frame) = chunked.next_frame() {
        again.push(frame);
    }
    assert_eq!(frames, again);
});
