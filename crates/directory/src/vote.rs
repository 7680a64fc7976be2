//! Validators' votes (issue 11, item 6): which relays each validator saw
//! publish, so that a directory lists exactly the relays most validators saw,
//! whatever the registry would like to add or leave out.
//!
//! Relays publish their descriptors to the registry *and* to every validator.
//! Each validator signs a [`Vote`]: the relays live in its own view (with the
//! start of the newest descriptor it holds for each). The registry builds its
//! proposal from the validators' current votes and hands the votes to the
//! validators with the proposal ([`crate::Proposal`]); a validator signs only
//! a directory that lists exactly the relays [`tally`] elects from those votes,
//! with descriptors no older than the votes say, and only if its own vote is
//! among them. So a registry can neither hide a relay most validators saw nor
//! add one they never saw, and a relay that publishes to only some validators
//! cannot block every directory (it is simply in or out by majority, as in
//! Tor's directory consensus).
//!
//! Since version 2 a vote also names, for each issuer, the digest of the
//! newest key set that issuer published to the validator; an issuer's set is
//! listed exactly when more than half of the votes name that same digest
//! ([`tally_issuers`]). An issuer that shows different key sets to
//! different validators (to tag users with keys of their own) gets at most
//! one of them listed, or none.

use std::collections::BTreeMap;

use crate::codec::{OneSigned, Reader, bounded_capacity, check_strictly_ascending, put_count_u32};
use crate::descriptor::read_key;
use crate::issuer_keys::{KeySetDigest, MAX_ISSUERS};
use crate::keys::{Domain, IssuerId, RelayId, Signature, ValidatorId, ValidatorKey};
use crate::{FormatError, Signer};

/// The format version of votes this crate reads and writes (2: issuer key
/// sets after the relays).
pub const VOTE_VERSION: u8 = 2;

/// One relay a validator vouches for: it published to this validator within
/// the validator's descriptor TTL, and its newest descriptor there starts at
/// `not_before`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VoteEntry {
    /// The relay.
    pub relay: RelayId,
    /// `not_before` of the newest descriptor of it this validator holds.
    pub not_before: u64,
}

/// One issuer key set a validator vouches for: the newest set `issuer`
/// published to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IssuerVote {
    /// The issuer.
    pub issuer: IssuerId,
    /// SHA-256 of the set's body.
    pub digest: KeySetDigest,
}

/// A validator's view of the live relays and of the issuers' key sets at
/// `voted_at` (not yet signed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vote {
    validator: ValidatorId,
    voted_at: u64,
    entries: Vec<VoteEntry>,
    issuers: Vec<IssuerVote>,
}

const ENTRY_LEN: usize = 32 + 8;
const ISSUER_ENTRY_LEN: usize = 32 + 32;

impl Vote {
    /// A vote by `validator` at `voted_at` for `entries` (any order; sorted
    /// here). Refuses a relay listed twice and more than
    /// [`MAX_RELAYS`](crate::MAX_RELAYS) relays.
    pub fn new(
        validator: ValidatorId,
        voted_at: u64,
        mut entries: Vec<VoteEntry>,
    ) -> Result<Self, FormatError> {
        entries.sort();
        Self::checked(validator, voted_at, entries, Vec::new())
    }

    /// This vote naming `issuers`' key sets too (any order; sorted here).
    /// Refuses an issuer named twice and more than
    /// [`MAX_ISSUERS`].
    pub fn with_issuers(mut self, mut issuers: Vec<IssuerVote>) -> Result<Self, FormatError> {
        issuers.sort();
        self.issuers = issuers;
        self.check()?;
        Ok(self)
    }

    fn checked(
        validator: ValidatorId,
        voted_at: u64,
        entries: Vec<VoteEntry>,
        issuers: Vec<IssuerVote>,
    ) -> Result<Self, FormatError> {
        let vote = Vote {
            validator,
            voted_at,
            entries,
            issuers,
        };
        vote.check()?;
        Ok(vote)
    }

    fn check(&self) -> Result<(), FormatError> {
        if self.entries.len() > crate::MAX_RELAYS {
            return Err(FormatError::TooLarge {
                what: "vote entries",
                limit: crate::MAX_RELAYS,
            });
        }
        if self.issuers.len() > MAX_ISSUERS {
            return Err(FormatError::TooLarge {
                what: "vote issuers",
                limit: MAX_ISSUERS,
            });
        }
        check_strictly_ascending(&self.entries, "vote entries", |e| e.relay)?;
        check_strictly_ascending(&self.issuers, "vote issuers", |e| e.issuer)
    }

    /// Who voted.
    pub fn validator(&self) -> ValidatorId {
        self.validator
    }

    /// When (Unix seconds).
    pub fn voted_at(&self) -> u64 {
        self.voted_at
    }

    /// The relays, sorted by id.
    pub fn entries(&self) -> &[VoteEntry] {
        &self.entries
    }

    /// The issuers' key sets, sorted by issuer id.
    pub fn issuers(&self) -> &[IssuerVote] {
        &self.issuers
    }

    /// The key set this vote names for `issuer`, if any.
    pub fn issuer(&self, issuer: &IssuerId) -> Option<KeySetDigest> {
        self.issuers
            .binary_search_by(|e| e.issuer.cmp(issuer))
            .ok()
            .and_then(|i| self.issuers.get(i))
            .map(|e| e.digest)
    }

    /// The entry for `relay`, if the vote lists it.
    pub fn entry(&self, relay: &RelayId) -> Option<&VoteEntry> {
        self.entries
            .binary_search_by(|e| e.relay.cmp(relay))
            .ok()
            .and_then(|i| self.entries.get(i))
    }

    /// The canonical bytes (`docs/directory-format.md`, "Vote").
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            1 + 32
                + 8
                + 4
                + self.entries.len() * ENTRY_LEN
                + 4
                + self.issuers.len() * ISSUER_ENTRY_LEN,
        );
        out.push(VOTE_VERSION);
        out.extend_from_slice(self.validator.as_bytes());
        out.extend_from_slice(&self.voted_at.to_be_bytes());
        put_count_u32(&mut out, self.entries.len());
        for entry in &self.entries {
            out.extend_from_slice(entry.relay.as_bytes());
            out.extend_from_slice(&entry.not_before.to_be_bytes());
        }
        put_count_u32(&mut out, self.issuers.len());
        for entry in &self.issuers {
            out.extend_from_slice(entry.issuer.as_bytes());
            out.extend_from_slice(entry.digest.as_bytes());
        }
        out
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, FormatError> {
        r.version("vote", VOTE_VERSION)?;
        let validator = ValidatorId::from_checked(read_key(r, "validator")?);
        let voted_at = r.u64()?;
        let count = usize::try_from(r.u32()?).unwrap_or(usize::MAX);
        if count > crate::MAX_RELAYS {
            return Err(FormatError::TooLarge {
                what: "vote entries",
                limit: crate::MAX_RELAYS,
            });
        }
        let mut entries = Vec::with_capacity(bounded_capacity(count, r.remaining(), ENTRY_LEN));
        for _ in 0..count {
            let relay = RelayId::from_checked(read_key(r, "relay")?);
            entries.push(VoteEntry {
                relay,
                not_before: r.u64()?,
            });
        }
        let count = usize::try_from(r.u32()?).unwrap_or(usize::MAX);
        if count > MAX_ISSUERS {
            return Err(FormatError::TooLarge {
                what: "vote issuers",
                limit: MAX_ISSUERS,
            });
        }
        let mut issuers = Vec::with_capacity(count);
        for _ in 0..count {
            let issuer = IssuerId::from_checked(read_key(r, "issuer")?);
            issuers.push(IssuerVote {
                issuer,
                digest: KeySetDigest::from_bytes(r.array()?),
            });
        }
        Self::checked(validator, voted_at, entries, issuers)
    }
}

/// Why a vote cannot be signed with a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VoteSignError {
    /// The key is not the one the vote names.
    #[error("the validator key does not match the vote's validator id")]
    WrongValidatorKey,
}

impl ValidatorKey {
    /// Signs `vote`, which must name this key.
    pub fn sign_vote(&self, vote: Vote) -> Result<SignedVote, VoteSignError> {
        if self.id() != vote.validator() {
            return Err(VoteSignError::WrongValidatorKey);
        }
        let body = vote.to_bytes();
        let signature = self.sign(Domain::Vote, &body);
        Ok(SignedVote(OneSigned {
            value: vote,
            body,
            signature,
        }))
    }
}

/// A vote's signature does not verify with the validator key it names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad signature by {which}")]
pub struct BadVoteSignature {
    /// Always [`Signer::Validator`] of the vote's validator.
    pub which: Signer,
}

/// A vote with its validator's signature. Holding one proves nothing: call
/// [`SignedVote::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedVote(OneSigned<Vote>);

impl SignedVote {
    /// The vote (unchecked unless this came out of verification).
    pub fn vote(&self) -> &Vote {
        &self.0.value
    }
}

crate::codec::one_signed!(
    SignedVote,
    Vote,
    BadVoteSignature,
    Domain::Vote,
    |vote| vote.validator() => Signer::Validator
);

/// Largest signed vote, in bytes (every relay and issuer listed).
pub const MAX_SIGNED_VOTE_BYTES: usize = 1
    + 32
    + 8
    + 4
    + crate::MAX_RELAYS * ENTRY_LEN
    + 4
    + MAX_ISSUERS * ISSUER_ENTRY_LEN
    + Signature::LEN;

/// A relay most of a set of votes list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elected {
    /// How many of the votes list it.
    pub votes: usize,
    /// The newest `not_before` any of those votes gives for it: a directory
    /// may not list an older descriptor of it (beyond a tolerance the
    /// validator allows for a registry that heard of the newest a moment
    /// later).
    pub newest_not_before: u64,
}

/// The relays listed by more than half of `votes` (each vote counted once;
/// the caller makes sure they are distinct, trusted and verified). This is
/// the one rule both the registry (to build a proposal) and the validators
/// (to check it) apply, so an honest registry's proposal always passes.
pub fn tally<'a>(votes: impl IntoIterator<Item = &'a Vote>) -> BTreeMap<RelayId, Elected> {
    let mut counts: BTreeMap<RelayId, Elected> = BTreeMap::new();
    let mut total = 0usize;
    for vote in votes {
        total += 1;
        for entry in vote.entries() {
            let slot = counts.entry(entry.relay).or_insert(Elected {
                votes: 0,
                newest_not_before: 0,
            });
            slot.votes += 1;
            slot.newest_not_before = slot.newest_not_before.max(entry.not_before);
        }
    }
    counts.retain(|_, elected| elected.votes * 2 > total);
    counts
}

/// The issuer key sets more than half of `votes` name, each by its digest
/// (each vote counted once; the caller makes sure they are distinct,
/// trusted and verified). An issuer whose votes are split, none naming one
/// set for a majority, has no set elected: an issuer showing different sets
/// to different validators gets at most one listed, or none. The one rule
/// the registry (to build a proposal) and the validators (to check it)
/// apply.
pub fn tally_issuers<'a>(
    votes: impl IntoIterator<Item = &'a Vote>,
) -> BTreeMap<IssuerId, KeySetDigest> {
    let mut counts: BTreeMap<(IssuerId, KeySetDigest), usize> = BTreeMap::new();
    let mut total = 0usize;
    for vote in votes {
        total += 1;
        for entry in vote.issuers() {
            *counts.entry((entry.issuer, entry.digest)).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .filter(|(_, n)| n * 2 > total)
        .map(|(key, _)| key)
        .collect()
}
