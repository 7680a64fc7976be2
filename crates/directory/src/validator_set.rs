//! Validator sets and their hand-overs (issue 13, item 4): clients learn who
//! signs directories from the chain's history, not from their config alone.
//!
//! A client's config holds a *genesis* set. Each change of the on-chain set
//! (`ValidatorSetChanged` of `RelayRegistry.sol`) becomes a
//! [`ValidatorSetChange`]: the new set, its epoch and the block it took
//! effect at, signed by validators of the **previous** set holding more
//! than two thirds of its weight. Directories carry the hand-overs in their
//! envelope ([`crate::SignedDirectory::handovers`]), and
//! [`crate::verify_directory`] walks them from the set the client trusts,
//! so a client offline for months follows every hand-over since.
//!
//! Why more than two thirds, not a majority: two conflicting hand-overs
//! (or directories) of one set can then both be signed only if validators
//! holding more than a third of its weight sign both, the classic BFT bound
//! (Nym's signer threshold, and the contract's `quorumBps >= 6667`).

use crate::FormatError;
use crate::chain::{ANCHOR_LEN, ChainAnchor};
use crate::codec::{Reader, check_strictly_ascending, decode_exact, put_small_count};
use crate::descriptor::read_key;
use crate::directory::ValidatorSignature;
use crate::keys::{Domain, Signature, ValidatorId, ValidatorKey, check_public_key};

/// The format version of validator set bodies (persisted sets) and of
/// hand-over bodies.
pub const VALIDATOR_SET_VERSION: u8 = 1;
/// Most validators in one set: as many as a directory carries signatures
/// of ([`MAX_DIRECTORY_SIGNATURES`](crate::MAX_DIRECTORY_SIGNATURES)). The
/// contract's `maxValidators` must not exceed it.
pub const MAX_VALIDATORS: usize = crate::MAX_DIRECTORY_SIGNATURES;
/// Most hand-overs one directory envelope carries. At one change a week
/// that is twenty years; a longer history makes the envelope malformed
/// (`FormatError::TooLarge`), and the registry then serves the hand-overs
/// after the epoch a client says it knows.
pub const MAX_VALIDATOR_SET_CHANGES: usize = 1024;

/// One member of a validator set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ValidatorMember {
    /// Its key.
    pub validator: ValidatorId,
    /// Its weight (on chain: its stake in wei). Not 0.
    pub weight: u128,
}

const MEMBER_LEN: usize = 32 + 16;

/// A validator set: its epoch (0 is genesis, each hand-over adds one) and
/// its members with their weights, sorted by key, at most
/// [`MAX_VALIDATORS`], weights positive and summing to at most `u128::MAX`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ValidatorSet {
    epoch: u64,
    members: Vec<ValidatorMember>,
    total_weight: u128,
}

impl ValidatorSet {
    /// The set of `members` (any order; sorted here) at `epoch`. Refuses an
    /// empty set, more than [`MAX_VALIDATORS`], a validator twice, a weight
    /// of 0 and weights whose sum overflows `u128`
    /// ([`FormatError::WeightOverflow`]).
    pub fn new(epoch: u64, mut members: Vec<ValidatorMember>) -> Result<Self, FormatError> {
        members.sort_by_key(|m| m.validator);
        Self::checked(epoch, members)
    }

    /// Every validator of `validators` with weight 1: how a config's plain
    /// validator list becomes a genesis set.
    pub fn equal_weights(
        epoch: u64,
        validators: impl IntoIterator<Item = ValidatorId>,
    ) -> Result<Self, FormatError> {
        Self::new(
            epoch,
            validators
                .into_iter()
                .map(|validator| ValidatorMember {
                    validator,
                    weight: 1,
                })
                .collect(),
        )
    }

    fn checked(epoch: u64, members: Vec<ValidatorMember>) -> Result<Self, FormatError> {
        if members.is_empty() {
            return Err(FormatError::Invalid {
                field: "validators",
                reason: "a set needs at least one validator",
            });
        }
        if members.len() > MAX_VALIDATORS {
            return Err(FormatError::TooLarge {
                what: "validators",
                limit: MAX_VALIDATORS,
            });
        }
        check_strictly_ascending(&members, "validators", |m| m.validator)?;
        let mut total_weight: u128 = 0;
        for m in &members {
            if m.weight == 0 {
                return Err(FormatError::Invalid {
                    field: "weight",
                    reason: "must not be 0",
                });
            }
            total_weight = total_weight
                .checked_add(m.weight)
                .ok_or(FormatError::WeightOverflow)?;
        }
        Ok(ValidatorSet {
            epoch,
            members,
            total_weight,
        })
    }

    /// The epoch (0: genesis).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The members, sorted by key.
    pub fn members(&self) -> &[ValidatorMember] {
        &self.members
    }

    /// The sum of the members' weights.
    pub fn total_weight(&self) -> u128 {
        self.total_weight
    }

    /// The weight of `validator`, if a member.
    pub fn weight_of(&self, validator: &ValidatorId) -> Option<u128> {
        self.members
            .binary_search_by(|m| m.validator.cmp(validator))
            .ok()
            .and_then(|i| self.members.get(i))
            .map(|m| m.weight)
    }

    /// Whether `signed_weight` of this set's weight is **more than** two
    /// thirds of it (exactly two thirds is not enough).
    pub fn is_more_than_two_thirds(&self, signed_weight: u128) -> bool {
        more_than_two_thirds(signed_weight, self.total_weight)
    }

    /// The members who signed `body` under `domain`, each counted once, and
    /// their total weight. Signatures by non-members are skipped without any
    /// cryptography and a member already counted is not verified again.
    pub(crate) fn signers(
        &self,
        signatures: &[ValidatorSignature],
        verifies: impl Fn(&ValidatorSignature) -> bool,
    ) -> (Vec<ValidatorId>, u128) {
        let mut counted: Vec<ValidatorId> = Vec::new();
        let mut weight: u128 = 0;
        for s in signatures {
            if let Some(w) = self.weight_of(&s.validator)
                && !counted.contains(&s.validator)
                && verifies(s)
            {
                counted.push(s.validator);
                // Members' weights sum to at most `total_weight`.
                weight = weight.saturating_add(w);
            }
        }
        counted.sort();
        (counted, weight)
    }

    pub(crate) fn encode_members(&self, out: &mut Vec<u8>) {
        let count = put_small_count(out, self.members.len(), MAX_VALIDATORS);
        for m in self.members.iter().take(count) {
            out.extend_from_slice(m.validator.as_bytes());
            out.extend_from_slice(&m.weight.to_be_bytes());
        }
    }

    pub(crate) fn decode_members(r: &mut Reader<'_>, epoch: u64) -> Result<Self, FormatError> {
        let count = crate::codec::read_small_count(r, "validators", MAX_VALIDATORS)?;
        let mut members = Vec::with_capacity(count);
        for _ in 0..count {
            members.push(ValidatorMember {
                validator: ValidatorId::from_checked(read_key(r, "validators")?),
                weight: u128::from_be_bytes(r.array()?),
            });
        }
        Self::checked(epoch, members)
    }

    /// The canonical bytes, for a client to persist the latest set it
    /// verified ([`crate::VerifiedDirectory::validator_set`]): version
    /// ([`VALIDATOR_SET_VERSION`]), epoch, member count (`u8`), members
    /// (key, weight as big-endian `u128`) ascending by key.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 8 + 1 + self.members.len() * MEMBER_LEN);
        out.push(VALIDATOR_SET_VERSION);
        out.extend_from_slice(&self.epoch.to_be_bytes());
        self.encode_members(&mut out);
        out
    }

    /// Parses [`ValidatorSet::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FormatError> {
        decode_exact(bytes, |r| {
            r.version("validator set", VALIDATOR_SET_VERSION)?;
            let epoch = r.u64()?;
            Self::decode_members(r, epoch)
        })
    }
}

/// Whether `part` is more than two thirds of `total`, exactly and without
/// overflow for any `u128`s: `3·part > 2·total`.
pub fn more_than_two_thirds(part: u128, total: u128) -> bool {
    // total = 3q + r with r < 3, so 2·total/3 = 2q + 2r/3, and
    // part > 2q + 2r/3  ⇔  3·(part − 2q) > 2r  (when part ≥ 2q).
    let (q, r) = (total / 3, total % 3);
    let Some(twice_q) = q.checked_mul(2) else {
        // Unreachable: q ≤ u128::MAX / 3.
        return false;
    };
    match part.checked_sub(twice_q) {
        None => false,
        // An overflowing product is far above 2r ≤ 4.
        Some(excess) => excess.checked_mul(3).is_none_or(|x| x > 2 * r),
    }
}

/// A change of the validator set: the new set (its epoch one above the
/// previous set's) and the block where the chain applied it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatorSetChange {
    anchor: ChainAnchor,
    set: ValidatorSet,
}

impl ValidatorSetChange {
    /// The change to `set` at `anchor`. Epoch 0 is the genesis set, which
    /// no change makes.
    pub fn new(anchor: ChainAnchor, set: ValidatorSet) -> Result<Self, FormatError> {
        if set.epoch == 0 {
            return Err(FormatError::Invalid {
                field: "epoch",
                reason: "epoch 0 is the genesis set; a change starts at 1",
            });
        }
        Ok(ValidatorSetChange { anchor, set })
    }

    /// The block the chain applied it at.
    pub fn anchor(&self) -> &ChainAnchor {
        &self.anchor
    }

    /// The new set.
    pub fn set(&self) -> &ValidatorSet {
        &self.set
    }

    /// The new set's epoch.
    pub fn epoch(&self) -> u64 {
        self.set.epoch
    }

    /// The canonical bytes the previous set's validators sign (prefix
    /// `openrelay validator set change v1\0`): version, epoch, anchor,
    /// member count (`u8`), members (key, weight `u128`) ascending by key.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(1 + 8 + ANCHOR_LEN + 1 + self.set.members.len() * MEMBER_LEN);
        out.push(VALIDATOR_SET_VERSION);
        out.extend_from_slice(&self.set.epoch.to_be_bytes());
        self.anchor.encode(&mut out);
        self.set.encode_members(&mut out);
        out
    }

    /// Parses canonical bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FormatError> {
        decode_exact(bytes, Self::decode)
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, FormatError> {
        r.version("validator set change", VALIDATOR_SET_VERSION)?;
        let epoch = r.u64()?;
        let anchor = ChainAnchor::decode(r)?;
        let set = ValidatorSet::decode_members(r, epoch)?;
        Self::new(anchor, set)
    }
}

impl ValidatorKey {
    /// Signs a hand-over. A validator of the previous set signs only a
    /// change its own node shows final at `anchor`.
    pub fn sign_validator_set_change(&self, change: &ValidatorSetChange) -> ValidatorSignature {
        ValidatorSignature {
            validator: self.id(),
            signature: self.sign(Domain::ValidatorSetChange, &change.to_bytes()),
        }
    }
}

/// A hand-over as it travels: the change, its canonical bytes, and
/// signatures by validators of the previous set. As with a directory's
/// signatures, the list is unsigned and kept as given; verification counts
/// each member of the previous set once and ignores the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedValidatorSetChange {
    change: ValidatorSetChange,
    body: Vec<u8>,
    signatures: Vec<ValidatorSignature>,
}

impl SignedValidatorSetChange {
    /// `change` with no signatures yet.
    pub fn new(change: ValidatorSetChange) -> Self {
        let body = change.to_bytes();
        SignedValidatorSetChange {
            change,
            body,
            signatures: Vec::new(),
        }
    }

    /// Adds `key`'s signature, replacing an earlier one by the same key.
    pub fn sign(&mut self, key: &ValidatorKey) {
        self.add_signature(key.sign_validator_set_change(&self.change));
    }

    /// Adds a signature made elsewhere, replacing an earlier one by the same
    /// validator (unchecked: verification checks). Beyond
    /// [`MAX_VALIDATORS`] signatures the encoding keeps the first ones.
    pub fn add_signature(&mut self, signature: ValidatorSignature) {
        self.signatures
            .retain(|s| s.validator != signature.validator);
        self.signatures.push(signature);
    }

    /// The change.
    pub fn change(&self) -> &ValidatorSetChange {
        &self.change
    }

    /// The signatures, as given.
    pub fn signatures(&self) -> &[ValidatorSignature] {
        &self.signatures
    }

    /// Whether `signature` verifies over this change with the key it names
    /// (the registry checks each hand-over signature on receipt).
    pub fn verifies(&self, signature: &ValidatorSignature) -> bool {
        signature
            .validator
            .verify(Domain::ValidatorSetChange, &self.body, &signature.signature)
    }

    /// The canonical bytes: the body, a signature count (`u8`, at most
    /// [`MAX_VALIDATORS`]), then (validator key, signature) pairs.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.body);
        let count = put_small_count(out, self.signatures.len(), MAX_VALIDATORS);
        for s in self.signatures.iter().take(count) {
            out.extend_from_slice(s.validator.as_bytes());
            out.extend_from_slice(s.signature.as_bytes());
        }
    }

    /// Parses a signed hand-over (signatures unchecked).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FormatError> {
        decode_exact(bytes, Self::decode)
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, FormatError> {
        let start = r.position();
        let change = ValidatorSetChange::decode(r)?;
        let body = r.consumed_since(start).to_vec();
        let signatures = read_signatures(r, MAX_VALIDATORS)?;
        Ok(SignedValidatorSetChange {
            change,
            body,
            signatures,
        })
    }
}

/// Reads a `u8` count of at most `limit` (validator key, signature) pairs.
pub(crate) fn read_signatures(
    r: &mut Reader<'_>,
    limit: usize,
) -> Result<Vec<ValidatorSignature>, FormatError> {
    let count = crate::codec::read_small_count(r, "signatures", limit)?;
    let mut signatures = Vec::with_capacity(count);
    for _ in 0..count {
        let validator = r.array::<32>()?;
        check_public_key(&validator).map_err(|_| FormatError::Invalid {
            field: "validator",
            reason: "not a usable Ed25519 key",
        })?;
        signatures.push(ValidatorSignature {
            validator: ValidatorId::from_checked(validator),
            signature: Signature::from_bytes(r.array()?),
        });
    }
    Ok(signatures)
}

/// Reads the hand-over list of a version 2 envelope: a `u16` count (1 to
/// [`MAX_VALIDATOR_SET_CHANGES`]), then signed hand-overs whose epochs
/// follow one another (each one above the last).
pub(crate) fn read_handovers(
    r: &mut Reader<'_>,
) -> Result<Vec<SignedValidatorSetChange>, FormatError> {
    let count = usize::from(r.u16()?);
    if count > MAX_VALIDATOR_SET_CHANGES {
        return Err(FormatError::TooLarge {
            what: "validator set changes",
            limit: MAX_VALIDATOR_SET_CHANGES,
        });
    }
    if count == 0 {
        return Err(FormatError::Invalid {
            field: "validator set changes",
            reason: "an envelope without hand-overs is version 1",
        });
    }
    let mut handovers: Vec<SignedValidatorSetChange> =
        Vec::with_capacity(count.min(r.remaining() / (1 + 8 + ANCHOR_LEN + 1 + MEMBER_LEN + 1)));
    for _ in 0..count {
        handovers.push(SignedValidatorSetChange::decode(r)?);
    }
    check_consecutive(&handovers)?;
    Ok(handovers)
}

/// Checks that the hand-overs' epochs follow one another.
pub(crate) fn check_consecutive(handovers: &[SignedValidatorSetChange]) -> Result<(), FormatError> {
    if handovers.len() > MAX_VALIDATOR_SET_CHANGES {
        return Err(FormatError::TooLarge {
            what: "validator set changes",
            limit: MAX_VALIDATOR_SET_CHANGES,
        });
    }
    for pair in handovers.windows(2) {
        if let [a, b] = pair
            && a.change.epoch().checked_add(1) != Some(b.change.epoch())
        {
            return Err(FormatError::Invalid {
                field: "validator set changes",
                reason: "epochs must follow one another",
            });
        }
    }
    Ok(())
}

/// Writes the hand-over list of a version 2 envelope.
pub(crate) fn put_handovers(out: &mut Vec<u8>, handovers: &[SignedValidatorSetChange]) {
    let count = handovers.len().min(MAX_VALIDATOR_SET_CHANGES);
    out.extend_from_slice(&u16::try_from(count).unwrap_or(u16::MAX).to_be_bytes());
    for h in handovers.iter().take(count) {
        h.encode(out);
    }
}
