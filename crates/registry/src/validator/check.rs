//! What a validator checks before it signs a proposal (issue 11, item 6):
//! pure code, time passed in, so every rule is tested without a network.
//!
//! A validator signs a proposal only if, in this order:
//! 1. it is well formed;
//! 2. it does not contradict what this validator signed before
//!    ([`LastSigned`], kept in its state directory): the sequence is higher
//!    than the last one signed but by a bounded step (at most one per second
//!    since then, plus [`SEQUENCE_SLACK`]; at most [`FIRST_SEQUENCE_LIMIT`]
//!    for a validator that never signed), never the same sequence with
//!    another digest, never issued before the last one;
//! 3. it was issued now (within [`MAX_CLOCK_SKEW_SECS`] either way) and is
//!    valid no longer than this validator allows;
//! 4. it carries at least `threshold` distinct, fresh, correctly signed
//!    votes of trusted validators, this validator's own among them;
//! 5. it lists exactly the relays those votes elect ([`tally`]), each with a
//!    descriptor no older than the votes say (less a TTL of tolerance) or,
//!    older, saying the same as this validator's own fresh copy (a stable
//!    descriptor: the registry keeps listing a relay's descriptor while the
//!    relay republishes it unchanged, so directories and their diffs do not
//!    change with every re-signing; liveness still follows the newest
//!    publication, so a relay that stops publishing leaves after the TTL),
//!    the profiles of their operators and nothing else;
//! 6. it keeps the publication rules (operator and total limits,
//!    special-purpose endpoints);
//! 7. it lists exactly the issuer key sets those votes elect
//!    ([`tally_issuers`]: for each issuer, the set more than half of the
//!    votes name), each keeping the publication rules for key sets
//!    ([`check_key_set`]);
//! 8. every signature inside verifies and every descriptor is valid over the
//!    directory's life ([`Directory::check_contents`]).
//!
//!
//! With `[chain]` (issue 13), also: the directory is anchored at a block
//! this validator's own node confirmed (one of its last
//! [`crate::chain::CHAIN_RING_BLOCKS`]); the votes and the threshold are
//! those of the chain's validator set at that block; the relay list is
//! exactly the elected relays the chain admits there
//! ([`crate::chain::ChainView::admit`]: registered under the operator key
//! the descriptor names, covered, descriptor hash and bandwidth as on
//! chain); and the chain section's figures (operators' stakes and cover,
//! relays' registered bandwidth, the validator epoch) are the chain's.
//! And (issue 14) the relays' measurements are those of this validator's
//! record of the settled epochs, with no relay listed that the record
//! found down ([`crate::measurements`], with its grace of one epoch).
//!
//! A registry can therefore not get signatures on two directories with one
//! sequence number, on a sequence from which no later directory could
//! follow, on an old or overlong directory, or on a relay list or issuer
//! keys of its choosing; and an issuer showing validators different key
//! sets gets at most the one most of them saw listed.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use crate::chain::{AnchorLookup, ChainRing, votes_needed};
use openrelay_config::PublicationLimits;
use openrelay_directory::vote::{SignedVote, tally, tally_issuers};
use openrelay_directory::{
    AddressClass, ChainRelay, Directory, DirectoryDigest, DirectoryError, FormatError, IssuerId,
    MAX_CLOCK_SKEW_SECS, OperatorId, Proposal, RelayId, ValidatorId,
};

use crate::key_sets::{KeySetRule, check_key_set};
use crate::measurements::{MeasurementRecord, Standing};
use crate::service::VOTE_MAX_AGE_SECS;

/// A registry may skip this many sequence numbers beyond one per second since
/// the last directory this validator signed.
pub const SEQUENCE_SLACK: u64 = 64;
/// The highest sequence a validator that never signed accepts (so a registry
/// cannot start a network at `u64::MAX`, from which no directory could
/// follow).
pub const FIRST_SEQUENCE_LIMIT: u64 = 1 << 32;

/// What a validator remembers of the last directory it signed (persisted
/// before the signature leaves).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastSigned {
    /// Its sequence.
    pub sequence: u64,
    /// When it was issued.
    pub issued_at: u64,
    /// SHA-256 of its bytes.
    pub digest: DirectoryDigest,
    /// When this validator signed it.
    pub signed_at: u64,
}

impl LastSigned {
    /// Length of [`LastSigned::to_bytes`].
    pub const LEN: usize = 8 + 8 + 32 + 8;

    /// The record's bytes: sequence, issued_at, digest, signed_at.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[..8].copy_from_slice(&self.sequence.to_be_bytes());
        out[8..16].copy_from_slice(&self.issued_at.to_be_bytes());
        out[16..48].copy_from_slice(self.digest.as_bytes());
        out[48..].copy_from_slice(&self.signed_at.to_be_bytes());
        out
    }

    /// Reads a record written by [`LastSigned::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let u64_at = |at: usize| {
            bytes
                .get(at..at + 8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes)
        };
        if bytes.len() != Self::LEN {
            return None;
        }
        Some(LastSigned {
            sequence: u64_at(0)?,
            issued_at: u64_at(8)?,
            digest: DirectoryDigest::from_bytes(bytes.get(16..48)?.try_into().ok()?),
            signed_at: u64_at(48)?,
        })
    }
}

/// The rules of one validator.
#[derive(Debug, Clone)]
pub struct Rules {
    /// This validator.
    pub own: ValidatorId,
    /// Every validator whose vote counts (this one included).
    pub validators: BTreeSet<ValidatorId>,
    /// The fewest votes a proposal must carry.
    pub threshold: usize,
    /// The longest validity signed.
    pub max_lifetime_secs: u64,
    /// The publication rules (the same as the registry's); its TTL is also
    /// how far a listed descriptor may lag behind the newest voted one.
    pub limits: PublicationLimits,
}

/// What to do with a proposal that passed.
#[derive(Debug)]
pub enum Verdict {
    /// Sign it (after recording it).
    Sign {
        /// The directory.
        directory: Directory,
        /// Its digest.
        digest: DirectoryDigest,
    },
    /// This validator signed exactly this directory already.
    AlreadySigned,
}

/// Why a validator does not sign a proposal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The proposal or its directory does not decode.
    #[error("malformed proposal: {0}")]
    Malformed(#[from] FormatError),
    /// Lower than the last sequence signed: a rollback.
    #[error("sequence {sequence} is below the last one signed ({last})")]
    RolledBack {
        /// The proposal's.
        sequence: u64,
        /// The last signed.
        last: u64,
    },
    /// The sequence already signed, with other contents: equivocation.
    #[error("sequence {sequence} was already signed with other contents")]
    Equivocation {
        /// The sequence.
        sequence: u64,
    },
    /// The sequence jumps further than allowed.
    #[error("sequence {sequence} jumps beyond {limit}, the highest allowed now")]
    SequenceJump {
        /// The proposal's.
        sequence: u64,
        /// The highest acceptable.
        limit: u64,
    },
    /// Issued before the last directory signed.
    #[error("issued at {issued_at}, before the last directory signed ({last})")]
    IssuedBeforeLastSigned {
        /// The proposal's.
        issued_at: u64,
        /// The last signed one's.
        last: u64,
    },
    /// Not issued now.
    #[error("issued at {issued_at}, not now ({now})")]
    NotIssuedNow {
        /// The proposal's.
        issued_at: u64,
        /// The validator's clock.
        now: u64,
    },
    /// Valid for longer than this validator signs.
    #[error("valid for {secs} s, at most {max} s signed")]
    TooLong {
        /// The proposal's validity.
        secs: u64,
        /// The maximum.
        max: u64,
    },
    /// A vote by a validator not in the trusted set.
    #[error("a vote by {0}, who is not a validator")]
    UntrustedVote(ValidatorId),
    /// A vote whose signature does not verify.
    #[error("the vote of {0} does not verify")]
    BadVote(ValidatorId),
    /// Two votes of one validator.
    #[error("two votes of {0}")]
    DuplicateVote(ValidatorId),
    /// A vote too old or from the future.
    #[error("the vote of {validator} was made at {voted_at}, not recently (now {now})")]
    StaleVote {
        /// The validator.
        validator: ValidatorId,
        /// When.
        voted_at: u64,
        /// The validator's clock.
        now: u64,
    },
    /// Fewer votes than the threshold.
    #[error("{have} votes, at least {need} needed")]
    TooFewVotes {
        /// Votes carried.
        have: usize,
        /// The threshold.
        need: usize,
    },
    /// This validator's own vote is not among them (yet).
    #[error("this validator's vote is not among the proposal's votes")]
    OwnVoteMissing,
    /// A listed relay most votes do not list: the registry added it.
    #[error("relay {relay} is listed but only {votes} of {of} votes list it")]
    UnknownRelay {
        /// The relay.
        relay: RelayId,
        /// Votes listing it.
        votes: usize,
        /// Votes in all.
        of: usize,
    },
    /// A relay most votes list is left out.
    #[error("relay {relay} is left out but {votes} of {of} votes list it")]
    OmittedRelay {
        /// The relay.
        relay: RelayId,
        /// Votes listing it.
        votes: usize,
        /// Votes in all.
        of: usize,
    },
    /// A listed descriptor is older than the votes allow.
    #[error(
        "relay {relay} is listed with a descriptor from {not_before}, the votes know one from {newest}"
    )]
    StaleDescriptor {
        /// The relay.
        relay: RelayId,
        /// The listed descriptor's start.
        not_before: u64,
        /// The newest voted one's.
        newest: u64,
    },
    /// A profile of an operator without listed relays.
    #[error("profile of operator {0}, who has no listed relay")]
    ExtraProfile(OperatorId),
    /// More relays of one operator, or in all, than the publication rules
    /// allow.
    #[error("{count} relays {of}, at most {limit} allowed")]
    TooManyRelays {
        /// `"of one operator"` or `"in all"`.
        of: &'static str,
        /// How many.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// A relay endpoint at a special-purpose address.
    #[error("relay {relay} has endpoint {endpoint}, a {class} address")]
    SpecialPurposeEndpoint {
        /// The relay.
        relay: RelayId,
        /// The endpoint.
        endpoint: SocketAddr,
        /// Its class.
        class: AddressClass,
    },
    /// A listed issuer key set that most votes do not name: the registry
    /// chose it.
    #[error("the key set of issuer {issuer} is listed but only {votes} of {of} votes name it")]
    UnknownKeySet {
        /// The issuer.
        issuer: IssuerId,
        /// Votes naming that very set.
        votes: usize,
        /// Votes in all.
        of: usize,
    },
    /// An issuer key set most votes name is left out.
    #[error("the key set of issuer {issuer} is left out but {votes} of {of} votes name it")]
    OmittedKeySet {
        /// The issuer.
        issuer: IssuerId,
        /// Votes naming the elected set.
        votes: usize,
        /// Votes in all.
        of: usize,
    },
    /// A listed key set breaks the publication rules for key sets.
    #[error("the key set of issuer {issuer}: {rule}")]
    KeySetRule {
        /// The issuer.
        issuer: IssuerId,
        /// The rule.
        rule: KeySetRule,
    },
    /// A signature or validity inside the directory is wrong.
    #[error("contents: {0}")]
    Contents(#[from] DirectoryError),
    /// This validator follows the chain and the directory has no chain
    /// section.
    #[error(
        "the directory has no chain section; this validator signs only directories anchored on chain"
    )]
    ChainSectionMissing,
    /// Anchored at a block above this validator's confirmed head (its node
    /// lags): retried next round.
    #[error("anchored at block {block}, above this validator's confirmed head ({head:?})")]
    AnchorAhead {
        /// The anchor's block.
        block: u64,
        /// This validator's newest confirmed block.
        head: Option<u64>,
    },
    /// Anchored at a block this validator did not confirm: older than the
    /// blocks it keeps, another fork, or another deployment.
    #[error(
        "anchored at block {block}, not one of this validator's recent confirmed blocks (head {head:?})"
    )]
    AnchorUnknown {
        /// The anchor's block.
        block: u64,
        /// This validator's newest confirmed block.
        head: Option<u64>,
    },
    /// A listed relay the chain does not admit at the anchor.
    #[error("relay {relay} is listed but the chain does not admit it at the anchor: {why}")]
    ChainInvented {
        /// The relay.
        relay: RelayId,
        /// Why not.
        why: crate::chain::NotAdmitted,
    },
    /// An elected relay the chain admits at the anchor is left out.
    #[error("relay {relay} is elected and admitted on chain at the anchor but left out")]
    ChainOmitted {
        /// The relay.
        relay: RelayId,
    },
    /// The chain section's figures are not the chain's at the anchor.
    #[error("the chain section's {what} differ from the chain's at the anchor")]
    ChainFiguresDiffer {
        /// `"operators"`, `"relays"` or `"validator epoch"`.
        what: &'static str,
    },
    /// The chain has no usable validator set at the anchor.
    #[error("no usable validator set on chain at the anchor")]
    NoChainValidatorSet,
    /// The relays' measurements (or a listed relay found down) are not
    /// what this validator's record of the settled epochs says, after its
    /// latest epoch or the one before (issue 14).
    #[error("measurements: {0}")]
    MeasurementsDiffer(Box<crate::measurements::Mismatch>),
    /// A relay's measurement is of an epoch this validator has not recorded
    /// yet: the registry recorded it first (an honest race at settlement).
    #[error("measurements ahead of this validator's record: {0}")]
    MeasurementsAhead(Box<crate::measurements::Mismatch>),
}

impl Refusal {
    /// Whether an honest registry can cause this in passing (its proposal
    /// predates this validator's vote, or a relay's publication reached the
    /// validators first): then the validator waits before it warns.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Refusal::OwnVoteMissing
                | Refusal::AnchorAhead { .. }
                | Refusal::OmittedRelay { .. }
                | Refusal::StaleDescriptor { .. }
                | Refusal::OmittedKeySet { .. }
                | Refusal::MeasurementsAhead(_)
        )
    }
}

/// Checks `proposal` at `now` after `last` (what this validator signed last).
pub fn check_proposal(
    proposal: &Proposal,
    rules: &Rules,
    last: Option<&LastSigned>,
    now: u64,
) -> Result<Verdict, Refusal> {
    check_proposal_with_own(proposal, rules, &|_| None, last, now)
}

/// [`check_proposal`] accepting stable descriptors (rule 5): an elected
/// relay's descriptor older than the votes' newest less a TTL passes if it
/// says the same as `own_descriptor`'s copy, itself fresh.
pub fn check_proposal_with_own(
    proposal: &Proposal,
    rules: &Rules,
    own_descriptor: &dyn Fn(&RelayId) -> Option<crate::HeldDescriptor>,
    last: Option<&LastSigned>,
    now: u64,
) -> Result<Verdict, Refusal> {
    let Some((directory, digest)) = unsigned(proposal, last)? else {
        return Ok(Verdict::AlreadySigned);
    };
    check_record(&directory, last, now)?;
    check_times(&directory, rules, now)?;
    let votes = check_votes(&proposal.votes, rules, now)?;
    check_relays(&directory, &votes, rules, own_descriptor, |_| false)?;
    check_key_sets(&directory, &votes, rules, now)?;
    directory.check_contents(now)?;
    Ok(Verdict::Sign { directory, digest })
}

/// What a validator following the chain knows of it: its recent confirmed
/// blocks, and its own copy of a relay's descriptor and of its operator's
/// profile (`None`: it holds no descriptor).
pub struct OnChain<'a> {
    /// Its recent confirmed blocks.
    pub ring: &'a ChainRing,
    /// This validator's own descriptor of a relay and its operator's
    /// profile, if it holds them.
    pub own_descriptor: &'a dyn Fn(&RelayId) -> Option<crate::HeldDescriptor>,
    /// Its record of the settled measurement epochs.
    pub measurements: &'a MeasurementRecord,
}

impl std::fmt::Debug for OnChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnChain")
            .field("ring", &self.ring)
            .finish_non_exhaustive()
    }
}

/// [`check_proposal`] for a validator following the chain (`[chain]`):
/// the same checks, with the validator set of the chain at the anchor in
/// place of the configured one, the relays restricted to those the chain
/// admits at the anchor, and the chain section checked against the
/// chain's figures (see the module documentation).
pub fn check_proposal_on_chain(
    proposal: &Proposal,
    rules: &Rules,
    chain: &OnChain<'_>,
    last: Option<&LastSigned>,
    now: u64,
) -> Result<Verdict, Refusal> {
    let Some((directory, digest)) = unsigned(proposal, last)? else {
        return Ok(Verdict::AlreadySigned);
    };
    let section = directory.chain().ok_or(Refusal::ChainSectionMissing)?;
    let view = match chain.ring.lookup(&section.anchor) {
        AnchorLookup::Known(view) => view,
        AnchorLookup::Ahead { head } => {
            return Err(Refusal::AnchorAhead {
                block: section.anchor.block_number,
                head,
            });
        }
        AnchorLookup::Unknown { head } => {
            return Err(Refusal::AnchorUnknown {
                block: section.anchor.block_number,
                head,
            });
        }
    };
    let set = view.validator_set().ok_or(Refusal::NoChainValidatorSet)?;
    let rules = Rules {
        validators: set.members().iter().map(|m| m.validator).collect(),
        threshold: votes_needed(&set),
        ..rules.clone()
    };
    check_record(&directory, last, now)?;
    check_times(&directory, &rules, now)?;
    let votes = check_votes(&proposal.votes, &rules, now)?;
    let record = chain.measurements;
    let measured_view = record.check(section).map_err(|m| {
        if m.is_ahead(record.latest()) {
            Refusal::MeasurementsAhead(Box::new(m))
        } else {
            Refusal::MeasurementsDiffer(Box::new(m))
        }
    })?;
    for signed in directory.descriptors() {
        let descriptor = signed.descriptor();
        if let Err(why) = view.admit(
            descriptor,
            directory.operator_profile(descriptor.operator()),
        ) {
            return Err(Refusal::ChainInvented {
                relay: descriptor.relay(),
                why,
            });
        }
    }
    // An elected relay may be left out only if the settled measurements
    // the proposal was built from found it down, or the chain does not
    // admit this validator's own copy of its descriptor at the anchor.
    let omission_allowed = |relay: &RelayId| {
        record.standing(measured_view, relay) == Standing::Down
            || (chain.own_descriptor)(relay)
                .is_some_and(|(d, p)| view.admit(&d, p.as_ref()).is_err())
    };
    check_relays(
        &directory,
        &votes,
        &rules,
        chain.own_descriptor,
        omission_allowed,
    )
    .map_err(|e| match e {
        Refusal::OmittedRelay { relay, .. } => Refusal::ChainOmitted { relay },
        other => other,
    })?;
    let expected = view
        .section(&directory)
        .map_err(|_| Refusal::ChainFiguresDiffer { what: "operators" })?;
    if expected.validator_epoch != section.validator_epoch {
        return Err(Refusal::ChainFiguresDiffer {
            what: "validator epoch",
        });
    }
    if expected.operators != section.operators {
        return Err(Refusal::ChainFiguresDiffer { what: "operators" });
    }
    // Measurements were checked against the record above.
    let same_chain_figures =
        |a: &ChainRelay, b: &ChainRelay| a.relay == b.relay && a.bandwidth_mbps == b.bandwidth_mbps;
    if expected.relays.len() != section.relays.len()
        || !expected
            .relays
            .iter()
            .zip(&section.relays)
            .all(|(a, b)| same_chain_figures(a, b))
    {
        return Err(Refusal::ChainFiguresDiffer { what: "relays" });
    }
    // The releases clients trust relays' software by (issue 15): a
    // registry adding one the validators did not approve, or dropping a
    // revocation, gets no signature.
    if expected.releases != section.releases {
        return Err(Refusal::ChainFiguresDiffer { what: "releases" });
    }
    check_key_sets(&directory, &votes, &rules, now)?;
    directory.check_contents(now)?;
    Ok(Verdict::Sign { directory, digest })
}

/// The proposal's directory and digest, unless this validator signed
/// exactly it last (`None`).
fn unsigned(
    proposal: &Proposal,
    last: Option<&LastSigned>,
) -> Result<Option<(Directory, DirectoryDigest)>, Refusal> {
    let directory = Directory::from_bytes(&proposal.directory)?;
    let digest = DirectoryDigest::of(&proposal.directory);
    if last.is_some_and(|l| l.digest == digest) {
        return Ok(None);
    }
    Ok(Some((directory, digest)))
}

fn check_record(directory: &Directory, last: Option<&LastSigned>, now: u64) -> Result<(), Refusal> {
    let sequence = directory.sequence();
    let Some(last) = last else {
        if sequence > FIRST_SEQUENCE_LIMIT {
            return Err(Refusal::SequenceJump {
                sequence,
                limit: FIRST_SEQUENCE_LIMIT,
            });
        }
        return Ok(());
    };
    if sequence < last.sequence {
        return Err(Refusal::RolledBack {
            sequence,
            last: last.sequence,
        });
    }
    if sequence == last.sequence {
        // Same digest was answered before this is reached.
        return Err(Refusal::Equivocation { sequence });
    }
    let limit = last
        .sequence
        .saturating_add(1)
        .saturating_add(now.saturating_sub(last.signed_at))
        .saturating_add(SEQUENCE_SLACK);
    if sequence > limit {
        return Err(Refusal::SequenceJump { sequence, limit });
    }
    if directory.issued_at() < last.issued_at {
        return Err(Refusal::IssuedBeforeLastSigned {
            issued_at: directory.issued_at(),
            last: last.issued_at,
        });
    }
    Ok(())
}

fn check_times(directory: &Directory, rules: &Rules, now: u64) -> Result<(), Refusal> {
    let issued_at = directory.issued_at();
    if issued_at > now.saturating_add(MAX_CLOCK_SKEW_SECS)
        || now.saturating_sub(issued_at) > MAX_CLOCK_SKEW_SECS
    {
        return Err(Refusal::NotIssuedNow { issued_at, now });
    }
    let secs = directory.valid_until().saturating_sub(issued_at);
    if secs > rules.max_lifetime_secs {
        return Err(Refusal::TooLong {
            secs,
            max: rules.max_lifetime_secs,
        });
    }
    Ok(())
}

/// The proposal's votes, checked: trusted, verified, distinct, fresh, enough,
/// this validator's among them.
fn check_votes<'a>(
    votes: &'a [SignedVote],
    rules: &Rules,
    now: u64,
) -> Result<Vec<&'a SignedVote>, Refusal> {
    let mut seen = BTreeSet::new();
    for signed in votes {
        let vote = signed.vote();
        let validator = vote.validator();
        if !rules.validators.contains(&validator) {
            return Err(Refusal::UntrustedVote(validator));
        }
        if !seen.insert(validator) {
            return Err(Refusal::DuplicateVote(validator));
        }
        let voted_at = vote.voted_at();
        if voted_at > now.saturating_add(MAX_CLOCK_SKEW_SECS)
            || voted_at.saturating_add(VOTE_MAX_AGE_SECS) < now
        {
            return Err(Refusal::StaleVote {
                validator,
                voted_at,
                now,
            });
        }
        if signed.verify().is_err() {
            return Err(Refusal::BadVote(validator));
        }
    }
    if votes.len() < rules.threshold {
        return Err(Refusal::TooFewVotes {
            have: votes.len(),
            need: rules.threshold,
        });
    }
    if !seen.contains(&rules.own) {
        return Err(Refusal::OwnVoteMissing);
    }
    Ok(votes.iter().collect())
}

/// `omission_allowed`: an elected relay that may be left out (the chain
/// does not admit it).
fn check_relays(
    directory: &Directory,
    votes: &[&SignedVote],
    rules: &Rules,
    own_descriptor: &dyn Fn(&RelayId) -> Option<crate::HeldDescriptor>,
    omission_allowed: impl Fn(&RelayId) -> bool,
) -> Result<(), Refusal> {
    let ttl = rules.limits.descriptor_ttl_secs;
    // The same content as this validator's own copy, which the votes do
    // not find stale: the older window says nothing the newest does not.
    let unchanged = |d: &openrelay_directory::RelayDescriptor, newest: u64| {
        own_descriptor(&d.relay()).is_some_and(|(own, _)| {
            own.fields().not_before.saturating_add(ttl) >= newest && own.same_except_freshness(d)
        })
    };
    let of = votes.len();
    let elected = tally(votes.iter().map(|v| v.vote()));
    let voted = |relay: &RelayId| {
        votes
            .iter()
            .filter(|v| v.vote().entry(relay).is_some())
            .count()
    };
    let mut per_operator: BTreeMap<OperatorId, usize> = BTreeMap::new();
    for signed in directory.descriptors() {
        let d = signed.descriptor();
        let relay = d.relay();
        let Some(e) = elected.get(&relay) else {
            return Err(Refusal::UnknownRelay {
                relay,
                votes: voted(&relay),
                of,
            });
        };
        let not_before = d.fields().not_before;
        if not_before.saturating_add(ttl) < e.newest_not_before
            && !unchanged(d, e.newest_not_before)
        {
            return Err(Refusal::StaleDescriptor {
                relay,
                not_before,
                newest: e.newest_not_before,
            });
        }
        if !rules.limits.dangerously_allow_special_purpose_endpoints
            && let Some((endpoint, class)) = d.special_purpose_endpoint()
        {
            return Err(Refusal::SpecialPurposeEndpoint {
                relay,
                endpoint,
                class,
            });
        }
        *per_operator.entry(d.operator()).or_default() += 1;
    }
    if let Some(relay) = elected
        .keys()
        .find(|r| directory.descriptor(r).is_none() && !omission_allowed(r))
    {
        return Err(Refusal::OmittedRelay {
            relay: *relay,
            votes: voted(relay),
            of,
        });
    }
    if let Some(profile) = directory
        .operators()
        .iter()
        .find(|p| !per_operator.contains_key(&p.profile().operator()))
    {
        return Err(Refusal::ExtraProfile(profile.profile().operator()));
    }
    if let Some(count) = per_operator
        .values()
        .copied()
        .find(|&n| n > rules.limits.max_relays_per_operator)
    {
        return Err(Refusal::TooManyRelays {
            of: "of one operator",
            count,
            limit: rules.limits.max_relays_per_operator,
        });
    }
    let total = directory.descriptors().len();
    if total > rules.limits.max_relays {
        return Err(Refusal::TooManyRelays {
            of: "in all",
            count: total,
            limit: rules.limits.max_relays,
        });
    }
    Ok(())
}

fn check_key_sets(
    directory: &Directory,
    votes: &[&SignedVote],
    rules: &Rules,
    now: u64,
) -> Result<(), Refusal> {
    let of = votes.len();
    let elected = tally_issuers(votes.iter().map(|v| v.vote()));
    let naming = |issuer: &IssuerId, digest| {
        votes
            .iter()
            .filter(|v| v.vote().issuer(issuer) == Some(digest))
            .count()
    };
    for signed in directory.key_sets() {
        let issuer = signed.key_set().issuer();
        let digest = signed.digest();
        if elected.get(&issuer) != Some(&digest) {
            return Err(Refusal::UnknownKeySet {
                issuer,
                votes: naming(&issuer, digest),
                of,
            });
        }
        check_key_set(signed.key_set(), &rules.limits, now)
            .map_err(|rule| Refusal::KeySetRule { issuer, rule })?;
    }
    if let Some((issuer, digest)) = elected
        .iter()
        .find(|(issuer, _)| directory.key_set(issuer).is_none())
    {
        return Err(Refusal::OmittedKeySet {
            issuer: *issuer,
            votes: naming(issuer, *digest),
            of,
        });
    }
    Ok(())
}
