//! What the registration puzzle costs: the client's search (about 2^bits
//! SHA-256 hashes; measured at 16 bits over many puzzles, so the mean is
//! close to 2^16) and the issuer's check (one HMAC, one hash). A default of
//! `registration_puzzle_bits = 22` costs 64 times the 16-bit figure.
//!
//! `cargo bench -p openrelay-issuer --bench puzzle`

#![expect(
    missing_docs,
    reason = "criterion_group! generates an undocumented `pub fn`"
)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use openrelay_issuer_client::puzzle::Puzzle;

const KEY: [u8; 32] = [7; 32];
const NOW: u64 = 1_800_000_000;

fn puzzle(c: &mut Criterion) {
    let mut group = c.benchmark_group("puzzle");
    group.sample_size(50);
    let mut nonce = 0u128;
    group.bench_function("client_solve_16_bits", |b| {
        b.iter(|| {
            nonce += 1;
            let puzzle = Puzzle::issue(&KEY, 16, NOW, nonce.to_be_bytes());
            black_box(puzzle.solve("alice"))
        })
    });
    let puzzle = Puzzle::issue(&KEY, 16, NOW, [1; 16]);
    let counter = puzzle.solve("alice");
    group.bench_function("issuer_verify", |b| {
        b.iter(|| black_box(&puzzle).verify(&KEY, 16, NOW, "alice", counter))
    });
    group.finish();
}

criterion_group!(benches, puzzle);
criterion_main!(benches);
