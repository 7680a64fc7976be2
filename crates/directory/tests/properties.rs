//! Property tests of the canonical encoding: every value round-trips to the
//! same bytes, and no input, arbitrary or a mutated valid encoding, makes a
//! decoder panic; whatever decodes re-encodes to exactly the input.
#![allow(clippy::unwrap_used)]

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::LazyLock;

use openrelay_directory::{
    AttestationEvidence, ChainAnchor, ChainOperator, ChainRelay, ChainRelease, ChainSection,
    CountryCode, DescriptorFields, Directory, Network, OperatorId, OperatorProfile, ProfileFields,
    Region, RelayDescriptor, RelayId, RelayMeasurement, ReleaseMeasurement, ReleaseStatus,
    Signature, SignedDescriptor, SignedDirectory, SignedOperatorProfile, SignedValidatorSetChange,
    ValidatorId, ValidatorMember, ValidatorSet, ValidatorSetChange, ValidatorSignature,
};
use openrelay_testkit::fixtures::*;
use openrelay_types::{KeyPin, RelayRole};
use proptest::prelude::*;

const POOL: u8 = 12;

/// Public keys are derived once: random 32 bytes are rarely valid points.
static RELAYS: LazyLock<Vec<RelayId>> =
    LazyLock::new(|| (0..POOL).map(|i| relay_key(i).id()).collect());
static OPERATORS: LazyLock<Vec<OperatorId>> =
    LazyLock::new(|| (0..POOL).map(|i| operator_key(i).id()).collect());
static VALIDATORS: LazyLock<Vec<ValidatorId>> =
    LazyLock::new(|| (0..POOL).map(|i| validator_key(i).id()).collect());
static PINS: LazyLock<Vec<KeyPin>> = LazyLock::new(|| (0..POOL).map(quic_pin).collect());

fn text(max: usize) -> impl Strategy<Value = String> {
    // Letters (some non-ASCII), digits, inner spaces and punctuation.
    proptest::string::string_regex(&format!(
        "[a-zA-Z0-9äöüßé.@:/-]([a-zA-Z0-9äöüßé .@:/-]{{0,{}}}[a-zA-Z0-9.])?",
        max / 2 - 2
    ))
    .unwrap()
    .prop_filter("within the byte limit", move |s| s.len() <= max)
}

fn country() -> impl Strategy<Value = CountryCode> {
    (b'A'..=b'Z', b'A'..=b'Z').prop_map(|(a, b)| CountryCode::from_bytes([a, b]).unwrap())
}

fn endpoint() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (1u32..0xe000_0000, 1u16..)
            .prop_map(|(ip, port)| SocketAddr::from((Ipv4Addr::from(ip), port))),
        (0x2000u128 << 112..0x3fffu128 << 112, 1u16..)
            .prop_map(|(ip, port)| SocketAddr::from((Ipv6Addr::from(ip), port))),
    ]
}

fn network_label() -> impl Strategy<Value = Network> {
    prop_oneof![
        (1u32..).prop_map(Network::Asn),
        text(openrelay_directory::MAX_NETWORK_LABEL_LEN)
            .prop_filter("not an AS number", |s| {
                !(s.len() > 2
                    && s.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("as"))
                    && s.bytes().skip(2).all(|b| b.is_ascii_digit()))
            })
            .prop_map(Network::Label),
    ]
}

prop_compose! {
    fn descriptor_fields_any()(
        relay in 0..POOL,
        operator_offset in 1..POOL,
        ingress in any::<bool>(),
        endpoints in proptest::collection::btree_set(endpoint(), 1..=openrelay_directory::MAX_ENDPOINTS),
        pin in 0..POOL,
        country in country(),
        city in prop_oneof![Just(String::new()), text(openrelay_directory::MAX_CITY_LEN)],
        network in network_label(),
        bandwidth_bps in 1u64..,
        software_version in "[ -~]{0,62}[!-~]".prop_filter("no leading space", |s| !s.starts_with(' ')),
        attestation in proptest::option::of(proptest::collection::vec(any::<u8>(), 1..64)),
        not_before in any::<u64>(),
        lifetime in 1..=openrelay_directory::MAX_DESCRIPTOR_LIFETIME_SECS,
    ) -> DescriptorFields {
        DescriptorFields {
            relay: RELAYS[usize::from(relay)],
            operator: OPERATORS[usize::from((relay + operator_offset) % POOL)],
            role: if ingress { RelayRole::Ingress } else { RelayRole::Egress },
            endpoints: endpoints.into_iter().collect(),
            quic_pin: PINS[usize::from(pin)],
            region: Region { country, city },
            network,
            bandwidth_bps,
            software_version,
            attestation: attestation.map(|bytes| AttestationEvidence::new(bytes).unwrap()),
            not_before: not_before.min(u64::MAX - lifetime),
            not_after: not_before.min(u64::MAX - lifetime) + lifetime,
        }
    }
}

prop_compose! {
    fn signed_descriptor_any()(fields in descriptor_fields_any(), a in any::<[u8; 32]>(), b in any::<[u8; 32]>(), c in any::<[u8; 32]>()) -> SignedDescriptor {
        let mut relay_sig = [0u8; 64];
        relay_sig[..32].copy_from_slice(&a);
        let mut operator_sig = [0u8; 64];
        operator_sig[32..].copy_from_slice(&b);
        let mut quic_sig = [0u8; 64];
        quic_sig[16..48].copy_from_slice(&c);
        SignedDescriptor::from_parts(
            RelayDescriptor::new(fields).unwrap(),
            Signature::from_bytes(relay_sig),
            Signature::from_bytes(operator_sig),
            Signature::from_bytes(quic_sig),
        )
    }
}

prop_compose! {
    fn profile_any()(
        operator in 0..POOL,
        name in text(openrelay_directory::MAX_NAME_LEN),
        contact in text(openrelay_directory::MAX_CONTACT_LEN),
        jurisdiction in country(),
        chain_account in proptest::option::of(any::<[u8; 20]>()),
        published_at in any::<u64>(),
        sig in any::<[u8; 32]>(),
    ) -> SignedOperatorProfile {
        let mut signature = [0u8; 64];
        signature[..32].copy_from_slice(&sig);
        SignedOperatorProfile::from_parts(
            OperatorProfile::new(ProfileFields {
                operator: OPERATORS[usize::from(operator)],
                name,
                contact,
                jurisdiction,
                chain_account,
                published_at,
            })
            .unwrap(),
            Signature::from_bytes(signature),
        )
    }
}

prop_compose! {
    /// A key set of issuer `issuer` (of the fixtures) whose keys are the
    /// fixtures' daily keys `first..first + count`, any signature.
    fn key_set_any()(
        issuer in 0..POOL,
        first in 0u8..8,
        count in 1usize..=openrelay_directory::MAX_ISSUER_KEYS,
        published_at in 0u64..T0,
        sig in any::<[u8; 32]>(),
    ) -> openrelay_directory::SignedIssuerKeySet {
        let keys = (0..count).map(|i| token_key(first + i as u8, 86_400)).collect();
        let set = openrelay_directory::IssuerKeySet::new(openrelay_directory::KeySetFields {
            issuer: issuer_key(issuer).id(),
            issuer_name: format!("issuer{issuer}.example"),
            published_at,
            keys,
        })
        .unwrap();
        let mut signature = [0u8; 64];
        signature[8..40].copy_from_slice(&sig);
        openrelay_directory::SignedIssuerKeySet::from_parts(set, Signature::from_bytes(signature))
    }
}

fn anchor_any() -> impl Strategy<Value = ChainAnchor> {
    (
        any::<u64>(),
        any::<[u8; 20]>(),
        any::<u64>(),
        any::<[u8; 32]>(),
    )
        .prop_map(
            |(chain_id, contract, block_number, block_hash)| ChainAnchor {
                chain_id,
                contract,
                block_number,
                block_hash,
            },
        )
}

/// The chain figures of a directory's operators and relays, from random
/// numbers (up to four of each, as [`directory_any`] makes); a relay's
/// measurement, if any, ends at most its random `u64` after genesis and is
/// clamped to the directory's issue time.
type ChainSeed = (
    ChainAnchor,
    u64,
    Vec<(u128, u64)>,
    Vec<(u32, Option<(u64, u64, u64)>)>,
    Vec<ChainRelease>,
);

/// Up to four releases with distinct ids, each with 1 to 3 measurements.
fn releases_any() -> impl Strategy<Value = Vec<ChainRelease>> {
    let measurement = (any::<u8>(), any::<u8>()).prop_map(|(platform, fill)| ReleaseMeasurement {
        platform,
        value: [fill; openrelay_directory::MEASUREMENT_LEN],
    });
    proptest::collection::btree_map(
        any::<[u8; 32]>(),
        (
            any::<[u8; 32]>(),
            any::<bool>(),
            proptest::collection::btree_set(measurement, 1..=3),
        ),
        0..=4,
    )
    .prop_map(|releases| {
        releases
            .into_iter()
            .map(
                |(release_id, (binary_sha256, revoked, measurements))| ChainRelease {
                    release_id,
                    binary_sha256,
                    status: if revoked {
                        ReleaseStatus::Revoked
                    } else {
                        ReleaseStatus::Approved
                    },
                    measurements: measurements.into_iter().collect(),
                },
            )
            .collect()
    })
}

fn chain_seed() -> impl Strategy<Value = ChainSeed> {
    (
        anchor_any(),
        any::<u64>(),
        proptest::collection::vec(any::<(u128, u64)>(), 4),
        proptest::collection::vec(
            (any::<u32>(), proptest::option::of(any::<(u64, u64, u64)>())),
            4,
        ),
        releases_any(),
    )
}

fn chain_section(seed: ChainSeed, directory: &Directory) -> ChainSection {
    let (anchor, validator_epoch, operators, relays, releases) = seed;
    ChainSection {
        anchor,
        validator_epoch,
        operators: directory
            .operators()
            .iter()
            .zip(operators)
            .map(|(p, (stake_wei, covered_mbps))| ChainOperator {
                operator: p.profile().operator(),
                // A chain directory lists only operators whose profile
                // names their account (`directory_any` keeps only those).
                account: p.profile().chain_account().unwrap_or_default(),
                stake_wei,
                covered_mbps,
            })
            .collect(),
        relays: directory
            .descriptors()
            .iter()
            .zip(relays)
            .map(|(d, (bandwidth_mbps, measured))| ChainRelay {
                relay: d.descriptor().relay(),
                bandwidth_mbps,
                measured: measured.map(|(bps, epoch, at)| RelayMeasurement {
                    measured_bps: bps,
                    measured_epoch: epoch,
                    measured_at: at.min(
                        directory
                            .issued_at()
                            .saturating_add(openrelay_directory::MAX_CLOCK_SKEW_SECS),
                    ),
                }),
            })
            .collect(),
        releases,
    }
}

prop_compose! {
    /// A validator set of the fixtures' validators at `epoch`, weights that
    /// cannot overflow.
    fn validator_set_any(epoch: u64)(
        members in proptest::collection::btree_map(0..POOL, 1..=u128::MAX / u128::from(POOL), 1..6),
    ) -> ValidatorSet {
        ValidatorSet::new(
            epoch,
            members
                .into_iter()
                .map(|(v, weight)| ValidatorMember { validator: VALIDATORS[usize::from(v)], weight })
                .collect(),
        )
        .unwrap()
    }
}

prop_compose! {
    fn handover_any(epoch: u64)(
        anchor in anchor_any(),
        set in validator_set_any(epoch),
        signatures in signatures_any(),
    ) -> SignedValidatorSetChange {
        let mut signed = SignedValidatorSetChange::new(ValidatorSetChange::new(anchor, set).unwrap());
        for s in signatures {
            signed.add_signature(s);
        }
        signed
    }
}

fn handovers_any() -> impl Strategy<Value = Vec<SignedValidatorSetChange>> {
    (1u64..u64::MAX - 4, 0usize..3).prop_flat_map(|(first, count)| {
        (0..count as u64)
            .map(|i| handover_any(first + i))
            .collect::<Vec<_>>()
    })
}

fn signatures_any() -> impl Strategy<Value = Vec<ValidatorSignature>> {
    proptest::collection::vec((0..POOL, any::<[u8; 32]>()), 0..6).prop_map(|signatures| {
        signatures
            .into_iter()
            .map(|(v, s)| {
                let mut signature = [0u8; 64];
                signature[..32].copy_from_slice(&s);
                ValidatorSignature {
                    validator: VALIDATORS[usize::from(v)],
                    signature: Signature::from_bytes(signature),
                }
            })
            .collect()
    })
}

prop_compose! {
    fn directory_any()(
        sequence in any::<u64>(),
        issued_at in any::<u64>(),
        lifetime in 1..=openrelay_directory::MAX_DIRECTORY_LIFETIME_SECS,
        operators in proptest::collection::vec(profile_any(), 0..4),
        descriptors in proptest::collection::vec(signed_descriptor_any(), 0..4),
        key_sets in proptest::collection::vec(key_set_any(), 0..3),
        chain in proptest::option::of(chain_seed()),
    ) -> Directory {
        let issued_at = issued_at.min(u64::MAX - lifetime);
        let mut operators = operators;
        if chain.is_some() {
            operators.retain(|p| p.profile().chain_account().is_some());
        }
        operators.sort_by_key(|p| p.profile().operator());
        operators.dedup_by_key(|p| p.profile().operator());
        let mut descriptors = descriptors;
        descriptors.sort_by_key(|d| d.descriptor().relay());
        descriptors.dedup_by_key(|d| d.descriptor().relay());
        let mut key_sets = key_sets;
        key_sets.sort_by_key(|s| s.key_set().issuer());
        key_sets.dedup_by_key(|s| s.key_set().issuer());
        let directory = Directory::new(sequence, issued_at, issued_at + lifetime, operators, descriptors)
            .unwrap()
            .with_issuer_keys(key_sets)
            .unwrap();
        match chain {
            Some(seed) => {
                let section = chain_section(seed, &directory);
                directory.with_chain(section).unwrap()
            }
            None => directory,
        }
    }
}

prop_compose! {
    fn signed_directory_any()(
        directory in directory_any(),
        handovers in handovers_any(),
        signatures in signatures_any(),
    ) -> SignedDirectory {
        SignedDirectory {
            directory: directory.to_bytes().into(),
            handovers,
            signatures,
        }
    }
}

/// Decodes `bytes` as every object; whatever decodes re-encodes to `bytes`.
fn decode_all(bytes: &[u8]) {
    if let Ok(d) = RelayDescriptor::from_bytes(bytes) {
        assert_eq!(d.to_bytes(), bytes);
    }
    if let Ok(d) = SignedDescriptor::from_bytes(bytes) {
        assert_eq!(d.to_bytes(), bytes);
        assert_eq!(d.body(), d.descriptor().to_bytes());
    }
    if let Ok(p) = OperatorProfile::from_bytes(bytes) {
        assert_eq!(p.to_bytes(), bytes);
    }
    if let Ok(p) = SignedOperatorProfile::from_bytes(bytes) {
        assert_eq!(p.to_bytes(), bytes);
    }
    let deferred = Directory::from_quorum_signed_bytes_deferring_key_checks(
        &bytes::Bytes::copy_from_slice(bytes),
    );
    if let Ok(d) = &deferred {
        assert_eq!(d.to_bytes(), bytes);
    }
    if let Ok(d) = Directory::from_bytes(bytes) {
        assert_eq!(d.to_bytes(), bytes);
        assert_eq!(deferred.as_ref().ok(), Some(&d));
    }
    if let Ok(k) = openrelay_directory::SignedIssuerKeySet::from_bytes(bytes) {
        assert_eq!(k.to_bytes(), bytes);
    }
    if let Ok(s) = SignedDirectory::from_bytes(bytes) {
        assert_eq!(s.to_bytes(), bytes);
        if let Ok(d) = Directory::from_bytes(&s.directory) {
            assert_eq!(d.to_bytes(), s.directory);
        }
    }
    if let Ok(set) = ValidatorSet::from_bytes(bytes) {
        assert_eq!(set.to_bytes(), bytes);
    }
    if let Ok(change) = ValidatorSetChange::from_bytes(bytes) {
        assert_eq!(change.to_bytes(), bytes);
    }
    if let Ok(signed) = SignedValidatorSetChange::from_bytes(bytes) {
        assert_eq!(signed.to_bytes(), bytes);
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..).prop_map(|(i, x)| Mutation::Flip(i, x)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, x)| Mutation::Insert(i, x)),
        any::<usize>().prop_map(Mutation::Remove),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = bytes.len();
        match *m {
            Mutation::Flip(i, x) if len > 0 => bytes[i % len] ^= x,
            Mutation::Insert(i, x) => bytes.insert(i % (len + 1), x),
            Mutation::Remove(i) if len > 0 => {
                bytes.remove(i % len);
            }
            Mutation::Truncate(i) => bytes.truncate(i % (len + 1)),
            _ => {}
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn descriptors_round_trip(signed in signed_descriptor_any()) {
        let body = signed.descriptor().to_bytes();
        prop_assert_eq!(&RelayDescriptor::from_bytes(&body).unwrap(), signed.descriptor());
        let bytes = signed.to_bytes();
        let decoded = SignedDescriptor::from_bytes(&bytes).unwrap();
        prop_assert_eq!(decoded.to_bytes(), bytes);
        prop_assert_eq!(decoded, signed);
    }

    #[test]
    fn profiles_round_trip(signed in profile_any()) {
        let bytes = signed.to_bytes();
        let decoded = SignedOperatorProfile::from_bytes(&bytes).unwrap();
        prop_assert_eq!(decoded.to_bytes(), bytes);
        prop_assert_eq!(decoded, signed);
    }

    #[test]
    fn signed_directories_round_trip(signed in signed_directory_any()) {
        let bytes = signed.to_bytes();
        let decoded = SignedDirectory::from_bytes(&bytes).unwrap();
        prop_assert_eq!(decoded.to_bytes(), bytes);
        let directory = Directory::from_bytes(&decoded.directory).unwrap();
        prop_assert_eq!(directory.to_bytes(), decoded.directory.clone());
        prop_assert_eq!(
            Directory::from_quorum_signed_bytes_deferring_key_checks(&decoded.directory).unwrap(),
            directory
        );
        prop_assert_eq!(decoded, signed);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        decode_all(&bytes);
    }

    #[test]
    fn arbitrary_bytes_behind_a_valid_version_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        // Past the version byte, so the rest of the parser is reached.
        let mut input = vec![1u8];
        input.extend_from_slice(&bytes);
        decode_all(&input);
    }

    #[test]
    fn mutated_encodings_never_panic(
        signed in signed_directory_any(),
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        decode_all(&mutate(signed.to_bytes(), &mutations));
        decode_all(&mutate(signed.directory.to_vec(), &mutations));
    }

    #[test]
    fn hand_overs_and_sets_round_trip(handover in handover_any(7)) {
        let bytes = handover.to_bytes();
        let decoded = SignedValidatorSetChange::from_bytes(&bytes).unwrap();
        prop_assert_eq!(decoded.to_bytes(), bytes);
        prop_assert_eq!(&decoded, &handover);
        let set = handover.change().set();
        prop_assert_eq!(&ValidatorSet::from_bytes(&set.to_bytes()).unwrap(), set);
    }

    #[test]
    fn arbitrary_bytes_behind_chain_versions_never_panic(
        version in prop_oneof![Just(1u8), Just(2u8), Just(4u8), Just(5u8)],
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        // Directory 5 (and 4, refused), envelope 2, hand-over and set 1.
        let mut input = vec![version];
        input.extend_from_slice(&bytes);
        decode_all(&input);
    }

    /// The chain's commitment changes with everything but the validity
    /// window and the attestation evidence (issues 13 and 15): equal
    /// exactly when `same_except_freshness`.
    #[test]
    fn content_hashes_are_equal_iff_same_except_freshness(
        a in descriptor_fields_any(),
        b in descriptor_fields_any(),
        pick in 0usize..5,
        not_before in any::<u64>(),
        lifetime in 1..=openrelay_directory::MAX_DESCRIPTOR_LIFETIME_SECS,
    ) {
        // Random pairs almost never agree, so also take `a` with one part of
        // `b`: only its window, or one other field.
        let mut mixed = a.clone();
        match pick {
            0 => {
                mixed.not_before = not_before.min(u64::MAX - lifetime);
                mixed.not_after = mixed.not_before + lifetime;
            }
            1 => mixed.bandwidth_bps = b.bandwidth_bps,
            2 => mixed.endpoints = b.endpoints.clone(),
            3 => mixed.attestation = b.attestation.clone(),
            _ => mixed.software_version = b.software_version.clone(),
        }
        let a = RelayDescriptor::new(a).unwrap();
        for other in [RelayDescriptor::new(mixed).unwrap(), RelayDescriptor::new(b).unwrap()] {
            prop_assert_eq!(
                a.content_hash() == other.content_hash(),
                a.same_except_freshness(&other)
            );
        }
    }

    #[test]
    fn mutated_descriptors_never_panic(
        signed in signed_descriptor_any(),
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        decode_all(&mutate(signed.to_bytes(), &mutations));
        decode_all(&mutate(signed.descriptor().to_bytes(), &mutations));
    }
}

/// The real network's objects (with valid signatures) also survive mutation:
/// run a fixed set once, not per case, to keep key derivation out of loops.
#[test]
fn mutated_fixture_directory_never_panics() {
    let bytes = signed(&directory(1), &[0, 1]).to_bytes();
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0xff;
        decode_all(&b);
    }
}
