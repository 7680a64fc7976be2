//! Votes, proposals, the QUIC key's proof of possession, and the selection
//! weight rules (issue 11, items 6 to 8).
#![allow(clippy::unwrap_used)]

use openrelay_directory::vote::{SignedVote, Vote, VoteEntry, VoteSignError, tally};
use openrelay_directory::weight::{
    MAX_OPERATOR_SHARE, MAX_WEIGHTED_BANDWIDTH_BPS, cap_shares, clipped_bandwidth, effective_cap,
};
use openrelay_directory::{
    DescriptorError, Directory, DirectoryError, FormatError, Proposal, RelayDescriptor, SignError,
    SignedDescriptor, Signer, verify_directory,
};
use openrelay_testkit::fixtures::*;
use openrelay_types::RelayRole;
use proptest::prelude::*;

fn entry(relay: u8, not_before: u64) -> VoteEntry {
    VoteEntry {
        relay: relay_key(relay).id(),
        not_before,
    }
}

fn vote(validator: u8, relays: &[u8]) -> SignedVote {
    let entries = relays
        .iter()
        .map(|&r| entry(r, T0 + u64::from(r)))
        .collect();
    validator_key(validator)
        .sign_vote(Vote::new(validator_key(validator).id(), NOW, entries).unwrap())
        .unwrap()
}

#[test]
fn a_vote_round_trips_and_verifies() {
    let signed = vote(0, &[3, 1, 2]);
    signed.verify().unwrap();
    let bytes = signed.to_bytes();
    let back = SignedVote::from_bytes(&bytes).unwrap();
    assert_eq!(back, signed);
    back.verify().unwrap();
    // Sorted by relay id on construction; lookups find each relay.
    let ids: Vec<_> = back.vote().entries().iter().map(|e| e.relay).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);
    assert_eq!(
        back.vote().entry(&relay_key(2).id()).unwrap().not_before,
        T0 + 2
    );
    assert!(back.vote().entry(&relay_key(9).id()).is_none());
    for n in 0..bytes.len() {
        assert!(SignedVote::from_bytes(&bytes[..n]).is_err(), "{n}");
    }
}

#[test]
fn a_forged_or_misattributed_vote_is_refused() {
    let signed = vote(0, &[1, 2]);
    let mut bytes = signed.to_bytes();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    assert_eq!(
        SignedVote::from_bytes(&bytes)
            .unwrap()
            .verify()
            .unwrap_err()
            .which,
        Signer::Validator(validator_key(0).id())
    );
    let foreign = Vote::new(validator_key(1).id(), NOW, vec![entry(1, T0)]).unwrap();
    assert_eq!(
        validator_key(0).sign_vote(foreign),
        Err(VoteSignError::WrongValidatorKey)
    );
    assert_eq!(
        Vote::new(
            validator_key(0).id(),
            NOW,
            vec![entry(1, T0), entry(1, T0 + 1)]
        ),
        Err(FormatError::Duplicate {
            list: "vote entries"
        })
    );
    // Unsorted entries on the wire are refused (one encoding per vote).
    let mut bytes = vote(0, &[1, 2]).to_bytes();
    let header = 1 + 32 + 8 + 4;
    let (a, b) = bytes[header..header + 80].split_at_mut(40);
    a.swap_with_slice(b);
    assert!(SignedVote::from_bytes(&bytes).is_err());
}

#[test]
fn the_largest_vote_is_what_the_format_document_says() {
    assert_eq!(openrelay_directory::vote::MAX_SIGNED_VOTE_BYTES, 4_004_209);
}

#[test]
fn tally_elects_the_relays_most_votes_list() {
    let votes = [vote(0, &[1, 2, 3]), vote(1, &[1, 2]), vote(2, &[1, 4])];
    let elected = tally(votes.iter().map(SignedVote::vote));
    let ids: Vec<_> = elected.keys().copied().collect();
    assert_eq!(
        ids,
        vec![relay_key(1).id(), relay_key(2).id()]
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
    );
    assert_eq!(elected[&relay_key(1).id()].votes, 3);
    assert_eq!(elected[&relay_key(1).id()].newest_not_before, T0 + 1);
    // Exactly half is not a majority.
    let two = [vote(0, &[1]), vote(1, &[2])];
    assert!(tally(two.iter().map(SignedVote::vote)).is_empty());
}

#[test]
fn a_proposal_round_trips_and_bounds_its_parts() {
    let directory = directory(7).to_bytes();
    let proposal = Proposal {
        directory: directory.clone().into(),
        votes: vec![vote(0, &[0, 1]), vote(1, &[2, 3])],
    };
    let bytes = proposal.to_bytes();
    assert_eq!(Proposal::from_bytes(&bytes).unwrap(), proposal);
    for n in 0..bytes.len() {
        assert!(Proposal::from_bytes(&bytes[..n]).is_err(), "{n}");
    }
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(Proposal::from_bytes(&trailing).is_err());
    // A directory length over the limit is refused before anything is read.
    let mut huge = vec![1u8];
    huge.extend_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(
        Proposal::from_bytes(&huge),
        Err(FormatError::TooLarge { .. })
    ));
}

#[test]
fn the_quic_key_must_sign_the_descriptor_that_pins_it() {
    // Relay 3 pins relay 1's QUIC key but cannot sign with it.
    let mut fields = descriptor_fields(3, 2, RelayRole::Egress);
    fields.quic_pin = quic_pin(1);
    let claimed = RelayDescriptor::new(fields).unwrap();
    let own_key_signature = quic_key(3).sign_descriptor(&claimed);
    assert_eq!(
        SignedDescriptor::sign(
            claimed.clone(),
            &relay_key(3),
            &operator_key(2),
            own_key_signature
        ),
        Err(SignError::WrongQuicKey)
    );
    let forged = SignedDescriptor::from_parts(
        claimed.clone(),
        relay_key(3).sign_descriptor(&claimed).unwrap(),
        operator_key(2).sign_descriptor(&claimed).unwrap(),
        own_key_signature,
    );
    assert_eq!(
        forged.verify(NOW),
        Err(DescriptorError::BadSignature {
            which: Signer::QuicKey(relay_key(3).id())
        })
    );
    let (operators, mut descriptors) = network();
    descriptors[3] = forged;
    let signed = signed(&directory_with(1, operators, descriptors), &[0, 1]);
    // Validators refuse it for the signature; a client, which checks a
    // relay's signatures only when it uses it, for the listing: relay 1's
    // key listed twice.
    assert_eq!(
        Directory::from_bytes(&signed.directory)
            .unwrap()
            .check_contents(NOW)
            .unwrap_err(),
        DirectoryError::BadSignature {
            which: Signer::QuicKey(relay_key(3).id())
        }
    );
    assert_eq!(
        verify_directory(signed, &trust(2, 3), NOW, None).unwrap_err(),
        DirectoryError::DuplicatePin { pin: quic_pin(1) }
    );
    // A relay signature cannot stand in for the QUIC key's (other prefix).
    let honest = descriptor(1, 1, RelayRole::Egress);
    let swapped = SignedDescriptor::from_parts(
        honest.descriptor().clone(),
        honest.relay_signature(),
        honest.operator_signature(),
        honest.relay_signature(),
    );
    assert!(swapped.verify(NOW).is_err());
}

#[test]
fn special_purpose_endpoints_are_named() {
    let d = descriptor(1, 1, RelayRole::Egress);
    let (addr, class) = d.descriptor().special_purpose_endpoint().unwrap();
    assert_eq!(addr, d.descriptor().endpoints()[0]);
    assert_eq!(class.as_str(), "loopback");
    let mut fields = descriptor_fields(1, 1, RelayRole::Egress);
    fields.endpoints = vec!["1.1.1.1:443".parse().unwrap()];
    assert!(
        RelayDescriptor::new(fields.clone())
            .unwrap()
            .special_purpose_endpoint()
            .is_none()
    );
    fields.endpoints.push("10.1.2.3:443".parse().unwrap());
    assert_eq!(
        RelayDescriptor::new(fields)
            .unwrap()
            .special_purpose_endpoint()
            .unwrap()
            .1
            .as_str(),
        "private"
    );
}

#[test]
fn refreshing_changes_only_the_validity_window() {
    let a = descriptor_fields(1, 1, RelayRole::Egress);
    let mut b = a.clone();
    b.not_before += 60;
    b.not_after += 60;
    let (a, b) = (
        RelayDescriptor::new(a).unwrap(),
        RelayDescriptor::new(b).unwrap(),
    );
    assert!(a.same_except_freshness(&b));
    let mut c = b.fields().clone();
    c.bandwidth_bps += 1;
    assert!(!a.same_except_freshness(&RelayDescriptor::new(c).unwrap()));
}

#[test]
fn weights_clip_the_claim_and_cap_an_operator() {
    assert_eq!(clipped_bandwidth(u64::MAX), MAX_WEIGHTED_BANDWIDTH_BPS);
    assert_eq!(clipped_bandwidth(7), 7);
    // Fifty honest operators of 1 and one of 1000: the big one gets exactly
    // the cap of the new total, the others keep theirs.
    let mut masses = vec![1.0; 50];
    masses.push(1000.0);
    let capped = cap_shares(&masses, MAX_OPERATOR_SHARE);
    let total: f64 = capped.iter().sum();
    assert!((capped[50] / total - MAX_OPERATOR_SHARE).abs() < 1e-12);
    assert!(capped[..50].iter().all(|&m| m == 1.0));
    // Three operators: the cap is a third each at most.
    assert_eq!(effective_cap(MAX_OPERATOR_SHARE, 3), 1.0 / 3.0);
    let capped = cap_shares(&[5.0, 1.0, 1.0], MAX_OPERATOR_SHARE);
    assert!(
        capped.iter().all(|&m| (m - 1.0).abs() < 1e-12),
        "{capped:?}"
    );
}

proptest! {
    #[test]
    fn capped_shares_respect_the_cap_and_the_order(
        masses in proptest::collection::vec(0.0f64..1e10, 1..60),
        max_share in 0.01f64..0.6,
    ) {
        let capped = cap_shares(&masses, max_share);
        prop_assert_eq!(capped.len(), masses.len());
        let k = masses.iter().filter(|&&m| m > 0.0).count();
        let total: f64 = capped.iter().sum();
        if k > 0 {
            let cap = effective_cap(max_share, k);
            for (i, (&m, &c)) in masses.iter().zip(&capped).enumerate() {
                prop_assert!(c / total <= cap * (1.0 + 1e-9), "{i}: {c} of {total} > {cap}");
                prop_assert!(c <= m * (1.0 + 1e-9) || m <= 0.0, "{i} grew");
                // Uncapped operators keep exactly their mass.
                if c / total < cap * (1.0 - 1e-9) {
                    prop_assert!((c - m).abs() <= 1e-9 * m.max(1.0), "{i}: {c} != {m}");
                }
            }
            for i in 0..masses.len() {
                for j in 0..masses.len() {
                    if masses[i] > masses[j] {
                        prop_assert!(capped[i] >= capped[j] * (1.0 - 1e-9));
                    }
                }
            }
        } else {
            prop_assert_eq!(total, 0.0);
        }
    }

    #[test]
    fn arbitrary_vote_and_proposal_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = SignedVote::from_bytes(&bytes);
        let _ = Proposal::from_bytes(&bytes);
        let mut versioned = vec![1u8];
        versioned.extend_from_slice(&bytes);
        if let Ok(vote) = SignedVote::from_bytes(&versioned) {
            prop_assert_eq!(vote.to_bytes(), versioned.clone());
        }
        if let Ok(proposal) = Proposal::from_bytes(&versioned) {
            prop_assert_eq!(proposal.to_bytes(), versioned);
        }
    }
}
