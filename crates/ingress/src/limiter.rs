//! Per-address tunnel limit: one client address (an IPv4 address or an IPv6
//! /64, [`AddressKey`]) may hold at most N tunnels at once, across all its
//! connections, so one party cannot take all of the ingress's sockets.
//! Entries disappear when an address's last tunnel closes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use openrelay_log::Sensitive;
use openrelay_transport::limits::AddressKey;

/// Counts open tunnels per client address.
///
/// # Which limit
///
/// Without token admission the address is the only handle on a client, so
/// the limit is small (`ingress.max_tunnels_per_client`, 16). With
/// admission every tunnel is paid with a Privacy Pass token the issuer
/// rations per account, and one address may be a carrier-grade NAT with
/// hundreds of users: the token decides, and the limit is only a ceiling
/// that keeps one token-rich party from taking every socket
/// (`ingress.max_tunnels_per_address_with_tokens`, 1024). The slot is taken
/// before the token is checked, so a request over the ceiling is refused
/// without spending its token, and the slot is given back when the token is
/// refused.
#[derive(Debug, Clone)]
pub struct TunnelLimiter {
    max_per_address: usize,
    open: Arc<Mutex<HashMap<AddressKey, usize>>>,
}

/// One open tunnel; dropping it frees the slot.
#[derive(Debug)]
pub struct TunnelPermit {
    key: AddressKey,
    open: Arc<Mutex<HashMap<AddressKey, usize>>>,
}

impl TunnelLimiter {
    /// A limiter allowing `max_per_address` tunnels per address.
    pub fn new(max_per_address: usize) -> Self {
        TunnelLimiter {
            max_per_address,
            open: Arc::default(),
        }
    }

    /// A permit for one more tunnel of `client`'s address, if under the
    /// limit.
    pub fn acquire(&self, client: Sensitive<IpAddr>) -> Option<TunnelPermit> {
        let key = AddressKey::of(*client);
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = open.entry(key).or_insert(0);
        if *count >= self.max_per_address {
            if *count == 0 {
                open.remove(&key);
            }
            return None;
        }
        *count += 1;
        Some(TunnelPermit {
            key,
            open: Arc::clone(&self.open),
        })
    }

    /// Number of client addresses with open tunnels.
    pub fn clients(&self) -> usize {
        self.open.lock().map(|o| o.len()).unwrap_or(0)
    }
}

impl Drop for TunnelPermit {
    fn drop(&mut self) {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn client(ip: &str) -> Sensitive<IpAddr> {
        Sensitive(ip.parse().unwrap())
    }

    #[test]
    fn the_limit_is_per_address_and_permits_free_slots() {
        let limiter = TunnelLimiter::new(2);
        let a = client("192.0.2.1");
        let first = limiter.acquire(a).unwrap();
        let _second = limiter.acquire(a).unwrap();
        assert!(limiter.acquire(a).is_none());
        let _other = limiter.acquire(client("192.0.2.2")).unwrap();
        drop(first);
        assert!(limiter.acquire(a).is_some());
    }

    #[test]
    fn an_ipv6_slash_64_is_one_address() {
        let limiter = TunnelLimiter::new(2);
        let _a = limiter.acquire(client("2001:db8:0:1::1")).unwrap();
        let _b = limiter.acquire(client("2001:db8:0:1::2")).unwrap();
        assert!(limiter.acquire(client("2001:db8:0:1:ffff::3")).is_none());
        assert!(limiter.acquire(client("2001:db8:0:2::1")).is_some());
        // IPv4 peers of a dual-stack socket are not one /64 (::ffff:0:0/96).
        let _c = limiter.acquire(client("::ffff:192.0.2.1")).unwrap();
        let _d = limiter.acquire(client("::ffff:192.0.2.1")).unwrap();
        assert!(limiter.acquire(client("::ffff:192.0.2.2")).is_some());
    }

    #[test]
    fn closed_clients_leave_no_entry() {
        let limiter = TunnelLimiter::new(1);
        let permit = limiter.acquire(client("192.0.2.1")).unwrap();
        assert_eq!(limiter.clients(), 1);
        drop(permit);
        assert_eq!(limiter.clients(), 0);
    }
}
