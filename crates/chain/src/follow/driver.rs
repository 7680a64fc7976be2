//! `Follower`: the async driver polling a JSON-RPC node for the
//! `ChainFollower` state machine.

use std::sync::Arc;
use std::time::Duration;

use alloy::eips::BlockNumberOrTag;
use alloy::primitives::{Address, B256, U64};
use alloy::providers::Provider;
use alloy::rpc::client::BatchRequest;
use alloy::rpc::types::{Filter, Log};
use alloy::transports::TransportError;
use openrelay_types::HasKind;
use tokio::sync::watch;

use super::machine::{BlockRef, ChainBlock, ChainFollower, Fed, FeedError};
use super::snapshot::ChainSnapshot;
use crate::contract::RelayRegistry;
use crate::rpc::ResponseTooLarge;

/// How to follow the registry contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowerConfig {
    /// The chain the node must serve (checked with `eth_chainId`).
    pub chain_id: u64,
    /// The registry contract.
    pub contract: Address,
    /// The block the contract was deployed in: following starts there.
    pub deployment_block: u64,
    /// Reorg depth handled; the snapshot is at `head - confirmations`.
    pub confirmations: u64,
    /// Most blocks fetched per poll (one JSON-RPC batch of headers, one of
    /// `eth_getLogs`), so a poll's work and response size are bounded while
    /// catching up.
    pub max_blocks_per_poll: u64,
    /// Most of the contract's logs taken in one poll: a poll over more
    /// fetches fewer blocks; one block with more is
    /// `FollowError::TooManyLogs`. Each answer's size is bounded by the
    /// transport ([`crate::rpc::bounded_provider`]).
    pub max_logs_per_poll: usize,
    /// Pause between polls once caught up with the node's head.
    pub poll_interval: Duration,
    /// The longest pause between retries while the node fails.
    pub max_backoff: Duration,
    /// The longest a poll may take: a node that accepts connections but
    /// never answers must not stall following silently.
    pub poll_timeout: Duration,
}

impl FollowerConfig {
    /// Defaults: 12 confirmations (Ethereum reorgs beyond a couple of
    /// blocks have not happened since the merge; finality, 2 epochs, is
    /// 64, which delays every change by 13 minutes), 100 blocks per poll,
    /// a poll every 2 s, back-off up to 60 s, a poll timing out after
    /// 30 s, at most 10,000 logs a poll (a 30M-gas block holds well under
    /// that many of the contract's events: each costs a transaction's
    /// storage writes, tens of thousands of gas).
    pub fn new(chain_id: u64, contract: Address, deployment_block: u64) -> FollowerConfig {
        FollowerConfig {
            chain_id,
            contract,
            deployment_block,
            confirmations: 12,
            max_blocks_per_poll: 100,
            max_logs_per_poll: 10_000,
            poll_interval: Duration::from_secs(2),
            max_backoff: Duration::from_secs(60),
            poll_timeout: Duration::from_secs(30),
        }
    }
}

/// Why a poll failed. The follower keeps what it had; `Follower::run`
/// retries.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FollowError {
    /// The node could not be reached or answered with an error.
    #[error("chain node: {0}")]
    Rpc(#[source] TransportError),
    /// A contract call failed.
    #[error("registry contract call: {0}")]
    Call(#[source] alloy::contract::Error),
    /// An answer was longer than the transport's bound (for blocks, after
    /// fetching them one at a time): the node is broken or hostile.
    #[error(transparent)]
    ResponseTooLarge(#[from] ResponseTooLarge),
    /// The node returned more of the contract's logs than
    /// `max_logs_per_poll` for one block (the follower fetches smaller
    /// ranges, down to one block, before this): the node is broken or
    /// hostile, or the bound is too low for this chain.
    #[error(
        "the node returned more than {limit} registry logs for block {block} alone (max_logs_per_poll; ranges are narrowed down to one block first)"
    )]
    TooManyLogs {
        /// `max_logs_per_poll`.
        limit: usize,
        /// The block.
        block: u64,
    },
    /// A poll took longer than `poll_timeout`.
    #[error("the chain node did not answer within {0:?}")]
    Timeout(Duration),
    /// The node serves another chain.
    #[error("the node serves chain {got}, not chain {expected}")]
    WrongChain {
        /// The configured chain.
        expected: u64,
        /// The node's.
        got: u64,
    },
    /// The node has no block at a number below the head it announced (it
    /// is switching chains, or lagging behind its own head).
    #[error("the node has no block {0} below its head")]
    MissingBlock(u64),
    /// The node answered for another block than asked.
    #[error("asked the node for block {asked}, got block {got}")]
    WrongBlock {
        /// The number asked for.
        asked: u64,
        /// The number in the answer.
        got: u64,
    },
    /// A log the node returned for a block hash names another block, or
    /// is marked removed.
    #[error("the node returned a log of another block for block {number} ({hash})")]
    LogOfAnotherBlock {
        /// The block asked for.
        number: u64,
        /// Its hash.
        hash: B256,
    },
    /// The state machine refused a block.
    #[error(transparent)]
    Feed(#[from] FeedError),
}

impl From<TransportError> for FollowError {
    fn from(error: TransportError) -> FollowError {
        match ResponseTooLarge::in_error(&error) {
            Some(bound) => FollowError::ResponseTooLarge(bound),
            None => FollowError::Rpc(error),
        }
    }
}

impl From<alloy::contract::Error> for FollowError {
    fn from(error: alloy::contract::Error) -> FollowError {
        match error {
            alloy::contract::Error::TransportError(e) => match ResponseTooLarge::in_error(&e) {
                Some(bound) => FollowError::ResponseTooLarge(bound),
                None => FollowError::Call(alloy::contract::Error::TransportError(e)),
            },
            other => FollowError::Call(other),
        }
    }
}

impl FollowError {
    /// Whether fetching fewer blocks may avoid it (an answer over a bound).
    fn is_answer_bound(&self) -> bool {
        matches!(
            self,
            FollowError::ResponseTooLarge(_) | FollowError::TooManyLogs { .. }
        )
    }
}

impl HasKind for FollowError {
    fn kind(&self) -> openrelay_types::ErrorKind {
        use openrelay_types::ErrorKind;
        match self {
            FollowError::Rpc(_) | FollowError::Timeout(_) | FollowError::MissingBlock(_) => {
                ErrorKind::Unreachable
            }
            FollowError::Call(alloy::contract::Error::TransportError(_)) => ErrorKind::Unreachable,
            // No contract with that ABI at the configured address.
            FollowError::Call(_) | FollowError::WrongChain { .. } => ErrorKind::Config,
            FollowError::WrongBlock { .. }
            | FollowError::LogOfAnotherBlock { .. }
            | FollowError::ResponseTooLarge(_)
            | FollowError::TooManyLogs { .. } => ErrorKind::PeerMisbehaved,
            FollowError::Feed(e) => e.kind(),
        }
    }
}

/// Reads the contract's parameters (`params()`), e.g. `stakePerMbps` for
/// `ChainSnapshot::covered_relays`. They are fixed at deployment: read
/// them once.
pub async fn read_params<P: Provider>(
    provider: &P,
    contract: Address,
) -> Result<RelayRegistry::Params, FollowError> {
    Ok(RelayRegistry::new(contract, provider)
        .params()
        .call()
        .await?)
}

/// What one poll did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Polled {
    /// Blocks applied.
    pub applied: u64,
    /// Whether a reorg was found (blocks dropped; the next poll fetches
    /// the new chain's).
    pub reorg: bool,
    /// Whether the follower has reached the node's head.
    pub caught_up: bool,
    /// The confirmed head after the poll.
    pub confirmed: Option<BlockRef>,
}

/// A block's number and hashes, from `eth_getBlockByNumber` (only the
/// fields used are decoded).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockHashes {
    number: U64,
    hash: B256,
    parent_hash: B256,
}

/// Follows the registry contract through a JSON-RPC node and publishes
/// the confirmed `ChainSnapshot` (the thin driver of `ChainFollower`).
#[derive(Debug)]
pub struct Follower<P> {
    provider: P,
    config: FollowerConfig,
    machine: ChainFollower,
    chain_checked: bool,
    /// Blocks the next poll fetches at most: `max_blocks_per_poll`,
    /// halved while answers hit a bound, doubled back after each poll
    /// within them.
    span: u64,
    snapshots: watch::Sender<Option<Arc<ChainSnapshot>>>,
}

impl<P: Provider> Follower<P> {
    /// A follower through `provider`; nothing is fetched before the first
    /// poll.
    pub fn new(provider: P, config: FollowerConfig) -> Follower<P> {
        let machine = machine_for(&config);
        Follower {
            provider,
            span: config.max_blocks_per_poll.max(1),
            config,
            machine,
            chain_checked: false,
            snapshots: watch::Sender::new(None),
        }
    }

    /// The latest confirmed snapshot (`None` until a block is confirmed).
    /// After a resync it moves only once the new follow has reached the
    /// block published before, so it never goes back in time.
    pub fn snapshots(&self) -> watch::Receiver<Option<Arc<ChainSnapshot>>> {
        self.snapshots.subscribe()
    }

    /// The state machine.
    pub fn state(&self) -> &ChainFollower {
        &self.machine
    }

    /// Forgets everything followed and starts again from the deployment
    /// block: the way out of `FeedError::ReorgTooDeep` (`run` does it).
    pub fn resync(&mut self) {
        self.machine = machine_for(&self.config);
    }

    /// Follows forever: polls, retries a failing node with exponential
    /// back-off (one warning per outage, not one per attempt), and
    /// resyncs from the deployment block after a reorg deeper than
    /// `confirmations` (an error log: the snapshot published before may
    /// hold relays the chain no longer has until the resync catches up).
    pub async fn run(mut self) {
        let mut backoff = self.config.poll_interval;
        let mut failing = false;
        loop {
            match self.poll().await {
                Ok(polled) => {
                    if failing {
                        tracing::info!("chain node answering again");
                        failing = false;
                    }
                    backoff = self.config.poll_interval;
                    if polled.caught_up {
                        tokio::time::sleep(self.config.poll_interval).await;
                    }
                }
                Err(FollowError::Feed(error @ FeedError::ReorgTooDeep { .. })) => {
                    tracing::error!(%error, deployment_block = self.config.deployment_block, "cannot undo the chain's reorg: following again from the deployment block");
                    self.resync();
                }
                Err(error) => {
                    if failing {
                        tracing::debug!(%error, kind = error.kind().name(), "chain node still failing");
                    } else {
                        tracing::warn!(%error, kind = error.kind().name(), "following the chain failed; retrying with back-off");
                        failing = true;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = backoff.saturating_mul(2).min(self.config.max_backoff);
                }
            }
        }
    }

    /// One bounded unit of work: fetches up to `max_blocks_per_poll`
    /// blocks from `next_block()` (their hashes, then the contract's logs
    /// by block hash, so logs and hashes agree), feeds them, and publishes
    /// the snapshot if the confirmed head moved. Blocks fed before an
    /// error stay fed; a poll longer than `poll_timeout` is abandoned.
    pub async fn poll(&mut self) -> Result<Polled, FollowError> {
        let limit = self.config.poll_timeout;
        // Cancel-safe: every await comes before the first block is fed.
        tokio::time::timeout(limit, self.poll_unbounded())
            .await
            .unwrap_or(Err(FollowError::Timeout(limit)))
    }

    async fn poll_unbounded(&mut self) -> Result<Polled, FollowError> {
        if !self.chain_checked {
            let got = self.provider.get_chain_id().await?;
            if got != self.config.chain_id {
                return Err(FollowError::WrongChain {
                    expected: self.config.chain_id,
                    got,
                });
            }
            self.chain_checked = true;
        }
        let node_head = self.provider.get_block_number().await?;
        let from = self.machine.next_block();
        if from > node_head {
            return Ok(Polled {
                applied: 0,
                reorg: false,
                caught_up: true,
                confirmed: self.machine.confirmed(),
            });
        }
        let fetched = loop {
            let to = node_head.min(from.saturating_add(self.span - 1));
            match self.fetch(from, to).await {
                // Nothing is fed before both fetches succeed: retrying
                // fewer blocks is safe.
                Err(error) if error.is_answer_bound() && to > from => {
                    self.span = (to - from).div_ceil(2);
                    tracing::debug!(%error, blocks = self.span, "fetching fewer blocks per poll");
                }
                fetched => break fetched?,
            }
        };
        self.span = self
            .span
            .saturating_mul(2)
            .min(self.config.max_blocks_per_poll.max(1));
        let confirmed_before = self.machine.confirmed();
        let fed = self.feed(fetched);
        if self.machine.confirmed() != confirmed_before {
            self.publish();
        }
        let (applied, reorg) = fed?;
        Ok(Polled {
            applied,
            reorg,
            caught_up: !reorg && self.machine.next_block() > node_head,
            confirmed: self.machine.confirmed(),
        })
    }

    /// Blocks `from..=to` with the contract's logs in each.
    async fn fetch(
        &self,
        from: u64,
        to: u64,
    ) -> Result<Vec<(BlockHashes, Vec<alloy::primitives::Log>)>, FollowError> {
        let blocks = self.fetch_blocks(from, to).await?;
        let logs = self.fetch_logs(&blocks).await?;
        Ok(blocks.into_iter().zip(logs).collect())
    }

    fn feed(
        &mut self,
        fetched: Vec<(BlockHashes, Vec<alloy::primitives::Log>)>,
    ) -> Result<(u64, bool), FollowError> {
        let mut applied = 0;
        for (block, logs) in fetched {
            match self.machine.feed(ChainBlock {
                number: block.number.to(),
                hash: block.hash,
                parent_hash: block.parent_hash,
                logs,
            })? {
                Fed::Applied { .. } => applied += 1,
                Fed::Duplicate => {}
                Fed::Reorg { refetch_from } => {
                    tracing::info!(
                        refetch_from,
                        "chain reorganised; fetching the new chain's blocks"
                    );
                    return Ok((applied, true));
                }
            }
        }
        Ok((applied, false))
    }

    async fn fetch_blocks(&self, from: u64, to: u64) -> Result<Vec<BlockHashes>, FollowError> {
        let mut batch = BatchRequest::new(self.provider.client());
        let mut waiters = Vec::new();
        for number in from..=to {
            waiters.push((
                number,
                batch.add_call::<_, Option<BlockHashes>>(
                    "eth_getBlockByNumber",
                    &(BlockNumberOrTag::Number(number), false),
                )?,
            ));
        }
        batch.send().await?;
        let mut blocks = Vec::with_capacity(waiters.len());
        for (asked, waiter) in waiters {
            let block = waiter.await?.ok_or(FollowError::MissingBlock(asked))?;
            let got: u64 = block.number.to();
            if got != asked {
                return Err(FollowError::WrongBlock { asked, got });
            }
            blocks.push(block);
        }
        Ok(blocks)
    }

    async fn fetch_logs(
        &self,
        blocks: &[BlockHashes],
    ) -> Result<Vec<Vec<alloy::primitives::Log>>, FollowError> {
        let mut batch = BatchRequest::new(self.provider.client());
        let mut waiters = Vec::new();
        for block in blocks {
            let filter = Filter::new()
                .address(self.config.contract)
                .event_signature(super::state::state_events())
                .at_block_hash(block.hash);
            waiters.push(batch.add_call::<_, Vec<Log>>("eth_getLogs", &(filter,))?);
        }
        batch.send().await?;
        let mut all = Vec::with_capacity(waiters.len());
        let mut taken = 0usize;
        for (block, waiter) in blocks.iter().zip(waiters) {
            let mut logs = waiter.await?;
            taken = taken.saturating_add(logs.len());
            if taken > self.config.max_logs_per_poll {
                return Err(FollowError::TooManyLogs {
                    limit: self.config.max_logs_per_poll,
                    block: block.number.to(),
                });
            }
            let other_block = logs
                .iter()
                .any(|log| log.block_hash != Some(block.hash) || log.removed);
            if other_block {
                return Err(FollowError::LogOfAnotherBlock {
                    number: block.number.to(),
                    hash: block.hash,
                });
            }
            logs.sort_by_key(|log| log.log_index);
            all.push(logs.into_iter().map(|log| log.inner).collect());
        }
        Ok(all)
    }

    fn publish(&self) {
        let Some(snapshot) = self.machine.snapshot() else {
            return;
        };
        let published = self
            .snapshots
            .borrow()
            .as_ref()
            .map(|held| held.block_number);
        if published.is_none_or(|number| snapshot.block_number >= number) {
            self.snapshots.send_replace(Some(Arc::new(snapshot)));
        }
    }
}

fn machine_for(config: &FollowerConfig) -> ChainFollower {
    ChainFollower::new(
        config.chain_id,
        config.contract,
        config.deployment_block,
        config.confirmations,
    )
}
