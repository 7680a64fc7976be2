//! The comparison, against answers an honest node would give for the
//! fixtures' chain section, then each figure misstated.
#![allow(clippy::unwrap_used)]

use super::*;
use openrelay_directory::{ChainSection, Directory, verify_directory};
use openrelay_testkit::fixtures;

fn verified(directory: &Directory) -> VerifiedDirectory {
    let signed = fixtures::signed(directory, &[0, 1]);
    verify_directory(signed, &fixtures::trust(2, 3), fixtures::T0, None).unwrap()
}

const STAKE_PER_MBPS: u128 = 1_000_000_000_000_000;

fn word_hex(words: &[[u8; 32]]) -> Value {
    Value::from(hex(&words.concat()))
}

fn uint(n: u128) -> [u8; 32] {
    let mut word = [0u8; 32];
    word[16..].copy_from_slice(&n.to_be_bytes());
    word
}

/// What a node holding exactly `section` answers to [`plan`]'s calls.
fn honest_answers(directory: &VerifiedDirectory, section: &ChainSection) -> Vec<Value> {
    let mut answers = vec![
        Value::from(format!("0x{:x}", section.anchor.chain_id)),
        json!({ "hash": hex(&section.anchor.block_hash), "number": "0x1" }),
        word_hex(&[uint(STAKE_PER_MBPS)]),
    ];
    for operator in &section.operators {
        answers.push(word_hex(&[
            operator.operator.to_bytes(),
            [0; 32],
            uint(operator.stake_wei),
            uint(u128::from(operator.covered_mbps)),
            uint(1),
        ]));
        answers.push(word_hex(&[uint(1)]));
    }
    for relay in directory.relays() {
        let chain = section.relay(&relay.id()).unwrap();
        answers.push(word_hex(&[
            uint(u128::from(chain_role(relay.role()))),
            uint(u128::from(chain.bandwidth_mbps)),
            relay.descriptor().content_hash(),
        ]));
    }
    answers
}

fn judged(directory: &VerifiedDirectory, answers: &[Value]) -> Result<(), CheckError> {
    let section = directory.chain().unwrap();
    let (calls, lookups) = plan(directory, section).unwrap();
    assert_eq!(calls.len(), answers.len());
    judge(section, &lookups, answers)
}

fn fixture() -> VerifiedDirectory {
    verified(&fixtures::with_chain(fixtures::directory(1), 42, 0))
}

#[test]
fn the_plan_asks_each_fact_once_at_the_anchor_block() {
    let directory = fixture();
    let section = directory.chain().unwrap();
    let (calls, _) = plan(&directory, section).unwrap();
    assert_eq!(calls.len(), 3 + 2 * 3 + 4);
    assert_eq!(calls[0].method, "eth_chainId");
    assert_eq!(calls[1].params, json!(["0x2a", false]));
    for call in &calls[2..] {
        assert_eq!(call.method, "eth_call");
        assert_eq!(call.params[1], "0x2a");
        assert_eq!(call.params[0]["to"], hex(&[0x5f; 20]));
    }
    let operator = &section.operators[0];
    assert_eq!(
        calls[3].params[0]["data"],
        hex(&abi::address_call(abi::OPERATORS, &operator.account))
    );
}

#[test]
fn an_honest_node_confirms_the_directory() {
    let directory = fixture();
    let answers = honest_answers(&directory, directory.chain().unwrap());
    judged(&directory, &answers).unwrap();
}

/// The answers with the `i`th replaced.
fn with(answers: &[Value], i: usize, value: Value) -> Vec<Value> {
    let mut answers = answers.to_vec();
    answers[i] = value;
    answers
}

#[test]
fn each_misstated_fact_is_named() {
    let directory = fixture();
    let section = directory.chain().unwrap();
    let honest = honest_answers(&directory, section);
    let mismatch = |answers: Vec<Value>| match judged(&directory, &answers) {
        Err(CheckError::Mismatch(m)) => m,
        other => panic!("not a mismatch: {other:?}"),
    };
    assert!(matches!(
        mismatch(with(&honest, 0, Value::from("0x1"))),
        Mismatch::ChainId {
            directory: 31_337,
            node: 1
        }
    ));
    assert!(matches!(
        mismatch(with(&honest, 1, json!({ "hash": hex(&[1; 32]) }))),
        Mismatch::BlockHash {
            number: 42,
            node: Some(_),
            ..
        }
    ));
    assert!(matches!(
        mismatch(with(&honest, 1, Value::Null)),
        Mismatch::BlockHash { node: None, .. }
    ));
    let op = &section.operators[0];
    let lower_stake = word_hex(&[
        op.operator.to_bytes(),
        [0; 32],
        uint(op.stake_wei - 1),
        uint(0),
        uint(1),
    ]);
    let m = mismatch(with(&honest, 3, lower_stake));
    assert_eq!(
        m,
        Mismatch::Stake {
            operator: op.operator,
            directory: op.stake_wei,
            node: Some(op.stake_wei - 1)
        }
    );
    assert!(m.to_string().contains(&op.stake_wei.to_string()), "{m}");
    let other_key = word_hex(&[[7; 32], [0; 32], uint(op.stake_wei), uint(0), uint(1)]);
    assert!(matches!(
        mismatch(with(&honest, 3, other_key)),
        Mismatch::OperatorKey { .. }
    ));
    assert!(matches!(
        mismatch(with(&honest, 4, word_hex(&[uint(0)]))),
        Mismatch::NotCovered { .. }
    ));
    // A different stakePerMbps makes the stated covered bandwidth wrong.
    assert!(matches!(
        mismatch(with(&honest, 2, word_hex(&[uint(STAKE_PER_MBPS * 2)]))),
        Mismatch::CoveredMbps { .. }
    ));
    let first_relay = 3 + 2 * section.operators.len();
    let relay = directory.relays().next().unwrap();
    let chain = section.relay(&relay.id()).unwrap();
    let role = uint(u128::from(chain_role(relay.role())));
    let bandwidth = uint(u128::from(chain.bandwidth_mbps));
    let m = mismatch(with(
        &honest,
        first_relay,
        word_hex(&[role, bandwidth, [9; 32]]),
    ));
    assert!(matches!(m, Mismatch::DescriptorHash { relay: r, .. } if r == relay.id()));
    assert!(m.to_string().contains(&hex(&[9; 32])), "{m}");
    assert!(matches!(
        mismatch(with(
            &honest,
            first_relay,
            word_hex(&[role, uint(1), relay.descriptor().content_hash()])
        )),
        Mismatch::Bandwidth { node: 1, .. }
    ));
    assert!(matches!(
        mismatch(with(
            &honest,
            first_relay,
            word_hex(&[uint(3), bandwidth, relay.descriptor().content_hash()])
        )),
        Mismatch::Role { node: 3, .. }
    ));
    assert!(matches!(
        mismatch(with(
            &honest,
            first_relay,
            word_hex(&[uint(0), uint(0), [0; 32]])
        )),
        Mismatch::NotRegistered { .. }
    ));
}

#[test]
fn malformed_answers_are_not_mismatches() {
    let directory = fixture();
    let honest = honest_answers(&directory, directory.chain().unwrap());
    for (i, value) in [
        (0, Value::from("forty-two")),
        (1, json!({ "number": "0x2a" })),
        (2, word_hex(&[uint(0)])),
        (3, Value::from("0x12")),
        (5, Value::from(12)),
    ] {
        let error = judged(&directory, &with(&honest, i, value)).unwrap_err();
        assert!(!error.is_mismatch(), "{i}: {error}");
    }
    let section = directory.chain().unwrap();
    let (_, lookups) = plan(&directory, section).unwrap();
    assert!(
        !judge(section, &lookups, &honest[..5])
            .unwrap_err()
            .is_mismatch()
    );
}

#[test]
fn hex_round_trips() {
    assert_eq!(hex(&[0, 0xab, 0x10]), "0x00ab10");
    assert_eq!(unhex("0x00ab10").unwrap(), vec![0, 0xab, 0x10]);
    assert_eq!(unhex("0x0"), None);
    assert_eq!(unhex("00"), None);
    assert_eq!(unhex("0xzz"), None);
    assert_eq!(quantity(&Value::from("0x7a69")), Some(31_337));
}
