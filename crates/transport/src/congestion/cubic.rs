//! Cubic (RFC 9438) whose slow start ends on delay, not only on loss:
//! HyStart++ (RFC 9406). openrelay's default controller, behind
//! [`super::LossTolerance`].
//!
//! Why not quinn's Cubic: it leaves slow start only on loss. On a path with
//! a drop-tail queue the window doubles until the queue overflows, and keeps
//! doubling for the round trip the losses take to be noticed, so a whole
//! round's worth of packets can be lost at once; with a deep queue (the
//! benchmark's is one bandwidth-delay product) the first loss comes at
//! several times the path's product. HyStart++ watches each round's minimum
//! RTT and slows down when the queue starts to build. Measured on the
//! benchmark's realistic path (eight 12 s runs each, `docs/BENCHMARKS.md`):
//! 0.99× direct TCP's goodput (median) against 0.98× with quinn's Cubic,
//! and a quarter fewer lost packets.
//!
//! The window's growth is otherwise RFC 9438's: the cubic function from the
//! last reduction, the Reno-friendly estimate, fast convergence, and one
//! reduction per round trip (RFC 9002 §7.3.2).

use std::any::Any;
use std::time::{Duration, Instant};

use quinn::congestion::{Controller, ControllerMetrics};
use quinn_proto::RttEstimator;

/// RFC 9438 §4.6: multiplicative decrease factor.
const BETA: f64 = 0.7;
/// RFC 9438 §5.1: the cubic function's aggressiveness (segments/s³).
const C: f64 = 0.4;
/// RFC 9438 §4.3: additive increase per RTT of the Reno-friendly estimate
/// until it reaches the window before the last reduction.
const ALPHA: f64 = 3.0 * (1.0 - BETA) / (1.0 + BETA);

/// RFC 9406 §4.3 constants.
const MIN_RTT_THRESH: Duration = Duration::from_millis(4);
const MAX_RTT_THRESH: Duration = Duration::from_millis(16);
const MIN_RTT_DIVISOR: u32 = 8;
const N_RTT_SAMPLE: u32 = 8;
/// In Conservative Slow Start the window grows by a quarter of what is
/// acknowledged.
pub const CSS_GROWTH_DIVISOR: u64 = 4;
/// Rounds of Conservative Slow Start before congestion avoidance.
pub const CSS_ROUNDS: u32 = 5;

/// Where HyStart++ is (RFC 9406 §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Standard slow start: the window grows by what is acknowledged.
    SlowStart,
    /// Conservative Slow Start: the round's minimum RTT rose above the
    /// previous one's by the threshold; growth is quartered for
    /// [`CSS_ROUNDS`] rounds unless the RTT falls back (a false alarm).
    Conservative {
        /// The previous round's minimum RTT, which a fall below ends the alarm.
        baseline: Duration,
        /// Rounds of Conservative Slow Start so far.
        rounds: u32,
    },
    /// Slow start is over (by delay or by loss).
    Done,
}

/// HyStart++'s state (RFC 9406 §4.2), a pure state machine: rounds are
/// delimited by packet numbers, and each batch of acknowledgements gives
/// one RTT sample (the newest packet acknowledged, which waited least for
/// the ACK).
#[derive(Debug, Clone)]
pub struct HyStart {
    phase: Phase,
    /// Largest packet number sent so far.
    largest_sent: Option<u64>,
    /// The round ends when this packet number is acknowledged.
    window_end: Option<u64>,
    last_round_min: Option<Duration>,
    current_round_min: Option<Duration>,
    samples: u32,
}

/// What a round boundary or a sample tells the controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Keep going.
    Continue,
    /// Enter congestion avoidance at the current window (RFC 9406 §4.2:
    /// "enter congestion avoidance by setting the ssthresh to the current
    /// cwnd").
    EnterCongestionAvoidance,
}

impl Default for HyStart {
    fn default() -> Self {
        Self {
            phase: Phase::SlowStart,
            largest_sent: None,
            window_end: None,
            last_round_min: None,
            current_round_min: None,
            samples: 0,
        }
    }
}

impl HyStart {
    /// Where slow start is now.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The divisor of window growth in slow start.
    pub fn growth_divisor(&self) -> u64 {
        match self.phase {
            Phase::Conservative { .. } => CSS_GROWTH_DIVISOR,
            Phase::SlowStart | Phase::Done => 1,
        }
    }

    /// A packet left: the round ends when it is acknowledged.
    pub fn on_sent(&mut self, packet_number: u64) {
        self.largest_sent = Some(
            self.largest_sent
                .map_or(packet_number, |p| p.max(packet_number)),
        );
        if self.window_end.is_none() {
            self.window_end = Some(packet_number);
        }
    }

    /// Slow start ended by loss: HyStart++ is no longer consulted.
    pub fn finish(&mut self) {
        self.phase = Phase::Done;
    }

    /// One batch of acknowledgements: its RTT sample, then the largest
    /// packet number it acknowledged (which may end the round).
    pub fn on_ack_batch(&mut self, rtt: Option<Duration>, largest_acked: Option<u64>) -> Verdict {
        if self.phase == Phase::Done {
            return Verdict::Continue;
        }
        if let Some(rtt) = rtt {
            self.current_round_min = Some(self.current_round_min.map_or(rtt, |m| m.min(rtt)));
            self.samples += 1;
            self.judge_sample();
        }
        match (largest_acked, self.window_end) {
            (Some(acked), Some(end)) if acked >= end => self.end_round(),
            _ => Verdict::Continue,
        }
    }

    /// RFC 9406 §4.2, for each arriving ACK in slow start and in CSS.
    fn judge_sample(&mut self) {
        if self.samples < N_RTT_SAMPLE {
            return;
        }
        let (Some(current), Some(last)) = (self.current_round_min, self.last_round_min) else {
            return;
        };
        match self.phase {
            Phase::SlowStart => {
                let threshold = (last / MIN_RTT_DIVISOR).clamp(MIN_RTT_THRESH, MAX_RTT_THRESH);
                if current >= last + threshold {
                    self.phase = Phase::Conservative {
                        baseline: current,
                        rounds: 0,
                    };
                }
            }
            // The RTT fell back below the baseline: the increase was a
            // fluctuation, resume slow start.
            Phase::Conservative { baseline, .. } if current < baseline => {
                self.phase = Phase::SlowStart;
            }
            Phase::Conservative { .. } | Phase::Done => {}
        }
    }

    fn end_round(&mut self) -> Verdict {
        self.last_round_min = self.current_round_min.take();
        self.samples = 0;
        self.window_end = self.largest_sent.map(|p| p + 1);
        if let Phase::Conservative { baseline, rounds } = self.phase {
            if rounds + 1 >= CSS_ROUNDS {
                self.phase = Phase::Done;
                return Verdict::EnterCongestionAvoidance;
            }
            self.phase = Phase::Conservative {
                baseline,
                rounds: rounds + 1,
            };
        }
        Verdict::Continue
    }
}

/// RFC 9438 Cubic with HyStart++ slow start.
#[derive(Debug, Clone)]
pub struct Cubic {
    mtu: u64,
    window: u64,
    ssthresh: u64,
    /// Window before the last reduction (`W_max`); None until the first
    /// congestion event or delay-based exit.
    w_max: Option<f64>,
    /// `cwnd_prior`: the window just before the last reduction.
    window_prior: f64,
    /// Start of the current congestion avoidance stage, its `K` (seconds)
    /// and the Reno-friendly estimate `W_est` (bytes).
    epoch: Option<(Instant, f64)>,
    w_est: f64,
    /// Packets sent before this are in the current recovery period (RFC
    /// 9002 §7.3.2): their loss or acknowledgement does not change the window.
    recovery_start: Option<Instant>,
    hystart: HyStart,
    /// The newest acknowledged packet's RTT in the current batch.
    batch_rtt: Option<Duration>,
}

impl Cubic {
    /// A controller for a path of `mtu` bytes, in slow start with the
    /// RFC 9002 §7.2 initial window.
    pub fn new(mtu: u16) -> Self {
        let mtu = u64::from(mtu);
        Self {
            mtu,
            window: super::initial_window(mtu),
            ssthresh: u64::MAX,
            w_max: None,
            window_prior: 0.0,
            epoch: None,
            w_est: 0.0,
            recovery_start: None,
            hystart: HyStart::default(),
            batch_rtt: None,
        }
    }

    /// RFC 9002 §7.2 `kMinimumWindow`.
    fn minimum_window(&self) -> u64 {
        2 * self.mtu
    }

    /// The HyStart++ state, for statistics and tests.
    pub fn hystart(&self) -> &HyStart {
        &self.hystart
    }

    /// The slow-start threshold in bytes (`u64::MAX` before the first loss).
    pub fn ssthresh(&self) -> u64 {
        self.ssthresh
    }

    fn in_recovery(&self, sent: Instant) -> bool {
        self.recovery_start.is_some_and(|start| sent <= start)
    }

    /// RFC 9438 §4.2 `W_cubic(t)`, in bytes.
    fn w_cubic(&self, t: f64, k: f64, w_max: f64) -> f64 {
        let mtu = self.mtu as f64;
        (C * (t - k).powi(3) + w_max / mtu) * mtu
    }

    /// One acknowledged packet; `smoothed_rtt` is the connection's (RFC 9002 §5.3).
    pub fn on_acked(
        &mut self,
        now: Instant,
        sent: Instant,
        bytes: u64,
        app_limited: bool,
        smoothed_rtt: Duration,
    ) {
        let sample = now.saturating_duration_since(sent);
        self.batch_rtt = Some(self.batch_rtt.map_or(sample, |r| r.min(sample)));
        // RFC 9438 §4.8 and RFC 9002 §7.8: no growth while the sender
        // does not fill the window, or during recovery.
        if app_limited || self.in_recovery(sent) {
            return;
        }
        if self.window < self.ssthresh {
            self.window += bytes / self.hystart.growth_divisor();
        } else {
            self.avoid_congestion(now, bytes, smoothed_rtt);
        }
    }

    /// The end of a batch of acknowledgements, up to `largest_acked`.
    pub fn on_ack_batch_end(&mut self, largest_acked: Option<u64>) {
        let rtt = self.batch_rtt.take();
        if self.window >= self.ssthresh {
            return;
        }
        let before = self.hystart.phase();
        let verdict = self.hystart.on_ack_batch(rtt, largest_acked);
        if verdict == Verdict::EnterCongestionAvoidance {
            self.ssthresh = self.window;
            self.window_prior = self.window as f64;
        }
        if self.hystart.phase() != before {
            tracing::debug!(window = self.window, phase = ?self.hystart.phase(), "slow start");
        }
    }

    /// Congestion avoidance for `bytes` newly acknowledged (RFC 9438 §4.2–4.5).
    fn avoid_congestion(&mut self, now: Instant, bytes: u64, rtt: Duration) {
        let mtu = self.mtu as f64;
        let window = self.window as f64;
        let (epoch_start, k) = match self.epoch {
            Some(epoch) => epoch,
            None => {
                // A new stage. Without a reduction yet (HyStart++ ended
                // slow start), W_max is the window now and K is 0 (§4.10).
                let w_max = *self.w_max.get_or_insert(window);
                self.w_est = window;
                // §4.2: K = ∛((W_max − cwnd_epoch) / C), in segments.
                let epoch = (now, ((w_max - window) / mtu / C).cbrt());
                self.epoch = Some(epoch);
                epoch
            }
        };
        let w_max = self.w_max.unwrap_or(window);
        let t = now.saturating_duration_since(epoch_start).as_secs_f64();
        // §4.3: the Reno-friendly estimate, α per RTT until it passes the
        // window before the last reduction, then one segment per RTT.
        let alpha = if self.w_est >= self.window_prior {
            1.0
        } else {
            ALPHA
        };
        self.w_est += alpha * bytes as f64 / window * mtu;
        let next = if self.w_cubic(t, k, w_max) < self.w_est {
            self.w_est
        } else {
            // §4.4–4.5: towards W_cubic one RTT ahead, at most 1.5× the window.
            let target = self
                .w_cubic(t + rtt.as_secs_f64(), k, w_max)
                .clamp(window, 1.5 * window);
            window + (target - window) / window * bytes as f64
        };
        self.window = (next as u64).max(self.window);
    }
}

impl Controller for Cubic {
    fn on_sent(&mut self, _now: Instant, _bytes: u64, last_packet_number: u64) {
        self.hystart.on_sent(last_packet_number);
    }

    fn on_ack(
        &mut self,
        now: Instant,
        sent: Instant,
        bytes: u64,
        app_limited: bool,
        rtt: &RttEstimator,
    ) {
        self.on_acked(now, sent, bytes, app_limited, rtt.get());
    }

    fn on_end_acks(
        &mut self,
        _now: Instant,
        _in_flight: u64,
        _app_limited: bool,
        largest_packet_num_acked: Option<u64>,
    ) {
        self.on_ack_batch_end(largest_packet_num_acked);
    }
    fn on_congestion_event(
        &mut self,
        now: Instant,
        sent: Instant,
        is_persistent_congestion: bool,
        _lost_bytes: u64,
    ) {
        if self.in_recovery(sent) {
            return;
        }
        self.recovery_start = Some(now);
        tracing::debug!(
            window = self.window,
            persistent = is_persistent_congestion,
            phase = ?self.hystart.phase(),
            "congestion"
        );
        self.hystart.finish();
        self.epoch = None;
        let window = self.window as f64;
        // §4.7 fast convergence: a window below the last W_max means a new
        // flow is taking its share; release some more.
        self.w_max = Some(match self.w_max {
            Some(w_max) if window < w_max => window * (1.0 + BETA) / 2.0,
            _ => window,
        });
        self.window_prior = window;
        self.ssthresh = ((window * BETA) as u64).max(self.minimum_window());
        self.window = self.ssthresh;
        if is_persistent_congestion {
            // RFC 9002 §7.6.2: back to the minimum window.
            self.window = self.minimum_window();
        }
    }

    fn on_mtu_update(&mut self, new_mtu: u16) {
        self.mtu = u64::from(new_mtu);
        self.window = self.window.max(self.minimum_window());
    }

    fn window(&self) -> u64 {
        self.window
    }

    fn metrics(&self) -> ControllerMetrics {
        let mut metrics = ControllerMetrics::default();
        metrics.congestion_window = self.window;
        metrics.ssthresh = Some(self.ssthresh);
        metrics
    }

    fn clone_box(&self) -> Box<dyn Controller> {
        Box::new(self.clone())
    }

    fn initial_window(&self) -> u64 {
        super::initial_window(self.mtu)
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

impl super::FromMtu for Cubic {
    fn from_mtu(mtu: u16) -> Self {
        Cubic::new(mtu)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MTU: u16 = 1200;
    const PACKET: u64 = MTU as u64;

    /// A sender that always fills its window, on a path that delivers
    /// each round's window after `rtt(round)`: one ACK per ten packets, the
    /// newest packet acknowledged at the round's end.
    struct Path {
        cc: Cubic,
        start: Instant,
        now: Instant,
        next_packet: u64,
    }

    impl Path {
        fn new() -> Self {
            let start = Instant::now();
            Self {
                cc: Cubic::new(MTU),
                start,
                now: start,
                next_packet: 0,
            }
        }

        /// One round: the window is sent at once, then acknowledged after
        /// `rtt`, in ACKs of ten packets.
        fn round(&mut self, rtt: Duration) {
            let sent_at = self.now;
            let packets = (self.cc.window() / PACKET).max(1);
            let first = self.next_packet;
            for _ in 0..packets {
                self.cc.on_sent(sent_at, PACKET, self.next_packet);
                self.next_packet += 1;
            }
            self.now += rtt;
            let mut acked = first;
            while acked < self.next_packet {
                let batch_end = (acked + 10).min(self.next_packet);
                for _ in acked..batch_end {
                    self.cc.on_acked(self.now, sent_at, PACKET, false, rtt);
                }
                self.cc.on_ack_batch_end(Some(batch_end - 1));
                acked = batch_end;
            }
        }

        fn elapsed(&self) -> Duration {
            self.now - self.start
        }
    }

    const RTT: Duration = Duration::from_millis(25);

    #[test]
    fn slow_start_doubles_each_round_while_the_rtt_holds() {
        let mut path = Path::new();
        assert_eq!(path.cc.window(), 10 * PACKET);
        for round in 1..=8 {
            path.round(RTT);
            assert_eq!(path.cc.window(), (10 * PACKET) << round);
        }
        assert_eq!(path.cc.hystart().phase(), Phase::SlowStart);
    }

    #[test]
    fn a_rising_rtt_ends_slow_start_without_a_loss() {
        let mut path = Path::new();
        for _ in 0..6 {
            path.round(RTT);
        }
        // The queue builds: the next round's minimum RTT is 5 ms higher
        // (above the 4 ms threshold for a 25 ms path).
        let before = path.cc.window();
        path.round(RTT + Duration::from_millis(5));
        assert!(matches!(
            path.cc.hystart().phase(),
            Phase::Conservative { .. }
        ));
        // Growth in Conservative Slow Start is a quarter per round.
        let css_start = path.cc.window();
        assert!(css_start < 2 * before, "{before} then {css_start}");
        let mut window = css_start;
        for _ in 0..CSS_ROUNDS {
            path.round(RTT + Duration::from_millis(6));
            assert!(path.cc.window() <= window + window / 4 + PACKET);
            window = path.cc.window();
        }
        // Then congestion avoidance from the window reached, with no loss
        // (the rest of the last round's ACKs already grow it as Cubic).
        assert_eq!(path.cc.hystart().phase(), Phase::Done);
        let (ssthresh, window) = (path.cc.ssthresh(), path.cc.window());
        assert!((ssthresh..ssthresh + ssthresh / 100).contains(&window));
    }

    #[test]
    fn an_rtt_that_falls_back_resumes_slow_start() {
        let mut path = Path::new();
        for _ in 0..6 {
            path.round(RTT);
        }
        path.round(RTT + Duration::from_millis(5));
        assert!(matches!(
            path.cc.hystart().phase(),
            Phase::Conservative { .. }
        ));
        path.round(RTT);
        assert_eq!(path.cc.hystart().phase(), Phase::SlowStart);
        let window = path.cc.window();
        path.round(RTT);
        assert_eq!(path.cc.window(), 2 * window);
    }

    #[test]
    fn jitter_below_the_threshold_is_not_a_queue() {
        let mut path = Path::new();
        for round in 0..10u32 {
            // ±3 ms on a 25 ms path: below the 4 ms floor of the threshold.
            path.round(RTT + Duration::from_millis(3 * u64::from(round % 2)));
        }
        assert_eq!(path.cc.hystart().phase(), Phase::SlowStart);
    }

    #[test]
    fn congestion_cuts_to_seven_tenths_once_per_round() {
        let mut path = Path::new();
        for _ in 0..8 {
            path.round(RTT);
        }
        let window = path.cc.window();
        let sent = path.now - Duration::from_millis(1);
        path.cc.on_congestion_event(path.now, sent, false, PACKET);
        assert_eq!(path.cc.window(), window * 7 / 10);
        assert_eq!(path.cc.hystart().phase(), Phase::Done);
        // Another loss of a packet sent before the cut is the same event.
        path.cc.on_congestion_event(path.now, sent, false, PACKET);
        assert_eq!(path.cc.window(), window * 7 / 10);
        // Packets sent before the cut do not grow the window either.
        path.cc.on_acked(path.now, sent, PACKET, false, RTT);
        assert_eq!(path.cc.window(), window * 7 / 10);
    }

    #[test]
    fn after_a_cut_the_window_regains_its_maximum_after_k_seconds() {
        let mut path = Path::new();
        // 1 Gbit/s × 25 ms is about 2600 packets: slow start to ~4000.
        while path.cc.window() < 4000 * PACKET {
            path.round(RTT);
        }
        let w_max = path.cc.window() as f64;
        path.cc
            .on_congestion_event(path.now, path.now, false, PACKET);
        path.now += Duration::from_millis(1);
        // K = ∛(W_max (1 − β) / C) seconds, in segments (RFC 9438 §4.2).
        let k = (w_max / PACKET as f64 * (1.0 - BETA) / C).cbrt();
        let cut_at = path.elapsed();
        while (path.elapsed() - cut_at).as_secs_f64() < k - 1.0 {
            path.round(RTT);
        }
        // Concave: close to, but still below, W_max a second before K...
        let before_k = path.cc.window() as f64;
        assert!(
            (0.95 * w_max..w_max).contains(&before_k),
            "{before_k} vs {w_max}"
        );
        // ...and past it (convex probing) a few seconds after.
        while (path.elapsed() - cut_at).as_secs_f64() < k + 3.0 {
            path.round(RTT);
        }
        assert!(path.cc.window() as f64 > w_max);
    }

    #[test]
    fn small_windows_grow_at_least_like_reno() {
        // At a few packets, the cubic curve is flat for seconds; the
        // Reno-friendly estimate (§4.3) adds about half a segment per round.
        let mut path = Path::new();
        path.round(RTT);
        path.cc
            .on_congestion_event(path.now, path.now, false, PACKET);
        path.now += Duration::from_millis(1);
        let start = path.cc.window();
        for _ in 0..40 {
            path.round(RTT);
        }
        let grown = (path.cc.window() - start) / PACKET;
        assert!(
            (15..=45).contains(&grown),
            "grew {grown} packets in 40 rounds"
        );
    }

    #[test]
    fn persistent_congestion_drops_to_the_minimum_window() {
        let mut path = Path::new();
        for _ in 0..5 {
            path.round(RTT);
        }
        path.cc
            .on_congestion_event(path.now, path.now, true, PACKET);
        assert_eq!(path.cc.window(), 2 * PACKET);
        // Slow start back up to the threshold.
        path.now += Duration::from_millis(1);
        path.round(RTT);
        assert_eq!(path.cc.window(), 4 * PACKET);
    }

    #[test]
    fn application_limited_acks_do_not_grow_the_window() {
        let mut cc = Cubic::new(MTU);
        let now = Instant::now();
        cc.on_acked(now + RTT, now, 100 * PACKET, true, RTT);
        assert_eq!(cc.window(), 10 * PACKET);
    }

    proptest! {
        #[test]
        fn the_window_stays_finite_and_at_least_the_minimum(
            events in proptest::collection::vec((0u8..4, 1u64..50, 1u64..80), 1..300)
        ) {
            let mut path = Path::new();
            for (kind, n, rtt_ms) in events {
                let rtt = Duration::from_millis(rtt_ms);
                match kind {
                    0 | 1 => path.round(rtt),
                    2 => {
                        let sent = path.now;
                        path.now += Duration::from_millis(n);
                        path.cc.on_congestion_event(path.now, sent, n % 7 == 0, n * PACKET);
                    }
                    _ => {
                        path.now += Duration::from_millis(n * 10);
                        path.cc.on_acked(path.now, path.now - rtt, n * PACKET, n % 2 == 0, rtt);
                        path.cc.on_ack_batch_end(Some(path.next_packet.saturating_sub(1)));
                    }
                }
                prop_assert!(path.cc.window() >= 2 * PACKET);
                prop_assert!(path.cc.window() < 1 << 40);
            }
        }
    }
}
