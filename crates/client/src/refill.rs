//! When token refills start: a pure timer (the caller passes the time in,
//! and the random source), so the timing rules are tested with a fake
//! clock.
//!
//! A refill shows the issuer an account at a moment. The pools run low
//! because the client used tokens (a path built, a quantum paid), that is,
//! right after something started at a relay; a refill at once would hand an
//! issuer working with that relay a timing link from the account to the
//! session. So:
//!
//! * a pool below its low-water mark schedules a refill at a uniformly random
//!   moment `shortest..=longest` later, not at once;
//! * a pool that ran dry (a path or a payment needed a token it did not
//!   have) brings the refill forward, still at random, `shortest..=2 ×
//!   shortest` later;
//! * a refill never starts within `shortest` of the start of a browsing
//!   path (the start of a session at an egress): it is put off to a new
//!   random moment `shortest..=longest` after that start.
//!
//! What remains is coarse: an issuer sees refills some tens of seconds after
//! some session started, among every client's.

use std::time::Duration;

use crate::selection::Moment;

/// What to do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefillPoll<T> {
    /// Start a refill.
    Start,
    /// Ask again at this time (or when something changes).
    WaitUntil(T),
    /// Nothing is scheduled.
    Idle,
}

/// Schedules refills; see the [module documentation](self).
#[derive(Debug, Clone)]
pub struct RefillTimer<T> {
    shortest: Duration,
    longest: Duration,
    due: Option<T>,
}

impl<T: Moment> RefillTimer<T> {
    /// A timer whose refills start between `shortest` and `longest` after
    /// they are asked for (`longest` is raised to `shortest` if smaller).
    pub fn new(shortest: Duration, longest: Duration) -> Self {
        RefillTimer {
            shortest,
            longest: longest.max(shortest),
            due: None,
        }
    }

    /// When the scheduled refill is due, if one is.
    pub fn due(&self) -> Option<T> {
        self.due
    }

    /// `from` plus a uniformly random delay in `shortest..=longest`.
    fn draw(&self, from: T, longest: Duration, rng: &mut fastrand::Rng) -> Option<T> {
        let spread = longest.saturating_sub(self.shortest).as_millis();
        let extra = u64::try_from(rng.u128(0..=spread)).unwrap_or(u64::MAX);
        from.after(self.shortest + Duration::from_millis(extra))
    }

    /// A pool is below its low-water mark at `now`: schedules a refill
    /// unless one is scheduled.
    pub fn low(&mut self, now: T, rng: &mut fastrand::Rng) {
        if self.due.is_none() {
            self.due = self.draw(now, self.longest, rng);
        }
    }

    /// A pool ran dry at `now`: the refill comes within `shortest..=2 ×
    /// shortest` (or stays earlier if it already was).
    pub fn dry(&mut self, now: T, rng: &mut fastrand::Rng) {
        let soon = self.draw(now, self.shortest * 2, rng);
        self.due = match (self.due, soon) {
            (Some(due), Some(soon)) => Some(due.min(soon)),
            (due, soon) => due.or(soon),
        };
    }

    /// Whether a refill starts at `now`, the last browsing path having been
    /// established at `last_browsing`. `Start` clears the schedule.
    pub fn poll(
        &mut self,
        now: T,
        last_browsing: Option<T>,
        rng: &mut fastrand::Rng,
    ) -> RefillPoll<T> {
        let Some(due) = self.due else {
            return RefillPoll::Idle;
        };
        if now < due {
            return RefillPoll::WaitUntil(due);
        }
        if let Some(started) = last_browsing.filter(|b| now.since(*b) < self.shortest) {
            // Too close to a session's start: a new moment after it.
            self.due = self.draw(started, self.longest, rng);
            return self.due.map_or(RefillPoll::Idle, RefillPoll::WaitUntil);
        }
        self.due = None;
        RefillPoll::Start
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn a_low_pool_is_refilled_at_a_random_moment_in_the_window() {
        let mut starts = Vec::new();
        for seed in 0..200 {
            let mut rng = fastrand::Rng::with_seed(seed);
            let mut timer = RefillTimer::new(secs(5), secs(60));
            timer.low(secs(100), &mut rng);
            let due = timer.due().unwrap();
            assert!((secs(105)..=secs(160)).contains(&due), "{due:?}");
            assert_eq!(
                timer.poll(due - secs(1), None, &mut rng),
                RefillPoll::WaitUntil(due)
            );
            assert_eq!(timer.poll(due, None, &mut rng), RefillPoll::Start);
            assert_eq!(timer.poll(due, None, &mut rng), RefillPoll::Idle);
            starts.push(due);
        }
        starts.sort();
        starts.dedup();
        assert!(starts.len() > 150, "the moments are spread");
    }

    #[test]
    fn a_dry_pool_brings_the_refill_forward() {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut timer = RefillTimer::new(secs(5), secs(600));
        timer.low(secs(0), &mut rng);
        timer.dry(secs(1), &mut rng);
        assert!(timer.due().unwrap() <= secs(11));
        assert!(timer.due().unwrap() >= secs(6));
    }

    proptest! {
        /// Whatever the pools and the browsing do, a refill never starts
        /// within `shortest` of a browsing path's start nor of the moment it
        /// was asked for, and one asked for starts once browsing pauses.
        #[test]
        fn refills_keep_away_from_session_starts(
            seed in any::<u64>(),
            events in proptest::collection::vec((0u64..20_000, 0u8..4), 1..100),
        ) {
            let shortest = secs(5);
            let mut rng = fastrand::Rng::with_seed(seed);
            let mut timer = RefillTimer::new(shortest, secs(60));
            let (mut now, mut browsing, mut asked) = (Duration::ZERO, None, None);
            for (wait_ms, kind) in events {
                now += Duration::from_millis(wait_ms);
                match kind {
                    0 => browsing = Some(now),
                    1 => { timer.low(now, &mut rng); asked = asked.or(Some(now)); }
                    2 => { timer.dry(now, &mut rng); asked = asked.or(Some(now)); }
                    _ => {}
                }
                if timer.poll(now, browsing, &mut rng) == RefillPoll::Start {
                    let asked_at: Duration = asked.take().unwrap();
                    prop_assert!(now.since(asked_at) >= shortest);
                    if let Some(b) = browsing {
                        prop_assert!(now.since(b) >= shortest);
                    }
                }
            }
            // Browsing pauses: what is scheduled starts within `longest`.
            if asked.is_some() {
                let deadline = now + secs(61);
                let mut started = false;
                while now <= deadline && !started {
                    now += Duration::from_millis(100);
                    started = timer.poll(now, browsing, &mut rng) == RefillPoll::Start;
                }
                prop_assert!(started);
            }
        }
    }
}
