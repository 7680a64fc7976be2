//! HTTP Datagram framing (RFC 9297 §2.1, RFC 9298 §5) and the DATAGRAM
//! capsule (RFC 9297 §3.2), on the sizes the data plane carries: every inner
//! QUIC packet of a path is framed once by the client and parsed once by the
//! ingress, so these run once per ~1.2–1.4 KB packet.
//!
//! Run with `cargo bench -p openrelay-wire --bench datagram`.

#![expect(
    missing_docs,
    reason = "criterion_group! generates an undocumented `pub fn`"
)]

use std::hint::black_box;

use bytes::{BufMut, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use openrelay_wire::{capsule, datagram};

/// Payload sizes: a minimal inner QUIC packet (1200), the largest that fits
/// the outer connection's initial MTU, and one after PMTUD on an Ethernet path.
const SIZES: [usize; 3] = [1200, 1300, 1400];

/// Quarter stream IDs: the first request (1-byte varint), a request late in a
/// long connection (4-byte varint).
const QUARTER_IDS: [u64; 2] = [0, 1 << 20];

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// Frames one datagram the way a sender does: header then payload into a
/// fresh buffer (as `DatagramSender::send` does per packet).
fn frame(quarter_stream_id: u64, payload: &[u8]) -> BytesMut {
    let mut buf = BytesMut::with_capacity(16 + payload.len());
    datagram::encode_header(quarter_stream_id, datagram::UDP_PAYLOAD_CONTEXT, &mut buf)
        .expect("in range");
    buf.put_slice(payload);
    buf
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("datagram/encode");
    for size in SIZES {
        let body = payload(size);
        group.throughput(Throughput::Bytes(size as u64));
        for quarter in QUARTER_IDS {
            group.bench_with_input(
                BenchmarkId::new(format!("qsid={quarter}"), size),
                &body,
                |b, body| b.iter(|| frame(black_box(quarter), black_box(body))),
            );
        }
    }
    group.finish();

    // The header alone, into a reused buffer: the framing cost without the
    // allocation and copy of the payload.
    c.bench_function("datagram/encode_header", |b| {
        let mut buf = Vec::with_capacity(16);
        b.iter(|| {
            buf.clear();
            datagram::encode_header(black_box(1 << 20), black_box(0), &mut buf).expect("in range");
            buf.len()
        })
    });
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("datagram/decode");
    for size in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        for quarter in QUARTER_IDS {
            let framed = frame(quarter, &payload(size));
            group.bench_with_input(
                BenchmarkId::new(format!("qsid={quarter}"), size),
                &framed,
                |b, framed| {
                    b.iter(|| {
                        let d = datagram::decode(black_box(framed)).expect("valid");
                        (d.quarter_stream_id, d.payload.len())
                    })
                },
            );
        }
    }
    group.finish();

    c.bench_function("datagram/quarter_stream_id", |b| {
        b.iter(|| datagram::quarter_stream_id(black_box(4 << 20)))
    });
}

/// DATAGRAM capsules: the reliable fallback on the request stream, parsed
/// from a buffer holding many capsules back to back (the streaming case).
fn capsules(c: &mut Criterion) {
    let mut group = c.benchmark_group("capsule");
    for size in SIZES {
        let mut value = vec![0u8]; // context ID 0
        value.extend(payload(size));
        group.throughput(Throughput::Bytes(value.len() as u64));
        group.bench_with_input(BenchmarkId::new("encode", size), &value, |b, value| {
            let mut out = Vec::with_capacity(value.len() + 16);
            b.iter(|| {
                out.clear();
                capsule::encode(capsule::DATAGRAM, black_box(value), &mut out).expect("fits");
                out.len()
            })
        });
        let mut stream = Vec::new();
        for _ in 0..64 {
            capsule::encode(capsule::DATAGRAM, &value, &mut stream).expect("fits");
        }
        group.throughput(Throughput::Bytes(stream.len() as u64));
        group.bench_with_input(
            BenchmarkId::new("decode_64_back_to_back", size),
            &stream,
            |b, stream| {
                b.iter(|| {
                    let mut rest = black_box(stream.as_slice());
                    let mut total = 0;
                    while let Ok(Some((capsule, used))) = capsule::decode(rest) {
                        total += capsule.value.len();
                        rest = &rest[used..];
                    }
                    total
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, encode, decode, capsules);
criterion_main!(benches);
