//! Login bookkeeping, pure (the caller passes the time): online password
//! guessing is slowed per account and per client address, and the logins
//! waiting for their second message are bounded per address and in total,
//! so one address can neither guess fast nor lock everyone else out.
//!
//! A login start is first [`Logins::admit`]ted, which counts the attempt
//! against both limits and reserves a pending slot; the OPAQUE work runs
//! outside (on a blocking thread); [`Logins::fill`] stores its state, or
//! [`Logins::release`] gives the slot back. The finish [`Logins::take`]s it.
//! A successful login forgives its account's count, so its owner is never
//! slowed by their own earlier typos.
//!
//! Known limit: throttling per account lets anyone who knows an account name
//! delay that account's logins (not its tokens: a running client spends
//! what its wallet holds, and a session lasts `session_lifetime_secs`).

use std::collections::HashMap;
use std::time::Duration;

use crate::limiter::{AddressKey, Limiter, RateLimit, RetryAfter};

/// The limits of [`Logins`].
#[derive(Debug, Clone, Copy)]
pub struct LoginLimits {
    /// Attempts per account name (any address).
    pub per_account: RateLimit,
    /// Attempts per client address (IPv4 address, IPv6 /64), any account.
    pub per_address: RateLimit,
    /// Logins one address may have waiting for their second message.
    pub pending_per_address: usize,
    /// Logins waiting in total.
    pub pending: usize,
    /// How long a login may take between its two messages.
    pub window: Duration,
    /// Accounts and addresses each limiter remembers.
    pub remembered: usize,
}

impl LoginLimits {
    /// The issuer's limits. An account: 10 tries, then one every 30 s (so
    /// at most ~2,900 guesses a day however many addresses try). An address:
    /// 30 tries, then one every 2 s, across accounts (password spraying).
    /// 16 pending logins per address, 10,000 in all (≈ 2 MiB).
    pub const DEFAULT: LoginLimits = LoginLimits {
        per_account: RateLimit {
            burst: 10,
            interval: Duration::from_secs(30),
        },
        per_address: RateLimit {
            burst: 30,
            interval: Duration::from_secs(2),
        },
        pending_per_address: 16,
        pending: 10_000,
        window: Duration::from_secs(60),
        remembered: 65_536,
    };
}

/// Why a login was not started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LoginRefusal {
    /// Too many attempts on this account lately.
    #[error("too many login attempts for this account; retry in {} s", .0.0.as_secs().max(1))]
    Account(RetryAfter),
    /// Too many attempts from this address lately.
    #[error("too many login attempts from this address; retry in {} s", .0.0.as_secs().max(1))]
    Address(RetryAfter),
    /// This address has too many logins in progress.
    #[error("too many logins in progress from this address")]
    AddressBusy,
    /// Too many logins in progress in all.
    #[error("too many logins in progress")]
    Busy,
}

impl LoginRefusal {
    /// Seconds a client should wait (the `Retry-After` value).
    pub fn retry_after_secs(&self) -> u64 {
        match self {
            LoginRefusal::Account(RetryAfter(d)) | LoginRefusal::Address(RetryAfter(d)) => {
                d.as_secs().max(1)
            }
            LoginRefusal::AddressBusy | LoginRefusal::Busy => 1,
        }
    }
}

/// A reserved pending login.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LoginId(pub [u8; 16]);

#[derive(Debug)]
struct Pending<S> {
    username: String,
    address: AddressKey,
    expires: Duration,
    /// `None` while the OPAQUE work for it runs.
    state: Option<S>,
}

/// Login limits and pending logins; `S` is the server's OPAQUE state.
#[derive(Debug)]
pub struct Logins<S> {
    limits: LoginLimits,
    accounts: Limiter<String>,
    addresses: Limiter<AddressKey>,
    pending: HashMap<LoginId, Pending<S>>,
    per_address: HashMap<AddressKey, usize>,
}

impl<S> Logins<S> {
    /// Bookkeeping under `limits`.
    pub fn new(limits: LoginLimits) -> Self {
        Logins {
            limits,
            accounts: Limiter::new(limits.per_account, limits.remembered),
            addresses: Limiter::new(limits.per_address, limits.remembered),
            pending: HashMap::new(),
            per_address: HashMap::new(),
        }
    }

    /// Admits a login start by `username` from `address` at `now`: counts it
    /// against both limits and reserves `id` (random, chosen by the caller).
    pub fn admit(
        &mut self,
        id: LoginId,
        username: &str,
        address: AddressKey,
        now: Duration,
    ) -> Result<(), LoginRefusal> {
        let busy = |logins: &Self| {
            if logins.per_address.get(&address).copied().unwrap_or(0)
                >= logins.limits.pending_per_address
            {
                Some(LoginRefusal::AddressBusy)
            } else if logins.pending.len() >= logins.limits.pending {
                Some(LoginRefusal::Busy)
            } else {
                None
            }
        };
        if busy(self).is_some() {
            self.expire(now);
        }
        if let Some(refusal) = busy(self) {
            return Err(refusal);
        }
        // Both limits must allow it before either counts it.
        let account = username.to_owned();
        self.addresses
            .check(&address, now)
            .map_err(LoginRefusal::Address)?;
        self.accounts
            .attempt(&account, now)
            .map_err(LoginRefusal::Account)?;
        self.addresses
            .attempt(&address, now)
            .map_err(LoginRefusal::Address)?;
        *self.per_address.entry(address).or_default() += 1;
        self.pending.insert(
            id,
            Pending {
                username: account,
                address,
                expires: now + self.limits.window,
                state: None,
            },
        );
        Ok(())
    }

    /// Stores the OPAQUE state of the admitted login `id`.
    pub fn fill(&mut self, id: LoginId, state: S) {
        if let Some(pending) = self.pending.get_mut(&id) {
            pending.state = Some(state);
        }
    }

    /// Gives back the slot of a login that could not start.
    pub fn release(&mut self, id: LoginId) {
        self.remove(id);
    }

    /// The pending login `id` (its account and state), if it exists and
    /// has not expired at `now`; it is removed either way.
    pub fn take(&mut self, id: LoginId, now: Duration) -> Option<(String, S)> {
        let pending = self.remove(id)?;
        (pending.expires > now)
            .then_some(pending.state.map(|state| (pending.username, state)))
            .flatten()
    }

    /// A login of `username` succeeded: its attempts are forgiven.
    pub fn succeeded(&mut self, username: &str) {
        self.accounts.forgive(&username.to_owned());
    }

    /// Logins waiting.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    fn remove(&mut self, id: LoginId) -> Option<Pending<S>> {
        let pending = self.pending.remove(&id)?;
        if let Some(count) = self.per_address.get_mut(&pending.address) {
            *count -= 1;
            if *count == 0 {
                self.per_address.remove(&pending.address);
            }
        }
        Some(pending)
    }

    fn expire(&mut self, now: Duration) {
        let expired: Vec<LoginId> = self
            .pending
            .iter()
            .filter(|(_, p)| p.expires <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.remove(id);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn address(n: u32) -> AddressKey {
        AddressKey::of(std::net::IpAddr::V4(n.into()))
    }

    fn id(n: u32) -> LoginId {
        let mut id = [0u8; 16];
        id[..4].copy_from_slice(&n.to_be_bytes());
        LoginId(id)
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// 1,000 logins left pending by one address (under as many names) do
    /// not stop a login from another address; the attacker's own are
    /// refused once it holds its share.
    #[test]
    fn one_address_cannot_lock_out_another() {
        let mut logins = Logins::<()>::new(LoginLimits::DEFAULT);
        let mut admitted = 0;
        for n in 0..1000 {
            if logins
                .admit(id(n), &format!("name-{n}"), address(1), secs(0))
                .is_ok()
            {
                logins.fill(id(n), ());
                admitted += 1;
            }
        }
        assert_eq!(admitted, LoginLimits::DEFAULT.pending_per_address);
        assert_eq!(
            logins.admit(id(5000), "victim", address(2), secs(0)),
            Ok(())
        );
        logins.fill(id(5000), ());
        assert_eq!(logins.take(id(5000), secs(1)), Some(("victim".into(), ())));
    }

    #[test]
    fn the_total_is_bounded_and_expired_logins_make_room() {
        let limits = LoginLimits {
            pending: 100,
            ..LoginLimits::DEFAULT
        };
        let mut logins = Logins::<()>::new(limits);
        for n in 0..100 {
            logins
                .admit(id(n), &format!("x{n}"), address(n), secs(0))
                .unwrap();
        }
        assert_eq!(
            logins.admit(id(100), "y", address(100), secs(1)),
            Err(LoginRefusal::Busy)
        );
        // After the window they are gone, and with them their slots.
        logins.admit(id(100), "y", address(100), secs(61)).unwrap();
        assert_eq!(logins.pending(), 1);
        assert_eq!(logins.take(id(3), secs(61)), None);
    }

    /// Guessing one account from many addresses is slowed by the account's
    /// limit; guessing many accounts from one address by the address's.
    #[test]
    fn guessing_is_slowed_per_account_and_per_address() {
        let limits = LoginLimits::DEFAULT;
        let mut logins = Logins::<()>::new(limits);
        let mut now = secs(0);
        let mut tries = 0;
        // One account, a fresh address each time, for ten minutes.
        for n in 0..=10_000 {
            if logins.admit(id(n), "alice", address(n), now).is_ok() {
                tries += 1;
                logins.release(id(n));
            }
            now += Duration::from_millis(60);
        }
        let minutes = now.as_secs() / 60;
        assert_eq!(
            tries,
            10 + now.as_secs() / 30,
            "{tries} tries in {minutes} min"
        );
        match logins.admit(id(20_000), "alice", address(99_999), now) {
            Err(LoginRefusal::Account(RetryAfter(wait))) => {
                assert!(wait <= secs(30) && wait > Duration::ZERO)
            }
            other => panic!("{other:?}"),
        }

        // One address, a fresh account each time.
        let mut logins = Logins::<()>::new(limits);
        let mut now = secs(0);
        let mut tries = 0u64;
        for n in 0..=10_000 {
            if logins
                .admit(id(n), &format!("name-{n}"), address(7), now)
                .is_ok()
            {
                tries += 1;
                logins.release(id(n));
            }
            now += Duration::from_millis(60);
        }
        assert_eq!(tries, 30 + now.as_secs() / 2);

        // The owner's success forgives the account's count.
        let mut logins = Logins::<()>::new(limits);
        for n in 0..10 {
            logins.admit(id(n), "bob", address(n), secs(0)).unwrap();
            logins.release(id(n));
        }
        assert!(logins.admit(id(10), "bob", address(10), secs(0)).is_err());
        logins.succeeded("bob");
        logins.admit(id(11), "bob", address(11), secs(0)).unwrap();
    }

    #[test]
    fn a_login_is_taken_once_and_not_after_its_window() {
        let mut logins = Logins::<u8>::new(LoginLimits::DEFAULT);
        logins.admit(id(1), "a", address(1), secs(0)).unwrap();
        assert_eq!(logins.take(id(1), secs(1)), None, "no state yet");
        logins.admit(id(2), "a", address(1), secs(0)).unwrap();
        logins.fill(id(2), 7);
        assert_eq!(logins.take(id(2), secs(60)), None, "expired");
        logins.admit(id(3), "a", address(1), secs(0)).unwrap();
        logins.fill(id(3), 8);
        assert_eq!(logins.take(id(3), secs(59)), Some(("a".into(), 8)));
        assert_eq!(logins.take(id(3), secs(59)), None);
        assert_eq!(logins.pending(), 0);
    }
}
