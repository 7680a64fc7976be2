#![doc = include_str!("../README.md")]

pub mod chain;
mod diffs;
pub mod key_sets;
pub mod keyfile;
pub mod measurements;
mod publication;
pub mod publisher;
pub mod relay_tee;
pub mod service;
pub mod settle;
mod store;
pub mod validator;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};

use openrelay_config::PublicationLimits;
use openrelay_directory::vote::{Elected, Vote, VoteEntry};
use openrelay_directory::{
    AddressClass, BadKeySetSignature, BadProfileSignature, DescriptorError, Directory, FormatError,
    OperatorId, OperatorProfile, RelayDescriptor, RelayId, SignedDescriptor, SignedDirectory,
    SignedIssuerKeySet, SignedOperatorProfile,
};
use openrelay_types::KeyPin;
use tracing::warn;

pub use key_sets::{KEY_SET_HISTORY, KeySetRule, check_key_set};
pub use store::{KeySetEntry, RedbStore, RegistryStore, StoreError, Timed};

/// Why a publication was refused. Each maps to its own HTTP status
/// ([`PublishError::status`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The bytes are not a canonical descriptor or profile.
    #[error("malformed: {0}")]
    Malformed(#[from] FormatError),
    /// A descriptor signature or validity window is wrong.
    #[error("descriptor refused: {0}")]
    Descriptor(#[from] DescriptorError),
    /// The profile's signature is wrong.
    #[error("profile refused: {0}")]
    Profile(#[from] BadProfileSignature),
    /// The descriptor's operator has not published a profile yet.
    #[error("the descriptor's operator has not published its profile")]
    UnknownOperator,
    /// Another live relay already holds this QUIC key (and proved it).
    #[error("another relay already holds this QUIC key")]
    PinClaimed,
    /// Not newer than what is stored: a replay, or a relay whose clock went
    /// back. A descriptor must start later than the stored one, a profile be
    /// signed later (or be the very same profile).
    #[error("not newer than the stored one (stored: {stored}, this one: {offered})")]
    NotNewer {
        /// The stored descriptor's `not_before` or profile's `published_at`.
        stored: u64,
        /// This publication's.
        offered: u64,
    },
    /// A different profile signed at the same second as the stored one.
    #[error("a different profile with the same published_at is stored")]
    ProfileConflict,
    /// An issuer key set's signature is wrong.
    #[error("key set refused: {0}")]
    KeySetSignature(#[from] BadKeySetSignature),
    /// An issuer key set breaks a publication rule.
    #[error("key set refused: {0}")]
    KeySet(#[from] KeySetRule),
    /// A different key set of the issuer signed at the same second as the
    /// held one (the first one stays).
    #[error("a different key set of this issuer with the same published_at is held")]
    KeySetConflict,
    /// A key set adds a key that starts before the last issuing window of
    /// the held set ends: it would replace the key users refill with now.
    #[error(
        "a new key starts at {not_before}, before the last published issuing window ends ({until})"
    )]
    EarlyKey {
        /// The new key's start.
        not_before: u64,
        /// The end of the held set's last issuing window.
        until: u64,
    },
    /// An endpoint's address is loopback, private, link-local or otherwise
    /// special-purpose, and this registry is not configured for a local
    /// network.
    #[error("endpoint {endpoint} is a {class} address (not accepted here)")]
    SpecialPurposeEndpoint {
        /// The endpoint.
        endpoint: SocketAddr,
        /// Its class.
        class: AddressClass,
    },
    /// The operator already has the most live relays allowed.
    #[error("operator already has {limit} live relays, the most allowed")]
    OperatorFull {
        /// `publication.max_relays_per_operator`.
        limit: usize,
    },
    /// The registry holds the most relays (or profiles) it will; retry after
    /// some have left.
    #[error("the registry holds {limit} {what}, the most it will; retry later")]
    Full {
        /// Relays or operator profiles.
        what: &'static str,
        /// The limit.
        limit: usize,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl PublishError {
    /// The HTTP status this refusal is answered with.
    pub fn status(&self) -> u16 {
        match self {
            PublishError::Malformed(_) => 400,
            PublishError::Descriptor(_)
            | PublishError::Profile(_)
            | PublishError::KeySetSignature(_)
            | PublishError::KeySet(_)
            | PublishError::SpecialPurposeEndpoint { .. }
            | PublishError::OperatorFull { .. } => 403,
            PublishError::PinClaimed
            | PublishError::NotNewer { .. }
            | PublishError::ProfileConflict
            | PublishError::KeySetConflict
            | PublishError::EarlyKey { .. } => 409,
            PublishError::UnknownOperator => 422,
            PublishError::Full { .. } => 503,
            PublishError::Store(_) => 500,
        }
    }
}

/// Why no directory could be assembled or recorded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AssembleError {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The contents do not make a valid directory.
    #[error("cannot assemble a directory: {0}")]
    Format(#[from] FormatError),
    /// The directory cannot be anchored at the chain's block.
    #[error("cannot anchor the directory on chain: {0}")]
    Chain(#[from] chain::ChainSectionError),
}

/// What [`Registry::prune`] forgot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Descriptors past their own `not_after`.
    pub descriptors: usize,
    /// Profiles of operators without a live relay for a TTL.
    pub profiles: usize,
    /// Issuer key sets whose keys have all expired.
    pub key_sets: usize,
}

#[derive(Debug, Clone)]
struct StoredDescriptor {
    /// The newest publication: liveness and votes follow it.
    signed: SignedDescriptor,
    /// An earlier publication saying the same (`same_except_freshness`)
    /// that directories keep listing while its window covers theirs, so a
    /// relay re-signing unchanged every minute changes no directory bytes
    /// (`None`: the newest is listed). Not stored: after a restart the
    /// newest is listed once.
    listed: Option<SignedDescriptor>,
    /// Live until then: the last publication plus the TTL, capped at the
    /// descriptor's `not_after`. Kept after that (not live) until
    /// `not_after`, so a replay of it cannot bring the relay back.
    expires_at: u64,
}

impl StoredDescriptor {
    fn not_before(&self) -> u64 {
        self.signed.descriptor().fields().not_before
    }

    /// What a directory valid over `[issued_at, valid_until]` lists: the
    /// listed publication while its window covers that, else the newest.
    fn for_directory(&self, issued_at: u64, valid_until: u64) -> &SignedDescriptor {
        self.listed
            .as_ref()
            .filter(|l| {
                let f = l.descriptor().fields();
                f.not_before <= issued_at && f.not_after >= valid_until
            })
            .unwrap_or(&self.signed)
    }
}

#[derive(Debug, Clone)]
struct StoredProfile {
    signed: SignedOperatorProfile,
    received_at: u64,
}

/// Everything published, parsed, with what the rules ask about kept
/// current (live relays per operator, live QUIC keys), so a publication
/// costs `O(log n)`, not a pass over all relays. Time only moves forward:
/// [`Index::advance`] retires relays whose TTL ran out.
#[derive(Debug, Default)]
struct Index {
    relays: HashMap<RelayId, StoredDescriptor>,
    /// The live relays by expiry.
    expiry: BTreeSet<(u64, RelayId)>,
    live_per_operator: HashMap<OperatorId, usize>,
    live_pins: HashMap<KeyPin, RelayId>,
    profiles: HashMap<OperatorId, StoredProfile>,
    key_sets: key_sets::KeySets,
    now: u64,
}

/// A relay's descriptor held by a registry, with its operator's profile if
/// held (a chain-backed registry needs the profile to admit it).
pub type HeldDescriptor = (RelayDescriptor, Option<OperatorProfile>);

impl Index {
    /// The profile held of `operator`.
    fn profile(&self, operator: OperatorId) -> Option<&OperatorProfile> {
        self.profiles.get(&operator).map(|p| p.signed.profile())
    }

    /// Retires the relays whose TTL ran out by `now`.
    fn advance(&mut self, now: u64) {
        self.now = self.now.max(now);
        while let Some(&(expires_at, relay)) = self.expiry.first() {
            if expires_at > self.now {
                break;
            }
            self.expiry.pop_first();
            if let Some(d) = self.relays.get(&relay) {
                let (operator, pin) = (
                    d.signed.descriptor().operator(),
                    d.signed.descriptor().quic_pin(),
                );
                self.forget_live(operator, pin, relay);
            }
        }
    }

    fn forget_live(&mut self, operator: OperatorId, pin: KeyPin, relay: RelayId) {
        if let Some(n) = self.live_per_operator.get_mut(&operator) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.live_per_operator.remove(&operator);
            }
        }
        if self.live_pins.get(&pin) == Some(&relay) {
            self.live_pins.remove(&pin);
        }
    }

    fn is_live(&self, relay: &RelayId) -> bool {
        self.relays
            .get(relay)
            .is_some_and(|d| self.expiry.contains(&(d.expires_at, *relay)))
    }

    fn live_count(&self) -> usize {
        self.expiry.len()
    }

    /// Stores `stored`, replacing (and un-counting) an earlier entry, live
    /// while its expiry is ahead.
    fn insert(&mut self, stored: StoredDescriptor) {
        let relay = stored.signed.descriptor().relay();
        self.remove(&relay);
        if stored.expires_at > self.now {
            self.expiry.insert((stored.expires_at, relay));
            *self
                .live_per_operator
                .entry(stored.signed.descriptor().operator())
                .or_default() += 1;
            self.live_pins
                .insert(stored.signed.descriptor().quic_pin(), relay);
        }
        self.relays.insert(relay, stored);
    }

    fn remove(&mut self, relay: &RelayId) {
        let Some(old) = self.relays.remove(relay) else {
            return;
        };
        if self.expiry.remove(&(old.expires_at, *relay)) {
            let d = old.signed.descriptor();
            self.forget_live(d.operator(), d.quic_pin(), *relay);
        }
    }

    fn live(&self) -> impl Iterator<Item = &StoredDescriptor> + '_ {
        self.expiry.iter().filter_map(|(_, r)| self.relays.get(r))
    }
}

/// The registry's (or a validator's) view of the relays, over a store.
#[derive(Debug)]
pub struct Registry<S> {
    store: S,
    limits: PublicationLimits,
    index: Mutex<Index>,
}

impl<S: RegistryStore> Registry<S> {
    /// Opens the registry kept in `store`: everything stored is parsed once,
    /// here. An entry that no longer parses (a corrupted file, or a format
    /// this version no longer reads) is dropped and forgotten.
    pub fn open(store: S, limits: PublicationLimits) -> Result<Self, StoreError> {
        let mut index = Index::default();
        let mut unreadable_relays = Vec::new();
        let mut unreadable_operators = Vec::new();
        for entry in store.descriptors()? {
            match SignedDescriptor::from_bytes(&entry.bytes) {
                Ok(signed) if signed.descriptor().relay().as_bytes() == &entry.key => {
                    index.insert(StoredDescriptor {
                        signed,
                        listed: None,
                        expires_at: entry.time,
                    });
                }
                _ => unreadable_relays.push(entry.key),
            }
        }
        for entry in store.profiles()? {
            match SignedOperatorProfile::from_bytes(&entry.bytes) {
                Ok(signed) if signed.profile().operator().as_bytes() == &entry.key => {
                    let operator = signed.profile().operator();
                    index.profiles.insert(
                        operator,
                        StoredProfile {
                            signed,
                            received_at: entry.time,
                        },
                    );
                }
                _ => unreadable_operators.push(entry.key),
            }
        }
        let mut unreadable_key_sets = Vec::new();
        for entry in store.key_sets()? {
            match SignedIssuerKeySet::from_bytes(&entry.bytes) {
                Ok(signed)
                    if signed.key_set().issuer().as_bytes() == &entry.issuer
                        && signed.digest().as_bytes() == &entry.digest =>
                {
                    index.key_sets.insert(key_sets::StoredKeySet {
                        digest: signed.digest(),
                        signed,
                    });
                }
                _ => unreadable_key_sets.push((entry.issuer, entry.digest)),
            }
        }
        if !unreadable_relays.is_empty()
            || !unreadable_operators.is_empty()
            || !unreadable_key_sets.is_empty()
        {
            warn!(
                descriptors = unreadable_relays.len(),
                profiles = unreadable_operators.len(),
                key_sets = unreadable_key_sets.len(),
                "dropping stored entries that no longer parse"
            );
            store.remove(&unreadable_relays, &unreadable_operators)?;
            store.remove_key_sets(&unreadable_key_sets)?;
        }
        Ok(Registry {
            store,
            limits,
            index: Mutex::new(index),
        })
    }

    /// The index, advanced to `now`.
    fn index(&self, now: u64) -> MutexGuard<'_, Index> {
        let mut index = self
            .index
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        index.advance(now);
        index
    }

    /// Accepts an operator's signed profile at `now`: one signed later than
    /// the stored one replaces it; the very same one refreshes it; an older
    /// one is a replay ([`PublishError::NotNewer`]).
    pub fn publish_profile(&self, bytes: &[u8], now: u64) -> Result<OperatorId, PublishError> {
        let signed = SignedOperatorProfile::from_bytes(bytes)?;
        signed.verify()?;
        let operator = signed.profile().operator();
        let offered = signed.profile().published_at();
        let mut index = self.index(now);
        match index.profiles.get(&operator) {
            Some(stored) if offered < stored.signed.profile().published_at() => {
                return Err(PublishError::NotNewer {
                    stored: stored.signed.profile().published_at(),
                    offered,
                });
            }
            Some(stored)
                if offered == stored.signed.profile().published_at() && stored.signed != signed =>
            {
                return Err(PublishError::ProfileConflict);
            }
            Some(_) => {}
            None => {
                // Profiles arrive before their relays' descriptors; bound
                // those of operators without a live relay as well.
                let limit = 2 * self.limits.max_relays;
                if index.profiles.len() >= limit {
                    return Err(PublishError::Full {
                        what: "operator profiles",
                        limit,
                    });
                }
            }
        }
        self.store
            .put_profile(operator.as_bytes(), &signed.to_bytes(), now)?;
        index.profiles.insert(
            operator,
            StoredProfile {
                signed,
                received_at: now,
            },
        );
        Ok(operator)
    }

    /// Accepts (or refreshes) a relay's signed descriptor at time `now`.
    pub fn publish_descriptor(&self, bytes: &[u8], now: u64) -> Result<RelayId, PublishError> {
        let signed = SignedDescriptor::from_bytes(bytes)?;
        signed.verify(now)?;
        let descriptor = signed.descriptor();
        if !self.limits.dangerously_allow_special_purpose_endpoints
            && let Some((endpoint, class)) = descriptor.special_purpose_endpoint()
        {
            return Err(PublishError::SpecialPurposeEndpoint { endpoint, class });
        }
        let relay = descriptor.relay();
        let operator = descriptor.operator();
        let mut index = self.index(now);
        if !index.profiles.contains_key(&operator) {
            return Err(PublishError::UnknownOperator);
        }
        if let Some(stored) = index.relays.get(&relay)
            && descriptor.fields().not_before <= stored.not_before()
        {
            return Err(PublishError::NotNewer {
                stored: stored.not_before(),
                offered: descriptor.fields().not_before,
            });
        }
        if index
            .live_pins
            .get(&descriptor.quic_pin())
            .is_some_and(|holder| *holder != relay)
        {
            return Err(PublishError::PinClaimed);
        }
        if !index.is_live(&relay) {
            self.admit(&mut index, operator, now)?;
        }
        let expires_at = now
            .saturating_add(self.limits.descriptor_ttl_secs)
            .min(descriptor.fields().not_after);
        // A live relay republishing the same content keeps what is listed.
        let listed = index
            .relays
            .get(&relay)
            .filter(|_| index.is_live(&relay))
            .map(|old| old.listed.as_ref().unwrap_or(&old.signed))
            .filter(|l| l.descriptor().same_except_freshness(descriptor))
            .cloned();
        self.store
            .put_descriptor(relay.as_bytes(), &signed.to_bytes(), expires_at)?;
        index.insert(StoredDescriptor {
            signed,
            listed,
            expires_at,
        });
        Ok(relay)
    }

    /// Makes room for one more live relay of `operator`, or refuses.
    fn admit(&self, index: &mut Index, operator: OperatorId, now: u64) -> Result<(), PublishError> {
        let own = index.live_per_operator.get(&operator).copied().unwrap_or(0);
        if own >= self.limits.max_relays_per_operator {
            return Err(PublishError::OperatorFull {
                limit: self.limits.max_relays_per_operator,
            });
        }
        if index.live_count() >= self.limits.max_relays {
            return Err(PublishError::Full {
                what: "live relays",
                limit: self.limits.max_relays,
            });
        }
        // Entries that are no longer live are kept until their `not_after`
        // (so a replay cannot revive them), but only so many: past that,
        // the one that stopped being live first goes.
        if index.relays.len() >= 2 * self.limits.max_relays
            && let Some(oldest) = index
                .relays
                .iter()
                .filter(|(_, d)| d.expires_at <= now)
                .min_by_key(|(_, d)| d.expires_at)
                .map(|(id, _)| *id)
        {
            index.remove(&oldest);
            self.store.remove(&[oldest.to_bytes()], &[])?;
        }
        Ok(())
    }

    /// Live descriptors (published within their TTL), sorted by relay id.
    pub fn live(&self, now: u64) -> Vec<SignedDescriptor> {
        let index = self.index(now);
        let mut live: Vec<SignedDescriptor> = index.live().map(|d| d.signed.clone()).collect();
        live.sort_by_key(|d| d.descriptor().relay());
        live
    }

    /// Forgets descriptors past their own `not_after` and the profiles of
    /// operators that have had no live relay for a TTL; makes every earlier
    /// write durable.
    pub fn prune(&self, now: u64) -> Result<Pruned, StoreError> {
        let mut index = self.index(now);
        let relays: Vec<RelayId> = index
            .relays
            .iter()
            .filter(|(_, d)| now >= d.signed.descriptor().fields().not_after)
            .map(|(id, _)| *id)
            .collect();
        for relay in &relays {
            index.remove(relay);
        }
        let ttl = self.limits.descriptor_ttl_secs;
        let operators: Vec<OperatorId> = index
            .profiles
            .iter()
            .filter(|(id, p)| {
                !index.live_per_operator.contains_key(id)
                    && p.received_at.saturating_add(ttl) <= now
            })
            .map(|(id, _)| *id)
            .collect();
        for operator in &operators {
            index.profiles.remove(operator);
        }
        let relay_keys: Vec<[u8; 32]> = relays.iter().map(RelayId::to_bytes).collect();
        let operator_keys: Vec<[u8; 32]> = operators.iter().map(OperatorId::to_bytes).collect();
        drop(index);
        self.store.remove(&relay_keys, &operator_keys)?;
        let key_sets = self.prune_key_sets(now)?;
        Ok(Pruned {
            descriptors: relays.len(),
            profiles: operators.len(),
            key_sets,
        })
    }

    /// How many operator profiles are kept.
    pub fn profile_count(&self) -> usize {
        self.index(0).profiles.len()
    }

    /// What a validator votes for at `now`: every live relay whose newest
    /// descriptor here is valid from now until at least `valid_until` (so
    /// it can be listed in a directory valid that long).
    pub fn vote_entries(&self, now: u64, valid_until: u64) -> Vec<VoteEntry> {
        self.vote_entries_admitted(now, valid_until, |_, _| true)
    }

    /// [`Registry::vote_entries`] for the relays whose newest descriptor
    /// here `admit` accepts with its operator's profile held here (a
    /// validator on a chain votes only for relays its own chain view
    /// admits).
    pub fn vote_entries_admitted(
        &self,
        now: u64,
        valid_until: u64,
        admit: impl Fn(&RelayDescriptor, Option<&OperatorProfile>) -> bool,
    ) -> Vec<VoteEntry> {
        let index = self.index(now);
        let mut entries: Vec<VoteEntry> = index
            .live()
            .filter(|d| {
                let descriptor = d.signed.descriptor();
                let f = descriptor.fields();
                f.not_before <= now
                    && f.not_after >= valid_until
                    && admit(descriptor, index.profile(descriptor.operator()))
            })
            .map(|d| VoteEntry {
                relay: d.signed.descriptor().relay(),
                not_before: d.not_before(),
            })
            .collect();
        entries.sort();
        entries
    }

    /// The relays `vote` lists that this registry has no live descriptor of,
    /// or only an older one than the vote names: the voter should forward
    /// its copies.
    pub fn wanted(&self, vote: &Vote, now: u64) -> Vec<RelayId> {
        let index = self.index(now);
        vote.entries()
            .iter()
            .filter(|e| {
                !index.is_live(&e.relay)
                    || index
                        .relays
                        .get(&e.relay)
                        .is_none_or(|d| d.not_before() < e.not_before)
            })
            .map(|e| e.relay)
            .collect()
    }

    /// The descriptor of `relay` held here (live or not), with its
    /// operator's profile if held.
    pub fn descriptor(&self, relay: &RelayId) -> Option<HeldDescriptor> {
        let index = self.index(0);
        let descriptor = index.relays.get(relay)?.signed.descriptor();
        let profile = index.profile(descriptor.operator()).cloned();
        Some((descriptor.clone(), profile))
    }

    /// The signed profile and descriptor of `relay` as stored here, to
    /// forward to a registry that lacks them.
    pub fn publication_of(&self, relay: &RelayId) -> Option<(Vec<u8>, Vec<u8>)> {
        let index = self.index(0);
        let descriptor = index.relays.get(relay)?;
        let profile = index
            .profiles
            .get(&descriptor.signed.descriptor().operator())?;
        Some((profile.signed.to_bytes(), descriptor.signed.to_bytes()))
    }

    /// The directory listing the `elected` relays this registry has a live
    /// descriptor of that is valid over `[issued_at, valid_until]`, with
    /// their operators' profiles. Elected relays it lacks are left out (and
    /// the validators then refuse it until they forwarded them); returns
    /// those too.
    pub fn assemble(
        &self,
        elected: &BTreeMap<RelayId, Elected>,
        sequence: u64,
        issued_at: u64,
        valid_until: u64,
    ) -> Result<(Directory, Vec<RelayId>), AssembleError> {
        self.assemble_admitted(elected, sequence, issued_at, valid_until, |_, _| true)
    }

    /// [`Registry::assemble`] listing only the elected relays whose held
    /// descriptor `admit` accepts with its operator's held profile (the
    /// chain's admission, issue 13); the others are left out and not
    /// counted missing.
    pub fn assemble_admitted(
        &self,
        elected: &BTreeMap<RelayId, Elected>,
        sequence: u64,
        issued_at: u64,
        valid_until: u64,
        admit: impl Fn(&RelayDescriptor, Option<&OperatorProfile>) -> bool,
    ) -> Result<(Directory, Vec<RelayId>), AssembleError> {
        let mut index = self.index(issued_at);
        let mut descriptors = Vec::with_capacity(elected.len());
        let mut missing = Vec::new();
        for relay in elected.keys() {
            let usable = index
                .relays
                .get(relay)
                .filter(|_| index.is_live(relay))
                .map(|d| d.for_directory(issued_at, valid_until))
                .filter(|d| {
                    let f = d.descriptor().fields();
                    f.not_before <= issued_at && f.not_after >= valid_until
                });
            match usable {
                Some(d) if !admit(d.descriptor(), index.profile(d.descriptor().operator())) => {}
                Some(d) => descriptors.push(d.clone()),
                None => missing.push(*relay),
            }
        }
        // A listed publication whose window ran short gives way to the
        // newest, which stays listed from now on while unchanged.
        for stored in index.relays.values_mut() {
            if stored
                .listed
                .as_ref()
                .is_some_and(|l| l.descriptor().fields().not_after < valid_until)
            {
                stored.listed = None;
            }
        }
        let operators: BTreeSet<OperatorId> = descriptors
            .iter()
            .map(|d| d.descriptor().operator())
            .collect();
        let profiles = operators
            .iter()
            .filter_map(|op| index.profiles.get(op).map(|p| p.signed.clone()))
            .collect();
        let directory = Directory::new(sequence, issued_at, valid_until, profiles, descriptors)?;
        Ok((directory, missing))
    }

    /// Records a validator-signed directory as the one to serve.
    pub fn record(&self, signed: &SignedDirectory) -> Result<u64, AssembleError> {
        let sequence = Directory::from_bytes(&signed.directory)?.sequence();
        self.store.put_directory(sequence, &signed.to_bytes())?;
        Ok(sequence)
    }

    /// The newest recorded signed directory.
    pub fn latest(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.store.latest_directory()?.map(|(_, signed)| signed))
    }

    /// The store (for the validator's record and the proposal sequence).
    pub fn store(&self) -> &S {
        &self.store
    }
}

/// Whether two directories list the same relays saying the same things, the
/// same operator profiles and the same issuer key sets, apart from validity
/// windows and when profiles were signed: relays refresh their descriptors
/// every minute or so, and that alone is no reason for a new directory.
pub fn same_contents(a: &Directory, b: &Directory) -> bool {
    a.key_sets() == b.key_sets()
        && a.descriptors().len() == b.descriptors().len()
        && a.operators().len() == b.operators().len()
        && a.descriptors()
            .iter()
            .zip(b.descriptors())
            .all(|(x, y)| x.descriptor().same_except_freshness(y.descriptor()))
        && a.operators()
            .iter()
            .zip(b.operators())
            .all(|(x, y)| x.profile().same_except_published_at(y.profile()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
