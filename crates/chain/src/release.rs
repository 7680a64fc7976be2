//! Release votes on the chain (docs/chain.md, "Release votes"):
//! `contracts/src/ReleaseRegistry.sol`, deployed by `RelayRegistry`'s
//! constructor. A release (its `ReleaseId`, the SHA-256 of its signed
//! in-toto statement; its binary's SHA-256; the TEE launch measurements it
//! yields) is proposed with a bond; the validators commit to approve or
//! reject, reveal, and anyone settles; the majority is paid from the
//! minority's (and the silent's) stake.
//!
//! [`ReleaseVotes::read_releases`] is what a registry puts into
//! directories: every release with its status at one block, bounded so a
//! hostile node cannot make it allocate without limit.

use alloy::eips::BlockId;
use alloy::primitives::{Address, B256, Bytes, FixedBytes, U256, keccak256};
use alloy::providers::DynProvider;
use alloy::sol_types::SolValue;

use crate::contract::votes::ReleaseRegistry::{
    self, ReleaseRegistryErrors, ReleaseRegistryInstance,
};
use crate::deploy::ReleaseVoteParams;
use crate::operator::{OperatorError, Registry, Sent};

/// Most launch measurements one release lists (the contract's
/// `MAX_MEASUREMENTS`).
pub const MAX_MEASUREMENTS: usize = 16;
/// One encoded measurement: platform byte and 48-byte value.
pub const MEASUREMENT_BYTES: usize = 49;
/// Most releases [`ReleaseVotes::read_releases`] reads: a release a week
/// for eighty years. A node claiming more is refused rather than followed
/// into an unbounded read.
pub const MAX_LISTED_RELEASES: u64 = 4_096;
/// The contract's `VOTE_DOMAIN`: "openrelay release vote v1", zero-padded
/// to 32 bytes.
const VOTE_DOMAIN: &[u8] = b"openrelay release vote v1";

/// A TEE launch measurement: the platform's number and its 48-byte value
/// (SEV-SNP's and TDX's MRTD are 48 bytes; shorter ones are zero-padded
/// by the platform's encoding, which the attestation crate defines).
pub type Measurement = (u8, [u8; 48]);

/// A release's standing on the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseStatus {
    /// A ballot on it is open.
    Proposed,
    /// Validators approved it: relays may run it.
    Approved,
    /// Validators rejected it, for good.
    Rejected,
    /// Approved once, revoked since, for good: clients refuse it.
    Revoked,
    /// Its ballot reached no quorum; it may be proposed again.
    Undecided,
}

impl ReleaseStatus {
    fn from_code(code: u8) -> Option<ReleaseStatus> {
        Some(match code {
            1 => ReleaseStatus::Proposed,
            2 => ReleaseStatus::Approved,
            3 => ReleaseStatus::Rejected,
            4 => ReleaseStatus::Revoked,
            5 => ReleaseStatus::Undecided,
            _ => return None,
        })
    }
}

/// A release as the chain lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseRecord {
    /// The SHA-256 of its signed in-toto statement (`ReleaseId`).
    pub release_id: [u8; 32],
    /// The SHA-256 of its binary.
    pub binary_sha256: [u8; 32],
    /// The launch measurements a TEE reports for it.
    pub measurements: Vec<Measurement>,
    /// Its standing.
    pub status: ReleaseStatus,
    /// The ballot open on it (a proposal or a revocation), if any.
    pub open_ballot: Option<u64>,
}

/// What a ballot decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BallotKind {
    /// Whether to approve a proposed release.
    Release,
    /// Whether to revoke an approved release ("approve" revokes).
    Revocation,
}

/// How a ballot ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BallotOutcome {
    /// Not settled yet.
    Open,
    /// Approving weight reached the quorum.
    Approved,
    /// Rejecting weight reached the quorum.
    Rejected,
    /// Neither did.
    Undecided,
}

/// A ballot as the chain holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BallotRecord {
    /// Its number (from 1).
    pub id: u64,
    /// The release it decides on.
    pub release_id: [u8; 32],
    /// A proposal or a revocation.
    pub kind: BallotKind,
    /// Its outcome so far.
    pub outcome: BallotOutcome,
    /// Who proposed it (and gets the bond back unless it is rejected).
    pub proposer: Address,
    /// Chain time the commit phase ends (reveals open).
    pub commit_ends_at: u64,
    /// Chain time the reveal phase ends (settlement opens).
    pub reveal_ends_at: u64,
    /// Approving weight counted at settlement.
    pub approve_weight: U256,
    /// Rejecting weight counted at settlement.
    pub reject_weight: U256,
    /// Accounts that committed.
    pub voters: Vec<Address>,
}

/// Why the release contract refused, decoded from its custom errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReleaseRefusal {
    /// The bond sent is not the one required.
    #[error("a proposal bonds exactly {} (sent {})", crate::operator::eth(*required), crate::operator::eth(*sent))]
    WrongBond {
        /// Wei required.
        required: U256,
        /// Wei sent.
        sent: U256,
    },
    /// A zero release id or binary hash.
    #[error("the release id and the binary hash must not be zero")]
    ZeroRelease,
    /// The release id is known already.
    #[error("release {release_id} is known already ({status:?}); release ids are never reused")]
    ReleaseKnown {
        /// The release.
        release_id: B256,
        /// Its standing (`None`: a code this build does not know).
        status: Option<ReleaseStatus>,
    },
    /// The measurements' encoding is refused.
    #[error(
        "measurements of {0} bytes: they must be 1 to {MAX_MEASUREMENTS} entries of {MEASUREMENT_BYTES} bytes"
    )]
    BadMeasurements(U256),
    /// Only an approved release with no open ballot can be revoked.
    #[error("release {release_id} cannot be revoked: it is {status:?} or a ballot on it is open")]
    NotRevocable {
        /// The release.
        release_id: B256,
        /// Its standing.
        status: Option<ReleaseStatus>,
    },
    /// No such ballot.
    #[error("no ballot {0}")]
    UnknownBallot(u64),
    /// The account is not in the current validator set.
    #[error("this account is not in the current validator set")]
    NotValidator,
    /// The commit phase is over.
    #[error(
        "commitments to ballot {ballot} closed at unix time {closed_at} (chain time now {now})"
    )]
    CommitPhaseOver {
        /// The ballot.
        ballot: u64,
        /// When its commit phase ended.
        closed_at: u64,
        /// The chain's time.
        now: u64,
    },
    /// Outside the reveal phase.
    #[error(
        "reveals of ballot {ballot} are accepted from unix time {opens_at} until before {closes_at} (chain time now {now})"
    )]
    NotRevealPhase {
        /// The ballot.
        ballot: u64,
        /// When reveals open.
        opens_at: u64,
        /// When they close.
        closes_at: u64,
        /// The chain's time.
        now: u64,
    },
    /// The all-zero commitment.
    #[error("the commitment is all zeros")]
    ZeroCommitment,
    /// This validator committed to the ballot already.
    #[error("this validator has already committed to ballot {0}")]
    AlreadyCommitted(u64),
    /// No commitment to reveal.
    #[error("this validator made no commitment to ballot {0}")]
    NotCommitted(u64),
    /// Revealed already.
    #[error("this validator has already revealed its vote on ballot {0}")]
    AlreadyRevealed(u64),
    /// The reveal does not match the commitment.
    #[error(
        "the vote revealed hashes to {reveal_hash}, not to the commitment {commitment} made to ballot {ballot}"
    )]
    CommitmentMismatch {
        /// The ballot.
        ballot: u64,
        /// The commitment made.
        commitment: B256,
        /// What the reveal hashes to.
        reveal_hash: B256,
    },
    /// Settling before the reveal phase ended.
    #[error("ballot {ballot} can be settled from unix time {opens_at} (chain time now {now})")]
    TooEarly {
        /// The ballot.
        ballot: u64,
        /// When it can be settled.
        opens_at: u64,
        /// The chain's time.
        now: u64,
    },
    /// Settled already.
    #[error("ballot {0} is settled already")]
    AlreadySettled(u64),
    /// Another of the contract's errors (invalid parameters, a call to the
    /// registry's hook from elsewhere).
    #[error("the release contract refused ({0})")]
    Other(&'static str),
}

impl ReleaseRefusal {
    /// The release contract's custom error in `error`, if it is one.
    pub fn decode(error: &alloy::contract::Error) -> Option<ReleaseRefusal> {
        use ReleaseRegistryErrors as E;
        let status = |code: u8| ReleaseStatus::from_code(code);
        Some(
            match error.as_decoded_interface_error::<ReleaseRegistryErrors>()? {
                E::WrongBond(e) => ReleaseRefusal::WrongBond {
                    required: e.required,
                    sent: e.sent,
                },
                E::ZeroRelease(_) => ReleaseRefusal::ZeroRelease,
                E::ReleaseKnown(e) => ReleaseRefusal::ReleaseKnown {
                    release_id: e.releaseId,
                    status: status(e.status),
                },
                E::BadMeasurements(e) => ReleaseRefusal::BadMeasurements(e.length),
                E::NotRevocable(e) => ReleaseRefusal::NotRevocable {
                    release_id: e.releaseId,
                    status: status(e.status),
                },
                E::UnknownBallot(e) => ReleaseRefusal::UnknownBallot(e.ballot),
                E::NotValidator(_) => ReleaseRefusal::NotValidator,
                E::CommitPhaseOver(e) => ReleaseRefusal::CommitPhaseOver {
                    ballot: e.ballot,
                    closed_at: e.closesAt,
                    now: e.now,
                },
                E::NotRevealPhase(e) => ReleaseRefusal::NotRevealPhase {
                    ballot: e.ballot,
                    opens_at: e.opensAt,
                    closes_at: e.closesAt,
                    now: e.now,
                },
                E::ZeroCommitment(_) => ReleaseRefusal::ZeroCommitment,
                E::AlreadyCommitted(e) => ReleaseRefusal::AlreadyCommitted(e.ballot),
                E::NotCommitted(e) => ReleaseRefusal::NotCommitted(e.ballot),
                E::AlreadyRevealed(e) => ReleaseRefusal::AlreadyRevealed(e.ballot),
                E::CommitmentMismatch(e) => ReleaseRefusal::CommitmentMismatch {
                    ballot: e.ballot,
                    commitment: e.commitment,
                    reveal_hash: e.revealHash,
                },
                E::TooEarly(e) => ReleaseRefusal::TooEarly {
                    ballot: e.ballot,
                    opens_at: e.opensAt,
                    now: e.now,
                },
                E::AlreadySettled(e) => ReleaseRefusal::AlreadySettled(e.ballot),
                E::BadParams(_) => ReleaseRefusal::Other("BadParams"),
                E::OnlyRegistry(_) => ReleaseRefusal::Other("OnlyRegistry"),
            },
        )
    }
}

/// Why a release-vote operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReleaseError {
    /// The release contract refused.
    #[error("the release contract refused: {0}")]
    Refused(ReleaseRefusal),
    /// The node, the registry or the transaction failed.
    #[error(transparent)]
    Chain(#[from] OperatorError),
    /// Measurements that the contract would refuse (checked before
    /// sending) or that a node returned malformed.
    #[error(transparent)]
    Measurements(#[from] MeasurementsError),
    /// The node claims more releases than [`MAX_LISTED_RELEASES`].
    #[error(
        "the node claims {count} releases, more than the {MAX_LISTED_RELEASES} read (a broken or hostile node)"
    )]
    TooManyReleases {
        /// The count it claims.
        count: U256,
    },
    /// The node returned a release that is not what was asked for (a
    /// status code this build does not know, or another id).
    #[error("the node returned a malformed release {0}")]
    MalformedRelease(B256),
    /// The proposal was mined but its event is missing (a broken node).
    #[error("transaction {0} was mined without the ballot's event")]
    NoBallotEvent(B256),
}

impl openrelay_types::HasKind for ReleaseError {
    fn kind(&self) -> openrelay_types::ErrorKind {
        use openrelay_types::ErrorKind;
        match self {
            ReleaseError::Refused(_) => ErrorKind::Refused,
            ReleaseError::Chain(e) => e.kind(),
            ReleaseError::Measurements(_) => ErrorKind::Config,
            ReleaseError::TooManyReleases { .. }
            | ReleaseError::MalformedRelease(_)
            | ReleaseError::NoBallotEvent(_) => ErrorKind::PeerMisbehaved,
        }
    }
}

/// Why a list of measurements is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MeasurementsError {
    /// None, or more than [`MAX_MEASUREMENTS`].
    #[error("a release lists 1 to {MAX_MEASUREMENTS} measurements, not {0}")]
    Count(usize),
    /// The bytes are not whole entries.
    #[error("{0} bytes are not whole {MEASUREMENT_BYTES}-byte measurements")]
    Length(usize),
}

/// Encodes measurements as the contract takes them: each platform byte
/// followed by its 48-byte value.
pub fn encode_measurements(measurements: &[Measurement]) -> Result<Vec<u8>, MeasurementsError> {
    if measurements.is_empty() || measurements.len() > MAX_MEASUREMENTS {
        return Err(MeasurementsError::Count(measurements.len()));
    }
    let mut out = Vec::with_capacity(measurements.len() * MEASUREMENT_BYTES);
    for (platform, value) in measurements {
        out.push(*platform);
        out.extend_from_slice(value);
    }
    Ok(out)
}

/// Decodes [`encode_measurements`]' bytes (from the chain: untrusted).
pub fn decode_measurements(bytes: &[u8]) -> Result<Vec<Measurement>, MeasurementsError> {
    if !bytes.len().is_multiple_of(MEASUREMENT_BYTES) {
        return Err(MeasurementsError::Length(bytes.len()));
    }
    let count = bytes.len() / MEASUREMENT_BYTES;
    if count == 0 || count > MAX_MEASUREMENTS {
        return Err(MeasurementsError::Count(count));
    }
    Ok(bytes
        .chunks_exact(MEASUREMENT_BYTES)
        .map(|entry| {
            let mut value = [0u8; 48];
            value.copy_from_slice(&entry[1..]);
            (entry[0], value)
        })
        .collect())
}

/// The commitment `voter` makes to voting `approve` on `ballot` with
/// `salt`: the contract's `voteCommitment`, computed here so the vote is
/// never sent to a node before its reveal.
pub fn vote_commitment(ballot: u64, voter: Address, approve: bool, salt: [u8; 32]) -> B256 {
    let mut domain = [0u8; 32];
    domain[..VOTE_DOMAIN.len()].copy_from_slice(VOTE_DOMAIN);
    keccak256((B256::from(domain), ballot, voter, approve, B256::from(salt)).abi_encode())
}

/// The transaction and the ballot it opened (from its event `E`).
fn opened<E: alloy::sol_types::SolEvent>(
    receipt: &alloy::rpc::types::TransactionReceipt,
    ballot: impl Fn(&E) -> u64,
) -> Result<(Sent, u64), ReleaseError> {
    let id = receipt
        .decoded_log::<E>()
        .map(|e| ballot(&e.data))
        .ok_or(ReleaseError::NoBallotEvent(receipt.transaction_hash))?;
    Ok((Sent::from_receipt(receipt), id))
}

/// The release contract beside a [`Registry`], with its signing account.
#[derive(Debug, Clone)]
pub struct ReleaseVotes {
    registry: Registry,
    contract: ReleaseRegistryInstance<DynProvider>,
}

impl Registry {
    /// The release votes deployed with this registry.
    pub async fn release_votes(&self) -> Result<ReleaseVotes, OperatorError> {
        let address = self.read(self.contract.releaseRegistry().call()).await?;
        Ok(ReleaseVotes {
            registry: self.clone(),
            contract: ReleaseRegistry::new(address, self.contract.provider().clone()),
        })
    }
}

impl ReleaseVotes {
    /// The release contract's address.
    pub fn address(&self) -> Address {
        *self.contract.address()
    }

    /// Its parameters.
    pub fn params(&self) -> &ReleaseVoteParams {
        &self.registry.params().release
    }

    /// The registry it belongs to.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Proposes release `release_id` with its binary's hash and launch
    /// measurements, paying the bond; returns the ballot's number.
    pub async fn propose(
        &self,
        release_id: [u8; 32],
        binary_sha256: [u8; 32],
        measurements: &[Measurement],
    ) -> Result<(Sent, u64), ReleaseError> {
        let encoded = Bytes::from(encode_measurements(measurements)?);
        let call = self
            .contract
            .propose(FixedBytes(release_id), FixedBytes(binary_sha256), encoded)
            .value(self.params().proposal_bond);
        let receipt = self.submit(call).await?;
        opened(&receipt, |e: &ReleaseRegistry::ReleaseProposed| e.ballot)
    }

    /// Proposes revoking approved release `release_id`, paying the bond;
    /// returns the ballot's number ("approve" on it revokes).
    pub async fn propose_revocation(
        &self,
        release_id: [u8; 32],
    ) -> Result<(Sent, u64), ReleaseError> {
        let call = self
            .contract
            .proposeRevocation(FixedBytes(release_id))
            .value(self.params().proposal_bond);
        let receipt = self.submit(call).await?;
        opened(&receipt, |e: &ReleaseRegistry::RevocationProposed| e.ballot)
    }

    /// Commits to voting `approve` on `ballot` with the secret `salt`
    /// (keep both: the reveal needs them).
    pub async fn commit_vote(
        &self,
        ballot: u64,
        approve: bool,
        salt: [u8; 32],
    ) -> Result<Sent, ReleaseError> {
        let commitment = vote_commitment(ballot, self.registry.account(), approve, salt);
        let receipt = self
            .submit(self.contract.commitVote(ballot, commitment))
            .await?;
        Ok(Sent::from_receipt(&receipt))
    }

    /// Reveals the vote committed to on `ballot`.
    pub async fn reveal_vote(
        &self,
        ballot: u64,
        approve: bool,
        salt: [u8; 32],
    ) -> Result<Sent, ReleaseError> {
        let call = self.contract.revealVote(ballot, approve, FixedBytes(salt));
        Ok(Sent::from_receipt(&self.submit(call).await?))
    }

    /// Settles `ballot` (anyone may, once its reveal phase is over).
    pub async fn settle(&self, ballot: u64) -> Result<Sent, ReleaseError> {
        Ok(Sent::from_receipt(
            &self.submit(self.contract.settle(ballot)).await?,
        ))
    }

    /// The chain's time: its latest block's.
    pub async fn chain_time(&self) -> Result<u64, ReleaseError> {
        Ok(self.registry.chain_time().await?)
    }

    /// How many ballots were opened (their numbers are 1 to this).
    pub async fn ballot_count(&self) -> Result<u64, ReleaseError> {
        Ok(self
            .registry
            .read(self.contract.ballotCount().call())
            .await?)
    }

    /// Ballot `id` (`None`: no such ballot).
    pub async fn ballot(&self, id: u64) -> Result<Option<BallotRecord>, ReleaseError> {
        let b = self
            .registry
            .read(self.contract.ballotInfo(id).call())
            .await?;
        let kind = match b.kind {
            0 => return Ok(None),
            1 => BallotKind::Release,
            2 => BallotKind::Revocation,
            _ => return Err(ReleaseError::MalformedRelease(b.releaseId)),
        };
        let outcome = match b.outcome {
            0 => BallotOutcome::Open,
            1 => BallotOutcome::Approved,
            2 => BallotOutcome::Rejected,
            3 => BallotOutcome::Undecided,
            _ => return Err(ReleaseError::MalformedRelease(b.releaseId)),
        };
        Ok(Some(BallotRecord {
            id,
            release_id: b.releaseId.0,
            kind,
            outcome,
            proposer: b.proposer,
            commit_ends_at: b.commitEndsAt,
            reveal_ends_at: b.revealEndsAt,
            approve_weight: b.approveWeight,
            reject_weight: b.rejectWeight,
            voters: b.voters,
        }))
    }

    /// The commitment this account made to `ballot`, if any, and whether
    /// it revealed it.
    pub async fn my_vote(&self, ballot: u64) -> Result<(Option<B256>, bool), ReleaseError> {
        let account = self.registry.account();
        let commitment = self
            .registry
            .read(self.contract.voteCommitments(ballot, account).call())
            .await?;
        let revealed = self
            .registry
            .read(self.contract.revealedVotes(ballot, account).call())
            .await?;
        Ok(((!commitment.is_zero()).then_some(commitment), revealed != 0))
    }

    /// Release `release_id` at block `at_block` (`None`: the latest), if
    /// the chain knows it.
    pub async fn release(
        &self,
        release_id: [u8; 32],
        at_block: Option<u64>,
    ) -> Result<Option<ReleaseRecord>, ReleaseError> {
        let block = at_block.map_or(BlockId::latest(), BlockId::number);
        let r = self
            .registry
            .read(
                self.contract
                    .release(FixedBytes(release_id))
                    .call()
                    .block(block),
            )
            .await?;
        if r.status == 0 {
            return Ok(None);
        }
        let status = ReleaseStatus::from_code(r.status)
            .ok_or(ReleaseError::MalformedRelease(B256::from(release_id)))?;
        Ok(Some(ReleaseRecord {
            release_id,
            binary_sha256: r.binarySha256.0,
            measurements: decode_measurements(&r.measurements)?,
            status,
            open_ballot: (r.openBallot != 0).then_some(r.openBallot),
        }))
    }

    /// Every release the chain lists at block `at_block` (`None`: the
    /// latest), in the order they were first proposed: what a registry
    /// puts into directories (approved ones to run, revoked and rejected
    /// ones to refuse). Bounded: at most [`MAX_LISTED_RELEASES`] releases
    /// of at most [`MAX_MEASUREMENTS`] measurements each, one bounded
    /// call per release, so a hostile node can neither make this
    /// allocate without limit nor pass off another release's record.
    pub async fn read_releases(
        &self,
        at_block: Option<u64>,
    ) -> Result<Vec<ReleaseRecord>, ReleaseError> {
        let block = at_block.map_or(BlockId::latest(), BlockId::number);
        let count = self
            .registry
            .read(self.contract.releaseCount().call().block(block))
            .await?;
        let count = u64::try_from(count)
            .ok()
            .filter(|n| *n <= MAX_LISTED_RELEASES)
            .ok_or(ReleaseError::TooManyReleases { count })?;
        let mut releases = Vec::new();
        for index in 0..count {
            let id = self
                .registry
                .read(
                    self.contract
                        .releaseIdAt(U256::from(index))
                        .call()
                        .block(block),
                )
                .await?;
            let record = self
                .release(id.0, at_block)
                .await?
                .ok_or(ReleaseError::MalformedRelease(id))?;
            releases.push(record);
        }
        Ok(releases)
    }

    async fn submit<C: alloy::sol_types::SolCall>(
        &self,
        call: alloy::contract::SolCallBuilder<&DynProvider, C>,
    ) -> Result<alloy::rpc::types::TransactionReceipt, ReleaseError> {
        // Decoded as this contract's errors first: several share their
        // selector with the registry's (`AlreadyCommitted(uint64)`, ...).
        let pending =
            self.registry.bounded(call.send()).await?.map_err(
                |e| match ReleaseRefusal::decode(&e) {
                    Some(refusal) => ReleaseError::Refused(refusal),
                    None => ReleaseError::Chain(self.registry.failed(e)),
                },
            )?;
        Ok(self.registry.confirm(pending).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn measurements_round_trip(entries in proptest::collection::vec((any::<u8>(), proptest::array::uniform32(any::<u8>())), 1..=MAX_MEASUREMENTS)) {
            let measurements: Vec<Measurement> = entries
                .iter()
                .map(|(p, half)| {
                    let mut value = [0u8; 48];
                    value[..32].copy_from_slice(half);
                    (*p, value)
                })
                .collect();
            let bytes = encode_measurements(&measurements).expect("encode");
            prop_assert_eq!(bytes.len(), measurements.len() * MEASUREMENT_BYTES);
            prop_assert_eq!(decode_measurements(&bytes).expect("decode"), measurements);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2_000)) {
            if let Ok(decoded) = decode_measurements(&bytes) {
                prop_assert!(!decoded.is_empty() && decoded.len() <= MAX_MEASUREMENTS);
                prop_assert_eq!(encode_measurements(&decoded).expect("encode"), bytes);
            }
        }
    }

    #[test]
    fn bounds_are_the_contracts() {
        assert!(matches!(
            encode_measurements(&[]),
            Err(MeasurementsError::Count(0))
        ));
        let many = vec![(1u8, [0u8; 48]); MAX_MEASUREMENTS + 1];
        assert!(matches!(
            encode_measurements(&many),
            Err(MeasurementsError::Count(17))
        ));
        assert!(matches!(
            decode_measurements(&[0u8; 50]),
            Err(MeasurementsError::Length(50))
        ));
    }
}
