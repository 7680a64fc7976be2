//! Directories that commit to the chain (issue 13, items 2, 4 and 5): the
//! chain section, validator set hand-overs walked from a client's genesis
//! set (and every attack on them), and selection weights capped by stake.
#![allow(clippy::unwrap_used)]

use openrelay_directory::weight::stake_capped_bandwidths;
use openrelay_directory::{
    ChainAnchor, Directory, DirectoryError, FormatError, MAX_VALIDATOR_SET_CHANGES, Quorum,
    SignedDirectory, SignedValidatorSetChange, TrustConfig, TrustConfigError, ValidatorMember,
    ValidatorSet, ValidatorSetChange, more_than_two_thirds, verify_directory,
};
use openrelay_testkit::fixtures::*;
use openrelay_types::RelayRole;
use proptest::prelude::*;

fn anchor(block_number: u64) -> ChainAnchor {
    chain_anchor(block_number)
}

/// Validators `members` (fixture indices) with their weights, at `epoch`.
fn set(epoch: u64, members: &[(u8, u128)]) -> ValidatorSet {
    ValidatorSet::new(
        epoch,
        members
            .iter()
            .map(|&(v, weight)| ValidatorMember {
                validator: validator_key(v).id(),
                weight,
            })
            .collect(),
    )
    .unwrap()
}

/// The hand-over to `to` at `block`, signed by validators `signers`.
fn handover(to: &ValidatorSet, block: u64, signers: &[u8]) -> SignedValidatorSetChange {
    let mut signed =
        SignedValidatorSetChange::new(ValidatorSetChange::new(anchor(block), to.clone()).unwrap());
    for &v in signers {
        signed.sign(&validator_key(v));
    }
    signed
}

/// The fixtures' network at sequence `sequence` with a chain section at
/// `block`, signed by validator set `epoch`: every relay 1 Gbit/s on chain,
/// operators 0, 1 and 2 covering 1, 1 and 2 Gbit/s, what they list.
fn chain_directory(sequence: u64, block: u64, epoch: u64) -> Directory {
    with_chain(directory(sequence), block, epoch)
}

/// `directory` signed by `signers`, carrying `handovers`.
fn envelope(
    directory: &Directory,
    handovers: Vec<SignedValidatorSetChange>,
    signers: &[u8],
) -> SignedDirectory {
    let mut signed = SignedDirectory::new(directory)
        .with_handovers(handovers)
        .unwrap();
    for &v in signers {
        signed.sign(&validator_key(v));
    }
    signed
}

fn weighted_genesis() -> TrustConfig {
    TrustConfig::genesis(set(0, &[(0, 40), (1, 30), (2, 30)]), MAX_AGE).unwrap()
}

/// Three hand-overs from the weighted genesis set {0, 1, 2}: to {1, 2, 3}
/// at block 110, {3, 4, 5} at 120 (all new), {5, 6} at 130, each signed by
/// more than two thirds of the set before it.
fn three_handovers() -> (Vec<SignedValidatorSetChange>, ValidatorSet) {
    let one = set(1, &[(1, 10), (2, 10), (3, 10)]);
    let two = set(2, &[(3, 5), (4, 5), (5, 5)]);
    let three = set(3, &[(5, 1), (6, 1)]);
    (
        vec![
            handover(&one, 110, &[0, 1]),
            handover(&two, 120, &[1, 2, 3]),
            handover(&three, 130, &[3, 4, 5]),
        ],
        three,
    )
}

/// The weighted genesis trust, the three hand-overs, and a directory of
/// epoch 3 (sequence 5, block 140) carrying them, verified.
fn at_epoch_three() -> (
    TrustConfig,
    Vec<SignedValidatorSetChange>,
    openrelay_directory::VerifiedDirectory,
) {
    let genesis = weighted_genesis();
    let (handovers, _) = three_handovers();
    let first = verify_directory(
        envelope(&chain_directory(5, 140, 3), handovers.clone(), &[5, 6]),
        &genesis,
        NOW,
        None,
    )
    .unwrap();
    (genesis, handovers, first)
}

#[test]
fn a_chain_directory_round_trips_and_is_version_5() {
    let d = chain_directory(1, 100, 0);
    let bytes = d.to_bytes();
    assert_eq!(bytes[0], openrelay_directory::DIRECTORY_CHAIN_VERSION);
    assert_eq!(Directory::from_bytes(&bytes).unwrap(), d);
    assert_eq!(
        Directory::peek_chain_head(&bytes).unwrap(),
        Some((anchor(100), 0))
    );
    // Without a chain section a directory is still version 3, unchanged.
    assert_eq!(directory(1).to_bytes()[0], 3);
    assert_eq!(
        Directory::peek_chain_head(&directory(1).to_bytes()),
        Ok(None)
    );
    let signed = envelope(&d, three_handovers().0, &[]);
    let bytes = signed.to_bytes();
    assert_eq!(
        bytes[0],
        openrelay_directory::SIGNED_DIRECTORY_HANDOVER_VERSION
    );
    assert_eq!(SignedDirectory::from_bytes(&bytes).unwrap(), signed);
}

#[test]
fn the_chain_section_must_list_exactly_the_directorys_operators_and_relays() {
    let good = chain_directory(1, 100, 0);
    let mut section = good.chain().unwrap().clone();
    section.relays.pop();
    assert!(matches!(
        directory(1).with_chain(section),
        Err(FormatError::Invalid {
            field: "chain relays",
            ..
        })
    ));
    let mut section = good.chain().unwrap().clone();
    section.operators[0].operator = operator_key(9).id();
    assert!(matches!(
        directory(1).with_chain(section),
        Err(FormatError::Invalid {
            field: "chain operators",
            ..
        })
    ));
    // An operator's account is the one its signed profile names: a section
    // crediting the key to another account (one that registered the
    // published key on chain: anyone can) is refused.
    let mut section = good.chain().unwrap().clone();
    section.operators[0].account = [0x66; 20];
    assert!(matches!(
        directory(1).with_chain(section),
        Err(FormatError::Invalid {
            field: "chain operators",
            reason: "an operator's account must be the one its signed profile names",
        })
    ));
    // Hand-made bytes with a relay listed twice are refused by the decoder.
    let mut section = good.chain().unwrap().clone();
    section.relays[1] = section.relays[0];
    assert!(matches!(
        directory(1).with_chain(section),
        Err(FormatError::Duplicate { .. })
    ));
}

#[test]
fn validators_sign_version_5_under_its_own_prefix() {
    // A signature over the version 3 body does not verify over version 5
    // bytes, and the reverse: each version has its prefix.
    let v4 = chain_directory(1, 100, 0).to_bytes();
    let v3 = directory(1).to_bytes();
    let over_v3 = validator_key(0).sign_directory_bytes(&v3);
    let over_v4 = validator_key(0).sign_directory_bytes(&v4);
    assert!(over_v3.verifies(&v3) && over_v4.verifies(&v4));
    assert_ne!(over_v3.signature, over_v4.signature);
}

#[test]
fn a_legacy_config_is_a_genesis_set_of_equal_weights_with_k_of_n() {
    let trust = trust(2, 3);
    assert_eq!(trust.quorum(), Quorum::AtLeast(2));
    assert_eq!(trust.validator_set().epoch(), 0);
    assert!(
        trust
            .validator_set()
            .members()
            .iter()
            .all(|m| m.weight == 1)
    );
    // A version 4 directory of epoch 0 with two of three, as today.
    let d = chain_directory(1, 100, 0);
    let verified = verify_directory(envelope(&d, vec![], &[0, 1]), &trust, NOW, None).unwrap();
    assert_eq!(verified.validator_set(), trust.validator_set());
    assert_eq!(verified.chain().unwrap().anchor, anchor(100));
    // But a hand-over away from it needs more than two thirds: 2 of 3 is
    // exactly two thirds.
    let one = set(1, &[(3, 1), (4, 1), (5, 1)]);
    let d = chain_directory(2, 120, 1);
    assert!(matches!(
        verify_directory(
            envelope(&d, vec![handover(&one, 110, &[0, 1])], &[3, 4, 5]),
            &trust,
            NOW,
            None
        ),
        Err(DirectoryError::HandOverUnderSigned {
            epoch: 1,
            signed_weight: 2,
            total_weight: 3
        })
    ));
    let verified = verify_directory(
        envelope(&d, vec![handover(&one, 110, &[0, 1, 2])], &[3, 4, 5]),
        &trust,
        NOW,
        None,
    )
    .unwrap();
    assert_eq!(verified.validator_set(), &one);
}

#[test]
fn a_config_with_weights_is_a_weighted_genesis_set() {
    use openrelay_types::KeyPin;
    let pins: Vec<KeyPin> = (0..3)
        .map(|v| KeyPin::from(validator_key(v).id()))
        .collect();
    let weighted = TrustConfig::from_genesis_pins(&pins, 0, Some(&[40, 30, 30]), MAX_AGE).unwrap();
    assert_eq!(weighted, weighted_genesis());
    assert_eq!(weighted.quorum(), Quorum::MoreThanTwoThirdsOfWeight);
    assert_eq!(
        TrustConfig::from_genesis_pins(&pins, 2, None, MAX_AGE).unwrap(),
        trust(2, 3)
    );
    for (weights, pins) in [
        (&[1u128, 1][..], &pins[..]),
        (&[1, 0, 1][..], &pins[..]),
        (&[u128::MAX, 1, 1][..], &pins[..]),
        (&[1, 1, 1][..], &[pins[0], pins[1], pins[0]][..]),
    ] {
        assert!(TrustConfig::from_genesis_pins(pins, 0, Some(weights), MAX_AGE).is_err());
    }
}

#[test]
fn a_client_offline_across_three_hand_overs_follows_them_from_genesis() {
    let (handovers, three) = three_handovers();
    let d = chain_directory(5, 140, 3);
    let verified = verify_directory(
        envelope(&d, handovers, &[5, 6]),
        &weighted_genesis(),
        NOW,
        None,
    )
    .unwrap();
    assert_eq!(verified.validator_set(), &three);
    assert_eq!(verified.signers().len(), 2);
}

#[test]
fn a_client_remembers_the_latest_set_so_later_directories_need_no_history() {
    let (genesis, handovers, first) = at_epoch_three();
    let three = three_handovers().1;
    // Persisted and resumed, or advanced in memory: the same trust.
    let persisted = first.validator_set().to_bytes();
    let resumed = genesis
        .resume(ValidatorSet::from_bytes(&persisted).unwrap())
        .unwrap();
    assert_eq!(resumed, genesis.advanced(&first));
    assert_eq!(resumed.validator_set(), &three);
    assert_eq!(resumed.quorum(), Quorum::MoreThanTwoThirdsOfWeight);
    // The next directory carries no hand-over; or all of them (history the
    // client is past is skipped).
    let next = chain_directory(6, 150, 3);
    let last_seen = first.last_seen();
    for carried in [vec![], handovers] {
        verify_directory(
            envelope(&next, carried, &[5, 6]),
            &resumed,
            NOW,
            Some(&last_seen),
        )
        .unwrap();
    }
    // Going back is refused.
    assert_eq!(
        resumed.resume(genesis.validator_set().clone()),
        Err(TrustConfigError::NotNewer {
            epoch: 0,
            trusted: 3
        })
    );
}

#[test]
fn a_hand_over_signed_by_two_thirds_or_less_of_the_previous_weight_is_refused() {
    let d = chain_directory(2, 120, 1);
    let one = set(1, &[(1, 1), (2, 1), (3, 1)]);
    // Genesis weights 40/30/30: {1, 2} hold 60 %, {0, 1} 70 %.
    for (signers, weight) in [(&[1u8, 2][..], 60u128), (&[0][..], 40), (&[][..], 0)] {
        assert_eq!(
            verify_directory(
                envelope(&d, vec![handover(&one, 110, signers)], &[1, 2, 3]),
                &weighted_genesis(),
                NOW,
                None
            )
            .unwrap_err(),
            DirectoryError::HandOverUnderSigned {
                epoch: 1,
                signed_weight: weight,
                total_weight: 100
            }
        );
    }
    verify_directory(
        envelope(&d, vec![handover(&one, 110, &[0, 1])], &[1, 2, 3]),
        &weighted_genesis(),
        NOW,
        None,
    )
    .unwrap();
}

#[test]
fn a_hand_over_signed_by_the_new_set_only_is_refused() {
    let d = chain_directory(2, 120, 1);
    let usurpers = set(1, &[(7, 1), (8, 1), (9, 1)]);
    assert!(matches!(
        verify_directory(
            envelope(&d, vec![handover(&usurpers, 110, &[7, 8, 9])], &[7, 8, 9]),
            &weighted_genesis(),
            NOW,
            None
        ),
        Err(DirectoryError::HandOverUnderSigned {
            signed_weight: 0,
            ..
        })
    ));
}

#[test]
fn a_forged_set_at_a_later_epoch_skipping_one_is_refused() {
    let (handovers, _) = three_handovers();
    // The envelope starts at epoch 2, which the genesis set never signed.
    let d = chain_directory(5, 140, 3);
    assert_eq!(
        verify_directory(
            envelope(&d, handovers[1..].to_vec(), &[5, 6]),
            &weighted_genesis(),
            NOW,
            None
        )
        .unwrap_err(),
        DirectoryError::HandOverGap {
            expected: 1,
            found: 2
        }
    );
    // A list with a hole is not even a valid envelope.
    let holed = vec![handovers[0].clone(), handovers[2].clone()];
    assert!(matches!(
        SignedDirectory::new(&d).with_handovers(holed.clone()),
        Err(FormatError::Invalid {
            field: "validator set changes",
            ..
        })
    ));
    // Signed by the genesis set for epoch 3 directly: still a gap.
    let forged = set(3, &[(7, 1)]);
    assert!(matches!(
        verify_directory(
            envelope(&d, vec![handover(&forged, 130, &[0, 1, 2])], &[7]),
            &weighted_genesis(),
            NOW,
            None
        ),
        Err(DirectoryError::HandOverGap { .. })
    ));
}

#[test]
fn an_old_set_replayed_after_a_hand_over_is_refused() {
    let (genesis, handovers, first) = at_epoch_three();
    let trust = genesis.advanced(&first);
    // The genesis validators (who left, maybe sold their keys) sign a new
    // directory claiming epoch 0.
    let replay = chain_directory(6, 150, 0);
    assert_eq!(
        verify_directory(envelope(&replay, vec![], &[0, 1, 2]), &trust, NOW, None).unwrap_err(),
        DirectoryError::ValidatorEpochBehind {
            epoch: 0,
            trusted: 3
        }
    );
    // A client still at genesis is shown the hand-overs: the set of epoch 1
    // signing a directory after epoch 2 took over is refused too.
    let stale_set = chain_directory(6, 150, 1);
    assert_eq!(
        verify_directory(
            envelope(&stale_set, handovers.clone(), &[1, 2, 3]),
            &genesis,
            NOW,
            None
        )
        .unwrap_err(),
        DirectoryError::HandOverAfterDirectory {
            epoch: 2,
            directory_epoch: 1
        }
    );
    // A directory of a set the hand-overs do not reach.
    let ahead = chain_directory(6, 150, 4);
    assert_eq!(
        verify_directory(envelope(&ahead, handovers, &[5, 6]), &genesis, NOW, None).unwrap_err(),
        DirectoryError::ValidatorEpochUnreached {
            epoch: 4,
            reached: 3
        }
    );
}

#[test]
fn a_hand_over_naming_another_set_for_a_trusted_epoch_is_a_fork() {
    let (genesis, handovers, first) = at_epoch_three();
    let trust = genesis.advanced(&first);
    let mut forked = handovers;
    forked[2] = handover(&set(3, &[(5, 1), (7, 1)]), 130, &[3, 4, 5]);
    assert_eq!(
        verify_directory(
            envelope(&chain_directory(6, 150, 3), forked, &[5, 6]),
            &trust,
            NOW,
            None
        )
        .unwrap_err(),
        DirectoryError::HandOverForked { epoch: 3 }
    );
}

#[test]
fn hand_overs_must_move_forward_on_one_chain() {
    let one = set(1, &[(1, 1)]);
    let two = set(2, &[(2, 1)]);
    let d = chain_directory(2, 140, 2);
    // Block 105 after block 110.
    let backwards = vec![handover(&one, 110, &[0, 1]), handover(&two, 105, &[1])];
    assert_eq!(
        verify_directory(
            envelope(&d, backwards, &[2]),
            &weighted_genesis(),
            NOW,
            None
        )
        .unwrap_err(),
        DirectoryError::AnchorOutOfOrder { epoch: 2 }
    );
    // Another contract.
    let mut other = ValidatorSetChange::new(anchor(120), two.clone()).unwrap();
    other = ValidatorSetChange::new(
        ChainAnchor {
            contract: [1; 20],
            ..*other.anchor()
        },
        other.set().clone(),
    )
    .unwrap();
    let mut other = SignedValidatorSetChange::new(other);
    other.sign(&validator_key(1));
    assert_eq!(
        verify_directory(
            envelope(&d, vec![handover(&one, 110, &[0, 1]), other], &[2]),
            &weighted_genesis(),
            NOW,
            None
        )
        .unwrap_err(),
        DirectoryError::AnchorOutOfOrder { epoch: 2 }
    );
    // The directory itself at a block before the hand-over to its set.
    let early = chain_directory(2, 100, 1);
    assert_eq!(
        verify_directory(
            envelope(&early, vec![handover(&one, 110, &[0, 1])], &[1]),
            &weighted_genesis(),
            NOW,
            None
        )
        .unwrap_err(),
        DirectoryError::AnchorOutOfOrder { epoch: 1 }
    );
}

#[test]
fn exactly_two_thirds_of_the_weight_does_not_sign_a_directory() {
    // Three equal validators: two are exactly two thirds.
    let trust = TrustConfig::genesis(set(0, &[(0, 5), (1, 5), (2, 5)]), MAX_AGE).unwrap();
    assert_eq!(trust.threshold(), 3);
    let d = chain_directory(1, 100, 0);
    assert_eq!(
        verify_directory(envelope(&d, vec![], &[0, 1]), &trust, NOW, None).unwrap_err(),
        DirectoryError::UnderSignedWeight {
            epoch: 0,
            signed_weight: 10,
            total_weight: 15
        }
    );
    verify_directory(envelope(&d, vec![], &[0, 1, 2]), &trust, NOW, None).unwrap();
    // Signatures by non-members and repeats add nothing.
    let mut padded = envelope(&d, vec![], &[0, 1, 7, 8]);
    padded.signatures.push(padded.signatures[0]);
    assert!(matches!(
        verify_directory(padded, &trust, NOW, None),
        Err(DirectoryError::UnderSignedWeight {
            signed_weight: 10,
            ..
        })
    ));
}

#[test]
fn weights_that_overflow_are_a_typed_error() {
    assert_eq!(
        ValidatorSet::new(
            1,
            vec![
                ValidatorMember {
                    validator: validator_key(0).id(),
                    weight: u128::MAX,
                },
                ValidatorMember {
                    validator: validator_key(1).id(),
                    weight: 1,
                },
            ],
        ),
        Err(FormatError::WeightOverflow)
    );
    // The same in received bytes: the second weight patched up.
    let fine = set(1, &[(0, u128::MAX - 1), (1, 1)]);
    assert_eq!(fine.total_weight(), u128::MAX);
    let mut bytes = ValidatorSetChange::new(anchor(1), fine).unwrap().to_bytes();
    let last = bytes.len() - 1;
    bytes[last] = 2;
    assert_eq!(
        ValidatorSetChange::from_bytes(&bytes),
        Err(FormatError::WeightOverflow)
    );
    // Weights at the very top still compare exactly.
    let top = set(0, &[(0, u128::MAX / 3 * 2), (1, u128::MAX / 3)]);
    assert_eq!(top.total_weight(), u128::MAX);
    assert!(top.is_more_than_two_thirds(u128::MAX / 3 * 2 + 1));
    assert!(!top.is_more_than_two_thirds(u128::MAX / 3 * 2));
    // A weight of 0 is refused.
    assert!(matches!(
        ValidatorSet::new(
            0,
            vec![ValidatorMember {
                validator: validator_key(0).id(),
                weight: 0
            }]
        ),
        Err(FormatError::Invalid {
            field: "weight",
            ..
        })
    ));
}

#[test]
fn more_than_1024_hand_overs_are_a_typed_error() {
    let changes: Vec<SignedValidatorSetChange> = (1..=MAX_VALIDATOR_SET_CHANGES as u64 + 1)
        .map(|epoch| {
            SignedValidatorSetChange::new(
                ValidatorSetChange::new(anchor(epoch), set(epoch, &[(0, 1)])).unwrap(),
            )
        })
        .collect();
    let d = chain_directory(1, 100, 0);
    assert_eq!(
        SignedDirectory::new(&d).with_handovers(changes.clone()),
        Err(FormatError::TooLarge {
            what: "validator set changes",
            limit: MAX_VALIDATOR_SET_CHANGES
        })
    );
    // Hand-made: the largest allowed, its count patched to one more and one
    // more hand-over inserted.
    let most = SignedDirectory::new(&d)
        .with_handovers(changes[..MAX_VALIDATOR_SET_CHANGES].to_vec())
        .unwrap();
    let bytes = most.to_bytes();
    assert_eq!(SignedDirectory::from_bytes(&bytes).unwrap(), most);
    let count_at = 1 + 4 + most.directory.len();
    let mut patched = bytes[..count_at].to_vec();
    patched.extend_from_slice(&(MAX_VALIDATOR_SET_CHANGES as u16 + 1).to_be_bytes());
    let mut rest = bytes[count_at + 2..].to_vec();
    let extra = changes[MAX_VALIDATOR_SET_CHANGES].to_bytes();
    let signatures_at = rest.len() - 1;
    rest.splice(signatures_at..signatures_at, extra);
    patched.extend_from_slice(&rest);
    assert_eq!(
        SignedDirectory::from_bytes(&patched),
        Err(FormatError::TooLarge {
            what: "validator set changes",
            limit: MAX_VALIDATOR_SET_CHANGES
        })
    );
}

#[test]
fn the_chain_figures_are_checked_by_clients() {
    let trust = trust(2, 3);
    // A descriptor advertising more than its relay registered on chain.
    let mut d = chain_directory(1, 100, 0).chain().unwrap().clone();
    d.relays[2].bandwidth_mbps = 999;
    let over = directory(1).with_chain(d).unwrap();
    assert_eq!(
        verify_directory(envelope(&over, vec![], &[0, 1]), &trust, NOW, None).unwrap_err(),
        DirectoryError::BandwidthAboveChain {
            relay: over.descriptors()[2].descriptor().relay()
        }
    );
    // An operator whose stake no longer covers its relays (slashed).
    let mut d = chain_directory(1, 100, 0).chain().unwrap().clone();
    let slashed = operator_key(2).id();
    let entry = d
        .operators
        .iter_mut()
        .find(|o| o.operator == slashed)
        .unwrap();
    entry.covered_mbps = 1999;
    let short = directory(1).with_chain(d).unwrap();
    assert_eq!(
        verify_directory(envelope(&short, vec![], &[0, 1]), &trust, NOW, None).unwrap_err(),
        DirectoryError::OperatorNotCovered {
            operator: slashed,
            registered_mbps: 2000,
            covered_mbps: 1999
        }
    );
}

#[test]
fn selection_weighs_relays_by_what_stake_covers() {
    // Operator 2 lists two relays of 1 Gbit/s each, registered on chain at
    // 1 Gbit/s each, but (an operator cover lowered by the registry's own
    // rounding of stake / stakePerMbps would be refused) its cover is
    // exactly 2 Gbit/s: nothing is cut. Without a chain section the weight
    // is the clipped advertised bandwidth.
    let trust = trust(2, 3);
    let plain = verify_directory(signed(&directory(1), &[0, 1]), &trust, NOW, None).unwrap();
    assert!(
        plain
            .relays()
            .all(|r| r.selection_bandwidth_bps() == r.bandwidth_bps())
    );
    let chain = verify_directory(
        envelope(&chain_directory(1, 100, 0), vec![], &[0, 1]),
        &trust,
        NOW,
        None,
    )
    .unwrap();
    assert!(
        chain
            .relays()
            .all(|r| r.selection_bandwidth_bps() == 1_000_000_000)
    );
}

/// The Sybil operator of issue 13: stake for 1 Gbit/s, many small relays.
#[test]
fn a_sybil_with_a_thousand_small_relays_weighs_one_relay_of_its_stake() {
    let small = vec![1_000_000u64; 1000];
    let weights = stake_capped_bandwidths(&small, 1_000_000_000);
    let single = stake_capped_bandwidths(&[1_000_000_000], 1_000_000_000);
    assert_eq!(weights.iter().sum::<u64>(), single.iter().sum::<u64>());
    // Claiming more per relay buys nothing either.
    let greedy = stake_capped_bandwidths(&vec![10_000_000_000u64; 1000], 1_000_000_000);
    assert_eq!(greedy.iter().sum::<u64>(), 1_000_000_000);
}

/// Directory-level: a Sybil operator listing fifty relays of 20 Mbit/s
/// with stake for 1 Gbit/s weighs, in total, what operator 1's single relay
/// of 1 Gbit/s with stake for 1 Gbit/s weighs.
#[test]
fn a_sybil_operator_in_a_verified_directory_weighs_its_stake() {
    let sybil = 3u8;
    let mut operators = vec![profile(0), profile(1), profile(sybil)];
    let mut descriptors = vec![
        descriptor(0, 0, RelayRole::Ingress),
        descriptor(1, 1, RelayRole::Egress),
    ];
    for r in 10..60u8 {
        let mut fields = descriptor_fields(r, sybil, RelayRole::Egress);
        fields.bandwidth_bps = 20_000_000;
        descriptors.push(sign(fields, r, sybil));
    }
    operators.sort_by_key(|p| p.profile().operator());
    // Every operator's stake covers what it lists: 1 Gbit/s each.
    let d = with_chain(directory_with(1, operators, descriptors), 100, 0);
    let verified =
        verify_directory(envelope(&d, vec![], &[0, 1]), &trust(2, 3), NOW, None).unwrap();
    let total_of = |o: u8| -> u64 {
        verified
            .relays()
            .filter(|r| r.operator_id() == operator_key(o).id())
            .map(|r| r.selection_bandwidth_bps())
            .sum()
    };
    assert_eq!(total_of(sybil), total_of(1));
    assert_eq!(total_of(sybil), 1_000_000_000);
}

/// 3·part > 2·total, computed with 256-bit arithmetic.
fn reference_more_than_two_thirds(part: u128, total: u128) -> bool {
    let wide = |x: u128, k: u128| -> (u128, u128) {
        // x·k for k ≤ 3 as (high, low).
        let (lo, hi) = (x & u128::from(u64::MAX), x >> 64);
        let lo = lo * k;
        let hi = hi * k + (lo >> 64);
        (hi >> 64, (hi << 64) | (lo & u128::from(u64::MAX)))
    };
    wide(part, 3) > wide(total, 2)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn two_thirds_is_exact_for_every_u128(total in any::<u128>(), part_seed in any::<u128>()) {
        let part = if total == 0 { 0 } else { part_seed % total };
        for p in [part, total, total / 3 * 2, total / 3 * 2 + 1, (total / 3 * 2).saturating_add(2)] {
            let p = p.min(total);
            prop_assert_eq!(more_than_two_thirds(p, total), reference_more_than_two_thirds(p, total));
        }
    }

    /// Issue 13, item 5: an operator with stake for 1 Gbit/s weighs exactly
    /// one 1 Gbit/s relay however it splits its relays, and whatever they
    /// claim (at least its cover in total).
    #[test]
    fn sybil_splits_weigh_exactly_the_stake(
        cuts in proptest::collection::vec(1u64..1_000_000_000, 0..999),
        overclaim in proptest::collection::vec(0u64..20_000_000_000, 1000),
    ) {
        const COVER: u64 = 1_000_000_000;
        // A random split of exactly 1 Gbit/s into up to 1,000 relays.
        let mut points = cuts;
        points.sort_unstable();
        points.dedup();
        points.push(COVER);
        let mut last = 0;
        let split: Vec<u64> = points.iter().map(|&p| { let part = p - last; last = p; part }).collect();
        let single: u64 = stake_capped_bandwidths(&[COVER], u128::from(COVER)).iter().sum();
        prop_assert_eq!(single, COVER);
        let weights = stake_capped_bandwidths(&split, u128::from(COVER));
        prop_assert_eq!(weights.iter().sum::<u64>(), single);
        // The same relays each claiming more (up to 20 Gbit/s, clipped at
        // 10): still exactly the cover, never more than a relay's claim.
        let claims: Vec<u64> = split.iter().zip(&overclaim).map(|(s, o)| s + o).collect();
        let weights = stake_capped_bandwidths(&claims, u128::from(COVER));
        prop_assert_eq!(weights.iter().sum::<u64>(), single);
        for (w, c) in weights.iter().zip(&claims) {
            prop_assert!(*w <= openrelay_directory::weight::clipped_bandwidth(*c));
        }
    }

    /// Below its cover an operator's relays keep their clipped claims.
    #[test]
    fn covered_operators_keep_their_claims(claims in proptest::collection::vec(1u64..20_000_000_000, 1..50)) {
        let clipped: Vec<u64> = claims.iter().map(|&c| openrelay_directory::weight::clipped_bandwidth(c)).collect();
        let total: u128 = clipped.iter().map(|&c| u128::from(c)).sum();
        prop_assert_eq!(stake_capped_bandwidths(&claims, total), clipped.clone());
        prop_assert_eq!(stake_capped_bandwidths(&claims, u128::MAX), clipped);
    }
}

#[test]
fn a_pinned_deployment_refuses_directories_anchored_elsewhere_or_nowhere() {
    use openrelay_directory::Deployment;
    let anchor = chain_anchor(100);
    let pinned = Deployment {
        chain_id: anchor.chain_id,
        contract: anchor.contract,
    };
    let trust = trust(2, 3).pinned_to_deployment(pinned);
    let at_pin = envelope(&chain_directory(1, 100, 0), Vec::new(), &[0, 1]);
    verify_directory(at_pin, &trust, T0, None).unwrap();

    // The same validators sign a directory of another contract, on another
    // chain, and one without a chain section: all refused, naming both.
    let mut elsewhere = chain_directory(2, 100, 0).chain().unwrap().clone();
    elsewhere.anchor.contract = [0x66; 20];
    let other_contract = directory(2).with_chain(elsewhere).unwrap();
    let mut other = chain_directory(2, 100, 0).chain().unwrap().clone();
    other.anchor.chain_id = 1;
    let other_chain = directory(2).with_chain(other).unwrap();
    for (directory, found) in [
        (other_contract, Some([0x66; 20])),
        (other_chain, Some(anchor.contract)),
        (directory(2), None),
    ] {
        let signed = envelope(&directory, Vec::new(), &[0, 1, 2]);
        let error = verify_directory(signed, &trust, T0, None).unwrap_err();
        let DirectoryError::OtherDeployment {
            expected,
            found: got,
        } = &error
        else {
            panic!("{error:?}");
        };
        assert_eq!(*expected, pinned);
        assert_eq!(got.map(|d| d.contract), found);
        assert!(error.to_string().contains("pinned"), "{error}");
    }
}
