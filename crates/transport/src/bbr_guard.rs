//! Two rules quinn's BBR lacks, as a filter in front of it.
//!
//! quinn's BBR is a port of BBRv1 and marked experimental. Measured on the
//! realistic profile of `bench/run` (`docs/BENCHMARKS.md`), two of its
//! behaviours cost openrelay's nested connections most of their rate:
//!
//! * **Every loss is congestion.** It enters packet-conservation recovery on
//!   every loss event and, while there, caps its window at what was in
//!   flight when the loss was found. On a link with 0.1 % random loss a
//!   1 Gbit/s path loses a few packets every round trip, so it never leaves
//!   recovery (372 congestion events for 379 lost packets, about half the
//!   link). In openrelay the effect is doubled: inner packets ride in outer
//!   datagrams that are never retransmitted, so one lost outer packet is a
//!   loss for both the outer and the inner controller.
//!
//!   BBRv2 and BBRv3 treat loss below a rate threshold within a round as
//!   noise (draft-ietf-ccwg-bbr §2.6, `BBRLossThresh` = 2 %).
//!   [`LossTolerance`] applies that rule to the loss events quinn reports.
//!   ECN marks and persistent congestion (RFC 9002 §7.6) always pass: they
//!   are never random.
//!
//! * **Start-up that never ends.** It leaves start-up only after three
//!   rounds without bandwidth growth that were *not* application-limited,
//!   and quinn counts a sender held back by the peer's flow-control window
//!   as application-limited. A download held by its stream window therefore
//!   stays in start-up and its window grows by every acknowledged byte
//!   without bound (213 MB seen after 4 s at 1 Gbit/s); quinn paces at the
//!   window over the RTT, so it stops pacing at all, and once flow control
//!   opens (16 MiB stream windows) it overflows every queue on the path (a
//!   quarter of inner packets lost).
//!
//!   BBR's own model bounds what is in flight by the estimated
//!   bandwidth-delay product times a gain (draft-ietf-ccwg-bbr §5.6.4.2,
//!   `BBR.cwnd_gain` = 2). [`InflightBound`] measures the delivery rate
//!   itself, round by round, and applies that bound.
//!
//! [`Guarded`] wraps any quinn controller with both; the endpoint uses it
//! around BBR only (Cubic and NewReno are loss-based by design).

use std::any::Any;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quinn::congestion::{Controller, ControllerFactory, ControllerMetrics};
use quinn_proto::RttEstimator;

/// Loss rate above which losses count as congestion: BBRv2/v3's
/// `BBRLossThresh` (draft-ietf-ccwg-bbr §2.6).
pub const LOSS_THRESHOLD: f64 = 0.02;

/// The fewest bytes a loss rate is measured over. Without a floor, one loss
/// among the first few packets of a connection would read as a high rate:
/// with it, a single lost packet early on is noise, a handful is not.
pub const MIN_MEASURED_BYTES: u64 = 100 * 1200;

/// Bytes delivered and lost over one measurement round.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Tally {
    delivered: u64,
    lost: u64,
}

impl Tally {
    fn total(&self) -> u64 {
        self.delivered.saturating_add(self.lost)
    }
}

/// Decides, loss event by loss event, whether a connection is losing packets
/// to congestion. The rate is measured over the current round and the one
/// before it, a round being a congestion window's worth of bytes delivered
/// or lost, so a loss is judged against about one to two round trips of
/// traffic.
#[derive(Debug, Clone, Default)]
pub struct LossTolerance {
    current: Tally,
    previous: Tally,
}

impl LossTolerance {
    /// `bytes` were acknowledged; `window` is the controller's current
    /// congestion window, the length of a round.
    pub fn on_delivered(&mut self, bytes: u64, window: u64) {
        self.current.delivered = self.current.delivered.saturating_add(bytes);
        self.end_round_if_full(window);
    }

    /// A loss event of `lost_bytes` (0 for an ECN mark). Returns whether the
    /// controller should react to it as congestion.
    pub fn on_loss(&mut self, lost_bytes: u64, persistent: bool, window: u64) -> bool {
        if lost_bytes == 0 || persistent {
            return true;
        }
        self.current.lost = self.current.lost.saturating_add(lost_bytes);
        let lost = self.previous.lost.saturating_add(self.current.lost);
        let measured = self
            .previous
            .total()
            .saturating_add(self.current.total())
            .max(MIN_MEASURED_BYTES);
        let congested = lost as f64 > LOSS_THRESHOLD * measured as f64;
        self.end_round_if_full(window);
        congested
    }

    fn end_round_if_full(&mut self, window: u64) {
        if self.current.total() >= window.max(MIN_MEASURED_BYTES) {
            self.previous = std::mem::take(&mut self.current);
        }
    }
}

/// Most bytes in flight, as a multiple of the estimated bandwidth-delay
/// product: BBR's `cwnd_gain` (draft-ietf-ccwg-bbr §2.6). Two products fill
/// the path and a queue of the same size, and in start-up it lets the
/// window double each round, as slow start does.
pub const INFLIGHT_GAIN: u64 = 2;

/// Delivery-rate samples (one per round) the bandwidth estimate is the
/// maximum of: BBR's `MaxBwFilterLen`-sized window of rounds.
pub const BANDWIDTH_ROUNDS: usize = 10;

/// Bounds bytes in flight to [`INFLIGHT_GAIN`] times the bandwidth-delay
/// product: the highest delivery rate of the last [`BANDWIDTH_ROUNDS`]
/// rounds times the minimum RTT. A round lasts one minimum RTT; its rate is
/// the bytes acknowledged in it over its length. A round in which the
/// sender was application-limited only counts if it raises the maximum
/// (it shows what the path can do, never what it cannot), so an idle
/// connection keeps its estimate.
#[derive(Debug, Clone, Default)]
pub struct InflightBound {
    round_start: Option<Instant>,
    round_delivered: u64,
    round_app_limited: bool,
    /// Bytes per second, newest last.
    rates: VecDeque<u64>,
    min_rtt: Duration,
}

impl InflightBound {
    /// `bytes` were acknowledged at `now`; `app_limited`: the sender had
    /// nothing more to send before they were; `min_rtt`: the connection's.
    pub fn on_delivered(&mut self, now: Instant, bytes: u64, app_limited: bool, min_rtt: Duration) {
        self.min_rtt = min_rtt;
        let Some(start) = self.round_start else {
            // The first acknowledgement opens the first round; what it
            // acknowledges was delivered before the round began.
            self.round_start = Some(now);
            return;
        };
        self.round_delivered = self.round_delivered.saturating_add(bytes);
        self.round_app_limited |= app_limited;
        let elapsed = now.saturating_duration_since(start);
        if min_rtt.is_zero() || elapsed < min_rtt {
            return;
        }
        let rate = (u128::from(self.round_delivered) * 1_000_000 / elapsed.as_micros().max(1))
            .min(u128::from(u64::MAX)) as u64;
        if !self.round_app_limited || rate > self.max_rate() {
            if self.rates.len() == BANDWIDTH_ROUNDS {
                self.rates.pop_front();
            }
            self.rates.push_back(rate);
        }
        self.round_start = Some(now);
        self.round_delivered = 0;
        self.round_app_limited = false;
    }

    /// The highest recent delivery rate, bytes per second (0: none yet).
    pub fn max_rate(&self) -> u64 {
        self.rates.iter().copied().max().unwrap_or(0)
    }

    /// The most bytes that should be in flight, never below `floor`; `None`
    /// until a round has been measured.
    pub fn bound(&self, floor: u64) -> Option<u64> {
        if self.rates.is_empty() {
            return None;
        }
        let bdp = u128::from(self.max_rate()) * self.min_rtt.as_micros() / 1_000_000;
        let bound = (bdp * u128::from(INFLIGHT_GAIN)).min(u128::from(u64::MAX)) as u64;
        Some(bound.max(floor))
    }
}

/// A quinn congestion controller behind [`LossTolerance`] and
/// [`InflightBound`].
pub struct Guarded {
    inner: Box<dyn Controller>,
    tolerance: LossTolerance,
    bound: InflightBound,
}

impl Guarded {
    /// Wraps `inner`.
    pub fn new(inner: Box<dyn Controller>) -> Self {
        Self {
            inner,
            tolerance: LossTolerance::default(),
            bound: InflightBound::default(),
        }
    }
}

impl std::fmt::Debug for Guarded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guarded")
            .field("inner_window", &self.inner.window())
            .field("tolerance", &self.tolerance)
            .field("bound", &self.bound)
            .finish()
    }
}

impl Controller for Guarded {
    fn on_sent(&mut self, now: Instant, bytes: u64, last_packet_number: u64) {
        self.inner.on_sent(now, bytes, last_packet_number);
    }

    fn on_ack(
        &mut self,
        now: Instant,
        sent: Instant,
        bytes: u64,
        app_limited: bool,
        rtt: &RttEstimator,
    ) {
        self.tolerance.on_delivered(bytes, self.window());
        self.bound.on_delivered(now, bytes, app_limited, rtt.min());
        self.inner.on_ack(now, sent, bytes, app_limited, rtt);
    }

    fn on_end_acks(
        &mut self,
        now: Instant,
        in_flight: u64,
        app_limited: bool,
        largest_packet_num_acked: Option<u64>,
    ) {
        self.inner
            .on_end_acks(now, in_flight, app_limited, largest_packet_num_acked);
    }

    fn on_congestion_event(
        &mut self,
        now: Instant,
        sent: Instant,
        is_persistent_congestion: bool,
        lost_bytes: u64,
    ) {
        if self
            .tolerance
            .on_loss(lost_bytes, is_persistent_congestion, self.window())
        {
            self.inner
                .on_congestion_event(now, sent, is_persistent_congestion, lost_bytes);
        }
    }

    fn on_mtu_update(&mut self, new_mtu: u16) {
        self.inner.on_mtu_update(new_mtu);
    }

    fn window(&self) -> u64 {
        let window = self.inner.window();
        match self.bound.bound(self.inner.initial_window()) {
            Some(bound) => window.min(bound),
            None => window,
        }
    }

    fn metrics(&self) -> ControllerMetrics {
        let mut metrics = self.inner.metrics();
        metrics.congestion_window = self.window();
        metrics
    }

    fn clone_box(&self) -> Box<dyn Controller> {
        Box::new(Self {
            inner: self.inner.clone_box(),
            tolerance: self.tolerance.clone(),
            bound: self.bound.clone(),
        })
    }

    fn initial_window(&self) -> u64 {
        self.inner.initial_window()
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

/// Builds [`Guarded`] controllers around those of another factory.
#[derive(Debug)]
pub struct GuardedFactory<F>(pub Arc<F>);

impl<F: ControllerFactory + Send + Sync + 'static> ControllerFactory for GuardedFactory<F> {
    fn build(self: Arc<Self>, now: Instant, current_mtu: u16) -> Box<dyn Controller> {
        Box::new(Guarded::new(self.0.clone().build(now, current_mtu)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PACKET: u64 = 1200;
    const WINDOW: u64 = 4000 * PACKET;

    /// Delivers `packets` packets one by one, losing every `loss_every`-th,
    /// and counts the loss events passed on.
    fn run(tolerance: &mut LossTolerance, packets: u64, loss_every: u64) -> usize {
        (1..=packets)
            .filter(|n| {
                if n % loss_every == 0 {
                    tolerance.on_loss(PACKET, false, WINDOW)
                } else {
                    tolerance.on_delivered(PACKET, WINDOW);
                    false
                }
            })
            .count()
    }

    #[test]
    fn random_loss_below_the_threshold_is_never_congestion() {
        // 0.1 % and 1 % loss over 100 000 packets.
        assert_eq!(run(&mut LossTolerance::default(), 100_000, 1000), 0);
        assert_eq!(run(&mut LossTolerance::default(), 100_000, 100), 0);
    }

    #[test]
    fn loss_above_the_threshold_is_congestion() {
        // 5 % loss: once the first rounds are measured, every loss counts.
        let mut tolerance = LossTolerance::default();
        run(&mut tolerance, 10_000, 20);
        assert_eq!(run(&mut tolerance, 10_000, 20), 500);
    }

    #[test]
    fn a_burst_at_a_full_queue_is_congestion() {
        let mut tolerance = LossTolerance::default();
        run(&mut tolerance, 20_000, 1000);
        // A round of 4000 packets that overflows by 10 %: past the first
        // 2 % or so, every loss passes.
        let burst = (0..400)
            .filter(|_| tolerance.on_loss(PACKET, false, WINDOW))
            .count();
        assert!(burst > 200, "only {burst} of 400 losses in a burst passed");
    }

    #[test]
    fn one_early_loss_is_noise_but_several_are_not() {
        let mut tolerance = LossTolerance::default();
        tolerance.on_delivered(5 * PACKET, WINDOW);
        assert!(!tolerance.on_loss(PACKET, false, WINDOW));
        assert!(tolerance.on_loss(3 * PACKET, false, WINDOW));
    }

    #[test]
    fn ecn_and_persistent_congestion_always_pass() {
        let mut tolerance = LossTolerance::default();
        run(&mut tolerance, 10_000, 10_000);
        assert!(tolerance.on_loss(0, false, WINDOW));
        assert!(tolerance.on_loss(PACKET, true, WINDOW));
    }

    #[test]
    fn old_loss_is_forgotten_after_two_rounds() {
        let mut tolerance = LossTolerance::default();
        run(&mut tolerance, 10_000, 10);
        // Two clean rounds later, a single loss is noise again.
        run(&mut tolerance, 2 * WINDOW / PACKET + 1, u64::MAX);
        assert!(!tolerance.on_loss(PACKET, false, WINDOW));
    }

    fn at(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    #[test]
    fn no_bound_until_a_round_is_measured() {
        let mut bound = InflightBound::default();
        let start = Instant::now();
        assert_eq!(bound.bound(1), None);
        bound.on_delivered(start, PACKET, false, Duration::from_millis(20));
        bound.on_delivered(at(start, 10), PACKET, false, Duration::from_millis(20));
        assert_eq!(bound.bound(1), None);
    }

    #[test]
    fn bound_is_twice_the_measured_bandwidth_delay_product() {
        // 125 MB/s (1 Gbit/s) over a 20 ms minimum RTT: 2.5 MB product.
        let mut bound = InflightBound::default();
        let start = Instant::now();
        let rtt = Duration::from_millis(20);
        bound.on_delivered(start, PACKET, false, rtt);
        for ms in 1..=100 {
            bound.on_delivered(at(start, ms), 125_000, false, rtt);
        }
        assert_eq!(bound.max_rate(), 125_000_000);
        assert_eq!(bound.bound(1), Some(5_000_000));
        // The floor wins over a small product.
        assert_eq!(bound.bound(10_000_000), Some(10_000_000));
    }

    #[test]
    fn idle_and_app_limited_rounds_keep_the_estimate() {
        let mut bound = InflightBound::default();
        let start = Instant::now();
        let rtt = Duration::from_millis(20);
        bound.on_delivered(start, PACKET, false, rtt);
        for ms in 1..=100 {
            bound.on_delivered(at(start, ms), 125_000, false, rtt);
        }
        let before = bound.bound(1);
        // A long idle gap, then twenty rounds of a trickle, app-limited.
        for ms in (10_000..10_400).step_by(20) {
            bound.on_delivered(at(start, ms), PACKET, true, rtt);
        }
        assert_eq!(bound.bound(1), before);
    }

    #[test]
    fn a_slower_path_lowers_the_bound_within_the_filter_window() {
        let mut bound = InflightBound::default();
        let start = Instant::now();
        let rtt = Duration::from_millis(20);
        bound.on_delivered(start, PACKET, false, rtt);
        for ms in 1..=100 {
            bound.on_delivered(at(start, ms), 125_000, false, rtt);
        }
        // Now a tenth of the rate, not application-limited, for 11 rounds.
        for ms in 101..=101 + 20 * BANDWIDTH_ROUNDS as u64 + 20 {
            bound.on_delivered(at(start, ms), 12_500, false, rtt);
        }
        assert_eq!(bound.max_rate(), 12_500_000);
    }

    #[test]
    fn start_up_may_double_each_round() {
        // Each round delivers what the previous round's bound allowed: the
        // bound after a round is twice what it delivered.
        let mut bound = InflightBound::default();
        let start = Instant::now();
        let rtt = Duration::from_millis(10);
        bound.on_delivered(start, PACKET, false, rtt);
        let mut window = 12_000u64;
        for round in 1..=8u64 {
            bound.on_delivered(at(start, round * 10), window, false, rtt);
            let next = bound.bound(12_000).unwrap_or(0);
            assert_eq!(next, 2 * window);
            window = next;
        }
    }

    proptest! {
        /// Whatever the sequence, a loss passes only when the measured rate
        /// is above the threshold, and nothing overflows or panics.
        #[test]
        fn passes_exactly_the_losses_above_threshold(
            events in prop::collection::vec((any::<bool>(), 0u64..1 << 40, any::<bool>(), 0u64..1 << 32), 0..300)
        ) {
            let mut tolerance = LossTolerance::default();
            for (is_loss, bytes, persistent, window) in events {
                if !is_loss {
                    tolerance.on_delivered(bytes, window);
                    continue;
                }
                let before = tolerance.clone();
                let passed = tolerance.on_loss(bytes, persistent, window);
                let lost = before.previous.lost + before.current.lost + bytes;
                let measured = (before.previous.total() + before.current.total() + bytes)
                    .max(MIN_MEASURED_BYTES);
                let expected = bytes == 0 || persistent || lost as f64 > LOSS_THRESHOLD * measured as f64;
                prop_assert_eq!(passed, expected);
            }
        }
    }
}
