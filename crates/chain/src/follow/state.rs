//! The registry's state as the contract's events build it, and how one
//! event changes it.

use std::collections::BTreeMap;

use alloy::primitives::{Address, B256, U256};
pub use openrelay_types::RelayRole;

use crate::contract::RelayRegistry::{self, RelayRegistryEvents};

/// The contract's `TARGET_OPERATOR` (a `Slashed` event's `targetKind`).
const TARGET_OPERATOR: u8 = 1;
/// The contract's `TARGET_VALIDATOR`.
const TARGET_VALIDATOR: u8 = 2;

/// An operator account as the chain holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorState {
    /// Its Ed25519 operator key (the 32 public-key bytes of an
    /// `OperatorId`).
    pub operator_key: B256,
    /// The hash of its signed profile.
    pub profile_hash: B256,
    /// Its bonded stake in wei (not counting what is unbonding).
    pub stake: U256,
    /// The sum of its relays' advertised bandwidth, Mbit/s.
    pub advertised_mbps: u64,
    /// How many relays it has registered.
    pub relay_count: u32,
}

impl OperatorState {
    /// Whether its stake covers its relays' advertised bandwidth at
    /// `stake_per_mbps` wei per Mbit/s (the contract's `isCovered`).
    pub fn is_covered(&self, stake_per_mbps: U256) -> bool {
        // The contract reverts on overflow, so a product past U256::MAX
        // is a requirement no stake meets.
        match stake_per_mbps.checked_mul(U256::from(self.advertised_mbps)) {
            Some(required) => self.stake >= required,
            None => false,
        }
    }
}

/// Where a relay is stored: its operator's account and its key (the
/// contract's `relayId(operator, relayKey)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelayRef {
    /// The operator account that registered it.
    pub operator: Address,
    /// Its Ed25519 relay key (the bytes of a `RelayId`).
    pub relay_key: B256,
}

impl RelayRef {
    /// The relay `relay_key` of `operator`.
    pub fn new(operator: Address, relay_key: B256) -> RelayRef {
        RelayRef {
            operator,
            relay_key,
        }
    }
}

/// A relay as the chain holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayState {
    /// Ingress or egress.
    pub role: RelayRole,
    /// Advertised bandwidth, Mbit/s.
    pub bandwidth_mbps: u32,
    /// The commitment to its descriptor's content
    /// (`RelayDescriptor::content_hash()`).
    pub descriptor_hash: B256,
}

/// One member of a validator set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatorMember {
    /// Its account.
    pub account: Address,
    /// Its Ed25519 validator key.
    pub key: B256,
    /// Its quorum weight in this set (its stake when the set was formed).
    pub weight: U256,
}

/// A validator set, as a `ValidatorSetChanged` event announced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatorSet {
    /// Its epoch: 0 for the genesis set, then one more per change.
    pub epoch: u64,
    /// The block whose event announced it.
    pub block_number: u64,
    /// Its members in the contract's order (part of what clients check).
    pub members: Vec<ValidatorMember>,
}

impl ValidatorSet {
    /// The sum of its members' weights.
    pub fn total_weight(&self) -> U256 {
        self.members
            .iter()
            .fold(U256::ZERO, |sum, member| sum.saturating_add(member.weight))
    }
}

/// A request to join the validator set that no set change has applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatorCandidate {
    /// Its Ed25519 validator key.
    pub key: B256,
    /// Its stake in wei (less any slash since).
    pub stake: U256,
    /// When a set change may include it (unix seconds, chain time).
    pub ready_at: u64,
}

/// An event the contract cannot have emitted from the state before it: the
/// node serves logs of another contract or left some out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Inconsistency {
    /// `OperatorRegistered` for an account already registered.
    #[error("operator {0} registered twice")]
    OperatorExists(Address),
    /// An operator event for an account that never registered.
    #[error("operator {0} is not registered")]
    UnknownOperator(Address),
    /// `RelayRegistered` for a relay already registered.
    #[error("relay {} of {} registered twice", .0.relay_key, .0.operator)]
    RelayExists(RelayRef),
    /// `RelayUpdated` or `RelayRemoved` for a relay not registered.
    #[error("relay {} of {} is not registered", .0.relay_key, .0.operator)]
    UnknownRelay(RelayRef),
    /// A relay role other than 1 or 2.
    #[error("relay role {0} is neither ingress (1) nor egress (2)")]
    BadRole(u8),
    /// An operator's advertised bandwidth beyond what the contract can
    /// hold, or below zero.
    #[error("operator {0}'s advertised bandwidth out of range")]
    BandwidthOutOfRange(Address),
    /// A `ValidatorSetChanged` whose epoch does not follow the last one,
    /// or whose lists differ in length.
    #[error("validator set of epoch {epoch} does not follow epoch {last:?} or is malformed")]
    BadValidatorSet {
        /// The epoch it announces.
        epoch: u64,
        /// The last epoch held.
        last: Option<u64>,
    },
    /// A `Slashed` event with a target kind other than 1 or 2.
    #[error("slash target kind {0} unknown")]
    BadSlashTarget(u8),
}

/// Everything the follower learns from the contract's events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RegistryState {
    pub(crate) operators: BTreeMap<Address, OperatorState>,
    pub(crate) relays: BTreeMap<RelayRef, RelayState>,
    pub(crate) validator_sets: Vec<ValidatorSet>,
    pub(crate) validator_candidates: BTreeMap<Address, ValidatorCandidate>,
    pub(crate) validator_leaving: BTreeMap<Address, u64>,
}

/// The events that change the registry's state: what the follower asks
/// the node for. Measurement reports are left out: a reveal carries up to
/// about 1 MiB, and one per validator per epoch would otherwise reach every
/// poll.
pub(crate) fn state_events() -> Vec<B256> {
    use RelayRegistry as R;
    use alloy::sol_types::SolEvent;
    vec![
        R::OperatorRegistered::SIGNATURE_HASH,
        R::ProfileUpdated::SIGNATURE_HASH,
        R::Staked::SIGNATURE_HASH,
        R::UnstakeRequested::SIGNATURE_HASH,
        R::Withdrawn::SIGNATURE_HASH,
        R::RelayRegistered::SIGNATURE_HASH,
        R::RelayUpdated::SIGNATURE_HASH,
        R::RelayRemoved::SIGNATURE_HASH,
        R::ValidatorJoinRequested::SIGNATURE_HASH,
        R::ValidatorLeaveRequested::SIGNATURE_HASH,
        R::JoinWithdrawn::SIGNATURE_HASH,
        R::SetChangeApproved::SIGNATURE_HASH,
        R::ValidatorSetChanged::SIGNATURE_HASH,
        R::SlashApproved::SIGNATURE_HASH,
        R::Slashed::SIGNATURE_HASH,
    ]
}

impl RegistryState {
    /// Applies one event of block `block_number`. On an error the state
    /// is unchanged by this event (every check comes before any change).
    pub(crate) fn apply(
        &mut self,
        block_number: u64,
        event: &RelayRegistryEvents,
    ) -> Result<(), Inconsistency> {
        use RelayRegistryEvents as E;
        match event {
            E::OperatorRegistered(e) => {
                if self.operators.contains_key(&e.operator) {
                    return Err(Inconsistency::OperatorExists(e.operator));
                }
                self.operators.insert(
                    e.operator,
                    OperatorState {
                        operator_key: e.operatorKey,
                        profile_hash: e.profileHash,
                        stake: U256::ZERO,
                        advertised_mbps: 0,
                        relay_count: 0,
                    },
                );
            }
            E::ProfileUpdated(e) => self.operator_mut(e.operator)?.profile_hash = e.profileHash,
            E::Staked(e) => self.operator_mut(e.account)?.stake = e.stake,
            E::UnstakeRequested(e) => self.operator_mut(e.account)?.stake = e.stake,
            E::RelayRegistered(e) => self.register_relay(e)?,
            E::RelayUpdated(e) => {
                let at = RelayRef::new(e.operator, e.relayKey);
                let old = self.relay(at)?.bandwidth_mbps;
                let operator = self.operator_mut(e.operator)?;
                let advertised = operator
                    .advertised_mbps
                    .checked_sub(u64::from(old))
                    .and_then(|rest| rest.checked_add(u64::from(e.bandwidthMbps)))
                    .ok_or(Inconsistency::BandwidthOutOfRange(e.operator))?;
                operator.advertised_mbps = advertised;
                if let Some(relay) = self.relays.get_mut(&at) {
                    relay.bandwidth_mbps = e.bandwidthMbps;
                    relay.descriptor_hash = e.descriptorHash;
                }
            }
            E::RelayRemoved(e) => {
                let at = RelayRef::new(e.operator, e.relayKey);
                let bandwidth = self.relay(at)?.bandwidth_mbps;
                let operator = self.operator_mut(e.operator)?;
                let (Some(advertised), Some(count)) = (
                    operator.advertised_mbps.checked_sub(u64::from(bandwidth)),
                    operator.relay_count.checked_sub(1),
                ) else {
                    return Err(Inconsistency::BandwidthOutOfRange(e.operator));
                };
                operator.advertised_mbps = advertised;
                operator.relay_count = count;
                self.relays.remove(&at);
            }
            E::ValidatorJoinRequested(e) => {
                self.validator_candidates.insert(
                    e.validator,
                    ValidatorCandidate {
                        key: e.validatorKey,
                        stake: e.stake,
                        ready_at: e.readyAt,
                    },
                );
            }
            E::JoinWithdrawn(e) => {
                self.validator_candidates.remove(&e.validator);
            }
            E::ValidatorLeaveRequested(e) => {
                self.validator_leaving.insert(e.validator, e.readyAt);
            }
            E::ValidatorSetChanged(e) => self.change_validator_set(block_number, e)?,
            E::Slashed(e) => match e.targetKind {
                TARGET_OPERATOR => {
                    // The contract slashes any account (an unregistered one
                    // only loses unbonding stake): only operators' bonded
                    // stake is followed.
                    if let Some(operator) = self.operators.get_mut(&e.target) {
                        operator.stake = e.stakeLeft;
                    }
                }
                TARGET_VALIDATOR => {
                    // A member's weight is fixed for its set; a candidate's
                    // stake is what a set change will weigh it with.
                    if let Some(candidate) = self.validator_candidates.get_mut(&e.target) {
                        candidate.stake = e.stakeLeft;
                    }
                }
                other => return Err(Inconsistency::BadSlashTarget(other)),
            },
            // Withdrawals, approvals: no state the registry lists.
            // Reports are read per measurement epoch (`crate::measure`); the
            // follower does not even fetch them (`STATE_EVENTS`).
            E::Withdrawn(_)
            | E::SetChangeApproved(_)
            | E::SlashApproved(_)
            | E::ReportCommitted(_)
            | E::ReportRevealed(_) => {}
        }
        Ok(())
    }

    fn operator_mut(&mut self, account: Address) -> Result<&mut OperatorState, Inconsistency> {
        self.operators
            .get_mut(&account)
            .ok_or(Inconsistency::UnknownOperator(account))
    }

    fn relay(&self, at: RelayRef) -> Result<&RelayState, Inconsistency> {
        self.relays.get(&at).ok_or(Inconsistency::UnknownRelay(at))
    }

    fn register_relay(&mut self, e: &RelayRegistry::RelayRegistered) -> Result<(), Inconsistency> {
        let at = RelayRef::new(e.operator, e.relayKey);
        let role = crate::contract::role_from_code(e.role).ok_or(Inconsistency::BadRole(e.role))?;
        if self.relays.contains_key(&at) {
            return Err(Inconsistency::RelayExists(at));
        }
        let operator = self.operator_mut(e.operator)?;
        let (Some(advertised), Some(count)) = (
            operator
                .advertised_mbps
                .checked_add(u64::from(e.bandwidthMbps)),
            operator.relay_count.checked_add(1),
        ) else {
            return Err(Inconsistency::BandwidthOutOfRange(e.operator));
        };
        operator.advertised_mbps = advertised;
        operator.relay_count = count;
        self.relays.insert(
            at,
            RelayState {
                role,
                bandwidth_mbps: e.bandwidthMbps,
                descriptor_hash: e.descriptorHash,
            },
        );
        Ok(())
    }

    fn change_validator_set(
        &mut self,
        block_number: u64,
        e: &RelayRegistry::ValidatorSetChanged,
    ) -> Result<(), Inconsistency> {
        let last = self.validator_sets.last().map(|set| set.epoch);
        let follows = match last {
            None => e.epoch == 0,
            Some(last) => last.checked_add(1) == Some(e.epoch),
        };
        if !follows || e.members.len() != e.keys.len() || e.members.len() != e.weights.len() {
            return Err(Inconsistency::BadValidatorSet {
                epoch: e.epoch,
                last,
            });
        }
        let members: Vec<ValidatorMember> = e
            .members
            .iter()
            .zip(&e.keys)
            .zip(&e.weights)
            .map(|((account, key), weight)| ValidatorMember {
                account: *account,
                key: *key,
                weight: *weight,
            })
            .collect();
        for member in &members {
            self.validator_candidates.remove(&member.account);
        }
        self.validator_leaving
            .retain(|account, _| members.iter().any(|member| member.account == *account));
        self.validator_sets.push(ValidatorSet {
            epoch: e.epoch,
            block_number,
            members,
        });
        Ok(())
    }
}
