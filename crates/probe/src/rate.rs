//! From what a transfer received to a capacity, and from echo round trips
//! to a median: pure, so the numbers a verdict rests on are unit-tested.
//!
//! **Warm-up.** The first part of a transfer measures the ramp, not the
//! relay: QUIC's slow start (both the outer and the inner connection
//! double their windows per round trip), TCP's slow start between the
//! egress and the sink, and a full token bucket or queue along the way
//! that lets a burst through faster than the sustained rate. Counting
//! from the start under-reports a fast relay (the ramp) and over-reports a
//! shaped one (the burst). The capacity is therefore the rate over the
//! samples at or after `warmup` only; the raw rate over every sample is
//! kept beside it so the effect is visible (`examples/accuracy.rs` prints
//! both).

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
/// `warmup`; `None` if the samples after the warm-up span less than a
/// measurable time (the transfer stalled or ended early: nothing to report
/// as a capacity).
///
/// The rate is the least-squares slope of bytes over time, not the bytes
/// between two samples over their time: data arrives in bursts (a relay
/// forwards what it read in one go, a shaper releases a chunk at a time,
/// up to 64 KiB), so two end points can each be a burst off, which at 10
/// Mbit/s over 2 s is ±5 %; the slope through every sample is not moved by
/// where the end points fall.
pub fn capacity(samples: &[Sample], warmup: Duration) -> Option<RateEstimate> {
    let counted: Vec<Sample> = samples.iter().copied().filter(|s| s.at >= warmup).collect();
    let (first, last) = (counted.first()?, counted.last()?);
    let over = last.at.checked_sub(first.at)?;
    if over < Duration::from_millis(100) {
        return None;
    }
    Some(RateEstimate {
        bps: slope_bits_per_second(&counted),
        raw_bps: slope_bits_per_second(samples),
        bytes: last.bytes.saturating_sub(first.bytes),
        over,
    })
}

/// The least-squares slope of `samples`' bytes over time, in bits per
/// second (0 for fewer than two distinct times).
fn slope_bits_per_second(samples: &[Sample]) -> u64 {
    let n = samples.len() as f64;
    let mean_t = samples.iter().map(|s| s.at.as_secs_f64()).sum::<f64>() / n;
    let mean_b = samples.iter().map(|s| s.bytes as f64).sum::<f64>() / n;
    let (mut covariance, mut variance) = (0.0, 0.0);
    for s in samples {
        let dt = s.at.as_secs_f64() - mean_t;
        covariance += dt * (s.bytes as f64 - mean_b);
        variance += dt * dt;
    }
    if variance <= 0.0 {
        return 0;
    }
    // `as` saturates (and maps a negative slope, which cumulative counts
    // cannot have, to 0).
    (covariance / variance * 8.0).round() as u64
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

    /// A transfer at `rate` bytes/s after a ramp: `ramp` at a quarter of
    /// the rate (slow start), sampled every 10 ms until `total`.
    fn transfer(rate: u64, ramp: Duration, total: Duration) -> Vec<Sample> {
        let mut samples = Vec::new();
        let mut at = Duration::ZERO;
        while at <= total {
            let slow = at.min(ramp).as_secs_f64() * rate as f64 / 4.0;
            let steady = at.saturating_sub(ramp).as_secs_f64() * rate as f64;
            samples.push(Sample {
                at,
                bytes: (slow + steady) as u64,
            });
            at += 10 * MS;
        }
        samples
    }

    #[test]
    fn the_warm_up_is_not_counted() {
        // 12.5 MB/s (100 Mbit/s) after 500 ms of slow start.
        let samples = transfer(12_500_000, 500 * MS, 3_000 * MS);
        let estimate = capacity(&samples, 500 * MS).unwrap();
        let error = (estimate.bps as f64 - 100e6).abs() / 100e6;
        assert!(error < 0.001, "{estimate:?}");
        // Counted from the first byte, the ramp pulls it down.
        assert!(estimate.raw_bps < 95_000_000, "{estimate:?}");
        assert_eq!(estimate.over, 2_500 * MS);
    }

    /// 10 Mbit/s arriving in 64 KiB bursts: the end points fall anywhere
    /// in a burst's gap, the slope stays within 1 %.
    #[test]
    fn bursts_do_not_move_the_rate() {
        let rate = 1_250_000.0; // bytes/s
        let burst = 65_536u64;
        let gap = burst as f64 / rate; // 52 ms
        for offset_ms in [0u64, 13, 26, 39, 51] {
            let mut log = SampleLog::new(10 * MS);
            let mut at = 0u64; // ms
            while at <= 3_000 {
                let t = (at + offset_ms) as f64 / 1_000.0;
                let bursts = (t / gap).floor() as u64 + 1;
                log.record(Duration::from_millis(at), bursts * burst);
                at += 1;
            }
            let estimate = capacity(&log.finish(), Duration::from_secs(1)).unwrap();
            let error = (estimate.bps as f64 - 10e6).abs() / 10e6;
            assert!(error < 0.01, "offset {offset_ms} ms: {estimate:?}");
        }
    }

    #[test]
    fn a_transfer_ending_in_the_warm_up_measures_nothing() {
        let samples = transfer(1_000_000, Duration::ZERO, 400 * MS);
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
