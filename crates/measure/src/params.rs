//! Every number the verdicts depend on, with the attack it prices
//! (docs/measurement.md, "Parameters"), and the seeded choice of who
//! measures whom.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::report::{Epoch, RelayId, ValidatorId};

/// Basis points in one whole (fractions are integers so every verdict is
/// exact and deterministic across machines).
pub const BPS_WHOLE: u32 = 10_000;

/// The verdict parameters. [`MeasureParams::default`] is the production
/// set; [`MeasureParams::devnet`] the short one tests and the devnet use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeasureParams {
    /// How far (basis points) the aggregate may fall below the advertised
    /// bandwidth before the epoch fails. Default 2,000 (20 %): measurement
    /// error is about ±10 % for 95 % of measurements (FlashFlow's 89 %/95 %
    /// figure, our accuracy target), so an honest relay needs two bad errors
    /// in the same direction to fail, and N of them in a row to be slashed.
    /// Prices over-advertising: a relay may claim at most 1.25× what it
    /// carries without risking its stake, and is weighted by what it
    /// carries anyway.
    pub capacity_tolerance_bps: u32,
    /// Consecutive failing epochs before a relay slash. Default 3: a single
    /// bad epoch (congestion, a validator's bad link) never costs stake, and
    /// an honest relay failing three independent epochs with 5 % odds each
    /// happens about once in 8,000 epochs. Prices sustained lying: the
    /// liar's weight already fell after the first epoch.
    pub failing_epochs_to_slash: u32,
    /// The share of a relay's stake share taken by one slash, basis points.
    /// Default 1,000 (10 %). The relay's stake share is the operator's
    /// stake × this relay's advertised bandwidth / all its relays'. The
    /// contract burns `slashBurnBps` (80 %) of it and pays the rest to the
    /// validators that approve the slash (docs/chain.md).
    pub relay_slash_bps: u32,
    /// How far (basis points of the aggregate) a reachable report may be
    /// above the aggregate before it is a mark against its validator.
    /// Default 3,000 (30 %): three times the honest error bound, so honest
    /// noise is not marked; FlashFlow bounds a cheating relay's inflation
    /// at 1.33×, and a validator inflating a friend by more than that is
    /// marked.
    pub deviation_tolerance_bps: u32,
    /// Epochs with a mark, within [`MeasureParams::mark_window_epochs`],
    /// that slash a validator. Default 3.
    pub marks_to_slash: u32,
    /// The window (epochs) marks are counted over. Default 12 (a day of
    /// two-hour epochs).
    pub mark_window_epochs: u64,
    /// The share of a validator's stake one validator slash takes, basis
    /// points. Default 500 (5 %).
    pub validator_slash_bps: u32,
    /// The most capacity a test checks, bits per second: a relay
    /// advertising more is held to this. Default 10 Gbit/s, the directory's
    /// clip (`openrelay_directory::weight::MAX_WEIGHTED_BANDWIDTH_BPS`).
    pub max_tested_bps: u64,
    /// `None` (the default): every validator tests every relay every
    /// epoch, so the aggregate is over the whole set's weight and a
    /// coalition under a third of it can neither move an aggregate nor get
    /// an honest validator marked. `Some(m)`: only `m` validators per relay
    /// and epoch, chosen by [`assigned_measurers`], which cuts the cost by
    /// `V/m` but **weakens that guarantee to one per sample**: a coalition
    /// holding a fraction `f` of the validators holds a majority of a
    /// relay's sample with probability about `3f² − 2f³` for `m = 3`
    /// (10 % at `f = 0.2`), and then sets that relay's figure for the epoch
    /// and gets the honest measurer marked (docs/measurement.md, "Cost").
    pub sampled_measurers_per_relay_weakens_quorum: Option<u32>,
    /// How long one capacity test runs, seconds. Default 5 (sbws sizes its
    /// downloads for 5 to 10 s; QUIC reaches 10 Gbit/s on a
    /// low-RTT path well within a second).
    pub measurement_seconds: u32,
    /// One epoch, seconds. Default 7,200 (two hours): a lying relay loses
    /// its weight within two hours and its stake within six, at 0.07 % of
    /// a relay's capacity per validator spent on measuring
    /// (docs/measurement.md, "Cost").
    pub epoch_seconds: u32,
}

impl Default for MeasureParams {
    fn default() -> Self {
        Self {
            capacity_tolerance_bps: 2_000,
            failing_epochs_to_slash: 3,
            relay_slash_bps: 1_000,
            deviation_tolerance_bps: 3_000,
            marks_to_slash: 3,
            mark_window_epochs: 12,
            validator_slash_bps: 500,
            max_tested_bps: 10_000_000_000,
            sampled_measurers_per_relay_weakens_quorum: None,
            measurement_seconds: 5,
            epoch_seconds: 7_200,
        }
    }
}

impl MeasureParams {
    /// Short numbers for the devnet and tests: two failing epochs slash a
    /// relay, two marked epochs within eight slash a validator, epochs of a
    /// minute with tests of two seconds.
    pub fn devnet() -> Self {
        Self {
            failing_epochs_to_slash: 2,
            marks_to_slash: 2,
            mark_window_epochs: 8,
            measurement_seconds: 2,
            epoch_seconds: 60,
            ..Self::default()
        }
    }

    /// The bandwidth a relay advertising `advertised_bps` is held to.
    pub fn expected_bps(&self, advertised_bps: u64) -> u64 {
        advertised_bps.min(self.max_tested_bps)
    }

    /// The lowest aggregate that passes for `advertised_bps`:
    /// expected × (1 − tolerance), rounded up.
    pub fn passing_bps(&self, advertised_bps: u64) -> u64 {
        let keep = BPS_WHOLE.saturating_sub(self.capacity_tolerance_bps);
        mul_bps_ceil(self.expected_bps(advertised_bps), keep)
    }

    /// Whether a reachable report of `capacity_bps` lies above
    /// `aggregate_bps` by more than the deviation tolerance. Only reports
    /// above the aggregate are marks (docs/measurement.md, "Verdicts"): a
    /// low report cannot move a low-median a minority does not hold, while
    /// honest reports fall low for reasons that are not the validator's
    /// (another validator's test of the relay at the same moment, a relay
    /// serving that validator worse on purpose).
    pub fn inflates(&self, capacity_bps: u64, aggregate_bps: u64) -> bool {
        let above = u128::from(capacity_bps.saturating_sub(aggregate_bps)) * u128::from(BPS_WHOLE);
        above > u128::from(aggregate_bps) * u128::from(self.deviation_tolerance_bps)
    }

    /// How many validators test each relay per epoch in a set of
    /// `validators`.
    pub fn measurers_per_relay(&self, validators: u32) -> u32 {
        self.sampled_measurers_per_relay_weakens_quorum
            .map_or(validators, |m| m.min(validators))
    }

    /// The most capacity-test traffic one relay carries in one epoch with
    /// `validators` validators, bytes: measurers × `measurement_seconds` ×
    /// `max_tested_bps` / 8 (6.25 GB per measurer with the defaults).
    /// Validators never send more.
    pub fn max_test_bytes_per_relay_per_epoch(&self, validators: u32) -> u128 {
        u128::from(self.measurers_per_relay(validators))
            * u128::from(self.measurement_seconds)
            * u128::from(self.max_tested_bps)
            / 8
    }

    /// The share of a relay's capacity-time that capacity tests use with
    /// `validators` validators, basis points: measurers ×
    /// `measurement_seconds` / `epoch_seconds` (with the defaults 6.9 per
    /// validator: 0.07 %, so 1.04 % for 15 validators).
    pub fn test_share_of_capacity_bps(&self, validators: u32) -> u128 {
        u128::from(self.measurers_per_relay(validators))
            * u128::from(self.measurement_seconds)
            * u128::from(BPS_WHOLE)
            / u128::from(self.epoch_seconds.max(1))
    }
}

/// An unmeasured relay's selection weight, basis points of its advertised
/// bandwidth: 10 %.
pub const UNMEASURED_WEIGHT_BPS: u32 = 1_000;

/// The most an unmeasured relay's selection weight can be, bits per second:
/// 20 Mbit/s. Like Tor's cap on unmeasured relays (`MaxUnmeasuredBw`), a
/// fresh relay cannot attract traffic with a claim before it is tested.
pub const UNMEASURED_WEIGHT_CAP_BPS: u64 = 20_000_000;

/// A never-measured relay's selection bandwidth (the bootstrap weight):
/// min([`UNMEASURED_WEIGHT_BPS`] of `advertised_bps`,
/// [`UNMEASURED_WEIGHT_CAP_BPS`]).
pub fn unmeasured_weight(advertised_bps: u64) -> u64 {
    mul_bps_floor(advertised_bps, UNMEASURED_WEIGHT_BPS).min(UNMEASURED_WEIGHT_CAP_BPS)
}

/// What path selection counts a listed relay for, bits per second, before
/// the directory's clip and its operator's stake cover:
/// min(advertised, measured) once measured, the bootstrap weight
/// ([`unmeasured_weight`]) before.
///
/// The one statement of this rule: clients weigh directories with it
/// (`openrelay_directory::weight`) and [`crate::MeasureState::selection_bps`]
/// explains verdicts with it. It is not a [`MeasureParams`] field on
/// purpose: every client applies it to every network's directories, so a
/// network cannot choose another one.
pub fn selection_bandwidth(advertised_bps: u64, measured_bps: Option<u64>) -> u64 {
    match measured_bps {
        Some(measured) => advertised_bps.min(measured),
        None => unmeasured_weight(advertised_bps),
    }
}

fn mul_bps_ceil(value: u64, bps: u32) -> u64 {
    let p = u128::from(value) * u128::from(bps);
    u64::try_from(p.div_ceil(u128::from(BPS_WHOLE))).unwrap_or(u64::MAX)
}

fn mul_bps_floor(value: u64, bps: u32) -> u64 {
    let p = u128::from(value) * u128::from(bps);
    u64::try_from(p / u128::from(BPS_WHOLE)).unwrap_or(u64::MAX)
}

/// `amount × bps / 10,000`, rounded down (stake amounts).
pub(crate) fn stake_bps(amount: u128, bps: u32) -> u128 {
    // Split to avoid overflow on amounts near u128::MAX.
    let whole = u128::from(BPS_WHOLE);
    (amount / whole) * u128::from(bps) + (amount % whole) * u128::from(bps) / whole
}

/// The validators that measure `relay` in `epoch`: all of them (sorted)
/// by default; with
/// [`MeasureParams::sampled_measurers_per_relay_weakens_quorum`] set to
/// `Some(m)`, the `m` validators with the smallest
/// `SHA-256("openrelay measure assignment v1\0" ‖ seed ‖ epoch ‖ relay ‖
/// validator)`, in that order. `seed` must be unknown to relays until the
/// commitments of the previous epoch are in (the later parts take a block
/// hash), so a relay cannot know which validators will test it, and every
/// validator pair is equally likely, whatever the relay's id.
pub fn assigned_measurers(
    params: &MeasureParams,
    seed: &[u8; 32],
    epoch: Epoch,
    relay: &RelayId,
    validators: &[ValidatorId],
) -> Vec<ValidatorId> {
    let mut ranked: Vec<([u8; 32], ValidatorId)> = validators
        .iter()
        .map(|v| {
            let mut h = Sha256::new();
            h.update(b"openrelay measure assignment v1\0");
            h.update(seed);
            h.update(epoch.to_be_bytes());
            h.update(relay.0);
            h.update(v.0);
            (h.finalize().into(), *v)
        })
        .collect();
    if params.sampled_measurers_per_relay_weakens_quorum.is_none() {
        ranked.sort_by_key(|r| r.1);
    } else {
        ranked.sort();
    }
    ranked.dedup_by(|a, b| a.1 == b.1);
    ranked
        .into_iter()
        .take(
            params.measurers_per_relay(u32::try_from(validators.len()).unwrap_or(u32::MAX))
                as usize,
        )
        .map(|(_, v)| v)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passing_threshold_and_unmeasured_weight() {
        let p = MeasureParams::default();
        assert_eq!(p.passing_bps(100_000_000), 80_000_000);
        assert_eq!(p.passing_bps(u64::MAX), 8_000_000_000);
        assert_eq!(unmeasured_weight(100_000_000), 10_000_000);
        assert_eq!(unmeasured_weight(10_000_000_000), 20_000_000);
        assert_eq!(selection_bandwidth(100_000_000, None), 10_000_000);
        assert_eq!(
            selection_bandwidth(100_000_000, Some(10_000_000)),
            10_000_000
        );
        assert_eq!(
            selection_bandwidth(100_000_000, Some(500_000_000)),
            100_000_000
        );
        assert!(!p.inflates(130, 100));
        assert!(p.inflates(131, 100));
        assert!(!p.inflates(69, 100));
        assert!(!p.inflates(0, 100));
        assert_eq!(stake_bps(u128::MAX, 10_000), u128::MAX);
        assert_eq!(p.max_test_bytes_per_relay_per_epoch(15), 15 * 6_250_000_000);
        assert_eq!(p.test_share_of_capacity_bps(15), 104);
        let sampled = MeasureParams {
            sampled_measurers_per_relay_weakens_quorum: Some(3),
            ..MeasureParams::default()
        };
        assert_eq!(sampled.test_share_of_capacity_bps(15), 20);
        assert_eq!(sampled.measurers_per_relay(2), 2);
        assert_eq!(stake_bps(1_000, 1_000), 100);
    }

    #[test]
    fn assignment_is_everyone_by_default_or_a_deterministic_spread_sample() {
        let validators: Vec<ValidatorId> = (0..10).rev().map(|i| ValidatorId([i; 32])).collect();
        let all = assigned_measurers(
            &MeasureParams::default(),
            &[1; 32],
            5,
            &RelayId([4; 32]),
            &validators,
        );
        assert_eq!(all.len(), 10);
        assert!(all.windows(2).all(|w| w[0] < w[1]));
        let p = MeasureParams {
            sampled_measurers_per_relay_weakens_quorum: Some(3),
            ..MeasureParams::default()
        };
        let validators: Vec<ValidatorId> = (0..10).map(|i| ValidatorId([i; 32])).collect();
        let relay = RelayId([42; 32]);
        let a = assigned_measurers(&p, &[1; 32], 5, &relay, &validators);
        assert_eq!(a.len(), 3);
        assert_eq!(a, assigned_measurers(&p, &[1; 32], 5, &relay, &validators));
        // Over many epochs every validator measures this relay sometimes.
        let mut seen = std::collections::BTreeSet::new();
        for epoch in 0..100 {
            seen.extend(assigned_measurers(&p, &[1; 32], epoch, &relay, &validators));
        }
        assert_eq!(seen.len(), 10);
        let few = assigned_measurers(&p, &[1; 32], 5, &relay, &validators[..2]);
        assert_eq!(few.len(), 2);
    }
}
