//! `ChainSnapshot`: the registry's state at a confirmed block.

use std::collections::BTreeMap;

use alloy::primitives::{Address, B256, U256};

use super::state::{
    OperatorState, RelayRef, RelayRole, RelayState, ValidatorCandidate, ValidatorSet,
};

/// The registry contract's state at a confirmed block, as its events built
/// it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainSnapshot {
    /// The chain's id.
    pub chain_id: u64,
    /// The registry contract's address.
    pub contract: Address,
    /// The block it reflects.
    pub block_number: u64,
    /// That block's hash.
    pub block_hash: B256,
    /// Operators by account.
    pub operators: BTreeMap<Address, OperatorState>,
    /// Relays by operator account and relay key.
    pub relays: BTreeMap<RelayRef, RelayState>,
    /// Every validator set since genesis, oldest first (epoch `i` at
    /// index `i`); the last is the current one.
    pub validator_sets: Vec<ValidatorSet>,
    /// Join requests no set change has applied yet.
    pub validator_candidates: BTreeMap<Address, ValidatorCandidate>,
    /// Members of the current set that asked to leave, with the time
    /// (unix seconds, chain time) a set change may remove them.
    pub validator_leaving: BTreeMap<Address, u64>,
}

/// A relay a directory may list: registered, and its operator's stake
/// covers all its operator's advertised bandwidth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoveredRelay {
    /// Where it is stored (operator account, relay key).
    pub relay: RelayRef,
    /// Its operator's Ed25519 key: the key its descriptor must name.
    pub operator_key: B256,
    /// Ingress or egress.
    pub role: RelayRole,
    /// Advertised bandwidth, Mbit/s.
    pub bandwidth_mbps: u32,
    /// The commitment its descriptor's `content_hash()` must equal.
    pub descriptor_hash: B256,
    /// Its operator's bonded stake, wei.
    pub operator_stake: U256,
    /// All its operator's relays' advertised bandwidth, Mbit/s.
    pub operator_advertised_mbps: u64,
}

impl ChainSnapshot {
    /// The current validator set (`None` only before the genesis set's
    /// event, i.e. following from before the deployment block).
    pub fn current_validator_set(&self) -> Option<&ValidatorSet> {
        self.validator_sets.last()
    }

    /// Whether `operator`'s stake covers its advertised bandwidth at
    /// `stake_per_mbps` wei per Mbit/s (the contract's `isCovered`; false
    /// for an account that is no operator).
    pub fn is_covered(&self, operator: Address, stake_per_mbps: U256) -> bool {
        self.operators
            .get(&operator)
            .is_some_and(|o| o.is_covered(stake_per_mbps))
    }

    /// The relays registered and covered, with `stake_per_mbps` the
    /// contract's `params().stakePerMbps`, in `RelayRef` order.
    pub fn covered_relays(&self, stake_per_mbps: U256) -> Vec<CoveredRelay> {
        // Relays are ordered by operator: look each operator up once.
        let mut operator: Option<(Address, Option<&OperatorState>)> = None;
        let mut covered = Vec::new();
        for (at, relay) in &self.relays {
            let held = match operator {
                Some((account, held)) if account == at.operator => held,
                _ => {
                    let held = self
                        .operators
                        .get(&at.operator)
                        .filter(|o| o.is_covered(stake_per_mbps));
                    operator = Some((at.operator, held));
                    held
                }
            };
            if let Some(o) = held {
                covered.push(CoveredRelay {
                    relay: *at,
                    operator_key: o.operator_key,
                    role: relay.role,
                    bandwidth_mbps: relay.bandwidth_mbps,
                    descriptor_hash: relay.descriptor_hash,
                    operator_stake: o.stake,
                    operator_advertised_mbps: o.advertised_mbps,
                });
            }
        }
        covered
    }
}
