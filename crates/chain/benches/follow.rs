//! The chain follower at 100,000 relays (1,000 operators of 100 relays):
//! a block of registry events on top of it, a reorg (the head state
//! rebuilt from the confirmed state), a snapshot and the covered-relay
//! listing, so the choice of a confirmed state plus a window of decoded
//! blocks (not undo records nor per-block snapshots) is measured.
//!
//! Run with `cargo bench -p openrelay-chain --bench follow`.

#![expect(
    missing_docs,
    reason = "criterion_group! generates an undocumented `pub fn`"
)]

use std::hint::black_box;
use std::time::Duration;

use alloy::primitives::{Address, B256, IntoLogData, Log, U256};
use criterion::{Criterion, criterion_group, criterion_main};
use openrelay_chain::contract::RelayRegistry::{self, RelayRegistryEvents as E};
use openrelay_chain::follow::{ChainBlock, ChainFollower, Fed};

const OPERATORS: u32 = 1_000;
const RELAYS_PER_OPERATOR: u32 = 100;
const CONFIRMATIONS: u64 = 12;

fn contract() -> Address {
    Address::repeat_byte(0xC0)
}

fn word(tag: u8, i: u32) -> B256 {
    let mut word = [0u8; 32];
    word[0] = tag;
    word[28..].copy_from_slice(&i.to_be_bytes());
    B256::from(word)
}

fn operator(i: u32) -> Address {
    Address::from_word(word(1, i))
}

fn log(event: E) -> Log {
    Log {
        address: contract(),
        data: event.to_log_data(),
    }
}

/// The events registering operator `i` with stake for all its relays, and
/// its relays.
fn operator_events(i: u32) -> Vec<Log> {
    let mut logs = vec![
        log(E::OperatorRegistered(RelayRegistry::OperatorRegistered {
            operator: operator(i),
            operatorKey: word(2, i),
            profileHash: word(3, i),
        })),
        log(E::Staked(RelayRegistry::Staked {
            account: operator(i),
            amount: U256::from(1_000_000u64),
            stake: U256::from(1_000_000u64),
        })),
    ];
    for r in 0..RELAYS_PER_OPERATOR {
        logs.push(log(E::RelayRegistered(RelayRegistry::RelayRegistered {
            operator: operator(i),
            relayKey: word(4, i * RELAYS_PER_OPERATOR + r),
            role: 1 + (r % 2) as u8,
            bandwidthMbps: 100,
            descriptorHash: word(5, r),
        })));
    }
    logs
}

fn block(number: u64, logs: Vec<Log>) -> ChainBlock {
    ChainBlock {
        number,
        hash: B256::from(U256::from(number)),
        parent_hash: B256::from(U256::from(number.wrapping_sub(1))),
        logs,
    }
}

/// A follower holding 100,000 confirmed relays and a full window of empty
/// blocks above them.
fn follower() -> ChainFollower {
    let mut follower = ChainFollower::new(1, contract(), 1, CONFIRMATIONS);
    let mut number = 1;
    for i in 0..OPERATORS {
        let fed = follower.feed(block(number, operator_events(i)));
        assert!(matches!(fed, Ok(Fed::Applied { .. })));
        number += 1;
    }
    for _ in 0..CONFIRMATIONS {
        let fed = follower.feed(block(number, Vec::new()));
        assert!(matches!(fed, Ok(Fed::Applied { .. })));
        number += 1;
    }
    follower
}

/// A block of 20 events: relays updated, removed and registered.
fn busy_block(number: u64) -> ChainBlock {
    let mut logs = Vec::new();
    for i in 0..10 {
        logs.push(log(E::RelayUpdated(RelayRegistry::RelayUpdated {
            operator: operator(i),
            relayKey: word(4, i * RELAYS_PER_OPERATOR),
            bandwidthMbps: 50,
            descriptorHash: word(6, i),
        })));
        logs.push(log(E::RelayRemoved(RelayRegistry::RelayRemoved {
            operator: operator(i),
            relayKey: word(4, i * RELAYS_PER_OPERATOR + 1),
        })));
    }
    block(number, logs)
}

fn follow(c: &mut Criterion) {
    let base = follower();
    let next = base.next_block();
    let stake_per_mbps = U256::from(100u64);
    assert_eq!(
        base.snapshot()
            .map(|s| s.covered_relays(stake_per_mbps).len()),
        Some((OPERATORS * RELAYS_PER_OPERATOR) as usize)
    );
    let mut group = c.benchmark_group("follow_100k_relays");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("feed_block_20_events", |b| {
        b.iter_batched(
            || (base.clone(), busy_block(next)),
            // The follower is returned so that dropping it (two states of
            // 100,000 relays) is not timed.
            |(mut follower, block)| {
                let fed = follower.feed(block).is_ok();
                black_box((follower, fed))
            },
            criterion::BatchSize::LargeInput,
        )
    });
    group.bench_function("reorg_one_block_then_feed", |b| {
        // A block whose parent is not the head: the head is dropped; then
        // its replacement, which rebuilds the head state (a clone of the
        // confirmed one plus the window) and applies 20 events.
        let mut orphaning = block(next, Vec::new());
        orphaning.parent_hash = B256::repeat_byte(0x77);
        let mut replacement = busy_block(next - 1);
        replacement.hash = B256::repeat_byte(0x77);
        b.iter_batched(
            || (base.clone(), orphaning.clone(), replacement.clone()),
            |(mut follower, orphaning, replacement)| {
                let dropped = follower.feed(orphaning).is_ok();
                let fed = follower.feed(replacement).is_ok();
                black_box((follower, dropped, fed))
            },
            criterion::BatchSize::LargeInput,
        )
    });
    group.bench_function("snapshot", |b| {
        b.iter_with_large_drop(|| black_box(base.snapshot()))
    });
    let snapshot = base.snapshot();
    group.bench_function("covered_relays", |b| {
        b.iter_with_large_drop(|| {
            black_box(snapshot.as_ref().map(|s| s.covered_relays(stake_per_mbps)))
        })
    });
    group.finish();
}

criterion_group!(benches, follow);
criterion_main!(benches);
