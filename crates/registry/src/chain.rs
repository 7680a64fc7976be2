//! The registry contract's view, as the registry and each validator hold
//! it (issue 13, items 2 and 3): which relays the chain admits at a
//! confirmed block, the chain section of a directory built at that block,
//! and the validator set whose votes and signatures count.
//!
//! Pure: [`ChainView`] is a confirmed [`ChainSnapshot`] with the contract's
//! `stakePerMbps`; following the chain is [`follow`] (the registry's and
//! each validator's own node, never another's).

use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::{Address, B256, U256};
use openrelay_chain::follow::{ChainSnapshot, RelayRef, ValidatorSet as ChainValidatorSet};
use openrelay_directory::{
    BPS_PER_MBPS, ChainAnchor, ChainOperator, ChainRelay, ChainRelease, ChainSection, Directory,
    FormatError, OperatorId, OperatorProfile, RelayDescriptor, RelayId, ValidatorId,
    ValidatorMember, ValidatorSet,
};
use openrelay_types::{ErrorKind, HasKind};

/// Why the chain does not admit a relay's descriptor at a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotAdmitted {
    /// No profile of the descriptor's operator is at hand.
    #[error("operator {0} has published no profile")]
    NoProfile(OperatorId),
    /// The operator's signed profile names no chain account.
    #[error("operator {0}'s profile names no chain account (set [publish] operator_account)")]
    ProfileNamesNoAccount(OperatorId),
    /// The account the operator's profile names has not registered the
    /// operator's key (another account registering it counts for nothing).
    #[error("operator {0}'s account is not registered on chain with its key")]
    UnknownOperator(OperatorId),
    /// The operator has not registered this relay key.
    #[error("relay {0} is not registered on chain under its operator")]
    NotRegistered(RelayId),
    /// The operator's stake does not cover its relays' bandwidth.
    #[error("the stake of relay {0}'s operator does not cover its relays' bandwidth")]
    NotCovered(RelayId),
    /// The descriptor is not the one committed on chain.
    #[error("relay {0}'s descriptor does not match the hash registered on chain")]
    DescriptorHashDiffers(RelayId),
    /// The descriptor advertises more than the chain registers.
    #[error("relay {0} advertises more bandwidth than registered on chain")]
    BandwidthAboveChain(RelayId),
}

impl HasKind for NotAdmitted {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Refused
    }
}

/// The chain at one confirmed block: a snapshot and the contract's
/// `stakePerMbps` (fixed at deployment).
#[derive(Debug, Clone)]
pub struct ChainView {
    snapshot: Arc<ChainSnapshot>,
    stake_per_mbps: U256,
    /// The approved and revoked releases of the release contract at the
    /// snapshot's block (issue 15), sorted as a directory lists them.
    releases: Arc<Vec<ChainRelease>>,
}

fn saturate_u128(value: U256) -> u128 {
    u128::try_from(value).unwrap_or(u128::MAX)
}

impl ChainView {
    /// The view of `snapshot` with `stake_per_mbps` wei per Mbit/s.
    pub fn new(snapshot: Arc<ChainSnapshot>, stake_per_mbps: U256) -> ChainView {
        ChainView {
            snapshot,
            stake_per_mbps,
            releases: Arc::default(),
        }
    }

    /// This view with the release contract's releases at its block (only
    /// approved and revoked ones are listed; any order).
    pub fn with_releases(mut self, mut releases: Vec<ChainRelease>) -> ChainView {
        releases.sort_by_key(|r| r.release_id);
        for release in &mut releases {
            release.measurements.sort();
            // A directory lists each measurement once.
            release.measurements.dedup();
        }
        self.releases = Arc::new(releases);
        self
    }

    /// The releases a directory anchored here lists.
    pub fn releases(&self) -> &[ChainRelease] {
        &self.releases
    }

    /// The snapshot.
    pub fn snapshot(&self) -> &ChainSnapshot {
        &self.snapshot
    }

    /// The block this view reflects.
    pub fn anchor(&self) -> ChainAnchor {
        ChainAnchor {
            chain_id: self.snapshot.chain_id,
            contract: self.snapshot.contract.into_array(),
            block_number: self.snapshot.block_number,
            block_hash: self.snapshot.block_hash.0,
        }
    }

    /// The current validator set's epoch (0 before any set is known).
    pub fn validator_epoch(&self) -> u64 {
        self.snapshot
            .current_validator_set()
            .map_or(0, |set| set.epoch)
    }

    /// The current validator set, keys as Ed25519 validator ids and stakes
    /// as weights (`None` before the genesis set's event or if a key on
    /// chain is no usable Ed25519 key).
    pub fn validator_set(&self) -> Option<ValidatorSet> {
        to_validator_set(self.snapshot.current_validator_set()?)
    }

    /// The operator account that `profile` (signed by the operator key)
    /// names, if it registered that key, with its stake and the bandwidth
    /// it covers (Mbit/s, rounded down). Only the profile can say which
    /// account is the operator's: any account may register any key.
    fn chain_operator(
        &self,
        operator: OperatorId,
        profile: Option<&OperatorProfile>,
    ) -> Result<(Address, ChainOperator), NotAdmitted> {
        let profile = profile
            .filter(|p| p.operator() == operator)
            .ok_or(NotAdmitted::NoProfile(operator))?;
        let account = Address::from(
            profile
                .chain_account()
                .ok_or(NotAdmitted::ProfileNamesNoAccount(operator))?,
        );
        let state = self
            .snapshot
            .operators
            .get(&account)
            .filter(|state| state.operator_key == B256::from(operator.to_bytes()))
            .ok_or(NotAdmitted::UnknownOperator(operator))?;
        let covered_mbps = if self.stake_per_mbps.is_zero() {
            u64::MAX
        } else {
            u64::try_from(state.stake / self.stake_per_mbps).unwrap_or(u64::MAX)
        };
        Ok((
            account,
            ChainOperator {
                operator,
                account: account.into_array(),
                stake_wei: saturate_u128(state.stake),
                covered_mbps,
            },
        ))
    }

    /// Whether the chain admits `descriptor` here, with `profile` the
    /// signed profile of its operator held beside it: the profile names
    /// the operator's account, that account registered the operator key,
    /// the relay key is registered under that account, the account's stake
    /// covers all its relays, the committed hash is the descriptor's
    /// `content_hash()` and it advertises at most the registered
    /// bandwidth. Returns the chain's figures for the relay.
    pub fn admit(
        &self,
        descriptor: &RelayDescriptor,
        profile: Option<&OperatorProfile>,
    ) -> Result<ChainRelay, NotAdmitted> {
        let relay = descriptor.relay();
        let (account, _) = self.chain_operator(descriptor.operator(), profile)?;
        let on_chain = self
            .snapshot
            .relays
            .get(&RelayRef::new(account, B256::from(relay.to_bytes())))
            .ok_or(NotAdmitted::NotRegistered(relay))?;
        if !self.snapshot.is_covered(account, self.stake_per_mbps) {
            return Err(NotAdmitted::NotCovered(relay));
        }
        if on_chain.descriptor_hash.0 != descriptor.content_hash() {
            return Err(NotAdmitted::DescriptorHashDiffers(relay));
        }
        let registered_bps = u64::from(on_chain.bandwidth_mbps).saturating_mul(BPS_PER_MBPS);
        if descriptor.bandwidth_bps() > registered_bps {
            return Err(NotAdmitted::BandwidthAboveChain(relay));
        }
        Ok(ChainRelay {
            relay,
            bandwidth_mbps: on_chain.bandwidth_mbps,
            // The registry's measurement record fills it in
            // (`MeasurementRecord::annotate`).
            measured: None,
        })
    }

    /// The chain section of `directory` (every relay of which the chain
    /// admits here, else the first that is not).
    pub fn section(&self, directory: &Directory) -> Result<ChainSection, ChainSectionError> {
        let mut relays = Vec::with_capacity(directory.descriptors().len());
        for signed in directory.descriptors() {
            let descriptor = signed.descriptor();
            relays.push(self.admit(
                descriptor,
                directory.operator_profile(descriptor.operator()),
            )?);
        }
        let mut operators = Vec::with_capacity(directory.operators().len());
        for signed in directory.operators() {
            let profile = signed.profile();
            let (_, operator) = self.chain_operator(profile.operator(), Some(profile))?;
            operators.push(operator);
        }
        Ok(ChainSection {
            anchor: self.anchor(),
            validator_epoch: self.validator_epoch(),
            operators,
            relays,
            releases: self.releases.to_vec(),
        })
    }

    /// `directory` with its chain section at this block and the relays'
    /// measurements from `measurements` (format 5).
    pub fn anchor_directory(
        &self,
        directory: Directory,
        measurements: &crate::measurements::MeasurementRecord,
    ) -> Result<Directory, ChainSectionError> {
        let mut section = self.section(&directory)?;
        measurements.annotate(&mut section);
        Ok(directory.with_chain(section)?)
    }
}

/// Why a directory cannot be anchored at a block.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChainSectionError {
    /// A listed relay the chain does not admit.
    #[error(transparent)]
    NotAdmitted(#[from] NotAdmitted),
    /// The section does not fit the directory.
    #[error("chain section: {0}")]
    Format(#[from] FormatError),
}

impl HasKind for ChainSectionError {
    fn kind(&self) -> ErrorKind {
        match self {
            ChainSectionError::NotAdmitted(e) => e.kind(),
            ChainSectionError::Format(_) => ErrorKind::Internal,
        }
    }
}

/// A chain validator set as the directory format has it (`None` if a key
/// is no usable Ed25519 key, a weight is 0 or past `u128`).
pub fn to_validator_set(set: &ChainValidatorSet) -> Option<ValidatorSet> {
    let members = set
        .members
        .iter()
        .map(|m| {
            Some(ValidatorMember {
                validator: ValidatorId::from_bytes(m.key.0).ok()?,
                weight: u128::try_from(m.weight).ok()?,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    ValidatorSet::new(set.epoch, members).ok()
}

/// How many votes a proposal needs under `set`: the fewest members holding
/// more than two thirds of its weight (votes are counted, not weighed, by
/// the tally; a weighted set still needs its heavy members to vote), as
/// [`openrelay_directory::TrustConfig::threshold`] counts them.
pub fn votes_needed(set: &ValidatorSet) -> usize {
    openrelay_directory::TrustConfig::genesis(set.clone(), u64::MAX)
        .map_or(set.members().len(), |trust| trust.threshold())
}

/// Recent confirmed blocks a validator can check a proposal against, by
/// block hash, newest last.
#[derive(Debug, Default)]
pub struct ChainRing {
    views: std::collections::VecDeque<ChainView>,
}

/// How many confirmed blocks a validator keeps (a proposal anchored at an
/// older block is refused as stale).
pub const CHAIN_RING_BLOCKS: usize = 16;

/// Where an anchor stands relative to a validator's ring.
#[derive(Debug, Clone)]
pub enum AnchorLookup {
    /// A block of the ring.
    Known(ChainView),
    /// Above the ring's newest block (this validator's node lags).
    Ahead {
        /// The newest block held.
        head: Option<u64>,
    },
    /// Below the ring's oldest block, or not a block this validator
    /// confirmed at that height (another deployment, another fork).
    Unknown {
        /// The newest block held.
        head: Option<u64>,
    },
}

impl ChainRing {
    /// Adds a newly confirmed view (dropping the oldest past
    /// [`CHAIN_RING_BLOCKS`]); a view not newer than the head replaces
    /// the views at or above its block (a resync).
    pub fn push(&mut self, view: ChainView) {
        let number = view.snapshot().block_number;
        if self
            .views
            .back()
            .is_some_and(|v| v.snapshot().block_hash == view.snapshot().block_hash)
        {
            return;
        }
        self.views.retain(|v| v.snapshot().block_number < number);
        self.views.push_back(view);
        while self.views.len() > CHAIN_RING_BLOCKS {
            self.views.pop_front();
        }
    }

    /// The newest view.
    pub fn latest(&self) -> Option<&ChainView> {
        self.views.back()
    }

    /// The anchor of the block numbered `number`, if held.
    pub fn anchor_at(&self, number: u64) -> Option<ChainAnchor> {
        self.views
            .iter()
            .find(|v| v.snapshot().block_number == number)
            .map(ChainView::anchor)
    }

    /// The view of `anchor`'s block.
    pub fn lookup(&self, anchor: &ChainAnchor) -> AnchorLookup {
        let head = self.latest().map(|v| v.snapshot().block_number);
        if let Some(view) = self.views.iter().find(|v| v.anchor() == *anchor).cloned() {
            return AnchorLookup::Known(view);
        }
        match self.latest() {
            Some(v)
                if v.anchor().same_deployment(anchor)
                    && anchor.block_number > head.unwrap_or(0) =>
            {
                AnchorLookup::Ahead { head }
            }
            None => AnchorLookup::Ahead { head },
            Some(_) => AnchorLookup::Unknown { head },
        }
    }
}

/// Follows the chain of `config` through its own node and hands every
/// newly confirmed view to `sink`: reads the contract's parameters first
/// (retrying with back-off while the node is unreachable, logging once),
/// then polls forever.
pub async fn follow(
    config: openrelay_config::chain::ChainConfig,
    sink: impl Fn(ChainView) + Send + 'static,
) {
    use openrelay_chain::follow::{FeedError, FollowError, Follower, FollowerConfig, read_params};
    use openrelay_chain::rpc::{DEFAULT_MAX_RESPONSE_BYTES, bounded_provider};
    let url = match config.rpc.parse() {
        Ok(url) => url,
        Err(e) => {
            tracing::error!(rpc = %config.rpc, error = %e, "chain.rpc is not a URL; not following the chain");
            return;
        }
    };
    // Every answer bounded in size: a hostile node cannot make the
    // registry or a validator hold more (the follower bounds logs and
    // blocks per poll, and each poll in time).
    let provider = bounded_provider(url, DEFAULT_MAX_RESPONSE_BYTES);
    let contract = Address::from(config.contract.0);
    let poll = Duration::from_secs(config.poll_interval_secs);
    let mut follower_config =
        FollowerConfig::new(config.chain_id, contract, config.deployed_at_block);
    follower_config.confirmations = config.confirmations;
    follower_config.poll_interval = poll;
    let max_backoff = follower_config.max_backoff;
    let read_within = follower_config.poll_timeout;
    let mut backoff = poll;
    let mut warned = false;
    let params = loop {
        let read = tokio::time::timeout(read_within, read_params(&provider, contract))
            .await
            .unwrap_or(Err(FollowError::Timeout(read_within)));
        match read {
            Ok(params) => break params,
            Err(error) => {
                if warned {
                    tracing::debug!(%error, "still waiting for the chain node");
                } else {
                    tracing::warn!(%error, kind = error.kind().name(), rpc = %config.rpc, contract = %contract, "waiting for the chain node and the registry contract (node down, or contract not deployed yet); retrying with back-off");
                    warned = true;
                }
                tokio::time::sleep(backoff).await;
                backoff = backoff.saturating_mul(2).min(max_backoff);
            }
        }
    };
    tracing::info!(contract = %contract, "following the registry contract");
    let mut follower = Follower::new(provider, follower_config);
    let stake_per_mbps = params.stakePerMbps;
    let mut releases = ReleaseReader::default();
    let mut last: Option<B256> = None;
    let mut failing = false;
    backoff = poll;
    // Driven here rather than by `Follower::run`: every confirmed block a
    // poll reaches is handed on (a validator's ring must hold the blocks a
    // registry may anchor at; a watch would skip some).
    loop {
        match follower.poll().await {
            Ok(polled) => {
                if failing {
                    tracing::info!("chain node answering again");
                    failing = false;
                }
                backoff = poll;
                let confirmed = follower.state().confirmed().map(|b| b.hash);
                if confirmed.is_some()
                    && confirmed != last
                    && let Some(snapshot) = follower.state().snapshot()
                {
                    // A view without its block's releases would make
                    // directories the validators refuse: retried at the
                    // next poll instead.
                    match releases.at(&config, snapshot.block_number).await {
                        Ok(listed) => {
                            last = confirmed;
                            sink(
                                ChainView::new(Arc::new(snapshot), stake_per_mbps)
                                    .with_releases(listed),
                            );
                        }
                        Err(error) => {
                            tracing::warn!(%error, kind = error.kind().name(), "cannot read the release contract; retrying");
                        }
                    }
                }
                if polled.caught_up {
                    tokio::time::sleep(poll).await;
                }
            }
            Err(FollowError::Feed(error @ FeedError::ReorgTooDeep { .. })) => {
                tracing::error!(%error, "cannot undo the chain's reorg: following again from the deployment block");
                follower.resync();
            }
            Err(error) => {
                if !failing {
                    // The error names a bound an answer hit; the last
                    // confirmed view stays in use.
                    tracing::warn!(%error, kind = error.kind().name(), "following the chain failed; keeping the last confirmed block and retrying with back-off");
                    failing = true;
                }
                tokio::time::sleep(backoff).await;
                backoff = backoff.saturating_mul(2).min(max_backoff);
            }
        }
    }
}

/// Reads the release contract's releases at a block (issue 15), through a
/// read-only connection opened on first use.
#[derive(Default)]
struct ReleaseReader {
    votes: Option<openrelay_chain::release::ReleaseVotes>,
}

impl ReleaseReader {
    /// The approved and revoked releases at `block`, as a directory lists
    /// them (rejected, undecided and open ones are not listed: a client
    /// refuses them like unknown ones).
    async fn at(
        &mut self,
        config: &openrelay_config::chain::ChainConfig,
        block: u64,
    ) -> Result<Vec<ChainRelease>, openrelay_chain::release::ReleaseError> {
        use openrelay_chain::release::ReleaseStatus as OnChain;
        let votes = match self.votes.take() {
            Some(votes) => votes,
            None => {
                // Reads only: the key signs nothing.
                let reader = openrelay_chain::operator::Registry::connect(
                    &config.rpc,
                    config.chain_id,
                    Address::from(config.contract.0),
                    alloy::signers::local::PrivateKeySigner::random(),
                    openrelay_chain::operator::DEFAULT_RPC_TIMEOUT,
                )
                .await
                .map_err(openrelay_chain::release::ReleaseError::Chain)?;
                reader
                    .release_votes()
                    .await
                    .map_err(openrelay_chain::release::ReleaseError::Chain)?
            }
        };
        let read = votes.read_releases(Some(block)).await;
        self.votes = Some(votes);
        let mut listed: Vec<ChainRelease> = read?
            .into_iter()
            .filter_map(|r| {
                let status = match r.status {
                    OnChain::Approved => openrelay_directory::ReleaseStatus::Approved,
                    OnChain::Revoked => openrelay_directory::ReleaseStatus::Revoked,
                    OnChain::Proposed | OnChain::Rejected | OnChain::Undecided => return None,
                };
                Some(ChainRelease {
                    release_id: r.release_id,
                    binary_sha256: r.binary_sha256,
                    status,
                    measurements: r
                        .measurements
                        .into_iter()
                        .map(
                            |(platform, value)| openrelay_directory::ReleaseMeasurement {
                                platform,
                                value,
                            },
                        )
                        .collect(),
                })
            })
            .collect();
        // The most a directory carries: the newest releases (the contract
        // lists them oldest first).
        let excess = listed
            .len()
            .saturating_sub(openrelay_directory::MAX_RELEASES);
        listed.drain(..excess);
        Ok(listed)
    }
}
