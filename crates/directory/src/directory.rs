//! The directory document (issue 3, item 2): every valid descriptor, the
//! profiles of their operators, a sequence number and times, signed by a
//! threshold of validators rather than by the registry alone.

use std::collections::HashMap;

use bytes::Bytes;

use crate::chain::{ChainAnchor, ChainSection};
use crate::codec::{
    Reader, check_ascending_pair, check_strictly_ascending, put_count_u32, put_directory_bytes,
    put_small_count, read_count, read_directory_bytes, read_list,
};
use crate::descriptor::{MIN_SIGNED_DESCRIPTOR_LEN, SignedDescriptor};
use crate::issuer_keys::{MAX_ISSUERS, MIN_SIGNED_KEY_SET_LEN, SignedIssuerKeySet};
use crate::keys::{Domain, IssuerId, Signature, ValidatorId, ValidatorKey};
use crate::profile::{MIN_SIGNED_PROFILE_LEN, OperatorProfile, SignedOperatorProfile};
use crate::validator_set::{
    SignedValidatorSetChange, check_consecutive, put_handovers, read_handovers, read_signatures,
};
use openrelay_types::KeyPin;

use crate::{FormatError, OperatorId, RelayId};

/// The format version of directory bodies without a chain section (3:
/// issuer key sets after the descriptors, RFC 9576 §6). Still read and
/// written: a directory without [`Directory::chain`] is encoded as version 3.
pub const DIRECTORY_VERSION: u8 = 3;
/// The format version of directory bodies with a chain section: version
/// 3's fields with the chain anchor and validator epoch after the times and
/// the chain's operator and relay figures after the issuer key sets (issue
/// 13, version 4), each relay's entry ending in its measured bandwidth
/// (issue 14, version 5), and the voted releases after the relays (issue
/// 15, version 6; versions 4 and 5 are no longer read). Signed under its
/// own prefix (`openrelay directory v6 digest validator\0`).
pub const DIRECTORY_CHAIN_VERSION: u8 = 6;
/// The format version of the signed-directory envelope without validator
/// set hand-overs.
pub const SIGNED_DIRECTORY_VERSION: u8 = 1;
/// The format version of the signed-directory envelope with validator set
/// hand-overs (issue 13), between the directory and its signatures.
pub const SIGNED_DIRECTORY_HANDOVER_VERSION: u8 = 2;

/// A directory document's contents: what validators sign.
///
/// Profiles are sorted by operator id, descriptors by relay id and issuer
/// key sets by issuer id, each without duplicates, so one set of contents
/// has one encoding and one relay (or issuer) cannot appear twice. Only the format is checked here; whether the
/// signatures inside verify and the times fit is
/// [`Directory::check_contents`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directory {
    sequence: u64,
    issued_at: u64,
    valid_until: u64,
    operators: Vec<SignedOperatorProfile>,
    descriptors: Vec<SignedDescriptor>,
    key_sets: Vec<SignedIssuerKeySet>,
    // Boxed: most directories (and every one before issue 13) have none,
    // and a `Directory` travels by value in verdicts and results.
    chain: Option<Box<ChainSection>>,
}

impl Directory {
    /// The directory with these parts, if they pass the format checks.
    fn checked(
        sequence: u64,
        issued_at: u64,
        valid_until: u64,
        operators: Vec<SignedOperatorProfile>,
        descriptors: Vec<SignedDescriptor>,
        key_sets: Vec<SignedIssuerKeySet>,
        chain: Option<Box<ChainSection>>,
    ) -> Result<Self, FormatError> {
        let directory = Directory {
            sequence,
            issued_at,
            valid_until,
            operators,
            descriptors,
            key_sets,
            chain,
        };
        directory.check()?;
        Ok(directory)
    }

    /// Assembles a directory: sorts `operators` and `descriptors`, refuses
    /// duplicates, too many entries, and a validity window that is empty or
    /// longer than [`MAX_DIRECTORY_LIFETIME_SECS`](crate::MAX_DIRECTORY_LIFETIME_SECS).
    pub fn new(
        sequence: u64,
        issued_at: u64,
        valid_until: u64,
        mut operators: Vec<SignedOperatorProfile>,
        mut descriptors: Vec<SignedDescriptor>,
    ) -> Result<Self, FormatError> {
        operators.sort_by_key(|p| p.profile().operator());
        descriptors.sort_by_key(|d| d.descriptor().relay());
        Self::checked(
            sequence,
            issued_at,
            valid_until,
            operators,
            descriptors,
            Vec::new(),
            None,
        )
    }

    /// This directory with a chain section (encoded as format
    /// [`DIRECTORY_CHAIN_VERSION`]): `chain`'s lists (any order; sorted
    /// here) must name exactly the directory's operators and relays, so
    /// set the profiles and descriptors first.
    pub fn with_chain(mut self, mut chain: ChainSection) -> Result<Self, FormatError> {
        chain.sort();
        self.chain = Some(Box::new(chain));
        self.check()?;
        Ok(self)
    }

    /// The chain section, if the directory has one.
    pub fn chain(&self) -> Option<&ChainSection> {
        self.chain.as_deref()
    }

    /// The body's format version: [`DIRECTORY_CHAIN_VERSION`] with a chain
    /// section, else [`DIRECTORY_VERSION`].
    pub fn version(&self) -> u8 {
        if self.chain.is_some() {
            DIRECTORY_CHAIN_VERSION
        } else {
            DIRECTORY_VERSION
        }
    }

    /// The chain anchor and validator epoch of a directory body, read from
    /// its first bytes without parsing the rest (`None` for a version 3
    /// body): verification needs the epoch to know whose signatures count,
    /// and counts them before it parses anything big.
    pub fn peek_chain_head(bytes: &[u8]) -> Result<Option<(ChainAnchor, u64)>, FormatError> {
        let mut r = Reader::new(bytes);
        match r.u8()? {
            DIRECTORY_VERSION => Ok(None),
            DIRECTORY_CHAIN_VERSION => {
                r.bytes(3 * 8)?;
                let anchor = ChainAnchor::decode(&mut r)?;
                Ok(Some((anchor, r.u64()?)))
            }
            version => Err(FormatError::UnsupportedVersion {
                object: "directory",
                version,
            }),
        }
    }

    /// This directory listing `key_sets` (any order; sorted here) as the
    /// issuers' token keys; refuses two sets of one issuer and more than
    /// [`MAX_ISSUERS`](crate::MAX_ISSUERS).
    pub fn with_issuer_keys(
        mut self,
        mut key_sets: Vec<SignedIssuerKeySet>,
    ) -> Result<Self, FormatError> {
        key_sets.sort_by_key(|s| s.key_set().issuer());
        self.key_sets = key_sets;
        self.check()?;
        Ok(self)
    }

    fn check(&self) -> Result<(), FormatError> {
        if self.descriptors.len() > crate::MAX_RELAYS {
            return Err(FormatError::TooLarge {
                what: "descriptors",
                limit: crate::MAX_RELAYS,
            });
        }
        check_strictly_ascending(&self.descriptors, "descriptors", |d| d.descriptor().relay())?;
        self.check_with_relays(self.descriptors.iter().map(|d| d.descriptor().relay()))
    }

    /// [`Directory::check`]'s rules but those on the descriptors' count and
    /// order, with `relays` the descriptors' relay ids in order.
    fn check_with_relays(
        &self,
        relays: impl ExactSizeIterator<Item = RelayId>,
    ) -> Result<(), FormatError> {
        if self.valid_until <= self.issued_at {
            return Err(FormatError::Invalid {
                field: "valid_until",
                reason: "must be after issued_at",
            });
        }
        if self.valid_until - self.issued_at > crate::MAX_DIRECTORY_LIFETIME_SECS {
            return Err(FormatError::Invalid {
                field: "valid_until",
                reason: "validity window longer than the maximum",
            });
        }
        if self.operators.len() > crate::MAX_OPERATORS {
            return Err(FormatError::TooLarge {
                what: "operators",
                limit: crate::MAX_OPERATORS,
            });
        }
        if self.key_sets.len() > MAX_ISSUERS {
            return Err(FormatError::TooLarge {
                what: "issuer key sets",
                limit: MAX_ISSUERS,
            });
        }
        check_strictly_ascending(&self.operators, "operators", |p| p.profile().operator())?;
        check_strictly_ascending(&self.key_sets, "issuer key sets", |s| s.key_set().issuer())?;
        if let Some(chain) = &self.chain {
            chain.check_matches(
                self.operators
                    .iter()
                    .map(|p| (p.profile().operator(), p.profile().chain_account())),
                relays,
            )?;
            chain.check_measured_before(self.issued_at)?;
            chain.check_releases()?;
        }
        Ok(())
    }

    /// The sequence number: strictly increasing from one directory to the
    /// next, which is how clients detect a rollback.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// When it was issued (Unix seconds).
    pub fn issued_at(&self) -> u64 {
        self.issued_at
    }

    /// Until when it may be used (Unix seconds, exclusive).
    pub fn valid_until(&self) -> u64 {
        self.valid_until
    }

    /// Operator profiles, sorted by operator id.
    pub fn operators(&self) -> &[SignedOperatorProfile] {
        &self.operators
    }

    /// The profile of `operator`, if listed.
    pub fn operator_profile(&self, operator: OperatorId) -> Option<&OperatorProfile> {
        self.operators
            .binary_search_by_key(&operator, |p| p.profile().operator())
            .ok()
            .map(|i| self.operators[i].profile())
    }

    /// Descriptors, sorted by relay id.
    pub fn descriptors(&self) -> &[SignedDescriptor] {
        &self.descriptors
    }

    /// Issuer key sets, sorted by issuer id.
    pub fn key_sets(&self) -> &[SignedIssuerKeySet] {
        &self.key_sets
    }

    /// The key set of `issuer`, if listed.
    pub fn key_set(&self, issuer: &IssuerId) -> Option<&SignedIssuerKeySet> {
        self.key_sets
            .binary_search_by(|s| s.key_set().issuer().cmp(issuer))
            .ok()
            .and_then(|i| self.key_sets.get(i))
    }

    /// The profile of `operator`, if present.
    pub fn operator(&self, operator: &OperatorId) -> Option<&SignedOperatorProfile> {
        self.operators
            .binary_search_by(|p| p.profile().operator().cmp(operator))
            .ok()
            .and_then(|i| self.operators.get(i))
    }

    /// What the listing checks and the selection weights need of each
    /// descriptor, in order.
    pub(crate) fn listed_descriptors(&self) -> Vec<ListedDescriptor> {
        let operators = operator_indices(&self.operators);
        self.descriptors
            .iter()
            .map(|d| ListedDescriptor::of(d, &operators))
            .collect()
    }

    /// [`Directory::from_quorum_signed_bytes_deferring_key_checks`]
    /// without keeping the descriptors (at 100,000 relays they are 43 MiB
    /// parsed): each is decoded, checked against the format's rules, and
    /// dropped. What is kept of it is what the listing checks need
    /// ([`ListedDescriptor`]) and where its bytes lie in `bytes`. The
    /// directory returned has no descriptors.
    pub(crate) fn from_quorum_signed_bytes_listing_descriptors(
        bytes: &Bytes,
    ) -> Result<DecodedListing, FormatError> {
        let mut r = Reader::shared(bytes).deferring_key_checks();
        let (directory, (listed, places)) =
            Self::decode_around_descriptors(&mut r, |r, profiles| {
                let operators = operator_indices(profiles);
                let count = read_count(r, "descriptors", crate::MAX_RELAYS)?;
                let capacity =
                    crate::codec::bounded_capacity(count, r.remaining(), MIN_SIGNED_DESCRIPTOR_LEN);
                let mut listed: Vec<ListedDescriptor> = Vec::with_capacity(capacity);
                let position = |r: &Reader<'_>| {
                    u32::try_from(r.position()).map_err(|_| FormatError::TooLarge {
                        what: "directory",
                        limit: crate::MAX_DIRECTORY_BYTES,
                    })
                };
                // The descriptors lie back to back: each starts where the
                // last ended.
                let mut starts = Vec::with_capacity(capacity.saturating_add(1));
                starts.push(position(r)?);
                for _ in 0..count {
                    let descriptor = SignedDescriptor::decode(r)?;
                    starts.push(position(r)?);
                    let entry = ListedDescriptor::of(&descriptor, &operators);
                    if let Some(last) = listed.last() {
                        check_ascending_pair(&last.relay, &entry.relay, "descriptors")?;
                    }
                    listed.push(entry);
                }
                Ok((listed, DescriptorPlaces { starts }))
            })?;
        r.finish()?;
        directory.check_with_relays(listed.iter().map(|l| l.relay))?;
        Ok(DecodedListing {
            directory_without_descriptors: directory,
            listed,
            descriptor_places: places,
        })
    }

    /// The descriptor of `relay`, if present.
    pub fn descriptor(&self, relay: &RelayId) -> Option<&SignedDescriptor> {
        self.descriptors
            .binary_search_by(|d| d.descriptor().relay().cmp(relay))
            .ok()
            .and_then(|i| self.descriptors.get(i))
    }

    /// The canonical bytes (`docs/directory-format.md`, "Directory").
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(32 + self.operators.len() * 256 + self.descriptors.len() * 512);
        out.push(self.version());
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.issued_at.to_be_bytes());
        out.extend_from_slice(&self.valid_until.to_be_bytes());
        if let Some(chain) = &self.chain {
            chain.encode_head(&mut out);
        }
        put_count_u32(&mut out, self.operators.len());
        for profile in &self.operators {
            profile.encode(&mut out);
        }
        put_count_u32(&mut out, self.descriptors.len());
        for descriptor in &self.descriptors {
            descriptor.encode(&mut out);
        }
        put_count_u32(&mut out, self.key_sets.len());
        for set in &self.key_sets {
            set.encode(&mut out);
        }
        if let Some(chain) = &self.chain {
            chain.encode_lists(&mut out);
        }
        out
    }

    /// Parses canonical bytes (no signature is checked).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FormatError> {
        Self::decode(Reader::new(bytes))
    }

    /// [`Directory::from_bytes`] without checking that the relays',
    /// operators', QUIC and issuers' keys are usable Ed25519 points (at
    /// 100,000 relays that is most of the decoding time): only for bytes a
    /// quorum of validators signed, each of which decoded them strictly
    /// ([`crate::verify_directory`] checks the quorum first). A key is
    /// checked where it is used: a signature by an unusable key never
    /// verifies, and a QUIC pin that is no key matches no relay.
    ///
    /// The descriptors keep views of `bytes`, not copies.
    pub fn from_quorum_signed_bytes_deferring_key_checks(
        bytes: &Bytes,
    ) -> Result<Self, FormatError> {
        Self::decode(Reader::shared(bytes).deferring_key_checks())
    }

    fn decode(mut r: Reader<'_>) -> Result<Self, FormatError> {
        let (mut directory, descriptors) = Self::decode_around_descriptors(&mut r, |r, _| {
            let descriptors = read_list(
                r,
                "descriptors",
                crate::MAX_RELAYS,
                MIN_SIGNED_DESCRIPTOR_LEN,
                SignedDescriptor::decode,
            )?;
            check_strictly_ascending(&descriptors, "descriptors", |d| d.descriptor().relay())?;
            Ok(descriptors)
        })?;
        r.finish()?;
        directory.descriptors = descriptors;
        directory.check()?;
        Ok(directory)
    }

    /// Decodes a directory's fields, its descriptors through
    /// `read_descriptors` (given the operators' profiles, which come
    /// before them); the directory returned has no descriptors and is not
    /// checked yet.
    fn decode_around_descriptors<'a, D>(
        r: &mut Reader<'a>,
        read_descriptors: impl FnOnce(
            &mut Reader<'a>,
            &[SignedOperatorProfile],
        ) -> Result<D, FormatError>,
    ) -> Result<(Self, D), FormatError> {
        if r.remaining() > crate::MAX_DIRECTORY_BYTES {
            return Err(FormatError::TooLarge {
                what: "directory",
                limit: crate::MAX_DIRECTORY_BYTES,
            });
        }
        let version = r.u8()?;
        if version != DIRECTORY_VERSION && version != DIRECTORY_CHAIN_VERSION {
            return Err(FormatError::UnsupportedVersion {
                object: "directory",
                version,
            });
        }
        let sequence = r.u64()?;
        let issued_at = r.u64()?;
        let valid_until = r.u64()?;
        let chain_head = if version == DIRECTORY_CHAIN_VERSION {
            Some((ChainAnchor::decode(r)?, r.u64()?))
        } else {
            None
        };
        let operators = read_list(
            r,
            "operators",
            crate::MAX_OPERATORS,
            MIN_SIGNED_PROFILE_LEN,
            SignedOperatorProfile::decode,
        )?;
        check_strictly_ascending(&operators, "operators", |p| p.profile().operator())?;
        let descriptors = read_descriptors(r, &operators)?;
        let key_sets = read_list(
            r,
            "issuer key sets",
            MAX_ISSUERS,
            MIN_SIGNED_KEY_SET_LEN,
            SignedIssuerKeySet::decode,
        )?;
        let chain = chain_head
            .map(|(anchor, epoch)| ChainSection::decode_lists(r, anchor, epoch).map(Box::new))
            .transpose()?;
        let directory = Directory {
            sequence,
            issued_at,
            valid_until,
            operators,
            descriptors: Vec::new(),
            key_sets,
            chain,
        };
        Ok((directory, descriptors))
    }

    /// SHA-256 of [`Directory::to_bytes`].
    pub fn digest(&self) -> DirectoryDigest {
        DirectoryDigest::of(&self.to_bytes())
    }
}

/// A directory decoded without keeping its descriptors
/// ([`Directory::from_quorum_signed_bytes_listing_descriptors`]).
pub(crate) struct DecodedListing {
    pub(crate) directory_without_descriptors: Directory,
    /// What the listing checks need of each descriptor, in order.
    pub(crate) listed: Vec<ListedDescriptor>,
    /// Where each descriptor's bytes (with its signatures) lie in the
    /// decoded bytes.
    pub(crate) descriptor_places: DescriptorPlaces,
}

/// Where each descriptor of a directory lies in its bytes, in order: the
/// descriptors lie back to back, so one offset per descriptor and the end
/// (4 bytes a relay).
#[derive(Debug)]
pub(crate) struct DescriptorPlaces {
    /// Each descriptor's start, then where the last ends.
    starts: Vec<u32>,
}

impl DescriptorPlaces {
    /// How many descriptors.
    pub(crate) fn len(&self) -> usize {
        self.starts.len().saturating_sub(1)
    }

    /// Where each descriptor starts, in order.
    pub(crate) fn starts(&self) -> &[u32] {
        self.starts.get(..self.len()).unwrap_or_default()
    }

    /// Where descriptor `index`'s bytes lie.
    pub(crate) fn get(&self, index: usize) -> Option<std::ops::Range<u32>> {
        Some(*self.starts.get(index)?..*self.starts.get(index.checked_add(1)?)?)
    }

    /// Where each descriptor's bytes lie, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = std::ops::Range<u32>> + '_ {
        self.starts.windows(2).map(|w| w[0]..w[1])
    }
}

/// What the listing checks ([`Directory::check_listing`]) and the
/// selection weights need of one descriptor: the same rules then run on a
/// parsed directory and on one a client decodes without keeping its
/// descriptors ([`Directory::from_quorum_signed_bytes_listing_descriptors`]).
#[derive(Debug, Clone)]
pub(crate) struct ListedDescriptor {
    pub(crate) relay: RelayId,
    pub(crate) operator: OperatorId,
    /// The index of the operator's profile in [`Directory::operators`]
    /// (`None`: not listed, which the listing checks refuse).
    pub(crate) operator_index: Option<u32>,
    pub(crate) not_before: u64,
    pub(crate) not_after: u64,
    pub(crate) quic_pin: KeyPin,
    pub(crate) bandwidth_bps: u64,
}

impl ListedDescriptor {
    /// What is listed of `signed`, its operator found in `operators`
    /// ([`operator_indices`]).
    fn of(signed: &SignedDescriptor, operators: &HashMap<OperatorId, u32>) -> Self {
        let d = signed.descriptor();
        let f = d.fields();
        ListedDescriptor {
            relay: f.relay,
            operator: f.operator,
            operator_index: operators.get(&f.operator).copied(),
            not_before: f.not_before,
            not_after: f.not_after,
            quic_pin: f.quic_pin,
            bandwidth_bps: f.bandwidth_bps,
        }
    }
}

/// Each profile's index by operator id: one hash lookup per relay instead of
/// a search of the profiles at every use.
fn operator_indices(profiles: &[SignedOperatorProfile]) -> HashMap<OperatorId, u32> {
    profiles
        .iter()
        .zip(0u32..)
        .map(|(p, i)| (p.profile().operator(), i))
        .collect()
}

crate::digest::sha256_digest!(
    /// SHA-256 of a directory's canonical bytes: names one directory's contents,
    /// whichever validators' signatures came with it.
    DirectoryDigest
);

/// One validator's signature over a directory's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidatorSignature {
    /// Who claims to have signed (checked against the client's trust config).
    pub validator: ValidatorId,
    /// The signature.
    pub signature: Signature,
}

impl ValidatorKey {
    /// Signs a directory. A validator should sign only after checking it
    /// ([`Directory::check_contents`] and its own measurements): a signature
    /// is its vouching for every relay inside.
    pub fn sign_directory(&self, directory: &Directory) -> ValidatorSignature {
        self.sign_directory_bytes(&directory.to_bytes())
    }

    /// Signs a directory's canonical bytes (as [`Directory::to_bytes`] gives
    /// them, or as received and decoded): their digest, under the prefix of
    /// their format version.
    pub fn sign_directory_bytes(&self, directory_bytes: &[u8]) -> ValidatorSignature {
        let message = DirectoryMessage::of(directory_bytes);
        ValidatorSignature {
            validator: self.id(),
            signature: self.sign(message.domain, message.digest.as_bytes()),
        }
    }
}

impl ValidatorSignature {
    /// Whether the signature verifies over `directory_bytes` with the key it
    /// names (not whether that key is trusted: that is the caller's).
    pub fn verifies(&self, directory_bytes: &[u8]) -> bool {
        self.verifies_message(&DirectoryMessage::of(directory_bytes))
    }

    /// [`ValidatorSignature::verifies`] over a message hashed once for all
    /// the signatures of a directory.
    pub(crate) fn verifies_message(&self, message: &DirectoryMessage) -> bool {
        self.validator
            .verify(message.domain, message.digest.as_bytes(), &self.signature)
    }
}

/// What validators sign for a directory body (docs/directory-format.md,
/// "Signatures"): the prefix of its format version (by its version byte,
/// so a signature over a version 3 body never verifies as one over
/// version 6) and the SHA-256 of the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DirectoryMessage {
    domain: Domain,
    /// The body's digest, as [`SignedDirectory::digest`] gives it.
    pub(crate) digest: DirectoryDigest,
}

impl DirectoryMessage {
    pub(crate) fn of(directory_bytes: &[u8]) -> Self {
        let domain = match directory_bytes.first() {
            Some(&DIRECTORY_CHAIN_VERSION) => Domain::DirectoryChain,
            _ => Domain::Directory,
        };
        DirectoryMessage {
            domain,
            digest: DirectoryDigest::of(directory_bytes),
        }
    }
}

/// A directory as it travels: its canonical bytes, the validator set
/// hand-overs a client may need to reach the set that signed it, and the
/// validators' signatures over the bytes.
///
/// The signature list is not covered by any signature (validators sign
/// independently, and a registry collects what it gets), so its order is kept
/// as given and entries from unknown validators or repeated validators are
/// allowed on the wire: verification counts each trusted validator at most
/// once and ignores the rest. Checking before parsing: [`crate::verify_directory`]
/// counts valid signatures over `directory` before decoding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedDirectory {
    /// The directory's canonical bytes ([`Directory::to_bytes`]), shared
    /// with what is decoded from them.
    pub directory: Bytes,
    /// Validator set hand-overs, epochs consecutive and ascending, at most
    /// [`MAX_VALIDATOR_SET_CHANGES`](crate::MAX_VALIDATOR_SET_CHANGES):
    /// every change since genesis, or those after an epoch the client
    /// knows. Each is signed by the set before it, so none needs the
    /// directory's signatures. Empty: envelope version 1.
    pub handovers: Vec<SignedValidatorSetChange>,
    /// Validators' signatures over `directory`.
    pub signatures: Vec<ValidatorSignature>,
}

impl SignedDirectory {
    /// Where the directory's bytes start in the envelope's encoding
    /// ([`SignedDirectory::to_bytes`]): after the version byte and the
    /// bytes' 4-byte length.
    pub(crate) const BODY_OFFSET: u64 = 5;

    /// An envelope for `directory` with no signatures yet.
    pub fn new(directory: &Directory) -> Self {
        SignedDirectory {
            directory: Bytes::from(directory.to_bytes()),
            handovers: Vec::new(),
            signatures: Vec::new(),
        }
    }

    /// This envelope carrying `handovers` (epochs consecutive and
    /// ascending, at most [`MAX_VALIDATOR_SET_CHANGES`](crate::MAX_VALIDATOR_SET_CHANGES)).
    pub fn with_handovers(
        mut self,
        handovers: Vec<SignedValidatorSetChange>,
    ) -> Result<Self, FormatError> {
        check_consecutive(&handovers)?;
        self.handovers = handovers;
        Ok(self)
    }

    /// Adds `key`'s signature, replacing an earlier one by the same validator.
    pub fn sign(&mut self, key: &ValidatorKey) {
        self.add_signature(key.sign_directory_bytes(&self.directory));
    }

    /// Adds a signature made elsewhere, replacing an earlier one by the same
    /// validator (unchecked: verification checks).
    pub fn add_signature(&mut self, signature: ValidatorSignature) {
        self.signatures
            .retain(|s| s.validator != signature.validator);
        self.signatures.push(signature);
    }

    /// The digest of the directory bytes.
    pub fn digest(&self) -> DirectoryDigest {
        DirectoryDigest::of(&self.directory)
    }

    /// The envelope's bytes (`docs/directory-format.md`, "Signed directory").
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            1 + 4 + self.directory.len() + 1 + self.signatures.len() * (32 + Signature::LEN),
        );
        if self.handovers.is_empty() {
            out.push(SIGNED_DIRECTORY_VERSION);
            put_directory_bytes(&mut out, &self.directory);
        } else {
            out.push(SIGNED_DIRECTORY_HANDOVER_VERSION);
            put_directory_bytes(&mut out, &self.directory);
            put_handovers(&mut out, &self.handovers);
        }
        let count = put_small_count(
            &mut out,
            self.signatures.len(),
            crate::MAX_DIRECTORY_SIGNATURES,
        );
        for s in self.signatures.iter().take(count) {
            out.extend_from_slice(s.validator.as_bytes());
            out.extend_from_slice(s.signature.as_bytes());
        }
        out
    }

    /// Parses the envelope. The directory bytes are only bounded in size
    /// here, not parsed: [`crate::verify_directory`] parses them after the
    /// signatures checked out.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FormatError> {
        Self::decode(Reader::new(bytes))
    }

    /// [`SignedDirectory::from_bytes`] on bytes held shared: the directory
    /// bytes are a view of `bytes`, not a copy (at 100,000 relays, 43 MiB).
    pub fn from_shared(bytes: &Bytes) -> Result<Self, FormatError> {
        Self::decode(Reader::shared(bytes))
    }

    fn decode(mut r: Reader<'_>) -> Result<Self, FormatError> {
        let version = r.u8()?;
        let directory = read_directory_bytes(&mut r)?;
        let handovers = match version {
            SIGNED_DIRECTORY_VERSION => Vec::new(),
            SIGNED_DIRECTORY_HANDOVER_VERSION => read_handovers(&mut r)?,
            version => {
                return Err(FormatError::UnsupportedVersion {
                    object: "signed directory",
                    version,
                });
            }
        };
        let signatures = read_signatures(&mut r, crate::MAX_DIRECTORY_SIGNATURES)?;
        r.finish()?;
        Ok(SignedDirectory {
            directory,
            handovers,
            signatures,
        })
    }
}
