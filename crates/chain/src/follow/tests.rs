//! The follower on a fake chain: scripted cases and seeded random chains
//! with random reorgs (proptest), each compared with the final canonical
//! chain applied from scratch.

use alloy::primitives::{Address, B256, IntoLogData, Log, LogData, U256};
use proptest::prelude::*;

use super::state::RegistryState;
use super::*;
use crate::contract::RelayRegistry::{self, RelayRegistryEvents as E};

const CHAIN_ID: u64 = 31337;
const START: u64 = 10;

fn contract() -> Address {
    Address::repeat_byte(0xC0)
}

fn account(i: u8) -> Address {
    Address::repeat_byte(i + 1)
}

fn key(tag: u8, i: u8) -> B256 {
    let mut key = [0u8; 32];
    key[0] = tag;
    key[1] = i;
    B256::from(key)
}

fn log_of(event: &E) -> Log {
    Log {
        address: contract(),
        data: event.to_log_data(),
    }
}

/// A block on the fake chain, with the state after it (to generate valid
/// events on top of it and to check the follower against).
#[derive(Clone)]
struct FakeBlock {
    number: u64,
    hash: B256,
    parent_hash: B256,
    events: Vec<E>,
    state_after: RegistryState,
}

impl FakeBlock {
    fn chain_block(&self) -> ChainBlock {
        ChainBlock {
            number: self.number,
            hash: self.hash,
            parent_hash: self.parent_hash,
            logs: self.events.iter().map(log_of).collect(),
        }
    }
}

/// A node's canonical chain, from `START`; hashes are never reused, so a
/// replaced block always gets a new hash.
struct FakeChain {
    blocks: Vec<FakeBlock>,
    next_hash: u64,
}

impl FakeChain {
    fn new() -> FakeChain {
        FakeChain {
            blocks: Vec::new(),
            next_hash: 1,
        }
    }

    fn tip(&self) -> Option<&FakeBlock> {
        self.blocks.last()
    }

    fn at(&self, number: u64) -> Option<&FakeBlock> {
        let index = number.checked_sub(START)?;
        self.blocks.get(usize::try_from(index).ok()?)
    }

    /// Appends a block with `events` (each must apply on the tip's state).
    fn push(&mut self, events: Vec<E>) {
        let (number, parent_hash, mut state) = match self.tip() {
            Some(tip) => (tip.number + 1, tip.hash, tip.state_after.clone()),
            None => (START, B256::repeat_byte(0xEE), RegistryState::default()),
        };
        for event in &events {
            state
                .apply(number, event)
                .expect("generated events are valid");
        }
        let hash = B256::from(U256::from(self.next_hash));
        self.next_hash += 1;
        self.blocks.push(FakeBlock {
            number,
            hash,
            parent_hash,
            events,
            state_after: state,
        });
    }

    /// Drops every block above `number`.
    fn truncate_above(&mut self, number: u64) {
        let keep = number.saturating_add(1).saturating_sub(START);
        self.blocks
            .truncate(usize::try_from(keep).unwrap_or(usize::MAX));
    }
}

/// Feeds `follower` what the node has, as the driver does: always the
/// block `next_block()` names.
fn drain(follower: &mut ChainFollower, chain: &FakeChain) -> Result<(), FeedError> {
    while let Some(block) = chain.at(follower.next_block()) {
        let _: Fed = follower.feed(block.chain_block())?;
    }
    Ok(())
}

/// The follower's snapshot equals the canonical chain's state at the same
/// block, built from scratch.
fn assert_matches_scratch(follower: &ChainFollower, chain: &FakeChain) {
    let snapshot = follower.snapshot().expect("a block is confirmed");
    let block = chain
        .at(snapshot.block_number)
        .expect("confirmed block is canonical");
    assert_eq!(
        snapshot.block_hash, block.hash,
        "confirmed block is canonical"
    );
    let mut scratch = RegistryState::default();
    for number in START..=snapshot.block_number {
        let block = chain.at(number).expect("canonical");
        for event in &block.events {
            scratch
                .apply(number, event)
                .expect("canonical events apply");
        }
    }
    assert_eq!(snapshot.operators, scratch.operators);
    assert_eq!(snapshot.relays, scratch.relays);
    assert_eq!(snapshot.validator_sets, scratch.validator_sets);
    assert_eq!(snapshot.validator_candidates, scratch.validator_candidates);
    assert_eq!(snapshot.validator_leaving, scratch.validator_leaving);
}

// ---- event constructors ----

fn registered(i: u8, stake: u64) -> Vec<E> {
    let mut events = vec![E::OperatorRegistered(RelayRegistry::OperatorRegistered {
        operator: account(i),
        operatorKey: key(1, i),
        profileHash: key(2, i),
    })];
    if stake > 0 {
        events.push(staked(i, stake, stake));
    }
    events
}

fn staked(i: u8, amount: u64, stake: u64) -> E {
    E::Staked(RelayRegistry::Staked {
        account: account(i),
        amount: U256::from(amount),
        stake: U256::from(stake),
    })
}

fn relay(i: u8, r: u8, mbps: u32) -> E {
    E::RelayRegistered(RelayRegistry::RelayRegistered {
        operator: account(i),
        relayKey: key(3, r),
        role: 1 + r % 2,
        bandwidthMbps: mbps,
        descriptorHash: key(4, r),
    })
}

fn relay_removed(i: u8, r: u8) -> E {
    E::RelayRemoved(RelayRegistry::RelayRemoved {
        operator: account(i),
        relayKey: key(3, r),
    })
}

fn set_changed(epoch: u64, members: &[u8]) -> E {
    E::ValidatorSetChanged(RelayRegistry::ValidatorSetChanged {
        epoch,
        members: members.iter().map(|&m| account(100 + m)).collect(),
        keys: members.iter().map(|&m| key(5, m)).collect(),
        weights: members
            .iter()
            .map(|&m| U256::from(10 + u64::from(m)))
            .collect(),
    })
}

fn listed(snapshot: &ChainSnapshot, stake_per_mbps: u64) -> Vec<(Address, B256)> {
    snapshot
        .covered_relays(U256::from(stake_per_mbps))
        .iter()
        .map(|r| (r.relay.operator, r.relay.relay_key))
        .collect()
}

// ---- scripted ----

#[test]
fn snapshot_is_at_the_confirmed_head_and_lists_covered_relays() {
    let mut chain = FakeChain::new();
    chain.push(vec![set_changed(0, &[0, 1, 2])]);
    // Operator 0 covers 30 Mbit/s at 10 wei each; operator 1 only 5.
    let mut events = registered(0, 300);
    events.extend(registered(1, 50));
    chain.push(events);
    chain.push(vec![relay(0, 0, 10), relay(0, 1, 20), relay(1, 2, 5)]);
    let mut follower = ChainFollower::new(CHAIN_ID, contract(), START, 2);
    drain(&mut follower, &chain).expect("valid chain");
    let snapshot = follower.snapshot().expect("block 10 is confirmed");
    assert_eq!(snapshot.block_number, START, "head 12 - 2 confirmations");
    assert!(snapshot.relays.is_empty());
    assert_eq!(snapshot.current_validator_set().map(|s| s.epoch), Some(0));

    chain.push(Vec::new());
    chain.push(Vec::new());
    drain(&mut follower, &chain).expect("valid chain");
    let snapshot = follower.snapshot().expect("confirmed");
    assert_eq!(snapshot.block_number, START + 2);
    assert_eq!(
        listed(&snapshot, 10),
        vec![
            (account(0), key(3, 0)),
            (account(0), key(3, 1)),
            (account(1), key(3, 2)),
        ]
    );
    let covered = snapshot.covered_relays(U256::from(10));
    assert_eq!(covered[0].operator_key, key(1, 0));
    assert_eq!(covered[0].role, RelayRole::Ingress);
    assert_eq!(covered[1].role, RelayRole::Egress);
    assert_eq!(covered[0].operator_advertised_mbps, 30);
    // At 11 wei per Mbit/s neither operator covers its bandwidth.
    assert!(listed(&snapshot, 11).is_empty());

    // A slash leaves operator 0 short: none of its relays is listed.
    chain.push(vec![E::Slashed(RelayRegistry::Slashed {
        targetKind: 1,
        target: account(0),
        amount: U256::from(1),
        burnt: U256::from(1),
        rewarded: U256::ZERO,
        stakeLeft: U256::from(299),
        evidence: B256::ZERO,
    })]);
    chain.push(Vec::new());
    chain.push(Vec::new());
    drain(&mut follower, &chain).expect("valid chain");
    let snapshot = follower.snapshot().expect("confirmed");
    assert_eq!(listed(&snapshot, 10), vec![(account(1), key(3, 2))]);
    assert_matches_scratch(&follower, &chain);
}

#[test]
fn a_reorg_within_the_depth_replaces_a_registration() {
    let mut chain = FakeChain::new();
    chain.push(registered(0, 1_000));
    chain.push(vec![relay(0, 0, 10)]);
    let mut follower = ChainFollower::new(CHAIN_ID, contract(), START, 3);
    drain(&mut follower, &chain).expect("valid chain");

    // Block 11 is replaced: relay 0 never registered, relay 1 did.
    chain.truncate_above(START);
    chain.push(vec![relay(0, 1, 10)]);
    chain.push(Vec::new());
    chain.push(Vec::new());
    chain.push(Vec::new());
    let block = chain.at(START + 2).expect("pushed").chain_block();
    assert_eq!(
        follower.feed(block).expect("reorg"),
        Fed::Reorg {
            refetch_from: START + 1
        }
    );
    assert_eq!(follower.next_block(), START + 1);
    drain(&mut follower, &chain).expect("valid chain");
    let snapshot = follower.snapshot().expect("confirmed");
    assert_eq!(snapshot.block_number, START + 1);
    assert_eq!(listed(&snapshot, 1), vec![(account(0), key(3, 1))]);
    assert_matches_scratch(&follower, &chain);
}

#[test]
fn a_reorg_deeper_than_the_depth_is_refused() {
    let mut chain = FakeChain::new();
    for _ in 0..6 {
        chain.push(Vec::new());
    }
    let mut follower = ChainFollower::new(CHAIN_ID, contract(), START, 2);
    drain(&mut follower, &chain).expect("valid chain");
    assert_eq!(follower.confirmed().map(|c| c.number), Some(START + 3));
    let confirmed = follower.confirmed().expect("confirmed");
    // Fork below the confirmed head (block 13 replaced).
    chain.truncate_above(START + 2);
    for _ in 0..5 {
        chain.push(Vec::new());
    }
    let error = drain(&mut follower, &chain).expect_err("too deep");
    match error {
        FeedError::ReorgTooDeep {
            confirmed: held,
            confirmations,
            ..
        } => {
            assert_eq!(held, confirmed);
            assert_eq!(confirmations, 2);
        }
        other => panic!("expected ReorgTooDeep, got {other}"),
    }
    assert_eq!(
        openrelay_types::HasKind::kind(&error_again(&mut follower, &chain)),
        openrelay_types::ErrorKind::PeerMisbehaved
    );
    // With no confirmations, any reorg is too deep.
    let mut chain = FakeChain::new();
    chain.push(Vec::new());
    chain.push(Vec::new());
    let mut follower = ChainFollower::new(CHAIN_ID, contract(), START, 0);
    drain(&mut follower, &chain).expect("valid chain");
    chain.truncate_above(START);
    chain.push(Vec::new());
    chain.push(Vec::new());
    assert!(matches!(
        drain(&mut follower, &chain),
        Err(FeedError::ReorgTooDeep { .. })
    ));
}

/// The error stays: the follower refuses to go on until resynced.
fn error_again(follower: &mut ChainFollower, chain: &FakeChain) -> FeedError {
    drain(follower, chain).expect_err("still too deep")
}

#[test]
fn duplicates_are_ignored_and_out_of_order_blocks_refused() {
    let mut chain = FakeChain::new();
    chain.push(registered(0, 10));
    chain.push(vec![relay(0, 0, 1)]);
    chain.push(Vec::new());
    let mut follower = ChainFollower::new(CHAIN_ID, contract(), START, 1);
    drain(&mut follower, &chain).expect("valid chain");
    let before = follower.snapshot();
    // Held blocks, confirmed or not, again: nothing changes.
    for number in [START + 1, START + 2] {
        let block = chain.at(number).expect("pushed").chain_block();
        assert_eq!(follower.feed(block).expect("duplicate"), Fed::Duplicate);
    }
    // A block skipping ahead, one below the window with another hash, and
    // one before the start: refused.
    chain.push(Vec::new());
    chain.push(Vec::new());
    let ahead = chain.at(START + 4).expect("pushed").chain_block();
    let mut other = chain.at(START).expect("pushed").chain_block();
    other.hash = B256::repeat_byte(0x77);
    let mut before_start = other.clone();
    before_start.number = START - 1;
    for block in [ahead, other, before_start] {
        let got = block.number;
        match follower.feed(block) {
            Err(FeedError::OutOfOrder { expected, got: g }) => {
                assert_eq!((expected, g), (START + 3, got));
            }
            other => panic!("expected OutOfOrder, got {other:?}"),
        }
    }
    assert_eq!(follower.snapshot(), before);
    drain(&mut follower, &chain).expect("valid chain");
    assert_matches_scratch(&follower, &chain);
}

#[test]
fn foreign_undecodable_and_inconsistent_logs_are_refused_without_change() {
    let mut chain = FakeChain::new();
    chain.push(registered(0, 10));
    let mut follower = ChainFollower::new(CHAIN_ID, contract(), START, 0);
    drain(&mut follower, &chain).expect("valid chain");
    let before = follower.snapshot();
    chain.push(vec![relay(0, 0, 1)]);
    let good = chain.at(START + 1).expect("pushed").chain_block();

    let mut foreign = good.clone();
    foreign.logs[0].address = Address::repeat_byte(0x99);
    assert!(matches!(
        follower.feed(foreign),
        Err(FeedError::ForeignLog { index: 0, .. })
    ));

    let mut garbage = good.clone();
    garbage.logs.push(Log {
        address: contract(),
        data: LogData::new_unchecked(vec![B256::repeat_byte(1)], vec![1, 2, 3].into()),
    });
    assert!(matches!(
        follower.feed(garbage),
        Err(FeedError::UndecodableLog { index: 1, .. })
    ));

    // The relay applies, then a stake of an operator that never registered:
    // the whole block is refused, the relay with it.
    let mut inconsistent = good.clone();
    inconsistent.logs.push(log_of(&staked(7, 1, 1)));
    let error = follower.feed(inconsistent).expect_err("unknown operator");
    assert!(matches!(
        error,
        FeedError::Inconsistent {
            index: 1,
            reason: Inconsistency::UnknownOperator(_),
            ..
        }
    ));
    assert_eq!(
        openrelay_types::HasKind::kind(&error),
        openrelay_types::ErrorKind::PeerMisbehaved
    );
    assert_eq!(follower.snapshot(), before);
    assert_eq!(follower.next_block(), START + 1);

    // The real block is then taken as if nothing happened.
    assert_eq!(
        follower.feed(good).expect("valid"),
        Fed::Applied {
            confirmed_advanced: true
        }
    );
    assert_matches_scratch(&follower, &chain);
    let snapshot = follower.snapshot().expect("confirmed");
    assert_eq!(snapshot.relays.len(), 1);
}

#[test]
fn validator_sets_are_kept_since_genesis() {
    let mut chain = FakeChain::new();
    chain.push(vec![set_changed(0, &[0, 1, 2])]);
    chain.push(vec![E::ValidatorJoinRequested(
        RelayRegistry::ValidatorJoinRequested {
            validator: account(103),
            validatorKey: key(5, 3),
            stake: U256::from(13),
            readyAt: 1_000,
        },
    )]);
    chain.push(vec![E::ValidatorLeaveRequested(
        RelayRegistry::ValidatorLeaveRequested {
            validator: account(100),
            readyAt: 2_000,
        },
    )]);
    chain.push(vec![set_changed(1, &[0, 1, 2, 3])]);
    chain.push(vec![set_changed(2, &[1, 2, 3])]);
    let mut follower = ChainFollower::new(CHAIN_ID, contract(), START, 0);
    drain(&mut follower, &chain).expect("valid chain");
    let snapshot = follower.snapshot().expect("confirmed");
    let epochs: Vec<u64> = snapshot.validator_sets.iter().map(|s| s.epoch).collect();
    assert_eq!(epochs, vec![0, 1, 2]);
    let current = snapshot.current_validator_set().expect("a set");
    assert_eq!(current.block_number, START + 4);
    assert_eq!(current.members[0].account, account(101));
    assert_eq!(current.total_weight(), U256::from(11 + 12 + 13));
    assert!(snapshot.validator_candidates.is_empty(), "joined");
    assert!(snapshot.validator_leaving.is_empty(), "left");

    // An epoch that skips one is refused.
    let tip = chain.tip().expect("pushed");
    let block = ChainBlock {
        number: tip.number + 1,
        hash: B256::repeat_byte(0x55),
        parent_hash: tip.hash,
        logs: vec![log_of(&set_changed(4, &[1]))],
    };
    assert!(matches!(
        follower.feed(block),
        Err(FeedError::Inconsistent {
            reason: Inconsistency::BadValidatorSet { epoch: 4, .. },
            ..
        })
    ));
}

// ---- seeded random chains ----

/// SplitMix64: the random chains come from proptest's seed, and shrink
/// with it.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn byte_below(&mut self, n: u8) -> u8 {
        u8::try_from(self.below(u64::from(n))).unwrap_or(0)
    }
}

const OPERATORS: u8 = 4;
const RELAY_KEYS: u8 = 4;
const VALIDATORS: u8 = 5;

/// A random event the contract could emit in `state` (some events may be
/// impossible in it: then none).
fn random_event(rng: &mut Rng, state: &RegistryState) -> Option<E> {
    let i = rng.byte_below(OPERATORS);
    let operator = state.operators.get(&account(i));
    let r = rng.byte_below(RELAY_KEYS);
    let at = RelayRef {
        operator: account(i),
        relay_key: key(3, r),
    };
    let amount = rng.below(50);
    Some(match (rng.below(12), operator) {
        (0, None) => return registered(i, 0).pop(),
        (1, Some(o)) => {
            let stake = o.stake.to::<u64>() + amount;
            staked(i, amount, stake)
        }
        (2, Some(o)) => {
            let left = o.stake.to::<u64>().saturating_sub(amount);
            E::UnstakeRequested(RelayRegistry::UnstakeRequested {
                account: account(i),
                amount: o.stake - U256::from(left),
                stake: U256::from(left),
                readyAt: 5,
            })
        }
        (3 | 4, Some(_)) if !state.relays.contains_key(&at) => {
            relay(i, r, 1 + rng.below(20) as u32)
        }
        (5, Some(_)) if state.relays.contains_key(&at) => {
            E::RelayUpdated(RelayRegistry::RelayUpdated {
                operator: account(i),
                relayKey: key(3, r),
                bandwidthMbps: 1 + rng.below(20) as u32,
                descriptorHash: B256::from(U256::from(rng.next())),
            })
        }
        (6, Some(_)) if state.relays.contains_key(&at) => relay_removed(i, r),
        (7, Some(_)) => E::ProfileUpdated(RelayRegistry::ProfileUpdated {
            operator: account(i),
            profileHash: B256::from(U256::from(rng.next())),
        }),
        (8, _) => {
            let epoch = state.validator_sets.last().map_or(0, |s| s.epoch + 1);
            let members: Vec<u8> = (0..VALIDATORS).filter(|_| rng.below(2) == 0).collect();
            set_changed(epoch, &members)
        }
        (9, _) => E::ValidatorJoinRequested(RelayRegistry::ValidatorJoinRequested {
            validator: account(100 + rng.byte_below(VALIDATORS)),
            validatorKey: key(5, r),
            stake: U256::from(amount),
            readyAt: rng.below(100),
        }),
        (10, _) => E::ValidatorLeaveRequested(RelayRegistry::ValidatorLeaveRequested {
            validator: account(100 + rng.byte_below(VALIDATORS)),
            readyAt: rng.below(100),
        }),
        (11, _) => {
            let target_kind = 1 + rng.byte_below(2);
            let target = if target_kind == 1 {
                account(i)
            } else {
                account(100 + rng.byte_below(VALIDATORS))
            };
            E::Slashed(RelayRegistry::Slashed {
                targetKind: target_kind,
                target,
                amount: U256::from(amount),
                burnt: U256::ZERO,
                rewarded: U256::ZERO,
                stakeLeft: U256::from(rng.below(100)),
                evidence: B256::ZERO,
            })
        }
        _ => return None,
    })
}

fn push_random_block(rng: &mut Rng, chain: &mut FakeChain) {
    let mut state = chain
        .tip()
        .map(|tip| tip.state_after.clone())
        .unwrap_or_default();
    let number = chain.tip().map_or(START, |tip| tip.number + 1);
    let mut events = Vec::new();
    for _ in 0..rng.below(4) {
        if let Some(event) = random_event(rng, &state) {
            state.apply(number, &event).expect("valid in state");
            events.push(event);
        }
    }
    chain.push(events);
}

/// Grows a random chain while the follower follows it with random lag;
/// the node reorganises at random, never below the follower's confirmed
/// head; at the end the follower's snapshot is the final chain's state.
fn follow_random_chain(seed: u64, confirmations: u64) {
    let mut rng = Rng(seed);
    let mut chain = FakeChain::new();
    let mut follower = ChainFollower::new(CHAIN_ID, contract(), START, confirmations);
    for _ in 0..40 {
        match rng.below(4) {
            0 => {
                // Reorg: replace the blocks above a fork point the follower
                // can undo (at or above its confirmed head).
                let lowest = follower
                    .confirmed()
                    .map_or(START - 1, |c| c.number)
                    .max(START - 1);
                let tip = chain.tip().map_or(START - 1, |t| t.number);
                if tip > lowest {
                    let fork = lowest + rng.below(tip - lowest);
                    chain.truncate_above(fork);
                }
                for _ in 0..=rng.below(4) {
                    push_random_block(&mut rng, &mut chain);
                }
            }
            1 => {
                // The follower catches up with part of the chain.
                for _ in 0..rng.below(5) {
                    let Some(block) = chain.at(follower.next_block()) else {
                        break;
                    };
                    let _: Fed = follower
                        .feed(block.chain_block())
                        .expect("reorgs within depth");
                }
            }
            _ => push_random_block(&mut rng, &mut chain),
        }
    }
    // Enough blocks on top that the whole chain's head is past the depth.
    for _ in 0..=confirmations {
        push_random_block(&mut rng, &mut chain);
    }
    drain(&mut follower, &chain).expect("reorgs within depth");
    assert_eq!(
        follower.head().map(|h| h.hash),
        chain.tip().map(|t| t.hash),
        "follower at the node's head"
    );
    assert_matches_scratch(&follower, &chain);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3_000))]

    #[test]
    fn random_chains_with_reorgs_end_in_the_canonical_state(
        seed in any::<u64>(),
        confirmations in 0u64..6,
    ) {
        follow_random_chain(seed, confirmations);
    }

    /// Arbitrary logs from the node: a typed error or a state, never a
    /// panic; a refused block changes nothing.
    #[test]
    fn arbitrary_logs_never_panic(
        logs in proptest::collection::vec(
            (
                proptest::collection::vec(any::<[u8; 32]>(), 0..5),
                proptest::collection::vec(any::<u8>(), 0..200),
                any::<bool>(),
            ),
            0..6,
        ),
    ) {
        let mut follower = ChainFollower::new(CHAIN_ID, contract(), START, 0);
        let logs = logs
            .into_iter()
            .map(|(topics, data, ours)| Log {
                address: if ours { contract() } else { Address::ZERO },
                data: LogData::new_unchecked(topics.into_iter().map(B256::from).collect(), data.into()),
            })
            .collect();
        let block = ChainBlock { number: START, hash: B256::repeat_byte(1), parent_hash: B256::ZERO, logs };
        if follower.feed(block).is_err() {
            prop_assert_eq!(follower.snapshot(), None);
            prop_assert_eq!(follower.next_block(), START);
        }
    }
}
