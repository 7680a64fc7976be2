//! When in an epoch a validator tests each relay: [`ProbeSchedule`], pure
//! and seeded. Tests start at random times so that a relay cannot tell a
//! probe by when it comes (a fixed time in the epoch would let it serve
//! fast for that minute only), and never overlap, so that one validator's
//! tests do not share its own uplink and each relay is measured alone.
//!
//! The placement is uniform over all non-overlapping placements: the free
//! time of the epoch (its length minus every test) is cut at `n` uniform
//! points, sorted, and test `i` (relays in a random order) starts at point
//! `i` plus the `i` tests before it. The seed is the validator's secret for
//! the epoch: a relay that knew it would know when it is tested.
//!
//! A measuring validator places each relay's test in its lane
//! ([`ProbeSchedule::in_lanes`], lanes from
//! [`openrelay_measure::test_lanes`]), so that no two validators test one
//! relay at once; within a lane, the same uniform placement.

use std::ops::Range;
use std::time::Duration;

use openrelay_measure::RelayId;

/// Why no schedule fits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    /// The tests of a lane do not fit in it one after another.
    #[error(
        "{relays} tests of {test:?} do not fit in {window:?}; measure fewer relays per validator \
         (sampled measurers), lengthen the epoch or shorten the tests"
    )]
    DoesNotFit {
        /// Relays to test in the lane.
        relays: usize,
        /// Each test's length (with its margin).
        test: Duration,
        /// The lane's length.
        window: Duration,
    },
}

/// One relay's test in the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// The relay tested.
    pub relay: RelayId,
    /// When the test starts, from the epoch's start.
    pub start: Duration,
}

/// A part of the epoch and the relays tested in it
/// ([`openrelay_measure::test_lanes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lane {
    /// From when to when (from the epoch's start) its tests run.
    pub window: Range<Duration>,
    /// The relays tested in it.
    pub relays: Vec<RelayId>,
}

/// The tests of one epoch, in time order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSchedule {
    slots: Vec<Slot>,
}

impl ProbeSchedule {
    /// Places one test of `test` (the measurement with its warm-up and a
    /// margin for building the path) per relay of `relays` in an epoch of
    /// `epoch`, at random times drawn from `seed`, without overlap.
    pub fn new(
        seed: u64,
        epoch: Duration,
        test: Duration,
        relays: &[RelayId],
    ) -> Result<Self, ScheduleError> {
        let whole = Lane {
            window: Duration::ZERO..epoch,
            relays: relays.to_vec(),
        };
        Self::in_lanes(seed, test, &[whole])
    }

    /// Places each lane's tests within the lane as [`ProbeSchedule::new`]
    /// places them in an epoch. Lanes are expected not to overlap (tests of
    /// overlapping lanes may).
    pub fn in_lanes(seed: u64, test: Duration, lanes: &[Lane]) -> Result<Self, ScheduleError> {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut slots = Vec::new();
        for lane in lanes {
            let window = lane.window.end.saturating_sub(lane.window.start);
            let busy = u32::try_from(lane.relays.len())
                .ok()
                .and_then(|n| test.checked_mul(n));
            let Some(free) = busy.and_then(|busy| window.checked_sub(busy)) else {
                return Err(ScheduleError::DoesNotFit {
                    relays: lane.relays.len(),
                    test,
                    window,
                });
            };
            let mut order = lane.relays.clone();
            rng.shuffle(&mut order);
            let free_nanos = u64::try_from(free.as_nanos()).unwrap_or(u64::MAX);
            let mut cuts: Vec<u64> = order.iter().map(|_| rng.u64(..=free_nanos)).collect();
            cuts.sort_unstable();
            slots.extend(
                order
                    .into_iter()
                    .zip(cuts)
                    .enumerate()
                    .map(|(i, (relay, cut))| Slot {
                        relay,
                        // `i` tests fit (checked above), so this cannot overflow.
                        start: lane.window.start + Duration::from_nanos(cut) + test * i as u32,
                    }),
            );
        }
        slots.sort_by_key(|slot| slot.start);
        Ok(ProbeSchedule { slots })
    }

    /// Every test, in time order.
    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn relays(n: u8) -> Vec<RelayId> {
        (0..n).map(|i| RelayId([i; 32])).collect()
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn tests_fit_in_the_epoch_without_overlap() {
        for seed in 0..200 {
            let schedule = ProbeSchedule::new(seed, 60 * SECOND, 5 * SECOND, &relays(10)).unwrap();
            let slots = schedule.slots();
            assert_eq!(slots.len(), 10);
            for pair in slots.windows(2) {
                assert!(
                    pair[0].start + 5 * SECOND <= pair[1].start,
                    "{seed}: {pair:?}"
                );
            }
            assert!(slots[9].start + 5 * SECOND <= 60 * SECOND);
            let mut tested: Vec<_> = slots.iter().map(|s| s.relay).collect();
            tested.sort();
            assert_eq!(tested, relays(10));
        }
    }

    #[test]
    fn a_seed_gives_one_schedule_and_seeds_differ() {
        let make = |seed| ProbeSchedule::new(seed, 60 * SECOND, SECOND, &relays(5)).unwrap();
        assert_eq!(make(7), make(7));
        assert_ne!(make(7).slots(), make(8).slots());
    }

    /// Start times spread over the epoch: a relay cannot expect its test in
    /// any one part of it.
    #[test]
    fn start_times_spread_over_the_epoch() {
        let mut quarters = [0u32; 4];
        for seed in 0..2_000 {
            let schedule = ProbeSchedule::new(seed, 60 * SECOND, SECOND, &relays(1)).unwrap();
            let start = schedule.slots()[0].start;
            quarters[(start.as_secs_f64() / 59.0 * 4.0).min(3.0) as usize] += 1;
        }
        for count in quarters {
            assert!((400..600).contains(&count), "{quarters:?}");
        }
    }

    #[test]
    fn too_many_tests_do_not_fit() {
        let error = ProbeSchedule::new(1, 10 * SECOND, 3 * SECOND, &relays(4)).unwrap_err();
        assert!(matches!(error, ScheduleError::DoesNotFit { relays: 4, .. }));
        // Exactly full fits, back to back.
        let full = ProbeSchedule::new(1, 12 * SECOND, 3 * SECOND, &relays(4)).unwrap();
        let starts: Vec<_> = full.slots().iter().map(|s| s.start).collect();
        assert_eq!(starts, [0, 3, 6, 9].map(|s| s * SECOND));
    }

    /// Lanes keep their tests inside them; a lane too short says which.
    #[test]
    fn each_lane_s_tests_stay_in_the_lane() {
        let lanes = [
            Lane {
                window: Duration::ZERO..20 * SECOND,
                relays: relays(2),
            },
            Lane {
                window: 20 * SECOND..40 * SECOND,
                relays: (10..13).map(|i| RelayId([i; 32])).collect(),
            },
        ];
        for seed in 0..200 {
            let schedule = ProbeSchedule::in_lanes(seed, 5 * SECOND, &lanes).unwrap();
            assert_eq!(schedule.slots().len(), 5);
            for slot in schedule.slots() {
                let lane = lanes
                    .iter()
                    .find(|l| l.relays.contains(&slot.relay))
                    .unwrap();
                assert!(lane.window.start <= slot.start, "{seed}: {slot:?}");
                assert!(
                    slot.start + 5 * SECOND <= lane.window.end,
                    "{seed}: {slot:?}"
                );
            }
            for pair in schedule.slots().windows(2) {
                assert!(pair[0].start + 5 * SECOND <= pair[1].start, "{seed}");
            }
        }
        let error = ProbeSchedule::in_lanes(1, 7 * SECOND, &lanes).unwrap_err();
        assert_eq!(
            error,
            ScheduleError::DoesNotFit {
                relays: 3,
                test: 7 * SECOND,
                window: 20 * SECOND
            }
        );
    }
}
