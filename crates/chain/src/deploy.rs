//! Deploying `RelayRegistry`: its parameters with documented presets and
//! the genesis validator set.
//!
//! Every parameter's reasoning, and the attack it prices, is in
//! `docs/chain.md` ("Parameters"); the doc comments here say the unit and
//! the default.

use std::time::Duration;

use alloy::primitives::{Address, FixedBytes, U256};
use alloy::providers::Provider;

use crate::contract::{RelayRegistry, ReleaseRegistry};
use crate::operator::{Refusal, eth};

/// One ether in wei.
const ETHER: u128 = 1_000_000_000_000_000_000;
const DAY: u64 = 24 * 60 * 60;
/// The largest validator set in production.
#[allow(clippy::cast_possible_truncation)] // checked below
const MAX_SET: u32 = openrelay_measure::MAX_VALIDATORS as u32;
const _: () = assert!(MAX_SET as usize == openrelay_measure::MAX_VALIDATORS);
/// 10_000 basis points make the whole.
pub const BPS: u16 = 10_000;
/// The least quorum the contract accepts: 6667 bp, more than 2/3.
pub const MIN_QUORUM_BPS: u16 = 6_667;

/// The contract's parameters (`RelayRegistry.Params`), fixed at deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainParams {
    /// Wei an operator stakes per Mbit/s its relays advertise (production:
    /// 0.001 ETH, so 1 Gbit/s needs 1 ETH).
    pub stake_per_mbps: U256,
    /// Least stake a validator joins with (production: 10 ETH).
    pub min_validator_stake: U256,
    /// From `unstake` or leaving the set to `withdraw` (production: 21
    /// days).
    pub unbonding_delay: Duration,
    /// From a join request to the earliest set change that may include it
    /// (production: 7 days).
    pub validator_join_delay: Duration,
    /// From a leave request to the earliest set change that may apply it
    /// (production: 7 days).
    pub validator_leave_delay: Duration,
    /// Share of the current set's weight a set change or a slash needs, in
    /// basis points (production: 6667, more than 2/3; never less).
    pub quorum_bps: u16,
    /// Share of slashed stake burnt, in basis points (production: 8000).
    pub slash_burn_bps: u16,
    /// Share of slashed stake paid to the approving validators, in basis
    /// points (production: 2000); burn + reward = 10000.
    pub slash_reward_bps: u16,
    /// Most relays one operator account registers (production: 256).
    pub max_relays_per_operator: u32,
    /// Most validators in the set (production: 100).
    pub max_validators: u32,
    /// Length of a measurement epoch: validators measure relays and commit
    /// to their reports during one (production: 2 hours; whole seconds).
    pub measure_epoch: Duration,
    /// The start of the next epoch during which reports are revealed
    /// (production: 20 minutes; more than zero, less than an epoch).
    pub reveal_window: Duration,
    /// The release votes' parameters (`ReleaseRegistry.Params`, deployed
    /// with the registry).
    pub release: ReleaseVoteParams,
}

/// The release votes' parameters (docs/chain.md, "Release votes"): the
/// quorum is the registry's `quorum_bps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseVoteParams {
    /// Wei a proposal or a revocation locks, lost to the majority if the
    /// ballot rejects it (production: 1 ETH).
    pub proposal_bond: U256,
    /// From a proposal to the end of its commit phase (production: 3 days,
    /// a rebuild and a human look; whole seconds).
    pub commit_phase: Duration,
    /// From the end of the commit phase to the end of the reveal phase
    /// (production: 1 day; whole seconds).
    pub reveal_phase: Duration,
    /// Share of its stake, in basis points, a validator loses for voting
    /// against the outcome or committing without revealing (production:
    /// 1000, 10 %).
    pub vote_slash_bps: u16,
}

impl ReleaseVoteParams {
    /// The parameters for a public chain.
    pub fn production() -> ReleaseVoteParams {
        ReleaseVoteParams {
            proposal_bond: U256::from(ETHER),
            commit_phase: Duration::from_secs(3 * DAY),
            reveal_phase: Duration::from_secs(DAY),
            vote_slash_bps: 1_000,
        }
    }

    /// The devnet's: 0.1 ETH bond, 20 s phases.
    pub fn devnet() -> ReleaseVoteParams {
        ReleaseVoteParams {
            proposal_bond: U256::from(ETHER / 10),
            commit_phase: Duration::from_secs(20),
            reveal_phase: Duration::from_secs(20),
            ..ReleaseVoteParams::production()
        }
    }
}

impl From<&ReleaseVoteParams> for ReleaseRegistry::Params {
    fn from(p: &ReleaseVoteParams) -> ReleaseRegistry::Params {
        ReleaseRegistry::Params {
            proposalBond: p.proposal_bond,
            commitSeconds: p.commit_phase.as_secs(),
            revealSeconds: p.reveal_phase.as_secs(),
            voteSlashBps: p.vote_slash_bps,
        }
    }
}

impl From<crate::contract::votes::ReleaseRegistry::Params> for ReleaseVoteParams {
    fn from(p: crate::contract::votes::ReleaseRegistry::Params) -> ReleaseVoteParams {
        ReleaseVoteParams {
            proposal_bond: p.proposalBond,
            commit_phase: Duration::from_secs(p.commitSeconds),
            reveal_phase: Duration::from_secs(p.revealSeconds),
            vote_slash_bps: p.voteSlashBps,
        }
    }
}

impl ChainParams {
    /// The parameters for a public chain (docs/chain.md gives each one's
    /// reasoning).
    pub fn production() -> ChainParams {
        ChainParams {
            stake_per_mbps: U256::from(ETHER / 1_000),
            min_validator_stake: U256::from(10 * ETHER),
            unbonding_delay: Duration::from_secs(21 * DAY),
            validator_join_delay: Duration::from_secs(7 * DAY),
            validator_leave_delay: Duration::from_secs(7 * DAY),
            quorum_bps: MIN_QUORUM_BPS,
            slash_burn_bps: 8_000,
            slash_reward_bps: 2_000,
            max_relays_per_operator: 256,
            // As many as a directory carries signatures of and an epoch's
            // verdicts aggregate (`openrelay_measure::MAX_VALIDATORS`): a
            // larger set could be neither settled nor handed over.
            max_validators: MAX_SET,
            measure_epoch: Duration::from_secs(2 * 60 * 60),
            reveal_window: Duration::from_secs(20 * 60),
            release: ReleaseVoteParams::production(),
        }
    }

    /// The production rules with delays of seconds, for the devnet and
    /// tests: the same stake per Mbit/s (so the same errors), 1 ETH to
    /// join the set, 60 s unbonding, 10 s join and leave delays, 60 s
    /// measurement epochs with a 20 s reveal window (tests choose shorter
    /// ones with [`ChainParams::with_measure_epochs`]).
    pub fn devnet() -> ChainParams {
        ChainParams {
            min_validator_stake: U256::from(ETHER),
            unbonding_delay: Duration::from_secs(60),
            validator_join_delay: Duration::from_secs(10),
            validator_leave_delay: Duration::from_secs(10),
            max_relays_per_operator: 64,
            max_validators: 32,
            measure_epoch: Duration::from_secs(60),
            reveal_window: Duration::from_secs(20),
            release: ReleaseVoteParams::devnet(),
            ..ChainParams::production()
        }
    }

    /// These parameters with measurement epochs of `epoch` and a reveal
    /// window of `reveal_window`.
    pub fn with_measure_epochs(mut self, epoch: Duration, reveal_window: Duration) -> ChainParams {
        self.measure_epoch = epoch;
        self.reveal_window = reveal_window;
        self
    }

    /// These parameters with release votes' phases of `commit` and
    /// `reveal`.
    pub fn with_release_phases(mut self, commit: Duration, reveal: Duration) -> ChainParams {
        self.release.commit_phase = commit;
        self.release.reveal_phase = reveal;
        self
    }

    /// Checks what the constructor would refuse, with the reason.
    pub fn validate(&self) -> Result<(), DeployError> {
        if self.quorum_bps < MIN_QUORUM_BPS || self.quorum_bps > BPS {
            return Err(DeployError::Quorum(self.quorum_bps));
        }
        if u32::from(self.slash_burn_bps) + u32::from(self.slash_reward_bps) != u32::from(BPS) {
            return Err(DeployError::SlashShares {
                burn_bps: self.slash_burn_bps,
                reward_bps: self.slash_reward_bps,
            });
        }
        if self.stake_per_mbps.is_zero() {
            return Err(DeployError::Zero("stake_per_mbps"));
        }
        if self.max_relays_per_operator == 0 {
            return Err(DeployError::Zero("max_relays_per_operator"));
        }
        if self.max_validators == 0 {
            return Err(DeployError::Zero("max_validators"));
        }
        let (epoch, window) = (self.measure_epoch.as_secs(), self.reveal_window.as_secs());
        let whole =
            self.measure_epoch.subsec_nanos() == 0 && self.reveal_window.subsec_nanos() == 0;
        if window == 0 || window >= epoch || !whole {
            return Err(DeployError::MeasureEpochs {
                epoch: self.measure_epoch,
                reveal_window: self.reveal_window,
            });
        }
        let r = &self.release;
        let whole = r.commit_phase.subsec_nanos() == 0 && r.reveal_phase.subsec_nanos() == 0;
        if r.commit_phase.as_secs() == 0 || r.reveal_phase.as_secs() == 0 || !whole {
            return Err(DeployError::ReleasePhases {
                commit: r.commit_phase,
                reveal: r.reveal_phase,
            });
        }
        if r.vote_slash_bps > BPS {
            return Err(DeployError::VoteSlash(r.vote_slash_bps));
        }
        Ok(())
    }

    /// Wei covering `mbps` of advertised bandwidth.
    pub fn cover_for(&self, mbps: u64) -> U256 {
        self.stake_per_mbps.saturating_mul(U256::from(mbps))
    }
}

impl From<&ChainParams> for RelayRegistry::Params {
    fn from(p: &ChainParams) -> RelayRegistry::Params {
        RelayRegistry::Params {
            stakePerMbps: p.stake_per_mbps,
            minValidatorStake: p.min_validator_stake,
            unbondingDelay: p.unbonding_delay.as_secs(),
            validatorJoinDelay: p.validator_join_delay.as_secs(),
            validatorLeaveDelay: p.validator_leave_delay.as_secs(),
            quorumBps: p.quorum_bps,
            slashBurnBps: p.slash_burn_bps,
            slashRewardBps: p.slash_reward_bps,
            maxRelaysPerOperator: p.max_relays_per_operator,
            maxValidators: p.max_validators,
            measureEpochSeconds: p.measure_epoch.as_secs(),
            revealWindowSeconds: p.reveal_window.as_secs(),
        }
    }
}

impl ChainParams {
    /// The parameters as the two contracts hold them.
    pub fn from_contracts(
        p: RelayRegistry::Params,
        release: crate::contract::votes::ReleaseRegistry::Params,
    ) -> ChainParams {
        ChainParams {
            stake_per_mbps: p.stakePerMbps,
            min_validator_stake: p.minValidatorStake,
            unbonding_delay: Duration::from_secs(p.unbondingDelay),
            validator_join_delay: Duration::from_secs(p.validatorJoinDelay),
            validator_leave_delay: Duration::from_secs(p.validatorLeaveDelay),
            quorum_bps: p.quorumBps,
            slash_burn_bps: p.slashBurnBps,
            slash_reward_bps: p.slashRewardBps,
            max_relays_per_operator: p.maxRelaysPerOperator,
            max_validators: p.maxValidators,
            measure_epoch: Duration::from_secs(p.measureEpochSeconds),
            reveal_window: Duration::from_secs(p.revealWindowSeconds),
            release: release.into(),
        }
    }
}

/// A member of the genesis validator set (epoch 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenesisValidator {
    /// Its EVM account.
    pub account: Address,
    /// Its Ed25519 validator key's 32 public bytes.
    pub key: [u8; 32],
    /// Its stake (and quorum weight), paid by the deployer.
    pub stake: U256,
}

/// Why a deployment failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeployError {
    /// The quorum is below 2/3 (or above the whole).
    #[error("quorum {0} bp must be between {MIN_QUORUM_BPS} (more than 2/3) and {BPS}")]
    Quorum(u16),
    /// Burn and reward shares do not add up to the whole.
    #[error("slash shares must add up to {BPS} bp: burn {burn_bps} + reward {reward_bps}")]
    SlashShares {
        /// The burn share.
        burn_bps: u16,
        /// The reward share.
        reward_bps: u16,
    },
    /// A parameter that must be positive is zero.
    #[error("parameter {0} must not be zero")]
    Zero(&'static str),
    /// The reveal window is not shorter than a measurement epoch, is zero,
    /// or either is not whole seconds.
    #[error(
        "the reveal window ({reveal_window:?}) must be whole seconds, more than zero and less than a measurement epoch ({epoch:?})"
    )]
    MeasureEpochs {
        /// The measurement epoch.
        epoch: Duration,
        /// The reveal window.
        reveal_window: Duration,
    },
    /// A release-vote phase is zero or not whole seconds.
    #[error(
        "the release votes' commit phase ({commit:?}) and reveal phase ({reveal:?}) must be whole seconds, more than zero"
    )]
    ReleasePhases {
        /// The commit phase.
        commit: Duration,
        /// The reveal phase.
        reveal: Duration,
    },
    /// The vote slash is more than the whole.
    #[error("vote_slash_bps {0} is more than {BPS}")]
    VoteSlash(u16),
    /// The genesis set is empty or larger than `max_validators`.
    #[error("the genesis set has {members} validators; it needs 1 to {max}")]
    GenesisSize {
        /// Its size.
        members: usize,
        /// The most allowed.
        max: u32,
    },
    /// A genesis validator's stake is below the minimum.
    #[error("genesis validator {account} stakes {}, below the minimum {}", eth(*stake), eth(*minimum))]
    GenesisStake {
        /// The validator.
        account: Address,
        /// Its stake.
        stake: U256,
        /// The minimum.
        minimum: U256,
    },
    /// The contract refused (a rule `validate` does not know of).
    #[error("the contract refused the deployment: {0}")]
    Refused(Refusal),
    /// The node could not be reached or refused the transaction.
    #[error("deploying the registry contract: {0}")]
    Rpc(#[source] alloy::contract::Error),
}

impl openrelay_types::HasKind for DeployError {
    fn kind(&self) -> openrelay_types::ErrorKind {
        use openrelay_types::ErrorKind;
        match self {
            DeployError::Quorum(_)
            | DeployError::SlashShares { .. }
            | DeployError::Zero(_)
            | DeployError::MeasureEpochs { .. }
            | DeployError::ReleasePhases { .. }
            | DeployError::VoteSlash(_)
            | DeployError::GenesisSize { .. }
            | DeployError::GenesisStake { .. } => ErrorKind::Config,
            DeployError::Refused(_) => ErrorKind::Refused,
            DeployError::Rpc(_) => ErrorKind::Unreachable,
        }
    }
}

/// Deploys `RelayRegistry` with `params` and `genesis` (epoch 0) from the
/// provider's default sender, which pays the genesis stakes; returns the
/// contract's address. Its constructor deploys the release votes
/// (`ReleaseRegistry`, at `releaseRegistry()`: [`crate::release`]).
pub async fn deploy<P: Provider>(
    provider: P,
    params: &ChainParams,
    genesis: &[GenesisValidator],
) -> Result<Address, DeployError> {
    params.validate()?;
    let fits = usize::try_from(params.max_validators).map_or(true, |max| genesis.len() <= max);
    if genesis.is_empty() || !fits {
        return Err(DeployError::GenesisSize {
            members: genesis.len(),
            max: params.max_validators,
        });
    }
    if let Some(short) = genesis
        .iter()
        .find(|v| v.stake < params.min_validator_stake || v.stake.is_zero())
    {
        return Err(DeployError::GenesisStake {
            account: short.account,
            stake: short.stake,
            minimum: params.min_validator_stake,
        });
    }
    let total = genesis
        .iter()
        .fold(U256::ZERO, |sum, v| sum.saturating_add(v.stake));
    RelayRegistry::deploy_builder(
        provider,
        params.into(),
        genesis.iter().map(|v| v.account).collect(),
        genesis.iter().map(|v| FixedBytes(v.key)).collect(),
        genesis.iter().map(|v| v.stake).collect(),
        (&params.release).into(),
    )
    .value(total)
    .deploy()
    .await
    .map_err(|e| match Refusal::decode(&e) {
        Some(refusal) => DeployError::Refused(refusal),
        None => DeployError::Rpc(e),
    })
}
