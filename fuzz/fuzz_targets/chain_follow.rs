//! The chain follower's decoding of what a JSON-RPC node returns as the
//! registry contract's logs (`openrelay_chain::follow::ChainFollower`):
//! any topics and data, over a few blocks with any parent links. A typed
//! error or a state, never a panic; a refused block changes nothing.
#![no_main]

use alloy::primitives::{Address, B256, Log, LogData};
use libfuzzer_sys::fuzz_target;
use openrelay_chain::contract::RelayRegistry::RelayRegistryEvents;
use openrelay_chain::follow::{ChainBlock, ChainFollower};

const CONTRACT: Address = Address::repeat_byte(0xC0);

/// Reads logs from the input: per log a byte (low 3 bits: topic count, bit
/// 3: another address, bit 4: the first topic is the event selector the
/// next byte picks, so the fuzzer reaches every event's decoding and
/// state change), the topics, a length byte and the data.
fn logs(mut data: &[u8]) -> Vec<Log> {
    let mut logs = Vec::new();
    while let Some((&head, rest)) = data.split_first() {
        data = rest;
        let topic_count = usize::from(head & 7).min(4);
        let mut topics = Vec::new();
        if head & 16 != 0 {
            let Some((&pick, rest)) = data.split_first() else {
                return logs;
            };
            data = rest;
            let selectors = RelayRegistryEvents::SELECTORS;
            topics.push(B256::from(selectors[usize::from(pick) % selectors.len()]));
        }
        for _ in topics.len()..topic_count {
            let Some((topic, rest)) = data.split_first_chunk::<32>() else {
                return logs;
            };
            topics.push(B256::from(*topic));
            data = rest;
        }
        let Some((&len, rest)) = data.split_first() else {
            return logs;
        };
        let len = usize::from(len).min(rest.len());
        let (body, rest) = rest.split_at(len);
        data = rest;
        let address = if head & 8 == 0 {
            CONTRACT
        } else {
            Address::ZERO
        };
        logs.push(Log {
            address,
            data: LogData::new_unchecked(topics, body.to_vec().into()),
        });
    }
    logs
}

fuzz_target!(|data: &[u8]| {
    let mut follower = ChainFollower::new(1, CONTRACT, 0, 1);
    // Blocks separated by 0xFF 0xFF; the byte after each separator picks
    // the parent (the head's hash or another).
    for (i, chunk) in data.split(|&b| b == 0xFF).enumerate() {
        let parent_is_head = chunk.first().is_none_or(|b| b & 1 == 0);
        let parent_hash = match follower.head() {
            Some(head) if parent_is_head => head.hash,
            _ => B256::repeat_byte(0xAA),
        };
        let before = follower.snapshot();
        let next = follower.next_block();
        let block = ChainBlock {
            number: next,
            hash: B256::from(alloy::primitives::U256::from(i + 1)),
            parent_hash,
            logs: logs(chunk.get(1..).unwrap_or_default()),
        };
        if follower.feed(block).is_err() {
            assert_eq!(follower.snapshot(), before);
            assert_eq!(follower.next_block(), next);
        }
    }
});
