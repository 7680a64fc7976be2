//! What an operator (or a validator) does on the registry contract:
//! typed calls the `openrelay operator` and `openrelay validator` commands
//! make, with errors that say what to do.
//!
//! A [`Registry`] is opened with [`Registry::connect`], which refuses an
//! `https://` URL (alloy is built without TLS: the node is the operator's
//! own or reached through a local proxy), bounds every RPC call in time,
//! and checks that the node serves the expected chain and that the
//! contract exists there, so a key is never used on the wrong chain.

use std::future::IntoFuture;
use std::path::{Path, PathBuf};
use std::time::Duration;

use alloy::contract::SolCallBuilder;
use alloy::primitives::{Address, B256, FixedBytes, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::TransactionReceipt;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{SolCall, SolEvent};
use alloy::transports::http::reqwest::Url;
use openrelay_types::RelayRole;

use crate::contract::RelayRegistry::{self, RelayRegistryErrors, RelayRegistryInstance};
use crate::deploy::ChainParams;

mod validator;

pub use validator::{
    PendingApproval, SetChangeApproval, SetChangeProblem, ValidatorEntry, ValidatorStatus,
};

/// Formats wei as ether without trailing zeros (`0.5 ETH`).
pub fn eth(wei: U256) -> String {
    let text = alloy::primitives::utils::format_ether(wei);
    let trimmed = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        text.as_str()
    };
    format!("{trimmed} ETH")
}

/// A custom error of `RelayRegistry`, decoded from a revert.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The constructor's parameters or genesis set are invalid.
    #[error("invalid parameters or genesis set")]
    BadParams,
    /// A key is all zeros.
    #[error("the key is all zeros")]
    ZeroKey,
    /// The account (or the relay under it) is already registered.
    #[error("already registered")]
    AlreadyRegistered,
    /// The account has not registered as an operator.
    #[error("this account is not a registered operator (register it first)")]
    NotOperator,
    /// A relay's role is neither ingress (1) nor egress (2).
    #[error("role {0} is neither ingress (1) nor egress (2)")]
    BadRole(u8),
    /// A relay advertises no bandwidth.
    #[error("a relay must advertise some bandwidth")]
    ZeroBandwidth,
    /// The operator has registered the most relays allowed.
    #[error("an operator may register at most {0} relays")]
    TooManyRelays(u32),
    /// No such relay under this operator.
    #[error("no such relay under this operator")]
    UnknownRelay,
    /// The stake does not cover what was asked.
    #[error("stake {} is short of the {} required", eth(*stake), eth(*required))]
    InsufficientStake {
        /// Wei required.
        required: U256,
        /// Wei staked.
        stake: U256,
    },
    /// Nothing to withdraw.
    #[error("nothing to withdraw")]
    NothingToWithdraw,
    /// The unbonding stake is not withdrawable yet.
    #[error("the unbonding stake can be withdrawn from unix time {0} on")]
    NotReady(u64),
    /// The contract could not pay the account.
    #[error("the payment to this account failed")]
    TransferFailed,
    /// The account is not in the current validator set.
    #[error("this account is not in the current validator set")]
    NotValidator,
    /// A validator's stake is below the minimum.
    #[error("a validator stakes at least {}", eth(*.0))]
    BelowMinimumStake(U256),
    /// The account is already a validator or asked to join.
    #[error("this account is already a validator or waiting to join")]
    AlreadyValidator,
    /// The account has no join request.
    #[error("this account has no pending join request")]
    NotPending,
    /// A set-change approval names another epoch than the current one.
    #[error("the validator set is at epoch {0}")]
    WrongEpoch(u64),
    /// A set change includes a join or leave that is not ready (or is
    /// empty, or lists an account twice).
    #[error(
        "the set change is empty, lists an account twice, or includes a join or leave before its delay"
    )]
    BadSetChange,
    /// The set would exceed its maximum size.
    #[error("the validator set holds at most {0} members")]
    SetFull(u32),
    /// This account already approved.
    #[error("this account has already approved it")]
    AlreadyApproved,
    /// A slash is malformed (unknown target kind, zero amount).
    #[error("the slash is malformed (unknown target kind or zero amount)")]
    BadSlash,
    /// The slash (its id) has already been executed.
    #[error("slash {0} has already been executed")]
    SlashAlreadyExecuted(B256),
    /// A measurement report's commitment or reveal was refused.
    #[error("{0}")]
    Report(crate::measure::ReportRefusal),
}

impl Refusal {
    /// The contract's custom error in `error`, if it is one.
    pub fn decode(error: &alloy::contract::Error) -> Option<Refusal> {
        use RelayRegistryErrors as E;
        Some(
            match error.as_decoded_interface_error::<RelayRegistryErrors>()? {
                E::BadParams(_) => Refusal::BadParams,
                E::ZeroKey(_) => Refusal::ZeroKey,
                E::AlreadyRegistered(_) => Refusal::AlreadyRegistered,
                E::NotOperator(_) => Refusal::NotOperator,
                E::BadRole(e) => Refusal::BadRole(e.role),
                E::ZeroBandwidth(_) => Refusal::ZeroBandwidth,
                E::TooManyRelays(e) => Refusal::TooManyRelays(e.max),
                E::UnknownRelay(_) => Refusal::UnknownRelay,
                E::InsufficientStake(e) => Refusal::InsufficientStake {
                    required: e.required,
                    stake: e.stake,
                },
                E::NothingToWithdraw(_) => Refusal::NothingToWithdraw,
                E::NotReady(e) => Refusal::NotReady(e.readyAt),
                E::TransferFailed(_) => Refusal::TransferFailed,
                E::NotValidator(_) => Refusal::NotValidator,
                E::BelowMinimumStake(e) => Refusal::BelowMinimumStake(e.minimum),
                E::AlreadyValidator(_) => Refusal::AlreadyValidator,
                E::NotPending(_) => Refusal::NotPending,
                E::WrongEpoch(e) => Refusal::WrongEpoch(e.current),
                E::BadSetChange(_) => Refusal::BadSetChange,
                E::SetFull(e) => Refusal::SetFull(e.max),
                E::AlreadyApproved(_) => Refusal::AlreadyApproved,
                E::BadSlash(_) => Refusal::BadSlash,
                E::SlashAlreadyExecuted(e) => Refusal::SlashAlreadyExecuted(e.slash),
                other => Refusal::Report(crate::measure::ReportRefusal::decode(&other)?),
            },
        )
    }
}

/// Why an operation on the registry failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OperatorError {
    /// The RPC URL is `https://`: this build has no TLS for JSON-RPC.
    #[error(
        "{url}: https RPC is not supported (openrelay speaks plain HTTP to a node you run, or through a local proxy such as `ssh -L`); use an http:// URL"
    )]
    HttpsUnsupported {
        /// The URL given.
        url: String,
    },
    /// The RPC URL does not parse or is not `http://`.
    #[error("{url} is not an http:// URL")]
    BadUrl {
        /// The URL given.
        url: String,
    },
    /// The node did not answer in time.
    #[error("the RPC node at {url} did not answer within {after:?}")]
    TimedOut {
        /// The node.
        url: String,
        /// The time allowed.
        after: Duration,
    },
    /// The node could not be reached (or answered with an RPC error).
    #[error("the RPC node at {url} is unreachable: {source}")]
    Unreachable {
        /// The node.
        url: String,
        /// Why.
        #[source]
        source: alloy::transports::TransportError,
    },
    /// The node serves another chain than the one expected.
    #[error("the RPC node is on chain {actual}, not the expected chain {expected}")]
    WrongChain {
        /// The chain id expected.
        expected: u64,
        /// The chain id the node reports.
        actual: u64,
    },
    /// No contract at the address on this chain.
    #[error("no contract at {address} on chain {chain_id}")]
    NoContract {
        /// The address given.
        address: Address,
        /// The chain.
        chain_id: u64,
    },
    /// Registering (or raising) bandwidth beyond what the stake covers.
    #[error(
        "stake {} covers {covers_mbps} Mbit/s; registering {adding_mbps} Mbit/s more needs {} in total",
        eth(*stake),
        eth(*required)
    )]
    StakeShort {
        /// Wei staked.
        stake: U256,
        /// Mbit/s that stake covers.
        covers_mbps: u64,
        /// Mbit/s asked for on top of what the relays advertise.
        adding_mbps: u64,
        /// Wei the operator's total would need.
        required: U256,
    },
    /// Unstaking would leave the relays uncovered.
    #[error(
        "unstaking {} would leave {}, less than the {} covering the {advertised_mbps} Mbit/s your relays advertise (remove or shrink relays first)",
        eth(*amount),
        eth(stake.saturating_sub(*amount)),
        eth(*cover)
    )]
    UnstakeBelowCover {
        /// Wei asked for.
        amount: U256,
        /// Wei staked.
        stake: U256,
        /// Wei the relays need.
        cover: U256,
        /// Mbit/s the relays advertise.
        advertised_mbps: u64,
    },
    /// Unstaking more than is staked.
    #[error("unstaking {} is more than the {} staked", eth(*amount), eth(*stake))]
    UnstakeMoreThanStaked {
        /// Wei asked for.
        amount: U256,
        /// Wei staked.
        stake: U256,
    },
    /// The contract refused for another reason.
    #[error("the registry contract refused: {0}")]
    Refused(Refusal),
    /// The contract refused a validator set change (`BadSetChange`); this
    /// says why.
    #[error("the registry contract refused the set change: {0}")]
    SetChange(SetChangeProblem),
    /// The node refused the transaction (funds for gas, nonce) or the call
    /// failed otherwise.
    #[error("the transaction failed: {0}")]
    Transaction(#[source] alloy::contract::Error),
    /// Waiting for the receipt failed.
    #[error("waiting for the transaction's receipt: {0}")]
    Receipt(#[source] alloy::providers::PendingTransactionError),
    /// The transaction was sent but not mined in time (it may still be).
    #[error(
        "transaction {tx} was sent but not mined within {after:?}; it may still be: check `openrelay operator status` before sending it again"
    )]
    NotConfirmed {
        /// The transaction.
        tx: B256,
        /// The time allowed.
        after: Duration,
    },
    /// The contract's measurement clock is invalid (the node reports
    /// parameters the contract refuses at deployment).
    #[error("the registry contract's measurement clock is invalid: {0}")]
    MeasureTiming(#[source] openrelay_measure::TimingError),
    /// The transaction was mined but reverted.
    #[error("transaction {0} reverted")]
    Reverted(B256),
    /// The node cannot say in which block the contract was deployed (a
    /// node keeping no old state).
    #[error(
        "cannot find the registry contract's deployment block at {url} (a node that keeps no old state cannot tell): pass --from-block (the `deployed_at_block` of the registry's [chain] config): {source}"
    )]
    DeploymentBlockUnknown {
        /// The node.
        url: String,
        /// Why.
        #[source]
        source: alloy::transports::TransportError,
    },
}

impl openrelay_types::HasKind for OperatorError {
    fn kind(&self) -> openrelay_types::ErrorKind {
        use openrelay_types::ErrorKind;
        match self {
            OperatorError::HttpsUnsupported { .. }
            | OperatorError::BadUrl { .. }
            | OperatorError::WrongChain { .. }
            | OperatorError::NoContract { .. }
            | OperatorError::DeploymentBlockUnknown { .. } => ErrorKind::Config,
            OperatorError::MeasureTiming(_) => ErrorKind::PeerMisbehaved,
            OperatorError::TimedOut { .. } | OperatorError::Unreachable { .. } => {
                ErrorKind::Unreachable
            }
            OperatorError::StakeShort { .. }
            | OperatorError::UnstakeBelowCover { .. }
            | OperatorError::UnstakeMoreThanStaked { .. }
            | OperatorError::Refused(_)
            | OperatorError::SetChange(_)
            | OperatorError::Transaction(_)
            | OperatorError::Reverted(_) => ErrorKind::Refused,
            OperatorError::Receipt(_) | OperatorError::NotConfirmed { .. } => {
                ErrorKind::Unreachable
            }
        }
    }
}

impl openrelay_types::HasKind for Refusal {
    fn kind(&self) -> openrelay_types::ErrorKind {
        openrelay_types::ErrorKind::Refused
    }
}

/// A mined transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// Its hash.
    pub tx: B256,
    /// The block it is in.
    pub block: u64,
    /// Gas it used.
    pub gas_used: u64,
}

impl Sent {
    pub(crate) fn from_receipt(receipt: &TransactionReceipt) -> Sent {
        Sent {
            tx: receipt.transaction_hash,
            block: receipt.block_number.unwrap_or_default(),
            gas_used: receipt.gas_used,
        }
    }
}

/// One of the operator's relays as the chain has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayStatus {
    /// The relay key (the `RelayId` bytes).
    pub relay_key: [u8; 32],
    /// Its role.
    pub role: RelayRole,
    /// Advertised bandwidth.
    pub bandwidth_mbps: u32,
    /// The commitment to its descriptor's content.
    pub descriptor_hash: [u8; 32],
}

/// An operator account's standing on the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorStatus {
    /// The account.
    pub account: Address,
    /// Its Ed25519 operator key, if registered.
    pub operator_key: Option<[u8; 32]>,
    /// Bonded stake (wei).
    pub stake: U256,
    /// Bandwidth all its relays advertise.
    pub advertised_mbps: u64,
    /// Stake that bandwidth needs.
    pub cover_required: U256,
    /// Whether the stake covers it (else none of its relays is listed).
    pub covered: bool,
    /// Its relays.
    pub relays: Vec<RelayStatus>,
    /// Stake unbonding (wei).
    pub unbonding: U256,
    /// When the unbonding stake can be withdrawn (unix time), if any.
    pub unbonding_ready_at: Option<u64>,
    /// Slashing rewards it can withdraw now (wei).
    pub rewards: U256,
}

/// Most blocks one `eth_getLogs` spans when reading an operator's relays:
/// public nodes refuse wider ranges (limits of 1,000 to 10,000 blocks are
/// common) and a range's answer must stay small.
pub const LOG_RANGE_BLOCKS: u64 = 1_000;

/// How long one RPC call may take by default.
pub const DEFAULT_RPC_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a sent transaction may take to be mined by default: minutes,
/// not the seconds of an RPC call (a public chain's blocks come every few
/// seconds, and a busy one leaves a low-fee transaction waiting).
pub const DEFAULT_CONFIRMATION_TIMEOUT: Duration = Duration::from_secs(300);

/// The registry contract on a checked chain, with the account that signs.
#[derive(Debug, Clone)]
pub struct Registry {
    pub(crate) contract: RelayRegistryInstance<DynProvider>,
    pub(crate) account: Address,
    url: String,
    timeout: Duration,
    confirm_within: Duration,
    pub(crate) params: ChainParams,
}

impl Registry {
    /// Connects to the node at `rpc` (plain `http://`), checks that it
    /// serves chain `chain_id` and has a contract at `contract`, and reads
    /// its parameters. Transactions are signed by `signer`; every RPC call
    /// is bounded by `timeout`.
    pub async fn connect(
        rpc: &str,
        chain_id: u64,
        contract: Address,
        signer: PrivateKeySigner,
        timeout: Duration,
    ) -> Result<Registry, OperatorError> {
        let url = parse_rpc_url(rpc)?;
        let account = signer.address();
        let provider = signing_provider(url, signer);
        let mut registry = Registry {
            contract: RelayRegistry::new(contract, provider),
            account,
            url: rpc.to_owned(),
            timeout,
            confirm_within: DEFAULT_CONFIRMATION_TIMEOUT,
            params: ChainParams::production(),
        };
        let provider = registry.contract.provider().clone();
        let actual = registry
            .bounded(provider.get_chain_id())
            .await?
            .map_err(|e| registry.unreachable(e))?;
        if actual != chain_id {
            return Err(OperatorError::WrongChain {
                expected: chain_id,
                actual,
            });
        }
        let code = registry
            .bounded(provider.get_code_at(contract))
            .await?
            .map_err(|e| registry.unreachable(e))?;
        if code.is_empty() {
            return Err(OperatorError::NoContract {
                address: contract,
                chain_id,
            });
        }
        let params = registry.read(registry.contract.params().call()).await?;
        let release = registry
            .read(registry.contract.releaseRegistry().call())
            .await?;
        let release = crate::contract::votes::ReleaseRegistry::new(release, provider);
        let release = registry.read(release.params().call()).await?;
        registry.params = ChainParams::from_contracts(params, release);
        Ok(registry)
    }

    /// Waits up to `limit` for each transaction to be mined (default
    /// [`DEFAULT_CONFIRMATION_TIMEOUT`]).
    pub fn confirm_within(mut self, limit: Duration) -> Registry {
        self.confirm_within = limit;
        self
    }

    /// The signing account.
    pub fn account(&self) -> Address {
        self.account
    }

    /// The contract's parameters.
    pub fn params(&self) -> &ChainParams {
        &self.params
    }

    /// The contract's bindings, for calls this module does not wrap.
    pub fn contract(&self) -> &RelayRegistryInstance<DynProvider> {
        &self.contract
    }

    /// Registers this account as the operator with Ed25519 key
    /// `operator_key` and signed profile `profile_hash`, staking `stake`.
    pub async fn register_operator(
        &self,
        operator_key: [u8; 32],
        profile_hash: [u8; 32],
        stake: U256,
    ) -> Result<Sent, OperatorError> {
        let call = self
            .contract
            .registerOperator(FixedBytes(operator_key), FixedBytes(profile_hash))
            .value(stake);
        self.submit(call).await
    }

    /// Adds `amount` to this operator's stake.
    pub async fn stake(&self, amount: U256) -> Result<Sent, OperatorError> {
        self.submit(self.contract.stake().value(amount)).await
    }

    /// Starts unbonding `amount` of this operator's stake.
    pub async fn unstake(&self, amount: U256) -> Result<Sent, OperatorError> {
        match self.submit(self.contract.unstake(amount)).await {
            Err(OperatorError::Refused(Refusal::InsufficientStake { stake, .. })) => {
                if amount > stake {
                    return Err(OperatorError::UnstakeMoreThanStaked { amount, stake });
                }
                let advertised_mbps = self.advertised_mbps().await?;
                Err(OperatorError::UnstakeBelowCover {
                    amount,
                    stake,
                    cover: self.params.cover_for(advertised_mbps),
                    advertised_mbps,
                })
            }
            other => other,
        }
    }

    /// Registers relay `relay_key` under this operator.
    pub async fn register_relay(
        &self,
        relay_key: [u8; 32],
        role: RelayRole,
        bandwidth_mbps: u32,
        descriptor_hash: [u8; 32],
    ) -> Result<Sent, OperatorError> {
        let call = self.contract.registerRelay(
            FixedBytes(relay_key),
            crate::contract::role_code(role),
            bandwidth_mbps,
            FixedBytes(descriptor_hash),
        );
        let sent = self.submit(call).await;
        self.explain_cover(sent).await
    }

    /// Changes a relay's advertised bandwidth and descriptor commitment.
    pub async fn update_relay(
        &self,
        relay_key: [u8; 32],
        bandwidth_mbps: u32,
        descriptor_hash: [u8; 32],
    ) -> Result<Sent, OperatorError> {
        let call = self.contract.updateRelay(
            FixedBytes(relay_key),
            bandwidth_mbps,
            FixedBytes(descriptor_hash),
        );
        let sent = self.submit(call).await;
        self.explain_cover(sent).await
    }

    /// The role relay `relay_key` is registered with under this operator
    /// (`None`: not registered).
    pub async fn relay_role(
        &self,
        relay_key: [u8; 32],
    ) -> Result<Option<RelayRole>, OperatorError> {
        let id = self
            .read(
                self.contract
                    .relayId(self.account, FixedBytes(relay_key))
                    .call(),
            )
            .await?;
        let relay = self.read(self.contract.relays(id).call()).await?;
        Ok(crate::contract::role_from_code(relay.role))
    }

    /// Removes a relay (its bandwidth no longer needs cover).
    pub async fn remove_relay(&self, relay_key: [u8; 32]) -> Result<Sent, OperatorError> {
        self.submit(self.contract.removeRelay(FixedBytes(relay_key)))
            .await
    }

    /// Withdraws unbonded stake and rewards.
    pub async fn withdraw(&self) -> Result<Sent, OperatorError> {
        self.submit(self.contract.withdraw()).await
    }

    /// This account's standing as an operator. Its relays are read from
    /// the contract's events from block `from_block` (its deployment
    /// block; `None`: found on the chain, see [`Registry::deployment_block`])
    /// in ranges of [`LOG_RANGE_BLOCKS`].
    pub async fn status(&self, from_block: Option<u64>) -> Result<OperatorStatus, OperatorError> {
        let account = self.account;
        let operator = self.read(self.contract.operators(account).call()).await?;
        let unbonding = self.read(self.contract.unbonding(account).call()).await?;
        let rewards = self.read(self.contract.rewards(account).call()).await?;
        let cover_required = self.params.cover_for(operator.advertisedMbps);
        Ok(OperatorStatus {
            account,
            operator_key: (!operator.operatorKey.is_zero()).then_some(operator.operatorKey.0),
            stake: operator.stake,
            advertised_mbps: operator.advertisedMbps,
            cover_required,
            covered: operator.stake >= cover_required,
            relays: self.relays(from_block).await?,
            unbonding: unbonding.amount,
            unbonding_ready_at: (!unbonding.amount.is_zero()).then_some(unbonding.readyAt),
            rewards,
        })
    }

    /// The number of the node's latest block.
    pub async fn head_block(&self) -> Result<u64, OperatorError> {
        self.bounded(self.contract.provider().get_block_number())
            .await?
            .map_err(|e| self.unreachable(e))
    }

    /// The block the contract was deployed in: the first with code at its
    /// address, found by bisection (about 25 `eth_getCode` calls on a
    /// chain of tens of millions of blocks). Needs a node that keeps old
    /// state (an archive node, anvil); otherwise
    /// [`OperatorError::DeploymentBlockUnknown`].
    pub async fn deployment_block(&self) -> Result<u64, OperatorError> {
        let provider = self.contract.provider();
        let address = *self.contract.address();
        let head = self
            .bounded(provider.get_block_number())
            .await?
            .map_err(|e| self.unreachable(e))?;
        let (mut low, mut high) = (0, head);
        while low < high {
            let middle = low + (high - low) / 2;
            let code = self
                .bounded(provider.get_code_at(address).number(middle))
                .await?
                .map_err(|source| OperatorError::DeploymentBlockUnknown {
                    url: self.url.clone(),
                    source,
                })?;
            if code.is_empty() {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        Ok(low)
    }

    /// This operator's relays: the keys its `RelayRegistered` events name
    /// from `from_block` on, as the contract holds them now (removed ones
    /// left out).
    async fn relays(&self, from_block: Option<u64>) -> Result<Vec<RelayStatus>, OperatorError> {
        let registered = self
            .events(
                self.contract
                    .RelayRegistered_filter()
                    .topic1(self.account.into_word()),
                from_block,
            )
            .await?;
        let mut keys: Vec<B256> = registered.iter().map(|event| event.relayKey).collect();
        keys.sort();
        keys.dedup();
        let mut relays = Vec::new();
        for key in keys {
            let id = self
                .read(self.contract.relayId(self.account, key).call())
                .await?;
            let relay = self.read(self.contract.relays(id).call()).await?;
            if let Some(role) = crate::contract::role_from_code(relay.role) {
                relays.push(RelayStatus {
                    relay_key: key.0,
                    role,
                    bandwidth_mbps: relay.bandwidthMbps,
                    descriptor_hash: relay.descriptorHash.0,
                });
            }
        }
        Ok(relays)
    }

    async fn advertised_mbps(&self) -> Result<u64, OperatorError> {
        let operator = self
            .read(self.contract.operators(self.account).call())
            .await?;
        Ok(operator.advertisedMbps)
    }

    /// Turns a cover refusal into what the stake covers and what is asked.
    async fn explain_cover(
        &self,
        sent: Result<Sent, OperatorError>,
    ) -> Result<Sent, OperatorError> {
        let Err(OperatorError::Refused(Refusal::InsufficientStake { required, stake })) = sent
        else {
            return sent;
        };
        let advertised = self.advertised_mbps().await?;
        let per_mbps = self.params.stake_per_mbps;
        let mbps = |wei: U256| u64::try_from(wei / per_mbps).unwrap_or(u64::MAX);
        Err(OperatorError::StakeShort {
            stake,
            covers_mbps: mbps(stake),
            adding_mbps: mbps(required).saturating_sub(advertised),
            required,
        })
    }

    /// Sends a transaction and waits for it to be mined.
    pub(crate) async fn submit<C: SolCall>(
        &self,
        call: SolCallBuilder<&DynProvider, C>,
    ) -> Result<Sent, OperatorError> {
        self.submit_for_receipt(call)
            .await
            .map(|receipt| Sent::from_receipt(&receipt))
    }

    /// Sends a transaction and waits for its (successful) receipt.
    pub(crate) async fn submit_for_receipt<C: SolCall>(
        &self,
        call: SolCallBuilder<&DynProvider, C>,
    ) -> Result<TransactionReceipt, OperatorError> {
        let pending = self
            .bounded(call.send())
            .await?
            .map_err(|e| self.failed(e))?;
        self.confirm(pending).await
    }

    /// Sends an approval `call` with room for executing what it approves,
    /// and waits for its receipt. The gas estimate is of the approval as
    /// the chain stands when it is made; another validator's approval
    /// landing first can make this one the approval that reaches the
    /// quorum and executes (a slash paying every approver, a set change
    /// rewriting the set), which costs more. Without the room that
    /// approval runs out of gas and reverts, and nothing is executed: the
    /// devnet saw a slash approved by three of four validators at the same
    /// moment never taken.
    pub(crate) async fn submit_approval_for_receipt<C: SolCall>(
        &self,
        call: SolCallBuilder<&DynProvider, C>,
    ) -> Result<TransactionReceipt, OperatorError> {
        let estimate = self
            .bounded(call.estimate_gas())
            .await?
            .map_err(|e| self.failed(e))?;
        self.submit_for_receipt(call.gas(estimate.saturating_add(QUORUM_EXECUTION_GAS)))
            .await
    }

    /// Waits for a sent transaction's (successful) receipt.
    pub(crate) async fn confirm(
        &self,
        pending: alloy::providers::PendingTransactionBuilder<alloy::network::Ethereum>,
    ) -> Result<TransactionReceipt, OperatorError> {
        let tx = *pending.tx_hash();
        let receipt = tokio::time::timeout(self.confirm_within, pending.get_receipt())
            .await
            .map_err(|_| OperatorError::NotConfirmed {
                tx,
                after: self.confirm_within,
            })?
            .map_err(OperatorError::Receipt)?;
        if !receipt.status() {
            return Err(OperatorError::Reverted(receipt.transaction_hash));
        }
        Ok(receipt)
    }

    /// The contract's events `filter` selects from block `from_block` (the
    /// deployment block; `None`: found on the chain) to the head, read in
    /// ranges of [`LOG_RANGE_BLOCKS`] as public nodes require.
    async fn events<E: SolEvent>(
        &self,
        filter: alloy::contract::Event<&DynProvider, E>,
        from_block: Option<u64>,
    ) -> Result<Vec<E>, OperatorError> {
        let from = match from_block {
            Some(block) => block,
            None => self.deployment_block().await?,
        };
        let head = self
            .bounded(self.contract.provider().get_block_number())
            .await?
            .map_err(|e| self.unreachable(e))?;
        let mut events = Vec::new();
        let mut start = from;
        while start <= head {
            let end = head.min(start.saturating_add(LOG_RANGE_BLOCKS - 1));
            let range = alloy::contract::Event::new(
                filter.provider,
                filter.filter.clone().from_block(start).to_block(end),
            );
            let found = self
                .bounded(range.query())
                .await?
                .map_err(|e| self.failed(e))?;
            events.extend(found.into_iter().map(|(event, _)| event));
            start = end.saturating_add(1);
            if end == u64::MAX {
                break;
            }
        }
        Ok(events)
    }

    /// Reads a view function.
    pub(crate) async fn read<T>(
        &self,
        call: impl IntoFuture<Output = Result<T, alloy::contract::Error>>,
    ) -> Result<T, OperatorError> {
        self.bounded(call).await?.map_err(|e| self.failed(e))
    }

    pub(crate) async fn bounded<T>(
        &self,
        call: impl IntoFuture<Output = T>,
    ) -> Result<T, OperatorError> {
        tokio::time::timeout(self.timeout, call.into_future())
            .await
            .map_err(|_| OperatorError::TimedOut {
                url: self.url.clone(),
                after: self.timeout,
            })
    }

    pub(crate) fn failed(&self, error: alloy::contract::Error) -> OperatorError {
        if let Some(refusal) = Refusal::decode(&error) {
            return OperatorError::Refused(refusal);
        }
        match error {
            // A node that answers with an error response (not a revert) is
            // reachable: report the transaction's failure.
            alloy::contract::Error::TransportError(e) if e.as_error_resp().is_none() => {
                self.unreachable(e)
            }
            other => OperatorError::Transaction(other),
        }
    }

    pub(crate) fn unreachable(&self, source: alloy::transports::TransportError) -> OperatorError {
        OperatorError::Unreachable {
            url: self.url.clone(),
            source,
        }
    }
}

/// Gas an approval reserves beyond its estimate for executing what it
/// approves ([`Registry::submit_approval_for_receipt`]): a slash's
/// execution costs about 31,000 gas per approver (docs/chain.md: 250,955
/// executing with 4 approvers against 127,874 below the quorum), so this
/// covers the 64 validators `openrelay_measure::MAX_VALIDATORS` allows.
/// Unused gas is not charged.
const QUORUM_EXECUTION_GAS: u64 = 2_000_000;

/// A provider that signs with `signer`, reads answers of at most
/// [`crate::rpc::DEFAULT_MAX_RESPONSE_BYTES`], and asks the node for the nonce of
/// every transaction. Alloy's default nonce cache counts a transaction the
/// node refused (a revert found while estimating gas) as sent, so the next
/// one would carry a nonce gap and wait in the node's queue forever.
pub fn signing_provider(url: Url, signer: PrivateKeySigner) -> DynProvider {
    ProviderBuilder::new()
        .disable_recommended_fillers()
        .with_gas_estimation()
        .with_simple_nonce_management()
        .fetch_chain_id()
        .wallet(signer)
        .connect_client(crate::rpc::bounded_client(
            url,
            crate::rpc::DEFAULT_MAX_RESPONSE_BYTES,
        ))
        .erased()
}

/// Why an EVM key file could not be created or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// Creating: the file exists (never overwritten: it may hold stake).
    #[error("{0} exists; not overwriting an account key")]
    Exists(PathBuf),
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Group or others may read it.
    #[error("{path} is readable by others (mode {mode:o}); run `chmod 600 {path}`")]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// It does not hold a hex secp256k1 private key.
    #[error("{0} does not hold an EVM private key (64 hex digits)")]
    Malformed(PathBuf),
}

impl openrelay_types::HasKind for KeyFileError {
    fn kind(&self) -> openrelay_types::ErrorKind {
        use openrelay_types::ErrorKind;
        match self {
            KeyFileError::Io { .. } => ErrorKind::Local,
            KeyFileError::Exists(_) | KeyFileError::TooOpen { .. } | KeyFileError::Malformed(_) => {
                ErrorKind::Config
            }
        }
    }
}

/// Creates a new EVM account key at `path` (hex, mode 0600; refused if the
/// file exists). This account pays and holds stake: it is separate from
/// the operator's Ed25519 key, which signs descriptors.
pub fn create_key_file(path: &Path) -> Result<PrivateKeySigner, KeyFileError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let signer = PrivateKeySigner::random();
    let io = |source| KeyFileError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => KeyFileError::Exists(path.to_owned()),
            _ => io(e),
        })?;
    writeln!(file, "{}", signer.to_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io)?;
    Ok(signer)
}

/// Reads the EVM account key at `path`, refusing a file others may read.
pub fn load_key_file(path: &Path) -> Result<PrivateKeySigner, KeyFileError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |source| KeyFileError::Io {
        path: path.to_owned(),
        source,
    };
    let mode = std::fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::TooOpen {
            path: path.to_owned(),
            mode,
        });
    }
    let text = std::fs::read_to_string(path).map_err(io)?;
    let bytes: B256 = text
        .trim()
        .parse()
        .map_err(|_| KeyFileError::Malformed(path.to_owned()))?;
    PrivateKeySigner::from_bytes(&bytes).map_err(|_| KeyFileError::Malformed(path.to_owned()))
}

/// Parses a JSON-RPC URL, refusing anything but plain `http://`.
fn parse_rpc_url(rpc: &str) -> Result<Url, OperatorError> {
    let url: Url = rpc.parse().map_err(|_| OperatorError::BadUrl {
        url: rpc.to_owned(),
    })?;
    match url.scheme() {
        "http" => Ok(url),
        "https" => Err(OperatorError::HttpsUnsupported {
            url: rpc.to_owned(),
        }),
        _ => Err(OperatorError::BadUrl {
            url: rpc.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ether_is_printed_without_trailing_zeros() {
        assert_eq!(eth(U256::from(500_000_000_000_000_000u128)), "0.5 ETH");
        assert_eq!(eth(U256::from(2_000_000_000_000_000_000u128)), "2 ETH");
        assert_eq!(eth(U256::ZERO), "0 ETH");
    }

    #[test]
    fn key_files_are_private_and_never_overwritten() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("evm.key");
        let created = create_key_file(&path).expect("create");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            load_key_file(&path).expect("load").address(),
            created.address()
        );
        assert!(matches!(
            create_key_file(&path),
            Err(KeyFileError::Exists(_))
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let e = load_key_file(&path).expect_err("too open");
        assert!(e.to_string().contains("chmod 600"), "{e}");
        let garbage = dir.path().join("garbage.key");
        std::fs::write(&garbage, "not a key").expect("write");
        std::fs::set_permissions(&garbage, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert!(matches!(
            load_key_file(&garbage),
            Err(KeyFileError::Malformed(_))
        ));
    }

    #[test]
    fn only_plain_http_urls_are_accepted() {
        assert!(parse_rpc_url("http://127.0.0.1:8545").is_ok());
        assert!(matches!(
            parse_rpc_url("https://mainnet.example"),
            Err(OperatorError::HttpsUnsupported { .. })
        ));
        assert!(matches!(
            parse_rpc_url("ws://127.0.0.1:8545"),
            Err(OperatorError::BadUrl { .. })
        ));
        assert!(matches!(
            parse_rpc_url("not a url"),
            Err(OperatorError::BadUrl { .. })
        ));
    }
}
