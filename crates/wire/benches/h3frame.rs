//! The HTTP/3 frame tracker on the data plane: every byte of a CONNECT
//! tunnel (a TCP flow) crosses it at the egress and at the client, in the
//! chunks QUIC delivers (one packet's STREAM frame, ~1.2 KB) and in DATA
//! frames of the sizes the pump writes. The cost per chunk is one call; a
//! frame header costs a parse.
//!
//! Run with `cargo bench -p openrelay-wire --bench h3frame`.

#![expect(
    missing_docs,
    reason = "criterion_group! generates an undocumented `pub fn`"
)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use openrelay_wire::h3frame::{FrameLimits, FrameTracker, Sender, Step, StreamKind, frame_type};
use openrelay_wire::varint;

const STREAM: usize = 4 << 20;

/// A request stream of `STREAM` bytes of DATA frames of `frame` bytes each.
fn data_stream(frame: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(STREAM + STREAM / frame * 16);
    while out.len() < STREAM {
        varint::encode(frame_type::DATA, &mut out).expect("in range");
        varint::encode(frame as u64, &mut out).expect("in range");
        out.resize(out.len() + frame, 0x5a);
    }
    out
}

fn track(c: &mut Criterion) {
    let mut group = c.benchmark_group("h3frame/data");
    group.throughput(Throughput::Bytes(STREAM as u64));
    for (frame, chunk) in [(16 << 10, 1200), (64 << 10, 1200), (16 << 10, 64 << 10)] {
        let stream = data_stream(frame);
        group.bench_with_input(
            BenchmarkId::from_parameter(format!("frame{frame}/chunk{chunk}")),
            &stream,
            |b, stream| {
                b.iter(|| {
                    let mut tracker = FrameTracker::new(
                        StreamKind::Request,
                        Sender::Client,
                        FrameLimits::default(),
                    );
                    let mut passed = 0usize;
                    for piece in stream.chunks(chunk) {
                        let mut rest = piece;
                        while !rest.is_empty() {
                            let used = match tracker.feed(rest).expect("valid") {
                                Step::Pass(n) => {
                                    passed += n;
                                    n
                                }
                                Step::Skip(n) => n,
                                Step::PassHeld { consumed, header } => {
                                    passed += header.as_ref().len();
                                    consumed
                                }
                            };
                            rest = &rest[used..];
                        }
                    }
                    black_box(passed)
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, track);
criterion_main!(benches);
