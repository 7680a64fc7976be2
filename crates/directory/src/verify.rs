//! What a client checks before it uses a directory (issue 3, item 3: "Clients
//! verify everything: every signature, the validator threshold, freshness (a
//! stale or rolled-back directory is refused) ... A forged, stale, replayed or
//! under-signed directory gets a clear error and changes nothing").
//!
//! [`verify_directory`] is the only way to get a [`VerifiedDirectory`], so
//! holding one means every check below passed.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use openrelay_types::{KeyPin, RelayRole};

use crate::chain::{BPS_PER_MBPS, ChainAnchor, ChainSection, RelayMeasurement};
use crate::descriptor::{DescriptorError, RelayDescriptor, SignedDescriptor, check_window_at};
use crate::directory::{
    DecodedListing, DescriptorPlaces, Directory, DirectoryDigest, DirectoryMessage,
    ListedDescriptor, SignedDirectory,
};
use crate::fields::{Network, Region};
use crate::issuer_keys::{IssuerKeySet, SignedIssuerKeySet};
use crate::keys::{IssuerId, OperatorId, RelayId, ValidatorId};
use crate::profile::OperatorProfile;
use crate::validator_set::{SignedValidatorSetChange, ValidatorSet};
use crate::{FormatError, MAX_CLOCK_SKEW_SECS, Signer};
use openrelay_types::{ErrorKind, HasKind};

/// How many of a validator set must sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Quorum {
    /// At least this many distinct members, whatever their weights: the
    /// k-of-n rule of a config's plain `validators`/`threshold`, which
    /// applies to its genesis set only.
    AtLeast(usize),
    /// Members holding more than two thirds of the set's weight (exactly two
    /// thirds is not enough): every set reached through a hand-over, and a
    /// genesis set given with weights.
    MoreThanTwoThirdsOfWeight,
}

/// Whom a client trusts to sign directories, and how old a directory may
/// be: a genesis validator set with its [`Quorum`], and the latest set the
/// client reached from it through verified hand-overs (the genesis set
/// until then).
///
/// Built from a config ([`TrustConfig::new`]: a plain validator list, equal
/// weights, k of n; [`TrustConfig::genesis`]: a weighted set, more than two
/// thirds), then moved forward with what verification proved
/// ([`TrustConfig::advanced`]) or what the caller persisted of it
/// ([`TrustConfig::resume`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustConfig {
    // Shared, not copied: a trust config is cloned for every directory a
    // process follows, and kept small inside the services' state.
    genesis: Arc<ValidatorSet>,
    genesis_quorum: Quorum,
    current: Arc<ValidatorSet>,
    max_age_secs: u64,
    /// The chain id and registry contract directories must be anchored
    /// at, if pinned ([`TrustConfig::pinned_to_deployment`]).
    deployment: Option<Deployment>,
}

/// A registry contract's deployment: its chain and address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Deployment {
    /// The chain's id.
    pub chain_id: u64,
    /// The registry contract's address.
    pub contract: [u8; 20],
}

impl std::fmt::Display for Deployment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "contract 0x")?;
        self.contract
            .iter()
            .try_for_each(|b| write!(f, "{b:02x}"))?;
        write!(f, " on chain {}", self.chain_id)
    }
}

/// Why a trust configuration is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrustConfigError {
    /// A threshold of 0 would accept a directory nobody signed.
    #[error("the validator threshold must be at least 1")]
    ZeroThreshold,
    /// More signatures needed than there are validators: nothing would verify.
    #[error("threshold {threshold} is more than the {validators} validators configured")]
    ThresholdTooHigh {
        /// The threshold asked for.
        threshold: usize,
        /// Distinct validators configured.
        validators: usize,
    },
    /// A validator listed twice would make k of n look stronger than it is.
    #[error("validator {0} is listed twice")]
    DuplicateValidator(ValidatorId),
    /// More validators than a directory can carry signatures of.
    #[error("at most {limit} validators")]
    TooManyValidators {
        /// [`MAX_DIRECTORY_SIGNATURES`](crate::MAX_DIRECTORY_SIGNATURES).
        limit: usize,
    },
    /// A maximum age of 0 accepts nothing.
    #[error("the maximum directory age must be more than 0 seconds")]
    ZeroMaxAge,
    /// A configured validator key is not a usable Ed25519 key.
    #[error("validator key: {0}")]
    ValidatorKey(#[from] crate::KeyError),
    /// The genesis validator set is not a valid set (empty, a weight of 0,
    /// weights overflowing).
    #[error("validator set: {0}")]
    ValidatorSet(FormatError),
    /// A persisted set to resume from is older than the set already
    /// trusted, or of the same epoch with other members.
    #[error("validator set of epoch {epoch} does not follow the trusted set of epoch {trusted}")]
    NotNewer {
        /// The set's epoch.
        epoch: u64,
        /// The trusted set's epoch.
        trusted: u64,
    },
}

impl HasKind for TrustConfigError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Config
    }
}

impl TrustConfig {
    /// [`TrustConfig::new`] for validators configured by their pinned keys
    /// (a config file's `validators`).
    pub fn from_pins(
        validators: &[openrelay_types::KeyPin],
        threshold: usize,
        max_age_secs: u64,
    ) -> Result<Self, TrustConfigError> {
        let validators = validators
            .iter()
            .map(|pin| ValidatorId::try_from(*pin))
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(validators, threshold, max_age_secs)
    }

    /// A config's `[directory]` genesis set: `validators` by their pinned
    /// keys, with `weights` (one per validator, in order) a weighted set
    /// ([`TrustConfig::genesis`]: more than two thirds, `threshold`
    /// unused), without them [`TrustConfig::new`] (equal weights,
    /// `threshold` of them).
    pub fn from_genesis_pins(
        validators: &[openrelay_types::KeyPin],
        threshold: usize,
        weights: Option<&[u128]>,
        max_age_secs: u64,
    ) -> Result<Self, TrustConfigError> {
        let Some(weights) = weights else {
            return Self::from_pins(validators, threshold, max_age_secs);
        };
        if weights.len() != validators.len() {
            return Err(TrustConfigError::ValidatorSet(FormatError::Invalid {
                field: "weights",
                reason: "one per validator",
            }));
        }
        let members = validators
            .iter()
            .zip(weights)
            .map(|(pin, &weight)| {
                Ok(crate::ValidatorMember {
                    validator: ValidatorId::try_from(*pin)?,
                    weight,
                })
            })
            .collect::<Result<Vec<_>, TrustConfigError>>()?;
        let mut ids: Vec<ValidatorId> = members.iter().map(|m| m.validator).collect();
        ids.sort();
        if let Some(pair) = ids.windows(2).find(|w| w.first() == w.get(1))
            && let Some(dup) = pair.first()
        {
            return Err(TrustConfigError::DuplicateValidator(*dup));
        }
        let set = ValidatorSet::new(0, members).map_err(TrustConfigError::ValidatorSet)?;
        Self::genesis(set, max_age_secs)
    }

    /// A config's plain validator list: the genesis set (epoch 0) of
    /// `validators` with equal weights, `threshold` distinct signatures of
    /// which are required on a directory it signs ([`Quorum::AtLeast`], the
    /// k-of-n rule of configs before the chain). A hand-over away from it
    /// needs more than two thirds of its members, like every hand-over, and
    /// every later set more than two thirds of its weight. A directory older
    /// than `max_age_secs` is refused even when its own `valid_until` has
    /// not passed. A majority threshold (`k > n/2`) is recommended: then two
    /// conflicting directories cannot both be signed unless some validator
    /// signs both.
    pub fn new(
        validators: impl IntoIterator<Item = ValidatorId>,
        threshold: usize,
        max_age_secs: u64,
    ) -> Result<Self, TrustConfigError> {
        let mut sorted: Vec<ValidatorId> = validators.into_iter().collect();
        sorted.sort();
        if let Some(pair) = sorted.windows(2).find(|w| w.first() == w.get(1))
            && let Some(dup) = pair.first()
        {
            return Err(TrustConfigError::DuplicateValidator(*dup));
        }
        if sorted.len() > crate::MAX_DIRECTORY_SIGNATURES {
            return Err(TrustConfigError::TooManyValidators {
                limit: crate::MAX_DIRECTORY_SIGNATURES,
            });
        }
        if threshold == 0 {
            return Err(TrustConfigError::ZeroThreshold);
        }
        if threshold > sorted.len() {
            return Err(TrustConfigError::ThresholdTooHigh {
                threshold,
                validators: sorted.len(),
            });
        }
        let set = ValidatorSet::equal_weights(0, sorted).map_err(TrustConfigError::ValidatorSet)?;
        Self::with_genesis(set, Quorum::AtLeast(threshold), max_age_secs)
    }

    /// A weighted genesis set (epoch 0 of the chain, or any later set the
    /// client was shipped with as a checkpoint): more than two thirds of
    /// its weight signs directories and hand-overs.
    pub fn genesis(set: ValidatorSet, max_age_secs: u64) -> Result<Self, TrustConfigError> {
        Self::with_genesis(set, Quorum::MoreThanTwoThirdsOfWeight, max_age_secs)
    }

    fn with_genesis(
        set: ValidatorSet,
        quorum: Quorum,
        max_age_secs: u64,
    ) -> Result<Self, TrustConfigError> {
        if max_age_secs == 0 {
            return Err(TrustConfigError::ZeroMaxAge);
        }
        let set = Arc::new(set);
        Ok(TrustConfig {
            genesis: Arc::clone(&set),
            genesis_quorum: quorum,
            current: set,
            max_age_secs,
            deployment: None,
        })
    }

    /// This trust accepting only directories anchored at `deployment`:
    /// a user who pins the network's registry contract notices if the
    /// validators move it to another deployment (or serve one without a
    /// chain section) instead of following them there.
    pub fn pinned_to_deployment(self, deployment: Deployment) -> TrustConfig {
        TrustConfig {
            deployment: Some(deployment),
            ..self
        }
    }

    /// This trust moved forward to the set that signed `verified` (a
    /// directory verified with this trust, or one moved forward from it):
    /// what to verify the next directory with, so it need not carry the
    /// hand-overs before that set. Persist
    /// [`VerifiedDirectory::validator_set`] (`ValidatorSet::to_bytes`) to
    /// keep it across restarts, and [`TrustConfig::resume`] from it.
    pub fn advanced(&self, verified: &VerifiedDirectory) -> TrustConfig {
        self.resume(verified.validator_set().clone())
            .unwrap_or_else(|_| self.clone())
    }

    /// This trust moved forward to `set`, a set the caller verified before
    /// ([`VerifiedDirectory::validator_set`], persisted): accepted if its
    /// epoch is above the trusted set's, or if it is the trusted set.
    /// Anything else is [`TrustConfigError::NotNewer`]. Only pass what
    /// verification returned: a set given here is trusted as it is.
    pub fn resume(&self, set: ValidatorSet) -> Result<TrustConfig, TrustConfigError> {
        if set.epoch() > self.current.epoch() || set == *self.current {
            Ok(TrustConfig {
                current: Arc::new(set),
                ..self.clone()
            })
        } else {
            Err(TrustConfigError::NotNewer {
                epoch: set.epoch(),
                trusted: self.current.epoch(),
            })
        }
    }

    /// The genesis set.
    pub fn genesis_set(&self) -> &ValidatorSet {
        &self.genesis
    }

    /// The set trusted now: the genesis set, or the latest reached.
    pub fn validator_set(&self) -> &ValidatorSet {
        &self.current
    }

    /// The rule for the set trusted now: the genesis quorum while that is
    /// the genesis set, else more than two thirds of its weight.
    pub fn quorum(&self) -> Quorum {
        quorum_of(&self.current, &self.genesis, self.genesis_quorum)
    }

    /// The validators of the set trusted now, sorted.
    pub fn validators(&self) -> Vec<ValidatorId> {
        self.current.members().iter().map(|m| m.validator).collect()
    }

    /// How many distinct validators of the genesis set must sign under the
    /// k-of-n rule ([`Quorum::AtLeast`]); for a weighted rule, the fewest
    /// members that could hold more than two thirds of the trusted set's
    /// weight.
    pub fn threshold(&self) -> usize {
        match self.quorum() {
            Quorum::AtLeast(k) => k,
            Quorum::MoreThanTwoThirdsOfWeight => {
                let mut weights: Vec<u128> =
                    self.current.members().iter().map(|m| m.weight).collect();
                weights.sort_unstable_by(|a, b| b.cmp(a));
                let mut sum = 0u128;
                weights
                    .iter()
                    .position(|w| {
                        sum = sum.saturating_add(*w);
                        self.current.is_more_than_two_thirds(sum)
                    })
                    .map_or(weights.len(), |i| i + 1)
            }
        }
    }

    /// The oldest directory accepted, in seconds since it was issued.
    pub fn max_age_secs(&self) -> u64 {
        self.max_age_secs
    }
}

/// The quorum of `set`: the genesis rule for the genesis set itself, more
/// than two thirds of the weight for any set reached by a hand-over.
fn quorum_of(set: &ValidatorSet, genesis: &ValidatorSet, genesis_quorum: Quorum) -> Quorum {
    if set == genesis {
        genesis_quorum
    } else {
        Quorum::MoreThanTwoThirdsOfWeight
    }
}

/// What a client remembers of the last directory it accepted, to refuse
/// older ones (rollback) and a different one under the same sequence number
/// (equivocation). Persist it with the cached directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct LastSeen {
    /// Its sequence number.
    pub sequence: u64,
    /// When it was issued.
    pub issued_at: u64,
    /// SHA-256 of its directory bytes.
    pub digest: DirectoryDigest,
}

/// Why a directory was refused. Nothing about the client's state changes on
/// an error: the caller keeps its last good directory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DirectoryError {
    /// The bytes do not follow the format.
    #[error("malformed directory")]
    Malformed(#[from] FormatError),
    /// Fewer distinct trusted validators signed than the threshold requires.
    /// Signatures by unknown validators, repeated ones and bad ones do not
    /// count.
    #[error("directory has {valid} valid validator signatures, {needed} needed")]
    UnderSigned {
        /// Distinct trusted validators whose signature verified.
        valid: usize,
        /// The threshold.
        needed: usize,
    },
    /// Issued in the future (beyond the allowed clock skew): a wrong clock
    /// here or at the validators, or a document prepared in advance.
    #[error("directory issued at {issued_at}, in the future (now {now})")]
    FutureDated {
        /// When it says it was issued.
        issued_at: u64,
        /// The time checked.
        now: u64,
    },
    /// Its own validity has ended.
    #[error("directory expired at {valid_until} (now {now})")]
    Expired {
        /// End of validity.
        valid_until: u64,
        /// The time checked.
        now: u64,
    },
    /// Older than the client accepts (`TrustConfig::max_age_secs`): a
    /// replayed old document, or validators that stopped signing.
    #[error("directory is {age} s old, at most {max_age} s accepted")]
    Stale {
        /// Seconds since it was issued.
        age: u64,
        /// The maximum.
        max_age: u64,
    },
    /// Its sequence number is below that of a directory already accepted.
    #[error("directory sequence {sequence} is older than the last accepted ({last_sequence})")]
    RolledBack {
        /// Its sequence number.
        sequence: u64,
        /// The last accepted one.
        last_sequence: u64,
    },
    /// A newer sequence number but an earlier issue time than the last
    /// accepted directory: not a directory the validators issued in order.
    #[error("directory issued at {issued_at}, before the last accepted one ({last_issued_at})")]
    IssuedBeforeLastSeen {
        /// When it says it was issued.
        issued_at: u64,
        /// When the last accepted one was.
        last_issued_at: u64,
    },
    /// Same sequence number as the last accepted directory, different
    /// contents: the validators signed two versions (equivocation).
    #[error("a different directory with the already accepted sequence {sequence}")]
    Equivocation {
        /// The sequence number.
        sequence: u64,
    },
    /// Anchored at another registry deployment than the one pinned, or at
    /// none (`found` is `None`: a directory without a chain section).
    #[error("{}", match found {
        Some(found) => format!("directory is anchored at {found}, not the pinned {expected}"),
        None => format!("directory has no chain section; {expected} is pinned"),
    })]
    OtherDeployment {
        /// The pinned deployment.
        expected: Deployment,
        /// The directory's.
        found: Option<Deployment>,
    },
    /// A relay or operator signature inside the directory does not verify.
    #[error("bad signature by {which}")]
    BadSignature {
        /// Whose signature failed.
        which: Signer,
    },
    /// A descriptor is not yet valid.
    #[error("descriptor of relay {relay} not valid before {not_before}")]
    DescriptorNotYetValid {
        /// The relay.
        relay: RelayId,
        /// Start of its validity.
        not_before: u64,
    },
    /// A descriptor has expired.
    #[error("descriptor of relay {relay} expired at {not_after}")]
    DescriptorExpired {
        /// The relay.
        relay: RelayId,
        /// End of its validity.
        not_after: u64,
    },
    /// A descriptor's validity does not cover the directory's (it must be
    /// valid from `issued_at` to `valid_until`, so every relay of a cached
    /// directory stays valid as long as the directory does).
    #[error("descriptor of relay {relay} is not valid for the directory's whole validity")]
    DescriptorOutlivedByDirectory {
        /// The relay.
        relay: RelayId,
    },
    /// A descriptor names an operator whose profile is not in the directory.
    #[error("relay {relay} names operator {operator}, whose profile is missing")]
    UnknownOperator {
        /// The relay.
        relay: RelayId,
        /// The operator it names.
        operator: OperatorId,
    },
    /// Two descriptors carry the same QUIC key: one relay could be shown under
    /// two operators, defeating the operator check of path selection.
    #[error("QUIC key {pin} is claimed by two relays")]
    DuplicatePin {
        /// The key.
        pin: KeyPin,
    },
    /// A relay's signatures were asked for
    /// ([`VerifiedDirectory::check_relay_signatures`]) that the directory
    /// does not list.
    #[error("relay {relay} is not listed in the directory")]
    RelayNotListed {
        /// The relay.
        relay: RelayId,
    },
    /// A relay's bytes, kept in a file
    /// ([`VerifiedDirectory::keep_body_in`]), no longer read back as they
    /// were verified (the file was changed underneath): the relay is not
    /// used.
    #[error("relay {index} of the directory no longer reads back from its file as verified")]
    RelayUnreadable {
        /// The relay's place in the directory's order.
        index: usize,
    },
    /// Members of the signing set holding at most two thirds of its weight
    /// signed the directory.
    #[error(
        "directory signed by {signed_weight} of the {total_weight} weight of validator set \
         {epoch}; more than two thirds needed"
    )]
    UnderSignedWeight {
        /// The set's epoch.
        epoch: u64,
        /// The weight of the members whose signature verified.
        signed_weight: u128,
        /// The set's total weight.
        total_weight: u128,
    },
    /// A hand-over to `epoch` is signed by members of the previous set
    /// holding at most two thirds of its weight (signatures by the new set
    /// do not count).
    #[error(
        "hand-over to validator set {epoch} signed by {signed_weight} of the previous set's \
         {total_weight}; more than two thirds needed"
    )]
    HandOverUnderSigned {
        /// The new set's epoch.
        epoch: u64,
        /// The weight of the previous set's members whose signature verified.
        signed_weight: u128,
        /// The previous set's total weight.
        total_weight: u128,
    },
    /// The hand-overs skip an epoch after the trusted set's: no chain of
    /// signatures leads from what the client trusts to them.
    #[error("hand-overs jump to validator set {found}; {expected} was expected")]
    HandOverGap {
        /// The epoch the next hand-over must have.
        expected: u64,
        /// The epoch found.
        found: u64,
    },
    /// A hand-over names another set for the trusted epoch than the client
    /// trusts: validators signed two sets for one epoch (a fork).
    #[error("a hand-over names another validator set {epoch} than the one trusted")]
    HandOverForked {
        /// The epoch.
        epoch: u64,
    },
    /// A hand-over (or the directory, `epoch` being the directory's
    /// validator epoch) reflects another deployment than the hand-over
    /// before it, or a block not after it.
    #[error("the chain anchor at validator set {epoch} does not follow the previous one")]
    AnchorOutOfOrder {
        /// The epoch of the set whose anchor breaks the order.
        epoch: u64,
    },
    /// The envelope carries a hand-over beyond the set that signed the
    /// directory: that set was replaced, so its signatures no longer count.
    #[error("hand-over to validator set {epoch}, after the directory's set {directory_epoch}")]
    HandOverAfterDirectory {
        /// The hand-over's epoch.
        epoch: u64,
        /// The directory's validator epoch.
        directory_epoch: u64,
    },
    /// The directory names a validator set older than the one the client
    /// trusts: a replayed old set, or old keys signing after they left.
    #[error("directory signed by validator set {epoch}, older than the trusted set {trusted}")]
    ValidatorEpochBehind {
        /// The directory's validator epoch.
        epoch: u64,
        /// The trusted set's epoch.
        trusted: u64,
    },
    /// The directory names a validator set the hand-overs it carries do not
    /// reach.
    #[error("directory signed by validator set {epoch}; its hand-overs reach only {reached}")]
    ValidatorEpochUnreached {
        /// The directory's validator epoch.
        epoch: u64,
        /// The latest epoch reached.
        reached: u64,
    },
    /// A descriptor advertises more bandwidth than its relay registered on
    /// chain.
    #[error("relay {relay} advertises more bandwidth than it registered on chain")]
    BandwidthAboveChain {
        /// The relay.
        relay: RelayId,
    },
    /// An operator's listed relays register more bandwidth on chain than
    /// its stake covers.
    #[error("operator {operator} lists {registered_mbps} Mbit/s, its stake covers {covered_mbps}")]
    OperatorNotCovered {
        /// The operator.
        operator: OperatorId,
        /// The on-chain bandwidth of its listed relays, summed.
        registered_mbps: u64,
        /// What its stake covers.
        covered_mbps: u64,
    },
}

impl HasKind for DirectoryError {
    fn kind(&self) -> ErrorKind {
        match self {
            DirectoryError::Malformed(_) => ErrorKind::BadInput,
            // Everything else: the signed data does not prove what it must.
            _ => ErrorKind::NotAuthenticated,
        }
    }
}

impl From<DescriptorError> for DirectoryError {
    fn from(e: DescriptorError) -> Self {
        match e {
            DescriptorError::BadSignature { which } => DirectoryError::BadSignature { which },
            DescriptorError::NotYetValid {
                relay, not_before, ..
            } => DirectoryError::DescriptorNotYetValid { relay, not_before },
            DescriptorError::Expired {
                relay, not_after, ..
            } => DirectoryError::DescriptorExpired { relay, not_after },
        }
    }
}

impl Directory {
    /// Checks everything inside the directory that does not depend on who
    /// signed it or on what the client saw before: every operator profile's
    /// signature and every descriptor's three signatures, then
    /// [`Directory::check_listing`].
    ///
    /// Validators run this before signing (and a registry before it
    /// proposes); clients check the listing of every relay but the
    /// signatures only of the relays they use
    /// ([`VerifiedDirectory::check_relay_signatures`]). The first failure
    /// refuses the whole directory: a validator-signed document with a bad
    /// entry means a validator did not check, and dropping the entry
    /// silently would hide that.
    pub fn check_contents(&self, now: u64) -> Result<(), DirectoryError> {
        for profile in self.operators() {
            profile
                .verify()
                .map_err(|e| DirectoryError::BadSignature { which: e.which })?;
        }
        for signed in self.descriptors() {
            signed.verify_signatures()?;
        }
        self.check_listing(now)
    }

    /// Everything [`Directory::check_contents`] checks except the
    /// signatures of the profiles and descriptors: for every descriptor,
    /// that its operator's profile is present, its validity at `now` and
    /// over the directory's whole validity; that no QUIC key appears
    /// twice; every issuer key set's signature (at most
    /// [`MAX_ISSUERS`](crate::MAX_ISSUERS)); the chain section's figures.
    /// Cheap (no signature per relay): what a client checks of every relay
    /// when it accepts a directory.
    pub fn check_listing(&self, now: u64) -> Result<(), DirectoryError> {
        self.check_listed(&self.listed_descriptors(), now)
    }

    /// [`Directory::check_listing`] with `listed` what the listing says
    /// of each descriptor, in order (of this directory's descriptors, or of
    /// those it was decoded without:
    /// [`Directory::from_quorum_signed_bytes_listing_descriptors`]).
    fn check_listed(&self, listed: &[ListedDescriptor], now: u64) -> Result<(), DirectoryError> {
        let mut pins = Vec::with_capacity(listed.len());
        for d in listed {
            if d.operator_index.is_none() {
                return Err(DirectoryError::UnknownOperator {
                    relay: d.relay,
                    operator: d.operator,
                });
            }
            check_window_at(d.relay, d.not_before, d.not_after, now)?;
            if d.not_before > self.issued_at() || d.not_after < self.valid_until() {
                return Err(DirectoryError::DescriptorOutlivedByDirectory { relay: d.relay });
            }
            pins.push(d.quic_pin);
        }
        // Sorted rather than hashed: no hash of attacker-chosen keys, and
        // faster at 100,000 keys.
        pins.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        if let Some(pin) = pins.windows(2).find(|w| w[0] == w[1]).map(|w| w[0]) {
            return Err(DirectoryError::DuplicatePin { pin });
        }
        for set in self.key_sets() {
            set.verify()
                .map_err(|e| DirectoryError::BadSignature { which: e.which })?;
        }
        if let Some(chain) = self.chain() {
            check_chain_figures(listed, chain)?;
        }
        Ok(())
    }
}

/// The chain section's rules a client can check without a node: every
/// descriptor advertises at most what its relay registered on chain, and
/// every operator's listed relays register at most what its stake covers
/// (the contract's `isCovered`, on the listed relays; the format already
/// made both lists name exactly the directory's operators, in the
/// profiles' order, and relays).
fn check_chain_figures(
    listed: &[ListedDescriptor],
    chain: &ChainSection,
) -> Result<(), DirectoryError> {
    let mut registered = vec![0u64; chain.operators.len()];
    for (d, on_chain) in listed.iter().zip(&chain.relays) {
        if d.bandwidth_bps > u64::from(on_chain.bandwidth_mbps).saturating_mul(BPS_PER_MBPS) {
            return Err(DirectoryError::BandwidthAboveChain { relay: d.relay });
        }
        if let Some(sum) = d
            .operator_index
            .and_then(|o| registered.get_mut(o as usize))
        {
            *sum = sum.saturating_add(u64::from(on_chain.bandwidth_mbps));
        }
    }
    for (operator, registered_mbps) in chain.operators.iter().zip(registered) {
        if registered_mbps > operator.covered_mbps {
            return Err(DirectoryError::OperatorNotCovered {
                operator: operator.operator,
                registered_mbps,
                covered_mbps: operator.covered_mbps,
            });
        }
    }
    Ok(())
}

/// The set that signs a directory, reached from `trust`'s set through
/// `handovers`, and the quorum it needs.
///
/// Hand-overs at or below the trusted epoch are history the client is past
/// (one at the trusted epoch must name the trusted set, else
/// [`DirectoryError::HandOverForked`]); the next must be exactly one epoch
/// above, each signed by more than two thirds of the weight of the set
/// before it, each at a later block of the same deployment. With
/// `directory_epoch` (a format 5 directory) the walk must end exactly at
/// that epoch.
fn walk_handovers(
    trust: &TrustConfig,
    handovers: &[SignedValidatorSetChange],
    directory_head: Option<(ChainAnchor, u64)>,
) -> Result<(ValidatorSet, Quorum), DirectoryError> {
    let mut set = ValidatorSet::clone(&trust.current);
    let mut last_anchor: Option<ChainAnchor> = None;
    for handover in handovers {
        let change = handover.change();
        let epoch = change.epoch();
        if epoch < set.epoch() {
            continue;
        }
        if epoch == set.epoch() {
            if change.set() != &set {
                return Err(DirectoryError::HandOverForked { epoch });
            }
            last_anchor = Some(*change.anchor());
            continue;
        }
        let expected = set.epoch().saturating_add(1);
        if epoch != expected {
            return Err(DirectoryError::HandOverGap {
                expected,
                found: epoch,
            });
        }
        if let Some((_, directory_epoch)) = directory_head
            && epoch > directory_epoch
        {
            return Err(DirectoryError::HandOverAfterDirectory {
                epoch,
                directory_epoch,
            });
        }
        if let Some(previous) = last_anchor
            && !follows(&previous, change.anchor())
        {
            return Err(DirectoryError::AnchorOutOfOrder { epoch });
        }
        let (_, signed_weight) = set.signers(handover.signatures(), |s| handover.verifies(s));
        if !set.is_more_than_two_thirds(signed_weight) {
            return Err(DirectoryError::HandOverUnderSigned {
                epoch,
                signed_weight,
                total_weight: set.total_weight(),
            });
        }
        set = change.set().clone();
        last_anchor = Some(*change.anchor());
    }
    if let Some((anchor, epoch)) = directory_head {
        if epoch < set.epoch() {
            return Err(DirectoryError::ValidatorEpochBehind {
                epoch,
                trusted: set.epoch(),
            });
        }
        if epoch > set.epoch() {
            return Err(DirectoryError::ValidatorEpochUnreached {
                epoch,
                reached: set.epoch(),
            });
        }
        // The directory reflects a block no earlier than the hand-over to
        // its signers (the same block is fine: the registry may build a
        // directory at the block of the change).
        if let Some(previous) = last_anchor
            && !(previous.same_deployment(&anchor) && anchor.block_number >= previous.block_number)
        {
            return Err(DirectoryError::AnchorOutOfOrder { epoch });
        }
    }
    let quorum = quorum_of(&set, &trust.genesis, trust.genesis_quorum);
    Ok((set, quorum))
}

/// Whether `next` is a later block of `previous`'s deployment.
fn follows(previous: &ChainAnchor, next: &ChainAnchor) -> bool {
    previous.same_deployment(next) && next.block_number > previous.block_number
}

/// The members of `set` whose signature over the directory verifies (each
/// counted once), checked against `quorum`.
fn check_signers(
    signed: &SignedDirectory,
    message: &DirectoryMessage,
    set: &ValidatorSet,
    quorum: Quorum,
) -> Result<Vec<ValidatorId>, DirectoryError> {
    let (signers, signed_weight) = set.signers(&signed.signatures, |s| s.verifies_message(message));
    match quorum {
        Quorum::AtLeast(needed) if signers.len() < needed => Err(DirectoryError::UnderSigned {
            valid: signers.len(),
            needed,
        }),
        Quorum::MoreThanTwoThirdsOfWeight if !set.is_more_than_two_thirds(signed_weight) => {
            Err(DirectoryError::UnderSignedWeight {
                epoch: set.epoch(),
                signed_weight,
                total_weight: set.total_weight(),
            })
        }
        _ => Ok(signers),
    }
}

/// Checks freshness against `now`: not issued in the future (beyond
/// [`MAX_CLOCK_SKEW_SECS`]), not expired, not older than the trust config
/// allows.
fn check_fresh(directory: &Directory, trust: &TrustConfig, now: u64) -> Result<(), DirectoryError> {
    let issued_at = directory.issued_at();
    if issued_at > now.saturating_add(MAX_CLOCK_SKEW_SECS) {
        return Err(DirectoryError::FutureDated { issued_at, now });
    }
    if now >= directory.valid_until() {
        return Err(DirectoryError::Expired {
            valid_until: directory.valid_until(),
            now,
        });
    }
    let age = now.saturating_sub(issued_at);
    if age > trust.max_age_secs {
        return Err(DirectoryError::Stale {
            age,
            max_age: trust.max_age_secs,
        });
    }
    Ok(())
}

/// The rollback rule: a directory is accepted after `last` when its sequence
/// is higher and it was not issued earlier, or when it is the very same
/// directory (same sequence and digest: a cache reloaded or a refetch). The
/// same sequence with other contents is [`DirectoryError::Equivocation`].
fn check_not_rolled_back(
    directory: &Directory,
    digest: &DirectoryDigest,
    last: &LastSeen,
) -> Result<(), DirectoryError> {
    let sequence = directory.sequence();
    match sequence.cmp(&last.sequence) {
        std::cmp::Ordering::Less => Err(DirectoryError::RolledBack {
            sequence,
            last_sequence: last.sequence,
        }),
        std::cmp::Ordering::Equal if *digest != last.digest => {
            Err(DirectoryError::Equivocation { sequence })
        }
        std::cmp::Ordering::Equal => Ok(()),
        std::cmp::Ordering::Greater if directory.issued_at() < last.issued_at => {
            Err(DirectoryError::IssuedBeforeLastSeen {
                issued_at: directory.issued_at(),
                last_issued_at: last.issued_at,
            })
        }
        std::cmp::Ordering::Greater => Ok(()),
    }
}

/// Verifies a signed directory for use at `now` (Unix seconds), after the
/// client last accepted `last_seen` (`None` on first use).
///
/// In order, and stopping at the first failure:
/// 1. the validator set that signs it is reached from the trusted set
///    through the envelope's hand-overs (each signed by more than two
///    thirds of the weight of the set before it; see `walk_handovers`),
///    and it is the set the directory names (format 5; a format 3
///    directory is signed by the set reached);
/// 2. that set's quorum signed the directory bytes
///    ([`DirectoryError::UnderSigned`] for the k-of-n genesis rule,
///    [`DirectoryError::UnderSignedWeight`] otherwise); the bytes are
///    parsed only after this (only their first bytes were read for the
///    epoch);
/// 3. the bytes are a well-formed directory ([`DirectoryError::Malformed`]);
/// 4. it is fresh: not future-dated, not expired, not older than
///    `trust.max_age_secs()`;
/// 5. it is not a rollback or an equivocation relative to `last_seen`;
/// 6. every relay's listing checks out ([`Directory::check_listing`]:
///    operators present, validity windows, distinct QUIC keys, issuer key
///    sets, chain figures).
///
/// The profiles' and descriptors' own signatures are **not** checked here
/// but when a relay is first used
/// ([`VerifiedDirectory::check_relay_signatures`], cached): at 100 000
/// relays they are 300 000 signatures, seconds of work, and the quorum's
/// signatures already cover every byte of every descriptor, which each
/// validator checked in full ([`Directory::check_contents`]) before
/// signing. Checking a relay's own signatures before connecting to it
/// still refuses a relay the validators signed without checking: a
/// client never puts on a path a relay whose key, operator and QUIC key
/// did not all sign what the directory says of it.
///
/// On success, store [`VerifiedDirectory::last_seen`] for the next call,
/// and verify the next directory with [`TrustConfig::advanced`] (or persist
/// [`VerifiedDirectory::validator_set`]), so it need not carry the
/// hand-overs this one did.
pub fn verify_directory(
    signed: SignedDirectory,
    trust: &TrustConfig,
    now: u64,
    last_seen: Option<&LastSeen>,
) -> Result<VerifiedDirectory, DirectoryError> {
    if signed.directory.len() > crate::MAX_DIRECTORY_BYTES {
        return Err(FormatError::TooLarge {
            what: "directory",
            limit: crate::MAX_DIRECTORY_BYTES,
        }
        .into());
    }
    let head = Directory::peek_chain_head(&signed.directory)?;
    if let Some(expected) = trust.deployment {
        let found = head.map(|(anchor, _)| Deployment {
            chain_id: anchor.chain_id,
            contract: anchor.contract,
        });
        if found != Some(expected) {
            return Err(DirectoryError::OtherDeployment { expected, found });
        }
    }
    let (validator_set, quorum) = walk_handovers(trust, &signed.handovers, head)?;
    let message = DirectoryMessage::of(&signed.directory);
    let signers = check_signers(&signed, &message, &validator_set, quorum)?;
    // The quorum signed these bytes, each validator having decoded them
    // strictly: key checks wait for each key's use.
    let DecodedListing {
        directory_without_descriptors: directory,
        listed,
        descriptor_places,
    } = Directory::from_quorum_signed_bytes_listing_descriptors(&signed.directory)?;
    check_fresh(&directory, trust, now)?;
    let digest = message.digest;
    if let Some(last) = last_seen {
        check_not_rolled_back(&directory, &digest, last)?;
    }
    directory.check_listed(&listed, now)?;
    let selection_bandwidths =
        crate::weight::selection_bandwidths_of_listed(directory.chain(), &listed);
    // Every descriptor's operator is listed (checked above).
    let descriptor_operators = listed.iter().filter_map(|d| d.operator_index).collect();
    let relay_signatures = std::iter::repeat_with(|| AtomicU8::new(UNCHECKED))
        .take(listed.len())
        .collect();
    drop(listed);
    let profile_signatures = std::iter::repeat_with(OnceLock::new)
        .take(directory.operators().len())
        .collect();
    Ok(VerifiedDirectory {
        inner: Arc::new(Verified {
            relay_signatures,
            profile_signatures,
            body: RwLock::new(Body::InMemory(signed)),
            directory_without_descriptors: directory,
            descriptor_places,
            pins: OnceLock::new(),
            digest,
            signers,
            validator_set,
            selection_bandwidths,
            descriptor_operators,
        }),
    })
}

/// [`verify_directory`] on the envelope's bytes (e.g. as fetched or cached).
pub fn verify_directory_bytes(
    bytes: &[u8],
    trust: &TrustConfig,
    now: u64,
    last_seen: Option<&LastSeen>,
) -> Result<VerifiedDirectory, DirectoryError> {
    verify_directory(SignedDirectory::from_bytes(bytes)?, trust, now, last_seen)
}

/// A directory that passed [`verify_directory`]: the relays in it, each with
/// its operator's profile, ready for path selection. Cloning it shares it
/// (the relay records a client makes of it keep it, [`ListedRelay`]).
///
/// It keeps the directory's bytes and where each descriptor lies in them,
/// not the parsed descriptors (at 100,000 relays those were 43 MiB beside
/// the 41 MiB of bytes): a relay is decoded from the bytes when it is
/// looked at ([`VerifiedDirectory::relays`], [`VerifiedDirectory::relay`]).
#[derive(Debug, Clone)]
pub struct VerifiedDirectory {
    inner: Arc<Verified>,
}

/// What a [`VerifiedDirectory`] holds.
#[derive(Debug)]
struct Verified {
    /// The envelope with the body, or the file the body is kept in
    /// ([`VerifiedDirectory::keep_body_in`]).
    body: RwLock<Body>,
    /// The parsed directory, its descriptors taken out
    /// ([`Verified::descriptor_places`] says where they are).
    directory_without_descriptors: Directory,
    /// Per descriptor, in the directory's order (sorted by relay id): where
    /// its bytes lie in the body.
    descriptor_places: DescriptorPlaces,
    /// The descriptors' indices sorted by QUIC pin, made at the first
    /// [`VerifiedDirectory::relay_by_pin`] (a client never asks).
    pins: OnceLock<Vec<(KeyPin, u32)>>,
    digest: DirectoryDigest,
    signers: Vec<ValidatorId>,
    validator_set: ValidatorSet,
    /// Per descriptor, in the directory's order:
    /// [`crate::weight::directory_selection_bandwidths`].
    selection_bandwidths: Vec<u64>,
    /// Per descriptor, in the directory's order: the index of its
    /// operator's profile ([`Directory::descriptor_operators`]; every one
    /// is listed, `check_listing` checked).
    descriptor_operators: Vec<u32>,
    /// Per descriptor, in the directory's order: whether its three
    /// signatures verified, once checked
    /// ([`VerifiedDirectory::check_relay_signatures`]).
    relay_signatures: Vec<AtomicU8>,
    /// Per operator profile, in the directory's order: whether its
    /// signature verified, once checked.
    profile_signatures: Vec<OnceLock<bool>>,
}

impl VerifiedDirectory {
    /// The validator set that signed this directory, reached through the
    /// hand-overs it carried: persist it (`ValidatorSet::to_bytes`) and
    /// verify later directories with [`TrustConfig::resume`] from it (or
    /// [`TrustConfig::advanced`]), so they need not carry older hand-overs.
    pub fn validator_set(&self) -> &ValidatorSet {
        &self.inner.validator_set
    }

    /// The chain section, if the directory has one.
    pub fn chain(&self) -> Option<&ChainSection> {
        self.inner.directory_without_descriptors.chain()
    }

    /// What to remember for the next verification.
    pub fn last_seen(&self) -> LastSeen {
        LastSeen {
            sequence: self.inner.directory_without_descriptors.sequence(),
            issued_at: self.inner.directory_without_descriptors.issued_at(),
            digest: self.inner.digest,
        }
    }

    /// The envelope as received, to cache (`to_bytes`) and re-verify on load
    /// with [`VerifiedDirectory::last_seen`]; `None` once its body is kept
    /// only in a file ([`VerifiedDirectory::keep_body_in`]).
    pub fn signed(&self) -> Option<SignedDirectory> {
        match &*self.body() {
            Body::InMemory(signed) => Some(signed.clone()),
            Body::InFile(_) => None,
        }
    }

    fn body(&self) -> std::sync::RwLockReadGuard<'_, Body> {
        self.inner
            .body
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keeps the body only in `file` from now on, which must hold this
    /// directory's envelope as it was verified (the client's cache file,
    /// written from the same bytes): at 100,000 relays that frees the
    /// 41 MiB the body takes in memory. A relay is then read from the file
    /// when it is looked at and checked against a digest kept for it (16
    /// bytes a relay), so a file changed underneath yields no relay, never
    /// another one. Refused, the body staying in memory, if the file does
    /// not begin and end as the body does ([`BodyFileError::Differs`]: it
    /// holds another directory).
    pub fn keep_body_in(&self, file: std::fs::File) -> Result<(), BodyFileError> {
        let mut body = self
            .inner
            .body
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Body::InMemory(signed) = &*body else {
            return Ok(());
        };
        let in_memory = &signed.directory;
        let offset = SignedDirectory::BODY_OFFSET;
        // The body's start (format version, sequence, times: another
        // directory differs there) and its end; every relay read back is
        // checked against its digest besides.
        let edge = in_memory.len().min(4096);
        let (start, end) = (0..edge, in_memory.len() - edge..in_memory.len());
        for range in [start, end] {
            let mut read = vec![0; range.len()];
            std::os::unix::fs::FileExt::read_exact_at(
                &file,
                &mut read,
                offset + range.start as u64,
            )?;
            if in_memory.get(range) != Some(read.as_slice()) {
                return Err(BodyFileError::Differs);
            }
        }
        let digests = self
            .inner
            .descriptor_places
            .iter()
            .map(|r| {
                descriptor_digest(
                    in_memory
                        .get(r.start as usize..r.end as usize)
                        .unwrap_or_default(),
                )
            })
            .collect();
        *body = Body::InFile(BodyFile {
            file,
            offset,
            digests,
        });
        Ok(())
    }

    /// The issuers' signed token key sets.
    pub fn key_sets(&self) -> &[SignedIssuerKeySet] {
        self.inner.directory_without_descriptors.key_sets()
    }

    /// Sequence number.
    pub fn sequence(&self) -> u64 {
        self.inner.directory_without_descriptors.sequence()
    }

    /// Issue time (Unix seconds).
    pub fn issued_at(&self) -> u64 {
        self.inner.directory_without_descriptors.issued_at()
    }

    /// End of validity (Unix seconds, exclusive): until then a client may
    /// work from this directory when the registry is unreachable.
    pub fn valid_until(&self) -> u64 {
        self.inner.directory_without_descriptors.valid_until()
    }

    /// SHA-256 of the directory bytes.
    pub fn digest(&self) -> DirectoryDigest {
        self.inner.digest
    }

    /// The validators of [`VerifiedDirectory::validator_set`] whose
    /// signatures were counted, sorted.
    pub fn signers(&self) -> &[ValidatorId] {
        &self.inner.signers
    }

    /// Whether this directory would still pass the freshness checks at `now`
    /// (not expired, not older than `trust` allows): for a client deciding
    /// whether its cached directory is still usable.
    pub fn check_fresh(&self, trust: &TrustConfig, now: u64) -> Result<(), DirectoryError> {
        check_fresh(&self.inner.directory_without_descriptors, trust, now)
    }

    /// How many relays the directory lists.
    pub fn relay_count(&self) -> usize {
        self.inner.descriptor_places.len()
    }

    /// Every relay, sorted by relay id (each decoded as it is reached).
    pub fn relays(&self) -> impl Iterator<Item = VerifiedRelay<'_>> + '_ {
        (0..self.relay_count()).filter_map(|i| self.view(i))
    }

    /// The relays of one role.
    pub fn relays_with_role(
        &self,
        role: RelayRole,
    ) -> impl Iterator<Item = VerifiedRelay<'_>> + '_ {
        self.relays().filter(move |r| r.role() == role)
    }

    /// The relay with id `relay`.
    pub fn relay(&self, relay: &RelayId) -> Option<VerifiedRelay<'_>> {
        // The search reads ids unchecked; what it finds is checked (a body
        // in a file changed underneath could mislead it).
        self.view(self.index_of(relay)?)
            .filter(|found| found.id() == *relay)
    }

    /// The index of `relay`'s descriptor, found by its id where every
    /// descriptor's bytes start (after the version byte), without decoding.
    fn index_of(&self, relay: &RelayId) -> Option<usize> {
        let body = self.body();
        self.inner
            .descriptor_places
            .starts()
            .binary_search_by(|start| {
                let start = start + 1;
                body.bytes(start..start + 32)
                    .unwrap_or_default()
                    .as_ref()
                    .cmp(relay.as_bytes().as_slice())
            })
            .ok()
    }

    /// The signed descriptor at `index`, decoded from the directory's bytes
    /// (a view of them in memory, or read back from the file and checked
    /// against its digest). The quorum signed the bytes and they decoded
    /// when the directory was verified, so this fails only for an index out
    /// of range or a file that no longer reads back as verified.
    fn descriptor_at(&self, index: usize) -> Option<SignedDescriptor> {
        let range = self.inner.descriptor_places.get(index)?;
        let body = self.body();
        let bytes = body.bytes(range)?;
        if let Body::InFile(file) = &*body
            && file.digests.get(index) != Some(&descriptor_digest(&bytes))
        {
            return None;
        }
        SignedDescriptor::from_quorum_signed_shared(&bytes).ok()
    }

    /// Checks, once per relay (the answer is cached), the signatures
    /// [`verify_directory`] left for when a relay is used: the relay's
    /// descriptor signed by the relay, its operator and its QUIC key, and
    /// its operator's profile signed by the operator. A client calls this
    /// before it first connects to the relay and never uses a relay for
    /// which it fails ([`DirectoryError::BadSignature`], naming the
    /// signer; [`DirectoryError::RelayNotListed`] for a relay the
    /// directory does not list).
    pub fn check_relay_signatures(&self, relay: &RelayId) -> Result<(), DirectoryError> {
        let not_listed = || DirectoryError::RelayNotListed { relay: *relay };
        let index = self.index_of(relay).ok_or_else(not_listed)?;
        match self.check_relay_signatures_at(index) {
            // The search reads ids unchecked (a body in a file changed
            // underneath could mislead it): what it found is checked.
            Ok(found) if found == *relay => Ok(()),
            Ok(_) | Err(DirectoryError::RelayUnreadable { .. }) => Err(not_listed()),
            Err(e) => Err(e),
        }
    }

    /// [`VerifiedDirectory::check_relay_signatures`] for the relay at
    /// `index`; its id if they verify.
    fn check_relay_signatures_at(&self, index: usize) -> Result<RelayId, DirectoryError> {
        let unreadable = || DirectoryError::RelayUnreadable { index };
        let signed = self.descriptor_at(index).ok_or_else(unreadable)?;
        let relay = &signed.descriptor().relay();
        let operator = signed.descriptor().operator();
        let profile_index = *self
            .inner
            .descriptor_operators
            .get(index)
            .ok_or_else(unreadable)? as usize;
        let profile = self
            .inner
            .directory_without_descriptors
            .operators()
            .get(profile_index)
            .ok_or_else(unreadable)?;
        let profile_ok = *self
            .inner
            .profile_signatures
            .get(profile_index)
            .ok_or_else(unreadable)?
            .get_or_init(|| profile.verify().is_ok());
        if !profile_ok {
            return Err(DirectoryError::BadSignature {
                which: Signer::OperatorProfile(operator),
            });
        }
        let checked = self
            .inner
            .relay_signatures
            .get(index)
            .ok_or_else(unreadable)?;
        // Two first uses at once may both check: the same answer.
        let descriptor_ok = match checked.load(Ordering::Relaxed) {
            UNCHECKED => {
                let ok = signed.verify_signatures().is_ok();
                checked.store(if ok { VERIFIED } else { REFUSED }, Ordering::Relaxed);
                ok
            }
            state => state == VERIFIED,
        };
        if descriptor_ok {
            Ok(*relay)
        } else {
            // Not cached: which signature failed. Rare (a relay the
            // validators signed without checking), and then only once per
            // attempt to use it.
            Err(signed
                .verify_signatures()
                .map_or_else(DirectoryError::from, |()| DirectoryError::BadSignature {
                    which: Signer::Relay(*relay),
                }))
        }
    }

    /// The relay whose QUIC key is `pin`: how a client checks that the relay
    /// a path uses is in the directory with the key it pins (unique within a
    /// verified directory). The first call decodes every relay to index
    /// them by pin.
    pub fn relay_by_pin(&self, pin: &KeyPin) -> Option<VerifiedRelay<'_>> {
        let pins = self.inner.pins.get_or_init(|| {
            let mut pins: Vec<(KeyPin, u32)> = (0..self.relay_count())
                .filter_map(|i| {
                    let index = u32::try_from(i).ok()?;
                    Some((self.descriptor_at(i)?.descriptor().quic_pin(), index))
                })
                .collect();
            pins.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            pins
        });
        let found = pins
            .binary_search_by(|(p, _)| p.as_bytes().cmp(pin.as_bytes()))
            .ok()?;
        self.view(pins.get(found)?.1 as usize)
    }

    /// The token keys the directory lists for `issuer` (RFC 9576 §6: the
    /// only keys a client may use and a relay may accept for that issuer),
    /// if it lists any.
    pub fn issuer_keys(&self, issuer: &IssuerId) -> Option<&IssuerKeySet> {
        self.inner
            .directory_without_descriptors
            .key_set(issuer)
            .map(|s| s.key_set())
    }

    /// The profile of `operator`.
    pub fn operator(&self, operator: &OperatorId) -> Option<&OperatorProfile> {
        self.inner
            .directory_without_descriptors
            .operator(operator)
            .map(|p| p.profile())
    }

    /// Descriptor `index` of the directory, decoded, with its operator's
    /// profile.
    fn view(&self, index: usize) -> Option<VerifiedRelay<'_>> {
        let directory = &self.inner.directory_without_descriptors;
        let operator = directory
            .operators()
            .get(*self.inner.descriptor_operators.get(index)? as usize)?
            .profile();
        Some(VerifiedRelay {
            directory: self,
            index: u32::try_from(index).ok()?,
            signed: self.descriptor_at(index)?,
            operator,
            selection_bandwidth_bps: self
                .inner
                .selection_bandwidths
                .get(index)
                .copied()
                .unwrap_or(0),
            // The chain section lists the relays in the descriptors' order
            // (`ChainSection::check_matches`).
            measured: directory
                .chain()
                .and_then(|c| c.relays.get(index))
                .and_then(|r| r.measured),
        })
    }
}

/// A relay's signatures, per [`Verified::relay_signatures`]: one byte a
/// relay, not a `OnceLock<bool>`'s eight.
const UNCHECKED: u8 = 0;
const VERIFIED: u8 = 1;
const REFUSED: u8 = 2;

/// Where a verified directory's body is.
#[derive(Debug)]
enum Body {
    /// The envelope as received, body and all.
    InMemory(SignedDirectory),
    /// Only in a file ([`VerifiedDirectory::keep_body_in`]).
    InFile(BodyFile),
}

impl Body {
    /// The body's bytes in `range`: a view of them in memory, or read from
    /// the file (`None` if that fails).
    fn bytes(&self, range: std::ops::Range<u32>) -> Option<bytes::Bytes> {
        match self {
            Body::InMemory(signed) => {
                let range = range.start as usize..range.end as usize;
                signed.directory.get(range.clone())?;
                Some(signed.directory.slice(range))
            }
            Body::InFile(file) => {
                let mut read = vec![0; range.len()];
                std::os::unix::fs::FileExt::read_exact_at(
                    &file.file,
                    &mut read,
                    file.offset + u64::from(range.start),
                )
                .ok()?;
                Some(read.into())
            }
        }
    }
}

/// A body kept in a file.
#[derive(Debug)]
struct BodyFile {
    file: std::fs::File,
    /// Where the body starts in the file.
    offset: u64,
    /// Per descriptor, in the directory's order: [`descriptor_digest`] of
    /// its bytes as verified.
    digests: Vec<[u8; 16]>,
}

/// The first 16 bytes of SHA-256 of a descriptor's bytes (with its
/// signatures): what a descriptor read back from a file must match.
fn descriptor_digest(bytes: &[u8]) -> [u8; 16] {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(bytes);
    let mut first = [0; 16];
    first.copy_from_slice(&digest[..16]);
    first
}

/// Why [`VerifiedDirectory::keep_body_in`] kept the body in memory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BodyFileError {
    /// The file could not be read.
    #[error("reading the directory file: {0}")]
    Io(#[from] std::io::Error),
    /// The file does not hold the verified envelope's body.
    #[error("the directory file does not hold the verified directory")]
    Differs,
}

/// One relay of a verified directory, with its operator's profile. The
/// directory's quorum vouches for its listing; its own signatures are
/// checked when it is used
/// ([`VerifiedDirectory::check_relay_signatures`]).
#[derive(Clone)]
pub struct VerifiedRelay<'a> {
    directory: &'a VerifiedDirectory,
    /// Its place in the directory's order.
    index: u32,
    /// The relay's descriptor, decoded from the directory's bytes.
    signed: SignedDescriptor,
    /// Its operator's profile.
    pub operator: &'a OperatorProfile,
    selection_bandwidth_bps: u64,
    measured: Option<RelayMeasurement>,
}

impl VerifiedRelay<'_> {
    /// The relay's descriptor.
    pub fn descriptor(&self) -> &RelayDescriptor {
        self.signed.descriptor()
    }

    /// This relay, owned (sharing the directory): what a client's relay
    /// record keeps to check the relay's own signatures when it is first
    /// used.
    pub fn listed(&self) -> ListedRelay {
        ListedRelay {
            directory: self.directory.clone(),
            index: self.index,
        }
    }

    /// The relay's id.
    pub fn id(&self) -> RelayId {
        self.descriptor().relay()
    }

    /// The operator's id: path selection never pairs two relays that share it.
    pub fn operator_id(&self) -> OperatorId {
        self.descriptor().operator()
    }

    /// Ingress or egress.
    pub fn role(&self) -> RelayRole {
        self.descriptor().role()
    }

    /// Where to reach it.
    pub fn endpoints(&self) -> &[SocketAddr] {
        self.descriptor().endpoints()
    }

    /// The QUIC/TLS key to pin.
    pub fn quic_pin(&self) -> KeyPin {
        self.descriptor().quic_pin()
    }

    /// Country and city.
    pub fn region(&self) -> &Region {
        self.descriptor().region()
    }

    /// Network: path selection never pairs two relays of one network.
    pub fn network(&self) -> &Network {
        self.descriptor().network()
    }

    /// Advertised bandwidth (bits per second).
    pub fn bandwidth_bps(&self) -> u64 {
        self.descriptor().bandwidth_bps()
    }

    /// The bandwidth path selection weighs the relay by (bits per second,
    /// before the operator-share cap of a draw): in a directory with a chain
    /// section, min(advertised, measured) (the bootstrap weight if never
    /// measured) clipped and scaled down so that the operator's relays
    /// together weigh at most what its stake covers
    /// ([`crate::weight::directory_selection_bandwidths`]); without one, the
    /// advertised bandwidth clipped ([`crate::weight::clipped_bandwidth`]).
    pub fn selection_bandwidth_bps(&self) -> u64 {
        self.selection_bandwidth_bps
    }

    /// The relay's latest measured bandwidth and its epoch, as the
    /// directory's chain section carries it (`None`: never measured, or a
    /// directory without a chain section).
    pub fn measured(&self) -> Option<RelayMeasurement> {
        self.measured
    }
}

/// The relay, not the directory it points into.
impl std::fmt::Debug for VerifiedRelay<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedRelay")
            .field("descriptor", self.descriptor())
            .field("operator", self.operator)
            .field("selection_bandwidth_bps", &self.selection_bandwidth_bps)
            .field("measured", &self.measured)
            .finish()
    }
}

/// A relay of a [`VerifiedDirectory`], owned: the directory (shared, not
/// copied) and the relay's place in it (16 bytes: a client keeps one per
/// relay). A client's relay record carries it, and checks the relay's own
/// signatures through it before the relay's first use
/// ([`ListedRelay::check_signatures`]).
#[derive(Clone)]
pub struct ListedRelay {
    directory: VerifiedDirectory,
    /// The relay's place in the directory's order.
    index: u32,
}

impl ListedRelay {
    /// [`VerifiedDirectory::check_relay_signatures`] for this relay
    /// (cached in the directory: checked once however many records and
    /// paths share it); [`DirectoryError::RelayUnreadable`] if its bytes
    /// no longer read back from the directory's file.
    pub fn check_signatures(&self) -> Result<(), DirectoryError> {
        self.directory
            .check_relay_signatures_at(self.index as usize)
            .map(drop)
    }

    /// The sequence number of the directory that lists it.
    pub fn sequence(&self) -> u64 {
        self.directory.sequence()
    }
}

/// The same relay of the same directory (one verification, shared).
impl PartialEq for ListedRelay {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.directory.inner, &other.directory.inner) && self.index == other.index
    }
}

impl Eq for ListedRelay {}

/// The relay and the directory's sequence, not the whole directory.
impl std::fmt::Debug for ListedRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListedRelay")
            .field("index", &self.index)
            .field("sequence", &self.sequence())
            .finish()
    }
}
