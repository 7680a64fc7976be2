//! Per-client tunnel limit: one client address may hold at most N tunnels at
//! once, across all its connections, so one client cannot exhaust the
//! ingress's sockets. Entries disappear when a client's last tunnel closes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use openrelay_log::Sensitive;

/// Counts open tunnels per client address.
#[derive(Debug, Clone)]
pub struct TunnelLimiter {
    max_per_client: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One open tunnel; dropping it frees the slot.
#[derive(Debug)]
pub struct TunnelPermit {
    client: Sensitive<IpAddr>,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl TunnelLimiter {
    /// A limiter allowing `max_per_client` tunnels per address.
    pub fn new(max_per_client: usize) -> Self {
        TunnelLimiter {
            max_per_client,
            open: Arc::default(),
        }
    }

    /// A permit for one more tunnel of `client`, if under the limit.
    pub fn acquire(&self, client: Sensitive<IpAddr>) -> Option<TunnelPermit> {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = open.entry(*client).or_insert(0);
        if *count >= self.max_per_client {
            return None;
        }
        *count += 1;
        Some(TunnelPermit {
            client,
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
        if let Some(count) = open.get_mut(&*self.client) {
            *count -= 1;
            if *count == 0 {
                open.remove(&*self.client);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_per_client_and_permits_free_slots() {
        let limiter = TunnelLimiter::new(2);
        let a = Sensitive("192.0.2.1".parse().unwrap());
        let b = Sensitive("192.0.2.2".parse().unwrap());
        let first = limiter.acquire(a).unwrap();
        let _second = limiter.acquire(a).unwrap();
        assert!(limiter.acquire(a).is_none());
        let _other = limiter.acquire(b).unwrap();
        drop(first);
        assert!(limiter.acquire(a).is_some());
    }

    #[test]
    fn closed_clients_leave_no_entry() {
        let limiter = TunnelLimiter::new(1);
        let permit = limiter
            .acquire(Sensitive("192.0.2.1".parse().unwrap()))
            .unwrap();
        assert_eq!(limiter.clients(), 1);
        drop(permit);
        assert_eq!(limiter.clients(), 0);
    }
}
