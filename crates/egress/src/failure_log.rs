//! One WARN line per kind of flow failure per interval, with the count, in
//! place of one per flow: an egress out of descriptors refuses every flow
//! (80,013 lines, 11 MB in the load test), and the log should say so once
//! in a while, not drown. Every failure still counts in the egress's
//! `failed` statistic.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How often a kind of failure is logged at most.
pub(crate) const INTERVAL: Duration = Duration::from_secs(10);

/// Decides which failures are logged (no I/O: the caller logs).
#[derive(Debug)]
pub(crate) struct FailureTally {
    interval: Duration,
    kinds: HashMap<&'static str, KindTally>,
}

#[derive(Debug)]
struct KindTally {
    logged_at: Instant,
    /// Failures since that line.
    unlogged: u64,
}

impl FailureTally {
    pub(crate) fn new(interval: Duration) -> Self {
        FailureTally {
            interval,
            kinds: HashMap::new(),
        }
    }

    /// Counts a failure of `kind` (a fixed name) at `now`. `Some(count)`:
    /// log a line now for `count` failures (this one and those held back
    /// since the last line of its kind); `None`: held back. The first of a
    /// kind is logged at once.
    pub(crate) fn record(&mut self, kind: &'static str, now: Instant) -> Option<u64> {
        match self.kinds.get_mut(kind) {
            Some(tally) if now.saturating_duration_since(tally.logged_at) < self.interval => {
                tally.unlogged += 1;
                None
            }
            Some(tally) => {
                let count = tally.unlogged + 1;
                *tally = KindTally {
                    logged_at: now,
                    unlogged: 0,
                };
                Some(count)
            }
            None => {
                self.kinds.insert(
                    kind,
                    KindTally {
                        logged_at: now,
                        unlogged: 0,
                    },
                );
                Some(1)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_burst_is_one_line_per_interval_with_its_count() {
        let mut tally = FailureTally::new(INTERVAL);
        let start = Instant::now();
        assert_eq!(tally.record("out_of_descriptors", start), Some(1));
        let mut logged = Vec::new();
        // 80,000 refusals over 40 s, 2,000 a second.
        for i in 1..80_000u64 {
            let now = start + Duration::from_micros(i * 500);
            if let Some(count) = tally.record("out_of_descriptors", now) {
                logged.push(count);
            }
        }
        assert_eq!(logged.len(), 3, "one line per 10 s: {logged:?}");
        assert!(logged.iter().all(|&c| c == 20_000), "{logged:?}");
        // Lines and the held-back tail account for every failure.
        let after = start + Duration::from_secs(60);
        let tail = tally.record("out_of_descriptors", after).unwrap();
        assert_eq!(1 + logged.iter().sum::<u64>() + tail, 80_001);
    }

    #[test]
    fn kinds_are_counted_apart() {
        let mut tally = FailureTally::new(INTERVAL);
        let now = Instant::now();
        assert_eq!(tally.record("out_of_descriptors", now), Some(1));
        assert_eq!(tally.record("out_of_descriptors", now), None);
        assert_eq!(tally.record("connection_refused", now), Some(1));
    }
}
