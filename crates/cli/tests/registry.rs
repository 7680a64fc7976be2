//! The registry as real processes: `openrelay registry` and three
//! `openrelay validator`s (threshold 2). The test publishes as relays of two
//! operators (to the registry and to every validator), then checks that the
//! directory the registry serves passes the client's verification, that a
//! relay that stops refreshing leaves a later directory (churn), and that
//! every kind of bad publication gets its own status on the wire (issue 11,
//! items 8 and 17).
#![allow(clippy::unwrap_used)]

use openrelay_testkit as kit;
use openrelay_testkit::registry as registry_fixtures;

use std::time::{Duration, Instant};

use kit::Proc;
use openrelay_directory::{
    DirectoryDigest, SignedDirectory, TrustConfig, ValidatorId, ValidatorKey,
    verify_directory_bytes,
};
use openrelay_registry_client::RegistryClient;
use openrelay_registry_client::paths;
use openrelay_types::RelayRole;
use openrelay_types::unix_now;
use registry_fixtures::*;

const RELAYS: [(u8, u8, RelayRole); 4] = [
    (0, 0, RelayRole::Ingress),
    (1, 0, RelayRole::Egress),
    (2, 1, RelayRole::Ingress),
    (3, 1, RelayRole::Egress),
];

/// The `[publication]` section of the registry and every validator: at most
/// two relays per operator and five in all, a TTL of 3 s, special-purpose
/// endpoints refused.
const PUBLICATION: &str = "descriptor_ttl_secs = 3\nmax_relays_per_operator = 2\nmax_relays = 5";

/// Waits for a served directory that verifies and satisfies `want`,
/// republishing `refresh` to `targets` meanwhile.
async fn served_directory(
    registry: &RegistryClient,
    targets: &[RegistryClient],
    trust: &TrustConfig,
    want: impl Fn(usize) -> bool,
    refresh: &[(u8, u8, RelayRole)],
) -> (u64, usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // A second after any earlier publication, so each is newer.
        tokio::time::sleep(Duration::from_millis(1000)).await;
        for &(relay, operator, role) in refresh {
            publish(targets, relay, operator, role).await;
        }
        if let Ok((200, bytes)) = registry
            .call(http::Method::GET, paths::DIRECTORY, Vec::new())
            .await
        {
            let verified = verify_directory_bytes(&bytes, trust, unix_now(), None).unwrap();
            let relays = verified.relays().count();
            if want(relays) {
                return (verified.sequence(), relays);
            }
        }
        assert!(
            Instant::now() < deadline,
            "no suitable directory was served in time"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validators_sign_what_the_registry_serves_and_bad_publications_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let keys = validator_keys(dir.path(), 3);
    let registry_config = dir.path().join("registry.toml");
    std::fs::write(
        &registry_config,
        format!(
            "listen = \"127.0.0.1:0\"\nstate_dir = {:?}\nvalidators = {}\nthreshold = 2\ndirectory_lifetime_secs = 3600\nproposal_interval_secs = 1\n[publication]\n{PUBLICATION}\n[log]\nlevel = \"debug\"\nfile = {:?}\n",
            dir.path().join("registry").display(),
            key_list(&keys),
            dir.path().join("registry.log").display(),
        ),
    )
    .unwrap();
    let registry_proc = Proc::start(
        &[
            "registry",
            "--config",
            &registry_config.display().to_string(),
        ],
        &dir.path().join("registry.stderr"),
    );
    let (listen, key) = (
        registry_proc.ready_field("listen"),
        registry_proc.ready_field("key"),
    );
    let validators: Vec<Proc> = keys
        .iter()
        .map(|v| start_validator(v, &keys, 2, listen.parse().unwrap(), &key, PUBLICATION))
        .collect();
    let registry = RegistryClient::new(listen.parse().unwrap(), key.parse().unwrap());
    let mut targets = vec![registry.clone()];
    targets.extend(validators.iter().map(validator_client));

    // A descriptor of an operator without a profile: 422.
    assert_eq!(
        post(
            &registry,
            paths::DESCRIPTORS,
            descriptor(0, 0, RelayRole::Ingress)
        )
        .await,
        422
    );
    // A forged descriptor: 403.
    let mut forged = descriptor(0, 0, RelayRole::Ingress);
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert_eq!(post(&registry, paths::PROFILES, profile(0)).await, 204);
    assert_eq!(post(&registry, paths::DESCRIPTORS, forged).await, 403);

    let trust = TrustConfig::new(
        keys.iter()
            .map(|v| v.key.id())
            .collect::<Vec<ValidatorId>>(),
        2,
        3600,
    )
    .unwrap();
    let (first, relays) = served_directory(&registry, &targets, &trust, |n| n == 4, &RELAYS).await;
    assert_eq!(relays, 4);

    // Item 21: the registry's answers to a signature tell a validator's
    // normal life from a real problem. A signature over the directory
    // served already: 200. Over one it no longer offers: 410. A bad one: 403.
    let (_, served) = registry
        .call(http::Method::GET, paths::DIRECTORY, Vec::new())
        .await
        .unwrap();
    let served = SignedDirectory::from_bytes(&served).unwrap();
    let submission = |key: &ValidatorKey, digest: DirectoryDigest, directory: &[u8]| {
        let mut body = key.id().as_bytes().to_vec();
        body.extend_from_slice(digest.as_bytes());
        body.extend_from_slice(key.sign_directory_bytes(directory).signature.as_bytes());
        body
    };
    let late = submission(&keys[0].key, served.digest(), &served.directory);
    assert_eq!(post(&registry, paths::SIGNATURES, late).await, 200);
    let gone = submission(
        &keys[0].key,
        DirectoryDigest::of(b"another directory"),
        b"another directory",
    );
    assert_eq!(post(&registry, paths::SIGNATURES, gone).await, 410);
    let forged = submission(&keys[0].key, served.digest(), b"other bytes");
    assert_eq!(post(&registry, paths::SIGNATURES, forged).await, 403);

    // Replays: the descriptor just published again, and an older one: 409.
    // (A second later than the last refresh, so the first is newer.)
    tokio::time::sleep(Duration::from_secs(1)).await;
    let current = descriptor(1, 0, RelayRole::Egress);
    assert_eq!(
        post(&registry, paths::DESCRIPTORS, current.clone()).await,
        204
    );
    assert_eq!(post(&registry, paths::DESCRIPTORS, current).await, 409);
    let older = sign(fields(1, 0, RelayRole::Egress, 30), 1, 0);
    assert_eq!(post(&registry, paths::DESCRIPTORS, older).await, 409);
    // A third relay of operator 0: 403 (at most two per operator).
    assert_eq!(
        post(
            &registry,
            paths::DESCRIPTORS,
            descriptor(4, 0, RelayRole::Egress)
        )
        .await,
        403
    );
    // A loopback endpoint: 403 (special-purpose addresses are refused).
    let mut loopback = fields(5, 2, RelayRole::Egress, 0);
    loopback.endpoints = vec!["127.0.0.1:4433".parse().unwrap()];
    assert_eq!(post(&registry, paths::PROFILES, profile(2)).await, 204);
    assert_eq!(
        post(&registry, paths::DESCRIPTORS, sign(loopback, 5, 2)).await,
        403
    );
    // A fifth relay fits, a sixth does not: 503 (the registry is full).
    assert_eq!(
        post(
            &registry,
            paths::DESCRIPTORS,
            descriptor(5, 2, RelayRole::Egress)
        )
        .await,
        204
    );
    assert_eq!(post(&registry, paths::PROFILES, profile(3)).await, 204);
    assert_eq!(
        post(
            &registry,
            paths::DESCRIPTORS,
            descriptor(6, 3, RelayRole::Egress)
        )
        .await,
        503
    );

    // Relay 3 stops refreshing (and relay 5 never published to the
    // validators): a later directory lists relays 0 to 2 only.
    let (second, relays) =
        served_directory(&registry, &targets, &trust, |n| n == 3, &RELAYS[..3]).await;
    assert_eq!(relays, 3);
    assert!(second > first, "sequence {second} after {first}");

    // Item 21: nothing a validator met here was a real problem.
    for v in &keys {
        let log = std::fs::read_to_string(v.dir.join("validator.log")).unwrap();
        let warnings = kit::logs::warnings(&log);
        assert!(warnings.is_empty(), "{warnings:#?}");
    }
}
