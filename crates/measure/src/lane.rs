//! Which part of an epoch a validator tests a relay in (docs/measurement.md,
//! "Epochs"): [`test_lanes`]. A test measures what a relay has to spare, so
//! two validators testing one relay at the same moment would each find
//! about half of it: the short relay looks shorter than it is, an honest
//! relay near its claim fails, and the validator that tested alone is
//! marked against the depressed aggregate. Validators cannot agree on
//! times in secret, so the epoch's test window is cut into as many lanes as
//! there are validators, and each relay's validators take distinct lanes.
//!
//! The rule is public and needs no coordination: validators sorted by key
//! have ranks `0..V`; relays sorted by
//! `SHA-256("openrelay measure lane v1\0" ‖ epoch ‖ relay)` have positions
//! `0..R`; validator `k` tests the relay at position `p` in lane
//! `(k + p) mod V`. For one relay, distinct validators get distinct lanes;
//! for one validator, every lane gets `⌊R/V⌋` or `⌈R/V⌉` of its relays.
//! A relay that computes its lanes learns only that each lane holds one
//! test of it, at a random time the validator keeps secret
//! (`openrelay_probe::ProbeSchedule`): it must serve honestly throughout.

use sha2::{Digest as _, Sha256};

use crate::report::{Epoch, RelayId, ValidatorId};

/// A validator's lanes of one epoch: for each of `relays` (in the order
/// given), the lane `me` tests it in, out of `lanes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestLanes {
    /// How many lanes the epoch's test window is cut into (the number of
    /// validators).
    pub lanes: u32,
    /// The lane of each relay, in the order the relays were given.
    pub lane_of: Vec<(RelayId, u32)>,
}

/// The lanes validator `me` tests `relays` in during `epoch`, with the set
/// `validators` (see the module documentation); `None` if `me` is not in
/// the set. Duplicates in either list count once.
pub fn test_lanes(
    epoch: Epoch,
    relays: &[RelayId],
    validators: &[ValidatorId],
    me: &ValidatorId,
) -> Option<TestLanes> {
    let mut set = validators.to_vec();
    set.sort();
    set.dedup();
    let rank = set.iter().position(|v| v == me)?;
    let lanes = set.len();
    let mut ranked: Vec<([u8; 32], RelayId)> = relays
        .iter()
        .map(|relay| {
            let mut h = Sha256::new();
            h.update(b"openrelay measure lane v1\0");
            h.update(epoch.to_be_bytes());
            h.update(relay.0);
            (h.finalize().into(), *relay)
        })
        .collect();
    ranked.sort();
    ranked.dedup_by(|a, b| a.1 == b.1);
    let lane_of = ranked
        .iter()
        .enumerate()
        .map(|(position, (_, relay))| {
            let lane = (rank + position) % lanes;
            (*relay, u32::try_from(lane).unwrap_or(u32::MAX))
        })
        .collect();
    Some(TestLanes {
        lanes: u32::try_from(lanes).unwrap_or(u32::MAX),
        lane_of,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;

    use super::*;

    fn relay(i: u16) -> RelayId {
        let mut id = [0; 32];
        id[..2].copy_from_slice(&i.to_be_bytes());
        RelayId(id)
    }

    fn validator(i: u8) -> ValidatorId {
        ValidatorId([i; 32])
    }

    #[test]
    fn a_validator_outside_the_set_has_no_lanes() {
        assert_eq!(
            test_lanes(1, &[relay(1)], &[validator(1)], &validator(2)),
            None
        );
    }

    proptest! {
        /// Every relay's validators test it in distinct lanes, and each
        /// validator's relays are spread evenly over the lanes.
        #[test]
        fn lanes_never_collide_and_are_balanced(
            epoch in 0u64..1_000,
            relays in 1u16..60,
            validators in 1u8..12,
        ) {
            let relays: Vec<RelayId> = (0..relays).map(relay).collect();
            let set: Vec<ValidatorId> = (0..validators).map(validator).collect();
            let mut lanes_of_relay: BTreeMap<RelayId, BTreeSet<u32>> = BTreeMap::new();
            for me in &set {
                let lanes = test_lanes(epoch, &relays, &set, me).unwrap();
                prop_assert_eq!(lanes.lanes, u32::from(validators));
                prop_assert_eq!(lanes.lane_of.len(), relays.len());
                let mut per_lane = vec![0usize; usize::from(validators)];
                for (relay, lane) in &lanes.lane_of {
                    prop_assert!(lanes_of_relay.entry(*relay).or_default().insert(*lane));
                    per_lane[*lane as usize] += 1;
                }
                let (low, high) = (relays.len() / set.len(), relays.len().div_ceil(set.len()));
                prop_assert!(per_lane.iter().all(|n| (low..=high).contains(n)), "{per_lane:?}");
            }
        }
    }
}
