//! Back-off between path builds that keep failing, as a pure state machine
//! on the caller's clock (any [`Moment`]). Without it a client refused for
//! lack of an access token rebuilt paths as fast as apps asked for
//! connections: hundreds of handshakes and warnings a second.
//!
//! After the `n`th failure in a row the next build waits a random time in
//! `[d/2, d]`, `d = min(CAP, INITIAL · 2^(n-1))` ("equal jitter": never less
//! than half the step, so the rate is bounded, and spread so that clients
//! refused together do not return together). A success, or news that may
//! change the outcome (tokens arrived, a new relay list), resets it.

use std::time::Duration;

use crate::selection::Moment;

/// The wait after the first failure (at most; at least half of it).
pub(crate) const INITIAL: Duration = Duration::from_secs(1);
/// The longest wait: long enough to cost nothing, short enough that a
/// client recovers within a minute of its cause going away unnoticed.
pub(crate) const CAP: Duration = Duration::from_secs(60);

/// When the next path build may start.
#[derive(Debug)]
pub(crate) struct BuildBackoff<T> {
    /// Failures in a row.
    failures: u32,
    /// No build before this.
    not_before: Option<T>,
    rng: fastrand::Rng,
}

impl<T: Moment> BuildBackoff<T> {
    /// No failure yet: builds may start at once.
    pub(crate) fn new(rng: fastrand::Rng) -> Self {
        BuildBackoff {
            failures: 0,
            not_before: None,
            rng,
        }
    }

    /// `Ok` if a build may start at `now`, else how long until one may.
    pub(crate) fn check(&self, now: T) -> Result<(), Duration> {
        match self.not_before {
            Some(at) if now < at => Err(at.since(now)),
            _ => Ok(()),
        }
    }

    /// Builds failed at `now`: returns the wait before the next.
    pub(crate) fn failed(&mut self, now: T) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let step = INITIAL
            .checked_mul(1 << (self.failures - 1).min(16))
            .unwrap_or(CAP)
            .min(CAP);
        let half = step / 2;
        let jitter = Duration::from_nanos(
            self.rng
                .u64(0..=u64::try_from(half.as_nanos()).unwrap_or(u64::MAX)),
        );
        let wait = half + jitter;
        self.not_before = now.after(wait);
        wait
    }

    /// A build succeeded, or something changed that may let the next one
    /// succeed: no more waiting.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
        self.not_before = None;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn waits_double_up_to_the_cap_and_a_reset_clears_them() {
        let mut backoff = BuildBackoff::<Duration>::new(fastrand::Rng::with_seed(7));
        let mut now = Duration::ZERO;
        assert_eq!(backoff.check(now), Ok(()));
        let mut waits = Vec::new();
        for _ in 0..10 {
            let wait = backoff.failed(now);
            assert_eq!(backoff.check(now), Err(wait));
            assert!(backoff.check(now + wait / 2).is_err());
            now += wait;
            assert_eq!(backoff.check(now), Ok(()));
            waits.push(wait);
        }
        for (n, wait) in waits.iter().enumerate() {
            let step = (INITIAL * (1 << n)).min(CAP);
            assert!(step / 2 <= *wait && *wait <= step, "failure {n}: {wait:?}");
        }
        backoff.reset();
        assert_eq!(backoff.check(now), Ok(()));
        assert!(backoff.failed(now) <= INITIAL);
    }

    proptest! {
        /// However often builds are asked for, a client that keeps failing
        /// makes few attempts: at most 5 in its first 10 s, at most one a
        /// minute once capped.
        #[test]
        fn the_attempt_rate_is_bounded(seed: u64, asks_per_sec in 1u64..1000) {
            let mut backoff = BuildBackoff::<Duration>::new(fastrand::Rng::with_seed(seed));
            let tick = Duration::from_nanos(1_000_000_000 / asks_per_sec);
            let mut now = Duration::ZERO;
            let mut attempts = Vec::new();
            while now < Duration::from_secs(600) {
                if backoff.check(now).is_ok() {
                    attempts.push(now);
                    backoff.failed(now);
                }
                now += tick;
            }
            let early = attempts.iter().filter(|t| **t < Duration::from_secs(10)).count();
            prop_assert!(early <= 5, "{early} attempts in 10 s");
            let late = attempts.iter().filter(|t| **t >= Duration::from_secs(300)).count();
            prop_assert!(late <= 10, "{late} attempts in the last 5 minutes");
        }
    }
}
