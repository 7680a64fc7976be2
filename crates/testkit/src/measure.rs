//! Settled measurement epochs for tests (issue 14): the verdicts of a real
//! `MeasureState` epoch over reveals of three validators, written into a
//! registry's or validator's store before the process starts (the process
//! reads its record back at start, as after a restart).

#![cfg(feature = "harness")]

use std::collections::BTreeMap;
use std::path::Path;

use openrelay_measure::{
    EpochOutcome, MeasureParams, MeasureState, Measurement, RelayAdvert, Reveal, ValidatorId,
    ValidatorReport,
};
use openrelay_registry::RedbStore;
use openrelay_registry::measurements::MeasurementRecord;

/// What every fixture relay advertises (`fixtures::descriptor_fields`).
pub const ADVERTISED_BPS: u64 = 1_000_000_000;

/// The measure crate's id of fixture relay `r`.
pub fn relay_id(r: u8) -> openrelay_measure::RelayId {
    openrelay_measure::RelayId(crate::fixtures::relay_key(r).id().to_bytes())
}

/// The verdicts of epoch 1 (devnet parameters) in which validators
/// `[1; 32]`, `[2; 32]` and `[3; 32]` (weight 1,000 each) report on each
/// relay of `carried`: `Some(bps)` reachable at `bps` plus the validator's
/// number in Mbit/s (so their reports differ and the low-median is
/// `bps` + 2 Mbit/s), `None` unreachable. Every relay advertises
/// [`ADVERTISED_BPS`]; twelve echo probes each.
pub fn one_epoch(carried: &[(u8, Option<u64>)]) -> EpochOutcome {
    let measurers: BTreeMap<ValidatorId, u128> =
        (1..=3).map(|i| (ValidatorId([i; 32]), 1_000)).collect();
    let adverts: BTreeMap<_, _> = carried
        .iter()
        .map(|&(r, _)| {
            (
                relay_id(r),
                RelayAdvert {
                    advertised_bps: ADVERTISED_BPS,
                    operator_stake: 2_000,
                    operator_advertised_bps: 2 * u128::from(ADVERTISED_BPS),
                },
            )
        })
        .collect();
    let reveals: Vec<Reveal> = measurers
        .keys()
        .map(|&m| {
            let reports = carried
                .iter()
                .map(|&(r, bps)| ValidatorReport {
                    relay: relay_id(r),
                    probes_sent: 12,
                    probes_answered: if bps.is_some() { 12 } else { 0 },
                    measurement: bps.map_or(Measurement::Unreachable, |bps| {
                        Measurement::Reachable {
                            capacity_bps: bps + u64::from(m.0[0]) * 1_000_000,
                            rtt_micros: 2_500,
                        }
                    }),
                })
                .collect();
            Reveal::new(1, m, reports, [m.0[0]; 32]).expect("a valid reveal")
        })
        .collect();
    MeasureState::new(MeasureParams::devnet())
        .apply_epoch(1, &measurers, &reveals, &adverts)
        .expect("the epoch applies")
}

/// Records `outcome` (its epoch ended at `ended_at`) in the store at
/// `store` (`<state_dir>/registry.redb` or `<state_dir>/validator.redb`),
/// which must not be open elsewhere.
pub fn record_settled(store: &Path, outcome: &EpochOutcome, ended_at: u64) {
    let store = RedbStore::open(store).expect("the store opens");
    let mut record =
        MeasurementRecord::load(&store, MeasureParams::devnet()).expect("the record loads");
    record
        .record_epoch(&store, outcome, ended_at)
        .expect("the epoch is recorded");
}
