//! One epoch of a network of 10,000 relays measured by 15 validators
//! (every validator reports on every relay, the default): checking one
//! validator's reveal against its commitment and parsing it, and the
//! verdicts of the whole epoch. What a registry or validator spends per
//! epoch to decide, next to the epoch's length (hours).
//!
//! Run with `cargo bench -p openrelay-measure --bench verdicts`.

#![expect(
    missing_docs,
    reason = "criterion_group! generates an undocumented `pub fn`"
)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use openrelay_measure::{
    MeasureParams, MeasureState, Measurement, RelayAdvert, RelayId, Reveal, ValidatorId,
    ValidatorReport, verify_reveal,
};

const RELAYS: u32 = 10_000;
const VALIDATORS: u8 = 15;

fn id(tag: u8, i: u32) -> [u8; 32] {
    let mut bytes = [tag; 32];
    bytes[..4].copy_from_slice(&i.to_be_bytes());
    bytes
}

/// Validator `v`'s reveal: every relay near its advertised 1 Gbit/s, a
/// little apart per validator, every 50th relay unreachable.
fn reveal(v: u8) -> Reveal {
    let reports = (0..RELAYS)
        .map(|r| ValidatorReport {
            relay: RelayId(id(1, r)),
            probes_sent: 12,
            probes_answered: 12,
            measurement: if r % 50 == 0 {
                Measurement::Unreachable
            } else {
                Measurement::Reachable {
                    capacity_bps: 950_000_000 + u64::from(v) * 3_000_000 + u64::from(r % 7),
                    rtt_micros: 20_000,
                }
            },
        })
        .collect();
    Reveal::new(1, ValidatorId(id(2, u32::from(v))), reports, [v; 32]).expect("valid reveal")
}

fn bench(c: &mut Criterion) {
    let reveals: Vec<Reveal> = (0..VALIDATORS).map(reveal).collect();
    let validators: BTreeMap<ValidatorId, u128> = reveals
        .iter()
        .map(|r| (r.validator(), 10u128.pow(18)))
        .collect();
    let relays: BTreeMap<RelayId, RelayAdvert> = (0..RELAYS)
        .map(|r| {
            (
                RelayId(id(1, r)),
                RelayAdvert {
                    advertised_bps: 1_000_000_000,
                    operator_stake: 10u128.pow(18),
                    operator_advertised_bps: 2_000_000_000,
                },
            )
        })
        .collect();

    let bytes = reveals[0].to_bytes();
    let commitment = reveals[0].commitment();
    let mut group = c.benchmark_group("measure_10k_relays");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("verify_one_reveal", |b| {
        b.iter(|| verify_reveal(black_box(&commitment), black_box(&bytes)).expect("verifies"))
    });
    group.bench_function("apply_epoch_15_validators", |b| {
        b.iter_batched(
            || MeasureState::new(MeasureParams::default()),
            |mut state| {
                state
                    .apply_epoch(1, &validators, &reveals, &relays)
                    .expect("applies")
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
