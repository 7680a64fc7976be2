//! HTTP datagrams that arrive before their request is admitted, held for a
//! short while (I/O-free; the caller passes `now`).
//!
//! A client MAY send datagrams on a connect-udp request before the response
//! arrives (RFC 9298 §5), and a datagram may overtake the request's own
//! HEADERS (they travel in different QUIC frames). RFC 9297 §2.1 lets the
//! receiver either drop a datagram for a stream it has not processed yet
//! or hold it briefly (on the order of a round trip) until the request is
//! there. openrelay's client sends its inner QUIC handshake that way (one
//! round trip to the ingress less on every new path), so a server holds
//! them: at most [`EarlyLimits::max_datagrams`] and
//! [`EarlyLimits::max_bytes`] per connection, each for at most
//! [`EarlyLimits::max_age`]. Held datagrams are copied out of the received
//! packet, so what they pin is exactly what is counted.
//!
//! They are released ([`EarlyDatagrams::take`]) only when the request is
//! admitted and its route registered, and discarded
//! ([`EarlyDatagrams::discard`]) when it is refused: a refused request
//! forwards nothing. A peer sending datagrams for requests it never makes
//! costs the bounded buffer of its own connection and nothing else.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

/// How much one connection may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EarlyLimits {
    /// Datagrams held at most (the first ones are kept, later ones dropped).
    pub max_datagrams: usize,
    /// Payload bytes held at most.
    pub max_bytes: usize,
    /// A datagram held this long is dropped.
    pub max_age: Duration,
}

impl EarlyLimits {
    /// A relay's: room for an inner QUIC client's first flight (its
    /// Initial, up to two packets with a post-quantum key share, and a
    /// retransmission) and a second; held for up to a second (an
    /// admission that checks a token against the double-spend set takes a
    /// round trip to it).
    pub const RELAY: EarlyLimits = EarlyLimits {
        max_datagrams: 4,
        max_bytes: 6 << 10,
        max_age: Duration::from_secs(1),
    };
}

/// One held datagram: its request (quarter stream ID), when it arrived,
/// its payload.
#[derive(Debug)]
struct Held {
    quarter_stream_id: u64,
    arrived: Instant,
    payload: Bytes,
}

/// The datagrams one connection holds for requests not yet admitted.
#[derive(Debug)]
pub struct EarlyDatagrams {
    limits: EarlyLimits,
    held: VecDeque<Held>,
    bytes: usize,
}

impl EarlyDatagrams {
    /// Nothing held yet.
    pub fn new(limits: EarlyLimits) -> Self {
        EarlyDatagrams {
            limits,
            held: VecDeque::new(),
            bytes: 0,
        }
    }

    /// Holds a copy of `payload` for request `quarter_stream_id`, if the
    /// limits leave room once datagrams older than `max_age` are gone;
    /// returns whether it was held.
    pub fn hold(&mut self, quarter_stream_id: u64, payload: &[u8], now: Instant) -> bool {
        self.expire(now);
        if self.held.len() >= self.limits.max_datagrams
            || self.bytes + payload.len() > self.limits.max_bytes
        {
            return false;
        }
        self.bytes += payload.len();
        self.held.push_back(Held {
            quarter_stream_id,
            arrived: now,
            payload: Bytes::copy_from_slice(payload),
        });
        true
    }

    /// Releases what is held for `quarter_stream_id` and not expired, in
    /// arrival order.
    pub fn take(&mut self, quarter_stream_id: u64, now: Instant) -> Vec<Bytes> {
        self.expire(now);
        let mut taken = Vec::new();
        self.held.retain_mut(|held| {
            if held.quarter_stream_id != quarter_stream_id {
                return true;
            }
            taken.push(std::mem::take(&mut held.payload));
            false
        });
        self.bytes -= taken.iter().map(Bytes::len).sum::<usize>();
        taken
    }

    /// Drops what is held for `quarter_stream_id` (its request was refused
    /// or is over).
    pub fn discard(&mut self, quarter_stream_id: u64) {
        let bytes = &mut self.bytes;
        self.held.retain(|held| {
            let keep = held.quarter_stream_id != quarter_stream_id;
            if !keep {
                *bytes -= held.payload.len();
            }
            keep
        });
    }

    /// Datagrams held now.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Payload bytes held now.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn expire(&mut self, now: Instant) {
        while let Some(oldest) = self.held.front()
            && now.saturating_duration_since(oldest.arrived) >= self.limits.max_age
        {
            self.bytes -= oldest.payload.len();
            self.held.pop_front();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LIMITS: EarlyLimits = EarlyLimits {
        max_datagrams: 3,
        max_bytes: 100,
        max_age: Duration::from_millis(500),
    };

    #[test]
    fn held_datagrams_are_released_to_their_request_in_order() {
        let now = Instant::now();
        let mut early = EarlyDatagrams::new(LIMITS);
        assert!(early.hold(1, b"first", now));
        assert!(early.hold(2, b"other", now));
        assert!(early.hold(1, b"second", now));
        assert_eq!(early.take(1, now), vec![&b"first"[..], &b"second"[..]]);
        assert_eq!((early.len(), early.bytes()), (1, 5));
        assert!(early.take(1, now).is_empty());
    }

    #[test]
    fn a_refused_request_releases_nothing() {
        let now = Instant::now();
        let mut early = EarlyDatagrams::new(LIMITS);
        assert!(early.hold(7, b"inner handshake", now));
        early.discard(7);
        assert!(early.is_empty());
        assert_eq!(early.bytes(), 0);
        assert!(early.take(7, now).is_empty());
    }

    #[test]
    fn old_datagrams_expire() {
        let now = Instant::now();
        let mut early = EarlyDatagrams::new(LIMITS);
        assert!(early.hold(1, b"old", now));
        let later = now + LIMITS.max_age;
        assert!(early.take(1, later).is_empty());
        assert_eq!(early.bytes(), 0);
    }

    #[test]
    fn the_first_datagrams_are_kept_when_full() {
        let now = Instant::now();
        let mut early = EarlyDatagrams::new(LIMITS);
        for i in 0..3 {
            assert!(early.hold(1, &[i], now));
        }
        assert!(!early.hold(1, b"x", now));
        assert!(!early.hold(2, &[0; 101], now));
        assert_eq!(early.take(1, now), vec![&[0u8][..], &[1], &[2]]);
        // Room again once the held ones are gone.
        assert!(early.hold(1, b"x", now + LIMITS.max_age));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Hold(u64, usize, u64),
        Take(u64, u64),
        Discard(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..4u64, 0..80usize, 0..300u64).prop_map(|(q, n, dt)| Op::Hold(q, n, dt)),
            (0..4u64, 0..300u64).prop_map(|(q, dt)| Op::Take(q, dt)),
            (0..4u64).prop_map(Op::Discard),
        ]
    }

    proptest! {
        /// Whatever a peer sends, the limits hold, the byte count is
        /// exact, and a request gets only its own datagrams, each once.
        #[test]
        fn limits_hold_and_requests_get_only_their_own(ops in proptest::collection::vec(op(), 0..200)) {
            let start = Instant::now();
            let mut now = start;
            let mut early = EarlyDatagrams::new(LIMITS);
            let mut serial = 0u8;
            for op in ops {
                match op {
                    Op::Hold(q, n, dt) => {
                        now += Duration::from_millis(dt);
                        serial = serial.wrapping_add(1);
                        let mut payload = vec![serial; n];
                        if let Some(first) = payload.first_mut() {
                            *first = q as u8;
                        }
                        early.hold(q, &payload, now);
                    }
                    Op::Take(q, dt) => {
                        now += Duration::from_millis(dt);
                        for payload in early.take(q, now) {
                            prop_assert!(payload.is_empty() || payload[0] == q as u8);
                        }
                    }
                    Op::Discard(q) => {
                        early.discard(q);
                        prop_assert!(early.held.iter().all(|h| h.quarter_stream_id != q));
                    }
                }
                prop_assert!(early.len() <= LIMITS.max_datagrams);
                prop_assert!(early.bytes() <= LIMITS.max_bytes);
                prop_assert_eq!(early.bytes(), early.held.iter().map(|h| h.payload.len()).sum::<usize>());
            }
        }
    }
}
