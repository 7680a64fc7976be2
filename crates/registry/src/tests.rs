use std::net::SocketAddr;

use openrelay_config::PublicationLimits;
use openrelay_directory::vote::{Vote, VoteEntry, tally};
use openrelay_directory::{
    CountryCode, DescriptorFields, DirectoryError, Network, OperatorKey, OperatorProfile,
    ProfileFields, QuicKey, Region, RelayDescriptor, RelayKey, SignedDescriptor, SignedDirectory,
    TrustConfig, ValidatorKey, verify_directory,
};
use openrelay_types::RelayRole;

use super::*;

const NOW: u64 = 1_750_000_000;
const TTL: u64 = 600;
const LIFETIME: u64 = 3600;

fn seed(tag: u8, index: u32) -> [u8; 32] {
    let mut s = [tag; 32];
    s[28..].copy_from_slice(&index.to_be_bytes());
    s
}

fn operator_key(i: u32) -> OperatorKey {
    OperatorKey::from_bytes(&seed(0x1a, i))
}

fn relay_key(i: u32) -> RelayKey {
    RelayKey::from_bytes(&seed(0x1b, i))
}

fn quic_key(i: u32) -> QuicKey {
    QuicKey::from_bytes(&seed(0x1c, i))
}

fn profile_at(i: u32, published_at: u64, name: &str) -> Vec<u8> {
    let fields = ProfileFields {
        operator: operator_key(i).id(),
        name: name.to_owned(),
        contact: format!("mailto:ops{i}@example.org"),
        jurisdiction: CountryCode::parse("DE").unwrap(),
        // The account `chain_tests::account(i)` registers on chain.
        chain_account: Some([0x40 + i as u8; 20]),
        published_at,
    };
    operator_key(i)
        .sign_profile(OperatorProfile::new(fields).unwrap())
        .unwrap()
        .to_bytes()
}

fn profile(i: u32) -> Vec<u8> {
    profile_at(i, NOW - 86_400, &format!("Operator {i}"))
}

fn fields(relay: u32, operator: u32, role: RelayRole) -> DescriptorFields {
    let endpoint: SocketAddr = format!("192.0.2.{}:4433", relay % 250 + 1).parse().unwrap();
    DescriptorFields {
        relay: relay_key(relay).id(),
        operator: operator_key(operator).id(),
        role,
        endpoints: vec![endpoint],
        quic_pin: quic_key(relay).pin(),
        region: Region {
            country: CountryCode::parse("NL").unwrap(),
            city: "Amsterdam".to_owned(),
        },
        network: Network::Asn(64_500 + relay),
        bandwidth_bps: 1_000_000_000,
        software_version: "openrelay 0.1.0".to_owned(),
        attestation: None,
        not_before: NOW - 3600,
        not_after: NOW + 86_400,
    }
}

/// Signed by relay `relay`'s key, `operator`'s key and the QUIC key `quic`.
fn sign_with(fields: DescriptorFields, relay: u32, operator: u32, quic: u32) -> Vec<u8> {
    let descriptor = RelayDescriptor::new(fields).unwrap();
    let quic_signature = quic_key(quic).sign_descriptor(&descriptor);
    SignedDescriptor::from_parts(
        descriptor.clone(),
        relay_key(relay).sign_descriptor(&descriptor).unwrap(),
        operator_key(operator).sign_descriptor(&descriptor).unwrap(),
        quic_signature,
    )
    .to_bytes()
}

fn descriptor(relay: u32, operator: u32, role: RelayRole) -> Vec<u8> {
    sign_with(fields(relay, operator, role), relay, operator, relay)
}

fn limits() -> PublicationLimits {
    PublicationLimits {
        descriptor_ttl_secs: TTL,
        // The fixtures use documentation addresses (192.0.2.0/24).
        dangerously_allow_special_purpose_endpoints: true,
        ..PublicationLimits::default()
    }
}

fn open_with(dir: &tempfile::TempDir, limits: PublicationLimits) -> Registry<RedbStore> {
    let store = RedbStore::open(&dir.path().join("registry.redb")).unwrap();
    Registry::open(store, limits).unwrap()
}

fn registry(dir: &tempfile::TempDir) -> Registry<RedbStore> {
    open_with(dir, limits())
}

/// Two operators, each with an ingress and an egress.
fn populated(dir: &tempfile::TempDir) -> Registry<RedbStore> {
    let registry = registry(dir);
    for operator in 0..2 {
        registry.publish_profile(&profile(operator), NOW).unwrap();
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

fn validators() -> Vec<ValidatorKey> {
    (0..3)
        .map(|i| ValidatorKey::from_bytes(&seed(0x1d, i)))
        .collect()
}

/// Every live relay, as every validator would vote for it.
fn everything<S: RegistryStore>(registry: &Registry<S>, now: u64) -> BTreeMap<RelayId, Elected> {
    let entries = registry.vote_entries(now, now + LIFETIME);
    let votes: Vec<Vote> = validators()
        .iter()
        .map(|v| Vote::new(v.id(), now, entries.clone()).unwrap())
        .collect();
    tally(&votes)
}

#[test]
fn an_assembled_directory_signed_by_validators_verifies_for_clients() {
    let dir = tempfile::tempdir().unwrap();
    let registry = populated(&dir);
    let (directory, missing) = registry
        .assemble(&everything(&registry, NOW), 1, NOW, NOW + LIFETIME)
        .unwrap();
    assert!(missing.is_empty());
    let validators = validators();
    let mut signed = SignedDirectory::new(&directory);
    for validator in &validators[..2] {
        signed.sign(validator);
    }
    let trust = TrustConfig::new(validators.iter().map(ValidatorKey::id), 2, 2 * LIFETIME).unwrap();
    let verified = verify_directory(signed.clone(), &trust, NOW + 1, None).unwrap();
    assert_eq!(verified.relays().count(), 4);
    assert_eq!(registry.record(&signed).unwrap(), 1);
    assert_eq!(registry.latest().unwrap().unwrap(), signed.to_bytes());

    // One validator is not enough for a threshold of two.
    let mut one = SignedDirectory::new(&directory);
    one.sign(&validators[0]);
    assert!(matches!(
        verify_directory(one, &trust, NOW + 1, None),
        Err(DirectoryError::UnderSigned {
            valid: 1,
            needed: 2
        })
    ));
}

#[test]
fn a_relay_that_stops_refreshing_is_no_longer_voted_for() {
    let dir = tempfile::tempdir().unwrap();
    let registry = populated(&dir);
    // Relay 0 refreshes, the others fall silent.
    let later = NOW + TTL - 10;
    let mut refreshed = fields(0, 0, RelayRole::Ingress);
    refreshed.not_before = later - 60;
    registry
        .publish_descriptor(&sign_with(refreshed, 0, 0, 0), later)
        .unwrap();
    let after_ttl = NOW + TTL + 1;
    let voted: Vec<RelayId> = registry
        .vote_entries(after_ttl, after_ttl + LIFETIME)
        .iter()
        .map(|e| e.relay)
        .collect();
    assert_eq!(voted, vec![relay_key(0).id()]);
    assert_eq!(registry.live(after_ttl).len(), 1);
    // The silent ones are kept (not live) until their own expiry, so a
    // replay cannot revive them ...
    assert!(matches!(
        registry.publish_descriptor(&descriptor(1, 0, RelayRole::Egress), after_ttl),
        Err(PublishError::NotNewer { .. })
    ));
    // ... and forgotten after it.
    let gone = NOW + 86_400;
    assert_eq!(registry.prune(gone).unwrap().descriptors, 4);
}

#[test]
fn a_descriptor_expiring_before_the_directory_cannot_be_listed() {
    let dir = tempfile::tempdir().unwrap();
    let registry = populated(&dir);
    let mut short = fields(4, 1, RelayRole::Egress);
    short.not_after = NOW + LIFETIME / 2;
    registry
        .publish_descriptor(&sign_with(short, 4, 1, 4), NOW)
        .unwrap();
    // Validators do not vote for it ...
    assert_eq!(registry.vote_entries(NOW, NOW + LIFETIME).len(), 4);
    // ... and were it elected anyway, it is reported missing, not listed.
    let mut elected = everything(&registry, NOW);
    elected.insert(
        relay_key(4).id(),
        Elected {
            votes: 3,
            newest_not_before: NOW - 3600,
        },
    );
    let (directory, missing) = registry.assemble(&elected, 1, NOW, NOW + LIFETIME).unwrap();
    assert_eq!(directory.descriptors().len(), 4);
    assert_eq!(missing, vec![relay_key(4).id()]);
}

#[test]
fn bad_publications_are_refused_with_their_status_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let registry = populated(&dir);
    let mut forged = descriptor(5, 1, RelayRole::Egress);
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let e = registry.publish_descriptor(&forged, NOW).unwrap_err();
    assert!(matches!(e, PublishError::Descriptor(_)), "{e}");
    assert_eq!(e.status(), 403);
    let e = registry.publish_descriptor(b"junk", NOW).unwrap_err();
    assert_eq!(e.status(), 400);
    let e = registry
        .publish_descriptor(&descriptor(6, 7, RelayRole::Egress), NOW)
        .unwrap_err();
    assert!(matches!(e, PublishError::UnknownOperator));
    assert_eq!(e.status(), 422);
    let mut profile = profile(1);
    profile[3] ^= 1;
    assert!(registry.publish_profile(&profile, NOW).is_err());
    assert_eq!(registry.live(NOW).len(), 4);
}

/// Issue 11, item 8: a descriptor claiming another relay's QUIC key needs
/// that key's signature, so nobody can lock an honest relay out.
#[test]
fn a_quic_key_claimed_without_holding_it_locks_nobody_out() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry(&dir);
    registry.publish_profile(&profile(0), NOW).unwrap();
    registry.publish_profile(&profile(1), NOW).unwrap();
    // Relay 9 (operator 1) claims relay 0's QUIC key, signing with its own.
    let mut thief = fields(9, 1, RelayRole::Ingress);
    thief.quic_pin = quic_key(0).pin();
    let e = registry
        .publish_descriptor(&sign_with(thief, 9, 1, 9), NOW)
        .unwrap_err();
    assert!(
        matches!(
            e,
            PublishError::Descriptor(DescriptorError::BadSignature {
                which: openrelay_directory::Signer::QuicKey(_)
            })
        ),
        "{e}"
    );
    // The honest relay, which holds the key, publishes.
    registry
        .publish_descriptor(&descriptor(0, 0, RelayRole::Ingress), NOW)
        .unwrap();
    // Whoever holds a key cannot list it under a second relay id.
    let mut twin = fields(8, 1, RelayRole::Ingress);
    twin.quic_pin = quic_key(0).pin();
    assert!(matches!(
        registry.publish_descriptor(&sign_with(twin, 8, 1, 0), NOW),
        Err(PublishError::PinClaimed)
    ));
}

/// Issue 11, item 8: a publication not newer than the stored one is a
/// replay.
#[test]
fn replays_of_descriptors_and_profiles_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let registry = populated(&dir);
    // The same descriptor again, or an older one.
    let e = registry
        .publish_descriptor(&descriptor(1, 0, RelayRole::Egress), NOW + 5)
        .unwrap_err();
    assert!(matches!(e, PublishError::NotNewer { .. }), "{e}");
    assert_eq!(e.status(), 409);
    let mut older = fields(1, 0, RelayRole::Egress);
    older.not_before -= 10;
    assert!(matches!(
        registry.publish_descriptor(&sign_with(older, 1, 0, 1), NOW + 5),
        Err(PublishError::NotNewer { .. })
    ));
    let mut newer = fields(1, 0, RelayRole::Egress);
    newer.not_before += 10;
    registry
        .publish_descriptor(&sign_with(newer, 1, 0, 1), NOW + 5)
        .unwrap();

    // Profiles: newer replaces, the same refreshes, older is refused, and a
    // different one from the same second conflicts.
    registry
        .publish_profile(&profile_at(0, NOW, "New name"), NOW)
        .unwrap();
    registry
        .publish_profile(&profile_at(0, NOW, "New name"), NOW + 1)
        .unwrap();
    let e = registry
        .publish_profile(&profile_at(0, NOW - 86_400, "Old name"), NOW + 2)
        .unwrap_err();
    assert!(matches!(e, PublishError::NotNewer { .. }), "{e}");
    assert!(matches!(
        registry.publish_profile(&profile_at(0, NOW, "Other name"), NOW + 3),
        Err(PublishError::ProfileConflict)
    ));
    let (directory, _) = registry
        .assemble(
            &everything(&registry, NOW + 5),
            1,
            NOW + 5,
            NOW + 5 + LIFETIME,
        )
        .unwrap();
    let names: Vec<&str> = directory
        .operators()
        .iter()
        .map(|p| p.profile().name())
        .collect();
    assert!(names.contains(&"New name"), "{names:?}");
}

/// Issue 11, item 8: profiles of operators without live relays go.
#[test]
fn profiles_of_operators_without_live_relays_are_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let registry = populated(&dir);
    // A profile published without ever a relay, and operator 1's relays
    // falling silent while operator 0's refresh.
    registry.publish_profile(&profile(5), NOW).unwrap();
    assert_eq!(registry.profile_count(), 3);
    for relay in 0..2 {
        let mut refreshed = fields(
            relay,
            0,
            [RelayRole::Ingress, RelayRole::Egress][relay as usize],
        );
        refreshed.not_before = NOW + TTL - 60;
        registry
            .publish_descriptor(&sign_with(refreshed, relay, 0, relay), NOW + TTL - 1)
            .unwrap();
    }
    assert_eq!(registry.prune(NOW + TTL + 1).unwrap().profiles, 2);
    assert_eq!(registry.profile_count(), 1);
    // It survives a restart.
    drop(registry);
    assert_eq!(open_with(&dir, limits()).profile_count(), 1);
}

/// Issue 11, item 8: per-operator and total limits refuse clearly; a
/// refresh is never refused for them.
#[test]
fn relays_are_bounded_per_operator_and_in_all() {
    let dir = tempfile::tempdir().unwrap();
    let registry = open_with(
        &dir,
        PublicationLimits {
            max_relays_per_operator: 2,
            max_relays: 3,
            ..limits()
        },
    );
    for operator in 0..3 {
        registry.publish_profile(&profile(operator), NOW).unwrap();
    }
    registry
        .publish_descriptor(&descriptor(0, 0, RelayRole::Ingress), NOW)
        .unwrap();
    registry
        .publish_descriptor(&descriptor(1, 0, RelayRole::Egress), NOW)
        .unwrap();
    let e = registry
        .publish_descriptor(&descriptor(2, 0, RelayRole::Egress), NOW)
        .unwrap_err();
    assert!(matches!(e, PublishError::OperatorFull { limit: 2 }), "{e}");
    assert_eq!(e.status(), 403);
    registry
        .publish_descriptor(&descriptor(3, 1, RelayRole::Egress), NOW)
        .unwrap();
    let e = registry
        .publish_descriptor(&descriptor(4, 2, RelayRole::Egress), NOW)
        .unwrap_err();
    assert!(matches!(e, PublishError::Full { limit: 3, .. }), "{e}");
    assert_eq!(e.status(), 503);
    // A live relay refreshing is not a new one.
    let mut refreshed = fields(0, 0, RelayRole::Ingress);
    refreshed.not_before += 1;
    registry
        .publish_descriptor(&sign_with(refreshed, 0, 0, 0), NOW + 1)
        .unwrap();
    // Once relays leave, there is room again.
    let later = NOW + TTL + 1;
    registry
        .publish_descriptor(&descriptor(4, 2, RelayRole::Egress), later)
        .unwrap();
}

/// Issue 11, item 8: before, one live descriptor more than a directory can
/// list made every proposal fail (`TooLarge`) forever. Now the one past
/// `max_relays` is refused at publication and the directory of the rest
/// assembles; the configuration never lets `max_relays` exceed what a
/// directory can list (`MAX_RELAYS_LIMIT` is `MAX_RELAYS`, checked by
/// `openrelay-config`'s validation).
fn a_registry_full_at(max: u32) {
    assert_eq!(
        openrelay_config::MAX_RELAYS_LIMIT,
        openrelay_directory::MAX_RELAYS
    );
    let dir = tempfile::tempdir().unwrap();
    let registry = open_with(
        &dir,
        PublicationLimits {
            max_relays: max as usize,
            max_relays_per_operator: max as usize,
            ..limits()
        },
    );
    registry.publish_profile(&profile(0), NOW).unwrap();
    registry.publish_profile(&profile(1), NOW).unwrap();
    for relay in 0..=max {
        // The last one under another operator: the total limit refuses it.
        let operator = u32::from(relay == max);
        let published =
            registry.publish_descriptor(&descriptor(relay, operator, RelayRole::Egress), NOW);
        if relay < max {
            published.unwrap();
        } else {
            assert!(
                matches!(published, Err(PublishError::Full { .. })),
                "{published:?}"
            );
        }
    }
    let (directory, missing) = registry
        .assemble(&everything(&registry, NOW), 1, NOW, NOW + LIFETIME)
        .unwrap();
    assert_eq!(directory.descriptors().len(), max as usize);
    assert!(missing.is_empty());
}

#[test]
fn the_registry_never_holds_more_relays_than_its_limit() {
    a_registry_full_at(300);
}

/// The same at the directory's own limit (100,000 relays).
#[test]
#[ignore = "publishes 100,000 signed descriptors: about 6 minutes in a debug build (run with --ignored, or --release)"]
fn the_registry_never_holds_more_relays_than_a_directory_can_list() {
    a_registry_full_at(openrelay_directory::MAX_RELAYS as u32);
}

/// The listed descriptor of relay 0 in a directory assembled at `now`.
fn listed_bytes<S: RegistryStore>(registry: &Registry<S>, now: u64) -> Option<Vec<u8>> {
    let (directory, _) = registry
        .assemble(&everything(registry, now), 1, now, now + LIFETIME)
        .unwrap();
    directory
        .descriptor(&relay_key(0).id())
        .map(SignedDescriptor::to_bytes)
}

/// Stable descriptors (issue 16, item 4): a relay republishing unchanged
/// every minute leaves its listed bytes unchanged; a changed descriptor
/// replaces them at once; a relay that stops publishing leaves after the
/// TTL.
#[test]
fn a_relay_republishing_unchanged_keeps_its_listed_descriptor() {
    let dir = tempfile::tempdir().unwrap();
    let registry = populated(&dir);
    let first = listed_bytes(&registry, NOW).unwrap();
    let mut f = fields(0, 0, RelayRole::Ingress);
    let mut now = NOW;
    for _ in 0..5 {
        now += 60;
        f.not_before = now;
        f.not_after = now + 86_400;
        registry
            .publish_descriptor(&sign_with(f.clone(), 0, 0, 0), now)
            .unwrap();
        assert_eq!(listed_bytes(&registry, now).unwrap(), first);
    }
    // Changed content: listed from the next directory on.
    now += 60;
    f.not_before = now;
    f.bandwidth_bps /= 2;
    let changed = sign_with(f.clone(), 0, 0, 0);
    registry.publish_descriptor(&changed, now).unwrap();
    assert_eq!(listed_bytes(&registry, now).unwrap(), changed);
    // Silent from now on: still listed within the TTL, gone after it.
    assert_eq!(listed_bytes(&registry, now + TTL - 1).unwrap(), changed);
    assert_eq!(listed_bytes(&registry, now + TTL), None);
}

/// A store that counts how often everything stored is read back.
#[derive(Debug)]
struct CountingStore {
    inner: RedbStore,
    full_reads: std::sync::atomic::AtomicUsize,
}

impl RegistryStore for CountingStore {
    fn put_descriptor(
        &self,
        relay: &[u8; 32],
        d: &[u8],
        expires_at: u64,
    ) -> Result<(), StoreError> {
        self.inner.put_descriptor(relay, d, expires_at)
    }
    fn descriptors(&self) -> Result<Vec<Timed>, StoreError> {
        self.full_reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.descriptors()
    }
    fn put_profile(&self, op: &[u8; 32], p: &[u8], at: u64) -> Result<(), StoreError> {
        self.inner.put_profile(op, p, at)
    }
    fn profiles(&self) -> Result<Vec<Timed>, StoreError> {
        self.full_reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.profiles()
    }
    fn remove(&self, relays: &[[u8; 32]], operators: &[[u8; 32]]) -> Result<(), StoreError> {
        self.inner.remove(relays, operators)
    }
    fn put_key_set(
        &self,
        issuer: &[u8; 32],
        digest: &[u8; 32],
        signed: &[u8],
        at: u64,
    ) -> Result<(), StoreError> {
        self.inner.put_key_set(issuer, digest, signed, at)
    }
    fn key_sets(&self) -> Result<Vec<store::KeySetEntry>, StoreError> {
        self.full_reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.key_sets()
    }
    fn remove_key_sets(&self, sets: &[([u8; 32], [u8; 32])]) -> Result<(), StoreError> {
        self.inner.remove_key_sets(sets)
    }
    fn put_directory(&self, sequence: u64, signed: &[u8]) -> Result<(), StoreError> {
        self.inner.put_directory(sequence, signed)
    }
    fn put_handover(&self, epoch: u64, slot: u64, signed: &[u8]) -> Result<(), StoreError> {
        self.inner.put_handover(epoch, slot, signed)
    }
    fn handovers(&self) -> Result<Vec<(u64, u64, Vec<u8>)>, StoreError> {
        self.inner.handovers()
    }
    fn latest_directory(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        self.inner.latest_directory()
    }
    fn directory(&self, sequence: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.directory(sequence)
    }
    fn put_meta(&self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        self.inner.put_meta(name, value)
    }
    fn meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.meta(name)
    }
}

/// Issue 11, item 8: before, every publication read and parsed every stored
/// descriptor and profile (twice). Now the store is read once, at start.
#[test]
fn publishing_never_reads_the_store_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = CountingStore {
        inner: RedbStore::open(&dir.path().join("registry.redb")).unwrap(),
        full_reads: Default::default(),
    };
    let registry = Registry::open(store, limits()).unwrap();
    let at_start = registry
        .store()
        .full_reads
        .load(std::sync::atomic::Ordering::Relaxed);
    for operator in 0..10 {
        registry.publish_profile(&profile(operator), NOW).unwrap();
        for relay in 0..10 {
            registry
                .publish_descriptor(
                    &descriptor(10 * operator + relay, operator, RelayRole::Egress),
                    NOW,
                )
                .unwrap();
        }
    }
    registry.prune(NOW).unwrap();
    registry
        .assemble(&everything(&registry, NOW), 1, NOW, NOW + LIFETIME)
        .unwrap();
    assert_eq!(
        registry
            .store()
            .full_reads
            .load(std::sync::atomic::Ordering::Relaxed),
        at_start
    );
}

#[test]
fn the_store_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let signed = {
        let registry = populated(&dir);
        let (directory, _) = registry
            .assemble(&everything(&registry, NOW), 1, NOW, NOW + LIFETIME)
            .unwrap();
        let signed = SignedDirectory::new(&directory);
        registry.record(&signed).unwrap();
        registry.prune(NOW).unwrap();
        signed
    };
    let registry = registry(&dir);
    assert_eq!(registry.live(NOW).len(), 4);
    assert_eq!(registry.latest().unwrap().unwrap(), signed.to_bytes());
}

#[test]
fn special_purpose_endpoints_are_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let registry = open_with(
        &dir,
        PublicationLimits {
            dangerously_allow_special_purpose_endpoints: false,
            ..limits()
        },
    );
    registry.publish_profile(&profile(0), NOW).unwrap();
    for (endpoint, class) in [
        ("127.0.0.1:4433", "loopback"),
        ("10.0.0.7:4433", "private"),
        ("[fe80::1]:4433", "link-local"),
        ("192.0.2.1:4433", "documentation"),
    ] {
        let mut f = fields(0, 0, RelayRole::Ingress);
        f.endpoints = vec![endpoint.parse().unwrap()];
        let e = registry
            .publish_descriptor(&sign_with(f, 0, 0, 0), NOW)
            .unwrap_err();
        assert!(
            matches!(e, PublishError::SpecialPurposeEndpoint { class: c, .. } if c.as_str() == class),
            "{endpoint}: {e}"
        );
        assert_eq!(e.status(), 403);
    }
    let mut f = fields(0, 0, RelayRole::Ingress);
    f.endpoints = vec!["1.1.1.1:4433".parse().unwrap()];
    registry
        .publish_descriptor(&sign_with(f, 0, 0, 0), NOW)
        .unwrap();
}

#[test]
fn a_vote_tells_the_registry_what_it_lacks() {
    let dir = tempfile::tempdir().unwrap();
    let registry = populated(&dir);
    let mut entries = registry.vote_entries(NOW, NOW + LIFETIME);
    // A relay the registry never saw, and a newer descriptor of one it has.
    entries.push(VoteEntry {
        relay: relay_key(9).id(),
        not_before: NOW,
    });
    entries[0].not_before += 30;
    let vote = Vote::new(validators()[0].id(), NOW, entries.clone()).unwrap();
    let mut wanted = registry.wanted(&vote, NOW);
    wanted.sort();
    let mut expected = vec![relay_key(9).id(), entries[0].relay];
    expected.sort();
    assert_eq!(wanted, expected);
    let (profile, descriptor) = registry.publication_of(&relay_key(1).id()).unwrap();
    assert!(SignedOperatorProfile::from_bytes(&profile).is_ok());
    assert!(SignedDescriptor::from_bytes(&descriptor).is_ok());
}

#[test]
fn refreshes_alone_do_not_change_the_contents() {
    let dir = tempfile::tempdir().unwrap();
    let registry = populated(&dir);
    let (before, _) = registry
        .assemble(&everything(&registry, NOW), 1, NOW, NOW + LIFETIME)
        .unwrap();
    let later = NOW + 60;
    let mut refreshed = fields(0, 0, RelayRole::Ingress);
    refreshed.not_before = later - 60;
    refreshed.not_after = later + 86_400;
    registry
        .publish_descriptor(&sign_with(refreshed, 0, 0, 0), later)
        .unwrap();
    let (after, _) = registry
        .assemble(&everything(&registry, later), 2, later, later + LIFETIME)
        .unwrap();
    assert_ne!(before.to_bytes(), after.to_bytes());
    assert!(same_contents(&before, &after));
    let mut moved = fields(0, 0, RelayRole::Ingress);
    moved.not_before = later - 30;
    moved.bandwidth_bps *= 2;
    registry
        .publish_descriptor(&sign_with(moved, 0, 0, 0), later)
        .unwrap();
    let (changed, _) = registry
        .assemble(&everything(&registry, later), 3, later, later + LIFETIME)
        .unwrap();
    assert!(!same_contents(&before, &changed));
}

/// The validator's checks (issue 11, item 6), as pure functions.
mod proposals {
    use openrelay_directory::vote::SignedVote;
    use openrelay_directory::{Directory, DirectoryDigest, Proposal, SignedOperatorProfile};

    use super::*;
    use crate::validator::check::{
        FIRST_SEQUENCE_LIMIT, LastSigned, Refusal, Rules, SEQUENCE_SLACK, Verdict, check_proposal,
        check_proposal_with_own,
    };

    /// Validator 0's rules: three validators, threshold 2.
    pub(super) fn rules() -> Rules {
        Rules {
            own: validators()[0].id(),
            validators: validators().iter().map(ValidatorKey::id).collect(),
            threshold: 2,
            max_lifetime_secs: 2 * LIFETIME,
            limits: limits(),
        }
    }

    fn signed_votes(registry: &Registry<RedbStore>, by: &[usize]) -> Vec<SignedVote> {
        let entries = registry.vote_entries(NOW, NOW + LIFETIME);
        by.iter()
            .map(|&i| {
                let key = &validators()[i];
                key.sign_vote(Vote::new(key.id(), NOW, entries.clone()).unwrap())
                    .unwrap()
            })
            .collect()
    }

    /// What an honest registry proposes: every relay the votes elect.
    fn honest(registry: &Registry<RedbStore>, sequence: u64) -> Proposal {
        let votes = signed_votes(registry, &[0, 1, 2]);
        let elected = tally(votes.iter().map(SignedVote::vote));
        let (directory, missing) = registry
            .assemble(&elected, sequence, NOW, NOW + LIFETIME)
            .unwrap();
        assert!(missing.is_empty());
        Proposal {
            directory: directory.to_bytes().into(),
            votes,
        }
    }

    /// `proposal` with its directory replaced by `directory`.
    fn with(proposal: &Proposal, directory: &Directory) -> Proposal {
        Proposal {
            directory: directory.to_bytes().into(),
            votes: proposal.votes.clone(),
        }
    }

    fn reissued(proposal: &Proposal, sequence: u64, issued_at: u64, valid_until: u64) -> Proposal {
        let d = Directory::from_bytes(&proposal.directory).unwrap();
        with(
            proposal,
            &Directory::new(
                sequence,
                issued_at,
                valid_until,
                d.operators().to_vec(),
                d.descriptors().to_vec(),
            )
            .unwrap(),
        )
    }

    fn refusal(proposal: &Proposal, last: Option<&LastSigned>) -> Refusal {
        match check_proposal(proposal, &rules(), last, NOW) {
            Err(refusal) => refusal,
            Ok(verdict) => panic!("signed: {verdict:?}"),
        }
    }

    fn signed_record(proposal: &Proposal, at: u64) -> LastSigned {
        let d = Directory::from_bytes(&proposal.directory).unwrap();
        LastSigned {
            sequence: d.sequence(),
            issued_at: d.issued_at(),
            digest: DirectoryDigest::of(&proposal.directory),
            signed_at: at,
        }
    }

    #[test]
    fn an_honest_proposal_is_signed_once() {
        let dir = tempfile::tempdir().unwrap();
        let registry = populated(&dir);
        let proposal = honest(&registry, 7);
        let Verdict::Sign { directory, digest } =
            check_proposal(&proposal, &rules(), None, NOW).unwrap()
        else {
            panic!("not signed");
        };
        assert_eq!(directory.descriptors().len(), 4);
        let record = signed_record(&proposal, NOW);
        assert_eq!(record.digest, digest);
        assert_eq!(LastSigned::from_bytes(&record.to_bytes()), Some(record));
        assert!(matches!(
            check_proposal(&proposal, &rules(), Some(&record), NOW + 5),
            Ok(Verdict::AlreadySigned)
        ));
        // The next one, a little later.
        let next = reissued(&proposal, 8, NOW, NOW + LIFETIME);
        assert!(matches!(
            check_proposal(&next, &rules(), Some(&record), NOW),
            Ok(Verdict::Sign { .. })
        ));
    }

    /// Two directories under one sequence would split clients.
    #[test]
    fn a_second_directory_under_a_signed_sequence_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let registry = populated(&dir);
        let first = honest(&registry, 7);
        let record = signed_record(&first, NOW);
        let other = reissued(&first, 7, NOW, NOW + LIFETIME - 1);
        assert_eq!(
            refusal(&other, Some(&record)),
            Refusal::Equivocation { sequence: 7 }
        );
        assert_eq!(
            refusal(&reissued(&first, 6, NOW, NOW + LIFETIME), Some(&record)),
            Refusal::RolledBack {
                sequence: 6,
                last: 7
            }
        );
        assert!(matches!(
            refusal(
                &reissued(&first, 8, NOW - 1, NOW + LIFETIME),
                Some(&LastSigned {
                    issued_at: NOW,
                    ..record
                })
            ),
            Refusal::IssuedBeforeLastSigned { .. }
        ));
    }

    /// From `u64::MAX` no later directory could follow.
    #[test]
    fn sequences_may_only_advance_a_bounded_step() {
        let dir = tempfile::tempdir().unwrap();
        let registry = populated(&dir);
        let proposal = honest(&registry, 7);
        assert_eq!(
            refusal(&reissued(&proposal, u64::MAX, NOW, NOW + LIFETIME), None),
            Refusal::SequenceJump {
                sequence: u64::MAX,
                limit: FIRST_SEQUENCE_LIMIT
            }
        );
        // Signed sequence 7 ten seconds ago: up to 7 + 1 + 10 + slack now.
        let record = LastSigned {
            signed_at: NOW - 10,
            issued_at: NOW - 10,
            ..signed_record(&proposal, NOW - 10)
        };
        let limit = 7 + 1 + 10 + SEQUENCE_SLACK;
        assert!(matches!(
            check_proposal(
                &reissued(&proposal, limit, NOW, NOW + LIFETIME),
                &rules(),
                Some(&record),
                NOW
            ),
            Ok(Verdict::Sign { .. })
        ));
        assert_eq!(
            refusal(
                &reissued(&proposal, u64::MAX, NOW, NOW + LIFETIME),
                Some(&record)
            ),
            Refusal::SequenceJump {
                sequence: u64::MAX,
                limit
            }
        );
    }

    #[test]
    fn only_a_directory_issued_now_and_not_too_long_is_signed() {
        let dir = tempfile::tempdir().unwrap();
        let registry = populated(&dir);
        let proposal = honest(&registry, 7);
        for issued_at in [NOW - 400, NOW + 400] {
            assert!(matches!(
                refusal(&reissued(&proposal, 7, issued_at, issued_at + 60), None),
                Refusal::NotIssuedNow { .. }
            ));
        }
        assert_eq!(
            refusal(
                &reissued(&proposal, 7, NOW - 3600, NOW + 2 * LIFETIME),
                None
            ),
            Refusal::NotIssuedNow {
                issued_at: NOW - 3600,
                now: NOW
            }
        );
        assert!(matches!(
            refusal(&reissued(&proposal, 7, NOW, NOW + 2 * LIFETIME + 1), None),
            Refusal::TooLong { .. }
        ));
    }

    /// A registry listing only some relays (say, its own), or adding one the
    /// validators never saw.
    #[test]
    fn the_relay_list_must_be_exactly_the_elected_one() {
        let dir = tempfile::tempdir().unwrap();
        let registry = populated(&dir);
        let proposal = honest(&registry, 7);
        let d = Directory::from_bytes(&proposal.directory).unwrap();
        // Only operator 1's relays (2 and 3).
        let own_only = Directory::new(
            7,
            NOW,
            NOW + LIFETIME,
            d.operators()
                .iter()
                .filter(|p| p.profile().operator() == operator_key(1).id())
                .cloned()
                .collect(),
            d.descriptors()
                .iter()
                .filter(|x| x.descriptor().operator() == operator_key(1).id())
                .cloned()
                .collect(),
        )
        .unwrap();
        let omitted = refusal(&with(&proposal, &own_only), None);
        assert!(
            matches!(
                omitted,
                Refusal::OmittedRelay {
                    votes: 3,
                    of: 3,
                    ..
                }
            ),
            "{omitted}"
        );
        // Relay 9, which no validator saw, slipped in.
        registry.publish_profile(&profile(9), NOW).unwrap();
        let stranger = SignedDescriptor::from_bytes(&descriptor(9, 9, RelayRole::Egress)).unwrap();
        let mut descriptors = d.descriptors().to_vec();
        descriptors.push(stranger);
        let mut operators = d.operators().to_vec();
        operators.push(SignedOperatorProfile::from_bytes(&profile(9)).unwrap());
        let added = Directory::new(7, NOW, NOW + LIFETIME, operators, descriptors).unwrap();
        assert_eq!(
            refusal(&with(&proposal, &added), None),
            Refusal::UnknownRelay {
                relay: relay_key(9).id(),
                votes: 0,
                of: 3
            }
        );
        // A profile nobody needs.
        let mut operators = d.operators().to_vec();
        operators.push(SignedOperatorProfile::from_bytes(&profile(9)).unwrap());
        let padded =
            Directory::new(7, NOW, NOW + LIFETIME, operators, d.descriptors().to_vec()).unwrap();
        assert_eq!(
            refusal(&with(&proposal, &padded), None),
            Refusal::ExtraProfile(operator_key(9).id())
        );
    }

    #[test]
    fn the_votes_must_be_trusted_fresh_distinct_enough_and_include_mine() {
        let dir = tempfile::tempdir().unwrap();
        let registry = populated(&dir);
        let proposal = honest(&registry, 7);
        let mut p = proposal.clone();
        p.votes = signed_votes(&registry, &[1, 2]);
        assert_eq!(refusal(&p, None), Refusal::OwnVoteMissing);
        assert!(refusal(&p, None).is_transient());
        p.votes = signed_votes(&registry, &[0]);
        assert_eq!(refusal(&p, None), Refusal::TooFewVotes { have: 1, need: 2 });
        p.votes = signed_votes(&registry, &[0, 0, 1]);
        assert_eq!(
            refusal(&p, None),
            Refusal::DuplicateVote(validators()[0].id())
        );
        let stranger = ValidatorKey::from_bytes(&[0x77; 32]);
        let entries = registry.vote_entries(NOW, NOW + LIFETIME);
        let foreign = stranger
            .sign_vote(Vote::new(stranger.id(), NOW, entries.clone()).unwrap())
            .unwrap();
        p.votes = vec![signed_votes(&registry, &[0]).remove(0), foreign];
        assert_eq!(refusal(&p, None), Refusal::UntrustedVote(stranger.id()));
        let old = validators()[1]
            .sign_vote(Vote::new(validators()[1].id(), NOW - 1000, entries.clone()).unwrap())
            .unwrap();
        p.votes = vec![signed_votes(&registry, &[0]).remove(0), old];
        assert!(matches!(refusal(&p, None), Refusal::StaleVote { .. }));
        let mut forged = signed_votes(&registry, &[1]).remove(0).to_bytes();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        p.votes = vec![
            signed_votes(&registry, &[0]).remove(0),
            SignedVote::from_bytes(&forged).unwrap(),
        ];
        assert_eq!(refusal(&p, None), Refusal::BadVote(validators()[1].id()));
    }

    /// Rule 5: a descriptor older than the votes allow is refused, unless
    /// it says the same as the validator's own fresh copy (stable
    /// descriptors), and again once the relay's descriptor changed.
    #[test]
    fn descriptors_older_than_the_votes_allow_are_refused_unless_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let registry = populated(&dir);
        let old = honest(&registry, 7);
        // Relay 0 refreshed long after (more than a TTL): the validators vote
        // for the new descriptor; the registry offers the old one.
        let mut fresh = fields(0, 0, RelayRole::Ingress);
        fresh.not_before = NOW - 3600 + TTL + 1;
        registry
            .publish_descriptor(&sign_with(fresh.clone(), 0, 0, 0), NOW)
            .unwrap();
        let stale = Proposal {
            directory: old.directory.clone(),
            votes: signed_votes(&registry, &[0, 1, 2]),
        };
        let r = refusal(&stale, None);
        assert!(
            matches!(r, Refusal::StaleDescriptor { relay, .. } if relay == relay_key(0).id()),
            "{r}"
        );
        assert!(r.is_transient());
        let own = |relay: &RelayId| registry.descriptor(relay);
        assert!(matches!(
            check_proposal_with_own(&stale, &rules(), &own, None, NOW),
            Ok(Verdict::Sign { .. })
        ));
        // The relay changed what it says (its bandwidth): the old listing
        // is stale again.
        fresh.not_before += 1;
        fresh.bandwidth_bps /= 2;
        registry
            .publish_descriptor(&sign_with(fresh, 0, 0, 0), NOW)
            .unwrap();
        let changed = Proposal {
            directory: old.directory,
            votes: signed_votes(&registry, &[0, 1, 2]),
        };
        let r = check_proposal_with_own(&changed, &rules(), &own, None, NOW).unwrap_err();
        assert!(
            matches!(r, Refusal::StaleDescriptor { relay, .. } if relay == relay_key(0).id()),
            "{r}"
        );
    }

    #[test]
    fn the_publication_rules_and_every_signature_hold_in_a_proposal() {
        let dir = tempfile::tempdir().unwrap();
        let registry = populated(&dir);
        let proposal = honest(&registry, 7);
        let strict = Rules {
            limits: PublicationLimits {
                dangerously_allow_special_purpose_endpoints: false,
                ..limits()
            },
            ..rules()
        };
        assert!(matches!(
            check_proposal(&proposal, &strict, None, NOW),
            Err(Refusal::SpecialPurposeEndpoint { .. })
        ));
        let crowded = Rules {
            limits: PublicationLimits {
                max_relays_per_operator: 1,
                ..limits()
            },
            ..rules()
        };
        assert!(matches!(
            check_proposal(&proposal, &crowded, None, NOW),
            Err(Refusal::TooManyRelays { .. })
        ));
        // A descriptor whose operator signature was tampered with.
        let d = Directory::from_bytes(&proposal.directory).unwrap();
        let mut descriptors = d.descriptors().to_vec();
        let honest_one = descriptors[0].clone();
        let mut bad = *honest_one.operator_signature().as_bytes();
        bad[0] ^= 1;
        descriptors[0] = SignedDescriptor::from_parts(
            honest_one.descriptor().clone(),
            honest_one.relay_signature(),
            openrelay_directory::Signature::from_bytes(bad),
            honest_one.quic_signature(),
        );
        let forged =
            Directory::new(7, NOW, NOW + LIFETIME, d.operators().to_vec(), descriptors).unwrap();
        assert!(matches!(
            refusal(&with(&proposal, &forged), None),
            Refusal::Contents(DirectoryError::BadSignature { .. })
        ));
    }

    /// Issue 11 item 11 (RFC 9576 §6): a proposal lists exactly the issuer
    /// key sets most votes name. Votes naming a set of issuer 1 from
    /// validators `by`, and the other validators' sets of `other`.
    fn votes_naming(
        registry: &Registry<RedbStore>,
        named: &[(usize, openrelay_directory::KeySetDigest)],
    ) -> Vec<SignedVote> {
        use openrelay_directory::vote::IssuerVote;
        let entries = registry.vote_entries(NOW, NOW + LIFETIME);
        named
            .iter()
            .map(|&(i, digest)| {
                let key = &validators()[i];
                let vote = Vote::new(key.id(), NOW, entries.clone())
                    .unwrap()
                    .with_issuers(vec![IssuerVote {
                        issuer: crate::key_sets::fixture::issuer_key(1).id(),
                        digest,
                    }])
                    .unwrap();
                key.sign_vote(vote).unwrap()
            })
            .collect()
    }

    #[test]
    fn a_proposal_lists_exactly_the_key_sets_most_votes_name() {
        use crate::key_sets::fixture::{issuer_key, key_set, key_set_at};
        let dir = tempfile::tempdir().unwrap();
        let registry = populated(&dir);
        let rules = Rules {
            limits: PublicationLimits {
                issuers: vec![openrelay_types::KeyPin::from(issuer_key(1).id())],
                ..limits()
            },
            ..rules()
        };
        let (a, b) = (key_set(1, &[1]), key_set_at(1, &[1, 2], NOW - 30));
        let base = honest(&registry, 7);
        let listing = |votes: Vec<SignedVote>,
                       sets: Vec<openrelay_directory::SignedIssuerKeySet>| {
            let d = Directory::from_bytes(&base.directory)
                .unwrap()
                .with_issuer_keys(sets)
                .unwrap();
            Proposal {
                directory: d.to_bytes().into(),
                votes,
            }
        };
        // Two of three name A: A listed is signed; B listed, or nothing, is
        // refused.
        let votes = votes_naming(
            &registry,
            &[(0, a.digest()), (1, a.digest()), (2, b.digest())],
        );
        assert!(matches!(
            check_proposal(&listing(votes.clone(), vec![a.clone()]), &rules, None, NOW),
            Ok(Verdict::Sign { .. })
        ));
        assert!(matches!(
            check_proposal(&listing(votes.clone(), vec![b.clone()]), &rules, None, NOW),
            Err(Refusal::UnknownKeySet {
                votes: 1,
                of: 3,
                ..
            })
        ));
        let omitted = check_proposal(&listing(votes, Vec::new()), &rules, None, NOW).unwrap_err();
        assert!(matches!(
            omitted,
            Refusal::OmittedKeySet {
                votes: 2,
                of: 3,
                ..
            }
        ));
        assert!(omitted.is_transient());
        // Each validator shown another set: none may be listed.
        let c = key_set_at(1, &[2], NOW - 20);
        let split = votes_naming(
            &registry,
            &[(0, a.digest()), (1, b.digest()), (2, c.digest())],
        );
        for set in [&a, &b, &c] {
            assert!(matches!(
                check_proposal(
                    &listing(split.clone(), vec![set.clone()]),
                    &rules,
                    None,
                    NOW
                ),
                Err(Refusal::UnknownKeySet { votes: 1, .. })
            ));
        }
        assert!(matches!(
            check_proposal(&listing(split, Vec::new()), &rules, None, NOW),
            Ok(Verdict::Sign { .. })
        ));
        // An issuer this validator does not recognise is refused even when
        // elected (its rules differ from the others').
        let votes = votes_naming(&registry, &[(0, a.digest()), (1, a.digest())]);
        assert!(matches!(
            check_proposal(&listing(votes, vec![a]), &self::rules(), None, NOW),
            Err(Refusal::KeySetRule { .. })
        ));
    }
}

/// The chain's admission and the validators' checks of a chain-anchored
/// proposal (issue 13, items 2 and 3), as pure functions over a
/// hand-built snapshot.
mod on_chain {
    use std::sync::Arc;

    use alloy::primitives::{Address, B256, U256};
    use openrelay_chain::follow::{
        ChainSnapshot, OperatorState, RelayRef, RelayRole as ChainRole, RelayState,
        ValidatorMember as ChainMember, ValidatorSet as ChainSet,
    };
    use openrelay_directory::vote::SignedVote;
    use openrelay_directory::{Directory, Proposal, RelayMeasurement, SignedDescriptor};

    use super::proposals::rules;
    use super::*;
    use crate::chain::{ChainRing, ChainView, NotAdmitted};
    use crate::measurements::MeasurementRecord;
    use crate::validator::check::{OnChain, Refusal, Verdict, check_proposal_on_chain};

    /// 10^15 wei per Mbit/s (the devnet's 0.001 ETH).
    const STAKE_PER_MBPS: u64 = 1_000_000_000_000_000;
    const CHAIN_ID: u64 = 31_337;

    fn account(operator: u32) -> Address {
        Address::repeat_byte(0x40 + operator as u8)
    }

    fn held(registry: &Registry<RedbStore>, relay: u32) -> RelayDescriptor {
        held_with_profile(registry, relay).0
    }

    fn held_with_profile(registry: &Registry<RedbStore>, relay: u32) -> crate::HeldDescriptor {
        registry.descriptor(&relay_key(relay).id()).unwrap()
    }

    /// Whether `chain` admits relay `relay` as `registry` holds it.
    fn admit(
        chain: &ChainView,
        registry: &Registry<RedbStore>,
        relay: u32,
    ) -> Result<openrelay_directory::ChainRelay, NotAdmitted> {
        let (descriptor, profile) = held_with_profile(registry, relay);
        chain.admit(&descriptor, profile.as_ref())
    }

    /// The chain at `block` with both operators of `populated` registered
    /// and staked for their relays (1,000 Mbit/s each), every relay
    /// registered with its descriptor's hash, and the three validators as
    /// the genesis set.
    fn snapshot(registry: &Registry<RedbStore>, block: u64) -> ChainSnapshot {
        let mut snapshot = ChainSnapshot {
            chain_id: CHAIN_ID,
            contract: Address::repeat_byte(0x5f),
            block_number: block,
            block_hash: B256::repeat_byte(block as u8),
            operators: BTreeMap::new(),
            relays: BTreeMap::new(),
            validator_sets: vec![ChainSet {
                epoch: 0,
                block_number: 1,
                members: validators()
                    .iter()
                    .enumerate()
                    .map(|(i, v)| ChainMember {
                        account: Address::repeat_byte(0x70 + i as u8),
                        key: B256::from(v.id().to_bytes()),
                        weight: U256::from(10u64).pow(U256::from(19u64)),
                    })
                    .collect(),
            }],
            validator_candidates: BTreeMap::new(),
            validator_leaving: BTreeMap::new(),
        };
        for operator in 0..2 {
            let key = B256::from(operator_key(operator).id().to_bytes());
            snapshot.operators.insert(
                account(operator),
                OperatorState {
                    operator_key: key,
                    profile_hash: B256::ZERO,
                    stake: U256::from(2_000u64 * STAKE_PER_MBPS),
                    advertised_mbps: 2_000,
                    relay_count: 2,
                },
            );
            for relay in [2 * operator, 2 * operator + 1] {
                let d = held(registry, relay);
                snapshot.relays.insert(
                    RelayRef::new(account(operator), B256::from(d.relay().to_bytes())),
                    RelayState {
                        role: if relay % 2 == 0 {
                            ChainRole::Ingress
                        } else {
                            ChainRole::Egress
                        },
                        bandwidth_mbps: 1_000,
                        descriptor_hash: B256::from(d.content_hash()),
                    },
                );
            }
        }
        snapshot
    }

    fn view(snapshot: ChainSnapshot) -> ChainView {
        ChainView::new(Arc::new(snapshot), U256::from(STAKE_PER_MBPS))
    }

    /// Every validator votes for what `chain` admits in `registry`.
    fn votes(registry: &Registry<RedbStore>, chain: &ChainView) -> Vec<SignedVote> {
        let entries =
            registry.vote_entries_admitted(NOW, NOW + LIFETIME, |d, p| chain.admit(d, p).is_ok());
        validators()
            .iter()
            .map(|key| {
                key.sign_vote(Vote::new(key.id(), NOW, entries.clone()).unwrap())
                    .unwrap()
            })
            .collect()
    }

    /// What an honest registry proposes at `chain`: the elected relays the
    /// chain admits, anchored there.
    fn honest(
        registry: &Registry<RedbStore>,
        chain: &ChainView,
        votes: Vec<SignedVote>,
    ) -> Proposal {
        honest_measured(registry, chain, votes, &empty_record())
    }

    /// [`honest`] by a registry with `measurements` recorded: relays found
    /// down left out, the others with their latest measurement.
    pub(super) fn honest_measured(
        registry: &Registry<RedbStore>,
        chain: &ChainView,
        votes: Vec<SignedVote>,
        measurements: &MeasurementRecord,
    ) -> Proposal {
        let elected = tally(votes.iter().map(SignedVote::vote));
        let (directory, missing) = registry
            .assemble_admitted(&elected, 7, NOW, NOW + LIFETIME, |d, p| {
                chain.admit(d, p).is_ok() && !measurements.is_down(&d.relay())
            })
            .unwrap();
        assert!(missing.is_empty());
        let directory = chain.anchor_directory(directory, measurements).unwrap();
        Proposal {
            directory: directory.to_bytes().into(),
            votes,
        }
    }

    pub(super) fn empty_record() -> MeasurementRecord {
        MeasurementRecord::new(openrelay_measure::MeasureParams::devnet())
    }

    fn check(
        proposal: &Proposal,
        registry: &Registry<RedbStore>,
        ring: &ChainRing,
    ) -> Result<Verdict, Refusal> {
        check_measured(proposal, registry, ring, &empty_record())
    }

    /// [`check`] by a validator with `measurements` recorded.
    pub(super) fn check_measured(
        proposal: &Proposal,
        registry: &Registry<RedbStore>,
        ring: &ChainRing,
        measurements: &MeasurementRecord,
    ) -> Result<Verdict, Refusal> {
        let own = |relay: &RelayId| registry.descriptor(relay);
        let on_chain = OnChain {
            ring,
            own_descriptor: &own,
            measurements,
        };
        check_proposal_on_chain(proposal, &rules(), &on_chain, None, NOW)
    }

    fn ring_of(views: impl IntoIterator<Item = ChainView>) -> ChainRing {
        let mut ring = ChainRing::default();
        for v in views {
            ring.push(v);
        }
        ring
    }

    /// `directory` re-anchored with `section` edited by `edit`.
    fn edited(
        proposal: &Proposal,
        edit: impl FnOnce(&mut openrelay_directory::ChainSection),
    ) -> Proposal {
        let d = Directory::from_bytes(&proposal.directory).unwrap();
        let mut section = d.chain().unwrap().clone();
        edit(&mut section);
        let plain = Directory::new(
            d.sequence(),
            d.issued_at(),
            d.valid_until(),
            d.operators().to_vec(),
            d.descriptors().to_vec(),
        )
        .unwrap();
        Proposal {
            directory: plain.with_chain(section).unwrap().to_bytes().into(),
            votes: proposal.votes.clone(),
        }
    }

    #[test]
    fn the_chain_admits_only_registered_covered_matching_descriptors() {
        let dir = tempfile::tempdir().unwrap();
        let registry = populated(&dir);
        let chain = view(snapshot(&registry, 10));
        for relay in 0..4 {
            admit(&chain, &registry, relay).unwrap();
        }
        let d0 = held(&registry, 0);
        // Not registered.
        let mut s = snapshot(&registry, 10);
        s.relays.remove(&RelayRef::new(
            account(0),
            B256::from(d0.relay().to_bytes()),
        ));
        assert_eq!(
            admit(&view(s), &registry, 0),
            Err(NotAdmitted::NotRegistered(d0.relay()))
        );
        // Registered under another operator's account (squatting).
        let mut s = snapshot(&registry, 10);
        let state = s
            .relays
            .remove(&RelayRef::new(
                account(0),
                B256::from(d0.relay().to_bytes()),
            ))
            .unwrap();
        s.relays.insert(
            RelayRef::new(account(1), B256::from(d0.relay().to_bytes())),
            state,
        );
        assert_eq!(
            admit(&view(s), &registry, 0),
            Err(NotAdmitted::NotRegistered(d0.relay()))
        );
        // Another descriptor hash.
        let mut s = snapshot(&registry, 10);
        for r in s.relays.values_mut() {
            r.descriptor_hash = B256::repeat_byte(9);
        }
        assert_eq!(
            admit(&view(s), &registry, 0),
            Err(NotAdmitted::DescriptorHashDiffers(d0.relay()))
        );
        // More bandwidth advertised than registered (1 Gbit/s > 999 Mbit/s).
        let mut s = snapshot(&registry, 10);
        for r in s.relays.values_mut() {
            r.bandwidth_mbps = 999;
        }
        assert_eq!(
            admit(&view(s), &registry, 0),
            Err(NotAdmitted::BandwidthAboveChain(d0.relay()))
        );
        // Slashed below cover: none of the operator's relays.
        let mut s = snapshot(&registry, 10);
        s.operators.get_mut(&account(0)).unwrap().stake = U256::from(1_999u64 * STAKE_PER_MBPS);
        let short = view(s);
        assert_eq!(
            admit(&short, &registry, 0),
            Err(NotAdmitted::NotCovered(d0.relay()))
        );
        assert!(admit(&short, &registry, 2).is_ok());
        // The profile's account did not register the operator's key (it
        // holds another, or none).
        let mut s = snapshot(&registry, 10);
        s.operators.get_mut(&account(0)).unwrap().operator_key = B256::repeat_byte(7);
        assert_eq!(
            admit(&view(s), &registry, 0),
            Err(NotAdmitted::UnknownOperator(d0.operator()))
        );
        let mut s = snapshot(&registry, 10);
        s.operators.remove(&account(0));
        assert_eq!(
            admit(&view(s), &registry, 0),
            Err(NotAdmitted::UnknownOperator(d0.operator()))
        );
        // Squatting the operator key: another account registers operator
        // 0's key and relay 0 under it, staked. The profile names account
        // 0, so the squatter's registration counts for nothing, and the
        // real operator's own stays what is admitted.
        let mut s = snapshot(&registry, 10);
        let squatter = Address::repeat_byte(0x66);
        let real = s.operators[&account(0)].clone();
        s.operators.insert(squatter, real);
        let relay_state =
            s.relays[&RelayRef::new(account(0), B256::from(d0.relay().to_bytes()))].clone();
        s.relays.insert(
            RelayRef::new(squatter, B256::from(d0.relay().to_bytes())),
            relay_state,
        );
        s.operators.get_mut(&account(0)).unwrap().stake = U256::ZERO;
        assert_eq!(
            admit(&view(s), &registry, 0),
            Err(NotAdmitted::NotCovered(d0.relay()))
        );
        // A profile naming no account, or none held.
        let (descriptor, profile) = held_with_profile(&registry, 0);
        let unnamed = OperatorProfile::new(ProfileFields {
            chain_account: None,
            ..profile.unwrap().fields().clone()
        })
        .unwrap();
        assert_eq!(
            chain.admit(&descriptor, Some(&unnamed)),
            Err(NotAdmitted::ProfileNamesNoAccount(d0.operator()))
        );
        assert_eq!(
            chain.admit(&descriptor, None),
            Err(NotAdmitted::NoProfile(d0.operator()))
        );
        // Another operator's profile is no profile of this one.
        let (_, other) = held_with_profile(&registry, 2);
        assert_eq!(
            chain.admit(&descriptor, other.as_ref()),
            Err(NotAdmitted::NoProfile(d0.operator()))
        );
    }

    #[test]
    fn a_proposal_is_reanchored_once_its_block_is_half_a_ring_behind() {
        use crate::service::{REANCHOR_BLOCKS, anchor_left_behind};
        let dir = tempfile::tempdir().unwrap();
        let registry = populated(&dir);
        let chain = view(snapshot(&registry, 10));
        let proposal = honest(&registry, &chain, votes(&registry, &chain));
        let directory = Directory::from_bytes(&proposal.directory).unwrap();
        let at = |block| view(snapshot(&registry, block));
        assert!(!anchor_left_behind(&directory, Some(&at(10))));
        assert!(!anchor_left_behind(
            &directory,
            Some(&at(9 + REANCHOR_BLOCKS))
        ));
        assert!(anchor_left_behind(
            &directory,
            Some(&at(10 + REANCHOR_BLOCKS))
        ));
        assert!(!anchor_left_behind(&directory, None));
        let plain = Directory::new(
            directory.sequence(),
            directory.issued_at(),
            directory.valid_until(),
            directory.operators().to_vec(),
            directory.descriptors().to_vec(),
        )
        .unwrap();
        assert!(!anchor_left_behind(&plain, Some(&at(100))));
    }

    #[test]
    fn an_honest_chain_anchored_proposal_is_signed() {
        let dir = tempfile::tempdir().unwrap();
        let registry = populated(&dir);
        let chain = view(snapshot(&registry, 10));
        let proposal = honest(&registry, &chain, votes(&registry, &chain));
        let ring = ring_of([view(snapshot(&registry, 9)), chain.clone()]);
        let Verdict::Sign { directory, .. } = check(&proposal, &registry, &ring).unwrap() else {
            panic!("not signed");
        };
        let section = directory.chain().unwrap();
        assert_eq!(section.anchor, chain.anchor());
        assert_eq!(section.operators.len(), 2);
        assert!(
            section
                .operators
                .iter()
                .all(|o| o.covered_mbps == 2_000
                    && o.stake_wei == 2_000 * u128::from(STAKE_PER_MBPS))
        );
        assert!(section.relays.iter().all(|r| r.bandwidth_mbps == 1_000));
    }

    /// An unstaked relay (under-covered operator) is neither voted for nor
    /// listed; listing it anyway is refused, and leaving it out is fine.
    #[test]
    fn a_relay_the_chain_does_not_admit_is_not_voted_for_and_may_not_be_listed() {
        let dir = tempfile::tempdir().unwrap();
        let registry = populated(&dir);
        let full = view(snapshot(&registry, 10));
        let mut s = snapshot(&registry, 10);
        s.operators.get_mut(&account(1)).unwrap().stake = U256::ZERO;
        let short = view(s);
        let votes_short = votes(&registry, &short);
        assert_eq!(
            votes_short[0].vote().entries().len(),
            2,
            "operator 1's relays not voted for"
        );
        let ring = ring_of([short.clone()]);
        // Honest: operator 1's relays are left out.
        let proposal = honest(&registry, &short, votes_short);
        assert!(matches!(
            check(&proposal, &registry, &ring),
            Ok(Verdict::Sign { .. })
        ));
        // Votes for everything (validators with another view), but the
        // chain at the anchor does not admit operator 1's relays: the
        // registry listing them is refused...
        let all_votes = votes(&registry, &full);
        let invented = {
            let elected = tally(all_votes.iter().map(SignedVote::vote));
            let (d, _) = registry.assemble(&elected, 7, NOW, NOW + LIFETIME).unwrap();
            let section = full.section(&d).unwrap();
            let section = openrelay_directory::ChainSection {
                anchor: short.anchor(),
                ..section
            };
            Proposal {
                directory: d.with_chain(section).unwrap().to_bytes().into(),
                votes: all_votes.clone(),
            }
        };
        assert!(matches!(
            check(&invented, &registry, &ring),
            Err(Refusal::ChainInvented {
                why: NotAdmitted::NotCovered(_),
                ..
            })
        ));
        // ...and leaving them out is what the chain says.
        let honest_short = honest(&registry, &short, all_votes);
        assert!(matches!(
            check(&honest_short, &registry, &ring),
            Ok(Verdict::Sign { .. })
        ));
    }

    #[test]
    fn a_registry_that_omits_an_admitted_relay_gets_no_signature() {
        let dir = tempfile::tempdir().unwrap();
        let registry = populated(&dir);
        let chain = view(snapshot(&registry, 10));
        let votes = votes(&registry, &chain);
        let elected = tally(votes.iter().map(SignedVote::vote));
        let (full, _) = registry.assemble(&elected, 7, NOW, NOW + LIFETIME).unwrap();
        let left_out = held(&registry, 3).relay();
        let kept: Vec<SignedDescriptor> = full
            .descriptors()
            .iter()
            .filter(|d| d.descriptor().relay() != left_out)
            .cloned()
            .collect();
        let d = Directory::new(7, NOW, NOW + LIFETIME, full.operators().to_vec(), kept).unwrap();
        let proposal = Proposal {
            directory: chain
                .anchor_directory(d, &empty_record())
                .unwrap()
                .to_bytes()
                .into(),
            votes,
        };
        assert_eq!(
            check(&proposal, &registry, &ring_of([chain])).unwrap_err(),
            Refusal::ChainOmitted { relay: left_out }
        );
    }

    #[test]
    fn misstated_chain_figures_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let registry = populated(&dir);
        let chain = view(snapshot(&registry, 10));
        let proposal = honest(&registry, &chain, votes(&registry, &chain));
        let ring = ring_of([chain]);
        let stake = edited(&proposal, |s| s.operators[0].stake_wei *= 2);
        assert_eq!(
            check(&stake, &registry, &ring).unwrap_err(),
            Refusal::ChainFiguresDiffer { what: "operators" }
        );
        let bandwidth = edited(&proposal, |s| s.relays[0].bandwidth_mbps = 1_500);
        assert_eq!(
            check(&bandwidth, &registry, &ring).unwrap_err(),
            Refusal::ChainFiguresDiffer { what: "relays" }
        );
        let epoch = edited(&proposal, |s| s.validator_epoch = 1);
        assert_eq!(
            check(&epoch, &registry, &ring).unwrap_err(),
            Refusal::ChainFiguresDiffer {
                what: "validator epoch"
            }
        );
        // Issue 15: a release the chain does not list as approved.
        let release = edited(&proposal, |s| {
            s.releases.push(openrelay_directory::ChainRelease {
                release_id: [7; 32],
                binary_sha256: [8; 32],
                status: openrelay_directory::ReleaseStatus::Approved,
                measurements: vec![openrelay_directory::ReleaseMeasurement {
                    platform: 1,
                    value: [9; 48],
                }],
            });
        });
        assert_eq!(
            check(&release, &registry, &ring).unwrap_err(),
            Refusal::ChainFiguresDiffer { what: "releases" }
        );
    }

    /// Issue 15: the validator's view lists a revoked release; a registry
    /// leaving it out, or listing it as approved, gets no signature.
    #[test]
    fn a_registry_that_hides_a_revocation_gets_no_signature() {
        let dir = tempfile::tempdir().unwrap();
        let registry = populated(&dir);
        let revoked = openrelay_directory::ChainRelease {
            release_id: [7; 32],
            binary_sha256: [8; 32],
            status: openrelay_directory::ReleaseStatus::Revoked,
            measurements: vec![openrelay_directory::ReleaseMeasurement {
                platform: 1,
                value: [9; 48],
            }],
        };
        let chain = view(snapshot(&registry, 10)).with_releases(vec![revoked]);
        let proposal = honest(&registry, &chain, votes(&registry, &chain));
        let ring = ring_of([chain]);
        assert!(matches!(
            check(&proposal, &registry, &ring),
            Ok(Verdict::Sign { .. })
        ));
        for edit in [
            (|s: &mut openrelay_directory::ChainSection| s.releases.clear()) as fn(&mut _),
            |s| s.releases[0].status = openrelay_directory::ReleaseStatus::Approved,
        ] {
            assert_eq!(
                check(&edited(&proposal, edit), &registry, &ring).unwrap_err(),
                Refusal::ChainFiguresDiffer { what: "releases" }
            );
        }
    }

    #[test]
    fn anchors_outside_the_ring_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let registry = populated(&dir);
        let at = |block| view(snapshot(&registry, block));
        let proposal_at = |block| {
            let chain = at(block);
            honest(&registry, &chain, votes(&registry, &chain))
        };
        let ring = ring_of((20..=40).map(at));
        // Newer than this validator's head: transient.
        let ahead = check(&proposal_at(41), &registry, &ring).unwrap_err();
        assert_eq!(
            ahead,
            Refusal::AnchorAhead {
                block: 41,
                head: Some(40)
            }
        );
        assert!(ahead.is_transient());
        // Older than the ring: stale.
        let stale = check(&proposal_at(24), &registry, &ring).unwrap_err();
        assert_eq!(
            stale,
            Refusal::AnchorUnknown {
                block: 24,
                head: Some(40)
            }
        );
        assert!(!stale.is_transient());
        assert!(matches!(
            check(&proposal_at(25), &registry, &ring),
            Ok(Verdict::Sign { .. })
        ));
        // Another fork at a held height.
        let forked = edited(&proposal_at(30), |s| s.anchor.block_hash = [0xee; 32]);
        assert!(matches!(
            check(&forked, &registry, &ring),
            Err(Refusal::AnchorUnknown { block: 30, .. })
        ));
        // A directory without a chain section.
        let plain = {
            let chain = at(40);
            let votes = votes(&registry, &chain);
            let elected = tally(votes.iter().map(SignedVote::vote));
            let (d, _) = registry.assemble(&elected, 7, NOW, NOW + LIFETIME).unwrap();
            Proposal {
                directory: d.to_bytes().into(),
                votes,
            }
        };
        assert_eq!(
            check(&plain, &registry, &ring).unwrap_err(),
            Refusal::ChainSectionMissing
        );
    }

    /// With `[chain]`, the votes that count are the chain's set's: a vote
    /// of a validator the chain does not list is refused.
    #[test]
    fn votes_of_validators_outside_the_chains_set_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let registry = populated(&dir);
        let mut s = snapshot(&registry, 10);
        // Validator 2 left the set on chain.
        s.validator_sets[0].members.truncate(2);
        let chain = view(s);
        let proposal = honest(&registry, &chain, votes(&registry, &chain));
        assert_eq!(
            check(&proposal, &registry, &ring_of([chain])).unwrap_err(),
            Refusal::UntrustedVote(validators()[2].id())
        );
    }

    /// Measured bandwidth in chain-backed proposals (issue 14, item 3):
    /// records fed with outcomes of real `MeasureState` epochs over
    /// reveals.
    mod measured {
        use std::collections::BTreeMap;

        use openrelay_measure::{
            EpochOutcome, MeasureParams, MeasureState, Measurement, RelayAdvert, Reveal,
            ValidatorId as MeasurerId, ValidatorReport,
        };

        use super::*;
        use crate::measurements::{Mismatch, View};

        const MBPS: u64 = 1_000_000;
        /// When epoch `e` ended: a minute per epoch, the last before `NOW`.
        fn end_of(epoch: u64) -> u64 {
            NOW - 60 * (10 - epoch)
        }

        fn measure_id(relay: u32) -> openrelay_measure::RelayId {
            openrelay_measure::RelayId(relay_key(relay).id().to_bytes())
        }

        /// The verdicts of `epochs` epochs (from 1) in which all three
        /// measurers report `carried(epoch, relay)` for relays 0 to 3
        /// (`None`: unreachable), every relay advertising 1 Gbit/s.
        fn outcomes(epochs: u64, carried: impl Fn(u64, u32) -> Option<u64>) -> Vec<EpochOutcome> {
            let measurers: BTreeMap<MeasurerId, u128> =
                (1..=3).map(|i| (MeasurerId([i; 32]), 100)).collect();
            let adverts: BTreeMap<_, _> = (0..4)
                .map(|r| {
                    (
                        measure_id(r),
                        RelayAdvert {
                            advertised_bps: 1_000 * MBPS,
                            operator_stake: 2_000,
                            operator_advertised_bps: 2_000 * u128::from(MBPS),
                        },
                    )
                })
                .collect();
            let mut state = MeasureState::new(MeasureParams::devnet());
            (1..=epochs)
                .map(|epoch| {
                    let reveals: Vec<Reveal> = measurers
                        .keys()
                        .map(|&m| {
                            let reports = (0..4)
                                .map(|r| ValidatorReport {
                                    relay: measure_id(r),
                                    probes_sent: 10,
                                    probes_answered: if carried(epoch, r).is_some() {
                                        10
                                    } else {
                                        0
                                    },
                                    measurement: carried(epoch, r).map_or(
                                        Measurement::Unreachable,
                                        |bps| Measurement::Reachable {
                                            capacity_bps: bps,
                                            rtt_micros: 1_000,
                                        },
                                    ),
                                })
                                .collect();
                            Reveal::new(epoch, m, reports, [m.0[0]; 32]).unwrap()
                        })
                        .collect();
                    state
                        .apply_epoch(epoch, &measurers, &reveals, &adverts)
                        .unwrap()
                })
                .collect()
        }

        /// A record (in its own store under `dir`) fed with `outcomes`.
        fn record(dir: &tempfile::TempDir, outcomes: &[EpochOutcome]) -> MeasurementRecord {
            let store = RedbStore::open(&dir.path().join("record.redb")).unwrap();
            let mut record = MeasurementRecord::load(&store, MeasureParams::devnet()).unwrap();
            for o in outcomes {
                record.record_epoch(&store, o, end_of(o.epoch)).unwrap();
            }
            record
        }

        /// Relay 3 down, relay 2 carrying a tenth of its claim (slashed
        /// after the second epoch with the devnet's N = 2), relays 0 and 1
        /// carrying 900 Mbit/s.
        fn two_epochs() -> Vec<EpochOutcome> {
            outcomes(2, |_, r| match r {
                3 => None,
                2 => Some(100 * MBPS),
                _ => Some(900 * MBPS),
            })
        }

        /// A populated registry on a chain, and the records of the
        /// registry and of a validator after [`two_epochs`].
        struct Scene {
            _dirs: [tempfile::TempDir; 3],
            registry: Registry<RedbStore>,
            chain: ChainView,
            ring: ChainRing,
            outcomes: Vec<EpochOutcome>,
            at_registry: MeasurementRecord,
            at_validator: MeasurementRecord,
        }

        fn scene() -> Scene {
            let dirs = [(); 3].map(|()| tempfile::tempdir().unwrap());
            let registry = populated(&dirs[0]);
            let chain = view(snapshot(&registry, 10));
            let ring = ring_of([chain.clone()]);
            let outcomes = two_epochs();
            let at_registry = record(&dirs[1], &outcomes);
            let at_validator = record(&dirs[2], &outcomes);
            Scene {
                _dirs: dirs,
                registry,
                chain,
                ring,
                outcomes,
                at_registry,
                at_validator,
            }
        }

        fn measurement_of(proposal: &Proposal, relay: u32) -> Option<Option<RelayMeasurement>> {
            let d = Directory::from_bytes(&proposal.directory).unwrap();
            d.chain()
                .unwrap()
                .relay(&relay_key(relay).id())
                .map(|r| r.measured)
        }

        #[test]
        fn an_honest_proposal_carries_the_settled_measurements_and_is_signed() {
            let Scene {
                _dirs: [_registry_dir, _record_dir, vdir],
                registry,
                chain,
                ring,
                outcomes,
                at_registry,
                at_validator,
            } = scene();
            assert_eq!(outcomes[1].relay_slashes.len(), 1, "relay 2 slashed");
            let proposal =
                honest_measured(&registry, &chain, votes(&registry, &chain), &at_registry);
            // Relay 3 (down) is left out; the others carry epoch 2's
            // aggregate and its end.
            assert_eq!(measurement_of(&proposal, 3), None);
            assert_eq!(
                measurement_of(&proposal, 2),
                Some(Some(RelayMeasurement {
                    measured_bps: 100 * MBPS,
                    measured_epoch: 2,
                    measured_at: end_of(2),
                }))
            );
            assert!(matches!(
                check_measured(&proposal, &registry, &ring, &at_validator),
                Ok(Verdict::Sign { .. })
            ));
            // The record survives a restart (its store reopened).
            let reopened = record(&vdir, &[]);
            assert_eq!(reopened.latest(), at_validator.latest());
            assert!(matches!(
                check_measured(&proposal, &registry, &ring, &reopened),
                Ok(Verdict::Sign { .. })
            ));
            // Epochs are recorded once, in order.
            let mut again = record(&vdir, &[]);
            let other = tempfile::tempdir().unwrap();
            let store = RedbStore::open(&other.path().join("x.redb")).unwrap();
            assert!(matches!(
                again.record_epoch(&store, &outcomes[0], end_of(1)),
                Err(crate::measurements::RecordError::EpochNotAfter { epoch: 1, last: 2 })
            ));
        }

        #[test]
        fn a_registry_inflating_a_measurement_gets_no_signature() {
            let Scene {
                registry,
                chain,
                ring,
                at_registry,
                at_validator,
                _dirs,
                ..
            } = scene();
            let proposal =
                honest_measured(&registry, &chain, votes(&registry, &chain), &at_registry);
            // The slashed relay (2) back at its claim, or unmeasured (the
            // bootstrap weight), or any figure not the aggregate.
            let slashed = relay_key(2).id();
            let index = |s: &openrelay_directory::ChainSection| {
                s.relays.iter().position(|r| r.relay == slashed).unwrap()
            };
            for forged in [Some(1_000 * MBPS), None, Some(100 * MBPS + 1)] {
                let lie = edited(&proposal, |s| {
                    let i = index(s);
                    s.relays[i].measured = forged.map(|bps| RelayMeasurement {
                        measured_bps: bps,
                        measured_epoch: 2,
                        measured_at: end_of(2),
                    });
                });
                let refusal = check_measured(&lie, &registry, &ring, &at_validator).unwrap_err();
                assert!(
                    matches!(
                        &refusal,
                        Refusal::MeasurementsDiffer(m)
                            if matches!(**m, Mismatch::Differs { relay, .. } if relay == slashed)
                    ),
                    "{forged:?}: {refusal}"
                );
            }
            // An older epoch's figure, or another age, is refused too.
            let aged = edited(&proposal, |s| {
                let i = index(s);
                if let Some(m) = &mut s.relays[i].measured {
                    m.measured_at -= 1;
                }
            });
            assert!(matches!(
                check_measured(&aged, &registry, &ring, &at_validator).unwrap_err(),
                Refusal::MeasurementsDiffer(_)
            ));
        }

        #[test]
        fn a_registry_listing_a_down_relay_gets_no_signature() {
            let Scene {
                registry,
                chain,
                ring,
                at_registry,
                at_validator,
                _dirs,
                ..
            } = scene();
            // Down in both recorded epochs: even the grace does not list it.
            let elected = tally(votes(&registry, &chain).iter().map(SignedVote::vote));
            let (all, _) = registry
                .assemble_admitted(&elected, 7, NOW, NOW + LIFETIME, |d, p| {
                    chain.admit(d, p).is_ok()
                })
                .unwrap();
            let listed = Proposal {
                directory: chain
                    .anchor_directory(all, &at_registry)
                    .unwrap()
                    .to_bytes()
                    .into(),
                votes: votes(&registry, &chain),
            };
            assert_eq!(
                check_measured(&listed, &registry, &ring, &at_validator).unwrap_err(),
                Refusal::MeasurementsDiffer(Box::new(Mismatch::ListsDownRelay {
                    relay: relay_key(3).id()
                }))
            );
            // Leaving it out is what the record says; leaving out a relay
            // that is up is still an omission.
            let honest = honest_measured(&registry, &chain, votes(&registry, &chain), &at_registry);
            assert!(check_measured(&honest, &registry, &ring, &at_validator).is_ok());
            // A registry claiming relay 3 is down to a validator that saw it
            // up (measured at 900 Mbit/s): an omission.
            let up = outcomes(2, |_, r| Some(if r == 2 { 100 * MBPS } else { 900 * MBPS }));
            let at_validator_up = record(&tempfile::tempdir().unwrap(), &up);
            assert_eq!(
                check_measured(&honest, &registry, &ring, &at_validator_up).unwrap_err(),
                Refusal::ChainOmitted {
                    relay: relay_key(3).id()
                }
            );
        }

        /// The grace at settlement: a validator that recorded epoch 2
        /// accepts a proposal wholly from epoch 1's standings (a registry
        /// one epoch behind), not one mixing the two; a proposal from an
        /// epoch the validator has not recorded is refused as transient.
        #[test]
        fn one_epoch_of_grace_either_way_and_no_mixing() {
            let dir = tempfile::tempdir().unwrap();
            let registry = populated(&dir);
            let chain = view(snapshot(&registry, 10));
            let ring = ring_of([chain.clone()]);
            // Epoch 1: all up at 900; epoch 2: relay 0 at 500, relay 3 down.
            let both = outcomes(2, |epoch, r| match (epoch, r) {
                (1, _) => Some(900 * MBPS),
                (_, 3) => None,
                (_, 0) => Some(500 * MBPS),
                _ => Some(900 * MBPS),
            });
            let (ldir, adir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
            let lagging = record(&ldir, &both[..1]);
            let ahead = record(&adir, &both);
            let votes = votes(&registry, &chain);
            // A registry one epoch behind: accepted by the validator ahead.
            let behind = honest_measured(&registry, &chain, votes.clone(), &lagging);
            assert_eq!(measurement_of(&behind, 3).map(|m| m.is_some()), Some(true));
            let behind_section = Directory::from_bytes(&behind.directory)
                .unwrap()
                .chain()
                .unwrap()
                .clone();
            assert_eq!(ahead.check(&behind_section), Ok(View::Previous));
            assert!(check_measured(&behind, &registry, &ring, &ahead).is_ok());
            // A registry ahead: the lagging validator refuses, transiently.
            let current = honest_measured(&registry, &chain, votes, &ahead);
            let refusal = check_measured(&current, &registry, &ring, &lagging).unwrap_err();
            assert!(
                matches!(refusal, Refusal::MeasurementsAhead(_)),
                "{refusal}"
            );
            assert!(refusal.is_transient());
            assert!(check_measured(&current, &registry, &ring, &ahead).is_ok());
            // Mixing: epoch 1's figure for relay 0 (higher) with epoch 2's
            // exclusion of relay 3.
            let mixed = edited(&current, |s| {
                let i = s
                    .relays
                    .iter()
                    .position(|r| r.relay == relay_key(0).id())
                    .unwrap();
                s.relays[i].measured = Some(RelayMeasurement {
                    measured_bps: 900 * MBPS,
                    measured_epoch: 1,
                    measured_at: end_of(1),
                });
            });
            assert!(matches!(
                check_measured(&mixed, &registry, &ring, &ahead).unwrap_err(),
                Refusal::MeasurementsDiffer(_)
            ));
        }
    }
}
