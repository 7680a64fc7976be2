//! Congestion control for nested connections.
//!
//! Each connection's sender runs its own controller: for downloads the
//! ingress sends on the outer connection and the egress on the inner one;
//! for uploads the client sends on both. Inner packets ride in outer DATAGRAM
//! frames, which the outer connection never retransmits, so one lost outer
//! packet is a lost inner packet too and *both* controllers see it.
//!
//! Two rules follow, each a pure state machine here:
//!
//! * **Random loss is not congestion** ([`LossTolerance`]). A loss-based
//!   controller that halves on every loss runs a path with 0.1 % random loss
//!   (radio links, busy peering) at 0.02× its capacity, measured: both nested
//!   windows shrink on every lost packet. BBRv2 and BBRv3 treat loss below a
//!   rate threshold within a round as noise (draft-ietf-ccwg-bbr §2.6,
//!   `BBRLossThresh` = 2 %). Here every controller hears only losses above
//!   it; ECN marks and persistent congestion (RFC 9002 §7.6) always pass.
//!
//! * **Or the window follows the measured bandwidth-delay product**
//!   ([`DeliveryRateModel`], [`DeliveryRate`], the `delivery-rate` option).
//!   It keeps twice the highest recent delivery rate times the minimum RTT
//!   in flight, plus the recent ACK aggregation (BBR's `cwnd_gain` and
//!   `extra_acked`, draft-ietf-ccwg-bbr §5.6.4.2 and §5.5.9), which fills
//!   the path and a queue of the same size and lets start-up double each
//!   round; losses above the threshold cut it to 0.7× (BBRv2's `beta`),
//!   regained by a quarter each clean round.
//!
//! The default is Cubic (RFC 9438) with HyStart++ slow start (RFC 9406)
//! behind the threshold ([`Cubic`] in a [`LossTolerant`]): on the
//! benchmark's 1 Gbit/s path it keeps 1.00–1.03× of direct TCP's goodput
//! with 0.1 % random loss and 1.06× with 1 %, and where the hosts' CPUs
//! are the bottleneck (loopback) Cubic carries 2.4 Gbit/s where
//! `delivery-rate` carries 0.9–1.7: there the loaded round trip is many
//! times the minimum, and a window sized on the minimum leaves the sender
//! idle. Why openrelay has its own Cubic rather than quinn's: [`cubic`].
//!
//! Why not quinn's BBR: it is a port of BBRv1 marked experimental, and its
//! bandwidth sample is one acknowledged packet over the time since the
//! previous ACK. With ACKs every 10th packet (`ACK_ELICITING_THRESHOLD`,
//! which saves a third of the relays' CPU) that reads a tenth of the real
//! rate; once a window falls under ten packets, ACKs come only at the
//! maximum ACK delay, the estimate falls further and the window stays at
//! four packets (seen: a fresh path after failover stuck at 40 packets per
//! 250 ms). It also enters recovery on every loss and, held back by flow
//! control, never leaves start-up.
//!
//! Not done: ProbeRTT. The minimum RTT is the lowest ever seen on the
//! connection; a path whose delay grows for good keeps a window of one
//! bandwidth-delay product of the new path, full rate with no queue.

use std::any::Any;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quinn::congestion::{Controller, ControllerFactory, ControllerMetrics};
use quinn_proto::RttEstimator;

pub mod cubic;
pub use cubic::Cubic;

/// Loss rate above which losses count as congestion: BBRv2/v3's
/// `BBRLossThresh` (draft-ietf-ccwg-bbr §2.6).
pub const LOSS_THRESHOLD: f64 = 0.02;

/// The fewest bytes a loss rate is measured over (500 packets). Without a
/// floor, one loss among the first few packets of a connection would read
/// as a high rate. Small samples also mislead later: at 1 % random loss,
/// 100 packets hold three losses or more about one time in twelve, which
/// a small window would take for congestion again and again (measured: a
/// loss-based window collapsed to 13 Mbit/s at 1 % with a 100-packet
/// floor); over 500 packets, twice the mean is reached about one time in
/// seventy.
pub const MIN_MEASURED_BYTES: u64 = 500 * 1200;

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

/// A connection's round-trip times, as quinn's `RttEstimator` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundTrip {
    /// The lowest seen: the path's propagation delay.
    pub min: Duration,
    /// The smoothed one (RFC 9002 §5.3): with queues and busy hosts.
    pub smoothed: Duration,
}

impl From<Duration> for RoundTrip {
    /// A path whose round trip never varies.
    fn from(rtt: Duration) -> Self {
        Self {
            min: rtt,
            smoothed: rtt,
        }
    }
}

impl From<&RttEstimator> for RoundTrip {
    fn from(rtt: &RttEstimator) -> Self {
        Self {
            min: rtt.min(),
            smoothed: rtt.get(),
        }
    }
}

/// Estimates the path's bandwidth-delay product from what the peer
/// acknowledges: the highest delivery rate of the last [`BANDWIDTH_ROUNDS`]
/// rounds times the minimum RTT. A round lasts at least one smoothed RTT
/// (so the filters span ten real round trips even where busy hosts make
/// them far longer than the minimum); its rate is the bytes acknowledged
/// in it over its length. A round in
/// which the sender was application-limited only counts if it raises the
/// maximum (it shows what the path can do, never what it cannot), so an
/// idle connection keeps its estimate.
///
/// It also measures ACK aggregation (draft-ietf-ccwg-bbr §5.5.9): how far
/// acknowledgements run ahead of the estimated rate in bursts. Busy hosts
/// answer in batches (the relays here share two cores with everything
/// else), and a window of two products alone would leave the sender idle
/// between batches: on loopback, 1.0 instead of 2.6 Gbit/s.
#[derive(Debug, Clone, Default)]
pub struct DeliveryRateModel {
    round_start: Option<Instant>,
    round_delivered: u64,
    round_app_limited: bool,
    /// Bytes per second, newest last.
    rates: VecDeque<u64>,
    min_rtt: Duration,
    /// Start of the current aggregation interval and bytes acknowledged
    /// since.
    burst_start: Option<Instant>,
    burst_delivered: u64,
    /// Largest excess of acknowledged bytes over the estimated rate in the
    /// current round, and in the last [`BANDWIDTH_ROUNDS`] (newest last).
    round_extra: u64,
    extras: VecDeque<u64>,
}

impl DeliveryRateModel {
    /// `bytes` were acknowledged at `now`; `app_limited`: the sender had
    /// nothing more to send before they were; `rtt`: the connection's.
    /// Returns whether this acknowledgement ended a round.
    pub fn on_delivered(
        &mut self,
        now: Instant,
        bytes: u64,
        app_limited: bool,
        rtt: impl Into<RoundTrip>,
    ) -> bool {
        let rtt = rtt.into();
        self.min_rtt = rtt.min;
        let Some(start) = self.round_start else {
            // The first acknowledgement opens the first round; what it
            // acknowledges was delivered before the round began.
            self.round_start = Some(now);
            return false;
        };
        self.round_delivered = self.round_delivered.saturating_add(bytes);
        self.round_app_limited |= app_limited;
        self.measure_aggregation(now, bytes);
        let elapsed = now.saturating_duration_since(start);
        if rtt.smoothed.is_zero() || elapsed < rtt.smoothed.max(rtt.min) {
            return false;
        }
        let rate = (u128::from(self.round_delivered) * 1_000_000 / elapsed.as_micros().max(1))
            .min(u128::from(u64::MAX)) as u64;
        if !self.round_app_limited || rate > self.max_rate() {
            if self.rates.len() == BANDWIDTH_ROUNDS {
                self.rates.pop_front();
            }
            self.rates.push_back(rate);
        }
        if self.extras.len() == BANDWIDTH_ROUNDS {
            self.extras.pop_front();
        }
        self.extras.push_back(std::mem::take(&mut self.round_extra));
        self.round_start = Some(now);
        self.round_delivered = 0;
        self.round_app_limited = false;
        true
    }

    /// draft-ietf-ccwg-bbr §5.5.9 (`BBRUpdateACKAggregation`): an interval
    /// lasts while acknowledgements arrive faster than the estimated rate;
    /// its excess is what they ran ahead.
    fn measure_aggregation(&mut self, now: Instant, bytes: u64) {
        if self.rates.is_empty() {
            return; // no rate to run ahead of yet
        }
        let start = *self.burst_start.get_or_insert(now);
        let elapsed = now.saturating_duration_since(start).as_micros();
        let mut expected =
            (u128::from(self.max_rate()) * elapsed / 1_000_000).min(u128::from(u64::MAX)) as u64;
        if self.burst_delivered <= expected {
            self.burst_start = Some(now);
            self.burst_delivered = 0;
            expected = 0;
        }
        self.burst_delivered = self.burst_delivered.saturating_add(bytes);
        let extra = self.burst_delivered.saturating_sub(expected);
        self.round_extra = self.round_extra.max(extra);
    }

    /// The highest recent delivery rate, bytes per second (0: none yet).
    pub fn max_rate(&self) -> u64 {
        self.rates.iter().copied().max().unwrap_or(0)
    }

    /// [`INFLIGHT_GAIN`] bandwidth-delay products plus the recent ACK
    /// aggregation (at most as much again), never below `floor`; `None`
    /// until a round has been measured.
    pub fn window(&self, floor: u64) -> Option<u64> {
        if self.rates.is_empty() {
            return None;
        }
        let bdp = u128::from(self.max_rate()) * self.min_rtt.as_micros() / 1_000_000;
        let window = (bdp * u128::from(INFLIGHT_GAIN)).min(u128::from(u64::MAX)) as u64;
        let extra = self.extras.iter().copied().max().unwrap_or(0).min(window);
        Some(window.saturating_add(extra).max(floor))
    }
}

/// What a loss above the threshold leaves of the window (BBRv2's `beta`).
const LOSS_BETA: (u64, u64) = (7, 10);

/// What each round without congestion adds back to a cut window.
const REGAIN: (u64, u64) = (5, 4);

/// Packets in the smallest window. Peers acknowledge every 10th packet
/// (`ACK_ELICITING_THRESHOLD`): a window of fewer packets waits for the
/// maximum ACK delay every round, which would read as a low delivery rate
/// and shrink the window further. Two ACKs' worth keeps the ACK clock.
const MIN_WINDOW_PACKETS: u64 = 2 * (crate::endpoint::ACK_ELICITING_THRESHOLD as u64 + 1);

/// The `delivery-rate` congestion controller (see the module
/// documentation): a window of [`INFLIGHT_GAIN`] measured bandwidth-delay
/// products plus the recent ACK aggregation, cut by losses above
/// [`LOSS_THRESHOLD`].
#[derive(Debug, Clone)]
pub struct DeliveryRate {
    mtu: u64,
    initial_window: u64,
    model: DeliveryRateModel,
    tolerance: LossTolerance,
    /// Set by congestion: the window may not exceed it until regained.
    loss_cap: Option<u64>,
    /// When the window was last cut (at most once per round).
    last_cut: Option<Instant>,
    /// Whether a round ended since the last cut without another one.
    clean_round: bool,
}

impl DeliveryRate {
    /// A controller for a path whose current MTU is `mtu`.
    pub fn new(mtu: u16) -> Self {
        let mtu = u64::from(mtu);
        Self {
            mtu,
            initial_window: initial_window(mtu),
            model: DeliveryRateModel::default(),
            tolerance: LossTolerance::default(),
            loss_cap: None,
            last_cut: None,
            clean_round: false,
        }
    }

    fn floor(&self) -> u64 {
        MIN_WINDOW_PACKETS * self.mtu
    }

    fn model_window(&self) -> u64 {
        self.model
            .window(self.floor())
            .unwrap_or(self.initial_window)
    }

    fn cut(&mut self, now: Instant, to_floor: bool) {
        let recently = self
            .last_cut
            .is_some_and(|at| now.saturating_duration_since(at) < self.model.min_rtt);
        if recently && !to_floor {
            return;
        }
        let cap = if to_floor {
            self.floor()
        } else {
            self.window() * LOSS_BETA.0 / LOSS_BETA.1
        };
        self.loss_cap = Some(cap.max(self.floor()));
        self.last_cut = Some(now);
        self.clean_round = false;
    }

    fn regain(&mut self) {
        let Some(cap) = self.loss_cap else { return };
        // The first round ending after a cut may still carry the losses
        // that caused it; regain from the second on.
        if !self.clean_round {
            self.clean_round = true;
            return;
        }
        let cap = cap.saturating_mul(REGAIN.0) / REGAIN.1;
        self.loss_cap = (cap < self.model_window()).then_some(cap);
    }

    /// `bytes` were acknowledged at `now` (quinn's `on_ack`, which passes
    /// the RTT as a type only quinn can build).
    pub fn on_delivered(
        &mut self,
        now: Instant,
        bytes: u64,
        app_limited: bool,
        rtt: impl Into<RoundTrip>,
    ) {
        self.tolerance.on_delivered(bytes, self.window());
        if self.model.on_delivered(now, bytes, app_limited, rtt) {
            self.regain();
        }
    }
}

/// RFC 9002 §7.2: ten packets, at most 14720 bytes or two packets.
fn initial_window(mtu: u64) -> u64 {
    (10 * mtu).min(14_720.max(2 * mtu))
}

impl Controller for DeliveryRate {
    fn on_ack(
        &mut self,
        now: Instant,
        _sent: Instant,
        bytes: u64,
        app_limited: bool,
        rtt: &RttEstimator,
    ) {
        self.on_delivered(now, bytes, app_limited, rtt);
    }

    fn on_congestion_event(
        &mut self,
        now: Instant,
        _sent: Instant,
        is_persistent_congestion: bool,
        lost_bytes: u64,
    ) {
        if self
            .tolerance
            .on_loss(lost_bytes, is_persistent_congestion, self.window())
        {
            self.cut(now, is_persistent_congestion);
        }
    }

    fn on_mtu_update(&mut self, new_mtu: u16) {
        self.mtu = u64::from(new_mtu);
        self.initial_window = initial_window(self.mtu);
    }

    fn window(&self) -> u64 {
        let window = self.model_window();
        self.loss_cap.map_or(window, |cap| window.min(cap))
    }

    fn metrics(&self) -> ControllerMetrics {
        let mut metrics = ControllerMetrics::default();
        metrics.congestion_window = self.window();
        metrics.pacing_rate = Some(self.model.max_rate().saturating_mul(8));
        metrics
    }

    fn clone_box(&self) -> Box<dyn Controller> {
        Box::new(self.clone())
    }

    fn initial_window(&self) -> u64 {
        self.initial_window
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

impl FromMtu for DeliveryRate {
    fn from_mtu(mtu: u16) -> Self {
        DeliveryRate::new(mtu)
    }
}

/// A controller that starts from the path's MTU alone.
pub trait FromMtu: Controller + 'static {
    /// A new controller for a path whose datagrams are `mtu` bytes.
    fn from_mtu(mtu: u16) -> Self;
}

/// Builds controllers of type `C` ([`CubicConfig`], [`DeliveryRateConfig`]).
pub struct ConfigFor<C>(std::marker::PhantomData<fn() -> C>);

impl<C> Default for ConfigFor<C> {
    fn default() -> Self {
        Self(std::marker::PhantomData)
    }
}

impl<C> std::fmt::Debug for ConfigFor<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(std::any::type_name::<C>())
    }
}

impl<C: FromMtu> ControllerFactory for ConfigFor<C> {
    fn build(self: Arc<Self>, _now: Instant, current_mtu: u16) -> Box<dyn Controller> {
        Box::new(C::from_mtu(current_mtu))
    }
}

/// Builds [`Cubic`] controllers.
pub type CubicConfig = ConfigFor<Cubic>;
/// Builds [`DeliveryRate`] controllers.
pub type DeliveryRateConfig = ConfigFor<DeliveryRate>;

/// A congestion controller (Cubic, quinn's NewReno) that only hears about
/// losses [`LossTolerance`] judges to be congestion.
pub struct LossTolerant {
    inner: Box<dyn Controller>,
    tolerance: LossTolerance,
}

impl std::fmt::Debug for LossTolerant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LossTolerant")
            .field("window", &self.inner.window())
            .field("tolerance", &self.tolerance)
            .finish()
    }
}

impl Controller for LossTolerant {
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
        self.tolerance.on_delivered(bytes, self.inner.window());
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
            .on_loss(lost_bytes, is_persistent_congestion, self.inner.window())
        {
            self.inner
                .on_congestion_event(now, sent, is_persistent_congestion, lost_bytes);
        }
    }

    fn on_mtu_update(&mut self, new_mtu: u16) {
        self.inner.on_mtu_update(new_mtu);
    }

    fn window(&self) -> u64 {
        self.inner.window()
    }

    fn metrics(&self) -> ControllerMetrics {
        self.inner.metrics()
    }

    fn clone_box(&self) -> Box<dyn Controller> {
        Box::new(Self {
            inner: self.inner.clone_box(),
            tolerance: self.tolerance.clone(),
        })
    }

    fn initial_window(&self) -> u64 {
        self.inner.initial_window()
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

/// Builds [`LossTolerant`] controllers around those of another factory.
#[derive(Debug)]
pub struct LossTolerantConfig<F>(pub Arc<F>);

impl<F: ControllerFactory + Send + Sync + 'static> ControllerFactory for LossTolerantConfig<F> {
    fn build(self: Arc<Self>, now: Instant, current_mtu: u16) -> Box<dyn Controller> {
        Box::new(LossTolerant {
            inner: self.0.clone().build(now, current_mtu),
            tolerance: LossTolerance::default(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
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
        assert!(!tolerance.on_loss(8 * PACKET, false, WINDOW));
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
        let mut bound = DeliveryRateModel::default();
        let start = Instant::now();
        assert_eq!(bound.window(1), None);
        bound.on_delivered(start, PACKET, false, Duration::from_millis(20));
        bound.on_delivered(at(start, 10), PACKET, false, Duration::from_millis(20));
        assert_eq!(bound.window(1), None);
    }

    /// A model that measured 100 ms of 125 MB/s (1 Gbit/s) over a 20 ms
    /// minimum RTT, one ACK per millisecond; its start and RTT.
    fn model_at_a_gigabit() -> (DeliveryRateModel, Instant, Duration) {
        let mut bound = DeliveryRateModel::default();
        let start = Instant::now();
        let rtt = Duration::from_millis(20);
        bound.on_delivered(start, PACKET, false, rtt);
        for ms in 1..=100 {
            bound.on_delivered(at(start, ms), 125_000, false, rtt);
        }
        (bound, start, rtt)
    }

    #[test]
    fn bound_is_twice_the_measured_bandwidth_delay_product() {
        // 125 MB/s (1 Gbit/s) over a 20 ms minimum RTT: 2.5 MB product.
        let (bound, _, _) = model_at_a_gigabit();
        assert_eq!(bound.max_rate(), 125_000_000);
        // Plus one ACK's worth of aggregation: each ACK arrives in one piece.
        assert_eq!(bound.window(1), Some(5_000_000 + 125_000));
        // The floor wins over a small product.
        assert_eq!(bound.window(10_000_000), Some(10_000_000));
    }

    #[test]
    fn idle_and_app_limited_rounds_keep_the_estimate() {
        let (mut bound, start, rtt) = model_at_a_gigabit();
        // A long idle gap, then twenty rounds of a trickle, app-limited:
        // the rate is kept (only the aggregation allowance fades).
        for ms in (10_000..10_400).step_by(20) {
            bound.on_delivered(at(start, ms), PACKET, true, rtt);
        }
        assert_eq!(bound.max_rate(), 125_000_000);
        assert!(bound.window(1) >= Some(5_000_000));
    }

    #[test]
    fn a_slower_path_lowers_the_bound_within_the_filter_window() {
        let (mut bound, start, rtt) = model_at_a_gigabit();
        // Now a tenth of the rate, not application-limited, for 11 rounds.
        for ms in 101..=101 + 20 * BANDWIDTH_ROUNDS as u64 + 20 {
            bound.on_delivered(at(start, ms), 12_500, false, rtt);
        }
        assert_eq!(bound.max_rate(), 12_500_000);
    }

    #[test]
    fn start_up_may_double_each_round() {
        // Each round delivers, in ten ACKs, what the previous round's window
        // allowed: the next window is at least twice that (more while the
        // ACKs run ahead of the last round's rate).
        let mut bound = DeliveryRateModel::default();
        let start = Instant::now();
        let rtt = Duration::from_millis(10);
        bound.on_delivered(start, PACKET, false, rtt);
        let mut window = 12_000u64;
        for round in 0..8u64 {
            for ack in 1..=10 {
                bound.on_delivered(at(start, round * 10 + ack), window / 10, false, rtt);
            }
            let next = bound.window(12_000).unwrap_or(0);
            assert!(
                (2 * window..=3 * window).contains(&next),
                "{window} then {next}"
            );
            window = next;
        }
    }

    const MTU: u16 = 1200;

    /// Runs `rounds` rounds of a path of `rate` bytes/s and `rtt`, the
    /// sender always filling the window; returns the window after each.
    fn drive(
        cc: &mut DeliveryRate,
        start: Instant,
        rounds: u64,
        rate: u64,
        rtt: Duration,
    ) -> Vec<u64> {
        let mut windows = Vec::new();
        let bdp = rate * rtt.as_micros() as u64 / 1_000_000;
        for round in 0..rounds {
            // What the path delivers in a round, in ten ACKs: the window, up
            // to its capacity (the rest queues).
            let delivered = cc.window().min(bdp);
            for ack in 1..=10u32 {
                let now = start + rtt * round as u32 + rtt * ack / 10;
                cc.on_delivered(now, delivered / 10, false, rtt);
            }
            windows.push(cc.window());
        }
        windows
    }

    /// A controller after 20 rounds of a full 1 Gbit/s, 25 ms path; its
    /// start and RTT.
    fn full_gigabit_path() -> (DeliveryRate, Instant, Duration) {
        let mut cc = DeliveryRate::new(MTU);
        let start = Instant::now();
        let rtt = Duration::from_millis(25);
        cc.on_delivered(start, 0, false, rtt);
        drive(&mut cc, start, 20, 125_000_000, rtt);
        (cc, start, rtt)
    }

    #[test]
    fn start_up_doubles_each_round_until_the_path_is_full() {
        let mut cc = DeliveryRate::new(MTU);
        let start = Instant::now();
        let rtt = Duration::from_millis(25);
        assert_eq!(cc.window(), 12_000);
        cc.on_delivered(start, 0, false, rtt);
        let windows = drive(&mut cc, start, 20, 125_000_000, rtt);
        // 1 Gbit/s over 25 ms: 3.125 MB; the window settles at two, plus
        // one ACK's worth of aggregation.
        assert_eq!(windows[0], 24_000);
        assert!((48_000..=72_000).contains(&windows[1]), "{windows:?}");
        let last = *windows.last().unwrap();
        assert!(
            (6_250_000..=6_250_000 + 312_500).contains(&last),
            "{windows:?}"
        );
        let rounds_to_full = windows.iter().position(|w| *w >= 6_250_000).unwrap();
        assert!(rounds_to_full <= 10, "{windows:?}");
    }

    #[test]
    fn random_loss_leaves_the_window_alone() {
        let (mut cc, start, rtt) = full_gigabit_path();
        let full = cc.window();
        // One packet in a thousand lost, every round.
        for round in 20..40u32 {
            let now = start + rtt * round;
            for _ in 0..3 {
                cc.on_congestion_event(now, now, false, u64::from(MTU));
            }
            drive(&mut cc, now, 1, 125_000_000, rtt);
        }
        assert_eq!(cc.window(), full);
    }

    #[test]
    fn congestion_cuts_to_seven_tenths_once_per_round_then_regains() {
        let (mut cc, start, rtt) = full_gigabit_path();
        let full = cc.window();
        let now = start + rtt * 21;
        // A queue overflowing: a tenth of a round lost, in many events.
        for _ in 0..100 {
            cc.on_congestion_event(now, now, false, 3_125);
        }
        assert_eq!(cc.window(), full * 7 / 10);
        // Clean rounds bring it back.
        let windows = drive(&mut cc, now, 6, 125_000_000, rtt);
        assert_eq!(*windows.last().unwrap(), full, "{windows:?}");
    }

    #[test]
    fn persistent_congestion_drops_to_the_floor() {
        let (mut cc, start, _) = full_gigabit_path();
        cc.on_congestion_event(start, start, true, 100_000);
        assert_eq!(cc.window(), MIN_WINDOW_PACKETS * u64::from(MTU));
    }

    #[test]
    fn a_window_never_falls_below_two_acks_worth() {
        // A path slower than the floor: 100 kB/s over 10 ms is 1 kB.
        let mut cc = DeliveryRate::new(MTU);
        let start = Instant::now();
        let rtt = Duration::from_millis(10);
        cc.on_delivered(start, 0, false, rtt);
        let windows = drive(&mut cc, start, 50, 100_000, rtt);
        assert!(
            windows.iter().all(|w| *w >= 20 * u64::from(MTU)),
            "{windows:?}"
        );
    }

    proptest! {
        /// Whatever the acknowledgements and losses, the window stays
        /// between the floor and what the model allows, and nothing panics.
        #[test]
        fn window_stays_within_floor_and_model(
            events in prop::collection::vec((any::<bool>(), 0u64..1 << 30, 0u64..200, any::<bool>()), 0..300)
        ) {
            let mut cc = DeliveryRate::new(MTU);
            let start = Instant::now();
            let rtt = Duration::from_millis(20);
            let mut now = start;
            for (is_loss, bytes, advance_ms, flag) in events {
                now += Duration::from_millis(advance_ms);
                if is_loss {
                    cc.on_congestion_event(now, now, flag, bytes);
                } else {
                    cc.on_delivered(now, bytes, flag, rtt);
                }
                let window = cc.window();
                prop_assert!(window >= cc.floor().min(cc.initial_window));
                prop_assert!(window <= cc.model_window());
            }
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
