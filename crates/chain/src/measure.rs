//! Measurement epochs on the chain (docs/chain.md, "Measurement epochs"):
//! a validator's commitment to its report and the reveal after the epoch,
//! reading an epoch's revealed reports with the validator weights and relay
//! adverts that apply to them, and the slash approvals that follow.
//!
//! The epoch is the chain's: `(block time − measureGenesis) /
//! measureEpochSeconds`. During epoch `e` a validator measures and commits
//! (`commitReport`); during the first `revealWindowSeconds` of `e + 1` it
//! reveals (`revealReport`); after that anyone settles `e` by reading its
//! `ReportRevealed` events ([`Registry::epoch_reveals`]).

use std::collections::{BTreeMap, BTreeSet};

use alloy::eips::{BlockId, BlockNumberOrTag};
use alloy::primitives::{Address, B256, Bytes, FixedBytes, U256, keccak256};
use alloy::providers::Provider;
use alloy::rpc::types::{Filter, Log};
use alloy::sol_types::{SolEvent, SolValue};
use openrelay_measure::{
    Commitment, Epoch, EpochTiming, RelayAdvert, RelayId, Reveal, RevealError, ValidatorId,
    verify_reveal,
};
use sha2::{Digest as _, Sha256};

use crate::contract::RelayRegistry::{self, RelayRegistryErrors};
use crate::operator::{LOG_RANGE_BLOCKS, OperatorError, Registry, Sent};

/// The contract's `TARGET_OPERATOR`.
const TARGET_OPERATOR: u8 = 1;
/// The contract's `TARGET_VALIDATOR`.
const TARGET_VALIDATOR: u8 = 2;

/// Most logs one `eth_getLogs` may return while an epoch is read (as the
/// follower's `max_logs_per_poll`); a range returning more is read again in
/// halves, and a single block returning more is a node to stop reading
/// from. It also bounds all the reveal logs of one epoch together: the
/// contract accepts one per validator, and a set has at most 100.
pub const MAX_LOGS_PER_CALL: usize = 10_000;

/// Most `RelayRegistered` events an epoch's reading takes: twenty times
/// the 10,000-relay network the design is sized for (each is a few hundred
/// bytes held while reading).
pub const MAX_RELAY_REGISTRATIONS: usize = 200_000;

/// The relays registered so far, as [`Registry::epoch_reveals`] learns them
/// from `RelayRegistered` events: the first reading reads from the
/// deployment, each later one only the blocks since the last (so an epoch's
/// settlement does not re-read the chain's whole history). A pair kept here
/// is only a candidate: its registration is read at the settlement block,
/// so a relay removed since, or registered in a block a reorg dropped, or
/// after an earlier settlement block, is left out there.
#[derive(Debug, Clone, Default)]
pub struct KnownRegistrations {
    pairs: BTreeSet<(Address, FixedBytes<32>)>,
    read_through: Option<u64>,
}

impl KnownRegistrations {
    /// The last block read, if any.
    pub fn read_through(&self) -> Option<u64> {
        self.read_through
    }

    /// How many (operator, relay key) registrations are known.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether none is known.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

/// Domain of a relay slash's evidence (BRIEF-14b: fixed between helpers).
const RELAY_SLASH_DOMAIN: &[u8] = b"openrelay relay slash v1\0";
/// Domain of a validator slash's evidence.
const VALIDATOR_SLASH_DOMAIN: &[u8] = b"openrelay validator slash v1\0";

/// Where chain time `now` stands in the measurement epochs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochPhase {
    /// The chain time this describes.
    pub now: u64,
    /// The current epoch: commitments for it are accepted.
    pub epoch: Epoch,
    /// When the current epoch ends (its commitments close).
    pub commit_closes_at: u64,
    /// The previous epoch's reveal window, while it is open.
    pub revealing: Option<RevealPhase>,
}

/// An open reveal window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevealPhase {
    /// The epoch whose reports are revealed.
    pub epoch: Epoch,
    /// When the window closes.
    pub closes_at: u64,
}

impl EpochPhase {
    /// Where chain time `now` stands on `timing`'s clock. A time before
    /// genesis (only a node that lies reports one) counts as epoch 0.
    pub fn at(timing: &EpochTiming, now: u64) -> EpochPhase {
        let epoch = timing.epoch_at(now).unwrap_or(0);
        let revealing = epoch.checked_sub(1).and_then(|previous| {
            let closes_at = timing.reveal_deadline(previous);
            (now < closes_at).then_some(RevealPhase {
                epoch: previous,
                closes_at,
            })
        });
        EpochPhase {
            now,
            epoch,
            commit_closes_at: timing.end(epoch),
            revealing,
        }
    }
}

/// Why the contract refused a commitment or a reveal, with the times and
/// values it names (decoded from its custom errors; a non-validator's
/// commitment is [`crate::operator::Refusal::NotValidator`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReportRefusal {
    /// A commitment for an epoch that has not started.
    #[error(
        "commitments for measurement epoch {epoch} open at unix time {opens_at} (chain time now {now})"
    )]
    CommitTooEarly {
        /// The epoch.
        epoch: Epoch,
        /// When its commitments open.
        opens_at: u64,
        /// The chain's time.
        now: u64,
    },
    /// A commitment for an epoch that has ended.
    #[error(
        "commitments for measurement epoch {epoch} closed at unix time {closed_at} (chain time now {now})"
    )]
    CommitTooLate {
        /// The epoch.
        epoch: Epoch,
        /// When its commitments closed.
        closed_at: u64,
        /// The chain's time.
        now: u64,
    },
    /// A reveal before the epoch has ended.
    #[error(
        "reveals for measurement epoch {epoch} open at unix time {opens_at} (chain time now {now})"
    )]
    RevealTooEarly {
        /// The epoch.
        epoch: Epoch,
        /// When its reveal window opens.
        opens_at: u64,
        /// The chain's time.
        now: u64,
    },
    /// A reveal after the window.
    #[error(
        "reveals for measurement epoch {epoch} closed at unix time {closed_at} (chain time now {now})"
    )]
    RevealTooLate {
        /// The epoch.
        epoch: Epoch,
        /// When its reveal window closed.
        closed_at: u64,
        /// The chain's time.
        now: u64,
    },
    /// The all-zero commitment (it marks "none" in the contract).
    #[error("the commitment is all zeros")]
    ZeroCommitment,
    /// This validator has committed for this epoch already.
    #[error("this validator has already committed to a report for measurement epoch {0}")]
    AlreadyCommitted(Epoch),
    /// A reveal from a validator that did not commit for the epoch.
    #[error("this validator made no commitment for measurement epoch {0}")]
    NotCommitted(Epoch),
    /// The reveal was made already.
    #[error("this validator has already revealed its report for measurement epoch {0}")]
    AlreadyRevealed(Epoch),
    /// The reveal does not hash to the commitment.
    #[error(
        "the reveal hashes to {reveal_hash}, not to the commitment {commitment} made for measurement epoch {epoch}"
    )]
    CommitmentMismatch {
        /// The epoch.
        epoch: Epoch,
        /// The commitment made.
        commitment: B256,
        /// What the reveal hashes to.
        reveal_hash: B256,
    },
    /// The reveal's epoch field names another epoch.
    #[error("the reveal is of measurement epoch {reveal_epoch}, revealed for {epoch}")]
    WrongRevealEpoch {
        /// The epoch revealed for.
        epoch: Epoch,
        /// The epoch the reveal names.
        reveal_epoch: Epoch,
    },
    /// The reveal's validator field names another key than the sender's.
    #[error("the reveal names validator key {reveal_key}; this validator's key is {validator_key}")]
    WrongRevealKey {
        /// The sender's validator key.
        validator_key: B256,
        /// The key the reveal names.
        reveal_key: B256,
    },
    /// The reveal is shorter than any or longer than the longest reveal.
    #[error("the reveal is {length} bytes; it must be {min} to {max}")]
    RevealLength {
        /// Its length.
        length: U256,
        /// The shortest reveal.
        min: U256,
        /// The longest.
        max: U256,
    },
}

impl ReportRefusal {
    /// The refusal a contract error stands for, if it is about reports.
    pub(crate) fn decode(error: &RelayRegistryErrors) -> Option<ReportRefusal> {
        use RelayRegistryErrors as E;
        Some(match error {
            E::CommitWindowClosed(e) if e.now < e.opensAt => ReportRefusal::CommitTooEarly {
                epoch: e.epoch,
                opens_at: e.opensAt,
                now: e.now,
            },
            E::CommitWindowClosed(e) => ReportRefusal::CommitTooLate {
                epoch: e.epoch,
                closed_at: e.closesAt,
                now: e.now,
            },
            E::RevealWindowClosed(e) if e.now < e.opensAt => ReportRefusal::RevealTooEarly {
                epoch: e.epoch,
                opens_at: e.opensAt,
                now: e.now,
            },
            E::RevealWindowClosed(e) => ReportRefusal::RevealTooLate {
                epoch: e.epoch,
                closed_at: e.closesAt,
                now: e.now,
            },
            E::ZeroCommitment(_) => ReportRefusal::ZeroCommitment,
            E::AlreadyCommitted(e) => ReportRefusal::AlreadyCommitted(e.epoch),
            E::NotCommitted(e) => ReportRefusal::NotCommitted(e.epoch),
            E::AlreadyRevealed(e) => ReportRefusal::AlreadyRevealed(e.epoch),
            E::CommitmentMismatch(e) => ReportRefusal::CommitmentMismatch {
                epoch: e.epoch,
                commitment: e.commitment,
                reveal_hash: e.revealHash,
            },
            E::RevealEpochMismatch(e) => ReportRefusal::WrongRevealEpoch {
                epoch: e.epoch,
                reveal_epoch: e.revealEpoch,
            },
            E::RevealKeyMismatch(e) => ReportRefusal::WrongRevealKey {
                validator_key: e.validatorKey,
                reveal_key: e.revealKey,
            },
            E::RevealLength(e) => ReportRefusal::RevealLength {
                length: e.length,
                min: e.minLength,
                max: e.maxLength,
            },
            _ => return None,
        })
    }
}

/// A reveal of the epoch that the contract accepted and that passes
/// [`verify_reveal`] against the commitment on the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevealedReport {
    /// The validator account that revealed.
    pub account: Address,
    /// The block it was revealed in.
    pub block: u64,
    /// The report.
    pub reveal: Reveal,
}

/// A `ReportRevealed` event of the epoch that is not counted, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedReveal {
    /// The account the event names, if it could be decoded.
    pub account: Option<Address>,
    /// The block the node said it is in.
    pub block: Option<u64>,
    /// Why it is not counted.
    pub reason: RevealRefusal,
}

/// Why a revealed report is not counted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RevealRefusal {
    /// The log is not a `ReportRevealed` event of this contract and epoch
    /// in the reveal window (only a broken or hostile node returns one).
    #[error("not a ReportRevealed event of this contract, epoch and reveal window")]
    NotThisEpochsEvent,
    /// The event's data does not decode.
    #[error("the event does not decode: {0}")]
    Undecodable(String),
    /// The account revealed twice (the contract allows once: a hostile
    /// node).
    #[error("a second reveal by the same account")]
    Duplicate,
    /// The account is not in the validator set at the settlement block.
    #[error("the account is not in the validator set at the end of the reveal window")]
    NotInSet,
    /// Two members of the set share the validator key the reveal names:
    /// neither's report counts, as either could be the other's.
    #[error("the validator key is shared by several members of the set")]
    SharedKey,
    /// The reveal names another validator key or epoch than the account's
    /// (the contract refuses this: a hostile node).
    #[error("the reveal names another validator key or epoch")]
    WrongKeyOrEpoch,
    /// The reveal fails [`verify_reveal`] against the commitment on the
    /// chain (the contract checks only the hash, the epoch and the key).
    #[error("{0}")]
    Invalid(#[from] RevealError),
}

/// A registered relay at the settlement block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainRelay {
    /// Its operator's account: the target of a slash of this relay.
    pub operator: Address,
    /// Whether the operator's stake covers all its advertised bandwidth
    /// (only covered relays are listed in directories).
    pub covered: bool,
    /// What verdicts need: bandwidth in bits per second, stake in wei.
    pub advert: RelayAdvert,
}

/// One measurement epoch as the chain settles it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochReveals {
    /// The epoch.
    pub epoch: Epoch,
    /// When its reveal window closed.
    pub reveal_closed_at: u64,
    /// The settlement block: the last block with a time before the reveal
    /// window's end. Its state holds every reveal the contract accepted,
    /// and the weights and adverts below are read at it.
    pub settlement_block: u64,
    /// The validator set at the settlement block: key → weight (its quorum
    /// weight, wei).
    pub validators: BTreeMap<ValidatorId, u128>,
    /// Each member's account.
    pub accounts: BTreeMap<ValidatorId, Address>,
    /// The reports that count, in the order they were revealed.
    pub reveals: Vec<RevealedReport>,
    /// The `ReportRevealed` events that do not count, with the reason.
    pub refused: Vec<RefusedReveal>,
    /// Registered relays whose key only one operator registered.
    pub relays: BTreeMap<RelayId, ChainRelay>,
    /// Relay keys registered by several operators: which one is the relay's
    /// is decided off the chain (the directory's operator binding), so they
    /// are left to the caller.
    pub contested_relays: BTreeMap<RelayId, Vec<ChainRelay>>,
}

impl EpochReveals {
    /// The verified reveals, as `MeasureState::apply_epoch` takes them.
    pub fn verified(&self) -> Vec<Reveal> {
        self.reveals.iter().map(|r| r.reveal.clone()).collect()
    }

    /// Each uncontested relay's advert, as `MeasureState::apply_epoch`
    /// takes them.
    pub fn adverts(&self) -> BTreeMap<RelayId, RelayAdvert> {
        self.relays.iter().map(|(id, r)| (*id, r.advert)).collect()
    }
}

/// Why an epoch could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EpochReadError {
    /// Reading the chain failed.
    #[error(transparent)]
    Chain(#[from] OperatorError),
    /// The reveal window has not closed yet (no block after it).
    #[error(
        "the reveal window of measurement epoch {epoch} closes at unix time {closes_at}; the chain's latest block is at {now}"
    )]
    RevealWindowOpen {
        /// The epoch.
        epoch: Epoch,
        /// When its window closes.
        closes_at: u64,
        /// The latest block's time.
        now: u64,
    },
    /// The node returned more logs for one block than a call takes, or
    /// more reveal logs for the epoch than any set can make.
    #[error("the node returned more than {limit} logs (for block {block})")]
    TooManyLogs {
        /// [`MAX_LOGS_PER_CALL`].
        limit: usize,
        /// The block.
        block: u64,
    },
    /// One block's logs exceed the RPC answer bound.
    #[error("the logs of block {block} exceed the RPC answer bound: {source}")]
    ResponseTooLarge {
        /// The block.
        block: u64,
        /// The bound.
        source: crate::rpc::ResponseTooLarge,
    },
    /// A `RelayRegistered` log does not decode (a broken or hostile node).
    #[error("a RelayRegistered log (block {block:?}) does not decode: {source}")]
    UndecodableLog {
        /// The block the node said it is in.
        block: Option<u64>,
        /// Why.
        source: alloy::sol_types::Error,
    },
    /// The node's validator set is larger than the contract allows.
    #[error("the node reports a validator set of {members} members; the contract allows {max}")]
    SetTooLarge {
        /// Members reported.
        members: usize,
        /// `maxValidators`.
        max: u32,
    },
}

impl openrelay_types::HasKind for EpochReadError {
    fn kind(&self) -> openrelay_types::ErrorKind {
        use openrelay_types::ErrorKind;
        match self {
            EpochReadError::Chain(e) => e.kind(),
            EpochReadError::RevealWindowOpen { .. } => ErrorKind::Refused,
            EpochReadError::TooManyLogs { .. }
            | EpochReadError::ResponseTooLarge { .. }
            | EpochReadError::UndecodableLog { .. }
            | EpochReadError::SetTooLarge { .. } => ErrorKind::PeerMisbehaved,
        }
    }
}

/// A slash approval sent (what to approve is `openrelay_measure::SlashApproval`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlashApproved {
    /// The transaction.
    pub sent: Sent,
    /// The slash's id (`slashId`).
    pub slash_id: B256,
    /// The evidence approved.
    pub evidence: B256,
    /// What the slash took, if this approval reached the quorum and
    /// executed it.
    pub executed: Option<SlashExecuted>,
}

/// A slash executed (the contract's `Slashed` event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlashExecuted {
    /// Wei taken from the target (bonded, then unbonding stake).
    pub taken: U256,
    /// Wei burnt.
    pub burnt: U256,
    /// Wei paid to the approving validators.
    pub rewarded: U256,
    /// The target's bonded stake left.
    pub stake_left: U256,
}

/// The evidence of slashing relay `relay` for measurement epoch `epoch`:
/// `sha256("openrelay relay slash v1\0" ‖ epoch u64 BE ‖ relay key)`.
pub fn relay_slash_evidence(epoch: Epoch, relay: &RelayId) -> B256 {
    evidence(RELAY_SLASH_DOMAIN, epoch, relay.as_bytes())
}

/// The evidence of slashing validator `validator` for measurement epoch
/// `epoch`: `sha256("openrelay validator slash v1\0" ‖ epoch u64 BE ‖
/// validator key)`.
pub fn validator_slash_evidence(epoch: Epoch, validator: &ValidatorId) -> B256 {
    evidence(VALIDATOR_SLASH_DOMAIN, epoch, validator.as_bytes())
}

fn evidence(domain: &[u8], epoch: Epoch, key: &[u8; 32]) -> B256 {
    let mut h = Sha256::new();
    h.update(domain);
    h.update(epoch.to_be_bytes());
    h.update(key);
    B256::from(<[u8; 32]>::from(h.finalize()))
}

/// A weight or stake in wei as the measurement crate counts it: no real
/// chain holds more than `u128::MAX` wei, so saturating loses nothing.
fn wei_u128(wei: U256) -> u128 {
    u128::try_from(wei).unwrap_or(u128::MAX)
}

/// Mbit/s as bits per second.
fn bps(mbps: u64) -> u128 {
    u128::from(mbps) * 1_000_000
}

impl Registry {
    /// The measurement clock: `measureGenesis` and the parameters
    /// (`openrelay-measure`'s [`EpochTiming`]).
    pub async fn measure_timing(&self) -> Result<EpochTiming, OperatorError> {
        let genesis = self.read(self.contract.measureGenesis().call()).await?;
        EpochTiming::new(
            genesis,
            self.params.measure_epoch.as_secs(),
            self.params.reveal_window.as_secs(),
        )
        .map_err(OperatorError::MeasureTiming)
    }

    /// Where the chain stands in the measurement epochs, by its latest
    /// block's time (a transaction sent now lands in a later block, whose
    /// time is at least this).
    pub async fn measure_phase(&self) -> Result<EpochPhase, OperatorError> {
        let timing = self.measure_timing().await?;
        Ok(EpochPhase::at(&timing, self.chain_time().await?))
    }

    /// Commits, as a member of the current set, to the report of `epoch`
    /// (the current epoch) with `commitment` ([`Reveal::commitment`]).
    pub async fn commit_report(
        &self,
        epoch: Epoch,
        commitment: Commitment,
    ) -> Result<Sent, OperatorError> {
        self.submit(self.contract.commitReport(epoch, FixedBytes(commitment.0)))
            .await
    }

    /// Reveals the report of `epoch` committed to earlier: `reveal_bytes`
    /// is [`Reveal::to_bytes`] (taken as bytes so that what is sent is
    /// exactly what was committed to).
    pub async fn reveal_report(
        &self,
        epoch: Epoch,
        reveal_bytes: &[u8],
    ) -> Result<Sent, OperatorError> {
        let reveal = Bytes::copy_from_slice(reveal_bytes);
        self.submit(self.contract.revealReport(epoch, reveal)).await
    }

    /// Approves slashing `amount` wei from `operator`, the account of relay
    /// `relay`, for failing in measurement epoch `epoch`.
    pub async fn approve_relay_slash(
        &self,
        epoch: Epoch,
        relay: &RelayId,
        operator: Address,
        amount: U256,
    ) -> Result<SlashApproved, OperatorError> {
        let evidence = relay_slash_evidence(epoch, relay);
        self.approve_slash(TARGET_OPERATOR, operator, amount, evidence)
            .await
    }

    /// Approves slashing `amount` wei from `account`, validator
    /// `validator`'s account, for its reports of measurement epoch
    /// `epoch`.
    pub async fn approve_validator_slash(
        &self,
        epoch: Epoch,
        validator: &ValidatorId,
        account: Address,
        amount: U256,
    ) -> Result<SlashApproved, OperatorError> {
        let evidence = validator_slash_evidence(epoch, validator);
        self.approve_slash(TARGET_VALIDATOR, account, amount, evidence)
            .await
    }

    async fn approve_slash(
        &self,
        kind: u8,
        target: Address,
        amount: U256,
        evidence: B256,
    ) -> Result<SlashApproved, OperatorError> {
        // The id includes the validator-set epoch the approval lands in:
        // the receipt's `SlashApproved` event names it.
        let call = self.contract.approveSlash(kind, target, amount, evidence);
        let receipt = self.submit_approval_for_receipt(call).await?;
        let slash_id = match receipt.decoded_log::<RelayRegistry::SlashApproved>() {
            Some(approved) => approved.slash,
            None => {
                self.read(self.contract.slashId(kind, target, amount, evidence).call())
                    .await?
            }
        };
        let executed = receipt
            .decoded_log::<RelayRegistry::Slashed>()
            .map(|slashed| SlashExecuted {
                taken: slashed.amount,
                burnt: slashed.burnt,
                rewarded: slashed.rewarded,
                stake_left: slashed.stakeLeft,
            });
        Ok(SlashApproved {
            sent: Sent::from_receipt(&receipt),
            slash_id,
            evidence,
            executed,
        })
    }

    /// The reports revealed for `epoch`, once its reveal window has closed,
    /// checked with [`verify_reveal`] against the commitments on the chain,
    /// with the validator set's weights and the relays' adverts at the
    /// settlement block ([`EpochReveals::settlement_block`]). Relays are
    /// found from their `RelayRegistered` events from `from_block` (the
    /// deployment block; `None`: found on the chain), read only since the
    /// last reading into `known` (a fresh one reads them all). The state is read at
    /// the settlement block, so the node must still hold it (an archive
    /// node, or one read within its state history: 128 blocks on geth).
    pub async fn epoch_reveals(
        &self,
        epoch: Epoch,
        from_block: Option<u64>,
        known: &mut KnownRegistrations,
    ) -> Result<EpochReveals, EpochReadError> {
        let timing = self.measure_timing().await?;
        let (opens_at, closes_at) = (timing.end(epoch), timing.reveal_deadline(epoch));
        let now = self.chain_time().await?;
        let Some(after) = self.first_block_at_or_after(closes_at).await? else {
            return Err(EpochReadError::RevealWindowOpen {
                epoch,
                closes_at,
                now,
            });
        };
        // Block 0 is before any deployment, so `after` is at least 1.
        let settlement = after.saturating_sub(1);
        let at = BlockId::number(settlement);

        let (validators, accounts, keys) = self.set_at(at).await?;
        let window_start = self
            .first_block_at_or_after(opens_at)
            .await?
            .unwrap_or(after);
        let mut reveals = Vec::new();
        let mut refused = Vec::new();
        if window_start <= settlement {
            let filter = Filter::new()
                .address(*self.contract.address())
                .event_signature(RelayRegistry::ReportRevealed::SIGNATURE_HASH)
                .topic1(U256::from(epoch));
            let logs = self
                .bounded_logs(&filter, window_start, settlement, MAX_LOGS_PER_CALL)
                .await?;
            let mut seen = Vec::new();
            for log in logs {
                let block = log.block_number;
                match self
                    .check_reveal(epoch, &log, (window_start, settlement), &keys, &mut seen)
                    .await?
                {
                    Ok((account, reveal)) => reveals.push(RevealedReport {
                        account,
                        block: block.unwrap_or_default(),
                        reveal,
                    }),
                    Err((account, reason)) => refused.push(RefusedReveal {
                        account,
                        block,
                        reason,
                    }),
                }
            }
        }
        let (relays, contested_relays) = self.relays_at(settlement, from_block, known).await?;
        Ok(EpochReveals {
            epoch,
            reveal_closed_at: closes_at,
            settlement_block: settlement,
            validators,
            accounts,
            reveals,
            refused,
            relays,
            contested_relays,
        })
    }

    /// The set at `at`: weights and accounts by key, and each member's key
    /// by account (`None` for a key several members share).
    #[allow(clippy::type_complexity, reason = "three views of one set, used once")]
    async fn set_at(
        &self,
        at: BlockId,
    ) -> Result<
        (
            BTreeMap<ValidatorId, u128>,
            BTreeMap<ValidatorId, Address>,
            BTreeMap<Address, Option<ValidatorId>>,
        ),
        EpochReadError,
    > {
        let members = self
            .read(self.contract.activeSet().block(at).call())
            .await?;
        let max = self.params.max_validators;
        if usize::try_from(max).is_ok_and(|max| members.len() > max) {
            return Err(EpochReadError::SetTooLarge {
                members: members.len(),
                max,
            });
        }
        let mut by_key: BTreeMap<ValidatorId, Vec<(Address, u128)>> = BTreeMap::new();
        for account in members {
            let v = self
                .read(self.contract.validators(account).block(at).call())
                .await?;
            by_key
                .entry(ValidatorId(v.validatorKey.0))
                .or_default()
                .push((account, wei_u128(v.weight)));
        }
        let (mut weights, mut accounts, mut keys) =
            (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
        for (key, holders) in by_key {
            if let [(account, weight)] = holders[..] {
                weights.insert(key, weight);
                accounts.insert(key, account);
                keys.insert(account, Some(key));
            } else {
                keys.extend(holders.iter().map(|(account, _)| (*account, None)));
            }
        }
        Ok((weights, accounts, keys))
    }

    /// Decodes and checks one reveal log; the error names the account (if
    /// known) and the reason. Only reading the commitment can fail the
    /// whole call.
    #[allow(clippy::type_complexity, reason = "a verdict per log, used once")]
    async fn check_reveal(
        &self,
        epoch: Epoch,
        log: &Log,
        (first, last): (u64, u64),
        keys: &BTreeMap<Address, Option<ValidatorId>>,
        seen: &mut Vec<Address>,
    ) -> Result<Result<(Address, Reveal), (Option<Address>, RevealRefusal)>, EpochReadError> {
        let in_window = log.block_number.is_some_and(|b| b >= first && b <= last);
        if log.address() != *self.contract.address() || !in_window || log.removed {
            return Ok(Err((None, RevealRefusal::NotThisEpochsEvent)));
        }
        let event =
            match RelayRegistry::ReportRevealed::decode_raw_log(log.topics(), &log.data().data) {
                Ok(event) => event,
                Err(e) => return Ok(Err((None, RevealRefusal::Undecodable(e.to_string())))),
            };
        let account = Some(event.validator);
        if event.epoch != epoch {
            return Ok(Err((account, RevealRefusal::NotThisEpochsEvent)));
        }
        if seen.contains(&event.validator) {
            return Ok(Err((account, RevealRefusal::Duplicate)));
        }
        seen.push(event.validator);
        let key = match keys.get(&event.validator) {
            None => return Ok(Err((account, RevealRefusal::NotInSet))),
            Some(None) => return Ok(Err((account, RevealRefusal::SharedKey))),
            Some(Some(key)) => *key,
        };
        let commitment = self
            .read(
                self.contract
                    .reportCommitments(epoch, event.validator)
                    .block(BlockId::number(last))
                    .call(),
            )
            .await?;
        Ok(
            match verify_reveal(&Commitment(commitment.0), &event.reveal) {
                Ok(reveal) if reveal.epoch() == epoch && reveal.validator() == key => {
                    Ok((event.validator, reveal))
                }
                Ok(_) => Err((account, RevealRefusal::WrongKeyOrEpoch)),
                Err(e) => Err((account, RevealRefusal::Invalid(e))),
            },
        )
    }

    /// The relays registered at block `at`, found from their
    /// `RelayRegistered` events (from `from_block` on, those not in `known`
    /// yet): uncontested keys, and keys several operators registered.
    #[allow(clippy::type_complexity, reason = "two maps, used once")]
    async fn relays_at(
        &self,
        at: u64,
        from_block: Option<u64>,
        known: &mut KnownRegistrations,
    ) -> Result<
        (
            BTreeMap<RelayId, ChainRelay>,
            BTreeMap<RelayId, Vec<ChainRelay>>,
        ),
        EpochReadError,
    > {
        let from = match (known.read_through, from_block) {
            (Some(read), _) => read.saturating_add(1),
            (None, Some(block)) => block,
            (None, None) => self.deployment_block().await?,
        };
        if from <= at {
            let filter = Filter::new()
                .address(*self.contract.address())
                .event_signature(RelayRegistry::RelayRegistered::SIGNATURE_HASH);
            let budget = MAX_RELAY_REGISTRATIONS.saturating_sub(known.pairs.len());
            let logs = self.bounded_logs(&filter, from, at, budget).await?;
            let mut added = Vec::with_capacity(logs.len());
            for log in &logs {
                // A relay left out would escape its verdict: a log that does
                // not decode stops the reading (and nothing of it is kept).
                let e =
                    RelayRegistry::RelayRegistered::decode_raw_log(log.topics(), &log.data().data)
                        .map_err(|source| EpochReadError::UndecodableLog {
                            block: log.block_number,
                            source,
                        })?;
                added.push((e.operator, e.relayKey));
            }
            known.pairs.extend(added);
            known.read_through = Some(at);
        }
        let registered = known.pairs.clone();
        let block = BlockId::number(at);
        let mut operators = BTreeMap::new();
        let mut by_key: BTreeMap<RelayId, Vec<ChainRelay>> = BTreeMap::new();
        for (operator, key) in registered {
            let id = keccak256((operator, key).abi_encode());
            let relay = self
                .read(self.contract.relays(id).block(block).call())
                .await?;
            if relay.role == 0 {
                continue; // removed since
            }
            let o = match operators.get(&operator) {
                Some(o) => o,
                None => {
                    let o = self
                        .read(self.contract.operators(operator).block(block).call())
                        .await?;
                    operators.entry(operator).or_insert(o)
                }
            };
            let cover = self.params.cover_for(o.advertisedMbps);
            by_key.entry(RelayId(key.0)).or_default().push(ChainRelay {
                operator,
                covered: o.stake >= cover,
                advert: RelayAdvert {
                    advertised_bps: u64::from(relay.bandwidthMbps) * 1_000_000,
                    operator_stake: wei_u128(o.stake),
                    operator_advertised_bps: bps(o.advertisedMbps),
                },
            });
        }
        let mut relays = BTreeMap::new();
        let mut contested = BTreeMap::new();
        for (key, mut holders) in by_key {
            match holders.pop() {
                Some(only) if holders.is_empty() => {
                    relays.insert(key, only);
                }
                Some(last) => {
                    holders.push(last);
                    contested.insert(key, holders);
                }
                None => {}
            }
        }
        Ok((relays, contested))
    }

    /// The logs `filter` selects in blocks `from..=to`, read in ranges of at
    /// most [`LOG_RANGE_BLOCKS`]; a range whose answer exceeds the RPC
    /// bound or holds more than [`MAX_LOGS_PER_CALL`] is read again in halves, and a
    /// single block that still does is an error; more than `max_total` logs
    /// in all is an error too.
    async fn bounded_logs(
        &self,
        filter: &Filter,
        from: u64,
        to: u64,
        max_total: usize,
    ) -> Result<Vec<Log>, EpochReadError> {
        let provider = self.contract.provider().clone();
        let mut logs = Vec::new();
        let mut start = from;
        while start <= to {
            let mut end = to.min(start.saturating_add(LOG_RANGE_BLOCKS - 1));
            let found = loop {
                let range = filter.clone().from_block(start).to_block(end);
                match self.bounded(provider.get_logs(&range)).await? {
                    Ok(found) if found.len() <= MAX_LOGS_PER_CALL => break found,
                    Ok(_) if start == end => {
                        return Err(EpochReadError::TooManyLogs {
                            limit: MAX_LOGS_PER_CALL,
                            block: start,
                        });
                    }
                    Ok(_) => {}
                    Err(e) => match crate::rpc::ResponseTooLarge::in_error(&e) {
                        Some(source) if start == end => {
                            return Err(EpochReadError::ResponseTooLarge {
                                block: start,
                                source,
                            });
                        }
                        Some(_) => {}
                        None => return Err(self.unreachable(e).into()),
                    },
                }
                end = start + (end - start) / 2;
            };
            logs.extend(found);
            if logs.len() > max_total {
                return Err(EpochReadError::TooManyLogs {
                    limit: max_total,
                    block: end,
                });
            }
            if end == u64::MAX {
                break;
            }
            start = end + 1;
        }
        Ok(logs)
    }

    /// The first block whose time is at least `time` (`None`: the latest
    /// block is earlier), by bisection over block headers.
    async fn first_block_at_or_after(&self, time: u64) -> Result<Option<u64>, OperatorError> {
        let head = self.block_time(BlockNumberOrTag::Latest).await?;
        let Some((head, head_time)) = head else {
            return Ok(None);
        };
        if head_time < time {
            return Ok(None);
        }
        let (mut low, mut high) = (0, head);
        while low < high {
            let middle = low + (high - low) / 2;
            let middle_time = self
                .block_time(BlockNumberOrTag::Number(middle))
                .await?
                .map_or(0, |(_, t)| t);
            if middle_time >= time {
                high = middle;
            } else {
                low = middle + 1;
            }
        }
        Ok(Some(low))
    }

    /// A block's number and time.
    async fn block_time(
        &self,
        block: BlockNumberOrTag,
    ) -> Result<Option<(u64, u64)>, OperatorError> {
        let provider = self.contract.provider().clone();
        let found = self
            .bounded(provider.get_block_by_number(block))
            .await?
            .map_err(|e| self.unreachable(e))?;
        Ok(found.map(|b| (b.header.number, b.header.timestamp)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_follow_the_chain_time() {
        let timing = EpochTiming::new(1_000, 60, 20).expect("timing");
        let phase = |now| EpochPhase::at(&timing, now);
        let p = phase(1_010);
        assert_eq!((p.epoch, p.commit_closes_at, p.revealing), (0, 1_060, None));
        let p = phase(1_079);
        assert_eq!((p.epoch, p.commit_closes_at), (1, 1_120));
        assert_eq!(
            p.revealing,
            Some(RevealPhase {
                epoch: 0,
                closes_at: 1_080
            })
        );
        assert_eq!(phase(1_080).revealing, None, "the window is half-open");
        assert_eq!(phase(0).epoch, 0, "before genesis");
    }

    #[test]
    fn slash_evidence_is_the_fixed_hash() {
        let mut h = Sha256::new();
        h.update(b"openrelay relay slash v1\0");
        h.update(7u64.to_be_bytes());
        h.update([3u8; 32]);
        let expected = B256::from(<[u8; 32]>::from(h.finalize()));
        assert_eq!(relay_slash_evidence(7, &RelayId([3; 32])), expected);
        assert_ne!(
            validator_slash_evidence(7, &ValidatorId([3; 32])),
            expected,
            "the domains differ"
        );
    }
}
