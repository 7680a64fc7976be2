//! What a validator does on the registry contract: join the set with its
//! stake, take a join back, leave, approve set changes, and read where the
//! set and its pending changes stand.

use alloy::eips::BlockNumberOrTag;
use alloy::primitives::{Address, B256, FixedBytes, U256};
use alloy::providers::Provider;

use super::{OperatorError, Refusal, Registry, Sent};
use crate::contract::RelayRegistry;

/// One validator account as the contract holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatorEntry {
    /// The account.
    pub account: Address,
    /// Its Ed25519 validator key (the bytes of `openrelay validator
    /// --print-key`).
    pub key: [u8; 32],
    /// Its bonded stake (wei).
    pub stake: U256,
    /// Its quorum weight in the current set (its stake when the set was
    /// formed; zero while only asking to join).
    pub weight: U256,
    /// Whether it is in the current set.
    pub active: bool,
    /// While it asks to join: from when (unix time) a set change may
    /// include it.
    pub join_ready_at: Option<u64>,
    /// While it asks to leave: from when a set change may remove it.
    pub leave_ready_at: Option<u64>,
}

/// Approvals of one set change from the current epoch that has not
/// applied yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingApproval {
    /// The change id (`setChangeId(epoch, joins, leaves)`).
    pub change_id: B256,
    /// The members that approved it.
    pub approvers: Vec<Address>,
    /// Their weight.
    pub weight: U256,
}

/// The validator set on the chain, seen from one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatorStatus {
    /// The account asking.
    pub account: Address,
    /// Its own entry, if it is a member or asks to join.
    pub own: Option<ValidatorEntry>,
    /// The chain's time (the latest block's timestamp), against which the
    /// `ready_at` times count.
    pub now: u64,
    /// The current set's epoch (0 = genesis).
    pub epoch: u64,
    /// The current set, in the contract's order.
    pub set: Vec<ValidatorEntry>,
    /// The set's total weight.
    pub active_weight: U256,
    /// The weight a change needs: `quorumBps` of `active_weight`.
    pub quorum_weight: U256,
    /// Accounts asking to join.
    pub pending_joins: Vec<ValidatorEntry>,
    /// Changes of this epoch approved by some members but not yet applied.
    pub approvals: Vec<PendingApproval>,
}

/// The outcome of an approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetChangeApproval {
    /// The transaction.
    pub sent: Sent,
    /// The change id.
    pub change_id: B256,
    /// The weight approving it so far (this approval included).
    pub approved_weight: U256,
    /// The weight it needs.
    pub quorum_weight: U256,
    /// Whether this approval reached the quorum and applied the change
    /// (the set is then at the next epoch).
    pub applied: bool,
}

/// Why a set change cannot apply now (the contract says only
/// `BadSetChange`; this names the account and the time).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SetChangeProblem {
    /// Neither joins nor leaves.
    #[error("the set change names no join and no leave")]
    Empty,
    /// An account is named twice.
    #[error("{0} is named twice in the set change")]
    Twice(Address),
    /// A join names an account that has not asked to join.
    #[error("{0} has not asked to join the validator set")]
    NotJoining(Address),
    /// A join before its delay.
    #[error("{account} may join from unix time {ready_at} on (chain time now {now})")]
    JoinNotReady {
        /// The account.
        account: Address,
        /// When it may.
        ready_at: u64,
        /// The chain's time.
        now: u64,
    },
    /// A join whose stake a slash left below the minimum.
    #[error("{0}'s stake is below the validator minimum")]
    JoinBelowMinimum(Address),
    /// A leave names an account outside the set.
    #[error("{0} is not in the current validator set")]
    NotMember(Address),
    /// A leave names a member that has not asked to leave (and still meets
    /// the minimum stake).
    #[error("{0} has not asked to leave the validator set")]
    NotLeaving(Address),
    /// A leave before its delay.
    #[error("{account} may leave from unix time {ready_at} on (chain time now {now})")]
    LeaveNotReady {
        /// The account.
        account: Address,
        /// When it may.
        ready_at: u64,
        /// The chain's time.
        now: u64,
    },
}

impl Registry {
    /// Asks to join the validator set with Ed25519 key `validator_key`,
    /// staking `stake`.
    pub async fn validator_join(
        &self,
        validator_key: [u8; 32],
        stake: U256,
    ) -> Result<Sent, OperatorError> {
        let call = self
            .contract
            .requestJoin(FixedBytes(validator_key))
            .value(stake);
        self.submit(call).await
    }

    /// Takes back a join request no set change has applied; its stake
    /// unbonds (`withdraw` pays it after the unbonding delay).
    pub async fn validator_withdraw_join(&self) -> Result<Sent, OperatorError> {
        self.submit(self.contract.withdrawJoin()).await
    }

    /// Asks to leave the validator set.
    pub async fn validator_leave(&self) -> Result<Sent, OperatorError> {
        self.submit(self.contract.requestLeave()).await
    }

    /// Approves, as a member of the current set, the change from `epoch`
    /// that adds `joins` and removes `leaves`. A change the contract
    /// refuses as not applicable is explained
    /// ([`OperatorError::SetChange`]).
    pub async fn approve_set_change(
        &self,
        epoch: u64,
        joins: Vec<Address>,
        leaves: Vec<Address>,
    ) -> Result<SetChangeApproval, OperatorError> {
        let change_id = self
            .read(
                self.contract
                    .setChangeId(epoch, joins.clone(), leaves.clone())
                    .call(),
            )
            .await?;
        // The weights of the set approving, read before the change may
        // replace it.
        let quorum_weight = self.quorum_weight().await?;
        let call = self
            .contract
            .approveSetChange(epoch, joins.clone(), leaves.clone());
        let receipt = match self.submit_approval_for_receipt(call).await {
            Err(OperatorError::Refused(Refusal::BadSetChange)) => {
                return Err(match self.set_change_problem(&joins, &leaves).await? {
                    Some(problem) => OperatorError::SetChange(problem),
                    None => OperatorError::Refused(Refusal::BadSetChange),
                });
            }
            other => other?,
        };
        let applied = receipt
            .decoded_log::<RelayRegistry::ValidatorSetChanged>()
            .is_some();
        let approved_weight = self
            .read(self.contract.setChangeWeight(change_id).call())
            .await?;
        Ok(SetChangeApproval {
            sent: Sent::from_receipt(&receipt),
            change_id,
            approved_weight,
            quorum_weight,
            applied,
        })
    }

    /// The validator set, this account's place in it, the join requests
    /// and the approvals of the current epoch; events are read from block
    /// `from_block` (the deployment block; `None`: found on the chain).
    pub async fn validator_status(
        &self,
        from_block: Option<u64>,
    ) -> Result<ValidatorStatus, OperatorError> {
        let from_block = Some(match from_block {
            Some(block) => block,
            None => self.deployment_block().await?,
        });
        let now = self.chain_time().await?;
        let epoch = self.read(self.contract.validatorEpoch().call()).await?;
        let active_weight = self.read(self.contract.activeWeight().call()).await?;
        let members = self.read(self.contract.activeSet().call()).await?;
        let mut set = Vec::with_capacity(members.len());
        for account in members {
            set.extend(self.validator(account).await?);
        }
        let own = self.validator(self.account).await?;

        let requested = self
            .events(self.contract.ValidatorJoinRequested_filter(), from_block)
            .await?;
        let mut joining: Vec<Address> = requested.iter().map(|e| e.validator).collect();
        joining.sort();
        joining.dedup();
        let mut pending_joins = Vec::new();
        for account in joining {
            if let Some(entry) = self.validator(account).await?
                && entry.join_ready_at.is_some()
            {
                pending_joins.push(entry);
            }
        }

        let approved = self
            .events(
                self.contract
                    .SetChangeApproved_filter()
                    .topic1(U256::from(epoch)),
                from_block,
            )
            .await?;
        let mut approvals: Vec<PendingApproval> = Vec::new();
        for event in approved {
            match approvals.iter_mut().find(|a| a.change_id == event.proposal) {
                Some(approval) => {
                    approval.approvers.push(event.validator);
                    approval.weight += event.weight;
                }
                None => approvals.push(PendingApproval {
                    change_id: event.proposal,
                    approvers: vec![event.validator],
                    weight: event.weight,
                }),
            }
        }
        Ok(ValidatorStatus {
            account: self.account,
            own,
            now,
            epoch,
            set,
            quorum_weight: self.quorum_of(active_weight),
            active_weight,
            pending_joins,
            approvals,
        })
    }

    /// `account`'s entry, if it is a member or asks to join.
    async fn validator(&self, account: Address) -> Result<Option<ValidatorEntry>, OperatorError> {
        let v = self.read(self.contract.validators(account).call()).await?;
        if !v.active && !v.pending {
            return Ok(None);
        }
        Ok(Some(ValidatorEntry {
            account,
            key: v.validatorKey.0,
            stake: v.stake,
            weight: v.weight,
            active: v.active,
            join_ready_at: v.pending.then_some(v.joinReadyAt),
            leave_ready_at: v.leaving.then_some(v.leaveReadyAt),
        }))
    }

    async fn quorum_weight(&self) -> Result<U256, OperatorError> {
        let active_weight = self.read(self.contract.activeWeight().call()).await?;
        Ok(self.quorum_of(active_weight))
    }

    /// The least weight `w` with `w * 10000 >= active_weight * quorumBps`
    /// (the contract's `_quorum`).
    fn quorum_of(&self, active_weight: U256) -> U256 {
        let bps = U256::from(crate::deploy::BPS);
        active_weight
            .saturating_mul(U256::from(self.params.quorum_bps))
            .div_ceil(bps)
    }

    /// The latest block's timestamp.
    pub(crate) async fn chain_time(&self) -> Result<u64, OperatorError> {
        let provider = self.contract.provider().clone();
        let block = self
            .bounded(provider.get_block_by_number(BlockNumberOrTag::Latest))
            .await?
            .map_err(|e| self.unreachable(e))?;
        Ok(block.map(|b| b.header.timestamp).unwrap_or_default())
    }

    /// What makes a change the contract refused as `BadSetChange` not
    /// applicable, read from the chain (the contract's `_checkSetChange`).
    async fn set_change_problem(
        &self,
        joins: &[Address],
        leaves: &[Address],
    ) -> Result<Option<SetChangeProblem>, OperatorError> {
        if joins.is_empty() && leaves.is_empty() {
            return Ok(Some(SetChangeProblem::Empty));
        }
        let mut seen: Vec<Address> = Vec::new();
        for account in leaves.iter().chain(joins) {
            if seen.contains(account) {
                return Ok(Some(SetChangeProblem::Twice(*account)));
            }
            seen.push(*account);
        }
        let now = self.chain_time().await?;
        let minimum = self.params.min_validator_stake;
        let meets_minimum = |stake: U256| stake >= minimum && !stake.is_zero();
        for &account in leaves {
            let v = self.read(self.contract.validators(account).call()).await?;
            if !v.active {
                return Ok(Some(SetChangeProblem::NotMember(account)));
            }
            if meets_minimum(v.stake) {
                if !v.leaving {
                    return Ok(Some(SetChangeProblem::NotLeaving(account)));
                }
                if now < v.leaveReadyAt {
                    return Ok(Some(SetChangeProblem::LeaveNotReady {
                        account,
                        ready_at: v.leaveReadyAt,
                        now,
                    }));
                }
            }
        }
        for &account in joins {
            let v = self.read(self.contract.validators(account).call()).await?;
            if !v.pending {
                return Ok(Some(SetChangeProblem::NotJoining(account)));
            }
            // The contract compares against the next block's time, which is
            // at least this one's.
            if now < v.joinReadyAt {
                return Ok(Some(SetChangeProblem::JoinNotReady {
                    account,
                    ready_at: v.joinReadyAt,
                    now,
                }));
            }
            if !meets_minimum(v.stake) {
                return Ok(Some(SetChangeProblem::JoinBelowMinimum(account)));
            }
        }
        Ok(None)
    }
}
