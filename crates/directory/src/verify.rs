//! What a client checks before it uses a directory (issue 3, item 3: "Clients
//! verify everything: every signature, the validator threshold, freshness (a
//! stale or rolled-back directory is refused) ... A forged, stale, replayed or
//! under-signed directory gets a clear error and changes nothing").
//!
//! [`verify_directory`] is the only way to get a [`VerifiedDirectory`], so
//! holding one means every check below passed.

use std::collections::HashSet;
use std::net::SocketAddr;

use openrelay_types::{KeyPin, RelayRole};

use crate::descriptor::{DescriptorError, RelayDescriptor};
use crate::directory::{Directory, DirectoryDigest, SignedDirectory};
use crate::fields::{Network, Region};
use crate::issuer_keys::IssuerKeySet;
use crate::keys::{IssuerId, OperatorId, RelayId, ValidatorId};
use crate::profile::OperatorProfile;
use crate::{FormatError, MAX_CLOCK_SKEW_SECS, Signer};

/// Whom a client trusts to sign directories: `threshold` of `validators`
/// (k of n), and how old a directory may be.
///
/// Only constructed through [`TrustConfig::new`], which refuses settings that
/// would accept an unsigned directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustConfig {
    validators: Vec<ValidatorId>,
    threshold: usize,
    max_age_secs: u64,
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

    /// `threshold` distinct signatures out of `validators` are required; a
    /// directory older than `max_age_secs` is refused even when its own
    /// `valid_until` has not passed. A majority threshold (`k > n/2`) is
    /// recommended: then two conflicting directories cannot both be signed
    /// unless some validator signs both.
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
        if max_age_secs == 0 {
            return Err(TrustConfigError::ZeroMaxAge);
        }
        Ok(TrustConfig {
            validators: sorted,
            threshold,
            max_age_secs,
        })
    }

    /// The trusted validators, sorted.
    pub fn validators(&self) -> &[ValidatorId] {
        &self.validators
    }

    /// How many distinct trusted validators must have signed.
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// The oldest directory accepted, in seconds since it was issued.
    pub fn max_age_secs(&self) -> u64 {
        self.max_age_secs
    }

    fn trusts(&self, validator: &ValidatorId) -> bool {
        self.validators.binary_search(validator).is_ok()
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
    /// signature; for every descriptor, that its operator's profile is
    /// present, both signatures, its validity at `now` and over the
    /// directory's whole validity; that no QUIC key appears twice; and every
    /// issuer key set's signature.
    ///
    /// Validators run this before signing; clients through
    /// [`verify_directory`]. The first failure refuses the whole directory: a
    /// validator-signed document with a bad entry means a validator did not
    /// check, and dropping the entry silently would hide that.
    pub fn check_contents(&self, now: u64) -> Result<(), DirectoryError> {
        for profile in self.operators() {
            profile
                .verify()
                .map_err(|e| DirectoryError::BadSignature { which: e.which })?;
        }
        let mut pins = HashSet::with_capacity(self.descriptors().len());
        for signed in self.descriptors() {
            let d = signed.descriptor();
            if self.operator(&d.operator()).is_none() {
                return Err(DirectoryError::UnknownOperator {
                    relay: d.relay(),
                    operator: d.operator(),
                });
            }
            signed.verify(now)?;
            let f = d.fields();
            if f.not_before > self.issued_at() || f.not_after < self.valid_until() {
                return Err(DirectoryError::DescriptorOutlivedByDirectory { relay: d.relay() });
            }
            if !pins.insert(f.quic_pin) {
                return Err(DirectoryError::DuplicatePin { pin: f.quic_pin });
            }
        }
        for set in self.key_sets() {
            set.verify()
                .map_err(|e| DirectoryError::BadSignature { which: e.which })?;
        }
        Ok(())
    }
}

/// Counts distinct trusted validators whose signature over `directory`
/// verifies. Signatures by untrusted validators are skipped without any
/// cryptography, and a validator already counted is not verified again, so
/// padding the list costs an attacker more than it costs us.
fn count_validators(signed: &SignedDirectory, trust: &TrustConfig) -> Vec<ValidatorId> {
    let mut counted: Vec<ValidatorId> = Vec::with_capacity(trust.threshold);
    for s in &signed.signatures {
        if trust.trusts(&s.validator)
            && !counted.contains(&s.validator)
            && s.verifies(&signed.directory)
        {
            counted.push(s.validator);
        }
    }
    counted.sort();
    counted
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
/// 1. at least `trust.threshold()` distinct trusted validators signed the
///    directory bytes ([`DirectoryError::UnderSigned`]); the bytes are parsed
///    only after this;
/// 2. the bytes are a well-formed directory ([`DirectoryError::Malformed`]);
/// 3. it is fresh: not future-dated, not expired, not older than
///    `trust.max_age_secs()`;
/// 4. it is not a rollback or an equivocation relative to `last_seen`;
/// 5. its contents check out ([`Directory::check_contents`]).
///
/// On success, store [`VerifiedDirectory::last_seen`] for the next call.
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
    let signers = count_validators(&signed, trust);
    if signers.len() < trust.threshold {
        return Err(DirectoryError::UnderSigned {
            valid: signers.len(),
            needed: trust.threshold,
        });
    }
    let directory = Directory::from_bytes(&signed.directory)?;
    check_fresh(&directory, trust, now)?;
    let digest = signed.digest();
    if let Some(last) = last_seen {
        check_not_rolled_back(&directory, &digest, last)?;
    }
    directory.check_contents(now)?;
    Ok(VerifiedDirectory {
        signed,
        directory,
        digest,
        signers,
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
/// its operator's profile, ready for path selection.
#[derive(Debug, Clone)]
pub struct VerifiedDirectory {
    signed: SignedDirectory,
    directory: Directory,
    digest: DirectoryDigest,
    signers: Vec<ValidatorId>,
}

impl VerifiedDirectory {
    /// What to remember for the next verification.
    pub fn last_seen(&self) -> LastSeen {
        LastSeen {
            sequence: self.directory.sequence(),
            issued_at: self.directory.issued_at(),
            digest: self.digest,
        }
    }

    /// The envelope as received, to cache (`to_bytes`) and re-verify on load
    /// with [`VerifiedDirectory::last_seen`].
    pub fn signed(&self) -> &SignedDirectory {
        &self.signed
    }

    /// The parsed directory.
    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// Sequence number.
    pub fn sequence(&self) -> u64 {
        self.directory.sequence()
    }

    /// Issue time (Unix seconds).
    pub fn issued_at(&self) -> u64 {
        self.directory.issued_at()
    }

    /// End of validity (Unix seconds, exclusive): until then a client may
    /// work from this directory when the registry is unreachable.
    pub fn valid_until(&self) -> u64 {
        self.directory.valid_until()
    }

    /// SHA-256 of the directory bytes.
    pub fn digest(&self) -> DirectoryDigest {
        self.digest
    }

    /// The trusted validators whose signatures were counted, sorted.
    pub fn signers(&self) -> &[ValidatorId] {
        &self.signers
    }

    /// Whether this directory would still pass the freshness checks at `now`
    /// (not expired, not older than `trust` allows): for a client deciding
    /// whether its cached directory is still usable.
    pub fn check_fresh(&self, trust: &TrustConfig, now: u64) -> Result<(), DirectoryError> {
        check_fresh(&self.directory, trust, now)
    }

    /// Every relay, sorted by relay id.
    pub fn relays(&self) -> impl Iterator<Item = VerifiedRelay<'_>> + '_ {
        self.directory
            .descriptors()
            .iter()
            .filter_map(|d| self.view(d.descriptor()))
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
        self.directory
            .descriptor(relay)
            .and_then(|d| self.view(d.descriptor()))
    }

    /// The relay whose QUIC key is `pin`: how a client checks that the relay
    /// a path uses is in the directory with the key it pins (unique within a
    /// verified directory).
    pub fn relay_by_pin(&self, pin: &KeyPin) -> Option<VerifiedRelay<'_>> {
        self.relays().find(|r| r.quic_pin() == *pin)
    }

    /// The token keys the directory lists for `issuer` (RFC 9576 §6: the
    /// only keys a client may use and a relay may accept for that issuer),
    /// if it lists any.
    pub fn issuer_keys(&self, issuer: &IssuerId) -> Option<&IssuerKeySet> {
        self.directory.key_set(issuer).map(|s| s.key_set())
    }

    /// The profile of `operator`.
    pub fn operator(&self, operator: &OperatorId) -> Option<&OperatorProfile> {
        self.directory.operator(operator).map(|p| p.profile())
    }

    fn view<'a>(&'a self, descriptor: &'a RelayDescriptor) -> Option<VerifiedRelay<'a>> {
        // Every descriptor's operator is present: `check_contents` checked.
        let operator = self.operator(&descriptor.operator())?;
        Some(VerifiedRelay {
            descriptor,
            operator,
        })
    }
}

/// One relay of a verified directory, with its operator's profile.
#[derive(Debug, Clone, Copy)]
pub struct VerifiedRelay<'a> {
    /// The relay's descriptor.
    pub descriptor: &'a RelayDescriptor,
    /// Its operator's profile.
    pub operator: &'a OperatorProfile,
}

impl VerifiedRelay<'_> {
    /// The relay's id.
    pub fn id(&self) -> RelayId {
        self.descriptor.relay()
    }

    /// The operator's id: path selection never pairs two relays that share it.
    pub fn operator_id(&self) -> OperatorId {
        self.descriptor.operator()
    }

    /// Ingress or egress.
    pub fn role(&self) -> RelayRole {
        self.descriptor.role()
    }

    /// Where to reach it.
    pub fn endpoints(&self) -> &[SocketAddr] {
        self.descriptor.endpoints()
    }

    /// The QUIC/TLS key to pin.
    pub fn quic_pin(&self) -> KeyPin {
        self.descriptor.quic_pin()
    }

    /// Country and city.
    pub fn region(&self) -> &Region {
        self.descriptor.region()
    }

    /// Network: path selection never pairs two relays of one network.
    pub fn network(&self) -> &Network {
        self.descriptor.network()
    }

    /// Advertised bandwidth (bits per second), the selection weight.
    pub fn bandwidth_bps(&self) -> u64 {
        self.descriptor.bandwidth_bps()
    }
}
