//! Issuers' token key sets at the registry and at every validator (RFC 9576
//! §6 key consistency; issue 11, item 11): an issuer publishes its signed
//! set (`POST /v1/issuer-keys`) to the registry and to every validator, as
//! relays publish their descriptors; each validator votes for the newest set
//! it holds of each issuer, and a directory lists a set only when most votes
//! name that very set (`openrelay_directory::vote::tally_issuers`).
//!
//! What a publication must pass, at the registry and every validator alike
//! ([`check_key_set`] and [`Registry::publish_key_set`]):
//! - it decodes (the format's bounds: at most three keys, one signing at any
//!   instant, 60-day epochs, sizes) and the issuer's signature verifies;
//! - the issuer is one the network recognises (`[publication] issuers`);
//! - it is not dated in the future and still has a key that has not expired;
//! - every key signs for at least `[publication] min_token_key_period_secs`
//!   (a key's tokens tell when they were issued to within its window);
//! - it is newer than the set held for the issuer (a replay is refused), and
//!   not a different set signed at the same second (an issuer equivocating
//!   to one validator keeps its first word);
//! - a key it adds starts no earlier than the end of the last issuing
//!   window of the set held: an issuer cannot replace the key its users are
//!   refilling with by a fresh one mid-window (that would let it split them
//!   by the time they refilled). An issuer that lost its keys therefore
//!   issues again only once its last published window has ended.
//!
//! A set stays held while any of its keys is unexpired, whether or not the
//! issuer republishes: relays keep accepting the tokens of an issuer that is
//! down. The registry keeps the last few sets of each issuer
//! ([`KEY_SET_HISTORY`]) and takes an older one when a current vote names it
//! (a validator forwarding the set it voted for, [`Registry::store_voted_key_set`]),
//! so an issuer that shows the registry another set than most validators
//! cannot keep the elected one out of the directory.

use std::collections::{BTreeMap, HashMap};

use openrelay_config::PublicationLimits;
use openrelay_directory::vote::{IssuerVote, Vote};
use openrelay_directory::{
    Directory, IssuerId, IssuerKeySet, KeySetDigest, MAX_CLOCK_SKEW_SECS, SignedIssuerKeySet,
};

use crate::{AssembleError, PublishError, Registry, RegistryStore, StoreError};

/// Key sets kept per issuer: the newest, and a few older ones a vote may
/// still name while validators catch up.
pub const KEY_SET_HISTORY: usize = 4;

/// A publication rule a key set breaks (all answered 403).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeySetRule {
    /// The issuer is not one the network recognises.
    #[error("issuer {0} is not listed in [publication] issuers")]
    IssuerNotListed(IssuerId),
    /// Signed in the future.
    #[error("published at {published_at}, in the future (now {now})")]
    FutureDated {
        /// The set's `published_at`.
        published_at: u64,
        /// The clock checked.
        now: u64,
    },
    /// Every key has expired.
    #[error("every key of the set has expired")]
    Expired,
    /// A key signs for less than the network allows.
    #[error("a key signs for {period} s, at least {min} s required")]
    PeriodTooShort {
        /// The key's issuing window.
        period: u64,
        /// `[publication] min_token_key_period_secs`.
        min: u64,
    },
}

/// Checks what a key set must pass at `now` whatever else is held: the
/// issuer's signature is the caller's (it needs the bytes' decoding first).
pub fn check_key_set(
    set: &IssuerKeySet,
    limits: &PublicationLimits,
    now: u64,
) -> Result<(), KeySetRule> {
    let issuer = set.issuer();
    if !limits
        .issuers
        .iter()
        .any(|pin| pin.as_bytes() == issuer.as_bytes())
    {
        return Err(KeySetRule::IssuerNotListed(issuer));
    }
    if set.published_at() > now.saturating_add(MAX_CLOCK_SKEW_SECS) {
        return Err(KeySetRule::FutureDated {
            published_at: set.published_at(),
            now,
        });
    }
    if set.expires() <= now {
        return Err(KeySetRule::Expired);
    }
    if let Some(period) = set
        .keys()
        .iter()
        .map(|k| k.issue_until() - k.not_before)
        .find(|period| *period < limits.min_token_key_period_secs)
    {
        return Err(KeySetRule::PeriodTooShort {
            period,
            min: limits.min_token_key_period_secs,
        });
    }
    Ok(())
}

/// One held key set.
#[derive(Debug, Clone)]
pub(crate) struct StoredKeySet {
    pub(crate) signed: SignedIssuerKeySet,
    pub(crate) digest: KeySetDigest,
}

impl StoredKeySet {
    fn set(&self) -> &IssuerKeySet {
        self.signed.key_set()
    }
}

/// The key sets held, per issuer, oldest first.
#[derive(Debug, Default)]
pub(crate) struct KeySets {
    by_issuer: HashMap<IssuerId, Vec<StoredKeySet>>,
}

impl KeySets {
    fn newest(&self, issuer: &IssuerId) -> Option<&StoredKeySet> {
        self.by_issuer.get(issuer).and_then(|sets| sets.last())
    }

    fn get(&self, issuer: &IssuerId, digest: &KeySetDigest) -> Option<&StoredKeySet> {
        self.by_issuer
            .get(issuer)?
            .iter()
            .find(|s| s.digest == *digest)
    }

    /// Holds `stored` (if not held yet) in its place by `published_at`;
    /// returns the sets pushed out of the history.
    pub(crate) fn insert(&mut self, stored: StoredKeySet) -> Vec<(IssuerId, KeySetDigest)> {
        let issuer = stored.set().issuer();
        let sets = self.by_issuer.entry(issuer).or_default();
        if sets.iter().any(|s| s.digest == stored.digest) {
            return Vec::new();
        }
        let at = sets.partition_point(|s| s.set().published_at() <= stored.set().published_at());
        sets.insert(at, stored);
        let excess = sets.len().saturating_sub(KEY_SET_HISTORY);
        sets.drain(..excess).map(|s| (issuer, s.digest)).collect()
    }

    /// Forgets every set whose keys have all expired at `now`; returns them.
    fn prune(&mut self, now: u64) -> Vec<(IssuerId, KeySetDigest)> {
        let mut gone = Vec::new();
        for (issuer, sets) in &mut self.by_issuer {
            sets.retain(|s| {
                let live = s.set().expires() > now;
                if !live {
                    gone.push((*issuer, s.digest));
                }
                live
            });
        }
        self.by_issuer.retain(|_, sets| !sets.is_empty());
        gone
    }
}

fn keys_of(sets: &[(IssuerId, KeySetDigest)]) -> Vec<([u8; 32], [u8; 32])> {
    sets.iter()
        .map(|(issuer, digest)| (issuer.to_bytes(), *digest.as_bytes()))
        .collect()
}

impl<S: RegistryStore> Registry<S> {
    /// Decodes and checks a key set for holding at `now` (signature,
    /// [`check_key_set`]).
    fn admissible_key_set(&self, bytes: &[u8], now: u64) -> Result<StoredKeySet, PublishError> {
        let signed = SignedIssuerKeySet::from_bytes(bytes)?;
        signed.verify()?;
        check_key_set(signed.key_set(), &self.limits, now)?;
        Ok(StoredKeySet {
            digest: signed.digest(),
            signed,
        })
    }

    /// Holds `stored`, durably.
    fn hold_key_set(&self, stored: StoredKeySet, now: u64) -> Result<(), PublishError> {
        let issuer = stored.set().issuer();
        self.store.put_key_set(
            issuer.as_bytes(),
            stored.digest.as_bytes(),
            &stored.signed.to_bytes(),
            now,
        )?;
        let evicted = self.index(now).key_sets.insert(stored);
        if !evicted.is_empty() {
            self.store.remove_key_sets(&keys_of(&evicted))?;
        }
        Ok(())
    }

    /// Accepts an issuer's signed key set at `now` (see the module
    /// documentation for every rule); the very set held already is a
    /// refresh.
    pub fn publish_key_set(&self, bytes: &[u8], now: u64) -> Result<IssuerId, PublishError> {
        let stored = self.admissible_key_set(bytes, now)?;
        let set = stored.set();
        let issuer = set.issuer();
        {
            let index = self.index(now);
            if let Some(held) = index.key_sets.newest(&issuer) {
                let held_set = held.set();
                if held.digest == stored.digest {
                    return Ok(issuer);
                }
                if set.published_at() < held_set.published_at() {
                    return Err(PublishError::NotNewer {
                        stored: held_set.published_at(),
                        offered: set.published_at(),
                    });
                }
                if set.published_at() == held_set.published_at() {
                    return Err(PublishError::KeySetConflict);
                }
                let until = held_set.issuing_until();
                if let Some(early) = set
                    .keys()
                    .iter()
                    .find(|k| !held_set.lists(k) && k.not_before < until)
                {
                    return Err(PublishError::EarlyKey {
                        not_before: early.not_before,
                        until,
                    });
                }
            }
        }
        self.hold_key_set(stored, now)?;
        Ok(issuer)
    }

    /// Holds a key set a current vote names (the registry, when a validator
    /// forwards the set it voted for), whatever its age relative to the
    /// sets held: the directory lists it only if most votes name it, so
    /// holding it grants nothing, and refusing it would let an issuer that
    /// showed the registry another set keep the elected one out.
    pub fn store_voted_key_set(&self, bytes: &[u8], now: u64) -> Result<IssuerId, PublishError> {
        let stored = self.admissible_key_set(bytes, now)?;
        let issuer = stored.set().issuer();
        self.hold_key_set(stored, now)?;
        Ok(issuer)
    }

    /// What a validator votes for at `now`: the newest set of each issuer
    /// with a key not yet expired.
    pub fn key_set_votes(&self, now: u64) -> Vec<IssuerVote> {
        let index = self.index(now);
        let mut votes: Vec<IssuerVote> = index
            .key_sets
            .by_issuer
            .keys()
            .filter_map(|issuer| index.key_sets.newest(issuer))
            .filter(|held| held.set().expires() > now)
            .map(|held| IssuerVote {
                issuer: held.set().issuer(),
                digest: held.digest,
            })
            .collect();
        votes.sort();
        votes
    }

    /// The issuers `vote` names a key set of that is not held here: the
    /// voter should forward its copy.
    pub fn wanted_key_sets(&self, vote: &Vote, now: u64) -> Vec<IssuerId> {
        let index = self.index(now);
        vote.issuers()
            .iter()
            .filter(|e| index.key_sets.get(&e.issuer, &e.digest).is_none())
            .map(|e| e.issuer)
            .collect()
    }

    /// The newest key set held for `issuer`, as signed bytes (to forward).
    pub fn newest_key_set(&self, issuer: &IssuerId) -> Option<Vec<u8>> {
        self.index(0)
            .key_sets
            .newest(issuer)
            .map(|held| held.signed.to_bytes())
    }

    /// Whether a key set with `digest` is held for `issuer`.
    pub fn holds_key_set(&self, issuer: &IssuerId, digest: &KeySetDigest) -> bool {
        self.index(0).key_sets.get(issuer, digest).is_some()
    }

    /// `directory` listing the elected key sets (`elected`: issuer → the
    /// digest most votes name) that are held here; also the elected issuers
    /// whose set is not held (the validators refuse the directory until
    /// they forwarded it).
    pub fn with_elected_key_sets(
        &self,
        directory: Directory,
        elected: &BTreeMap<IssuerId, KeySetDigest>,
    ) -> Result<(Directory, Vec<IssuerId>), AssembleError> {
        let index = self.index(directory.issued_at());
        let mut sets = Vec::with_capacity(elected.len());
        let mut missing = Vec::new();
        for (issuer, digest) in elected {
            match index.key_sets.get(issuer, digest) {
                Some(held) => sets.push(held.signed.clone()),
                None => missing.push(*issuer),
            }
        }
        drop(index);
        Ok((directory.with_issuer_keys(sets)?, missing))
    }

    /// Forgets the key sets whose keys have all expired.
    pub(crate) fn prune_key_sets(&self, now: u64) -> Result<usize, StoreError> {
        let gone = self.index(now).key_sets.prune(now);
        if !gone.is_empty() {
            self.store.remove_key_sets(&keys_of(&gone))?;
        }
        Ok(gone.len())
    }
}

/// The directory fixtures (keys from fixed seeds, key sets of issuers
/// rotating daily).
#[cfg(test)]
pub(crate) use openrelay_testkit::fixtures as fixture;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use openrelay_directory::vote::tally_issuers;
    use openrelay_directory::{IssuerTokenKey, KeySetFields};
    use openrelay_types::KeyPin;

    use super::fixture::{T0, issuer_key, key_set, key_set_at, token_key};
    use super::*;
    use crate::RedbStore;

    const DAY: u64 = 86_400;

    fn limits() -> PublicationLimits {
        PublicationLimits {
            issuers: (1..=3).map(|i| KeyPin::from(issuer_key(i).id())).collect(),
            ..PublicationLimits::default()
        }
    }

    fn open(dir: &tempfile::TempDir) -> Registry<RedbStore> {
        let store = RedbStore::open(&dir.path().join("registry.redb")).unwrap();
        Registry::open(store, limits()).unwrap()
    }

    fn status(result: Result<IssuerId, PublishError>) -> u16 {
        result.map_or_else(|e| e.status(), |_| 204)
    }

    /// A set of issuer 1 with `keys` (indices of the fixtures' daily keys),
    /// fields adjusted by `adjust`, signed.
    fn custom(keys: &[u8], adjust: impl FnOnce(&mut KeySetFields)) -> Vec<u8> {
        let mut fields = key_set(1, keys).key_set().fields().clone();
        adjust(&mut fields);
        issuer_key(1)
            .sign_key_set(IssuerKeySet::new(fields).unwrap())
            .unwrap()
            .to_bytes()
    }

    /// Every publication rule, each refusal with its status (issue 11,
    /// item 11: what a registry and every validator apply alike).
    #[test]
    fn key_set_publications_keep_every_rule() {
        let dir = tempfile::tempdir().unwrap();
        let registry = open(&dir);
        let now = T0;
        // Not a recognised issuer.
        assert_eq!(
            status(registry.publish_key_set(&key_set(9, &[1]).to_bytes(), now)),
            403
        );
        // A forged signature.
        let mut forged = key_set(1, &[1]).to_bytes();
        let n = forged.len();
        forged[n - 1] ^= 1;
        assert_eq!(status(registry.publish_key_set(&forged, now)), 403);
        // Over-bounded or malformed bytes.
        assert_eq!(status(registry.publish_key_set(b"junk", now)), 400);
        let four = {
            let mut bytes = key_set(1, &[0, 1, 2]).key_set().to_bytes();
            // The key count byte of a set of three, made four.
            let count_at = 1 + 32 + 1 + "issuer1.example:4450".len() + 8;
            bytes[count_at] = 4;
            bytes
        };
        assert_eq!(status(registry.publish_key_set(&four, now)), 400);
        // Dated in the future, or with every key expired.
        let future = custom(&[1], |f| f.published_at = now + 3600);
        assert_eq!(status(registry.publish_key_set(&future, now)), 403);
        assert_eq!(
            status(registry.publish_key_set(&key_set(1, &[0]).to_bytes(), now + DAY)),
            403
        );
        // A key signing for less than the network allows (an hour).
        let short = custom(&[1], |f| {
            f.keys = vec![IssuerTokenKey {
                expires: f.keys[0].not_before + 3000,
                ..f.keys[0].clone()
            }];
        });
        assert!(matches!(
            registry.publish_key_set(&short, now),
            Err(PublishError::KeySet(KeySetRule::PeriodTooShort { .. }))
        ));

        // A good set; again: a refresh.
        let first = key_set(1, &[0, 1]).to_bytes();
        assert_eq!(status(registry.publish_key_set(&first, now)), 204);
        assert_eq!(status(registry.publish_key_set(&first, now + 60)), 204);
        // Another set signed the same second: the first word stays.
        let twin = custom(&[1], |_| {});
        assert!(matches!(
            registry.publish_key_set(&twin, now),
            Err(PublishError::KeySetConflict)
        ));
        // The rotation: the next key, starting where key 1's window ends.
        let rotated = key_set_at(1, &[0, 1, 2], T0).to_bytes();
        assert_eq!(status(registry.publish_key_set(&rotated, now)), 204);
        // The older one again: a replay.
        assert!(matches!(
            registry.publish_key_set(&first, now),
            Err(PublishError::NotNewer { .. })
        ));
        // A fresh key replacing key 2 before key 2's window ends (it may
        // not have begun): refused, so the issuer cannot split users by
        // when they refill.
        let replaced = custom(&[1], |f| {
            f.published_at = T0 + 10;
            let mut fresh = token_key(3, DAY);
            fresh.not_before = T0 + DAY + 600;
            fresh.expires = fresh.not_before + 2 * DAY;
            f.keys.push(fresh);
        });
        assert!(matches!(
            registry.publish_key_set(&replaced, now + 10),
            Err(PublishError::EarlyKey { until, .. }) if until == T0 + 2 * DAY
        ));
        // Dropping a key (after a compromise) is allowed.
        let dropped = key_set_at(1, &[1], T0 + 20).to_bytes();
        assert_eq!(status(registry.publish_key_set(&dropped, now + 20)), 204);
        assert_eq!(
            registry.key_set_votes(now + 20),
            vec![IssuerVote {
                issuer: issuer_key(1).id(),
                digest: SignedIssuerKeySet::from_bytes(&dropped).unwrap().digest(),
            }]
        );
    }

    /// The registry holds an older set a current vote names (a validator
    /// forwards it), keeps a bounded history, lists the elected set by its
    /// digest and reports one it lacks; expired sets go; all of it survives
    /// a restart.
    #[test]
    fn elected_key_sets_are_listed_by_digest() {
        let dir = tempfile::tempdir().unwrap();
        let now = T0;
        let (older, newer) = (key_set(1, &[0, 1]), key_set_at(1, &[0, 1, 2], T0));
        {
            let registry = open(&dir);
            registry.publish_key_set(&newer.to_bytes(), now).unwrap();
            assert!(registry.publish_key_set(&older.to_bytes(), now).is_err());
            registry
                .store_voted_key_set(&older.to_bytes(), now)
                .unwrap();
            assert!(registry.holds_key_set(&issuer_key(1).id(), &older.digest()));
            // The validators elected the older one.
            let vote = |digest| {
                Vote::new(fixture::validator_key(0).id(), now, Vec::new())
                    .unwrap()
                    .with_issuers(vec![IssuerVote {
                        issuer: issuer_key(1).id(),
                        digest,
                    }])
                    .unwrap()
            };
            let votes = [vote(older.digest()), vote(older.digest())];
            let elected = tally_issuers(votes.iter());
            let (directory, missing) = registry
                .with_elected_key_sets(fixture::directory(1), &elected)
                .unwrap();
            assert!(missing.is_empty());
            assert_eq!(directory.key_sets(), std::slice::from_ref(&older));
            // A set the registry never saw is wanted and reported missing.
            let unseen = key_set_at(1, &[1, 2], T0 + 5);
            let elected = tally_issuers([vote(unseen.digest()), vote(unseen.digest())].iter());
            let (directory, missing) = registry
                .with_elected_key_sets(fixture::directory(1), &elected)
                .unwrap();
            assert!(directory.key_sets().is_empty());
            assert_eq!(missing, vec![issuer_key(1).id()]);
            assert_eq!(
                registry.wanted_key_sets(&vote(unseen.digest()), now),
                vec![issuer_key(1).id()]
            );
            // Only so many sets are kept per issuer.
            for i in 0..2 * KEY_SET_HISTORY as u64 {
                let set = key_set_at(1, &[1, 2], T0 + 100 + i);
                registry.store_voted_key_set(&set.to_bytes(), now).unwrap();
            }
            assert!(!registry.holds_key_set(&issuer_key(1).id(), &older.digest()));
            let held = registry.index(now).key_sets.by_issuer[&issuer_key(1).id()].len();
            assert_eq!(held, KEY_SET_HISTORY);
        }
        // After a restart the newest is still held and voted for.
        let registry = open(&dir);
        let newest = key_set_at(1, &[1, 2], T0 + 100 + 2 * KEY_SET_HISTORY as u64 - 1);
        assert_eq!(
            registry.key_set_votes(now),
            vec![IssuerVote {
                issuer: issuer_key(1).id(),
                digest: newest.digest(),
            }]
        );
        // Once every key expired, the sets are forgotten.
        let later = newest.key_set().expires();
        assert!(registry.key_set_votes(later).is_empty());
        assert_eq!(registry.prune(later).unwrap().key_sets, KEY_SET_HISTORY);
        drop(registry);
        assert!(open(&dir).newest_key_set(&issuer_key(1).id()).is_none());
    }
}
