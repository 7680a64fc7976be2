//! Which keys may speak for an operator at the issuer: settle collected
//! tokens in its name, read its ledger.
//!
//! - With `[settlement.directory]`: the validator-signed directory, fetched
//!   from the registry, verified as clients verify it (k of n validators,
//!   freshness, no rollback; `openrelay-directory`) and refreshed. An
//!   operator is named by its key (`ed25519:...`), its relays are those the
//!   directory lists for it (by their pinned QUIC key, the key that signs
//!   settlements), and the operator key itself may read its ledger. Until a
//!   directory arrives, or once the last one is too old, the answer is
//!   [`Vouch::Unknown`] (the issuer answers 503; relays retry).
//! - With `[settlement.relays]`: the configured keys per operator name.
//! - Without either: nobody.
//!
//! [`ReplayGuard`] remembers the nonces of signed ledger reads while they
//! are fresh, so none is accepted twice.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use openrelay_config::SettlementRelays;
use openrelay_directory::OperatorId;
use openrelay_registry_client::follow::DirectoryFollower;
use openrelay_types::KeyPin;

/// Whether a key speaks for an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vouch {
    /// It does.
    Listed,
    /// It does not.
    NotListed,
    /// Not known yet: no (fresh) directory.
    Unknown,
}

/// Why the listing could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("settlement.directory.validators: {0}")]
pub struct ListingError(openrelay_directory::TrustConfigError);

/// The issuer's view of operators and their relays.
#[derive(Debug)]
pub enum RelayListing {
    /// Nobody may settle.
    Nobody,
    /// Configured keys per operator name.
    Configured(HashMap<String, HashSet<KeyPin>>),
    /// The validator-signed directory (boxed: a follower is larger than
    /// the other listings).
    Directory(Box<DirectoryWatch>),
}

impl RelayListing {
    /// The listing the issuer's config asks for.
    pub fn from_config(config: Option<&SettlementRelays>) -> Result<Self, ListingError> {
        Ok(match config {
            None => RelayListing::Nobody,
            Some(SettlementRelays::Relays(operators)) => RelayListing::Configured(
                operators
                    .iter()
                    .map(|(operator, keys)| (operator.clone(), keys.iter().copied().collect()))
                    .collect(),
            ),
            Some(SettlementRelays::Directory(config)) => RelayListing::Directory(Box::new(
                DirectoryWatch(DirectoryFollower::new(config).map_err(|e| ListingError(e.0))?),
            )),
        })
    }

    /// Whether `key` (a relay's pinned QUIC key, or with a directory the
    /// operator key) speaks for `operator` at `now`.
    pub fn vouches(&self, operator: &str, key: &[u8; 32], now: u64) -> Vouch {
        let pin = KeyPin::from_ed25519(*key);
        match self {
            RelayListing::Nobody => Vouch::NotListed,
            RelayListing::Configured(operators) => {
                match operators
                    .get(operator)
                    .is_some_and(|keys| keys.contains(&pin))
                {
                    true => Vouch::Listed,
                    false => Vouch::NotListed,
                }
            }
            RelayListing::Directory(watch) => watch.vouches(operator, &pin, now),
        }
    }

    /// Keeps the directory current (forever; abort to stop); returns at
    /// once without one.
    pub async fn run(self: Arc<Self>) {
        if let RelayListing::Directory(watch) = &*self {
            watch.0.run().await;
        }
    }
}

/// The directory, fetched and verified.
#[derive(Debug)]
pub struct DirectoryWatch(DirectoryFollower);

impl DirectoryWatch {
    fn vouches(&self, operator: &str, pin: &KeyPin, now: u64) -> Vouch {
        let Some(directory) = self.0.fresh(now) else {
            return Vouch::Unknown;
        };
        let relay = directory
            .relay_by_pin(pin)
            .is_some_and(|relay| relay.operator_id().to_string() == operator);
        let operator_key = OperatorId::from_bytes(*pin.as_bytes())
            .is_ok_and(|id| id.to_string() == operator && directory.operator(&id).is_some());
        match relay || operator_key {
            true => Vouch::Listed,
            false => Vouch::NotListed,
        }
    }
}

/// The nonces of signed requests seen while they are fresh: each accepted
/// once. Bounded: past `capacity` fresh nonces new requests are refused
/// (only keys that speak for an operator get this far, and they sign few
/// requests), never forgotten early.
#[derive(Debug)]
pub struct ReplayGuard {
    capacity: usize,
    seen: HashMap<[u8; 16], u64>,
}

/// Why a signed request was refused as a replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// Its nonce was used before.
    #[error("request replayed")]
    Replayed,
    /// Too many fresh requests to remember another.
    #[error("too many recent requests")]
    Full,
}

impl ReplayGuard {
    /// A guard remembering at most `capacity` nonces.
    pub fn new(capacity: usize) -> Self {
        ReplayGuard {
            capacity,
            seen: HashMap::new(),
        }
    }

    /// Accepts `nonce` once until `until` (Unix seconds), at `now`.
    pub fn accept(&mut self, nonce: [u8; 16], until: u64, now: u64) -> Result<(), ReplayError> {
        if self.seen.get(&nonce).is_some_and(|t| *t > now) {
            return Err(ReplayError::Replayed);
        }
        if self.seen.len() >= self.capacity {
            self.seen.retain(|_, t| *t > now);
            if self.seen.len() >= self.capacity {
                return Err(ReplayError::Full);
            }
        }
        self.seen.insert(nonce, until);
        Ok(())
    }
}

/// The directory fixtures (keys from fixed seeds, a small network,
/// directories signed by chosen validators).
#[cfg(test)]
use openrelay_testkit::fixtures as directory_fixture;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// With a directory: a relay speaks for the operator the directory lists
    /// it under (by its QUIC key), the operator key for itself; nothing is
    /// known before a directory verifies or once it is too old.
    #[test]
    fn the_directory_says_who_speaks_for_an_operator() {
        use super::directory_fixture::*;
        use openrelay_registry_client::RegistryClient;
        let watch = DirectoryWatch(DirectoryFollower::with_trust(
            RegistryClient::new("127.0.0.1:9".parse().unwrap(), quic_pin(9)),
            trust(2, 3),
            std::time::Duration::from_secs(30),
        ));
        let listing = RelayListing::Directory(Box::new(watch));
        let RelayListing::Directory(watch) = &listing else {
            unreachable!()
        };
        let op = |i: u8| operator_key(i).id().to_string();
        let relay = |i: u8| *quic_pin(i).as_bytes();
        assert_eq!(listing.vouches(&op(1), &relay(1), NOW), Vouch::Unknown);
        // Under-signed: refused, still nothing known.
        let weak = signed(&directory(1), &[0]).to_bytes();
        assert!(watch.0.accept(&weak, NOW).is_err());
        assert_eq!(listing.vouches(&op(1), &relay(1), NOW), Vouch::Unknown);

        let good = signed(&directory(1), &[0, 1]).to_bytes();
        assert_eq!(watch.0.accept(&good, NOW).unwrap().relays().count(), 4);
        assert_eq!(listing.vouches(&op(1), &relay(1), NOW), Vouch::Listed);
        assert_eq!(listing.vouches(&op(2), &relay(3), NOW), Vouch::Listed);
        assert_eq!(listing.vouches(&op(2), &relay(1), NOW), Vouch::NotListed);
        assert_eq!(listing.vouches(&op(1), &relay(7), NOW), Vouch::NotListed);
        let operator_key_of = |i: u8| *KeyPin::from(operator_key(i).id()).as_bytes();
        assert_eq!(
            listing.vouches(&op(1), &operator_key_of(1), NOW),
            Vouch::Listed
        );
        assert_eq!(
            listing.vouches(&op(1), &operator_key_of(2), NOW),
            Vouch::NotListed
        );
        // An older directory does not replace it; once too old, unknown.
        let older = signed(&directory(0), &[0, 1]).to_bytes();
        assert!(watch.0.accept(&older, NOW).is_err());
        let late = T0 + DIRECTORY_LIFETIME + 1;
        assert_eq!(listing.vouches(&op(1), &relay(1), late), Vouch::Unknown);
    }

    #[test]
    fn configured_relays_speak_only_for_their_operator() {
        let relay = [7u8; 32];
        let pin = KeyPin::from_ed25519(relay);
        let listing = RelayListing::Configured(HashMap::from([(
            "operator-1".to_owned(),
            HashSet::from([pin]),
        )]));
        assert_eq!(listing.vouches("operator-1", &relay, 0), Vouch::Listed);
        assert_eq!(listing.vouches("operator-2", &relay, 0), Vouch::NotListed);
        assert_eq!(listing.vouches("operator-1", &[8; 32], 0), Vouch::NotListed);
        assert_eq!(
            RelayListing::Nobody.vouches("operator-1", &relay, 0),
            Vouch::NotListed
        );
    }

    #[test]
    fn a_nonce_is_accepted_once_while_fresh_and_the_guard_is_bounded() {
        let mut guard = ReplayGuard::new(2);
        guard.accept([1; 16], 100, 0).unwrap();
        assert_eq!(guard.accept([1; 16], 100, 50), Err(ReplayError::Replayed));
        guard.accept([2; 16], 100, 0).unwrap();
        assert_eq!(guard.accept([3; 16], 100, 0), Err(ReplayError::Full));
        // Once expired, room again (a request that old is refused as stale
        // before it reaches the guard).
        guard.accept([3; 16], 300, 100).unwrap();
    }
}
