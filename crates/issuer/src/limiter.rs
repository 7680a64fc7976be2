//! Rate limits with bounded memory, pure (the caller passes the time): the
//! issuer slows login attempts per account and per client address with them.
//!
//! Each key gets the generic cell rate algorithm (GCRA, as in ATM's and
//! many proxies' limiters): a burst of `burst` attempts, then one per
//! `interval`. Its whole state is one instant per key, the "theoretical
//! arrival time"; a key whose time has passed is the same as an unknown key,
//! so it can be dropped. The table holds at most `capacity` keys: when it is
//! full, passed entries go first, then the entry closest to passing. So
//! memory stays bounded while an attacker rotates names or addresses, and
//! the keys it would most like evicted (the ones it is slowing down hardest)
//! are the last to go.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::time::Duration;

/// `burst` attempts at once, then one per `interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Attempts allowed at once.
    pub burst: u32,
    /// Then one per this long.
    pub interval: Duration,
}

/// A refused attempt: try again after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub Duration);

/// Per-key rate limits in a bounded table; see the [module documentation](self).
#[derive(Debug)]
pub struct Limiter<K> {
    limit: RateLimit,
    capacity: usize,
    /// Key → theoretical arrival time (since the caller's epoch).
    table: HashMap<K, Duration>,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    /// A limiter of `limit` per key, remembering at most `capacity` keys.
    pub fn new(limit: RateLimit, capacity: usize) -> Self {
        Limiter {
            limit,
            capacity: capacity.max(1),
            table: HashMap::new(),
        }
    }

    /// How far ahead of now a key's time may be before it is refused.
    fn tolerance(&self) -> Duration {
        self.limit.interval * self.limit.burst.saturating_sub(1)
    }

    /// Whether `key` may make an attempt at `now`: if so, counts it.
    pub fn check(&self, key: &K, now: Duration) -> Result<(), RetryAfter> {
        let at = self.table.get(key).copied().unwrap_or(now).max(now);
        if at - now > self.tolerance() {
            return Err(RetryAfter(at - now - self.tolerance()));
        }
        Ok(())
    }

    /// Counts an attempt by `key` at `now` if the limit allows it.
    pub fn attempt(&mut self, key: &K, now: Duration) -> Result<(), RetryAfter> {
        self.check(key, now)?;
        let at = self.table.get(key).copied().unwrap_or(now).max(now);
        if !self.table.contains_key(key) && self.table.len() >= self.capacity {
            self.make_room(now);
        }
        self.table.insert(key.clone(), at + self.limit.interval);
        Ok(())
    }

    /// Forgets `key` (e.g. after a successful login).
    pub fn forgive(&mut self, key: &K) {
        self.table.remove(key);
    }

    fn make_room(&mut self, now: Duration) {
        self.table.retain(|_, at| *at > now);
        if self.table.len() >= self.capacity {
            let closest = self
                .table
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(key, _)| key.clone());
            if let Some(key) = closest {
                self.table.remove(&key);
            }
        }
    }

    /// Keys held (at most the capacity).
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

/// The part of a client address one limit applies to: the whole IPv4
/// address, an IPv6 /64 (what one subscriber usually gets, so rotating
/// addresses inside it gains nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressKey {
    /// An IPv4 address.
    V4(u32),
    /// The first 64 bits of an IPv6 address.
    V6(u64),
}

impl AddressKey {
    /// The key of `ip` (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => AddressKey::V4(v4.into()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => AddressKey::V4(v4.into()),
                None => AddressKey::V6((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LIMIT: RateLimit = RateLimit {
        burst: 3,
        interval: Duration::from_secs(10),
    };

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn a_burst_then_one_per_interval() {
        let mut limiter = Limiter::new(LIMIT, 100);
        for _ in 0..3 {
            limiter.attempt(&"alice", secs(0)).unwrap();
        }
        assert_eq!(
            limiter.attempt(&"alice", secs(0)),
            Err(RetryAfter(secs(10)))
        );
        assert_eq!(limiter.attempt(&"alice", secs(5)), Err(RetryAfter(secs(5))));
        limiter.attempt(&"alice", secs(10)).unwrap();
        assert!(limiter.attempt(&"alice", secs(10)).is_err());
        // Others are not affected; after a quiet spell the burst is back.
        limiter.attempt(&"bob", secs(10)).unwrap();
        for _ in 0..3 {
            limiter.attempt(&"alice", secs(100)).unwrap();
        }
        limiter.forgive(&"alice");
        limiter.attempt(&"alice", secs(100)).unwrap();
    }

    #[test]
    fn rotating_keys_never_grows_the_table_and_the_hardest_hit_stay() {
        let mut limiter = Limiter::new(LIMIT, 64);
        // The attacker's target, slowed hard.
        for _ in 0..3 {
            limiter.attempt(&u64::MAX, secs(0)).unwrap();
        }
        for key in 0..100_000u64 {
            let _ = limiter.attempt(&key, secs(1));
            assert!(limiter.len() <= 64);
        }
        assert!(
            limiter.attempt(&u64::MAX, secs(1)).is_err(),
            "rotating names evicted the account under attack"
        );
    }

    #[test]
    fn ipv6_addresses_count_per_64() {
        let a = AddressKey::of("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = AddressKey::of("2001:db8:1:2:ffff::9".parse().unwrap());
        let c = AddressKey::of("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            AddressKey::of("192.0.2.1".parse().unwrap()),
            AddressKey::of("::ffff:192.0.2.1".parse().unwrap())
        );
        assert_ne!(
            AddressKey::of("0.0.0.1".parse().unwrap()),
            AddressKey::of("::".parse().unwrap())
        );
    }

    proptest! {
        /// However attempts arrive, no key gets more than its burst plus one
        /// per interval, and the table stays within its capacity.
        #[test]
        fn never_more_than_the_limit(
            steps in proptest::collection::vec((0u8..8, 0u64..20), 1..400),
        ) {
            let mut limiter = Limiter::new(LIMIT, 8);
            let mut now = secs(0);
            let mut granted = [0u64; 8];
            for (key, advance) in steps {
                now += secs(advance);
                if limiter.attempt(&key, now).is_ok() {
                    granted[usize::from(key)] += 1;
                }
                prop_assert!(limiter.len() <= 8);
            }
            let allowed = u64::from(LIMIT.burst) + now.as_secs() / 10;
            for count in granted {
                prop_assert!(count <= allowed, "{count} > {allowed}");
            }
        }
    }
}
