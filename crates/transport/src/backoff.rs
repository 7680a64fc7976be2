//! Retry delays for services that must wait for another to come (an issuer,
//! a registry): the first retry soon, each failure doubling the delay up to
//! a cap, a success starting over. Each delay is drawn from the upper half
//! of its step (`[d/2, d]`), so relays restarted together do not retry in
//! lockstep. Pure: the caller sleeps.

use std::time::Duration;

/// A capped exponential backoff; see the [module documentation](self).
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    cap: Duration,
    step: Duration,
    /// xorshift64 state for the spread (not for secrets).
    state: u64,
}

impl Backoff {
    /// Delays from `first` doubling to at most `cap`, spread by `seed`.
    pub fn new(first: Duration, cap: Duration, seed: u64) -> Self {
        Backoff {
            first,
            cap: cap.max(first),
            step: first,
            state: seed | 1,
        }
    }

    /// As [`Backoff::new`], seeded from the clock.
    pub fn seeded_now(first: Duration, cap: Duration) -> Self {
        Self::new(first, cap, openrelay_types::clock::unix_nanos_seed())
    }

    /// The delay before the next try after a failure.
    pub fn next_delay(&mut self) -> Duration {
        let step = self.step;
        self.step = (self.step * 2).min(self.cap);
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        let half = step / 2;
        let spread = u32::try_from(self.state % 1024).unwrap_or(0);
        half + half * spread / 1023
    }

    /// After a success: the next failure starts from `first` again.
    pub fn reset(&mut self) {
        self.step = self.first;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_spread_in_the_upper_half_and_resets() {
        let (first, cap) = (Duration::from_millis(250), Duration::from_secs(30));
        let mut backoff = Backoff::new(first, cap, 42);
        let mut step = first;
        for _ in 0..20 {
            let delay = backoff.next_delay();
            assert!(delay >= step / 2 && delay <= step, "{delay:?} for {step:?}");
            step = (step * 2).min(cap);
        }
        assert!(backoff.next_delay() >= cap / 2);
        backoff.reset();
        assert!(backoff.next_delay() <= first);
    }

    #[test]
    fn seeds_spread_the_delays() {
        let delays: Vec<Duration> = (0..8)
            .map(|seed| {
                Backoff::new(Duration::from_secs(8), Duration::from_secs(8), seed).next_delay()
            })
            .collect();
        assert!(delays.iter().any(|d| *d != delays[0]), "{delays:?}");
    }
}
