use std::net::SocketAddr;

use openrelay_directory::{
    CountryCode, DescriptorFields, DirectoryError, Network, OperatorKey, OperatorProfile,
    ProfileFields, Region, RelayDescriptor, RelayKey, RelayRole, SignedDescriptor, SignedDirectory,
    TrustConfig, ValidatorKey, verify_directory,
};

use super::*;

const NOW: u64 = 1_750_000_000;
const TTL: u64 = 600;
const LIFETIME: u64 = 3600;

fn seed(tag: u8, index: u8) -> [u8; 32] {
    let mut s = [tag; 32];
    s[31] = index;
    s
}

fn operator_key(i: u8) -> OperatorKey {
    OperatorKey::from_bytes(&seed(0x1a, i))
}

fn relay_key(i: u8) -> RelayKey {
    RelayKey::from_bytes(&seed(0x1b, i))
}

fn profile(i: u8) -> Vec<u8> {
    let fields = ProfileFields {
        operator: operator_key(i).id(),
        name: format!("Operator {i}"),
        contact: format!("mailto:ops{i}@example.org"),
        jurisdiction: CountryCode::parse("DE").unwrap(),
        published_at: NOW - 86_400,
    };
    operator_key(i)
        .sign_profile(OperatorProfile::new(fields).unwrap())
        .unwrap()
        .to_bytes()
}

fn descriptor_with(
    relay: u8,
    operator: u8,
    role: RelayRole,
    pin_of: u8,
    not_after: u64,
) -> Vec<u8> {
    let endpoint: SocketAddr = format!("192.0.2.{}:4433", relay + 1).parse().unwrap();
    let fields = DescriptorFields {
        relay: relay_key(relay).id(),
        operator: operator_key(operator).id(),
        role,
        endpoints: vec![endpoint],
        quic_pin: RelayKey::from_bytes(&seed(0x1c, pin_of)).id().into(),
        region: Region {
            country: CountryCode::parse("NL").unwrap(),
            city: "Amsterdam".to_owned(),
        },
        network: Network::Asn(64_500 + u32::from(relay)),
        bandwidth_bps: 1_000_000_000,
        software_version: "openrelay 0.1.0".to_owned(),
        software_measurement: None,
        not_before: NOW - 3600,
        not_after,
    };
    SignedDescriptor::sign(
        RelayDescriptor::new(fields).unwrap(),
        &relay_key(relay),
        &operator_key(operator),
    )
    .unwrap()
    .to_bytes()
}

fn descriptor(relay: u8, operator: u8, role: RelayRole) -> Vec<u8> {
    descriptor_with(relay, operator, role, relay, NOW + 86_400)
}

fn registry(dir: &tempfile::TempDir) -> Registry<RedbStore> {
    let store = RedbStore::open(&dir.path().join("registry.redb")).unwrap();
    Registry::new(
        store,
        RegistrySettings {
            descriptor_ttl_secs: TTL,
            directory_lifetime_secs: LIFETIME,
        },
    )
}

/// Two operators, each with an ingress and an egress.
fn populated(dir: &tempfile::TempDir) -> Registry<RedbStore> {
    let registry = registry(dir);
    for operator in 0..2 {
        registry.publish_profile(&profile(operator)).unwrap();
        registry
            .publish_descriptor(&descriptor(2 * operator, operator, RelayRole::Ingress), NOW)
            .unwrap();
        registry
            .publish_descriptor(
                &descriptor(2 * operator + 1, operator, RelayRole::Egress),
                NOW,
            )
            .unwrap();
    }
    registry
}

#[test]
fn a_proposed_directory_signed_by_validators_verifies_for_clients() {
    let dir = tempfile::tempdir().unwrap();
    let registry = populated(&dir);
    let directory = registry.next_directory(NOW).unwrap();
    assert_eq!(directory.sequence(), 1);
    let validators: Vec<ValidatorKey> = (0..3)
        .map(|i| ValidatorKey::from_bytes(&seed(0x1d, i)))
        .collect();
    let mut signed = SignedDirectory::new(&directory);
    for validator in &validators[..2] {
        signed.sign(validator);
    }
    let trust = TrustConfig::new(validators.iter().map(ValidatorKey::id), 2, 2 * LIFETIME).unwrap();
    let verified = verify_directory(signed.clone(), &trust, NOW + 1, None).unwrap();
    assert_eq!(verified.relays().count(), 4);

    assert_eq!(registry.record(&signed).unwrap(), 1);
    assert_eq!(registry.latest().unwrap().unwrap(), signed.to_bytes());
    assert_eq!(
        registry.next_directory(NOW + 10).unwrap().sequence(),
        2,
        "sequence advances"
    );
}

#[test]
fn one_validator_is_not_enough_for_a_threshold_of_two() {
    let dir = tempfile::tempdir().unwrap();
    let directory = populated(&dir).next_directory(NOW).unwrap();
    let validators: Vec<ValidatorKey> = (0..3)
        .map(|i| ValidatorKey::from_bytes(&seed(0x1d, i)))
        .collect();
    let mut signed = SignedDirectory::new(&directory);
    signed.sign(&validators[0]);
    let trust = TrustConfig::new(validators.iter().map(ValidatorKey::id), 2, 2 * LIFETIME).unwrap();
    assert!(matches!(
        verify_directory(signed, &trust, NOW + 1, None),
        Err(DirectoryError::UnderSigned {
            valid: 1,
            needed: 2
        })
    ));
}

#[test]
fn a_relay_that_stops_refreshing_leaves_the_next_directory() {
    let dir = tempfile::tempdir().unwrap();
    let registry = populated(&dir);
    // Relay 0 refreshes, the others fall silent.
    let later = NOW + TTL - 10;
    registry
        .publish_descriptor(&descriptor(0, 0, RelayRole::Ingress), later)
        .unwrap();
    let after_ttl = NOW + TTL + 1;
    let directory = registry.next_directory(after_ttl).unwrap();
    let relays: Vec<RelayId> = directory
        .descriptors()
        .iter()
        .map(|d| d.descriptor().relay())
        .collect();
    assert_eq!(relays, vec![relay_key(0).id()]);
    assert_eq!(registry.prune(after_ttl).unwrap(), 3);
    assert_eq!(registry.live(after_ttl).unwrap().len(), 1);
}

#[test]
fn a_descriptor_expiring_before_the_directory_is_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let registry = populated(&dir);
    let short = descriptor_with(4, 1, RelayRole::Egress, 4, NOW + LIFETIME / 2);
    registry.publish_descriptor(&short, NOW).unwrap();
    let directory = registry.next_directory(NOW).unwrap();
    assert_eq!(
        directory.descriptors().len(),
        4,
        "the short-lived relay is not listed"
    );
}

#[test]
fn bad_publications_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let registry = populated(&dir);
    let mut forged = descriptor(5, 1, RelayRole::Egress);
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert!(matches!(
        registry.publish_descriptor(&forged, NOW),
        Err(PublishError::Descriptor(_))
    ));
    assert!(matches!(
        registry.publish_descriptor(b"junk", NOW),
        Err(PublishError::Malformed(_))
    ));
    let stranger = descriptor(6, 7, RelayRole::Egress);
    assert!(matches!(
        registry.publish_descriptor(&stranger, NOW),
        Err(PublishError::UnknownOperator)
    ));
    // Relay 7 claims relay 1's QUIC key.
    let thief = descriptor_with(7, 0, RelayRole::Egress, 1, NOW + 86_400);
    assert!(matches!(
        registry.publish_descriptor(&thief, NOW),
        Err(PublishError::PinClaimed)
    ));
    let mut profile = profile(1);
    profile[3] ^= 1;
    assert!(registry.publish_profile(&profile).is_err());
    assert_eq!(registry.live(NOW).unwrap().len(), 4);
}

#[test]
fn the_store_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let signed = {
        let registry = populated(&dir);
        let signed = SignedDirectory::new(&registry.next_directory(NOW).unwrap());
        registry.record(&signed).unwrap();
        signed
    };
    let registry = registry(&dir);
    assert_eq!(registry.live(NOW).unwrap().len(), 4);
    assert_eq!(registry.latest().unwrap().unwrap(), signed.to_bytes());
    assert_eq!(registry.next_directory(NOW).unwrap().sequence(), 2);
}
