//! A throughput limit on everything a relay forwards, for measurement tests
//! and benchmarks only (`[throttle_for_tests]`): a relay with a known
//! capacity, and the attack of a relay that throttles everyone but the
//! sources it believes are validators (`exempt_sources`). Never on by
//! default; the name says it weakens the relay.
//!
//! One [`TokenBucket`] per relay counts the payload bytes of every flow in
//! both directions: the egress's TCP pumps and UDP bridges, the ingress's
//! UDP bridges. Where the relay can wait (reading TCP, reading the bridge's
//! socket) it *shapes*: it takes the bytes, going into debt, and waits for
//! the debt to clear, so the sender sees a slower link (TCP backpressure, a
//! full socket buffer). Where it cannot (a datagram handed over by the QUIC
//! connection's router) it *polices*: a datagram finding the bucket a burst
//! or more in debt is dropped, as a rate-limited router drops it.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openrelay_config::ThrottleForTestsConfig;

/// How much time's worth of rate the bucket holds when full: enough for
/// several packets at the lowest accepted rate, short enough that a
/// measurement of a few seconds is dominated by the rate.
const BURST_TIME: Duration = Duration::from_millis(20);
/// The least the bucket holds when full: one GRO burst (64 KiB), so a
/// single receive never needs more than one refill.
const MIN_BURST_BYTES: f64 = 65_536.0;

/// A token bucket over bytes: `rate` bytes per second, holding at most
/// `burst` bytes; the level may go negative (debt) when bytes are taken
/// that were not there. Pure: every call takes the time.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    level: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket of `bytes_per_second`, at `now`.
    pub fn new(bytes_per_second: f64, now: Instant) -> Self {
        let burst = (bytes_per_second * BURST_TIME.as_secs_f64()).max(MIN_BURST_BYTES);
        TokenBucket {
            rate: bytes_per_second,
            burst,
            level: burst,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.level = (self.level + elapsed * self.rate).min(self.burst);
        self.last = self.last.max(now);
    }

    /// Takes `bytes` whatever the level (shaping: the caller then waits
    /// [`TokenBucket::debt_wait`]).
    pub fn take(&mut self, bytes: usize, now: Instant) {
        self.refill(now);
        self.level -= bytes as f64;
    }

    /// Takes `bytes` unless the bucket is a burst or more in debt
    /// (policing); whether it did. The burst of debt allowed is the
    /// policer's queue: the shaped direction of the same bucket keeps it
    /// near zero, and a policer that dropped at the first byte of debt
    /// would drop nearly every packet going the other way, ACKs included,
    /// and starve the shaped flow's congestion control (seen in the
    /// accuracy benchmark: throttled ingresses measured up to 30 % off).
    pub fn try_take(&mut self, bytes: usize, now: Instant) -> bool {
        self.refill(now);
        if self.level <= -self.burst {
            return false;
        }
        self.level -= bytes as f64;
        true
    }

    /// How long until the bucket is out of debt (zero if it is).
    pub fn debt_wait(&mut self, now: Instant) -> Duration {
        self.refill(now);
        if self.level >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.level / self.rate)
        }
    }
}

/// A relay's throughput limit for tests: the bucket every flow of a
/// non-exempt peer draws from.
#[derive(Debug)]
pub struct ThrottleForTests {
    bucket: Mutex<TokenBucket>,
    exempt_sources: Vec<IpAddr>,
}

impl ThrottleForTests {
    /// The limit `config` describes, starting full now.
    pub fn new(config: &ThrottleForTestsConfig) -> Self {
        ThrottleForTests {
            bucket: Mutex::new(TokenBucket::new(config.bps as f64 / 8.0, Instant::now())),
            exempt_sources: config.exempt_sources.clone(),
        }
    }

    /// The relay's limit if `config` asks for one (warning that it is on:
    /// a relay in service never should be).
    pub fn start(config: Option<&ThrottleForTestsConfig>) -> Option<Arc<Self>> {
        let config = config?;
        tracing::warn!(
            bps = config.bps,
            exempt_sources = config.exempt_sources.len(),
            "[throttle_for_tests] is on: everything this relay forwards is limited (tests only)"
        );
        Some(Arc::new(ThrottleForTests::new(config)))
    }

    /// Whether flows of the peer at `source` are limited (not exempt).
    pub fn applies_to(&self, source: IpAddr) -> bool {
        !self.exempt_sources.contains(&source.to_canonical())
    }

    fn with_bucket<T>(&self, f: impl FnOnce(&mut TokenBucket) -> T) -> T {
        // A poisoned lock only means another flow panicked mid-update of
        // plain numbers: they are still numbers.
        let mut bucket = self
            .bucket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut bucket)
    }

    /// Takes `bytes` and waits until the bucket is out of debt (shaping).
    pub async fn take(&self, bytes: usize) {
        let wait = self.with_bucket(|bucket| {
            let now = Instant::now();
            bucket.take(bytes, now);
            bucket.debt_wait(now)
        });
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Takes `bytes` without waiting, going into debt (bytes already
    /// received that the next [`ThrottleForTests::ready`] pays for).
    pub fn charge(&self, bytes: usize) {
        self.with_bucket(|bucket| bucket.take(bytes, Instant::now()));
    }

    /// Waits until the bucket is out of debt.
    pub async fn ready(&self) {
        let wait = self.with_bucket(|bucket| bucket.debt_wait(Instant::now()));
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Takes `bytes` unless the bucket is in debt (policing: the caller
    /// drops what it could not take).
    pub fn try_take(&self, bytes: usize) -> bool {
        self.with_bucket(|bucket| bucket.try_take(bytes, Instant::now()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_full_bucket_gives_its_burst_then_the_rate() {
        let start = Instant::now();
        // 10 MB/s: a 200 KB burst (20 ms).
        let mut bucket = TokenBucket::new(10_000_000.0, start);
        assert!(bucket.try_take(200_000, start));
        // Empty now; 1 ms later 10 KB more.
        assert_eq!(bucket.debt_wait(start), Duration::ZERO);
        bucket.take(10_000, start);
        assert_eq!(bucket.debt_wait(start), MS);
        assert_eq!(bucket.debt_wait(start + MS), Duration::ZERO);
        // It never holds more than the burst, however long it idles.
        bucket.refill(start + Duration::from_secs(60));
        assert_eq!(bucket.level, 200_000.0);
    }

    #[test]
    fn a_bucket_in_debt_polices_and_shapes() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(1_000_000.0, start); // 64 KiB burst
        bucket.take(65_536 + 131_072, start); // 131 ms of debt
        assert_eq!(bucket.debt_wait(start), Duration::from_micros(131_072));
        // Policed while a burst or more in debt (65.5 ms here)...
        assert!(!bucket.try_take(1, start));
        assert!(!bucket.try_take(1, start + 65 * MS));
        // ...then let through, into the debt the shaped side waits out.
        assert!(bucket.try_take(1_500, start + 66 * MS));
        assert!(!bucket.debt_wait(start + 66 * MS).is_zero());
    }

    /// Over a long run, what a shaping sender gets through is the rate
    /// plus one burst, whatever its chunk size.
    #[test]
    fn a_shaped_sender_gets_the_rate() {
        for chunk in [1_200, 16_384, 65_536] {
            let start = Instant::now();
            let mut bucket = TokenBucket::new(12_500_000.0, start); // 100 Mbit/s
            let mut now = start;
            let mut sent = 0usize;
            while now < start + Duration::from_secs(10) {
                bucket.take(chunk, now);
                sent += chunk;
                now += bucket.debt_wait(now);
            }
            let expected = 12_500_000.0 * 10.0 + bucket.burst;
            let error = (sent as f64 - expected).abs() / expected;
            assert!(error < 0.001, "chunk {chunk}: {sent} vs {expected}");
        }
    }

    #[test]
    fn exempt_sources_are_not_limited() {
        let throttle = ThrottleForTests::new(&ThrottleForTestsConfig {
            bps: 1_000_000,
            exempt_sources: vec![IpAddr::from([127, 0, 0, 2])],
        });
        assert!(!throttle.applies_to(IpAddr::from([127, 0, 0, 2])));
        // An IPv4-mapped IPv6 source is the same peer.
        assert!(!throttle.applies_to("::ffff:127.0.0.2".parse().unwrap()));
        assert!(throttle.applies_to(IpAddr::from([127, 0, 0, 1])));
    }
}
