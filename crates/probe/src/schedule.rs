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

use std::time::Duration;

use openrelay_measure::RelayId;

/// Why no schedule fits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    /// The tests do not fit in the epoch one after another.
    #[error(
        "{relays} tests of {test:?} do not fit in an epoch of {epoch:?}; measure fewer relays \
         per validator (sampled measurers) or shorten the tests"
    )]
    DoesNotFit {
        /// Relays to test.
        relays: usize,
        /// Each test's length (with its margin).
        test: Duration,
        /// The epoch's length.
        epoch: Duration,
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

/// What to do now, from [`ProbeSchedule::poll`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbePoll {
    /// Test this relay now (its slot has begun).
    Run(Slot),
    /// Nothing is due before this time (from the epoch's start).
    WaitUntil(Duration),
    /// Every test of the epoch has been handed out.
    Done,
}

/// The tests of one epoch, in time order, and how many were handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSchedule {
    slots: Vec<Slot>,
    test: Duration,
    next: usize,
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
        let busy = u32::try_from(relays.len())
            .ok()
            .and_then(|n| test.checked_mul(n));
        let free = busy.and_then(|busy| epoch.checked_sub(busy));
        let Some(free) = free else {
            return Err(ScheduleError::DoesNotFit {
                relays: relays.len(),
                test,
                epoch,
            });
        };
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut order = relays.to_vec();
        rng.shuffle(&mut order);
        let free_nanos = u64::try_from(free.as_nanos()).unwrap_or(u64::MAX);
        let mut cuts: Vec<u64> = order.iter().map(|_| rng.u64(..=free_nanos)).collect();
        cuts.sort_unstable();
        let slots = order
            .into_iter()
            .zip(cuts)
            .enumerate()
            .map(|(i, (relay, cut))| Slot {
                relay,
                // `i` tests fit (checked above), so this cannot overflow.
                start: Duration::from_nanos(cut) + test * i as u32,
            })
            .collect();
        Ok(ProbeSchedule {
            slots,
            test,
            next: 0,
        })
    }

    /// Every test, in time order.
    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }

    /// Each test's length.
    pub fn test(&self) -> Duration {
        self.test
    }

    /// What is due at `now` (from the epoch's start): a test whose start
    /// has come, handed out once; a test whose whole slot has passed
    /// (the driver was late by more than a test) is still handed out, the
    /// driver deciding whether to run it late.
    pub fn poll(&mut self, now: Duration) -> ProbePoll {
        match self.slots.get(self.next) {
            None => ProbePoll::Done,
            Some(slot) if slot.start <= now => {
                self.next += 1;
                ProbePoll::Run(*slot)
            }
            Some(slot) => ProbePoll::WaitUntil(slot.start),
        }
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

    /// The driver's view, on a fake clock: each test is handed out once,
    /// at or after its start, in order; between them the schedule says how
    /// long to sleep.
    #[test]
    fn poll_hands_out_each_test_once_at_its_time() {
        let mut schedule = ProbeSchedule::new(3, 60 * SECOND, 2 * SECOND, &relays(6)).unwrap();
        let expected = schedule.slots().to_vec();
        let mut now = Duration::ZERO;
        let mut ran = Vec::new();
        loop {
            match schedule.poll(now) {
                ProbePoll::Run(slot) => {
                    assert!(slot.start <= now);
                    ran.push(slot);
                    now += 2 * SECOND; // the test runs
                }
                ProbePoll::WaitUntil(at) => {
                    assert!(at > now);
                    now = at;
                }
                ProbePoll::Done => break,
            }
        }
        assert_eq!(ran, expected);
        assert_eq!(schedule.poll(now), ProbePoll::Done);
    }
}
