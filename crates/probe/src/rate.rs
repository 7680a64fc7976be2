//! From what a transfer received to a capacity, and from echo round trips
//! to a median: pure, so the numbers a verdict rests on are unit-tested.
//!
//! **Warm-up.** The first part of a transfer measures the ramp, not the
//! relay: QUIC's slow start (both the outer and the inner connection
//! double their windows per round trip), TCP's slow start between the
//! egress and the sink, and a full token bucket or queue along the way
//! that lets a burst through faster than the sustained rate. Counting
//! from the start under-reports a fast relay (the ramp) and over-reports a
//! shaped one (the burst). The capacity is therefore the rate between the
//! first sample at or after `warmup` and the last sample; the raw rate from
//! the first byte is kept beside it so the effect is visible
//! (`examples/accuracy.rs` prints both).

use std::time::Duration;

/// Cumulative bytes received by a time (from the first byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Since the first byte arrived.
    pub at: Duration,
    /// Bytes received by then, the first chunk included.
    pub bytes: u64,
}

/// What a transfer measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RateEstimate {
    /// Bits per second after the warm-up: the capacity reported.
    pub bps: u64,
    /// Bits per second from the first byte to the last sample, warm-up
    /// included (for comparison only).
    pub raw_bps: u64,
    /// Bytes counted in `bps`.
    pub bytes: u64,
    /// The time `bps` is measured over.
    pub over: Duration,
}

/// The capacity `samples` (in time order) show, discounting the first
/// `warmup`; `None` if no sample lies after the warm-up by a measurable
/// time (the transfer stalled or ended early: nothing to report as a
/// capacity).
pub fn capacity(samples: &[Sample], warmup: Duration) -> Option<RateEstimate> {
    let last = samples.last()?;
    let from = samples.iter().find(|s| s.at >= warmup)?;
    let over = last.at.checked_sub(from.at)?;
    if over < Duration::from_millis(100) {
        return None;
    }
    let bytes = last.bytes.saturating_sub(from.bytes);
    let raw_bytes = last.bytes.saturating_sub(samples[0].bytes);
    let raw_over = last.at.saturating_sub(samples[0].at);
    Some(RateEstimate {
        bps: bits_per_second(bytes, over),
        raw_bps: bits_per_second(raw_bytes, raw_over),
        bytes,
        over,
    })
}

fn bits_per_second(bytes: u64, over: Duration) -> u64 {
    if over.is_zero() {
        return 0;
    }
    let bps = (bytes as f64 * 8.0) / over.as_secs_f64();
    // `as` saturates at u64::MAX; a rate that large is no loss.
    bps.round() as u64
}

/// The median of `rtts` (the lower middle one of an even count), in
/// microseconds saturating at `u32::MAX`; `None` if empty.
pub fn median_rtt_micros(rtts: &[Duration]) -> Option<u32> {
    let mut sorted = rtts.to_vec();
    sorted.sort_unstable();
    let middle = sorted.get((sorted.len().checked_sub(1)?) / 2)?;
    Some(u32::try_from(middle.as_micros()).unwrap_or(u32::MAX))
}

/// Samples of a transfer as it arrives: at most one per `every`, plus the
/// last, so a long fast transfer keeps a few hundred samples, not one per
/// chunk.
#[derive(Debug, Clone)]
pub struct SampleLog {
    every: Duration,
    samples: Vec<Sample>,
    pending: Option<Sample>,
}

impl SampleLog {
    /// A log keeping one sample per `every`.
    pub fn new(every: Duration) -> Self {
        SampleLog {
            every,
            samples: Vec::new(),
            pending: None,
        }
    }

    /// Whether a sample at `at` would be kept (callers skip the work of
    /// counting otherwise).
    pub fn wants(&self, at: Duration) -> bool {
        self.samples
            .last()
            .is_none_or(|last| at >= last.at + self.every)
    }

    /// `bytes` received in all by `at`.
    pub fn record(&mut self, at: Duration, bytes: u64) {
        let sample = Sample { at, bytes };
        match self.samples.last() {
            Some(last) if at < last.at + self.every => self.pending = Some(sample),
            _ => {
                self.samples.push(sample);
                self.pending = None;
            }
        }
    }

    /// The samples, the latest included.
    pub fn finish(mut self) -> Vec<Sample> {
        self.samples.extend(self.pending);
        self.samples
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// A transfer at `rate` bytes/s after a ramp: `burst` bytes at once,
    /// then nothing for `stall`, then steady.
    fn transfer(rate: u64, burst: u64, stall: Duration, total: Duration) -> Vec<Sample> {
        let mut samples = vec![Sample {
            at: Duration::ZERO,
            bytes: burst,
        }];
        let mut at = stall;
        while at <= total {
            let steady = (at - stall).as_secs_f64() * rate as f64;
            samples.push(Sample {
                at,
                bytes: burst + steady as u64,
            });
            at += 10 * MS;
        }
        samples
    }

    #[test]
    fn the_warm_up_is_not_counted() {
        // 12.5 MB/s (100 Mbit/s) after a 1 MB burst and a 200 ms stall.
        let samples = transfer(12_500_000, 1_000_000, 200 * MS, 3_000 * MS);
        let estimate = capacity(&samples, 500 * MS).unwrap();
        let error = (estimate.bps as f64 - 100e6).abs() / 100e6;
        assert!(error < 0.001, "{estimate:?}");
        // Counted from the first byte, the burst and the stall distort it.
        assert!(
            estimate.raw_bps.abs_diff(100_000_000) > 1_000_000,
            "{estimate:?}"
        );
        assert_eq!(estimate.over, 2_500 * MS);
    }

    #[test]
    fn a_transfer_ending_in_the_warm_up_measures_nothing() {
        let samples = transfer(1_000_000, 0, Duration::ZERO, 400 * MS);
        assert_eq!(capacity(&samples, 500 * MS), None);
        assert_eq!(capacity(&[], Duration::ZERO), None);
        // A single sample past the warm-up spans no time.
        let one = [Sample {
            at: 600 * MS,
            bytes: 10,
        }];
        assert_eq!(capacity(&one, 500 * MS), None);
    }

    #[test]
    fn the_median_is_the_lower_middle() {
        assert_eq!(median_rtt_micros(&[]), None);
        assert_eq!(median_rtt_micros(&[3 * MS, MS, 2 * MS]), Some(2_000));
        assert_eq!(
            median_rtt_micros(&[4 * MS, MS, 3 * MS, 2 * MS]),
            Some(2_000)
        );
        assert_eq!(
            median_rtt_micros(&[Duration::from_secs(100_000)]),
            Some(u32::MAX)
        );
    }

    #[test]
    fn the_log_keeps_one_sample_per_period_and_the_last() {
        let mut log = SampleLog::new(10 * MS);
        for i in 0..100u32 {
            log.record(i * MS, u64::from(i) * 1_000);
        }
        let samples = log.finish();
        assert_eq!(samples.len(), 11);
        assert_eq!(
            samples[1],
            Sample {
                at: 10 * MS,
                bytes: 10_000
            }
        );
        assert_eq!(
            samples[10],
            Sample {
                at: 99 * MS,
                bytes: 99_000
            }
        );
    }
}
