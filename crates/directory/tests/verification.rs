//! Every way a directory or descriptor must be refused (issue 3, item 3), and
//! what a verified directory offers path selection.
#![allow(clippy::unwrap_used)]

use openrelay_directory::{
    DescriptorError, Directory, DirectoryError, FormatError, LastSeen, MAX_CLOCK_SKEW_SECS,
    MAX_DIRECTORY_SIGNATURES, Network, RelayDescriptor, SignError, SignedDescriptor,
    SignedDirectory, Signer, TrustConfig, TrustConfigError, ValidatorSignature, verify_directory,
    verify_directory_bytes,
};
use openrelay_testkit::fixtures::*;
use openrelay_types::RelayRole;

fn verify(signed: SignedDirectory, trust: &TrustConfig) -> Result<(), DirectoryError> {
    verify_directory(signed, trust, NOW, None).map(|_| ())
}

/// What validators and a client make of `signed`, whose relay 1 carries a
/// bad signature the validators signed anyway: a validator refuses the
/// whole directory before signing (`check_contents`); a client accepts
/// the listing, refuses relay 1 when it would first use it (cached: the
/// same answer again), and every other relay passes. Returns the refusal.
fn refused_by_validators_and_on_use(signed: SignedDirectory) -> DirectoryError {
    let forged = relay_key(1).id();
    let at_validators = Directory::from_bytes(&signed.directory)
        .unwrap()
        .check_contents(NOW)
        .unwrap_err();
    let verified = verify_directory(signed, &trust(2, 3), NOW, None).unwrap();
    let on_use = verified.check_relay_signatures(&forged).unwrap_err();
    assert_eq!(at_validators, on_use);
    assert_eq!(
        verified.check_relay_signatures(&forged),
        Err(on_use.clone())
    );
    for relay in verified.relays().filter(|r| r.id() != forged) {
        assert_eq!(relay.listed().check_signatures(), Ok(()), "{}", relay.id());
    }
    on_use
}

/// A directory of the fixture network, with `descriptor` replacing relay
/// `replaced`'s, signed by validators 0 and 1 (trust: 2 of 3). Validators
/// signing does not launder a bad descriptor.
fn with_descriptor(replaced: usize, descriptor: SignedDescriptor) -> SignedDirectory {
    let (operators, mut descriptors) = network();
    descriptors[replaced] = descriptor;
    signed(&directory_with(1, operators, descriptors), &[0, 1])
}

#[test]
fn a_well_formed_directory_verifies_and_lists_its_relays() {
    let signed = signed(&directory(7), &[0, 2]);
    let bytes = signed.to_bytes();
    let verified = verify_directory_bytes(&bytes, &trust(2, 3), NOW, None).unwrap();

    assert_eq!(verified.sequence(), 7);
    assert_eq!(verified.issued_at(), T0);
    assert_eq!(verified.valid_until(), T0 + DIRECTORY_LIFETIME);
    assert_eq!(
        verified.signers(),
        {
            let mut v = vec![validator_key(0).id(), validator_key(2).id()];
            v.sort();
            v
        }
        .as_slice()
    );
    assert_eq!(verified.relays().count(), 4);
    assert_eq!(verified.relays_with_role(RelayRole::Egress).count(), 2);

    let egress = verified.relay(&relay_key(1).id()).unwrap();
    assert_eq!(egress.role(), RelayRole::Egress);
    assert_eq!(egress.operator_id(), operator_key(1).id());
    assert_eq!(egress.operator.name(), "Operator 1");
    assert_eq!(egress.operator.jurisdiction().as_str(), "NL");
    assert_eq!(egress.endpoints(), &["127.0.0.1:4001".parse().unwrap()]);
    assert_eq!(egress.quic_pin(), quic_pin(1));
    assert_eq!(egress.region().city, "Amsterdam");
    assert_eq!(egress.network(), &Network::Asn(64_501));
    assert_eq!(egress.bandwidth_bps(), 1_000_000_000);
    assert_eq!(
        verified.relay_by_pin(&quic_pin(3)).unwrap().id(),
        relay_key(3).id()
    );
    assert!(verified.relay_by_pin(&quic_pin(9)).is_none());

    // What a client caches re-verifies against what it remembered.
    let last = verified.last_seen();
    assert_eq!(last.sequence, 7);
    assert_eq!(last.digest, directory(7).digest());
    let again = verify_directory_bytes(
        &verified.signed().unwrap().to_bytes(),
        &trust(2, 3),
        NOW,
        Some(&last),
    );
    assert_eq!(again.unwrap().digest(), last.digest);
}

#[test]
fn forged_relay_signature_is_refused_by_validators_and_on_first_use() {
    // The relay signature of relay 1's descriptor, made by relay 2's key.
    let honest = descriptor(1, 1, RelayRole::Egress);
    let mut other_fields = descriptor_fields(1, 1, RelayRole::Egress);
    other_fields.relay = relay_key(2).id();
    let forged_sig = relay_key(2)
        .sign_descriptor(&RelayDescriptor::new(other_fields).unwrap())
        .unwrap();
    let forged = SignedDescriptor::from_parts(
        honest.descriptor().clone(),
        forged_sig,
        honest.operator_signature(),
        honest.quic_signature(),
    );
    assert_eq!(
        refused_by_validators_and_on_use(with_descriptor(1, forged)),
        DirectoryError::BadSignature {
            which: Signer::Relay(relay_key(1).id())
        }
    );
}

#[test]
fn forged_operator_signature_is_refused_by_validators_and_on_first_use() {
    let honest = descriptor(1, 1, RelayRole::Egress);
    let mut bad = *honest.operator_signature().as_bytes();
    bad[10] ^= 0x01;
    let forged = SignedDescriptor::from_parts(
        honest.descriptor().clone(),
        honest.relay_signature(),
        openrelay_directory::Signature::from_bytes(bad),
        honest.quic_signature(),
    );
    assert_eq!(
        refused_by_validators_and_on_use(with_descriptor(1, forged)),
        DirectoryError::BadSignature {
            which: Signer::Operator(operator_key(1).id())
        }
    );
}

#[test]
fn a_relay_cannot_claim_an_operator_that_did_not_sign_nor_be_used_under_it() {
    // Relay 1 names operator 0, but operator 1 signed (over its own version).
    let fields = descriptor_fields(1, 0, RelayRole::Egress);
    let claimed = RelayDescriptor::new(fields).unwrap();
    assert_eq!(
        operator_key(1).sign_descriptor(&claimed),
        Err(SignError::WrongOperatorKey)
    );
    assert_eq!(
        relay_key(2).sign_descriptor(&claimed),
        Err(SignError::WrongRelayKey)
    );
    let signed_by_1 = descriptor(1, 1, RelayRole::Egress);
    let forged = SignedDescriptor::from_parts(
        claimed.clone(),
        relay_key(1).sign_descriptor(&claimed).unwrap(),
        signed_by_1.operator_signature(),
        quic_key(1).sign_descriptor(&claimed),
    );
    assert_eq!(
        refused_by_validators_and_on_use(with_descriptor(1, forged)),
        DirectoryError::BadSignature {
            which: Signer::Operator(operator_key(0).id())
        }
    );
}

#[test]
fn the_signatures_of_a_relay_not_listed_are_not_vouched_for() {
    let verified =
        verify_directory(signed(&directory(1), &[0, 1]), &trust(2, 3), NOW, None).unwrap();
    assert_eq!(
        verified.check_relay_signatures(&relay_key(9).id()),
        Err(DirectoryError::RelayNotListed {
            relay: relay_key(9).id()
        })
    );
}

#[test]
fn a_descriptor_whose_operator_has_no_profile_is_refused() {
    // Operator 5 signed properly, but its profile is not in the directory.
    let orphan = descriptor(1, 5, RelayRole::Egress);
    assert_eq!(
        verify(with_descriptor(1, orphan), &trust(2, 3)),
        Err(DirectoryError::UnknownOperator {
            relay: relay_key(1).id(),
            operator: operator_key(5).id(),
        })
    );
}

#[test]
fn forged_operator_profile_is_refused_by_validators_and_on_first_use() {
    let (mut operators, descriptors) = network();
    // Operator 1's profile with operator 2's signature over its own profile.
    operators[1] = openrelay_directory::SignedOperatorProfile::from_parts(
        operators[1].profile().clone(),
        *profile(2).signature(),
    );
    let signed = signed(&directory_with(1, operators, descriptors), &[0, 1]);
    assert_eq!(
        refused_by_validators_and_on_use(signed),
        DirectoryError::BadSignature {
            which: Signer::OperatorProfile(operator_key(1).id())
        }
    );
}

#[test]
fn one_signature_short_of_the_threshold_is_refused() {
    assert_eq!(
        verify(signed(&directory(1), &[0, 1]), &trust(3, 3)),
        Err(DirectoryError::UnderSigned {
            valid: 2,
            needed: 3
        })
    );
    assert_eq!(
        verify(signed(&directory(1), &[]), &trust(1, 3)),
        Err(DirectoryError::UnderSigned {
            valid: 0,
            needed: 1
        })
    );
}

#[test]
fn duplicate_signatures_of_one_validator_count_once() {
    let mut signed = signed(&directory(1), &[0]);
    let first = signed.signatures[0];
    signed.signatures.push(first);
    signed.signatures.push(first);
    // Survives the wire as it is: the list is not covered by any signature.
    let decoded = SignedDirectory::from_bytes(&signed.to_bytes()).unwrap();
    assert_eq!(decoded.signatures.len(), 3);
    assert_eq!(
        verify(decoded, &trust(2, 3)),
        Err(DirectoryError::UnderSigned {
            valid: 1,
            needed: 2
        })
    );
    // `add_signature` keeps one per validator.
    let mut tidy = SignedDirectory::new(&directory(1));
    tidy.add_signature(first);
    tidy.add_signature(first);
    assert_eq!(tidy.signatures.len(), 1);
}

#[test]
fn signatures_of_unknown_validators_do_not_count() {
    let signed = signed(&directory(1), &[0, 5, 6]);
    assert_eq!(
        verify(signed.clone(), &trust(2, 3)),
        Err(DirectoryError::UnderSigned {
            valid: 1,
            needed: 2
        })
    );
    // They are ignored, not fatal: one trusted signature meets a threshold of 1.
    let verified = verify_directory(signed, &trust(1, 3), NOW, None).unwrap();
    assert_eq!(verified.signers(), &[validator_key(0).id()]);
}

#[test]
fn a_bad_signature_of_a_trusted_validator_does_not_count() {
    let mut signed = signed(&directory(1), &[0, 1]);
    let mut bytes = signed.signatures[1].signature.to_bytes();
    bytes[63] ^= 0x10;
    signed.signatures[1].signature = openrelay_directory::Signature::from_bytes(bytes);
    assert_eq!(
        verify(signed.clone(), &trust(2, 3)),
        Err(DirectoryError::UnderSigned {
            valid: 1,
            needed: 2
        })
    );
    // A good signature later in the list from the same validator still counts:
    // junk inserted before it cannot knock a validator out.
    signed
        .signatures
        .push(validator_key(1).sign_directory(&directory(1)));
    verify(signed, &trust(2, 3)).unwrap();
}

#[test]
fn a_signature_over_another_directory_does_not_count() {
    let mut signed = signed(&directory(1), &[0]);
    signed
        .signatures
        .push(validator_key(1).sign_directory(&directory(2)));
    assert_eq!(
        verify(signed, &trust(2, 3)),
        Err(DirectoryError::UnderSigned {
            valid: 1,
            needed: 2
        })
    );
}

#[test]
fn signatures_made_for_another_purpose_do_not_count() {
    // A validator key that also signed descriptor bytes as a relay cannot have
    // that signature taken for a directory signature (domain separation).
    let d = directory(1);
    let as_relay = openrelay_directory::RelayKey::from_bytes(&seed(0x0c, 0));
    let descriptor = RelayDescriptor::new(descriptor_fields(0, 0, RelayRole::Ingress)).unwrap();
    let mut fields = descriptor.fields().clone();
    fields.relay = as_relay.id();
    let relay_sig = as_relay
        .sign_descriptor(&RelayDescriptor::new(fields).unwrap())
        .unwrap();
    let mut signed = SignedDirectory::new(&d);
    signed.signatures.push(ValidatorSignature {
        validator: validator_key(0).id(),
        signature: relay_sig,
    });
    assert!(!signed.signatures[0].verifies(&signed.directory));
}

#[test]
fn a_stale_directory_is_refused() {
    let trust = TrustConfig::new((0..3).map(|v| validator_key(v).id()), 2, 3600).unwrap();
    let signed = signed(&directory(1), &[0, 1]);
    verify_directory(signed.clone(), &trust, T0 + 3600, None).unwrap();
    assert_eq!(
        verify_directory(signed, &trust, T0 + 3601, None).unwrap_err(),
        DirectoryError::Stale {
            age: 3601,
            max_age: 3600
        }
    );
}

#[test]
fn an_expired_directory_is_refused() {
    let signed = signed(&directory(1), &[0, 1]);
    let end = T0 + DIRECTORY_LIFETIME;
    assert_eq!(
        verify_directory(signed, &trust(2, 3), end, None).unwrap_err(),
        DirectoryError::Expired {
            valid_until: end,
            now: end
        }
    );
}

#[test]
fn a_future_dated_directory_is_refused_beyond_the_clock_skew() {
    let signed = signed(&directory(1), &[0, 1]);
    let early = T0 - MAX_CLOCK_SKEW_SECS;
    verify_directory(signed.clone(), &trust(2, 3), early, None).unwrap();
    assert_eq!(
        verify_directory(signed, &trust(2, 3), early - 1, None).unwrap_err(),
        DirectoryError::FutureDated {
            issued_at: T0,
            now: early - 1
        }
    );
}

#[test]
fn a_rolled_back_directory_is_refused() {
    let last = LastSeen {
        sequence: 5,
        issued_at: T0 - 600,
        digest: directory(5).digest(),
    };
    let older = signed(&directory(4), &[0, 1]);
    assert_eq!(
        verify_directory(older, &trust(2, 3), NOW, Some(&last)).unwrap_err(),
        DirectoryError::RolledBack {
            sequence: 4,
            last_sequence: 5
        }
    );
    // The next sequence is fine.
    verify_directory(
        signed(&directory(6), &[0, 1]),
        &trust(2, 3),
        NOW,
        Some(&last),
    )
    .unwrap();
}

#[test]
fn the_same_sequence_is_accepted_only_for_the_same_directory() {
    let first = verify_directory(signed(&directory(5), &[0, 1]), &trust(2, 3), NOW, None).unwrap();
    let last = first.last_seen();
    // The same directory with another set of validator signatures: accepted.
    verify_directory(
        signed(&directory(5), &[1, 2]),
        &trust(2, 3),
        NOW,
        Some(&last),
    )
    .unwrap();
    // Other contents under sequence 5: equivocation.
    let (operators, mut descriptors) = network();
    descriptors.pop();
    let other = directory_with(5, operators, descriptors);
    assert_eq!(
        verify_directory(signed(&other, &[0, 1]), &trust(2, 3), NOW, Some(&last)).unwrap_err(),
        DirectoryError::Equivocation { sequence: 5 }
    );
}

#[test]
fn a_newer_sequence_issued_earlier_is_refused() {
    let last = LastSeen {
        sequence: 5,
        issued_at: T0 + 1,
        digest: directory(5).digest(),
    };
    assert_eq!(
        verify_directory(
            signed(&directory(6), &[0, 1]),
            &trust(2, 3),
            NOW,
            Some(&last)
        )
        .unwrap_err(),
        DirectoryError::IssuedBeforeLastSeen {
            issued_at: T0,
            last_issued_at: T0 + 1
        }
    );
}

#[test]
fn an_expired_descriptor_refuses_the_directory() {
    let mut fields = descriptor_fields(1, 1, RelayRole::Egress);
    fields.not_after = T0 + 30;
    let signed = with_descriptor(1, sign(fields, 1, 1));
    assert_eq!(
        verify(signed, &trust(2, 3)),
        Err(DirectoryError::DescriptorExpired {
            relay: relay_key(1).id(),
            not_after: T0 + 30
        })
    );
}

#[test]
fn a_descriptor_not_yet_valid_refuses_the_directory() {
    let mut fields = descriptor_fields(1, 1, RelayRole::Egress);
    fields.not_before = NOW + MAX_CLOCK_SKEW_SECS + 1;
    let signed = with_descriptor(1, sign(fields, 1, 1));
    assert_eq!(
        verify(signed, &trust(2, 3)),
        Err(DirectoryError::DescriptorNotYetValid {
            relay: relay_key(1).id(),
            not_before: NOW + MAX_CLOCK_SKEW_SECS + 1
        })
    );
}

#[test]
fn a_descriptor_expiring_before_the_directory_refuses_it() {
    let mut fields = descriptor_fields(1, 1, RelayRole::Egress);
    fields.not_after = T0 + DIRECTORY_LIFETIME - 1;
    let signed = with_descriptor(1, sign(fields, 1, 1));
    assert_eq!(
        verify(signed, &trust(2, 3)),
        Err(DirectoryError::DescriptorOutlivedByDirectory {
            relay: relay_key(1).id()
        })
    );
}

#[test]
fn two_relays_with_one_quic_key_refuse_the_directory() {
    let mut fields = descriptor_fields(3, 2, RelayRole::Egress);
    fields.quic_pin = quic_pin(1);
    let signed = with_descriptor(3, sign(fields, 3, 2));
    assert_eq!(
        verify(signed, &trust(2, 3)),
        Err(DirectoryError::DuplicatePin { pin: quic_pin(1) })
    );
}

#[test]
fn malformed_bytes_are_refused() {
    assert!(matches!(
        verify_directory_bytes(&[], &trust(1, 1), NOW, None),
        Err(DirectoryError::Malformed(FormatError::Truncated))
    ));
    // A validator-signed body that is not a directory: refused after the
    // signature count, as malformed.
    let garbage = SignedDirectory {
        directory: b"not a directory".to_vec().into(),
        handovers: Vec::new(),
        signatures: Vec::new(),
    };
    let mut signed = garbage.clone();
    signed
        .signatures
        .push(validator_key(0).sign_directory_bytes(&garbage.directory));
    assert!(matches!(
        verify(signed, &trust(1, 1)),
        Err(DirectoryError::Malformed(
            FormatError::UnsupportedVersion { .. }
        ))
    ));
}

fn small_signed_directory() -> SignedDirectory {
    let d = Directory::new(
        1,
        T0,
        T0 + DIRECTORY_LIFETIME,
        vec![profile(0)],
        vec![descriptor(0, 0, RelayRole::Ingress)],
    )
    .unwrap();
    signed(&d, &[0])
}

/// Every bit that matters: flipping the lowest or the highest bit of any
/// byte of a signed directory (envelope, body or signature) is refused.
#[test]
fn every_byte_flipped_is_refused() {
    let signed = small_signed_directory();
    let bytes = signed.to_bytes();
    let trust = trust(1, 1);
    verify_directory_bytes(&bytes, &trust, NOW, None).unwrap();
    for i in 0..bytes.len() {
        for flip in [0x01u8, 0x80] {
            let mut tampered = bytes.clone();
            tampered[i] ^= flip;
            assert!(
                verify_directory_bytes(&tampered, &trust, NOW, None).is_err(),
                "flipping {flip:#x} at byte {i} of {} went unnoticed",
                bytes.len()
            );
        }
    }
}

#[test]
fn a_single_descriptor_verifies_within_its_window() {
    let d = descriptor(1, 1, RelayRole::Egress);
    d.verify(NOW).unwrap();
    let f = d.descriptor().fields().clone();
    // The relay's clock may be a little ahead.
    d.verify(f.not_before - MAX_CLOCK_SKEW_SECS).unwrap();
    assert_eq!(
        d.verify(f.not_before - MAX_CLOCK_SKEW_SECS - 1),
        Err(DescriptorError::NotYetValid {
            relay: f.relay,
            not_before: f.not_before,
            now: f.not_before - MAX_CLOCK_SKEW_SECS - 1
        })
    );
    assert_eq!(
        d.verify(f.not_after),
        Err(DescriptorError::Expired {
            relay: f.relay,
            not_after: f.not_after,
            now: f.not_after
        })
    );
    assert!(d.descriptor().is_valid_at(NOW));
    assert!(!d.descriptor().is_valid_at(f.not_after));
}

#[test]
fn a_single_descriptor_with_a_forged_signature_is_refused() {
    let d = descriptor(1, 1, RelayRole::Egress);
    // Both signatures swapped: each is by the right key, for the wrong purpose.
    let swapped = SignedDescriptor::from_parts(
        d.descriptor().clone(),
        d.operator_signature(),
        d.relay_signature(),
        d.quic_signature(),
    );
    assert_eq!(
        swapped.verify(NOW),
        Err(DescriptorError::BadSignature {
            which: Signer::Relay(relay_key(1).id())
        })
    );
    // A descriptor changed after signing.
    let mut fields = d.descriptor().fields().clone();
    fields.bandwidth_bps *= 10;
    let inflated = SignedDescriptor::from_parts(
        RelayDescriptor::new(fields).unwrap(),
        d.relay_signature(),
        d.operator_signature(),
        d.quic_signature(),
    );
    assert!(matches!(
        inflated.verify(NOW),
        Err(DescriptorError::BadSignature { .. })
    ));
}

#[test]
fn a_cached_directory_can_be_checked_for_freshness_later() {
    let verified =
        verify_directory(signed(&directory(1), &[0, 1]), &trust(2, 3), NOW, None).unwrap();
    verified.check_fresh(&trust(2, 3), NOW + 3600).unwrap();
    assert!(matches!(
        verified.check_fresh(&trust(2, 3), T0 + DIRECTORY_LIFETIME),
        Err(DirectoryError::Expired { .. })
    ));
}

#[test]
fn trust_configs_that_would_accept_too_little_are_refused() {
    let ids = |n: u8| (0..n).map(|v| validator_key(v).id()).collect::<Vec<_>>();
    assert_eq!(
        TrustConfig::new(ids(3), 0, 60),
        Err(TrustConfigError::ZeroThreshold)
    );
    assert_eq!(
        TrustConfig::new(ids(3), 4, 60),
        Err(TrustConfigError::ThresholdTooHigh {
            threshold: 4,
            validators: 3
        })
    );
    assert_eq!(
        TrustConfig::new(Vec::new(), 1, 60),
        Err(TrustConfigError::ThresholdTooHigh {
            threshold: 1,
            validators: 0
        })
    );
    let mut twice = ids(2);
    twice.push(twice[0]);
    assert_eq!(
        TrustConfig::new(twice, 2, 60),
        Err(TrustConfigError::DuplicateValidator(validator_key(0).id()))
    );
    assert_eq!(
        TrustConfig::new(ids(3), 2, 0),
        Err(TrustConfigError::ZeroMaxAge)
    );
    assert_eq!(
        TrustConfig::new(ids(65), 2, 60),
        Err(TrustConfigError::TooManyValidators {
            limit: MAX_DIRECTORY_SIGNATURES
        })
    );
    let ok = TrustConfig::new(ids(3), 2, 60).unwrap();
    assert_eq!(
        (ok.threshold(), ok.validators().len(), ok.max_age_secs()),
        (2, 3, 60)
    );
}

/// Issue 16: clients decode a quorum-signed directory without checking
/// every key is a usable Ed25519 point (most of the decoding time at
/// 100,000 relays). A directory whose relay pins a QUIC "key" that is no
/// point is refused by validators, who decode strictly; signed anyway by a
/// quorum, a client accepts the listing and refuses that relay when it
/// would first use it, every other relay passing.
#[test]
fn an_unusable_key_under_a_quorum_is_refused_by_validators_and_on_first_use() {
    let not_a_point = (2u8..)
        .map(|i| {
            let mut bytes = [0u8; 32];
            bytes[0] = i;
            bytes
        })
        .find(|b| openrelay_directory::RelayId::from_bytes(*b).is_err())
        .unwrap();
    let mut signed = signed(&directory(7), &[0, 1]);
    let pin = *quic_pin(1).as_bytes();
    let at = signed.directory.windows(32).position(|w| w == pin).unwrap();
    let mut changed = signed.directory.to_vec();
    changed[at..at + 32].copy_from_slice(&not_a_point);
    signed.directory = changed.into();
    signed.signatures = [0, 1]
        .map(|v| validator_key(v).sign_directory_bytes(&signed.directory))
        .to_vec();

    assert!(matches!(
        Directory::from_bytes(&signed.directory),
        Err(FormatError::Invalid {
            field: "quic_pin",
            ..
        })
    ));
    let verified = verify_directory(signed, &trust(2, 3), NOW, None).unwrap();
    let bad = relay_key(1).id();
    assert!(verified.check_relay_signatures(&bad).is_err());
    for relay in verified.relays().filter(|r| r.id() != bad) {
        assert_eq!(relay.listed().check_signatures(), Ok(()), "{}", relay.id());
    }
}

/// A verified directory keeps where each descriptor lies in its bytes, not
/// the parsed descriptors: each relay decoded from there is exactly the
/// directory's descriptor, found in order, by id and by QUIC pin, with or
/// without a chain section.
#[test]
fn a_verified_directory_decodes_each_relay_from_its_bytes_as_listed() {
    for directory in [directory(1), with_chain(directory(1), 100, 0)] {
        let verified =
            verify_directory(signed(&directory, &[0, 1]), &trust(2, 3), NOW, None).unwrap();
        let listed = directory.descriptors();
        assert_eq!(verified.relay_count(), listed.len());
        let decoded: Vec<RelayDescriptor> =
            verified.relays().map(|r| r.descriptor().clone()).collect();
        let expected: Vec<RelayDescriptor> =
            listed.iter().map(|d| d.descriptor().clone()).collect();
        assert_eq!(decoded, expected);
        for d in listed {
            let d = d.descriptor();
            assert_eq!(verified.relay(&d.relay()).unwrap().descriptor(), d);
            assert_eq!(
                verified.relay_by_pin(&d.quic_pin()).unwrap().id(),
                d.relay()
            );
            assert_eq!(verified.check_relay_signatures(&d.relay()), Ok(()));
        }
        let unlisted = relay_key(99).id();
        assert!(verified.relay(&unlisted).is_none());
        assert!(verified.relay_by_pin(&quic_pin(99)).is_none());
        assert_eq!(
            verified.check_relay_signatures(&unlisted),
            Err(DirectoryError::RelayNotListed { relay: unlisted })
        );
    }
}

/// The decoder verification uses (which keeps no descriptors) accepts
/// exactly the bodies the full decoder accepts: every byte of a chain
/// directory flipped in turn, and the result signed by the quorum (so the
/// decoder is reached), is refused as malformed exactly when the full
/// decoder (keys deferred alike) refuses it, and for the same reason.
#[test]
fn verification_refuses_as_malformed_exactly_the_bodies_that_do_not_decode() {
    let body = with_chain(directory(1), 100, 0).to_bytes();
    for i in 0..body.len() {
        let mut mutated = body.clone();
        mutated[i] ^= 0xff;
        let decoded = Directory::from_quorum_signed_bytes_deferring_key_checks(
            &bytes::Bytes::copy_from_slice(&mutated),
        );
        let signatures = [0, 1]
            .map(|v| validator_key(v).sign_directory_bytes(&mutated))
            .to_vec();
        let verified = verify_directory(
            SignedDirectory {
                directory: mutated.into(),
                handovers: Vec::new(),
                signatures,
            },
            &trust(2, 3),
            NOW,
            None,
        );
        match (decoded, verified) {
            (Err(expected), Err(DirectoryError::Malformed(found))) => {
                assert_eq!(found, expected, "byte {i}");
            }
            (Ok(_), Err(DirectoryError::Malformed(found))) => {
                panic!("byte {i}: decodes, but verification found it malformed: {found}")
            }
            (Err(expected), Ok(_)) => panic!("byte {i}: {expected}, but it verified"),
            // Refused before the body is decoded (the mutation hit the
            // header's epoch or anchor), or for its contents.
            _ => {}
        }
    }
}

/// A verified directory whose body is kept only in the file it was read
/// from (a client's cache) lists the same relays, reading each back when
/// it is looked at; a relay whose bytes change in the file underneath is
/// then no relay at all, never another one, and the others read back as
/// they were;
/// a file that does not hold the directory is refused and the body stays
/// in memory.
#[test]
fn a_body_kept_in_a_file_serves_the_same_relays_and_refuses_a_changed_one() {
    use std::io::{Seek, SeekFrom, Write};
    let other_envelope = signed(&with_chain(directory(2), 100, 0), &[0, 1]).to_bytes();
    let directory = with_chain(directory(1), 100, 0);
    let envelope = signed(&directory, &[0, 1]).to_bytes();
    let verify = || verify_directory_bytes(&envelope, &trust(2, 3), NOW, None).unwrap();
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(&envelope).unwrap();

    let other = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(other.path(), other_envelope).unwrap();
    let verified = verify();
    assert!(matches!(
        verified.keep_body_in(std::fs::File::open(other.path()).unwrap()),
        Err(openrelay_directory::BodyFileError::Differs)
    ));
    assert!(verified.signed().is_some(), "the body stays in memory");

    verified
        .keep_body_in(std::fs::File::open(file.path()).unwrap())
        .unwrap();
    assert!(verified.signed().is_none(), "the body is only in the file");
    let listed = directory.descriptors();
    let decoded: Vec<RelayDescriptor> = verified.relays().map(|r| r.descriptor().clone()).collect();
    let expected: Vec<RelayDescriptor> = listed.iter().map(|d| d.descriptor().clone()).collect();
    assert_eq!(decoded, expected);
    for d in listed {
        let d = d.descriptor();
        assert_eq!(verified.relay(&d.relay()).unwrap().descriptor(), d);
        assert_eq!(verified.check_relay_signatures(&d.relay()), Ok(()));
    }

    // The second relay's bytes change in the file: its relay id is copied
    // over by the first relay's (a file edited to list the first twice).
    let first = listed[0].to_bytes();
    let second = listed[1].to_bytes();
    let body_start = 5;
    let directory_bytes = directory.to_bytes();
    let at = |bytes: &[u8]| {
        directory_bytes
            .windows(bytes.len())
            .position(|w| w == bytes)
            .unwrap()
    };
    let second_at = body_start + at(&second);
    file.as_file_mut()
        .seek(SeekFrom::Start(second_at as u64 + 1))
        .unwrap();
    file.as_file_mut().write_all(&first[1..33]).unwrap();
    file.as_file_mut().flush().unwrap();
    let changed = listed[1].descriptor().relay();
    assert!(verified.relay(&changed).is_none());
    assert_eq!(
        verified.check_relay_signatures(&changed),
        Err(DirectoryError::RelayNotListed { relay: changed })
    );
    // Every other relay is still read back as it was.
    let others: Vec<RelayDescriptor> = verified.relays().map(|r| r.descriptor().clone()).collect();
    let mut expected = expected;
    expected.remove(1);
    assert_eq!(others, expected);
    // A lookup by id may now miss a relay whose search passes the changed
    // bytes (the first relay's, whose id they carry), but never finds
    // another relay; one whose search does not pass them is found.
    for d in listed {
        let id = d.descriptor().relay();
        assert!(verified.relay(&id).is_none_or(|r| r.id() == id));
    }
    let last = listed[listed.len() - 1].descriptor().relay();
    assert_eq!(verified.relay(&last).unwrap().id(), last);
    assert_eq!(verified.check_relay_signatures(&last), Ok(()));
}
